"""When a virtual trade executes and settles (pure: clock and random generator injected).

Each leg's order takes a latency drawn from its venue's lognormal model (bounded), and so would
its unwind; the trade has executed when its last order has arrived, and settled after the slower
venue's settlement delay
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
class OrderTiming:
    """Per leg, in the legs' order: the order's latency and its unwind's; and the trade's
    settlement delay (the slowest venue's)."""

    latencies_ms: tuple[int, ...]
    unwind_latencies_ms: tuple[int, ...]
    settlement_delay_s: Decimal


def draw_order_timing(venues: Sequence[str], rng: random.Random, config: TimingConfig) -> OrderTiming:
    """Leg by leg in order: the order's latency, its unwind's latency, then a settlement delay (a
    fixed order keeps a seeded run reproducible)."""
    if not venues:
        raise ValueError("a trade needs at least one leg")
    latencies, unwinds, delays = [], [], []
    for venue in venues:
        if venue not in config.latency or venue not in config.settlement:
            raise ValueError(f"no timing model for venue {venue!r}")
        latencies.append(config.latency[venue].draw_ms(rng))
        unwinds.append(config.latency[venue].draw_ms(rng))
        delays.append(config.settlement[venue].draw_s(rng))
    return OrderTiming(tuple(latencies), tuple(unwinds), max(delays))


def settled_after(executed_at: datetime, delay_s: Decimal) -> datetime:
    return executed_at + timedelta(milliseconds=int(delay_s * 1000))


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC)")


def trade_status(now: datetime, executed_at: datetime, settled_at: datetime, *, arrived: bool = True) -> str:
    """queued until every order has arrived (and before executed_at), executed until settled_at,
    then settled."""
    _require_aware("now", now)
    if not arrived or now < executed_at:
        return QUEUED
    if now < settled_at:
        return EXECUTED
    return SETTLED
