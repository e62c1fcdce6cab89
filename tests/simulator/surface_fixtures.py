"""Fixtures for the surface tests (API, report, websocket, admin): pairs, spans and intents from
tests/simulator/factories.py; runs, decisions and trades built here with every field stated, so
each test says exactly the rows it reasons about.

Import explicitly: `from tests.simulator.surface_fixtures import *  # noqa`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
from simulator.core.checks import CHECK_NAMES
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from tests.simulator.factories import (
    ExecutionIntentFactory,
    MarketPairFactory,
    SuccessSpanFactory,
    leg_order_json,
)

__all__ = [
    "ALL_CHECKS_OK",
    "MOVED",
    "NOW",
    "leg_order_json",
    "make_decision",
    "make_intent",
    "make_legged_trade",
    "make_pair",
    "make_run",
    "make_span",
    "make_trade",
    "now",
]

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ALL_CHECKS_OK = [{"name": name, "ok": True, "detail": "ok"} for name in CHECK_NAMES]
MOVED = "book moved past the limit: best ask 0.53 > limit 0.51 at arrival"
_seq = itertools.count(1)


@pytest.fixture
def now() -> datetime:
    return NOW


def make_pair(opportunity_key: str = "FED-CUT-MAR", **fields) -> MarketPair:
    return MarketPairFactory(opportunity_key=opportunity_key, **fields)


def make_run(user, **fields) -> SimulatorRun:
    started_at = fields.pop("started_at", NOW - timedelta(hours=2))
    starting = Decimal(fields.pop("starting_usd", "1000"))
    values = {
        "status": SimulatorRun.RUNNING,
        "label": "test run",
        "opportunity_keys": [],
        "starting_usd": starting,
        "balance_usd": starting,
        "min_net_edge_cents": Decimal("1.00"),
        "max_leg_usd": Decimal("100.00"),
        "daily_cap_usd": Decimal("1000.00"),
        "started_at": started_at,
        "ends_at": started_at + timedelta(days=7),
        "seed": next(_seq),
    }
    values.update(fields)
    return SimulatorRun.objects.create(user=user, **values)


def make_span(opportunity_key: str = "FED-CUT-MAR", **fields) -> SuccessSpan:
    started_at = fields.pop("started_at", NOW - timedelta(hours=1))
    values = {
        "started_at": started_at,
        "ended_at": started_at + timedelta(seconds=60),
        "peak_edge_cents": Decimal("5"),
        "max_size": Decimal("100"),
    }
    values.update(fields)
    return SuccessSpanFactory(pair=make_pair(opportunity_key), **values)


def make_intent(user, opportunity_key: str = "FED-CUT-MAR", **fields) -> ExecutionIntent:
    values = {"signal_at": NOW - timedelta(minutes=30)}
    values.update(fields)
    return ExecutionIntentFactory(user=user, pair=make_pair(opportunity_key), **values)


def make_decision(run, *, intent=None, span=None, **fields) -> Decision:
    source = Decision.SUCCESS_SPAN if span is not None else Decision.INTENT
    if span is None and intent is None:
        intent = make_intent(run.user)
    values = {
        "decision_source": source,
        "outcome": Decision.SKIPPED,
        "reason": "",
        "reason_code": "",
        "checks": ALL_CHECKS_OK,
        "opportunity_key": (span or intent).opportunity_key,
        "created_at": NOW - timedelta(minutes=30),
    }
    values.update(fields)
    return Decision.objects.create(run=run, intent=intent, span=span, **values)


def make_trade(run, *, intent=None, executed_at: datetime | None = None, **fields) -> SimulatorTrade:
    opportunity_key = fields.pop("opportunity_key", intent.opportunity_key if intent else "FED-CUT-MAR")
    intent = intent or make_intent(run.user, opportunity_key)
    executed_at = executed_at or NOW - timedelta(minutes=30)
    decided_at = executed_at - timedelta(milliseconds=250)
    decision = make_decision(run, intent=intent, outcome=Decision.TRADED, created_at=decided_at)
    pair = intent.pair
    values = {
        "direction": intent.direction,
        "net_edge_cents": Decimal("4.5"),
        "requested_size": Decimal("10"),
        "matched_size": Decimal("10"),
        "fill_pct": Decimal("1"),
        "cost_usd": Decimal("9.55"),
        "fees_usd": Decimal("0.07"),
        "expected_pnl_usd": Decimal("0.45"),
        "order_size": Decimal("10"),
        "reserved_usd": Decimal("9.6700"),
        "arrival_outcome": "full",
        "signal_edge_cents": Decimal("4.5"),
        "realised_edge_cents": Decimal("4.5"),
        "slippage_cents": Decimal("0"),
        "legs": [
            leg_order_json(
                venue="kalshi",
                instrument_id=pair.kalshi_ticker,
                side="yes",
                limit_price="0.45",
                decided_at=decided_at,
                latency_ms=250,
                book=[("0.44", "30")],
                arrival_book=[("0.44", "30")],
                fills=[("0.44", "10")],
                fee_usd="0.07",
            ),
            leg_order_json(
                venue="polymarket",
                instrument_id=pair.poly_no_token,
                side="no",
                limit_price="0.51",
                decided_at=decided_at,
                latency_ms=180,
                book=[("0.50", "40")],
                arrival_book=[("0.50", "40")],
                fills=[("0.50", "10")],
            ),
        ],
        "checks": ALL_CHECKS_OK,
        "validation": {"ok": True, "detail": "", "legs": [], "balances_usd": {}},
        "decided_at": decided_at,
        "executed_at": executed_at,
        "settled_at": executed_at + timedelta(seconds=5),
        "settlement_delay_s": Decimal("5.000"),
    }
    values.update(fields)
    return SimulatorTrade.objects.create(
        run=run, intent=intent, decision=decision, user=run.user, opportunity_key=opportunity_key, **values
    )


def make_legged_trade(run, executed_at: datetime, **fields) -> SimulatorTrade:
    """Kalshi filled 10 at 0.44; Polymarket's book moved past its limit, so nothing hedged and the
    10 were sold back at Kalshi's bids (6 at 0.42, 4 at 0.41)."""
    decided_at = executed_at - timedelta(milliseconds=600)
    legs = [
        leg_order_json(
            venue="kalshi",
            decided_at=decided_at,
            latency_ms=120,
            book=[("0.44", "30")],
            arrival_book=[("0.44", "12"), ("0.45", "20")],
            arrival_available=[("0.44", "10"), ("0.45", "15")],
            fills=[("0.44", "10")],
            fee_usd="0.18",
            unhedged_size="10",
            unwind={
                "size": "10",
                "sent_after_ms": 400,  # at the last arrival: Polymarket's
                "latency_ms": 180,
                "bids": [("0.42", "6"), ("0.41", "10")],
                "fills": [("0.42", "6"), ("0.41", "4")],
                "fee_usd": "0.17",
                "proceeds_usd": "4.16",
            },
        ),
        leg_order_json(
            venue="polymarket",
            instrument_id="52114319501245915516055106046884209969926127482827954674443846427813813222426",
            side="no",
            limit_price="0.51",
            decided_at=decided_at,
            latency_ms=400,
            book=[("0.50", "40")],
            arrival_book=[("0.53", "40")],
            fills=[],
            detail=MOVED,
        ),
    ]
    values = {
        "arrival_outcome": "legged",
        "matched_size": Decimal("0"),
        "fill_pct": Decimal("0"),
        "cost_usd": Decimal("0.5900"),
        "fees_usd": Decimal("0.3500"),
        "expected_pnl_usd": Decimal("-0.5900"),
        "signal_edge_cents": Decimal("4.5"),
        "realised_edge_cents": None,
        "slippage_cents": None,
        "unwind_cost_usd": Decimal("0.5900"),
        "legs": legs,
    }
    values.update(fields)
    return make_trade(run, executed_at=executed_at, decided_at=decided_at, **values)
