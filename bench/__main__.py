"""python -m bench: every benchmark in turn (each prints its own table). Add yours to MODULES."""

import importlib
import sys

MODULES = ["bench_exchanges", "bench_detector", "bench_ingest", "bench_engine"]


def main() -> None:
    only = set(sys.argv[1:])
    sys.argv = sys.argv[:1]
    for name in MODULES:
        if only and name not in only:
            continue
        print(f"\n===== {name} =====", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
