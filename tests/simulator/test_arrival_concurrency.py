"""Arrival steps of one trade on two workers at once, on real PostgreSQL: each worker waits for
the run's lock, and the one that waited must see the other's step, not the trade as it stood
before (else one leg's fill would be written over)."""

from decimal import Decimal

import pytest

from simulator.engine import arrive, decide_intent, in_flight_steps
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
        results = in_threads(
            2, lambda i, steps=steps: arrive(trade_id=steps[i][0], step=steps[i][1], books=books)
        )
        assert all(not isinstance(r, Exception) and r.done_now for r in results), results
        trade_ids.append(steps[0][0])
    for trade in SimulatorTrade.objects.filter(pk__in=trade_ids):
        assert trade.arrival_outcome == "full" and trade.matched_size == 10
        assert [D(leg["filled_size"]) for leg in trade.legs] == [10, 10]
    money_is_exact(run.pk)
