"""Checking a whole recording before a backtest reads it (no Django; the file is the only I/O).

`ingest/recording.py` reads a recording for replays and trusts it: a line it cannot parse stops
the replay with a bare exception, and times that go backwards are replayed as they stand. This
module reads the file once, streaming, and names the first line that is wrong, so a recording is
refused up front with the line to look at rather than giving a wrong backtest.

Accepted and counted, not errors: lines for instruments that are not in the header's pairs (a
live recorder may record them; the detector ignores them), lines whose ladders are all empty (the
detector judges such a book as live would: nothing to buy), stretches without an update longer
than the pairs' `max_age_ms` (the books are stale there, as they were live), and a file cut short
mid-line or mid-stream by a recorder that died (the reader keeps every whole line before it).
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from config.numbers import PLAIN_DECIMAL, DecimalRule, NumberError
from exchanges.books import KALSHI, POLYMARKET
from ingest.detector import PairSpec
from ingest.recording import FORMAT, VERSION, RecordingError, pair_from_json

# No real line comes near this (a 100-level ladder is a few kB); it keeps memory flat on a file
# that is one endless line, such as a gzip bomb of zeros.
MAX_LINE_BYTES = 1 << 20
MAX_SIZE = Decimal(10) ** 12
# The pair fields a header must carry as text, and the limits on its numbers (as `pairs_import`
# takes fee rates; skew and age up to a day).
PAIR_TEXT_FIELDS = ("opportunity_key", "kalshi_ticker", "poly_yes_token", "poly_no_token")
FEE_RATE = DecimalRule(Decimal(0), Decimal(1), places=4)
MAX_PAIR_MS = 86_400_000
# Valid number strings seen so far: prices and sizes repeat, so most levels are a set lookup.
_CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class RecordingSummary:
    """What a valid recording holds. `updates` counts every update line read, of which
    `skipped_unknown` are for instruments outside the header's pairs and `empty_books` have no
    level with a size. `gaps`: stretches longer than the shortest `max_age_ms` of the pairs
    without an update for the pairs' instruments; `longest_gap_ms`: the longest such stretch,
    gap or not. `cut_short`: the file ends in a partial line or gzip stream (ignored, as the
    reader ignores it). `complete`: False when `max_lines` stopped the check before the end."""

    pairs: int
    updates: int
    first_ms: int
    last_ms: int
    skipped_unknown: int
    gaps: int
    longest_gap_ms: int
    empty_books: int = 0
    cut_short: bool = False
    complete: bool = True

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class _LineError(Exception):
    """What is wrong with the line being checked; `validate_recording` adds its number."""


def validate_recording(path: Path | str, *, max_lines: int | None = None) -> RecordingSummary:
    """Check the recording at `path` line by line (header first); RecordingError("line N: ...")
    names the first bad line. `max_lines` (header included) stops the check early."""
    if max_lines is not None and max_lines < 1:
        raise ValueError("max_lines must be at least 1")
    path = Path(path)
    checker: _Checker | None = None
    number = 0
    cut_short = False
    complete = True
    try:
        with gzip.open(path, "rb") as file:
            while True:
                if max_lines is not None and number >= max_lines:
                    complete = not file.read(1)
                    break
                try:
                    raw = file.readline(MAX_LINE_BYTES + 1)
                except EOFError:
                    cut_short = True  # the gzip stream ends early: a recorder that died
                    break
                if not raw:
                    break
                number += 1
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE_BYTES:
                        raise _LineError(f"longer than {MAX_LINE_BYTES} bytes")
                    if checker is None:
                        raise _LineError("the header line is cut short (no newline at its end)")
                    cut_short = True  # a recorder that died mid-line; the reader drops it too
                    number -= 1
                    break
                line = _json_object(raw)
                if checker is None:
                    checker = _Checker(_header_pairs(line))
                else:
                    checker.update(line)
    except _LineError as error:
        raise RecordingError(f"line {number}: {error}") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        if number == 0 and isinstance(error, gzip.BadGzipFile):
            raise RecordingError(f"line 1: not a gzip file ({error})") from None
        raise RecordingError(f"line {number + 1}: the gzip data is damaged ({error})") from None
    except OSError as error:
        raise RecordingError(f"cannot read {path.name}: {error.strerror or error}") from None
    if checker is None:
        raise RecordingError("line 1: the file is empty (a recording starts with its header line)")
    if not checker.updates:
        raise RecordingError(f"line {number + 1}: no book updates after the header")
    return checker.summary(cut_short=cut_short, complete=complete)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _LineError(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _LineError(f"not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise _LineError(f"not a JSON object but {type(value).__name__}")
    return value


def _header_pairs(header: dict[str, Any]) -> list[PairSpec]:
    if header.get("format") != FORMAT:
        raise _LineError(f"not a recording header: format is {_shown(header.get('format'))}, not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise _LineError(f"version {_shown(header.get('version'))}: this code reads version {VERSION}")
    pairs = header.get("pairs")
    if not isinstance(pairs, list) or not pairs:
        raise _LineError("the header lists no pairs")
    specs: list[PairSpec] = []
    keys: set[str] = set()
    for index, data in enumerate(pairs, start=1):
        try:
            spec = _pair(data)
        except _LineError as error:
            raise _LineError(f"pair {index}: {error}") from None
        if spec.opportunity_key in keys:
            raise _LineError(f"pair {index}: opportunity_key {_shown(spec.opportunity_key)} appears twice")
        keys.add(spec.opportunity_key)
        specs.append(spec)
    return specs


def _pair(data: Any) -> PairSpec:
    if not isinstance(data, dict):
        raise _LineError("not a JSON object")
    for field in PAIR_TEXT_FIELDS:
        value = data.get(field)
        if not isinstance(value, str) or not value.strip():
            raise _LineError(f"{field} is missing or not text")
    for field in ("kalshi_fee_rate", "poly_fee_rate"):
        value = data.get(field)
        try:
            if not isinstance(value, str):  # as `pair_to_json` writes it: a float is not exact
                raise NumberError(f'must be decimal text, like "0.07", not {_shown(value)}')
            FEE_RATE.parse(value)
        except NumberError as error:
            raise _LineError(f"{field} {error}") from None
    for field in ("max_skew_ms", "max_age_ms"):
        if field in data:
            value = data[field]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAIR_MS:
                raise _LineError(
                    f"{field} must be a whole number from 1 to {MAX_PAIR_MS}, got {_shown(value)}"
                )
    return pair_from_json(data)


class _Checker:
    """The state carried from one update line to the next."""

    def __init__(self, pairs: list[PairSpec]) -> None:
        self.pairs = pairs
        self.kalshi_tickers = {pair.kalshi_ticker for pair in pairs}
        self.poly_tokens = {token for pair in pairs for token in (pair.poly_yes_token, pair.poly_no_token)}
        self.gap_ms = min(pair.max_age_ms for pair in pairs)
        self.updates = 0
        self.first_ms = 0
        self.last_ms = 0
        self.last_known_ms: int | None = None
        self.skipped_unknown = 0
        self.empty_books = 0
        self.gaps = 0
        self.longest_gap_ms = 0
        self.prices: set[str] = set()
        self.sizes: dict[str, bool] = {}  # size text -> above zero

    def update(self, line: dict[str, Any]) -> None:
        for field in ("t", "venue", "id"):
            if field not in line:
                raise _LineError(f"an update without {field!r}")
        t_ms = _millis("t", line["t"])
        venue, instrument = line["venue"], line["id"]
        if venue not in (KALSHI, POLYMARKET):
            raise _LineError(f"unknown venue {_shown(venue)} (the format has {KALSHI!r} and {POLYMARKET!r})")
        if not isinstance(instrument, str) or not instrument:
            raise _LineError(f"id must be a non-empty text, got {_shown(instrument)}")
        if line.get("vts") is not None:
            _millis("vts", line["vts"])
        if self.updates and t_ms < self.last_ms:
            raise _LineError(
                f"t {t_ms} is earlier than the previous line's t {self.last_ms}: times go backwards"
            )
        if venue == KALSHI:
            sized = self._kalshi_ladder(line, "yes") | self._kalshi_ladder(line, "no")
            known = instrument in self.kalshi_tickers
        else:
            sized = self._poly_ladder(line, "bids") | self._poly_ladder(line, "asks")
            known = instrument in self.poly_tokens
        if not self.updates:
            self.first_ms = t_ms
        self.updates += 1
        self.last_ms = t_ms
        if not sized:
            self.empty_books += 1
        if not known:
            self.skipped_unknown += 1
            return
        if self.last_known_ms is not None:
            waited_ms = t_ms - self.last_known_ms
            if waited_ms > self.gap_ms:
                self.gaps += 1
            self.longest_gap_ms = max(self.longest_gap_ms, waited_ms)
        self.last_known_ms = t_ms

    def _kalshi_ladder(self, line: dict[str, Any], name: str) -> bool:
        """Check a Kalshi ladder ([[price, size], ...]); True when a level has a size."""
        ladder = _ladder(line, name)
        sized = False
        for index, level in enumerate(ladder, start=1):
            if not isinstance(level, list) or len(level) != 2:
                raise _LineError(f"{name} level {index} must be [price, size], got {_shown(level)}")
            sized |= self._level(name, index, level[0], level[1])
        return sized

    def _poly_ladder(self, line: dict[str, Any], name: str) -> bool:
        """Check a Polymarket ladder ([{"price", "size"}, ...]); True when a level has a size."""
        ladder = _ladder(line, name)
        sized = False
        for index, level in enumerate(ladder, start=1):
            if not isinstance(level, dict) or "price" not in level or "size" not in level:
                raise _LineError(
                    f'{name} level {index} must be {{"price": ..., "size": ...}}, got {_shown(level)}'
                )
            sized |= self._level(name, index, level["price"], level["size"])
        return sized

    def _level(self, name: str, index: int, price: Any, size: Any) -> bool:
        if not (isinstance(price, str) and price in self.prices):
            value = _decimal(price)
            if value is None or not 0 < value < 1:
                raise _LineError(
                    f"{name} level {index}: price {_shown(price)} is not a decimal text between 0 and 1"
                )
            if len(self.prices) > _CACHE_LIMIT:
                self.prices.clear()
            self.prices.add(price)
        above_zero = self.sizes.get(size) if isinstance(size, str) else None
        if above_zero is None:
            value = _decimal(size)
            if value is None or not 0 <= value <= MAX_SIZE:
                raise _LineError(
                    f"{name} level {index}: size {_shown(size)} is not a decimal text from 0 to {MAX_SIZE:f}"
                )
            if len(self.sizes) > _CACHE_LIMIT:
                self.sizes.clear()
            # A level of size 0 is an empty level: `sorted_levels` drops it.
            above_zero = self.sizes[size] = value > 0
        return above_zero

    def summary(self, *, cut_short: bool, complete: bool) -> RecordingSummary:
        return RecordingSummary(
            pairs=len(self.pairs),
            updates=self.updates,
            first_ms=self.first_ms,
            last_ms=self.last_ms,
            skipped_unknown=self.skipped_unknown,
            gaps=self.gaps,
            longest_gap_ms=self.longest_gap_ms,
            empty_books=self.empty_books,
            cut_short=cut_short,
            complete=complete,
        )


def _ladder(line: dict[str, Any], name: str) -> list[Any]:
    ladder = line.get(name)
    if not isinstance(ladder, list):
        raise _LineError(f"{name} must be a list of levels, got {_shown(ladder)}")
    return ladder


def _millis(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _LineError(f"{field} must be a whole number of milliseconds, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A value from the file as an error message quotes it: short, whatever the file holds."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decimal(text: Any) -> Decimal | None:
    """The number in plain decimal text, as the venues send it; None for anything else."""
    if not isinstance(text, str) or not PLAIN_DECIMAL.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
