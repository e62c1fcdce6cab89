"""/healthz: open, JSON, 200 when every part answers, 503 naming the part that does not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from tests.monitoring.conftest import now_ms, stream_status

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_health() -> tuple[int, dict]:
    response = Client().get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def worker():
    """A real Celery worker on the suite's broker when there is one (it consumes a queue nobody
    sends to: it only has to answer pings). The embedded default runs tasks in-process."""
    if not os.environ.get("REDIS_URL"):
        yield None
        return
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "healthz-probe"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_health(timeout_s: float = 30.0) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, report = get_health()
        if status == 200 or time.monotonic() > deadline:
            return status, report


def test_healthz_is_200_with_database_redis_workers_and_streams_up(worker, publish):
    publish("ingest-a", stream_status("kalshi"), stream_status("polymarket"))
    status, report = wait_for_health()  # the worker needs a few seconds to start
    assert status == 200, report
    assert report["status"] == "ok" and report["failing"] == []
    checks = report["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["redis"]["status"] == ("ok" if os.environ.get("REDIS_URL") else "embedded")
    assert checks["workers"]["status"] == ("ok" if os.environ.get("REDIS_URL") else "embedded")
    assert [(s["venue"], s["state"], s["status"]) for s in checks["streams"]["streams"]] == [
        ("kalshi", "live", "ok"),
        ("polymarket", "live", "ok"),
    ]
    assert 0 <= checks["streams"]["streams"][0]["data_age_s"] < 60


def test_healthz_is_503_naming_a_stream_that_is_down(settings, publish):
    settings.HEALTHZ_MIN_WORKERS = 0
    publish("ingest-a", stream_status("kalshi"), stream_status("polymarket", state="down"))
    status, report = get_health()
    assert status == 503
    assert report["failing"] == ["streams"]
    down = [s for s in report["checks"]["streams"]["streams"] if s["status"] == "failing"]
    assert [(s["venue"], s["why"]) for s in down] == [("polymarket", "stream down")]


def test_healthz_is_503_when_a_streams_data_is_older_than_the_set_age(settings, publish):
    settings.HEALTHZ_MIN_WORKERS = 0
    settings.HEALTHZ_MAX_DATA_AGE_S = 60
    # Heartbeats arrive, book data stopped two minutes ago: the stale feed a venue can send.
    publish("ingest-a", stream_status("kalshi", last_message_ms=now_ms(), last_data_ms=now_ms() - 120_000))
    status, report = get_health()
    assert status == 503
    (stream,) = report["checks"]["streams"]["streams"]
    assert stream["why"] == "no data for more than 60 s"
    assert stream["data_age_s"] >= 120

    settings.HEALTHZ_MAX_DATA_AGE_S = 300
    assert get_health()[0] == 200


def test_healthz_without_any_stream_fails_only_when_streams_are_expected(settings):
    settings.HEALTHZ_MIN_WORKERS = 0
    assert get_health()[0] == 200
    settings.HEALTHZ_EXPECT_STREAMS = True
    status, report = get_health()
    assert (status, report["failing"]) == (503, ["streams"])
    assert report["checks"]["streams"]["why"] == "no ingest process publishes a stream"


@pytest.fixture
def database_unreachable():
    """The default connection pointed at a PostgreSQL that is not there, for the length of a test.
    (The embedded SQLite test database lives in memory: closing its connection would drop it.)"""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", str(free_port())
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


@pytest.mark.postgres_only
def test_healthz_is_503_when_the_database_does_not_answer(settings, database_unreachable):
    settings.HEALTHZ_MIN_WORKERS = 0
    status, report = get_health()
    assert status == 503
    assert report["failing"] == ["database"]
    assert report["checks"]["database"]["why"].startswith("query failed")


def test_healthz_is_503_when_redis_does_not_answer_and_shows_no_secret(settings):
    settings.REDIS_URL = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTHZ_MIN_WORKERS = 1
    response = Client().get("/healthz")
    assert response.status_code == 503
    report = response.json()
    assert report["failing"] == ["redis", "workers", "streams"]
    assert report["checks"]["workers"]["why"] == "the broker (Redis) does not answer"
    assert b"hunter2" not in response.content
    assert b"Traceback" not in response.content


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="workers need a broker")
def test_healthz_is_503_when_fewer_workers_answer_than_expected(settings, publish):
    settings.HEALTHZ_MIN_WORKERS = 2  # this suite runs one worker at most
    publish("ingest-a", stream_status("kalshi"))
    status, report = get_health()
    assert (status, report["failing"]) == (503, ["workers"])
    workers = report["checks"]["workers"]
    assert workers["expected"] == 2 and workers["answered"] < 2
    assert workers["why"].endswith("workers answered within 1 s")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the arrival scheduler needs Redis")
def test_healthz_is_503_when_no_arrival_scheduler_takes_the_steps(settings, publish):
    from simulator import arrival_scheduler

    settings.SIMULATOR_ARRIVALS = "scheduler"
    settings.HEALTHZ_MIN_WORKERS = 0
    publish("ingest-a", stream_status("kalshi"))
    arrival_scheduler.redis_client().delete(arrival_scheduler.ALIVE_KEY)
    status, report = get_health()
    assert (status, report["failing"]) == (503, ["arrivals"])
    assert report["checks"]["arrivals"]["why"] == "no arrival scheduler (sim_arrivals) is running"
