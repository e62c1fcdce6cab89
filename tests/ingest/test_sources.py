"""Book sources: the live poller against the exchange double over loopback HTTP (backoff on 429
and 5xx, rate limits), the replay source's timing through a fake clock, and the double mirror."""

from decimal import Decimal as D

import pytest

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.double import ExchangeDouble, Fault, Scenario
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from exchanges.ratelimit import DEFAULT_LIMITS, KALSHI_READ, BucketSpec, LocalRateLimiter
from ingest.detector import PairSpec
from ingest.live import mirror_to_double
from ingest.recording import RecordingWriter, kalshi_update, polymarket_update
from ingest.sources import BookUpdate, LiveHosts, LiveSource, ReplaySource

TICKER = "FED-25DEC-T4.00"
CONDITION = "0x" + "a1" * 32


def demo_pairs(scenario):
    """The demo scenario's three pairs (Kalshi ticker + its Polymarket YES and NO tokens)."""
    pairs = []
    for ticker, market in scenario.kalshi_markets.items():
        condition = {"FED": "a1", "BTC": "b2", "NYC": "c3"}[ticker[:3]] * 32
        yes, no = [t for t, b in scenario.polymarket_books.items() if b.market == "0x" + condition]
        pairs.append(
            PairSpec(ticker, ticker, yes, no, kalshi_taker_schedule(ticker), polymarket_taker_schedule())
        )
    return pairs


class FakeClock:
    def __init__(self):
        self.now_s = 0.0
        self.slept = []

    def __call__(self):
        return self.now_s

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now_s += seconds


@pytest.fixture(scope="module")
def double():
    with ExchangeDouble(Scenario.demo()) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_double(double):
    double.clear_faults()
    double.reset_call_counts()
    yield
    double.clear_faults()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def live(double, clock):
    return LiveSource(
        demo_pairs(double.state.snapshot()),
        hosts=LiveHosts.of_double(double.base_url),
        clock=clock,
        sleep=clock.sleep,
        wall_clock_ms=lambda: 1_767_225_600_000 + int(clock.now_s * 1000),
        timeout_s=2.0,
    )


def kalshi_calls(double):
    return sum(n for (venue, _), n in double.call_counts.items() if venue == KALSHI)


def poly_calls(double):
    return sum(n for (venue, _), n in double.call_counts.items() if venue == POLYMARKET)


def test_one_round_reads_every_pairs_books_from_both_venues(live):
    updates = live.poll_once()

    by_venue = {}
    for update in updates:
        for book in update.books:
            by_venue.setdefault(book.venue, []).append(book)
    assert len(by_venue[KALSHI]) == 6  # YES and NO of three markets, two books per answer
    assert len(by_venue[POLYMARKET]) == 6  # three pairs x (YES token, NO token)
    fed_yes = next(b for b in by_venue[KALSHI] if b.instrument_id == TICKER and b.side == YES)
    assert fed_yes.best_ask.price == D("0.45")  # 1 - best NO bid 0.55
    assert fed_yes.received_ts_ms == 1_767_225_600_000
    kalshi_raw = next(u.raw for u in updates if u.raw["venue"] == KALSHI and u.raw["id"] == TICKER)
    assert sorted(kalshi_raw["no"]) == [["0.5300", "40.00"], ["0.5500", "20.00"]]
    poly_raw = next(u.raw for u in updates if u.raw["venue"] == POLYMARKET)
    assert poly_raw["vts"] > 0  # the venue's own book timestamp is kept


def test_a_429_backs_kalshi_off_for_retry_after_while_polymarket_keeps_being_polled(double, live, clock):
    double.add_fault(Fault(venue=KALSHI, kind="rate_limit", times=1, retry_after_s=3))

    first = live.poll_once()
    assert {u.raw["venue"] for u in first} == {POLYMARKET}  # the 429 stopped Kalshi for the round
    assert kalshi_calls(double) == 1
    assert live.backoff_until_s(KALSHI) == pytest.approx(3.0)

    clock.now_s = 2.0
    second = live.poll_once()
    assert kalshi_calls(double) == 1  # still backing off
    assert {u.raw["venue"] for u in second} == {POLYMARKET}

    clock.now_s = 3.1
    third = live.poll_once()
    assert {u.raw["venue"] for u in third} == {KALSHI, POLYMARKET}
    assert live.counters["rate_limited"] == 1


def test_a_5xx_backs_polymarket_off_exponentially_until_it_answers_again(double, live, clock):
    double.add_fault(Fault(venue=POLYMARKET, kind="status", status=503, times=2))

    live.poll_once()
    assert live.backoff_until_s(POLYMARKET) == pytest.approx(0.5)
    clock.now_s = 0.6
    live.poll_once()
    assert live.backoff_until_s(POLYMARKET) == pytest.approx(0.6 + 1.0)  # doubled
    assert live.counters["unreachable"] == 2

    clock.now_s = 1.7
    recovered = live.poll_once()
    assert sum(1 for u in recovered if u.raw["venue"] == POLYMARKET) == 6
    clock.now_s = 1.8
    live.poll_once()
    assert poly_calls(double) == 2 + 1 + 1  # one /books call a round; no backoff left after the success


def test_the_poller_waits_for_the_rate_limiter_instead_of_exceeding_the_venue_limit(double, clock):
    limits = {**DEFAULT_LIMITS, KALSHI_READ: BucketSpec(rate_per_s=2, burst=2)}
    source = LiveSource(
        demo_pairs(double.state.snapshot()),
        hosts=LiveHosts.of_double(double.base_url),
        rate_limiter=LocalRateLimiter(limits, clock=clock, sleep=clock.sleep),
        clock=clock,
        sleep=clock.sleep,
        batch_books=False,
    )
    source.poll_once()
    assert kalshi_calls(double) == 3
    assert clock.slept == [0.5]  # the third Kalshi call waited for a token at 2/s


def test_iterating_a_live_source_polls_round_after_round_at_the_interval(live, clock):
    live.max_rounds = 3
    live.poll_interval_s = 1.0
    updates = list(live)
    assert len(updates) == 3 * (3 + 6)  # per round: 3 Kalshi markets, 6 Polymarket tokens
    assert clock.slept == [1.0, 1.0]


def write_recording(path, pair, times_ms):
    with RecordingWriter(path, pairs=[pair], source="test") as writer:
        for t in times_ms:
            writer.append(kalshi_update(t, pair.kalshi_ticker, [("0.40", "10")], [("0.55", "10")]))


@pytest.fixture
def pair():
    return PairSpec("K", "KX-1", "11", "22", kalshi_taker_schedule("KX-1"), polymarket_taker_schedule())


@pytest.mark.parametrize(
    ("speed", "expected_sleeps"),
    [(1.0, [1.0, 2.0]), (2.0, [0.5, 1.0]), (None, [])],
)
def test_replay_keeps_the_recorded_spacing_scaled_by_speed(tmp_path, pair, speed, expected_sleeps):
    path = tmp_path / "r.jsonl.gz"
    write_recording(path, pair, [5000, 6000, 8000])
    clock = FakeClock()
    source = ReplaySource(path, speed=speed, clock=clock, sleep=clock.sleep)

    updates = list(source)

    assert [u.now_ms for u in updates] == [5000, 6000, 8000]  # recorded time, not the wall clock
    assert clock.slept == expected_sleeps
    assert [b.side for b in updates[0].books] == [YES, NO]


def test_replay_stops_when_asked(tmp_path, pair):
    path = tmp_path / "r.jsonl.gz"
    write_recording(path, pair, range(0, 10_000, 1000))
    source = ReplaySource(path)
    seen = []
    for update in source:
        seen.append(update)
        if len(seen) == 3:
            source.stop()
    assert len(seen) == 3


def test_a_mirrored_recording_update_is_what_the_double_then_serves(double, live):
    mirror_to_double(double.state, kalshi_update(0, TICKER, [("0.30", "5")], [("0.61", "7")]))
    token = next(t for t, b in double.state.snapshot().polymarket_books.items() if b.market == CONDITION)
    mirror_to_double(
        double.state,
        polymarket_update(0, token, [("0.20", "9")], [("0.35", "4")], venue_ts_ms=1_767_225_600_123),
    )
    mirror_to_double(double.state, kalshi_update(0, "NEW-TICKER", [("0.10", "1")], [("0.80", "2")]))
    try:
        books = {(b.venue, b.instrument_id, b.side): b for u in live.poll_once() for b in u.books}
        assert books[(KALSHI, TICKER, YES)].best_ask.price == D("0.39")
        assert books[(KALSHI, TICKER, NO)].best_ask.size == D(5)
        poly = next(b for (venue, tid, _), b in books.items() if venue == POLYMARKET and tid == token)
        assert poly.best_ask.price == D("0.35") and poly.venue_ts_ms == 1_767_225_600_123
        assert double.state.kalshi_market("NEW-TICKER") is not None  # unknown markets are added
    finally:
        scenario = Scenario.demo()
        market = scenario.kalshi_markets[TICKER]
        double.state.set_kalshi_book(TICKER, market.yes_bids, market.no_bids)
        book = scenario.polymarket_books[token]
        double.state.set_polymarket_book(token, book.bids, book.asks)


def test_an_updates_line_given_as_a_function_is_built_once_when_first_read():
    built = []

    def line():
        built.append(1)
        return {"t": 5, "venue": KALSHI, "id": TICKER, "yes": [], "no": []}

    update = BookUpdate(5, (), line)
    assert built == []
    assert update.raw["t"] == 5 and update.raw["id"] == TICKER
    assert built == [1]
    assert update == BookUpdate(5, (), {"t": 6})  # the same time and books: lines are not compared
