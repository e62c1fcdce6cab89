"""Kalshi WS v2 stream client: `orderbook_delta` books and `market_lifecycle_v2` events.

The upgrade is signed like a REST call, by the official client's own `KalshiAuth` (RSA-PSS over
timestamp + "GET" + the path), afresh on every reconnect: the signature carries its timestamp.
Books come from `exchanges.streams.l2.KalshiL2`. A sequence gap asks `get_snapshot` for the
subscription's markets, and a crossed book (best YES bid + best NO bid >= $1) for its market, once:
a snapshot still crossed waits for the watchdog's reconnect rather than being asked for again and
again. If the venue refuses `get_snapshot` (older servers), or ends a subscription (errors
10, 17, 25), the channel is subscribed again from scratch. A refused subscribe starts a new
connection after the reconnect backoff, except a refusal of tickers (errors 14, 16: an unknown
market): those tickers are dropped from the stream (the ones the error names, else found by
halving the command) and the rest stream on. A dropped ticker has no book, so it counts as stale
(ingest polls it over REST) until it is no longer followed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from kalshi_python_sync.auth import KalshiAuth
from websockets.asyncio.client import ClientConnection

from exchanges.books import KALSHI, NO, YES, Book
from exchanges.redaction import register_secret
from exchanges.streams import ACTIVATED, CLOSE_TIME_CHANGED, CLOSED, DETERMINED, SETTLED, LifecycleEvent
from exchanges.streams.connection import StreamBook, StreamConnection, parse_frame
from exchanges.streams.l2 import KalshiL2, KalshiLevels, kalshi_books_of, kalshi_recording_line

logger = logging.getLogger("exchanges.streams.kalshi")

KALSHI_PROD_WS_URL = "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
ORDERBOOK = "orderbook_delta"
LIFECYCLE = "market_lifecycle_v2"
# Errors after which the venue no longer feeds the subscription (buffer overflow, channel error,
# internal error): subscribe again.
SUBSCRIPTION_ENDED = frozenset({10, 17, 25})
# Errors refusing the command's tickers (market ticker required, market not found).
TICKERS_REFUSED = frozenset({14, 16})
KALSHI_EVENT_KINDS = {
    "determined": DETERMINED,
    "settled": SETTLED,
    "deactivated": CLOSED,
    "activated": ACTIVATED,
    "close_date_updated": CLOSE_TIME_CHANGED,
}
LIFECYCLE_TS_FIELDS = {"determined": "determination_ts", "settled": "settled_ts"}


class KalshiStreamClient(StreamConnection):
    venue = KALSHI

    def __init__(
        self,
        url: str,
        *,
        api_key_id: str,
        private_key_pem: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, **kwargs)
        register_secret(private_key_pem)
        self._auth = KalshiAuth(api_key_id, private_key_pem)  # raises ValueError on an unusable key
        self._path = urlparse(url).path or "/trade-api/ws/v2"
        self._l2 = KalshiL2()
        self._next_id = 0
        self._pending: dict[int, str] = {}  # command id -> what it asked for, until answered
        self._pending_tickers: dict[int, list[str]] = {}  # command id -> the tickers it named
        self._book_sid: int | None = None
        self._lifecycle_sid: int | None = None
        self._subscribed: set[str] = set()  # tickers the orderbook subscription covers (or will)
        self._refused: set[str] = set()  # tickers the venue refused: not asked for again
        self._crossed_asked: set[str] = set()  # crossed tickers whose snapshot was asked, until whole

    def _headers(self) -> dict[str, str]:
        return self._auth.create_auth_headers("GET", self._path)

    # --- commands -----------------------------------------------------------------------------

    async def _command(self, ws: ClientConnection, cmd: str, params: dict[str, Any], what: str) -> None:
        self._next_id += 1
        self._pending[self._next_id] = what
        self._pending_tickers[self._next_id] = list(params.get("market_tickers", ()))
        await ws.send(json.dumps({"id": self._next_id, "cmd": cmd, "params": params}))

    def _answered(self, message: dict[str, Any]) -> tuple[str | None, list[str]]:
        """What the command `message` answers asked for, and the tickers it named."""
        cmd_id = message.get("id")
        return self._pending.pop(cmd_id, None), self._pending_tickers.pop(cmd_id, [])

    async def _subscribe_books(self, ws: ClientConnection, tickers: list[str] | None = None) -> None:
        """Subscribe the books of `tickers` (default: every instrument not refused); the rest of
        the instruments are added once the subscription is confirmed."""
        if tickers is None:
            tickers = self._wanted()
        self._book_sid = None
        self._subscribed = set(tickers)
        if tickers:
            await self._command(
                ws, "subscribe", {"channels": [ORDERBOOK], "market_tickers": tickers}, ORDERBOOK
            )

    def _wanted(self) -> list[str]:
        instruments = self.instruments()
        self._refused &= instruments.keys()  # a ticker followed again later is asked for again
        return sorted(instruments.keys() - self._refused)

    async def _on_open(self, ws: ClientConnection) -> None:
        self._next_id = 0
        self._pending.clear()
        self._pending_tickers.clear()
        self._lifecycle_sid = None
        self._crossed_asked.clear()
        # Lifecycle first: once books arrive, the market's events are being followed too.
        await self._command(ws, "subscribe", {"channels": [LIFECYCLE]}, LIFECYCLE)
        await self._subscribe_books(ws)

    async def _resubscribe_books(self, ws: ClientConnection) -> None:
        with self._lock:
            if self._book_sid is not None:
                self._l2.forget_sid(self._book_sid)
            self._resnapshot_asked(self._subscribed)
        if self._book_sid is not None:
            await self._command(ws, "unsubscribe", {"sids": [self._book_sid]}, "unsubscribe")
        await self._subscribe_books(ws)

    async def _sync_subscription(self) -> None:
        ws = self._ws
        if ws is None:
            return
        wanted = set(self._wanted())
        added, removed = sorted(wanted - self._subscribed), sorted(self._subscribed - wanted)
        if not added and not removed:
            return
        with self._lock:
            for ticker in removed:
                self._l2.remove(ticker)
        if self._book_sid is None:
            # No subscription yet (none was needed, or its reply is on the way): start afresh.
            if ORDERBOOK not in self._pending.values():
                await self._subscribe_books(ws)
            return
        self._subscribed = wanted
        sid = self._book_sid
        if added:
            await self._command(
                ws,
                "update_subscription",
                {"sid": sid, "market_tickers": added, "action": "add_markets"},
                "add",
            )
        if removed:
            await self._command(
                ws,
                "update_subscription",
                {"sid": sid, "market_tickers": removed, "action": "delete_markets"},
                "delete",
            )

    # --- frames -------------------------------------------------------------------------------

    async def _on_frame(self, ws: ClientConnection, frame: str | bytes, received_ms: int) -> None:
        try:
            message = parse_frame(frame)
        except ValueError:  # UnicodeDecodeError too
            logger.warning("stream.malformed venue=kalshi bytes=%d", len(frame))
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind in ("orderbook_snapshot", "orderbook_delta"):
            await self._on_book_message(ws, message, received_ms)
        elif kind == "subscribed":
            self._on_subscribed(message)
        elif kind == "error":
            await self._on_error(ws, message)
        elif kind == "ok":
            self._answered(message)
        elif kind == LIFECYCLE:
            self._on_lifecycle_message(message)

    async def _on_book_message(self, ws: ClientConnection, message: dict[str, Any], received_ms: int) -> None:
        with self._lock:
            applied = self._l2.apply(message)
            self._publish(applied.changed, received_ms, self._venue_ts_of(message))
            crossed = self._l2.crossed(applied.stale) if applied.stale and applied.gap_sid is None else ()
            if applied.stale and not crossed:
                self._resnapshot_asked(applied.stale)  # a crossed book counts when it is asked for
        if self._crossed_asked and applied.changed:
            self._crossed_asked.difference_update(applied.changed)
        if applied.gap_sid is not None:
            logger.warning("stream.gap venue=kalshi sid=%s stale=%d", applied.gap_sid, len(applied.stale))
            stale = sorted(self._l2.stale_instruments(self._subscribed))
            if stale and applied.gap_sid == self._book_sid:
                await self._command(
                    ws,
                    "update_subscription",
                    {"sid": applied.gap_sid, "market_tickers": stale, "action": "get_snapshot"},
                    "get_snapshot",
                )
        elif crossed:
            await self._snapshot_crossed(ws, message.get("sid"), crossed)
        elif applied.stale:
            await self._resubscribe_books(ws)

    async def _snapshot_crossed(self, ws: ClientConnection, sid: Any, tickers: list[str]) -> None:
        """Ask the subscription for a fresh snapshot of each crossed market, once until it is whole
        (a message of a subscription being replaced asks nothing: the new one sends snapshots)."""
        asked = sorted(set(tickers) - self._crossed_asked)
        if not asked or sid is None or sid != self._book_sid:
            return
        self._crossed_asked.update(asked)
        with self._lock:
            self._resnapshot_asked(asked)
        logger.warning("stream.crossed venue=kalshi tickers=%s", ",".join(asked))
        await self._command(
            ws,
            "update_subscription",
            {"sid": sid, "market_tickers": asked, "action": "get_snapshot"},
            "get_snapshot",
        )

    def _venue_ts_of(self, message: dict[str, Any]) -> Callable[[str], int | None]:
        msg = message.get("msg") or {}
        ts_ms = msg.get("ts_ms") if message.get("type") == "orderbook_delta" else None
        return lambda _ticker: ts_ms if isinstance(ts_ms, int) else None

    def _on_subscribed(self, message: dict[str, Any]) -> None:
        what, _tickers = self._answered(message)
        msg = message.get("msg") or {}
        channel = msg.get("channel") or what
        if channel == LIFECYCLE:
            self._lifecycle_sid = msg.get("sid")
        elif channel == ORDERBOOK and isinstance(msg.get("sid"), int):
            self._book_sid = msg["sid"]
            self._spawn(self._sync_subscription())

    async def _on_error(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        msg = message.get("msg") or {}
        code, sid = msg.get("code"), message.get("sid", msg.get("sid"))
        what, tickers = self._answered(message)
        logger.warning("stream.error venue=kalshi code=%s msg=%s command=%s", code, msg.get("msg"), what)
        if what in (ORDERBOOK, "add") and code in TICKERS_REFUSED and tickers:
            await self._drop_refused(ws, what, tickers, str(msg.get("msg") or ""))
        elif what in (LIFECYCLE, ORDERBOOK, "add"):
            # A subscription refused: start again on a new connection, after the backoff
            # (subscribing again at once could repeat the refusal as fast as it comes).
            if what != LIFECYCLE:
                with self._lock:
                    self._resnapshot_asked(self._subscribed)
            await ws.close()
        elif what is None and code in SUBSCRIPTION_ENDED and sid == self._lifecycle_sid:
            self._lifecycle_sid = None
            self.lifecycle_renewals += 1
            await self._command(ws, "subscribe", {"channels": [LIFECYCLE]}, LIFECYCLE)
        elif what == "get_snapshot" or (what is None and code in SUBSCRIPTION_ENDED):
            if what is None and self._book_sid is not None:  # the venue has ended it already
                with self._lock:
                    self._l2.forget_sid(self._book_sid)
                self._book_sid = None
            await self._resubscribe_books(ws)

    async def _drop_refused(self, ws: ClientConnection, what: str, tickers: list[str], text: str) -> None:
        """The venue refused a subscribe or add of `tickers`: drop the ones it names (or, naming
        none, the ticker of a one-ticker command) and ask again for the rest; naming none of
        several, ask for each half on its own until the refused ones are found."""
        words = set(re.split(r"[\s,;:'\"()\[\]{}]+", text))  # whole tickers: "T4" is not "T4.00"
        named = [t for t in tickers if t in words]
        if named or len(tickers) == 1:
            dropped = named or tickers
            self._refused.update(dropped)
            self._subscribed.difference_update(dropped)
            logger.warning(
                "stream.tickers_refused venue=kalshi tickers=%s: not streamed (polled over REST)",
                ",".join(dropped),
            )
            rest = [t for t in tickers if t not in dropped]
            parts = [rest] if rest else []
        else:
            parts = [tickers[: len(tickers) // 2], tickers[len(tickers) // 2 :]]
        if what == ORDERBOOK:
            # No subscription yet: subscribe the first part (or, none left of this command,
            # whatever else is wanted); its confirmation adds the rest.
            await self._subscribe_books(ws, parts[0] if parts else None)
            return
        for part in parts:
            if self._book_sid is not None:
                await self._command(
                    ws,
                    "update_subscription",
                    {"sid": self._book_sid, "market_tickers": part, "action": "add_markets"},
                    "add",
                )

    def _on_lifecycle_message(self, message: dict[str, Any]) -> None:
        msg = message.get("msg") or {}
        ticker, event_type = msg.get("market_ticker"), msg.get("event_type")
        kind = KALSHI_EVENT_KINDS.get(event_type)
        if kind is None or (ticker not in self._subscribed and ticker not in self._refused):
            return
        result = msg.get("result")
        result = result.lower() if isinstance(result, str) and result.lower() in (YES, NO) else None
        ts_s = msg.get(LIFECYCLE_TS_FIELDS.get(event_type, ""))
        venue_ts_ms = ts_s * 1000 if isinstance(ts_s, int) else message.get("sending_ts_ms")
        close_time = None
        if kind == CLOSE_TIME_CHANGED:
            close_ts = msg.get("close_ts")
            if not isinstance(close_ts, int) or isinstance(close_ts, bool):
                logger.warning(
                    "stream.close_ts_unusable venue=kalshi ticker=%s close_ts=%r", ticker, close_ts
                )
                return
            close_time = datetime.fromtimestamp(close_ts, UTC)
        self._lifecycle(LifecycleEvent(KALSHI, ticker, kind, result, venue_ts_ms, close_time))

    # --- books --------------------------------------------------------------------------------

    def _copy_book(self, instrument: str) -> KalshiLevels | None:
        return self._l2.levels(instrument)

    def _stream_book(
        self, instrument: str, copy: KalshiLevels, received_ms: int, venue_ts_ms: int | None
    ) -> StreamBook:
        return KalshiStreamBook(instrument, received_ms, venue_ts_ms, copy)


class KalshiStreamBook(StreamBook):
    """A market's YES and NO books (a YES ask at p is a NO bid at 1 - p)."""

    __slots__ = ()

    def _build_books(self) -> tuple[Book, ...]:
        books = kalshi_books_of(
            self.instrument_id, self.levels, received_ts_ms=self.received_ms, venue_ts_ms=self.venue_ts_ms
        )
        return books[YES], books[NO]

    def _build_line(self) -> dict[str, Any]:
        return kalshi_recording_line(
            self.instrument_id, self.levels, received_ts_ms=self.received_ms, venue_ts_ms=self.venue_ts_ms
        )
