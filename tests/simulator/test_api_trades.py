"""Trades, equity, intents and the report through the HTTP API."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.simulator.surface_fixtures import make_decision, make_intent, make_run, make_span, make_trade

pytestmark = pytest.mark.django_db

TRADE_FIELDS = {
    "id", "run_id", "intent_id", "opportunity_key", "status", "requested_size", "matched_size",
    "fill_pct", "cost_usd", "fees_usd", "expected_pnl_usd", "decided_at", "executed_at",
    "settled_at", "settlement_delay_s", "legs", "checks", "validation",
}  # fmt: skip


def test_trade_detail_has_everything_and_a_status_from_the_clock(api, user):
    now = timezone.now()
    trade = make_trade(make_run(user), executed_at=now + timedelta(seconds=30))
    body = api.get(f"/simulator/trades/{trade.pk}").json()
    assert set(body) >= TRADE_FIELDS
    assert body["status"] == "queued"
    assert body["cost_usd"] == "9.5500"
    assert body["executed_at"].endswith("Z")
    assert body["legs"][0]["fills"] == [{"price": "0.44", "size": "10"}]
    assert [check["name"] for check in body["checks"]][:2] == ["has_orders", "net_edge"]


def test_settled_trade_reads_settled(api, user):
    trade = make_trade(make_run(user), executed_at=timezone.now() - timedelta(minutes=5))
    assert api.get(f"/simulator/trades/{trade.pk}").json()["status"] == "settled"


def test_another_users_trade_is_404(api, other_user):
    trade = make_trade(make_run(other_user))
    answer = api.get(f"/simulator/trades/{trade.pk}")
    assert answer.status_code == 404
    assert "not found" in answer.json()["detail"]


def test_run_trades_paginated_newest_first(api, user, other_user):
    run = make_run(user)
    base = timezone.now() - timedelta(hours=1)
    trades = [make_trade(run, executed_at=base + timedelta(minutes=i)) for i in range(3)]
    make_trade(make_run(user))
    body = api.get(f"/simulator/runs/{run.pk}/trades").json()
    assert body["count"] == 3
    assert [t["id"] for t in body["results"]] == [t.pk for t in reversed(trades)]
    assert api.get(f"/simulator/runs/{make_run(other_user).pk}/trades").status_code == 404
    assert api.get(f"/simulator/runs/{run.pk}/trades?page=9").status_code == 404


def test_equity_curve_after_each_trade(api, user):
    run = make_run(user, starting_usd="100")
    base = timezone.now() - timedelta(hours=1)
    first = make_trade(run, executed_at=base, cost_usd=Decimal("10"), expected_pnl_usd=Decimal("0.5"))
    second = make_trade(
        run, executed_at=base + timedelta(minutes=1), cost_usd=Decimal("20"), expected_pnl_usd=Decimal("1.25")
    )
    body = api.get(f"/simulator/runs/{run.pk}/equity").json()
    assert body["starting_usd"] == "100.0000"
    assert [(p["trade_id"], p["balance_usd"], p["expected_pnl_usd"]) for p in body["points"]] == [
        (first.pk, "90.0000", "0.5000"),
        (second.pk, "70.0000", "1.7500"),
    ]


def test_intent_with_its_trades_and_decisions(api, user, other_user):
    run = make_run(user)
    intent = make_intent(user)
    trade = make_trade(run, intent=intent)
    skipped = make_decision(make_run(user), intent=intent, reason_code="balance", reason="balance: short")
    body = api.get(f"/execution/intents/{intent.pk}").json()
    assert body["id"] == intent.pk
    assert body["legs"][0]["venue"] == "kalshi"
    assert [t["id"] for t in body["trades"]] == [trade.pk]
    decisions = {d["id"]: d for d in body["decisions"]}
    assert decisions[trade.decision_id]["trade_id"] == trade.pk
    assert decisions[skipped.pk]["trade_id"] is None
    assert decisions[skipped.pk]["reason_code"] == "balance"
    assert api.get(f"/execution/intents/{make_intent(other_user).pk}").status_code == 404


def test_report_answers_with_defaults(api, user):
    run = make_run(user)
    now = timezone.now()
    span = make_span(started_at=now - timedelta(minutes=10))
    make_trade(run, executed_at=span.started_at + timedelta(seconds=4))
    body = api.get("/simulator/report").json()
    assert (body["hours"], body["max_gap_s"], body["min_edge_cents"]) == (24, 120, "3")
    assert (body["spans"], body["captured"], body["capture_rate"]) == (1, 1, 1.0)
    assert body["latency_s"]["p50"] == 4.0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("hours=0", "hours"),
        ("hours=169", "hours"),
        ("hours=1.5", "hours"),
        ("hours=abc", "hours"),
        ("max_gap_s=-1", "max_gap_s"),
        ("max_gap_s=86401", "max_gap_s"),
        ("min_edge_cents=-0.1", "min_edge_cents"),
        ("min_edge_cents=100.5", "min_edge_cents"),
        ("min_edge_cents=NaN", "min_edge_cents"),
    ],
)
def test_report_names_the_bad_parameter(api, query, field):
    answer = api.get(f"/simulator/report?{query}")
    assert answer.status_code == 400
    assert list(answer.json()) == [field]


@pytest.mark.parametrize(
    "path",
    [
        "/simulator/trades/1",
        "/simulator/runs/1/trades",
        "/simulator/runs/1/equity",
        "/simulator/report",
        "/execution/intents/1",
    ],
)
def test_trade_reads_need_a_user(db, path):
    assert APIClient().get(path).status_code in (401, 403)


@pytest.mark.parametrize("trade_count", [5, 50])
def test_query_counts_do_not_grow_with_trades(api, user, trade_count, django_assert_max_num_queries):
    run = make_run(user)
    intent = make_intent(user)
    now = timezone.now()
    span = make_span(started_at=now - timedelta(hours=2), ended_at=now)
    for i in range(trade_count):
        make_trade(run, intent=intent if i == 0 else None, executed_at=now - timedelta(minutes=i + 1))
    trade_id = run.trades.first().pk
    budgets = {
        "/simulator/status": 4,
        f"/simulator/runs/{run.pk}/trades": 5,
        f"/simulator/runs/{run.pk}/equity": 4,
        f"/simulator/trades/{trade_id}": 3,
        f"/execution/intents/{intent.pk}": 5,
        "/simulator/report": 12,
        "/simulator/runs": 4,
    }
    for path, budget in budgets.items():
        with django_assert_max_num_queries(budget):
            assert api.get(path).status_code == 200, path
    assert span.pk


BROWSABLE_GETS = [
    "/simulator/status",
    "/simulator/active",
    "/simulator/runs",
    "/simulator/report",
    "/simulator/pairs",
    "/simulator/start",
    "/simulator/stop",
]


@pytest.mark.parametrize("path", BROWSABLE_GETS)
def test_browsable_api_renders(user, client, path):
    client.force_login(user)
    page = client.get(path, HTTP_ACCEPT="text/html")
    assert page.status_code in (200, 405)
    assert b"<html" in page.content


def test_browsable_api_renders_detail_pages(user, client):
    client.force_login(user)
    run = make_run(user)
    trade = make_trade(run)
    for path in (
        f"/simulator/runs/{run.pk}",
        f"/simulator/runs/{run.pk}/trades",
        f"/simulator/runs/{run.pk}/equity",
        f"/simulator/trades/{trade.pk}",
        f"/execution/intents/{trade.intent_id}",
    ):
        page = client.get(path, HTTP_ACCEPT="text/html")
        assert page.status_code == 200, path


def test_browsable_api_form_starts_a_run(user, client):
    client.force_login(user)
    page = client.post(
        "/simulator/start", {"starting_usd": "25", "label": "from the form"}, HTTP_ACCEPT="text/html"
    )
    assert page.status_code == 201
