"""Benchmark: a synthetic day through the FULL ingest pipeline (detector, spans, intents, database
writes of SuccessSpan and ExecutionIntent rows), as fast as possible.

Not a test: prints figures. References measured in the same run, on the same updates:
- read + normalise: gzip + JSON + `to_book`, the floor for any replay;
- pure core: Detector + SpanTracker + IntentEmitter without a database.
Then the pipeline itself with persistence, on a throwaway database: SQLite in a temp file by
default, or a test database next to DATABASE_URL (created and dropped). Users with running runs
are real rows (so `running_thresholds()` is the real selector); dispatch is counted, not sent,
so the simulator's work is not in these figures.

Memory: RSS (resource / /proc) sampled at each hour of *data* time, so "hour 1 vs hour 24" shows
whether the pipeline's state grows with the length of the run; `--tracemalloc` adds the Python
heap's current/peak (slower, about 2x).

Run: .venv/bin/python -m bench.bench_ingest [--hours 24] [--pairs 3] [--seed 7] [--users 5]
The recording is generated once and cached under var/bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from ingest.detector import Detector  # noqa: E402
from ingest.intents import IntentEmitter, UserThreshold  # noqa: E402
from ingest.recording import pairs_of, read_recording  # noqa: E402
from ingest.services import IngestPipeline  # noqa: E402
from ingest.sources import ReplaySource, updates_to_book_updates  # noqa: E402
from ingest.spans import SpanTracker  # noqa: E402
from ingest.synthetic import generate  # noqa: E402
from simulator import intake  # noqa: E402

HOUR_MS = 3_600_000


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def recording(hours: float, pairs: int, seed: int) -> tuple[Path, int, float]:
    cache = ROOT / "var" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"synthetic-{hours:g}h-{pairs}p-seed{seed}.jsonl.gz"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        generate(partial, pairs=pairs, hours=hours, seed=seed)
        partial.rename(path)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    _, updates = read_recording(path)
    count = sum(1 for _ in updates)
    return path, count, path.stat().st_size / 2**20


def bench_read(path: Path) -> float:
    started = time.perf_counter()
    source = ReplaySource(path, speed=None)
    for _ in source:
        pass
    return time.perf_counter() - started


def bench_pure_core(path: Path, users: list[UserThreshold]) -> tuple[float, int, int]:
    header, updates = read_recording(path)
    pairs = pairs_of(header)
    detector, tracker, emitter = Detector(pairs), SpanTracker(Decimal(1)), IntentEmitter(10_000)
    spans = intents = 0
    started = time.perf_counter()
    for update in updates_to_book_updates(updates, pairs):
        for evaluation in detector.on_books(update.books, update.now_ms):
            spans += sum(1 for e in tracker.on_evaluation(evaluation) if type(e).__name__ == "SpanOpened")
            if evaluation.best is not None and evaluation.best.size >= 1:
                intents += len(emitter.emit(evaluation, users, update.now_ms))
    return time.perf_counter() - started, spans, intents


def make_users(count: int) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from simulator.models import SimulatorRun

    now = timezone.now()
    for index in range(count):
        user = get_user_model().objects.create(username=f"bench{index}")
        # Thresholds from 1c to 5c, $10 to $50 a leg; every user watches every key.
        SimulatorRun.objects.create(
            user=user,
            starting_usd=1000,
            balance_usd=1000,
            min_net_edge_cents=Decimal(1 + index % 5),
            max_leg_usd=Decimal(10 * (1 + index % 5)),
            started_at=now,
            ends_at=now + timezone.timedelta(days=7),
            seed=index,
        )


def bench_pipeline(path: Path, use_tracemalloc: bool) -> dict:
    dispatched = {"intents": 0, "spans": 0}

    def count(kind: str):
        def dispatch(_row: object) -> int:
            dispatched[kind] += 1
            return 0

        return dispatch

    source = ReplaySource(path, speed=None)
    pipeline = IngestPipeline(source.pairs, dispatch_intent=count("intents"), dispatch_span=count("spans"))
    pipeline.restore()
    by_hour: list[tuple[int, float, float | None]] = []
    first_ms: int | None = None
    next_hour_ms = 0
    if use_tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    for update in source:
        if first_ms is None:
            first_ms = update.now_ms
            next_hour_ms = first_ms + HOUR_MS
        if update.now_ms >= next_hour_ms:
            heap = tracemalloc.get_traced_memory()[0] / 2**20 if use_tracemalloc else None
            by_hour.append(((next_hour_ms - first_ms) // HOUR_MS, rss_mb(), heap))
            next_hour_ms += HOUR_MS
        pipeline.on_update(update)
    pipeline.finish()
    elapsed = time.perf_counter() - started
    heap_end = tracemalloc.get_traced_memory() if use_tracemalloc else None
    by_hour.append(
        (
            (pipeline.now_ms - first_ms + HOUR_MS - 1) // HOUR_MS,
            rss_mb(),
            heap_end[0] / 2**20 if heap_end else None,
        )
    )
    if use_tracemalloc:
        tracemalloc.stop()
    return {
        "elapsed_s": elapsed,
        "data_s": (pipeline.now_ms - first_ms) / 1000,
        "stats": pipeline.stats,
        "by_hour": by_hour,
        "heap_peak_mb": heap_end[1] / 2**20 if heap_end else None,
        "dispatched": dispatched,
    }


def measure(*, hours: float, pairs: int, seed: int, users: int, use_tracemalloc: bool) -> dict:
    """The three stages on the same recording, in a throwaway database."""
    path, count, size_mb = recording(hours, pairs, seed)
    print(f"recording: {path.name}: {count:,} updates, {size_mb:.1f} MiB, SYNTHETIC (ingest.synthetic)")

    with contextlib.suppress(RuntimeError):  # already set up by another bench in this process
        setup_test_environment()
    db = settings.DATABASES["default"]
    tmp = None
    if db["ENGINE"].endswith("sqlite3"):
        tmp = tempfile.TemporaryDirectory()
        db.setdefault("TEST", {})["NAME"] = str(Path(tmp.name) / "bench.sqlite3")
    # create_test_db returns the test database's name: keep ours to switch back to it.
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        make_users(users)
        thresholds = intake.running_user_thresholds()

        read_s = bench_read(path)
        core_s, core_spans, core_intents = bench_pure_core(path, thresholds)
        result = bench_pipeline(path, use_tracemalloc)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if tmp is not None:
            tmp.cleanup()
    return {
        **result,
        "updates": count,
        "read_s": read_s,
        "core_s": core_s,
        "core_spans": core_spans,
        "core_intents": core_intents,
        "users": users,
        "engine": connection.vendor,
    }


def run(hours: float = 24.0, pairs: int = 3, seed: int = 7, users: int = 5) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure

    result = measure(hours=hours, pairs=pairs, seed=seed, users=users, use_tracemalloc=False)
    data_s = result["data_s"]
    read = "read + normalise the same recording, x real time"
    stats = result["stats"]
    first, last = result["by_hour"][0], result["by_hour"][-1]
    return [
        figure(
            "ingest",
            f"full pipeline, {result['engine']} persistence, x real time",
            data_s / result["elapsed_s"],
            "x",
            read,
            data_s / result["read_s"],
            f"{hours:g} h synthetic, {result['updates']:,} updates: {stats.spans_opened} spans, {stats.intents} intents"
            f" for {users} users in {result['elapsed_s']:.1f} s",
        ),
        figure(
            "ingest",
            "pure core (detector + spans + intents), x real time",
            data_s / result["core_s"],
            "x",
            read,
            data_s / result["read_s"],
        ),
        figure(
            "ingest",
            f"RSS at data hour {last[0]}",
            last[1],
            "MiB",
            f"RSS at data hour {first[0]}",
            first[1],
            f"peak {peak_rss_mb():.0f} MiB (the whole bench process)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=5, help="users with a running run")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace the Python heap (slower)")
    args = parser.parse_args()

    result = measure(
        hours=args.hours, pairs=args.pairs, seed=args.seed, users=args.users, use_tracemalloc=args.tracemalloc
    )
    count, data_s, engine = result["updates"], result["data_s"], result["engine"]
    core_spans, core_intents = result["core_spans"], result["core_intents"]
    print(f"\n{'stage':<44} {'wall s':>8} {'x real time':>12} {'updates/s':>11}")
    for name, seconds in (
        ("read + normalise (reference)", result["read_s"]),
        ("pure core: detector+spans+intents (reference)", result["core_s"]),
        (f"full pipeline, {engine} persistence", result["elapsed_s"]),
    ):
        print(f"{name:<44} {seconds:>8.1f} {data_s / seconds:>12,.0f} {count / seconds:>11,.0f}")
    stats = result["stats"]
    print(
        f"\npipeline: {stats.spans_opened} spans ({core_spans} in the pure core), {stats.intents} intents "
        f"({core_intents} in the pure core, same users) for {args.users} users; dispatched "
        f"{result['dispatched']['spans']} span starts, {result['dispatched']['intents']} intents (counted, not sent)"
    )
    hours = result["by_hour"]
    first, last = hours[0], hours[-1]
    print(
        f"memory: peak RSS {peak_rss_mb():.0f} MiB; RSS at data hour {first[0]}: {first[1]:.0f} MiB, hour {last[0]}: {last[1]:.0f} MiB"
    )
    if result["heap_peak_mb"] is not None:
        print(
            f"python heap (tracemalloc): hour {first[0]}: {first[2]:.1f} MiB, hour {last[0]}: {last[2]:.1f} MiB, "
            f"peak {result['heap_peak_mb']:.1f} MiB"
        )


if __name__ == "__main__":
    main()
