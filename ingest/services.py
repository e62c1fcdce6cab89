"""The ingest pipeline: books in; success spans and execution intents out, persisted, dispatched.

`IngestPipeline` holds the pure core (Detector, SpanTracker, IntentEmitter) and is fed
`BookUpdate`s (ingest.sources) whose `now_ms` is its clock: live, when the book arrived; replay,
the recorded time. For each pair evaluation it:

1. feeds the span tracker and writes SuccessSpan rows: created on open (and handed to the
   simulator, `simulator.intake.span_started`, once the row is committed), the peak, size and
   time-weighted mean refreshed at most every `span_write_interval_ms` while open, final on close;
2. asks the intent emitter for the users with a running run (`simulator.intake.
   running_user_thresholds`, refreshed every `thresholds_refresh_ms`) whose own threshold the
   edge meets, writes one ExecutionIntent row each, and only after the commit hands it to the
   simulator (`simulator.intake.intent_arrived`): nothing can consume an intent that is not stored.

`simulator.intake` is the only part of the simulator that ingest knows.

Open spans and intent cooldowns live in the database, so `restore()` after a restart resumes an
open span (same span_key, same peak and mean) instead of opening a second one, and does not
re-emit intents still in their cooldown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Max

from ingest.detector import Detector, Evaluation, PairSpec
from ingest.intents import IntentDraft, IntentEmitter, UserThreshold
from ingest.models import ExecutionIntent, SuccessSpan
from ingest.pairs import ensure_market_pairs
from ingest.sources import BookSource, BookUpdate
from ingest.spans import SpanClosed, SpanEvent, SpanOpened, SpanTracker
from simulator import intake

logger = logging.getLogger("ingest")

SIZE_QUANTUM = Decimal("0.01")


def datetime_of_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def ms_of_datetime(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _size(value: Decimal) -> Decimal:
    return value.quantize(SIZE_QUANTUM, rounding=ROUND_DOWN)


def intent_row(
    draft: IntentDraft, *, pair_id: int, span: SuccessSpan | None = None, origin: str = "live"
) -> ExecutionIntent:
    """The (unsaved) row of an intent draft: live ingest's, or a backtest's (origin backtest)."""
    return ExecutionIntent(
        user_id=draft.user_id,
        pair_id=pair_id,
        opportunity_key=draft.opportunity_key,
        direction=draft.direction,
        span=span,
        net_edge_cents=draft.net_edge_cents,
        size=draft.size,
        fees_usd=draft.fees_usd,
        cost_usd=draft.cost_usd,
        legs=[leg.as_json() for leg in draft.legs],
        books=draft.books,
        signal_at=datetime_of_ms(draft.created_ms),
        origin=origin,
    )


# --- the pipeline --------------------------------------------------------------------------------


@dataclass(slots=True)
class PipelineStats:
    updates: int = 0
    spans_opened: int = 0
    spans_closed: int = 0
    intents: int = 0
    fresh: dict[str, bool] = field(default_factory=dict)  # opportunity key -> last evaluation ok

    @property
    def pairs_fresh(self) -> int:
        return sum(self.fresh.values())


class IngestPipeline:
    def __init__(
        self,
        pairs: Iterable[PairSpec],
        *,
        threshold_cents: Decimal = Decimal(1),
        cooldown_ms: int = 10_000,
        thresholds: Callable[[], list[UserThreshold]] = intake.running_user_thresholds,
        dispatch_intent: Callable[[ExecutionIntent], Any] = intake.intent_arrived,
        dispatch_span: Callable[[SuccessSpan], Any] = intake.span_started,
        thresholds_refresh_ms: int = 5_000,
        span_write_interval_ms: int = 1_000,
        sweep_interval_ms: int = 1_000,
    ) -> None:
        self.detector = Detector(pairs)
        self.spans = SpanTracker(Decimal(threshold_cents))
        self.intents = IntentEmitter(cooldown_ms)
        self.threshold_cents = Decimal(threshold_cents)
        self.stats = PipelineStats()
        self._thresholds = thresholds
        self._dispatch_intent = dispatch_intent
        self._dispatch_span = dispatch_span
        self._thresholds_refresh_ms = thresholds_refresh_ms
        self._span_write_interval_ms = span_write_interval_ms
        self._sweep_interval_ms = sweep_interval_ms
        self._users: list[UserThreshold] = []
        self._users_loaded_ms: int | None = None
        self._pair_ids: dict[str, int] = {}
        self._span_rows: dict[str, SuccessSpan] = {}  # open spans' rows, by span_key
        self._last_sweep_ms = 0
        self._last_span_write_ms = 0
        self.now_ms = 0

    # --- start-up ------------------------------------------------------------------------------

    def restore(self) -> None:
        """Load pair ids (creating pairs the DB lacks), open spans and intent cooldowns."""
        self._pair_ids = ensure_market_pairs(specs=self.detector.pairs.values())
        keys = list(self.detector.pairs)
        states = []
        for row in SuccessSpan.objects.filter(opportunity_key__in=keys, ended_at__isnull=True).order_by(
            "started_at"
        ):
            states.append(row.tracker_state or self._state_from_columns(row))
            self._span_rows[row.span_key] = row
        self.spans.restore(states)
        last_intents = (
            ExecutionIntent.objects.filter(opportunity_key__in=keys, origin="live")
            .values("user_id", "opportunity_key")
            .annotate(last=Max("signal_at"))
        )
        self.intents.restore_cooldowns(
            {
                f"{row['user_id']}|{row['opportunity_key']}": ms_of_datetime(row["last"])
                for row in last_intents
            }
        )
        if states:
            logger.info("ingest.restore open_spans=%d", len(states))

    @staticmethod
    def _state_from_columns(row: SuccessSpan) -> dict[str, Any]:
        start_ms = ms_of_datetime(row.started_at)
        return {
            "key": row.opportunity_key,
            "direction": row.direction,
            "start_ms": start_ms,
            "last_ms": start_ms,
            "last_edge_cents": str(row.last_edge_cents),
            "peak_edge_cents": str(row.peak_edge_cents),
            "max_size": str(row.max_size),
            "weighted_sum": "0",
        }

    def set_pairs(self, pairs: Iterable[PairSpec]) -> None:
        """Follow a changed set of active pairs (live): spans of removed pairs close."""
        wanted = {p.opportunity_key: p for p in pairs}
        for key in [k for k in self.detector.pairs if k not in wanted]:
            self.detector.remove_pair(key)
            self.stats.fresh.pop(key, None)
        for pair in wanted.values():
            if self.detector.pairs.get(pair.opportunity_key) != pair:
                self.detector.add_pair(pair)
        self._pair_ids = ensure_market_pairs(specs=wanted.values())
        self._close_open_spans(lambda state: state["key"] not in wanted, self.now_ms, "pair_removed")

    def _close_open_spans(self, which: Callable[[dict[str, Any]], bool], at_ms: int, reason: str) -> None:
        open_spans = self.spans.export_open()
        if not any(which(state) for state in open_spans):
            return
        closed = self.spans.close_all(at_ms, reason)
        self.spans.restore([state for state in open_spans if not which(state)])
        doomed = {f"{s['key']}:{s['direction']}:{s['start_ms']}" for s in open_spans if which(s)}
        self._persist([c for c in closed if c.span_key in doomed], [])

    def _leave_other_timelines(self, now_ms: int) -> None:
        """The first update is older than what was restored: this is another timeline (a
        recording replayed again, or one older than a live run). Spans and cooldowns from the
        restored "future" must not shape it: they would hold back intents until its data caught
        up. Such spans close where they stood."""
        self._close_open_spans(lambda state: int(state["last_ms"]) > now_ms, 0, "superseded")
        cooldowns = self.intents.export_cooldowns()
        if any(ms > now_ms for ms in cooldowns.values()):
            self.intents = IntentEmitter(self.intents.cooldown_ms)
            self.intents.restore_cooldowns({k: ms for k, ms in cooldowns.items() if ms <= now_ms})

    # --- feeding -------------------------------------------------------------------------------

    def on_update(self, update: BookUpdate) -> list[Evaluation]:
        if self.stats.updates == 0:
            self._leave_other_timelines(update.now_ms)
        self.now_ms = max(self.now_ms, update.now_ms)
        self.stats.updates += 1
        evaluations = self.detector.on_books(update.books, update.now_ms)
        for evaluation in evaluations:
            self._handle(evaluation)
        if update.now_ms - self._last_sweep_ms >= self._sweep_interval_ms:
            self.sweep(update.now_ms)
        return evaluations

    def sweep(self, now_ms: int) -> None:
        """Re-evaluate pairs with an open span (a side that went quiet closes it as stale) and
        write the open spans' running figures, at most every span_write_interval_ms."""
        self.now_ms = max(self.now_ms, now_ms)
        self._last_sweep_ms = now_ms
        for key in self.spans.open_keys():
            if key in self.detector.pairs:
                self._handle(self.detector.evaluate_key(key, now_ms))
        if now_ms - self._last_span_write_ms >= self._span_write_interval_ms:
            self._last_span_write_ms = now_ms
            self._write_open_spans()

    def finish(self, now_ms: int | None = None, reason: str = "end_of_replay") -> list[SpanClosed]:
        """Close every open span (the data ended). A restart should not call this."""
        closed = self.spans.close_all(self.now_ms if now_ms is None else now_ms, reason)
        if closed:
            self._persist(closed, [])
        return closed

    def _users_at(self, now_ms: int) -> list[UserThreshold]:
        loaded = self._users_loaded_ms
        if loaded is None or now_ms - loaded >= self._thresholds_refresh_ms or now_ms < loaded:
            self._users = list(self._thresholds())
            self._users_loaded_ms = now_ms
        return self._users

    def _handle(self, evaluation: Evaluation) -> None:
        self.stats.fresh[evaluation.opportunity_key] = evaluation.ok
        events = self.spans.on_evaluation(evaluation)
        drafts: list[IntentDraft] = []
        best = evaluation.best
        if best is not None and best.size >= 1:
            users = self._users_at(evaluation.at_ms)
            if users:
                drafts = self.intents.emit(
                    evaluation,
                    users,
                    evaluation.at_ms,
                    span_key=self.spans.open_span_key(evaluation.opportunity_key),
                )
        if events or drafts:
            self._persist(events, drafts)

    # --- persistence ---------------------------------------------------------------------------

    def _persist(self, events: list[SpanEvent], drafts: list[IntentDraft]) -> None:
        with transaction.atomic():
            for event in events:
                if isinstance(event, SpanOpened):
                    self._open_span(event)
                elif isinstance(event, SpanClosed):
                    self._close_span(event)
                # SpanUpdated: the next periodic write carries the new peak (throttled).
            if drafts:
                self._create_intents(drafts)

    def _open_span(self, event: SpanOpened) -> None:
        state = self._open_state(event.key)
        row, created = SuccessSpan.objects.get_or_create(
            span_key=event.span_key,
            defaults={
                "pair_id": self._pair_ids[event.key],
                "opportunity_key": event.key,
                "direction": event.direction,
                "threshold_cents": self.threshold_cents,
                "started_at": datetime_of_ms(event.start_ms),
                "peak_edge_cents": event.edge_cents,
                "mean_edge_cents": event.edge_cents,
                "last_edge_cents": event.edge_cents,
                "max_size": _size(event.size),
                "tracker_state": state or {},
            },
        )
        self._span_rows[event.span_key] = row
        self.stats.spans_opened += 1
        if created:
            transaction.on_commit(partial(self._dispatch_span, row))

    def _close_span(self, event: SpanClosed) -> None:
        row = self._span_rows.pop(event.span_key, None)
        SuccessSpan.objects.filter(span_key=event.span_key).update(
            ended_at=datetime_of_ms(event.end_ms),
            peak_edge_cents=event.peak_edge_cents,
            mean_edge_cents=event.mean_edge_cents,
            max_size=_size(event.max_size),
            close_reason=event.reason[:40],
            tracker_state={},
        )
        self.stats.spans_closed += 1
        if row is None:
            logger.warning("ingest.span_close_without_row span_key=%s", event.span_key)

    def _open_state(self, key: str) -> dict[str, Any] | None:
        for state in self.spans.export_open():
            if state["key"] == key:
                return state
        return None

    def _write_open_spans(self) -> None:
        for state in self.spans.export_open():
            start_ms, last_ms = int(state["start_ms"]), int(state["last_ms"])
            weighted = Decimal(state["weighted_sum"])
            mean = (
                weighted / (last_ms - start_ms) if last_ms > start_ms else Decimal(state["last_edge_cents"])
            )
            span_key = f"{state['key']}:{state['direction']}:{start_ms}"
            SuccessSpan.objects.filter(span_key=span_key).update(
                peak_edge_cents=Decimal(state["peak_edge_cents"]),
                last_edge_cents=Decimal(state["last_edge_cents"]),
                mean_edge_cents=mean.quantize(Decimal("0.0001")),
                max_size=_size(Decimal(state["max_size"])),
                tracker_state=state,
            )

    def _create_intents(self, drafts: list[IntentDraft]) -> None:
        rows = [
            intent_row(
                draft,
                pair_id=self._pair_ids[draft.opportunity_key],
                span=self._span_rows.get(draft.span_key) if draft.span_key else None,
            )
            for draft in drafts
        ]
        ExecutionIntent.objects.bulk_create(rows)
        self.stats.intents += len(rows)
        for intent in rows:
            # On commit: the worker that decides the intent must find its row.
            transaction.on_commit(partial(self._dispatch_intent, intent))


# --- running a source through a pipeline ---------------------------------------------------------


@dataclass(slots=True)
class LoopProgress:
    elapsed_s: float
    updates: int
    updates_per_s: float  # since the previous report
    pairs_fresh: int
    pairs: int
    spans_open: int
    spans_opened: int
    intents: int
    data_ms: int


def run_source(
    source: BookSource,
    pipeline: IngestPipeline,
    *,
    on_progress: Callable[[LoopProgress], None] | None = None,
    progress_every_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    on_update: Callable[[BookUpdate], None] | None = None,
) -> LoopProgress:
    """Feed every update of `source` to `pipeline` until it ends (or `source.stop()`)."""
    started = last_report = clock()
    updates_at_report = 0

    def progress(now_s: float, since_s: float, since_updates: int) -> LoopProgress:
        stats = pipeline.stats
        return LoopProgress(
            elapsed_s=now_s - started,
            updates=stats.updates,
            updates_per_s=(stats.updates - since_updates) / since_s if since_s > 0 else 0.0,
            pairs_fresh=stats.pairs_fresh,
            pairs=len(pipeline.detector.pairs),
            spans_open=len(pipeline.spans.open_keys()),
            spans_opened=stats.spans_opened,
            intents=stats.intents,
            data_ms=pipeline.now_ms,
        )

    for update in source:
        if on_update is not None:
            on_update(update)
        pipeline.on_update(update)
        now_s = clock()
        if on_progress is not None and now_s - last_report >= progress_every_s:
            on_progress(progress(now_s, now_s - last_report, updates_at_report))
            last_report, updates_at_report = now_s, pipeline.stats.updates
    now_s = clock()
    return progress(now_s, now_s - started, 0)
