"""config/shutdown.py: the stop a long-running command gets on SIGINT or SIGTERM, in-process.

The commands themselves, started as background jobs and signalled, are in tests/e2e/test_demo.py.
"""

import os
import signal

import pytest

from config.shutdown import GracefulShutdown, StopRequested


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
