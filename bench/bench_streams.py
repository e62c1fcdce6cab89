"""Streaming market data: a book change at the venue to the trade at a browser, the age of the
books decisions use (streams vs REST polling), and how many feed messages one stream client
process keeps up with, books correct.

Not a test: returns figures (`python -m bench bench_streams` prints them). Parts 1 and 2 need
PostgreSQL and Redis (DATABASE_URL, REDIS_URL; `./dev bench` starts both); part 3 needs neither.

1. End to end. The exchange double with 100 pairs, in a process of its own (the venue is
   elsewhere), making the traffic itself; the ingest loop as `ingest_run --live` runs it
   (StreamSource -> IngestPipeline) in a process of its own, as docker-compose runs each ingest
   shard; the decision tasks on Redis to a real Celery worker (`celery -A config worker -Q
   celery,simulator -c 4` as docker-compose runs it), validating each decision with the books
   and market statuses the streams share and the balances it keeps (the double is asked over
   REST for whatever the streams do not vouch for); a real daphne; one
   logged-in user's websocket (/ws/simulator/) reading `simulator:trade`. Background: 10 book
   changes per second per pair that open nothing (a level below the best changes size). Every
   200 ms, on the next pair in turn, a change that opens an opportunity (the Polymarket NO ask
   drops 13 cents), reverted once its trade frame arrived (or after 5 s). The same for 15 s
   with the openings only, no background traffic.
   Sample: wall time of the change at the double -> the first `simulator:trade` frame of the
   intent it caused, at the socket. Beside it, the sum of its parts' floors, each measured in the
   same run with nothing else running: the websocket hop (a book change at the double -> its frame
   at a bare `websockets` client), the detector (IngestPipeline.on_update for one update that
   makes no intent, timed during the run), the commit (one intent row inserted and committed on
   PostgreSQL) and a Redis PUBLISH -> SUBSCRIBE. The stretch is also cut at its clocks: change ->
   intent committed (stream, detector, commit), intent committed -> the decision starts in the
   worker (Celery over Redis; the trade's `decided_at` is taken as the decision starts), decision
   start -> frame (validation calls to the double, the trade written, the broadcast, daphne).
   The worker's log gives each task's run time; the double counts the REST requests it answered.
2. Book age. For every trade written in part 1, and in a second stretch with the same traffic
   where the books come from REST polling instead (LiveSource, batch calls, 1 s interval): the
   decision's `decided_at` minus the `received_ts_ms` of each book its intent was computed from
   (ExecutionIntent.books keeps them, one per leg). Median and p99 over all legs. Beside it: the
   same books' age at the intent's commit, and change at the double -> intent committed, the
   delay REST polling adds before a decision exists at all.
3. Messages per second. A bench-local `websockets` server in its own process sends a generated
   Kalshi (then Polymarket) feed for 100 pairs as fast as it can: snapshots, then single-level
   deltas, every frame's JSON text built beforehand (Kalshi's only the sequence number filled in).
   The product's stream client, with a consumer thread taking the changed books as StreamSource
   does (their Books built, their recording lines not), applies them; its books are compared
   with the truth at the end, then the server drops the connection and the client's books after
   its resnapshot (a new truth) are compared again.
   Reference: a bare `websockets` client receiving the same frames over the same hop, unparsed.
   The Kalshi run is an hour of 100 pairs at one change per second each (360,000 deltas), replayed
   at full speed; the process's RSS after the snapshots and at the end. Beside each rate, the
   client's own steps in CPU time per message on the same frames without a socket.
   (The exchange double's own feed server manages about 18,000 frames/s: it would be the limit,
   hence a server of the bench's own.)

Run: .venv/bin/python -m bench bench_streams (BENCH_STREAMS_PARTS=1 runs part 1 alone, without
part 2's REST polling stretch; =3 part 3 alone; default 1,2,3).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    Daphne,
    figure,
    missing_services,
    percentile,
    setup_django,
    websocket_connect,
)

BENCH = "streams"
PAIRS = 100
BACKGROUND_PER_PAIR_S = 10
OPEN_EVERY_S = 0.2
STRETCH_S = 30.0
QUIET_S = 15.0
HOLD_MAX_S = 5.0
FLOOR_SAMPLES = 200
KEY_ID = "bench-streams-key"
PROBE_TOKEN = "990001"
HOUR_DELTAS = PAIRS * 3600  # an hour at one change per second per pair
POLYMARKET_DELTAS = 200_000


# --- the scene: 100 pairs at the double, a user with a running run ------------------------------


def _pairs_and_scenario():
    """100 pairs whose Kalshi YES bid is below 50 cents (so a 13-cent drop of the Polymarket NO
    ask stays a valid price), plus a probe token for the websocket hop."""
    from exchanges.double import PolymarketBook
    from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
    from exchanges.testing import paired_markets_scenario
    from ingest.detector import PairSpec

    scenario, instruments = paired_markets_scenario(2 * PAIRS)
    chosen = [(t, y, n) for t, y, n in instruments if int(t.rsplit("-", 1)[1]) % 80 < 40][:PAIRS]
    pairs = [
        PairSpec(
            f"BENCH-{ticker}", ticker, yes, no, kalshi_taker_schedule(ticker), polymarket_taker_schedule()
        )
        for ticker, yes, no in chosen
    ]
    scenario.polymarket_books[PROBE_TOKEN] = PolymarketBook(
        token_id=PROBE_TOKEN,
        market="0x" + "f" * 64,
        bids=[{"price": "0.40", "size": "10"}],
        asks=[{"price": "0.45", "size": "10"}],
    )
    return scenario, pairs


def _cents(pair) -> int:
    return 10 + int(pair.kalshi_ticker.rsplit("-", 1)[1]) % 80


def _scene(double, pairs):
    """A user with Kalshi and Polymarket keys at the double, a running run watching every pair,
    and the session cookie a browser would send."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import UserProfile
    from accounts.services import set_secret
    from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY
    from ingest.pairs import ensure_market_pairs
    from simulator.services import start_run

    user = get_user_model().objects.create(username=f"bench-streams-{time.time_ns()}")
    UserProfile.objects.update_or_create(
        user=user,
        defaults={
            "min_net_edge_cents": Decimal("1"),
            "max_leg_usd": Decimal("100"),
            "daily_cap_usd": Decimal("10000000"),
        },
    )
    set_secret(
        user=user,
        exchange="kalshi",
        api_key=KEY_ID,
        extra={"private_key": double.kalshi_private_pem, "host": double.kalshi_host},
    )
    set_secret(
        user=user,
        exchange="polymarket",
        extra={"private_key": TEST_POLYMARKET_PRIVATE_KEY, "host": double.polymarket_host},
    )
    ensure_market_pairs(specs=pairs)
    run = start_run(user=user, starting_usd="10000000", label="bench streams")[0]
    client = Client()
    client.force_login(user)
    return user, run, f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class CeleryWorker:
    """The simulator's worker as docker-compose runs it (`-Q celery,simulator -c 4`), ready once
    it logs that it is."""

    def __init__(self) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="bench-streams-worker-", suffix=".log")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> CeleryWorker:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "celery,simulator",
                "-c",
                "4",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env={**os.environ, "DJANGO_DEBUG": "0"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while " ready." not in Path(self._log.name).read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(
                    f"the Celery worker did not start: {Path(self._log.name).read_text()[-2000:]}"
                )
            time.sleep(0.2)
        return self

    def task_seconds(self) -> dict[str, list[float]]:
        """How long each task ran, by task name, from the worker's own log lines ("Task
        simulator.tasks.decide_intent_task[...] succeeded in 0.021s: ...") so far."""
        runs: dict[str, list[float]] = {}
        for match in re.finditer(
            r"Task ([\w.]+)\[[^\]]+\] succeeded in ([\d.]+)s", Path(self._log.name).read_text()
        ):
            runs.setdefault(match[1].rsplit(".", 1)[-1], []).append(float(match[2]))
        return runs

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


# --- parts 1 and 2: one stretch of traffic, the books from streams or from REST ----------------


class Stretch:
    """What one stretch of traffic recorded (wall clock, seconds)."""

    def __init__(self) -> None:
        self.openings: dict[str, list[float]] = {}  # opportunity key -> times of its opening changes
        self.committed: dict[int, tuple[str, float]] = {}  # intent id -> (key, commit time)
        self.frames: dict[int, float] = {}  # intent id -> first trade frame at the socket
        self.frame_keys: dict[str, float] = {}  # key -> last trade frame (to end a hold)
        self.detector_ms: list[float] = []
        self.background = 0
        self.background_s = 0.0
        self.seconds = 0.0
        self.rest_calls: dict = {}  # (venue, path) -> requests the double answered in the stretch
        self.task_s: dict[str, list[float]] = {}  # task name -> run times in the stretch
        self.updates = 0


def _opening(cents: int) -> tuple[list, list]:
    return [[f"0.{80 - cents:02d}", "50"]], [[f"0.{85 - cents:02d}", "40"]]


def _usual(cents: int) -> tuple[list, list]:
    return [[f"0.{96 - cents:02d}", "50"]], [[f"0.{98 - cents:02d}", "40"], [f"0.{99 - cents:02d}", "9"]]


def _background(double, pairs, open_keys: set[str], stop: threading.Event, counts: dict) -> None:
    """10 changes per second per pair that open nothing: the size of a level below the best
    (Kalshi's second YES bid, or the Polymarket YES token's second ask), in turn."""
    per_tick, tick_s = PAIRS * BACKGROUND_PER_PAIR_S // 100, 0.01
    index = 0
    started = next_tick = time.monotonic()
    while not stop.is_set():
        for _ in range(per_tick):
            pair = pairs[index % len(pairs)]
            turn = index // len(pairs)
            index += 1
            if pair.opportunity_key in open_keys:
                continue
            cents = _cents(pair)
            if turn % 2:
                double.state.set_kalshi_book(
                    pair.kalshi_ticker,
                    yes_bids=[[f"0.{cents:02d}", "10"], [f"0.{cents - 1:02d}", str(25 + turn % 7)]],
                    no_bids=[[f"0.{97 - cents:02d}", "12"]],
                )
            else:
                double.state.set_polymarket_book(
                    pair.poly_yes_token,
                    [[f"0.{cents:02d}", "50"]],
                    [[f"0.{cents + 2:02d}", "40"], [f"0.{cents + 3:02d}", str(9 + turn % 7)]],
                )
            counts["changes"] += 1
        next_tick += tick_s
        stop.wait(max(0.0, next_tick - time.monotonic()))
    counts["seconds"] = time.monotonic() - started


def _double_main(conn) -> None:
    """The exchange double in a process of its own (as the venue is elsewhere), driven over
    `conn`: it makes the background traffic, and the opening changes when told, answering each
    with the wall time just before the change."""
    setup_django()
    from exchanges.double import ExchangeDouble
    from exchanges.testing import kalshi_key_pair

    scenario, pairs = _pairs_and_scenario()
    open_keys: set[str] = set()
    stop = threading.Event()
    counts = {"changes": 0, "seconds": 0.0}
    background: threading.Thread | None = None
    with ExchangeDouble(scenario) as double:
        double.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1], balance_cents=10**12)
        conn.send(
            {
                "base_url": double.base_url,
                "kalshi_host": double.kalshi_host,
                "polymarket_host": double.polymarket_host,
                "kalshi_ws_url": double.kalshi_ws_url,
                "polymarket_ws_url": double.polymarket_ws_url,
                "kalshi_private_pem": kalshi_key_pair()[0],  # generated once per process: this one's
            }
        )
        while True:
            command, argument = conn.recv()
            if command == "exit":
                break
            if command == "background":
                if argument:
                    stop.clear()
                    counts.update(changes=0, seconds=0.0)
                    background = threading.Thread(
                        target=_background, args=(double, pairs, open_keys, stop, counts), daemon=True
                    )
                    background.start()
                elif background is not None:
                    stop.set()
                    background.join(10)
                conn.send(dict(counts))
            elif command in ("open", "revert"):
                pair = pairs[argument]
                if command == "open":
                    open_keys.add(pair.opportunity_key)
                at = time.time()
                double.state.set_polymarket_book(
                    pair.poly_no_token, *(_opening if command == "open" else _usual)(_cents(pair))
                )
                if command == "revert":
                    open_keys.discard(pair.opportunity_key)
                conn.send(at)
            elif command == "calls":  # REST requests since the last ask, by (venue, path)
                conn.send(dict(double.call_counts))
                double.reset_call_counts()
            elif command == "probe":
                at = time.time()
                double.state.set_polymarket_book(
                    PROBE_TOKEN, [["0.40", "10"]], [["0.45", str(11 + argument % 2)]]
                )
                conn.send(at)
    conn.close()


class DoubleProcess:
    """The bench's handle on `_double_main`: its URLs, and `call(command, argument)`."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_double_main, args=(child,), daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> DoubleProcess:
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the exchange double's process did not start")
        urls = self._conn.recv()
        for name, value in urls.items():
            setattr(self, name, value)
        return self

    def call(self, command: str, argument: Any = None) -> Any:
        with self._lock:
            self._conn.send((command, argument))
            return self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(("exit", None))
        self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)


def _ingest_main(conn, kind: str, hosts: dict[str, str], kalshi_private_pem: str) -> None:
    """The ingest process (`ingest_run --live` as docker-compose runs it: a process of its own):
    its source (streams, or REST polling for part 2) -> IngestPipeline, timing each update that
    makes no intent and the commit of each intent, until told to stop over `conn`; then it sends
    back what it recorded."""
    os.environ["DJANGO_DEBUG"] = "0"  # as deployed (and as the worker and daphne run here)
    setup_django()
    from django.db import connections

    from ingest.services import IngestPipeline
    from ingest.sources import LiveHosts, LiveSource
    from ingest.streams import KalshiStreamKey, StreamSource
    from simulator import intake

    _, pairs = _pairs_and_scenario()
    live_hosts = LiveHosts.of_double(
        hosts["base_url"], kalshi_ws=hosts["kalshi_ws"], polymarket_ws=hosts["polymarket_ws"]
    )
    if kind == "rest":
        source = LiveSource(pairs, hosts=live_hosts, poll_interval_s=1.0, batch_books=True)
    else:
        source = StreamSource(pairs, hosts=live_hosts, kalshi_key=KalshiStreamKey(KEY_ID, kalshi_private_pem))
    committed: dict[int, tuple[str, float]] = {}
    detector_ms: list[float] = []
    updates = 0

    def dispatch(intent):
        committed[intent.pk] = (intent.opportunity_key, time.time())
        return intake.intent_arrived(intent)

    def stop_when_told() -> None:
        conn.recv()
        source.stop()

    try:
        pipeline = IngestPipeline(pairs, dispatch_intent=dispatch)
        pipeline.restore()
        threading.Thread(target=stop_when_told, daemon=True).start()
        conn.send("ready")
        for update in source:
            intents = pipeline.stats.intents
            began = time.perf_counter()
            pipeline.on_update(update)
            took_ms = (time.perf_counter() - began) * 1000
            if pipeline.stats.intents == intents:
                detector_ms.append(took_ms)
            updates += 1
    finally:
        connections.close_all()
        conn.send({"committed": committed, "detector_ms": detector_ms, "updates": updates})
        conn.close()


class IngestProcess:
    """`_ingest_main` in a spawned process; `stop()` returns what it recorded."""

    def __init__(self, double, kind: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        hosts = {
            "base_url": double.base_url,
            "kalshi_ws": double.kalshi_ws_url,
            "polymarket_ws": double.polymarket_ws_url,
        }
        self._process = context.Process(
            target=_ingest_main, args=(child, kind, hosts, double.kalshi_private_pem), daemon=True
        )

    def start(self) -> None:
        self._process.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            raise RuntimeError("the ingest process did not start")

    def stop(self) -> dict[str, Any]:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        recorded = self._conn.recv() if self._conn.poll(60) else {}
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)
        return recorded


async def _listen(sock, stretch: Stretch) -> None:
    while True:
        payload = await sock.recv()
        at = time.time()
        frame = json.loads(payload)
        if frame.get("event") == "simulator:trade":
            data = frame["data"]
            stretch.frames.setdefault(data["intent_id"], at)
            stretch.frame_keys[data["opportunity_key"]] = at


async def _open_and_revert(
    double, index: int, key: str, open_keys: set[str], stretch: Stretch, hold_s: float
) -> None:
    open_keys.add(key)
    try:
        at = double.call("open", index)
        stretch.openings.setdefault(key, []).append(at)
        deadline = time.monotonic() + hold_s
        while stretch.frame_keys.get(key, 0) < at and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        double.call("revert", index)
        await asyncio.sleep(0.3)  # the span closes before the pair opens again
    finally:
        open_keys.discard(key)


async def _stretch(
    double, pairs, kind: str, port: int, cookie: str, rotation: list[int], *, background: bool, seconds: float
) -> Stretch:
    stretch = Stretch()
    open_keys: set[str] = set()
    sock = await websocket_connect(port, "/ws/simulator/", cookie=cookie)
    listener = asyncio.create_task(_listen(sock, stretch))
    ingest = IngestProcess(double, kind)
    holds: list[asyncio.Task] = []
    background_on = False
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, ingest.start)
        await asyncio.sleep(2.0)  # every book in, spans of the start closed
        if background:
            double.call("background", True)
            background_on = True
            await asyncio.sleep(1.0)
        double.call("calls")
        began = time.monotonic()
        ends = began + seconds
        next_open = time.monotonic()
        while time.monotonic() < ends:
            index = rotation[0] % len(pairs)
            rotation[0] += 1
            key = pairs[index].opportunity_key
            if key not in open_keys:
                holds.append(
                    asyncio.create_task(_open_and_revert(double, index, key, open_keys, stretch, HOLD_MAX_S))
                )
            next_open += OPEN_EVERY_S
            await asyncio.sleep(max(0.0, next_open - time.monotonic()))
        await asyncio.gather(*holds)
        await asyncio.sleep(1.0)  # the last frames
        stretch.seconds = time.monotonic() - began
        stretch.rest_calls = double.call("calls")
    finally:
        if background_on:
            counts = double.call("background", False)
            stretch.background, stretch.background_s = counts["changes"], counts["seconds"]
        recorded = await loop.run_in_executor(None, ingest.stop)
        stretch.committed = recorded.get("committed", {})
        stretch.detector_ms = recorded.get("detector_ms", [])
        stretch.updates = recorded.get("updates", 0)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await sock.close()
    return stretch


def _decision_times(run_id: int, intent_ids: list[int]) -> dict[int, float]:
    """intent id -> its trade's decided_at."""
    from simulator.models import SimulatorTrade

    rows = SimulatorTrade.objects.filter(run_id=run_id, intent_id__in=intent_ids).values_list(
        "intent_id", "decided_at"
    )
    return {intent_id: decided.timestamp() for intent_id, decided in rows}


def _intent_books(intent_ids: list[int]) -> dict[int, list[dict]]:
    """intent id -> the books its edge was computed from (one per leg, with receive times)."""
    from ingest.models import ExecutionIntent

    return dict(ExecutionIntent.objects.filter(pk__in=intent_ids).values_list("pk", "books"))


def _analyse(stretch: Stretch, run_id: int) -> dict[str, Any]:
    decided = _decision_times(run_id, list(stretch.committed))
    books = _intent_books(list(stretch.committed))
    end_to_end, to_commit, to_decision, decision_to_frame, ages, ages_at_intent = [], [], [], [], [], []
    for intent_id, (key, committed_at) in stretch.committed.items():
        changes = [t for t in stretch.openings.get(key, []) if t <= committed_at]
        if not changes:
            continue  # a span of the start, not one of the changes
        changed_at = changes[-1]
        to_commit.append((committed_at - changed_at) * 1000)
        received_ms = [book["received_ts_ms"] for book in books.get(intent_id, [])]
        ages_at_intent += [committed_at * 1000 - ms for ms in received_ms]
        frame_at = stretch.frames.get(intent_id)
        if frame_at is not None:
            end_to_end.append((frame_at - changed_at) * 1000)
        if intent_id in decided:
            decided_at = decided[intent_id]
            to_decision.append((decided_at - committed_at) * 1000)
            if frame_at is not None:
                decision_to_frame.append((frame_at - decided_at) * 1000)
            ages += [decided_at * 1000 - ms for ms in received_ms]
    openings = sum(len(times) for times in stretch.openings.values())
    return {
        "openings": openings,
        "intents": len(to_commit),
        "trades": len(decision_to_frame),
        "end_to_end": end_to_end,
        "to_commit": to_commit,
        "to_decision": to_decision,
        "decision_to_frame": decision_to_frame,
        "ages": ages,
        "ages_at_intent": ages_at_intent,
        "detector": stretch.detector_ms,
        "background_per_s": stretch.background / stretch.background_s if stretch.background_s else 0,
        "updates": stretch.updates,
        "decide_ms": [s * 1000 for s in stretch.task_s.get("decide_intent_task", [])],
        "tasks": {task: len(runs) for task, runs in stretch.task_s.items()},
        "rest_calls_per_s": {
            venue: sum(n for (v, _), n in stretch.rest_calls.items() if v == venue) / stretch.seconds
            for venue in ("kalshi", "polymarket")
        }
        if stretch.seconds
        else {},
    }


# --- the floors --------------------------------------------------------------------------------


async def _websocket_hop(double) -> list[float]:
    """A book change at the double -> its frame at a bare client of the double's Polymarket feed."""
    from websockets.asyncio.client import connect

    samples = []
    async with connect(double.polymarket_ws_url, compression=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"assets_ids": [PROBE_TOKEN], "type": "market"}))
        await asyncio.wait_for(ws.recv(), 10)  # the book
        for n in range(FLOOR_SAMPLES):
            at = double.call("probe", n)
            await asyncio.wait_for(ws.recv(), 5)
            samples.append((time.time() - at) * 1000)
    return samples


def _commit_floor(user, pair_id: int) -> list[float]:
    """One intent row inserted and committed, as the pipeline writes it."""
    from django.db import transaction
    from django.utils import timezone

    from ingest.models import ExecutionIntent

    samples = []
    for _ in range(FLOOR_SAMPLES):
        began = time.perf_counter()
        with transaction.atomic():
            ExecutionIntent.objects.bulk_create(
                [
                    ExecutionIntent(
                        user=user,
                        pair_id=pair_id,
                        opportunity_key="BENCH-FLOOR",
                        direction="kalshi_yes_poly_no",
                        net_edge_cents=Decimal("3.2"),
                        size=Decimal("10"),
                        fees_usd=Decimal("0.18"),
                        cost_usd=Decimal("9.50"),
                        legs=[],
                        books=[],
                        signal_at=timezone.now(),
                    )
                ]
            )
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def _redis_floor() -> list[float]:
    import redis

    url = os.environ["REDIS_URL"]
    channel = f"bench:streams:{time.time_ns()}"
    publisher, subscriber = redis.Redis.from_url(url), redis.Redis.from_url(url)
    pubsub = subscriber.pubsub()
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=1.0)
    samples = []
    try:
        for n in range(FLOOR_SAMPLES):
            began = time.perf_counter()
            publisher.publish(channel, f"{n}|" + "x" * 900)
            message = pubsub.get_message(timeout=5.0)
            while message is not None and message["type"] != "message":
                message = pubsub.get_message(timeout=5.0)
            samples.append((time.perf_counter() - began) * 1000)
    finally:
        pubsub.close()
        publisher.close()
        subscriber.close()
    return samples


def _end_to_end(*, with_rest: bool) -> dict[str, Any]:
    from django.db import connections

    from bench.common import migrate
    from ingest.models import MarketPair
    from simulator.services import stop_run

    migrate()
    _, pairs = _pairs_and_scenario()
    rotation = [0]
    with DoubleProcess() as double:
        user, run, cookie = _scene(double, pairs)
        connections.close_all()  # the worker, daphne and the ingest process open their own
        with CeleryWorker() as worker, Daphne() as server:
            stretches = {}
            for name, background, seconds in (
                ("quiet", False, QUIET_S),
                ("streams", True, STRETCH_S),
                *([("rest", True, STRETCH_S)] if with_rest else []),
            ):
                done = {task: len(runs) for task, runs in worker.task_seconds().items()}
                stretches[name] = asyncio.run(
                    _stretch(
                        double,
                        pairs,
                        "rest" if name == "rest" else "streams",
                        server.port,
                        cookie,
                        rotation,
                        background=background,
                        seconds=seconds,
                    )
                )
                stretches[name].task_s = {
                    task: runs[done.get(task, 0) :] for task, runs in worker.task_seconds().items()
                }
            hop = asyncio.run(_websocket_hop(double))
    pair_id = MarketPair.objects.get(opportunity_key=pairs[0].opportunity_key).pk
    result = {
        **{name: _analyse(stretch, run.pk) for name, stretch in stretches.items()},
        "hop": hop,
        "commit": _commit_floor(user, pair_id),
        "publish": _redis_floor(),
    }
    stop_run(user=user, run_id=run.pk)
    return result


def _per_s(calls: dict[str, float]) -> str:
    return ", ".join(f"{venue} {rate:.1f}" for venue, rate in calls.items())


def _part_rows(measured: dict[str, Any]) -> list[dict[str, Any]]:
    streams, rest, quiet = measured["streams"], measured.get("rest"), measured["quiet"]
    parts = {
        "websocket hop": measured["hop"],
        "detector": streams["detector"],
        "commit": measured["commit"],
        "Redis publish": measured["publish"],
    }
    rows = []
    floor_sums = {}
    for stat, fraction in (("p50", 0.5), ("p99", 0.99)):
        floors = {name: percentile(values, fraction) for name, values in parts.items()}
        total = floor_sums[stat] = sum(v for v in floors.values() if v is not None)
        rows.append(
            figure(
                BENCH,
                f"book change at the double -> trade frame at a browser, 100 pairs, {stat}",
                percentile(streams["end_to_end"], fraction),
                "ms",
                f"sum of the parts' floors, {stat}",
                total,
                note=(
                    "target p99 < 50 ms; "
                    + ", ".join(f"{name} {value:.2f}" for name, value in floors.items() if value is not None)
                    + f" ms; {streams['openings']} opening changes, {streams['intents']} intents,"
                    f" {len(streams['end_to_end'])} frames; background {streams['background_per_s']:,.0f}"
                    f" changes/s, {streams['updates']:,} updates into the pipeline"
                    if stat == "p99"
                    else ""
                ),
            )
        )
    for stat, fraction in (("p50", 0.5), ("p99", 0.99)):
        rows.append(
            figure(
                BENCH,
                f"the same without background traffic (openings only), {stat}",
                percentile(quiet["end_to_end"], fraction),
                "ms",
                f"sum of the parts' floors, {stat}",
                floor_sums[stat],
                note=f"{quiet['intents']} intents, {len(quiet['end_to_end'])} frames"
                if stat == "p99"
                else "",
            )
        )
    for name, key in (
        ("change at the double -> intent committed", "to_commit"),
        ("intent committed -> decision starts (Celery on Redis)", "to_decision"),
        ("decision starts -> trade frame (validation, write, broadcast)", "decision_to_frame"),
        ("decision task run time (the worker's log)", "decide_ms"),
    ):
        for stat, fraction in (("p50", 0.5), ("p99", 0.99)):
            rows.append(
                figure(
                    BENCH,
                    f"{name}, {stat}",
                    percentile(streams[key], fraction),
                    "ms",
                    f"the same without background traffic, {stat}",
                    percentile(quiet[key], fraction),
                    note=(
                        f"tasks run {streams['tasks']} / {quiet['tasks']}; REST requests the double answered per s"
                        f" {_per_s(streams['rest_calls_per_s'])} / {_per_s(quiet['rest_calls_per_s'])}"
                        if key == "decide_ms" and stat == "p99"
                        else ""
                    ),
                )
            )
    if rest is None:  # part 2 not run
        return rows
    for stat, fraction in (("median", 0.5), ("p99", 0.99)):
        rows.append(
            figure(
                BENCH,
                f"age of the books a decision used, streams, {stat}",
                percentile(streams["ages"], fraction),
                "ms",
                f"REST polling, batch calls every 1 s, {stat}",
                percentile(rest["ages"], fraction),
                note=(
                    f"target median < 50 ms streaming; decided_at - received_ts_ms of each leg's book;"
                    f" {len(streams['ages'])} / {len(rest['ages'])} legs"
                    if stat == "p99"
                    else ""
                ),
            )
        )
        rows.append(
            figure(
                BENCH,
                f"age of the books at the intent's commit, streams, {stat}",
                percentile(streams["ages_at_intent"], fraction),
                "ms",
                f"REST polling, batch calls every 1 s, {stat}",
                percentile(rest["ages_at_intent"], fraction),
                note="intent committed (ingest's clock) - received_ts_ms of each leg's book"
                if stat == "p99"
                else "",
            )
        )
        rows.append(
            figure(
                BENCH,
                f"change at the double -> intent committed, streams, {stat}",
                percentile(streams["to_commit"], fraction),
                "ms",
                f"REST polling, batch calls every 1 s, {stat}",
                percentile(rest["to_commit"], fraction),
                note=f"{streams['intents']} / {rest['intents']} intents" if stat == "p99" else "",
            )
        )
    return rows


# --- part 3: messages per second through one stream client ---------------------------------------


def _feed(venue: str, deltas: int) -> dict[str, Any]:
    """The generated feed: initial and final books (the truth), snapshot frames, delta frames
    (Kalshi: the text before and after the sequence number), and the books after a resnapshot."""
    from exchanges.double import feed_messages as fm
    from exchanges.streams.l2 import polymarket_book_hash
    from exchanges.testing import paired_markets_scenario

    scenario, instruments = paired_markets_scenario(PAIRS)
    if venue == "kalshi":
        books = {t: fm.kalshi_book(m) for t, m in scenario.kalshi_markets.items()}
        up, down = [], []
        for ticker, (yes, no) in books.items():
            second = sorted(yes)[0]
            raised = ({**yes, second: yes[second] + 7}, no)
            for steps, old, new in ((up, (yes, no), raised), (down, raised, (yes, no))):
                (msg,) = fm.kalshi_deltas(ticker, old, new, 1_760_000_000_000)
                text = json.dumps({"type": "orderbook_delta", "sid": 1, "seq": 999999999, "msg": msg})
                steps.append(tuple(text.split("999999999")))
        cycle = up + down
        final = {t: ({**yes, sorted(yes)[0]: yes[sorted(yes)[0]] + 7}, no) for t, (yes, no) in books.items()}
        snapshots = [("orderbook_snapshot", fm.kalshi_snapshot(t, b)) for t, b in books.items()]
        after = {
            t: ({**yes, sorted(yes)[-1]: yes[sorted(yes)[-1]] + 3}, no) for t, (yes, no) in final.items()
        }
        resnapshots = [("orderbook_snapshot", fm.kalshi_snapshot(t, b)) for t, b in after.items()]
    else:
        tokens = scenario.polymarket_books
        books = {token: fm.polymarket_ladders(book) for token, book in tokens.items()}
        up, down = [], []
        for token, (bids, asks) in books.items():
            deep = max(asks)
            raised = (bids, {**asks, deep: asks[deep] + 7})
            for steps, old, new in ((up, (bids, asks), raised), (down, raised, (bids, asks))):
                event = fm.polymarket_price_change(tokens[token], new, fm.polymarket_changes(old, new))
                steps.append(json.dumps(event))
        cycle = up + down
        final = {t: (bids, {**asks, max(asks): asks[max(asks)] + 7}) for t, (bids, asks) in books.items()}
        snapshots = [json.dumps(fm.polymarket_book_event(book)) for book in tokens.values()]

        def shifted(token: str) -> str:
            bids, asks = final[token]
            event = {
                **fm.polymarket_book_event(tokens[token]),
                "bids": [{"price": str(p), "size": str(s)} for p, s in sorted(bids.items())],
                "asks": [
                    {"price": str(p), "size": str(s + 1)} for p, s in sorted(asks.items(), reverse=True)
                ],
            }
            return json.dumps({**event, "hash": polymarket_book_hash(event)})  # the venue hashes its book

        after = {t: (bids, {p: s + 1 for p, s in asks.items()}) for t, (bids, asks) in final.items()}
        resnapshots = [shifted(token) for token in tokens]
    # Whole cycles, then the first half once more: every book ends changed.
    count = (deltas // len(cycle)) * len(cycle) + len(up)
    return {
        "venue": venue,
        "instruments": list(books),
        "sides": {token: side for _, yes, no in instruments for token, side in ((yes, "yes"), (no, "no"))},
        "cycle": cycle,
        "count": count,
        "snapshots": snapshots,
        "resnapshots": resnapshots,
        "final": final,
        "after": after,
    }


def _serve_feed(venue: str, deltas: int, ports: Any, drop: Any) -> None:
    """The bench's feed server (its own process): on /bare, every frame at once; otherwise the
    venue's handshake, every frame, then (on `drop`) a closed connection and, on the next one,
    the resnapshot's books."""
    from websockets.asyncio.server import serve

    feed = _feed(venue, deltas)
    connections = [0]

    def kalshi_snapshot(sid_seq: int, msg: dict) -> str:
        return json.dumps({"type": "orderbook_snapshot", "sid": 1, "seq": sid_seq, "msg": msg})

    async def drain(ws) -> None:
        async for message in ws:
            if message == "PING":
                await ws.send("PONG")

    async def send_all(ws, snapshots: list) -> None:
        if venue == "kalshi":
            for seq, (_, msg) in enumerate(snapshots, 1):
                await ws.send(kalshi_snapshot(seq, msg))
            seq = len(snapshots)
            cycle, n = feed["cycle"], len(feed["cycle"])
            for i in range(feed["count"]):
                before, after = cycle[i % n]
                seq += 1
                await ws.send(f"{before}{seq}{after}")
        else:
            for text in snapshots:
                await ws.send(text)
            cycle, n = feed["cycle"], len(feed["cycle"])
            for i in range(feed["count"]):
                await ws.send(cycle[i % n])

    async def handler(ws) -> None:
        if ws.request.path == "/bare":
            await send_all(ws, feed["snapshots"])
            await ws.wait_closed()
            return
        connections[0] += 1
        first = connections[0] == 1
        if venue == "kalshi":
            for _ in range(2):  # lifecycle, then books
                command = json.loads(await ws.recv())
                channel = command["params"]["channels"][0]
                sid = 1 if channel == "orderbook_delta" else 2
                await ws.send(
                    json.dumps(
                        {"id": command["id"], "type": "subscribed", "msg": {"channel": channel, "sid": sid}}
                    )
                )
        else:
            wanted = set(feed["instruments"])
            while wanted:
                wanted -= set(json.loads(await ws.recv()).get("assets_ids", []))
        reader = asyncio.create_task(drain(ws))
        if first:
            await send_all(ws, feed["snapshots"])
            await asyncio.get_running_loop().run_in_executor(None, drop.wait)
            await ws.close()
        else:
            snapshots = feed["resnapshots"]
            if venue == "kalshi":
                for seq, (_, msg) in enumerate(snapshots, 1):
                    await ws.send(kalshi_snapshot(seq, msg))
            else:
                for text in snapshots:
                    await ws.send(text)
            await ws.wait_closed()
        reader.cancel()

    async def main() -> None:
        async with serve(
            handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None
        ) as server:
            ports.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _books_equal(client, truth: dict) -> bool:
    for instrument, (first, second) in truth.items():
        ladders = client.ladders(instrument)
        if ladders is None or dict(ladders[0]) != first or dict(ladders[1]) != second:
            return False
    return True


def _bare(port: int, frames: int) -> float:
    """Frames per second a bare `websockets` client receives, unparsed."""
    from websockets.asyncio.client import connect

    async def receive() -> float:
        async with connect(
            f"ws://127.0.0.1:{port}/bare", compression=None, max_size=None, ping_interval=None
        ) as ws:
            await ws.recv()
            began, count = time.perf_counter(), 1
            while count < frames:
                await ws.recv()
                count += 1
            return (count - 1) / (time.perf_counter() - began)

    return asyncio.run(receive())


def _throughput(venue: str, deltas: int) -> dict[str, Any]:
    from exchanges.streams.connection import StreamSettings
    from exchanges.streams.kalshi import KalshiStreamClient
    from exchanges.streams.polymarket import PolymarketStreamClient
    from exchanges.testing import kalshi_key_pair

    feed = _feed(venue, deltas)
    context = multiprocessing.get_context("spawn")
    ports, drop = context.Queue(), context.Event()
    server = context.Process(target=_serve_feed, args=(venue, deltas, ports, drop), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=60)
        frames = len(feed["snapshots"]) + feed["count"]
        bare_per_s = _bare(port, frames)
        settings = StreamSettings(backoff_base_s=0.05, backoff_max_s=0.2)
        if venue == "kalshi":
            client = KalshiStreamClient(
                f"ws://127.0.0.1:{port}/trade-api/ws/v2",
                api_key_id=KEY_ID,
                private_key_pem=kalshi_key_pair()[0],
                settings=settings,
            )
            client.set_instruments(dict.fromkeys(feed["instruments"], "yes"))
            replies = 2
        else:
            client = PolymarketStreamClient(f"ws://127.0.0.1:{port}/ws/market", settings=settings)
            client.set_instruments({i: feed["sides"].get(i, "yes") for i in feed["instruments"]})
            replies = 0
        stop = threading.Event()
        handed = [0]

        def consume() -> None:
            # As StreamSource takes the changed books: each one's `Book`s built (the detector
            # reads them); its recording line not (built only when something records).
            while not stop.is_set():
                for book in client.get(0.05):
                    book.books  # noqa: B018 (built on first reading)
                    handed[0] += 1

        consumer = threading.Thread(target=consume, daemon=True)
        snapshots_in = replies + len(feed["snapshots"])
        total = snapshots_in + feed["count"]
        deadline = time.monotonic() + 120
        client.start()
        consumer.start()
        try:
            while client.counters["messages"] < snapshots_in and time.monotonic() < deadline:
                time.sleep(0.002)
            began, rss_start = time.perf_counter(), _rss_kb()
            at = client.counters["messages"]
            while client.counters["messages"] < total and time.monotonic() < deadline:
                time.sleep(0.02)
            per_s = (client.counters["messages"] - at) / (time.perf_counter() - began)
            rss_end = _rss_kb()
            correct_end = _books_equal(client, feed["final"])
            drop.set()
            resnapshot_deadline = time.monotonic() + 15
            correct_after = False
            while time.monotonic() < resnapshot_deadline:
                if client.counters["reconnects"] and _books_equal(client, feed["after"]):
                    correct_after = True
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            client.stop()
            consumer.join(5)
        return {
            "per_s": per_s,
            "bare_per_s": bare_per_s,
            "messages": feed["count"],
            "complete": client.counters["messages"] >= total,
            "correct_end": correct_end,
            "correct_after": correct_after,
            "handed": handed[0],
            "rss_start_mb": rss_start / 1024,
            "rss_end_mb": rss_end / 1024,
        }
    finally:
        server.terminate()
        server.join(10)


def _client_parts(venue: str, frames: int = 50_000) -> dict[str, float]:
    """CPU microseconds per message of the client's own steps, on the same frames, no socket:
    `orjson.loads` (what the client uses), `json.loads` (for comparison), the L2 apply, one book
    handed over as the consumer takes it (`get`'s step: the levels taken, the `StreamBook`, its
    `Book`s built), and its recording line (built only when something records)."""
    import orjson

    from exchanges.streams.kalshi import KalshiStreamClient
    from exchanges.streams.polymarket import PolymarketStreamClient
    from exchanges.testing import kalshi_key_pair

    feed = _feed(venue, frames)
    cycle = feed["cycle"]
    if venue == "kalshi":
        client = KalshiStreamClient(
            "ws://127.0.0.1:9/", api_key_id=KEY_ID, private_key_pem=kalshi_key_pair()[0]
        )
        snapshots = [
            json.dumps({"type": t, "sid": 1, "seq": n, "msg": m})
            for n, (t, m) in enumerate(feed["snapshots"], 1)
        ]
        texts = [
            f"{cycle[i % len(cycle)][0]}{len(snapshots) + i + 1}{cycle[i % len(cycle)][1]}"
            for i in range(frames)
        ]
    else:
        client = PolymarketStreamClient("ws://127.0.0.1:9/")
        snapshots = feed["snapshots"]
        texts = [cycle[i % len(cycle)] for i in range(frames)]
    client.set_instruments(dict.fromkeys(feed["instruments"], "yes"))
    l2 = client._l2
    for text in snapshots:
        l2.apply(json.loads(text))

    def cpu_us(work: Callable[[], object], count: int) -> float:
        # Each step from a collected heap: a full collection the steps before left due (this
        # process holds Django and the frames) is not charged to a step of a few microseconds.
        gc.collect()
        began = time.thread_time()
        work()
        return (time.thread_time() - began) / count * 1e6

    def parse_each(loads: Callable[[str], object]) -> Callable[[], None]:
        def parse() -> None:  # each message dropped once read, as the client drops it once applied
            for text in texts:
                loads(text)

        return parse

    decoded = [orjson.loads(t) for t in texts]  # the L2 apply's input, read beforehand
    parts = {
        "orjson.loads": cpu_us(parse_each(orjson.loads), frames),
        "json.loads": cpu_us(parse_each(json.loads), frames),
        "L2 apply": cpu_us(lambda: [l2.apply(d) for d in decoded], frames),
    }
    decoded.clear()  # not held through the steps below
    instruments = feed["instruments"]
    picks = [instruments[i % len(instruments)] for i in range(frames // 10)]
    handed: list = []

    def hand_over() -> None:
        for instrument in picks:
            book = client._stream_book(instrument, client._copy_book(instrument), 0, None)
            book.books  # noqa: B018 (built on first reading)
            handed.append(book)

    parts["one book handed over"] = cpu_us(hand_over, len(picks))
    parts["its recording line"] = cpu_us(lambda: [book.line for book in handed], len(picks))
    return parts


def _throughput_rows() -> list[dict[str, Any]]:
    rows = []
    for venue, deltas in (("kalshi", HOUR_DELTAS), ("polymarket", POLYMARKET_DELTAS)):
        r = _throughput(venue, deltas)
        parts = _client_parts(venue)
        print(f"  {venue}: {r}; CPU us per message {parts}", flush=True)
        books = (
            "books correct at the end and after a resnapshot"
            if r["correct_end"] and r["correct_after"]
            else (f"BOOKS WRONG: at the end {r['correct_end']}, after the resnapshot {r['correct_after']}")
        )
        rows.append(
            figure(
                BENCH,
                f"{venue} stream client (+ consumer), 100 pairs, messages per s",
                r["per_s"],
                "/s",
                "bare websockets client, same frames, unparsed",
                r["bare_per_s"],
                note=f"target >= 20,000/s; {r['messages']:,} deltas{'' if r['complete'] else ' (NOT ALL RECEIVED)'}; {books};"
                f" {r['handed']:,} books handed to the consumer",
            )
        )
        rows.append(
            figure(
                BENCH,
                f"{venue} client's own steps, CPU per message",
                parts["orjson.loads"]
                + parts["L2 apply"]
                + parts["one book handed over"] * r["handed"] / (r["messages"] or 1),
                "us",
                "the bare client's wall time per frame",
                1e6 / r["bare_per_s"],
                note="; ".join(f"{name} {us:.1f}" for name, us in parts.items())
                + f" us; orjson.loads + apply + {r['handed'] / (r['messages'] or 1):.2f} books handed over per"
                " message (as many as the consumer took in the run; no recording line: built only when"
                " recording)",
            )
        )
        if venue == "kalshi":
            rows.append(
                figure(
                    BENCH,
                    "RSS at the end of an hour of 100 pairs at 1 change/s (Kalshi, full speed)",
                    r["rss_end_mb"],
                    "MB",
                    "RSS after the snapshots",
                    r["rss_start_mb"],
                    note="the whole bench process (Django and parts 1-2 loaded): flat means end = start",
                )
            )
    return rows


# --- entry points ---------------------------------------------------------------------------


def _parts() -> set[str]:
    """The parts to run: BENCH_STREAMS_PARTS, a comma list of 1, 2 and 3 (default all)."""
    parts = {part.strip() for part in os.environ.get("BENCH_STREAMS_PARTS", "1,2,3").split(",")}
    if not parts or not parts <= {"1", "2", "3"}:
        raise SystemExit(f"BENCH_STREAMS_PARTS: a comma list of 1, 2 and 3, got {sorted(parts)}")
    return parts


def run() -> list[dict[str, Any]]:
    setup_django()
    parts = _parts()
    rows: list[dict[str, Any]] = []
    reason = missing_services()
    if parts & {"1", "2"} and reason:
        rows.append(figure(BENCH, "end to end and book age: skipped", None, "", note=reason))
    elif parts & {"1", "2"}:
        rows += _part_rows(_end_to_end(with_rest="2" in parts))
    if "3" in parts:
        rows += _throughput_rows()
    return rows


def main() -> None:
    from bench.common import print_table

    print_table(run(), "bench_streams")


if __name__ == "__main__":
    main()
