"""Celery tasks on the `simulator` queue that decide and arrive: a few lines each, the engine does
the work. `simulator.intake` sends the decisions; beat's periodic tasks are in `simulator.sweeps`.

acks_late + reject_on_worker_lost (settings): a worker killed mid-task leaves the message
unacknowledged, the broker redelivers it, and the engine finds the decision (or the arrival
step) already written: exactly once.

A traded decision's orders arrive later (`schedule_arrivals`): handed to the arrival scheduler
process (SIMULATOR_ARRIVALS=scheduler, `simulator.arrival_scheduler`: what docker-compose runs),
as Celery tasks due at their arrival time (celery; eager tasks, without workers, run at once), or
on a timer thread of this process (timer: the demo, which has no workers). While a recording's clock
runs in this process (`simulator.recorded_clock`: `ingest_run --recorded-clock`, backtests), the
tasks decide and arrive on recorded time against recorded books, and arrivals wait on that clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from simulator import arrival_scheduler, engine, recorded_clock
from simulator.arrival_timer import timer

RETRY = {
    "bind": True,
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name="simulator.tasks.decide_intent_task", **RETRY)
def decide_intent_task(self, run_id: int, intent_id: int) -> int | None:
    decision = engine.decide_intent(run_id=run_id, intent_id=intent_id, **recorded_clock.decide_kwargs())
    if decision is None:
        return None
    # Also on a redelivery: the first delivery may have died before it scheduled them.
    schedule_arrivals(engine.in_flight_steps(decision))
    return decision.pk


@shared_task(name="simulator.tasks.decide_span_task", **RETRY)
def decide_span_task(self, run_id: int, span_id: int) -> int | None:
    at = recorded_clock.decide_kwargs().get("now")
    decision = engine.decide_span_start(run_id=run_id, span_id=span_id, now=at)
    return decision.pk if decision is not None else None


@shared_task(name="simulator.tasks.arrive_task", **RETRY)
def arrive_task(self, trade_id: int, step: str, *order: Any) -> str | None:
    """`order`: the rest of `engine.Step.task_args` (user, venue, instrument, side, arrival time).
    A task sent without it (before steps carried their order) reads it from the trade."""
    books = recorded_clock.arrive_kwargs()
    if order:
        arrived = engine.arrive_step(engine.Step.from_task_args(trade_id, step, *order), **books)
    else:
        arrived = engine.arrive(trade_id=trade_id, step=step, **books)
    if arrived is None:
        return None
    schedule_arrivals(arrived.next_steps)
    return arrived.outcome or "in_flight"


def _arrive_on_timer(step: engine.Step) -> None:
    arrived = engine.arrive_step(step)
    if arrived is not None:
        schedule_arrivals(arrived.next_steps)


def schedule_arrivals(steps: Sequence[engine.Step]) -> None:
    """Have each step run at its arrival time (see the module's docstring for the modes)."""
    if not steps:
        return
    clock = recorded_clock.current()
    if clock is not None:
        clock.schedule(steps)
    elif settings.SIMULATOR_ARRIVALS == "scheduler":
        arrival_scheduler.send(steps)
    elif settings.SIMULATOR_ARRIVALS == "timer":
        for step in steps:
            timer.call_at(step.at, partial(_arrive_on_timer, step))
    else:
        for step in steps:
            arrive_task.apply_async(step.task_args(), eta=step.at)


def arrive_due(before_ms: int | None) -> int:
    """On the running recorded clock: every arrival step due before `before_ms` (None: all of
    them), through the arrival task, in time order. Returns how many trades completed."""
    clock = recorded_clock.current()
    done = 0
    for step in clock.pop_due(before_ms) if clock is not None else ():
        outcome = arrive_task(*step.task_args())
        done += outcome not in (None, "in_flight")
    return done
