"""Backtests: one engine with live runs, the same results every time.

- A one-point backtest of the bundled recording equals, trade for trade, a live run fed by
  `ingest_run --replay --recorded-clock` of the same recording at the same seed (the engine's
  normal task path: intake, the decision and arrival tasks).
- The same recording, grid and seed give the same results byte for byte: twice, with 1 or 2
  worker processes, and on SQLite and PostgreSQL (both compare to one file of expected results).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from config.errors import ConflictError
from ingest.models import ExecutionIntent
from ingest.recording import RecordingError
from simulator import presenters
from simulator.backtests import create_backtest, fail_stalled, grid_points, parse_grid, run_backtest
from simulator.engine.broadcast import flush, user_group
from simulator.models import Backtest, Decision, SimulatorRun, SimulatorTrade
from simulator.services import start_run, stop_run
from tests.simulator.conftest import needs_postgres
from tests.simulator.factories import set_thresholds

BUNDLED = "bundled/demo_recording.jsonl.gz"
BUNDLED_PATH = Path(settings.BASE_DIR) / "ingest" / "data" / "demo_recording.jsonl.gz"
GRID = {"min_net_edge_cents": ["1", "2"], "order_type": ["ioc", "fok"]}
EXPECTED = Path(__file__).parent / "data" / "backtest_bundled_seed7.json"
IDS = ("id", "run_id", "intent_id", "decision_id")


def _trades(run_id: int) -> list[dict]:
    shown = []
    for trade in SimulatorTrade.objects.filter(run_id=run_id).order_by("decided_at", "opportunity_key", "id"):
        data = presenters.trade_json(trade, now=trade.settled_at)
        shown.append({k: v for k, v in data.items() if k not in IDS})
    return shown


def _intent_decisions(run_id: int) -> list[tuple]:
    return list(
        Decision.objects.filter(run_id=run_id, decision_source=Decision.INTENT)
        .order_by("created_at", "opportunity_key", "id")
        .values_list("created_at", "opportunity_key", "outcome", "reason_code", "reason")
    )


def _results(backtest: Backtest) -> bytes:
    """The results without the runs' row ids (the one thing a second backtest must change)."""
    return orjson.dumps(
        [{k: v for k, v in result.items() if k != "run_id"} for result in backtest.results],
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
    )


@pytest.mark.django_db(transaction=True)  # ingest hands intents over when their rows commit
def test_a_one_point_backtest_equals_a_replay_through_the_task_path_trade_for_trade(trading_user):
    set_thresholds(trading_user, min_edge="1.00", max_leg="100", daily_cap="100000")
    live, _ = start_run(user=trading_user, starting_usd="5000")
    SimulatorRun.objects.filter(pk=live.pk).update(seed=7)
    call_command("ingest_run", "--replay", str(BUNDLED_PATH), "--recorded-clock", stdout=io.StringIO())
    replayed = _trades(live.pk)

    backtest = create_backtest(user=trading_user, recording=BUNDLED, grid={}, starting_usd="5000", seed=7)
    backtest = run_backtest(backtest.pk)
    point = backtest.runs.get()

    assert len(replayed) > 5 and {t["arrival_outcome"] for t in replayed} - {"full"}, "the books moved"
    assert _trades(point.pk) == replayed
    assert _intent_decisions(point.pk) == _intent_decisions(live.pk)
    point.refresh_from_db()
    live.refresh_from_db()
    assert (point.balance_usd, point.expected_pnl_usd) == (live.balance_usd, live.expected_pnl_usd)
    # The backtest's intents were its own: the live run was sent none of them.
    assert not Decision.objects.filter(run=live, intent__origin="backtest").exists()
    assert ExecutionIntent.objects.filter(origin="backtest").count() == point.decisions.count()


@pytest.mark.django_db
def test_a_grid_gives_the_expected_results_byte_for_byte_on_this_database(trading_user):
    set_thresholds(trading_user, min_edge="1.00", max_leg="100", daily_cap="100000")
    backtest = create_backtest(user=trading_user, recording=BUNDLED, grid=GRID, starting_usd="5000", seed=7)
    first = _results(run_backtest(backtest.pk))
    again = create_backtest(user=trading_user, recording=BUNDLED, grid=GRID, starting_usd="5000", seed=7)
    assert _results(run_backtest(again.pk)) == first
    # The same file for SQLite and PostgreSQL (regenerate it with UPDATE_EXPECTED=1 after a change
    # to the engine that is meant to change what it decides).
    if __import__("os").environ.get("UPDATE_EXPECTED"):
        EXPECTED.write_bytes(first + b"\n")
    assert first + b"\n" == EXPECTED.read_bytes()
    results = json.loads(first)
    assert len(results) == 4 and len({r["expected_pnl_usd"] for r in results}) > 1, "the settings matter"


@needs_postgres
@pytest.mark.django_db(transaction=True)  # forked workers read the runs from their own connections
def test_two_worker_processes_give_the_results_of_one(trading_user):
    set_thresholds(trading_user, min_edge="1.00", max_leg="100", daily_cap="100000")
    one = create_backtest(user=trading_user, recording=BUNDLED, grid=GRID, starting_usd="5000", seed=7)
    two = create_backtest(
        user=trading_user, recording=BUNDLED, grid=GRID, starting_usd="5000", seed=7, workers=2
    )
    assert _results(run_backtest(two.pk)) == _results(run_backtest(one.pk))


def test_a_grid_names_the_setting_and_value_at_fault():
    with pytest.raises(ValidationError) as refused:
        parse_grid(["min_net_edge_cents=1,abc", "speed=2", "order_type=ioc,ioc"])
    errors = refused.value.message_dict
    assert set(errors) == {"grid.min_net_edge_cents", "grid.speed", "grid.order_type"}
    assert "unknown setting" in errors["grid.speed"][0]
    with pytest.raises(ValidationError, match="at most"):
        parse_grid({"max_leg_usd": [str(n) for n in range(1, 30)], "latency_scale": ["1", "2", "3"]})
    assert grid_points(parse_grid(["order_type=ioc,fok", "min_net_edge_cents=0.5,2"])) == [
        {"min_net_edge_cents": "0.50", "order_type": "ioc"},
        {"min_net_edge_cents": "0.50", "order_type": "fok"},
        {"min_net_edge_cents": "2.00", "order_type": "ioc"},
        {"min_net_edge_cents": "2.00", "order_type": "fok"},
    ]


def _copy_with(tmp_path: Path, lines_after: int, bad_line: str) -> Path:
    """The bundled recording's first `lines_after` lines, then `bad_line`, then the rest."""
    with gzip.open(BUNDLED_PATH, "rt") as source:
        lines = source.read().splitlines()
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write("\n".join([*lines[:lines_after], bad_line, *lines[lines_after:]]) + "\n")
    return path


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bad_line", "says"),
    [
        ('{"t": 1767225600179, "venue": "kalshi", "id": "K"', "line 4"),
        ('{"t": 1000, "venue": "kalshi", "id": "KXSNOWNYM-26JAN-T10", "yes": [], "no": []}', "line 4"),
    ],
    ids=["malformed", "time going backwards"],
)
def test_a_bad_recording_fails_the_backtest_naming_its_line(trading_user, tmp_path, bad_line, says):
    path = _copy_with(tmp_path, 3, bad_line)
    backtest = create_backtest(user=trading_user, recording=str(path), grid={}, seed=1, allow_any_path=True)
    with pytest.raises(RecordingError, match=says):
        run_backtest(backtest.pk)
    backtest.refresh_from_db()
    assert backtest.status == Backtest.FAILED and says in backtest.error
    assert not SimulatorRun.objects.filter(backtest=backtest).exists()  # nothing half-run


@pytest.mark.django_db
def test_sim_backtest_prints_the_points_best_first_and_writes_their_csv(trading_user, tmp_path):
    out, csv_path = io.StringIO(), tmp_path / "results.csv"
    call_command(
        "sim_backtest",
        "--recording",
        BUNDLED,
        "--user",
        trading_user.username,
        "--grid",
        "min_net_edge_cents=1,2",
        "--seed",
        "7",
        "--csv",
        str(csv_path),
        stdout=out,
        stderr=io.StringIO(),
    )
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("backtest ") and "2 grid points" in lines[0]
    table = [line.split() for line in lines[2:4]]
    assert sorted(row[0] for row in table) == ["1.00", "2.00"]
    pnl = [float(row[1]) for row in table]
    assert pnl == sorted(pnl, reverse=True)
    rows = list(csv.reader(csv_path.open()))
    assert rows[0][:3] == ["min_net_edge_cents", "run_id", "label"] and len(rows) == 3
    with pytest.raises(CommandError, match=r"grid\.order_type"):
        call_command(
            "sim_backtest",
            "--recording",
            BUNDLED,
            "--user",
            trading_user.username,
            "--grid",
            "order_type=gtc",
        )


@pytest.mark.django_db
def test_a_backtest_that_stopped_moving_ends_failed_and_says_why(trading_user):
    stalled, moving, queued = (
        create_backtest(user=trading_user, recording=BUNDLED, grid={}, seed=1) for _ in range(3)
    )
    start = timezone.now()
    later = start + timedelta(seconds=settings.BACKTEST_STALL_S + 1)
    Backtest.objects.filter(pk=stalled.pk).update(status=Backtest.RUNNING, heartbeat_at=start)
    Backtest.objects.filter(pk=moving.pk).update(status=Backtest.RUNNING, heartbeat_at=later)
    assert fail_stalled(now=later) == 1
    for backtest in (stalled, moving, queued):
        backtest.refresh_from_db()
    assert stalled.status == Backtest.FAILED and "process running it ended" in stalled.error
    assert (moving.status, queued.status) == (Backtest.RUNNING, Backtest.QUEUED)  # a queue can be long
    # A stalled backtest is not run afterwards, and a finished one is not run again.
    assert run_backtest(stalled.pk).status == Backtest.FAILED
    assert fail_stalled(now=later, queued_too=True) == 1  # a restart with no broker: nothing runs it
    done = run_backtest(create_backtest(user=trading_user, recording=BUNDLED, grid={}, seed=1).pk)
    point = done.runs.get()
    assert run_backtest(done.pk).results == done.results and done.runs.get().pk == point.pk
    with pytest.raises(ConflictError, match="point of backtest"):
        SimulatorRun.objects.filter(pk=point.pk).update(status=SimulatorRun.RUNNING)
        stop_run(user=trading_user, run_id=point.pk)


@pytest.mark.django_db(transaction=True)  # frames leave when a decision commits
def test_a_backtests_trades_are_not_pushed_to_the_live_page(trading_user):
    layer = get_channel_layer()

    async def frames_while_a_backtest_runs() -> list:
        # One event loop throughout: a Redis pub/sub layer knows its channels per process and loop.
        channel = await layer.new_channel()
        await layer.group_add(user_group(trading_user.pk), channel)
        made = await sync_to_async(create_backtest)(user=trading_user, recording=BUNDLED, grid={}, seed=7)
        backtest = await sync_to_async(run_backtest)(made.pk)
        assert backtest.results[0]["trades"] > 0
        await sync_to_async(flush)()
        try:
            return [await asyncio.wait_for(layer.receive(channel), timeout=1.0)]
        except TimeoutError:
            return []

    assert async_to_sync(frames_while_a_backtest_runs)() == []


@pytest.mark.django_db
def test_the_column_wise_pass_gives_a_backtest_the_same_results(trading_user, tmp_path):
    set_thresholds(trading_user, min_edge="1.00", max_leg="100", daily_cap="100000")
    recording = tmp_path / "copy.jsonl.gz"
    shutil.copy(BUNDLED_PATH, recording)

    def backtest(**options) -> bytes:
        made = create_backtest(
            user=trading_user,
            recording=str(recording),
            grid=GRID,
            seed=7,
            starting_usd="5000",
            allow_any_path=True,
        )
        return _results(run_backtest(made.pk, **options))

    streamed = backtest()
    assert not (tmp_path / "copy.columnar.parquet").exists()
    assert backtest(columnar=True) == streamed
    assert (tmp_path / "copy.columnar.parquet").exists()
    assert backtest() == streamed  # the current cache is used by itself
    assert streamed + b"\n" == EXPECTED.read_bytes()
