"""python -m bench [module ...]: every benchmark in turn (or the named ones), then ONE table of all
figures, each next to its reference measured in the same run, written to
bench/results/<UTC timestamp>.json and bench/results/latest.json (git-ignored).

A module exposes `run() -> list[dict]`: figure rows as bench/common.py describes. A module that
only has `main()` (it prints its own table) runs as is; its figures are read back from that
table (see `_rows_from_printed_table`), so give it a `run()` when you touch it.

`python -m bench --quick [module ...]` sets BENCH_QUICK=1: a module that honours it (bench_backtest)
runs a short smoke version of its measurements.

A module that fails is reported in the table and the file, the others still run, and the exit
status is 1.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from bench.common import figure, loadavg, machine, print_table, write_results

MODULES = [
    "bench_exchanges",
    "bench_rounds",
    "bench_detector",
    "bench_columnar",
    "bench_ingest",
    "bench_engine",
    "bench_arrival",
    "bench_websocket",
    "bench_streams",
    "bench_api",
    "bench_report",
    "bench_backtest",
]


class _Tee(io.TextIOBase):
    """Prints as usual and keeps a copy, to read a legacy module's table back."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


_TABLE_ROW = re.compile(
    r"^(?P<name>\S.*?)\s+(?P<per_s>[\d.]+)\s+(?P<p50>[\d.]+)\s+(?P<p99>[\d.]+)(?:\s+\d+)?\s*$"
)


def _rows_from_printed_table(bench: str, output: str) -> list[dict[str, Any]]:
    """bench_engine's table (`name  per s  p50 ms  p99 ms  [traded]`), the row named "raw ..."
    as the reference of the others."""
    lines = output.splitlines()
    header = next((i for i, line in enumerate(lines) if "per s" in line and "p99 ms" in line), None)
    table = []
    for line in lines[header + 1 :] if header is not None else []:
        match = _TABLE_ROW.match(line)
        if not match:
            break
        table.append(match)
    raw = next((m for m in table if m["name"].startswith("raw")), None)
    rows = []
    for m in table:
        if m is raw:
            continue
        for metric, unit, key in (("per s", "/s", "per_s"), ("p99", "ms", "p99")):
            rows.append(
                figure(
                    bench,
                    f"{m['name']}, {metric}",
                    float(m[key]),
                    unit,
                    f"{raw['name']}, {metric}" if raw else None,
                    float(raw[key]) if raw else None,
                )
            )
    return rows or [figure(bench, "figures", None, "", note="none read from its printed output (above)")]


def _run_module(name: str) -> list[dict[str, Any]]:
    module = importlib.import_module(f"bench.{name}")
    bench = name.removeprefix("bench_")
    if hasattr(module, "run"):
        return module.run()
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        module.main()
    return _rows_from_printed_table(bench, tee.copy.getvalue())


def main() -> int:
    arguments = sys.argv[1:]
    if "--quick" in arguments:  # smoke runs, for the modules that honour it
        arguments.remove("--quick")
        os.environ["BENCH_QUICK"] = "1"
    only = set(arguments)
    unknown = only - set(MODULES)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(MODULES)}")
        return 2
    sys.argv = sys.argv[:1]  # the modules' own argparse sees no arguments: their defaults
    started_at = datetime.now(UTC)
    document: dict[str, Any] = {"started_at": started_at.isoformat(), "machine": machine(), "modules": {}}
    rows: list[dict[str, Any]] = []
    failed = False
    for name in MODULES:
        if only and name not in only:
            continue
        print(f"\n===== {name} =====", flush=True)
        began = time.perf_counter()
        entry: dict[str, Any] = {}
        try:
            module_rows = _run_module(name)
        except Exception as error:
            traceback.print_exc()
            failed = True
            entry["error"] = f"{type(error).__name__}: {error}"
            module_rows = [figure(name.removeprefix("bench_"), "FAILED", None, "", note=entry["error"][:300])]
        entry["seconds"] = round(time.perf_counter() - began, 1)
        document["modules"][name] = entry
        rows += module_rows
        sys.stdout.flush()

    document["finished_at"] = datetime.now(UTC).isoformat()
    document["loadavg_end"] = loadavg()
    document["rows"] = rows
    path = write_results(document)
    info = document["machine"]
    print_table(
        rows,
        f"all figures ({info['cpus']} CPUs, load average at start {info['loadavg']}, at end {document['loadavg_end']})",
    )
    print(f"\nwritten to {path.relative_to(path.parents[2])} and bench/results/latest.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
