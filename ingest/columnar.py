"""A recording converted once into a columnar file (Parquet, beside it), and the detector's shared
pass run over that file column-wise, with exactly the result of `ingest.detector_pass.run_pass`
over the recording's updates (pure: no Django).

The file: one row per book that normalisation (`ingest.recording.to_book`, with the recording's own
pairs, as a replay reads it) makes of a recorded update, in recording order::

    line            the update's number (1: the first update that gives a book); a Kalshi update
                    gives two rows (its YES and NO books) with the same line
    t, vts          when the update was received (the replay's clock) and the venue's own stamp
    venue, instrument, side     dictionary-encoded strings
    book            the row's book key as a number (the metadata's `keys` lists them)
    best_ask_micro  the best ask in micro-dollars, rounded down (null: no asks): for the filter
    bid_price, bid_size, ask_price, ask_size    the whole ladders, best first, as the Decimals'
                    own strings, so every value (exponent included) comes back exactly

The file's metadata names the recording's size and modification time it was made from: a
changed recording is converted again.

Why the pass can skip most updates: an update changes nothing that the pass keeps unless one of
the pairs it touches could open a span or be a candidate (its net edge at one contract reaching
the threshold, or a best direction of at least one contract), or has a span open, or has books
inside a kept window. All of these need a gross edge at the top of the book, 1 - best YES ask -
best NO ask > 0 (fees only lower the edge, a thinner top only worsens the average price), or the
pair's previous evaluation to have had one. So the bound is computed column-wise for every
update of every pair (the books' best asks carried forward per pair), and only the updates the
bound cannot rule out (with the pass's periodic sweeps while a span may be open, and the updates
inside the windows a candidate may keep) go through the very `Detector`, `SpanTracker` and
`DetectorPass` code the streaming pass runs, with `Book` objects built only for them. Evaluations
are pure functions of the books and the time, so skipping the ones that change nothing leaves
the candidates, spans and kept books as the streaming pass has them.

A recording whose receive times ever go backwards (the sweep's timing then depends on the order
of updates in a way the column-wise bound does not follow) is passed through the streaming code,
from the columnar file.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_FLOOR, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from exchanges.books import POLYMARKET, Book, Level
from ingest.detector import PairSpec
from ingest.detector_pass import DetectorPass, pair_book_keys
from ingest.recording import RecordingError, pairs_of, read_recording, token_sides
from ingest.sources import BookUpdate, updates_to_book_updates

FORMAT_VERSION = 1
METADATA_KEY = b"arbsim.columnar"
ROWS_PER_GROUP = 16_384  # small: the pass decodes the ladders of the row groups it needs only
ROWS_PER_CHUNK = 262_144  # the pass's column-wise step, a few MB of columns at a time
MICRO = 1_000_000
NO_ASK = 1 << 40  # the best ask of a book without asks (or of none yet): no edge can reach it
NEVER = 1 << 62
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

BookKey = tuple[str, str, str]


class ColumnarError(ValueError):
    """The columnar pass was asked for something the recording does not hold."""


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


# --- books back from the file -----------------------------------------------------------------

_decimals: dict[str, Decimal] = {}
_new_object = object.__new__
_set_price = Level.__dict__["price"].__set__
_set_size = Level.__dict__["size"].__set__


def _decimal(text: str) -> Decimal:
    value = _decimals.get(text)
    if value is None:
        if len(_decimals) > 100_000:
            _decimals.clear()
        value = _decimals[text] = Decimal(text)
    return value


def _levels(prices: list[Decimal], sizes: list[Decimal]) -> tuple[Level, ...]:
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
            bids = _levels([_decimal(p) for p in bid_p], [_decimal(s) for s in bid_s])
            asks = _levels([_decimal(p) for p in ask_p], [_decimal(s) for s in ask_s])
            pending.append(Book.of(venue, instrument, side, bids, asks, vts, t))
    if pending:
        yield BookUpdate(pending_t, tuple(pending), {})


# --- the column-wise pass ---------------------------------------------------------------------


def fast_pass(
    recording: Path,
    pairs: Iterable[PairSpec],
    *,
    threshold_cents: Decimal,
    window_ms: int,
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
) -> DetectorPass:
    """`run_pass` over the recording's updates (normalised with the recording's own pairs, as a
    replay reads them), from its columnar file (converted first when needed): the same
    candidates, spans, kept books, update count and first/last times. The returned pass's
    detector has evaluated only the updates that could change them, so its counters are not a
    full replay's. `progress(updates_so_far)` after each step of `ROWS_PER_CHUNK` rows;
    `timings`, when given, gets the CPU seconds of the column-wise part (`columns_s`) and of
    the updates evaluated one by one (`updates_s`: their books built, filed and evaluated)."""
    path = ensure_columnar(Path(recording))
    metadata = read_metadata(path)
    if metadata is None:
        raise RecordingError(f"{path}: not a columnar recording this code can read")
    pairs = list(pairs)
    shared = DetectorPass(pairs, Decimal(threshold_cents), window_ms)
    keep_lines = _check_pairs(metadata, pairs)
    # The pass makes millions of short-lived objects and none in a cycle: the cyclic garbage
    # collector's rounds over the candidates it keeps would cost more than the pass itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if not metadata["monotonic"] or len({p.opportunity_key for p in pairs}) != len(pairs):
            # Receive times going backwards, or two pairs under one key: the streaming code, as is.
            for update in _kept_updates(book_updates(path), keep_lines):
                shared.on_update(update)
            shared.finish()
        else:
            _ColumnarPass(path, metadata, shared, keep_lines, progress, timings).run()
    finally:
        if collecting:
            gc.enable()
    return shared


def _check_pairs(metadata: dict[str, Any], pairs: list[PairSpec]) -> set[str] | None:
    """The Polymarket tokens whose updates a pass with `pairs` reads (None: all the file holds).

    Normalisation drops a Polymarket update whose token no pair names, so a pass over a subset
    of the recording's pairs reads (and numbers) fewer updates."""
    recorded = token_sides(pairs_of(metadata["header"]))
    wanted = token_sides(pairs)
    for token, side in wanted.items():
        if recorded.get(token) != side:
            raise ColumnarError(
                f"pairs: Polymarket token {token} ({side}) is not one of the recording's pairs' tokens"
            )
    return None if set(wanted) == set(recorded) else set(wanted)


def _kept_updates(updates: Iterable[BookUpdate], tokens: set[str] | None) -> Iterator[BookUpdate]:
    for update in updates:
        book = update.books[0]
        if tokens is None or book.venue != POLYMARKET or book.instrument_id in tokens:
            yield update


class _ColumnarPass:
    """The pass over one columnar file, a row group at a time (see the module docstring).

    Per pair, a *point* is an update that touches it (the streaming pass evaluates the pair
    there). Carried from one row group to the next: each book's last best ask, and per pair
    whether its last point may have left a span open (`above`) or may have made a candidate
    (`pending`: the windows it keeps reach up to its next point's time plus the window)."""

    def __init__(
        self,
        path: Path,
        metadata: dict[str, Any],
        shared: DetectorPass,
        keep_tokens: set[str] | None,
        progress: Callable[[int], None] | None,
        timings: dict[str, float] | None = None,
    ) -> None:
        # The ladders' strings come back as indices into each row group's few distinct values.
        self.file = pq.ParquetFile(path, read_dictionary=[f"{name}.list.element" for name in LADDERS])
        self.metadata = metadata
        self.shared = shared
        self.progress = progress
        self.timings = timings if timings is not None else {}
        self.timings.update(columns_s=0.0, updates_s=0.0)
        self.keys: list[BookKey] = [tuple(key) for key in metadata["keys"]]
        code_of = {key: code for code, key in enumerate(self.keys)}
        # Per pair: its four books' codes (-1: never in the file), and the codes of every book
        # of its instruments (the detector evaluates a pair on any book of its instruments).
        self.pair_codes = [
            tuple(code_of.get(key, -1) for key in pair_book_keys(pair)) for pair in shared.pairs
        ]
        self.touching_codes = [
            [
                code
                for code, (venue, instrument, _) in enumerate(self.keys)
                if (venue, instrument) in instruments
            ]
            for instruments in (set(pair.instruments()) for pair in shared.pairs)
        ]
        self.keep_code = np.array(
            [
                keep_tokens is None or venue != POLYMARKET or instrument in keep_tokens
                for venue, instrument, _ in self.keys
            ],
            dtype=bool,
        )
        self.filter_rows = not bool(self.keep_code.all())
        # The threshold in micro-dollars (1 cent: 10,000), rounded down and a micro-dollar less:
        # the bound is compared with it, and an edge is rounded to 0.0001 cent (half a micro-dollar).
        self.above_micro = int((shared.threshold_cents * 10_000).to_integral_value(rounding=ROUND_FLOOR)) - 1
        self.last_ask = np.full(max(len(self.keys), 1), NO_ASK, dtype=np.int64)
        count = len(shared.pairs)
        self.above = [False] * count
        self.pending = [False] * count
        self.file_until = [-1] * count
        self.last_sweep_ms = 0
        self.lines = 0  # updates read so far (renumbered when a subset of pairs drops some)
        self.first_ms: int | None = None
        self.last_ms = 0
        self.current: dict[int, tuple[int, Book]] = {}  # book code -> (global row, its Book)
        sizes = [self.file.metadata.row_group(g).num_rows for g in range(self.file.num_row_groups)]
        self.group_starts = np.cumsum([0, *sizes])
        self.row_offset = 0  # the file's row at which the chunk being passed starts

    def run(self) -> None:
        group, groups = 0, self.file.num_row_groups
        while group < groups:
            end = group + 1
            while end < groups and self.group_starts[end + 1] - self.group_starts[group] <= ROWS_PER_CHUNK:
                end += 1
            self._chunk(range(group, end))
            group = end
            if self.progress is not None:
                self.progress(self.lines)
        shared = self.shared
        shared.updates = self.lines
        shared.first_ms = self.first_ms
        shared.last_ms = self.last_ms
        shared.finish()

    def _chunk(self, groups: range) -> None:
        started, updates_s = time.process_time(), self.timings["updates_s"]
        self._step(groups)
        spent = time.process_time() - started
        self.timings["columns_s"] += spent - (self.timings["updates_s"] - updates_s)

    def _step(self, groups: range) -> None:
        table = self.file.read_row_groups(
            groups, columns=["line", "t", "book", "best_ask_micro"], use_threads=False
        )
        code = table.column("book").to_numpy()
        rows = np.arange(len(code))
        if self.filter_rows:
            rows = rows[self.keep_code[code]]
        chunk_rows = len(code)
        if len(rows) == 0:
            self.row_offset += len(code)
            return
        raw_line = table.column("line").to_numpy()[rows]
        t = table.column("t").to_numpy()[rows]
        code = code[rows]
        ask = table.column("best_ask_micro").fill_null(NO_ASK).to_numpy()[rows]
        # Lines, renumbered in case rows were dropped; the position of a line within the group.
        new_line = np.empty(len(rows), dtype=bool)
        new_line[0] = True
        np.not_equal(raw_line[1:], raw_line[:-1], out=new_line[1:])
        position = np.cumsum(new_line) - 1
        starts = np.flatnonzero(new_line)
        line_t = t[starts]
        first_line = self.lines + 1
        if self.first_ms is None:
            self.first_ms = int(line_t[0])
        self.last_ms = max(self.last_ms, int(line_t[-1]))
        n_lines = len(starts)
        self.lines += n_lines

        sweep_lines = self._sweeps(line_t)  # positions of the lines where the pass sweeps
        visit = np.zeros(n_lines, dtype=bool)
        swept = np.zeros(len(sweep_lines), dtype=bool)
        evaluations: list[np.ndarray] = []

        order = np.argsort(code, kind="stable")
        bounds = np.searchsorted(code[order], np.arange(len(self.keys) + 1))
        rows_of = {
            c: order[bounds[c] : bounds[c + 1]] for c in range(len(self.keys)) if bounds[c + 1] > bounds[c]
        }
        for index, codes in enumerate(self.pair_codes):
            parts = [rows_of[c] for c in self.touching_codes[index] if c in rows_of]
            if not parts:
                if self.above[index]:
                    swept[:] = True
                continue
            pair_rows = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            pair_codes = code[pair_rows]
            pair_pos = position[pair_rows]
            ends = np.flatnonzero(np.append(pair_pos[1:] != pair_pos[:-1], True))
            point_pos = pair_pos[ends]
            point_t = line_t[point_pos]
            steps = np.arange(len(pair_rows))
            asks, syncs = [], []
            for c in codes:
                last = np.maximum.accumulate(np.where(pair_codes == c, steps, -1))[ends]
                seen = last >= 0
                synced_row = np.where(seen, pair_rows[np.maximum(last, 0)], -1)
                carried = self.last_ask[c] if c >= 0 else NO_ASK
                asks.append(np.where(seen, ask[synced_row], carried))
                syncs.append(synced_row)
            # Kalshi YES + Polymarket NO, Polymarket YES + Kalshi NO (pair_book_keys' order).
            bound = np.maximum(MICRO - asks[0] - asks[3], MICRO - asks[2] - asks[1])
            above = bound >= self.above_micro
            hit = (bound > 0) | above
            after_above = np.empty(len(above), dtype=bool)
            after_above[0] = self.above[index]
            after_above[1:] = above[:-1]
            need = hit | after_above
            # Sweeps between a point that may leave a span open and the pair's next point.
            next_pos = np.append(point_pos[1:], n_lines)
            if len(sweep_lines):
                opened = np.flatnonzero(above)
                low = np.searchsorted(sweep_lines, point_pos[opened], "right")
                high = np.searchsorted(sweep_lines, next_pos[opened], "left")
                if self.above[index]:
                    low = np.append(low, 0)
                    high = np.append(high, np.searchsorted(sweep_lines, point_pos[0], "left"))
                marks = np.zeros(len(sweep_lines) + 1, dtype=np.int64)
                np.add.at(marks, low, 1)
                np.add.at(marks, high, -1)
                swept |= np.cumsum(marks[:-1]) > 0
            # Windows a candidate may keep: from its point to the pair's next point + window.
            file_until = self.file_until[index]
            if self.pending[index]:
                file_until = max(file_until, int(point_t[0]) + self.shared.window_ms)
            reach = np.where(bound > 0, np.append(point_t[1:] + self.shared.window_ms, NEVER), -1)
            reached = np.maximum.accumulate(np.append(file_until, reach[:-1]))
            filed = point_t <= reached
            visit[point_pos[need | filed]] = True
            self.pending[index] = bool(bound[-1] > 0)
            self.file_until[index] = max(file_until, int(reach[:-1].max(initial=-1)))
            self.above[index] = bool(above[-1])
            chosen = np.flatnonzero(need)
            if len(chosen):
                evaluations.append(
                    np.column_stack(
                        [point_pos[chosen], np.full(len(chosen), index), *(s[chosen] for s in syncs)]
                    )
                )
        visit[sweep_lines[swept]] = True
        sweeping = np.zeros(n_lines, dtype=bool)
        sweeping[sweep_lines] = True

        visited = np.flatnonzero(visit)
        plan = np.concatenate(evaluations) if evaluations else np.empty((0, 6), dtype=np.int64)
        plan = plan[np.lexsort((plan[:, 1], plan[:, 0]))]
        line_ends = np.append(starts[1:], len(rows))
        last_rows = {c: r[-1] for c, r in rows_of.items()}
        wanted = [
            np.flatnonzero(visit[position]),
            plan[:, 2:].ravel(),
            np.fromiter(last_rows.values(), dtype=np.int64),
        ]
        needed = np.unique(np.concatenate(wanted))
        needed = needed[needed >= 0]
        started = time.process_time()  # from here on, the work of the updates evaluated one by one
        ladders = self._ladders(self.row_offset + rows[needed])
        slot = {int(r): i for i, r in enumerate(needed)}

        shared, detector, tracker, books = (
            self.shared,
            self.shared.detector,
            self.shared.tracker,
            self.shared.books,
        )
        keys, pairs = self.keys, self.shared.pairs
        t_list, code_list = t, code
        row_offset = self.row_offset
        current = self.current

        def book_of(row: int) -> Book:
            c = int(code_list[row])
            held = current.get(c)
            if held is not None and held[0] == row_offset + row:
                return held[1]
            bid_p, bid_s, ask_p, ask_s, vts = ladders[slot[row]]
            venue, instrument, side = keys[c]
            book = Book.of(
                venue, instrument, side, _levels(bid_p, bid_s), _levels(ask_p, ask_s), vts, int(t_list[row])
            )
            current[c] = (row_offset + row, book)
            return book

        plan_rows = plan.tolist()
        next_plan = 0
        for p in visited.tolist():
            now_ms = int(line_t[p])
            shared.updates = first_line + p
            for row in range(int(starts[p]), int(line_ends[p])):
                book = book_of(row)
                key = keys[int(code_list[row])]
                if books.kept_until(key) >= now_ms:
                    books.file(book, shared.updates)
                detector.books[key] = book
            while next_plan < len(plan_rows) and plan_rows[next_plan][0] == p:
                _, index, *synced = plan_rows[next_plan]
                next_plan += 1
                pair = pairs[index]
                for book_key, row in zip(pair_book_keys(pair), synced, strict=True):
                    if row >= 0:
                        detector.books[book_key] = book_of(row)
                shared._handle(detector.evaluate_key(pair.opportunity_key, now_ms))
            if sweeping[p]:
                for key in tracker.open_keys():
                    shared._handle(detector.evaluate_key(key, now_ms))
        self.timings["updates_s"] += time.process_time() - started
        for c, row in last_rows.items():
            detector.books[keys[c]] = book_of(int(row))
            self.last_ask[c] = ask[row]
        self.row_offset += chunk_rows

    def _sweeps(self, line_t: np.ndarray) -> np.ndarray:
        """The positions of the lines where the streaming pass sweeps open spans: the first line
        at least `sweep_interval_ms` after the previous sweep (it depends on the times alone)."""
        interval = self.shared.sweep_interval_ms
        following = np.searchsorted(line_t, line_t + interval, "left").tolist()
        position = int(np.searchsorted(line_t, self.last_sweep_ms + interval, "left"))
        positions = []
        while position < len(following):
            positions.append(position)
            position = following[position]
        if positions:
            self.last_sweep_ms = int(line_t[positions[-1]])
        return np.array(positions, dtype=np.int64)

    def _ladders(self, rows: np.ndarray) -> list[tuple[Any, ...]]:
        """The ladders (Decimals) and venue stamps of these rows of the file (ascending), decoding
        only the row groups that hold them."""
        ladders: list[tuple[Any, ...]] = []
        group_of = np.searchsorted(self.group_starts, rows, "right") - 1
        cuts = np.flatnonzero(np.diff(group_of)) + 1
        for part in np.split(np.arange(len(rows)), cuts):
            if not len(part):
                continue
            group = int(group_of[part[0]])
            local = rows[part] - self.group_starts[group]
            table = self.file.read_row_group(group, columns=[*LADDERS, "vts"], use_threads=False)
            columns = []
            for name in LADDERS:
                array = table.column(name).combine_chunks()
                values = array.values  # the offsets index into it
                decimals = [_decimal(text) for text in values.dictionary.to_pylist()]
                offsets = array.offsets.to_numpy()
                starts, lengths = offsets[local], offsets[local + 1] - offsets[local]
                before = np.cumsum(lengths) - lengths
                positions = np.repeat(starts - before, lengths) + np.arange(lengths.sum())
                flat = [decimals[i] for i in values.indices.to_numpy()[positions].tolist()]
                bounds = [*before.tolist(), len(flat)]
                columns.append([flat[a:b] for a, b in pairwise(bounds)])
            columns.append(table.column("vts").take(local).to_pylist())
            ladders += zip(*columns, strict=True)
        return ladders
