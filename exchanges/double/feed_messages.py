"""The frames of the double's market-data feeds, built from its state's books: pure functions.

Kalshi WS v2 (`orderbook_snapshot`, `orderbook_delta`, `market_lifecycle_v2`) and the Polymarket
CLOB market channel (`book`, `price_change`, `market_resolved`), each in the venue's current form
and, where the venue changed it, the legacy one. A ladder here is {Decimal price: Decimal size}:
levels are keyed by value, so "0.42" and "0.4200" are one level.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .polymarket_api import book_body
from .state import KalshiMarket, PolymarketBook

Ladder = dict[Decimal, Decimal]
KalshiBook = tuple[Ladder, Ladder]  # YES bids, NO bids
PolymarketLadders = tuple[Ladder, Ladder]  # bids, asks

# Kalshi lifecycle statuses after which a market has its result.
RESOLVED_STATUSES = ("determined", "finalized")
SETTLEMENT_VALUES = {"yes": "1.0000", "no": "0.0000"}
ZERO = Decimal(0)


def ladder(levels: Iterable[Sequence[Any]] | Iterable[Mapping[str, Any]]) -> Ladder:
    """{price: size} from Kalshi [[price, count]] or Polymarket [{"price", "size"}] levels;
    a level repeated adds up, as the venue would show it."""
    out: Ladder = {}
    for level in levels:
        price, size = (level["price"], level["size"]) if isinstance(level, Mapping) else level
        key = Decimal(str(price))
        out[key] = out.get(key, ZERO) + Decimal(str(size))
    return {price: size for price, size in out.items() if size > 0}


def changed_levels(old: Ladder, new: Ladder) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(price, old size, new size) for every level that differs, by ascending price."""
    return [
        (price, old.get(price, ZERO), new.get(price, ZERO))
        for price in sorted(old.keys() | new.keys())
        if old.get(price, ZERO) != new.get(price, ZERO)
    ]


# --- Kalshi -----------------------------------------------------------------------------------


def kalshi_market_id(ticker: str) -> str:
    """A stable UUID per ticker (Kalshi's `market_id`; the double has no other id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kalshi-double:{ticker}"))


def kalshi_book(market: KalshiMarket) -> KalshiBook:
    return ladder(market.yes_bids), ladder(market.no_bids)


def _cents(price: Decimal) -> int:
    return int(price * 100)


def kalshi_snapshot(ticker: str, book: KalshiBook, *, legacy: bool = False) -> dict[str, Any]:
    """The `msg` of an `orderbook_snapshot`: bids ascending; an empty side has no key.

    Current form: `yes_dollars_fp` / `no_dollars_fp` as [["0.4200", "13.00"]]. Legacy (2026-03)
    form: `yes` / `no` as [[cents, count]] and `yes_dollars` / `no_dollars` as [["0.420", count]],
    counts as whole contracts (a fractional count is rounded down there)."""
    msg: dict[str, Any] = {"market_ticker": ticker, "market_id": kalshi_market_id(ticker)}
    for side, levels in zip(("yes", "no"), book, strict=True):
        if not levels:
            continue
        prices = sorted(levels)
        if legacy:
            msg[side] = [[_cents(p), int(levels[p])] for p in prices]
            msg[f"{side}_dollars"] = [[f"{p:.3f}", int(levels[p])] for p in prices]
        else:
            msg[f"{side}_dollars_fp"] = [[f"{p:.4f}", f"{levels[p]:.2f}"] for p in prices]
    return msg


def kalshi_deltas(
    ticker: str, old: KalshiBook, new: KalshiBook, ts_ms: int, *, legacy: bool = False
) -> list[dict[str, Any]]:
    """The `msg` of one `orderbook_delta` per changed level: a signed change that, added to the
    old count, gives the new one (a level at zero is gone). Levels that shrink or go come first,
    then those that appear or grow (each YES side first): as the venue's book, the book between
    two messages is never crossed when `old` and `new` are not (its levels are those of `old` cut
    down, then some of `new`'s).

    Current form: `price_dollars` "0.4200", `delta_fp` "-54.00", `ts_ms`. Legacy form: `price`
    in cents and `delta` in whole contracts, `ts` as RFC 3339."""
    market_id = kalshi_market_id(ticker)
    changes = [
        (side, price, before, after)
        for side, old_levels, new_levels in zip(("yes", "no"), old, new, strict=True)
        for price, before, after in changed_levels(old_levels, new_levels)
    ]
    out = []
    for growing in (False, True):
        for side, price, before, after in changes:
            if (after > before) != growing:
                continue
            msg: dict[str, Any] = {"market_ticker": ticker, "market_id": market_id, "side": side}
            if legacy:
                msg["price"] = _cents(price)
                msg["delta"] = int(after) - int(before)
                msg["ts"] = datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
            else:
                msg["price_dollars"] = f"{price:.4f}"
                msg["delta_fp"] = f"{after - before:.2f}"
                msg["ts_ms"] = ts_ms
            out.append(msg)
    return out


def kalshi_lifecycle_events(
    ticker: str, old: tuple[str, str] | None, new: tuple[str, str], now_s: int
) -> list[dict[str, Any]]:
    """The `market_lifecycle_v2` messages for a market whose (status, result) went old -> new.

    Mapping (Kalshi sends no "closed" event):
    - status becomes `closed`: `deactivated` (is_deactivated true);
    - status becomes `active` from another status: `activated` (is_deactivated false);
    - status becomes `determined` or `finalized` with a result, and that result was not already
      determined: `determined` with `result`, `settlement_value` ("1.0000" for yes, "0.0000" for
      no, absent for scalar) and `determination_ts` (unix seconds);
    - status becomes `finalized`: `settled` with `settled_ts` (after `determined` when both).
    Other statuses (initialized, inactive, disputed, amended) send nothing."""
    old_status, old_result = old if old is not None else ("active", "")
    status, result = new
    if (old_status, old_result) == (status, result):
        return []
    base = {"market_ticker": ticker, "market_id": kalshi_market_id(ticker)}
    events: list[dict[str, Any]] = []
    if status == "closed" and old_status != "closed":
        events.append({**base, "event_type": "deactivated", "is_deactivated": True})
    if status == "active" and old_status != "active":
        events.append({**base, "event_type": "activated", "is_deactivated": False})
    already_determined = old_status in RESOLVED_STATUSES and old_result == result
    if status in RESOLVED_STATUSES and result and not already_determined:
        event = {**base, "event_type": "determined", "result": result, "determination_ts": now_s}
        if result in SETTLEMENT_VALUES:
            event["settlement_value"] = SETTLEMENT_VALUES[result]
        events.append(event)
    if status == "finalized" and old_status != "finalized":
        events.append({**base, "event_type": "settled", "settled_ts": now_s})
    return events


# --- Polymarket -------------------------------------------------------------------------------


def polymarket_ladders(book: PolymarketBook) -> PolymarketLadders:
    return ladder(book.bids), ladder(book.asks)


def polymarket_book_event(book: PolymarketBook) -> dict[str, Any]:
    """A `book` event: the REST /book body (levels, timestamp in ms as a string, min_order_size,
    tick_size, neg_risk, last_trade_price) and its hash, the one GET /book gives for the same
    book (py-clob-client's `generate_orderbook_summary_hash`)."""
    return {"event_type": "book", **book_body(book)}


def polymarket_order_hash(token_id: str, change: Mapping[str, str], timestamp_ms: int) -> str:
    """A stand-in for the hash of the order that caused a change (the double keeps no orders):
    opaque to a client, like the venue's."""
    key = f"{token_id}:{change['side']}:{change['price']}:{change['size']}:{timestamp_ms}"
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()


def _best(levels: Ladder, *, bid: bool) -> str:
    # An empty side reads "0" for the best bid and "1" for the best ask (nothing better than $1).
    if not levels:
        return "0" if bid else "1"
    return f"{(max(levels) if bid else min(levels)).normalize():f}"


def _size(size: Decimal) -> str:
    return "0" if size == 0 else f"{size.normalize():f}"


def polymarket_changes(old: PolymarketLadders, new: PolymarketLadders) -> list[dict[str, str]]:
    """One {price, size, side} per changed level: size is the level's new total ("0" removes it),
    side BUY for bids, SELL for asks."""
    out = []
    for side, old_levels, new_levels in zip(("BUY", "SELL"), old, new, strict=True):
        for price, _, after in changed_levels(old_levels, new_levels):
            out.append({"price": f"{price.normalize():f}", "size": _size(after), "side": side})
    return out


def polymarket_price_change(
    book: PolymarketBook, new: PolymarketLadders, changes: list[dict[str, str]], *, legacy: bool = False
) -> dict[str, Any]:
    """A `price_change` event for one asset's changed levels.

    Current form: `price_changes[]` each with asset_id, price, size, side, hash (of the order
    that caused the change: `polymarket_order_hash`) and the book's best_bid / best_ask after
    it. Legacy form: top-level `asset_id` and `hash` (the first change's order), `changes[]` of
    {price, side, size}."""
    ts = book.timestamp_ms
    head = {"event_type": "price_change", "market": book.market, "timestamp": str(ts)}
    if legacy:
        order_hash = polymarket_order_hash(book.token_id, changes[0], ts) if changes else ""
        return {**head, "asset_id": book.token_id, "hash": order_hash, "changes": changes}
    best = {"best_bid": _best(new[0], bid=True), "best_ask": _best(new[1], bid=False)}
    return {
        **head,
        "price_changes": [
            {
                "asset_id": book.token_id,
                **change,
                "hash": polymarket_order_hash(book.token_id, change, ts),
                **best,
            }
            for change in changes
        ],
    }


def polymarket_market_resolved(tokens: Sequence[PolymarketBook], now_ms: int) -> dict[str, Any] | None:
    """The `market_resolved` event of a market whose tokens (in scenario order: the YES token
    first, then NO) have `winner` set; None until one has won."""
    winners = [book for book in tokens if book.winner]
    if not winners:
        return None
    outcomes = ["Yes", "No"][: len(tokens)] if len(tokens) <= 2 else [book.token_id for book in tokens]
    winner_index = next(i for i, book in enumerate(tokens) if book.winner)
    market = tokens[0].market or tokens[0].token_id
    return {
        "event_type": "market_resolved",
        "id": market,
        "market": market,
        "assets_ids": [book.token_id for book in tokens],
        "outcomes": outcomes,
        "winning_asset_id": winners[0].token_id,
        "winning_outcome": outcomes[winner_index],
        "timestamp": str(now_ms),
    }
