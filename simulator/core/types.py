"""The simulator core's values (pure: no Django, no I/O).

Every money amount, price and size is a `Decimal`; `as_json()` turns each value into the
JSON-able dict of design.md's JSON contract (Decimals as strings, times ISO 8601 UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from exchanges.books import KALSHI, POLYMARKET, Book, Level
from ingest.intents import IntentLeg  # one leg type: ingest emits it, the core decides on it

TRADED = "traded"
ELIGIBLE = "eligible"
SKIPPED = "skipped"

VALIDATION_KINDS = ("ok", "unreachable", "rate_limited", "rejected", "malformed", "closed")


def _id_json(value: Any) -> Any:
    return value if isinstance(value, int | str) or value is None else str(value)


def _dt_json(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _ladder_json(levels: tuple[Level, ...]) -> list[dict[str, str]]:
    return [level.as_json() for level in levels]


@dataclass(frozen=True, slots=True)
class Intent:
    """One ExecutionIntent as the core sees it: a hedged pair of legs and the edge ingest saw."""

    id: int | str
    opportunity_key: str
    direction: str
    net_edge_cents: Decimal
    size: Decimal
    legs: tuple[IntentLeg, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": _id_json(self.id),
            "opportunity_key": self.opportunity_key,
            "direction": self.direction,
            "net_edge_cents": str(self.net_edge_cents),
            "size": str(self.size),
            "legs": [leg.as_json() for leg in self.legs],
        }


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The user's thresholds, as snapshotted by the run when it started."""

    min_net_edge_cents: Decimal
    max_leg_usd: Decimal
    daily_cap_usd: Decimal


@dataclass(frozen=True, slots=True)
class RunState:
    """The run's money at decision time (read under the run's row lock by the engine)."""

    balance_usd: Decimal
    traded_today_usd: Decimal


@dataclass(frozen=True, slots=True)
class Keys:
    """Which venues the user has saved secrets for (never the secrets themselves)."""

    kalshi: bool
    polymarket: bool

    def has(self, venue: str) -> bool:
        if venue == KALSHI:
            return self.kalshi
        if venue == POLYMARKET:
            return self.polymarket
        return False


@dataclass(frozen=True, slots=True)
class LegValidation:
    """What the read-only exchange calls said about one leg."""

    venue: str
    instrument_id: str
    side: str
    ok: bool
    kind: str  # ok | unreachable | rate_limited | rejected | malformed | closed
    detail: str
    tradeable: bool
    book: Book | None
    latency_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "side": self.side,
            "ok": self.ok,
            "kind": self.kind,
            "detail": self.detail,
            "tradeable": self.tradeable,
            "book": self.book.ask_ladder_json() if self.book is not None else None,
            "book_ts_ms": self.book.ts_ms if self.book is not None else None,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class ExchangeValidation:
    """The engine's answer to `validate()`: every leg, plus each venue's balance (None: unknown)."""

    ok: bool
    legs: tuple[LegValidation, ...]
    balances_usd: Mapping[str, Decimal | None] = field(default_factory=dict)
    detail: str = ""

    def leg_for(self, venue: str, instrument_id: str, side: str) -> LegValidation | None:
        for leg in self.legs:
            if (leg.venue, leg.instrument_id, leg.side) == (venue, instrument_id, side):
                return leg
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "legs": [leg.as_json() for leg in self.legs],
            "balances_usd": {
                venue: (str(usd) if usd is not None else None) for venue, usd in self.balances_usd.items()
            },
        }


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Fill:
    """Size taken at one level of the validated ask ladder: `price` is exactly that level's price."""

    price: Decimal
    size: Decimal

    def as_json(self) -> dict[str, str]:
        return {"price": str(self.price), "size": str(self.size)}


@dataclass(frozen=True, slots=True)
class LegFill:
    venue: str
    instrument_id: str
    side: str
    limit_price: Decimal
    fills: tuple[Fill, ...]
    avg_fill_price: Decimal
    fee_usd: Decimal
    book: tuple[Level, ...]  # the ask ladder the validation saw, best first
    # The same ladder less what this run already took from that snapshot (the liquidity ledger).
    book_available: tuple[Level, ...] = ()

    @property
    def size(self) -> Decimal:
        return sum((fill.size for fill in self.fills), Decimal(0))

    @property
    def notional_usd(self) -> Decimal:
        return sum((fill.price * fill.size for fill in self.fills), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "side": self.side,
            "limit_price": str(self.limit_price),
            "avg_fill_price": str(self.avg_fill_price),
            "fee_usd": str(self.fee_usd),
            "fills": [fill.as_json() for fill in self.fills],
            "book": _ladder_json(self.book),
            "book_available": _ladder_json(self.book_available),
        }


@dataclass(frozen=True, slots=True)
class TradeDraft:
    """A virtual trade at decision, before the engine gives it an id and a row: its orders are on
    their way (`legs`, `simulator.core.execution.LegOrder`) and the most they can cost is held."""

    requested_size: Decimal
    order_size: Decimal  # what each order asks for (fills meet the minimum at the validated book)
    reserved_usd: Decimal  # the worst-case cost, held against balance and daily cap until arrival
    legs: tuple[Any, ...]  # LegOrder, one per leg
    signal_edge_cents: Decimal  # the intent's edge
    seen_edge_cents: Decimal  # the edge of the order size's fills at the validated book
    decided_at: datetime
    executed_at: datetime  # expected: when the last order arrives
    settled_at: datetime
    settlement_delay_s: Decimal
    latencies_ms: Mapping[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requested_size": str(self.requested_size),
            "order_size": str(self.order_size),
            "reserved_usd": str(self.reserved_usd),
            "signal_edge_cents": str(self.signal_edge_cents),
            "seen_edge_cents": str(self.seen_edge_cents),
            "decided_at": _dt_json(self.decided_at),
            "executed_at": _dt_json(self.executed_at),
            "settled_at": _dt_json(self.settled_at),
            "settlement_delay_s": str(self.settlement_delay_s),
            "latencies_ms": dict(self.latencies_ms),
            "legs": [leg.as_json() for leg in self.legs],
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one (run, intent) or (run, span start): always all seven checks, in order.

    `reason` is "" when traded or eligible, else "<check name>: <detail of the failing check>".
    """

    outcome: str  # traded | eligible | skipped
    reason: str
    checks: tuple[Check, ...]
    trade: TradeDraft | None = None
    validation: ExchangeValidation | None = None  # None when the exchange was not asked

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "checks": [check.as_json() for check in self.checks],
            "trade": self.trade.as_json() if self.trade is not None else None,
            "validation": self.validation.as_json() if self.validation is not None else None,
        }
