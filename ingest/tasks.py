"""Celery tasks of ingest: a few lines each, the work is in ingest.live.

`live_tick` is scheduled by beat every INGEST_TICK_S seconds (config/settings.py). It polls only
when INGEST_LIVE is enabled in the environment, so a deployment that replays (or a developer
machine) does not reach the venues by accident. Its state (books, open spans, backoff) lives in
the worker process between ticks: run it on one worker (e.g. a queue of its own, concurrency 1).

`follow_lifecycle` (every INGEST_LIFECYCLE_S seconds, behind the same switch) is the REST pass of
ingest.lifecycle: the pairs' markets followed to resolution, their trades paid. It keeps no state
that matters between passes (the results are on the pairs), so any ingest worker may run it.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ingest import lifecycle, live


@shared_task(name="ingest.tasks.live_tick", ignore_result=True)
def live_tick() -> dict[str, Any]:
    if not live.live_enabled():
        return {"skipped": "INGEST_LIVE is not enabled"}
    return live.live_tick()


_follower: lifecycle.LifecycleFollower | None = None


@shared_task(name="ingest.tasks.follow_lifecycle", ignore_result=True)
def follow_lifecycle() -> dict[str, Any]:
    global _follower
    if not live.live_enabled():
        return {"skipped": "INGEST_LIVE is not enabled"}
    if _follower is None:
        _follower = lifecycle.LifecycleFollower()
    summary = _follower.poll()
    return {
        "pairs": summary.pairs,
        "calls": summary.calls,
        "failed": summary.failed,
        "paid": len(summary.paid),
    }
