"""Orders as live would send them, and what they meet when they arrive (pure: no Django, no I/O).

A traded decision sends one limit order per leg at the leg's limit price and the decided size,
with a time-in-force the venue offers. Each order reaches its venue one latency later and fills
against that venue's book *as it stands at arrival*, less what competitors take first (a seeded
share of each level, larger at marginal edges) and what this run already took from the same
snapshot. The two legs can fill differently: the hedged size is the smaller fill, and the excess
is sold back at the bids one latency later (unwind) or kept as an open position (carry).

The clock, the random generator and the books are arguments: the engine passes the arrival book
its source gives (a venue read at the arrival time, or a recording's book at that time).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from exchanges.books import KALSHI, ONE_DOLLAR, POLYMARKET, Level
from exchanges.fees import FeeSchedule
from simulator.core.fills import EDGE_PLACES, PRICE_PLACES, USD_PLACES, ZERO, depth_at_limit, take, whole
from simulator.core.types import Fill

# Time in force, per venue: Kalshi immediate-or-cancel / fill-or-kill, Polymarket fill-and-kill /
# fill-or-kill. IOC and FAK take what is there and cancel the rest; FOK takes all or nothing.
IOC, FAK, FOK = "ioc", "fak", "fok"
ORDER_TYPES: Mapping[str, tuple[str, ...]] = {KALSHI: (IOC, FOK), POLYMARKET: (FAK, FOK)}
TOGETHER, KALSHI_FIRST, POLYMARKET_FIRST = "together", "kalshi_first", "polymarket_first"
SEQUENCINGS = (TOGETHER, KALSHI_FIRST, POLYMARKET_FIRST)
FIRST_VENUE = {KALSHI_FIRST: KALSHI, POLYMARKET_FIRST: POLYMARKET}
UNWIND, CARRY = "unwind", "carry"
UNHEDGED_POLICIES = (UNWIND, CARRY)

# Arrival outcomes of a trade. "" while an order is still on its way.
FULL, PARTIAL, LEGGED, MISSED = "full", "partial", "legged", "missed"
ARRIVAL_OUTCOMES = (FULL, PARTIAL, LEGGED, MISSED)

# A leg's state: its order not sent yet (the second leg of a sequence), on its way, arrived.
WAITING, SENT, ARRIVED, NOT_SENT = "waiting", "sent", "arrived", "not_sent"

SIZE_PLACES = Decimal("0.01")  # sizes are kept to the hundredth (Kalshi's and the columns')
SHARE_STEPS = 10_000  # competitor shares are drawn on a 1/10,000 grid: no floats
MARK_PLACES = USD_PLACES


# --- run settings --------------------------------------------------------------------------------


def _fraction(name: str, value: Decimal) -> None:
    if not (ZERO <= value <= 1):
        raise ValueError(f"{name} must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class CompetitionConfig:
    """Before our order arrives, other takers take a share s of each level, drawn per level from
    [share_min, share_max], or [marginal_share_min, marginal_share_max] when the intent's edge is
    within `marginal_band_cents` above the run's minimum (everyone sees a fat edge; at a marginal
    one the other side of the book is usually racing us for the same size)."""

    share_min: Decimal = Decimal("0")
    share_max: Decimal = Decimal("0.2")
    marginal_band_cents: Decimal = Decimal("1.0")
    marginal_share_min: Decimal = Decimal("0")
    marginal_share_max: Decimal = Decimal("0.7")

    def __post_init__(self) -> None:
        for name in ("share_min", "share_max", "marginal_share_min", "marginal_share_max"):
            _fraction(name, getattr(self, name))
        if self.share_min > self.share_max:
            raise ValueError("share_min must not exceed share_max")
        if self.marginal_share_min > self.marginal_share_max:
            raise ValueError("marginal_share_min must not exceed marginal_share_max")
        if self.marginal_band_cents < 0:
            raise ValueError("marginal_band_cents must be >= 0")

    def shares(self, marginal: bool) -> tuple[Decimal, Decimal]:
        if marginal:
            return self.marginal_share_min, self.marginal_share_max
        return self.share_min, self.share_max

    def is_marginal(self, intent_edge_cents: Decimal, min_net_edge_cents: Decimal) -> bool:
        return intent_edge_cents - min_net_edge_cents < self.marginal_band_cents

    def as_json(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompetitionConfig:
        return cls(**{name: Decimal(str(value)) for name, value in data.items() if name in cls.__slots__})  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """How a run's orders are sent: per-venue time in force, leg sequencing, what happens to an
    unhedged excess, and the competition model."""

    kalshi_order_type: str = IOC
    polymarket_order_type: str = FAK
    sequencing: str = TOGETHER
    unhedged: str = UNWIND
    competition: CompetitionConfig = field(default_factory=CompetitionConfig)

    def __post_init__(self) -> None:
        if self.kalshi_order_type not in ORDER_TYPES[KALSHI]:
            raise ValueError(f"kalshi_order_type must be one of {', '.join(ORDER_TYPES[KALSHI])}")
        if self.polymarket_order_type not in ORDER_TYPES[POLYMARKET]:
            raise ValueError(f"polymarket_order_type must be one of {', '.join(ORDER_TYPES[POLYMARKET])}")
        if self.sequencing not in SEQUENCINGS:
            raise ValueError(f"sequencing must be one of {', '.join(SEQUENCINGS)}")
        if self.unhedged not in UNHEDGED_POLICIES:
            raise ValueError(f"unhedged must be one of {', '.join(UNHEDGED_POLICIES)}")

    def order_type(self, venue: str) -> str:
        return self.kalshi_order_type if venue == KALSHI else self.polymarket_order_type

    def as_json(self) -> dict[str, Any]:
        return {
            "kalshi_order_type": self.kalshi_order_type,
            "polymarket_order_type": self.polymarket_order_type,
            "sequencing": self.sequencing,
            "unhedged": self.unhedged,
            "competition": self.competition.as_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ExecutionConfig:
        """Missing keys take the defaults (a run started before these settings existed)."""
        data = data or {}
        defaults = cls()
        return cls(
            kalshi_order_type=str(data.get("kalshi_order_type", defaults.kalshi_order_type)),
            polymarket_order_type=str(data.get("polymarket_order_type", defaults.polymarket_order_type)),
            sequencing=str(data.get("sequencing", defaults.sequencing)),
            unhedged=str(data.get("unhedged", defaults.unhedged)),
            competition=CompetitionConfig.from_json(data.get("competition", {})),
        )


# --- what a trade records ------------------------------------------------------------------------


def _dt_json(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _dt(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _ladder_json(levels: Iterable[Level] | None) -> list[dict[str, str]] | None:
    return None if levels is None else [level.as_json() for level in levels]


def _ladder(data: Any) -> tuple[Level, ...] | None:
    if data is None:
        return None
    return tuple(Level(price=Decimal(str(row["price"])), size=Decimal(str(row["size"]))) for row in data)


def _fills(data: Any) -> tuple[Fill, ...]:
    return tuple(Fill(price=Decimal(str(row["price"])), size=Decimal(str(row["size"]))) for row in data or ())


def _sum_size(fills: Iterable[Fill]) -> Decimal:
    return sum((fill.size for fill in fills), ZERO)


def _notional(fills: Iterable[Fill]) -> Decimal:
    return sum((fill.price * fill.size for fill in fills), ZERO)


@dataclass(frozen=True, slots=True)
class Unwind:
    """The sale of a leg's unhedged excess at that venue's bids, one latency after both fills
    are known."""

    size: Decimal
    latency_ms: int
    sent_at: datetime
    arrived_at: datetime
    book: tuple[Level, ...] | None = None  # the bids at arrival, best first (None: not arrived)
    fills: tuple[Fill, ...] = ()
    fee_usd: Decimal = ZERO
    proceeds_usd: Decimal = ZERO
    detail: str = ""

    @property
    def arrived(self) -> bool:
        return self.book is not None

    @property
    def sold_size(self) -> Decimal:
        return _sum_size(self.fills)

    def as_json(self) -> dict[str, Any]:
        return {
            "size": str(self.size),
            "latency_ms": self.latency_ms,
            "sent_at": _dt_json(self.sent_at),
            "arrived_at": _dt_json(self.arrived_at),
            "book": _ladder_json(self.book),
            "fills": [fill.as_json() for fill in self.fills],
            "fee_usd": str(self.fee_usd),
            "proceeds_usd": str(self.proceeds_usd),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unwind:
        return cls(
            size=Decimal(str(data["size"])),
            latency_ms=int(data["latency_ms"]),
            sent_at=_dt(data["sent_at"]),  # type: ignore[arg-type]
            arrived_at=_dt(data["arrived_at"]),  # type: ignore[arg-type]
            book=_ladder(data.get("book")),
            fills=_fills(data.get("fills")),
            fee_usd=Decimal(str(data.get("fee_usd", "0"))),
            proceeds_usd=Decimal(str(data.get("proceeds_usd", "0"))),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True, slots=True)
class LegOrder:
    """One leg's order from decision to arrival (and its unwind): the trade's `legs` JSON."""

    venue: str
    instrument_id: str
    side: str
    limit_price: Decimal
    order_type: str
    size: Decimal  # the order's size (the second leg of a sequence: set when it is sent)
    latency_ms: int  # decision (or the first leg's fill) -> arrival at the venue
    unwind_latency_ms: int  # drawn at decision too, used only if an excess is unwound
    book: tuple[Level, ...]  # the ask ladder the validation saw, best first
    book_available: tuple[Level, ...]  # the same, less what this run had taken from it
    state: str = SENT
    sent_at: datetime | None = None
    arrived_at: datetime | None = None
    arrival_book: tuple[Level, ...] | None = None  # the ask ladder at arrival, best first
    arrival_available: tuple[Level, ...] | None = None  # after competition and our own takes
    book_ts_ms: int | None = None  # the arrival book's snapshot time
    arrival_best_bid: Decimal | None = None  # marks a carried excess (with the best ask)
    fills: tuple[Fill, ...] = ()
    fee_usd: Decimal = ZERO
    detail: str = ""  # why the leg took less than its size ("" when it filled in full)
    unhedged_size: Decimal = ZERO
    carried_size: Decimal = ZERO
    carried_mark_usd: Decimal = ZERO  # the carried contracts at the arrival book's mid
    unwind: Unwind | None = None

    @property
    def filled_size(self) -> Decimal:
        return _sum_size(self.fills)

    @property
    def notional_usd(self) -> Decimal:
        return _notional(self.fills)

    @property
    def avg_fill_price(self) -> Decimal | None:
        size = self.filled_size
        if size <= 0:
            return None
        return (self.notional_usd / size).quantize(PRICE_PLACES)

    def as_json(self) -> dict[str, Any]:
        avg = self.avg_fill_price
        return {
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "side": self.side,
            "limit_price": str(self.limit_price),
            "order_type": self.order_type,
            "size": str(self.size),
            "state": self.state,
            "latency_ms": self.latency_ms,
            "unwind_latency_ms": self.unwind_latency_ms,
            "sent_at": _dt_json(self.sent_at),
            "arrived_at": _dt_json(self.arrived_at),
            "book": _ladder_json(self.book),
            "book_available": _ladder_json(self.book_available),
            "arrival_book": _ladder_json(self.arrival_book),
            "arrival_available": _ladder_json(self.arrival_available),
            "arrival_book_ts_ms": self.book_ts_ms,
            "arrival_best_bid": str(self.arrival_best_bid) if self.arrival_best_bid is not None else None,
            "fills": [fill.as_json() for fill in self.fills],
            "filled_size": str(self.filled_size),
            "avg_fill_price": str(avg) if avg is not None else None,
            "fee_usd": str(self.fee_usd),
            "detail": self.detail,
            "unhedged_size": str(self.unhedged_size),
            "carried_size": str(self.carried_size),
            "carried_mark_usd": str(self.carried_mark_usd),
            "unwind": self.unwind.as_json() if self.unwind is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LegOrder:
        unwind = data.get("unwind")
        return cls(
            venue=str(data["venue"]),
            instrument_id=str(data["instrument_id"]),
            side=str(data["side"]),
            limit_price=Decimal(str(data["limit_price"])),
            order_type=str(data["order_type"]),
            size=Decimal(str(data["size"])),
            latency_ms=int(data["latency_ms"]),
            unwind_latency_ms=int(data["unwind_latency_ms"]),
            book=_ladder(data.get("book")) or (),
            book_available=_ladder(data.get("book_available")) or (),
            state=str(data["state"]),
            sent_at=_dt(data.get("sent_at")),
            arrived_at=_dt(data.get("arrived_at")),
            arrival_book=_ladder(data.get("arrival_book")),
            arrival_available=_ladder(data.get("arrival_available")),
            book_ts_ms=data.get("arrival_book_ts_ms"),
            arrival_best_bid=Decimal(str(data["arrival_best_bid"])) if data.get("arrival_best_bid") else None,
            fills=_fills(data.get("fills")),
            fee_usd=Decimal(str(data.get("fee_usd", "0"))),
            detail=str(data.get("detail", "")),
            unhedged_size=Decimal(str(data.get("unhedged_size", "0"))),
            carried_size=Decimal(str(data.get("carried_size", "0"))),
            carried_mark_usd=Decimal(str(data.get("carried_mark_usd", "0"))),
            unwind=Unwind.from_json(unwind) if unwind else None,
        )


def legs_from_json(data: Iterable[Mapping[str, Any]]) -> tuple[LegOrder, ...]:
    return tuple(LegOrder.from_json(leg) for leg in data)


# --- decision: the orders sent ---------------------------------------------------------------------


def worst_case_cost_usd(limit_price: Decimal, size: Decimal, schedule: FeeSchedule) -> Decimal:
    """The most an order can cost: every contract at its limit, plus the largest fee a fill at or
    below the limit can carry (a taker fee of p x (1 - p) grows up to $0.50)."""
    notional = (limit_price * size).quantize(USD_PLACES, rounding=ROUND_CEILING)
    return notional + schedule.fee_usd(size, min(limit_price, Decimal("0.5")))


UNWIND_ROUNDING_USD = Decimal("0.01")


def reserve_usd(worst_cases: Iterable[Decimal]) -> Decimal:
    """What a trade holds at decision: its orders' worst cases, rounded up to the cent, plus a
    cent. An unwind's proceeds cover its exact fee, but a venue rounds the fee up per order (Kalshi
    to the cent), so selling a sliver can lose up to a cent more than it brings back."""
    total = sum(worst_cases, ZERO).quantize(Decimal("0.01"), rounding=ROUND_CEILING)
    return (total + UNWIND_ROUNDING_USD).quantize(USD_PLACES)


def plan_orders(
    legs: Sequence[Any],
    *,
    size: Decimal,
    books: Sequence[tuple[tuple[Level, ...], tuple[Level, ...]]],
    latencies_ms: Sequence[int],
    unwind_latencies_ms: Sequence[int],
    decided_at: datetime,
    config: ExecutionConfig,
) -> tuple[LegOrder, ...]:
    """One order per intent leg, at the leg's limit and `size`. Together: every order is sent at
    `decided_at`. X first: X's orders are sent at `decided_at`, the others wait for its fill."""
    first = FIRST_VENUE.get(config.sequencing)
    orders = []
    for leg, (seen, available), latency_ms, unwind_latency_ms in zip(
        legs, books, latencies_ms, unwind_latencies_ms, strict=True
    ):
        waits = first is not None and leg.venue != first
        orders.append(
            LegOrder(
                venue=leg.venue,
                instrument_id=leg.instrument_id,
                side=leg.side,
                limit_price=leg.limit_price,
                order_type=config.order_type(leg.venue),
                size=size,
                latency_ms=latency_ms,
                unwind_latency_ms=unwind_latency_ms,
                book=seen,
                book_available=available,
                state=WAITING if waits else SENT,
                sent_at=None if waits else decided_at,
                arrived_at=None if waits else decided_at + timedelta(milliseconds=latency_ms),
            )
        )
    return tuple(orders)


def expected_execution_at(orders: Sequence[LegOrder], decided_at: datetime) -> datetime:
    """When the last leg is expected to arrive (a sequence: the first leg's latency, then the
    others'): the trade's executed_at until its arrivals say otherwise."""
    sent = [order for order in orders if order.state == SENT]
    first_ms = max((order.latency_ms for order in sent), default=0)
    waiting_ms = max((order.latency_ms for order in orders if order.state == WAITING), default=0)
    return decided_at + timedelta(milliseconds=first_ms + waiting_ms)


# --- arrival ---------------------------------------------------------------------------------------


def _share(rng: random.Random, low: Decimal, high: Decimal) -> Decimal:
    step = rng.randrange(SHARE_STEPS + 1)
    return low + (high - low) * step / SHARE_STEPS


def arrival_available(
    asks: Sequence[Level],
    *,
    taken_by_run: Mapping[Decimal, Decimal],
    shares: tuple[Decimal, Decimal],
    rng: random.Random,
) -> tuple[Level, ...]:
    """Per level of the arrival book (best first), what is left for this order: the level less
    what this run already took from the same snapshot, then less a competitor share drawn per
    level; kept to the hundredth, rounded down. Never more than the level."""
    left = []
    for level in asks:
        share = _share(rng, *shares)
        size = max(level.size - taken_by_run.get(level.price, ZERO), ZERO)
        size = (size * (1 - share)).quantize(SIZE_PLACES, rounding=ROUND_FLOOR)
        left.append(Level(price=level.price, size=min(size, level.size)))
    return tuple(left)


def _fill_detail(order: LegOrder, available: Sequence[Level], wanted: Decimal, filled: Decimal) -> str:
    if filled >= wanted:
        return ""
    if not available:
        return "no asks at arrival"
    # The book moved past the limit only when no ask is at or under it; asks there that competitors
    # or this run's earlier orders took, or under one whole contract, are a thin book.
    best = min(level.price for level in available)
    if best > order.limit_price:
        return f"book moved past the limit: best ask {best} > limit {order.limit_price} at arrival"
    depth = whole(depth_at_limit(available, order.limit_price))
    if order.order_type == FOK and filled == 0:
        return f"fill-or-kill: only {depth} of {wanted} at or below {order.limit_price} at arrival"
    return f"only {depth} of {wanted} at or below {order.limit_price} at arrival"


def fill_at_arrival(
    order: LegOrder,
    *,
    arrival_asks: tuple[Level, ...] | None,
    best_bid: Decimal | None = None,
    book_ts_ms: int | None = None,
    taken_by_run: Mapping[Decimal, Decimal],
    shares: tuple[Decimal, Decimal],
    rng: random.Random,
    schedule: FeeSchedule,
    unavailable: str = "",
) -> LegOrder:
    """The order at its venue: it takes what is left at or below its limit, best first, whole
    contracts, per its time in force (fill-or-kill: the whole size or nothing). `arrival_asks`
    None: the venue gave no book at arrival (`unavailable` says why) and nothing is filled."""
    if arrival_asks is None:
        return replace(order, state=ARRIVED, arrival_book=(), arrival_available=(), detail=unavailable)
    available = arrival_available(arrival_asks, taken_by_run=taken_by_run, shares=shares, rng=rng)
    depth = whole(depth_at_limit(available, order.limit_price))
    size = min(order.size, depth).quantize(SIZE_PLACES)  # sizes read alike: 74.00, not 74
    if order.order_type == FOK and depth < order.size:
        size = ZERO
    fills = take(available, order.limit_price, size) if size > 0 else ()
    return replace(
        order,
        state=ARRIVED,
        arrival_book=arrival_asks,
        arrival_available=available,
        book_ts_ms=book_ts_ms,
        arrival_best_bid=best_bid,
        fills=fills,
        fee_usd=schedule.fills_fee_usd([(fill.price, fill.size) for fill in fills]) if fills else ZERO,
        detail=_fill_detail(order, available, order.size, size),
    )


def send_waiting(orders: Sequence[LegOrder]) -> tuple[LegOrder, ...]:
    """Once every sent order has arrived, the waiting ones go out at the last arrival, sized to
    the smallest fill (nothing filled: they are not sent)."""
    sent = [order for order in orders if order.state != WAITING]
    if any(order.state != ARRIVED for order in sent) or len(sent) == len(orders):
        return tuple(orders)
    at = max(order.arrived_at for order in sent)  # type: ignore[type-var]
    size = min(order.filled_size for order in sent)
    out = []
    for order in orders:
        if order.state != WAITING:
            out.append(order)
        elif size <= 0:
            out.append(
                replace(order, state=NOT_SENT, size=ZERO, detail="not sent: the first leg filled nothing")
            )
        else:
            arrives = at + timedelta(milliseconds=order.latency_ms)
            out.append(replace(order, state=SENT, size=size, sent_at=at, arrived_at=arrives))
    return tuple(out)


def _mid(order: LegOrder) -> Decimal:
    """The mid of the arrival book's best bid and best ask (a missing side counts as 0 or $1)."""
    ask = order.arrival_book[0].price if order.arrival_book else ONE_DOLLAR
    bid = order.arrival_best_bid if order.arrival_best_bid is not None else ZERO
    return (ask + bid) / 2


def hedge(orders: Sequence[LegOrder], *, policy: str) -> tuple[LegOrder, ...]:
    """Once every order has arrived: the hedged size is the smallest fill; each leg's excess is
    unwound (an order sent at the last arrival, one latency later at that venue's bids) or
    carried (marked at the mid of its arrival book)."""
    if any(order.state in (WAITING, SENT) for order in orders):
        raise ValueError("every order must have arrived (or not been sent) before hedging")
    matched = min(order.filled_size for order in orders)
    last = max(order.arrived_at for order in orders if order.arrived_at is not None)
    out = []
    for order in orders:
        excess = order.filled_size - matched
        if excess <= 0:
            out.append(order)
        elif policy == UNWIND:
            unwind = Unwind(
                size=excess,
                latency_ms=order.unwind_latency_ms,
                sent_at=last,
                arrived_at=last + timedelta(milliseconds=order.unwind_latency_ms),
            )
            out.append(replace(order, unhedged_size=excess, unwind=unwind))
        else:
            mark = (excess * _mid(order)).quantize(MARK_PLACES, rounding=ROUND_FLOOR)
            out.append(replace(order, unhedged_size=excess, carried_size=excess, carried_mark_usd=mark))
    return tuple(out)


def unwind_at_arrival(
    order: LegOrder, *, bids: tuple[Level, ...] | None, schedule: FeeSchedule, unavailable: str = ""
) -> LegOrder:
    """Sell the excess at the bids as they stand when the unwind arrives, best first; what the
    bids cannot take stays as a carried position (marked at 0: nobody bid for it)."""
    unwind = order.unwind
    if unwind is None or unwind.arrived:
        raise ValueError("no unwind on its way for this leg")
    bids = bids if bids is not None else ()
    fills: list[Fill] = []
    remaining = unwind.size
    for level in bids:
        if remaining <= 0:
            break
        sold = min(level.size, remaining)
        fills.append(Fill(price=level.price, size=sold))
        remaining -= sold
    proceeds = _notional(fills).quantize(USD_PLACES, rounding=ROUND_FLOOR)
    fee = schedule.fills_fee_usd([(fill.price, fill.size) for fill in fills]) if fills else ZERO
    detail = ""
    if remaining > 0:
        detail = (
            unavailable or f"the bids took {unwind.size - remaining} of {unwind.size}: {remaining} carried"
        )
    done = replace(unwind, book=bids, fills=tuple(fills), fee_usd=fee, proceeds_usd=proceeds, detail=detail)
    return replace(order, unwind=done, carried_size=remaining)


# --- the trade once every order is done --------------------------------------------------------------


def pending_steps(orders: Sequence[LegOrder]) -> list[tuple[str, datetime]]:
    """What is still on its way, as (step, when it arrives): "leg:<i>" or "unwind:<i>"."""
    steps = []
    for index, order in enumerate(orders):
        if order.state == SENT and order.arrived_at is not None:
            steps.append((f"leg:{index}", order.arrived_at))
        if order.unwind is not None and not order.unwind.arrived:
            steps.append((f"unwind:{index}", order.unwind.arrived_at))
    return steps


def pending_steps_of_json(legs: Sequence[Mapping[str, Any]]) -> list[tuple[str, datetime]]:
    """`pending_steps` read from the legs' JSON (`LegOrder.as_json`) without building the orders."""
    steps = []
    for index, leg in enumerate(legs):
        if leg["state"] == SENT and leg.get("arrived_at") is not None:
            steps.append((f"leg:{index}", _dt(leg["arrived_at"])))
        unwind = leg.get("unwind")
        if unwind is not None and unwind.get("book") is None:
            steps.append((f"unwind:{index}", _dt(unwind["arrived_at"])))
    return steps  # type: ignore[return-value]


def changes_only_its_leg(legs: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether an order of leg `index` arriving (its own or its unwind) changes that leg alone, read
    from the legs' JSON: another leg still has an order on its way, so nothing is hedged or
    settled yet, and no leg waits to be sent (`send_waiting`)."""
    others = [leg for position, leg in enumerate(legs) if position != index]
    return not any(leg["state"] == WAITING for leg in others) and bool(pending_steps_of_json(others))


def is_complete(orders: Sequence[LegOrder]) -> bool:
    """Every order arrived (or was never sent), the excess hedged, every unwind arrived."""
    if any(order.state in (WAITING, SENT) for order in orders):
        return False
    if any(order.unwind is not None and not order.unwind.arrived for order in orders):
        return False
    matched = min(order.filled_size for order in orders)
    return all(order.filled_size - matched == order.unhedged_size for order in orders)


@dataclass(frozen=True, slots=True)
class ArrivalResult:
    """The trade's figures once every order is done (JSON contract: the trade's columns)."""

    outcome: str
    matched_size: Decimal
    cost_usd: Decimal
    fees_usd: Decimal
    expected_pnl_usd: Decimal
    realised_edge_cents: Decimal | None
    slippage_cents: Decimal | None
    unwind_cost_usd: Decimal
    carried_mark_usd: Decimal
    executed_at: datetime
    reason: str  # why a missed trade took nothing ("" otherwise)


def arrival_outcome(orders: Sequence[LegOrder], decided_size: Decimal) -> str:
    filled = [order.filled_size for order in orders]
    if all(size <= 0 for size in filled):
        return MISSED
    if any(size <= 0 for size in filled):
        return LEGGED
    if all(size >= decided_size for size in filled):
        return FULL
    return PARTIAL


def settle_arrival(
    orders: Sequence[LegOrder], *, decided_size: Decimal, signal_edge_cents: Decimal, decided_at: datetime
) -> ArrivalResult:
    """cost = sum over legs (price x size + fee) - sum over unwinds (proceeds - fee);
    expected P&L = matched x $1 - cost + the mark of carried contracts; the realised edge is that
    P&L per hedged contract, and slippage the signal's edge less it."""
    if not is_complete(orders):
        raise ValueError("the trade still has orders on their way")
    matched = min(order.filled_size for order in orders)
    legs_notional = sum((order.notional_usd for order in orders), ZERO).quantize(
        USD_PLACES, rounding=ROUND_CEILING
    )
    fees = sum((order.fee_usd for order in orders), ZERO)
    unwinds = [order.unwind for order in orders if order.unwind is not None]
    unwind_net = sum((u.proceeds_usd - u.fee_usd for u in unwinds), ZERO)
    unwind_fees = sum((u.fee_usd for u in unwinds), ZERO)
    cost = legs_notional + fees - unwind_net
    marks = sum((order.carried_mark_usd for order in orders), ZERO)
    pnl = matched * ONE_DOLLAR - cost + marks
    # What unwinding lost: the sold contracts at what they were bought for (price and fee share),
    # less what the sale brought back after its fee.
    unwind_cost = ZERO
    for order in orders:
        if order.unwind is None or order.filled_size <= 0:
            continue
        sold = order.unwind.sold_size
        bought = (order.notional_usd + order.fee_usd) * sold / order.filled_size
        unwind_cost += bought - (order.unwind.proceeds_usd - order.unwind.fee_usd)
    realised = (pnl * 100 / matched).quantize(EDGE_PLACES, rounding=ROUND_FLOOR) if matched > 0 else None
    ends = [order.arrived_at for order in orders if order.arrived_at is not None]
    ends += [u.arrived_at for u in unwinds]
    outcome = arrival_outcome(orders, decided_size)
    reason = ""
    if outcome == MISSED:
        reason = "; ".join(
            f"{order.venue} {order.instrument_id}: {order.detail}" for order in orders if order.detail
        )
    return ArrivalResult(
        outcome=outcome,
        matched_size=matched,
        cost_usd=cost,
        fees_usd=fees + unwind_fees,
        expected_pnl_usd=pnl,
        realised_edge_cents=realised,
        slippage_cents=(signal_edge_cents - realised) if realised is not None else None,
        unwind_cost_usd=unwind_cost.quantize(USD_PLACES, rounding=ROUND_CEILING),
        carried_mark_usd=marks,
        executed_at=max(ends, default=decided_at),
        reason=reason,
    )
