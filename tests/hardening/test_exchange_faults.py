"""The exchange double's faults that tests/simulator/test_engine_validation.py does not already
inject, and what happens after each: the trade is skipped with the venue's reason, nothing
raises, and the run trades again once the fault clears. Rate limits are counted at the double."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.selectors import decrypted_secret
from exchanges.double import Fault
from exchanges.ratelimit import KALSHI_READ, BookCache, BucketSpec, LocalRateLimiter
from simulator.engine import decide_intent
from simulator.engine.inputs import core_intent
from simulator.engine.validation import ExchangeValidator
from simulator.models import Decision
from tests.simulator import test_engine_validation as validation_tests
from tests.simulator.factories import NOW, ExecutionIntentFactory
from tests.simulator.test_engine_validation import TIMEOUT_S, assert_skipped

pytestmark = pytest.mark.django_db
# The double, its per-test reset and the scene of the existing validation tests, reused as is.
double = validation_tests.double
clean_double = validation_tests.clean_double
scene = validation_tests.scene


class FakeClock:
    """The validator's monotonic clock, moved by the test (a venue's Retry-After is honoured)."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def validator(clock):
    """Fresh per test (no answer cached from another test), on the test's clock."""
    return ExchangeValidator(
        timeout_s=TIMEOUT_S, cache=BookCache(ttl_s=0), rate_limiter=LocalRateLimiter(), clock=clock
    )


ORDERBOOK = "/trade-api/v2/markets/FED-25DEC-T4.00/orderbook"


def decide_next(run, intent_like, validator):
    intent = ExecutionIntentFactory(user=run.user, pair=intent_like.pair)
    return decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault(venue="kalshi", kind="malformed", path_prefix=ORDERBOOK), ["kalshi", "malformed"]),
        (
            Fault(venue="polymarket", kind="malformed", malformed="missing_fields", path_prefix="/book"),
            ["polymarket", "malformed"],
        ),
        (Fault(venue="kalshi", kind="bad_signature"), ["kalshi", "rejected"]),
        (Fault(venue="polymarket", kind="bad_signature"), ["polymarket"]),
        (Fault(venue="polymarket", kind="status", status=502), ["polymarket", "unreachable"]),
        (
            Fault(venue="kalshi", kind="status", status=500, path_prefix="/trade-api/v2/portfolio"),
            ["balance"],
        ),
        (Fault(venue="kalshi", kind="latency", latency_s=4 * TIMEOUT_S), ["kalshi", "unreachable"]),
        (Fault(venue="polymarket", kind="rate_limit", retry_after_s=1), ["polymarket", "rate limited"]),
    ],
    ids=lambda value: f"{value.venue}-{value.kind}" if isinstance(value, Fault) else None,
)
def test_a_fault_skips_the_trade_with_its_reason_and_the_run_trades_once_it_clears(
    scene, validator, clock, double, fault, words
):
    run, intent = scene
    double.add_fault(fault)
    skipped = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)
    assert_skipped(skipped, *words)
    assert skipped.checks[4]["name"] == "exchange_validation" and not skipped.checks[4]["ok"]
    double.clear_faults()
    clock.advance(60)  # past any Retry-After the venue asked for
    assert decide_next(run, intent, validator).outcome == "traded"
    run.refresh_from_db()
    assert (run.decision_count, run.trade_count, run.status) == (2, 1, "running")


def test_a_slow_answer_within_the_timeout_still_trades_and_records_its_latency(scene, validator, double):
    run, intent = scene
    double.add_fault(Fault(venue="kalshi", kind="latency", latency_s=TIMEOUT_S / 2))
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)
    assert decision.outcome == "traded", decision.reason
    kalshi = next(leg for leg in decision.trade.validation["legs"] if leg["venue"] == "kalshi")
    assert kalshi["latency_ms"] >= 1000 * TIMEOUT_S / 2


def test_a_fault_on_every_other_intent_leaves_each_decided_once(scene, validator, clock, double):
    run, intent = scene
    kinds = [
        Fault(venue="kalshi", kind="status", status=503, times=1),
        Fault(venue="polymarket", kind="malformed", times=1),
        Fault(venue="kalshi", kind="rate_limit", retry_after_s=0, times=1),
        Fault(venue="polymarket", kind="bad_signature", times=1),
    ]
    outcomes = []
    for n in range(8):
        if n % 2 == 0:
            double.add_fault(kinds[n // 2])
        outcomes.append(decide_next(run, intent, validator).outcome)
        clock.advance(60)
    assert outcomes == ["skipped", "traded"] * 4
    assert Decision.objects.filter(run=run).count() == 8


def test_the_local_limiter_keeps_calls_at_the_double_within_the_venue_budget(scene, double):
    run, intent = scene
    spec = BucketSpec(rate_per_s=10, burst=5)
    secrets = {
        venue: decrypted_secret(user_id=run.user_id, exchange=venue) for venue in ("kalshi", "polymarket")
    }
    limited = ExchangeValidator(
        load_secret=lambda *, user_id, exchange: secrets[exchange],  # read once: the threads have no DB
        timeout_s=TIMEOUT_S,
        cache=BookCache(ttl_s=0),
        balances=BookCache(ttl_s=0),  # every validation asks for everything: three reads each
        rate_limiter=LocalRateLimiter({**_default_limits(), KALSHI_READ: spec}, max_wait_s=0.2),
    )
    legs = core_intent(intent).legs
    double.reset_call_counts()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=15) as pool:  # 15 workers deciding at once
        results = list(pool.map(lambda _: limited.validate(run.user_id, legs, NOW), range(15)))
    elapsed = time.monotonic() - started
    kalshi_calls = sum(n for (venue, _), n in double.call_counts.items() if venue == "kalshi")
    assert kalshi_calls <= spec.burst + spec.rate_per_s * elapsed + 1, (kalshi_calls, elapsed)
    limited_kinds = {leg.kind for result in results for leg in result.legs if not leg.ok}
    assert limited_kinds <= {"rate_limited"}
    assert any(result.ok for result in results) and not all(result.ok for result in results)


def _default_limits():
    from exchanges.ratelimit import DEFAULT_LIMITS

    return dict(DEFAULT_LIMITS)


def test_a_venues_retry_after_is_honoured_before_calling_it_again(scene, validator, clock, double):
    run, intent = scene
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", retry_after_s=5, times=1))
    legs = core_intent(intent).legs
    assert not validator.validate(run.user_id, legs, NOW).ok
    double.reset_call_counts()
    again = validator.validate(run.user_id, legs, NOW)
    assert not again.ok
    assert sum(n for (venue, _), n in double.call_counts.items() if venue == "kalshi") == 0
    assert "not calling it for another" in next(leg.detail for leg in again.legs if leg.venue == "kalshi")
    clock.advance(5)
    assert validator.validate(run.user_id, legs, NOW).ok
    assert sum(n for (venue, _), n in double.call_counts.items() if venue == "kalshi") > 0
