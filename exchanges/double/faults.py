"""Transport-level faults the double injects on request (state-level ones live in the state).

A fault matches requests by venue and path prefix (path without the query string) and applies
to the next `times` matching requests (None = until cleared). Several `latency` faults add up;
after them, the first matching fault of any other kind decides the response.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("latency", "timeout", "status", "rate_limit", "malformed", "bad_signature")
VENUES = ("kalshi", "polymarket")
NOT_JSON_BODY = '{"error": "upstream reset", "partial": '


@dataclass
class Fault:
    venue: str  # "kalshi" | "polymarket"
    kind: str  # one of FAULT_KINDS
    path_prefix: str = ""  # "" matches every path of the venue
    times: int | None = None  # how many matching requests it applies to; None = until cleared
    status: int = 503  # kind="status": the HTTP status sent, with the venue's error body
    latency_s: float = 0.5  # kind="latency": seconds added before the response
    hold_s: float = 30.0  # kind="timeout": how long the connection is held (or until stop)
    retry_after_s: int = 1  # kind="rate_limit": the Retry-After header
    # kind="malformed": "not_json" sends a 200 whose body is not JSON; "missing_fields" sends the
    # real 200 body without `drop_fields` (top level and one level down), or `{}` if none given.
    malformed: str = "not_json"
    drop_fields: tuple[str, ...] = ()
    hits: int = field(default=0, compare=False)  # how many requests it has applied to so far

    def __post_init__(self) -> None:
        if self.venue not in VENUES:
            raise ValueError(f"venue must be one of {VENUES}, not {self.venue!r}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if self.malformed not in ("not_json", "missing_fields"):
            raise ValueError("malformed must be 'not_json' or 'missing_fields'")
        self.drop_fields = tuple(self.drop_fields)

    def matches(self, venue: str, path: str) -> bool:
        exhausted = self.times is not None and self.hits >= self.times
        return not exhausted and venue == self.venue and path.startswith(self.path_prefix)


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: total added latency, then at most one decisive fault."""

    latency_s: float = 0.0
    fault: Fault | None = None


class FaultBook:
    """The double's active faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times is None or f.hits < f.times]

    def plan(self, venue: str, path: str) -> FaultPlan:
        """Consume one use of every latency fault and of the first decisive fault that match."""
        latency_s, decisive = 0.0, None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(venue, path):
                    continue
                if fault.kind == "latency":
                    latency_s += fault.latency_s
                elif decisive is None:
                    decisive = fault
                else:
                    continue
                fault.hits += 1
        return FaultPlan(latency_s=latency_s, fault=decisive)


def drop_fields(body: Any, names: tuple[str, ...]) -> Any:
    """The body without `names`, at the top level and inside top-level objects."""
    if not names:
        return {}
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key in names:
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in names}
        out[key] = value
    return out
