"""What the engine keeps between decisions to be fast must never outlive what it stands for: the
adapter built from a user's secret is reused only while that secret is unchanged."""

import pytest

from accounts.services import delete_secret, set_secret
from exchanges.ratelimit import BookCache, LocalRateLimiter
from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
from simulator.engine import decide_intent
from simulator.engine.validation import ExchangeValidator
from simulator.services import start_run
from tests.accounts.factories import UserFactory
from tests.simulator.factories import (
    DEMO_NO_TOKEN,
    DEMO_TICKER,
    DEMO_YES_TOKEN,
    NOW,
    ExecutionIntentFactory,
    MarketPairFactory,
    demo_double,
    give_keys,
    set_thresholds,
)

pytestmark = pytest.mark.django_db
TICKER, YES_TOKEN, NO_TOKEN = DEMO_TICKER, DEMO_YES_TOKEN, DEMO_NO_TOKEN


@pytest.fixture(scope="module")
def double():
    with demo_double() as running:
        yield running


@pytest.fixture
def scene(double):
    """One validator for the whole story (as in a worker process), no book cache, a trading user
    whose keys point at the double, and a running run on the double's crossed pair."""
    user = UserFactory()
    set_thresholds(user)
    give_keys(user, kalshi_host=double.kalshi_host, polymarket_host=double.polymarket_host)
    pair = MarketPairFactory(kalshi_ticker=TICKER, poly_yes_token=YES_TOKEN, poly_no_token=NO_TOKEN)
    run, _ = start_run(user=user, starting_usd="1000", now=NOW)
    validator = ExchangeValidator(timeout_s=0.5, cache=BookCache(ttl_s=0), rate_limiter=LocalRateLimiter())

    def decide_next():
        intent = ExecutionIntentFactory(user=user, pair=pair)
        return decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)

    return user, decide_next


def test_a_replaced_kalshi_secret_is_used_by_the_very_next_decision(scene, double):
    user, decide_next = scene
    assert decide_next().outcome == "traded"
    private_pem, _ = kalshi_key_pair()
    set_secret(
        user=user,
        exchange="kalshi",
        api_key="a-key-the-double-does-not-know",
        extra={"private_key": private_pem, "host": double.kalshi_host},
    )
    decision = decide_next()
    assert (decision.outcome, decision.reason_code) == ("skipped", "exchange_validation"), decision.reason


def test_a_deleted_secret_is_missed_by_the_very_next_decision(scene):
    user, decide_next = scene
    assert decide_next().outcome == "traded"
    delete_secret(user=user, exchange="polymarket")
    decision = decide_next()
    assert (decision.outcome, decision.reason_code) == ("skipped", "exchange_keys"), decision.reason


def test_a_secret_saved_again_after_a_refusal_trades_again(scene, double):
    user, decide_next = scene
    nowhere = {"private_key": TEST_POLYMARKET_PRIVATE_KEY, "host": "http://127.0.0.1:9"}  # discard port
    set_secret(user=user, exchange="polymarket", extra=nowhere)
    assert decide_next().reason_code == "exchange_validation"
    give_keys(user, polymarket_host=double.polymarket_host, venues=("polymarket",))
    decision = decide_next()
    assert decision.outcome == "traded", decision.reason
