"""A recording's books by instrument and time, for deciding on a recording's own clock.

`RecordedBooks` answers "which book stood at this moment" for every (venue, instrument, side): the
latest update at or before it, never a later one (no look-ahead). It stands in for the venues
twice: as the exchange validation at decision time (`validator`), and as the book an order meets
at its arrival time (`arrival_books`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from exchanges.books import Book
from simulator.core import ExchangeValidation, IntentLeg, LegValidation

if TYPE_CHECKING:
    from simulator.engine.arrival import Step

# A recording holds no venue balances: the run's own balance and daily cap are its only limits.
RECORDED_VENUE_BALANCE_USD = Decimal(10**9)
BookKey = tuple[str, str, str]  # (venue, instrument_id, side)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RecordedBooks:
    """Books filed in the order they were recorded (at once, or one by one with `add` as a replay
    reads them: then "the latest at or before" is among the books read so far, never a later one)."""

    def __init__(self, books: Iterable[Book] = ()) -> None:
        self._times: dict[BookKey, list[int]] = {}
        self._books: dict[BookKey, list[Book]] = {}
        for book in books:
            self.add(book)

    def add(self, book: Book) -> None:
        key = (book.venue, book.instrument_id, book.side)
        times = self._times.setdefault(key, [])
        if times and book.received_ts_ms < times[-1]:
            raise ValueError(f"{key}: the recording's time goes backwards at {book.received_ts_ms} ms")
        times.append(book.received_ts_ms)
        self._books.setdefault(key, []).append(book)

    def book_at(self, venue: str, instrument_id: str, side: str, at_ms: int) -> Book | None:
        """The latest book of that instrument recorded at or before `at_ms` (None: none yet)."""
        key = (venue, instrument_id, side)
        index = bisect_right(self._times.get(key, ()), at_ms) - 1
        return self._books[key][index] if index >= 0 else None

    def validate(self, user_id: int, legs: Sequence[IntentLeg], now: datetime) -> ExchangeValidation:
        """The exchange validation a recording gives: each leg's book as it stood at `now`. It
        calls no venue, so the engine may ask it under the run's lock (`from_cache`)."""
        results = []
        for leg in legs:
            book = self.book_at(leg.venue, leg.instrument_id, leg.side, _ms(now))
            ok = book is not None
            results.append(
                LegValidation(
                    venue=leg.venue,
                    instrument_id=leg.instrument_id,
                    side=leg.side,
                    ok=ok,
                    kind="ok" if ok else "malformed",
                    detail="recorded book" if ok else "no recorded book at this time",
                    tradeable=ok,
                    book=book,
                    latency_ms=0,
                )
            )
        balances = {leg.venue: RECORDED_VENUE_BALANCE_USD for leg in legs}
        ok = all(result.ok for result in results)
        return ExchangeValidation(ok=ok, legs=tuple(results), balances_usd=balances)

    __call__ = from_cache = validate  # a Validator, and its cached form
    needs_keys = False  # nothing is signed: the exchange_keys check passes without saved keys

    def arrival_books(self, user_id: int, order: Step, at: datetime) -> tuple[Book | None, str]:
        """The book an order meets when it arrives at `at`."""
        book = self.book_at(order.venue, order.instrument_id, order.side, _ms(at))
        return (book, "") if book is not None else (None, "no book at arrival: nothing recorded for it yet")


class BooksAsOf(RecordedBooks):
    """Another timeline's books through its `book_at(venue, instrument_id, side, at_ms)`, e.g. a
    backtest's kept windows (`ingest.detector_pass.WindowedBooks`) as of one recording line."""

    def __init__(self, book_at: Callable[[str, str, str, int], Book | None]) -> None:
        super().__init__()
        self.book_at = book_at  # type: ignore[method-assign]
