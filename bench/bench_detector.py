"""Benchmark: book updates per second through normalisation (`to_book`) and the detector, and how
long a synthetic day takes to replay as fast as possible.

Run: `.venv/bin/python -m bench.bench_detector [--updates N] [--hours H] [--profile]`.
Targets: >= 50,000 updates/s at 100 pairs; a 24-hour recording replays in under 90 s.

Each figure is printed twice: by the wall clock and by this process's CPU time. On a shared
machine other processes inflate the wall clock (not the CPU time), so the CPU figure is the one
to compare between runs. The reference (json.loads of the same updates) is measured in the same
run, so figures can be compared across machines too.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from ingest.detector import Detector
from ingest.recording import Replayer, pairs_of, read_recording, to_book, token_sides
from ingest.spans import SpanTracker
from ingest.synthetic import generate, iter_updates, synthetic_pairs

TARGET_UPDATES_PER_S = 50_000
TARGET_DAY_REPLAY_S = 90.0


class Timing(NamedTuple):
    wall_s: float
    cpu_s: float

    def rates(self, count: int) -> str:
        return f"{count / self.wall_s:>8,.0f}/s wall {count / self.cpu_s:>8,.0f}/s cpu"


def _load() -> str:
    """The 1-minute load average: a figure taken while other work runs is not a quiet machine's."""
    return f"loadavg {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus"


def _timed(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def _best_of(runs: int, work: Callable[[], object]) -> Timing:
    """The fastest of `runs` timings: other processes on a shared machine only ever slow a run down."""
    timings = [_timed(work) for _ in range(runs)]
    return Timing(min(t.wall_s for t in timings), min(t.cpu_s for t in timings))


def _updates_for(pair_count: int, count: int) -> tuple[list, list[dict]]:
    """The first `count` updates of an hour-long synthetic recording (lazy, so cheap), whose
    divergence episodes are spread over the hour as in a real day."""
    pairs = synthetic_pairs(pair_count, seed=1)
    return pairs, list(islice(iter_updates(pairs, hours=1.0, seed=1), count))


def bench_pairs(pair_count: int, count: int, profile: bool) -> dict[str, Timing | int]:
    pairs, updates = _updates_for(pair_count, count)
    sides = token_sides(pairs)
    lines = [json.dumps(u) for u in updates]
    books = [to_book(u, sides) for u in updates]

    def detect_only() -> None:
        detector = Detector(pairs)
        for update, update_books in zip(updates, books, strict=True):
            detector.on_books(update_books, update["t"])

    def normalise_and_detect() -> None:
        detector = Detector(pairs)
        for update in updates:
            detector.on_books(to_book(update, sides), update["t"])

    def parse_only() -> None:
        for line in lines:
            json.loads(line)

    reference = _best_of(3, parse_only)

    def normalise_only() -> None:
        # Each result dropped as it is made, as the detector drops a book it replaces: keeping
        # 100,000 of them alive would time the allocator and the garbage collector instead.
        for update in updates:
            to_book(update, sides)

    normalise = _best_of(3, normalise_only)
    detect = _best_of(3, detect_only)
    both = _best_of(3, normalise_and_detect)
    n = len(updates)
    print(f"{pair_count:>5} pairs, {n:,} updates ({_load()})")
    print(f"    to_book + detector  {both.rates(n)}")
    print(f"    to_book only        {normalise.rates(n)}")
    print(f"    detector only       {detect.rates(n)}")
    print(f"    reference json.loads{reference.rates(n)}")
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(normalise_and_detect)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return {"updates": n, "both": both, "reference": reference}


def bench_day_replay(hours: float, profile: bool) -> tuple[float, float]:
    """CPU seconds for a day (extrapolated from `hours`): the full replay, and reading the same
    file alone (gunzip + json, the floor of any replay)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "day.jsonl.gz"
        started = time.perf_counter()
        lines = generate(path, pairs=3, hours=hours, seed=7)
        size_mb = path.stat().st_size / 1e6
        print(
            f"generated {hours:g} h, 3 pairs: {lines:,} updates, {size_mb:.1f} MB in {time.perf_counter() - started:.1f} s"
        )
        spans = 0

        def replay() -> None:
            nonlocal spans
            header, updates = read_recording(path)
            pairs = pairs_of(header)
            sides, detector, tracker = token_sides(pairs), Detector(pairs), SpanTracker(Decimal(2))
            for update in Replayer(updates, speed=0):
                for evaluation in detector.on_books(to_book(update, sides), update["t"]):
                    spans += len(tracker.on_evaluation(evaluation))

        if profile:
            profiler = cProfile.Profile()
            profiler.runcall(replay)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            spans = 0
        timing = _timed(replay)

        def read_only() -> None:
            for _ in read_recording(path)[1]:
                pass

        read = _timed(read_only)
    print(
        f"replayed {hours:g} h as fast as possible (read + gunzip + json + to_book + detector + spans):"
        f" {timing.wall_s:.1f} s wall, {timing.cpu_s:.1f} s cpu"
        f" ({hours * 3600 / timing.cpu_s:,.0f}x real time by cpu, {spans} span events; {_load()})"
    )
    return timing.cpu_s * 24 / hours, read.cpu_s * 24 / hours


def run(updates: int = 100_000, hours: float = 24.0) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py): CPU time, the figure that other
    processes on a shared machine do not inflate."""
    from bench.common import figure

    rows = []
    for pair_count in (10, 100, 1000):
        result = bench_pairs(pair_count, updates, profile=False)
        n = result["updates"]
        rows.append(
            figure(
                "detector",
                f"to_book + detector, {pair_count} pairs, updates/s (cpu)",
                n / result["both"].cpu_s,
                "/s",
                "json.loads of the same updates, updates/s (cpu)",
                n / result["reference"].cpu_s,
                f"target >= {TARGET_UPDATES_PER_S:,}/s" if pair_count == 100 else "",
            )
        )
    day_s, read_s = bench_day_replay(hours, profile=False)
    rows.append(
        figure(
            "detector",
            "24 h synthetic recording replayed (read + detector + spans), cpu",
            day_s,
            "s",
            "reading the same file alone (gunzip + json), cpu",
            read_s,
            f"target < {TARGET_DAY_REPLAY_S:.0f} s"
            + (f"; extrapolated from {hours:g} h" if hours != 24 else ""),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000, help="updates per pair count")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the replayed recording")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()

    pairs = {n: bench_pairs(n, args.updates, args.profile) for n in (10, 100, 1000)}
    rates = {n: result["updates"] / result["both"].cpu_s for n, result in pairs.items()}
    day_s, _ = bench_day_replay(args.hours, args.profile)
    met = {True: "met", False: "NOT met"}
    print(
        f"target >= {TARGET_UPDATES_PER_S:,}/s at 100 pairs: {rates[100]:,.0f}/s by cpu"
        f" ({met[rates[100] >= TARGET_UPDATES_PER_S]})"
    )
    extrapolated = " (extrapolated)" if args.hours != 24 else ""
    print(
        f"target a day in < {TARGET_DAY_REPLAY_S:.0f} s: {day_s:.1f} s by cpu{extrapolated}"
        f" ({met[day_s < TARGET_DAY_REPLAY_S]})"
    )


if __name__ == "__main__":
    main()
