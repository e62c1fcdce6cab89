"""The detector's shared pass over a recording, run column-wise over its columnar file
(`ingest.columnar_file`), with exactly the result of `ingest.detector_pass.run_pass` over the
recording's updates (pure: no Django).

Why most updates can be skipped: an update changes nothing the pass keeps unless a pair it
touches could open a span (its net edge at one contract reaching the threshold), could be a
candidate (a best direction of at least one contract), has a span open, or has books inside a
kept window. Fees only lower an edge and a thinner best level only worsens the average price, so
a direction's net edge is at most its gross edge at the top, 1 - best YES ask - best NO ask; a
candidate needs that gross edge above zero. So, column-wise, each pair's four best asks are
carried forward to every update that touches it and the bound is computed there; an update is
evaluated one by one only where the bound reaches the threshold or zero, where the pair's
previous evaluation had (a span may be open, and closes there), at the periodic sweeps while a
span may be open, and inside the windows a candidate may keep. Those go through the very
`Detector`, `SpanTracker` and `DetectorPass` code the streaming pass runs, with `Book` objects
built for them only. An evaluation depends on the books and the time alone, so the ones skipped
would have changed nothing: the candidates, spans and kept books are the streaming pass's.

A recording whose receive times ever go backwards (the sweeps' timing then follows the order of
updates, which the column-wise step does not) goes through the streaming code, read back from
the columnar file; so do pairs sharing one opportunity key.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from exchanges.books import POLYMARKET, Book
from ingest.columnar_file import (
    LADDERS,
    MICRO,
    book_updates,
    columnar_path,
    decimal_of,
    ensure_columnar,
    levels_of,
    read_metadata,
)
from ingest.detector import BookKey, PairSpec
from ingest.detector_pass import DetectorPass, pair_book_keys
from ingest.recording import pairs_of, token_sides
from ingest.sources import BookUpdate

__all__ = ["ColumnarError", "columnar_path", "ensure_columnar", "fast_pass"]

ROWS_PER_CHUNK = 262_144  # the column-wise step: a few MB of columns at a time
NO_ASK = 1 << 40  # the best ask of a book without asks (or of none yet): no edge can reach it
NEVER = 1 << 62


class ColumnarError(ValueError):
    """The pass was asked for pairs the recording does not hold."""


def fast_pass(
    recording: Path,
    pairs: Iterable[PairSpec],
    *,
    threshold_cents: Decimal,
    window_ms: int,
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
) -> DetectorPass:
    """`run_pass(updates_to_book_updates(<the recording's updates>, pairs), pairs, ...)` from the
    recording's columnar file (converted first when needed, beside it: an OSError when that
    folder cannot be written): the same candidates, spans, kept books, update count and
    first/last times. `pairs` may be any of the recording's pairs. The returned pass's
    detector has evaluated only the updates that could change them, so its counters are not a
    full replay's. `progress(updates_so_far)` after each step of `ROWS_PER_CHUNK` rows;
    `timings`, when given, gets the CPU seconds of the column-wise part (`columns_s`) and of
    the updates evaluated one by one (`updates_s`: their books built, filed and evaluated)."""
    path = ensure_columnar(Path(recording))
    metadata = read_metadata(path)
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


@dataclass(slots=True)
class _Chunk:
    """One column-wise step: the rows it passes (of the file's rows from `offset`), their
    updates (lines), and where each line's rows start and end."""

    offset: int
    rows: np.ndarray  # the step's rows that the pass reads (all, unless a subset of pairs drops some)
    t: np.ndarray
    code: np.ndarray
    ask: np.ndarray
    position: np.ndarray  # each row's line, numbered from 0 in the step
    starts: np.ndarray  # each line's first row
    ends: np.ndarray  # each line's row after its last
    line_t: np.ndarray
    first_line: int  # the update number of the step's first line
    rows_of: dict[int, np.ndarray]  # book code -> its rows, in order


@dataclass(slots=True)
class _Plan:
    """What the step's updates need one by one: the lines to visit, the pair evaluations (line,
    pair, and the row of each of its four books then, -1: a row of an earlier step), the lines
    where the pass sweeps."""

    visited: np.ndarray
    evaluations: np.ndarray
    sweeping: np.ndarray


class _ColumnarPass:
    """The pass over one columnar file, `ROWS_PER_CHUNK` rows at a time (module docstring).

    Per pair, a *point* is an update that touches it (the streaming pass evaluates the pair
    there). Carried from one step to the next: each book's last best ask, and per pair whether
    its last point may have left a span open (`above`), may have made a candidate (`pending`:
    the windows it keeps reach its next point's time plus the window), and how far the windows
    of its earlier candidates may reach (`file_until`)."""

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
        # Book code -> (its row, numbered uniquely in the file, and its Book).
        self.current: dict[int, tuple[int, Book]] = {}
        sizes = [self.file.metadata.row_group(g).num_rows for g in range(self.file.num_row_groups)]
        self.group_starts = np.cumsum([0, *sizes])

    def run(self) -> None:
        group, groups = 0, self.file.num_row_groups
        while group < groups:
            end = group + 1
            while end < groups and self.group_starts[end + 1] - self.group_starts[group] <= ROWS_PER_CHUNK:
                end += 1
            started, updates_s = time.process_time(), self.timings["updates_s"]
            chunk = self._read(range(group, end))
            if chunk is not None:
                self._replay(chunk, self._plan(chunk))
            spent = time.process_time() - started
            self.timings["columns_s"] += spent - (self.timings["updates_s"] - updates_s)
            group = end
            if self.progress is not None:
                self.progress(self.lines)
        shared = self.shared
        shared.updates = self.lines
        shared.first_ms = self.first_ms
        shared.last_ms = self.last_ms
        shared.finish()

    def _read(self, groups: range) -> _Chunk | None:
        table = self.file.read_row_groups(
            groups, columns=["line", "t", "book", "best_ask_micro"], use_threads=False
        )
        code = table.column("book").to_numpy()
        rows = np.arange(len(code))
        if not self.keep_code.all():
            rows = rows[self.keep_code[code]]
        if len(rows) == 0:
            return None
        raw_line = table.column("line").to_numpy()[rows]
        t = table.column("t").to_numpy()[rows]
        code = code[rows]
        ask = table.column("best_ask_micro").fill_null(NO_ASK).to_numpy()[rows]
        # Lines renumbered from the rows read (a subset of pairs may drop some).
        new_line = np.empty(len(rows), dtype=bool)
        new_line[0] = True
        np.not_equal(raw_line[1:], raw_line[:-1], out=new_line[1:])
        starts = np.flatnonzero(new_line)
        line_t = t[starts]
        order = np.argsort(code, kind="stable")
        bounds = np.searchsorted(code[order], np.arange(len(self.keys) + 1))
        chunk = _Chunk(
            offset=int(self.group_starts[groups.start]),
            rows=rows,
            t=t,
            code=code,
            ask=ask,
            position=np.cumsum(new_line) - 1,
            starts=starts,
            ends=np.append(starts[1:], len(rows)),
            line_t=line_t,
            first_line=self.lines + 1,
            rows_of={
                c: order[bounds[c] : bounds[c + 1]]
                for c in range(len(self.keys))
                if bounds[c + 1] > bounds[c]
            },
        )
        if self.first_ms is None:
            self.first_ms = int(line_t[0])
        self.last_ms = max(self.last_ms, int(line_t[-1]))
        self.lines += len(starts)
        return chunk

    def _plan(self, chunk: _Chunk) -> _Plan:
        """The column-wise step: per pair, the bound at each of its points, and from it the lines
        that need the streaming code."""
        line_count = len(chunk.starts)
        sweep_lines = self._sweeps(chunk.line_t)  # positions of the lines where the pass sweeps
        visit = np.zeros(line_count, dtype=bool)
        swept = np.zeros(len(sweep_lines), dtype=bool)
        evaluations: list[np.ndarray] = []
        window_ms = self.shared.window_ms
        for index, codes in enumerate(self.pair_codes):
            parts = [chunk.rows_of[c] for c in self.touching_codes[index] if c in chunk.rows_of]
            if not parts:
                if self.above[index]:
                    swept[:] = True
                continue
            pair_rows = np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            pair_codes = chunk.code[pair_rows]
            pair_pos = chunk.position[pair_rows]
            ends = np.flatnonzero(np.append(pair_pos[1:] != pair_pos[:-1], True))  # a point's last row
            point_pos = pair_pos[ends]
            point_t = chunk.line_t[point_pos]
            steps = np.arange(len(pair_rows))
            asks, syncs = [], []
            for c in codes:
                last = np.maximum.accumulate(np.where(pair_codes == c, steps, -1))[ends]
                seen = last >= 0
                synced_row = np.where(seen, pair_rows[np.maximum(last, 0)], -1)
                carried = self.last_ask[c] if c >= 0 else NO_ASK
                asks.append(np.where(seen, chunk.ask[synced_row], carried))
                syncs.append(synced_row)
            # Kalshi YES + Polymarket NO, Polymarket YES + Kalshi NO (pair_book_keys' order).
            bound = np.maximum(MICRO - asks[0] - asks[3], MICRO - asks[2] - asks[1])
            above = bound >= self.above_micro
            after_above = np.empty(len(above), dtype=bool)
            after_above[0] = self.above[index]
            after_above[1:] = above[:-1]
            need = (bound > 0) | above | after_above
            # Sweeps between a point that may leave a span open and the pair's next point.
            if len(sweep_lines):
                next_pos = np.append(point_pos[1:], line_count)
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
            # Windows a candidate may keep: from its point to the pair's next point + the window.
            file_until = self.file_until[index]
            if self.pending[index]:
                file_until = max(file_until, int(point_t[0]) + window_ms)
            reach = np.where(bound > 0, np.append(point_t[1:] + window_ms, NEVER), -1)
            filed = point_t <= np.maximum.accumulate(np.append(file_until, reach[:-1]))
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
        sweeping = np.zeros(line_count, dtype=bool)
        sweeping[sweep_lines] = True
        plan = np.concatenate(evaluations) if evaluations else np.empty((0, 6), dtype=np.int64)
        # In line order, and within a line in the pairs' order (the detector's touched order).
        plan = plan[np.lexsort((plan[:, 1], plan[:, 0]))]
        return _Plan(np.flatnonzero(visit), plan, sweeping)

    def _replay(self, chunk: _Chunk, plan: _Plan) -> None:
        """The planned lines through the streaming pass's own code, as `DetectorPass.on_update`
        runs it: the line's books filed in the kept windows, its pairs evaluated, the sweep."""
        started = time.process_time()
        last_rows = {c: int(rows[-1]) for c, rows in chunk.rows_of.items()}
        visiting = np.zeros(len(chunk.starts), dtype=bool)
        visiting[plan.visited] = True
        visited_rows = np.flatnonzero(visiting[chunk.position])
        needed = np.unique(
            np.concatenate(
                [
                    visited_rows,
                    plan.evaluations[:, 2:].ravel(),
                    np.fromiter(last_rows.values(), dtype=np.int64),
                ]
            )
        )
        needed = needed[needed >= 0]
        ladders = self._ladders(chunk.offset + chunk.rows[needed])
        slot = {int(row): i for i, row in enumerate(needed)}
        shared, detector, tracker, books = (
            self.shared,
            self.shared.detector,
            self.shared.tracker,
            self.shared.books,
        )
        keys, pairs, current, code, t = self.keys, shared.pairs, self.current, chunk.code, chunk.t

        def book_of(row: int) -> Book:
            # One Book per row, as the streaming pass has one per update: the kept windows
            # recognise a book filed again by its identity.
            c = int(code[row])
            held = current.get(c)
            if held is not None and held[0] == chunk.offset + row:
                return held[1]
            bid_p, bid_s, ask_p, ask_s, vts = ladders[slot[row]]
            venue, instrument, side = keys[c]
            book = Book.of(
                venue, instrument, side, levels_of(bid_p, bid_s), levels_of(ask_p, ask_s), vts, int(t[row])
            )
            current[c] = (chunk.offset + row, book)
            return book

        evaluations = plan.evaluations.tolist()
        next_evaluation = 0
        for p in plan.visited.tolist():
            now_ms = int(chunk.line_t[p])
            shared.updates = chunk.first_line + p
            for row in range(int(chunk.starts[p]), int(chunk.ends[p])):
                book = book_of(row)
                key = keys[int(code[row])]
                if books.kept_until(key) >= now_ms:
                    books.file(book, shared.updates)
                detector.books[key] = book
            while next_evaluation < len(evaluations) and evaluations[next_evaluation][0] == p:
                _, index, *synced = evaluations[next_evaluation]
                next_evaluation += 1
                pair = pairs[index]
                for book_key, row in zip(pair_book_keys(pair), synced, strict=True):
                    if row >= 0:
                        detector.books[book_key] = book_of(row)
                shared._handle(detector.evaluate_key(pair.opportunity_key, now_ms))
            if plan.sweeping[p]:
                for key in tracker.open_keys():
                    shared._handle(detector.evaluate_key(key, now_ms))
        # The books standing at the step's end, for the next step's evaluations.
        for c, row in last_rows.items():
            detector.books[keys[c]] = book_of(row)
            self.last_ask[c] = chunk.ask[row]
        self.timings["updates_s"] += time.process_time() - started

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
                decimals = [decimal_of(text) for text in values.dictionary.to_pylist()]
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
