"""Celery tasks on the `simulator` queue that decide: a few lines each, the engine does the work.
`simulator.intake` sends them; beat's periodic tasks are in `simulator.sweeps`.

acks_late + reject_on_worker_lost (settings): a worker killed mid-task leaves the message
unacknowledged, the broker redelivers it, and the engine's unique constraints make the
redelivery find the decision already written (exactly once).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from simulator.engine import decide_intent, decide_span_start

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
    decision = decide_intent(run_id=run_id, intent_id=intent_id)
    return decision.pk if decision is not None else None


@shared_task(name="simulator.tasks.decide_span_task", **RETRY)
def decide_span_task(self, run_id: int, span_id: int) -> int | None:
    decision = decide_span_start(run_id=run_id, span_id=span_id)
    return decision.pk if decision is not None else None
