"""Measurements made in one process and read by /metrics in any other: the lateness of each
order's arrival step (a histogram) and the websocket clients each web process holds.

With REDIS_URL they live in Redis hashes, so a Celery worker's observations and every web
process's clients reach whichever web process Prometheus scrapes; without it (the embedded demo,
where everything runs in one process) in this process's memory. Recording is one pipelined
round trip, never a database query, and never raises: a Redis outage costs a lost observation,
not an arrival or a socket.

Websocket clients are a per-process count published as `count:expires_ms` in one hash field per
process, re-published every WEBSOCKET_HEARTBEAT_S by a daemon thread: a process that dies
without closing its sockets drops out of the sum once its field expires, instead of leaving a
counter that never comes back down.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from datetime import datetime

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

# Upper bounds in seconds: the benchmarks see a few ms at p50 and tens of ms at p99 when healthy,
# seconds when workers fall behind.
ARRIVAL_LATENESS_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WEBSOCKET_HEARTBEAT_S = 10.0
WEBSOCKET_EXPIRY_S = 3 * WEBSOCKET_HEARTBEAT_S
REDIS_TIMEOUT_S = 0.25  # a hot path waits at most this long on a Redis that does not answer

_ARRIVAL_KEY = "metrics:arrival_lateness"
_WEBSOCKET_KEY = "metrics:websocket_clients"
_memory: dict[str, dict[str, float]] = defaultdict(dict)
_memory_lock = threading.Lock()


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)


def _redis() -> redis.Redis | None:
    return _client(settings.REDIS_URL) if settings.REDIS_URL else None


def _key(name: str) -> str:
    # The cache's key prefix: deployments sharing a Redis (and tests) keep their figures apart.
    return cache.make_key(name)


def _increment(name: str, amounts: dict[str, float]) -> None:
    client = _redis()
    if client is None:
        with _memory_lock:
            table = _memory[_key(name)]
            for field, amount in amounts.items():
                table[field] = table.get(field, 0) + amount
        return
    pipe = client.pipeline(transaction=False)
    for field, amount in amounts.items():
        pipe.hincrbyfloat(_key(name), field, amount)
    pipe.execute()


def _read(name: str) -> dict[str, str]:
    client = _redis()
    if client is None:
        with _memory_lock:
            return {field: str(value) for field, value in _memory[_key(name)].items()}
    return {field.decode(): value.decode() for field, value in client.hgetall(_key(name)).items()}


# --- Arrival lateness ---------------------------------------------------------------------------


def observe_arrival_lateness(due: datetime, now: datetime) -> None:
    """One arrival step asking for its book at `now`, due at `due`."""
    lateness_s = max((now - due).total_seconds(), 0.0)
    bucket = next((str(b) for b in ARRIVAL_LATENESS_BUCKETS_S if lateness_s <= b), "+Inf")
    try:
        _increment(_ARRIVAL_KEY, {bucket: 1, "count": 1, "sum": lateness_s})
    except redis.RedisError as error:
        logger.debug("event=metric_dropped metric=arrival_lateness error=%s", type(error).__name__)


def arrival_lateness() -> tuple[list[tuple[str, int]], float]:
    """(cumulative (le, count) buckets ending with +Inf, sum of seconds) over every process."""
    table = _read(_ARRIVAL_KEY)
    buckets, running = [], 0
    for bound in (*map(str, ARRIVAL_LATENESS_BUCKETS_S), "+Inf"):
        running += int(float(table.get(bound, 0)))
        buckets.append((bound, running))
    return buckets, float(table.get("sum", 0))


# --- Websocket clients ----------------------------------------------------------------------------


class _WebsocketClients:
    """This process's open sockets, published (on change, and every heartbeat) by a daemon thread."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Event()
        self._lock = threading.Lock()
        self._publisher_pid: int | None = None  # a forked child starts a publisher of its own
        self._process = ""

    def change(self, delta: int) -> None:
        with self._lock:
            self.count += delta
            if self._publisher_pid != os.getpid():
                self._publisher_pid = os.getpid()
                self._process = f"{socket.gethostname()}:{os.getpid()}"
                threading.Thread(target=self._publish_forever, name="websocket-clients", daemon=True).start()
        self._changed.set()

    def _publish_forever(self) -> None:
        while True:
            self._changed.wait(WEBSOCKET_HEARTBEAT_S)
            self._changed.clear()
            try:
                self.publish()
            except redis.RedisError as error:
                logger.warning(
                    "event=metric_not_published metric=websocket_clients error=%s", type(error).__name__
                )

    def publish(self) -> None:
        expires_ms = time.time_ns() // 1_000_000 + int(WEBSOCKET_EXPIRY_S * 1000)
        value = f"{self.count}:{expires_ms}"
        client = _redis()
        if client is None:
            with _memory_lock:
                _memory[_key(_WEBSOCKET_KEY)][self._process] = value  # type: ignore[assignment]
        else:
            client.hset(_key(_WEBSOCKET_KEY), self._process, value)


_websockets = _WebsocketClients()


def websocket_opened() -> None:
    _websockets.change(+1)


def websocket_closed() -> None:
    _websockets.change(-1)


def websocket_clients() -> int:
    """Open sockets over every web process that published within WEBSOCKET_EXPIRY_S."""
    now_ms = time.time_ns() // 1_000_000
    total = 0
    for value in _read(_WEBSOCKET_KEY).values():
        count, _, expires_ms = value.partition(":")
        if int(expires_ms) > now_ms:
            total += int(count)
    return total
