"""Both stream clients against the exchange double's websocket feeds: after every fault the double
can inject, the client's books equal the double's own books; subscriptions follow the instruments;
lifecycle events arrive; the status says what the stream is doing."""

import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from kalshi_python_sync.auth import KalshiAuth
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from exchanges.books import KALSHI, NO, POLYMARKET, YES, kalshi_books
from exchanges.double import ExchangeDouble, KalshiMarket, Scenario
from exchanges.double.state import PolymarketBook
from exchanges.streams import CLOSE_TIME_CHANGED, DETERMINED, LifecycleEvent
from exchanges.streams.connection import StreamSettings, parse_frame
from exchanges.streams.kalshi import KalshiStreamClient
from exchanges.streams.polymarket import PolymarketStreamBook, PolymarketStreamClient
from exchanges.testing import kalshi_key_pair
from ingest.recording import to_book

D = Decimal
KEY_ID = "stream-test-key"
TICKERS = ("KXFED-26JUL-T4.25", "KXFED-26JUL-T4.50")
CONDITION = "0x" + "bd" * 32
TOKENS = ("7132", "5211")  # one market: YES and NO tokens
WAIT_S = 10.0  # the bound on every wait; a pass takes a fraction of it
FAST = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, ping_interval_s=0.5)
# fault -> the counter of the client's status that shows it was noticed (None: nothing to notice)
KALSHI_FAULTS = {
    "drop": "reconnects",
    "gap": "resnapshots",
    "malformed": None,
    "subscription_error": "reconnects",  # a refused subscribe starts over after the backoff
    "slow_consumer": "resnapshots",
    "legacy_form": "reconnects",
    "crossed": "resnapshots",
}
POLYMARKET_FAULTS = {
    "drop": "reconnects",
    "malformed": None,
    "subscription_error": "reconnects",
    "slow_consumer": "reconnects",
    "legacy_form": None,
    "bad_hash": "resnapshots",
}


def scenario() -> Scenario:
    return Scenario(
        kalshi_markets={
            t: KalshiMarket(t, yes_bids=[["0.40", "10"], ["0.38", "5"]], no_bids=[["0.55", "20"]])
            for t in TICKERS
        },
        polymarket_books={
            TOKENS[0]: PolymarketBook(TOKENS[0], CONDITION, bids=[["0.48", "30"]], asks=[["0.52", "25"]]),
            TOKENS[1]: PolymarketBook(TOKENS[1], CONDITION, bids=[["0.47", "30"]], asks=[["0.53", "25"]]),
        },
    )


@pytest.fixture
def double():
    with ExchangeDouble(scenario(), ws_heartbeat_s=0.5) as running:
        running.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        yield running


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.01)


def kalshi_truth(double, ticker):
    market = double.state.kalshi_market(ticker)
    ladder = lambda levels: sorted(((D(p), D(s)) for p, s in levels), reverse=True)  # noqa: E731
    return ladder(market.yes_bids), ladder(market.no_bids)


def polymarket_truth(double, token):
    book = double.state.polymarket_book(token)
    ladder = lambda levels: [(D(lv["price"]), D(lv["size"])) for lv in levels]  # noqa: E731
    return sorted(ladder(book.bids), reverse=True), sorted(ladder(book.asks))


def books_equal(client, double, instrument):
    truth = kalshi_truth if client.venue == KALSHI else polymarket_truth
    return client.ladders(instrument) == truth(double, instrument)


@pytest.fixture
def events():
    return []


@pytest.fixture
def kalshi(double, events):
    client = KalshiStreamClient(
        double.kalshi_ws_url,
        api_key_id=KEY_ID,
        private_key_pem=kalshi_key_pair()[0],
        settings=FAST,
        on_lifecycle=events.append,
    )
    client.set_instruments({TICKERS[0]: YES})
    client.start()
    yield client
    client.stop()


@pytest.fixture
def polymarket(double, events):
    client = PolymarketStreamClient(double.polymarket_ws_url, settings=FAST, on_lifecycle=events.append)
    client.set_instruments({TOKENS[0]: YES, TOKENS[1]: NO})
    client.start()
    yield client
    client.stop()


def move_kalshi(double, step):
    double.state.set_kalshi_book(
        TICKERS[0],
        [["0.40", str(10 + step)], [f"0.{30 + step}", "7"]],  # one level changes, one moves
        [["0.55", "20"], ["0.57", str(1 + step)]] if step % 2 else [["0.56", "4"]],
    )


def move_polymarket(double, step):
    double.state.set_polymarket_book(
        TOKENS[0], [["0.48", str(30 + step)], [f"0.4{step % 7}", "2"]], [["0.52", "25"]]
    )


@pytest.mark.parametrize("fault", KALSHI_FAULTS)
def test_kalshi_books_equal_the_doubles_after_each_fault(double, kalshi, fault):
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "the first snapshot")
    double.stream_fault(KALSHI, fault)
    if fault in ("subscription_error", "legacy_form"):
        double.stream_fault(KALSHI, "drop")  # the next connection subscribes (in the old form)
    for step in range(1, 4):
        move_kalshi(double, step)
        wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), f"the book after {fault}, move {step}")
    status = kalshi.status()
    assert status["state"] == "live"
    if KALSHI_FAULTS[fault]:
        assert status[KALSHI_FAULTS[fault]] >= 1


@pytest.mark.parametrize("fault", POLYMARKET_FAULTS)
def test_polymarket_books_equal_the_doubles_after_each_fault(double, polymarket, fault):
    wait_for(lambda: all(books_equal(polymarket, double, t) for t in TOKENS), "the first books")
    double.stream_fault(POLYMARKET, fault)
    if fault in ("subscription_error",):
        double.stream_fault(POLYMARKET, "drop")
    for step in range(1, 4):
        move_polymarket(double, step)
        wait_for(lambda: books_equal(polymarket, double, TOKENS[0]), f"the book after {fault}, move {step}")
    assert books_equal(polymarket, double, TOKENS[1])
    if POLYMARKET_FAULTS[fault]:
        assert polymarket.status()[POLYMARKET_FAULTS[fault]] >= 1


@pytest.mark.parametrize("venue", [KALSHI, POLYMARKET])
def test_a_frozen_feed_is_given_up_on_and_its_books_withheld_until_it_flows_again(double, events, venue):
    settings = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, ping_interval_s=0.2, watchdog_s=0.3)
    if venue == KALSHI:
        client = KalshiStreamClient(
            double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0], settings=settings
        )
        instrument, move = TICKERS[0], move_kalshi
    else:
        client = PolymarketStreamClient(double.polymarket_ws_url, settings=settings)
        instrument, move = TOKENS[0], move_polymarket
    client.set_instruments({instrument: YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, instrument), "the first book")
        double.stream_fault(venue, "stale")
        move(double, 1)
        wait_for(lambda: client.status()["reconnects"] >= 1, "the watchdog's reconnect")
        wait_for(lambda: client.ladders(instrument) is None, "the book withheld")
        assert not client.live
        double.clear_stream_faults()
        wait_for(lambda: books_equal(client, double, instrument), "the book after the feed flows again")
        assert client.live
    finally:
        client.stop()


def test_kalshi_subscription_follows_the_instruments(double, kalshi):
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "the first snapshot")
    kalshi.set_instruments({TICKERS[0]: YES, TICKERS[1]: YES})
    wait_for(lambda: books_equal(kalshi, double, TICKERS[1]), "the added market's snapshot")
    kalshi.set_instruments({TICKERS[1]: YES})
    wait_for(lambda: kalshi.ladders(TICKERS[0]) is None, "the removed market forgotten")
    double.state.set_kalshi_book(TICKERS[1], [["0.41", "3"]], [])
    wait_for(lambda: books_equal(kalshi, double, TICKERS[1]), "the remaining market's change")
    assert kalshi.status()["instruments"] == 1


def test_polymarket_subscription_follows_the_instruments(double, polymarket):
    wait_for(lambda: books_equal(polymarket, double, TOKENS[1]), "the first books")
    polymarket.set_instruments({TOKENS[0]: YES})
    wait_for(lambda: polymarket.ladders(TOKENS[1]) is None, "the removed token forgotten")
    polymarket.set_instruments({TOKENS[0]: YES, TOKENS[1]: NO})
    wait_for(lambda: books_equal(polymarket, double, TOKENS[1]), "the token's book again")
    updates = polymarket.get(0)
    assert {u.instrument_id for u in updates} == set(TOKENS)
    assert [b.side for u in updates if u.instrument_id == TOKENS[1] for b in u.books][-1] == NO


def test_lifecycle_events_reach_the_callback(double, kalshi, polymarket, events):
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "the first snapshot")
    wait_for(lambda: books_equal(polymarket, double, TOKENS[0]), "the first books")
    double.state.set_kalshi_status(TICKERS[0], "determined", "no")
    double.state.set_polymarket_resolved(TOKENS[1])
    wanted = {
        (KALSHI, TICKERS[0], DETERMINED, "no"),
        (POLYMARKET, TOKENS[0], DETERMINED, "no"),
        (POLYMARKET, TOKENS[1], DETERMINED, "yes"),
    }
    wait_for(lambda: wanted <= {(e.venue, e.instrument_id, e.kind, e.result) for e in events}, "the events")
    assert all(isinstance(e, LifecycleEvent) for e in events)


def test_status_has_every_field_ingest_health_documents(double, kalshi):
    wait_for(lambda: kalshi.live, "the stream live")
    status = kalshi.status()
    assert set(status) == {
        "venue", "shard", "state", "connected_since_ms", "last_message_ms", "last_data_ms", "instruments",
        "stale_instruments", "messages", "updates", "reconnects", "resnapshots", "hash_checks_stopped",
        "lag_ms_p50",
    }  # fmt: skip
    assert status["venue"] == KALSHI and status["instruments"] == 1 and status["stale_instruments"] == 0


def test_a_slow_consumer_gets_each_changed_book_once_as_it_is_now(double, polymarket):
    wait_for(lambda: all(books_equal(polymarket, double, t) for t in TOKENS), "the first books")
    polymarket.get(0)
    for step in range(1, 6):
        move_polymarket(double, step)
        wait_for(lambda: books_equal(polymarket, double, TOKENS[0]), f"move {step} received")
    books = polymarket.get(0)  # five changes waited: one book, the latest
    assert [b.instrument_id for b in books] == [TOKENS[0]]
    assert books[0].books[0].bids[0].size == D(35)


def test_a_book_crossed_at_the_venue_is_withheld_until_a_fresh_book_is_whole(double):
    settings = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, resnapshot_timeout_s=0.3)
    client = PolymarketStreamClient(double.polymarket_ws_url, settings=settings)
    client.set_instruments({TOKENS[0]: YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the first book")
        double.state.set_polymarket_book(TOKENS[0], [["0.55", "1"]], [["0.52", "25"]])
        wait_for(lambda: client.status()["stale_instruments"] == 1, "the crossed book withheld")
        assert client.ladders(TOKENS[0]) is None
        double.state.set_polymarket_book(TOKENS[0], [["0.50", "1"]], [["0.52", "25"]])
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the book once it is whole")
        # Asked for once per connection (no loop): the fresh book, crossed too, waited for the
        # book to change or the watchdog's reconnect (on a busy machine one may come first).
        status = client.status()
        assert 1 <= status["resnapshots"] <= 1 + status["reconnects"]
    finally:
        client.stop()


def test_a_kalshi_book_crossed_at_the_venue_is_withheld_until_a_fresh_book_is_whole(double):
    settings = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, resnapshot_timeout_s=0.3)
    client = KalshiStreamClient(
        double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0], settings=settings
    )
    client.set_instruments({TICKERS[0]: YES, TICKERS[1]: YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the first book")
        # YES bid 0.46 + NO bid 0.55 = $1.01: the venue would have matched them.
        double.state.set_kalshi_book(TICKERS[0], [["0.46", "1"]], [["0.55", "20"]])
        wait_for(
            lambda: client.stale_instruments() == [TICKERS[0]] and books_equal(client, double, TICKERS[1]),
            "the crossed book withheld, the other market streaming",
        )
        assert client.ladders(TICKERS[0]) is None
        double.state.set_kalshi_book(TICKERS[0], [["0.44", "1"]], [["0.55", "20"]])
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the book once it is whole")
        # Asked for once per connection: a snapshot crossed too waited for the watchdog's
        # reconnect, whose snapshot (of the book as it is by then) made it whole.
        status = client.status()
        assert status["resnapshots"] == status["reconnects"] >= 1
    finally:
        client.stop()


def test_a_crossing_kalshi_delta_is_resnapshotted_on_the_same_connection(double, kalshi):
    kalshi.set_instruments({TICKERS[0]: YES, TICKERS[1]: YES})
    wait_for(lambda: all(books_equal(kalshi, double, t) for t in TICKERS), "the first books")
    double.stream_fault(KALSHI, "crossed")
    wait_for(lambda: kalshi.status()["resnapshots"] == 2, "a snapshot asked for each crossed book")
    wait_for(lambda: all(books_equal(kalshi, double, t) for t in TICKERS), "the books whole again")
    assert kalshi.status()["reconnects"] == 0


def test_a_polymarket_book_whose_hash_fails_is_asked_for_again(double, polymarket, caplog):
    wait_for(lambda: all(books_equal(polymarket, double, t) for t in TOKENS), "the first books")
    double.stream_fault(POLYMARKET, "bad_hash")
    wait_for(lambda: polymarket.status()["resnapshots"] == 1, "the resnapshot asked")
    move_polymarket(double, 1)
    wait_for(lambda: all(books_equal(polymarket, double, t) for t in TOKENS), "the books whole again")
    status = polymarket.status()
    assert status["hash_checks_stopped"] == 0 and status["reconnects"] == 0
    assert "stream.bad_hash venue=polymarket" in caplog.text


def test_hashes_that_fail_in_a_fresh_book_too_stop_being_checked_on_that_connection(double, caplog):
    """A venue whose hashes our computation never verifies must not be resnapshotted forever."""
    client = PolymarketStreamClient(double.polymarket_ws_url, settings=FAST)
    client.set_instruments({TOKENS[0]: YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the first book")
        double.stream_fault(POLYMARKET, "bad_hash", times=3)
        # The book, its resnapshot, and the resnapshot asked once the checks stopped: all wrong.
        wait_for(lambda: double.stream_faults == [], "three books with a wrong hash sent")
        move_polymarket(double, 1)
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the book taken unchecked")
        status = client.status()
        assert (status["resnapshots"], status["hash_checks_stopped"], status["reconnects"]) == (2, 1, 0)
        assert caplog.text.count("stream.hash_checks_stopped venue=polymarket") == 1
        # A new connection checks again.
        double.stream_fault(POLYMARKET, "drop")
        wait_for(lambda: client.status()["reconnects"] == 1 and client.live, "the new connection")
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the book on the new connection")
        double.stream_fault(POLYMARKET, "bad_hash")
        wait_for(lambda: client.status()["resnapshots"] == 3, "the bad hash noticed again")
        wait_for(lambda: books_equal(client, double, TOKENS[0]), "the book whole again")
        assert client.status()["hash_checks_stopped"] == 1
    finally:
        client.stop()


def test_kalshi_signs_each_reconnect_afresh():
    """The double refuses a signature older than the scenario's auth window: a client that signed
    once could not connect again once the window has passed."""
    with ExchangeDouble(replace(scenario(), auth_window_s=0.3), ws_heartbeat_s=0.5) as double:
        double.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        first_headers = KalshiAuth(KEY_ID, kalshi_key_pair()[0]).create_auth_headers(
            "GET", "/trade-api/ws/v2"
        )
        client = KalshiStreamClient(
            double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0], settings=FAST
        )
        client.set_instruments({TICKERS[0]: YES})
        client.start()
        try:
            wait_for(lambda: books_equal(client, double, TICKERS[0]), "the first snapshot")
            time.sleep(0.5)  # past the window of the first connection's signature
            with pytest.raises(InvalidStatus) as refused:
                connect(double.kalshi_ws_url, additional_headers=first_headers, open_timeout=WAIT_S)
            assert refused.value.response.status_code == 401
            double.stream_fault(KALSHI, "drop")
            move_kalshi(double, 1)
            wait_for(lambda: client.status()["reconnects"] >= 1, "the reconnect")
            wait_for(
                lambda: client.live and books_equal(client, double, TICKERS[0]), "live again, book right"
            )
        finally:
            client.stop()


def test_polymarket_pings_keep_a_quiet_connection_open():
    """The double closes a Polymarket socket that sent no PING for 0.3 s; the client's PINGs keep
    its connection open over a span with no data at all, where a silent socket is closed."""
    with ExchangeDouble(scenario(), polymarket_ping_timeout_s=0.3) as double:
        settings = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, ping_interval_s=0.1)
        client = PolymarketStreamClient(double.polymarket_ws_url, settings=settings)
        client.set_instruments({TOKENS[0]: YES})
        client.start()
        try:
            wait_for(lambda: books_equal(client, double, TOKENS[0]), "the first book")
            messages = client.status()["messages"]
            quiet_until = time.monotonic() + 1.5
            with connect(double.polymarket_ws_url, open_timeout=WAIT_S) as silent:
                silent.send(json.dumps({"assets_ids": [TOKENS[1]], "type": "market"}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        silent.recv(timeout=WAIT_S)  # its book, then nothing until closed
            assert closed.value.rcvd.code == 1008
            time.sleep(max(0.0, quiet_until - time.monotonic()))  # the span: 1.5 s, or until then
            status = client.status()
            assert status["reconnects"] == 0 and status["state"] == "live"
            assert status["messages"] > messages  # PONGs only: no book data meanwhile
            assert status["updates"] == 1
            wait_for(lambda: double.ws_connection_count(POLYMARKET) == 1, "the silent socket gone, not ours")
        finally:
            client.stop()


def test_a_wrongly_signed_kalshi_client_never_goes_live(double):
    from exchanges.testing import new_kalshi_key_pair

    client = KalshiStreamClient(
        double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=new_kalshi_key_pair()[0], settings=FAST
    )
    client.set_instruments({TICKERS[0]: YES})
    client.start()
    try:
        wait_for(lambda: client.status()["reconnects"] >= 2, "refused handshakes retried")
        assert not client.live and client.ladders(TICKERS[0]) is None
    finally:
        stopper = threading.Thread(target=client.stop)
        stopper.start()
        stopper.join(WAIT_S)
        assert not stopper.is_alive()


def test_a_market_resolved_without_its_winner_tells_nothing(double, polymarket, events, caplog):
    wait_for(lambda: all(books_equal(polymarket, double, t) for t in TOKENS), "the first books")
    resolved = {"event_type": "market_resolved", "market": CONDITION, "assets_ids": list(TOKENS)}
    polymarket._on_resolved(resolved)  # no winning_asset_id
    polymarket._on_resolved({**resolved, "winning_asset_id": "9999"})  # not one of the market's
    assert events == []
    assert caplog.text.count(f"assets={TOKENS[0]},{TOKENS[1]} winning_asset_id=") == 2
    double.state.set_polymarket_resolved(TOKENS[0])
    wait_for(lambda: len(events) == 2, "the real resolution")
    assert {(e.instrument_id, e.result) for e in events} == {(TOKENS[0], YES), (TOKENS[1], NO)}


def test_an_instrument_that_never_had_a_book_does_not_hurry_the_watchdog(double):
    """A market the venue never sends a book for (unknown, closed, still followed) must not
    make every resnapshot of another book end the connection after `resnapshot_timeout_s`."""
    settings = StreamSettings(backoff_base_s=0.02, backoff_max_s=0.2, resnapshot_timeout_s=30.0)
    client = KalshiStreamClient(
        double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0], settings=settings
    )
    client.set_instruments({TICKERS[0]: YES, "KXNOPE-1": YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the first book")
        double.stream_fault(KALSHI, "gap")
        move_kalshi(double, 1)
        wait_for(lambda: client.status()["resnapshots"] == 1, "the resnapshot asked")
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the book whole again")
        # The book asked for again is whole: the deadline is the frozen-feed one.
        assert client._watchdog_deadline_s() - time.monotonic() > settings.resnapshot_timeout_s
        assert client.status()["reconnects"] == 0 and client.stale_instruments() == ["KXNOPE-1"]
    finally:
        client.stop()


def test_kalshi_tickers_the_venue_refuses_are_dropped_and_the_rest_stream(double, kalshi, caplog):
    # Subscribed at once: the refused ticker is dropped from the first subscribe.
    client = KalshiStreamClient(
        double.kalshi_ws_url, api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0], settings=FAST
    )
    client.set_instruments({TICKERS[0]: YES, "KXNOPE-1": YES})
    client.start()
    try:
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the known market's book")
        move_kalshi(double, 1)
        wait_for(lambda: books_equal(client, double, TICKERS[0]), "the known market's change")
        status = client.status()
        assert status["state"] == "live" and status["reconnects"] == 0 and status["stale_instruments"] == 1
        assert client.stale_instruments() == ["KXNOPE-1"]
    finally:
        client.stop()
    # Added to a live subscription: the known ticker added with it still streams.
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "the first snapshot")
    kalshi.set_instruments({TICKERS[0]: YES, TICKERS[1]: YES, "KXNOPE-2": YES})
    wait_for(lambda: books_equal(kalshi, double, TICKERS[1]), "the added known market's book")
    assert kalshi.status()["reconnects"] == 0 and kalshi.stale_instruments() == ["KXNOPE-2"]
    assert "stream.tickers_refused venue=kalshi tickers=KXNOPE-1:" in caplog.text
    assert "stream.tickers_refused venue=kalshi tickers=KXNOPE-2:" in caplog.text


class WatchedBook(PolymarketStreamBook):
    """Notes, on its client, whether the client's lock is held while its books are built, and
    each recording line built."""

    __slots__ = ("client",)

    def _build_books(self):
        self.client.lock_held_while_building.append(self.client._lock.locked())
        return super()._build_books()

    def _build_line(self):
        self.client.lines_built.append(self.instrument_id)
        return super()._build_line()


class BuildWatchingClient(PolymarketStreamClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock_held_while_building: list[bool] = []
        self.lines_built: list[str] = []

    def _stream_book(self, instrument, copy, received_ms, venue_ts_ms):
        book = WatchedBook(instrument, received_ms, venue_ts_ms, copy)
        book.client = self
        return book


def test_handed_over_books_are_built_when_read_without_holding_up_the_feed(double):
    """The consumer's books are built when it reads them, once, outside the lock the feed takes
    for every message; a recording line only if it is read."""
    client = BuildWatchingClient(double.polymarket_ws_url, settings=FAST)
    client.set_instruments({TOKENS[0]: YES, TOKENS[1]: NO})
    client.start()
    try:
        wait_for(lambda: all(books_equal(client, double, t) for t in TOKENS), "the first books")
        handed = client.get(0)
        assert {b.instrument_id for b in handed} == set(TOKENS)
        assert client.lock_held_while_building == []  # nothing built yet
        books = [b.books for b in handed]
        assert [b.books for b in handed] == books and client.lock_held_while_building == [False] * 2
        restated = client.current_books(1)
        assert {b.books[0].instrument_id for b in restated} == set(TOKENS)
        assert client.lock_held_while_building == [False] * 4
        assert client.lines_built == []  # no line read, none built
        for _ in range(2):
            assert {b.line["id"] for b in handed} == set(TOKENS)
        assert sorted(client.lines_built) == sorted(TOKENS)  # read twice, built once
    finally:
        client.stop()


def test_a_handed_over_book_read_after_later_changes_is_the_book_as_handed_over(double, kalshi):
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "the first snapshot")
    kalshi.get(0)
    move_kalshi(double, 1)
    wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), "move 1 received")
    (handed,) = kalshi.get(0)
    yes_then, no_then = kalshi_truth(double, TICKERS[0])
    for step in (2, 3):
        move_kalshi(double, step)
        wait_for(lambda: books_equal(kalshi, double, TICKERS[0]), f"move {step} received")
    times = {"received_ts_ms": handed.received_ms, "venue_ts_ms": handed.venue_ts_ms}
    expected = kalshi_books(TICKERS[0], yes_then, no_then, **times)
    assert handed.books == (expected[YES], expected[NO])
    assert to_book(handed.line, {}) == handed.books and handed.line["t"] == handed.received_ms


def test_frames_are_read_as_json_reads_them():
    """orjson reads the frames; what it refuses and json reads is read by json, as before."""
    assert parse_frame(b'{"seq": 7, "price_dollars": "0.4500"}') == {"seq": 7, "price_dollars": "0.4500"}
    frame = '{"size": NaN, "id": 123456789012345678901234567890}'
    assert repr(parse_frame(frame)) == repr(json.loads(frame))
    with pytest.raises(ValueError):
        parse_frame("{not json")
    with pytest.raises(ValueError):
        parse_frame(b"\xff\xfe")


def test_a_kalshi_close_date_update_is_a_close_time_event(events):
    client = KalshiStreamClient(
        "ws://127.0.0.1:9/unused",
        api_key_id=KEY_ID,
        private_key_pem=kalshi_key_pair()[0],
        on_lifecycle=events.append,
    )
    client._subscribed.add(TICKERS[0])
    message = {"market_ticker": TICKERS[0], "event_type": "close_date_updated", "close_ts": 1785000000}
    client._on_lifecycle_message({"type": "market_lifecycle_v2", "sid": 1, "seq": 2, "msg": message})
    [event] = events
    assert (event.kind, event.close_time) == (CLOSE_TIME_CHANGED, datetime.fromtimestamp(1785000000, UTC))
