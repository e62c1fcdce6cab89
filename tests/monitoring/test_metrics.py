"""/metrics: the Prometheus text, who may read it, and figures that move when the service does."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from config import telemetry
from config.celery import app as celery_app
from tests.accounts.factories import UserFactory
from tests.monitoring.conftest import stream_status
from tests.simulator.surface_fixtures import make_intent, make_run, make_trade
from tests.simulator.test_websocket import communicator, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENTED = {
    "arbsim_stream_messages",
    "arbsim_stream_updates",
    "arbsim_stream_reconnects",
    "arbsim_stream_resnapshots",
    "arbsim_stream_hash_checks_stopped",
    "arbsim_stream_up",
    "arbsim_stream_lag_seconds",
    "arbsim_stream_data_age_seconds",
    "arbsim_stream_instruments",
    "arbsim_stream_stale_instruments",
    "arbsim_intents",
    "arbsim_decisions",
    "arbsim_arrival_lateness_seconds",
    "arbsim_websocket_clients",
}


def scrape(client: Client | None = None, **headers: str) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def families() -> set[str]:
    text = Client().get("/metrics").content.decode()
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_expose_every_documented_name(publish):
    publish("ingest-a", stream_status("kalshi"))
    assert families() >= DOCUMENTED


def test_stream_figures_follow_what_ingest_publishes(publish):
    publish("ingest-a", stream_status("kalshi", updates=1_000, reconnects=0, lag_ms_p50=40))
    labels = (("shard", "1/1"), ("venue", "kalshi"))
    before = scrape()
    assert before[("arbsim_stream_updates_total", labels)] == 1_000
    assert before[("arbsim_stream_lag_seconds", labels)] == 0.04
    assert before[("arbsim_stream_up", labels)] == 1

    publish(
        "ingest-a", stream_status("kalshi", state="down", updates=1_500, reconnects=1, stale_instruments=40)
    )
    after = scrape()
    assert after[("arbsim_stream_updates_total", labels)] == 1_500
    assert after[("arbsim_stream_reconnects_total", labels)] == 1
    assert after[("arbsim_stream_stale_instruments", labels)] == 40
    assert after[("arbsim_stream_up", labels)] == 0


def test_a_stream_status_without_a_newer_counter_keeps_its_figures_in_the_scrape(publish):
    """An ingest process of the previous version (during a rolling deploy) publishes no
    hash_checks_stopped: its streams stay in /metrics, that counter at 0."""
    older = stream_status("polymarket", updates=700)
    del older["hash_checks_stopped"]
    publish("ingest-old", older)
    labels = (("shard", "1/1"), ("venue", "polymarket"))
    figures = scrape()
    assert figures[("arbsim_stream_updates_total", labels)] == 700
    assert figures[("arbsim_stream_hash_checks_stopped_total", labels)] == 0


def test_intents_and_decisions_count_up(user):
    before = scrape()
    make_intent(user)
    make_trade(make_run(user))  # a decision, on an intent of its own
    after = scrape()
    assert after[("arbsim_intents_total", ())] >= before[("arbsim_intents_total", ())] + 2
    assert after[("arbsim_decisions_total", ())] >= before[("arbsim_decisions_total", ())] + 1


def test_arrival_lateness_lands_in_its_bucket():
    before = scrape()
    due = datetime.now(UTC)
    telemetry.observe_arrival_lateness(due, due + timedelta(milliseconds=30))
    after = scrape()
    bucket = ("arbsim_arrival_lateness_seconds_bucket", (("le", "0.05"),))
    smaller = ("arbsim_arrival_lateness_seconds_bucket", (("le", "0.025"),))
    assert after[bucket] == before[bucket] + 1
    assert after[smaller] == before[smaller]
    assert (
        after[("arbsim_arrival_lateness_seconds_count", ())]
        == before[("arbsim_arrival_lateness_seconds_count", ())] + 1
    )


def wait_for_clients(condition, timeout_s: float = 10.0) -> int:
    """The published count once `condition(count)` holds (publishing is a thread's job), or the last seen."""
    deadline = time.monotonic() + timeout_s
    while not condition(seen := scrape()[("arbsim_websocket_clients", ())]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return seen


def test_websocket_clients_count_open_sockets(user):
    cookie = session_cookie(user)

    async def scenario() -> tuple[int, int]:
        socket_ = communicator(cookie)
        connected, _ = await socket_.connect()
        assert connected
        # Other sockets of this process (a test that did not close its own) count too.
        with_ours = await asyncio.to_thread(wait_for_clients, lambda count: count >= 1)
        await socket_.disconnect()
        return with_ours, await asyncio.to_thread(wait_for_clients, lambda count: count == with_ours - 1)

    with_ours, without = asyncio.run(scenario())
    assert with_ours >= 1
    assert without == with_ours - 1


@pytest.mark.skipif(not settings.REDIS_URL, reason="queues are in the Redis broker")
def test_queue_length_counts_tasks_waiting_in_the_broker(settings):
    queue = f"test-{uuid.uuid4().hex}"
    settings.CELERY_TASK_ROUTES = {**settings.CELERY_TASK_ROUTES, "tests.*": {"queue": queue}}
    celery_app.send_task("tests.nothing", queue=queue)
    try:
        assert scrape()[("arbsim_celery_queue_length", (("queue", queue),))] == 1
        assert ("arbsim_celery_queue_length", (("queue", "simulator"),)) in scrape()
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete(queue)


def test_metrics_are_open_to_this_machine_only_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    refused = Client().get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    staff = Client()
    staff.force_login(UserFactory(is_staff=True))
    assert staff.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 200
    someone = Client()
    someone.force_login(UserFactory())
    assert someone.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 401


def test_metrics_need_the_bearer_token_when_one_is_set(settings):
    settings.METRICS_TOKEN = "scrape-me-7f3a"
    assert Client().get("/metrics").status_code == 401  # even from this machine
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(HTTP_AUTHORIZATION="Bearer scrape-me-7f3a")
