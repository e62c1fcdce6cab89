"""The capture report: did the user's runs trade the success spans that ingest saw?

A span counts when it started inside the window, its peak edge reached `min_edge_cents`, and
its opportunity key is one the user's runs watched (every key when a run watched all, or when
the user had no run in the window). It is *captured* when one of the user's trades on the same
key executed between the span's start and its end + `max_gap_s` (an open span ends "now").

Beside it, what the window's trades met at their venues (simulator/arrival_figures.py):
outcomes at arrival, slippage, legging incidents and unwind cost, missed trades by reason, and
each venue's arrival latency; and what their pairs' resolutions paid: realised P&L, and the
resolution disagreements (venues resolving the same question differently) with what they cost.

The capture figures are counted in the database (Exists / Subquery / aggregates over the
span_key_started and trade_key_executed indexes); only the latencies of captured spans come
back as rows, to take percentiles, and one short row per arrived trade (its outcome, slippage,
unwind cost and a few keys of each leg, not its books) for the execution figures. The query
count does not depend on the number of rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

from ingest.models import SuccessSpan
from simulator.arrival_figures import (
    P50,
    P95,
    ArrivalFigures,
    ArrivedLeg,
    ArrivedTrade,
    arrival_figures,
    percentile,
)
from simulator.core.fills import EDGE_PLACES
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.presenters import decimal_str, iso_utc

NO_DECISION = "no decision"
USD = Decimal("0.0001")
CENT_IN_USD = Value(Decimal("0.01"), output_field=DecimalField(max_digits=3, decimal_places=2))
_USD_SUM = DecimalField(max_digits=24, decimal_places=4)
ZERO_USD = Value(Decimal("0"), output_field=_USD_SUM)


def _watched_keys(user, window_start: datetime, now: datetime) -> list[str] | None:
    """Keys the user's runs in the window watched; None means every key."""
    keys_per_run = list(
        SimulatorRun.objects.filter(user=user, kind=SimulatorRun.LIVE, started_at__lte=now)
        .filter(Q(stopped_at__isnull=True) | Q(stopped_at__gte=window_start))
        .values_list("opportunity_keys", flat=True)
    )
    if not keys_per_run or any(not keys for keys in keys_per_run):
        return None
    return sorted({key for keys in keys_per_run for key in keys})


def _capture_until(ended_at, *, now: datetime, max_gap_s: int) -> ExpressionWrapper:
    """A span's end (now while it is open) + max_gap_s: the last moment a trade still catches it."""
    return ExpressionWrapper(
        Coalesce(ended_at, Value(now, output_field=DateTimeField())) + timedelta(seconds=max_gap_s),
        output_field=DateTimeField(),
    )


def _window_spans(user, *, window_start, now, min_edge_cents) -> QuerySet[SuccessSpan]:
    """The spans the report judges."""
    spans = SuccessSpan.objects.filter(
        started_at__gte=window_start, started_at__lte=now, peak_edge_cents__gte=min_edge_cents
    )
    keys = _watched_keys(user, window_start, now)
    return spans if keys is None else spans.filter(opportunity_key__in=keys)


def _catching_trades(user, *, now: datetime, max_gap_s: int) -> QuerySet[SimulatorTrade]:
    """The user's trades that catch the outer span: same key, executed in [start, capture_until].

    The bound is written out, not read from an annotation: Django drops an outer annotation
    that only an aggregate's FILTER refers to, and the query would compare against a literal.
    """
    return SimulatorTrade.objects.filter(
        user=user,
        run__kind=SimulatorRun.LIVE,
        opportunity_key=OuterRef("opportunity_key"),
        executed_at__gte=OuterRef("started_at"),
        executed_at__lte=_capture_until(OuterRef("ended_at"), now=now, max_gap_s=max_gap_s),
    )


def _edge_usd() -> ExpressionWrapper:
    return ExpressionWrapper(F("peak_edge_cents") * F("max_size") * CENT_IN_USD, output_field=_USD_SUM)


def _usd(value: Decimal | None) -> str:
    return decimal_str((value or Decimal(0)).quantize(USD))


def build_report(
    *, user, hours: int, max_gap_s: int, min_edge_cents: Decimal, now: datetime
) -> dict[str, Any]:
    window_start = now - timedelta(hours=hours)
    window_spans = _window_spans(user, window_start=window_start, now=now, min_edge_cents=min_edge_cents)
    catching = _catching_trades(user, now=now, max_gap_s=max_gap_s)
    caught = Exists(catching)
    totals = window_spans.aggregate(
        spans=Count("pk"),
        captured=Count("pk", filter=Q(caught)),
        edge_available_usd=Coalesce(Sum(_edge_usd()), ZERO_USD),
    )
    missed = totals["spans"] - totals["captured"]

    first_trade_at = Subquery(catching.order_by("executed_at").values("executed_at")[:1])
    latencies = sorted(
        (first_at - started_at).total_seconds()
        for started_at, first_at in window_spans.filter(caught)
        .annotate(first_trade_at=first_trade_at)
        .values_list("started_at", "first_trade_at")
    )
    # What the span's first decision said; a blank reason_code (eligible, not skipped) reports the outcome.
    first_decision_reason = Subquery(
        Decision.objects.filter(
            span=OuterRef("pk"),
            run__user=user,
            run__kind=SimulatorRun.LIVE,
            decision_source=Decision.SUCCESS_SPAN,
        )
        .order_by("created_at", "id")
        .annotate(label=Case(When(reason_code="", then=F("outcome")), default=F("reason_code")))
        .values("label")[:1]
    )
    missed_reasons = {
        (row["miss_reason"] or NO_DECISION): row["n"]
        for row in window_spans.filter(~caught)
        .annotate(miss_reason=first_decision_reason)
        .values("miss_reason")
        .annotate(n=Count("pk"))
        .order_by("-n", "miss_reason")
    }

    in_spans = Exists(
        window_spans.annotate(
            capture_until=_capture_until(F("ended_at"), now=now, max_gap_s=max_gap_s)
        ).filter(
            opportunity_key=OuterRef("opportunity_key"),
            started_at__lte=OuterRef("executed_at"),
            capture_until__gte=OuterRef("executed_at"),
        )
    )
    trades = SimulatorTrade.objects.filter(
        user=user, run__kind=SimulatorRun.LIVE, executed_at__gte=window_start, executed_at__lte=now
    )
    trade_totals = trades.aggregate(
        outside=Count("pk", filter=~Q(in_spans)),
        edge_captured_usd=Coalesce(Sum("expected_pnl_usd", filter=Q(in_spans)), ZERO_USD),
        in_flight=Count("pk", filter=Q(arrival_outcome="")),
        **_resolution_aggregates(),
    )

    return {
        "hours": hours,
        "max_gap_s": max_gap_s,
        "min_edge_cents": decimal_str(min_edge_cents),
        "window_start": iso_utc(window_start),
        "window_end": iso_utc(now),
        "spans": totals["spans"],
        "captured": totals["captured"],
        "missed": missed,
        "capture_rate": round(totals["captured"] / totals["spans"], 4) if totals["spans"] else None,
        "latency_s": {
            "p50": _seconds(percentile(latencies, P50)),
            "p95": _seconds(percentile(latencies, P95)),
        },
        "edge_available_usd": _usd(totals["edge_available_usd"]),
        "edge_captured_usd": _usd(trade_totals["edge_captured_usd"]),
        "missed_reasons": missed_reasons,
        "trades_outside_spans": trade_totals["outside"],
        "trades_in_flight": trade_totals["in_flight"],
        **arrival_json(arrival_figures(arrived_trades(trades))),
        **_resolution_json(trade_totals),
        "by_opportunity_key": _by_key(window_spans, caught, trades, in_spans),
        "by_run": _by_run(user, trades, in_spans, window_start=window_start, now=now),
    }


def _realised_usd() -> ExpressionWrapper:
    return ExpressionWrapper(F("payout_usd") - F("cost_usd"), output_field=_USD_SUM)


def _resolution_aggregates() -> dict[str, Any]:
    """The window's trades whose pairs resolved, and the tail risk: pairs whose venues resolved
    the question differently (aggregates of the trades' one query)."""
    resolved = Q(resolved_at__isnull=False)
    disagreeing = resolved & Q(resolution_disagreement=True)
    return {
        "resolved": Count("pk", filter=resolved),
        "realised": Coalesce(Sum(_realised_usd(), filter=resolved), ZERO_USD),
        "disagreeing_pairs": Count("opportunity_key", filter=disagreeing, distinct=True),
        "disagreeing_trades": Count("pk", filter=disagreeing),
        "disagreeing_realised": Coalesce(Sum(_realised_usd(), filter=disagreeing), ZERO_USD),
        "disagreeing_expected": Coalesce(Sum("expected_pnl_usd", filter=disagreeing), ZERO_USD),
    }


def _resolution_json(totals: dict[str, Any]) -> dict[str, Any]:
    """A resolution disagreement's cost is what its trades were expected to make (a matching
    resolution pays the hedged contracts $1 each; a carried excess counts at its mark) less what
    they realised."""
    return {
        "trades_resolved": totals["resolved"],
        "realised_pnl_usd": _usd(totals["realised"]),
        "resolution_disagreements": totals["disagreeing_pairs"],
        "resolution_disagreement_trades": totals["disagreeing_trades"],
        "resolution_disagreement_pnl_usd": _usd(totals["disagreeing_realised"]),
        "resolution_disagreement_expected_pnl_usd": _usd(totals["disagreeing_expected"]),
        "resolution_disagreement_cost_usd": _usd(
            totals["disagreeing_expected"] - totals["disagreeing_realised"]
        ),
    }


# A trade has two legs (Kalshi and Polymarket); these of each come back as text, the same on
# every database, instead of the whole legs JSON with its books.
LEG_KEYS = ("venue", "state", "latency_ms", "filled_size", "detail")
LEG_COUNT = 2


def arrived_trades(trades: QuerySet[SimulatorTrade]) -> list[ArrivedTrade]:
    """The window's trades whose orders have all arrived, with what the figures need."""
    leg_fields = {f"leg{i}_{key}": KT(f"legs__{i}__{key}") for i in range(LEG_COUNT) for key in LEG_KEYS}
    rows = (
        trades.exclude(arrival_outcome="")
        .order_by()
        .values("arrival_outcome", "slippage_cents", "unwind_cost_usd", **leg_fields)
    )
    return [
        ArrivedTrade(
            outcome=row["arrival_outcome"],
            slippage_cents=row["slippage_cents"],
            unwind_cost_usd=row["unwind_cost_usd"],
            legs=tuple(
                ArrivedLeg(
                    venue=row[f"leg{i}_venue"],
                    state=row[f"leg{i}_state"] or "",
                    latency_ms=int(row[f"leg{i}_latency_ms"] or 0),
                    filled_size=Decimal(row[f"leg{i}_filled_size"] or 0),
                    detail=row[f"leg{i}_detail"] or "",
                )
                for i in range(LEG_COUNT)
                if row[f"leg{i}_venue"] is not None
            ),
        )
        for row in rows
    ]


def _cents(value: Decimal | int | None) -> str | None:
    return decimal_str(Decimal(value).quantize(EDGE_PLACES)) if value is not None else None


def arrival_json(figures: ArrivalFigures) -> dict[str, Any]:
    return {
        "trades_arrived": figures.trades,
        "arrival_outcomes": figures.outcomes,
        "slippage_cents": {
            "p50": _cents(figures.slippage_cents.low),
            "p95": _cents(figures.slippage_cents.high),
            "trades": figures.slippage_cents.count,
        },
        "legging_incidents": figures.legging_incidents,
        "unwind_cost_usd": _usd(figures.unwind_cost_usd),
        "missed_at_arrival": figures.missed_reasons,
        "arrival_latency_ms": {
            venue: {"p50": latency.low, "p99": latency.high, "orders": latency.count}
            for venue, latency in figures.latency_ms.items()
        },
    }


def _seconds(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _by_key(spans: QuerySet, caught: Exists, trades: QuerySet, in_spans: Exists) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for row in (
        spans.order_by()
        .values("opportunity_key")
        .annotate(
            n_spans=Count("pk"),
            n_captured=Count("pk", filter=Q(caught)),
            available=Coalesce(Sum(_edge_usd()), ZERO_USD),
        )
    ):
        rows[row["opportunity_key"]] = {
            "opportunity_key": row["opportunity_key"],
            "spans": row["n_spans"],
            "captured": row["n_captured"],
            "missed": row["n_spans"] - row["n_captured"],
            "trades": 0,
            "edge_available_usd": _usd(row["available"]),
            "edge_captured_usd": _usd(None),
        }
    for row in (
        trades.order_by()
        .values("opportunity_key")
        .annotate(
            n_trades=Count("pk"),
            captured_usd=Coalesce(Sum("expected_pnl_usd", filter=Q(in_spans)), ZERO_USD),
        )
    ):
        entry = rows.setdefault(
            row["opportunity_key"],
            {
                "opportunity_key": row["opportunity_key"],
                "spans": 0,
                "captured": 0,
                "missed": 0,
                "edge_available_usd": _usd(None),
            },
        )
        entry["trades"] = row["n_trades"]
        entry["edge_captured_usd"] = _usd(row["captured_usd"])
    return [rows[key] for key in sorted(rows)]


def _by_run(
    user, trades: QuerySet, in_spans: Exists, *, window_start: datetime, now: datetime
) -> list[dict[str, Any]]:
    runs = list(
        SimulatorRun.objects.filter(user=user, kind=SimulatorRun.LIVE, started_at__lte=now)
        .filter(Q(stopped_at__isnull=True) | Q(stopped_at__gte=window_start))
        .order_by("-started_at", "-id")
        .values("id", "label", "status")
    )
    trade_rows = {
        row["run_id"]: row
        for row in trades.order_by()
        .values("run_id")
        .annotate(
            n=Count("pk"),
            n_in_spans=Count("pk", filter=Q(in_spans)),
            captured_usd=Coalesce(Sum("expected_pnl_usd", filter=Q(in_spans)), ZERO_USD),
            pnl=Coalesce(Sum("expected_pnl_usd"), ZERO_USD),
            realised=Coalesce(Sum(_realised_usd(), filter=Q(resolved_at__isnull=False)), ZERO_USD),
        )
    }
    decision_rows = {
        row["run_id"]: row
        for row in Decision.objects.filter(
            run__user=user,
            run__kind=SimulatorRun.LIVE,
            decision_source=Decision.SUCCESS_SPAN,
            created_at__gte=window_start,
            created_at__lte=now,
        )
        .order_by()
        .values("run_id")
        .annotate(
            n=Count("pk"),
            skips=Count("pk", filter=Q(outcome=Decision.SKIPPED)),
        )
    }
    result = []
    for run in runs:
        traded = trade_rows.get(run["id"], {})
        decided = decision_rows.get(run["id"], {})
        result.append(
            {
                "run_id": run["id"],
                "label": run["label"],
                "status": run["status"],
                "trades": traded.get("n", 0),
                "trades_in_spans": traded.get("n_in_spans", 0),
                "edge_captured_usd": _usd(traded.get("captured_usd")),
                "expected_pnl_usd": _usd(traded.get("pnl")),
                "realised_pnl_usd": _usd(traded.get("realised")),
                "span_decisions": decided.get("n", 0),
                "span_skips": decided.get("skips", 0),
            }
        )
    return result
