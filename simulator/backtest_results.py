"""What a backtest's grid point earned, from its run's rows: one JSON object per point, written
the same way whatever database or number of workers produced it (every figure a string or an
integer, every list in a fixed order), so two backtests can be compared byte for byte.

Capture counts a success span (from the shared pass) as caught when the run traded on its key
(a trade that filled something) between the span's start and its end + `CAPTURE_GAP_S`, the rule
and default of the live capture report."""

from __future__ import annotations

import csv
import io
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from ingest.spans import SpanClosed
from simulator.arrival_figures import arrival_figures
from simulator.models import SimulatorRun, SimulatorTrade
from simulator.presenters import decimal_str, run_execution_json
from simulator.report import arrival_json, arrived_trades

CAPTURE_GAP_S = 120
USD = Decimal("0.0001")
CSV_COLUMNS = (
    "run_id",
    "label",
    "trades",
    "decisions",
    "skipped",
    "spans",
    "spans_captured",
    "capture_rate",
    "expected_pnl_usd",
    "realised_pnl_usd",
    "balance_usd",
    "max_drawdown_usd",
    "fees_usd",
    "slippage_p50_cents",
    "slippage_p95_cents",
    "legging_incidents",
    "unwind_cost_usd",
)


def _usd(value: Decimal) -> str:
    return decimal_str(value.quantize(USD))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def captured_spans(spans: Iterable[SpanClosed], trade_times: dict[str, list[int]]) -> tuple[int, int]:
    """(spans, spans caught): `trade_times` are each key's filled trades' times, ascending (ms)."""
    total = caught = 0
    for span in spans:
        total += 1
        times = trade_times.get(span.key, ())
        index = bisect_left(times, span.start_ms)
        caught += index < len(times) and times[index] <= span.end_ms + CAPTURE_GAP_S * 1000
    return total, caught


def max_drawdown(pnl_steps: Iterable[Decimal]) -> Decimal:
    """The largest fall of cumulative P&L from a previous high (0 at the start)."""
    total = peak = worst = Decimal(0)
    for step in pnl_steps:
        total += step
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst


def point_result(run: SimulatorRun, spans: Iterable[SpanClosed]) -> dict[str, Any]:
    trades = SimulatorTrade.objects.filter(run=run)
    arrived = trades.exclude(arrival_outcome="")
    rows = list(
        arrived.order_by("decided_at", "id").values_list(
            "opportunity_key", "executed_at", "matched_size", "expected_pnl_usd", "fees_usd"
        )
    )
    trade_times: dict[str, list[int]] = {}
    for key, executed_at, matched, _, _ in rows:
        if matched > 0:
            trade_times.setdefault(key, []).append(_ms(executed_at))
    for times in trade_times.values():
        times.sort()
    span_count, caught = captured_spans(spans, trade_times)
    figures = arrival_json_of(trades)
    decisions = run.decisions.count()
    expected = sum((row[3] for row in rows), Decimal(0))
    return {
        "run_id": run.pk,
        "label": run.label,
        "settings": dict(run.grid_point),
        "execution": run_execution_json(run),
        "min_net_edge_cents": decimal_str(run.min_net_edge_cents),
        "max_leg_usd": decimal_str(run.max_leg_usd),
        "daily_cap_usd": decimal_str(run.daily_cap_usd),
        "trades": len(rows),
        "decisions": decisions,
        "skipped": decisions - trades.count(),
        "spans": span_count,
        "spans_captured": caught,
        "capture_rate": decimal_str((Decimal(caught) / span_count).quantize(USD)) if span_count else None,
        "expected_pnl_usd": _usd(expected),
        "realised_pnl_usd": _usd(run.pnl_usd),
        "resolved_trades": trades.filter(resolved_at__isnull=False).count(),
        "balance_usd": _usd(run.balance_usd),
        "max_drawdown_usd": _usd(max_drawdown(row[3] for row in rows)),
        "fees_usd": _usd(sum((row[4] for row in rows), Decimal(0))),
        **figures,
    }


def arrival_json_of(trades) -> dict[str, Any]:
    figures = arrival_json(arrival_figures(arrived_trades(trades)))
    return {
        "arrival_outcomes": figures["arrival_outcomes"],
        "slippage_cents": figures["slippage_cents"],
        "legging_incidents": figures["legging_incidents"],
        "unwind_cost_usd": figures["unwind_cost_usd"],
        "missed_at_arrival": figures["missed_at_arrival"],
    }


def results_csv(results: list[dict[str, Any]], settings: Iterable[str]) -> str:
    """The results as CSV, best P&L first: one column per grid setting, then CSV_COLUMNS."""
    settings = list(settings)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*settings, *CSV_COLUMNS])
    for result in sorted_by_pnl(results):
        slippage = result.get("slippage_cents") or {}
        flat = {
            **result,
            "slippage_p50_cents": slippage.get("p50"),
            "slippage_p95_cents": slippage.get("p95"),
        }
        writer.writerow(
            [result["settings"].get(name, "") for name in settings]
            + ["" if flat.get(column) is None else str(flat[column]) for column in CSV_COLUMNS]
        )
    return out.getvalue()


def sorted_by_pnl(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best expected P&L first; ties in grid order."""
    return sorted(results, key=lambda r: (-Decimal(r["expected_pnl_usd"]), r["run_id"]))
