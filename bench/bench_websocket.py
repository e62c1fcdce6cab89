"""Trade-to-browser latency: from just before a trade's commit to its `simulator:trade` frame at
N websocket clients (1, 10, 100), through a real daphne subprocess and channels-redis.

Not a test: returns figures (`python -m bench bench_websocket` prints them). Needs PostgreSQL
and Redis (DATABASE_URL, REDIS_URL; `./dev bench` starts both).

For each N: N sockets of one user (N browser tabs) authenticate with a session cookie; then,
one trade at a time, this process writes a trade (intent, decision, trade rows) in a
transaction, takes the clock just before the commit, and `broadcast_trade` runs on commit as in
the engine. Each client takes the clock when `recv()` hands it the frame. Latency = arrival -
pre-commit, every (trade, client) pair; p50 and p99. The next trade waits for the last client,
so a frame never queues behind the previous one.

Reference, same run, same loop: a raw Redis PUBLISH of a payload of the same size from the
producing thread to N SUBSCRIBE connections (redis-py), the floor for any Redis fan-out.

The clients share this process's one event loop with each other, so at 100 clients the figure
includes reading 100 frames in one Python thread, as the reference does.

Run: .venv/bin/python -m bench bench_websocket
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench.common import (
    Daphne,
    figure,
    missing_services,
    percentile,
    setup_django,
    skipped,
    websocket_connect,
)

BENCH = "websocket"
CLIENT_COUNTS = (1, 10, 100)
TRADES = {1: 200, 10: 200, 100: 100}
WARM_UP_TRADES = 5
FRAME_TIMEOUT_S = 5.0
DEADLINE_PER_N_S = 60.0


class Arrivals:
    """Arrival clocks per message id, and a wake-up for whoever waits for all N of them."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[float]] = defaultdict(list)
        self.changed = asyncio.Event()

    def record(self, message_id: int, at: float) -> None:
        self.by_id[message_id].append(at)
        self.changed.set()

    async def wait_for(self, message_id: int, count: int, timeout_s: float) -> int:
        deadline = time.perf_counter() + timeout_s
        while len(self.by_id[message_id]) < count:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                break
        return len(self.by_id[message_id])


async def _measure(
    clients: int,
    trades: int,
    connect: Callable[[], Any],
    listen: Callable[[Any, Arrivals], Any],
    produce: Callable[[], tuple[int, float]],
    executor: ThreadPoolExecutor,
) -> dict[str, Any]:
    """Connect `clients` listeners, then produce messages one at a time and collect latencies."""
    loop = asyncio.get_running_loop()
    arrivals = Arrivals()
    sockets = [await connect() for _ in range(clients)]
    readers = [asyncio.create_task(listen(sock, arrivals)) for sock in sockets]
    latencies_ms: list[float] = []
    slowest_ms: list[float] = []
    lost = 0
    sent = 0
    try:
        deadline = time.perf_counter() + DEADLINE_PER_N_S
        for index in range(WARM_UP_TRADES + trades):
            if time.perf_counter() > deadline:
                break
            message_id, before_commit = await loop.run_in_executor(executor, produce)
            received = await arrivals.wait_for(message_id, clients, FRAME_TIMEOUT_S)
            if index < WARM_UP_TRADES:
                continue
            sent += 1
            lost += clients - received
            times = [(at - before_commit) * 1000 for at in arrivals.by_id.pop(message_id, [])]
            latencies_ms += times
            if times:
                slowest_ms.append(max(times))
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for sock in sockets:
            await sock.close()
    return {
        "sent": sent,
        "lost": lost,
        "p50": percentile(latencies_ms, 0.50),
        "p99": percentile(latencies_ms, 0.99),
        "last_client_p50": percentile(slowest_ms, 0.50),
    }


# --- through daphne and channels-redis --------------------------------------------------------


def _scene() -> tuple[Any, str]:
    """A user with a running run and a logged-in session (the cookie a browser would send)."""
    from django.conf import settings
    from django.test import Client

    from tests.accounts.factories import UserFactory
    from tests.simulator.surface_fixtures import make_run

    user = UserFactory(username=f"bench-ws-{time.time_ns()}")
    run = make_run(user, label="bench websocket")
    client = Client()
    client.force_login(user)
    return run, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _produce_trade(run) -> tuple[int, float]:
    """One trade committed and broadcast on commit, as the engine does. Runs in the producer thread."""
    from django.db import transaction
    from django.utils import timezone

    from simulator.engine.broadcast import broadcast_trade
    from tests.simulator.surface_fixtures import make_trade

    with transaction.atomic():
        trade = make_trade(run, executed_at=timezone.now())
        transaction.on_commit(lambda: broadcast_trade(trade))
        before_commit = time.perf_counter()
    return trade.pk, before_commit


async def _listen_websocket(sock: ClientConnection, arrivals: Arrivals) -> None:
    while True:
        payload = await sock.recv()
        at = time.perf_counter()
        frame = json.loads(payload)
        if frame.get("event") == "simulator:trade":
            arrivals.record(frame["data"]["id"], at)


def _websocket_figures(executor: ThreadPoolExecutor, run, cookie: str) -> dict[int, dict[str, Any]]:
    results = {}
    with Daphne() as server:

        async def connect() -> ClientConnection:
            return await websocket_connect(server.port, "/ws/simulator/", cookie=cookie)

        for clients in CLIENT_COUNTS:
            results[clients] = asyncio.run(
                _measure(
                    clients,
                    TRADES[clients],
                    connect,
                    _listen_websocket,
                    lambda: _produce_trade(run),
                    executor,
                )
            )
            print(f"  websocket, {clients} clients: {results[clients]}", flush=True)
    return results


# --- the reference: raw Redis PUBLISH / SUBSCRIBE ---------------------------------------------


def _payload_like_a_trade_frame(executor: ThreadPoolExecutor, run) -> str:
    from simulator.models import SimulatorTrade
    from simulator.presenters import trade_json

    trade = executor.submit(lambda: SimulatorTrade.objects.filter(run=run).order_by("-id").first()).result()
    return json.dumps({"event": "simulator:trade", "data": trade_json(trade)})


class RedisSubscriber:
    """One SUBSCRIBE connection; `close()` like the websocket client's, so `_measure` treats both alike."""

    def __init__(self, client, pubsub) -> None:
        self.client, self.pubsub = client, pubsub

    @classmethod
    async def connect(cls, url: str, channel: str) -> RedisSubscriber:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        pubsub = client.pubsub()
        await pubsub.subscribe(channel)
        await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
        return cls(client, pubsub)

    async def close(self) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()


async def _listen_redis(subscriber: RedisSubscriber, arrivals: Arrivals) -> None:
    async for message in subscriber.pubsub.listen():
        at = time.perf_counter()
        if message["type"] == "message":
            message_id, _, _ = message["data"].partition(b"|")
            arrivals.record(int(message_id), at)


def _redis_figures(executor: ThreadPoolExecutor, payload: str) -> dict[int, dict[str, Any]]:
    import redis

    url = os.environ["REDIS_URL"]
    channel = f"bench:ws:{time.time_ns()}"
    publisher = redis.Redis.from_url(url)
    message_ids = iter(range(1, 10**9))

    def publish() -> tuple[int, float]:
        message_id = next(message_ids)
        body = f"{message_id}|{payload}"
        before_publish = time.perf_counter()
        publisher.publish(channel, body)
        return message_id, before_publish

    async def connect() -> RedisSubscriber:
        return await RedisSubscriber.connect(url, channel)

    results = {}
    try:
        for clients in CLIENT_COUNTS:
            results[clients] = asyncio.run(
                _measure(clients, TRADES[clients], connect, _listen_redis, publish, executor)
            )
            print(f"  redis pub/sub, {clients} subscribers: {results[clients]}", flush=True)
    finally:
        publisher.close()
    return results


# --- entry points -----------------------------------------------------------------------------


def run() -> list[dict[str, Any]]:
    reason = missing_services()
    if reason:
        return skipped(BENCH, reason)
    setup_django()
    from django.db import connections

    from bench.common import migrate

    migrate()
    # One producer thread: its database connection lives as long as the benchmark.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-producer") as executor:
        try:
            run_row, cookie = executor.submit(_scene).result()
            websocket = _websocket_figures(executor, run_row, cookie)
            payload = _payload_like_a_trade_frame(executor, run_row)
            reference = _redis_figures(executor, payload)
        finally:
            executor.submit(connections.close_all).result()
    rows = []
    for clients in CLIENT_COUNTS:
        ws, ref = websocket[clients], reference[clients]
        noun = "client" if clients == 1 else "clients"
        for stat in ("p50", "p99"):
            rows.append(
                figure(
                    BENCH,
                    f"trade commit -> frame, {clients} {noun}, {stat}",
                    ws[stat],
                    "ms",
                    f"Redis PUBLISH -> SUBSCRIBE, {clients} subscriber{'s' * (clients > 1)}, {stat}",
                    ref[stat],
                    note=(
                        f"{ws['sent']} trades x {clients} = {ws['sent'] * clients} frames, {ws['lost']} lost; "
                        f"{len(payload)}-byte payload"
                        if stat == "p99"
                        else ""
                    ),
                )
            )
    return rows


def main() -> None:
    from bench.common import print_table

    print_table(run(), "bench_websocket")


if __name__ == "__main__":
    main()
