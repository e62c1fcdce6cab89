"""The whole pure decision for one (run, intent), and for one (run, success-span start).

No Django, no I/O: the exchange is reached only through the `validate` callback, asked only
when the four cheap checks pass; the clock (`now`), the run's seeded `random.Random` and its
`LiquidityLedger` are passed in. The same inputs and seed give an identical Decision.

Every decision lists all seven checks in contract order; checks after the first failure read
"not run: earlier check failed". One check can be judged twice: `net_edge` first passes on the
intent's own edge, and is judged again on the real fills and fees at the validated book. If the
fills are worse than the minimum at every size, the decision is skipped with reason
"net_edge: fills at the validated book give X c < your minimum Y c" (exchange_validation then
reads ok: the exchange itself was fine).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from exchanges.fees import FeeSchedule
from simulator.core.checks import (
    EXCHANGE_VALIDATION,
    check_balance,
    check_daily_cap,
    check_exchange_books,
    check_exchange_keys,
    check_fill_edge,
    check_has_orders,
    check_instrument_ids,
    check_net_edge,
    check_no_depth_left,
    check_venue_balances,
    complete,
    leg_label,
    reason_of,
)
from simulator.core.execution import (
    ExecutionConfig,
    expected_execution_at,
    plan_orders,
    reserve_usd,
    worst_case_cost_usd,
)
from simulator.core.fills import (
    USD_PLACES,
    LegBook,
    depth_at_limit,
    fill_hedged_pair,
    requested_size,
    whole,
)
from simulator.core.liquidity import LiquidityLedger
from simulator.core.timing import TimingConfig, draw_order_timing, settled_after
from simulator.core.types import (
    ELIGIBLE,
    SKIPPED,
    TRADED,
    Check,
    Decision,
    ExchangeValidation,
    Intent,
    Keys,
    RunLimits,
    RunState,
    TradeDraft,
)

FeeSchedules = Mapping[tuple[str, str], FeeSchedule]  # (venue, instrument_id) -> schedule
SPAN_VALIDATION_DETAIL = "not asked: a span decision does not call the exchange"


@dataclass(frozen=True, slots=True)
class SimConfig:
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)

    def as_json(self) -> dict[str, Any]:
        return {"execution": self.execution.as_json(), "timing": self.timing.as_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SimConfig:
        """Missing keys take the defaults, so a run row with {} means the default model."""
        data = data or {}
        return cls(
            execution=ExecutionConfig.from_json(data.get("execution")),
            timing=TimingConfig.from_json(data.get("timing", {})),
        )


def _skipped(checks: list[Check], validation: ExchangeValidation | None = None) -> Decision:
    listed = complete(checks)
    return Decision(outcome=SKIPPED, reason=reason_of(listed), checks=listed, validation=validation)


def _cheap_checks(intent: Intent, limits: RunLimits, keys: Keys) -> list[Check]:
    """has_orders, net_edge, instrument_ids, exchange_keys: stop at the first failure."""
    checks: list[Check] = []
    for run_check in (
        lambda: check_has_orders(intent, limits),
        lambda: check_net_edge(intent, limits),
        lambda: check_instrument_ids(intent),
        lambda: check_exchange_keys(intent, keys),
    ):
        checks.append(run_check())
        if not checks[-1].ok:
            break
    return checks


def _missing_fee_schedule(intent: Intent, fee_schedules: FeeSchedules) -> Check | None:
    for leg in intent.legs:
        if (leg.venue, leg.instrument_id) not in fee_schedules:
            label = leg_label(leg.venue, leg.instrument_id, leg.side)
            return Check(EXCHANGE_VALIDATION, False, f"{label}: no fee schedule known for this market")
    return None


def decide(
    intent: Intent,
    limits: RunLimits,
    state: RunState,
    keys: Keys,
    validate: Callable[[], ExchangeValidation],
    fee_schedules: FeeSchedules,
    rng: random.Random,
    now: datetime,
    ledger: LiquidityLedger,
    config: SimConfig | None = None,
) -> Decision:
    """Run the checks in order; when all pass, return a traded Decision with its TradeDraft: the
    orders sent, and the worst-case cost reserved. `ledger` is read, not changed (fills are taken
    at arrival). `now` is decided_at (aware, UTC)."""
    config = config or SimConfig()
    checks = _cheap_checks(intent, limits, keys)
    if not checks[-1].ok:
        return _skipped(checks)

    validation = validate()
    books_check = check_exchange_books(intent, validation)
    if not books_check.ok:
        return _skipped([*checks, books_check], validation)
    missing_fees = _missing_fee_schedule(intent, fee_schedules)
    if missing_fees is not None:
        return _skipped([*checks, missing_fees], validation)

    seen_books = []
    leg_books = []
    for leg in intent.legs:
        book = validation.leg_for(leg.venue, leg.instrument_id, leg.side).book  # type: ignore[union-attr]
        available = ledger.apply(book)
        depth = depth_at_limit(available.asks, leg.limit_price)
        if whole(depth) < 1:
            seen = depth_at_limit(book.asks, leg.limit_price)
            return _skipped([*checks, check_no_depth_left(leg, depth, seen)], validation)
        seen_books.append(book)
        leg_books.append(
            LegBook(
                leg=leg,
                seen=book.asks,
                available=available.asks,
                schedule=fee_schedules[(leg.venue, leg.instrument_id)],
            )
        )

    outcome = fill_hedged_pair(
        leg_books=leg_books,
        requested=requested_size(intent, limits),
        min_net_edge_cents=limits.min_net_edge_cents,
    )
    pair = outcome.pair
    checks[1] = check_fill_edge(intent, limits, pair if pair is not None else outcome.at_target)
    if pair is None:
        return _skipped([*checks, books_check], validation)

    # The orders go out at the size whose fills at the validated book meet the minimum; what they
    # fill is known only at arrival, so the most they can cost is reserved now.
    venues = [leg.venue for leg in intent.legs]
    timing = draw_order_timing(venues, rng, config.timing)
    orders = plan_orders(
        intent.legs,
        size=pair.matched_size,
        books=[(lb.seen, lb.available) for lb in leg_books],
        latencies_ms=timing.latencies_ms,
        unwind_latencies_ms=timing.unwind_latencies_ms,
        decided_at=now,
        config=config.execution,
    )
    worst_by_venue: dict[str, Decimal] = {}
    for order, leg_book in zip(orders, leg_books, strict=True):
        worst = worst_case_cost_usd(order.limit_price, order.size, leg_book.schedule)
        worst_by_venue[order.venue] = worst_by_venue.get(order.venue, Decimal(0)) + worst
    reserved = reserve_usd(worst_by_venue.values())
    for next_check in (
        lambda: check_venue_balances(validation, worst_by_venue),
        lambda: check_balance(reserved, state),
        lambda: check_daily_cap(reserved, state, limits),
    ):
        checks.append(next_check())
        if not checks[-1].ok:
            return _skipped(checks, validation)

    executed_at = expected_execution_at(orders, now)
    trade = TradeDraft(
        requested_size=outcome.requested_size,
        order_size=pair.matched_size,
        reserved_usd=reserved,
        legs=orders,
        signal_edge_cents=intent.net_edge_cents,
        seen_edge_cents=pair.net_edge_cents,
        decided_at=now,
        executed_at=executed_at,
        settled_at=settled_after(executed_at, timing.settlement_delay_s),
        settlement_delay_s=timing.settlement_delay_s,
        latencies_ms=latencies_by_venue(orders),
    )
    return Decision(outcome=TRADED, reason="", checks=tuple(checks), trade=trade, validation=validation)


def latencies_by_venue(orders: Any) -> dict[str, int]:
    """Per venue, the slowest of its orders' latencies."""
    latencies: dict[str, int] = {}
    for order in orders:
        latencies[order.venue] = max(latencies.get(order.venue, 0), order.latency_ms)
    return latencies


def estimated_cost_usd(intent: Intent, limits: RunLimits, fee_schedules: FeeSchedules) -> Decimal:
    """Cost of the requested size at the limit prices, fees included: the most a fill could cost."""
    size = requested_size(intent, limits)
    cost = Decimal(0)
    for leg in intent.legs:
        schedule = fee_schedules[(leg.venue, leg.instrument_id)]
        cost += (leg.limit_price * size).quantize(USD_PLACES, rounding=ROUND_CEILING) + schedule.fee_usd(
            size, leg.limit_price
        )
    return cost


def decide_span(
    intent: Intent,
    limits: RunLimits,
    state: RunState,
    keys: Keys,
    fee_schedules: FeeSchedules,
) -> Decision:
    """Would this run have been eligible at a success span's start? The same checks without the
    exchange: exchange_validation reads ok with "not asked: ...", and balance and daily cap
    are judged on the estimated cost (requested size at the limit prices, plus fees).
    Outcome "eligible" or "skipped"; never a trade."""
    checks = _cheap_checks(intent, limits, keys)
    if not checks[-1].ok:
        return _skipped(checks)
    missing_fees = _missing_fee_schedule(intent, fee_schedules)
    if missing_fees is not None:
        return _skipped([*checks, missing_fees])
    checks.append(Check(EXCHANGE_VALIDATION, True, SPAN_VALIDATION_DETAIL))
    cost = estimated_cost_usd(intent, limits, fee_schedules)
    for next_check in (
        lambda: check_balance(cost, state),
        lambda: check_daily_cap(cost, state, limits),
    ):
        checks.append(next_check())
        if not checks[-1].ok:
            return _skipped(checks)
    return Decision(outcome=ELIGIBLE, reason="", checks=tuple(checks))
