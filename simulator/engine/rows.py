"""Rows: the core's decision as the rows to write, not yet saved (`simulator.engine.write` saves
them): the decision row, the trade row of a decision that traded (its orders on their way), and
the run's money held for it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ingest.models import ExecutionIntent, SuccessSpan
from simulator.core import Check
from simulator.core import Decision as CoreDecision
from simulator.engine.inputs import run_state, utc_day
from simulator.engine.sql import cache_related, new_row
from simulator.models import Decision, SimulatorRun, SimulatorTrade

ZERO = Decimal(0)


def _checks_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [check.as_json() for check in checks]


def reason_code(decision: CoreDecision) -> str:
    """The name of the first failing check ("" when all passed)."""
    failing = next((check for check in decision.checks if not check.ok), None)
    return failing.name if failing is not None else ""


def decision_row(
    run: SimulatorRun,
    result: CoreDecision,
    *,
    intent: ExecutionIntent | None = None,
    span: SuccessSpan | None = None,
    reason_code: str,
    edge_cents: Decimal,
    opportunity_key: str,
    now: datetime,
) -> Decision:
    """The decision row, not yet saved (see `write_decision`)."""
    decision = new_row(
        Decision,
        run_id=run.pk,
        intent_id=intent.pk if intent is not None else None,
        span_id=span.pk if span is not None else None,
        decision_source=Decision.INTENT if intent is not None else Decision.SUCCESS_SPAN,
        outcome=result.outcome,
        reason=result.reason[:300],
        reason_code=reason_code,
        checks=_checks_json(result.checks),
        edge_cents=edge_cents,
        opportunity_key=opportunity_key,
        created_at=now,
    )
    cache_related(decision, run=run, **({"intent": intent} if intent is not None else {"span": span}))
    return decision


def trade_row(
    run: SimulatorRun,
    intent_row: ExecutionIntent,
    decision: Decision,
    result: CoreDecision,
    now: datetime,
) -> SimulatorTrade:
    """The trade row of a decision that traded, not yet saved (see `write_decision`): its orders
    on their way, nothing filled yet, the worst-case cost held (`simulator.engine.arrival`
    completes it)."""
    draft = result.trade
    assert draft is not None
    trade = new_row(
        SimulatorTrade,
        run_id=run.pk,
        intent_id=intent_row.pk,
        decision_id=None,  # the decision's, once written
        user_id=run.user_id,
        opportunity_key=intent_row.opportunity_key,
        direction=intent_row.direction,
        net_edge_cents=draft.seen_edge_cents,
        requested_size=draft.requested_size,
        order_size=draft.order_size,
        matched_size=ZERO,
        fill_pct=ZERO,
        cost_usd=ZERO,
        fees_usd=ZERO,
        expected_pnl_usd=ZERO,
        legs=[leg.as_json() for leg in draft.legs],
        checks=decision.checks,
        validation=result.validation.as_json() if result.validation is not None else {},
        decided_at=now,
        executed_at=draft.executed_at,
        settled_at=draft.settled_at,
        settlement_delay_s=draft.settlement_delay_s,
        payout_usd=None,  # until the pair's markets resolve
        resolved_at=None,
        resolution_disagreement=False,
        arrival_outcome="",  # until every order has arrived
        reserved_usd=draft.reserved_usd,
        signal_edge_cents=draft.signal_edge_cents,
        realised_edge_cents=None,
        slippage_cents=None,
        unwind_cost_usd=ZERO,
        carried_mark_usd=ZERO,
    )
    cache_related(trade, run=run, intent=intent_row)
    return trade


RESERVE_FIELDS = [
    "balance_usd",
    "reserved_usd",
    "trade_count",
    "decision_count",
    "traded_day",
    "traded_today_usd",
]


def reserve_for_trade(run: SimulatorRun, trade: SimulatorTrade, now: datetime) -> list[str]:
    """Hold the trade's worst-case cost against the run's balance and daily total (in memory);
    the names of the fields to save. Released at arrival, less what the orders cost."""
    today = run_state(run, now)
    run.balance_usd -= trade.reserved_usd
    run.reserved_usd += trade.reserved_usd
    run.trade_count += 1
    run.decision_count += 1
    run.traded_day = utc_day(now)
    run.traded_today_usd = today.traded_today_usd + trade.reserved_usd
    return RESERVE_FIELDS
