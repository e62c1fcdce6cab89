"""Websocket routes; each app adds its own consumers in its routing module."""

from simulator.routing import websocket_urlpatterns as simulator_routes

websocket_urlpatterns = [*simulator_routes]
