"""Websocket events after commit. A broadcast failure is logged and swallowed: the trade row is
already committed, and the page catches up from the API on its next poll."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)
_warned_fallback: set[str] = set()
SEND_TIMEOUT_S = 2.0
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """One long-lived event loop per process for network channel layers. `async_to_sync` would
    run each send in a fresh loop, and channels-redis keeps its connections per loop: every
    event would open a new Redis connection (~15 ms). Created lazily, so a forked worker
    starts its own."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="sim-broadcast", daemon=True).start()
            _loop = loop
        return _loop


def _group_send(layer: Any, group: str, message: dict[str, Any]) -> None:
    if isinstance(layer, InMemoryChannelLayer):
        # Its queues belong to the consumers' loop: send from the caller, as channels expects.
        async_to_sync(layer.group_send)(group, message)
        return
    future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sender_loop())
    future.result(timeout=SEND_TIMEOUT_S)


def user_group(user_id: int) -> str:
    return f"simulator.user.{user_id}"


def _payload(kind: str, obj: Any) -> dict[str, Any]:
    """The contract's JSON from the API's presenters; a minimal dict until they exist."""
    try:
        from simulator import presenters
    except ImportError:
        presenters = None
    present = getattr(presenters, f"{kind}_json", None)
    if present is not None:
        return present(obj)
    if kind not in _warned_fallback:
        _warned_fallback.add(kind)
        logger.warning("event=broadcast_fallback kind=%s reason=no_presenter", kind)
    if kind == "trade":
        return {"id": obj.pk, "run_id": obj.run_id, "intent_id": obj.intent_id}
    return {"id": obj.pk, "status": obj.status}


def _send(user_id: int, event: str, kind: str, obj: Any) -> bool:
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        message = {"type": "simulator.event", "event": event, "data": _payload(kind, obj)}
        _group_send(layer, user_group(user_id), message)
        return True
    except Exception:
        # Never lose a committed trade to a channel-layer outage (Redis down, payload bug...).
        logger.exception("event=broadcast_failed kind=%s id=%s user_id=%s", kind, obj.pk, user_id)
        return False


def broadcast_trade(trade) -> bool:
    """Send `simulator:trade` to the trade's user. True when the layer accepted it."""
    return _send(trade.user_id, "simulator:trade", "trade", trade)


def broadcast_run(run) -> bool:
    """Send `simulator:run` to the run's user. True when the layer accepted it."""
    return _send(run.user_id, "simulator:run", "run", run)
