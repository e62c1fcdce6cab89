"""Backtests: a 12-point grid over a 24 h recording next to a detector-only replay of the same file,
measured in the same run, on PostgreSQL; 1 and 2 worker processes; memory over 24 h and 7 days.

Not a test: returns figures (`python -m bench bench_backtest` prints them; `./dev bench
bench_backtest` starts a throwaway PostgreSQL + Redis first). `--quick` (or BENCH_QUICK=1) runs the
same steps on 1 h and 4 h recordings, for a smoke run in about a minute.

1. Recordings, generated once with `make_recording` and kept under var/bench/: the 24 h one with
   the pairs, seed and update rate of the bundled 1 h demo recording (read from its header's
   `source`); the 7-day one with one of those pairs at the same rate (the same pair count would
   take over an hour to generate and replay here).
2. Reference, the detector-only replay: `ingest.detector_pass.run_pass` over the 24 h file (gunzip,
   json, `to_book`, the detector and the span tracker, no database): what every backtest reads and
   computes before its first grid point, so the honest floor of any grid. Beside it, gunzip +
   `json.loads` alone of the same lines.
3. The grid min_net_edge_cents=0.5,1,2 x max_leg_usd=100,250 x order_type=ioc,fok (12 points)
   through `create_backtest` + `run_backtest` on PostgreSQL, at workers=1 and workers=2: wall time
   split into the recording's check (`validate_recording`: first time, then cached per file
   version), the pass, and the points (their runs created, decided, arrived, ended, and their
   results gathered). Ratio grid / detector-only (target <= 1.5x), speed-up 2 workers / 1, and
   whether both give the same results (without the runs' row ids).
4. Memory: peak RSS (GNU time's %M) of a one-point backtest in a fresh
   process over the 24 h and over the 7-day recording, next to the same process before any
   backtest (Django and the engine imported); the pass's kept books (`books.size`) and candidates.
5. Where a point's time goes: cProfile of `run_point` for one point over the 24 h file (the pass
   taken from step 3's run), its time by part: intents emitted, intent rows written, decisions,
   arrivals.

Run: .venv/bin/python -m bench bench_backtest (needs DATABASE_URL=postgres://..., REDIS_URL)
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import json
import os
import pickle
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from bench.common import ROOT, figure, loadavg, missing_services, setup_django, skipped

BENCH = "backtest"
BUNDLED = ROOT / "ingest" / "data" / "demo_recording.jsonl.gz"
CACHE = ROOT / "var" / "bench"
GRID = {"min_net_edge_cents": ["0.5", "1", "2"], "max_leg_usd": ["100", "250"], "order_type": ["ioc", "fok"]}
ONE_POINT = {"min_net_edge_cents": ["1"]}
SEED = 7
TARGET_RATIO = 1.5
USERNAME = "bench-backtest"
TIME = "/usr/bin/time"  # GNU time (Debian package `time`): a process's own peak RSS


@dataclass(frozen=True)
class Recording:
    label: str
    pairs: int
    hours: float
    updates_per_s: float
    seed: int

    @property
    def path(self) -> Path:
        return CACHE / (
            f"backtest-{self.hours:g}h-{self.pairs}p-{self.updates_per_s:g}ups-seed{self.seed}.jsonl.gz"
        )


def bundled_source() -> dict[str, str]:
    """The bundled recording's `source` ("synthetic seed=7 pairs=3 hours=1.0 updates_per_s=1.2")
    as {name: value}."""
    with gzip.open(BUNDLED, "rt", encoding="utf-8") as file:
        source = json.loads(file.readline())["source"]
    return dict(re.findall(r"(\w+)=(\S+)", source))


def recordings(quick: bool) -> tuple[Recording, Recording]:
    source = bundled_source()
    pairs, rate, seed = int(source["pairs"]), float(source["updates_per_s"]), int(source["seed"])
    day_hours, week_hours = (1.0, 4.0) if quick else (24.0, 168.0)
    return (
        Recording(f"{day_hours:g} h", pairs, day_hours, rate, seed),
        Recording(
            f"{week_hours / 24:g} days" if week_hours >= 24 else f"{week_hours:g} h",
            1,
            week_hours,
            rate,
            seed,
        ),
    )


def ensure_recording(recording: Recording) -> tuple[Path, float]:
    """The recording's file (made by `make_recording` the first time), and the seconds making it
    took (0 when it was already there)."""
    from django.core.management import call_command

    path = recording.path
    if path.exists():
        return path, 0.0
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.jsonl.gz")
    started = time.perf_counter()
    call_command(
        "make_recording",
        out=partial,
        pairs=recording.pairs,
        hours=recording.hours,
        seed=recording.seed,
        updates_per_s=recording.updates_per_s,
        stdout=io.StringIO(),
    )
    partial.rename(path)
    return path, time.perf_counter() - started


# --- timing ----------------------------------------------------------------------------------


class Clock:
    """Wall and CPU seconds of a block (CPU: this process's own)."""

    def __enter__(self) -> Clock:
        self.started, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self.started
        self.cpu_s = time.process_time() - self._cpu


class Timed:
    """Wraps a module's function for the length of a run, adding up the wall time of its calls
    and keeping the last result (the pass, to profile a point over it later)."""

    def __init__(self, module: Any, name: str) -> None:
        self.module, self.name, self.seconds, self.result = module, name, 0.0, None
        self.original = getattr(module, name)

    def __enter__(self) -> Timed:
        @wraps(self.original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                self.result = self.original(*args, **kwargs)
                return self.result
            finally:
                self.seconds += time.perf_counter() - started

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.module, self.name, self.original)


# --- 2. the reference ------------------------------------------------------------------------


def json_only(path: Path) -> Clock:
    with Clock() as clock, gzip.open(path, "rt", encoding="utf-8") as file:
        file.readline()
        for line in file:
            json.loads(line)
    return clock


def detector_only(path: Path) -> tuple[Clock, Any]:
    """The backtest's own pass (same reading, threshold and book window), without a database."""
    from ingest.detector_pass import run_pass
    from ingest.recording import pairs_of, read_recording
    from ingest.sources import updates_to_book_updates
    from simulator.backtests import SPAN_THRESHOLD_CENTS, arrival_window_ms, grid_points

    with Clock() as clock:
        header, updates = read_recording(path)
        pairs = pairs_of(header)
        shared = run_pass(
            updates_to_book_updates(updates, pairs),
            pairs,
            threshold_cents=SPAN_THRESHOLD_CENTS,
            window_ms=arrival_window_ms(grid_points(GRID)),
        )
    return clock, shared


# --- 3. the grid -----------------------------------------------------------------------------


def bench_user():
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    return user


def run_grid(path: Path, grid: dict[str, list[str]], workers: int, columnar: bool = False) -> dict[str, Any]:
    from simulator import backtests

    backtest = backtests.create_backtest(
        user=bench_user(),
        recording=str(path),
        grid=grid,
        seed=SEED,
        starting_usd="1000",
        workers=workers,
        allow_any_path=True,
    )
    with (
        Timed(backtests, "checked_recording") as check,
        Timed(backtests, "run_pass") as shared,
        Timed(backtests, "fast_pass") as column_wise,
        Timed(backtests, "point_result") as results,
        Clock() as clock,
    ):
        first_point: list[float] = []  # seconds from the start to the first point done

        def progress(current: Any) -> None:
            if current.points_done and not first_point:
                first_point.append(time.perf_counter() - clock.started)

        backtest = backtests.run_backtest(
            backtest.pk, workers=workers, on_progress=progress, columnar=columnar
        )
    pass_s = shared.seconds + column_wise.seconds
    decisions = sum(result["decisions"] for result in backtest.results)
    return {
        "wall_s": clock.wall_s,
        "check_s": check.seconds,
        "pass_s": pass_s,
        "results_s": results.seconds,
        "points_s": clock.wall_s - check.seconds - pass_s,
        "first_point_s": first_point[0] - check.seconds - pass_s,
        "points": backtest.points_total,
        "decisions": decisions,
        "trades": sum(result["trades"] for result in backtest.results),
        "results": [{k: v for k, v in result.items() if k != "run_id"} for result in backtest.results],
        "shared": shared.result if shared.result is not None else column_wise.result,
    }


# --- 4. memory, in a fresh process -----------------------------------------------------------


def child_main(path: str | None) -> None:
    """In a fresh process: Django and the engine imported, then (with `path`) a one-point backtest
    of it; prints the pass's sizes as JSON on the last line."""
    setup_django()
    from simulator import backtests

    if path is None:
        print(json.dumps({}))
        return
    with Timed(backtests, "run_pass") as shared:
        backtest = backtests.create_backtest(
            user=bench_user(), recording=path, grid=ONE_POINT, seed=SEED, allow_any_path=True
        )
        backtests.run_backtest(backtest.pk, workers=1)
    print(
        json.dumps(
            {
                "updates": shared.result.updates,
                "candidates": len(shared.result.candidates),
                "kept_books": shared.result.books.size,
                "spans": len(shared.result.spans),
            }
        )
    )


def peak_rss_of_child(path: Path | None) -> tuple[float, dict[str, Any], float]:
    """Peak RSS (MiB) of a fresh process running `child_main`, as `/usr/bin/time` reports it, its
    printed sizes and its wall time. (The rusage a parent reads back for a child is no use here:
    on Linux a child's peak starts at its parent's size when it was forked.)"""
    command = [sys.executable, "-m", "bench.bench_backtest", "--child", str(path) if path else "-"]
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        started = time.perf_counter()
        done = subprocess.run(
            [TIME, "-f", "%M", "-o", str(peak_file), *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        wall_s = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        peak_kib = int(peak_file.read_text().split()[-1])
    return peak_kib / 1024, json.loads(done.stdout.strip().splitlines()[-1]), wall_s


# --- 5. where a point's time goes ------------------------------------------------------------

PARTS = {
    # part: (file suffix, function name) whose cumulative time it is
    "decisions (decide_intent_task)": ("simulator/tasks.py", "decide_intent_task"),
    "arrivals (arrive_due)": ("simulator/tasks.py", "arrive_due"),
    "intent rows (bulk_create)": ("django/db/models/query.py", "bulk_create"),
    "intents emitted (IntentEmitter.emit)": ("ingest/intents.py", "emit"),
    "run ended (end_run)": ("simulator/engine/expiry.py", "end_run"),
}


def profile_point(path: Path, shared: Any) -> dict[str, Any]:
    """cProfile of one point's `run_point` over `shared` (step 3's pass of the same file)."""
    from simulator import backtests
    from simulator.models import SimulatorRun

    backtest = backtests.create_backtest(
        user=bench_user(), recording=str(path), grid=ONE_POINT, seed=SEED, allow_any_path=True
    )
    profiler = cProfile.Profile()
    original_point = backtests.run_point

    def profiled(run_id: int, pass_: Any) -> None:
        profiler.runcall(original_point, run_id, pass_)

    backtests.run_pass = _returning(shared, backtests.run_pass)
    backtests.run_point = profiled
    try:
        backtest = backtests.run_backtest(backtest.pk, workers=1)
    finally:
        backtests.run_pass = backtests.run_pass.original
        backtests.run_point = original_point
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    parts = {}
    for part, (file_suffix, name) in PARTS.items():
        parts[part] = sum(
            row[3]
            for (file, _, function), row in stats.stats.items()
            if function == name and file.endswith(file_suffix)
        )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    top_cumulative = text.getvalue()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    run = SimulatorRun.objects.get(backtest=backtest)
    return {
        "profiled_s": total,
        "parts": parts,
        "decisions": backtest.results[0]["decisions"],
        "candidates": len(shared.candidates),
        "run_id": run.pk,
        "top_cumulative": top_cumulative,
        "top_tottime": text.getvalue(),
    }


def _returning(value: Any, original: Callable) -> Callable:
    def run_pass(*args: Any, **kwargs: Any) -> Any:
        return value

    run_pass.original = original
    return run_pass


# --- the run ---------------------------------------------------------------------------------


def _same(a: list[dict], b: list[dict]) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def run(quick: bool | None = None) -> list[dict[str, Any]]:
    reason = missing_services()
    if reason:
        return skipped(BENCH, reason)
    if quick is None:
        quick = os.environ.get("BENCH_QUICK") == "1"
    setup_django()
    from bench.common import migrate
    from ingest.recording_validation import validate_recording
    from simulator import backtests

    migrate()
    day, week = recordings(quick)
    print(f"  machine: {os.cpu_count()} CPUs, load average {loadavg()}", flush=True)
    made = {}
    for recording in (day, week):
        path, seconds = ensure_recording(recording)
        made[recording.label] = seconds
        print(
            f"  recording {recording.label}: {path.relative_to(ROOT)} ({path.stat().st_size / 2**20:.1f} MiB"
            + (f", made by make_recording in {seconds:.0f} s" if seconds else ", made earlier")
            + ")",
            flush=True,
        )
    path = day.path

    # 2. the reference
    loads = json_only(path)
    reference, shared = detector_only(path)
    updates = shared.updates
    payload_mib = len(pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    print(
        f"  json.loads only: {loads.wall_s:.1f} s ({updates / loads.wall_s:,.0f} lines/s); detector-only pass: "
        f"{reference.wall_s:.1f} s wall, {reference.cpu_s:.1f} s cpu ({updates / reference.wall_s:,.0f} updates/s); "
        f"{len(shared.candidates):,} candidates, {len(shared.spans):,} spans, {shared.books.size:,} kept books, "
        f"pickled {payload_mib:.1f} MiB",
        flush=True,
    )

    # 3. the grid: the check first (first time), then cached inside each run; the streaming pass
    # (no columnar cache beside the file) at 1 and 2 workers, then the column-wise one
    from ingest.columnar_file import columnar_path, ensure_columnar

    columnar_path(path).unlink(missing_ok=True)
    with Clock() as first_check:
        validate_recording(path)
    backtests.checked_recording(path)
    grid = {}
    for workers in (1, 2):
        grid[workers] = result = run_grid(path, GRID, workers)
        print(
            f"  grid, {workers} worker(s): {result['wall_s']:.1f} s = check {result['check_s']:.2f} + pass "
            f"{result['pass_s']:.1f} + points {result['points_s']:.1f} (of which results {result['results_s']:.1f});"
            f" the first point done {result['first_point_s']:.1f} s after the pass;"
            f" {result['decisions']:,} decisions, {result['trades']:,} trades over {result['points']} points;"
            f" x{result['wall_s'] / reference.wall_s:.2f} the detector-only pass ({loadavg()})",
            flush=True,
        )
    # The same grid with the pass column-wise from the recording's columnar cache, made once first.
    with Clock() as conversion:
        ensure_columnar(path)
    grid["columnar"] = result = run_grid(path, GRID, 1, columnar=True)
    print(
        f"  columnar cache made once in {conversion.wall_s:.1f} s; grid, 1 worker, column-wise pass: "
        f"{result['wall_s']:.1f} s = pass {result['pass_s']:.1f} + points {result['points_s']:.1f};"
        f" x{result['wall_s'] / reference.wall_s:.2f} the detector-only pass; results identical: "
        f"{'yes' if _same(grid[1]['results'], result['results']) else 'NO'} ({loadavg()})",
        flush=True,
    )
    columnar_path(path).unlink(missing_ok=True)  # the other measures read the recording itself
    identical = _same(grid[1]["results"], grid[2]["results"])
    print(f"  results identical at 1 and 2 workers: {'yes' if identical else 'NO'}", flush=True)
    speedup = grid[1]["wall_s"] / grid[2]["wall_s"]
    points_speedup = grid[1]["points_s"] / grid[2]["points_s"]

    # 4. memory in fresh processes
    baseline_mib, _, startup_s = peak_rss_of_child(None)
    print(f"  a fresh process with Django and the engine imported: {startup_s:.1f} s, {baseline_mib:.0f} MiB")
    memory = {}
    for recording in (day, week):
        memory[recording.label] = peak_rss_of_child(recording.path)
        rss, sizes, wall_s = memory[recording.label]
        print(
            f"  one-point backtest over {recording.label} ({recording.pairs} pair(s)), fresh process: peak RSS "
            f"{rss:.0f} MiB (before any backtest {baseline_mib:.0f} MiB); {sizes['updates']:,} updates, "
            f"{sizes['candidates']:,} candidates, {sizes['kept_books']:,} kept books; {wall_s:.0f} s",
            flush=True,
        )

    # 5. where a point's time goes
    ratio = grid[1]["wall_s"] / reference.wall_s
    profile = profile_point(path, grid[1]["shared"])
    print(
        f"  one point profiled (run {profile['run_id']}): {profile['profiled_s']:.1f} s under cProfile for "
        f"{profile['decisions']} decisions over {profile['candidates']:,} candidates",
        flush=True,
    )
    for part, seconds in profile["parts"].items():
        print(f"    {part:<40} {seconds:7.2f} s  {100 * seconds / profile['profiled_s']:5.1f} %")
    print(profile["top_cumulative"])
    print(profile["top_tottime"])

    day_note = (
        f"{day.label}, make_recording --pairs {day.pairs} --updates-per-s {day.updates_per_s:g} (the bundled "
        f"recording's), {updates:,} updates"
    )
    grid_note = "12 points: min_net_edge_cents=0.5,1,2 x max_leg_usd=100,250 x order_type=ioc,fok"
    rows = [
        figure(
            BENCH,
            f"detector-only pass over {day.label}, updates/s",
            updates / reference.wall_s,
            "/s",
            "gunzip + json.loads of the same lines, lines/s",
            updates / loads.wall_s,
            f"{day_note}; cpu {updates / reference.cpu_s:,.0f}/s",
        )
    ]
    for workers in (1, 2):
        result = grid[workers]
        rows.append(
            figure(
                BENCH,
                f"12-point grid over {day.label}, {workers} worker{'s' if workers > 1 else ''}, wall",
                result["wall_s"],
                "s",
                "detector-only pass over the same file (run_pass, no database), wall",
                reference.wall_s,
                f"check (cached) {result['check_s']:.2f} s + pass {result['pass_s']:.1f} s + points "
                f"{result['points_s']:.1f} s (the first done after {result['first_point_s']:.1f} s); "
                f"{result['decisions']:,} decisions; target <= x{TARGET_RATIO}"
                + (f"; {grid_note}" if workers == 1 else ""),
            )
        )
    columnar = grid["columnar"]
    rows.append(
        figure(
            BENCH,
            f"12-point grid over {day.label}, 1 worker, column-wise pass from the columnar cache, wall",
            columnar["wall_s"],
            "s",
            "detector-only pass over the same file (run_pass, no database), wall",
            reference.wall_s,
            f"pass {columnar['pass_s']:.1f} s + points {columnar['points_s']:.1f} s; the cache made once "
            f"beforehand in {conversion.wall_s:.1f} s; results identical to the streaming pass's: "
            f"{'yes' if _same(grid[1]['results'], columnar['results']) else 'NO'}; target <= x{TARGET_RATIO}",
        )
    )
    rows += [
        figure(
            BENCH,
            "recording check (validate_recording), first time",
            first_check.wall_s,
            "s",
            "the same, cached (per file version)",
            grid[1]["check_s"],
        ),
        figure(
            BENCH,
            "grid speed-up, 2 workers / 1",
            speedup,
            "x",
            note=f"points alone x{points_speedup:.2f}; each worker is a fresh process that imports Django and "
            f"the engine first ({startup_s:.1f} s alone here) and is handed the pass; results identical: "
            f"{'yes' if identical else 'NO'}",
        ),
    ]
    week_rss, week_sizes, _ = memory[week.label]
    day_rss, day_sizes, _ = memory[day.label]
    rows += [
        figure(
            BENCH,
            f"one-point backtest over {week.label} ({week.pairs} pair), peak RSS",
            week_rss,
            "MiB",
            f"the same over {day.label} ({day.pairs} pairs)",
            day_rss,
            f"{week_sizes['updates']:,} vs {day_sizes['updates']:,} updates, {week_sizes['candidates']:,} vs "
            f"{day_sizes['candidates']:,} candidates, {week_sizes['kept_books']:,} vs {day_sizes['kept_books']:,} "
            f"kept books; a fresh process before any backtest: {baseline_mib:.0f} MiB",
        ),
    ]
    if ratio > TARGET_RATIO:
        parts = ", ".join(
            f"{part.split(' (')[0]} {100 * seconds / profile['profiled_s']:.0f} %"
            for part, seconds in profile["parts"].items()
        )
        rows.append(
            figure(
                BENCH,
                "one point's time (cProfile), per decision",
                1000 * profile["profiled_s"] / max(1, profile["decisions"]),
                "ms",
                note=parts,
            )
        )
    return rows


def main() -> None:
    from bench.common import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 h and 4 h recordings: a smoke run")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a memory measurement's own process
    args = parser.parse_args()
    if args.child is not None:
        child_main(None if args.child == "-" else args.child)
        return
    print_table(run(quick=args.quick or None), "bench_backtest")


if __name__ == "__main__":
    main()
