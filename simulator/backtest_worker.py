"""The entry points of a backtest's worker processes (`simulator.backtests`, `workers` > 1).

A spawned process starts with nothing imported: this module imports no Django at its top, so the
process can load it, set Django up, and only then import the engine."""

from __future__ import annotations

import pickle
from typing import Any

_shared: Any = None  # the detector's pass, handed over once per process


def start(payload: bytes, database: str) -> None:
    """Pool initializer: Django set up on the parent's database, the pass unpickled."""
    global _shared
    import django

    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = database  # a test run's database, too
    _shared = pickle.loads(payload)  # noqa: S301 (pickled by the parent process a moment ago)


def run_point(run_id: int) -> int:
    from django.db import connections

    from simulator.backtests import run_point as run

    run(run_id, _shared)
    connections.close_all()
    return run_id
