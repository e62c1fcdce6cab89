"""The venues' trading fee schedules (pure: no Django, no I/O).

Kalshi (kalshi.com/docs/kalshi-fee-schedule.pdf; rounding per docs.kalshi.com/getting_started/
fee_rounding): per order, fee = ceil_to_cent(rate x C x P x (1 - P)) with P in dollars and C
contracts. Taker rate 0.07 on most series, 0.035 on the S&P 500 / Nasdaq-100 index series;
makers pay 0 except on series flagged for maker fees (rate 0.0175).

Polymarket (docs.polymarket.com, Trading -> Fees): zero on most markets; where a market charges
one, takers pay C x fee_rate x p x (1 - p) USDC. USDC has 6 decimals on chain; we keep the fee
to 1/10,000 of a dollar, rounded up so a simulated fee is never smaller than the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from exchanges.books import KALSHI, POLYMARKET

CENT = Decimal("0.01")
HUNDREDTH_OF_A_CENT = Decimal("0.0001")
ZERO = Decimal("0")
ONE = Decimal("1")

KALSHI_TAKER_RATE = Decimal("0.07")
KALSHI_INDEX_TAKER_RATE = Decimal("0.035")
KALSHI_MAKER_RATE = Decimal("0.0175")
# Series whose published taker multiplier differs from the default (fee schedule, "Index markets").
KALSHI_SERIES_TAKER_RATES: dict[str, Decimal] = {
    "INX": KALSHI_INDEX_TAKER_RATE,
    "INXD": KALSHI_INDEX_TAKER_RATE,
    "INXU": KALSHI_INDEX_TAKER_RATE,
    "NASDAQ100": KALSHI_INDEX_TAKER_RATE,
    "NASDAQ100D": KALSHI_INDEX_TAKER_RATE,
    "NASDAQ100U": KALSHI_INDEX_TAKER_RATE,
}


def _variance_term(contracts: Decimal, price: Decimal) -> Decimal:
    if contracts < 0:
        raise ValueError("contracts must be >= 0")
    if not (ZERO <= price <= ONE):
        raise ValueError("price must be in dollars, between 0 and 1")
    return contracts * price * (ONE - price)


def kalshi_series_of(ticker: str) -> str:
    """`KXHIGHNY-25NOV24-T50` -> `KXHIGHNY`; the series is the ticker's first dash-part."""
    return ticker.split("-", 1)[0].upper()


def kalshi_taker_rate(ticker: str) -> Decimal:
    return KALSHI_SERIES_TAKER_RATES.get(kalshi_series_of(ticker), KALSHI_TAKER_RATE)


def kalshi_fee_usd(contracts: Decimal, price: Decimal, *, rate: Decimal = KALSHI_TAKER_RATE) -> Decimal:
    """Fee for one Kalshi order of `contracts` at `price`, rounded up to the next cent."""
    raw = rate * _variance_term(contracts, price)
    return raw.quantize(CENT, rounding=ROUND_CEILING)


def polymarket_fee_usd(contracts: Decimal, price: Decimal, *, fee_rate: Decimal = ZERO) -> Decimal:
    """Taker fee on a Polymarket order; `fee_rate` 0 (most markets) means no fee at all."""
    if fee_rate == 0:
        _variance_term(contracts, price)  # still validate the inputs
        return ZERO.quantize(HUNDREDTH_OF_A_CENT)
    raw = fee_rate * _variance_term(contracts, price)
    return raw.quantize(HUNDREDTH_OF_A_CENT, rounding=ROUND_CEILING)


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """How one instrument is charged: the venue plus its rate (Kalshi multiplier or Polymarket fee rate)."""

    venue: str
    rate: Decimal

    def fee_usd(self, contracts: Decimal, price: Decimal) -> Decimal:
        return self.fills_fee_usd([(price, contracts)])

    def fills_fee_usd(self, fills: list[tuple[Decimal, Decimal]]) -> Decimal:
        """Fee of one order filled at several levels, given as (price, size) pairs.

        Kalshi rounds per order, not per fill (fee_rounding: fills accrue to $0.0001 and a
        rounding fee lifts the order total to the next cent), so the exact terms are summed
        and rounded once.
        """
        raw = sum((self.rate * _variance_term(size, price) for price, size in fills), ZERO)
        if self.venue == KALSHI:
            return raw.quantize(CENT, rounding=ROUND_CEILING)
        if self.venue == POLYMARKET:
            return raw.quantize(HUNDREDTH_OF_A_CENT, rounding=ROUND_CEILING)
        raise ValueError(f"unknown venue {self.venue!r}")


def kalshi_taker_schedule(ticker: str) -> FeeSchedule:
    return FeeSchedule(venue=KALSHI, rate=kalshi_taker_rate(ticker))


def polymarket_taker_schedule(fee_rate: Decimal = ZERO) -> FeeSchedule:
    return FeeSchedule(venue=POLYMARKET, rate=fee_rate)
