"""One thread that runs the double's delayed work (book moves, and the end of lasting ones) on time.

One thread rather than a `threading.Timer` per move: a busy double sets off moves on many
reads, and `close()` has one thread to stop and join instead of a crowd.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("exchanges.double")


class Timers:
    """`call_later(delay_s, fn)` runs `fn` on the timer thread, started by the first call.
    `close()` drops what is pending, joins the thread and ignores later calls until `open()`."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()  # ties run in the order they were asked for
        self._thread: threading.Thread | None = None
        self._generation = 0  # a thread runs while the generation it was started in lasts
        self._closed = False

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        with self._wake:
            if self._closed:
                return  # e.g. a request still in hand while the double stops
            heapq.heappush(self._due, (self._clock() + delay_s, next(self._order), fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._generation,), name="exchange-double-timers", daemon=True
                )
                self._thread.start()
            self._wake.notify_all()

    def open(self) -> None:
        with self._wake:
            self._closed = False

    def close(self) -> None:
        with self._wake:
            thread, self._thread = self._thread, None
            self._closed = True
            self._generation += 1
            self._due.clear()
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self, generation: int) -> None:
        while True:
            with self._wake:
                while generation == self._generation and (not self._due or self._due[0][0] > self._clock()):
                    self._wake.wait(self._due[0][0] - self._clock() if self._due else None)
                if generation != self._generation:
                    return
                _, _, fn = heapq.heappop(self._due)
            try:
                fn()
            except Exception:
                logger.exception("exchange_double timer failed")
