"""A recording's columnar file: the recording converted once into Parquet, cached beside it, and
its books read back exactly (pure: no Django; `ingest.columnar` runs the detector's pass on it).

One row per book that normalisation (`ingest.recording.to_book`, with the recording's own pairs,
as a replay reads it) makes of a recorded update, in recording order::

    line            the update's number (1: the first update that gives a book); a Kalshi update
                    gives two rows (its YES and NO books) with the same line
    t, vts          when the update was received (the replay's clock) and the venue's own stamp
    venue, instrument, side     dictionary-encoded strings
    book            the row's book key as a number (the metadata's `keys` lists them)
    best_ask_micro  the best ask in micro-dollars, rounded down (null: no asks)
    bid_price, bid_size, ask_price, ask_size    the whole ladders, best first, as the Decimals'
                    own strings, so every value (its exponent too) comes back exactly

The file's metadata (`read_metadata`) holds the recording's header, the book keys, the update
count, the first and last times, whether the times ever go backwards, and the size and
modification time of the recording it was made from: a changed recording is converted again.
The file is written under another name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Iterator
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from exchanges.books import Book, Level
from ingest.detector import BookKey
from ingest.recording import pairs_of, read_recording
from ingest.sources import BookUpdate, updates_to_book_updates

FORMAT_VERSION = 1
METADATA_KEY = b"arbsim.columnar"
ROWS_PER_GROUP = 16_384  # small: the pass decodes the ladders of the row groups it needs only
MICRO = 1_000_000
LADDERS = ("bid_price", "bid_size", "ask_price", "ask_size")
SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("t", pa.int64()),
        ("vts", pa.int64()),
        ("venue", pa.dictionary(pa.int8(), pa.string())),
        ("instrument", pa.dictionary(pa.int32(), pa.string())),
        ("side", pa.dictionary(pa.int8(), pa.string())),
        ("book", pa.int32()),
        ("best_ask_micro", pa.int64()),
        *((name, pa.list_(pa.string())) for name in LADDERS),
    ]
)


def columnar_path(recording: Path) -> Path:
    """The cache file beside `recording`: `day.jsonl.gz` -> `day.columnar.parquet`."""
    recording = Path(recording)
    name = recording.name.removesuffix(".gz").removesuffix(".jsonl")
    return recording.with_name(f"{name}.columnar.parquet")


def _fingerprint(recording: Path) -> dict[str, int]:
    stat = recording.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The columnar file's own metadata, or None when it is not a readable columnar file."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
        document = json.loads(metadata[METADATA_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None
    return document if document.get("version") == FORMAT_VERSION else None


def is_current(recording: Path) -> bool:
    """Whether the columnar file beside `recording` was made from this very file."""
    target = columnar_path(recording)
    metadata = read_metadata(target) if target.exists() else None
    return metadata is not None and metadata.get("source") == _fingerprint(Path(recording))


def ensure_columnar(
    recording: Path,
    progress: Callable[[int], None] | None = None,
    *,
    rows_per_group: int = ROWS_PER_GROUP,
) -> Path:
    """The columnar file of `recording`, converted now unless the one beside it was made from
    this very file (same size and modification time). `progress(updates_so_far)` while converting."""
    recording = Path(recording)
    target = columnar_path(recording)
    fingerprint = _fingerprint(recording)
    metadata = read_metadata(target) if target.exists() else None
    if metadata is not None and metadata.get("source") == fingerprint:
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    collecting = gc.isenabled()
    gc.disable()  # as in `fast_pass`: no cycles among the rows it buffers
    try:
        _convert(recording, partial, fingerprint, progress, rows_per_group)
        os.replace(partial, target)  # readers never see a half-written file
    finally:
        if collecting:
            gc.enable()
        partial.unlink(missing_ok=True)
    return target


def _micro_floor(price: Decimal) -> int:
    return int((price * MICRO).to_integral_value(rounding=ROUND_FLOOR))


def _convert(
    recording: Path,
    out: Path,
    fingerprint: dict[str, int],
    progress: Callable[[int], None] | None,
    rows_per_group: int,
) -> None:
    header, lines = read_recording(recording)
    codes: dict[BookKey, int] = {}
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    line = 0
    first_ms: int | None = None
    last_ms = 0
    monotonic = True
    with pq.ParquetWriter(out, SCHEMA, compression="zstd") as writer:

        def flush() -> None:
            writer.write_table(pa.table(columns, schema=SCHEMA), row_group_size=len(columns["line"]))
            for values in columns.values():
                values.clear()

        for update in updates_to_book_updates(lines, pairs_of(header)):
            line += 1
            t = update.now_ms
            if first_ms is None:
                first_ms = t
            if t < last_ms:
                monotonic = False
            last_ms = max(last_ms, t)
            for book in update.books:
                key = (book.venue, book.instrument_id, book.side)
                code = codes.get(key)
                if code is None:
                    code = codes[key] = len(codes)
                columns["line"].append(line)
                columns["t"].append(t)
                columns["vts"].append(book.venue_ts_ms)
                columns["venue"].append(book.venue)
                columns["instrument"].append(book.instrument_id)
                columns["side"].append(book.side)
                columns["book"].append(code)
                columns["best_ask_micro"].append(_micro_floor(book.asks[0].price) if book.asks else None)
                columns["bid_price"].append([str(level.price) for level in book.bids])
                columns["bid_size"].append([str(level.size) for level in book.bids])
                columns["ask_price"].append([str(level.price) for level in book.asks])
                columns["ask_size"].append([str(level.size) for level in book.asks])
            if len(columns["line"]) >= rows_per_group:
                flush()  # whole updates only: a row group never splits a Kalshi update's two books
            if progress is not None and line % 50_000 == 0:
                progress(line)
        if columns["line"]:
            flush()
        writer.add_key_value_metadata(
            {
                METADATA_KEY: json.dumps(
                    {
                        "version": FORMAT_VERSION,
                        "source": fingerprint,
                        "header": header,
                        "keys": list(codes),
                        "updates": line,
                        "first_ms": first_ms,
                        "last_ms": last_ms,
                        "monotonic": monotonic,
                    }
                )
            }
        )


_decimal_cache: dict[str, Decimal] = {}
_new_object = object.__new__
_set_price = Level.__dict__["price"].__set__
_set_size = Level.__dict__["size"].__set__


def decimal_of(text: str) -> Decimal:
    """The Decimal of a stored string, kept in a small table: prices and sizes repeat."""
    value = _decimal_cache.get(text)
    if value is None:
        if len(_decimal_cache) > 100_000:
            _decimal_cache.clear()
        value = _decimal_cache[text] = Decimal(text)
    return value


def levels_of(prices: list[Decimal], sizes: list[Decimal]) -> tuple[Level, ...]:
    """A ladder's Levels from its prices and sizes, best first."""
    levels = []
    for price, size in zip(prices, sizes, strict=True):
        level = _new_object(Level)  # as ingest.recording builds its Levels: the frozen __init__ is slow
        _set_price(level, price)
        _set_size(level, size)
        levels.append(level)
    return tuple(levels)


def book_updates(path: Path) -> Iterator[BookUpdate]:
    """The columnar file's updates as the streaming pass reads them from the recording."""
    file = pq.ParquetFile(path)
    keys = [tuple(key) for key in read_metadata(path)["keys"]]
    pending: list[Book] = []
    pending_line, pending_t = 0, 0
    for group in range(file.num_row_groups):
        table = file.read_row_group(group, columns=["line", "t", "vts", "book", *LADDERS])
        rows = zip(*(table.column(name).to_pylist() for name in table.column_names), strict=True)
        for line, t, vts, code, bid_p, bid_s, ask_p, ask_s in rows:
            if line != pending_line and pending:
                yield BookUpdate(pending_t, tuple(pending), {})
                pending = []
            pending_line, pending_t = line, t
            venue, instrument, side = keys[code]
            bids = levels_of([decimal_of(p) for p in bid_p], [decimal_of(s) for s in bid_s])
            asks = levels_of([decimal_of(p) for p in ask_p], [decimal_of(s) for s in ask_s])
            pending.append(Book.of(venue, instrument, side, bids, asks, vts, t))
    if pending:
        yield BookUpdate(pending_t, tuple(pending), {})
