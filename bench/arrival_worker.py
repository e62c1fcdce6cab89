"""A Celery worker on the `simulator` queue (or, with POOL `scheduler`, the arrival scheduler
process, `manage.py sim_arrivals` with CONCURRENCY runner threads) that records how late each
arrival step starts, for bench_arrival. The product's process, plus bench-only probes that change
nothing it does (in the scheduler, `task` and `run` are taken around each step a runner takes):

- `task_prerun` (a Celery signal): when an `arrive_task` starts, minus its ETA (and, at
  `task_postrun`, how long it ran: probe `run`);
- around `simulator.engine.arrival.venue_books` (the book an order meets, asked at its arrival):
  when the step asks for its book, minus the step's arrival time. This is the moment the fill
  starts: the book is what the order is filled against.

With BOOKS `memory`, the books come from memory (`bench.bench_engine.ArrivalBooks`) instead of
a venue call: the steps then cost only the engine's own work. With `venue`, the product's call.
DATABASE `keep`: as the product's worker (the connection kept across tasks while Django deems it
usable, config/celery.py); `close`: Celery's default, the connection closed around each task.

Each probe appends `<probe> <milliseconds late>` to the file named by the first argument (and
`ready 0` once the worker takes tasks).

    python -m bench.arrival_worker OUT POOL CONCURRENCY PREFETCH TIMER_PRECISION_S memory|venue close|keep
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    out_path, pool, concurrency, prefetch, precision, books, database = sys.argv[1:8]
    from celery.signals import task_postrun, task_prerun, worker_ready

    from config.celery import app

    started: dict[str, float] = {}  # task id -> when it started
    out = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def record(probe: str, late_s: float) -> None:
        os.write(out, f"{probe} {late_s * 1000:.3f}\n".encode())  # one write: lines never interleave

    @task_prerun.connect(weak=False)
    def task_started(task=None, **_: object) -> None:
        if task is None or task.name != "simulator.tasks.arrive_task" or not task.request.eta:
            return
        eta = task.request.eta
        eta = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        record("task", time.time() - eta.timestamp())
        started[task.request.id] = time.perf_counter()

    @task_postrun.connect(weak=False)
    def task_done(task=None, **_: object) -> None:
        began = started.pop(getattr(task.request, "id", None), None) if task is not None else None
        if began is not None:
            record("run", time.perf_counter() - began)

    @worker_ready.connect(weak=False)
    def ready(**_: object) -> None:
        os.write(out, b"ready 0\n")

    import django

    django.setup()
    from simulator.engine import arrival

    if books == "memory":
        from bench.bench_engine import ArrivalBooks

        venue_books = ArrivalBooks()
    else:
        venue_books = arrival.venue_books

    def timed_venue_books(user_id, order, at):
        record("book", time.time() - at.timestamp())
        return venue_books(user_id, order, at)

    arrival.venue_books = timed_venue_books
    if pool == "scheduler":
        _serve_as_scheduler(concurrency, record, out)
        return
    if database == "close":
        # Celery's Django fixup left at its default: it closes the database connection before and
        # after every task (the product's worker keeps it, config/celery.py).
        app.conf.CELERY_DB_REUSE_MAX = None
    app.conf.worker_prefetch_multiplier = int(prefetch)
    app.conf.worker_timer_precision = float(precision)
    app.worker_main(
        [
            "worker",
            "-Q",
            "simulator",
            "-P",
            pool,
            "-c",
            concurrency,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ]
    )


def _serve_as_scheduler(runners: str, record, out: int) -> None:
    """`manage.py sim_arrivals` with the `task` and `run` probes around each step it runs."""
    from django.core.management import call_command

    from simulator.arrival_scheduler import ArrivalScheduler

    run_step = ArrivalScheduler._run

    def timed_run(self, held) -> None:
        record("task", time.time() - held[0])
        began = time.perf_counter()
        run_step(self, held)
        record("run", time.perf_counter() - began)

    connect_runners = ArrivalScheduler._connect_runners

    def ready_once_connected(self) -> None:
        connect_runners(self)
        os.write(out, b"ready 0\n")  # it takes steps from now on

    ArrivalScheduler._run = timed_run
    ArrivalScheduler._connect_runners = ready_once_connected
    call_command("sim_arrivals", runners=int(runners))


if __name__ == "__main__":
    main()
