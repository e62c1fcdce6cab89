"""The double's market-data websockets: Kalshi WS v2 and the Polymarket CLOB market channel.

One loopback port serves both (`/trade-api/ws/v2` and `/ws/market`), from the same state the REST
endpoints read. Each connection has two threads: the library's handler thread reads the client's
frames, and a writer thread is the only one that builds and sends data frames. The state's
listener (called under the state's lock) only puts work on the connection's bounded outbox:
"this book changed" (one pending mark per instrument, so a burst of changes costs one entry) or a
lifecycle event. The writer then reads the book as it is now and diffs it against the ladder it
last sent for that instrument, so what a client builds from snapshot + deltas is the state's
book. An outbox that fills up is a slow consumer: Kalshi ends the connection's subscriptions with
error 25, Polymarket closes the socket.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from websockets.exceptions import ConcurrencyError, ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from . import feed_messages as fm
from .auth import verify_kalshi
from .state import BOOK_CHANGED, KALSHI, LIFECYCLE_CHANGED, POLYMARKET, ExchangeState

logger = logging.getLogger("exchanges.double")

KALSHI_WS_PATH = "/trade-api/ws/v2"
POLYMARKET_WS_PATH = "/ws/market"
HEARTBEAT = b"heartbeat"
OUTBOX_SIZE = 10_000  # pending work items per connection before it counts as a slow consumer
# Work items handled, or frames built, before they are written out in one go: one system call
# for a burst instead of one per frame (which capped a connection at ~5,000 frames/s).
BATCH = 500
ORDERBOOK = "orderbook_delta"
LIFECYCLE = "market_lifecycle_v2"
CHANNELS = (ORDERBOOK, LIFECYCLE)
# What a frame cut short looks like: the start of a data frame, then nothing.
MALFORMED_FRAME = {
    KALSHI: '{"type": "orderbook_delta", "sid": 1, "seq": ',
    POLYMARKET: '[{"event_type": "book", ',
}

STREAM_FAULT_KINDS = (
    "drop",
    "gap",
    "stale",
    "malformed",
    "subscription_error",
    "slow_consumer",
    "legacy_form",
    "crossed",
    "bad_hash",
)
# Faults that stay in force until cleared; the others act once, on the connections open now
# (subscription_error: on the next subscribe, of any connection; bad_hash: on the next `book`
# events, of any connection).
LASTING_FAULTS = ("stale", "legacy_form")
# The hash a `bad_hash` fault sends: a SHA1, but of no book.
WRONG_HASH = "0" * 40
ONE_DOLLAR = Decimal(1)
CENT = Decimal("0.01")
ONE_CONTRACT = Decimal(1)


@dataclass(frozen=True)
class StreamFault:
    """A fault of one venue's feed (see STREAM_FAULT_KINDS and ExchangeDouble.stream_fault)."""

    venue: str
    kind: str
    times: int = 1  # subscription_error: how many subscribes are refused; bad_hash: how many books

    def __post_init__(self) -> None:
        if self.venue not in (KALSHI, POLYMARKET):
            raise ValueError(f"venue must be 'kalshi' or 'polymarket', not {self.venue!r}")
        if self.kind not in STREAM_FAULT_KINDS:
            raise ValueError(f"kind must be one of {STREAM_FAULT_KINDS}, not {self.kind!r}")
        if self.kind == "gap" and self.venue != KALSHI:
            raise ValueError("kind 'gap' is Kalshi's only: Polymarket's feed has no sequence numbers")
        if self.kind == "crossed" and self.venue != KALSHI:
            raise ValueError(
                "kind 'crossed' is Kalshi's only: cross a Polymarket book with state.set_polymarket_book"
            )
        if self.kind == "bad_hash" and self.venue != POLYMARKET:
            raise ValueError("kind 'bad_hash' is Polymarket's only: Kalshi's feed sends no book hash")
        if not 1 <= self.times <= 1_000_000:
            raise ValueError("times must be a whole number from 1 to 1000000")


class _Outbox:
    """A bounded queue of work for a connection's writer. `mark` keeps one pending entry per key."""

    CLOSED = object()

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: deque[Any] = deque()
        self._marked: set[Any] = set()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, *, force: bool = False) -> bool:
        """False when full (unless forced) or closed."""
        with self._cond:
            if self._closed or (len(self._items) >= self._size and not force):
                return False
            self._items.append(item)
            self._cond.notify()
            return True

    def mark(self, key: Any) -> bool:
        with self._cond:
            if key in self._marked:
                return True
            if self._closed or len(self._items) >= self._size:
                return False
            self._marked.add(key)
            self._items.append(("mark", key))
            self._cond.notify()
            return True

    def take(self, timeout: float) -> Any:
        """The next item; None after `timeout` seconds with none; CLOSED once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(max(timeout, 0))
            if self._closed:
                return self.CLOSED
            if not self._items:
                return None
            item = self._items.popleft()
            if item[0] == "mark":
                self._marked.discard(item[1])
            return item

    def drop_data(self) -> None:
        """Forget the pending data work; the client's commands stay."""
        with self._cond:
            self._items = deque(item for item in self._items if item[0] == "command")
            self._marked.clear()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Session:
    """One client connection: the reader runs in the handler thread, `write_loop` in its own."""

    venue: str

    def __init__(self, feeds: FeedServer, conn: ServerConnection) -> None:
        self.feeds = feeds
        self.state = feeds.state
        self.conn = conn
        self.outbox = _Outbox(feeds.outbox_size)
        self.watched: frozenset[str] = frozenset()  # instruments whose changes it wants
        self.overflowed = False  # the outbox was full: a slow consumer
        self.deferred: list[Any] = []  # data work held back while the feed is stale
        self.wants_lifecycle = False  # Kalshi: has a market_lifecycle_v2 subscription
        self.frames: list[str] = []  # built, not yet written

    # --- called by the listener (under the state's lock): never blocks -----------------------

    def book_changed(self, instrument: str) -> None:
        if not self.outbox.mark(("book", instrument)):
            self.overflow()

    def push(self, item: Any) -> None:
        if not self.outbox.put(item):
            self.overflow()

    def overflow(self) -> None:
        self.overflowed = True
        self.outbox.put(("wake",), force=True)

    # --- writer -------------------------------------------------------------------------------

    def write_loop(self) -> None:
        next_ping = time.monotonic() + self.feeds.heartbeat_s
        try:
            while True:
                item = self.outbox.take(next_ping - time.monotonic())
                handled = 0
                while item is not None and item is not _Outbox.CLOSED:
                    self.step(item)
                    handled += 1
                    if handled >= BATCH or len(self.frames) >= BATCH:
                        break
                    item = self.outbox.take(0)
                self.flush()
                if item is _Outbox.CLOSED:
                    return
                if self.venue == KALSHI and time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + self.feeds.heartbeat_s
                    with contextlib.suppress(ConcurrencyError):  # the last one is not answered yet
                        self.conn.ping(HEARTBEAT)
                elif self.venue != KALSHI:
                    next_ping = time.monotonic() + self.feeds.heartbeat_s
        except ConnectionClosed:
            return
        except Exception:
            logger.exception("event=double_feed_writer_failed venue=%s", self.venue)
            self.conn.close(CloseCode.INTERNAL_ERROR, "exchange double feed error")

    def step(self, item: Any) -> None:
        if self.overflowed:
            self.overflowed = False
            self.outbox.drop_data()
            self.deferred.clear()
            self.on_overflow()
            if item[0] != "command":
                return
        self.handle(item)

    def flush(self) -> None:
        """Write the frames built so far, in order, in one go."""
        if not self.frames:
            return
        frames, self.frames = self.frames, []
        with self.conn.send_context():
            for frame in frames:
                self.conn.protocol.send_text(frame.encode())

    def handle(self, item: Any) -> None:
        kind = item[0]
        if kind == "raw":
            self.frames.append(item[1])
        elif kind == "command":
            self.command(item[1])
        elif kind == "resume":
            deferred, self.deferred = self.deferred, []
            for work in deferred:
                self.data(work)
        elif kind == "slow_consumer":
            self.on_overflow()
        elif kind == "gap":
            self.skip_seq()
        elif kind == "crossed":
            self.cross_books()
        elif kind == "bad_hash":
            self.resend_books()
        elif kind != "wake":
            self.data(item)

    def data(self, item: Any) -> None:
        """Data work: held back while the venue's feed is stale."""
        if self.feeds.in_force(self.venue, "stale"):
            if item[0] != "mark" or item not in self.deferred:
                self.deferred.append(item)
            return
        self.send_data(item)

    def send_json(self, frame: dict[str, Any]) -> None:
        self.frames.append(json.dumps(frame, separators=(",", ":")))

    # per venue
    def command(self, text: str) -> None:
        raise NotImplementedError

    def send_data(self, item: Any) -> None:
        raise NotImplementedError

    def on_overflow(self) -> None:
        raise NotImplementedError

    def skip_seq(self) -> None:
        """Only Kalshi numbers its messages."""

    def cross_books(self) -> None:
        """Only Kalshi's feed is crossed on request."""

    def resend_books(self) -> None:
        """Only Polymarket's feed sends book hashes."""

    def read_loop(self) -> None:
        raise NotImplementedError


@dataclass
class _Sub:
    channel: str
    seq: int = 0
    # orderbook_delta: ticker -> the book as last sent (None: a snapshot is owed)
    books: dict[str, fm.KalshiBook | None] = field(default_factory=dict)


def _crossed(book: fm.KalshiBook) -> fm.KalshiBook:
    """`book` with one bid more, one cent over the YES ask (or NO ask) the other side implies, at
    most $0.99; an empty book gets a YES and a NO bid that add up to $1.01."""
    yes, no = book
    if not yes and not no:
        return {Decimal("0.50"): ONE_CONTRACT}, {Decimal("0.51"): ONE_CONTRACT}
    if no:
        price = min(ONE_DOLLAR - CENT, ONE_DOLLAR - max(no) + CENT)
        return {**yes, price: yes.get(price, fm.ZERO) + ONE_CONTRACT}, no
    price = min(ONE_DOLLAR - CENT, ONE_DOLLAR - max(yes) + CENT)
    return yes, {**no, price: no.get(price, fm.ZERO) + ONE_CONTRACT}


class _KalshiSession(_Session):
    venue = KALSHI

    def __init__(self, feeds: FeedServer, conn: ServerConnection) -> None:
        super().__init__(feeds, conn)
        self.subs: dict[int, _Sub] = {}
        self.sids = itertools.count(1)
        self.gap = False

    def read_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in self.conn:
                self.outbox.put(("command", message), force=True)

    def _watch(self) -> None:
        self.watched = frozenset(t for sub in self.subs.values() for t in sub.books)
        self.wants_lifecycle = any(sub.channel == LIFECYCLE for sub in self.subs.values())

    def reply_error(self, cmd_id: Any, code: int, message: str, sid: int | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "msg": {"code": code, "msg": message}}
        if cmd_id is not None:
            frame["id"] = cmd_id
        if sid is not None:
            frame["sid"] = sid
        self.send_json(frame)

    def command(self, text: str) -> None:
        try:
            cmd = json.loads(text)
        except ValueError:
            cmd = None
        if not isinstance(cmd, dict):
            self.reply_error(None, 1, "Unprocessable: a command is a JSON object")
            return
        cmd_id, name, params = cmd.get("id"), cmd.get("cmd"), cmd.get("params")
        if name not in ("subscribe", "update_subscription", "unsubscribe"):
            self.reply_error(cmd_id, 5, f"Unknown command: {name!r}")
            return
        if not isinstance(params, dict):
            self.reply_error(cmd_id, 2, "Params required")
            return
        getattr(self, name)(cmd_id, params)

    def _tickers(self, cmd_id: Any, params: dict[str, Any]) -> list[str] | None:
        """The command's market_ticker / market_tickers, each known; None after an error reply."""
        tickers = params.get("market_tickers")
        if tickers is None and params.get("market_ticker"):
            tickers = [params["market_ticker"]]
        if not tickers or not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
            self.reply_error(cmd_id, 14, "Market ticker required: market_ticker or market_tickers")
            return None
        unknown = [t for t in tickers if self.state.kalshi_market(t) is None]
        if unknown:
            self.reply_error(cmd_id, 16, f"Market not found: {', '.join(unknown)}")
            return None
        return list(dict.fromkeys(tickers))

    def subscribe(self, cmd_id: Any, params: dict[str, Any]) -> None:
        channels = params.get("channels")
        if not channels or not isinstance(channels, list):
            self.reply_error(cmd_id, 3, "Channels required")
            return
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            self.reply_error(cmd_id, 8, f"Unknown channel name: {unknown[0]}")
            return
        tickers: list[str] = []
        if ORDERBOOK in channels:
            found = self._tickers(cmd_id, params)
            if found is None:
                return
            tickers = found
        if self.feeds.take_subscription_error(KALSHI):
            self.reply_error(cmd_id, 17, "Internal error")
            return
        sids = {channel: next(self.sids) for channel in dict.fromkeys(channels)}
        for channel, sid in sids.items():
            self.subs[sid] = _Sub(channel, books=dict.fromkeys(tickers) if channel == ORDERBOOK else {})
        self._watch()  # before the replies: a change right after one is sent is not missed
        for channel, sid in sids.items():
            self.send_json({"id": cmd_id, "type": "subscribed", "msg": {"channel": channel, "sid": sid}})
        for snapshot in [("snapshot", sids[ORDERBOOK], t) for t in tickers] if ORDERBOOK in sids else []:
            self.data(snapshot)

    def _one_sid(self, cmd_id: Any, params: dict[str, Any]) -> int | None:
        sids = params.get("sids")
        if sids is not None:
            if not isinstance(sids, list) or len(sids) != 1:
                self.reply_error(cmd_id, 12, "Exactly one sid is required")
                return None
            sid = sids[0]
        else:
            sid = params.get("sid")
        if not isinstance(sid, int) or sid not in self.subs:
            self.reply_error(cmd_id, 7, f"Unknown sid: {sid}")
            return None
        return sid

    def update_subscription(self, cmd_id: Any, params: dict[str, Any]) -> None:
        sid = self._one_sid(cmd_id, params)
        if sid is None:
            return
        sub = self.subs[sid]
        action = params.get("action")
        if not action:
            self.reply_error(cmd_id, 15, "Action required")
            return
        if action not in ("add_markets", "delete_markets", "get_snapshot"):
            self.reply_error(cmd_id, 13, f"Unsupported action: {action}")
            return
        if sub.channel != ORDERBOOK:
            self.reply_error(cmd_id, 11, f"Invalid parameter: {LIFECYCLE} has no market list")
            return
        if action == "get_snapshot" and not (params.get("market_tickers") or params.get("market_ticker")):
            tickers = list(sub.books)
        else:
            found = self._tickers(cmd_id, params)
            if found is None:
                return
            tickers = found
        if action == "delete_markets":
            for ticker in tickers:
                sub.books.pop(ticker, None)
        else:
            for ticker in tickers:
                sub.books[ticker] = None
        self._watch()
        msg = {"market_tickers": list(sub.books)}
        self.send_json({"id": cmd_id, "sid": sid, "seq": sub.seq, "type": "ok", "msg": msg})
        if action != "delete_markets":
            for ticker in tickers:
                self.data(("snapshot", sid, ticker))

    def unsubscribe(self, cmd_id: Any, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not sids or not isinstance(sids, list):
            self.reply_error(cmd_id, 4, "Sids required")
            return
        for sid in sids:
            sub = self.subs.pop(sid, None) if isinstance(sid, int) else None
            if sub is None:
                self.reply_error(cmd_id, 7, f"Unknown sid: {sid}")
                continue
            self._watch()
            self.send_json({"id": cmd_id, "sid": sid, "seq": sub.seq, "type": "unsubscribed"})

    # --- data ---------------------------------------------------------------------------------

    def _send_seq(self, sid: int, frame_type: str, msg: dict[str, Any]) -> None:
        sub = self.subs[sid]
        sub.seq += 2 if self.gap else 1
        self.gap = False
        self.send_json({"type": frame_type, "sid": sid, "seq": sub.seq, "msg": msg})

    def skip_seq(self) -> None:
        self.gap = True

    def cross_books(self) -> None:
        """A delta that crosses each book sent (a bid that adds up to $1 or more with the other
        side's best). The state's book never had it: the book sent stays as it was, so a client
        that keeps the crossed book stays wrong."""
        ts_ms = self.state.now_ms()
        for sid, sub in list(self.subs.items()):
            for ticker, book in list(sub.books.items()):
                if book is None:
                    continue  # its snapshot is still to come
                crossing = _crossed(book)
                for msg in fm.kalshi_deltas(ticker, book, crossing, ts_ms):
                    self._send_seq(sid, "orderbook_delta", msg)

    def send_data(self, item: Any) -> None:
        legacy = self.feeds.in_force(KALSHI, "legacy_form")
        if item[0] == "snapshot":
            _, sid, ticker = item
            sub = self.subs.get(sid)
            if sub is None or ticker not in sub.books:
                return  # unsubscribed meanwhile
            market = self.state.kalshi_market(ticker)
            if market is None:
                return
            sub.books[ticker] = book = fm.kalshi_book(market)
            self._send_seq(sid, "orderbook_snapshot", fm.kalshi_snapshot(ticker, book, legacy=legacy))
        elif item[0] == "mark":
            ticker = item[1][1]
            market = self.state.kalshi_market(ticker)
            if market is None:
                return
            new = fm.kalshi_book(market)
            ts_ms = self.state.now_ms()
            for sid, sub in list(self.subs.items()):
                old = sub.books.get(ticker)
                if ticker not in sub.books or old is None:
                    continue  # not watched here, or its snapshot is still to come
                sub.books[ticker] = new
                for msg in fm.kalshi_deltas(ticker, old, new, ts_ms, legacy=legacy):
                    self._send_seq(sid, "orderbook_delta", msg)
        elif item[0] == "lifecycle":
            for sid, sub in list(self.subs.items()):
                if sub.channel == LIFECYCLE:
                    for msg in item[1]:
                        self._send_seq(sid, LIFECYCLE, msg)

    def on_overflow(self) -> None:
        """Error 25 ends each subscription; the client subscribes again."""
        for sid in list(self.subs):
            self.reply_error(None, 25, "Subscription buffer overflow", sid=sid)
        self.subs.clear()
        self._watch()


class _PolymarketSession(_Session):
    venue = POLYMARKET

    def __init__(self, feeds: FeedServer, conn: ServerConnection) -> None:
        super().__init__(feeds, conn)
        self.books: dict[str, fm.PolymarketLadders | None] = {}  # token -> as last sent
        self.custom_features = False

    def read_loop(self) -> None:
        """Frames in; PING answered here (even while the feed is stale); closed when PINGs stop."""
        last_ping = time.monotonic()
        subscribed = False
        try:
            while True:
                remaining = last_ping + self.feeds.polymarket_ping_timeout_s - time.monotonic()
                try:
                    message = self.conn.recv(timeout=max(remaining, 0))
                except TimeoutError:
                    self.conn.close(CloseCode.POLICY_VIOLATION, "no PING within the timeout")
                    return
                if message == "PING":
                    last_ping = time.monotonic()
                    self.conn.send("PONG")
                    continue
                problem = self._frame(message, first=not subscribed)
                if problem:
                    self.conn.close(CloseCode.POLICY_VIOLATION, problem)
                    return
                subscribed = True
        except ConnectionClosed:
            return

    def _frame(self, message: str | bytes, *, first: bool) -> str | None:
        """Queue the subscription change a frame asks for; the reason it is refused, if it is."""
        try:
            frame = json.loads(message)
        except ValueError:
            return "frame is neither PING nor JSON"
        if not isinstance(frame, dict):
            return "frame must be a JSON object"
        ids = frame.get("assets_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return "assets_ids must be a list of token ids"
        if first:
            if str(frame.get("type", "")).lower() != "market":
                return 'first frame must subscribe: {"assets_ids": [...], "type": "market"}'
            operation = "subscribe"
        else:
            operation = frame.get("operation")
            if operation not in ("subscribe", "unsubscribe"):
                return "operation must be subscribe or unsubscribe"
        if operation == "subscribe" and self.feeds.take_subscription_error(POLYMARKET):
            return "subscription refused"
        custom = bool(frame.get("custom_feature_enabled", False))
        self.outbox.put(("command", (operation, ids, custom)), force=True)
        return None

    def command(self, request: tuple[str, list[str], bool]) -> None:
        operation, ids, custom = request
        if operation == "unsubscribe":
            for token in ids:
                self.books.pop(token, None)
            self.watched = frozenset(self.books)
            return
        self.custom_features = self.custom_features or custom
        known = [token for token in dict.fromkeys(ids) if self.state.polymarket_book(token) is not None]
        for token in known:
            self.books[token] = None
        self.watched = frozenset(self.books)
        for token in known:
            self.data(("mark", ("book", token)))

    def send_data(self, item: Any) -> None:
        if item[0] == "resolved":
            if self.custom_features:
                self.send_json(item[1])
            return
        token = item[1][1]
        if token not in self.books:
            return
        book = self.state.polymarket_book(token)
        if book is None:
            return  # closed: no more book
        new = fm.polymarket_ladders(book)
        old = self.books[token]
        self.books[token] = new
        if old is None:
            event = fm.polymarket_book_event(book)
            if self.feeds.take_bad_hash():
                event["hash"] = WRONG_HASH
            self.send_json(event)
            return
        changes = fm.polymarket_changes(old, new)
        if changes:
            legacy = self.feeds.in_force(POLYMARKET, "legacy_form")
            self.send_json(fm.polymarket_price_change(book, new, changes, legacy=legacy))

    def resend_books(self) -> None:
        """A fresh `book` of each token whose book was sent (as the venue sends after a trade)."""
        for token, sent in list(self.books.items()):
            if sent is not None:
                self.books[token] = None
                self.data(("mark", ("book", token)))

    def on_overflow(self) -> None:
        self.flush()
        self.conn.close(CloseCode.TRY_AGAIN_LATER, "slow consumer")


class FeedServer:
    """Both venues' websocket feeds on one loopback port; started and stopped by ExchangeDouble."""

    def __init__(
        self,
        state: ExchangeState,
        host: str,
        port: int,
        *,
        heartbeat_s: float = 10.0,
        polymarket_ping_timeout_s: float = 30.0,
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        self.state = state
        self.heartbeat_s = heartbeat_s
        self.polymarket_ping_timeout_s = polymarket_ping_timeout_s
        self.outbox_size = outbox_size
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._sessions: set[_Session] = set()
        self._lasting: set[tuple[str, str]] = set()  # (venue, kind) of faults in force
        self._subscription_errors: Counter[str] = Counter()
        self._bad_hashes = 0  # Polymarket `book` events still to be sent with a wrong hash
        self._kalshi_status: dict[str, tuple[str, str]] = {}
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        scenario = self.state.snapshot()
        self._kalshi_status = {t: (m.status, m.result) for t, m in scenario.kalshi_markets.items()}
        self._server = serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._check_request,
            ping_interval=None,  # Kalshi's heartbeat is sent by the writer, with its payload
            close_timeout=2,
            compression=None,
            logger=logging.getLogger("exchanges.double.ws"),
        )
        self._port = self._server.socket.getsockname()[1]
        self.state.add_listener(self._changed)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="exchange-double-ws", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close every connection (their threads end) and the listening socket."""
        server, self._server = self._server, None
        if server is None:
            return
        self.state.remove_listener(self._changed)
        for session in self._all():
            session.outbox.close()  # the writer ends; the handler's close then goes through
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- faults -------------------------------------------------------------------------------

    def fault(self, fault: StreamFault) -> None:
        kind, venue = fault.kind, fault.venue
        with self._lock:
            if kind in LASTING_FAULTS:
                self._lasting.add((venue, kind))
                return
            if kind == "subscription_error":
                self._subscription_errors[venue] += fault.times
                return
            if kind == "bad_hash":
                self._bad_hashes += fault.times
        for session in self._all(venue):
            if kind == "drop":
                with contextlib.suppress(OSError):  # abrupt: no close frame
                    session.conn.socket.shutdown(socket.SHUT_RDWR)
            elif kind == "malformed":
                session.outbox.put(("raw", MALFORMED_FRAME[venue]), force=True)
            else:  # gap, slow_consumer, crossed, bad_hash
                session.outbox.put((kind,), force=True)

    def clear_faults(self) -> None:
        with self._lock:
            was_stale = {venue for venue, kind in self._lasting if kind == "stale"}
            self._lasting.clear()
            self._subscription_errors.clear()
            self._bad_hashes = 0
        for session in self._all():
            if session.venue in was_stale:
                session.outbox.put(("resume",), force=True)

    def faults_in_force(self) -> list[StreamFault]:
        with self._lock:
            lasting = [StreamFault(venue, kind) for venue, kind in sorted(self._lasting)]
            errors = [
                StreamFault(venue, "subscription_error", times=n)
                for venue, n in sorted(self._subscription_errors.items())
                if n
            ]
            if self._bad_hashes:
                errors.append(StreamFault(POLYMARKET, "bad_hash", times=self._bad_hashes))
        return lasting + errors

    def in_force(self, venue: str, kind: str) -> bool:
        return (venue, kind) in self._lasting

    def take_subscription_error(self, venue: str) -> bool:
        with self._lock:
            if self._subscription_errors[venue] <= 0:
                return False
            self._subscription_errors[venue] -= 1
            return True

    def take_bad_hash(self) -> bool:
        with self._lock:
            if self._bad_hashes <= 0:
                return False
            self._bad_hashes -= 1
            return True

    def connection_count(self, venue: str | None = None) -> int:
        return len(self._all(venue))

    # --- connections --------------------------------------------------------------------------

    def _all(self, venue: str | None = None) -> list[_Session]:
        with self._lock:
            return [s for s in self._sessions if venue is None or s.venue == venue]

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == KALSHI_WS_PATH:
            reason = verify_kalshi(self.state, request.headers, "GET", path)
            if reason:
                return conn.respond(401, reason + "\n")
            return None
        if path == POLYMARKET_WS_PATH:
            return None
        return conn.respond(404, f"no websocket at {path}: {KALSHI_WS_PATH} or {POLYMARKET_WS_PATH}\n")

    def _handle(self, conn: ServerConnection) -> None:
        kalshi = conn.request is not None and conn.request.path.startswith(KALSHI_WS_PATH)
        session = (_KalshiSession if kalshi else _PolymarketSession)(self, conn)
        writer = threading.Thread(target=session.write_loop, name="exchange-double-ws-writer", daemon=True)
        with self._lock:
            self._sessions.add(session)
        writer.start()
        try:
            session.read_loop()
        finally:
            with self._lock:
                self._sessions.discard(session)
            session.outbox.close()
            writer.join()

    # --- the state's listener (under the state's lock: never blocks) --------------------------

    def _changed(self, what: str, venue: str, instrument: str) -> None:
        sessions = self._all(venue)
        if what == BOOK_CHANGED:
            for session in sessions:
                if instrument in session.watched:
                    session.book_changed(instrument)
        elif what == LIFECYCLE_CHANGED and venue == KALSHI:
            self._kalshi_lifecycle(instrument, sessions)
        elif what == LIFECYCLE_CHANGED:
            self._polymarket_lifecycle(instrument, sessions)

    def _kalshi_lifecycle(self, ticker: str, sessions: list[_Session]) -> None:
        market = self.state.kalshi_market(ticker)
        if market is None:
            return
        new = (market.status, market.result)
        events = fm.kalshi_lifecycle_events(
            ticker, self._kalshi_status.get(ticker), new, self.state.now_ms() // 1000
        )
        self._kalshi_status[ticker] = new
        if events:
            for session in sessions:
                if session.wants_lifecycle:
                    session.push(("lifecycle", events))

    def _polymarket_lifecycle(self, token: str, sessions: list[_Session]) -> None:
        tokens = self.state.polymarket_tokens_of(token)
        if not any(book.token_id == token and book.winner for book in tokens):
            return  # sent once per market: when its winning token is told
        event = fm.polymarket_market_resolved(tokens, self.state.now_ms())
        assets = {book.token_id for book in tokens}
        for session in sessions:
            if assets & session.watched:
                session.push(("resolved", event))
