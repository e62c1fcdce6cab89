"""Recordings: written then read back gives the same books; replay timing; the synthetic generator."""

import gzip
import json
from decimal import Decimal as D

import pytest

from exchanges.books import NO, YES, kalshi_books, polymarket_book
from ingest.detector import Detector
from ingest.recording import (
    RecordingError,
    RecordingWriter,
    Replayer,
    kalshi_update,
    pairs_of,
    polymarket_update,
    read_recording,
    to_book,
    token_sides,
)
from ingest.spans import SpanClosed, SpanTracker
from ingest.synthetic import episodes_of, generate, iter_updates, synthetic_pairs

PAIRS = synthetic_pairs(2, seed=1)
FED = PAIRS[0]


def test_a_recording_read_back_gives_the_same_books(tmp_path):
    path = tmp_path / "rec.jsonl.gz"
    # Kalshi serves bids ascending (best last); Polymarket bids ascending, asks descending.
    kalshi_line = kalshi_update(
        1000, FED.kalshi_ticker, [("0.4000", "100.00"), ("0.4200", "13.00")], [("0.5500", "20.00")]
    )
    poly_line = polymarket_update(
        1200,
        FED.poly_yes_token,
        [("0.48", "120"), ("0.49", "50")],
        [("0.53", "30"), ("0.52", "75")],
        venue_ts_ms=1150,
    )
    with RecordingWriter(path, pairs=PAIRS, source="test") as writer:
        writer.append(kalshi_line)
        writer.append(poly_line)
    header, updates = read_recording(path)
    assert (header["format"], header["version"], header["source"]) == ("arbsim-recording", 1, "test")
    assert pairs_of(header) == PAIRS
    first, second = list(updates)
    sides = token_sides(pairs_of(header))

    expected_kalshi = kalshi_books(
        FED.kalshi_ticker,
        [(D("0.40"), D(100)), (D("0.42"), D(13))],
        [(D("0.55"), D(20))],
        received_ts_ms=1000,
    )
    assert to_book(first, sides) == (expected_kalshi[YES], expected_kalshi[NO])
    [poly_book] = to_book(second, sides)
    assert poly_book == polymarket_book(
        FED.poly_yes_token,
        YES,
        [(D("0.49"), D(50)), (D("0.48"), D(120))],
        [(D("0.52"), D(75)), (D("0.53"), D(30))],
        venue_ts_ms=1150,
        received_ts_ms=1200,
    )
    assert poly_book.asks[0].price == D("0.52")  # best first, whatever order the venue sent
    assert to_book(polymarket_update(5, "unknown-token", [], []), sides) == ()


def test_ladders_with_repeated_prices_empty_levels_or_any_order_normalise_like_the_shared_functions():
    messy_yes = [["0.4200", "5.00"], ["0.4000", "100.00"], ["0.4200", "8.00"], ["0.3900", "0.00"]]
    line = kalshi_update(7, FED.kalshi_ticker, messy_yes, [["0.5500", "20.00"], ["0.5600", "1.50"]])
    expected = kalshi_books(
        FED.kalshi_ticker,
        [(D(p), D(s)) for p, s in messy_yes],
        [(D("0.55"), D(20)), (D("0.56"), D("1.5"))],
        received_ts_ms=7,
    )
    assert to_book(line, token_sides(PAIRS)) == (expected[YES], expected[NO])
    assert expected[YES].bids[0].size == D(13)  # 5 + 8 at 0.42, merged

    # Already best first (not the venue's usual order) is fine too.
    best_first = polymarket_update(
        9, FED.poly_no_token, [("0.49", "1"), ("0.48", "2")], [("0.52", "3"), ("0.53", "4")]
    )
    [book] = to_book(best_first, token_sides(PAIRS))
    assert book == polymarket_book(
        FED.poly_no_token,
        NO,
        [(D("0.49"), D(1)), (D("0.48"), D(2))],
        [(D("0.52"), D(3)), (D("0.53"), D(4))],
        received_ts_ms=9,
    )
    assert [lv.price for lv in book.asks] == [D("0.52"), D("0.53")]


def test_a_flushed_recording_is_readable_while_still_being_written(tmp_path):
    path = tmp_path / "live.jsonl.gz"
    writer = RecordingWriter(path, pairs=PAIRS, source="live")
    writer.append(kalshi_update(1, FED.kalshi_ticker, [("0.40", "1")], []))
    writer.flush()
    _, updates = read_recording(path)  # the gzip stream has no end yet, as after a crash
    assert [u["t"] for u in updates] == [1]
    writer.close()


def test_a_file_that_is_not_a_recording_is_refused(tmp_path):
    path = tmp_path / "other.jsonl.gz"
    with gzip.open(path, "wt") as file:
        file.write(json.dumps({"format": "something-else"}) + "\n")
    with pytest.raises(RecordingError, match="not an arbsim-recording"):
        read_recording(path)
    with gzip.open(path, "wt") as file:
        file.write(json.dumps({"format": "arbsim-recording", "version": 2}) + "\n")
    with pytest.raises(RecordingError, match="version 2"):
        read_recording(path)


class FakeClock:
    def __init__(self):
        self.now_s = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now_s

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now_s += seconds


UPDATES = [{"t": 10_000}, {"t": 10_500}, {"t": 10_500}, {"t": 12_000}]


def replay_times(speed):
    clock = FakeClock()
    times = [(u["t"], clock()) for u in Replayer(UPDATES, speed=speed, clock=clock, sleep=clock.sleep)]
    return times, clock


def test_replay_at_speed_one_keeps_the_recorded_spacing():
    times, _ = replay_times(1)
    assert [round(wall - 100.0, 6) for _, wall in times] == [0.0, 0.5, 0.5, 2.0]


def test_replay_at_ten_times_is_ten_times_faster():
    times, _ = replay_times(10)
    assert [round(wall - 100.0, 6) for _, wall in times] == [0.0, 0.05, 0.05, 0.2]


def test_replay_as_fast_as_possible_never_sleeps():
    for speed in (0, None):
        times, clock = replay_times(speed)
        assert [t for t, _ in times] == [10_000, 10_500, 10_500, 12_000]
        assert clock.sleeps == []


def test_replay_does_not_sleep_when_the_consumer_is_already_late():
    clock = FakeClock()
    replayed = []
    updates = [{"t": 0}, {"t": 500}, {"t": 500}, {"t": 5000}]
    for update in Replayer(updates, speed=1, clock=clock, sleep=clock.sleep):
        replayed.append(clock())
        clock.now_s += 1.0  # a slow consumer: one second per update
    # Late for the 2nd and 3rd (due at +0.5 s), so no sleep; then waits 2 s for the 4th, due at +5 s.
    assert clock.sleeps == [pytest.approx(2.0)]
    assert [round(w - 100.0, 6) for w in replayed] == [0.0, 1.0, 2.0, 5.0]


def test_the_synthetic_generator_is_deterministic_per_seed(tmp_path):
    a, b, c = (tmp_path / name for name in ("a.gz", "b.gz", "c.gz"))
    assert generate(a, pairs=2, hours=0.05, seed=3) == generate(b, pairs=2, hours=0.05, seed=3) > 0
    generate(c, pairs=2, hours=0.05, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    header, updates = read_recording(a)
    assert "synthetic" in header["source"]
    times = [u["t"] for u in updates]
    assert times == sorted(times)


def test_synthetic_pairs_look_like_real_instruments():
    fed = synthetic_pairs(1)[0]
    assert (fed.opportunity_key, fed.kalshi_ticker) == ("FED-DEC-CUT", "KXFEDDECISION-26DEC-C25")
    assert fed.poly_yes_token.isdigit() and len(fed.poly_yes_token) >= 70
    assert fed.poly_yes_token != fed.poly_no_token
    assert len({p.opportunity_key for p in synthetic_pairs(50)}) == 50


def test_the_synthetic_recording_has_a_span_above_two_cents_for_every_pair_hour():
    pairs = synthetic_pairs(3, seed=11)
    sides, detector, tracker = token_sides(pairs), Detector(pairs), SpanTracker(threshold_cents=D(2))
    peaks: dict[str, D] = {}
    last_t = 0
    for update in iter_updates(pairs, hours=1.0, seed=11, updates_per_s=1.0):
        last_t = update["t"]
        for evaluation in detector.on_books(to_book(update, sides), now_ms=last_t):
            for event in tracker.on_evaluation(evaluation):
                if isinstance(event, SpanClosed):
                    peaks[event.key] = max(peaks.get(event.key, D(-100)), event.peak_edge_cents)
    for event in tracker.close_all(last_t):
        peaks[event.key] = max(peaks.get(event.key, D(-100)), event.peak_edge_cents)
    assert set(peaks) == {p.opportunity_key for p in pairs}
    assert all(peak > 2 for peak in peaks.values())
    assert all(len(episodes) >= 1 for episodes in episodes_of(pairs, hours=1.0, seed=11).values())
    assert detector.counters["skewed"] == 0  # venues never go more than a second without an update
