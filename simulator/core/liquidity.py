"""Liquidity a run has already taken from a book snapshot (pure: no Django, no I/O).

Intents arrive faster than books refresh. Without this ledger, ten intents decided on one
stale snapshot would each fill the same best ask. The ledger remembers, per (venue,
instrument_id, side), which snapshot it last filled from (`Book.ts_ms`: the venue's stamp, else
our receive time) and the size taken at each price. A decision on the same snapshot sees the
levels less that size; a newer snapshot is the venue's fresh view and resets the instrument.

An *older* snapshot than the one remembered (out-of-order delivery) is reduced as well: the
size we took from a newer view was, as far as we know, on the older one too. Filling from it
then adds to the newer snapshot's entry, so the ledger never goes back in time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from exchanges.books import Book, Level
from simulator.core.types import Fill

LedgerKey = tuple[str, str, str]  # (venue, instrument_id, side)
JSON_VERSION = 1


@dataclass(slots=True)
class _Taken:
    ts_ms: int
    by_price: dict[Decimal, Decimal] = field(default_factory=dict)


def _key(book: Book) -> LedgerKey:
    return (book.venue, book.instrument_id, book.side)


class LiquidityLedger:
    """Per run; mutated only by `consume`, after a trade is decided."""

    def __init__(self) -> None:
        self._taken: dict[LedgerKey, _Taken] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LiquidityLedger) and self._taken == other._taken

    __hash__ = None  # type: ignore[assignment]  # mutable

    def taken(self, book: Book) -> dict[Decimal, Decimal]:
        """Size already taken at each price on this book's snapshot ({} if none or if stale)."""
        entry = self._taken.get(_key(book))
        if entry is None or book.ts_ms > entry.ts_ms:
            return {}
        return dict(entry.by_price)

    def apply(self, book: Book) -> Book:
        """The book with its asks reduced by what this run took from the same snapshot."""
        taken = self.taken(book)
        if not taken:
            return book
        asks = []
        for level in book.asks:
            left = level.size - taken.get(level.price, Decimal(0))
            if left > 0:
                asks.append(Level(price=level.price, size=left))
        return replace(book, asks=tuple(asks))

    def consume(self, book: Book, fills: Iterable[Fill]) -> None:
        """Remember that `fills` were taken from `book`'s snapshot."""
        key = _key(book)
        entry = self._taken.get(key)
        if entry is None or book.ts_ms > entry.ts_ms:
            entry = _Taken(ts_ms=book.ts_ms)
            self._taken[key] = entry
        for fill in fills:
            entry.by_price[fill.price] = entry.by_price.get(fill.price, Decimal(0)) + fill.size

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "books": [
                {
                    "venue": venue,
                    "instrument_id": instrument_id,
                    "side": side,
                    "ts_ms": entry.ts_ms,
                    "taken": [[str(price), str(size)] for price, size in sorted(entry.by_price.items())],
                }
                for (venue, instrument_id, side), entry in sorted(self._taken.items())
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LiquidityLedger:
        """Rebuild from `to_json()`; None or {} (a fresh run) gives an empty ledger."""
        ledger = cls()
        if not data:
            return ledger
        if data.get("version") != JSON_VERSION:
            raise ValueError(f"unknown liquidity ledger version {data.get('version')!r}")
        for row in data["books"]:
            ledger._taken[(row["venue"], row["instrument_id"], row["side"])] = _Taken(
                ts_ms=int(row["ts_ms"]),
                by_price={Decimal(price): Decimal(size) for price, size in row["taken"]},
            )
        return ledger
