"""config/shutdown.py: the stop a long-running command gets on SIGINT or SIGTERM, in-process.

The commands themselves, started as background jobs and signalled, are in tests/e2e/test_demo.py.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from config.shutdown import GracefulShutdown, StopRequested

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sigint_ignored():
    """SIGINT ignored, as a background job inherits it; the suite's own handler back afterwards."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_sigint_stops_once_although_it_was_ignored_and_the_old_disposition_comes_back(sigint_ignored):
    calls = []
    with GracefulShutdown() as shutdown:
        shutdown.on_stop(lambda: calls.append("stopped"))
        os.kill(os.getpid(), signal.SIGINT)
        assert shutdown.wait(timeout_s=30)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while stopping changes nothing
    assert calls == ["stopped"]
    assert shutdown.reason == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_callback_registered_after_the_stop_runs_at_once():
    calls = []
    with GracefulShutdown() as shutdown:
        shutdown.request_stop("test")
        shutdown.on_stop(lambda: calls.append("late"))
    assert calls == ["late"]


def test_a_harness_gets_stop_requested_raised_in_its_main_thread(sigint_ignored):
    with GracefulShutdown(interrupt_main=True) as shutdown, pytest.raises(StopRequested, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        shutdown.wait(timeout_s=30)
    assert shutdown.requested.is_set()


FINALIZER_SWALLOWS_CTRL_C = """
import importlib.util, os, signal, sys
spec = importlib.util.spec_from_file_location("manage", sys.argv[1])
manage = importlib.util.module_from_spec(spec)
spec.loader.exec_module(manage)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.unraisablehook = manage._interrupt_again_if_swallowed


class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # handled here, where Python prints and drops it
        for _ in range(1000):
            pass


try:
    Finalized()
    for _ in range(10**8):
        pass
    print("started as if never interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_ctrl_c_dropped_by_a_finalizer_during_start_up_still_interrupts():
    """Python drops a KeyboardInterrupt raised in `__del__`; manage.py sends the signal again."""
    result = subprocess.run(
        [sys.executable, "-c", FINALIZER_SWALLOWS_CTRL_C, str(ROOT / "manage.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "interrupted", result.stdout + result.stderr
