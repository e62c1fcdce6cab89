"""Redis (the channel layer's) stopped for a while and restarted on the same port: trades keep
being committed and a reconnecting websocket gets frames again. `python -m tools.soak` holds it down
for 30 s; here REDIS_OUTAGE_S (default 5) keeps the suite short."""

import os
import shutil

import pytest
from django.conf import settings

from exchanges.double import ExchangeDouble, Scenario
from tools.soak import RedisServer, redis_outage_scenario

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
    pytest.mark.django_db(transaction=True),
]
OUTAGE_S = float(os.environ.get("REDIS_OUTAGE_S", "5"))


@pytest.fixture
def own_redis(tmp_path):
    """Ours, not the suite's: this test stops it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def close_thread_connections(monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)


def test_trades_are_committed_while_redis_is_down_and_the_socket_gets_frames_after(own_redis):
    with ExchangeDouble(Scenario.demo()) as double:
        verdict = redis_outage_scenario(redis=own_redis, down_s=OUTAGE_S, double=double, intents_during=3)
    print(verdict)
    assert verdict.held, verdict.problems
    assert verdict.traded == verdict.intents == 5


def test_with_the_shared_rate_limiter_down_decisions_go_on_under_local_buckets(own_redis):
    from exchanges.ratelimit import BookCache, RedisRateLimiter
    from simulator.engine import decide_intent
    from simulator.engine.validation import ExchangeValidator
    from tools.soak import make_scene

    validator = ExchangeValidator(
        timeout_s=1, cache=BookCache(ttl_s=0), rate_limiter=RedisRateLimiter(own_redis.url)
    )
    own_redis.stop()
    with ExchangeDouble(Scenario.demo()) as double:
        run_id, (intent_id,) = make_scene(double, 1, "limiter")
        decision = decide_intent(run_id=run_id, intent_id=intent_id, validator=validator.validate)
    assert decision.outcome == "traded", decision.reason
