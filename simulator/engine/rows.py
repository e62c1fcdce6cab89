"""Rows: the core's decision as the rows to write, not yet saved (`simulator.engine.write` saves
them): the decision row, the trade row of a decision that traded, and the run's money moved by it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ingest.models import ExecutionIntent, SuccessSpan
from simulator.core import Check, LiquidityLedger
from simulator.core import Decision as CoreDecision
from simulator.engine.inputs import run_state, utc_day
from simulator.engine.sql import cache_related, new_row
from simulator.models import Decision, SimulatorRun, SimulatorTrade


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
    """The trade row of a decision that traded, not yet saved (see `write_decision`)."""
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
        net_edge_cents=draft.net_edge_cents
        if draft.net_edge_cents is not None
        else intent_row.net_edge_cents,
        requested_size=draft.requested_size,
        matched_size=draft.matched_size,
        fill_pct=draft.fill_pct,
        cost_usd=draft.cost_usd,
        fees_usd=draft.fees_usd,
        expected_pnl_usd=draft.expected_pnl_usd,
        legs=[leg.as_json() for leg in draft.legs],
        checks=decision.checks,
        validation=result.validation.as_json() if result.validation is not None else {},
        decided_at=now,
        executed_at=draft.executed_at,
        settled_at=draft.settled_at,
        settlement_delay_s=draft.settlement_delay_s,
        payout_usd=None,  # until the pair's markets resolve
        resolved_at=None,
    )
    cache_related(trade, run=run, intent=intent_row)
    return trade


def book_trade(run: SimulatorRun, trade: SimulatorTrade, ledger: LiquidityLedger, now: datetime) -> list[str]:
    """Move the trade's money into the run (in memory); the names of the fields to save."""
    today = run_state(run, now)
    run.balance_usd -= trade.cost_usd
    run.expected_pnl_usd += trade.expected_pnl_usd
    run.trade_count += 1
    run.decision_count += 1
    run.traded_day = utc_day(now)
    run.traded_today_usd = today.traded_today_usd + trade.cost_usd
    run.liquidity_state = ledger.to_json()
    return [
        "balance_usd",
        "expected_pnl_usd",
        "trade_count",
        "decision_count",
        "traded_day",
        "traded_today_usd",
        "liquidity_state",
    ]
