"""Markets followed to resolution: each venue's result recorded on the pair, and once both are
known the pair's trades paid out through the simulator's resolution service.

Two sources, one path:
- `on_lifecycle_event(event)`: a stream client's `exchanges.streams.LifecycleEvent` (Kalshi's
  `market_lifecycle_v2` determined/settled, Polymarket's `market_resolved`, one per token).
- `LifecycleFollower.poll()`: the REST fallback. It asks the venues only about the pairs someone
  waits for: a pair with a trade not yet paid, or an active pair past either venue's close time,
  and of those only the venue whose result is not recorded yet (Kalshi: GET /markets/{ticker},
  `status` determined/finalized with `result`; Polymarket: GET /markets/{condition_id}, the token
  whose `winner` is true). What it learns becomes the same LifecycleEvent.

Each venue's first result is kept on the pair (`kalshi_result`, `poly_result`: Polymarket's as
"yes" when the YES token won); with both, `simulator.intake.pair_resolved` pays every unpaid
trade on the pair exactly once (per trade, under its run's lock: repeated events, a REST pass
after the stream, two processes, a restart, or `sim_resolve` by hand never pay twice). Venues
that resolved differently flag the pair (`resolution_disagreement`). Who runs the REST pass:
beat's `ingest.tasks.follow_lifecycle` in the distributed setup, a thread of `ingest_run --live`
and of the demo (`LifecycleThread`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Q
from django.utils import timezone

from exchanges.books import KALSHI, POLYMARKET
from exchanges.polymarket import PolymarketAdapter, PolymarketCredentials
from exchanges.ratelimit import LocalRateLimiter, RedisRateLimiter
from exchanges.streams import DETERMINED, SETTLED, LifecycleEvent
from ingest.models import MarketPair
from ingest.shards import EVERY_PAIR, Shard, shard_pairs
from ingest.sources import LiveHosts, PublicKalshiAdapter
from simulator import intake

logger = logging.getLogger(__name__)

RESULTS = ("yes", "no")


def interval_s() -> float:
    """Seconds between REST passes (settings.INGEST_LIFECYCLE_S)."""
    return settings.INGEST_LIFECYCLE_S


def _flip(result: str) -> str:
    return "no" if result == "yes" else "yes"


def _learned(event: LifecycleEvent) -> list[tuple[MarketPair, str, str]]:
    """(pair, field, result) for every pair the event tells a result of."""
    if event.kind not in (DETERMINED, SETTLED) or event.result not in RESULTS:
        return []
    if event.venue == KALSHI:
        return [
            (pair, "kalshi_result", event.result)
            for pair in MarketPair.objects.filter(kalshi_ticker=event.instrument_id)
        ]
    if event.venue == POLYMARKET:
        pairs = MarketPair.objects.filter(
            Q(poly_yes_token=event.instrument_id) | Q(poly_no_token=event.instrument_id)
        )
        # The YES token winning (or the NO token losing) is the question resolving yes.
        return [
            (
                pair,
                "poly_result",
                event.result if pair.poly_yes_token == event.instrument_id else _flip(event.result),
            )
            for pair in pairs
        ]
    return []


def on_lifecycle_event(event: LifecycleEvent) -> list[dict[str, Any]]:
    """Record what `event` says of each pair of its instrument (a venue's first result stays),
    then pay every pair it completes. Returns the resolution summaries of the pairs paid.
    Events without a result (closed, or a scalar Kalshi result) record nothing. It uses the
    database: from an event loop, call it through `asgiref.sync.sync_to_async`."""
    if event.kind == DETERMINED and event.result not in RESULTS:
        logger.warning(
            "event=lifecycle_result_unusable venue=%s instrument=%s result=%s: resolve by hand (sim_resolve)",
            event.venue, event.instrument_id, event.result,
        )  # fmt: skip
    touched = []
    for pair, column, result in _learned(event):
        if MarketPair.objects.filter(pk=pair.pk, **{column: ""}).update(**{column: result}):
            logger.info(
                "event=venue_resolved opportunity_key=%s venue=%s result=%s",
                pair.opportunity_key,
                event.venue,
                result,
            )
        touched.append(pair.pk)
    return pay_resolved(MarketPair.objects.filter(pk__in=touched))


def pay_resolved(pairs: Iterable[MarketPair], open_keys: set[str] | None = None) -> list[dict[str, Any]]:
    """Pay each of `pairs` whose two results are known and that is not paid yet or still has an
    unpaid trade (one whose orders were on their way when it was last paid)."""
    if open_keys is None:
        open_keys = intake.keys_with_open_trades()
    paid = []
    for pair in pairs:
        if not (pair.kalshi_result and pair.poly_result):
            continue
        if pair.resolved_at is not None and pair.opportunity_key not in open_keys:
            continue
        summary = intake.pair_resolved(
            pair.opportunity_key, kalshi=pair.kalshi_result, polymarket=pair.poly_result
        )
        paid.append({"opportunity_key": pair.opportunity_key, **summary})
    return paid


@dataclass
class PassSummary:
    pairs: int = 0  # pairs looked at
    calls: int = 0  # venue calls made
    failed: int = 0  # of which did not answer usably
    paid: list[dict[str, Any]] = field(default_factory=list)  # summaries of the pairs paid


class LifecycleFollower:
    """The REST fallback: one `poll()` per pass. Its adapters ask the venues' public market
    endpoints (no keys), within the same rate limits as the book polling."""

    def __init__(
        self, *, hosts: LiveHosts | None = None, timeout_s: float = 3.0, shard: Shard = EVERY_PAIR
    ) -> None:
        hosts = hosts or LiveHosts.from_environment()
        self.shard = shard  # the pairs this process follows (each ingest shard follows its own)
        # With Redis, the buckets are those the book polling of every process shares.
        limiter = RedisRateLimiter(settings.REDIS_URL) if settings.REDIS_URL else LocalRateLimiter()
        self.kalshi = PublicKalshiAdapter(hosts.kalshi, timeout_s=timeout_s, rate_limiter=limiter)
        self.polymarket = PolymarketAdapter(
            PolymarketCredentials(private_key="", host=hosts.polymarket),
            timeout_s=timeout_s,
            rate_limiter=limiter,
        )

    def waiting_pairs(self, open_keys: set[str], now: datetime) -> list[MarketPair]:
        """This shard's pairs with an unpaid trade, and its active unpaid pairs past a venue's close
        time."""
        past_close = Q(kalshi_close_time__lte=now) | Q(poly_close_time__lte=now)
        waiting = Q(opportunity_key__in=open_keys) | (Q(active=True, resolved_at__isnull=True) & past_close)
        return shard_pairs(MarketPair.objects.filter(waiting).order_by("opportunity_key"), self.shard)

    def poll(self, now: datetime | None = None) -> PassSummary:
        now = now or timezone.now()
        pairs = self.waiting_pairs(intake.keys_with_open_trades(), now)
        summary = PassSummary(pairs=len(pairs))
        for pair in pairs:
            for event in self._ask(pair, summary):
                summary.paid += on_lifecycle_event(event)
        # Pairs whose results were known before this pass: trades still unpaid (in flight when
        # the pair was paid, or a crash between recording and paying).
        done = {paid["opportunity_key"] for paid in summary.paid}
        summary.paid += pay_resolved(
            MarketPair.objects.filter(pk__in=[pair.pk for pair in pairs]).exclude(opportunity_key__in=done)
        )
        if summary.calls or summary.paid:
            logger.info(
                "event=lifecycle_pass pairs=%s calls=%s failed=%s paid=%s",
                summary.pairs, summary.calls, summary.failed, len(summary.paid),
            )  # fmt: skip
        return summary

    def _ask(self, pair: MarketPair, summary: PassSummary) -> list[LifecycleEvent]:
        """What the venues say of the pair's results not recorded yet, as events."""
        events = []
        if not pair.kalshi_result:
            summary.calls += 1
            status = self.kalshi.market_status(pair.kalshi_ticker)
            if not status.ok:
                summary.failed += 1
                logger.warning(
                    "event=lifecycle_call_failed venue=kalshi ticker=%s kind=%s",
                    pair.kalshi_ticker,
                    status.kind,
                )
            elif status.value.resolved:
                events.append(LifecycleEvent(KALSHI, pair.kalshi_ticker, DETERMINED, status.value.result))
        if not pair.poly_result:
            condition_id = pair.poly_condition_id or self._condition_id(pair, summary)
            if condition_id:
                summary.calls += 1
                status = self.polymarket.market_resolution(condition_id)
                if not status.ok:
                    summary.failed += 1
                    logger.warning(
                        "event=lifecycle_call_failed venue=polymarket condition=%s kind=%s",
                        condition_id,
                        status.kind,
                    )
                elif status.value.winning_instrument_id:
                    events.append(
                        LifecycleEvent(POLYMARKET, status.value.winning_instrument_id, DETERMINED, "yes")
                    )
        return events

    def _condition_id(self, pair: MarketPair, summary: PassSummary) -> str:
        """A pair imported without its Polymarket condition id learns it from its YES token's
        book (while the market still trades) and keeps it."""
        summary.calls += 1
        found = self.polymarket.condition_id(pair.poly_yes_token)
        if not found.ok:
            summary.failed += 1
            logger.warning(
                "event=lifecycle_no_condition_id opportunity_key=%s kind=%s: Polymarket's result needs"
                " the pair's poly_condition_id, or a stream",
                pair.opportunity_key, found.kind,
            )  # fmt: skip
            return ""
        MarketPair.objects.filter(pk=pair.pk).update(poly_condition_id=found.value)
        return found.value


class LifecycleThread(threading.Thread):
    """The REST pass every `interval` seconds in a process of its own (`ingest_run --live`, the
    demo), until `stop()`; a failing pass is logged and the next one runs."""

    def __init__(self, follower: LifecycleFollower, interval: float | None = None) -> None:
        super().__init__(name="lifecycle", daemon=True)
        self.follower = follower
        self.interval = interval_s() if interval is None else interval
        self._stop_requested = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_requested.is_set():
                try:
                    self.follower.poll()
                except Exception:
                    logger.exception("event=lifecycle_pass_failed")
                self._stop_requested.wait(self.interval)
        finally:
            connections.close_all()  # this thread's own

    def stop(self) -> None:
        self._stop_requested.set()
