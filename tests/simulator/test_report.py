"""The capture report on hand-built spans, trades and decisions with known answers."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from simulator.models import Decision
from simulator.report import NO_DECISION, build_report
from tests.simulator.surface_fixtures import (
    NOW,
    leg_order_json,
    make_decision,
    make_run,
    make_span,
    make_trade,
)

pytestmark = pytest.mark.django_db


def report(user, **params):
    values = {"hours": 24, "max_gap_s": 120, "min_edge_cents": Decimal("3"), "now": NOW}
    values.update(params)
    return build_report(user=user, **values)


@pytest.fixture
def scene(user, other_user):
    """Four spans on FED (watched) and one on an unwatched key, in the last 24h:

    - A: starts -60m, lasts 60s; our trade 10s after start -> captured, latency 10s
    - B: starts -50m, ends at -49m; trade 100s after its end (inside max_gap 120) -> captured, latency 160s
    - C: starts -40m; no trade; its span decision skipped on `balance` -> missed (balance)
    - D: starts -30m; no trade and no decision -> missed (no decision)
    - E: peak edge 2c, under min_edge_cents: not counted
    - a span on CPI (not watched by any run): not counted
    - a trade on FED at -10m, in no span -> outside spans
    - another user's trade inside C: does not capture it for us
    """
    run = make_run(
        user, label="fed only", opportunity_keys=["FED-CUT-MAR"], started_at=NOW - timedelta(hours=3)
    )
    a = make_span(
        started_at=NOW - timedelta(minutes=60), peak_edge_cents=Decimal("5"), max_size=Decimal("100")
    )
    b = make_span(
        started_at=NOW - timedelta(minutes=50), peak_edge_cents=Decimal("4"), max_size=Decimal("50")
    )
    c = make_span(
        started_at=NOW - timedelta(minutes=40), peak_edge_cents=Decimal("3"), max_size=Decimal("10")
    )
    d = make_span(
        started_at=NOW - timedelta(minutes=30), peak_edge_cents=Decimal("6"), max_size=Decimal("20")
    )
    make_span(started_at=NOW - timedelta(minutes=20), peak_edge_cents=Decimal("2"))
    make_span("CPI-HOT", started_at=NOW - timedelta(minutes=20))
    make_trade(run, executed_at=a.started_at + timedelta(seconds=10), expected_pnl_usd=Decimal("0.45"))
    make_trade(run, executed_at=b.ended_at + timedelta(seconds=100), expected_pnl_usd=Decimal("0.30"))
    make_trade(run, executed_at=NOW - timedelta(minutes=10), expected_pnl_usd=Decimal("9.99"))
    make_decision(run, span=c, reason_code="balance", reason="balance: not enough fake USD")
    other_run = make_run(other_user)
    make_trade(other_run, executed_at=c.started_at + timedelta(seconds=5))
    return {"run": run, "spans": (a, b, c, d)}


def test_report_counts_captured_and_missed_spans(user, scene):
    answer = report(user)
    assert (answer["spans"], answer["captured"], answer["missed"]) == (4, 2, 2)
    assert answer["capture_rate"] == 0.5


def test_report_latency_is_span_start_to_first_trade(user, scene):
    assert report(user)["latency_s"] == {"p50": 10.0, "p95": 160.0}


def test_report_edge_available_and_captured_in_usd(user, scene):
    answer = report(user)
    # 5c x 100 + 4c x 50 + 3c x 10 + 6c x 20 = 5 + 2 + 0.30 + 1.20
    assert answer["edge_available_usd"] == "8.5000"
    assert answer["edge_captured_usd"] == "0.7500"


def test_report_names_why_each_span_was_missed(user, scene):
    assert report(user)["missed_reasons"] == {"balance": 1, NO_DECISION: 1}


def test_report_counts_trades_outside_spans(user, scene):
    assert report(user)["trades_outside_spans"] == 1


def test_trade_after_max_gap_does_not_capture(user, scene):
    answer = report(user, max_gap_s=60)
    assert answer["captured"] == 1
    assert answer["trades_outside_spans"] == 2


def test_min_edge_filters_spans_by_peak(user, scene):
    answer = report(user, min_edge_cents=Decimal("5"))
    assert (answer["spans"], answer["captured"]) == (2, 1)


def test_window_leaves_out_older_spans(user, scene):
    assert report(user, hours=1, now=NOW + timedelta(minutes=15))["spans"] == 2


def test_run_watching_every_key_counts_every_key(user, scene):
    make_run(user, opportunity_keys=[])
    answer = report(user)
    assert answer["spans"] == 5
    assert [row["opportunity_key"] for row in answer["by_opportunity_key"]] == ["CPI-HOT", "FED-CUT-MAR"]


def test_report_per_key_and_per_run(user, scene):
    answer = report(user)
    (fed,) = answer["by_opportunity_key"]
    assert fed == {
        "opportunity_key": "FED-CUT-MAR",
        "spans": 4,
        "captured": 2,
        "missed": 2,
        "trades": 3,
        "edge_available_usd": "8.5000",
        "edge_captured_usd": "0.7500",
    }
    (run_row,) = answer["by_run"]
    assert run_row["run_id"] == scene["run"].pk
    assert (run_row["trades"], run_row["trades_in_spans"]) == (3, 2)
    assert (run_row["span_decisions"], run_row["span_skips"]) == (1, 1)
    assert run_row["expected_pnl_usd"] == "10.7400"


def test_eligible_span_without_trade_reports_its_outcome(user):
    run = make_run(user)
    span = make_span(started_at=NOW - timedelta(minutes=5))
    make_decision(run, span=span, outcome=Decision.ELIGIBLE)
    assert report(user)["missed_reasons"] == {"eligible": 1}


def test_empty_report_has_no_rate_and_no_latency(user):
    answer = report(user)
    assert answer["spans"] == 0
    assert answer["capture_rate"] is None
    assert answer["latency_s"] == {"p50": None, "p95": None}
    assert answer["edge_available_usd"] == "0.0000"


def test_open_span_is_caught_until_now(user):
    run = make_run(user)
    span = make_span(started_at=NOW - timedelta(minutes=5), ended_at=None)
    make_trade(run, executed_at=NOW - timedelta(minutes=1))
    answer = report(user)
    assert answer["captured"] == 1
    assert span.is_open


def test_report_query_count_does_not_grow_with_rows(user, django_assert_max_num_queries):
    run = make_run(user)
    for minute in range(30):
        span = make_span(started_at=NOW - timedelta(minutes=10 * (30 - minute)))
        if minute % 2:
            make_trade(run, executed_at=span.started_at + timedelta(seconds=3))
        else:
            make_decision(run, span=span, reason_code="net_edge")
    with django_assert_max_num_queries(11):
        answer = report(user)
    assert (answer["captured"], answer["missed_reasons"]) == (15, {"net_edge": 15})


def test_sim_report_command_prints_a_table(user, scene, capsys):
    call_command("sim_report", "--user", user.username, "--now", NOW.isoformat())
    out = capsys.readouterr().out
    assert "capture rate" in out
    assert "50.0%" in out
    assert "FED-CUT-MAR" in out


def test_sim_report_command_names_a_bad_parameter(user):
    with pytest.raises(CommandError, match="hours"):
        call_command("sim_report", "--user", user.username, "--hours", "0")


def test_sim_report_command_needs_a_known_user(db):
    with pytest.raises(CommandError, match="no user"):
        call_command("sim_report", "--user", "nobody")


MOVED = "book moved past the limit: best ask 0.47 > limit 0.45 at arrival"


def arrived_trade(run, outcome, *, kalshi, polymarket, now=NOW, **fields):
    """A trade 20 minutes before `now` whose legs are (filled, latency_ms, detail) per venue."""
    executed_at = now - timedelta(minutes=20)
    decided_at = executed_at - timedelta(seconds=1)

    def leg(venue, filled, latency_ms, detail):
        fills = [("0.44", filled)] if filled != "0" else []
        return leg_order_json(
            venue=venue, decided_at=decided_at, latency_ms=latency_ms, fills=fills, detail=detail
        )

    legs = [leg("kalshi", *kalshi), leg("polymarket", *polymarket)]
    return make_trade(run, executed_at=executed_at, arrival_outcome=outcome, legs=legs, **fields)


@pytest.fixture
def arrivals(user, other_user):
    """Six trades of ours in the window, one still in flight, and another user's missed trade."""
    run = make_run(user)
    arrived_trade(
        run, "full", kalshi=("10", 100, ""), polymarket=("10", 300, ""), slippage_cents=Decimal("0")
    )
    arrived_trade(
        run,
        "partial",
        kalshi=("10", 110, ""),
        polymarket=("6", 310, "only 6 of 10 at or below 0.51 at arrival"),
        slippage_cents=Decimal("1.5"),
        unwind_cost_usd=Decimal("0.1234"),
    )
    arrived_trade(
        run,
        "partial",
        kalshi=("5", 120, "only 5 of 10 at or below 0.45 at arrival"),
        polymarket=("5", 320, "only 5 of 10 at or below 0.51 at arrival"),
        slippage_cents=Decimal("0.75"),
    )
    arrived_trade(
        run,
        "legged",
        kalshi=("0", 130, MOVED),
        polymarket=("10", 330, ""),
        realised_edge_cents=None,
        slippage_cents=None,
        unwind_cost_usd=Decimal("0.4000"),
    )
    for _ in range(2):
        arrived_trade(
            run,
            "missed",
            kalshi=("0", 140, MOVED),
            polymarket=("0", 2000, "no asks at arrival"),
            realised_edge_cents=None,
            slippage_cents=None,
        )
    arrived_trade(run, "", kalshi=("0", 150, ""), polymarket=("0", 350, ""), slippage_cents=None)
    arrived_trade(make_run(other_user), "missed", kalshi=("0", 1, MOVED), polymarket=("0", 1, MOVED))
    return run


def test_report_counts_arrival_outcomes_and_legging(user, arrivals):
    answer = report(user)
    assert answer["trades_arrived"] == 6
    assert answer["trades_in_flight"] == 1
    assert answer["arrival_outcomes"] == {"full": 1, "partial": 2, "legged": 1, "missed": 2}
    assert answer["legging_incidents"] == 2  # the 10/6 partial and the legged trade, not the 5/5 one
    assert answer["unwind_cost_usd"] == "0.5234"


def test_report_slippage_is_nearest_rank_over_trades_with_a_realised_edge(user, arrivals):
    # three trades hedged something: 0, 0.75, 1.5 cents
    assert report(user)["slippage_cents"] == {"p50": "0.7500", "p95": "1.5000", "trades": 3}


def test_report_names_why_trades_missed_at_arrival(user, arrivals):
    assert report(user)["missed_at_arrival"] == {"book moved past the limit + no asks at arrival": 2}


def test_report_gives_each_venues_arrival_latency(user, arrivals):
    latency = report(user)["arrival_latency_ms"]
    assert latency["kalshi"] == {"p50": 120, "p99": 140, "orders": 6}
    assert latency["polymarket"] == {"p50": 320, "p99": 2000, "orders": 6}


def test_report_without_arrived_trades_has_no_slippage_or_latency(user):
    answer = report(user)
    assert answer["slippage_cents"] == {"p50": None, "p95": None, "trades": 0}
    assert answer["arrival_latency_ms"]["kalshi"] == {"p50": None, "p99": None, "orders": 0}
    assert answer["missed_at_arrival"] == {}


def test_report_endpoint_carries_the_arrival_figures(api, user):
    arrived_trade(
        make_run(user),
        "missed",
        kalshi=("0", 90, MOVED),
        polymarket=("0", 250, MOVED),
        now=timezone.now(),
        realised_edge_cents=None,
        slippage_cents=None,
    )
    body = api.get("/simulator/report").json()
    assert body["arrival_outcomes"] == {"full": 0, "partial": 0, "legged": 0, "missed": 1}
    assert body["missed_at_arrival"] == {"book moved past the limit": 1}
    assert body["arrival_latency_ms"]["polymarket"] == {"p50": 250, "p99": 250, "orders": 1}


def test_sim_report_command_prints_the_arrival_figures(user, arrivals, capsys):
    call_command("sim_report", "--user", user.username, "--now", NOW.isoformat())
    out = capsys.readouterr().out
    assert "full / partial / legged / missed  1 / 2 / 1 / 2" in out
    assert "0.7500 c / 1.5000 c (3 trades)" in out
    assert "legging incidents" in out
    assert "book moved past the limit + no asks at arrival  2" in out
    assert "polymarket" in out and "2000" in out
