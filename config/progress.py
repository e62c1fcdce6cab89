"""How a long-running command shows its progress: a tqdm bar when its output is a terminal,
key=value log lines (one every `every_s`) when it is piped or logged, so a person watching sees
a live bar and a log collector gets lines it can parse.

    with Progress("replay", unit="updates", stream=self.stdout) as progress:
        for ...:
            progress.update(done=count, intents=n, at="2026-01-01T00:00:00Z")

`done` is the running total (updates, rounds, lines): the bar shows it with its rate, a line gives
it with the rate since the previous line. Other keyword fields are shown beside it. The first
update is shown at once. The command's own summary line at the end stays the command's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from tqdm import tqdm

TERMINAL_REFRESH_S = 0.5  # a bar redraws this often at most


def _writable(stream: Any) -> IO[str]:
    # A management command's self.stdout wraps the real stream: the bar and isatty() need that one.
    return getattr(stream, "_out", stream)


def is_terminal(stream: Any) -> bool:
    try:
        return _writable(stream).isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return f'"{text}"' if not text or any(c in text for c in ' ="') else text


class Progress:
    def __init__(
        self,
        what: str,
        *,
        unit: str,
        stream: Any,
        total: float | None = None,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.unit, self.every_s, self._clock = what, unit, every_s, clock
        self._out = _writable(stream)
        self.terminal = is_terminal(stream)
        self._started = clock()
        self._last_at: float | None = None  # the first update is shown at once
        self._done = self._last_done = 0.0
        self._fields: dict[str, Any] = {}
        self._bar = (
            tqdm(
                desc=what,
                unit=f" {unit}",
                total=total,
                file=self._out,
                mininterval=TERMINAL_REFRESH_S,
                dynamic_ncols=True,
                unit_scale=True,
            )
            if self.terminal
            else None
        )

    @property
    def period_s(self) -> float:
        """How often the caller should report: often enough for a bar to move, else `every_s`."""
        return min(self.every_s, TERMINAL_REFRESH_S) if self.terminal else self.every_s

    def update(self, *, done: float, **fields: Any) -> None:
        self._fields = fields
        if self._bar is not None:
            self._bar.set_postfix(fields, refresh=False)
            self._bar.update(done - self._done)
            self._done = done
            return
        self._done = done
        if self._last_at is None or self._clock() - self._last_at >= self.every_s:
            self._line()

    def close(self) -> None:
        """Ends the bar (its last state stays on the screen); lines need no ending."""
        if self._bar is not None:
            self._bar.close()

    def _line(self) -> None:
        now = self._clock()
        since_s = now - (self._last_at if self._last_at is not None else self._started)
        rate = (self._done - self._last_done) / since_s if since_s > 0 else 0.0
        figures = {
            "event": "progress",
            "what": self.what,
            "elapsed_s": now - self._started,
            self.unit: int(self._done),
            f"{self.unit}_per_s": rate,
            **self._fields,
        }
        self._out.write(" ".join(f"{key}={_format(value)}" for key, value in figures.items()) + "\n")
        self._out.flush()
        self._last_at, self._last_done = now, self._done

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
