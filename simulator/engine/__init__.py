"""The engine: each (run, intent) and (run, span start) decided exactly once, written, broadcast.

Its modules, in the order a decision goes through them (`pipeline` calls the others):
pipeline (the entries) -> load (load and lock) -> expiry -> inputs -> validation ->
simulator.core (the pure decision) -> rows -> write (sql, wire) -> broadcast.
A traded decision's orders then arrive, one step each (`arrival`): the book at arrival, the
fills, the hedge and unwind, the money released.
"""

from simulator.engine.arrival import (
    ArrivalBooks,
    Arrived,
    Step,
    arrive,
    arrive_in_order,
    arrive_step,
    in_flight_steps,
    steps_of,
    venue_books,
)
from simulator.engine.expiry import expire_runs
from simulator.engine.pipeline import decide_intent, decide_span_start

__all__ = [
    "ArrivalBooks",
    "Arrived",
    "Step",
    "arrive",
    "arrive_in_order",
    "arrive_step",
    "decide_intent",
    "decide_span_start",
    "expire_runs",
    "in_flight_steps",
    "steps_of",
    "venue_books",
]
