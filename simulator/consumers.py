"""The simulator's websocket: `/ws/simulator/` pushes the user's own trade and run events.

The socket joins the group `simulator.user.<id>` that `simulator.engine.broadcast` sends to after
each commit; a frame is `{"event": "simulator:trade" | "simulator:run", "data": <contract JSON>}`.
A socket without a logged-in user is accepted and at once closed with 4401: a close before the
accept would reach the browser as a bare HTTP 403 (code 1006, indistinguishable from a network
drop), and the page could only retry; 4401 tells it to log in instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from config import telemetry
from simulator.engine.broadcast import user_group

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401


class SimulatorConsumer(AsyncJsonWebsocketConsumer):
    group_name: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group_name = user_group(user.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        telemetry.websocket_opened()

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            telemetry.websocket_closed()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs) -> None:
        # The base class would raise on a frame that is not JSON and drop the socket; a client
        # sending garbage gets an error frame and keeps its live feed.
        try:
            content = json.loads(text_data) if text_data is not None else None
        except (ValueError, RecursionError):  # RecursionError: nesting past the recursion limit
            content = None
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"event": "pong"})
            return
        await self.send_json(
            {"event": "error", "data": {"detail": 'unknown frame: send {"type": "ping"} or nothing'}}
        )

    async def simulator_events(self, message: dict[str, Any]) -> None:
        """One decision's events (a trade, then its run), a frame each."""
        for event in message["events"]:
            await self.send_json({"event": event["event"], "data": event["data"]})
