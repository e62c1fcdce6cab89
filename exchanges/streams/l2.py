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

Each side of a book is kept as the tuple of `Level`s a `Book` holds, best first (a Kalshi side
also mirrored at 1 - price: the other outcome's asks), replaced by a new tuple on every change,
never altered. A hand-over takes a book's tuples as they are (`levels()`, no copy), and the
`Book`s and the recording line are built from them afterwards, outside the client's lock, when
the consumer asks for them.

The books come out as the `exchanges.books.Book`s ingest uses (equal to what `kalshi_books` /
`polymarket_book` build from the same ladders over REST) and as recording lines
(ingest.recording's format: `t` receive ms, `vts` venue ms when known), so a stream book and a
REST book of the same ladders are equal, live and in a replay.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from py_clob_client.clob_types import OrderBookSummary, OrderSummary
from py_clob_client.utilities import generate_orderbook_summary_hash

from exchanges.books import KALSHI, NO, ONE_DOLLAR, POLYMARKET, YES, Book, Level

CENTS_PER_DOLLAR = Decimal(100)
ZERO = Decimal(0)
new_level = Level.of

Ladder = dict[Decimal, Decimal]  # price -> size, sizes > 0
Levels = list[tuple[Decimal, Decimal]]  # (price, size), best first
Ladders = tuple[Levels, Levels]  # a whole book's two sides, as `ladders()` lists them
LevelTuple = tuple[Level, ...]  # one side, best first, as a `Book` holds it
# A Kalshi market's YES bids, NO bids, YES asks (the NO bids at 1 - price), NO asks.
KalshiLevels = tuple[LevelTuple, LevelTuple, LevelTuple, LevelTuple]
PolymarketLevels = tuple[LevelTuple, LevelTuple]  # bids, asks


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
    if type(value) is not str:  # the venues send strings; a JSON number is read by its text
        if value is None or isinstance(value, bool):
            return None
        value = str(value)
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _is_mapping(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)  # the ABC's check only if not a dict


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _pairs(levels: LevelTuple) -> Levels:
    return [(level.price, level.size) for level in levels]


class _Side:
    """One side of a book: its levels best first as the tuple a `Book` holds, a new tuple on every
    change (one handed over never changes); each level's sort key, for `bisect` (the price, negated
    on a bid side); and for a Kalshi side the same levels at 1 - price, the other outcome's asks,
    in the same order (a YES bid at p is a NO ask at 1 - p)."""

    __slots__ = ("_bids", "_keys", "levels", "mirrored")

    def __init__(self, ladder: Ladder, *, bids: bool, mirrored: bool = False) -> None:
        ordered = sorted(ladder.items(), reverse=bids)
        self._bids = bids
        self._keys = [price.copy_negate() if bids else price for price, _ in ordered]
        self.levels: LevelTuple = tuple(new_level(price, size) for price, size in ordered)
        self.mirrored: LevelTuple | None = (
            tuple(new_level(ONE_DOLLAR - price, size) for price, size in ordered) if mirrored else None
        )

    def set(self, price: Decimal, size: Decimal) -> None:
        """The level at `price` is now `size` (gone if not above 0)."""
        key = price.copy_negate() if self._bids else price
        at = bisect_left(self._keys, key)
        self._put(at, key, at < len(self._keys) and self._keys[at] == key, price, size)

    def add(self, price: Decimal, delta: Decimal) -> None:
        """The level at `price` changes by `delta` (gone if no longer above 0)."""
        key = price.copy_negate() if self._bids else price
        at = bisect_left(self._keys, key)
        present = at < len(self._keys) and self._keys[at] == key
        self._put(at, key, present, price, (self.levels[at].size if present else ZERO) + delta)

    def _put(self, at: int, key: Decimal, present: bool, price: Decimal, size: Decimal) -> None:
        levels, mirrored = self.levels, self.mirrored
        end = at
        if present:
            # A level keeps its price as first written: "0.080" after "0.0800" is the same level.
            price = levels[at].price
            end = at + 1
        if size > 0:
            if not present:
                self._keys.insert(at, key)
            self.levels = (*levels[:at], new_level(price, size), *levels[end:])
            if mirrored is not None:
                self.mirrored = (*mirrored[:at], new_level(ONE_DOLLAR - price, size), *mirrored[end:])
        elif present:
            del self._keys[at]
            self.levels = levels[:at] + levels[end:]
            if mirrored is not None:
                self.mirrored = mirrored[:at] + mirrored[end:]


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


class _KalshiMarket:
    __slots__ = ("changed", "crossed", "no", "sid", "stale", "yes")

    def __init__(self, ticker: str, sid: int | None, yes: Ladder, no: Ladder) -> None:
        self.changed = Applied(changed=(ticker,))  # what most deltas did, made once
        self.sid = sid
        self.yes = _Side(yes, bids=True, mirrored=True)
        self.no = _Side(no, bids=True, mirrored=True)
        self.stale = False
        self.crossed = False  # stale because its best bids added up to $1 or more

    def levels(self) -> KalshiLevels:
        yes, no = self.yes, self.no
        return yes.levels, no.levels, no.mirrored or (), yes.mirrored or ()


class KalshiL2:
    """Every subscribed Kalshi market's YES and NO bid ladders, with per-`sid` sequence checks."""

    def __init__(self) -> None:
        self._markets: dict[str, _KalshiMarket] = {}
        self._last_seq: dict[int, int] = {}

    def apply(self, message: Mapping[str, Any]) -> Applied:
        kind = message.get("type")
        if kind != "orderbook_delta" and kind != "orderbook_snapshot":
            return NOTHING
        msg = message.get("msg")
        if not _is_mapping(msg):
            return NOTHING
        ticker = msg.get("market_ticker")
        if not isinstance(ticker, str):
            return NOTHING
        sid, seq = message.get("sid"), message.get("seq")
        if type(sid) is not int or type(seq) is not int:  # the usual form read at once; any other here
            sid, seq = _int(sid), _int(seq)
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
            market = self._markets[ticker] = _KalshiMarket(ticker, sid, yes, no)
            if ticker in went_stale:
                went_stale.remove(ticker)
            if yes and no and max(yes) + max(no) >= ONE_DOLLAR:
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
        if (side != YES and side != NO) or price is None or delta is None:
            # A delta we cannot read leaves the book unknown: stale until a snapshot.
            market.stale = True
            return Applied(stale=(*went_stale, ticker), gap_sid=gap_sid)
        mine, other = (market.yes, market.no) if side == YES else (market.no, market.yes)
        mine.add(price, delta)
        # A whole book is not crossed, so only a level added or grown can cross it, and only
        # against the other side's best bid.
        if delta > 0 and other.levels and price + other.levels[0].price >= ONE_DOLLAR:
            market.stale = market.crossed = True
            return Applied(stale=(*went_stale, ticker), gap_sid=gap_sid)
        if not went_stale and gap_sid is None:
            return market.changed
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

    def levels(self, ticker: str) -> KalshiLevels | None:
        """The whole book's level tuples as they are now (they never change: the next change
        makes new ones); None if not whole."""
        market = self._markets.get(ticker)
        if market is None or market.stale:
            return None
        return market.levels()

    def ladders(self, ticker: str) -> Ladders | None:
        """The whole book's (YES bids, NO bids), best first; None if not whole."""
        levels = self.levels(ticker)
        return None if levels is None else (_pairs(levels[0]), _pairs(levels[1]))

    def books(
        self, ticker: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Book] | None:
        """The market's YES and NO books, equal to what `kalshi_books` builds from REST; None if
        not whole."""
        levels = self.levels(ticker)
        if levels is None:
            return None
        return kalshi_books_of(ticker, levels, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms)

    def recording_line(
        self, ticker: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Any] | None:
        levels = self.levels(ticker)
        if levels is None:
            return None
        return kalshi_recording_line(ticker, levels, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms)


# The builders below take a book's level tuples (`levels()`), so a client can build outside the
# lock that guards the L2 books.


def kalshi_books_of(
    ticker: str, levels: KalshiLevels, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Book]:
    """The market's YES and NO books from its level tuples: a YES ask at p is a NO bid at 1 - p."""
    yes_bids, no_bids, yes_asks, no_asks = levels
    return {
        YES: Book.of(KALSHI, ticker, YES, yes_bids, yes_asks, venue_ts_ms, received_ts_ms),
        NO: Book.of(KALSHI, ticker, NO, no_bids, no_asks, venue_ts_ms, received_ts_ms),
    }


def kalshi_recording_line(
    ticker: str, levels: KalshiLevels, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Any]:
    line: dict[str, Any] = {"t": received_ts_ms, "venue": KALSHI, "id": ticker}
    if venue_ts_ms is not None:
        line["vts"] = venue_ts_ms
    line["yes"] = [[str(level.price), str(level.size)] for level in levels[0]]
    line["no"] = [[str(level.price), str(level.size)] for level in levels[1]]
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
        if not _is_mapping(level):
            return None
        price, size = _decimal(level.get("price")), _decimal(level.get("size"))
        if price is None or size is None:
            return None
        if size > 0:
            ladder[price] = ZERO + size  # as `polymarket_book` gives it
    return ladder


class _PolymarketAsset:
    __slots__ = ("asks", "bids", "changed", "market", "stale", "venue_ts_ms")

    def __init__(self, asset_id: str, market: str, bids: Ladder, asks: Ladder) -> None:
        self.changed = Applied(changed=(asset_id,))  # what most changes did, made once
        self.market = market
        self.bids = _Side(bids, bids=True)
        self.asks = _Side(asks, bids=False)
        self.venue_ts_ms: int | None = None
        self.stale = False

    def crossed(self) -> bool:
        bids, asks = self.bids.levels, self.asks.levels
        return bool(bids and asks and bids[0].price >= asks[0].price)


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
        if not _is_mapping(event):
            return NOTHING
        kind = event.get("event_type")
        if kind == "price_change":
            return self._price_change(event)
        if kind == "book":
            return self._book(event)
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
        asset = _PolymarketAsset(asset_id, str(event.get("market") or ""), bids, asks)
        self._assets[asset_id] = asset
        if asset.crossed():
            asset.stale = True
            return Applied(stale=(asset_id,))
        return asset.changed

    def _price_change(self, event: Mapping[str, Any]) -> Applied:
        ts_ms = _int(event.get("timestamp"))
        changes: Any = event.get("price_changes")
        if isinstance(changes, list):
            legacy_asset = None
        elif isinstance(event.get("changes"), list):  # the legacy form: one asset per message
            changes, legacy_asset = event["changes"], event.get("asset_id")
        else:
            return NOTHING
        touched: dict[str, None] = {}
        stale: dict[str, None] = {}
        for change in changes:
            if not _is_mapping(change):
                continue
            asset_id = change.get("asset_id") if legacy_asset is None else legacy_asset
            asset = self._assets.get(asset_id) if isinstance(asset_id, str) else None
            if asset is None or asset.stale:
                continue
            price, size = _decimal(change.get("price")), _decimal(change.get("size"))
            side = change.get("side")
            if price is None or size is None or (side != "BUY" and side != "SELL"):
                asset.stale = True
                stale[asset_id] = None
                continue
            (asset.bids if side == "BUY" else asset.asks).set(price, ZERO + size)
            if ts_ms is not None:
                asset.venue_ts_ms = ts_ms
            touched[asset_id] = None
        for asset_id in touched:
            if self._assets[asset_id].crossed():
                self._assets[asset_id].stale = True
                stale[asset_id] = None
        if not stale:
            if len(touched) == 1:
                return self._assets[next(iter(touched))].changed
            return Applied(tuple(touched))
        return Applied(changed=tuple(a for a in touched if a not in stale), stale=tuple(stale))

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

    def levels(self, asset_id: str) -> PolymarketLevels | None:
        """The whole book's (bids, asks) level tuples as they are now (they never change: the
        next change makes new ones); None if not whole."""
        asset = self._assets.get(asset_id)
        if asset is None or asset.stale:
            return None
        return asset.bids.levels, asset.asks.levels

    def ladders(self, asset_id: str) -> Ladders | None:
        """The whole book's (bids best first, asks best first); None if not whole."""
        levels = self.levels(asset_id)
        return None if levels is None else (_pairs(levels[0]), _pairs(levels[1]))

    def venue_ts_ms(self, asset_id: str) -> int | None:
        asset = self._assets.get(asset_id)
        return asset.venue_ts_ms if asset else None

    def book(
        self, asset_id: str, side: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> Book | None:
        """The token's book, equal to what `polymarket_book` builds from REST; None if not whole."""
        levels = self.levels(asset_id)
        if levels is None:
            return None
        return polymarket_book_of(
            asset_id, side, levels, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms
        )

    def recording_line(
        self, asset_id: str, *, received_ts_ms: int, venue_ts_ms: int | None = None
    ) -> dict[str, Any] | None:
        levels = self.levels(asset_id)
        if levels is None:
            return None
        return polymarket_recording_line(
            asset_id, levels, received_ts_ms=received_ts_ms, venue_ts_ms=venue_ts_ms
        )


def polymarket_book_of(
    asset_id: str, side: str, levels: PolymarketLevels, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> Book:
    """The token's book from its (bids, asks) level tuples."""
    bids, asks = levels
    return Book.of(POLYMARKET, asset_id, side, bids, asks, venue_ts_ms, received_ts_ms, {})


def polymarket_recording_line(
    asset_id: str, levels: PolymarketLevels, *, received_ts_ms: int, venue_ts_ms: int | None = None
) -> dict[str, Any]:
    bids, asks = levels
    line: dict[str, Any] = {"t": received_ts_ms, "venue": POLYMARKET, "id": asset_id}
    if venue_ts_ms is not None:
        line["vts"] = venue_ts_ms
    line["bids"] = [{"price": str(level.price), "size": str(level.size)} for level in bids]
    line["asks"] = [{"price": str(level.price), "size": str(level.size)} for level in asks]
    return line
