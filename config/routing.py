"""Websocket routes; each app adds its own consumers here."""

websocket_urlpatterns: list = []
