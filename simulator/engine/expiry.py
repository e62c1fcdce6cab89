"""Ending a run: by its user (`simulator.services.stop_run`) or at its end time, found by the
engine under the run's lock before it decides, or by beat's sweep (`expire_runs`)."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone

from simulator.engine.broadcast import broadcast_run
from simulator.models import SimulatorRun

logger = logging.getLogger(__name__)

EXPIRED_REASON = "reached its end time"


def end_run(run: SimulatorRun, *, status: str, reason: str, now: datetime) -> None:
    """Inside a transaction holding the run's row lock: the run ends with `status`."""
    run.status = status
    run.stopped_at = now
    run.stop_reason = reason[:200]
    run.save(update_fields=["status", "stopped_at", "stop_reason"])
    transaction.on_commit(partial(broadcast_run, run))


def expire_run_if_due(run: SimulatorRun, *, now: datetime) -> bool:
    """Inside a transaction holding the run's row lock: end it if its time is up."""
    if run.status == SimulatorRun.RUNNING and run.ends_at <= now:
        end_run(run, status=SimulatorRun.EXPIRED, reason=EXPIRED_REASON, now=now)
        return True
    return False


def expire_runs(*, now: datetime | None = None) -> int:
    """Running runs past `ends_at` become expired; returns how many."""
    now = now or timezone.now()
    expired = 0
    due = list(
        SimulatorRun.objects.filter(
            status=SimulatorRun.RUNNING, kind=SimulatorRun.LIVE, ends_at__lte=now
        ).values_list("pk", flat=True)
    )
    for run_id in due:
        with transaction.atomic():
            run = SimulatorRun.objects.select_for_update().get(pk=run_id)
            expired += expire_run_if_due(run, now=now)
    if expired:
        logger.info("event=runs_expired count=%s", expired)
    return expired
