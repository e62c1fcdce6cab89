"""The exchange double's websocket feeds (Kalshi WS v2, Polymarket market channel), read with the
plain `websockets` client: what a stream client sees, its faults, and books rebuilt from the
frames equal to the double's own."""

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kalshi_python_sync.auth import KalshiAuth
from py_clob_client.utilities import generate_orderbook_summary_hash, parse_raw_orderbook_summary
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.frames import Opcode
from websockets.sync.client import ClientConnection, connect

from exchanges.double import ExchangeDouble, Scenario
from exchanges.double.feed_messages import kalshi_deltas, kalshi_lifecycle_events, kalshi_snapshot
from exchanges.testing import kalshi_key_pair, new_kalshi_key_pair

KEY_ID = "key-feeds"
WS_PATH = "/trade-api/ws/v2"
A, B, EMPTY_NO = "KXA-26JAN01-T1", "KXB-26JAN01-T2", "KXC-26JAN01-T3"
YES_1, NO_1, YES_2, NO_2 = "1001", "1002", "2001", "2002"
WAIT_S = 5  # bound on any one wait for a frame


def _scenario() -> Scenario:
    return Scenario.from_dict(
        {
            "kalshi": {
                "markets": {
                    A: {"yes_bids": [["0.40", "100"], ["0.42", "13"]], "no_bids": [["0.55", "20"]]},
                    B: {"yes_bids": [["0.10", "5"]], "no_bids": [["0.85", "7"]]},
                    EMPTY_NO: {"yes_bids": [["0.30", "1.5"]], "no_bids": []},
                }
            },
            "polymarket": {
                "books": {
                    YES_1: {
                        "market": "0x01",
                        "bids": [["0.48", "30"], ["0.49", "20"]],
                        "asks": [["0.52", "25"]],
                    },
                    NO_1: {"market": "0x01", "bids": [["0.47", "10"]], "asks": [["0.51", "40"]]},
                    YES_2: {"market": "0x02", "bids": [["0.20", "5"]], "asks": [["0.25", "5"]]},
                    NO_2: {"market": "0x02", "bids": [["0.74", "5"]], "asks": [["0.79", "5"]]},
                }
            },
        }
    )


@pytest.fixture
def double():
    with ExchangeDouble(_scenario()) as running:
        running.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        yield running


def _kalshi_headers(private_pem: str | None = None, key_id: str = KEY_ID) -> dict[str, str]:
    return KalshiAuth(key_id, private_pem or kalshi_key_pair()[0]).create_auth_headers("GET", WS_PATH)


def _kalshi(double: ExchangeDouble, **kwargs) -> ClientConnection:
    return connect(double.kalshi_ws_url, additional_headers=_kalshi_headers(), open_timeout=WAIT_S, **kwargs)


def _frame(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=WAIT_S))


def _command(ws: ClientConnection, cmd_id: int, cmd: str, **params) -> None:
    ws.send(json.dumps({"id": cmd_id, "cmd": cmd, "params": params}))


def _subscribe(ws: ClientConnection, tickers: list[str], cmd_id: int = 1) -> tuple[int, list[dict]]:
    """Subscribe to orderbook_delta; the sid and the snapshots."""
    _command(ws, cmd_id, "subscribe", channels=["orderbook_delta"], market_tickers=tickers)
    reply = _frame(ws)
    assert reply == {
        "id": cmd_id,
        "type": "subscribed",
        "msg": {"channel": "orderbook_delta", "sid": reply["msg"]["sid"]},
    }
    return reply["msg"]["sid"], [_frame(ws) for _ in tickers]


class KalshiBooks:
    """A client's books rebuilt from snapshots and deltas, checking seq per sid."""

    def __init__(self) -> None:
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
        self.seq: dict[int, int] = {}

    def apply(self, frame: dict) -> None:
        sid, seq = frame["sid"], frame["seq"]
        if sid in self.seq:
            assert seq == self.seq[sid] + 1, f"seq {seq} after {self.seq[sid]}"
        self.seq[sid] = seq
        msg = frame["msg"]
        if frame["type"] == "orderbook_snapshot":
            self.books[msg["market_ticker"]] = {
                side: {Decimal(p): Decimal(c) for p, c in msg.get(f"{side}_dollars_fp", [])}
                for side in ("yes", "no")
            }
        else:
            assert frame["type"] == "orderbook_delta"
            levels = self.books[msg["market_ticker"]][msg["side"]]
            price = Decimal(msg["price_dollars"])
            levels[price] = levels.get(price, Decimal(0)) + Decimal(msg["delta_fp"])
            if levels[price] <= 0:
                del levels[price]

    def truth(self, double: ExchangeDouble, ticker: str) -> dict[str, dict[Decimal, Decimal]]:
        market = double.state.kalshi_market(ticker)
        return {
            side: {Decimal(p): Decimal(c) for p, c in ladder}
            for side, ladder in (("yes", market.yes_bids), ("no", market.no_bids))
        }


def _read_until_equal(ws: ClientConnection, books: KalshiBooks, double: ExchangeDouble, ticker: str) -> None:
    while books.books[ticker] != books.truth(double, ticker):
        frame = _frame(ws)
        assert frame["msg"]["market_ticker"] == ticker, frame
        books.apply(frame)


# --- Kalshi: handshake ----------------------------------------------------------------------


def _stale_headers() -> dict[str, str]:
    ts = str(int(time.time() * 1000) - 60_000)
    headers = _kalshi_headers()
    auth = KalshiAuth(KEY_ID, kalshi_key_pair()[0])
    headers["KALSHI-ACCESS-TIMESTAMP"] = ts
    headers["KALSHI-ACCESS-SIGNATURE"] = base64.b64encode(auth.sign(f"{ts}GET{WS_PATH}".encode())).decode()
    return headers


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: {}, "missing KALSHI-ACCESS-KEY"),
        (lambda: _kalshi_headers(new_kalshi_key_pair()[0]), "invalid signature"),
        (lambda: _kalshi_headers(key_id="nobody"), "unknown api key"),
        (_stale_headers, "outside the allowed window"),
        (
            lambda: {**_kalshi_headers(), "KALSHI-ACCESS-SIGNATURE": "bm90IGEgc2lnbmF0dXJl"},
            "invalid signature",
        ),
    ],
    ids=["unsigned", "other key", "unknown key", "old timestamp", "bad signature"],
)
def test_kalshi_handshake_refused_without_a_valid_signature(double, headers, reason):
    with pytest.raises(InvalidStatus) as refused:
        connect(double.kalshi_ws_url, additional_headers=headers(), open_timeout=WAIT_S)
    assert refused.value.response.status_code == 401
    assert reason in refused.value.response.body.decode()


def test_polymarket_needs_no_auth_and_other_paths_are_not_found(double):
    with connect(double.polymarket_ws_url, open_timeout=WAIT_S):
        pass
    with pytest.raises(InvalidStatus) as refused:
        connect(double.polymarket_ws_url.replace("/ws/market", "/ws/user"), open_timeout=WAIT_S)
    assert refused.value.response.status_code == 404


# --- Kalshi: books --------------------------------------------------------------------------


def test_kalshi_snapshot_then_deltas_rebuild_the_doubles_book(double):
    books = KalshiBooks()
    with _kalshi(double) as ws:
        sid, snapshots = _subscribe(ws, [A, EMPTY_NO])
        assert [s["type"] for s in snapshots] == ["orderbook_snapshot"] * 2
        assert [s["seq"] for s in snapshots] == [1, 2]
        first = snapshots[0]["msg"]
        assert first["market_ticker"] == A
        assert first["yes_dollars_fp"] == [["0.4000", "100.00"], ["0.4200", "13.00"]]
        assert first["no_dollars_fp"] == [["0.5500", "20.00"]]
        empty_no = snapshots[1]["msg"]
        assert empty_no["yes_dollars_fp"] == [["0.3000", "1.50"]]
        assert "no_dollars_fp" not in empty_no
        for snapshot in snapshots:
            books.apply(snapshot)

        # a level changed, one gone, one new; the NO side emptied
        double.state.set_kalshi_book(A, [["0.40", "46"], ["0.43", "2.25"]], [])
        deltas = [_frame(ws) for _ in range(4)]
        assert {d["type"] for d in deltas} == {"orderbook_delta"}
        assert {(d["msg"]["side"], d["msg"]["price_dollars"], d["msg"]["delta_fp"]) for d in deltas} == {
            ("yes", "0.4000", "-54.00"),
            ("yes", "0.4200", "-13.00"),
            ("yes", "0.4300", "2.25"),
            ("no", "0.5500", "-20.00"),
        }
        assert all(isinstance(d["msg"]["ts_ms"], int) for d in deltas)
        for delta in deltas:
            books.apply(delta)
        assert books.books[A] == books.truth(double, A)

        double.state.set_kalshi_book(EMPTY_NO, [["0.30", "1.5"]], [["0.60", "3"]])
        _read_until_equal(ws, books, double, EMPTY_NO)
        assert books.seq[sid] == 7


def test_kalshi_commands_and_their_errors(double):
    books = KalshiBooks()
    with _kalshi(double) as ws:
        ws.send("not json")
        assert _frame(ws)["msg"]["code"] == 1
        errors = [
            ({"id": 2, "cmd": "subscribe"}, 2),
            ({"id": 3, "cmd": "subscribe", "params": {"market_tickers": [A]}}, 3),
            ({"id": 4, "cmd": "fly", "params": {}}, 5),
            ({"id": 5, "cmd": "subscribe", "params": {"channels": ["ticker_v9"], "market_tickers": [A]}}, 8),
            ({"id": 6, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}}, 14),
            (
                {
                    "id": 7,
                    "cmd": "subscribe",
                    "params": {"channels": ["orderbook_delta"], "market_ticker": "NOPE"},
                },
                16,
            ),
            ({"id": 8, "cmd": "unsubscribe", "params": {"sids": [99]}}, 7),
            ({"id": 98, "cmd": "unsubscribe", "params": {"sids": [[1]]}}, 7),
            ({"id": 99, "cmd": "update_subscription", "params": {"sid": {}, "action": "get_snapshot"}}, 7),
            (
                {"id": 9, "cmd": "update_subscription", "params": {"sids": [1, 2], "action": "add_markets"}},
                12,
            ),
        ]
        for command, code in errors:
            ws.send(json.dumps(command))
            reply = _frame(ws)
            assert reply["type"] == "error" and reply["id"] == command["id"]
            assert reply["msg"]["code"] == code, reply

        sid, snapshots = _subscribe(ws, [A], cmd_id=10)
        books.apply(snapshots[0])
        _command(ws, 11, "update_subscription", sids=[sid], market_tickers=[B], action="add_markets")
        ok = _frame(ws)
        assert ok["type"] == "ok" and ok["id"] == 11 and ok["sid"] == sid
        assert ok["msg"]["market_tickers"] == [A, B]
        snapshot = _frame(ws)
        assert snapshot["type"] == "orderbook_snapshot" and snapshot["msg"]["market_ticker"] == B
        books.apply(snapshot)

        _command(ws, 12, "update_subscription", sid=sid, market_ticker=A, action="delete_markets")
        assert _frame(ws)["msg"]["market_tickers"] == [B]
        double.state.set_kalshi_book(A, [["0.01", "1"]], [])  # no longer watched: nothing
        double.state.set_kalshi_book(B, [["0.11", "5"]], [["0.85", "7"]])
        _read_until_equal(ws, books, double, B)

        _command(ws, 13, "update_subscription", sids=[sid], action="get_snapshot")
        assert _frame(ws)["type"] == "ok"
        again = _frame(ws)
        assert again["type"] == "orderbook_snapshot" and again["msg"]["market_ticker"] == B
        books.apply(again)  # seq goes on across the re-sent snapshot

        _command(ws, 14, "unsubscribe", sids=[sid])
        assert _frame(ws) == {"id": 14, "sid": sid, "seq": books.seq[sid], "type": "unsubscribed"}
        double.state.set_kalshi_book(B, [["0.12", "5"]], [])
        _command(ws, 15, "unsubscribe", sids=[sid])
        assert _frame(ws)["msg"]["code"] == 7  # the reply comes first: the change went nowhere


def test_kalshi_lifecycle_events(double):
    with _kalshi(double) as ws:
        _command(ws, 1, "subscribe", channels=["market_lifecycle_v2"])
        sid = _frame(ws)["msg"]["sid"]
        double.state.set_kalshi_status(B, "closed")
        double.state.set_kalshi_status(B, "determined", "yes")
        double.state.set_kalshi_status(B, "finalized", "yes")
        double.state.set_kalshi_status(A, "finalized", "no")
        frames = [_frame(ws) for _ in range(5)]
    assert [(f["type"], f["sid"], f["seq"]) for f in frames] == [
        ("market_lifecycle_v2", sid, n) for n in range(1, 6)
    ]
    events = [(f["msg"]["market_ticker"], f["msg"]["event_type"]) for f in frames]
    assert events == [
        (B, "deactivated"),
        (B, "determined"),
        (B, "settled"),
        (A, "determined"),
        (A, "settled"),
    ]
    assert frames[1]["msg"]["result"] == "yes" and frames[1]["msg"]["settlement_value"] == "1.0000"
    assert frames[3]["msg"]["result"] == "no" and frames[3]["msg"]["settlement_value"] == "0.0000"


@pytest.mark.parametrize(
    ("old", "new", "events"),
    [
        (("active", ""), ("closed", ""), ["deactivated"]),
        (("closed", ""), ("active", ""), ["activated"]),
        (("closed", ""), ("determined", "scalar"), ["determined"]),
        (("determined", "yes"), ("determined", "no"), ["determined"]),  # amended result
        (("determined", "yes"), ("finalized", "yes"), ["settled"]),
        (("closed", ""), ("disputed", ""), []),
        (("active", ""), ("active", ""), []),
    ],
)
def test_kalshi_lifecycle_mapping(old, new, events):
    sent = kalshi_lifecycle_events(A, old, new, now_s=1_785_000_000)
    assert [event["event_type"] for event in sent] == events
    for event in sent:
        if event["event_type"] == "determined":
            assert event["result"] == new[1]
            assert event.get("settlement_value") == {"yes": "1.0000", "no": "0.0000"}.get(new[1])


class _PingRecorder(ClientConnection):
    """A client connection that remembers the payloads of the pings it is sent."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pings: list[bytes] = []
        self.pinged = threading.Event()

    def process_event(self, event) -> None:
        if getattr(event, "opcode", None) is Opcode.PING:
            self.pings.append(bytes(event.data))
            self.pinged.set()
        super().process_event(event)


@st.composite
def uncrossed_kalshi_books(draw) -> tuple[dict, dict]:
    """(YES bids, NO bids) whose best bids add up to less than $1."""
    yes = draw(st.dictionaries(st.integers(1, 98), st.integers(1, 50), max_size=5))
    no = draw(st.dictionaries(st.integers(1, 99 - max(yes, default=0)), st.integers(1, 50), max_size=5))
    return tuple({Decimal(c) / 100: Decimal(n) for c, n in side.items()} for side in (yes, no))


@settings(max_examples=200, deadline=None)
@given(uncrossed_kalshi_books(), uncrossed_kalshi_books())
def test_kalshi_deltas_never_cross_the_book_between_two_uncrossed_ones(old, new):
    books = KalshiBooks()
    books.apply({"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": kalshi_snapshot(A, old)})
    for seq, msg in enumerate(kalshi_deltas(A, old, new, 0), start=2):
        books.apply({"type": "orderbook_delta", "sid": 1, "seq": seq, "msg": msg})
        yes, no = books.books[A]["yes"], books.books[A]["no"]
        assert not (yes and no and max(yes) + max(no) >= 1), msg
    assert (books.books[A]["yes"], books.books[A]["no"]) == new


def test_kalshi_heartbeat_pings_and_client_pings_answered():
    with ExchangeDouble(_scenario(), ws_heartbeat_s=0.05) as double:
        double.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        with _kalshi(double, create_connection=_PingRecorder) as ws:
            assert ws.pinged.wait(WAIT_S)
            assert ws.pings[0] == b"heartbeat"
            assert ws.ping(b"hello").wait(WAIT_S)


# --- Kalshi: faults -------------------------------------------------------------------------


def test_kalshi_gap_skips_one_seq_then_counts_on(double):
    with _kalshi(double) as ws:
        sid, _ = _subscribe(ws, [B])
        double.stream_fault("kalshi", "gap")
        seqs = []
        for size in ("6", "7"):
            double.state.set_kalshi_book(B, [["0.10", size]], [["0.85", "7"]])
            frame = _frame(ws)
            assert frame["msg"]["delta_fp"] == "1.00"
            seqs.append((frame["sid"], frame["seq"]))
        assert seqs == [(sid, 3), (sid, 4)]


def test_kalshi_drop_cuts_the_connection_and_a_new_one_subscribes(double):
    with _kalshi(double) as ws:
        _subscribe(ws, [A])
        double.stream_fault("kalshi", "drop")
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=WAIT_S)
        assert closed.value.rcvd is None  # no close frame: cut
    with _kalshi(double) as ws:
        assert _subscribe(ws, [A])[1][0]["seq"] == 1


def test_kalshi_stale_answers_pings_sends_no_data_then_catches_up(double):
    books = KalshiBooks()
    with _kalshi(double) as ws:
        _, snapshots = _subscribe(ws, [A])
        books.apply(snapshots[0])
        double.stream_fault("kalshi", "stale")
        assert [f.kind for f in double.stream_faults] == ["stale"]
        double.state.set_kalshi_book(A, [["0.41", "1"]], [["0.55", "20"]])
        assert ws.ping().wait(WAIT_S)
        _command(ws, 2, "unsubscribe", sids=[99])
        assert _frame(ws)["msg"]["code"] == 7  # commands are answered; the change was held back
        double.clear_stream_faults()
        _read_until_equal(ws, books, double, A)


def test_kalshi_malformed_frame_then_the_feed_goes_on(double):
    books = KalshiBooks()
    with _kalshi(double) as ws:
        _, snapshots = _subscribe(ws, [B])
        books.apply(snapshots[0])
        double.stream_fault("kalshi", "malformed")
        with pytest.raises(ValueError):
            json.loads(ws.recv(timeout=WAIT_S))
        double.state.set_kalshi_book(B, [], [["0.85", "8"]])
        _read_until_equal(ws, books, double, B)


def test_kalshi_subscription_error_refuses_the_next_subscribe_only(double):
    with _kalshi(double) as ws:
        double.stream_fault("kalshi", "subscription_error")
        _command(ws, 1, "subscribe", channels=["orderbook_delta"], market_tickers=[A])
        assert _frame(ws) == {"id": 1, "type": "error", "msg": {"code": 17, "msg": "Internal error"}}
        assert _subscribe(ws, [A], cmd_id=2)[1][0]["msg"]["market_ticker"] == A


def test_kalshi_slow_consumer_ends_the_subscription_with_error_25(double):
    with _kalshi(double) as ws:
        sid, _ = _subscribe(ws, [A])
        double.stream_fault("kalshi", "slow_consumer")
        assert _frame(ws) == {
            "type": "error",
            "sid": sid,
            "msg": {"code": 25, "msg": "Subscription buffer overflow"},
        }
        double.state.set_kalshi_book(A, [["0.41", "1"]], [])
        _command(ws, 2, "unsubscribe", sids=[sid])
        assert _frame(ws)["msg"]["code"] == 7  # ended: no delta, and the sid is gone
        new_sid, snapshots = _subscribe(ws, [A], cmd_id=3)
        assert new_sid != sid and snapshots[0]["msg"]["yes_dollars_fp"] == [["0.4100", "1.00"]]


def test_kalshi_a_full_outbox_ends_the_subscriptions_with_error_25():
    with ExchangeDouble(_scenario(), ws_outbox_size=3) as double:
        double.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])

        def burst(what, venue, instrument):
            # Inside the state's lock, so the writer cannot read A's book meanwhile: six lifecycle
            # events meet an outbox of three.
            if what == "book" and instrument == A:
                for status in ("closed", "active") * 3:
                    double.state.set_kalshi_status(B, status)

        with _kalshi(double) as ws:
            _command(
                ws, 1, "subscribe", channels=["orderbook_delta", "market_lifecycle_v2"], market_tickers=[A]
            )
            sids = {_frame(ws)["msg"]["sid"], _frame(ws)["msg"]["sid"]}
            assert _frame(ws)["type"] == "orderbook_snapshot"
            double.state.add_listener(burst)
            double.state.set_kalshi_book(A, [["0.41", "1"]], [])
            overflowed = set()
            while overflowed != sids:
                frame = _frame(ws)
                assert frame["type"] in ("orderbook_delta", "error"), frame
                if frame["type"] == "error":
                    assert frame["msg"]["code"] == 25
                    overflowed.add(frame["sid"])
            _command(ws, 2, "unsubscribe", sids=sorted(sids))
            assert [_frame(ws)["msg"]["code"] for _ in sids] == [7, 7]


def test_kalshi_crossed_sends_a_crossing_delta_and_leaves_the_book_as_it_was(double):
    books = KalshiBooks()
    with _kalshi(double) as ws:
        sid, snapshots = _subscribe(ws, [A, B])
        for snapshot in snapshots:
            books.apply(snapshot)
        double.stream_fault("kalshi", "crossed")
        for _ in (A, B):
            frame = _frame(ws)
            assert (frame["type"], frame["sid"]) == ("orderbook_delta", sid) and frame["msg"]["side"] == "yes"
            books.apply(frame)  # its seq follows on: only the book tells
        for ticker in (A, B):
            yes, no = books.books[ticker]["yes"], books.books[ticker]["no"]
            assert max(yes) + max(no) > 1, ticker  # one cent over the YES ask the NO bid implies
            assert books.truth(double, ticker) != books.books[ticker]
        # The double's book never had the crossing bid: a snapshot asked for is the book as it is.
        _command(ws, 2, "update_subscription", sid=sid, market_tickers=[A], action="get_snapshot")
        assert _frame(ws)["type"] == "ok"
        books.apply(_frame(ws))
        assert books.books[A] == books.truth(double, A)


def test_kalshi_legacy_form(double):
    with _kalshi(double) as ws:
        double.stream_fault("kalshi", "legacy_form")
        _, snapshots = _subscribe(ws, [A])
        msg = snapshots[0]["msg"]
        assert msg["yes"] == [[40, 100], [42, 13]] and msg["no"] == [[55, 20]]
        assert msg["yes_dollars"] == [["0.400", 100], ["0.420", 13]]
        assert "yes_dollars_fp" not in msg
        double.state.set_kalshi_book(A, [["0.40", "100"], ["0.42", "10"]], [["0.55", "20"]])
        delta = _frame(ws)["msg"]
        assert (delta["side"], delta["price"], delta["delta"]) == ("yes", 42, -3)
        assert "delta_fp" not in delta


# --- Polymarket -----------------------------------------------------------------------------


@contextlib.contextmanager
def _polymarket(
    double: ExchangeDouble, assets: list[str], *, custom: bool = False
) -> Iterator[ClientConnection]:
    with connect(double.polymarket_ws_url, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"assets_ids": assets, "type": "market", "custom_feature_enabled": custom}))
        yield ws


class PolymarketBooks:
    def __init__(self) -> None:
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}

    def apply(self, event: dict) -> None:
        if event["event_type"] == "book":
            self.books[event["asset_id"]] = {
                side: {Decimal(level["price"]): Decimal(level["size"]) for level in event[side]}
                for side in ("bids", "asks")
            }
            return
        assert event["event_type"] == "price_change"
        for change in event["price_changes"]:
            levels = self.books[change["asset_id"]]["bids" if change["side"] == "BUY" else "asks"]
            size = Decimal(change["size"])
            if size == 0:
                levels.pop(Decimal(change["price"]), None)
            else:
                levels[Decimal(change["price"])] = size

    @staticmethod
    def truth(double: ExchangeDouble, token: str) -> dict[str, dict[Decimal, Decimal]]:
        book = double.state.polymarket_book(token)
        return {
            side: {Decimal(level["price"]): Decimal(level["size"]) for level in getattr(book, side)}
            for side in ("bids", "asks")
        }


def test_polymarket_book_then_price_changes_rebuild_the_doubles_book(double):
    books = PolymarketBooks()
    with _polymarket(double, [YES_1, NO_1, "unknown-token"]) as ws:
        events = [_frame(ws), _frame(ws)]
        assert {e["asset_id"] for e in events} == {YES_1, NO_1}
        for event in events:
            assert event["event_type"] == "book" and event["market"] == "0x01"
            assert event["timestamp"].isdigit()
            rest = httpx.get(f"{double.polymarket_host}/book", params={"token_id": event["asset_id"]}).json()
            assert event == {"event_type": "book", **rest}
            assert event["hash"] == generate_orderbook_summary_hash(parse_raw_orderbook_summary(rest))
            books.apply(event)

        double.state.set_polymarket_book(YES_1, [["0.48", "35"]], [["0.52", "25"], ["0.53", "60"]])
        change = _frame(ws)
        assert change["event_type"] == "price_change" and change["market"] == "0x01"
        assert change["timestamp"] == str(double.state.polymarket_book(YES_1).timestamp_ms)
        assert [(c["asset_id"], c["side"], c["price"], c["size"]) for c in change["price_changes"]] == [
            (YES_1, "BUY", "0.48", "35"),
            (YES_1, "BUY", "0.49", "0"),
            (YES_1, "SELL", "0.53", "60"),
        ]
        assert {(c["best_bid"], c["best_ask"]) for c in change["price_changes"]} == {("0.48", "0.52")}
        # Each change's hash is its order's: one per change, none of them the book's.
        order_hashes = {c["hash"] for c in change["price_changes"]}
        book_hash = httpx.get(f"{double.polymarket_host}/book", params={"token_id": YES_1}).json()["hash"]
        assert len(order_hashes) == 3 and book_hash not in order_hashes
        books.apply(change)
        assert books.books[YES_1] == books.truth(double, YES_1)

        ws.send("PING")
        assert ws.recv(timeout=WAIT_S) == "PONG"

        ws.send(json.dumps({"operation": "unsubscribe", "assets_ids": [YES_1]}))
        ws.send(json.dumps({"operation": "subscribe", "assets_ids": [YES_2]}))
        assert _frame(ws)["asset_id"] == YES_2
        double.state.set_polymarket_book(YES_1, [], [])  # unsubscribed: nothing
        double.state.set_polymarket_book(NO_1, [["0.47", "11"]], [])
        change = _frame(ws)
        assert {c["asset_id"] for c in change["price_changes"]} == {NO_1}
        books.apply(change)
        assert books.books[NO_1] == books.truth(double, NO_1)


def test_polymarket_market_resolved_only_with_custom_features(double):
    with (
        _polymarket(double, [YES_1, YES_2], custom=True) as custom,
        _polymarket(double, [YES_1, YES_2]) as plain,
    ):
        for ws in (custom, plain):
            _frame(ws), _frame(ws)
        double.state.set_polymarket_resolved(NO_1)
        double.state.set_polymarket_book(YES_2, [["0.21", "5"]], [["0.25", "5"]])
        resolved = _frame(custom)
        assert resolved == {
            "event_type": "market_resolved",
            "id": "0x01",
            "market": "0x01",
            "assets_ids": [YES_1, NO_1],
            "outcomes": ["Yes", "No"],
            "winning_asset_id": NO_1,
            "winning_outcome": "No",
            "timestamp": resolved["timestamp"],
        }
        assert _frame(custom)["event_type"] == "price_change"
        assert _frame(plain)["event_type"] == "price_change"  # no market_resolved before it


def test_polymarket_closes_a_connection_whose_pings_stop():
    with (
        ExchangeDouble(_scenario(), polymarket_ping_timeout_s=0.2) as double,
        _polymarket(double, [YES_1]) as ws,
    ):
        assert _frame(ws)["event_type"] == "book"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=WAIT_S)
        assert closed.value.rcvd.code == 1008


def test_polymarket_refuses_a_first_frame_that_does_not_subscribe(double):
    with connect(double.polymarket_ws_url, open_timeout=WAIT_S) as ws:
        ws.send(json.dumps({"operation": "subscribe"}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd.code == 1008 and "assets_ids" in closed.value.rcvd.reason


@pytest.mark.parametrize(("kind", "code"), [("slow_consumer", 1013), ("drop", None)])
def test_polymarket_slow_consumer_and_drop_close_the_socket(double, kind, code):
    with _polymarket(double, [YES_1]) as ws:
        _frame(ws)
        double.stream_fault("polymarket", kind)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert (closed.value.rcvd.code if closed.value.rcvd else None) == code


def test_polymarket_subscription_error_closes_with_a_policy_error(double):
    double.stream_fault("polymarket", "subscription_error")
    with _polymarket(double, [YES_1]) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd.code == 1008
    with _polymarket(double, [YES_1]) as ws:
        assert _frame(ws)["event_type"] == "book"


def test_polymarket_stale_malformed_and_legacy_form(double):
    books = PolymarketBooks()
    with _polymarket(double, [YES_2]) as ws:
        books.apply(_frame(ws))
        double.stream_fault("polymarket", "stale")
        double.state.set_polymarket_book(YES_2, [["0.20", "6"]], [["0.25", "5"]])
        ws.send("PING")
        assert ws.recv(timeout=WAIT_S) == "PONG"
        double.stream_fault("polymarket", "malformed")
        with pytest.raises(ValueError):
            json.loads(ws.recv(timeout=WAIT_S))  # the held-back change is not sent before it
        double.clear_stream_faults()
        books.apply(_frame(ws))
        assert books.books[YES_2] == books.truth(double, YES_2)

        double.stream_fault("polymarket", "legacy_form")
        double.state.set_polymarket_book(YES_2, [["0.20", "6"]], [])
        legacy = _frame(ws)
    assert legacy["asset_id"] == YES_2 and "price_changes" not in legacy
    assert legacy["changes"] == [{"price": "0.25", "size": "0", "side": "SELL"}]


def test_polymarket_bad_hash_resends_books_the_next_ones_with_a_wrong_hash(double):
    with _polymarket(double, [YES_1, NO_1]) as ws:
        first = {event["asset_id"]: event for event in (_frame(ws), _frame(ws))}
        double.stream_fault("polymarket", "bad_hash")
        assert [(f.kind, f.times) for f in double.stream_faults] == [("bad_hash", 1)]
        resent = [_frame(ws), _frame(ws)]
        assert [event["event_type"] for event in resent] == ["book", "book"]
        wrong = [event for event in resent if event["hash"] != first[event["asset_id"]]["hash"]]
        assert len(wrong) == 1  # one book: `times`
        assert wrong[0]["hash"] != generate_orderbook_summary_hash(parse_raw_orderbook_summary(wrong[0]))
        assert {**wrong[0], "hash": ""} == {**first[wrong[0]["asset_id"]], "hash": ""}  # the book is right
        assert double.stream_faults == []
        ws.send(json.dumps({"operation": "unsubscribe", "assets_ids": [YES_1]}))
        ws.send(json.dumps({"operation": "subscribe", "assets_ids": [YES_1]}))
        assert _frame(ws) == first[YES_1]


def test_stream_fault_arguments_are_checked(double):
    with pytest.raises(ValueError, match="kind must be one of"):
        double.stream_fault("kalshi", "fire")
    with pytest.raises(ValueError, match="venue must be"):
        double.stream_fault("nyse", "drop")
    with pytest.raises(ValueError, match="Kalshi's only"):
        double.stream_fault("polymarket", "gap")
    with pytest.raises(ValueError, match="Kalshi's only"):
        double.stream_fault("polymarket", "crossed")
    with pytest.raises(ValueError, match="Polymarket's only"):
        double.stream_fault("kalshi", "bad_hash")


# --- stopping -------------------------------------------------------------------------------


def test_stop_closes_every_feed_connection_and_leaves_nothing_behind():
    double = ExchangeDouble(_scenario()).start()
    double.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
    with _kalshi(double) as kalshi, _polymarket(double, [YES_1]) as polymarket:
        _subscribe(kalshi, [A])
        _frame(polymarket)
        assert double.ws_connection_count() == 2
        double.stop()
        for ws in (kalshi, polymarket):
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=WAIT_S)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("exchange-double")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", double.ws_port), timeout=WAIT_S).close()
