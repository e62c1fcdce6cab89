"""The exchange double's HTTP server: one loopback port, both venues; their websocket feeds on a
second port (exchanges/double/feeds.py).

Kalshi lives under /trade-api/v2, Polymarket at the root. Built on the stdlib
`ThreadingHTTPServer` because it keeps header names with underscores (Polymarket's POLY_*),
which Django's runserver, nginx and gunicorn drop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, parse_qsl, urlsplit

from . import kalshi_api, polymarket_api
from .faults import NOT_JSON_BODY, Fault, FaultBook, drop_fields
from .feeds import KALSHI_WS_PATH, OUTBOX_SIZE, POLYMARKET_WS_PATH, FeedServer, StreamFault
from .kalshi_api import Reply
from .moves import BookMove
from .state import ExchangeState, Scenario

logger = logging.getLogger("exchanges.double")

KALSHI = "kalshi"
POLYMARKET = "polymarket"


def venue_of(path: str) -> str:
    prefix = kalshi_api.PREFIX
    return KALSHI if path == prefix or path.startswith(prefix + "/") else POLYMARKET


def _venue_error(venue: str, status: int, message: str) -> Reply:
    return (kalshi_api.error if venue == KALSHI else polymarket_api.error)(status, message)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as both clients expect
    server_version = "ExchangeDouble/1"
    # Headers and body go out as two writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every keep-alive call (measured: 45 ms -> 0.5 ms per call).
    disable_nagle_algorithm = True
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.double._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.double._track(self.connection, add=False)

    def do_GET(self) -> None:
        self.server.double._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.double._serve(self, "POST")

    def do_DELETE(self) -> None:
        self.server.double._serve(self, "DELETE")

    def do_PUT(self) -> None:
        self.server.double._serve(self, "PUT")

    def log_message(self, format: str, *args: object) -> None:
        # The request line and status only; headers (keys, signatures) are never logged.
        logger.debug("exchange_double %s %s", self.address_string(), format % args)

    def send(self, reply: Reply, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(reply.body, separators=(",", ":")).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes connections itself instead of waiting on them
    double: ExchangeDouble


class ExchangeDouble:
    """A loopback Kalshi + Polymarket for the unmodified official clients.

    >>> with ExchangeDouble(Scenario.demo()) as double:
    ...     double.kalshi_host, double.polymarket_host
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ws_port: int | None = 0,
        ws_heartbeat_s: float = 10.0,
        polymarket_ping_timeout_s: float = 30.0,
        ws_outbox_size: int = OUTBOX_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`ws_port`: the websocket feeds' port (0 picks a free one, None serves no feeds);
        `ws_heartbeat_s`: Kalshi's ping interval; `polymarket_ping_timeout_s`: a Polymarket
        connection is closed when no PING came for that long; `ws_outbox_size`: the work a
        connection may have pending before it is a slow consumer."""
        self.state = ExchangeState(scenario if scenario is not None else Scenario(), clock=clock)
        self._host = host
        self._port = port
        self._feeds = (
            FeedServer(
                self.state,
                host,
                ws_port,
                heartbeat_s=ws_heartbeat_s,
                polymarket_ping_timeout_s=polymarket_ping_timeout_s,
                outbox_size=ws_outbox_size,
            )
            if ws_port is not None
            else None
        )
        self._faults = FaultBook()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ExchangeDouble:
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the exchange double is already running")
        self._stopping.clear()
        self.state.start_timers()
        httpd = _Server((self._host, self._port), _Handler)
        httpd.double = self
        self._httpd = httpd
        self._port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="exchange-double", daemon=True
        )
        self._thread.start()
        if self._feeds is not None:
            try:
                self._feeds.start()
            except OSError:
                self.stop()
                raise
        logger.info("exchange_double started kalshi=%s polymarket=%s", self.kalshi_host, self.polymarket_host)
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection, held ones included; returns promptly."""
        httpd, self._httpd = self._httpd, None
        self.state.stop_timers()  # pending book moves are dropped; none is set off from now on
        if httpd is None:
            return
        if self._feeds is not None:
            self._feeds.stop()
        self._stopping.set()  # wakes handlers sleeping in a latency/timeout fault
        httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("exchange_double stopped")

    def __enter__(self) -> ExchangeDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def kalshi_host(self) -> str:
        return self.base_url + kalshi_api.PREFIX

    @property
    def polymarket_host(self) -> str:
        return self.base_url

    @property
    def ws_port(self) -> int | None:
        return self._feeds.port if self._feeds is not None else None

    @property
    def kalshi_ws_url(self) -> str:
        return f"ws://{self._host}:{self._require_feeds().port}{KALSHI_WS_PATH}"

    @property
    def polymarket_ws_url(self) -> str:
        return f"ws://{self._host}:{self._require_feeds().port}{POLYMARKET_WS_PATH}"

    def _require_feeds(self) -> FeedServer:
        if self._feeds is None:
            raise RuntimeError("this exchange double serves no websocket feeds (ws_port=None)")
        return self._feeds

    # --- faults, book moves and counters ------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        return self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults still in force."""
        return self._faults.active()

    def stream_fault(self, venue: str, kind: str, *, times: int = 1) -> StreamFault:
        """Fault a venue's websocket feed (ValueError names a bad argument):

        - `drop`: every open connection of the venue is cut (no close frame);
        - `gap` (Kalshi): each open connection skips one seq number on its next data message;
        - `stale`: pings and PINGs are answered but no data frame is sent until cleared; what
          changed meanwhile is sent then (snapshots owed, deltas, events);
        - `malformed`: one frame that is not JSON on each open connection;
        - `subscription_error`: the next `times` subscribes are refused (Kalshi: error 17
          "Internal error"; Polymarket: the socket is closed with 1008 policy violation);
        - `slow_consumer`: as when a client reads too slowly (Kalshi: error 25 ends each of the
          connection's subscriptions; Polymarket: the socket is closed with 1013);
        - `legacy_form`: until cleared, Kalshi books in the 2026-03 form (cents and whole
          contracts) and Polymarket price changes in the form before 2025-09-15;
        - `crossed` (Kalshi): each open connection is sent a delta per book that crosses it (a bid
          adding up to $1 or more with the other side's best); the double's book is unchanged;
        - `bad_hash` (Polymarket): the next `times` `book` events carry a hash that is not their
          book's; each open connection is sent a fresh `book` of each token it follows at once.
        """
        fault = StreamFault(venue, kind, times=times)
        self._require_feeds().fault(fault)
        return fault

    def clear_stream_faults(self) -> None:
        """End `stale` and `legacy_form` and forget pending subscription errors and bad hashes."""
        self._require_feeds().clear_faults()

    @property
    def stream_faults(self) -> list[StreamFault]:
        """The feed faults still in force (`stale`, `legacy_form`, pending subscription errors and
        bad hashes)."""
        return self._require_feeds().faults_in_force()

    def ws_connection_count(self, venue: str | None = None) -> int:
        """Open websocket connections (of one venue, or both)."""
        return self._require_feeds().connection_count(venue)

    def add_book_move(self, move: BookMove) -> BookMove:
        """Move books after matching reads (exchanges/double/moves.py); `state.add_book_move`."""
        return self.state.add_book_move(move)

    def clear_book_moves(self) -> None:
        self.state.clear_book_moves()

    @property
    def book_moves(self) -> list[BookMove]:
        """The book moves in force, with their counts so far."""
        return self.state.book_moves

    @property
    def call_counts(self) -> Counter[tuple[str, str]]:
        """Requests received, keyed by (venue, path without query); a copy."""
        with self._counts_lock:
            return Counter(self._counts)

    def reset_call_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    # --- request handling ---------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _serve(self, handler: _Handler, method: str) -> None:
        split = urlsplit(handler.path)
        path = split.path or "/"
        query = dict(parse_qsl(split.query))
        venue = venue_of(path)
        length_text = handler.headers.get("Content-Length") or "0"
        if not length_text.isdigit():
            handler.close_connection = True
            handler.send(_venue_error(venue, 400, "bad Content-Length"))
            return
        body = handler.rfile.read(int(length_text)) if int(length_text) > 0 else b""
        with self._counts_lock:
            self._counts[(venue, path)] += 1

        plan = self._faults.plan(venue, path)
        if plan.latency_s and self._stopping.wait(plan.latency_s):
            handler.close_connection = True
            return
        fault = plan.fault
        if fault is not None and fault.kind == "timeout":
            # Say nothing until the client gives up (or we stop), then hang up.
            self._stopping.wait(fault.hold_s)
            handler.close_connection = True
            return
        if fault is not None and fault.kind != "malformed":
            handler.send(self._fault_reply(venue, fault))
            return

        try:
            if venue == KALSHI:
                tickers = parse_qs(split.query).get("tickers", [])
                reply = kalshi_api.handle(self.state, method, path, query, handler.headers, tickers)
            else:
                reply = polymarket_api.handle(self.state, method, path, query, handler.headers, body)
        except Exception:
            logger.exception("exchange_double handler failed venue=%s path=%s", venue, path)
            reply = _venue_error(venue, 500, "internal error in the exchange double")

        if fault is not None:  # malformed: a 200 the client cannot use
            if fault.malformed == "not_json":
                handler.send(Reply(200, None), raw=NOT_JSON_BODY.encode())
                return
            reply = Reply(200, drop_fields(reply.body, fault.drop_fields))
        handler.send(reply)

    @staticmethod
    def _fault_reply(venue: str, fault: Fault) -> Reply:
        if fault.kind == "rate_limit":
            reply = _venue_error(venue, 429, "Too many requests")
            reply.headers["Retry-After"] = str(fault.retry_after_s)
            return reply
        if fault.kind == "bad_signature":
            message = "invalid signature" if venue == KALSHI else "Unauthorized/Invalid api key"
            return _venue_error(venue, 401, message)
        return _venue_error(venue, fault.status, f"injected fault: HTTP {fault.status}")
