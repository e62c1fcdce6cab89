"""Beat's periodic tasks for the simulator (config/settings.py CELERY_BEAT_SCHEDULE, every 30 s):
a few lines each. Their names stay under `simulator.tasks.` (the schedule and the queue routing
name them so). The worker loads this module through `config/celery.py`."""

from __future__ import annotations

from amqp.exceptions import ChannelError
from celery import shared_task
from django.conf import settings

from simulator import arrival_scheduler, backtests, engine, intake
from simulator.tasks import RETRY


@shared_task(name="simulator.tasks.expire_runs", **RETRY)
def expire_runs(self) -> int:
    return engine.expire_runs()


@shared_task(name="simulator.tasks.redispatch_undecided", **RETRY)
def redispatch_undecided(self) -> int:
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
    return intake.redispatch_undecided()


@shared_task(name="simulator.tasks.redispatch_overdue_arrivals", **RETRY)
def redispatch_overdue_arrivals(self) -> int:
    # Steps still waiting for the arrival scheduler to take them (none running, or one behind)
    # are not lost: sent again, they would pile up in Redis every 10 s until one takes them.
    if settings.SIMULATOR_ARRIVALS == "scheduler" and arrival_scheduler.backlog():
        return 0
    return intake.redispatch_overdue_arrivals()


@shared_task(name="simulator.tasks.fail_stalled_backtests", **RETRY)
def fail_stalled_backtests(self) -> int:
    return backtests.fail_stalled()
