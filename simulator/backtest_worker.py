"""The entry points of a backtest's worker processes (`simulator.backtests`, `workers` > 1).

A spawned process starts with nothing imported: this module imports no Django and none of the
engine, so the process can load it, set Django up, and only then import the function that runs a
grid point (named by the parent: `module:function`)."""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from typing import Any

_shared: Any = None  # the detector's pass, handed over once per process
_run: Callable[[int, Any], None] | None = None


def start(payload: bytes, database: str, run_point: str) -> None:
    """Pool initializer: Django set up on the parent's database, the pass unpickled."""
    global _shared, _run
    import django

    django.setup()
    from django.db import connections

    connections["default"].settings_dict["NAME"] = database  # a test run's database, too
    _shared = pickle.loads(payload)  # noqa: S301 (pickled by the parent process a moment ago)
    module, _, function = run_point.partition(":")
    _run = getattr(importlib.import_module(module), function)


def run_point(run_id: int) -> int:
    from django.db import connections

    assert _run is not None, "start() first"
    _run(run_id, _shared)
    connections.close_all()
    return run_id
