"""What /healthz checks, and when the service counts as failing (docs/operations.md).

Each check answers a JSON-ready dict with a `status`: "ok", "failing", or "embedded" / "not
checked" where the part is not configured. A failing check says why in words of its own (an
error's class name at most): never an exception's message, which can carry a URL with a password.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from config.celery import app as celery_app
from ingest.health import stream_statuses
from simulator import arrival_scheduler

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 1.0
# A ping answered by fewer workers than expected waits out this timeout; enough replies end it early.
WORKER_PING_TIMEOUT_S = 1.0
_pinger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthz-ping")
_in_flight: dict[int, Future] = {}  # expected replies -> the ping under way
_in_flight_lock = threading.Lock()

OK, FAILING = "ok", "failing"


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("event=healthz_failing check=database error=%s", type(error).__name__)
        return {"status": FAILING, "why": f"query failed ({type(error).__name__})"}
    return {"status": OK}


def check_redis() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"status": "embedded"}
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        client.ping()
    except redis.RedisError as error:
        logger.warning("event=healthz_failing check=redis error=%s", type(error).__name__)
        return {"status": FAILING, "why": f"no answer to PING ({type(error).__name__})"}
    finally:
        client.close()
    return {"status": OK}


def _ping(expected: int) -> Future:
    """The ping under way, or a new one: however often /healthz is asked (it is open to anyone),
    a process has at most one ping out at a time."""
    with _in_flight_lock:
        future = _in_flight.get(expected)
        if future is None or future.done():
            future = _pinger.submit(celery_app.control.ping, timeout=WORKER_PING_TIMEOUT_S, limit=expected)
            _in_flight[expected] = future
        return future


def check_workers(*, broker_ok: bool) -> dict[str, Any]:
    """Celery's broadcast ping, ended by the expected number of replies or WORKER_PING_TIMEOUT_S.

    A ping is an answer from the worker's own consumer loop, so a worker that is up but wedged
    fails it; a heartbeat key would need events enabled on every worker. The call runs on a
    helper thread so that even a broker that stops answering mid-call cannot hold the request
    past the timeout."""
    expected = settings.HEALTHZ_MIN_WORKERS
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"status": "embedded"}
    if expected == 0:
        return {"status": "not checked"}
    if not broker_ok:
        return {"status": FAILING, "why": "the broker (Redis) does not answer", "expected": expected}
    future = _ping(expected)
    try:
        replies = future.result(timeout=WORKER_PING_TIMEOUT_S + 0.5)
    except FutureTimeout:
        return {"status": FAILING, "why": "the ping did not return", "expected": expected}
    except Exception as error:  # kombu and redis raise many kinds; the probe must answer
        logger.warning("event=healthz_failing check=workers error=%s", type(error).__name__)
        return {"status": FAILING, "why": f"ping failed ({type(error).__name__})", "expected": expected}
    answered = len(replies or [])
    result = {"status": OK if answered >= expected else FAILING, "answered": answered, "expected": expected}
    if answered < expected:
        result["why"] = f"{answered} of {expected} workers answered within {WORKER_PING_TIMEOUT_S:g} s"
    return result


def check_streams(*, redis_ok: bool) -> dict[str, Any]:
    """Each published stream: failing when it is not live or its last data is older than
    HEALTHZ_MAX_DATA_AGE_S; no stream at all fails only when HEALTHZ_EXPECT_STREAMS is set."""
    if not redis_ok:  # the states are published in Redis: asking it again would wait out its timeout
        return {
            "status": FAILING,
            "why": "stream states are kept in Redis, which does not answer",
            "streams": [],
        }
    now_ms = time.time_ns() // 1_000_000
    try:
        statuses = stream_statuses()
    except redis.RedisError as error:
        return {"status": FAILING, "why": f"stream states unreadable ({type(error).__name__})", "streams": []}
    max_age_s = settings.HEALTHZ_MAX_DATA_AGE_S
    streams = []
    for status in statuses:
        last_data_ms = status.get("last_data_ms")
        age_s = round((now_ms - last_data_ms) / 1000, 3) if isinstance(last_data_ms, int) else None
        # .get: a status from an ingest process of another version must not break the probe.
        stream = {
            "venue": status.get("venue"),
            "shard": status.get("shard"),
            "state": status.get("state"),
            "data_age_s": age_s,
            "instruments": status.get("instruments"),
            "stale_instruments": status.get("stale_instruments"),
            "status": OK,
        }
        if stream["state"] != "live":
            stream.update(status=FAILING, why=f"stream {stream['state']}")
        elif age_s is None or age_s > max_age_s:
            stream.update(status=FAILING, why=f"no data for more than {max_age_s:g} s")
        streams.append(stream)
    if not streams:
        if settings.HEALTHZ_EXPECT_STREAMS:
            return {"status": FAILING, "why": "no ingest process publishes a stream", "streams": []}
        return {"status": "not checked", "streams": []}
    failing = any(stream["status"] == FAILING for stream in streams)
    return {"status": FAILING if failing else OK, "streams": streams}


def check_arrivals(*, redis_ok: bool) -> dict[str, Any]:
    """With SIMULATOR_ARRIVALS=scheduler: a `sim_arrivals` process takes the steps (it marks
    itself alive in Redis every second); `waiting`: steps sent that no scheduler took yet."""
    if settings.SIMULATOR_ARRIVALS != "scheduler":
        return {"status": "not checked"}
    if not redis_ok:
        return {"status": FAILING, "why": "the steps are handed over through Redis, which does not answer"}
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        alive, waiting = arrival_scheduler.serving(client), arrival_scheduler.backlog(client)
    except redis.RedisError as error:
        return {"status": FAILING, "why": f"unreadable ({type(error).__name__})"}
    finally:
        client.close()
    if not alive:
        return {
            "status": FAILING,
            "why": "no arrival scheduler (sim_arrivals) is running",
            "waiting": waiting,
        }
    return {"status": OK, "waiting": waiting}


def health() -> tuple[bool, dict[str, Any]]:
    """(healthy, the report /healthz answers)."""
    redis_check = check_redis()
    redis_ok = redis_check["status"] != FAILING
    checks = {
        "database": check_database(),
        "redis": redis_check,
        "workers": check_workers(broker_ok=redis_ok),
        "streams": check_streams(redis_ok=redis_ok),
        "arrivals": check_arrivals(redis_ok=redis_ok),
    }
    failing = [name for name, check in checks.items() if check["status"] == FAILING]
    return not failing, {"status": FAILING if failing else OK, "failing": failing, "checks": checks}
