"""A recording's clock runs the engine's tasks of its own thread only: a backtest on a thread of a
serving process (the embedded default) leaves that process's live runs on the wall clock."""

import threading

from simulator import recorded_clock
from simulator.engine.recorded import RecordedBooks
from simulator.recorded_clock import RecordedClock


def test_a_clock_running_on_one_thread_is_not_seen_by_another():
    started, release = threading.Event(), threading.Event()
    seen_inside = []

    def backtest_thread():
        with recorded_clock.running(RecordedClock(RecordedBooks(), now_ms=1_000)):
            seen_inside.append(recorded_clock.decide_kwargs())
            started.set()
            release.wait(timeout=60)

    thread = threading.Thread(target=backtest_thread)
    thread.start()
    try:
        assert started.wait(timeout=60)
        assert recorded_clock.current() is None
        assert recorded_clock.decide_kwargs() == {}  # live decisions: the wall clock and the venues
        assert recorded_clock.arrive_kwargs() == {}
    finally:
        release.set()
        thread.join()
    assert seen_inside[0]["now"].timestamp() == 1.0
