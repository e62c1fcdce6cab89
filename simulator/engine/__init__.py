"""The engine: each (run, intent) and (run, span start) decided exactly once, written, broadcast.

Its modules, in the order a decision goes through them (`pipeline` calls the others):
pipeline (the entries) -> load (load and lock) -> expiry -> inputs -> validation ->
simulator.core (the pure decision) -> rows -> write (sql, wire) -> broadcast.
"""

from simulator.engine.expiry import expire_runs
from simulator.engine.pipeline import decide_intent, decide_span_start

__all__ = ["decide_intent", "decide_span_start", "expire_runs"]
