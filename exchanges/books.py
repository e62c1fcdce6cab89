"""One order-book representation for both venues (pure: no Django, no I/O).

Prices are Decimal dollars in (0, 1); sizes are Decimal contracts (Kalshi) or shares
(Polymarket). Both ladders are sorted best first: bids descending, asks ascending.

A `Book` is the book of one *outcome side* we can buy: for Kalshi one market yields two books
(YES and NO, with asks derived from the other side's bids); for Polymarket each token id is
its own book (the pair says which token is YES and which is NO).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

ONE_DOLLAR = Decimal("1")
KALSHI = "kalshi"
POLYMARKET = "polymarket"
VENUES = (KALSHI, POLYMARKET)
YES = "yes"
NO = "no"


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    size: Decimal

    def as_json(self) -> dict[str, str]:
        return {"price": str(self.price), "size": str(self.size)}


@dataclass(frozen=True, slots=True)
class Book:
    venue: str  # "kalshi" | "polymarket"
    instrument_id: str  # Kalshi market ticker, or Polymarket token id
    side: str  # "yes" | "no": the outcome this book sells
    bids: tuple[Level, ...] = ()  # best (highest) first
    asks: tuple[Level, ...] = ()  # best (lowest) first
    venue_ts_ms: int | None = None  # the venue's own timestamp, when it sends one
    received_ts_ms: int = 0  # when we received it (injected clock)
    extra: dict = field(default_factory=dict, compare=False)  # tick_size, neg_risk, ...

    @property
    def best_ask(self) -> Level | None:
        return self.asks[0] if self.asks else None

    @property
    def best_bid(self) -> Level | None:
        return self.bids[0] if self.bids else None

    @property
    def ts_ms(self) -> int:
        """The time the book is valid at: the venue's stamp if given, else our receive time."""
        return self.venue_ts_ms if self.venue_ts_ms is not None else self.received_ts_ms

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0].price >= self.asks[0].price)

    def ask_ladder_json(self) -> list[dict[str, str]]:
        return [level.as_json() for level in self.asks]


def sorted_levels(
    levels: Iterable[tuple[Decimal, Decimal]], *, best_first_ascending: bool
) -> tuple[Level, ...]:
    """Aggregate equal prices, drop empty levels, and sort best first."""
    merged: dict[Decimal, Decimal] = {}
    for price, size in levels:
        if size > 0:
            merged[price] = merged.get(price, Decimal(0)) + size
    ordered = sorted(merged.items(), key=lambda kv: kv[0], reverse=not best_first_ascending)
    return tuple(Level(price=p, size=s) for p, s in ordered)


def kalshi_books(
    ticker: str,
    yes_bids: Sequence[tuple[Decimal, Decimal]],
    no_bids: Sequence[tuple[Decimal, Decimal]],
    *,
    venue_ts_ms: int | None = None,
    received_ts_ms: int = 0,
) -> dict[str, Book]:
    """Kalshi lists bids only: a YES ask at p is a NO bid at 1 - p (same size), and vice versa."""
    yes_bid_levels = sorted_levels(yes_bids, best_first_ascending=False)
    no_bid_levels = sorted_levels(no_bids, best_first_ascending=False)
    yes_asks = tuple(Level(ONE_DOLLAR - lv.price, lv.size) for lv in no_bid_levels)
    no_asks = tuple(Level(ONE_DOLLAR - lv.price, lv.size) for lv in yes_bid_levels)
    common = {
        "venue": KALSHI,
        "instrument_id": ticker,
        "venue_ts_ms": venue_ts_ms,
        "received_ts_ms": received_ts_ms,
    }
    return {
        YES: Book(side=YES, bids=yes_bid_levels, asks=yes_asks, **common),
        NO: Book(side=NO, bids=no_bid_levels, asks=no_asks, **common),
    }


def polymarket_book(
    token_id: str,
    side: str,
    bids: Iterable[tuple[Decimal, Decimal]],
    asks: Iterable[tuple[Decimal, Decimal]],
    *,
    venue_ts_ms: int | None = None,
    received_ts_ms: int = 0,
    extra: dict | None = None,
) -> Book:
    """Polymarket serves bids ascending and asks descending (best last); we re-sort, never trust order."""
    return Book(
        venue=POLYMARKET,
        instrument_id=token_id,
        side=side,
        bids=sorted_levels(bids, best_first_ascending=False),
        asks=sorted_levels(asks, best_first_ascending=True),
        venue_ts_ms=venue_ts_ms,
        received_ts_ms=received_ts_ms,
        extra=extra or {},
    )
