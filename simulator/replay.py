"""A recording decided on its own clock: ingest's pipeline over the recording, each intent decided
at the time its books were seen, each order filled against the recorded book at its arrival time.

This is the engine's normal path (the same `decide_intent` and `arrive`), with the recording in
place of the venues (`simulator.engine.recorded.RecordedBooks`) and simulated time in place of the
wall clock: the same recording, runs and seeds give the same trades, byte for byte.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ingest.models import ExecutionIntent
from ingest.recording import pairs_of, read_recording
from ingest.services import IngestPipeline
from ingest.sources import ReplaySource, updates_to_book_updates
from simulator.engine import Step, arrive, decide_intent, in_flight_steps
from simulator.engine.recorded import RecordedBooks
from simulator.models import SimulatorRun


@dataclass(slots=True)
class ReplayStats:
    updates: int = 0
    intents: int = 0
    decisions: int = 0
    arrivals: int = 0
    decision_ids: list[int] = field(default_factory=list)


def recorded_books(path: str | Path) -> RecordedBooks:
    header, updates = read_recording(path)

    return RecordedBooks(
        book for update in updates_to_book_updates(updates, pairs_of(header)) for book in update.books
    )


def replay_recording(
    path: str | Path, *, run_ids: Iterable[int], threshold_cents: Decimal = Decimal("1")
) -> ReplayStats:
    """Replay `path` as fast as it goes for the given running runs, on the recording's clock.
    Arrivals due before an update are done before it: the runs' money and the liquidity they
    took are, at every decision, what they were at that moment of the recording."""
    books = recorded_books(path)
    run_ids = list(run_ids)
    stats = ReplayStats()
    arrivals: list[tuple] = []  # (when, order, trade id, step): a heap
    order = 0
    intents: list[ExecutionIntent] = []
    source = ReplaySource(path, speed=None)
    pipeline = IngestPipeline(
        source.pairs, threshold_cents=threshold_cents, dispatch_intent=intents.append, dispatch_span=_ignore
    )
    pipeline.restore()

    def schedule(steps: Iterable[Step]) -> None:
        nonlocal order
        for trade_id, step, at in steps:
            heapq.heappush(arrivals, (at, order, trade_id, step))
            order += 1

    def arrive_until(at_ms: int | None) -> None:
        while arrivals and (at_ms is None or arrivals[0][0].timestamp() * 1000 <= at_ms):
            _, _, trade_id, step = heapq.heappop(arrivals)
            arrived = arrive(trade_id=trade_id, step=step, books=books.arrival_books)
            if arrived is not None and arrived.done_now:
                stats.arrivals += 1
                schedule(arrived.next_steps)

    watching = {run.pk: run for run in SimulatorRun.objects.filter(pk__in=run_ids)}
    for update in source:
        arrive_until(update.now_ms)
        pipeline.on_update(update)
        stats.updates += 1
        for intent in intents:
            stats.intents += 1
            for run in watching.values():
                if run.user_id != intent.user_id or not run.watches(intent.opportunity_key):
                    continue
                decision = decide_intent(
                    run_id=run.pk, intent_id=intent.pk, now=intent.signal_at, validator=books
                )
                if decision is not None:
                    stats.decisions += 1
                    stats.decision_ids.append(decision.pk)
                    schedule(in_flight_steps(decision))
        intents.clear()
    arrive_until(None)
    return stats


def _ignore(_span: object) -> None:
    return None
