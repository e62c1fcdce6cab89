"""A recording's own clock for the engine's normal task path: decisions and arrivals on recorded
time, against recorded books, in one process.

The decision and arrival tasks (`simulator.tasks`) ask `decide_kwargs()` / `arrive_kwargs()`: with
no clock running, nothing (the wall clock and the venues); with one, the recording's time and its
books. `schedule_arrivals` hands steps to the running clock instead of the broker or the timer,
and whoever reads the recording calls `arrive_due(before_ms)` between updates. Every reader uses
the same order of events, so every path gives the same trades:

- an update's books are filed, then the decisions it leads to are made, at its time, seeing the
  books read so far (the same millisecond's later lines are not read yet);
- an order due at `at` arrives before the first update later than `at`, seeing every book
  recorded at or before `at`.

`ingest_run --replay FILE --recorded-clock` runs ingest this way, as do backtests
(`simulator.backtests`), whose decisions see their recording's kept windows instead.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulator.engine import Step
from simulator.engine.recorded import RecordedBooks


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(slots=True)
class RecordedClock:
    books: RecordedBooks  # what decisions see (now: as of the update being read)
    arrival: RecordedBooks | None = None  # what orders meet on arrival; None: `books`
    now_ms: int = 0
    _due: list[tuple[int, int, Step]] = field(default_factory=list)  # (at ms, order, step)
    _order: Iterator[int] = field(default_factory=itertools.count)

    def schedule(self, steps: Sequence[Step]) -> None:
        for step in steps:
            heapq.heappush(self._due, (int(step.at.timestamp() * 1000), next(self._order), step))

    def pop_due(self, before_ms: int | None) -> Iterator[Step]:
        """Steps due before `before_ms` (None: all), earliest first; steps scheduled while this
        runs (a second leg, an unwind) come out in their turn."""
        while self._due and (before_ms is None or self._due[0][0] < before_ms):
            yield heapq.heappop(self._due)[2]


# Per thread: a backtest run on a thread of a serving process (the embedded default) must not
# put the live runs' tasks, decided on that process's other threads, on its clock.
_local = threading.local()


def _clocks() -> list[RecordedClock]:
    if not hasattr(_local, "clocks"):
        _local.clocks = []
    return _local.clocks


@contextmanager
def running(clock: RecordedClock) -> Iterator[RecordedClock]:
    """The engine's tasks run on `clock` in this thread until the block ends."""
    _clocks().append(clock)
    try:
        yield clock
    finally:
        _clocks().remove(clock)


def current() -> RecordedClock | None:
    clocks = _clocks()
    return clocks[-1] if clocks else None


def decide_kwargs() -> dict[str, Any]:
    clock = current()
    return {} if clock is None else {"now": _at(clock.now_ms), "validator": clock.books}


def arrive_kwargs() -> dict[str, Any]:
    clock = current()
    return {} if clock is None else {"books": (clock.arrival or clock.books).arrival_books}
