"""Benchmark: book updates per second through normalisation (`to_book`) and the detector, and how
long a synthetic day takes to replay as fast as possible.

Run: `.venv/bin/python -m bench.bench_detector [--updates N] [--hours H] [--profile]`.
Targets: >= 50,000 updates/s at 100 pairs; a 24-hour recording replays in under 90 s.
The reference line (json.loads of the same updates) is measured in the same run, so figures can
be compared across machines.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from decimal import Decimal
from itertools import islice
from pathlib import Path

from ingest.detector import Detector
from ingest.recording import Replayer, pairs_of, read_recording, to_book, token_sides
from ingest.spans import SpanTracker
from ingest.synthetic import generate, iter_updates, synthetic_pairs

TARGET_UPDATES_PER_S = 50_000
TARGET_DAY_REPLAY_S = 90.0


def _best_of(runs: int, work) -> float:
    """The fastest of `runs` timings: other processes on a shared machine only ever slow a run down."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def _updates_for(pair_count: int, count: int) -> tuple[list, list[dict]]:
    """The first `count` updates of an hour-long synthetic recording (lazy, so cheap), whose
    divergence episodes are spread over the hour as in a real day."""
    pairs = synthetic_pairs(pair_count, seed=1)
    return pairs, list(islice(iter_updates(pairs, hours=1.0, seed=1), count))


def bench_pairs(pair_count: int, count: int, profile: bool) -> float:
    pairs, updates = _updates_for(pair_count, count)
    sides = token_sides(pairs)
    lines = [json.dumps(u) for u in updates]

    reference_s = _best_of(3, lambda: [json.loads(line) for line in lines])
    normalise_s = _best_of(3, lambda: [to_book(u, sides) for u in updates])
    books = [to_book(u, sides) for u in updates]

    def detect_only() -> None:
        detector = Detector(pairs)
        for update, update_books in zip(updates, books, strict=True):
            detector.on_books(update_books, update["t"])

    detect_s = _best_of(3, detect_only)
    detector = Detector(pairs)

    def normalise_and_detect() -> None:
        nonlocal detector
        detector = Detector(pairs)
        for update in updates:
            detector.on_books(to_book(update, sides), update["t"])

    both_s = _best_of(3, normalise_and_detect)
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(normalise_and_detect)

    n = len(updates)
    rate = n / both_s
    print(
        f"{pair_count:>5} pairs  {n:>7} updates  to_book+detector {rate:>9,.0f}/s"
        f"  (to_book {n / normalise_s:>9,.0f}/s, detector {n / detect_s:>9,.0f}/s;"
        f" reference json.loads {n / reference_s:>9,.0f}/s)"
        f"  evaluations {detector.counters['evaluations']}"
    )
    if profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return rate


def bench_day_replay(hours: float, profile: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.jsonl.gz"
        started = time.perf_counter()
        lines = generate(path, pairs=3, hours=hours, seed=7)
        generate_s = time.perf_counter() - started
        print(
            f"generated {hours:g} h, 3 pairs: {lines:,} updates, {path.stat().st_size / 1e6:.1f} MB in {generate_s:.1f} s"
        )

        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        header, updates = read_recording(path)
        pairs = pairs_of(header)
        sides, detector, tracker = token_sides(pairs), Detector(pairs), SpanTracker(Decimal(2))
        spans = 0
        for update in Replayer(updates, speed=0):
            for evaluation in detector.on_books(to_book(update, sides), update["t"]):
                spans += len(tracker.on_evaluation(evaluation))
        if profiler:
            profiler.disable()
        replay_s = time.perf_counter() - started
    print(
        f"replayed {hours:g} h as fast as possible in {replay_s:.1f} s"
        f" ({hours * 3600 / replay_s:,.0f}x real time, {lines / replay_s:,.0f} updates/s, {spans} span events)"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return replay_s * 24 / hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000, help="updates per pair count")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the replayed recording")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()

    rates = {n: bench_pairs(n, args.updates, args.profile) for n in (10, 100, 1000)}
    day_s = bench_day_replay(args.hours, args.profile)
    print(
        f"target >= {TARGET_UPDATES_PER_S:,}/s at 100 pairs: {rates[100]:,.0f}/s"
        f" ({'met' if rates[100] >= TARGET_UPDATES_PER_S else 'NOT met'})"
    )
    print(
        f"target a day in < {TARGET_DAY_REPLAY_S:.0f} s: {day_s:.1f} s"
        f"{' (extrapolated)' if args.hours != 24 else ''} ({'met' if day_s < TARGET_DAY_REPLAY_S else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
