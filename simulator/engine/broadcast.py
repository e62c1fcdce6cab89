"""Websocket events after commit. A broadcast failure is logged and swallowed: the trade row is
already committed, and the page catches up from the API on its next poll.

On a network channel layer (Redis) events are handed to an outbox that one long-lived event loop
thread empties; nobody waits for it, so a decision never waits on the websocket fan-out and a
slow or down Redis never slows the engine. Each round the thread sends everything waiting for a
user in one message (in order); rounds are at least `MIN_ROUND_INTERVAL_S` apart, so an event
after a quiet spell goes at once, and under a burst of decisions the cost per event falls
instead of piling up. At most `MAX_PENDING_EVENTS` wait; past that an event is
dropped with a warning (its data stays in the database).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from simulator import presenters

logger = logging.getLogger(__name__)
SEND_TIMEOUT_S = 2.0
MAX_PENDING_EVENTS = 10_000
# Rounds of sends are at least this far apart: an event after a quiet spell goes at once, and
# under a burst of decisions the events of the next few milliseconds go together.
MIN_ROUND_INTERVAL_S = 0.01
MAX_EVENTS_PER_MESSAGE = 200  # a message stays well under the layer's size limits
Frame = dict[str, Any]  # {"event": ..., "data": ...}, as the socket sends it
Event = tuple[str, str, Any]  # (event name, presenter kind, the committed row it presents)


class _Outbox:
    """Events waiting for the loop thread, in arrival order. Their frames are built there too:
    the presenters only read committed rows the engine no longer touches."""

    def __init__(self) -> None:
        self._reset()
        # A forked child (a Celery prefork worker) has neither the parent's loop thread nor
        # its events: it starts with an empty outbox and makes its own loop on first use.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting: deque[tuple[Any, str, list[Event]]] = deque()
        self._count = 0
        self._draining = False
        self._last_round = float("-inf")  # the sender loop's clock
        self._loop: asyncio.AbstractEventLoop | None = None

    def _sender_loop(self) -> asyncio.AbstractEventLoop:
        """One long-lived loop per process (under the lock): `async_to_sync` would run each send
        in a fresh loop, and channels-redis keeps its connections per loop, so every event would
        open a new Redis connection (~15 ms). Created lazily, so a forked worker starts its own."""
        if self._loop is None or self._loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="sim-broadcast", daemon=True).start()
            self._loop = loop
        return self._loop

    def put(self, layer: Any, group: str, events: list[Event]) -> bool:
        with self._lock:
            if self._count + len(events) > MAX_PENDING_EVENTS:
                logger.warning("event=broadcast_dropped group=%s why=%s events pending", group, self._count)
                return False
            self._waiting.append((layer, group, events))
            self._count += len(events)
            if self._draining:
                return True
            self._draining = True
            loop = self._sender_loop()
        asyncio.run_coroutine_threadsafe(self._drain(), loop)
        return True

    async def _drain(self) -> None:
        try:
            await self._rounds()
        except BaseException:
            # Never leave the outbox marked busy with nobody draining it: the next event starts
            # a new drain. (`_rounds` catches what a send or a presenter raises; this is the rest.)
            with self._lock:
                self._draining = False
                self._idle.notify_all()
            raise

    async def _rounds(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait_s = self._last_round + MIN_ROUND_INTERVAL_S - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self._last_round = loop.time()
            with self._lock:
                taken = list(self._waiting)
                self._waiting.clear()
                if not taken:
                    self._draining = False
                    self._idle.notify_all()
                    return
            by_group: dict[tuple[int, str], tuple[Any, list[Frame]]] = {}
            for layer, group, events in taken:
                frames = _frames(events, group)
                by_group.setdefault((id(layer), group), (layer, []))[1].extend(frames)
            for (_, group), (layer, frames) in by_group.items():
                for first in range(0, len(frames), MAX_EVENTS_PER_MESSAGE):
                    chunk = frames[first : first + MAX_EVENTS_PER_MESSAGE]
                    try:
                        message = {"type": "simulator.events", "events": chunk}
                        await asyncio.wait_for(layer.group_send(group, message), SEND_TIMEOUT_S)
                    except Exception as error:
                        logger.error(
                            "event=broadcast_failed group=%s events=%s error=%s: %s",
                            group,
                            len(chunk),
                            type(error).__name__,
                            error,
                        )
            with self._lock:
                self._count -= sum(len(events) for _, _, events in taken)

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything handed over so far is sent (or failed); False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._draining, timeout=timeout_s)


_outbox = _Outbox()


def flush(timeout_s: float = SEND_TIMEOUT_S) -> bool:
    """Wait (up to `timeout_s`) for the events handed over so far: at exit, and in tests."""
    return _outbox.flush(timeout_s)


atexit.register(flush)


def user_group(user_id: int) -> str:
    return f"simulator.user.{user_id}"


def _frames(events: list[Event], group: str) -> list[Frame]:
    """The socket frames of these events, from the API's presenters (the contract's JSON). One
    that cannot be presented is logged and left out: the others still go."""
    frames = []
    for event, kind, obj in events:
        try:
            frames.append({"event": event, "data": getattr(presenters, f"{kind}_json")(obj)})
        except Exception:
            logger.exception("event=broadcast_failed group=%s kind=%s id=%s", group, kind, obj.pk)
    return frames


def _send(user_id: int, events: list[Event]) -> bool:
    """Send the events to the user's group as one message, in order. True when the layer (or the
    outbox in front of it) accepted them."""
    group = user_group(user_id)
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        if isinstance(layer, InMemoryChannelLayer):
            # Its queues belong to the consumers' loop: send from the caller, as channels expects.
            message = {"type": "simulator.events", "events": _frames(events, group)}
            async_to_sync(layer.group_send)(group, message)
            return True
        return _outbox.put(layer, group, events)
    except Exception:
        # Never lose a committed trade to a channel-layer outage (Redis down, payload bug...).
        ids = ",".join(str(obj.pk) for _, _, obj in events)
        logger.exception("event=broadcast_failed kinds=%s ids=%s user_id=%s", events[0][1], ids, user_id)
        return False


def broadcast_trade(trade) -> bool:
    """Send `simulator:trade` to the trade's user."""
    return _send(trade.user_id, [("simulator:trade", "trade", trade)])


def _live(run) -> bool:
    """A backtest's runs are followed through the backtest (its progress, then its results): their
    thousands of trades a minute are not pushed to the live page."""
    return getattr(run, "kind", "live") == "live"


def broadcast_run(run) -> bool:
    """Send `simulator:run` to the run's user (a live run's)."""
    return _live(run) and _send(run.user_id, [("simulator:run", "run", run)])


def broadcast_decision(trade, run) -> bool:
    """A traded decision: `simulator:trade` then `simulator:run`, in one message (a live run's)."""
    return _live(run) and _send(
        run.user_id, [("simulator:trade", "trade", trade), ("simulator:run", "run", run)]
    )
