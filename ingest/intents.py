"""Execution intents: what each user's simulator is asked to consider for an opportunity (pure).

For each user with a running simulator, the emitter cuts the detector's best direction down to
the user's size and emits an `IntentDraft` when the user's own threshold is met:

- size: the detector's size rounded down to whole contracts, then cut so that each leg's
  notional (size x that leg's limit price, the worst level used at that size) stays within
  `max_leg_usd`. A size of 0 emits nothing.
- edge: fees are per order, so the user's edge depends on the user's size. The intent carries the
  average net edge per contract *at the user's size* (fees of the user-sized orders included),
  and is emitted only when it is >= the user's `min_net_edge_cents`.
- cooldown: one intent per (user, opportunity key) per `cooldown_ms`. A new span does **not**
  reset it: an edge hovering around the span threshold opens and closes spans every few ticks,
  and resetting on each would flood exactly when the opportunity is least real. Span starts are
  recorded for every run separately (decision_source = success_span), so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ingest.detector import Evaluation
from ingest.quotes import DirectionQuote, Fill, quote_at_size

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class UserThreshold:
    user_id: int
    min_net_edge_cents: Decimal
    max_leg_usd: Decimal
    watched_keys: frozenset[str] | None = None  # None: every opportunity key

    def watches(self, opportunity_key: str) -> bool:
        return self.watched_keys is None or opportunity_key in self.watched_keys


@dataclass(frozen=True, slots=True)
class IntentLeg:
    venue: str
    instrument_id: str
    side: str
    limit_price: Decimal
    size: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "venue": self.venue,
            "instrument_id": self.instrument_id,
            "side": self.side,
            "limit_price": str(self.limit_price),
            "size": str(self.size),
        }


@dataclass(frozen=True, slots=True)
class IntentDraft:
    user_id: int
    opportunity_key: str
    direction: str
    net_edge_cents: Decimal  # average per contract at `size`, after both legs' fees
    size: Decimal  # whole contracts, the same on both legs
    fees_usd: Decimal
    cost_usd: Decimal  # sum(price x size) of both legs, fees excluded
    legs: tuple[IntentLeg, IntentLeg]
    books: list[dict[str, Any]]  # JSON-able snapshot the edge was computed from, one per leg
    span_key: str | None
    created_ms: int
    leg_fees_usd: tuple[Decimal, Decimal] = field(default=(Decimal(0), Decimal(0)))

    def as_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "opportunity_key": self.opportunity_key,
            "direction": self.direction,
            "net_edge_cents": str(self.net_edge_cents),
            "size": str(self.size),
            "fees_usd": str(self.fees_usd),
            "cost_usd": str(self.cost_usd),
            "legs": [leg.as_json() for leg in self.legs],
            "books": self.books,
            "span_key": self.span_key,
            "created_ms": self.created_ms,
        }


def books_snapshot(quote: DirectionQuote) -> list[dict[str, Any]]:
    """Each leg's ask ladder, best first, with the book's timestamps: what the edge was computed from."""
    return [
        {
            "venue": book.venue,
            "instrument_id": book.instrument_id,
            "side": book.side,
            "asks": book.ask_ladder_json(),
            "venue_ts_ms": book.venue_ts_ms,
            "received_ts_ms": book.received_ts_ms,
        }
        for book in quote.books_used
    ]


def _max_size_within(fills: tuple[Fill, ...], max_leg_usd: Decimal) -> Decimal:
    """The largest whole size whose notional (size x the worst price used) is <= max_leg_usd."""
    best = Decimal(0)
    filled = Decimal(0)
    for price, size in fills:
        level_end = filled + size
        affordable = (max_leg_usd / price).to_integral_value(rounding=ROUND_FLOOR)
        # Sizes reaching into this level pay this level's price as their limit.
        if affordable > filled:
            best = max(best, min(level_end, affordable).to_integral_value(rounding=ROUND_FLOOR))
        filled = level_end
    return best


def size_for_user(quote: DirectionQuote, max_leg_usd: Decimal) -> Decimal:
    size = quote.size.to_integral_value(rounding=ROUND_FLOOR)
    for leg in quote.legs:
        size = min(size, _max_size_within(leg.fills, max_leg_usd))
    return size


class IntentEmitter:
    def __init__(self, cooldown_ms: int) -> None:
        self.cooldown_ms = cooldown_ms
        self._last_emitted_ms: dict[tuple[int, str], int] = {}

    def emit(
        self,
        evaluation: Evaluation,
        users: list[UserThreshold],
        now_ms: int,
        *,
        span_key: str | None = None,
    ) -> list[IntentDraft]:
        """Intents for the users whose thresholds the evaluation's best direction meets."""
        quote = evaluation.best
        if quote is None or quote.size < ONE:
            return []
        key = evaluation.opportunity_key
        drafts: list[IntentDraft] = []
        sized_cache: dict[Decimal, DirectionQuote] = {}
        for user in users:
            if not user.watches(key):
                continue
            last = self._last_emitted_ms.get((user.user_id, key))
            if last is not None and now_ms - last < self.cooldown_ms:
                continue
            size = size_for_user(quote, user.max_leg_usd)
            if size < ONE:
                continue
            sized = sized_cache.get(size)
            if sized is None:
                sized = sized_cache[size] = quote_at_size(quote, size)
            if sized.avg_net_edge_cents < user.min_net_edge_cents:
                continue
            self._last_emitted_ms[(user.user_id, key)] = now_ms
            drafts.append(self._draft(user, key, sized, span_key, now_ms))
        return drafts

    def _draft(
        self, user: UserThreshold, key: str, sized: DirectionQuote, span_key: str | None, now_ms: int
    ) -> IntentDraft:
        leg_yes, leg_no = (
            IntentLeg(leg.venue, leg.instrument_id, leg.side, leg.limit_price, sized.size)
            for leg in sized.legs
        )
        return IntentDraft(
            user_id=user.user_id,
            opportunity_key=key,
            direction=sized.direction,
            net_edge_cents=sized.avg_net_edge_cents,
            size=sized.size,
            fees_usd=sized.fees_usd,
            cost_usd=sized.cost_usd,
            legs=(leg_yes, leg_no),
            books=books_snapshot(sized),
            span_key=span_key,
            created_ms=now_ms,
            leg_fees_usd=(sized.legs[0].fee_usd, sized.legs[1].fee_usd),
        )

    def export_cooldowns(self) -> dict[str, int]:
        return {f"{user_id}|{key}": ms for (user_id, key), ms in self._last_emitted_ms.items()}

    def restore_cooldowns(self, exported: dict[str, int]) -> None:
        for joined, ms in exported.items():
            user_id, key = joined.split("|", 1)
            self._last_emitted_ms[(int(user_id), key)] = ms
