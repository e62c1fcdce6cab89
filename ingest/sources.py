"""Where books come from: one interface, `BookSource`, and two sources.

- `LiveSource` polls Kalshi orderbooks and Polymarket token books through the read adapters
  (public market data: no keys), up to 100 books per call, within the venues' read limits
  (exchanges.ratelimit), and backs a venue off after a failure: a 429 waits Retry-After (at
  least `min_retry_after_s`), a 5xx or a connect error waits an exponentially growing pause,
  reset by the next success. The host is configurable, so tests and the demo poll the double.
- `ReplaySource` reads a recording (ingest.recording) with its original timing, N times faster,
  or as fast as possible, through an injected clock and sleep.

Both yield `BookUpdate`s: the normalised books of one venue answer (a Kalshi market gives its YES
and NO books together), the ingest time they count at (`now_ms`), and the same answer as a
recording line (`raw`), which is what the recorder writes and what `mirror_to_double` applies.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import batched
from pathlib import Path
from typing import Any, Protocol

import kalshi_python_sync

from exchanges.books import KALSHI, NO, POLYMARKET, VENUES, YES, Book
from exchanges.kalshi import KALSHI_PROD_HOST, KalshiAdapter, KalshiCredentials
from exchanges.kalshi import MAX_BATCH_TICKERS as KALSHI_MAX_BATCH
from exchanges.polymarket import MAX_BATCH_TOKENS as POLYMARKET_MAX_BATCH
from exchanges.polymarket import POLYMARKET_PROD_HOST, PolymarketAdapter, PolymarketCredentials
from exchanges.ratelimit import LocalRateLimiter
from exchanges.results import OK, RATE_LIMITED, REJECTED, UNREACHABLE, CallResult, Limiter
from exchanges.streams.kalshi import KALSHI_PROD_WS_URL
from exchanges.streams.polymarket import POLYMARKET_PROD_WS_URL
from ingest.detector import PairSpec
from ingest.recording import (
    Replayer,
    kalshi_update,
    pairs_of,
    polymarket_update,
    read_recording,
    to_book,
    token_sides,
)

logger = logging.getLogger("ingest.sources")

KALSHI_DOUBLE_PREFIX = "/trade-api/v2"


class BookUpdate:
    """One update: its books, the ingest clock it counts at (`now_ms`: live, when it arrived;
    replay, the recorded `t`) and its recording line (`raw`, ingest.recording's format). A source
    may give, instead of the line, a function that builds it: called once, the first time `raw` is
    read (a stream builds a line only when something records). Updates are equal when their
    times and books are; their lines are not compared."""

    __slots__ = ("_raw", "books", "now_ms")

    def __init__(
        self, now_ms: int, books: tuple[Book, ...], raw: dict[str, Any] | Callable[[], dict[str, Any]]
    ) -> None:
        self.now_ms = now_ms
        self.books = books
        self._raw = raw

    @property
    def raw(self) -> dict[str, Any]:
        raw = self._raw
        if callable(raw):
            raw = self._raw = raw()
        return raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BookUpdate):
            return NotImplemented
        return self.now_ms == other.now_ms and self.books == other.books

    def __hash__(self) -> int:
        return hash((self.now_ms, self.books))

    def __repr__(self) -> str:
        return f"BookUpdate(now_ms={self.now_ms!r}, books={self.books!r})"


class BookSource(Protocol):
    pairs: list[PairSpec]

    def __iter__(self) -> Iterator[BookUpdate]: ...

    def stop(self) -> None: ...


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# --- live ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveHosts:
    kalshi: str = KALSHI_PROD_HOST
    polymarket: str = POLYMARKET_PROD_HOST
    # The venues' websocket feeds ("" = no stream for that venue: poll its REST API).
    kalshi_ws: str = KALSHI_PROD_WS_URL
    polymarket_ws: str = POLYMARKET_PROD_WS_URL

    @classmethod
    def of_double(cls, double: str | Any, *, kalshi_ws: str = "", polymarket_ws: str = "") -> LiveHosts:
        """Both venues at one exchange double: a running `ExchangeDouble` (its REST base and its
        websocket feeds), or its base URL `http://127.0.0.1:<port>` with the feeds given apart."""
        if not isinstance(double, str):
            kalshi_ws = kalshi_ws or double.kalshi_ws_url
            polymarket_ws = polymarket_ws or double.polymarket_ws_url
            double = double.base_url
        base = double.rstrip("/")
        return cls(
            kalshi=base + KALSHI_DOUBLE_PREFIX,
            polymarket=base,
            kalshi_ws=kalshi_ws,
            polymarket_ws=polymarket_ws,
        )

    @classmethod
    def from_environment(cls) -> LiveHosts:
        """INGEST_DOUBLE_URL (both venues at a double), else INGEST_KALSHI_HOST /
        INGEST_POLYMARKET_HOST, else the production hosts; the feeds from INGEST_KALSHI_WS_URL /
        INGEST_POLYMARKET_WS_URL, else (not at a double) the production feeds."""
        double_url = os.environ.get("INGEST_DOUBLE_URL", "").strip()
        kalshi_ws = os.environ.get("INGEST_KALSHI_WS_URL", "").strip()
        polymarket_ws = os.environ.get("INGEST_POLYMARKET_WS_URL", "").strip()
        if double_url:
            return cls.of_double(double_url, kalshi_ws=kalshi_ws, polymarket_ws=polymarket_ws)
        return cls(
            kalshi=os.environ.get("INGEST_KALSHI_HOST", "").strip() or KALSHI_PROD_HOST,
            polymarket=os.environ.get("INGEST_POLYMARKET_HOST", "").strip() or POLYMARKET_PROD_HOST,
            kalshi_ws=kalshi_ws or KALSHI_PROD_WS_URL,
            polymarket_ws=polymarket_ws or POLYMARKET_PROD_WS_URL,
        )


class PublicKalshiAdapter(KalshiAdapter):
    """The Kalshi adapter without credentials: orderbooks and markets are public data.

    The client signs only when both a key id and a key are configured, so this client sends no
    auth headers at all (a random key would be refused wherever the venue checks it).
    """

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(KalshiCredentials(api_key_id="", private_key_pem="", host=host), **kwargs)
        config = kalshi_python_sync.Configuration(host=self.credentials.resolved_host, retries=0)
        self._client = kalshi_python_sync.KalshiClient(config)
        self._setup_error = None


@dataclass(slots=True)
class _Backoff:
    failures: int = 0
    until_s: float = 0.0
    last_kind: str = ""


class LiveSource:
    """Polls every pair's three instruments once per `poll_interval_s`.

    A round asks each venue's batch book call (Kalshi GET /markets/orderbooks, Polymarket POST
    /books) for up to 100 instruments at a time, one rate-limit token per call; `batch_books=False`
    asks one book per call. Either way a round yields one BookUpdate per Kalshi market and per
    Polymarket token, with the same recording lines.

    `poll_once()` is one round (what a Celery tick does); iterating loops rounds until `stop()`
    or `max_rounds`. A venue in backoff is skipped for the rest of the round and until its pause
    ends; the other venue keeps being polled.
    """

    def __init__(
        self,
        pairs: Sequence[PairSpec],
        *,
        hosts: LiveHosts | None = None,
        rate_limiter: Limiter | None = None,
        poll_interval_s: float = 1.0,
        timeout_s: float = 3.0,
        min_retry_after_s: float = 1.0,
        base_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        depth: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
        max_rounds: int | None = None,
        batch_books: bool = True,
        venues: Sequence[str] = VENUES,
    ) -> None:
        self.pairs = list(pairs)
        self.batch_books = batch_books
        self.batches_refused: set[str] = set()  # venues that refused a batch call for want of keys
        self.venues = tuple(venues)  # the venues polled (a stream source polls one whose stream is down)
        self.hosts = hosts or LiveHosts.from_environment()
        self.poll_interval_s = poll_interval_s
        self.min_retry_after_s = min_retry_after_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.depth = depth
        self.max_rounds = max_rounds
        self._clock = clock
        self._sleep = sleep
        self._wall_clock_ms = wall_clock_ms
        if rate_limiter is None:
            rate_limiter = LocalRateLimiter(clock=clock, sleep=sleep)
        common = {"timeout_s": timeout_s, "rate_limiter": rate_limiter, "wall_clock_ms": wall_clock_ms}
        self.kalshi = PublicKalshiAdapter(self.hosts.kalshi, **common)
        # The token book is L0 (no key); the adapter only needs a key for balances.
        self.polymarket = PolymarketAdapter(
            PolymarketCredentials(private_key="", host=self.hosts.polymarket), **common
        )
        self._backoff = {KALSHI: _Backoff(), POLYMARKET: _Backoff()}
        self._stopped = False
        self.rounds = 0
        self.counters: dict[str, int] = {"calls": 0, "ok": 0, "skipped_backoff": 0, "backoffs": 0}

    # The instruments to poll, deduplicated across pairs (two pairs may share a token).
    def _instruments(self) -> tuple[list[str], list[tuple[str, str]]]:
        tickers: dict[str, None] = {}
        tokens: dict[str, str] = {}
        for pair in self.pairs:
            tickers[pair.kalshi_ticker] = None
            tokens.setdefault(pair.poly_yes_token, YES)
            tokens.setdefault(pair.poly_no_token, NO)
        return (
            list(tickers) if KALSHI in self.venues else [],
            list(tokens.items()) if POLYMARKET in self.venues else [],
        )

    def backoff_until_s(self, venue: str) -> float:
        return self._backoff[venue].until_s

    def _blocked(self, venue: str) -> bool:
        return self._clock() < self._backoff[venue].until_s

    def _record(self, result: CallResult[Any]) -> bool:
        """Count a result and start or reset the venue's backoff; True if it can be used."""
        state = self._backoff[result.venue]
        self.counters["calls"] += 1
        if result.kind == OK:
            self.counters["ok"] += 1
            state.failures = 0
            return True
        self.counters[result.kind] = self.counters.get(result.kind, 0) + 1
        if result.kind in (RATE_LIMITED, UNREACHABLE):
            state.failures += 1
            exponential = min(self.max_backoff_s, self.base_backoff_s * 2 ** (state.failures - 1))
            if result.kind == RATE_LIMITED:
                # The venue said when to come back; without a Retry-After, back off as for a 5xx.
                retry = result.retry_after_s
                pause = max(self.min_retry_after_s, retry) if retry is not None else exponential
            else:
                pause = exponential
            state.until_s = self._clock() + pause
            state.last_kind = result.kind
            self.counters["backoffs"] += 1
            logger.warning(
                "ingest.live backoff venue=%s kind=%s pause_s=%.2f detail=%s",
                result.venue,
                result.kind,
                pause,
                result.detail,
            )
        else:  # rejected / malformed: this instrument's problem, not the venue's
            logger.warning(
                "ingest.live call_failed venue=%s call=%s kind=%s detail=%s",
                result.venue,
                result.call,
                result.kind,
                result.detail,
            )
        return False

    def poll_once(self) -> list[BookUpdate]:
        """One round over every instrument of every pair; venues in backoff are skipped."""
        tickers, tokens = self._instruments()
        updates: list[BookUpdate] = []
        if self.batch_books:
            for chunk in batched(tickers, KALSHI_MAX_BATCH, strict=False):
                self._poll_kalshi_batch(chunk, updates)
            for chunk in batched(tokens, POLYMARKET_MAX_BATCH, strict=False):
                self._poll_polymarket_batch(chunk, updates)
        else:
            for ticker in tickers:
                self._poll_kalshi_one(ticker, updates)
            for token, side in tokens:
                self._poll_polymarket_one(token, side, updates)
        self.rounds += 1
        return updates

    def _batch_refused(self, result: CallResult[Any]) -> None:
        """A rejected batch call: its chunk is asked one book at a time this round (one unknown
        or closed market refuses the whole call). A 401/403 says the venue wants keys for the
        batch call that its single-book call does not (Kalshi's reference lists auth headers
        for GET /markets/orderbooks): from then on that venue is polled one book per call."""
        self._record(result)
        if result.http_status in (401, 403) and result.venue not in self.batches_refused:
            self.batches_refused.add(result.venue)
            logger.warning("ingest.live batch_refused venue=%s detail=%s", result.venue, result.detail)

    def _skipped(self, venue: str, instruments: int) -> bool:
        if not self._blocked(venue):
            return False
        self.counters["skipped_backoff"] += instruments
        return True

    def _poll_kalshi_one(self, ticker: str, updates: list[BookUpdate]) -> None:
        if self._skipped(KALSHI, 1):
            return
        result = self.kalshi.orderbook(ticker, depth=self.depth)
        if self._record(result):
            updates.append(_kalshi_book_update(ticker, result.value))

    def _poll_polymarket_one(self, token: str, side: str, updates: list[BookUpdate]) -> None:
        if self._skipped(POLYMARKET, 1):
            return
        result = self.polymarket.orderbook(token, side)
        if self._record(result):
            updates.append(_polymarket_book_update(token, result.value))

    def _poll_kalshi_batch(self, tickers: Sequence[str], updates: list[BookUpdate]) -> None:
        if KALSHI not in self.batches_refused:
            if self._skipped(KALSHI, len(tickers)):
                return
            result = self.kalshi.orderbooks(tickers, depth=self.depth)
            if result.kind != REJECTED:
                if self._record(result):
                    for ticker in tickers:
                        books = result.value.get(ticker)
                        if books is None:
                            self._missing(KALSHI, ticker)
                        else:
                            updates.append(_kalshi_book_update(ticker, books))
                return
            self._batch_refused(result)
        for ticker in tickers:
            self._poll_kalshi_one(ticker, updates)

    def _poll_polymarket_batch(self, tokens: Sequence[tuple[str, str]], updates: list[BookUpdate]) -> None:
        if POLYMARKET not in self.batches_refused:
            if self._skipped(POLYMARKET, len(tokens)):
                return
            result = self.polymarket.orderbooks(tokens)
            if result.kind != REJECTED:
                if self._record(result):
                    for token, _side in tokens:
                        book = result.value.get(token)
                        if book is None:
                            self._missing(POLYMARKET, token)
                        else:
                            updates.append(_polymarket_book_update(token, book))
                return
            self._batch_refused(result)
        for token, side in tokens:
            self._poll_polymarket_one(token, side, updates)

    def _missing(self, venue: str, instrument: str) -> None:
        self.counters["missing"] = self.counters.get("missing", 0) + 1
        logger.warning("ingest.live book_missing venue=%s id=%s", venue, instrument)

    def _more_rounds(self) -> bool:
        return not self._stopped and (self.max_rounds is None or self.rounds < self.max_rounds)

    def __iter__(self) -> Iterator[BookUpdate]:
        while self._more_rounds():
            started_s = self._clock()
            yield from self.poll_once()
            wait_s = self.poll_interval_s - (self._clock() - started_s)
            if wait_s > 0 and self._more_rounds():
                self._sleep(wait_s)

    def stop(self) -> None:
        self._stopped = True


def _kalshi_book_update(ticker: str, books: dict[str, Book]) -> BookUpdate:
    yes_book, no_book = books[YES], books[NO]
    now_ms = yes_book.received_ts_ms
    raw = kalshi_update(
        now_ms,
        ticker,
        [(lv.price, lv.size) for lv in yes_book.bids],
        [(lv.price, lv.size) for lv in no_book.bids],
    )
    return BookUpdate(now_ms, (yes_book, no_book), raw)


def _polymarket_book_update(token: str, book: Book) -> BookUpdate:
    raw = polymarket_update(
        book.received_ts_ms,
        token,
        [(lv.price, lv.size) for lv in book.bids],
        [(lv.price, lv.size) for lv in book.asks],
        venue_ts_ms=book.venue_ts_ms,
    )
    return BookUpdate(book.received_ts_ms, (book,), raw)


# --- replay --------------------------------------------------------------------------------------


def updates_to_book_updates(
    updates: Iterable[dict[str, Any]], pairs: Iterable[PairSpec]
) -> Iterator[BookUpdate]:
    sides = token_sides(pairs)
    for update in updates:
        books = to_book(update, sides)
        if books:
            yield BookUpdate(update["t"], books, update)


class ReplaySource:
    """A recording's updates as BookUpdates, timed by `speed` (1 = as recorded, N = N x faster,
    None or 0 = as fast as possible). `now_ms` is each update's recorded time, never the wall
    clock, so staleness and skew are judged as they were when it was recorded."""

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.header, self._updates = read_recording(self.path)
        self.pairs = pairs_of(self.header)
        self._stopped = False
        self._replayer = Replayer(self._until_stopped(), speed=speed, clock=clock, sleep=sleep)

    def _until_stopped(self) -> Iterator[dict[str, Any]]:
        for update in self._updates:
            if self._stopped:
                return
            yield update

    def __iter__(self) -> Iterator[BookUpdate]:
        return updates_to_book_updates(self._replayer, self.pairs)

    def stop(self) -> None:
        self._stopped = True
