"""The capture report on hand-built spans, trades and decisions with known answers."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from simulator.models import Decision
from simulator.report import NO_DECISION, build_report, percentile
from tests.simulator.surface_fixtures import NOW, make_decision, make_run, make_span, make_trade

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
    with django_assert_max_num_queries(10):
        answer = report(user)
    assert (answer["captured"], answer["missed_reasons"]) == (15, {"net_edge": 15})


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0


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
