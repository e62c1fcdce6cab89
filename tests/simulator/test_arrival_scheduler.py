"""The arrival scheduler process (`manage.py sim_arrivals`, SIMULATOR_ARRIVALS=scheduler) on a
real Redis and PostgreSQL, against the exchange double: each order of a decided trade arrives
once whatever the deliveries; a scheduler SIGKILLed with steps in hand loses none (beat's sweep
sends them again); one stopped puts back what it held; its database connections dropped under it
(as by a restarted server), the next steps still arrive, once."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from monitoring.health import check_arrivals
from simulator import arrival_scheduler, sweeps
from simulator.engine import arrival_store, steps_of, wire
from simulator.intake import redispatch_overdue_arrivals
from simulator.models import SimulatorRun, SimulatorTrade
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
from tests.simulator.test_workers import wait_for, worker_database_url

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    needs_postgres,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis"),
    pytest.mark.django_db(transaction=True),
]
D = Decimal
ARRIVED = re.compile(rb"event=arrived trade_id=(\d+) step=(\S+)")


class Scheduler:
    """`manage.py sim_arrivals` in a subprocess, logging to a file."""

    def __init__(self, log_path) -> None:
        self.log_path = log_path
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "SIMULATOR_ARRIVALS": "scheduler",
            "CELERY_TASK_ALWAYS_EAGER": "0",
        }
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "sim_arrivals", "--runners", "2"],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: b"event=arrival_scheduler_ready" in self.log(), 60, "the scheduler to start")

    def log(self) -> bytes:
        return self.log_path.read_bytes()

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def scene(tmp_path):
    arrival_scheduler.redis_client().delete(arrival_scheduler.FEED_KEY)
    with demo_double() as double, override_settings(SIMULATOR_ARRIVALS="scheduler"):
        user = UserFactory()
        set_thresholds(user)
        give_keys(user, kalshi_host=double.kalshi_host, polymarket_host=double.polymarket_host)
        pair = MarketPairFactory(
            opportunity_key="FED-DEC",
            kalshi_ticker=DEMO_TICKER,
            poly_yes_token=DEMO_YES_TOKEN,
            poly_no_token=DEMO_NO_TOKEN,
        )
        run, _ = start_run(user=user, starting_usd="1000")
        schedulers: list[Scheduler] = []

        def start() -> Scheduler:
            schedulers.append(Scheduler(tmp_path / f"scheduler-{len(schedulers) + 1}.log"))
            return schedulers[-1]

        def decide(count: int) -> list[SimulatorTrade]:
            """Intents decided here, as a worker does: each traded one's steps go to the scheduler."""
            for _ in range(count):
                decide_intent_task(run.pk, ExecutionIntentFactory(user=user, pair=pair).pk)
            return list(SimulatorTrade.objects.filter(run=run))

        try:
            yield run, decide, start, schedulers
        finally:
            for scheduler in schedulers:
                scheduler.stop(signal.SIGKILL)
            arrival_scheduler.redis_client().delete(arrival_scheduler.FEED_KEY)


def all_arrived(run: SimulatorRun) -> bool:
    return not SimulatorTrade.objects.filter(run=run, arrival_outcome="").exists()


def each_step_done_once(run: SimulatorRun, schedulers: list[Scheduler]) -> None:
    """Every order arrived, each step logged by exactly one scheduler once, and the money exact."""
    trades = list(SimulatorTrade.objects.filter(run=run))
    assert trades and all(trade.arrival_outcome for trade in trades)
    logged = Counter(
        (int(trade_id), step.decode()) for s in schedulers for trade_id, step in ARRIVED.findall(s.log())
    )
    done = {
        (trade.pk, f"leg:{i}")
        for trade in trades
        for i, leg in enumerate(trade.legs)
        if leg["state"] == "arrived"
    }
    assert done <= set(logged), done - set(logged)
    assert all(n == 1 for n in logged.values()), logged
    run.refresh_from_db()
    assert run.reserved_usd == 0
    assert run.balance_usd == D("1000") - sum(trade.cost_usd for trade in trades)


def test_each_runner_starts_with_a_steps_first_statement_prepared_on_its_connection():
    """Prepared as the runner starts, the locked read costs the first real step no PREPARE (a
    round trip more, at the arrival time)."""
    scheduler = arrival_scheduler.ArrivalScheduler(arrival_scheduler.redis_client(), runners=1)
    scheduler._connect_runners()

    def prepared() -> set[str]:
        try:
            return set(wire._session(connection.connection).names)
        finally:
            connection.close()

    try:
        statements = scheduler._runners.submit(prepared).result()
    finally:
        scheduler._runners.shutdown(wait=True)
    assert arrival_store._lock_sql() in statements


def test_each_order_arrives_once_whatever_the_deliveries(scene):
    run, decide, start, schedulers = scene
    start()
    trades = decide(3)
    assert trades
    for trade in trades:  # a duplicate delivery of every step, as by a redelivery or the sweep
        arrival_scheduler.send(steps_of(trade))
    wait_for(lambda: all_arrived(run), 60, "every order to arrive")
    time.sleep(1)  # the duplicates are run too, and find their step done
    assert check_arrivals(redis_ok=True) == {"status": "ok", "waiting": 0}  # what /healthz says
    each_step_done_once(run, schedulers)


def test_a_scheduler_killed_with_steps_in_hand_loses_none(scene):
    run, decide, start, schedulers = scene
    trades = decide(3)  # no scheduler yet: the steps wait in Redis
    steps = [step for trade in trades for step in steps_of(trade)]
    assert trades and arrival_scheduler.backlog() == len(steps)
    arrival_scheduler.redis_client().delete(arrival_scheduler.FEED_KEY)
    first = start()
    # It takes them, due a few seconds from now (as if their latencies were long), and dies.
    later = timezone.now() + timedelta(seconds=5)
    arrival_scheduler.send([step._replace(at=later) for step in steps])
    wait_for(lambda: arrival_scheduler.backlog() == 0, 30, "the scheduler to take the steps")
    first.stop(signal.SIGKILL)
    assert not SimulatorTrade.objects.filter(run=run).exclude(arrival_outcome="").exists()
    assert arrival_scheduler.backlog() == 0  # lost with the process

    # Beat's sweep sends the overdue steps again (here at once: they are overdue by 0 s), and
    # while they wait for a scheduler, the next sweep sends nothing more.
    assert redispatch_overdue_arrivals(late_s=0) == len(steps)
    assert sweeps.redispatch_overdue_arrivals.apply().get() == 0
    assert arrival_scheduler.backlog() == len(steps)
    start()
    wait_for(lambda: all_arrived(run), 60, "the swept orders to arrive")
    time.sleep(max(0.0, (later - timezone.now()).total_seconds()) + 1)  # nothing runs them twice
    each_step_done_once(run, schedulers)


def test_a_stopped_scheduler_puts_back_the_steps_it_held(scene):
    run, decide, start, schedulers = scene
    trades = decide(2)
    arrival_scheduler.redis_client().delete(arrival_scheduler.FEED_KEY)
    first = start()
    later = timezone.now() + timedelta(seconds=5)
    steps = [step._replace(at=later) for t in trades for step in steps_of(t)]
    arrival_scheduler.send(steps)
    wait_for(lambda: arrival_scheduler.backlog() == 0, 30, "the scheduler to take the steps")
    first.stop(signal.SIGTERM)
    assert first.process.returncode == 0
    assert arrival_scheduler.backlog() == len(steps)  # back in Redis, for the next one
    start()
    wait_for(lambda: all_arrived(run), 60, "the orders put back to arrive")
    each_step_done_once(run, schedulers)


def test_the_next_steps_arrive_once_after_the_database_dropped_the_connections(scene):
    run, decide, start, schedulers = scene
    scheduler = start()
    first = decide(1)
    wait_for(lambda: all_arrived(run), 60, "the first orders to arrive")
    # As a restarted server does: every session but this test's ends under the scheduler.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    more = decide(2)
    assert len(more) > len(first)
    wait_for(lambda: all_arrived(run), 60, "the orders after the drop to arrive")
    assert b"event=arrival_retry" in scheduler.log()
    each_step_done_once(run, schedulers)
