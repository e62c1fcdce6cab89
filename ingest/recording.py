"""The recording format, its writer and reader, and a replayer with injected time (pure apart from
the file itself).

A recording is gzip-compressed JSON lines. The first line is a header::

    {"format": "arbsim-recording", "version": 1, "pairs": [<pair>...], "source": "..."}

where each pair is `pair_to_json(PairSpec)`. Every following line is one book update as the
venue sent it (raw ladders, strings, so nothing is lost to normalisation)::

    {"t": 1767225600123, "venue": "kalshi", "id": "KXFEDDECISION-26DEC-C25",
     "yes": [["0.4200", "13.00"], ...], "no": [["0.5500", "20.00"], ...]}
    {"t": 1767225600150, "venue": "polymarket", "id": "<token id>", "vts": 1767225600101,
     "bids": [{"price": "0.48", "size": "120"}], "asks": [{"price": "0.52", "size": "75"}]}

`t` is when we received the update (ms); `vts`, optional, is the venue's own timestamp. Kalshi
lines carry the market's YES and NO *bids* (the venue lists bids only); Polymarket lines carry
one token's bids and asks in whatever order the venue served them.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from config.numbers import DecimalRule
from exchanges.books import (
    KALSHI,
    NO,
    ONE_DOLLAR,
    POLYMARKET,
    YES,
    Book,
    Level,
    kalshi_books,
    polymarket_book,
)
from exchanges.fees import FeeSchedule
from ingest.detector import PairSpec

FORMAT = "arbsim-recording"
VERSION = 1
# The speed-up factors a person may ask a replay for (ingest_run --speed, demo --speed).
REPLAY_SPEED = DecimalRule(Decimal("0.01"), Decimal("100000"), places=2)


class RecordingError(ValueError):
    """The file is not a recording this code can read."""


def pair_to_json(pair: PairSpec) -> dict[str, Any]:
    return {
        "opportunity_key": pair.opportunity_key,
        "kalshi_ticker": pair.kalshi_ticker,
        "poly_yes_token": pair.poly_yes_token,
        "poly_no_token": pair.poly_no_token,
        "kalshi_fee_rate": str(pair.kalshi_fees.rate),
        "poly_fee_rate": str(pair.poly_fees.rate),
        "max_skew_ms": pair.max_skew_ms,
        "max_age_ms": pair.max_age_ms,
    }


def pair_from_json(data: dict[str, Any]) -> PairSpec:
    return PairSpec(
        opportunity_key=data["opportunity_key"],
        kalshi_ticker=data["kalshi_ticker"],
        poly_yes_token=data["poly_yes_token"],
        poly_no_token=data["poly_no_token"],
        kalshi_fees=FeeSchedule(KALSHI, Decimal(data["kalshi_fee_rate"])),
        poly_fees=FeeSchedule(POLYMARKET, Decimal(data["poly_fee_rate"])),
        max_skew_ms=int(data.get("max_skew_ms", 2000)),
        max_age_ms=int(data.get("max_age_ms", 10000)),
    )


def token_sides(pairs: Iterable[PairSpec]) -> dict[str, str]:
    """Polymarket token id -> the outcome it sells ("yes"/"no"): what `to_book` needs."""
    sides: dict[str, str] = {}
    for pair in pairs:
        sides[pair.poly_yes_token] = YES
        sides[pair.poly_no_token] = NO
    return sides


def kalshi_update(
    t_ms: int,
    ticker: str,
    yes_bids: Sequence[tuple[Decimal | str, Decimal | str]],
    no_bids: Sequence[tuple[Decimal | str, Decimal | str]],
) -> dict[str, Any]:
    return {
        "t": t_ms,
        "venue": KALSHI,
        "id": ticker,
        "yes": [[str(p), str(s)] for p, s in yes_bids],
        "no": [[str(p), str(s)] for p, s in no_bids],
    }


def polymarket_update(
    t_ms: int,
    token_id: str,
    bids: Sequence[tuple[Decimal | str, Decimal | str]],
    asks: Sequence[tuple[Decimal | str, Decimal | str]],
    *,
    venue_ts_ms: int | None = None,
) -> dict[str, Any]:
    update: dict[str, Any] = {"t": t_ms, "venue": POLYMARKET, "id": token_id}
    if venue_ts_ms is not None:
        update["vts"] = venue_ts_ms
    update["bids"] = [{"price": str(p), "size": str(s)} for p, s in bids]
    update["asks"] = [{"price": str(p), "size": str(s)} for p, s in asks]
    return update


# Normalisation is the replay's hot path. Prices and sizes repeat, so their parsed forms are
# cached by the venue's own strings: small tables that stay in the CPU's cache. (Caching whole
# Level objects per (price, size) was slower: tens of thousands of them, each lookup a cache miss.)
# The caches are bounded by clearing them when they grow past a limit.
_CACHE_LIMIT = 100_000
# price string -> (the price, 1 - the price: the Kalshi ask that a bid on the other side makes)
_prices: dict[str, tuple[Decimal, Decimal]] = {}
_sizes: dict[str, Decimal] = {}
_new_object = object.__new__
_set_price = Level.__dict__["price"].__set__
_set_size = Level.__dict__["size"].__set__


def _price(text: str) -> tuple[Decimal, Decimal]:
    if len(_prices) > _CACHE_LIMIT:
        _prices.clear()
    value = Decimal(text)
    parsed = _prices[text] = (value, ONE_DOLLAR - value)
    return parsed


def _size(text: str) -> Decimal:
    if len(_sizes) > _CACHE_LIMIT:
        _sizes.clear()
    value = _sizes[text] = Decimal(text)
    return value


def _kalshi_order(raw: list[list[str]]) -> tuple[list[Level], list[Level], bool] | None:
    """The levels and their complements in the venue's order, and whether prices ascend.

    None when the ladder needs the general path (`sorted_levels`): an empty level, a repeated
    price, or prices out of order.
    """
    prices, sizes = _prices, _sizes
    plain: list[Level] = []
    complements: list[Level] = []
    previous: Decimal | None = None
    ascending: bool | None = None
    for price_text, size_text in raw:
        price, complement = prices.get(price_text) or _price(price_text)
        size = sizes.get(size_text) or _size(size_text)
        if not size > 0:
            return None
        if previous is not None:
            if price == previous:
                return None
            rising = previous < price
            if ascending is None:
                ascending = rising
            elif rising is not ascending:
                return None
        previous = price
        # A Level built through its slots' setters, inline, as `Book.of` builds a Book: the
        # frozen dataclass's __init__, or any function call per level, costs a tenth of the ladder.
        level = _new_object(Level)
        _set_price(level, price)
        _set_size(level, size)
        plain.append(level)
        level = _new_object(Level)
        _set_price(level, complement)
        _set_size(level, size)
        complements.append(level)
    return plain, complements, ascending is not False


def _polymarket_order(raw: list[dict[str, str]]) -> tuple[list[Level], bool] | None:
    """The levels in the venue's order and whether prices ascend; None for the general path."""
    prices, sizes = _prices, _sizes
    levels: list[Level] = []
    previous: Decimal | None = None
    ascending: bool | None = None
    for item in raw:
        price_text, size_text = item["price"], item["size"]
        price = (prices.get(price_text) or _price(price_text))[0]
        size = sizes.get(size_text) or _size(size_text)
        if not size > 0:
            return None
        if previous is not None:
            if price == previous:
                return None
            rising = previous < price
            if ascending is None:
                ascending = rising
            elif rising is not ascending:
                return None
        previous = price
        level = _new_object(Level)  # built as in `_kalshi_order`
        _set_price(level, price)
        _set_size(level, size)
        levels.append(level)
    return levels, ascending is not False


def _kalshi_fast(update: dict[str, Any]) -> tuple[Book, Book] | None:
    yes = _kalshi_order(update["yes"])
    no = _kalshi_order(update["no"])
    if yes is None or no is None:
        return None
    yes_bids, no_asks, yes_ascending = yes
    no_bids, yes_asks, no_ascending = no
    # Best first: bids descending, asks ascending. A complement runs opposite to its bids, so
    # bids ascending in the raw list give both the bids and their complement asks reversed.
    if yes_ascending:
        yes_bids.reverse()
        no_asks.reverse()
    if no_ascending:
        no_bids.reverse()
        yes_asks.reverse()
    ticker, venue_ts, received = update["id"], update.get("vts"), update["t"]
    return (
        Book.of(KALSHI, ticker, YES, tuple(yes_bids), tuple(yes_asks), venue_ts, received),
        Book.of(KALSHI, ticker, NO, tuple(no_bids), tuple(no_asks), venue_ts, received),
    )


def _polymarket_fast(update: dict[str, Any], side: str) -> Book | None:
    bids = _polymarket_order(update["bids"])
    asks = _polymarket_order(update["asks"])
    if bids is None or asks is None:
        return None
    bid_levels, bids_ascending = bids
    ask_levels, asks_ascending = asks
    if bids_ascending:
        bid_levels.reverse()
    if not asks_ascending:
        ask_levels.reverse()
    return Book.of(
        POLYMARKET,
        update["id"],
        side,
        tuple(bid_levels),
        tuple(ask_levels),
        update.get("vts"),
        update["t"],
    )


def to_book(update: dict[str, Any], pair_sides: dict[str, str]) -> tuple[Book, ...]:
    """Normalise one recorded update: a Kalshi line gives (YES book, NO book), a Polymarket line one book.

    `pair_sides` maps Polymarket token ids to their outcome (see `token_sides`); an unknown token
    gives no book. The result equals `kalshi_books` / `polymarket_book` on the parsed ladders; a
    fast path builds it directly when the venue's ladders are already cleanly sorted.
    """
    venue = update["venue"]
    received, venue_ts = update["t"], update.get("vts")
    if venue == KALSHI:
        fast = _kalshi_fast(update)
        if fast is not None:
            return fast
        books = kalshi_books(
            update["id"],
            [(Decimal(p), Decimal(s)) for p, s in update["yes"]],
            [(Decimal(p), Decimal(s)) for p, s in update["no"]],
            venue_ts_ms=venue_ts,
            received_ts_ms=received,
        )
        return books[YES], books[NO]
    if venue == POLYMARKET:
        side = pair_sides.get(update["id"])
        if side is None:
            return ()
        book = _polymarket_fast(update, side)
        if book is not None:
            return (book,)
        return (
            polymarket_book(
                update["id"],
                side,
                [(Decimal(lv["price"]), Decimal(lv["size"])) for lv in update["bids"]],
                [(Decimal(lv["price"]), Decimal(lv["size"])) for lv in update["asks"]],
                venue_ts_ms=venue_ts,
                received_ts_ms=received,
            ),
        )
    raise RecordingError(f"unknown venue {venue!r}")


class RecordingWriter:
    """Writes a new recording: the header on open, then one `append` per update.

    `flush()` does a zlib sync flush, so what was written before a crash stays readable.
    """

    def __init__(self, path: str | Path, *, pairs: Iterable[PairSpec], source: str) -> None:
        self.path = Path(path)
        # mtime 0 and no file name in the gzip header: the same updates give the same bytes.
        self._raw = open(self.path, "wb")  # noqa: SIM115
        self._gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)
        self._file = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n")
        self.count = 0
        header = {
            "format": FORMAT,
            "version": VERSION,
            "pairs": [pair_to_json(p) for p in pairs],
            "source": source,
        }
        self._write(header)

    def _write(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line, separators=(",", ":")))
        self._file.write("\n")

    def append(self, update: dict[str, Any]) -> None:
        self._write(update)
        self.count += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()  # closes the GzipFile, which leaves the file it was given open
        self._raw.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_header(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        first = file.readline()
    try:
        header = json.loads(first)
    except json.JSONDecodeError as error:
        raise RecordingError(f"{path}: the first line is not JSON") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(f"{path}: not an {FORMAT} file")
    if header.get("version") != VERSION:
        raise RecordingError(f"{path}: version {header.get('version')!r}, this code reads {VERSION}")
    return header


def _updates(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        file.readline()
        try:
            for line in file:
                if not line.endswith("\n"):
                    return  # a recorder that died mid-line: keep what is whole
                yield json.loads(line)
        except EOFError:
            return  # a gzip stream cut short by a crash: everything before is still good


def read_recording(path: str | Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """The header (checked now) and a lazy iterator over the updates, in file order."""
    path = Path(path)
    return _read_header(path), _updates(path)


def pairs_of(header: dict[str, Any]) -> list[PairSpec]:
    return [pair_from_json(p) for p in header["pairs"]]


class Replayer:
    """Yields updates with their recorded spacing, through an injected clock and sleep.

    `speed` 1 is real time, N is N times faster, 0 or None as fast as possible. Time is kept
    against the first update, so sleeping late does not accumulate drift. The clock is in
    seconds (defaults: `time.monotonic`, `time.sleep`); consumers should use each update's `t`
    as their `now_ms`, not the wall clock, so a fast replay judges staleness as live did.
    """

    def __init__(
        self,
        updates: Iterable[dict[str, Any]],
        *,
        speed: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed is not None and speed < 0:
            raise ValueError("speed must be >= 0")
        self.updates = updates
        self.speed = speed or 0.0
        self.clock = clock
        self.sleep = sleep

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.speed:
            yield from self.updates
            return
        first_t_ms: int | None = None
        started_s = 0.0
        for update in self.updates:
            if first_t_ms is None:
                first_t_ms, started_s = update["t"], self.clock()
            due_s = started_s + (update["t"] - first_t_ms) / 1000.0 / self.speed
            wait_s = due_s - self.clock()
            if wait_s > 0:
                self.sleep(wait_s)
            yield update
