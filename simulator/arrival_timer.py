"""Arrivals on a timer thread, for a process without Celery workers (the demo): each step runs at
its arrival time on the wall clock, so the book it reads is the one standing then."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class ArrivalTimer:
    """One daemon thread running callbacks at their time, earliest first. Thread-safe."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, at: datetime, callback: Callable[[], None]) -> None:
        with self._wake:
            if self._stopped:  # stopping: the sweep will send it again
                return
            heapq.heappush(self._heap, (at, next(self._order), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sim-arrivals", daemon=True)
                self._thread.start()
            self._wake.notify()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread after the callback in hand; callbacks still waiting are dropped (their
        steps are left to the sweep). A later `call_at` starts a new thread."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        with self._wake:
            self._heap.clear()
            self._thread = None
            self._stopped = False

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    if self._heap:
                        wait_s = (self._heap[0][0] - datetime.now(UTC)).total_seconds()
                        if wait_s <= 0:
                            break
                        self._wake.wait(wait_s)
                    else:
                        self._wake.wait()
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:
                logger.exception("event=arrival_failed")
            finally:
                close_old_connections()


timer = ArrivalTimer()
