"""Real Celery workers on the `simulator` queue (Redis broker, PostgreSQL test database):
dispatched intents get decided, and a worker killed mid-task loses nothing once the broker
redelivers the unacknowledged message (acks_late + a short Redis visibility timeout)."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.conf import settings

from exchanges.double import Fault
from simulator.intake import intent_arrived
from simulator.models import Decision, SimulatorTrade
from simulator.services import start_run
from simulator.tasks import decide_intent_task
from tests.accounts.factories import UserFactory
from tests.simulator.conftest import needs_postgres
from tests.simulator.factories import (
    DEMO_NO_TOKEN,
    DEMO_TICKER,
    DEMO_YES_TOKEN,
    ExecutionIntentFactory,
    MarketPairFactory,
    demo_double,
    give_keys,
    set_thresholds,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    needs_postgres,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis broker"),
    pytest.mark.django_db(transaction=True),
]
D = Decimal
TICKER, YES_TOKEN, NO_TOKEN = DEMO_TICKER, DEMO_YES_TOKEN, DEMO_NO_TOKEN
VISIBILITY_TIMEOUT_S = 2
# The worker's own entry point, with a short visibility timeout so an unacknowledged message
# of a killed worker is handed to the next one in seconds instead of the default hour.
WORKER_MAIN = (
    "import sys; from config.celery import app; "
    "app.conf.broker_transport_options = {'visibility_timeout': float(sys.argv[1])}; "
    "app.worker_main(['worker', '-Q', 'simulator', '-P', 'solo', '--without-heartbeat', "
    "'--without-gossip', '--without-mingle', '-l', 'INFO'])"
)


def worker_database_url() -> str:
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(log_path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "CELERY_TASK_ALWAYS_EAGER": "0"}
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_MAIN, str(VISIBILITY_TIMEOUT_S)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def double():
    with demo_double() as running:
        yield running


@pytest.fixture
def purged_queue():
    from config.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("simulator")


@pytest.fixture
def scene(double, purged_queue):
    user = UserFactory()
    set_thresholds(user)
    give_keys(user, kalshi_host=double.kalshi_host, polymarket_host=double.polymarket_host)
    pair = MarketPairFactory(
        opportunity_key="FED-DEC", kalshi_ticker=TICKER, poly_yes_token=YES_TOKEN, poly_no_token=NO_TOKEN
    )
    run, _ = start_run(user=user, starting_usd="1000")
    return user, pair, run


def test_a_worker_decides_dispatched_intents(scene, tmp_path):
    user, pair, run = scene
    worker = start_worker(tmp_path / "worker.log")
    try:
        intents = [ExecutionIntentFactory(user=user, pair=pair) for _ in range(3)]
        for intent in intents:
            assert intent_arrived(intent) == 1
        wait_for(lambda: Decision.objects.filter(run=run).count() == 3, 60, "3 decisions")
        # Each traded decision's orders arrive as tasks due at their arrival time, on the worker,
        # and meet the double's book then.
        wait_for(
            lambda: not SimulatorTrade.objects.filter(run=run, arrival_outcome="").exists(), 60, "arrivals"
        )
    finally:
        stop(worker)
    assert Decision.objects.filter(run=run, outcome="traded").count() >= 1
    trades = list(SimulatorTrade.objects.filter(run=run))
    assert all(trade.arrival_outcome and trade.legs[0]["arrival_book"] is not None for trade in trades)
    run.refresh_from_db()
    assert run.balance_usd == D("1000") - sum(trade.cost_usd for trade in trades)
    assert run.reserved_usd == 0 and run.decision_count == 3


def test_a_worker_killed_mid_task_loses_nothing(scene, double, tmp_path):
    user, pair, run = scene
    intent = ExecutionIntentFactory(user=user, pair=pair)
    double.add_fault(Fault(venue="kalshi", kind="latency", latency_s=2.5, times=1))
    first = start_worker(tmp_path / "first.log")
    try:
        intent_arrived(intent)
        wait_for(
            lambda: sum(n for (venue, _), n in double.call_counts.items() if venue == "kalshi") > 0,
            60,
            "the task to reach the exchange",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)
    assert not Decision.objects.filter(run=run).exists()
    double.clear_faults()
    second = start_worker(tmp_path / "second.log")
    try:
        wait_for(lambda: Decision.objects.filter(run=run).exists(), 60, "the redelivered task's decision")
        # A duplicate delivery on top (e.g. a second redelivery) changes nothing.
        decide_intent_task.delay(run.pk, intent.pk)
        time.sleep(1.5)
    finally:
        stop(second)
    assert Decision.objects.filter(run=run, intent=intent).count() == 1
    assert SimulatorTrade.objects.filter(run=run, intent=intent).count() <= 1
    run.refresh_from_db()
    assert run.decision_count == 1
