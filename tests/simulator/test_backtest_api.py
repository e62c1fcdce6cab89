"""Backtests and recordings through the HTTP API: start, follow, read the results and the CSV,
upload a recording; every refusal names its field, another user's backtest is a 404."""

from __future__ import annotations

import csv
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ingest.recording_files import BUNDLED_DIR
from simulator.backtest_results import CSV_COLUMNS
from simulator.backtests import create_backtest
from simulator.models import Backtest, SimulatorRun
from tests.ingest.test_recording_files import kalshi, recording
from tests.simulator.conftest import needs_postgres
from tests.simulator.surface_fixtures import make_run

BUNDLED = "bundled/demo_recording.jsonl.gz"
POLL_LIMIT_S = 300  # a bound on the wait, not a speed requirement: the run takes seconds


@pytest.fixture(autouse=True)
def recordings_dir(tmp_path, settings):
    folder = tmp_path / "recordings"
    settings.RECORDINGS_DIR = folder
    return folder


def start(api: APIClient, **fields):
    return api.post("/simulator/backtests", {"recording": BUNDLED, **fields}, format="json")


def wait_until_finished(api: APIClient, status_url: str) -> dict:
    deadline = time.monotonic() + POLL_LIMIT_S
    seen = set()
    while time.monotonic() < deadline:
        body = api.get(status_url).json()
        seen.add(body["status"])
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"the backtest did not finish in {POLL_LIMIT_S} s; statuses seen: {seen}")


# The backtest's thread writes while the test polls: SQLite's in-memory test database (shared
# cache) refuses a locked table at once, where the embedded default's file database waits.
@pytest.mark.postgres_only
@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_backtest_runs_in_the_background_and_its_points_are_compared(api, user, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # no broker: the backtest runs on a thread
    answer = start(api, grid={"min_net_edge_cents": ["1", "2"]}, seed=7, label="edge sweep")
    assert answer.status_code == 202, answer.json()
    started = answer.json()
    assert started["status"] == "queued"
    assert started["seed"] == "7"
    assert started["grid"] == {"min_net_edge_cents": ["1.00", "2.00"]}
    assert (started["points_total"], started["points_done"]) == (2, 0)
    assert started["status_url"] == f"/simulator/backtests/{started['id']}"
    assert started["results_url"] == f"/simulator/backtests/{started['id']}/results"

    backtest = wait_until_finished(api, started["status_url"])
    assert backtest["status"] == "done", backtest["error"]
    assert (backtest["points_done"], backtest["progress"]["phase"]) == (2, "done")
    assert backtest["progress"]["updates"] == 39_304  # every update of the bundled recording
    assert len(backtest["run_ids"]) == 2
    assert api.get("/simulator/backtests").json()["results"][0]["id"] == backtest["id"]

    body = api.get(started["results_url"]).json()
    assert (body["id"], body["status"]) == (backtest["id"], "done")
    results = body["results"]
    assert sorted(r["settings"]["min_net_edge_cents"] for r in results) == ["1.00", "2.00"]
    pnl = [float(r["expected_pnl_usd"]) for r in results]
    assert pnl == sorted(pnl, reverse=True)
    assert {r["run_id"] for r in results} == set(backtest["run_ids"])
    assert all(r["decisions"] > 0 for r in results)

    download = api.get(f"/simulator/backtests/{backtest['id']}/results.csv")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert "attachment" in download["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0] == ["min_net_edge_cents", *CSV_COLUMNS]
    assert [row[0] for row in rows[1:]] == [r["settings"]["min_net_edge_cents"] for r in results]
    assert [row[rows[0].index("expected_pnl_usd")] for row in rows[1:]] == [
        r["expected_pnl_usd"] for r in results
    ]

    # Each point is a run of kind backtest with its own equity curve, kept out of the live lists.
    for result in results:
        run = api.get(f"/simulator/runs/{result['run_id']}").json()
        assert (run["kind"], run["backtest_id"]) == ("backtest", backtest["id"])
        assert run["grid_point"] == result["settings"]
        equity = api.get(f"/simulator/runs/{result['run_id']}/equity").json()
        assert len(equity["points"]) >= result["trades"]
    listed = [run["id"] for run in api.get("/simulator/runs").json()["results"]]
    status = api.get("/simulator/status").json()
    assert not set(backtest["run_ids"]) & set(listed)
    assert not set(backtest["run_ids"]) & {run["id"] for run in status["runs"]}
    assert not set(backtest["run_ids"]) & {trade["run_id"] for trade in status["recent_trades"]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"grid": {"min_edge": ["1"]}}, "grid.min_edge", "unknown setting"),
        ({"grid": {"min_net_edge_cents": "1,abc"}}, "grid.min_net_edge_cents", "decimal number"),
        ({"grid": {"order_type": ["ioc", "gtc"]}}, "grid.order_type", "one of ioc, fok"),
        ({"grid": {"min_net_edge_cents": []}}, "grid.min_net_edge_cents", "at least one value"),
        ({"grid": "min_net_edge_cents=1"}, "grid", "must be an object"),
        (
            {"grid": {"min_net_edge_cents": "1,2,3,4", "max_leg_usd": "1,2,3,4,5"}},
            "grid",
            "has 20 points; at most 4",
        ),
        ({"recording": "bundled/nothing.jsonl.gz"}, "recording", "unknown recording"),
        ({"recording": "elsewhere.jsonl.gz"}, "recording", "names start with bundled/"),
        ({"recording": "dir/../../../etc/passwd.jsonl.gz"}, "recording", "may not leave"),
        ({"recording": "bundled/../../../config/settings.py"}, "recording", "unknown recording"),
        ({"recording": str(BUNDLED_DIR / "demo_recording.jsonl.gz")}, "recording", "a path is not"),
        ({"starting_usd": "-5"}, "starting_usd", "greater than or equal to 1"),
        ({"seed": "2"}, None, None),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"workers": 0}, "workers", "greater than or equal to 1"),
        ({"label": "x" * 121}, "label", "120"),
    ],
)
def test_a_bad_backtest_is_refused_naming_its_field_and_nothing_is_saved(api, settings, fields, field, words):
    settings.BACKTEST_MAX_POINTS = 4
    answer = start(api, **fields)
    if field is None:
        assert answer.status_code == 202
        return
    assert answer.status_code == 400, answer.json()
    body = answer.json()
    assert field in body, body
    assert words in " ".join(body[field])
    assert not Backtest.objects.exists()


@pytest.mark.django_db
def test_a_backtest_without_a_recording_is_refused(api):
    answer = api.post("/simulator/backtests", {"grid": {}}, format="json")
    assert answer.status_code == 400
    assert "recording" in answer.json()


@pytest.mark.django_db
def test_results_wait_until_the_backtest_is_done_and_say_how_far_it_is(api, user):
    backtest = create_backtest(user=user, recording=BUNDLED, grid={"min_net_edge_cents": "1,2"}, seed=1)
    for path in (
        f"/simulator/backtests/{backtest.pk}/results",
        f"/simulator/backtests/{backtest.pk}/results.csv",
    ):
        answer = api.get(path)
        assert answer.status_code == 409
        assert "queued" in answer.json()["detail"][0]

    Backtest.objects.filter(pk=backtest.pk).update(
        status="running", progress={"phase": "pass", "updates": 1200}
    )
    answer = api.get(f"/simulator/backtests/{backtest.pk}/results")
    assert answer.status_code == 409
    assert "reading the recording, 1200 updates so far" in answer.json()["detail"][0]

    Backtest.objects.filter(pk=backtest.pk).update(
        progress={"phase": "points", "updates": 39304}, points_done=1
    )
    answer = api.get(f"/simulator/backtests/{backtest.pk}/results")
    assert "1 of 2 grid points done" in answer.json()["detail"][0]
    assert api.get(f"/simulator/backtests/{backtest.pk}").json()["progress"] == {
        "phase": "points",
        "updates": 39304,
    }

    Backtest.objects.filter(pk=backtest.pk).update(
        status="failed", error="the recording has no book of its pairs"
    )
    answer = api.get(f"/simulator/backtests/{backtest.pk}/results.csv", HTTP_ACCEPT="text/csv")
    assert answer.status_code == 409
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["detail"] == [
        f"backtest {backtest.pk} failed: the recording has no book of its pairs"
    ]


@pytest.mark.django_db
def test_another_users_backtest_is_not_found(api, other_user):
    theirs = create_backtest(user=other_user, recording=BUNDLED, seed=1)
    Backtest.objects.filter(pk=theirs.pk).update(status="done", results=[])
    for suffix in ("", "/results", "/results.csv"):
        answer = api.get(f"/simulator/backtests/{theirs.pk}{suffix}")
        assert answer.status_code == 404
        assert "not found among your backtests" in answer.json()["detail"][0]
    assert api.get("/simulator/backtests").json()["results"] == []


@pytest.mark.django_db
def test_backtest_runs_do_not_count_toward_the_running_limit(api, user):
    backtest = create_backtest(user=user, recording=BUNDLED, grid={"min_net_edge_cents": "1,2,3"}, seed=1)
    for _ in range(3):
        make_run(user, kind=SimulatorRun.BACKTEST, backtest=backtest)  # points still running
    for _ in range(5):
        assert api.post("/simulator/start", {"starting_usd": "10"}, format="json").status_code == 201
    active = api.get("/simulator/active").json()
    assert (active["count"], active["max_running"]) == (5, 5)
    assert api.post("/simulator/start", {"starting_usd": "10"}, format="json").status_code == 409


# --- recordings ----------------------------------------------------------------------------------


def upload(api: APIClient, name: str, data: bytes):
    return api.post("/simulator/recordings", {"file": SimpleUploadedFile(name, data)}, format="multipart")


@pytest.mark.django_db
def test_an_uploaded_recording_is_listed_for_its_owner_and_can_be_backtested(api, other_user):
    data = (BUNDLED_DIR / "demo_recording.jsonl.gz").read_bytes()
    answer = upload(api, "my-day.jsonl.gz", data)
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["name"], body["origin"], body["size_bytes"]) == (
        "upload/my-day.jsonl.gz",
        "upload",
        len(data),
    )
    assert (body["summary"]["updates"], body["summary"]["pairs"], body["summary"]["complete"]) == (
        39_304,
        3,
        True,
    )

    listed = {r["name"]: r["origin"] for r in api.get("/simulator/recordings").json()["results"]}
    assert listed == {BUNDLED: "bundled", "upload/my-day.jsonl.gz": "upload"}
    theirs = APIClient()
    theirs.force_authenticate(other_user)
    assert "upload/my-day.jsonl.gz" not in str(theirs.get("/simulator/recordings").json())
    assert start(theirs, recording="upload/my-day.jsonl.gz").status_code == 400

    assert start(api, recording="upload/my-day.jsonl.gz").status_code == 202
    again = upload(api, "my-day.jsonl.gz", data)
    assert again.status_code == 400
    assert "already exists" in again.json()["file"][0]


@pytest.mark.django_db
def test_an_invalid_upload_names_its_first_bad_line_and_is_not_kept(api, user, tmp_path, recordings_dir):
    data = recording(tmp_path / "bad.jsonl.gz", kalshi(2_000), kalshi(1_000)).read_bytes()
    answer = upload(api, "bad.jsonl.gz", data)
    assert answer.status_code == 400
    assert answer.json()["file"][0].startswith("line 3: t 1000 is earlier")
    assert list((recordings_dir / "uploads" / str(user.pk)).iterdir()) == []

    answer = upload(api, "notes.txt", b"hello")
    assert answer.status_code == 400
    assert "file name" in answer.json()["file"][0]
    assert api.post("/simulator/recordings", {}, format="multipart").status_code == 400


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_a_413_and_is_not_kept(api, user, settings, recordings_dir):
    settings.RECORDING_UPLOAD_MAX_BYTES = 1_000
    answer = upload(api, "big.jsonl.gz", b"x" * 1_001)
    assert answer.status_code == 413
    assert answer.json()["file"] == ["the file is larger than 0.001 MB, the upload limit"]
    uploads = recordings_dir / "uploads" / str(user.pk)
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert [r["origin"] for r in api.get("/simulator/recordings").json()["results"]] == ["bundled"]
