"""`StreamSource`: books from both venues' websocket feeds, with REST polling per venue while its
stream is down (or not configured).

- Each venue's stream client (exchanges.streams) keeps L2 books and hands over an instrument's
  whole book after every change; an instrument whose book is stale (a sequence gap, a crossed
  book, a reconnect) is not yielded until its resnapshot makes it whole again, so the detector
  never sees half a book.
- A quiet book is restated about every `restate_every_s` with the time it was restated: a stream that
  is live and whole vouches for it, as each polling round does for a REST book, so the detector
  does not judge a book stale or skewed just because its market is quiet.
- While a venue's stream is not live, a `LiveSource` restricted to that venue polls it (on its own
  thread, so the other venue's stream is never held up); once the stream is live again, polling
  stops. `rest_after_s` gives a stream that long to come up at start before REST stands in.
- While a venue's stream is live, the same `LiveSource` polls just the instruments the stream has
  had no whole book of for over `stale_rest_after_s` (a ticker the venue refused, a token beyond a
  subscription limit), until the stream delivers them.
- Each market's status is kept per stream connection and shared with the books
  (ingest.stream_books), so a decision need not ask the venue: Kalshi's from one batch REST call
  (GET /markets?tickers=, on the Kalshi REST thread) once its stream is live, then its
  `market_lifecycle_v2` events (`close_date_updated` moves its close time; an `activated` of a
  market not yet known on the connection waits for that call, which knows the close time); a
  Polymarket token is active once its stream has sent its book (REST's rule: a token with a book
  trades), until its `market_resolved`; it is vouched for as of the venue's last data of the book,
  not its restatements (a book the venue dropped is no proof). (Kalshi sends no event at a market's
  close time: ingest.stream_books does not take "trading" past it.) A reconnect (or Kalshi ending
  the lifecycle subscription, renewed on the same socket) forgets the connection's statuses (events
  may have been missed meanwhile) until they are known again; meanwhile, and whenever no live
  stream restates a status, decisions ask the venue.
- Every update's `raw` is a recording line (`t` receive ms, `vts` venue ms when the venue stamps
  it), so `record` and replays see stream books exactly as REST ones.
- The streams' status is published through ingest.health every `status_every_s`; lifecycle events
  reach `on_lifecycle` on the iterating thread (all of them, also those waiting when the source
  stops); an error there is logged with the event and the feed goes on (the REST resolution pass
  reads the market again).

The Kalshi feed needs an API key (INGEST_KALSHI_KEY_ID and INGEST_KALSHI_PRIVATE_KEY_PATH);
without one Kalshi is polled over REST, and the reason is logged once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import batched
from pathlib import Path

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.kalshi import MAX_BATCH_TICKERS
from exchanges.results import MarketStatus
from exchanges.streams import ACTIVATED, CLOSE_TIME_CHANGED, CLOSED, DETERMINED, SETTLED, LifecycleEvent
from exchanges.streams.connection import StreamBook, StreamConnection, StreamSettings, wall_clock_ms
from exchanges.streams.kalshi import KalshiStreamClient
from exchanges.streams.polymarket import PolymarketStreamClient
from ingest.detector import PairSpec
from ingest.health import publish_stream_status
from ingest.sources import BookUpdate, LiveHosts, LiveSource
from ingest.stream_books import StreamedStatus, publish_books

logger = logging.getLogger("ingest.streams")

NO_KALSHI_KEY = "no Kalshi API key for the stream"
PENDING_LIMIT = 10_000  # REST answers waiting for the consumer


@dataclass(frozen=True, slots=True)
class KalshiStreamKey:
    api_key_id: str
    private_key_pem: str = field(repr=False)


def kalshi_stream_key_from_environment() -> tuple[KalshiStreamKey | None, str]:
    """The key the Kalshi feed is signed with, or None and why not."""
    key_id = os.environ.get("INGEST_KALSHI_KEY_ID", "").strip()
    key_path = os.environ.get("INGEST_KALSHI_PRIVATE_KEY_PATH", "").strip()
    if not key_id or not key_path:
        return None, "INGEST_KALSHI_KEY_ID and INGEST_KALSHI_PRIVATE_KEY_PATH are not both set"
    try:
        pem = Path(key_path).expanduser().read_text()
    except OSError as exc:
        return None, f"INGEST_KALSHI_PRIVATE_KEY_PATH: cannot read {key_path}: {exc.strerror}"
    return KalshiStreamKey(key_id, pem), ""


def instruments_of(pairs: Sequence[PairSpec]) -> dict[str, dict[str, str]]:
    """Per venue, the instruments to follow and the outcome each sells."""
    kalshi: dict[str, str] = {}
    polymarket: dict[str, str] = {}
    for pair in pairs:
        kalshi[pair.kalshi_ticker] = YES
        polymarket.setdefault(pair.poly_yes_token, YES)
        polymarket.setdefault(pair.poly_no_token, NO)
    return {KALSHI: kalshi, POLYMARKET: polymarket}


# A Kalshi lifecycle event -> the venue's status word its REST market answers with afterwards.
KALSHI_STATUS_AFTER = {ACTIVATED: "active", CLOSED: "closed", DETERMINED: "determined", SETTLED: "finalized"}


def status_after(event: LifecycleEvent, before: MarketStatus | None) -> MarketStatus | None:
    """The market's status once `event` happened (None: the event says nothing of it)."""
    if event.venue == POLYMARKET:
        if event.kind != DETERMINED:
            return None
        # REST's word for a token without a book; the market has resolved.
        return MarketStatus(event.instrument_id, "closed", False, True, event.result, venue=POLYMARKET)
    if event.kind == CLOSE_TIME_CHANGED:
        return None if before is None else replace(before, close_time=event.close_time)
    if event.kind == ACTIVATED and before is None:
        # Its close time is known only over REST: the connection's batch call fills it in.
        return None
    word = KALSHI_STATUS_AFTER.get(event.kind)
    if word is None:
        return None
    result = event.result or (before.result if before is not None else None)
    resolved = event.kind in (DETERMINED, SETTLED)
    return MarketStatus(
        event.instrument_id,
        word,
        tradeable=event.kind == ACTIVATED,
        resolved=resolved,
        result=result if resolved else None,
        close_time=before.close_time if before is not None else None,
        venue=KALSHI,
    )


def _polymarket_active(token: str) -> MarketStatus:
    return MarketStatus(token, "active", True, False, venue=POLYMARKET)


def _process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StreamSource:
    """A BookSource over both venues' streams; see the module docstring."""

    def __init__(
        self,
        pairs: Sequence[PairSpec],
        *,
        hosts: LiveHosts | None = None,
        kalshi_key: KalshiStreamKey | None = None,
        settings: StreamSettings | None = None,
        poll_interval_s: float = 1.0,
        rest_after_s: float = 0.0,
        restate_every_s: float = 1.0,
        stale_rest_after_s: float = 10.0,
        status_every_s: float = 5.0,
        on_lifecycle: Callable[[LifecycleEvent], None] | None = None,
        process: str | None = None,
        shard: str = "1/1",
        wall_clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.pairs = list(pairs)
        self.hosts = hosts or LiveHosts.from_environment()
        self.rest_after_s = rest_after_s
        self.restate_every_s = restate_every_s
        self.stale_rest_after_s = stale_rest_after_s
        self.status_every_s = status_every_s
        self.process = process or _process_name()
        self._on_lifecycle = on_lifecycle
        self._wall_clock_ms = wall_clock_ms
        self._stopped = threading.Event()
        self._wakeup = threading.Event()
        # Unbounded: lifecycle events are rare, and each one pays out or flags a pair.
        self._lifecycle_events: deque[LifecycleEvent] = deque()
        self._rest_updates: deque[BookUpdate] = deque(maxlen=PENDING_LIMIT)
        self._last_yield_ms: dict[tuple[str, str], int] = {}
        # (venue, instrument) -> when the venue last sent data of its book (not a restatement).
        self._venue_data_ms: dict[tuple[str, str], int] = {}
        # (venue, instrument) -> (the stream connection it was learnt on, the market's status);
        # a connection is its client's (reconnect count, lifecycle subscriptions renewed on it).
        # Written by the client threads (events), the Kalshi REST thread and the iterating thread
        # (Polymarket books).
        self._statuses: dict[tuple[str, str], tuple[tuple[int, int], MarketStatus]] = {}
        self._statuses_lock = threading.Lock()
        # The Kalshi connection whose batch status call answered without these tickers: not
        # asked again on it (the venue does not know them; decisions ask the venue).
        self._kalshi_absent: tuple[tuple[int, int] | None, set[str]] = (None, set())
        common = {"settings": settings, "on_lifecycle": self._lifecycle_arrived, "shard": shard}
        self.clients: dict[str, StreamConnection] = {}
        self.why_no_stream: dict[str, str] = {}
        if not self.hosts.kalshi_ws:
            self.why_no_stream[KALSHI] = "no Kalshi websocket URL"
        elif kalshi_key is None:
            self.why_no_stream[KALSHI] = NO_KALSHI_KEY
        else:
            try:
                self.clients[KALSHI] = KalshiStreamClient(
                    self.hosts.kalshi_ws,
                    api_key_id=kalshi_key.api_key_id,
                    private_key_pem=kalshi_key.private_key_pem,
                    **common,
                )
            except (ValueError, TypeError) as exc:
                self.why_no_stream[KALSHI] = f"the Kalshi private key is unusable ({type(exc).__name__})"
        if self.hosts.polymarket_ws:
            self.clients[POLYMARKET] = PolymarketStreamClient(self.hosts.polymarket_ws, **common)
        else:
            self.why_no_stream[POLYMARKET] = "no Polymarket websocket URL"
        for venue, why in self.why_no_stream.items():
            logger.warning("ingest.streams no_stream venue=%s: %s; polling its REST API", venue, why)
        for client in self.clients.values():
            client.set_wakeup(self._wakeup)
        self._rest = {
            venue: LiveSource(
                self.pairs,
                hosts=self.hosts,
                poll_interval_s=poll_interval_s,
                venues=(venue,),
                sleep=self._stopped.wait,
            )
            for venue in (KALSHI, POLYMARKET)
        }
        self._threads: list[threading.Thread] = []
        self.set_pairs(self.pairs)

    # --- the pairs ----------------------------------------------------------------------------

    def set_pairs(self, pairs: Sequence[PairSpec]) -> None:
        """Follow these pairs from now on: the streams change their subscriptions."""
        self.pairs = list(pairs)
        instruments = instruments_of(self.pairs)
        for venue, client in self.clients.items():
            client.set_instruments(instruments[venue])
        # Each REST thread gives its LiveSource the pairs to poll before every round.
        self.publish_status()  # /healthz and /metrics see the new instruments at once

    @property
    def rounds(self) -> int:
        """REST polling rounds so far (both venues)."""
        return sum(source.rounds for source in self._rest.values())

    @property
    def counters(self) -> dict[str, int]:
        """The REST pollers' counters, summed (LiveSource.counters)."""
        total: dict[str, int] = {}
        for source in self._rest.values():
            for name, count in source.counters.items():
                total[name] = total.get(name, 0) + count
        return total

    def stream_live(self, venue: str) -> bool:
        client = self.clients.get(venue)
        return client is not None and client.live

    # --- the threads --------------------------------------------------------------------------

    def _lifecycle_arrived(self, event: LifecycleEvent) -> None:
        self._learn_status(event)
        self._lifecycle_events.append(event)
        self._wakeup.set()

    # --- market statuses ------------------------------------------------------------------------

    def _connection(self, venue: str) -> tuple[int, int]:
        client = self.clients[venue]
        return client.counters["reconnects"], client.lifecycle_renewals

    def market_status(self, venue: str, instrument: str) -> MarketStatus | None:
        """The market's status as this stream connection knows it; None if not known on it."""
        with self._statuses_lock:
            known = self._statuses.get((venue, instrument))
        client = self.clients.get(venue)
        if known is None or client is None or not client.live or known[0] != self._connection(venue):
            return None
        return known[1]

    def _learn_status(self, event: LifecycleEvent) -> None:
        if event.venue not in self.clients:
            return
        key, connection = (event.venue, event.instrument_id), self._connection(event.venue)
        with self._statuses_lock:
            known = self._statuses.get(key)
            before = known[1] if known is not None and known[0] == connection else None
            after = status_after(event, before)
            if after is not None:
                self._statuses[key] = (connection, after)

    def _learn_kalshi_statuses(self) -> None:
        """Ask Kalshi, in batches, the status of each streamed market not known on this
        connection. An event that came while the call was out is newer: it stays."""
        if not self.stream_live(KALSHI):
            return
        connection = self._connection(KALSHI)
        with self._statuses_lock:
            if self._kalshi_absent[0] != connection:
                self._kalshi_absent = (connection, set())
            absent = self._kalshi_absent[1]
            unknown = [
                ticker
                for ticker in sorted(self.clients[KALSHI].instruments())
                if self._statuses.get((KALSHI, ticker), (None,))[0] != connection and ticker not in absent
            ]
        adapter = self._rest[KALSHI].kalshi
        for chunk in batched(unknown, MAX_BATCH_TICKERS, strict=False):
            answer = adapter.market_statuses(chunk)
            if not answer.ok:
                logger.warning(
                    "ingest.streams statuses_unknown venue=kalshi kind=%s detail=%s: decisions ask the venue",
                    answer.kind, answer.detail,
                )  # fmt: skip
                return
            with self._statuses_lock:
                if self._connection(KALSHI) != connection:
                    return  # reconnected meanwhile: events may have been missed
                for ticker, status in answer.value.items():
                    if self._statuses.get((KALSHI, ticker), (None,))[0] != connection:
                        self._statuses[(KALSHI, ticker)] = (connection, status)
                absent.update(ticker for ticker in chunk if ticker not in answer.value)

    def _streamed_statuses(self, updates: list[BookUpdate]) -> list[StreamedStatus]:
        """The known status of each market the updates' books are of, vouched for at the book's
        receive time (a stream book is handed over or restated only while its stream is live).
        A Polymarket token's status rests on its book alone, so it is vouched for only as of the
        venue's last data of that book: a book the venue silently dropped is restated as it was,
        but its status goes stale and decisions ask the venue."""
        statuses = {}
        for update in updates:
            for book in update.books:
                key = (book.venue, book.instrument_id)
                status = self.market_status(*key)
                if status is not None:
                    vouched_ms = book.received_ts_ms
                    if book.venue == POLYMARKET:
                        vouched_ms = self._venue_data_ms.get(key, vouched_ms)
                    statuses[key] = StreamedStatus(status, vouched_ms)
        return list(statuses.values())

    def _pairs_to_poll(self, venue: str, stale_since_s: dict[str, float]) -> list[PairSpec]:
        """Every pair while the venue's stream is down; while it is live, the pairs of the
        instruments it has had no whole book of for over `stale_rest_after_s`."""
        pairs = self.pairs
        if not self.stream_live(venue):
            stale_since_s.clear()  # once the stream is back, each instrument gets its time again
            return pairs
        now_s = time.monotonic()
        stale = set(self.clients[venue].stale_instruments())
        for instrument in list(stale_since_s):
            if instrument not in stale:
                del stale_since_s[instrument]
        for instrument in stale:
            stale_since_s.setdefault(instrument, now_s)
        overdue = {i for i, since_s in stale_since_s.items() if now_s - since_s > self.stale_rest_after_s}
        if not overdue:
            return []
        if venue == KALSHI:
            return [pair for pair in pairs if pair.kalshi_ticker in overdue]
        return [pair for pair in pairs if pair.poly_yes_token in overdue or pair.poly_no_token in overdue]

    def _poll_rest(self, venue: str) -> None:
        source = self._rest[venue]
        if venue in self.clients:  # its feed gets `rest_after_s` to come up before REST stands in
            self._stopped.wait(self.rest_after_s)
        stale_since_s: dict[str, float] = {}
        while not self._stopped.is_set():
            started = time.monotonic()
            if venue == KALSHI:
                self._learn_kalshi_statuses()
            source.pairs = self._pairs_to_poll(venue, stale_since_s)
            if source.pairs:
                for update in source.poll_once():
                    self._rest_updates.append(update)
                self._wakeup.set()
            self._stopped.wait(max(0.0, source.poll_interval_s - (time.monotonic() - started)))

    def _start(self) -> None:
        for client in self.clients.values():
            client.start()
        for venue in (KALSHI, POLYMARKET):
            thread = threading.Thread(
                target=self._poll_rest, args=(venue,), name=f"rest-{venue}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    # --- iterating ----------------------------------------------------------------------------

    def _as_update(self, venue: str, book: StreamBook, *, restated: bool = False) -> BookUpdate:
        self._last_yield_ms[(venue, book.instrument_id)] = book.received_ms
        if not restated:
            self._venue_data_ms[(venue, book.instrument_id)] = book.received_ms
        if venue == POLYMARKET:
            key, connection = (venue, book.instrument_id), self._connection(venue)
            with self._statuses_lock:
                if self._statuses.get(key, (None,))[0] != connection:
                    self._statuses[key] = (connection, _polymarket_active(book.instrument_id))
        # The recording line is built only if something reads it (the `record` command).
        return BookUpdate(book.received_ms, book.books, lambda: book.line)

    def _restatements(self, now_ms: int) -> list[BookUpdate]:
        # Half a period: a book handed over just after one pass is restated at the next, so no
        # live book is older than 1.5 periods (within the detector's default 2 s skew).
        due_ms = now_ms - int(self.restate_every_s * 500)
        updates = []
        for venue, client in self.clients.items():
            if not client.live:
                continue
            for book in client.current_books(now_ms):
                if self._last_yield_ms.get((venue, book.instrument_id), 0) <= due_ms:
                    updates.append(self._as_update(venue, book, restated=True))
        return updates

    def _shared(self, updates: list[BookUpdate], *, streamed: bool = True) -> list[BookUpdate]:
        """The updates, their books (and, from a stream, their markets' statuses) also kept for
        validation and arrivals (ingest.stream_books), in one cache round trip."""
        if updates:
            try:
                statuses = self._streamed_statuses(updates) if streamed else []
                publish_books((book for update in updates for book in update.books), statuses)
            except Exception:  # a cache outage must not stop the feed: decisions then ask the venue
                logger.warning("ingest.streams books_not_shared", exc_info=True)
        return updates

    def publish_status(self) -> None:
        try:
            publish_stream_status(self.process, [client.status() for client in self.clients.values()])
        except Exception:  # a cache outage must not stop the feed; /healthz will notice it
            logger.warning("ingest.streams status_not_published", exc_info=True)

    def __iter__(self) -> Iterator[BookUpdate]:
        self._start()
        next_restate_s = next_status_s = time.monotonic()
        try:
            while not self._stopped.is_set():
                self._wakeup.wait(max(0.0, min(next_restate_s, next_status_s) - time.monotonic()))
                self._wakeup.clear()
                polled = []
                while self._rest_updates:
                    update = self._rest_updates.popleft()
                    # A book polled while the stream came back (or delivered it) is older than
                    # the stream's.
                    if self._stream_lacks(update.books[0].venue, update.books[0].instrument_id):
                        polled.append(update)
                yield from self._shared(polled, streamed=False)
                for venue, client in self.clients.items():
                    yield from self._shared([self._as_update(venue, book) for book in client.get(0)])
                self._deliver_lifecycle_events()
                now_s = time.monotonic()
                if now_s >= next_restate_s:
                    next_restate_s = now_s + self.restate_every_s
                    yield from self._shared(self._restatements(self._wall_clock_ms()))
                if now_s >= next_status_s:
                    next_status_s = now_s + self.status_every_s
                    self.publish_status()
        finally:
            self._shutdown()
            self._deliver_lifecycle_events()  # those that came before the streams closed

    def _stream_lacks(self, venue: str, instrument: str) -> bool:
        client = self.clients.get(venue)
        return client is None or not client.live or client.ladders(instrument) is None

    def _deliver_lifecycle_events(self) -> None:
        if self._lifecycle_events:
            self._share_statuses({(e.venue, e.instrument_id) for e in self._lifecycle_events})
        while self._lifecycle_events:
            event = self._lifecycle_events.popleft()
            if self._on_lifecycle is None:
                continue
            try:
                self._on_lifecycle(event)
            except Exception:  # a database error must not end the feed; the REST pass recovers it
                logger.exception("ingest.streams lifecycle_failed event=%s", event)

    def _share_statuses(self, markets: set[tuple[str, str]]) -> None:
        """Share at once what lifecycle events taught of these markets (a closed market must be
        refused by the next decision, not after the next restatement)."""
        now_ms = self._wall_clock_ms()
        statuses = [
            StreamedStatus(status, now_ms)
            for venue, instrument in markets
            if (status := self.market_status(venue, instrument)) is not None
        ]
        try:
            publish_books((), statuses)
        except Exception:  # a cache outage must not stop the feed: decisions then ask the venue
            logger.warning("ingest.streams statuses_not_shared", exc_info=True)

    def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()

    def _shutdown(self) -> None:
        self._stopped.set()
        for client in self.clients.values():
            client.stop()
        for thread in self._threads:
            thread.join()
