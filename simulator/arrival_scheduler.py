"""The arrival scheduler: a process of its own (`manage.py sim_arrivals`) that runs each order's
arrival step at its arrival time (SIMULATOR_ARRIVALS=scheduler, what docker-compose runs).

A decision's worker hands the steps over with `send` (`simulator.tasks.schedule_arrivals`): one
push onto a Redis list, well before the steps are due. The scheduler pops them into a heap and,
at each step's time, runs it on one of its runner threads, each of which keeps its database
connection: between a step's time and its fill there is no broker hop, no task message, and no
decision or other task queued in front of it. Steps a step makes due (an unwind, the second leg
of a sequenced trade) go straight onto the heap.

What it holds lives in its memory only. Stopped (SIGINT/SIGTERM), it finishes the steps in hand
and puts the ones still waiting back on the list for the next scheduler. SIGKILLed, it loses
them, and beat's overdue-arrivals sweep (`intake.redispatch_overdue_arrivals`, every 10 s) sends
them again once they are 10 s overdue. Every step runs once whatever the deliveries: the engine
finds a step already done (`engine.arrive_step`). A database that goes away fails the steps in hand;
each is tried again with a growing pause on a new connection, then left to the sweep.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import orjson
import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from simulator import engine

logger = logging.getLogger(__name__)

FEED_KEY = "simulator:arrival-steps"
ALIVE_KEY = "simulator:arrival-scheduler-alive"  # set by a serving scheduler, expires ALIVE_S later
ALIVE_S = 10
RUNNERS = 4  # steps run at once: two legs of one trade are due together, and wait on one lock
TAKE_AT_ONCE = 500  # steps popped from the list per round trip
POP_TIMEOUT_S = 1  # how often a scheduler with nothing to take looks whether it should stop
RETRIES = 8  # a step failed by the database: tries again after 1, 2, 4 ... 30 s, then the sweep
RETRY_MAX_S = 30.0
REDIS_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 30.0

# (epoch seconds due, order of arrival, the step, attempts so far)
Held = tuple[float, int, engine.Step, int]


_clients: dict[str, redis.Redis] = {}


def redis_client() -> redis.Redis:
    """This process's client (thread-safe; its pool reconnects after a fork)."""
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S + POP_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
    return _clients[url]


# How a step crosses Redis, and how it runs: the only places that know a step's fields beyond its
# trade id, name and time (indices 0, 1 and 2).
def _encoded(step: engine.Step) -> bytes:
    return orjson.dumps(step.task_args())


def _decoded(item: bytes) -> engine.Step:
    return engine.Step.from_task_args(*orjson.loads(item))


def _arrive(step: engine.Step) -> engine.Arrived | None:
    return engine.arrive_step(step)


def send(steps: Sequence[engine.Step], client: redis.Redis | None = None) -> None:
    """Hand steps to the scheduler (one round trip to Redis)."""
    if steps:
        (client or redis_client()).rpush(FEED_KEY, *map(_encoded, steps))


def backlog(client: redis.Redis | None = None) -> int:
    """Steps sent and not yet taken by a scheduler (none running, or one falling behind)."""
    return int((client or redis_client()).llen(FEED_KEY))


def serving(client: redis.Redis | None = None) -> bool:
    """Whether a scheduler took steps (or looked for some) within the last ALIVE_S seconds."""
    return bool((client or redis_client()).exists(ALIVE_KEY))


def _warm_up() -> None:
    """The first statement a step runs (`arrive_step`'s locked read), prepared on this thread's
    connection: no such trade, so nothing is asked of a venue and the transaction rolls back."""
    engine.arrive_step(engine.Step(0, "leg:0", datetime.now(UTC), 0, "kalshi", "", "yes"), _no_book)


def _no_book(user_id: int, order: engine.Step, at: datetime) -> tuple[None, str]:
    return None, ""


class ArrivalScheduler:
    """Steps on a heap, fired at their time by one timer thread onto `runners` runner threads."""

    def __init__(self, client: redis.Redis, *, runners: int = RUNNERS) -> None:
        self.client = client
        self._heap: list[Held] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._runner_count = runners
        self._runners = ThreadPoolExecutor(runners, thread_name_prefix="arrival-step")

    def hold(self, steps: Sequence[engine.Step], *, at_s: float | None = None, attempts: int = 0) -> None:
        """Steps to run at their time (or at `at_s`, epoch seconds: a retry)."""
        with self._wake:
            for step in steps:
                due_s = at_s if at_s is not None else step.at.timestamp()
                heapq.heappush(self._heap, (due_s, next(self._order), step, attempts))
            self._wake.notify()

    def serve(self, stop: threading.Event) -> None:
        """Take steps from the list until `stop` is set; then finish the steps in hand and put
        back the ones still waiting."""
        self._connect_runners()
        timer = threading.Thread(target=self._fire, name="arrival-timer", daemon=True)
        timer.start()
        logger.info("event=arrival_scheduler_ready")
        alive_at = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() - alive_at >= 1.0:
                        self.client.set(ALIVE_KEY, 1, ex=ALIVE_S)
                        alive_at = time.monotonic()
                    self._take()
                except redis.RedisError as error:
                    logger.warning("event=arrival_feed_unavailable error=%s", error)
                    stop.wait(1.0)
        finally:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            timer.join()
            self._runners.shutdown(wait=True)
            with self._wake:
                waiting, self._heap = self._heap, []
            self._put_back(waiting)

    def _connect_runners(self) -> None:
        """Start every runner thread with its database connection open and the engine's first
        statement prepared on it: a step that did that itself would be tens of milliseconds late."""
        started = threading.Barrier(self._runner_count + 1, timeout=CONNECT_TIMEOUT_S)

        def connect() -> None:
            try:
                connection.ensure_connection()
                _warm_up()
            except (OperationalError, InterfaceError) as error:  # the first step connects then
                logger.warning("event=arrival_runner_not_connected error=%s", error)
            with contextlib.suppress(threading.BrokenBarrierError):
                started.wait()  # each runner thread takes one of these: all of them start

        for _ in range(self._runner_count):
            self._runners.submit(connect)
        with contextlib.suppress(threading.BrokenBarrierError):
            started.wait()

    def _take(self) -> None:
        popped = self.client.blpop([FEED_KEY], timeout=POP_TIMEOUT_S)
        if popped is None:
            return
        items = [popped[1], *(self.client.lpop(FEED_KEY, TAKE_AT_ONCE) or [])]
        steps = []
        for item in items:
            try:
                steps.append(_decoded(item))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                logger.error("event=arrival_step_unreadable item=%r", item[:200])
        self.hold(steps)

    def _put_back(self, waiting: list[Held]) -> None:
        if not waiting:
            return
        steps = [step for _, _, step, _ in sorted(waiting)]
        try:
            send(steps, self.client)
            logger.info("event=arrival_steps_put_back count=%s", len(steps))
        except redis.RedisError as error:  # the sweep sends them again
            logger.warning("event=arrival_steps_left_to_the_sweep count=%s error=%s", len(steps), error)

    def _fire(self) -> None:
        while True:
            with self._wake:
                while not self._stopping:
                    if self._heap:
                        wait_s = self._heap[0][0] - time.time()
                        if wait_s <= 0:
                            break
                        self._wake.wait(wait_s)
                    else:
                        self._wake.wait()
                if self._stopping:
                    return
                held = heapq.heappop(self._heap)
            self._runners.submit(self._run, held)

    def _run(self, held: Held) -> None:
        _, _, step, attempts = held
        trade_id, name = step.trade_id, step.step
        try:
            arrived = _arrive(step)
        except (OperationalError, InterfaceError) as error:
            close_old_connections()  # a broken connection is replaced at the next step
            if attempts >= RETRIES:
                logger.error("event=arrival_failed trade_id=%s step=%s error=%s", trade_id, name, error)
                return
            pause_s = min(RETRY_MAX_S, 2.0**attempts)
            logger.warning(
                "event=arrival_retry trade_id=%s step=%s in_s=%s error=%s", trade_id, name, pause_s, error
            )
            self.hold([step], at_s=time.time() + pause_s, attempts=attempts + 1)
            return
        except Exception:
            close_old_connections()
            logger.exception("event=arrival_failed trade_id=%s step=%s", trade_id, name)
            return
        if arrived is not None and arrived.next_steps:
            self.hold(arrived.next_steps)
