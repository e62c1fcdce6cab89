"""Workers SIGKILLed at random moments while intents are decided and their orders arrive, the
exchange double's books moving between intents (deep, thin, jumped past a limit, gone), a tenth of
the intents and a tenth of the trades' arrival tasks sent twice: every (run, intent) is decided
exactly once, every order arrives exactly once (no trade left in flight, no step done twice in the
workers' logs), every trade's arithmetic holds, and the run's balance, held money and P&L equal a
re-computation from its trades. The orders arrive through the arrival scheduler process (killed
every third time, with the steps it holds) or as Celery tasks on the workers.
`python -m tools.soak` runs the same with more intents."""

import os
import random

import pytest

from exchanges.double import ExchangeDouble, Scenario
from tests.simulator.conftest import needs_postgres
from tools.soak import workers_scenario

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres_only,
    needs_postgres,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a Redis broker"),
    pytest.mark.django_db(transaction=True),
]
# Enough work for several kills while orders are in flight: intents are sent a few at a time so
# that arrivals run near their time, interleaved with decisions (a few intents a second per worker).
INTENTS = 150


@pytest.mark.parametrize("arrivals", ["scheduler", "celery"])
def test_workers_killed_while_decisions_and_arrivals_are_in_flight_lose_and_double_nothing(
    tmp_path, arrivals
):
    with ExchangeDouble(Scenario.demo()) as double:
        verdict = workers_scenario(
            name="kill",
            arrivals=arrivals,
            double=double,
            intents=INTENTS,
            workers=2,
            log_dir=tmp_path,
            rng=random.Random(20251125),
            timeout_s=300,
            kill_every_s=(0.5, 1.5),
            max_kills=8,
        )
    print(verdict)
    assert verdict.held, verdict.problems
    assert verdict.kills >= 3, "the workers were not killed often enough to prove anything"
    assert verdict.kills_in_flight >= 1, "no worker was killed while orders were on their way"
    if arrivals == "scheduler":  # every third kill: it held steps, which the sweep sent again
        assert verdict.scheduler_kills >= 1
    assert verdict.decided == INTENTS
    # The books move: most intents trade, and the orders met moved books at arrival.
    assert verdict.traded > INTENTS // 2, verdict.skipped_by_reason
    assert verdict.outcomes.get("full", 0) > 0
    assert verdict.outcomes.get("legged", 0) + verdict.outcomes.get("partial", 0) > 0, verdict.outcomes
    assert verdict.unwinds > 0
    assert verdict.arrival_steps >= 2 * verdict.traded  # both legs of every trade, and its unwinds
    assert verdict.arrival_steps_resent > 0, "no arrival task was delivered twice"
    assert verdict.money["reserved_usd"] == "0"
