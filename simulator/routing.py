"""Websocket routes of the simulator (filled in by the websocket work)."""

websocket_urlpatterns: list = []
