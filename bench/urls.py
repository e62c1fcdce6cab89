"""The product's URLs, plus the floor views under /bench-floor/ (bench/floor.py)."""

from django.urls import include, path

from bench import floor

urlpatterns = [
    path("bench-floor/simulator/status", floor.status, name="bench-floor-status"),
    path("bench-floor/simulator/runs/<int:run_id>/trades", floor.run_trades, name="bench-floor-run-trades"),
    path("", include("config.urls")),
]
