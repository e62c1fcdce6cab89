"""The simulator's one entry point for ingest: intents and span starts come in here, and leave
as decision tasks for the workers (`simulator.tasks`), one per running run that watches them.

Ingest imports nothing else of the simulator. It calls
- `running_user_thresholds()` to learn whose runs an edge could interest,
- `intent_arrived(intent)` and `span_started(span)` once the row is committed,
- `keys_with_open_trades()` and `pair_resolved(...)` as it follows markets to resolution
  (`ingest.lifecycle`),
- `recording_clock()` to replay a recording on its own clock (`ingest_run --recorded-clock`).
Beat's sweep (`simulator.sweeps`) calls `redispatch_undecided()` and
`redispatch_overdue_arrivals()` for what the broker lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ingest.intents import UserThreshold
from ingest.models import ExecutionIntent, SuccessSpan
from simulator import recorded_clock, selectors, services
from simulator.engine import steps_of
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.replay import recording_clock
from simulator.tasks import decide_intent_task, decide_span_task, schedule_arrivals

__all__ = ["recording_clock"]  # and the functions below

logger = logging.getLogger(__name__)


def _send(task):
    """To the workers; on a recording's clock (`replay.recording_clock`), run here and now."""
    return task if recorded_clock.current() is not None else task.delay


def running_user_thresholds() -> list[UserThreshold]:
    """One UserThreshold per user with a running run (see `selectors.running_thresholds`)."""
    return [
        UserThreshold(
            user_id=row.user_id,
            min_net_edge_cents=Decimal(row.min_net_edge_cents),
            max_leg_usd=Decimal(row.max_leg_usd),
            watched_keys=row.watched_keys,
        )
        for row in selectors.running_thresholds()
    ]


def intent_arrived(intent: ExecutionIntent) -> int:
    """One decision task per running run of the intent's user watching its key, sent when the
    current transaction commits (the worker must see the intent row). Returns the count."""
    runs = selectors.running_runs_watching(intent.opportunity_key, user_id=intent.user_id)
    for run in runs:
        transaction.on_commit(partial(_send(decide_intent_task), run.pk, intent.pk))
    return len(runs)


def span_started(span: SuccessSpan) -> int:
    """One span-start decision per running run watching the span's key, for every user (a span
    is market data, not per user). The engine builds the intent it judges (see
    `simulator.engine.inputs.span_intent`). Sent on commit; returns the count."""
    runs = selectors.running_runs_watching(span.opportunity_key)
    for run in runs:
        transaction.on_commit(partial(_send(decide_span_task), run.pk, span.pk))
    return len(runs)


def keys_with_open_trades() -> set[str]:
    """Opportunity keys with a trade not yet paid out, in any run: the pairs whose resolution
    someone waits for."""
    return set(
        SimulatorTrade.objects.filter(resolved_at__isnull=True, run__kind=SimulatorRun.LIVE)
        .order_by()
        .values_list("opportunity_key", flat=True)
        .distinct()
    )


def pair_resolved(opportunity_key: str, *, kalshi: str, polymarket: str) -> dict:
    """Both venues resolved the pair: pay its unpaid trades (`services.resolve_pair`, exactly
    once per trade whoever calls it and however often)."""
    return services.resolve_pair(opportunity_key=opportunity_key, kalshi=kalshi, polymarket=polymarket)


def redispatch_undecided(
    *, now: datetime | None = None, min_age_s: float = 60.0, window_s: float = 6 * 3600, limit: int = 2000
) -> int:
    """Send again every (running run, intent) that has no decision yet although it should.

    The database, not the broker, is the record of what must be decided: kombu's Redis transport
    pops a message before it stores the unacknowledged copy, so a worker killed in between loses
    the message for good (celery/kombu#305, #1836; the soak saw 4 in 10,000 intents under SIGKILL
    every few seconds). Beat runs this every 30 s; the unique (run, intent) constraint makes a
    second delivery harmless. Only intents older than `min_age_s` (the broker's own redelivery
    comes first) and runs that were already running when the intent was made.
    """
    now = now or timezone.now()
    sent = 0
    for run in selectors.running_runs().order_by("id"):
        # Asked of the database per run: intents it should have decided and has not, oldest
        # first (not the newest N intents, behind which an old lost one could hide forever).
        undecided = ExecutionIntent.objects.filter(
            user_id=run.user_id,
            origin="live",
            created_at__gte=max(run.started_at, now - timedelta(seconds=window_s)),
            created_at__lte=now - timedelta(seconds=min_age_s),
        ).exclude(Exists(Decision.objects.filter(run_id=run.pk, intent_id=OuterRef("pk"))))
        if run.opportunity_keys:
            undecided = undecided.filter(opportunity_key__in=run.opportunity_keys)
        for intent_id in undecided.order_by("created_at", "id").values_list("pk", flat=True)[: limit - sent]:
            decide_intent_task.delay(run.pk, intent_id)
            sent += 1
        if sent >= limit:
            break
    if sent:
        logger.warning("event=undecided_intents_redispatched count=%s", sent)
    return sent


def redispatch_overdue_arrivals(
    *, now: datetime | None = None, late_s: float = 10.0, limit: int = 2000
) -> int:
    """Schedule again every arrival step due more than `late_s` ago and still not done: its task
    was lost (a worker killed between the broker's pop and its unacknowledged copy, or between a
    decision's commit and its scheduling). The step is done once whatever the deliveries."""
    now = now or timezone.now()
    steps = []
    in_flight = SimulatorTrade.objects.filter(
        arrival_outcome="", decided_at__lte=now - timedelta(seconds=late_s), run__kind=SimulatorRun.LIVE
    )
    for trade in in_flight.order_by("decided_at", "id").only("legs", "user")[:limit]:
        steps += [step for step in steps_of(trade) if (now - step.at).total_seconds() >= late_s]
    schedule_arrivals(steps)
    if steps:
        logger.warning("event=overdue_arrivals_redispatched count=%s", len(steps))
    return len(steps)
