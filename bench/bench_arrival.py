"""How late each order's arrival step starts after its arrival time, at 100 orders/s, through
the real path: the arrival scheduler process (`manage.py sim_arrivals`, SIMULATOR_ARRIVALS=
scheduler: the deployment's), then Celery workers on Redis running `arrive_task`, scheduled with
`apply_async(eta=<arrival time>)` (SIMULATOR_ARRIVALS=celery), in several pools.

Not a test: prints a table (and `run()` gives its figure rows to `python -m bench`). Needs
DATABASE_URL (PostgreSQL) and REDIS_URL (the broker); `./dev bench` starts both.

This process decides 50 intents a second on the wall clock (validation cached, against the
exchange double on loopback) for 5 users in turn (each with a Kalshi key of its own: one key's
book reads are limited to 20/s, and the orders would wait for the limiter), each a trade with two
legs sent at once, and schedules each leg's
arrival step as the worker task does (`simulator.tasks.schedule_arrivals`): 100 orders/s, due
one drawn latency after their decision. A subprocess (`bench.arrival_worker`: the product's
scheduler or worker plus probes) runs the steps. In most set-ups the worker's books at arrival
come from memory, so a step costs the engine's own work and the figure is the scheduling's; the
last set-up asks the double for each book, as live trading does (a signed Kalshi call, the rate
limiter's Redis script, the HTTP exchange with the double, which runs in this busy process).
Lateness, per step:

- book: when the step asks for the book its order is filled against, minus its arrival time
  (the figure the target is about: the fill starts there);
- task: when a runner thread of the scheduler takes the step, or `arrive_task` starts in the
  worker, minus its arrival time (ETA).

Reference, in the same run and for the same steps: an in-process timer thread
(`simulator.arrival_timer.ArrivalTimer`, a heap and a condition variable; the demo's arrival
mode) given each step's arrival time with a callback that only takes the clock: what a
dedicated scheduler costs at the least on this machine.

Set-ups, one after the other (`VARIANTS`): the deployment's (the arrival scheduler, 4 runner
threads); Celery's prefork pool of 4 processes, the solo pool, a pool of 4 threads, prefork with
Celery's timer precision at 10 ms (default 1 s), prefork with the connection closed around each
task, and prefork asking the double for the books.

Run: DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python -m bench.bench_arrival [--seconds 10]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

ORDERS_PER_S = 100
LEGS = 2
# Users, each with a Kalshi key of its own: one key's book reads are limited to 20/s (Kalshi's
# read limit, `exchanges.ratelimit`), and 100 orders/s are 50 Kalshi books a second.
USERS = 5
# (name, pool, concurrency, prefetch multiplier, worker_timer_precision in s, books at arrival,
# the database connection across tasks: kept (the product's worker, config/celery.py) or closed
# around each task (Celery's Django fixup left at its default))
VARIANTS = [
    (
        "arrival scheduler, 4 runner threads (the deployment's)",
        "scheduler",
        "4",
        "1",
        "1.0",
        "memory",
        "keep",
    ),
    ("prefork, 4 processes", "prefork", "4", "1", "1.0", "memory", "keep"),
    ("solo pool", "solo", "1", "1", "1.0", "memory", "keep"),
    ("threads pool, 4 threads", "threads", "4", "1", "1.0", "memory", "keep"),
    ("prefork, 4 processes, timer precision 10 ms", "prefork", "4", "1", "0.01", "memory", "keep"),
    (
        "prefork, 4 processes, connection closed around each task",
        "prefork",
        "4",
        "1",
        "1.0",
        "memory",
        "close",
    ),
    ("prefork, 4 processes, books asked of the double", "prefork", "4", "1", "1.0", "venue", "keep"),
]


def _worker_env(pool: str) -> dict[str, str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "SIMULATOR_ARRIVALS": "scheduler" if pool == "scheduler" else "celery",
    }


def _read(path: Path) -> dict[str, list[float]]:
    probes: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        probe, _, value = line.partition(" ")
        probes.setdefault(probe, []).append(float(value))
    return probes


class Worker:
    """`python -m bench.arrival_worker` for one variant, ready once it takes tasks."""

    def __init__(self, *options: str) -> None:
        from bench.common import ROOT

        self.dir = tempfile.TemporaryDirectory(prefix="bench-arrival-")
        self.out = Path(self.dir.name) / "late.txt"
        self.log = Path(self.dir.name) / "worker.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.arrival_worker",
                    str(self.out),
                    *options,
                ],
                cwd=ROOT,
                env=_worker_env(options[0]),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not (self.out.exists() and "ready" in self.out.read_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"the worker did not start: {log}")
            time.sleep(0.1)

    def lateness(self) -> dict[str, list[float]]:
        return _read(self.out)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.dir.cleanup()


def drive(scenes: list[tuple[object, list[int]]], validator):
    """Decide the intents of every (user, intent ids), in turn, at ORDERS_PER_S / LEGS a second,
    each user in a new run, and schedule their steps on Celery, each also on a reference timer
    thread. -> (the timer's lateness in ms, steps scheduled, the runs' ids, the timer)."""
    from django.utils import timezone

    from simulator.arrival_timer import ArrivalTimer
    from simulator.engine import decide_intent, in_flight_steps
    from simulator.services import start_run
    from simulator.tasks import schedule_arrivals

    runs = [
        start_run(user=user, starting_usd="10000000", label="arrival lateness")[0].pk for user, _ in scenes
    ]
    work = [
        (run_id, intent_id)
        for turn in zip(*(ids for _, ids in scenes), strict=True)
        for run_id, intent_id in zip(runs, turn, strict=True)
    ]
    timer, timer_late, scheduled = ArrivalTimer(), [], 0

    def took_the_clock(at) -> None:
        timer_late.append((time.time() - at.timestamp()) * 1000)

    interval = LEGS / ORDERS_PER_S
    started = time.monotonic()
    for number, (run_id, intent_id) in enumerate(work):
        pause = started + number * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        decision = decide_intent(run_id=run_id, intent_id=intent_id, validator=validator, now=timezone.now())
        steps = in_flight_steps(decision)
        schedule_arrivals(steps)
        for step in steps:
            timer.call_at(step.at, lambda at=step.at: took_the_clock(at))
        scheduled += len(steps)
    return timer_late, scheduled, runs, timer


def wait_for_arrivals(run_ids: list[int], timeout_s: float = 60) -> int:
    """Until no trade of the runs has an order on its way; how many still have one."""
    from simulator.models import SimulatorTrade

    deadline = time.monotonic() + timeout_s
    while True:
        left = SimulatorTrade.objects.filter(run_id__in=run_ids, arrival_outcome="").count()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def measure(seconds: float = 10) -> list[dict]:
    from django.conf import settings
    from django.db.models import Count

    from bench.bench_engine import DEEP, KEY_ID, NO_TOKEN, TICKER, setup_scene
    from bench.common import migrate
    from exchanges.double import ExchangeDouble, Scenario
    from exchanges.ratelimit import BookCache
    from exchanges.testing import kalshi_key_pair
    from simulator.engine.validation import ExchangeValidator
    from simulator.models import SimulatorTrade
    from simulator.services import stop_run

    migrate()
    # The reference timer shares this process: start-up's objects out of the collector's way, as
    # in the scheduler (`sim_arrivals`), so that its pauses are not the reference's.
    gc.collect()
    gc.freeze()
    debug, settings.DEBUG = settings.DEBUG, False
    arrivals = settings.SIMULATOR_ARRIVALS
    intents_per_variant = int(seconds * ORDERS_PER_S / LEGS)
    _, public_pem = kalshi_key_pair()
    results = []
    try:
        with ExchangeDouble(Scenario.demo()) as double:
            double.state.register_kalshi_key(KEY_ID, public_pem, balance_cents=10**12)
            double.state.set_kalshi_book(TICKER, yes_bids=[["0.40", DEEP]], no_bids=[["0.55", DEEP]])
            double.state.set_polymarket_book(NO_TOKEN, bids=[["0.47", DEEP]], asks=[["0.50", DEEP]])
            scenes = []
            for number in range(USERS):
                key_id = f"{KEY_ID}-{number}"
                double.state.register_kalshi_key(key_id, public_pem, balance_cents=10**12)
                scenes.append(setup_scene(double, intents_per_variant // USERS, key_id=key_id))
            cached = ExchangeValidator(cache=BookCache(ttl_s=3600))
            for name, *options in VARIANTS:
                print(f"bench_arrival: {name}", flush=True)
                # schedule_arrivals here hands the steps over as the product's workers would
                settings.SIMULATOR_ARRIVALS = "scheduler" if options[0] == "scheduler" else "celery"
                worker = Worker(*options)
                try:
                    timer_late, scheduled, run_ids, timer = drive(scenes, cached)
                    left = wait_for_arrivals(run_ids)
                    timer.stop()
                    for (user, _), run_id in zip(scenes, run_ids, strict=True):
                        stop_run(user=user, run_id=run_id)
                    late = worker.lateness()
                finally:
                    worker.stop()
                outcomes = dict(
                    SimulatorTrade.objects.filter(run_id__in=run_ids)
                    .values_list("arrival_outcome")
                    .annotate(n=Count("id"))
                )
                results.append(
                    {
                        "name": name,
                        "book": late.get("book", []),
                        "task": late.get("task", []),
                        "run": late.get("run", []),
                        "timer": timer_late,
                        "scheduled": scheduled,
                        "left": left,
                        "outcomes": outcomes,
                    }
                )
    finally:
        settings.DEBUG = debug
        settings.SIMULATOR_ARRIVALS = arrivals
    return results


def run(seconds: float = 10) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure, missing_services, percentile, setup_django, skipped

    why_not = missing_services()
    if why_not:
        return skipped("arrival", why_not)
    setup_django()
    rows = []
    for result in measure(seconds):
        timer = result["timer"]
        for fraction, label in ((0.5, "p50"), (0.99, "p99")):
            rows.append(
                figure(
                    "arrival",
                    f"lateness at {ORDERS_PER_S} orders/s, {result['name']}, {label}",
                    percentile(result["book"], fraction),
                    "ms",
                    f"timer thread in process, same steps, {label}",
                    percentile(timer, fraction),
                    "",
                )
            )
        task = result["task"]
        rows[-1]["note"] = (
            f"target p99 < 10 ms; {len(result['book'])} of {result['scheduled']} steps (not arrived: "
            f"{result['left']} trades); max {max(result['book'], default=0):.0f} ms; from the task's"
            f" start: p50 {percentile(task, 0.5) or 0:.1f}, p99 {percentile(task, 0.99) or 0:.1f} ms;"
            f" a task runs p50 {percentile(result['run'], 0.5) or 0:.1f} ms;"
            f" outcomes {result['outcomes']}"
        )
    return rows


def main() -> None:
    from bench.common import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="seconds of orders per worker set-up")
    args = parser.parse_args()
    print_table(
        run(args.seconds), f"bench_arrival: {ORDERS_PER_S} orders/s for {args.seconds:g} s per set-up"
    )


if __name__ == "__main__":
    main()
