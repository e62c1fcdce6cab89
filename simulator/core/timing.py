"""When a virtual trade executes and settles (pure: clock and random generator injected).

Each leg's order takes a latency drawn from its venue's lognormal model (bounded); the pair
has executed when its slower leg has, and settled after the slower venue's settlement delay
(Kalshi settles in its own ledger within ~2 s; Polymarket's match settles on chain, ~2-10 s).
A trade's status is never stored as truth: it is derived from these times and the clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from exchanges.books import KALSHI, POLYMARKET

QUEUED = "queued"
EXECUTED = "executed"
SETTLED = "settled"
DELAY_PLACES = Decimal("0.001")  # settlement delays kept to the millisecond
_DELAY_STEPS = 1_000  # the settlement delay is drawn on a 1 ms grid: no floats


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Lognormal order latency: `median_ms` is exp(mu), `sigma` the log-space spread."""

    median_ms: int
    sigma: float = 0.35
    min_ms: int = 1
    max_ms: int = 10_000

    def __post_init__(self) -> None:
        if not (0 < self.min_ms <= self.median_ms <= self.max_ms) or self.sigma < 0:
            raise ValueError("need 0 < min_ms <= median_ms <= max_ms and sigma >= 0")

    def draw_ms(self, rng: random.Random) -> int:
        raw = rng.lognormvariate(math.log(self.median_ms), self.sigma)
        return min(max(round(raw), self.min_ms), self.max_ms)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "sigma": self.sigma,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
        }


@dataclass(frozen=True, slots=True)
class SettlementDelayModel:
    """Uniform settlement delay in [min_s, max_s], to the millisecond."""

    min_s: Decimal
    max_s: Decimal

    def __post_init__(self) -> None:
        if not (0 <= self.min_s <= self.max_s):
            raise ValueError("need 0 <= min_s <= max_s")

    def draw_s(self, rng: random.Random) -> Decimal:
        span_ms = int((self.max_s - self.min_s) * _DELAY_STEPS)
        return (self.min_s + Decimal(rng.randrange(span_ms + 1)) / _DELAY_STEPS).quantize(DELAY_PLACES)

    def as_json(self) -> dict[str, str]:
        return {"min_s": str(self.min_s), "max_s": str(self.max_s)}


def _default_latency() -> dict[str, LatencyModel]:
    return {
        KALSHI: LatencyModel(median_ms=120, sigma=0.35, min_ms=30, max_ms=2_000),
        POLYMARKET: LatencyModel(median_ms=250, sigma=0.45, min_ms=60, max_ms=5_000),
    }


def _default_settlement() -> dict[str, SettlementDelayModel]:
    return {
        KALSHI: SettlementDelayModel(min_s=Decimal("0"), max_s=Decimal("2")),
        POLYMARKET: SettlementDelayModel(min_s=Decimal("2"), max_s=Decimal("10")),
    }


@dataclass(frozen=True, slots=True)
class TimingConfig:
    latency: dict[str, LatencyModel] = field(default_factory=_default_latency)
    settlement: dict[str, SettlementDelayModel] = field(default_factory=_default_settlement)

    def as_json(self) -> dict[str, Any]:
        return {
            "latency": {venue: model.as_json() for venue, model in sorted(self.latency.items())},
            "settlement": {venue: model.as_json() for venue, model in sorted(self.settlement.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimingConfig:
        defaults = cls()
        latency = dict(defaults.latency)
        for venue, model in data.get("latency", {}).items():
            latency[venue] = LatencyModel(
                median_ms=int(model["median_ms"]),
                sigma=float(model.get("sigma", 0.35)),
                min_ms=int(model.get("min_ms", 1)),
                max_ms=int(model.get("max_ms", 10_000)),
            )
        settlement = dict(defaults.settlement)
        for venue, model in data.get("settlement", {}).items():
            settlement[venue] = SettlementDelayModel(
                min_s=Decimal(str(model["min_s"])), max_s=Decimal(str(model["max_s"]))
            )
        return cls(latency=latency, settlement=settlement)


@dataclass(frozen=True, slots=True)
class Timing:
    decided_at: datetime
    executed_at: datetime
    settled_at: datetime
    settlement_delay_s: Decimal  # settled_at - executed_at
    latencies_ms: dict[str, int]  # per venue: the slowest leg on that venue


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")


def draw_timing(
    venues: Sequence[str], decided_at: datetime, rng: random.Random, config: TimingConfig
) -> Timing:
    """Draw, leg by leg in order, a latency then a settlement delay (a fixed order keeps a
    seeded run reproducible); the pair waits for its slowest leg at each step."""
    _require_aware("decided_at", decided_at)
    if not venues:
        raise ValueError("a trade needs at least one leg")
    latencies: dict[str, int] = {}
    delays: list[Decimal] = []
    for venue in venues:
        if venue not in config.latency or venue not in config.settlement:
            raise ValueError(f"no timing model for venue {venue!r}")
        latency_ms = config.latency[venue].draw_ms(rng)
        latencies[venue] = max(latencies.get(venue, 0), latency_ms)
        delays.append(config.settlement[venue].draw_s(rng))
    executed_at = decided_at + timedelta(milliseconds=max(latencies.values()))
    delay_s = max(delays)
    settled_at = executed_at + timedelta(milliseconds=int(delay_s * 1000))
    return Timing(
        decided_at=decided_at,
        executed_at=executed_at,
        settled_at=settled_at,
        settlement_delay_s=delay_s,
        latencies_ms=latencies,
    )


def trade_status(now: datetime, executed_at: datetime, settled_at: datetime) -> str:
    """queued before executed_at, executed until settled_at, then settled."""
    _require_aware("now", now)
    if now < executed_at:
        return QUEUED
    if now < settled_at:
        return EXECUTED
    return SETTLED
