"""One detector pass over a recording, shared by every grid point of a backtest (pure: no Django).

Ingest's pipeline (`ingest.services.IngestPipeline`) does three things per book update: the
detector evaluates the pairs it touches, the span tracker follows success spans, and the intent
emitter turns an evaluation whose best direction can be traded into intents, per user threshold.
The first two do not depend on anything a backtest grid varies; the third does (the minimum net
edge and the leg size are the user's), and it is cheap. So the pass runs the detector and the span
tracker once, in exactly the pipeline's order (each update's evaluations, then the periodic sweep
of open spans, then the spans still open closed at the end), and keeps:

- `candidates`: every evaluation the pipeline would hand to the emitter (a best direction of at
  least one contract), with the span open at that moment: each grid point replays them through its
  own `IntentEmitter` and gets the intents a live run with its settings would have been sent;
- `spans`: every closed success span, for the capture rate;
- `books`: the recorded books an order can meet, in windows after each candidate (its exchange
  validation at the candidate's time, its legs' arrivals and an unwind, at most `window_ms`
  later), so memory grows with the opportunities, not with the recording's length.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book
from ingest.detector import Detector, Evaluation, PairSpec
from ingest.spans import SpanClosed, SpanTracker

if TYPE_CHECKING:  # the type only: ingest.sources reaches the venue adapters
    from ingest.sources import BookUpdate

BookKey = tuple[str, str, str]  # (venue, instrument_id, side)


@dataclass(frozen=True, slots=True)
class Candidate:
    evaluation: Evaluation
    span_key: str | None
    line: int  # the update it was evaluated at (1: the first update with a book)


class OutsideWindow(LookupError):
    """A book was asked for at a time the pass did not keep: a bug, never a silently old book."""


class WindowedBooks:
    """The books of the pairs' instruments in the kept windows: `book_at` gives the latest book of
    an instrument at or before a time inside one of its windows (the book standing then), and
    refuses a time outside them."""

    def __init__(self) -> None:
        self._times: dict[BookKey, list[int]] = {}
        self._lines: dict[BookKey, list[int]] = {}
        self._books: dict[BookKey, list[Book]] = {}
        self._windows: dict[BookKey, list[tuple[int, int]]] = {}  # disjoint, in time order

    def file(self, book: Book, line: int) -> None:
        key = (book.venue, book.instrument_id, book.side)
        books = self._books.setdefault(key, [])
        if books and books[-1] is book:
            return  # the same book, filed again as the base of a later window
        self._times.setdefault(key, []).append(book.received_ts_ms)
        self._lines.setdefault(key, []).append(line)
        books.append(book)

    def keep(self, key: BookKey, start_ms: int, end_ms: int) -> None:
        windows = self._windows.setdefault(key, [])
        if windows and start_ms <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end_ms, windows[-1][1]))
        else:
            windows.append((start_ms, end_ms))

    def kept_until(self, key: BookKey) -> int:
        windows = self._windows.get(key)
        return windows[-1][1] if windows else -1

    def book_at(
        self, venue: str, instrument_id: str, side: str, at_ms: int, *, upto_line: int | None = None
    ) -> Book | None:
        """The latest book at or before `at_ms`; with `upto_line`, among the updates read until that
        line (a decision made while reading it has not seen later lines of the same millisecond)."""
        key = (venue, instrument_id, side)
        windows = self._windows.get(key, ())
        index = bisect_right(windows, (at_ms, float("inf"))) - 1
        if index < 0 or not windows[index][0] <= at_ms <= windows[index][1]:
            raise OutsideWindow(f"no recorded book of {venue} {instrument_id} {side} kept at {at_ms} ms")
        index = bisect_right(self._times.get(key, ()), at_ms) - 1
        if upto_line is not None:
            index = min(index, bisect_right(self._lines.get(key, ()), upto_line) - 1)
        return self._books[key][index] if index >= 0 else None

    @property
    def size(self) -> int:
        return sum(len(books) for books in self._books.values())


def pair_book_keys(pair: PairSpec) -> tuple[BookKey, ...]:
    return (
        (KALSHI, pair.kalshi_ticker, YES),
        (KALSHI, pair.kalshi_ticker, NO),
        (POLYMARKET, pair.poly_yes_token, YES),
        (POLYMARKET, pair.poly_no_token, NO),
    )


@dataclass(slots=True)
class DetectorPass:
    """Feed it a recording's updates in order (`on_update`), then `finish()`."""

    pairs: list[PairSpec]
    threshold_cents: Decimal
    window_ms: int
    sweep_interval_ms: int = 1_000
    candidates: list[Candidate] = field(default_factory=list)
    spans: list[SpanClosed] = field(default_factory=list)
    books: WindowedBooks = field(default_factory=WindowedBooks)
    updates: int = 0
    first_ms: int | None = None
    last_ms: int = 0
    detector: Detector = field(init=False)
    tracker: SpanTracker = field(init=False)
    _keys_of_pair: dict[str, tuple[BookKey, ...]] = field(init=False)
    _last_sweep_ms: int = 0

    def __post_init__(self) -> None:
        self.detector = Detector(self.pairs)
        self.tracker = SpanTracker(Decimal(self.threshold_cents))
        self._keys_of_pair = {pair.opportunity_key: pair_book_keys(pair) for pair in self.pairs}

    def on_update(self, update: BookUpdate) -> None:
        now_ms = update.now_ms
        if self.first_ms is None:
            self.first_ms = now_ms
        self.last_ms = max(self.last_ms, now_ms)
        self.updates += 1
        for book in update.books:
            key = (book.venue, book.instrument_id, book.side)
            if self.books.kept_until(key) >= book.received_ts_ms:
                self.books.file(book, self.updates)
        for evaluation in self.detector.on_books(update.books, now_ms):
            self._handle(evaluation)
        if now_ms - self._last_sweep_ms >= self.sweep_interval_ms:
            self._last_sweep_ms = now_ms
            for key in self.tracker.open_keys():
                if key in self.detector.pairs:
                    self._handle(self.detector.evaluate_key(key, now_ms))

    def finish(self, reason: str = "end_of_replay") -> None:
        """Close the spans still open where the recording ends (as `ingest_run --replay` does)."""
        self.spans.extend(self.tracker.close_all(self.last_ms, reason))

    def _handle(self, evaluation: Evaluation) -> None:
        for event in self.tracker.on_evaluation(evaluation):
            if isinstance(event, SpanClosed):
                self.spans.append(event)
        best = evaluation.best
        if best is None or best.size < 1:
            return
        key = evaluation.opportunity_key
        self.candidates.append(Candidate(evaluation, self.tracker.open_span_key(key), self.updates))
        at_ms = evaluation.at_ms
        for book_key in self._keys_of_pair[key]:
            self.books.keep(book_key, at_ms, at_ms + self.window_ms)
            standing = self.detector.books.get(book_key)
            if standing is not None:
                self.books.file(standing, self.updates)


def run_pass(
    updates: Iterable[BookUpdate],
    pairs: Iterable[PairSpec],
    *,
    threshold_cents: Decimal,
    window_ms: int,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 50_000,
) -> DetectorPass:
    """The whole pass over `updates`; `progress(updates_so_far)` every `progress_every` updates."""
    shared = DetectorPass(list(pairs), Decimal(threshold_cents), window_ms)
    # Millions of short-lived objects, none in a cycle: the cyclic collector's rounds over the
    # candidates kept would cost a fifth of the pass.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for update in updates:
            shared.on_update(update)
            if progress is not None and shared.updates % progress_every == 0:
                progress(shared.updates)
        shared.finish()
    finally:
        if collecting:
            gc.enable()
    return shared
