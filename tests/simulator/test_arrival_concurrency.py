"""Arrival steps of one trade on two workers at once, on real PostgreSQL: each worker waits for
the run's lock, and the one that waited must see the other's step, not the trade as it stood
before (else one leg's fill would be written over)."""

from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from simulator.engine import arrive_step, decide_intent, in_flight_steps
from simulator.models import SimulatorTrade
from tests.simulator.conftest import needs_postgres
from tests.simulator.factories import NOW, ExecutionIntentFactory
from tests.simulator.test_arrival import UNCHANGED, ArrivalBooks, money_is_exact, start
from tests.simulator.test_concurrency import in_threads

pytestmark = [pytest.mark.postgres_only, needs_postgres, pytest.mark.django_db(transaction=True)]
D = Decimal


def test_both_legs_arriving_at_once_both_fill_and_the_money_is_exact(trading_user, book_validator):
    run = start(trading_user)
    books = ArrivalBooks(**UNCHANGED)
    trade_ids = []
    for _ in range(10):
        intent = ExecutionIntentFactory(user=trading_user)
        decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
        steps = in_flight_steps(decision)
        assert len(steps) == 2
        results = in_threads(2, lambda i, steps=steps: arrive_step(steps[i], books))
        assert all(not isinstance(r, Exception) and r.done_now for r in results), results
        trade_ids.append(steps[0].trade_id)
    for trade in SimulatorTrade.objects.filter(pk__in=trade_ids):
        assert trade.arrival_outcome == "full" and trade.matched_size == 10
        assert [D(leg["filled_size"]) for leg in trade.legs] == [10, 10]
    money_is_exact(run.pk)


def other_session_locks_the_run(run_id: int) -> None:
    """Lock the run's row from another session at once (NOWAIT: raises while anyone holds it)."""
    params = connection.get_connection_params()
    keys = {"dbname", "user", "password", "host", "port"}
    with psycopg.connect(**{k: v for k, v in params.items() if k in keys}) as other:
        other.execute("SELECT 1 FROM simulator_runs WHERE id = %s FOR UPDATE NOWAIT", (run_id,))


def test_a_step_that_finds_its_work_done_or_fails_leaves_nothing_locked(trading_user, book_validator):
    run = start(trading_user)
    books = ArrivalBooks(**UNCHANGED)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    first, second = in_flight_steps(decision)
    assert arrive_step(first, books).done_now
    assert not arrive_step(first, books).done_now  # locked the run, then found the step done
    other_session_locks_the_run(run.pk)

    # A stored order that is not the one the step carries: the step fails under the lock, and
    # nothing of it stays (no lock, no write, the connection usable).
    trade = SimulatorTrade.objects.get(pk=second.trade_id)
    legs = trade.legs
    legs[1]["instrument_id"] = "NOT-OF-THIS-PAIR"
    SimulatorTrade.objects.filter(pk=trade.pk).update(legs=legs)
    with pytest.raises(ValueError, match="not the one the step carries"):
        arrive_step(second, books)
    other_session_locks_the_run(run.pk)
    assert SimulatorTrade.objects.get(pk=trade.pk).legs[1]["state"] == "sent"
    money_is_exact(run.pk)
