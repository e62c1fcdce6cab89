"""Reading a recording on its own clock (`simulator.recorded_clock`): what a reader does with each
update before ingest's pipeline sees it, for `ingest_run --replay FILE --recorded-clock`.

A backtest (`simulator.backtests`) reads its recording once for every grid point (the detector's
shared pass) and then decides each point's intents in the same order of events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from ingest.sources import BookUpdate
from simulator import recorded_clock
from simulator.engine.recorded import RecordedBooks
from simulator.recorded_clock import RecordedClock
from simulator.tasks import arrive_due


def read_update(clock: RecordedClock, update: BookUpdate) -> None:
    """Orders due before this update arrive; then its books are filed and the clock reads its time."""
    arrive_due(update.now_ms)
    for book in update.books:
        clock.books.add(book)
    clock.now_ms = update.now_ms


@contextmanager
def recording_clock() -> Iterator[Callable[[BookUpdate], None]]:
    """Decisions and arrivals of this process on the recording's clock while the block runs; call
    what it yields with each update before the pipeline sees it. Orders still on their way at the
    end arrive when the block ends (the recording is over; they meet its last books)."""
    clock = RecordedClock(RecordedBooks())
    with recorded_clock.running(clock):
        yield partial(read_update, clock)
        arrive_due(None)
