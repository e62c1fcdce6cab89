"""Concurrency on real PostgreSQL: threads, each with its own connection and transactions."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from config.errors import ConflictError
from simulator.engine import decide_intent
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.services import start_run
from tests.simulator.conftest import BookValidator, needs_postgres
from tests.simulator.factories import NOW, ExecutionIntentFactory, set_thresholds

pytestmark = [pytest.mark.postgres_only, needs_postgres, pytest.mark.django_db(transaction=True)]
D = Decimal


def in_threads(count: int, work) -> list:
    """Run work(i) in `count` threads released together; returns results or exceptions."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_twenty_parallel_starts_leave_at_most_five_running(trading_user):
    results = in_threads(20, lambda i: start_run(user=trading_user, starting_usd=10, label=f"t{i}"))
    started = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(started) == 5 and len(refused) == 15, results
    assert SimulatorRun.objects.filter(user=trading_user, status="running").count() == 5


def test_an_intent_delivered_twice_at_once_makes_one_decision(trading_user, pair):
    run, _ = start_run(user=trading_user, starting_usd="1000", now=NOW)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    results = in_threads(
        4,
        lambda i: decide_intent(
            run_id=run.pk, intent_id=intent.pk, now=NOW, validator=BookValidator(depth="1000")
        ),
    )
    assert all(isinstance(r, Decision) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert Decision.objects.filter(run=run).count() == 1
    assert SimulatorTrade.objects.filter(run=run).count() == 1
    run.refresh_from_db()
    # Its orders are on their way: their worst case, $9.69, is held.
    assert (run.trade_count, run.decision_count, run.balance_usd) == (1, 1, D("990.31"))
    assert run.reserved_usd == D("9.69")


def decide_eight_at_once(run, intents) -> list:
    return in_threads(
        len(intents),
        lambda i: decide_intent(
            run_id=run.pk,
            intent_id=intents[i].pk,
            now=NOW + timedelta(milliseconds=i),
            validator=BookValidator(depth="1000"),
        ),
    )


def test_eight_workers_cannot_overdraw_the_balance(trading_user, pair):
    run, _ = start_run(user=trading_user, starting_usd="50", now=NOW)
    intents = [ExecutionIntentFactory(user=trading_user, pair=pair) for _ in range(8)]
    results = decide_eight_at_once(run, intents)
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["skipped"] * 3 + ["traded"] * 5, [r.reason for r in results]
    assert {r.reason_code for r in results if r.outcome == "skipped"} == {"balance"}
    run.refresh_from_db()
    # Held at decision: each trade's worst case, $9.69 (the orders have not arrived).
    held = sum(SimulatorTrade.objects.filter(run=run).values_list("reserved_usd", flat=True))
    assert run.balance_usd == D("50") - held == D("1.55") and run.reserved_usd == held
    assert (run.trade_count, run.decision_count) == (5, 8)


def test_eight_workers_cannot_pass_the_daily_cap(trading_user, pair):
    set_thresholds(trading_user, daily_cap="30")
    run, _ = start_run(user=trading_user, starting_usd="1000", now=NOW)
    intents = [ExecutionIntentFactory(user=trading_user, pair=pair) for _ in range(8)]
    results = decide_eight_at_once(run, intents)
    assert sum(r.outcome == "traded" for r in results) == 3, results
    assert {r.reason_code for r in results if r.outcome == "skipped"} == {"daily_cap"}
    run.refresh_from_db()
    assert run.traded_today_usd == D("29.07") <= D("30")  # three worst cases of $9.69 held
