"""L2 order books kept from a venue's websocket snapshots and deltas (pure: no Django, no I/O).

`KalshiL2` reads Kalshi WS v2 `orderbook_snapshot` / `orderbook_delta` messages, `PolymarketL2`
the Polymarket CLOB market channel's `book` / `price_change` events, both in every documented
form (current and legacy). Prices and sizes are Decimal, levels keyed by Decimal so "0.080" and
"0.0800" are one level. Unknown fields and unknown message types are ignored.

A book that can no longer be trusted (a Kalshi sequence gap, a crossed book, a Polymarket `book`
whose `hash` does not verify) is *stale*: it yields no `Book` until a new snapshot makes it whole
again. `apply` says which instruments changed and which just went stale, so the client can ask
for a resnapshot.

A Kalshi book is crossed when its best YES bid and best NO bid add up to $1 or more (a YES bid at
or above the YES ask that the NO bid implies: the venue would have matched them); a Polymarket
book when its best bid is at or above its best ask. A Polymarket `book` event's `hash` is checked
with py-clob-client's own computation (`polymarket_book_hash`); a `price_change`'s `hash` is the
hash of the order that caused the change, which a client cannot check.

The books come out as the `exchanges.books.Book`s ingest uses (built by `kalshi_books` /
`polymarket_book`, as the REST adapters build them) and as recording lines (ingest.recording's
format: `t` receive ms, `vts` venue ms when known), so a stream book and a REST book of the same
ladders are equal, live and in a replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from py_clob_client.clob_types import OrderBookSummary, OrderSummary
from py_clob_client.utilities import generate_orderbook_summary_hash

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book, kalshi_books, polymarket_book

CENTS_PER_DOLLAR = Decimal(100)
ZERO = Decimal(0)
ONE = Decimal(1)

Ladder = dict[Decimal, Decimal]  # price -> size, sizes > 0
Levels = list[tuple[Decimal, Decimal]]  # (price, size), best first
Ladders = tuple[Levels, Levels]  # a whole book's two sides, as `ladders()` copies them


@dataclass(frozen=True, slots=True)
class Applied:
    """What one message did: instruments whose book changed and is whole, instruments that just
    went stale (they need a resnapshot), and for Kalshi the subscription whose sequence broke.
    Why a book went stale, when the client acts on it, is asked of the L2 (`KalshiL2.crossed`,
    `PolymarketL2.hash_failed`): every message builds an `Applied`, few go stale."""

    changed: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    gap_sid: int | None = None


NOTHING = Applied()


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _ladder_items(ladder: Ladder) -> list[tuple[Decimal, Decimal]]:
    return sorted(ladder.items(), reverse=True)


# --- Kalshi --------------------------------------------------------------------------------------


def _kalshi_levels(msg: Mapping[str, Any], side: str) -> Ladder | None:
    """One snapshot side: `<side>_dollars_fp`, else legacy `<side>_dollars`, else legacy cents.
    An absent side is an empty ladder; None if a level cannot be read."""
    if f"{side}_dollars_fp" in msg:
        raw, scale = msg[f"{side}_dollars_fp"], None
    elif f"{side}_dollars" in msg:
        raw, scale = msg[f"{side}_dollars"], None
    elif side in msg:
        raw, scale = msg[side], CENTS_PER_DOLLAR
    else:
        return {}
    ladder: Ladder = {}
    for level in raw or ():
        if not isinstance(level, list | tuple) or len(level) < 2:
            return None
        price, size = _decimal(level[0]), _decimal(level[1])
        if price is None or size is None:
            return None
        if scale is not None:
            price = price / scale
        if size > 0:
            ladder[price] = ladder.get(price, ZERO) + size
    return ladder


@dataclass(slots=True)
class _KalshiMarket:
    sid: int | None
    yes: Ladder = field(default_factory=dict)
    no: Ladder = field(default_factory=dict)
    stale: bool = False
    crossed: bool = False  # stale because its best bids added up to $1 or more


class KalshiL2:
    """Every subscribed Kalshi market's YES and NO bid ladders, with per-`sid` sequence checks."""

    def __init__(self) -> None:
        self._markets: dict[str, _KalshiMarket] = {}
        self._last_seq: dict[int, int] = {}

    def apply(self, message: Mapping[str, Any]) -> Applied:
        kind = message.get("type")
        if kind not in ("orderbook_snapshot", "orderbook_delta"):
            return NOTHING
        msg = message.get("msg")
        if not isinstance(msg, Mapping) or not isinstance(msg.get("market_ticker"), str):
            return NOTHING
        ticker = msg["market_ticker"]
        sid, seq = _int(message.get("sid")), _int(message.get("seq"))
        went_stale: list[str] = []
        gap_sid = None
        if sid is not None and seq is not None:
            last = self._last_seq.get(sid)
            self._last_seq[sid] = seq
            if last is not None and seq != last + 1:
                gap_sid = sid
                went_stale = self._stale_sid(sid)
        if kind == "orderbook_snapshot":
            yes, no = _kalshi_levels(msg, YES), _kalshi_levels(msg, NO)
            if yes is None or no is None:
                market = self._markets.get(ticker)
                if market is not None and not market.stale:
                    market.stale = True
                    went_stale.append(ticker)
                return Applied(stale=tuple(went_stale), gap_sid=gap_sid)
            market = self._markets[ticker] = _KalshiMarket(sid=sid, yes=yes, no=no)
            if ticker in went_stale:
                went_stale.remove(ticker)
            if yes and no and max(yes) + max(no) >= ONE:
                market.stale = market.crossed = True
                return Applied(stale=(*went_stale, ticker), gap_sid=gap_sid)
            return Applied(changed=(ticker,), stale=tuple(went_stale), gap_sid=gap_sid)
        market = self._markets.get(ticker)
        if market is None or market.stale:
            return Applied(stale=tuple(went_stale), gap_sid=gap_sid)
        return self._delta(ticker, market, msg, went_stale, gap_sid)

    def _delta(
        self,
        ticker: str,
        market: _KalshiMarket,
        msg: Mapping[str, Any],
        went_stale: list[str],
        gap_sid: int | None,
    ) -> Applied:
        side = msg.get("side")
        if "price_dollars" in msg:
            price, delta = _decimal(msg.get("price_dollars")), _decimal(msg.get("delta_fp"))
        else:
            cents = _decimal(msg.get("price"))
            price = cents / CENTS_PER_DOLLAR if cents is not None else None
            delta = _decimal(msg.get("delta_fp", msg.get("delta")))
        if side not in (YES, NO) or price is None or delta is None:
            # A delta we cannot read leaves the book unknown: stale until a snapshot.
            market.stale = True
            return Applied(stale=(*went_stale, ticker), gap_sid=gap_sid)
        ladder = market.yes if side == YES else market.no
        size = ladder.get(price, ZERO) + delta
        if size > 0:
            ladder[price] = size
        else:
            ladder.pop(price, None)
        if delta > 0:
            # A whole book is not crossed, so only a level added or grown can cross it, and only
            # against the other side's best bid.
            other = market.no if side == YES else market.yes
            if other and price + max(other) >= ONE:
                market.stale = market.crossed = True
                return Applied(stale=(*went_stale, ticker), gap_sid=gap_sid)
        return Applied(changed=(ticker,), stale=tuple(went_stale), gap_sid=gap_sid)

    def _stale_sid(self, sid: int) -> list[str]:
        stale = []
        for ticker, market in self._markets.items():
            if market.sid == sid and not market.stale:
                market.stale = True
                stale.append(ticker)
        return stale

    def mark_all_stale(self) -> None:
        """After a reconnect nothing carries over: every book waits for its new snapshot."""
        for market in self._markets.values():
            market.stale = True
        self._last_seq.clear()

    def crossed(self, tickers: Iterable[str]) -> list[str]:
        """Of `tickers`, those stale because their book crossed (until a snapshot replaces it)."""
        return [t for t in tickers if (market := self._markets.get(t)) is not None and market.crossed]

    def forget_sid(self, sid: int) -> list[str]:
        """A subscription the venue ended (errors 10/17/25): its books are stale."""
        self._last_seq.pop(sid, None)
        return self._stale_sid(sid)

    def remove(self, ticker: str) -> None:
        self._markets.pop(ticker, None)

    def is_whole(self, ticker: str) -> bool:
        market = self._markets.get(ticker)
        return market is not None and not market.stale

    def stale_instruments(self, tickers: Iterable[str]) -> list[str]:
        """Of `tickers`, those without a whole book (never snapshotted, or stale)."""
        return [t for t in tickers if not self.is_whole(t)]

    def ladders(self, ticker: str) -> Ladders | None:
        """The whole book's (YES bids, NO bids), best first; None if not whole."""
        market = self._markets.get(ticker)
        if market is None or market.stale:
            return None
        return _ladder_items(market.yes), _ladder_items(market.no)

    def books(
        self, ticker: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Book] | None:
        """The market's YES and NO books, as `kalshi_books` builds them from REST; None if not whole."""
        ladders = self.ladders(ticker)
        if ladders is None:
            return None
        return kalshi_books_of(ticker, ladders, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms)

    def recording_line(
        self, ticker: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Any] | None:
        ladders = self.ladders(ticker)
        if ladders is None:
            return None
        return kalshi_recording_line(ticker, ladders, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms)


# The builders below take a copy of a book's ladders (`ladders()`), so a client can build outside
# the lock that guards the L2 books.


def kalshi_books_of(
    ticker: str, ladders: Ladders, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Book]:
    """The market's YES and NO books from its (YES bids, NO bids), as `kalshi_books` builds them from REST."""
    yes, no = ladders
    return kalshi_books(ticker, yes, no, venue_ts_ms=venue_ts_ms, received_ts_ms=received_ts_ms)


def kalshi_recording_line(
    ticker: str, ladders: Ladders, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Any]:
    yes, no = ladders
    line: dict[str, Any] = {"t": received_ts_ms, "venue": KALSHI, "id": ticker}
    if venue_ts_ms is not None:
        line["vts"] = venue_ts_ms
    line["yes"] = [[str(p), str(s)] for p, s in yes]
    line["no"] = [[str(p), str(s)] for p, s in no]
    return line


# --- Polymarket ----------------------------------------------------------------------------------

# The fields of the venue's order book summary besides its levels, in the summary's order.
_SUMMARY_FIELDS = (
    "market",
    "asset_id",
    "timestamp",
    "min_order_size",
    "tick_size",
    "neg_risk",
    "last_trade_price",
)


def polymarket_book_hash(event: Mapping[str, Any]) -> str:
    """The hash the venue gives the book of a `book` event (or a REST /book body), computed by
    py-clob-client's `generate_orderbook_summary_hash` (SHA1 of the summary's compact JSON with
    `hash` blank). Its parser (`parse_raw_orderbook_summary`) insists on every field of the REST
    summary, which a `book` event may not carry, so the summary is built here: a field the event
    lacks is null, and the levels keep the order they came in."""
    levels = {
        side: [
            OrderSummary(price=level.get("price"), size=level.get("size")) for level in event.get(side) or ()
        ]
        for side in ("bids", "asks")
    }
    fields = {name: event.get(name) for name in _SUMMARY_FIELDS}
    return generate_orderbook_summary_hash(OrderBookSummary(**fields, **levels, hash=""))


def _hash_verifies(event: Mapping[str, Any]) -> bool:
    sent = event.get("hash")
    if not isinstance(sent, str):
        return True  # no hash sent: nothing to check
    return sent.removeprefix("0x") == polymarket_book_hash(event)


def _polymarket_levels(raw: Any) -> Ladder | None:
    ladder: Ladder = {}
    for level in raw or ():
        if not isinstance(level, Mapping):
            return None
        price, size = _decimal(level.get("price")), _decimal(level.get("size"))
        if price is None or size is None:
            return None
        if size > 0:
            ladder[price] = size
    return ladder


@dataclass(slots=True)
class _PolymarketAsset:
    market: str
    bids: Ladder = field(default_factory=dict)
    asks: Ladder = field(default_factory=dict)
    venue_ts_ms: int | None = None
    stale: bool = False

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


class PolymarketL2:
    """Every subscribed Polymarket token's bids and asks. With `verify_hashes`, a `book` whose
    `hash` does not verify leaves the asset stale (`hash_failed`) until a book that does."""

    def __init__(self) -> None:
        self._assets: dict[str, _PolymarketAsset] = {}
        self._hash_failed: set[str] = set()
        self.verify_hashes = True

    def apply(self, event: Any) -> Applied:
        """One decoded frame: an event object, or a JSON array of them (the initial dump)."""
        if isinstance(event, list):
            changed: list[str] = []
            stale: list[str] = []
            for item in event:
                applied = self.apply(item)
                changed = [c for c in changed if c not in applied.stale] + list(applied.changed)
                stale = [s for s in stale if s not in applied.changed] + list(applied.stale)
            return Applied(changed=tuple(dict.fromkeys(changed)), stale=tuple(dict.fromkeys(stale)))
        if not isinstance(event, Mapping):
            return NOTHING
        kind = event.get("event_type")
        if kind == "book":
            return self._book(event)
        if kind == "price_change":
            return self._price_change(event)
        return NOTHING

    def _book(self, event: Mapping[str, Any]) -> Applied:
        asset_id = event.get("asset_id")
        if not isinstance(asset_id, str):
            return NOTHING
        bids, asks = _polymarket_levels(event.get("bids")), _polymarket_levels(event.get("asks"))
        if bids is None or asks is None:
            return self._make_stale(asset_id)
        if self.verify_hashes and not _hash_verifies(event):
            # Stale even if never whole before: the client asks for a fresh book either way.
            old = self._assets.get(asset_id)
            if old is not None:
                old.stale = True
            self._hash_failed.add(asset_id)
            return Applied(stale=(asset_id,))
        self._hash_failed.discard(asset_id)
        # No venue time for a snapshot: its `timestamp` can be when the book last changed, long
        # before it was sent, while the book it carries is current as received.
        asset = _PolymarketAsset(market=str(event.get("market") or ""), bids=bids, asks=asks)
        self._assets[asset_id] = asset
        if asset.crossed():
            asset.stale = True
            return Applied(stale=(asset_id,))
        return Applied(changed=(asset_id,))

    def _price_change(self, event: Mapping[str, Any]) -> Applied:
        ts_ms = _int(event.get("timestamp"))
        if isinstance(event.get("price_changes"), list):
            changes = [(c.get("asset_id"), c) for c in event["price_changes"] if isinstance(c, Mapping)]
        elif isinstance(event.get("changes"), list):  # the legacy form: one asset per message
            changes = [(event.get("asset_id"), c) for c in event["changes"] if isinstance(c, Mapping)]
        else:
            return NOTHING
        touched: dict[str, None] = {}
        stale: dict[str, None] = {}
        for asset_id, change in changes:
            asset = self._assets.get(asset_id) if isinstance(asset_id, str) else None
            if asset is None or asset.stale:
                continue
            price, size = _decimal(change.get("price")), _decimal(change.get("size"))
            side = change.get("side")
            if price is None or size is None or side not in ("BUY", "SELL"):
                asset.stale = True
                stale[asset_id] = None
                continue
            ladder = asset.bids if side == "BUY" else asset.asks
            if size > 0:
                ladder[price] = size
            else:
                ladder.pop(price, None)
            if ts_ms is not None:
                asset.venue_ts_ms = ts_ms
            touched[asset_id] = None
        for asset_id in touched:
            if self._assets[asset_id].crossed():
                self._assets[asset_id].stale = True
                stale[asset_id] = None
        changed = tuple(a for a in touched if a not in stale)
        return Applied(changed=changed, stale=tuple(stale))

    def _make_stale(self, asset_id: str) -> Applied:
        asset = self._assets.get(asset_id)
        if asset is None or asset.stale:
            return NOTHING
        asset.stale = True
        return Applied(stale=(asset_id,))

    def mark_all_stale(self) -> None:
        for asset in self._assets.values():
            asset.stale = True

    def hash_failed(self, asset_ids: Iterable[str]) -> list[str]:
        """Of `asset_ids`, those stale because their last `book`'s hash did not verify."""
        return [a for a in asset_ids if a in self._hash_failed]

    def remove(self, asset_id: str) -> None:
        self._assets.pop(asset_id, None)
        self._hash_failed.discard(asset_id)

    def is_whole(self, asset_id: str) -> bool:
        asset = self._assets.get(asset_id)
        return asset is not None and not asset.stale

    def stale_instruments(self, asset_ids: Iterable[str]) -> list[str]:
        return [a for a in asset_ids if not self.is_whole(a)]

    def ladders(self, asset_id: str) -> Ladders | None:
        """The whole book's (bids best first, asks best first); None if not whole."""
        asset = self._assets.get(asset_id)
        if asset is None or asset.stale:
            return None
        return _ladder_items(asset.bids), sorted(asset.asks.items())

    def venue_ts_ms(self, asset_id: str) -> int | None:
        asset = self._assets.get(asset_id)
        return asset.venue_ts_ms if asset else None

    def book(
        self, asset_id: str, side: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> Book | None:
        """The token's book, as `polymarket_book` builds it from REST; None if not whole."""
        ladders = self.ladders(asset_id)
        if ladders is None:
            return None
        return polymarket_book_of(
            asset_id, side, ladders, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms
        )

    def recording_line(
        self, asset_id: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Any] | None:
        ladders = self.ladders(asset_id)
        if ladders is None:
            return None
        return polymarket_recording_line(
            asset_id, ladders, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms
        )


def polymarket_book_of(
    asset_id: str, side: str, ladders: Ladders, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> Book:
    """The token's book from its (bids, asks), as `polymarket_book` builds it from REST."""
    bids, asks = ladders
    return polymarket_book(asset_id, side, bids, asks, venue_ts_ms=venue_ts_ms, received_ts_ms=received_ts_ms)


def polymarket_recording_line(
    asset_id: str, ladders: Ladders, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Any]:
    bids, asks = ladders
    line: dict[str, Any] = {"t": received_ts_ms, "venue": POLYMARKET, "id": asset_id}
    if venue_ts_ms is not None:
        line["vts"] = venue_ts_ms
    line["bids"] = [{"price": str(p), "size": str(s)} for p, s in bids]
    line["asks"] = [{"price": str(p), "size": str(s)} for p, s in asks]
    return line
