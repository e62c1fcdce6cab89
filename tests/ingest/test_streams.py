"""The stream source against the exchange double: books from both venues' feeds reach the ingest
pipeline, a venue whose feed is down is polled over REST until its feed is back, recording lines
replay as the same books, and the streams' state is published for /healthz."""

import io
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import DatabaseError

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.double import ExchangeDouble, KalshiMarket, Scenario
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from exchanges.results import MarketStatus
from exchanges.streams import ACTIVATED, CLOSE_TIME_CHANGED, CLOSED, DETERMINED, LifecycleEvent
from exchanges.streams.connection import StreamSettings
from exchanges.testing import kalshi_key_pair
from ingest.detector import PairSpec
from ingest.health import stream_statuses
from ingest.models import MarketPair, SuccessSpan
from ingest.recording import read_recording, to_book, token_sides
from ingest.services import IngestPipeline
from ingest.sources import LiveHosts
from ingest.stream_books import StreamedStatus, fresh_legs, publish_books
from ingest.streams import NO_KALSHI_KEY, PENDING_LIMIT, KalshiStreamKey, StreamSource, status_after

KEY_ID = "ingest-stream-key"
TICKER = "FED-25DEC-T4.00"
CONDITION = "0x" + "a1" * 32
WAIT_S = 10.0
FAST = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.1, ping_interval_s=0.5)


@pytest.fixture
def double():
    with ExchangeDouble(Scenario.demo(), ws_heartbeat_s=0.5) as running:
        running.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        yield running


@pytest.fixture
def pair(double, db):
    """The demo's FED pair (it crosses: the pipeline opens a span on it)."""
    books = double.state.snapshot().polymarket_books
    yes, no = [token for token, book in books.items() if book.market == CONDITION]
    return PairSpec("FED", TICKER, yes, no, kalshi_taker_schedule(TICKER), polymarket_taker_schedule())


def stream_source(double, pairs, *, key=True, **options):
    return StreamSource(
        pairs,
        hosts=LiveHosts.of_double(double),
        kalshi_key=KalshiStreamKey(KEY_ID, kalshi_key_pair()[0]) if key else None,
        settings=FAST,
        poll_interval_s=0.05,
        **options,
    )


def from_rest(update):
    """A REST Polymarket book carries the venue's market details; a stream book does not."""
    return bool(update.books[0].extra)


def run_until(source, condition, what, on_update=lambda update: None):
    """Iterate `source` until `condition(update)`; the update that met it."""
    deadline = time.monotonic() + WAIT_S
    for update in source:
        on_update(update)
        if condition(update):
            return update
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
    raise AssertionError(f"the source ended before {what}")


def poly_book_is(update, token, ask):
    return (
        update.books[0].venue == POLYMARKET
        and update.books[0].instrument_id == token
        and update.books[0].best_ask.price == ask
    )


@pytest.mark.django_db
def test_the_pipeline_follows_the_streams_and_polls_rest_while_a_stream_is_down(double, pair):
    pipeline = IngestPipeline([pair], dispatch_intent=lambda i: 0, dispatch_span=lambda s: 0)
    pipeline.restore()
    source = stream_source(double, [pair])
    updates = iter(source)
    try:
        run_until(
            updates,
            lambda u: source.stream_live(POLYMARKET) and not from_rest(u),
            "a stream book",
            pipeline.on_update,
        )
        double.state.set_polymarket_book(pair.poly_no_token, [["0.40", "10"]], [["0.51", "7"]])
        run_until(
            updates,
            lambda u: poly_book_is(u, pair.poly_no_token, D("0.51")) and not from_rest(u),
            "the change over the stream",
            pipeline.on_update,
        )

        # The Polymarket feed goes down and stays down: its books come over REST meanwhile.
        double.stream_fault(POLYMARKET, "subscription_error", times=1_000_000)
        double.stream_fault(POLYMARKET, "drop")
        double.state.set_polymarket_book(pair.poly_no_token, [["0.40", "10"]], [["0.53", "7"]])
        run_until(
            updates,
            lambda u: poly_book_is(u, pair.poly_no_token, D("0.53")) and from_rest(u),
            "the change over REST",
            pipeline.on_update,
        )
        assert not source.stream_live(POLYMARKET) and source.stream_live(KALSHI)
        assert pipeline.detector.books[(POLYMARKET, pair.poly_no_token, NO)].best_ask.price == D("0.53")

        # The feed is back: the books come over the stream again.
        double.clear_stream_faults()
        double.state.set_polymarket_book(pair.poly_no_token, [["0.40", "10"]], [["0.54", "7"]])
        run_until(
            updates,
            lambda u: poly_book_is(u, pair.poly_no_token, D("0.54")) and not from_rest(u),
            "the stream again",
            pipeline.on_update,
        )
        assert source.stream_live(POLYMARKET)
        assert pipeline.detector.books[(KALSHI, pair.kalshi_ticker, YES)].venue == KALSHI
    finally:
        source.stop()
        updates.close()


def _best_bid(book) -> D | None:
    # Between a change's deltas a side can be empty for a moment (the double sends shrinking levels first).
    return book.best_bid.price if book.best_bid is not None else None


@pytest.mark.django_db
def test_a_stream_updates_line_read_after_later_changes_is_still_its_own(double, pair):
    """A stream update's recording line is built when first read: read after the stream has
    moved on, it is the line of the update's own books, at the update's time."""
    source = stream_source(double, [pair])
    updates = iter(source)
    try:
        run_until(updates, lambda u: source.stream_live(KALSHI), "the Kalshi stream live")
        double.state.set_kalshi_book(pair.kalshi_ticker, [["0.44", "3"], ["0.45", "9"]], [["0.52", "4"]])
        held = run_until(
            updates,
            lambda u: u.books[0].venue == KALSHI and _best_bid(u.books[0]) == D("0.45"),
            "the first change",
        )
        double.state.set_kalshi_book(pair.kalshi_ticker, [["0.46", "1"]], [["0.50", "2"]])
        run_until(
            updates,
            lambda u: u.books[0].venue == KALSHI and _best_bid(u.books[0]) == D("0.46"),
            "the next change",
        )
        assert held.raw["yes"] == [["0.4500", "9.00"], ["0.4400", "3.00"]] and held.raw["t"] == held.now_ms
        assert to_book(held.raw, token_sides([pair])) == held.books
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_stream_updates_record_as_lines_that_replay_as_the_same_books(double, pair):
    source = stream_source(double, [pair])
    updates = iter(source)
    sides = token_sides([pair])
    try:

        def checked(update):
            assert to_book(update.raw, sides) == update.books
            assert update.raw["t"] == update.now_ms

        run_until(updates, lambda u: source.stream_live(KALSHI), "the Kalshi stream live", checked)
        double.state.set_kalshi_book(pair.kalshi_ticker, [["0.44", "3"], ["0.45", "9"]], [["0.52", "4"]])
        delta_update = run_until(
            updates,
            lambda u: (
                u.books[0].venue == KALSHI and u.raw["yes"][:1] == [["0.4500", "9.00"]] and "vts" in u.raw
            ),
            "the Kalshi change, stamped by the venue",
            checked,
        )
        assert delta_update.raw["vts"] <= delta_update.raw["t"]
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_feeds_up_within_rest_after_s_are_never_polled_over_rest(double, pair):
    """REST reads count at a venue (the double's book moves are set off by reads): a start
    whose feeds come up in time reads no book over REST, a venue without a feed is still polled."""
    source = stream_source(double, [pair], key=False, rest_after_s=60.0)
    updates = iter(source)
    try:
        run_until(updates, lambda u: u.books[0].venue == KALSHI, "a Kalshi book over REST")
        run_until(
            updates,
            lambda u: source.stream_live(POLYMARKET) and u.books[0].venue == POLYMARKET,
            "a Polymarket book from its feed",
        )
    finally:
        source.stop()
        updates.close()
    assert {venue for venue, _path in double.call_counts} == {KALSHI}


@pytest.mark.django_db
def test_without_a_kalshi_key_kalshi_is_polled_and_the_reason_given(double, pair):
    source = stream_source(double, [pair], key=False)
    updates = iter(source)
    try:
        assert source.why_no_stream == {KALSHI: NO_KALSHI_KEY}
        assert set(source.clients) == {POLYMARKET}
        run_until(updates, lambda u: u.books[0].venue == KALSHI, "a Kalshi book over REST")
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_the_streams_state_is_published_for_healthz(double, pair):
    source = stream_source(double, [pair], status_every_s=0.05, restate_every_s=0.05, process="test-ingest")
    updates = iter(source)
    try:
        run_until(
            updates,
            lambda u: (
                {(s["venue"], s["state"]) for s in stream_statuses()}
                == {(KALSHI, "live"), (POLYMARKET, "live")}
            ),
            "both streams published live",
        )
        kalshi = next(s for s in stream_statuses() if s["venue"] == KALSHI)
        assert kalshi["instruments"] == 1 and kalshi["stale_instruments"] == 0 and kalshi["updates"] >= 1
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_a_market_the_live_stream_never_delivers_is_polled_over_rest(double, pair):
    """A ticker the venue's feed refused (it did not exist when subscribed) is polled over REST
    while the feed streams the other markets."""
    new_ticker = "FED-25DEC-T9.99"
    new_pair = PairSpec(
        "NEW", new_ticker, pair.poly_yes_token, pair.poly_no_token,
        kalshi_taker_schedule(new_ticker), polymarket_taker_schedule(),
    )  # fmt: skip
    source = stream_source(double, [pair, new_pair], stale_rest_after_s=0.2)
    updates = iter(source)
    try:
        run_until(
            updates,
            lambda u: source.stream_live(KALSHI) and u.books[0].instrument_id == TICKER,
            "the Kalshi feed live, the known market streaming",
        )
        double.state.add_kalshi_market(
            KalshiMarket(new_ticker, yes_bids=[["0.31", "4"]], no_bids=[["0.60", "2"]])
        )
        update = run_until(
            updates, lambda u: u.books[0].instrument_id == new_ticker, "the refused market over REST"
        )
        assert update.books[0].best_bid.price == D("0.31")
        assert source.stream_live(KALSHI) and source.clients[KALSHI].status()["reconnects"] == 0
    finally:
        source.stop()
        updates.close()


def shared_status(venue, instrument, side):
    """The market status the deciding processes would read now (ingest.stream_books)."""
    leg = (venue, instrument, side)
    return fresh_legs([leg], now_ms=time.time_ns() // 1_000_000)[leg][1]


@pytest.mark.django_db
def test_market_statuses_follow_the_feeds_and_are_forgotten_while_a_feed_is_down(double, pair):
    source = stream_source(double, [pair], restate_every_s=0.05)
    updates = iter(source)
    kalshi = (KALSHI, TICKER, YES)
    try:
        run_until(
            updates,
            lambda u: shared_status(*kalshi) and shared_status(POLYMARKET, pair.poly_no_token, NO),
            "both markets' statuses shared: Kalshi's asked once, Polymarket's from its book",
        )
        assert double.call_counts[(KALSHI, "/trade-api/v2/markets")] == 1
        assert shared_status(*kalshi).tradeable

        double.state.set_kalshi_status(TICKER, "closed")  # the feed says `deactivated`
        run_until(updates, lambda u: (s := shared_status(*kalshi)) and not s.tradeable, "the market closed")
        assert shared_status(*kalshi).venue_status == "closed"
        double.state.set_kalshi_status(TICKER, "active")  # `activated`
        run_until(
            updates, lambda u: (s := shared_status(*kalshi)) and s.tradeable, "the market trading again"
        )

        double.state.set_polymarket_resolved(pair.poly_yes_token)  # `market_resolved`
        run_until(
            updates,
            lambda u: (s := shared_status(POLYMARKET, pair.poly_no_token, NO)) and not s.tradeable,
            "the Polymarket market resolved",
        )
        resolved = shared_status(POLYMARKET, pair.poly_no_token, NO)
        assert (resolved.resolved, resolved.result) == (True, NO)

        # The Kalshi feed down: its status is not vouched for (events may be missed meanwhile).
        double.stream_fault(KALSHI, "subscription_error", times=1_000_000)
        double.stream_fault(KALSHI, "drop")
        run_until(updates, lambda u: source.market_status(KALSHI, TICKER) is None, "the status forgotten")
        double.clear_stream_faults()
        run_until(
            updates, lambda u: source.market_status(KALSHI, TICKER) is not None, "asked again once live"
        )
        assert double.call_counts[(KALSHI, "/trade-api/v2/markets")] == 2
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_a_polymarket_status_goes_stale_once_the_venue_sends_nothing_of_its_book(double, pair):
    """Restating a book the venue may have dropped does not vouch for its market trading: once
    the venue's last data of the book is older than the max age, decisions ask the venue (the
    book itself is still restated and used)."""
    later_ms = 0  # the clock jumps ahead, as if the venue had sent nothing for that long
    source = stream_source(
        double, [pair], restate_every_s=0.05, wall_clock_ms=lambda: time.time_ns() // 1_000_000 + later_ms
    )
    updates = iter(source)
    token = pair.poly_no_token
    try:
        run_until(updates, lambda u: shared_status(POLYMARKET, token, NO), "the token's status shared")
        later_ms = 10_000
        jumped_ms = time.time_ns() // 1_000_000 + later_ms
        run_until(
            updates,
            lambda u: any(b.instrument_id == token and b.received_ts_ms >= jumped_ms for b in u.books),
            "the quiet book restated",
        )
        leg = (POLYMARKET, token, NO)
        book, status = fresh_legs([leg], now_ms=time.time_ns() // 1_000_000 + later_ms)[leg]
        assert book is not None and status is None
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_kalshi_statuses_are_asked_again_when_its_lifecycle_subscription_was_renewed(double, pair):
    """Events sent while the venue had ended the lifecycle subscription are lost, although the
    socket stayed up: what the connection knew is asked of the venue again."""
    source = stream_source(double, [pair], restate_every_s=0.05)
    updates = iter(source)
    markets_call = (KALSHI, "/trade-api/v2/markets")
    try:
        run_until(updates, lambda u: source.market_status(KALSHI, TICKER), "the status known")
        assert double.call_counts[markets_call] == 1
        double.stream_fault(KALSHI, "slow_consumer")  # error 25 ends every subscription
        run_until(updates, lambda u: double.call_counts[markets_call] == 2, "the status asked again")
        assert source.clients[KALSHI].counters["reconnects"] == 0
    finally:
        source.stop()
        updates.close()


@pytest.mark.django_db
def test_a_kalshi_ticker_the_venue_does_not_know_is_asked_of_it_once_per_connection(double, pair):
    unknown = replace(pair, opportunity_key="GONE", kalshi_ticker="GONE-25DEC-T1")
    source = stream_source(double, [pair, unknown], stale_rest_after_s=0.0)
    updates = iter(source)
    kalshi_rest = source._rest[KALSHI]
    try:
        run_until(updates, lambda u: source.market_status(KALSHI, TICKER), "the known ticker's status")
        rounds = kalshi_rest.rounds
        run_until(updates, lambda u: kalshi_rest.rounds >= rounds + 3, "three more REST loops")
        assert double.call_counts[(KALSHI, "/trade-api/v2/markets")] == 1
    finally:
        source.stop()
        updates.close()


def test_a_streamed_status_is_not_taken_past_its_market_close_time():
    """Kalshi's feed sends no event when a market reaches its close time: from then on the
    venue is asked (a closed or resolved status still counts)."""
    now_ms = time.time_ns() // 1_000_000
    leg = (KALSHI, TICKER, YES)

    def shared(closes_in_s: float, tradeable: bool = True):
        close_time = datetime.fromtimestamp(now_ms / 1000 + closes_in_s, UTC)
        status = MarketStatus(
            TICKER, "active" if tradeable else "closed", tradeable, False, None, close_time, KALSHI
        )
        publish_books((), [StreamedStatus(status, now_ms)])
        return fresh_legs([leg], now_ms=now_ms)[leg][1]

    assert shared(60).tradeable
    assert shared(-1) is None
    assert shared(-1, tradeable=False).venue_status == "closed"


def test_a_kalshi_close_time_follows_its_events_and_an_early_activation_leaves_it_to_rest():
    closes = datetime(2026, 12, 1, tzinfo=UTC)
    moved = datetime(2026, 12, 3, tzinfo=UTC)
    known = MarketStatus(TICKER, "active", True, False, None, closes, KALSHI)

    after = status_after(LifecycleEvent(KALSHI, TICKER, CLOSE_TIME_CHANGED, None, close_time=moved), known)
    assert (after.close_time, after.tradeable) == (moved, True)
    closed = status_after(LifecycleEvent(KALSHI, TICKER, CLOSED, None), after)
    assert (closed.close_time, closed.tradeable) == (moved, False)
    # Not known on this connection yet: the connection's REST batch call tells it (close time too).
    assert (
        status_after(LifecycleEvent(KALSHI, TICKER, CLOSE_TIME_CHANGED, None, close_time=moved), None) is None
    )
    assert status_after(LifecycleEvent(KALSHI, TICKER, ACTIVATED, None), None) is None


@pytest.mark.django_db
def test_a_failing_lifecycle_handler_is_logged_and_the_feed_goes_on(double, pair, caplog):
    told = []

    def on_lifecycle(event):
        told.append(event)
        if len(told) == 1:
            raise DatabaseError("the database went away")

    source = stream_source(double, [pair], on_lifecycle=on_lifecycle)
    updates = iter(source)
    try:
        run_until(updates, lambda u: source.stream_live(POLYMARKET), "the Polymarket feed live")
        double.state.set_polymarket_resolved(pair.poly_yes_token)
        run_until(updates, lambda u: len(told) == 2, "both tokens' events, the first one failing")
        run_until(updates, lambda u: True, "books after the failure")
    finally:
        source.stop()
        updates.close()
    assert {(e.instrument_id, e.result) for e in told} == {
        (pair.poly_yes_token, YES),
        (pair.poly_no_token, NO),
    }
    assert "ingest.streams lifecycle_failed event=LifecycleEvent(" in caplog.text


@pytest.mark.django_db
def test_every_lifecycle_event_waiting_when_the_source_stops_is_delivered(double, pair):
    told = []
    source = stream_source(double, [pair], on_lifecycle=told.append)
    events = [
        LifecycleEvent(POLYMARKET, pair.poly_yes_token, DETERMINED, YES, venue_ts_ms)
        for venue_ts_ms in range(PENDING_LIMIT + 1)
    ]
    for event in events:  # as the stream clients hand them over
        source._lifecycle_arrived(event)
    source.stop()
    assert list(source) == []
    assert told == events


@pytest.fixture
def fed_row(pair):
    return MarketPair.objects.create(
        opportunity_key="FED",
        kalshi_ticker=TICKER,
        poly_yes_token=pair.poly_yes_token,
        poly_no_token=pair.poly_no_token,
    )


def test_record_writes_the_streams_books_and_says_why_kalshi_is_polled(
    double, fed_row, tmp_path, monkeypatch
):
    monkeypatch.delenv("INGEST_KALSHI_KEY_ID", raising=False)
    out, path = io.StringIO(), tmp_path / "streams.jsonl.gz"
    call_command(
        "record", "--out", str(path), "--duration-s", "1", "--double-url", double.base_url,
        "--kalshi-ws-url", double.kalshi_ws_url, "--polymarket-ws-url", double.polymarket_ws_url,
        stdout=out,
    )  # fmt: skip
    assert "kalshi: no stream (INGEST_KALSHI_KEY_ID and INGEST_KALSHI_PRIVATE_KEY_PATH are not both set)" in (
        out.getvalue()
    )
    _, updates = read_recording(path)
    lines = list(updates)
    assert {line["id"] for line in lines if line["venue"] == POLYMARKET} == {
        fed_row.poly_yes_token,
        fed_row.poly_no_token,
    }
    assert any(line["venue"] == KALSHI for line in lines)


def test_ingest_run_live_follows_both_feeds_with_a_kalshi_key(double, fed_row, tmp_path, monkeypatch):
    key_path = tmp_path / "kalshi.pem"
    key_path.write_text(kalshi_key_pair()[0])
    monkeypatch.setenv("INGEST_KALSHI_KEY_ID", KEY_ID)
    monkeypatch.setenv("INGEST_KALSHI_PRIVATE_KEY_PATH", str(key_path))
    out = io.StringIO()
    call_command(
        "ingest_run", "--live", "--double-url", double.base_url, "--duration-s", "2.5",
        "--kalshi-ws-url", double.kalshi_ws_url, "--polymarket-ws-url", double.polymarket_ws_url,
        "--stats-every-s", "100", stdout=out,
    )  # fmt: skip
    assert "no stream" not in out.getvalue()
    # One span, still open: quiet books are restated often enough never to look skewed or stale.
    span = SuccessSpan.objects.get()
    assert span.opportunity_key == "FED" and span.peak_edge_cents == D(3) and span.is_open


@pytest.mark.django_db(transaction=True)
def test_ingest_run_live_follows_a_pair_imported_while_it_runs(double, tmp_path, monkeypatch):
    """A pair activated while live ingest runs is subscribed and watched without a restart."""
    key_path = tmp_path / "kalshi.pem"
    key_path.write_text(kalshi_key_pair()[0])
    monkeypatch.setenv("INGEST_KALSHI_KEY_ID", KEY_ID)
    monkeypatch.setenv("INGEST_KALSHI_PRIVATE_KEY_PATH", str(key_path))
    books = double.state.snapshot().polymarket_books
    fed_yes, fed_no = [token for token, book in books.items() if book.market == CONDITION]
    btc_yes, btc_no = [token for token, book in books.items() if book.market == "0x" + "b2" * 32]
    MarketPair.objects.create(
        opportunity_key="FED", kalshi_ticker=TICKER, poly_yes_token=fed_yes, poly_no_token=fed_no
    )
    btc = MarketPair.objects.create(
        opportunity_key="BTC",
        kalshi_ticker="BTC-25DEC31-B100K",
        poly_yes_token=btc_yes,
        poly_no_token=btc_no,
        active=False,
    )
    threading.Timer(1.0, lambda: MarketPair.objects.filter(pk=btc.pk).update(active=True)).start()
    out = io.StringIO()
    call_command(
        "ingest_run", "--live", "--double-url", double.base_url, "--duration-s", "3",
        "--kalshi-ws-url", double.kalshi_ws_url, "--polymarket-ws-url", double.polymarket_ws_url,
        "--pairs-every-s", "0.2", "--stats-every-s", "100", stdout=out,
    )  # fmt: skip
    assert "ingest live: 1 pairs" in out.getvalue()
    assert "ingest live: now 2 pairs" in out.getvalue()
    [polymarket] = [s for s in stream_statuses() if s["venue"] == POLYMARKET]
    assert polymarket["instruments"] == 4  # both pairs' tokens subscribed
