"""Polymarket CLOB market-channel stream client: `book` / `price_change` books and
`market_resolved` events.

No auth. The first frame subscribes; later changes go as `operation` frames, at most 100 ids per
frame (frames with thousands of ids close the socket). The venue has no sequence numbers: a book
that cannot be trusted (crossed, a change we cannot read, or a `book` whose `hash` does not
verify) is unsubscribed and subscribed again, which sends a fresh `book`. The client sends a text
`PING` every `ping_interval_s` (the server answers `PONG`, and closes sockets that stop pinging).

The `hash` check uses py-clob-client's computation, which the venue has changed before and which
covers summary fields a `book` event may not carry. So when the fresh book asked for after a bad
hash fails the check too, the client concludes the venue hashes differently, not that both books
were damaged: it logs `stream.hash_checks_stopped` once, counts it (`hash_checks_stopped`), and
checks no more hashes on that connection (a new connection checks again). Without that, a venue
whose hashes never verify would be resnapshotted forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.client import ClientConnection

from exchanges.books import NO, POLYMARKET, YES, Book
from exchanges.streams import DETERMINED, LifecycleEvent
from exchanges.streams.connection import StreamBook, StreamConnection, parse_frame
from exchanges.streams.l2 import PolymarketL2, PolymarketLevels, polymarket_book_of, polymarket_recording_line

logger = logging.getLogger("exchanges.streams.polymarket")

POLYMARKET_PROD_WS_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
MAX_IDS_PER_FRAME = 100
BOOK_EVENTS = ("book", "price_change")


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), MAX_IDS_PER_FRAME):
        yield ids[start : start + MAX_IDS_PER_FRAME]


class PolymarketStreamClient(StreamConnection):
    venue = POLYMARKET

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._l2 = PolymarketL2()
        self._subscribed: set[str] = set()
        self._resnapshot_pending: set[str] = set()
        self._bad_hash_asked: set[str] = set()  # assets asked for again after a bad hash, until whole
        self._first_frame_sent = False

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"ping_interval": None}  # the venue's heartbeat is the text PING below

    async def _background(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.settings.ping_interval_s)
            await ws.send("PING")

    # --- subscriptions ------------------------------------------------------------------------

    async def _send_ids(self, ws: ClientConnection, operation: str, ids: list[str]) -> None:
        for chunk in _chunks(ids):
            if operation == "subscribe" and not self._first_frame_sent:
                frame = {"assets_ids": chunk, "type": "market", "custom_feature_enabled": True}
                self._first_frame_sent = True
            elif operation == "subscribe":
                frame = {"operation": "subscribe", "assets_ids": chunk, "custom_feature_enabled": True}
            else:
                frame = {"operation": operation, "assets_ids": chunk}
            await ws.send(json.dumps(frame))

    async def _on_open(self, ws: ClientConnection) -> None:
        self._first_frame_sent = False
        self._resnapshot_pending.clear()
        self._bad_hash_asked.clear()
        self._l2.verify_hashes = True  # checked afresh on each connection
        ids = sorted(self.instruments())
        self._subscribed = set(ids)
        await self._send_ids(ws, "subscribe", ids)

    async def _sync_subscription(self) -> None:
        ws = self._ws
        if ws is None:
            return
        wanted = set(self.instruments())
        added, removed = sorted(wanted - self._subscribed), sorted(self._subscribed - wanted)
        self._subscribed = wanted
        with self._lock:
            for asset_id in removed:
                self._l2.remove(asset_id)
        if removed:
            await self._send_ids(ws, "unsubscribe", removed)
        if added:
            await self._send_ids(ws, "subscribe", added)

    async def _resnapshot(self, ws: ClientConnection, asset_ids: list[str]) -> None:
        with self._lock:
            self._resnapshot_asked(asset_ids)
        logger.warning("stream.resnapshot venue=polymarket assets=%d", len(asset_ids))
        await self._send_ids(ws, "unsubscribe", asset_ids)
        await self._send_ids(ws, "subscribe", asset_ids)

    # --- frames -------------------------------------------------------------------------------

    async def _on_frame(self, ws: ClientConnection, frame: str | bytes, received_ms: int) -> None:
        if frame == "PONG":
            return
        try:
            event = parse_frame(frame)
        except ValueError:  # UnicodeDecodeError too
            logger.warning("stream.malformed venue=polymarket bytes=%d", len(frame))
            return
        if isinstance(event, dict):  # the usual frame: one event
            kind = event.get("event_type")
            if kind in BOOK_EVENTS:
                await self._on_books(ws, event, received_ms)
            elif kind == "market_resolved":
                self._on_resolved(event)
            return
        events = event if isinstance(event, list) else []
        if any(isinstance(e, dict) and e.get("event_type") in BOOK_EVENTS for e in events):
            await self._on_books(ws, event, received_ms)
        for item in events:
            if isinstance(item, dict) and item.get("event_type") == "market_resolved":
                self._on_resolved(item)

    async def _on_books(self, ws: ClientConnection, event: Any, received_ms: int) -> None:
        with self._lock:
            applied = self._l2.apply(event)
            self._publish(applied.changed, received_ms, self._l2.venue_ts_ms)
            bad_hash = self._l2.hash_failed(applied.stale) if applied.stale else ()
        if self._resnapshot_pending:
            self._resnapshot_pending.difference_update(applied.changed)
        if self._bad_hash_asked and applied.changed:
            self._bad_hash_asked.difference_update(applied.changed)
        if bad_hash:
            self._bad_hashes(bad_hash)
        if applied.stale:
            # One request per stale book: a book still crossed in its fresh snapshot waits for
            # the watchdog's reconnect rather than being asked for again and again.
            stale = [a for a in applied.stale if a in self._subscribed and a not in self._resnapshot_pending]
            if stale:
                self._resnapshot_pending.update(stale)
                await self._resnapshot(ws, stale)

    def _bad_hashes(self, asset_ids: list[str]) -> None:
        """Books whose hash did not verify: each is asked for again (below, as any stale book); a
        book asked for again after a bad hash that fails too ends the checks on this connection,
        and is asked for once more (that one is not checked)."""
        again = [a for a in asset_ids if a in self._bad_hash_asked]
        if not again:
            self._bad_hash_asked.update(asset_ids)
            logger.warning("stream.bad_hash venue=polymarket assets=%s", ",".join(asset_ids))
            return
        self._l2.verify_hashes = False
        with self._lock:
            self.counters["hash_checks_stopped"] += 1
        logger.warning(
            "stream.hash_checks_stopped venue=polymarket assets=%s: a fresh book's hash did not verify "
            "either; book hashes are not checked on this connection",
            ",".join(again),
        )
        self._bad_hash_asked.clear()
        self._resnapshot_pending.difference_update(again)

    def _on_resolved(self, event: dict[str, Any]) -> None:
        winner = event.get("winning_asset_id")
        assets = event.get("assets_ids") or []
        if not isinstance(assets, list) or winner not in assets:
            # Without the winner every token would read as lost: nothing is told rather than a
            # guess (the REST resolution pass reads the market's outcome).
            logger.warning(
                "stream.resolved_without_winner venue=polymarket market=%s assets=%s winning_asset_id=%r",
                event.get("market") or event.get("id"),
                ",".join(map(str, assets)) if isinstance(assets, list) else assets,
                winner,
            )
            return
        ts = event.get("timestamp")
        venue_ts_ms = int(ts) if isinstance(ts, str) and ts.isdigit() else ts if isinstance(ts, int) else None
        for asset_id in assets:
            if asset_id in self._subscribed:
                result = YES if asset_id == winner else NO
                self._lifecycle(LifecycleEvent(POLYMARKET, asset_id, DETERMINED, result, venue_ts_ms))

    # --- books --------------------------------------------------------------------------------

    def _copy_book(self, instrument: str) -> tuple[str, PolymarketLevels] | None:
        levels = self._l2.levels(instrument)
        return None if levels is None else (self._instruments.get(instrument, YES), levels)

    def _stream_book(
        self, instrument: str, copy: tuple[str, PolymarketLevels], received_ms: int, venue_ts_ms: int | None
    ) -> StreamBook:
        return PolymarketStreamBook(instrument, received_ms, venue_ts_ms, copy)


class PolymarketStreamBook(StreamBook):
    """A token's book; `levels` is (the outcome the token sells, (bids, asks))."""

    __slots__ = ()

    def _build_books(self) -> tuple[Book, ...]:
        side, levels = self.levels
        times = {"received_ts_ms": self.received_ms, "venue_ts_ms": self.venue_ts_ms}
        return (polymarket_book_of(self.instrument_id, side, levels, **times),)

    def _build_line(self) -> dict[str, Any]:
        _side, levels = self.levels
        times = {"received_ts_ms": self.received_ms, "venue_ts_ms": self.venue_ts_ms}
        return polymarket_recording_line(self.instrument_id, levels, **times)
