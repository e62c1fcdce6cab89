"""Builders for the pure simulator core's tests: plain values, no database.

The default scenario: buy YES on Kalshi at 0.45 and NO on Polymarket at 0.50 (fee-free), 10
contracts. Per contract: $1 - 0.45 - 0.50 = 5c before fees; Kalshi's taker fee on 10 @ 0.45 is
ceil_to_cent(0.07 x 10 x 0.45 x 0.55 = 0.17325) = $0.18, so the pair costs $9.68 and the edge
is ($10 - $9.68) / 10 = 3.20c.
"""

import random
from datetime import UTC, datetime
from decimal import Decimal

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book, Level, sorted_levels
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from simulator.core import (
    Decision,
    ExchangeValidation,
    Intent,
    IntentLeg,
    Keys,
    LatencyModel,
    LegValidation,
    LiquidityLedger,
    RunLimits,
    RunState,
    SettlementDelayModel,
    SimConfig,
    TimingConfig,
    decide,
)

D = Decimal
NOW = datetime(2025, 11, 25, 15, 0, 0, tzinfo=UTC)
TICKER = "KXHIGHNY-25NOV25-T50"
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
BOOK_TS_MS = 1_764_082_800_000


def levels(*pairs: tuple[str, str]) -> tuple[Level, ...]:
    return tuple(Level(price=D(price), size=D(size)) for price, size in pairs)


def book(venue: str, instrument_id: str, side: str, *asks: tuple[str, str], ts_ms: int = BOOK_TS_MS) -> Book:
    """A book of asks, sorted best first as every `Book` is (`sorted_levels` also merges equal prices)."""
    ladder = sorted_levels(((D(price), D(size)) for price, size in asks), best_first_ascending=True)
    return Book(venue=venue, instrument_id=instrument_id, side=side, asks=ladder, received_ts_ms=ts_ms)


def kalshi_book(*asks: tuple[str, str], ts_ms: int = BOOK_TS_MS) -> Book:
    return book(KALSHI, TICKER, YES, *asks, ts_ms=ts_ms)


def polymarket_book(*asks: tuple[str, str], ts_ms: int = BOOK_TS_MS) -> Book:
    return book(POLYMARKET, TOKEN, NO, *asks, ts_ms=ts_ms)


def make_intent(
    *,
    kalshi_limit: str = "0.45",
    polymarket_limit: str = "0.50",
    size: str = "10",
    net_edge_cents: str = "3.20",
    ticker: str = TICKER,
    token: str = TOKEN,
    legs: tuple[IntentLeg, ...] | None = None,
) -> Intent:
    if legs is None:
        legs = (
            IntentLeg(KALSHI, ticker, YES, D(kalshi_limit), D(size)),
            IntentLeg(POLYMARKET, token, NO, D(polymarket_limit), D(size)),
        )
    return Intent(
        id=42,
        opportunity_key="NYC-HIGH-50F-2025-11-25",
        direction="kalshi_yes_polymarket_no",
        net_edge_cents=D(net_edge_cents),
        size=D(size),
        legs=legs,
    )


def make_limits(min_edge: str = "1.00", max_leg: str = "100", daily_cap: str = "1000") -> RunLimits:
    return RunLimits(min_net_edge_cents=D(min_edge), max_leg_usd=D(max_leg), daily_cap_usd=D(daily_cap))


def make_state(balance: str = "1000", traded_today: str = "0") -> RunState:
    return RunState(balance_usd=D(balance), traded_today_usd=D(traded_today))


ALL_KEYS = Keys(kalshi=True, polymarket=True)


def leg_ok(some_book: Book) -> LegValidation:
    return LegValidation(
        venue=some_book.venue,
        instrument_id=some_book.instrument_id,
        side=some_book.side,
        ok=True,
        kind="ok",
        detail="",
        tradeable=True,
        book=some_book,
        latency_ms=35,
    )


def make_validation(
    kalshi: Book | None = None,
    polymarket: Book | None = None,
    *,
    kalshi_balance: str | None = "500",
    polymarket_balance: str | None = "500",
    legs: tuple[LegValidation, ...] | None = None,
) -> ExchangeValidation:
    if legs is None:
        legs = (
            leg_ok(kalshi if kalshi is not None else kalshi_book(("0.45", "10"))),
            leg_ok(polymarket if polymarket is not None else polymarket_book(("0.50", "10"))),
        )
    balances = {
        KALSHI: D(kalshi_balance) if kalshi_balance is not None else None,
        POLYMARKET: D(polymarket_balance) if polymarket_balance is not None else None,
    }
    return ExchangeValidation(ok=all(leg.ok for leg in legs), legs=legs, balances_usd=balances)


def make_fee_schedules(polymarket_rate: str = "0", ticker: str = TICKER, token: str = TOKEN) -> dict:
    return {
        (KALSHI, ticker): kalshi_taker_schedule(ticker),
        (POLYMARKET, token): polymarket_taker_schedule(D(polymarket_rate)),
    }


# Fixed timing: Kalshi 120 ms / 1 s, Polymarket 250 ms / 5 s.
FIXED_TIMING = TimingConfig(
    latency={
        KALSHI: LatencyModel(median_ms=120, sigma=0.0),
        POLYMARKET: LatencyModel(median_ms=250, sigma=0.0),
    },
    settlement={
        KALSHI: SettlementDelayModel(min_s=D(1), max_s=D(1)),
        POLYMARKET: SettlementDelayModel(min_s=D(5), max_s=D(5)),
    },
)


def run_decide(
    intent=None,
    limits=None,
    state=None,
    keys=ALL_KEYS,
    validation=None,
    *,
    seed=1,
    ledger=None,
    config=None,
    fee_schedules=None,
) -> Decision:
    validation = validation if validation is not None else make_validation()
    return decide(
        intent if intent is not None else make_intent(),
        limits if limits is not None else make_limits(),
        state if state is not None else make_state(),
        keys,
        lambda: validation,
        fee_schedules if fee_schedules is not None else make_fee_schedules(),
        random.Random(seed),
        NOW,
        ledger if ledger is not None else LiquidityLedger(),
        config if config is not None else SimConfig(timing=FIXED_TIMING),
    )


class FixedDrawRandom(random.Random):
    """A Random whose `randrange` answers from a script (competitors' shares, drawn per level)."""

    def __init__(self, *draws: int) -> None:
        super().__init__(0)
        self.draws = list(draws)
        self.randrange_calls = 0

    def randrange(self, *args, **kwargs) -> int:  # type: ignore[override]
        self.randrange_calls += 1
        return self.draws.pop(0)
