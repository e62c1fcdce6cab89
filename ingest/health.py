"""What each ingest process says about its streams, shared through Django's cache (Redis when
REDIS_URL is set, so /healthz and /metrics on any web process see every ingest process).

A status is a JSON-ready dict per stream, published every few seconds by the process that owns
the stream and kept for STATUS_TTL_S: a process that stops publishing disappears from the list.
Fields (all present): venue, shard ("i/N"), state ("connecting" | "live" | "down"),
connected_since_ms, last_message_ms, last_data_ms (null until the first), instruments,
stale_instruments, messages, updates, reconnects, resnapshots, hash_checks_stopped (counters since
the process started), lag_ms_p50 (receive time minus venue time over recent updates, null if the venue sends
no time), published_ms.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache

STATUS_TTL_S = 30
_INDEX_KEY = "ingest:streams:index"
_KEY = "ingest:streams:{process}"


def publish_stream_status(process: str, streams: list[dict[str, Any]]) -> None:
    """Publish one ingest process's stream statuses (`process`: a name unique per process)."""
    now_ms = time.time_ns() // 1_000_000
    cache.set(_KEY.format(process=process), [{**s, "published_ms": now_ms} for s in streams], STATUS_TTL_S)
    index = set(cache.get(_INDEX_KEY) or ())
    if process not in index:
        cache.set(_INDEX_KEY, sorted(index | {process}), None)


def stream_statuses() -> list[dict[str, Any]]:
    """Every live ingest process's stream statuses, by venue and shard."""
    index = cache.get(_INDEX_KEY) or []
    found = cache.get_many([_KEY.format(process=p) for p in index])
    statuses = [status for key in sorted(found) for status in found[key]]
    return sorted(statuses, key=lambda s: (str(s.get("venue", "")), str(s.get("shard", ""))))
