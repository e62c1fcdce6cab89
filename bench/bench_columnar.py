"""Benchmark: the detector's pass over a generated week, streaming vs column-wise, on the same file.

Run: `./dev bench bench_columnar`, or `.venv/bin/python -m bench.bench_columnar [--pairs N]
[--days D] [--updates-per-s R] [--keep DIR]`.
Target: the column-wise pass (`ingest.columnar.fast_pass`) at >= 1,000,000 updates/s on one core.

A synthetic recording (`ingest.synthetic`, as `manage.py make_recording` writes it) is generated,
then each stage runs in a process of its own, so each one's peak RSS is its own:

- reading: gunzip + `json.loads` of every line, nothing else (the floor of any streaming replay);
- streaming: `run_pass` over `updates_to_book_updates(read_recording(...))`;
- conversion: the recording into its columnar file, once (`ensure_columnar`);
- column-wise: `fast_pass` from that file.

Rates are updates (book updates of the recording) per CPU second of the stage's process: other
processes on a shared machine inflate the wall clock, not the CPU time. The two passes' candidates
and spans are compared (counts and a digest of their contents).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

TARGET_UPDATES_PER_S = 1_000_000
THRESHOLD_CENTS = Decimal(2)
WINDOW_MS = 10_000
STAGES = ("reading", "streaming", "conversion", "columnar")


def _digest(shared: Any) -> str:
    """The pass's candidates and spans, as text: equal digests, equal results."""
    text = repr([(c.evaluation, c.span_key, c.line) for c in shared.candidates]) + repr(shared.spans)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stage(name: str, path: Path) -> dict[str, Any]:
    """One stage, in this process: its result, CPU seconds and this process's peak RSS."""
    from ingest.columnar import columnar_path, ensure_columnar, fast_pass
    from ingest.detector_pass import run_pass
    from ingest.recording import pairs_of, read_recording
    from ingest.sources import updates_to_book_updates

    header, lines = read_recording(path)
    pairs = pairs_of(header)
    if name == "conversion":
        columnar_path(path).unlink(missing_ok=True)  # converted here, not found from an earlier run
    started = time.process_time()
    result: dict[str, Any] = {}
    shared = None
    if name == "reading":
        result["updates"] = sum(1 for _ in lines)
    elif name == "streaming":
        shared = run_pass(
            updates_to_book_updates(lines, pairs), pairs, threshold_cents=THRESHOLD_CENTS, window_ms=WINDOW_MS
        )
    elif name == "conversion":
        result["megabytes"] = ensure_columnar(path).stat().st_size / 1e6
    else:
        timings: dict[str, float] = {}
        shared = fast_pass(path, pairs, threshold_cents=THRESHOLD_CENTS, window_ms=WINDOW_MS, timings=timings)
        result.update(timings, evaluated=shared.detector.counters["evaluations"])
    result["cpu_s"] = time.process_time() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if shared is not None:  # after the figures: comparing the results is no part of either pass
        result.update(updates=shared.updates, candidates=len(shared.candidates), spans=len(shared.spans))
        result["digest"] = _digest(shared)
    return result


def _in_subprocess(name: str, path: Path) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_columnar", "--stage", name, str(path)],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.splitlines()[-1])


def measure(pairs: int, days: float, updates_per_s: float, folder: Path) -> dict[str, Any]:
    from ingest.synthetic import generate

    path = folder / f"week-{pairs}p.jsonl.gz"
    if not path.exists():
        started = time.perf_counter()
        lines = generate(path, pairs=pairs, hours=days * 24, seed=7, updates_per_s=updates_per_s)
        print(
            f"generated {days:g} days, {pairs} pair(s), updates_per_s {updates_per_s:g}: {lines:,} lines,"
            f" {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    results = {}
    for name in STAGES:
        results[name] = _in_subprocess(name, path)
        print(f"  {name}: {json.dumps(results[name])}", flush=True)
    return results


def _report(results: dict[str, Any]) -> None:
    updates = results["streaming"]["updates"]
    print(f"\n{updates:,} updates (CPU time of each stage's own process)")
    for name, label in (
        ("reading", "gunzip + json.loads"),
        ("streaming", "streaming pass"),
        ("columnar", "column-wise pass"),
    ):
        stage = results[name]
        print(
            f"  {label:<22} {updates / stage['cpu_s']:>12,.0f} updates/s   peak RSS {stage['peak_rss_mb']:>6.0f} MB"
        )
    conversion = results["conversion"]
    print(
        f"  {'conversion (once)':<22} {updates / conversion['cpu_s']:>12,.0f} updates/s"
        f"   peak RSS {conversion['peak_rss_mb']:>6.0f} MB, {conversion['megabytes']:.0f} MB file"
    )
    streaming, columnar = results["streaming"], results["columnar"]
    same = all(streaming[k] == columnar[k] for k in ("updates", "candidates", "spans", "digest"))
    print(
        f"  candidates {streaming['candidates']:,}, spans {streaming['spans']:,}; the same in both passes:"
        f" {'yes' if same else 'NO'}; updates evaluated by the column-wise pass:"
        f" {columnar['evaluated']:,} ({columnar['evaluated'] / updates:.1%})"
    )
    evaluated = columnar["evaluated"]
    print(
        f"  of the column-wise pass: the column-wise part {columnar['columns_s']:.2f} s"
        f" ({updates / columnar['columns_s']:,.0f} updates/s), the {evaluated:,} updates evaluated one by one"
        f" {columnar['updates_s']:.2f} s ({columnar['updates_s'] / max(evaluated, 1) * 1e6:.0f} us each)"
    )
    rate = updates / columnar["cpu_s"]
    met = "met" if rate >= TARGET_UPDATES_PER_S else "NOT met"
    print(f"target >= {TARGET_UPDATES_PER_S:,} updates/s: {rate:,.0f} ({met})")


def run(pairs: int = 1, days: float = 7.0, updates_per_s: float = 0.5) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure

    with tempfile.TemporaryDirectory() as folder:
        results = measure(pairs, days, updates_per_s, Path(folder))
    _report(results)
    updates = results["streaming"]["updates"]
    note = f"{days:g} days, {pairs} pair(s), {updates:,} updates"
    rows = [
        figure(
            "columnar",
            f"column-wise pass, updates/s (cpu), {note}",
            updates / results["columnar"]["cpu_s"],
            "/s",
            "streaming pass, same file, updates/s (cpu)",
            updates / results["streaming"]["cpu_s"],
            f"target >= {TARGET_UPDATES_PER_S:,}/s",
        ),
        figure(
            "columnar",
            "column-wise part of that pass alone, updates/s (cpu)",
            updates / results["columnar"]["columns_s"],
            "/s",
            note=f"{results['columnar']['evaluated']:,} updates evaluated one by one:"
            f" {results['columnar']['updates_s']:.1f} s",
        ),
        figure(
            "columnar",
            "column-wise pass, peak RSS",
            results["columnar"]["peak_rss_mb"],
            "MB",
            "streaming pass, peak RSS",
            results["streaming"]["peak_rss_mb"],
        ),
        figure(
            "columnar",
            "conversion to the columnar file (once), cpu",
            results["conversion"]["cpu_s"],
            "s",
            "gunzip + json.loads of the same file, cpu",
            results["reading"]["cpu_s"],
        ),
    ]
    same = all(results["streaming"][k] == results["columnar"][k] for k in ("candidates", "spans", "digest"))
    rows.append(figure("columnar", "same candidates and spans as the streaming pass", same, ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--updates-per-s", type=float, default=0.5, help="the generator's line rate per pair")
    parser.add_argument("--keep", type=Path, help="a folder to keep the recording (and its cache) in")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("recording", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(_stage(args.stage, args.recording)))
        return
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        _report(measure(args.pairs, args.days, args.updates_per_s, args.keep))
        return
    with tempfile.TemporaryDirectory() as folder:
        _report(measure(args.pairs, args.days, args.updates_per_s, Path(folder)))


if __name__ == "__main__":
    main()
