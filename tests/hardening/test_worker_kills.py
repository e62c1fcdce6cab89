"""Workers SIGKILLed at random moments while ~600 intents flow (a tenth sent twice): every
(run, intent) is decided exactly once and the run's money equals a re-computation from its
trades. `python -m tools.soak` runs the same with 10,000 intents."""

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
# Enough work, and kills often enough, for several kills before the last intent is decided (the
# engine decides this scene's intents in a few seconds).
INTENTS = 600


def test_workers_killed_at_random_lose_and_double_nothing(tmp_path):
    with ExchangeDouble(Scenario.demo()) as double:
        verdict = workers_scenario(
            name="kill",
            double=double,
            intents=INTENTS,
            workers=2,
            log_dir=tmp_path,
            rng=random.Random(20251125),
            timeout_s=120,
            kill_every_s=(0.5, 1.5),
            max_kills=8,
        )
    print(verdict)
    assert verdict.held, verdict.problems
    assert verdict.kills >= 3, "the workers were not killed often enough to prove anything"
    assert verdict.decided == INTENTS
    assert verdict.traded > 0
