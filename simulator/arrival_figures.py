"""The report's execution figures, from trades whose orders have all arrived (pure: no Django).

What the simulated orders met at their venues: how each trade came out (full, partial, legged,
missed), how much edge the fills gave back against the signal (slippage), how often the two legs
filled differently and what unwinding the excess cost, why missed trades took nothing, and how
long each venue's orders took to arrive.

Percentiles are nearest-rank: the p-th percentile of n ascending values is the value at rank
ceil(p x n) (1-based), so it is always one of the values measured, never an interpolation.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from exchanges.books import KALSHI, POLYMARKET
from simulator.core.execution import ARRIVAL_OUTCOMES, ARRIVED, LEGGED, MISSED, PARTIAL

VENUES = (KALSHI, POLYMARKET)
P50, P95, P99 = Decimal("0.50"), Decimal("0.95"), Decimal("0.99")

# Why a leg took less than its order, by the start of its detail, in the order a missed trade
# names them. "only N of M" is a book too thin at the limit; "not sent" legs say nothing of
# their own (the first leg filled nothing) and are left out.
THIN_BOOK, OTHER = "thin book", "other"
MISS_KINDS = (
    ("book moved past the limit", "book moved past the limit"),
    ("fill-or-kill", "fill-or-kill"),
    ("only ", THIN_BOOK),
    ("no asks at arrival", "no asks at arrival"),
    ("no book at arrival", "no book at arrival"),
)
NOT_SENT_PREFIX = "not sent"


def percentile[T](sorted_values: Sequence[T], fraction: Decimal) -> T | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class ArrivedLeg:
    venue: str
    state: str
    latency_ms: int
    filled_size: Decimal
    detail: str


@dataclass(frozen=True, slots=True)
class ArrivedTrade:
    outcome: str
    slippage_cents: Decimal | None  # None when nothing hedged
    unwind_cost_usd: Decimal
    legs: tuple[ArrivedLeg, ...]


def miss_kind(detail: str) -> str | None:
    """The kind of a leg's shortfall ("" and "not sent": None; a text of no known kind: other)."""
    if not detail or detail.startswith(NOT_SENT_PREFIX):
        return None
    for prefix, kind in MISS_KINDS:
        if detail.startswith(prefix):
            return kind
    return OTHER


def missed_reason(trade: ArrivedTrade) -> str:
    """Why a missed trade took nothing: the kinds of its legs' shortfalls, each once, joined
    with " + " in MISS_KINDS order ("book moved past the limit + no asks at arrival")."""
    kinds = {kind for leg in trade.legs if (kind := miss_kind(leg.detail)) is not None}
    order = [kind for _, kind in MISS_KINDS] + [OTHER]
    return " + ".join(kind for kind in order if kind in kinds) or OTHER


def is_legging_incident(trade: ArrivedTrade) -> bool:
    """The legs filled differently: one filled and the other nothing (legged), or both some
    but not the same size (a partial with an excess to unwind or carry)."""
    if trade.outcome == LEGGED:
        return True
    return trade.outcome == PARTIAL and len({leg.filled_size for leg in trade.legs}) > 1


@dataclass(frozen=True, slots=True)
class Percentiles:
    low: Decimal | int | None  # p50
    high: Decimal | int | None  # p95 (slippage) or p99 (latency)
    count: int  # how many values


@dataclass(frozen=True, slots=True)
class ArrivalFigures:
    trades: int
    outcomes: dict[str, int]
    slippage_cents: Percentiles  # p50, p95 over trades with a realised edge
    legging_incidents: int
    unwind_cost_usd: Decimal
    missed_reasons: dict[str, int]  # most frequent first, then by name
    latency_ms: dict[str, Percentiles]  # per venue: p50, p99 over orders that reached it


def arrival_figures(trades: Iterable[ArrivedTrade]) -> ArrivalFigures:
    trades = list(trades)
    outcomes = Counter(trade.outcome for trade in trades)
    slippages = sorted(trade.slippage_cents for trade in trades if trade.slippage_cents is not None)
    missed = Counter(missed_reason(trade) for trade in trades if trade.outcome == MISSED)
    latencies: dict[str, list[int]] = {venue: [] for venue in VENUES}
    for trade in trades:
        for leg in trade.legs:
            if leg.state == ARRIVED:  # a sequenced leg may never have been sent
                latencies.setdefault(leg.venue, []).append(leg.latency_ms)
    return ArrivalFigures(
        trades=len(trades),
        outcomes={outcome: outcomes[outcome] for outcome in ARRIVAL_OUTCOMES},
        slippage_cents=Percentiles(percentile(slippages, P50), percentile(slippages, P95), len(slippages)),
        legging_incidents=sum(1 for trade in trades if is_legging_incident(trade)),
        unwind_cost_usd=sum((trade.unwind_cost_usd for trade in trades), Decimal(0)),
        missed_reasons=dict(sorted(missed.items(), key=lambda item: (-item[1], item[0]))),
        latency_ms={
            venue: Percentiles(percentile(ordered, P50), percentile(ordered, P99), len(ordered))
            for venue, values in latencies.items()
            for ordered in [sorted(values)]
        },
    )
