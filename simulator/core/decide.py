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
from simulator.core.fills import (
    USD_PLACES,
    FillConfig,
    LegBook,
    depth_at_limit,
    fill_hedged_pair,
    fill_pct,
    requested_size,
    whole,
)
from simulator.core.liquidity import LiquidityLedger
from simulator.core.timing import TimingConfig, draw_timing
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
    fills: FillConfig = field(default_factory=FillConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)

    def as_json(self) -> dict[str, Any]:
        return {"fills": self.fills.as_json(), "timing": self.timing.as_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> SimConfig:
        """Missing keys take the defaults, so a run row with {} means the default model."""
        data = data or {}
        return cls(
            fills=FillConfig.from_json(data["fills"]) if "fills" in data else FillConfig(),
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
    """Run the checks in order; when all pass, return a traded Decision with its TradeDraft and
    record the fills in `ledger` (the only mutation). `now` is decided_at (aware, UTC)."""
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
        intent_edge_cents=intent.net_edge_cents,
        min_net_edge_cents=limits.min_net_edge_cents,
        rng=rng,
        config=config.fills,
    )
    pair = outcome.pair
    checks[1] = check_fill_edge(intent, limits, pair if pair is not None else outcome.at_target)
    if pair is None:
        return _skipped([*checks, books_check], validation)

    for next_check in (
        lambda: check_venue_balances(validation, pair.legs),
        lambda: check_balance(pair.cost_usd, state),
        lambda: check_daily_cap(pair.cost_usd, state, limits),
    ):
        checks.append(next_check())
        if not checks[-1].ok:
            return _skipped(checks, validation)

    timing = draw_timing([leg.venue for leg in intent.legs], now, rng, config.timing)
    for book, leg_fill in zip(seen_books, pair.legs, strict=True):
        ledger.consume(book, leg_fill.fills)
    trade = TradeDraft(
        requested_size=outcome.requested_size,
        matched_size=pair.matched_size,
        fill_pct=fill_pct(pair.matched_size, outcome.requested_size),
        legs=pair.legs,
        cost_usd=pair.cost_usd,
        fees_usd=pair.fees_usd,
        expected_pnl_usd=pair.expected_pnl_usd,
        executed_at=timing.executed_at,
        settled_at=timing.settled_at,
        settlement_delay_s=timing.settlement_delay_s,
        decided_at=now,
        net_edge_cents=pair.net_edge_cents,
        latencies_ms=timing.latencies_ms,
    )
    return Decision(outcome=TRADED, reason="", checks=tuple(checks), trade=trade, validation=validation)


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
