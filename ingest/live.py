"""Live ingest in the distributed setup (a Celery beat tick), and the demo's mirror of replayed
books into the exchange double."""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal
from typing import Any

from django.conf import settings

from exchanges.books import KALSHI
from exchanges.ratelimit import RedisRateLimiter
from ingest.detector import PairSpec
from ingest.pairs import active_specs
from ingest.services import IngestPipeline
from ingest.shards import EVERY_PAIR, Shard, parse_shard, shard_pairs
from ingest.sources import BookUpdate, LiveHosts, LiveSource

# --- the Celery tick (distributed setup) ---------------------------------------------------------


def _env_number(name: str, default: str) -> Decimal:
    return Decimal(os.environ.get(name, "").strip() or default)


def shard_from_environment() -> Shard:
    """INGEST_SHARD=I/N: this process polls shard I of N of the active pairs (default: all)."""
    text = os.environ.get("INGEST_SHARD", "").strip()
    if not text:
        return EVERY_PAIR
    try:
        shard = parse_shard(text)
    except ValueError as error:
        raise ValueError(f"INGEST_SHARD: {error}") from None
    if shard.count != settings.INGEST_SHARDS:
        # Beat sends ticks to INGEST_SHARDS queues: another count would leave pairs unpolled.
        raise ValueError(
            f"INGEST_SHARD: {shard} is one of {shard.count} shards, but INGEST_SHARDS is {settings.INGEST_SHARDS}"
        )
    return shard


def live_enabled() -> bool:
    return os.environ.get("INGEST_LIVE", "").strip().lower() in {"1", "true", "yes", "on"}


class LiveIngest:
    """One process's live state between ticks: the source (backoff), the pipeline (books, spans)."""

    def __init__(self, *, hosts: LiveHosts | None = None, **pipeline_options: Any) -> None:
        self.max_skew_ms = int(_env_number("INGEST_MAX_SKEW_MS", "2000"))
        self.shard = shard_from_environment()
        specs = self._specs()
        options = {
            "threshold_cents": _env_number("INGEST_THRESHOLD_CENTS", "1"),
            "cooldown_ms": int(_env_number("INGEST_COOLDOWN_S", "10") * 1000),
            **pipeline_options,
        }
        self.pipeline = IngestPipeline(specs, **options)
        self.pipeline.restore()
        # With Redis, every process polling the venues shares one set of buckets (the limits are
        # the venue's, not per process).
        rate_limiter = RedisRateLimiter(settings.REDIS_URL) if settings.REDIS_URL else None
        self.source = LiveSource(specs, hosts=hosts, poll_interval_s=0, rate_limiter=rate_limiter)

    def _specs(self) -> list[PairSpec]:
        return shard_pairs(active_specs(max_skew_ms=self.max_skew_ms), self.shard)

    def tick(self) -> dict[str, Any]:
        specs = self._specs()
        if specs != self.source.pairs:
            self.pipeline.set_pairs(specs)
            self.source.pairs = specs
        updates = self.source.poll_once()
        for update in updates:
            self.pipeline.on_update(update)
        now_ms = max((u.now_ms for u in updates), default=time.time_ns() // 1_000_000)
        self.pipeline.sweep(now_ms)
        return {
            "updates": len(updates),
            "pairs": len(specs),
            "shard": str(self.shard),
            "pairs_fresh": self.pipeline.stats.pairs_fresh,
            "spans_open": len(self.pipeline.spans.open_keys()),
            "intents": self.pipeline.stats.intents,
        }


_live: LiveIngest | None = None
_live_lock = threading.Lock()


def live_tick() -> dict[str, Any]:
    """One polling round for the active pairs. A tick still running makes the next one a no-op
    (beat does not wait), so rounds never overlap in one process."""
    global _live
    if not _live_lock.acquire(blocking=False):
        return {"skipped": "previous tick still running"}
    try:
        if _live is None:
            _live = LiveIngest()
        return _live.tick()
    finally:
        _live_lock.release()


# --- the demo: the double shows the books ingest replays ----------------------------------------


def mirror_to_double(state: Any, update: BookUpdate | dict[str, Any]) -> None:
    """Apply one recording update to an `exchanges.double` ExchangeState, so the simulator's
    exchange validation (which asks the double) sees the books ingest is replaying."""
    from exchanges.double import KalshiMarket, PolymarketBook

    raw = update.raw if isinstance(update, BookUpdate) else update
    if raw["venue"] == KALSHI:
        try:
            state.set_kalshi_book(raw["id"], raw["yes"], raw["no"])
        except KeyError:
            state.add_kalshi_market(KalshiMarket(ticker=raw["id"], yes_bids=raw["yes"], no_bids=raw["no"]))
        return
    timestamp_ms = raw.get("vts", raw["t"])
    try:
        state.set_polymarket_book(raw["id"], raw["bids"], raw["asks"], timestamp_ms=timestamp_ms)
    except KeyError:
        state.add_polymarket_book(
            PolymarketBook(token_id=raw["id"], bids=raw["bids"], asks=raw["asks"], timestamp_ms=timestamp_ms)
        )
