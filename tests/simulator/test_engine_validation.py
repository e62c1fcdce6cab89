"""Exchange validation through the real adapters and official clients, against the exchange
double on loopback: every fault is a skipped decision with its reason, never a crash."""

import threading
import time
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest
from django.utils import timezone

from config import telemetry
from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book, Level
from exchanges.double import BookMove, Fault
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from exchanges.ratelimit import BookCache, LocalRateLimiter
from exchanges.streams.connection import StreamSettings
from exchanges.testing import kalshi_key_pair
from ingest.detector import PairSpec
from ingest.sources import LiveHosts
from ingest.stream_books import fresh_legs, publish_books
from ingest.streams import KalshiStreamKey, StreamSource
from simulator.core import IntentLeg
from simulator.engine import arrive_in_order, arrive_step, decide_intent, in_flight_steps
from simulator.engine.inputs import core_intent
from simulator.engine.validation import ExchangeValidator
from simulator.models import SimulatorRun, SimulatorTrade
from simulator.services import start_run
from tests.accounts.factories import UserFactory
from tests.simulator.factories import (
    DEMO_NO_TOKEN,
    DEMO_TICKER,
    DEMO_YES_TOKEN,
    KALSHI_KEY_ID,
    NOW,
    ExecutionIntentFactory,
    MarketPairFactory,
    demo_double,
    give_keys,
    set_thresholds,
)

pytestmark = pytest.mark.django_db
D = Decimal
TICKER, YES_TOKEN, NO_TOKEN = DEMO_TICKER, DEMO_YES_TOKEN, DEMO_NO_TOKEN
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def double():
    with demo_double() as running:
        yield running


@pytest.fixture(autouse=True)
def clean_double(double):
    double.clear_faults()
    double.reset_call_counts()
    double.state.set_kalshi_status(TICKER, "active")
    double.state.set_kalshi_balance(KALSHI_KEY_ID, 50_000)
    yield
    double.clear_faults()


@pytest.fixture
def validator():
    """Fresh per test: no answer cached from another test."""
    return ExchangeValidator(timeout_s=TIMEOUT_S, cache=BookCache(ttl_s=0), rate_limiter=LocalRateLimiter())


@pytest.fixture
def scene(double):
    """A user whose secrets point at the double, a running run, and an intent on the crossed pair:
    YES on Kalshi at <= 0.45 (asks 0.45 x 20) + NO on Polymarket at <= 0.50 (asks 0.50 x 60)."""
    user = UserFactory()
    set_thresholds(user)
    give_keys(user, kalshi_host=double.kalshi_host, polymarket_host=double.polymarket_host)
    pair = MarketPairFactory(
        opportunity_key="FED-DEC", kalshi_ticker=TICKER, poly_yes_token=YES_TOKEN, poly_no_token=NO_TOKEN
    )
    run, _ = start_run(user=user, starting_usd="1000", now=NOW)
    intent = ExecutionIntentFactory(user=user, pair=pair)
    return run, intent


def decide(scene, validator):
    run, intent = scene
    return decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)


def test_a_healthy_exchange_validates_and_the_trade_fills_from_its_books(scene, validator):
    decision = decide(scene, validator)
    assert decision.outcome == "traded", decision.reason
    # Each order meets the double's book again at its arrival time (a read, not the cache).
    arrive_in_order(in_flight_steps(decision))
    trade = SimulatorTrade.objects.get(decision=decision)
    assert (trade.arrival_outcome, trade.matched_size, trade.cost_usd) == ("full", D("10"), D("9.68"))
    for leg in trade.legs:
        assert leg["arrival_book"] and D(leg["arrival_available"][0]["size"]) <= D(
            leg["arrival_book"][0]["size"]
        )
    validation = trade.validation
    assert validation["ok"] is True
    assert {leg["kind"] for leg in validation["legs"]} == {"ok"}
    assert all(leg["latency_ms"] is not None for leg in validation["legs"])
    assert {venue: D(usd) for venue, usd in validation["balances_usd"].items()} == {
        "kalshi": 500,
        "polymarket": 1000,
    }
    kalshi_leg = next(leg for leg in trade.legs if leg["venue"] == "kalshi")
    assert (D(kalshi_leg["book"][0]["price"]), D(kalshi_leg["book"][0]["size"])) == (D("0.45"), 20)


def assert_skipped(decision, *words: str) -> None:
    assert decision.outcome == "skipped"
    assert decision.reason_code == "exchange_validation", decision.reason
    for word in words:
        assert word in decision.reason, decision.reason


def test_a_closed_market_skips_the_trade(scene, validator, double):
    double.state.set_kalshi_status(TICKER, "closed")
    assert_skipped(decide(scene, validator), f"kalshi {TICKER} yes: closed: market is closed")


def test_a_low_venue_balance_skips_the_trade(scene, validator, double):
    double.state.set_kalshi_balance(KALSHI_KEY_ID, 100)
    assert_skipped(decide(scene, validator), "kalshi balance $1.00 < leg cost $4.68")


def test_a_rate_limited_venue_skips_the_trade(scene, validator, double):
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", retry_after_s=3))
    assert_skipped(decide(scene, validator), "rate limited")


def test_a_venue_that_times_out_skips_the_trade_within_the_bound(scene, validator, double):
    import time

    double.add_fault(Fault(venue="polymarket", kind="timeout", hold_s=5))
    started = time.monotonic()
    decision = decide(scene, validator)
    assert time.monotonic() - started < 4 * TIMEOUT_S + 1
    assert_skipped(decision, "polymarket", "unreachable")


def test_a_server_error_and_a_malformed_body_skip_the_trade(scene, validator, double):
    double.add_fault(Fault(venue="kalshi", kind="status", status=503, path_prefix="/trade-api/v2/markets"))
    assert_skipped(decide(scene, validator), "unreachable")


def test_answers_are_shared_within_the_cache_ttl(double, scene):
    run, intent = scene
    cached = ExchangeValidator(
        timeout_s=TIMEOUT_S, cache=BookCache(ttl_s=60), rate_limiter=LocalRateLimiter()
    )
    legs = core_intent(intent).legs
    first = cached.validate(run.user_id, legs, NOW)
    calls = sum(double.call_counts.values())
    second = cached.validate(run.user_id, legs, NOW)
    assert first.ok and second.ok
    assert sum(double.call_counts.values()) == calls
    assert cached.cache.hits + cached.balances.hits >= 5


def test_from_cache_answers_only_what_is_cached_and_never_calls_a_venue(double, scene):
    run, intent = scene
    cached = ExchangeValidator(
        timeout_s=TIMEOUT_S, cache=BookCache(ttl_s=60), rate_limiter=LocalRateLimiter()
    )
    legs = core_intent(intent).legs
    assert cached.from_cache(run.user_id, legs, NOW) is None
    assert sum(double.call_counts.values()) == 0
    asked = cached.validate(run.user_id, legs, NOW)
    calls = sum(double.call_counts.values())
    assert calls > 0
    assert cached.from_cache(run.user_id, legs, NOW) == asked
    assert sum(double.call_counts.values()) == calls


def test_the_engine_asks_the_venues_once_then_decides_from_the_cache(double, scene):
    """The first decision finds nothing cached: it asks the venues with no lock held and decides
    with their answers; the next one, within the TTL, is answered from the cache under the lock."""
    run, intent = scene
    cached = ExchangeValidator(
        timeout_s=TIMEOUT_S, cache=BookCache(ttl_s=60), rate_limiter=LocalRateLimiter()
    )
    first = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=cached)
    calls = sum(double.call_counts.values())
    again = ExecutionIntentFactory(user=intent.user, pair=intent.pair, legs=intent.legs, size=D("1"))
    second = decide_intent(run_id=run.pk, intent_id=again.pk, now=NOW, validator=cached)
    assert (first.outcome, second.outcome) == ("traded", "traded")
    assert first.trade.validation["legs"] == second.trade.validation["legs"]
    assert sum(double.call_counts.values()) == calls


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_kept_cached_validation_ends_with_its_answers_ttl_and_with_a_venue_backoff(double, scene):
    """`from_cache` keeps what it built while the answers it was built from are fresh: past their
    TTL it is None again (a venue would have to be asked), and once a venue has asked us to slow
    down it says rate_limited, as a validation built afresh would."""
    run, intent = scene
    clock = SteppedClock()
    validator = ExchangeValidator(
        timeout_s=TIMEOUT_S,
        cache=BookCache(ttl_s=10, clock=clock),
        rate_limiter=LocalRateLimiter(),
        clock=clock,
    )
    legs = core_intent(intent).legs
    asked = validator.validate(run.user_id, legs, NOW)
    assert asked.ok and validator.from_cache(run.user_id, legs, NOW) is validator.from_cache(
        run.user_id, legs, NOW
    )
    clock.now += 11
    assert validator.from_cache(run.user_id, legs, NOW) is None

    assert validator.validate(run.user_id, legs, NOW).ok
    assert validator.from_cache(run.user_id, legs, NOW).ok
    # Another of the user's markets is asked for and Kalshi answers 429: every Kalshi answer is
    # rate limited for the Retry-After, kept ones included.
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", retry_after_s=3))
    other = [
        IntentLeg(venue="kalshi", instrument_id="KXOTHER-26", side="yes", limit_price=D("0.5"), size=D(1))
    ]
    assert not validator.validate(run.user_id, other, NOW).ok
    limited = validator.from_cache(run.user_id, legs, NOW)
    assert not limited.ok and "rate_limited" in {leg.kind for leg in limited.legs}


def test_a_balance_half_its_ttl_old_is_asked_again_in_the_background(double, scene):
    """A kept balance answers at once; once half its TTL old it is asked again behind the
    decision's back, and the next validation sees the venue's new balance."""
    run, intent = scene
    clock = SteppedClock()
    validator = ExchangeValidator(
        timeout_s=TIMEOUT_S,
        cache=BookCache(ttl_s=0),
        balances=BookCache(ttl_s=30, clock=clock),
        rate_limiter=LocalRateLimiter(),
    )
    legs = core_intent(intent).legs
    assert validator.validate(run.user_id, legs, NOW).balances_usd[KALSHI] == D(500)
    double.state.set_kalshi_balance(KALSHI_KEY_ID, 100)
    balance_reads = (KALSHI, "/trade-api/v2/portfolio/balance")
    clock.now += 10  # a third of the TTL: kept, not asked again
    assert validator.validate(run.user_id, legs, NOW).balances_usd[KALSHI] == D(500)
    assert double.call_counts[balance_reads] == 1
    clock.now += 6  # past half: answered from what is kept, and asked again meanwhile
    assert validator.validate(run.user_id, legs, NOW).balances_usd[KALSHI] == D(500)
    deadline = time.monotonic() + 10
    while validator.validate(run.user_id, legs, NOW).balances_usd[KALSHI] != D(1):
        assert time.monotonic() < deadline, "the balance was not asked again"
        time.sleep(0.02)


def test_with_no_balance_ttl_each_decision_asks_each_venue_its_balance_once(double, scene):
    """SIMULATOR_BALANCE_TTL_S=0: the balance is asked as the decision is made, and not a second
    time in the background (which would spend twice the venue's rate limit): a zero-TTL answer is
    not kept, so there is nothing to refresh."""
    run, intent = scene
    validator = ExchangeValidator(
        timeout_s=TIMEOUT_S,
        cache=BookCache(ttl_s=0),
        balances=BookCache(ttl_s=0),
        rate_limiter=LocalRateLimiter(),
    )
    legs = core_intent(intent).legs
    for _ in range(3):
        assert validator.validate(run.user_id, legs, NOW).balances_usd[KALSHI] == D(500)
    validator._pool.shutdown(wait=True)  # any refresh sent to the background has been made
    assert double.call_counts[(KALSHI, "/trade-api/v2/portfolio/balance")] == 3


@pytest.fixture
def polymarket_book_restored(double):
    book = double.state.polymarket_book(NO_TOKEN)
    bids, asks = list(book.bids), list(book.asks)
    yield
    double.clear_book_moves()
    double.state.set_polymarket_book(NO_TOKEN, bids, asks)


def test_a_price_that_jumps_between_decision_and_arrival_shows_in_the_trade_and_the_report(
    scene, validator, double, client, polymarket_book_restored
):
    """The double moves Polymarket's book right after the validation reads it (its second read:
    the market's status is read from the book too): the order meets a price 3 c above its limit,
    the Kalshi leg that filled is sold back at its bids, and the API's trade and report say so."""
    run, intent = scene
    double.add_book_move(
        BookMove(
            venue="polymarket", kind="jump", instrument=NO_TOKEN, cents=D(3), after_ms=0, every=2, times=1
        )
    )
    # Decided a minute ago: the report (the last 24 hours) counts trades whose orders have arrived.
    now = timezone.now() - timedelta(minutes=1)
    SimulatorRun.objects.filter(pk=run.pk).update(started_at=now, ends_at=now + timedelta(days=1))
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=now, validator=validator.validate)
    assert decision.outcome == "traded", decision.reason
    arrive_in_order(in_flight_steps(decision))  # the venue read at each arrival: the double

    client.force_login(run.user)
    trade = client.get(f"/simulator/trades/{decision.trade.pk}").json()
    kalshi, polymarket = (
        next(leg for leg in trade["legs"] if leg["venue"] == venue) for venue in ("kalshi", "polymarket")
    )
    assert trade["arrival_outcome"] == "legged" and D(trade["matched_size"]) == 0
    assert D(polymarket["arrival_book"][0]["price"]) == D(polymarket["book"][0]["price"]) + D("0.03")
    assert D(polymarket["filled_size"]) == 0 and "moved past the limit" in polymarket["detail"]
    assert D(kalshi["filled_size"]) == 10 and D(kalshi["unwind"]["size"]) == 10 and kalshi["unwind"]["fills"]
    assert D(trade["unwind_cost_usd"]) > 0 and D(trade["expected_pnl_usd"]) < 0

    report = client.get("/simulator/report").json()
    assert report["arrival_outcomes"]["legged"] == 1 and report["legging_incidents"] == 1
    assert D(report["unwind_cost_usd"]) == D(trade["unwind_cost_usd"])


@pytest.fixture
def kalshi_book_restored(double):
    market = double.state.kalshi_market(TICKER)
    yes_bids, no_bids = list(market.yes_bids), list(market.no_bids)
    yield
    double.clear_book_moves()
    double.state.set_kalshi_book(TICKER, yes_bids, no_bids)


def _cost_usd(leg: dict) -> D:
    """What a leg cost: its fills at their prices, its fee, less what its unwind brought back."""
    bought = sum((D(fill["price"]) * D(fill["size"]) for fill in leg["fills"]), D(0)) + D(leg["fee_usd"])
    unwind = leg["unwind"]
    return bought - (D(unwind["proceeds_usd"]) - D(unwind["fee_usd"]) if unwind else D(0))


def test_a_book_that_thins_between_decision_and_arrival_hedges_part_and_shows_the_slippage(
    scene, validator, double, client, kalshi_book_restored
):
    """The double thins Kalshi's YES asks to 30% right after the validation read them: the Kalshi
    order takes at most 6 of the 20 it saw, the trade hedges that many, the Polymarket excess is
    sold back, and the edge per hedged contract falls short of the signal's by the slippage."""
    run, intent = scene
    double.add_book_move(
        BookMove(
            venue="kalshi", kind="thin", instrument=TICKER, side="yes", keep=D("0.3"), after_ms=0, times=1
        )
    )
    now = timezone.now() - timedelta(minutes=1)
    SimulatorRun.objects.filter(pk=run.pk).update(started_at=now, ends_at=now + timedelta(days=1))
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=now, validator=validator.validate)
    assert decision.outcome == "traded", decision.reason
    arrive_in_order(in_flight_steps(decision))

    client.force_login(run.user)
    trade = client.get(f"/simulator/trades/{decision.trade.pk}").json()
    kalshi, polymarket = (
        next(leg for leg in trade["legs"] if leg["venue"] == venue) for venue in ("kalshi", "polymarket")
    )
    assert D(kalshi["arrival_book"][0]["size"]) == 6  # 30% of the 20 the validation saw
    matched = D(kalshi["filled_size"])
    assert trade["arrival_outcome"] == "partial" and 0 < matched <= 6 and D(trade["matched_size"]) == matched
    assert D(polymarket["filled_size"]) == 10 and D(polymarket["unwind"]["size"]) == 10 - matched

    # By hand: the P&L of the hedged contracts, per contract, in cents; the signal's edge less it.
    pnl_usd = matched - _cost_usd(kalshi) - _cost_usd(polymarket)
    realised_cents = (pnl_usd * 100 / matched).quantize(D("0.0001"), rounding=ROUND_FLOOR)
    slippage_cents = D(trade["signal_edge_cents"]) - realised_cents
    assert D(trade["realised_edge_cents"]) == realised_cents
    assert D(trade["slippage_cents"]) == slippage_cents > 0

    report = client.get("/simulator/report").json()
    assert report["arrival_outcomes"]["partial"] == 1 and report["legging_incidents"] == 1
    assert D(report["slippage_cents"]["p50"]) == slippage_cents and report["slippage_cents"]["trades"] == 1


def _kalshi_yes_book(asks: tuple[Level, ...], received_ms: int) -> Book:
    return Book.of(KALSHI, TICKER, YES, bids=(), asks=asks, venue_ts_ms=None, received_ts_ms=received_ms)


def _orderbook_reads(double, venue: str) -> int:
    return sum(n for (where, call), n in double.call_counts.items() if where == venue and "book" in call)


def test_a_fresh_streamed_book_is_what_validation_and_arrival_meet_without_a_venue_read(
    scene, validator, double
):
    now_ms = time.time_ns() // 1_000_000
    streamed = (Level(D("0.44"), D("8")),)  # better and thinner than the double's 0.45 x 20
    publish_books([_kalshi_yes_book(streamed, now_ms)])
    decision = decide(scene, validator)
    assert decision.outcome == "traded", decision.reason
    publish_books([_kalshi_yes_book(streamed, time.time_ns() // 1_000_000)])  # still live at arrival
    arrive_in_order(in_flight_steps(decision))
    trade = SimulatorTrade.objects.get(decision=decision)
    kalshi_leg = next(leg for leg in trade.legs if leg["venue"] == "kalshi")
    assert [(D(level["price"]), D(level["size"])) for level in kalshi_leg["book"]] == [(D("0.44"), 8)]
    assert (D(kalshi_leg["arrival_book"][0]["price"]), D(kalshi_leg["arrival_book"][0]["size"])) == (
        D("0.44"),
        8,
    )
    assert _orderbook_reads(double, "kalshi") == 0  # the stream's book spent no read of the limit
    assert _orderbook_reads(double, "polymarket") > 0  # no streamed book there: the venue was asked


def test_a_streamed_book_older_than_the_max_age_is_not_used(scene, validator, double, settings):
    stale_ms = time.time_ns() // 1_000_000 - settings.SIMULATOR_STREAM_BOOK_MAX_AGE_MS - 1
    publish_books([_kalshi_yes_book((Level(D("0.44"), D("8")),), stale_ms)])  # its stream went quiet
    trade = SimulatorTrade.objects.get(decision=decide(scene, validator))
    kalshi_leg = next(leg for leg in trade.legs if leg["venue"] == "kalshi")
    assert (D(kalshi_leg["book"][0]["price"]), D(kalshi_leg["book"][0]["size"])) == (D("0.45"), 20)
    assert _orderbook_reads(double, "kalshi") == 1


def test_with_the_shared_cache_down_validation_and_arrival_ask_the_venues(scene, validator, double, settings):
    """Redis unreachable: no streamed book or status is read, the decision trades on the venues'
    REST answers instead of failing."""
    dead_port = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead_port}
    }
    decision = decide(scene, validator)
    assert decision.outcome == "traded", decision.reason
    reads_at_decision = _orderbook_reads(double, "kalshi")
    assert reads_at_decision > 0
    arrive_in_order(in_flight_steps(decision))
    assert _orderbook_reads(double, "kalshi") > reads_at_decision  # the arrival asked the venue too


def test_each_order_meeting_its_venue_at_arrival_counts_in_the_lateness_metric(scene, validator):
    """/metrics' arrival lateness is fed by the live path's arrivals, one observation per order."""
    decision = decide(scene, validator)
    assert decision.outcome == "traded", decision.reason
    observed_before = telemetry.arrival_lateness()[0][-1][1]
    arrive_in_order(in_flight_steps(decision))
    trade = SimulatorTrade.objects.get(decision=decision)
    orders_arrived = sum(1 for leg in trade.legs if leg["arrived_at"]) + sum(
        1 for leg in trade.legs if leg["unwind"] and leg["unwind"]["arrived_at"]
    )
    assert orders_arrived >= 2
    assert telemetry.arrival_lateness()[0][-1][1] == observed_before + orders_arrived


def test_a_redelivered_or_resent_arrival_step_is_not_observed_again_in_the_lateness_metric(scene, validator):
    """A step found done (a redelivery, the sweep's late re-send) met no book: only the delivery
    that did it counts, or the re-sends' lateness would skew the histogram ops alert on."""
    decision = decide(scene, validator)
    assert decision.outcome == "traded", decision.reason
    steps = in_flight_steps(decision)
    arrive_in_order(steps)
    observed = telemetry.arrival_lateness()[0][-1][1]
    for step in steps:
        arrived = arrive_step(step)
        assert arrived is not None and not arrived.done_now
    assert telemetry.arrival_lateness()[0][-1][1] == observed


def _pair_spec() -> PairSpec:
    return PairSpec(
        "FED-DEC", TICKER, YES_TOKEN, NO_TOKEN, kalshi_taker_schedule(TICKER), polymarket_taker_schedule()
    )


@pytest.fixture
def live_streams(double):
    """Live ingest's stream source over the double's feeds, consumed on a thread as ingest_run
    --live does, sharing books and market statuses; stopped at the end of the test."""
    source = StreamSource(
        [_pair_spec()],
        hosts=LiveHosts.of_double(double),
        kalshi_key=KalshiStreamKey(KALSHI_KEY_ID, kalshi_key_pair()[0]),
        settings=StreamSettings(backoff_base_s=0.02, backoff_max_s=0.1, ping_interval_s=0.5),
        poll_interval_s=0.05,
    )
    consumer = threading.Thread(target=lambda: all(True for _ in source), daemon=True)
    consumer.start()
    yield source
    source.stop()
    consumer.join(10)


def _streamed_status(venue: str, instrument: str, side: str):
    leg = (venue, instrument, side)
    return fresh_legs([leg], now_ms=time.time_ns() // 1_000_000)[leg][1]


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"not within 10 s: {what}"
        time.sleep(0.02)


def test_with_live_streams_a_decision_calls_no_venue_and_a_market_closed_on_its_stream_is_refused(
    scene, double, live_streams, settings
):
    run, intent = scene
    validator = ExchangeValidator(timeout_s=TIMEOUT_S, rate_limiter=LocalRateLimiter())
    legs = [(KALSHI, TICKER, YES), (POLYMARKET, NO_TOKEN, NO)]
    _wait_for(lambda: all(_streamed_status(*leg) for leg in legs), "both markets' statuses streamed")
    double.reset_call_counts()  # ingest's own calls: books polled before the streams were up, statuses
    first = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator.validate)
    assert first.outcome == "traded", first.reason
    # Books and statuses came from the streams; only the balances (kept for seconds) were asked.
    balance_calls = {"/trade-api/v2/portfolio/balance", "/auth/api-key", "/balance-allowance"}
    assert {call for _, call in double.call_counts} <= balance_calls, double.call_counts

    double.reset_call_counts()
    double.state.set_kalshi_status(TICKER, "closed")  # the double's feed says `deactivated`
    _wait_for(
        lambda: (status := _streamed_status(KALSHI, TICKER, YES)) is not None and not status.tradeable,
        "the closed status streamed",
    )
    second = ExecutionIntentFactory(user=run.user, pair=intent.pair)
    decision = decide_intent(run_id=run.pk, intent_id=second.pk, now=NOW, validator=validator.validate)
    assert_skipped(decision, f"kalshi {TICKER} yes: closed: market is closed")
    assert not double.call_counts  # refused without asking the venue

    # The stream gone quiet: its status is stale, and the venue is asked again.
    live_streams.stop()
    settings.SIMULATOR_STREAM_BOOK_MAX_AGE_MS = 100
    _wait_for(lambda: _streamed_status(KALSHI, TICKER, YES) is None, "the streamed status stale")
    third = ExecutionIntentFactory(user=run.user, pair=intent.pair)
    decision = decide_intent(run_id=run.pk, intent_id=third.pk, now=NOW, validator=validator.validate)
    assert_skipped(decision, f"kalshi {TICKER} yes: closed: market is closed")
    assert double.call_counts[(KALSHI, f"/trade-api/v2/markets/{TICKER}")] == 1
