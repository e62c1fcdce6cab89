"""Sizing and the fill model (pure: no Django, no I/O; randomness injected).

A hedged pair pays $1 per matched contract at resolution, so both legs get the same whole
number of contracts. Each leg walks its validated ask ladder best first, taking only levels at
or below its limit price, and every fill is at exactly a level's price: never better than the
book, never worse than the limit. Fees are the venue's schedule on the whole order (Kalshi
rounds once per order, up to the cent).

Money: cost = ceil_to_$0.0001(sum of price x size over both legs) + fees. With Kalshi's
2-decimal sizes and 4-decimal prices the notional is exact to 6 places, so the ceiling only
matters for fractional Polymarket share sizes; it keeps a simulated cost never below the real one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from exchanges.books import ONE_DOLLAR, Level
from exchanges.fees import FeeSchedule
from simulator.core.types import Fill, Intent, IntentLeg, LegFill, RunLimits

ZERO = Decimal(0)
USD_PLACES = Decimal("0.0001")
PRICE_PLACES = Decimal("0.0001")
FILL_PCT_PLACES = Decimal("0.0001")
EDGE_PLACES = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class LegBook:
    """One leg with the ladders it may fill from and the fee schedule of its instrument."""

    leg: IntentLeg
    seen: tuple[Level, ...]  # the ask ladder the validation saw
    available: tuple[Level, ...]  # the same, less what this run already took from it
    schedule: FeeSchedule


@dataclass(frozen=True, slots=True)
class PairFill:
    matched_size: Decimal
    legs: tuple[LegFill, ...]
    fees_usd: Decimal
    cost_usd: Decimal
    expected_pnl_usd: Decimal

    def meets(self, min_net_edge_cents: Decimal) -> bool:
        # Compared without dividing: (matched - cost) x 100 >= minimum x matched.
        return self.expected_pnl_usd * 100 >= min_net_edge_cents * self.matched_size

    @property
    def net_edge_cents(self) -> Decimal:
        """Per contract, rounded down: the edge shown is never better than the one got."""
        return (self.expected_pnl_usd * 100 / self.matched_size).quantize(EDGE_PLACES, rounding=ROUND_FLOOR)


@dataclass(frozen=True, slots=True)
class FillOutcome:
    requested_size: Decimal
    depth_size: Decimal  # whole contracts both legs can take at their limits (<= requested)
    at_target: PairFill  # the real fills and fees at depth_size
    pair: PairFill | None  # the largest size <= depth_size whose real edge meets the minimum

    @property
    def fill_pct(self) -> Decimal:
        matched = self.pair.matched_size if self.pair is not None else ZERO
        return fill_pct(matched, self.requested_size)


def whole(size: Decimal) -> Decimal:
    return size.to_integral_value(rounding=ROUND_FLOOR)


def requested_size(intent: Intent, limits: RunLimits) -> Decimal:
    """The intent's size, no leg larger than its own size, each leg's notional <= max_leg_usd."""
    size = min([intent.size, *(leg.size for leg in intent.legs)])
    for leg in intent.legs:
        if leg.limit_price > 0:
            size = min(size, limits.max_leg_usd / leg.limit_price)
    return max(whole(size), ZERO)


def fill_pct(matched: Decimal, requested: Decimal) -> Decimal:
    if requested <= 0:
        return ZERO.quantize(FILL_PCT_PLACES)
    return (matched / requested).quantize(FILL_PCT_PLACES, rounding=ROUND_DOWN)


def _best_first(asks: Iterable[Level], limit_price: Decimal) -> list[Level]:
    return sorted((level for level in asks if level.price <= limit_price and level.size > 0), key=_price)


def _price(level: Level) -> Decimal:
    return level.price


def depth_at_limit(asks: Iterable[Level], limit_price: Decimal) -> Decimal:
    """Size offered at or below the limit (may be fractional)."""
    return sum((level.size for level in asks if level.price <= limit_price and level.size > 0), ZERO)


def take(asks: Iterable[Level], limit_price: Decimal, size: Decimal) -> tuple[Fill, ...]:
    """Walk the ladder best first at prices <= limit until `size` is taken; each fill is one level."""
    fills: list[Fill] = []
    remaining = size
    for level in _best_first(asks, limit_price):
        if remaining <= 0:
            break
        taken = min(level.size, remaining)
        fills.append(Fill(price=level.price, size=taken))
        remaining -= taken
    if remaining > 0:
        raise ValueError(f"only {size - remaining} of {size} available at or below {limit_price}")
    return tuple(fills)


def fill_leg(leg_book: LegBook, size: Decimal) -> LegFill:
    leg = leg_book.leg
    fills = take(leg_book.available, leg.limit_price, size)
    notional = sum((fill.price * fill.size for fill in fills), ZERO)
    return LegFill(
        venue=leg.venue,
        instrument_id=leg.instrument_id,
        side=leg.side,
        limit_price=leg.limit_price,
        fills=fills,
        avg_fill_price=(notional / size).quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN),
        fee_usd=leg_book.schedule.fills_fee_usd([(fill.price, fill.size) for fill in fills]),
        book=leg_book.seen,
        book_available=leg_book.available,
    )


def fill_pair(leg_books: Sequence[LegBook], size: Decimal) -> PairFill:
    """Both legs at the same size (a hedged pair); cost = notional + fees; P&L = size x $1 - cost."""
    legs = tuple(fill_leg(leg_book, size) for leg_book in leg_books)
    notional = sum((leg.notional_usd for leg in legs), ZERO).quantize(USD_PLACES, rounding=ROUND_CEILING)
    fees = sum((leg.fee_usd for leg in legs), ZERO)
    cost = notional + fees
    return PairFill(
        matched_size=size,
        legs=legs,
        fees_usd=fees,
        cost_usd=cost,
        expected_pnl_usd=size * ONE_DOLLAR - cost,
    )


def _cost_usd(ladders: Sequence[tuple[list[Level], FeeSchedule]], size: Decimal) -> Decimal:
    """`fill_pair(...).cost_usd` without building the fills: the downward size search's inner loop."""
    notional = ZERO
    fees = ZERO
    for ladder, schedule in ladders:
        remaining = size
        taken: list[tuple[Decimal, Decimal]] = []
        for level in ladder:
            if remaining <= 0:
                break
            amount = min(level.size, remaining)
            taken.append((level.price, amount))
            notional += level.price * amount
            remaining -= amount
        fees += schedule.fills_fee_usd(taken)
    return notional.quantize(USD_PLACES, rounding=ROUND_CEILING) + fees


def fill_hedged_pair(
    *,
    leg_books: Sequence[LegBook],
    requested: Decimal,
    min_net_edge_cents: Decimal,
) -> FillOutcome:
    """Size the pair from the available depth at the validated book, then keep the largest size
    whose real fills and fees there still give an edge >= the user's minimum: the size the orders
    are sent at (what they fill is decided at arrival, `simulator.core.execution`).

    The caller guarantees every leg has at least one whole contract at or below its limit. A
    smaller size never pays a worse average price, but the fee per contract is not monotone
    (p x (1 - p) peaks at 0.50, and Kalshi's per-order cent rounding weighs more on small
    orders), so sizes are tried downwards one by one; `_cost_usd` keeps that loop cheap
    (about 40 ms for 5,000 contracts that never meet the minimum).
    """
    depth = min(whole(depth_at_limit(lb.available, lb.leg.limit_price)) for lb in leg_books)
    depth_size = min(requested, depth)
    if depth_size < 1:
        raise ValueError("no whole contract available on some leg")
    target = depth_size
    at_target = fill_pair(leg_books, target)
    size = target
    if not at_target.meets(min_net_edge_cents):
        ladders = [(_best_first(lb.available, lb.leg.limit_price), lb.schedule) for lb in leg_books]
        size -= 1
        while size >= 1 and (size - _cost_usd(ladders, size)) * 100 < min_net_edge_cents * size:
            size -= 1
    pair = at_target if size == target else fill_pair(leg_books, size) if size >= 1 else None
    return FillOutcome(
        requested_size=requested,
        depth_size=depth_size,
        at_target=at_target,
        pair=pair,
    )
