"""How late a timer thread wakes in a process whose other threads run step-like work, with
Python's defaults and with what `manage.py sim_arrivals` sets (`gc.freeze()` after start-up, a
0.5 ms switch interval): why the arrival scheduler does both (docs/benchmarks.md, "arrival").

No services needed. Each configuration runs in a fresh interpreter: a heap of long-lived objects
the size of a Django process's start-up, four threads each running 2 ms of Python between 5-20 ms
waits (a step's work between its database round trips), and a timer thread waiting on a
condition variable for times 2-20 ms ahead, as the scheduler's does. Prints p50/p99/max lateness.

    python -m bench.arrival_floor [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CONFIGURATIONS = [
    ("Python's defaults (switch interval 5 ms, no freeze)", "0.005", "0"),
    ("gc.freeze() after start-up", "0.005", "1"),
    ("gc.freeze() and switch interval 0.5 ms (sim_arrivals)", "0.0005", "1"),
]

PROBE = r"""
import gc, random, sys, threading, time
seconds, switch_s, freeze = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
sys.setswitchinterval(switch_s)
start_up = [{"name": [i] * 5} for i in range(300_000)]  # long-lived, like Django's start-up
if freeze:
    gc.collect()
    gc.freeze()
stop = False
def step_like():
    rng = random.Random()
    while not stop:
        began, scratch = time.perf_counter(), {}
        while time.perf_counter() - began < 0.002:
            scratch[rng.random()] = [1, 2, 3]
        time.sleep(rng.uniform(0.005, 0.02))
for _ in range(4):
    threading.Thread(target=step_like, daemon=True).start()
wake, late, deadline = threading.Condition(), [], time.time() + seconds
while time.time() < deadline:
    at = time.time() + random.uniform(0.002, 0.02)
    with wake:
        while (wait_s := at - time.time()) > 0:
            wake.wait(wait_s)
    late.append((time.time() - at) * 1000)
stop = True
late.sort()
print(len(late), late[len(late) // 2], late[int(len(late) * 0.99)], late[-1])
"""


def measure(seconds: float, switch_s: str, freeze: str) -> tuple[int, float, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(seconds), switch_s, freeze],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    ).stdout.split()
    return int(out[0]), float(out[1]), float(out[2]), float(out[3])


def main() -> None:
    from bench.common import loadavg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per configuration and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the configurations interleaved")
    args = parser.parse_args()
    print(f"loadavg {loadavg()}")
    print(f"{'configuration':<58} {'wakes':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for _ in range(args.rounds):
        for name, switch_s, freeze in CONFIGURATIONS:
            wakes, p50, p99, worst = measure(args.seconds, switch_s, freeze)
            print(f"{name:<58} {wakes:>6} {p50:>7.2f} {p99:>7.2f} {worst:>7.1f}", flush=True)
    print(f"loadavg {loadavg()}")


if __name__ == "__main__":
    main()
