"""The JSON contract (design.md): one function per shape, shared by the API, the websocket
broadcast, the page and the commands, so every surface says the same thing.

Decimals are strings (plain notation, never exponent form), times ISO 8601 UTC with a `Z`,
a trade's `status` is derived from the clock, never read from a column.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from simulator import run_settings
from simulator.core import SimConfig
from simulator.core.timing import trade_status


def decimal_str(value: Decimal | int | None) -> str | None:
    if value is None:
        return None
    return format(Decimal(value), "f")


def iso_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_execution_json(run) -> dict[str, Any]:
    """The execution settings the run snapshotted at start (a run without them: the defaults)."""
    return run_settings.execution_json(SimConfig.from_json(run.sim_config))


def run_json(run) -> dict[str, Any]:
    """A run (its own columns only: presented off the database too, by the websocket's sender)."""
    return {
        "id": run.pk,
        "status": run.status,
        "label": run.label,
        "notes": run.notes,
        "opportunity_keys": list(run.opportunity_keys or []),
        "starting_usd": decimal_str(run.starting_usd),
        "balance_usd": decimal_str(run.balance_usd),
        "pnl_usd": decimal_str(run.pnl_usd),
        "realised_pnl_usd": decimal_str(run.pnl_usd),  # the same: payouts of resolved pairs - their cost
        "expected_pnl_usd": decimal_str(run.expected_pnl_usd),
        "reserved_usd": decimal_str(run.reserved_usd),
        "unhedged_exposure_usd": decimal_str(run.unhedged_exposure_usd),
        "unhedged_contracts": decimal_str(run.unhedged_contracts),
        "trade_count": run.trade_count,
        "decision_count": run.decision_count,
        "min_net_edge_cents": decimal_str(run.min_net_edge_cents),
        "max_leg_usd": decimal_str(run.max_leg_usd),
        "daily_cap_usd": decimal_str(run.daily_cap_usd),
        "duration_minutes": run.duration_minutes,
        "started_at": iso_utc(run.started_at),
        "ends_at": iso_utc(run.ends_at),
        "stopped_at": iso_utc(run.stopped_at),
        "stop_reason": run.stop_reason,
        "execution": run_execution_json(run),
        "kind": run.kind,
        "backtest_id": run.backtest_id,
        "grid_point": dict(run.grid_point or {}),
    }


def trade_json(trade, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    return {
        "id": trade.pk,
        "run_id": trade.run_id,
        "intent_id": trade.intent_id,
        "decision_id": trade.decision_id,
        "opportunity_key": trade.opportunity_key,
        "direction": trade.direction,
        "status": trade_status(now, trade.executed_at, trade.settled_at, arrived=bool(trade.arrival_outcome)),
        "net_edge_cents": decimal_str(trade.net_edge_cents),
        "requested_size": decimal_str(trade.requested_size),
        "order_size": decimal_str(trade.order_size),
        "matched_size": decimal_str(trade.matched_size),
        "fill_pct": decimal_str(trade.fill_pct),
        "cost_usd": decimal_str(trade.cost_usd),
        "fees_usd": decimal_str(trade.fees_usd),
        "expected_pnl_usd": decimal_str(trade.expected_pnl_usd),
        "reserved_usd": decimal_str(trade.reserved_usd),
        "arrival_outcome": trade.arrival_outcome or None,
        "signal_edge_cents": decimal_str(trade.signal_edge_cents),
        "realised_edge_cents": decimal_str(trade.realised_edge_cents),
        "slippage_cents": decimal_str(trade.slippage_cents),
        "unwind_cost_usd": decimal_str(trade.unwind_cost_usd),
        "carried_mark_usd": decimal_str(trade.carried_mark_usd),
        "payout_usd": decimal_str(trade.payout_usd),
        "realised_pnl_usd": decimal_str(trade.payout_usd - trade.cost_usd) if trade.resolved_at else None,
        "resolved_at": iso_utc(trade.resolved_at),
        "resolution_disagreement": trade.resolution_disagreement,
        "decided_at": iso_utc(trade.decided_at),
        "executed_at": iso_utc(trade.executed_at),
        "settled_at": iso_utc(trade.settled_at),
        "settlement_delay_s": decimal_str(trade.settlement_delay_s),
        "legs": trade.legs or [],
        "checks": trade.checks or [],
        "validation": trade.validation or {},
    }


def _trade_id_of(decision) -> int | None:
    # Querysets select_related("trade") so this is a cache read; a decision without a trade
    # caches None and raises DoesNotExist on access.
    try:
        return decision.trade.pk
    except ObjectDoesNotExist:
        return None


def decision_json(decision) -> dict[str, Any]:
    return {
        "id": decision.pk,
        "run_id": decision.run_id,
        "intent_id": decision.intent_id,
        "span_id": decision.span_id,
        "decision_source": decision.decision_source,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "reason_code": decision.reason_code,
        "opportunity_key": decision.opportunity_key,
        "edge_cents": decimal_str(decision.edge_cents),
        "checks": decision.checks or [],
        "trade_id": _trade_id_of(decision),
        "created_at": iso_utc(decision.created_at),
    }


def intent_json(
    intent,
    *,
    trades: Iterable | None = None,
    decisions: Iterable | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The intent as ingest emitted it, with (when given) the trades and decisions it led to."""
    now = now or timezone.now()
    return {
        "id": intent.pk,
        "opportunity_key": intent.opportunity_key,
        "direction": intent.direction,
        "net_edge_cents": decimal_str(intent.net_edge_cents),
        "size": decimal_str(intent.size),
        "fees_usd": decimal_str(intent.fees_usd),
        "cost_usd": decimal_str(intent.cost_usd),
        "legs": intent.legs or [],
        "books": intent.books or [],
        "span_id": intent.span_id,
        "signal_at": iso_utc(intent.signal_at),
        "created_at": iso_utc(intent.created_at),
        "trades": [trade_json(trade, now) for trade in trades or ()],
        "decisions": [decision_json(decision) for decision in decisions or ()],
    }


def pair_json(pair) -> dict[str, Any]:
    return {
        "opportunity_key": pair.opportunity_key,
        "title": pair.title,
        "kalshi_ticker": pair.kalshi_ticker,
        "kalshi_close_time": iso_utc(pair.kalshi_close_time),
        "poly_close_time": iso_utc(pair.poly_close_time),
        "active": pair.active,
        "kalshi_result": pair.kalshi_result or None,
        "poly_result": pair.poly_result or None,
        "resolved_at": iso_utc(pair.resolved_at),
        "resolution_disagreement": pair.resolution_disagreement,
    }


def equity_point_json(
    *,
    trade_id: int,
    at: datetime,
    balance_usd: Decimal,
    expected_pnl_usd: Decimal,
    realised_pnl_usd: Decimal = Decimal(0),
    event: str = "arrived",
) -> dict[str, Any]:
    return {
        "trade_id": trade_id,
        "event": event,  # arrived: the trade's cost left the balance; resolved: its payout came in
        "at": iso_utc(at),
        "balance_usd": decimal_str(balance_usd),
        "expected_pnl_usd": decimal_str(expected_pnl_usd),
        "realised_pnl_usd": decimal_str(realised_pnl_usd),
    }


def backtest_json(backtest, run_ids: Iterable[int]) -> dict[str, Any]:
    """A backtest and how far it is (`run_ids`: its grid points' runs, in grid order, once made).
    The seed is a string: 63 bits do not survive a JavaScript number."""
    progress = backtest.progress or {}
    return {
        "id": backtest.pk,
        "label": backtest.label,
        "recording": backtest.recording,
        "grid": {name: list(values) for name, values in (backtest.grid or {}).items()},
        "seed": str(backtest.seed),
        "starting_usd": decimal_str(backtest.starting_usd),
        "workers": backtest.workers,
        "status": backtest.status,
        "error": backtest.error,
        "points_total": backtest.points_total,
        "points_done": backtest.points_done,
        "progress": {"phase": progress.get("phase", backtest.status), "updates": progress.get("updates", 0)},
        "created_at": iso_utc(backtest.created_at),
        "started_at": iso_utc(backtest.started_at),
        "finished_at": iso_utc(backtest.finished_at),
        "run_ids": list(run_ids),
    }


def recording_json(ref) -> dict[str, Any]:
    """A recording a user may name for a backtest."""
    return {"name": ref.name, "size_bytes": ref.size_bytes, "origin": ref.origin}
