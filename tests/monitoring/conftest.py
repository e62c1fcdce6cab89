"""Stream states as an ingest process publishes them (ingest.health), for /healthz and /metrics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings

from ingest.health import publish_stream_status


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def stream_status(venue: str = "kalshi", shard: str = "1/1", **fields: Any) -> dict[str, Any]:
    """A live stream that received book data a moment ago."""
    at_ms = now_ms()
    return {
        "venue": venue,
        "shard": shard,
        "state": "live",
        "connected_since_ms": at_ms - 600_000,
        "last_message_ms": at_ms - 100,
        "last_data_ms": at_ms - 200,
        "instruments": 40,
        "stale_instruments": 0,
        "messages": 52_000,
        "updates": 50_000,
        "reconnects": 1,
        "resnapshots": 3,
        "hash_checks_stopped": 0,
        "lag_ms_p50": 12,
        **fields,
    }


@pytest.fixture
def publish():
    """publish(process, *statuses): what that ingest process says about its streams."""

    def publish_(process: str, *statuses: dict[str, Any]) -> None:
        publish_stream_status(process, list(statuses))

    return publish_


@pytest.fixture(autouse=True)
def close_thread_connections(monkeypatch):
    """A websocket consumer reads the session in a worker thread; with persistent connections that
    thread's connection would outlive the test and block the test database's teardown."""
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)
