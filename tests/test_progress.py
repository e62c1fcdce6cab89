"""Long-running commands: a progress bar on a terminal, key=value lines when piped or logged."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import termios
from contextlib import contextmanager

from django.core.management import call_command

from config.progress import Progress


@contextmanager
def terminal():
    """A pseudo-terminal: yields (the stream a command writes to, a function reading what it showed)."""
    controller, attached = pty.openpty()
    fcntl.ioctl(attached, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    screen = os.fdopen(attached, "w")
    shown = bytearray()

    def read() -> str:
        while select.select([controller], [], [], 0)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            shown.extend(chunk)
        return shown.decode(errors="replace")

    try:
        yield screen, read
    finally:
        screen.close()
        os.close(controller)


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split())


def test_piped_progress_is_a_key_value_line_at_once_then_every_period():
    out, clock = io.StringIO(), Clock()
    with Progress("replay", unit="updates", stream=out, every_s=5, clock=clock) as progress:
        assert progress.period_s == 5
        clock.now_s += 1
        progress.update(done=100, intents=0, at="2026-01-01T00:00:00Z")
        clock.now_s += 1
        progress.update(done=200, intents=1, at="2026-01-01T00:00:01Z")  # within the period: no line
        clock.now_s += 5
        progress.update(done=1_200, intents=2, at="2026-01-01T00:00:09Z")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(fields, lines)
    assert first == {
        "event": "progress",
        "what": "replay",
        "elapsed_s": "1.0",
        "updates": "100",
        "updates_per_s": "100.0",
        "intents": "0",
        "at": "2026-01-01T00:00:00Z",
    }
    assert (second["updates"], second["updates_per_s"], second["intents"]) == ("1200", "183.3", "2")


def test_a_terminal_gets_a_bar_that_redraws_in_place():
    with terminal() as (screen, read):
        clock = Clock()
        with Progress("replay", unit="updates", stream=screen, total=1_000, clock=clock) as progress:
            assert progress.terminal and progress.period_s < 1
            progress.update(done=250, intents=3)
            progress.update(done=1_000, intents=4)
        shown = read()
    assert "event=" not in shown
    assert "\r" in shown and "replay" in shown
    assert "100%" in shown and "1000/1000" in shown.replace(".00k", "000")
    assert "intents=4" in shown


def test_make_recording_shows_a_bar_on_a_terminal_and_lines_when_piped(tmp_path):
    arguments = ["--pairs", "3", "--hours", "0.1", "--updates-per-s", "12"]  # about 13,000 lines
    piped = io.StringIO()
    call_command("make_recording", "--out", str(tmp_path / "a.jsonl.gz"), *arguments, stdout=piped)
    progress_lines = [fields(line) for line in piped.getvalue().splitlines() if line.startswith("event=")]
    assert progress_lines and progress_lines[0]["what"] == "make_recording"
    assert int(progress_lines[0]["lines"]) == 10_000
    assert piped.getvalue().splitlines()[-1].startswith("wrote ")

    with terminal() as (screen, read):
        call_command("make_recording", "--out", str(tmp_path / "b.jsonl.gz"), *arguments, stdout=screen)
        screen.flush()
        shown = read()
    assert "make_recording" in shown and "%|" in shown  # tqdm's bar: percentage, then the bar
    assert "event=" not in shown
    assert "wrote " in shown
