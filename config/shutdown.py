"""Stopping a long-running command on SIGINT or SIGTERM, whatever disposition it inherited.

A process started in the background (`nohup`, `cmd &` in a script, many CI runners and job
schedulers) inherits SIGINT *ignored*: Python then installs no KeyboardInterrupt handler and
Twisted's reactor installs no SIGINT handler either, so Ctrl-C or `kill -INT` does nothing. A
command that runs until stopped therefore installs its own handlers for both signals, inside
`with GracefulShutdown() as shutdown:`, and restores the previous ones when it leaves.

Whoever catches it, the stop must not depend on the main thread: the kernel may hand a signal to
any thread, and the Python-level handler then waits until the main thread next runs bytecode,
which a thread blocked in `Event.wait()` never does. Nor may the stop take locks in a handler:
it interrupts the main thread anywhere, possibly inside the lock of a `threading.Event`. So the
signal's number goes to a pipe through `signal.set_wakeup_fd` (written by CPython's C-level
handler, in whichever thread caught it), and a watcher thread reading that pipe does the
stopping: it sets `requested` and runs the registered callbacks. Callbacks must therefore be
thread-safe and quick (set a flag, hand a stop to a reactor with `callFromThread`, forward a
signal); the main thread notices `requested` and shuts down in its own order.

No Django imports: this is process plumbing, used by commands of every app.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(KeyboardInterrupt):
    """Raised in the main thread on the first stop signal by `GracefulShutdown(interrupt_main=True)`.

    A KeyboardInterrupt, so `except Exception` blocks let it through and the try/finally blocks
    it unwinds through clean up, as they would on a Ctrl-C in a terminal.
    """


class GracefulShutdown:
    """SIGINT and SIGTERM handlers that request one orderly stop, installed explicitly.

    `requested` is set on the first signal (or `request_stop()`); later signals change nothing,
    so a stop already under way is not interrupted. With `interrupt_main=True` the first signal
    also raises StopRequested in the main thread, for harnesses whose cleanup is try/finally.
    Installing is skipped outside the main thread (only the main thread may set handlers; a
    caller running a command from another thread keeps its own signal handling).
    """

    def __init__(self, *, interrupt_main: bool = False) -> None:
        self.requested = threading.Event()
        self.reason: str | None = None  # the signal's name, or what request_stop() was told
        self._interrupt_main = interrupt_main
        self._raised = False
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self._wake_write: int | None = None
        self._previous_wakeup_fd = -1
        self._watcher: threading.Thread | None = None

    # --- what a command uses ------------------------------------------------------------------

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run `callback` when a stop is requested (in the thread requesting it: the watcher on a
        signal), or at once if it was."""
        with self._lock:
            if not self.requested.is_set():
                self._callbacks.append(callback)
                return
        self._run(callback)

    def request_stop(self, reason: str = "requested") -> None:
        """Set `requested` and run the callbacks once, in the order they were registered."""
        with self._lock:
            if self.requested.is_set():
                return
            self.reason = reason
            self.requested.set()
            callbacks, self._callbacks = self._callbacks, []
        logger.info("event=stop_requested reason=%s", reason)
        for callback in callbacks:
            self._run(callback)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until a stop is requested (True) or `timeout_s` passes (False)."""
        return self.requested.wait(timeout_s)

    def sleep(self, seconds: float) -> None:
        """A sleep that ends early on a stop: the `sleep` to inject into pacing loops."""
        self.requested.wait(max(0.0, seconds))

    # --- installing and restoring -------------------------------------------------------------

    def install(self) -> GracefulShutdown:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("event=signal_handlers_not_installed reason=not_main_thread")
            return self
        wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._watcher = threading.Thread(
            target=self._watch, args=(wake_read,), name="graceful-shutdown", daemon=True
        )
        self._watcher.start()
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def uninstall(self) -> None:
        if self._wake_write is None:
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        os.close(self._wake_write)  # the watcher reads end-of-file and returns
        self._wake_write = None
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def __enter__(self) -> GracefulShutdown:
        return self.install()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()

    # --- internals ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # The watcher has the signal already (the wakeup fd); only the main thread's part is here.
        if self._interrupt_main and not self._raised:
            self._raised = True
            raise StopRequested(signal.Signals(signum).name)

    def _watch(self, wake_read: int) -> None:
        try:
            while data := os.read(wake_read, 64):
                for signum in data:
                    if signum in STOP_SIGNALS:  # the wakeup fd carries every Python-handled signal
                        self.request_stop(signal.Signals(signum).name)
        finally:
            os.close(wake_read)

    @staticmethod
    def _run(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            logger.exception("event=stop_callback_failed callback=%r", callback)
