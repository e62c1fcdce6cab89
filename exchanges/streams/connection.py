"""What both venues' stream clients share: one websocket connection kept open by an asyncio loop
in a background thread, with reconnects, a staleness watchdog, the books changed since the
consumer last asked, and the status ingest publishes (ingest.health documents its fields).

The consumer is handed each changed book once, as it is when it asks: a consumer slower than the
feed skips intermediate states instead of queueing them, so memory is bounded by the number of
instruments. A hand-over takes the book's level tuples as the L2 keeps them (no copy: a change
makes new tuples); the `Book`s and the recording line are built from them only when the consumer
asks for them, at most once per hand-over, never once per message.

A venue's client subclasses `StreamConnection` and supplies the handshake headers, what to send
once connected (`_on_open`), what to do with each frame (`_on_frame`), and how to follow a change
of instruments (`_sync_subscription`). Everything those hooks do runs on the client's own
loop; the public methods (`start`, `set_instruments`, `get`, `status`, `stop`) are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, WebSocketException

from exchanges.books import Book
from exchanges.streams import LifecycleEvent

logger = logging.getLogger("exchanges.streams")

CONNECTING = "connecting"
LIVE = "live"
DOWN = "down"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_frame(frame: str | bytes) -> Any:
    """A frame's JSON, by orjson (3-5x as fast as json on the venues' frames). What orjson refuses
    and json reads (NaN, integers beyond 64 bits) is read by json, as before; a frame neither
    reads raises ValueError."""
    try:
        return orjson.loads(frame)
    except orjson.JSONDecodeError:
        return json.loads(frame)


class StreamBook:
    """One instrument's whole book after a change, and when it arrived (`received_ms`; the venue's
    time `venue_ts_ms` when it sends one). It holds the book's level tuples as they were when it
    was handed over (the L2 never alters them); `books` (the normalised books: a Kalshi market
    gives YES and NO) and `line` (the recording line) are built from them the first time each is
    read, once. Ingest reads the books of every update, the line only when something records."""

    __slots__ = ("_books", "_line", "instrument_id", "levels", "received_ms", "venue_ts_ms")

    def __init__(self, instrument_id: str, received_ms: int, venue_ts_ms: int | None, levels: Any) -> None:
        self.instrument_id = instrument_id
        self.received_ms = received_ms
        self.venue_ts_ms = venue_ts_ms
        self.levels = levels
        self._books: tuple[Book, ...] | None = None
        self._line: dict[str, Any] | None = None

    @property
    def books(self) -> tuple[Book, ...]:
        if self._books is None:
            self._books = self._build_books()
        return self._books

    @property
    def line(self) -> dict[str, Any]:
        if self._line is None:
            self._line = self._build_line()
        return self._line

    def _build_books(self) -> tuple[Book, ...]:
        raise NotImplementedError

    def _build_line(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.instrument_id!r}, received_ms={self.received_ms})"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Timings of one client; the defaults suit the venues, tests shorten them."""

    # No book data for this long while connected: the feed is frozen (sockets have been seen
    # answering heartbeats for hours with no data): reconnect.
    watchdog_s: float = 120.0
    # A book stale this long after its resnapshot was asked for: reconnect.
    resnapshot_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    open_timeout_s: float = 10.0
    ping_interval_s: float = 10.0  # Polymarket's text PING


class StreamConnection:
    venue = ""

    def __init__(
        self,
        url: str,
        *,
        settings: StreamSettings | None = None,
        on_lifecycle: Callable[[LifecycleEvent], None] | None = None,
        shard: str = "1/1",
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.url = url
        self.settings = settings or StreamSettings()
        self.shard = shard
        self._on_lifecycle = on_lifecycle
        self._clock_ms = clock_ms
        self._l2: Any = None  # the venue's L2 books (exchanges.streams.l2), set by the subclass
        # The books and the consumer's queue: the loop writes, readers read. Counters and the
        # last message's time are written by the loop alone, without it.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Instruments changed since the consumer last asked -> (receive ms, venue ms) of the last change.
        self._dirty: dict[str, tuple[int, int | None]] = {}
        self._wakeup: threading.Event | None = None
        self._instruments: dict[str, str] = {}  # instrument -> its outcome side ("yes"/"no")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._stopping = threading.Event()
        self._state = DOWN
        self._connected_since_ms: int | None = None
        self._last_message_ms: int | None = None
        self._last_data_ms: int | None = None
        self._stale_since_s: float | None = None  # when the oldest unanswered resnapshot was asked
        self._awaiting_resnapshot: set[str] = set()  # instruments whose resnapshot was asked
        self._last_data_s = 0.0
        self._had_data = False
        self._lags_ms: deque[int] = deque(maxlen=500)
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog_wakeup: asyncio.Event | None = None  # the connection's watchdog, to look again
        self._watchdog_closed = False  # this connection was ended by the watchdog
        self.counters = {
            "messages": 0,
            "updates": 0,
            "reconnects": 0,
            "resnapshots": 0,
            "hash_checks_stopped": 0,  # connections on which book hashes stopped being checked
        }
        # Lifecycle subscriptions the venue ended and the client renewed on the same socket
        # (events in between are lost: what was learnt from them no longer holds).
        self.lifecycle_renewals = 0

    # --- public, thread-safe ------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._thread_main, name=f"stream-{self.venue}", daemon=True)
        self._thread.start()

    def set_wakeup(self, event: threading.Event) -> None:
        """Set `event` whenever a changed book is waiting (a consumer of several clients waits on one)."""
        self._wakeup = event

    def set_instruments(self, instruments: Mapping[str, str]) -> None:
        """The instruments to follow (id -> outcome side); subscriptions follow the change."""
        with self._lock:
            self._instruments = dict(instruments)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._instruments_changed)

    def instruments(self) -> dict[str, str]:
        with self._lock:
            return dict(self._instruments)

    def get(self, timeout_s: float) -> list[StreamBook]:
        """Each book changed since the last call, once, as it is now, stamped with the time of its
        last change (waiting up to `timeout_s` for one). A book that went stale meanwhile is left
        out until it is whole again."""
        with self._changed:
            if not self._dirty:
                self._changed.wait(timeout_s)
            dirty, self._dirty = self._dirty, {}
            copies = [(instrument, times, self._copy_book(instrument)) for instrument, times in dirty.items()]
        # Wrapped outside the lock: the loop takes it for every message.
        return [
            self._stream_book(instrument, copy, received_ms, venue_ts_ms)
            for instrument, (received_ms, venue_ts_ms), copy in copies
            if copy is not None
        ]

    def current_books(self, received_ms: int) -> list[StreamBook]:
        """Every whole book now, stamped `received_ms` (no venue time: nothing new arrived)."""
        with self._lock:
            copies = [(instrument, self._copy_book(instrument)) for instrument in self._instruments]
        return [
            self._stream_book(instrument, copy, received_ms, None)
            for instrument, copy in copies
            if copy is not None
        ]

    def stale_instruments(self) -> list[str]:
        """The instruments followed that have no whole book now."""
        with self._lock:
            return self._stale_instruments(list(self._instruments))

    @property
    def live(self) -> bool:
        return self._state == LIVE

    def status(self) -> dict[str, Any]:
        """This stream's state in ingest.health's shape."""
        with self._lock:
            instruments = list(self._instruments)
            stale = self._stale_instruments(instruments)
            lags = list(self._lags_ms)
            return {
                "venue": self.venue,
                "shard": self.shard,
                "state": self._state,
                "connected_since_ms": self._connected_since_ms,
                "last_message_ms": self._last_message_ms,
                "last_data_ms": self._last_data_ms,
                "instruments": len(instruments),
                "stale_instruments": len(stale),
                **self.counters,
                "lag_ms_p50": statistics.median(lags) if lags else None,
            }

    def stop(self) -> None:
        """Close the connection (a clean close frame) and join the client's thread."""
        self._stopping.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                asyncio.run_coroutine_threadsafe(self._close(), loop)
        if self._thread is not None:
            self._thread.join()
        with self._changed:
            self._changed.notify_all()

    async def _close(self) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), self.settings.open_timeout_s)
        if self._task is not None:
            self._task.cancel()

    # --- venue hooks --------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {}

    async def _on_open(self, ws: ClientConnection) -> None:
        raise NotImplementedError

    async def _on_frame(self, ws: ClientConnection, frame: str | bytes, received_ms: int) -> None:
        raise NotImplementedError

    def _instruments_changed(self) -> None:
        """Called on the loop when `set_instruments` changed the set."""
        if self._ws is not None:
            self._spawn(self._sync_subscription())

    async def _sync_subscription(self) -> None:
        """Bring the venue's subscription in line with `instruments()`."""

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` on the loop, holding the task until it ends (the loop keeps only weak ones)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _copy_book(self, instrument: str) -> Any:
        """What the instrument's book is built from as it is now (level tuples the L2 never
        alters, so no copy is made), or None while it is not whole (lock held)."""
        raise NotImplementedError

    def _stream_book(
        self, instrument: str, copy: Any, received_ms: int, venue_ts_ms: int | None
    ) -> StreamBook:
        """The instrument's `StreamBook` over `_copy_book`'s levels (lock not held)."""
        raise NotImplementedError

    def _stale_instruments(self, instruments: list[str]) -> list[str]:
        """Of `instruments`, those without a whole book (lock held)."""
        return self._l2.stale_instruments(instruments)

    def _forget_books(self) -> None:
        """A new connection: every book waits for its new snapshot (lock held)."""
        self._l2.mark_all_stale()

    def ladders(self, instrument: str) -> Any:
        """The instrument's two ladders best first as its L2 keeps them (Kalshi: YES bids, NO
        bids; Polymarket: bids, asks), or None while it is not whole."""
        with self._lock:
            return self._l2.ladders(instrument)

    def _connect_kwargs(self) -> dict[str, Any]:
        return {}

    async def _background(self, ws: ClientConnection) -> None:
        """Runs while connected (Polymarket's PING); cancelled on disconnect."""

    # --- for the hooks ------------------------------------------------------------------------

    def _publish(
        self, changed: Iterable[str], received_ms: int, venue_ts_of: Callable[[str], int | None]
    ) -> None:
        """A book message came (lock held): the feed is not frozen, and the consumer is told
        these instruments changed."""
        self._last_data_ms = received_ms
        self._last_data_s = time.monotonic()
        self._had_data = True
        self._state = LIVE  # live once books flow: a socket refused its subscription never is
        dirty, instruments = self._dirty, self._instruments
        # A consumer waits only while nothing is waiting for it: told once, when the first
        # change comes, it takes that one and every later one with it.
        tell = not dirty
        for instrument in changed:
            if instrument not in instruments:
                continue
            venue_ts_ms = venue_ts_of(instrument)
            if venue_ts_ms is not None:
                self._lags_ms.append(received_ms - venue_ts_ms)
            self.counters["updates"] += 1
            dirty.pop(instrument, None)  # in the order of their latest change
            dirty[instrument] = (received_ms, venue_ts_ms)
        if tell and dirty:
            self._changed.notify_all()
            if self._wakeup is not None:
                self._wakeup.set()

    def _lifecycle(self, event: LifecycleEvent) -> None:
        if self._on_lifecycle is None:
            return
        try:
            self._on_lifecycle(event)
        except Exception:  # the consumer's bug must not take the feed down
            logger.exception("stream.lifecycle_callback_failed venue=%s", self.venue)

    def _resnapshot_asked(self, instruments: Iterable[str]) -> None:
        """A fresh book was asked for these instruments (lock held): the watchdog gives them
        `resnapshot_timeout_s` to become whole."""
        self.counters["resnapshots"] += 1
        self._awaiting_resnapshot.update(instruments)
        if self._stale_since_s is None:
            self._stale_since_s = time.monotonic()
            self._wake_watchdog()  # its deadline is sooner now

    def _wake_watchdog(self) -> None:
        wakeup, loop = self._watchdog_wakeup, self._loop
        if wakeup is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wakeup.set)

    # --- the loop -----------------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._run())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            self._state = DOWN
            loop.close()

    def _backoff_s(self, failures: int) -> float:
        """Exponential, capped, with jitter: half fixed, half random (reconnecting clients spread)."""
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** min(failures, 20))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._state = CONNECTING
            self._had_data = False
            try:
                async with connect(
                    self.url,
                    additional_headers=self._headers(),
                    open_timeout=self.settings.open_timeout_s,
                    max_size=64 * 2**20,
                    **self._connect_kwargs(),
                ) as ws:
                    await self._serve(ws)
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException) as exc:
                if not self._stopping.is_set():
                    logger.warning("stream.disconnected venue=%s error=%s", self.venue, type(exc).__name__)
            except Exception:  # a message this code mishandles: log it, start over on a new socket
                logger.exception("stream.failed venue=%s", self.venue)
            finally:
                self._ws = None
                self._state = DOWN
                with self._lock:
                    self._connected_since_ms = None
                    self._forget_books()
            if self._stopping.is_set():
                break
            # A connection that delivered books resets the backoff; refusals and silence grow it.
            failures = 0 if self._had_data else failures + 1
            self.counters["reconnects"] += 1
            delay_s = self._backoff_s(failures)
            logger.info("stream.reconnect venue=%s in_s=%.2f", self.venue, delay_s)
            await asyncio.sleep(delay_s)

    async def _serve(self, ws: ClientConnection) -> None:
        """One connection, until it closes or the watchdog gives up on it."""
        self._ws = ws
        with self._lock:
            self._forget_books()
            self._connected_since_ms = self._clock_ms()
            self._stale_since_s = None
            self._awaiting_resnapshot.clear()
        self._last_data_s = time.monotonic()
        self._watchdog_closed = False
        self._watchdog_wakeup = asyncio.Event()
        await self._on_open(ws)
        logger.info("stream.connected venue=%s", self.venue)
        helpers = [asyncio.create_task(self._background(ws)), asyncio.create_task(self._watchdog(ws))]
        recv, on_frame, clock_ms, counters = ws.recv, self._on_frame, self._clock_ms, self.counters
        try:
            while True:
                try:
                    frame = await recv()
                except ConnectionClosed:
                    if self._watchdog_closed:
                        return
                    raise
                received_ms = clock_ms()
                self._last_message_ms = received_ms
                counters["messages"] += 1
                await on_frame(ws, frame, received_ms)
        finally:
            self._watchdog_wakeup = None
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Close the connection once its feed is frozen or a book stays stale too long; a task of
        its own, beside the reading, which then waits for nothing but the next frame."""
        wakeup = self._watchdog_wakeup
        assert wakeup is not None
        while True:
            wakeup.clear()
            timeout_s = self._watchdog_deadline_s() - time.monotonic()
            if timeout_s <= 0:
                logger.warning("stream.watchdog venue=%s: no data, or books stale too long", self.venue)
                self._watchdog_closed = True
                await ws.close()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout_s)

    def _watchdog_deadline_s(self) -> float:
        with self._lock:
            if not self._instruments:
                return time.monotonic() + self.settings.watchdog_s  # nothing to wait for
            deadline_s = self._last_data_s + self.settings.watchdog_s
            if self._stale_since_s is not None:
                # Only books asked for again hold the short deadline: an instrument that never
                # had a book (a closed market still followed, a refused ticker) is no sign that
                # this connection is broken.
                awaiting = self._awaiting_resnapshot & self._instruments.keys()
                self._awaiting_resnapshot = set(self._stale_instruments(list(awaiting)))
                if self._awaiting_resnapshot:
                    deadline_s = min(deadline_s, self._stale_since_s + self.settings.resnapshot_timeout_s)
                else:
                    self._stale_since_s = None
            return deadline_s
