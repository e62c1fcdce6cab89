"""The live poller's round in batches against the exchange double: the same BookUpdates and
recording lines as one book per call, in calls of at most the venues' batch size, and a batch the
venue refuses does not cost the other instruments their books."""

import pytest

from exchanges.books import KALSHI
from exchanges.double import ExchangeDouble, Fault
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from exchanges.ratelimit import DEFAULT_LIMITS, BucketSpec, LocalRateLimiter
from exchanges.testing import paired_markets_scenario
from ingest.detector import PairSpec
from ingest.sources import LiveHosts, LiveSource

PAIRS = 120  # 120 Kalshi markets (100 + 20 a round) and 240 Polymarket tokens (100 + 100 + 40)
KALSHI_BATCH = "/trade-api/v2/markets/orderbooks"


@pytest.fixture(scope="module")
def double():
    scenario, _ = paired_markets_scenario(PAIRS)
    with ExchangeDouble(scenario) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_double(double):
    double.clear_faults()
    double.reset_call_counts()
    yield
    double.clear_faults()


@pytest.fixture(scope="module")
def pairs():
    _, instruments = paired_markets_scenario(PAIRS)
    return [
        PairSpec(ticker, ticker, yes, no, kalshi_taker_schedule(ticker), polymarket_taker_schedule())
        for ticker, yes, no in instruments
    ]


def source(double, pairs, *, batch_books=True):
    return LiveSource(
        pairs,
        hosts=LiveHosts.of_double(double.base_url),
        wall_clock_ms=lambda: 1_767_225_600_000,
        timeout_s=2.0,
        batch_books=batch_books,
        # No pacing: these tests count calls and compare books, not the venues' rates.
        rate_limiter=LocalRateLimiter({bucket: BucketSpec(10**6, 10**6) for bucket in DEFAULT_LIMITS}),
    )


def test_a_round_in_batches_gives_the_same_updates_as_one_book_per_call(double, pairs):
    batched = source(double, pairs).poll_once()
    batch_calls = double.call_counts
    double.reset_call_counts()
    single = source(double, pairs, batch_books=False).poll_once()

    assert len(batched) == PAIRS * 3  # one update per Kalshi market and per Polymarket token
    assert batched == single  # same books, same order, same ingest times
    assert [u.raw for u in batched] == [u.raw for u in single]  # same recording lines
    assert batch_calls == {("kalshi", KALSHI_BATCH): 2, ("polymarket", "/books"): 3}
    assert sum(double.call_counts.values()) == PAIRS * 3


def test_a_batch_the_venue_refuses_is_asked_one_book_at_a_time_that_round(double, pairs):
    unknown = PairSpec(
        "GONE", "KXGONE-1", "404001", "404002", kalshi_taker_schedule("KXGONE-1"), polymarket_taker_schedule()
    )
    live = source(double, [*pairs, unknown])

    updates = live.poll_once()

    assert len(updates) == PAIRS * 3  # every known instrument still has its book
    assert not {u.raw["id"] for u in updates} & {"KXGONE-1", "404001", "404002"}
    assert live.counters["rejected"] == 2 + 1 + 2  # the two refused batches, then the three unknowns
    counts = double.call_counts
    assert counts[("kalshi", KALSHI_BATCH)] == 2  # 100 + 21 tickers, the unknown one in the second
    assert sum(n for (venue, path), n in counts.items() if venue == KALSHI and path != KALSHI_BATCH) == 21
    assert counts[("polymarket", "/books")] == 3 and counts[("polymarket", "/book")] == 42


def test_a_rate_limited_batch_backs_the_venue_off_for_the_rest_of_the_round(double, pairs):
    double.add_fault(
        Fault(venue="polymarket", kind="rate_limit", path_prefix="/books", times=1, retry_after_s=2)
    )
    live = source(double, pairs)

    updates = live.poll_once()

    assert {u.raw["venue"] for u in updates} == {KALSHI}
    assert double.call_counts[("polymarket", "/books")] == 1
    assert live.counters["skipped_backoff"] == 2 * PAIRS - 100  # the round's two other chunks


def test_a_venue_that_wants_keys_for_batches_is_polled_one_book_per_call_from_then_on(double, pairs):
    double.add_fault(Fault(venue="kalshi", kind="bad_signature", path_prefix=KALSHI_BATCH, times=1))
    live = source(double, pairs)

    first = live.poll_once()
    second = live.poll_once()

    assert len(first) == len(second) == PAIRS * 3
    assert live.batches_refused == {KALSHI}
    counts = double.call_counts
    assert counts[("kalshi", KALSHI_BATCH)] == 1  # the refused one; then single-book calls
    assert (
        sum(n for (venue, path), n in counts.items() if venue == KALSHI and path != KALSHI_BATCH) == 2 * PAIRS
    )
    assert counts[("polymarket", "/books")] == 2 * 3  # Polymarket still in batches
