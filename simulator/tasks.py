"""Celery tasks on the `simulator` queue: a few lines each, the engine does the work.

acks_late + reject_on_worker_lost (settings): a worker killed mid-task leaves the message
unacknowledged, the broker redelivers it, and the engine's unique constraints make the
redelivery find the decision already written (exactly once).
"""

from __future__ import annotations

from amqp.exceptions import ChannelError
from celery import shared_task
from django.db import InterfaceError, OperationalError

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
    from simulator.engine import decide_intent

    decision = decide_intent(run_id=run_id, intent_id=intent_id)
    return decision.pk if decision is not None else None


@shared_task(name="simulator.tasks.decide_span_task", **RETRY)
def decide_span_task(self, run_id: int, span_id: int) -> int | None:
    from simulator.engine import decide_span_start

    decision = decide_span_start(run_id=run_id, span_id=span_id)
    return decision.pk if decision is not None else None


@shared_task(name="simulator.tasks.expire_runs", **RETRY)
def expire_runs(self) -> int:
    from simulator import services

    return services.expire_runs()


@shared_task(name="simulator.tasks.redispatch_undecided", **RETRY)
def redispatch_undecided(self) -> int:
    from simulator import services

    # While the queue has a backlog, old undecided intents may simply still be waiting in it:
    # sweep only when it has drained, so a backlog is never sent twice.
    if not self.app.conf.task_always_eager:
        with self.app.connection_for_read() as connection:
            try:
                waiting = connection.default_channel.queue_declare(
                    queue="simulator", passive=True
                ).message_count
            except ChannelError:  # no such queue yet: nothing has ever been sent to it
                waiting = 0
        if waiting:
            return 0
    return services.redispatch_undecided()
