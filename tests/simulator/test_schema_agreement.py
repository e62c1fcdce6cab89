"""The OpenAPI output serializers name exactly the keys the presenters write (the fuzz test,
test_openapi_fuzz.py, checks the values against the schema; this checks no key is left out)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from ingest.recording_files import BUNDLED_DIR, validate_recording
from simulator import presenters
from simulator.api import serializers as s
from simulator.backtest_results import point_result
from simulator.backtests import create_backtest
from simulator.report import build_report
from tests.simulator.surface_fixtures import make_legged_trade, make_run, make_trade

pytestmark = pytest.mark.django_db


def fields(serializer_class) -> set[str]:
    return set(serializer_class().fields)


def test_run_json_and_its_schema_name_the_same_keys(user):
    assert set(presenters.run_json(make_run(user))) == fields(s.RunOut)


def test_trade_json_its_legs_and_unwind_and_their_schema_name_the_same_keys(user):
    trade = make_legged_trade(make_run(user), timezone.now() - timedelta(seconds=1))
    body = presenters.trade_json(trade)
    assert set(body) == fields(s.TradeOut)
    for leg in body["legs"]:
        assert set(leg) == fields(s.TradeLegOut)
    assert set(body["legs"][0]["unwind"]) == fields(s.UnwindOut)


def test_report_and_its_schema_name_the_same_keys(user):
    make_trade(make_run(user), executed_at=timezone.now() - timedelta(minutes=5))
    report = build_report(user=user, hours=24, max_gap_s=120, min_edge_cents=Decimal("3"), now=timezone.now())
    assert set(report) == fields(s.ReportOut)
    assert set(report["slippage_cents"]) == fields(s.SlippageOut)
    assert set(report["arrival_outcomes"]) == fields(s.ArrivalOutcomesOut)
    assert set(report["arrival_latency_ms"]["kalshi"]) == fields(s.VenueLatencyOut)


def test_backtest_json_and_its_schema_name_the_same_keys(user):
    backtest = create_backtest(user=user, recording="bundled/demo_recording.jsonl.gz", seed=1)
    body = presenters.backtest_json(backtest, [])
    assert set(body) == fields(s.BacktestOut)
    assert set(body["progress"]) == fields(s.BacktestProgressOut)


def test_a_point_result_and_its_schema_name_the_same_keys(user):
    run = make_run(user, grid_point={"min_net_edge_cents": "1.00"})
    make_trade(run, executed_at=timezone.now() - timedelta(minutes=5))
    run.refresh_from_db()
    result = point_result(run, [])
    assert set(result) == fields(s.PointResultOut)
    assert set(result["slippage_cents"]) == fields(s.SlippageOut)
    assert set(result["arrival_outcomes"]) == fields(s.ArrivalOutcomesOut)


def test_a_recording_summary_and_its_schema_name_the_same_keys():
    summary = validate_recording(BUNDLED_DIR / "demo_recording.jsonl.gz", max_lines=10)
    assert set(summary.as_json()) == fields(s.RecordingSummaryOut)
