"""Cross-venue edge detection ("Time Alignment Approx"): pure, no Django, no I/O, clock injected.

A pair is one yes/no question listed on both venues (`PairSpec`). For each of its two directions
we buy the YES outcome on one venue and the NO outcome on the other; the pair pays $1 whichever way
the question resolves. The `Detector` holds the latest book per (venue, instrument, side); each
new book re-evaluates the pairs it touches: a direction whose books are missing, stale, skewed in
time, crossed or without asks is rejected with that reason, the others are quoted by the rule in
`ingest.quotes` (net edge at one contract after fees, and the size worth taking).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book
from exchanges.fees import FeeSchedule
from ingest.quotes import DirectionQuote, FeeTable, fee_table, quote_direction, same_top

KALSHI_YES_POLY_NO = "kalshi_yes_poly_no"
POLY_YES_KALSHI_NO = "poly_yes_kalshi_no"
DIRECTIONS = (KALSHI_YES_POLY_NO, POLY_YES_KALSHI_NO)

# Rejection reasons (also the names of the Detector's counters).
MISSING = "missing"
STALE = "stale"
SKEWED = "skewed"
CROSSED = "crossed"
NO_ASKS = "no_asks"
REASONS = (MISSING, STALE, SKEWED, CROSSED, NO_ASKS)

BookKey = tuple[str, str, str]  # (venue, instrument_id, side)


@dataclass(frozen=True, slots=True)
class PairSpec:
    opportunity_key: str
    kalshi_ticker: str
    poly_yes_token: str
    poly_no_token: str
    kalshi_fees: FeeSchedule
    poly_fees: FeeSchedule
    max_skew_ms: int = 2000  # the two legs' books must be this close in time
    max_age_ms: int = 10000  # a book older than this (vs the injected now) is stale

    def leg_keys(self, direction: str) -> tuple[BookKey, BookKey]:
        """The (YES leg, NO leg) books a direction buys from."""
        if direction == KALSHI_YES_POLY_NO:
            return (KALSHI, self.kalshi_ticker, YES), (POLYMARKET, self.poly_no_token, NO)
        if direction == POLY_YES_KALSHI_NO:
            return (POLYMARKET, self.poly_yes_token, YES), (KALSHI, self.kalshi_ticker, NO)
        raise ValueError(f"unknown direction {direction!r}")

    def fees_for(self, venue: str) -> FeeSchedule:
        return self.kalshi_fees if venue == KALSHI else self.poly_fees

    def instruments(self) -> tuple[tuple[str, str], ...]:
        return (
            (KALSHI, self.kalshi_ticker),
            (POLYMARKET, self.poly_yes_token),
            (POLYMARKET, self.poly_no_token),
        )


@dataclass(slots=True)
class Evaluation:
    opportunity_key: str
    ok: bool  # at least one direction could be quoted
    reason: str  # "" when ok, else the first direction's rejection reason
    best: DirectionQuote | None  # the direction with the higher net_edge_cents
    directions: dict[str, DirectionQuote]  # only the directions that could be quoted
    rejected: dict[str, str] = field(default_factory=dict)  # direction -> reason
    at_ms: int = 0  # the injected now the evaluation was made at


def _rejection(book_yes: Book | None, book_no: Book | None, pair: PairSpec, now_ms: int) -> str:
    if book_yes is None or book_no is None:
        return MISSING
    # Book.ts_ms and Book.is_crossed, inlined: this runs for both directions of every evaluation.
    ts_yes = book_yes.venue_ts_ms
    if ts_yes is None:
        ts_yes = book_yes.received_ts_ms
    ts_no = book_no.venue_ts_ms
    if ts_no is None:
        ts_no = book_no.received_ts_ms
    max_age_ms = pair.max_age_ms
    if now_ms - ts_yes > max_age_ms or now_ms - ts_no > max_age_ms:
        return STALE
    if abs(ts_yes - ts_no) > pair.max_skew_ms:
        return SKEWED
    bids_yes, asks_yes, bids_no, asks_no = book_yes.bids, book_yes.asks, book_no.bids, book_no.asks
    if (bids_yes and asks_yes and bids_yes[0].price >= asks_yes[0].price) or (
        bids_no and asks_no and bids_no[0].price >= asks_no[0].price
    ):
        return CROSSED
    if not asks_yes or not asks_no:
        return NO_ASKS
    return ""


# (direction, YES-leg book key, its fees, its fee table, NO-leg book key, its fees, its fee table)
PreparedDirection = tuple[str, BookKey, FeeSchedule, FeeTable, BookKey, FeeSchedule, FeeTable]


def _prepare(pair: PairSpec) -> tuple[PreparedDirection, ...]:
    prepared = []
    for direction in DIRECTIONS:
        key_yes, key_no = pair.leg_keys(direction)
        fees_yes, fees_no = pair.fees_for(key_yes[0]), pair.fees_for(key_no[0])
        prepared.append(
            (direction, key_yes, fees_yes, fee_table(fees_yes), key_no, fees_no, fee_table(fees_no))
        )
    return tuple(prepared)


def evaluate(pair: PairSpec, books: Mapping[BookKey, Book], now_ms: int) -> Evaluation:
    """Quote both directions of `pair` from the latest books; rejections are reasons, not errors.

    A direction is checked in this order: a book missing, stale (now - ts > max_age_ms), skewed
    (the two legs' timestamps further apart than max_skew_ms), crossed, without asks.
    """
    return _evaluate_prepared(pair, _prepare(pair), books, now_ms)


def _evaluate_prepared(
    pair: PairSpec,
    prepared: tuple[PreparedDirection, ...],
    books: Mapping[BookKey, Book],
    now_ms: int,
    previous: dict[str, DirectionQuote] | None = None,
) -> Evaluation:
    """`previous`: the last quotes of this pair; a direction whose two books are the very same
    objects is not re-quoted (a quote depends only on its books; freshness is re-checked), nor
    one whose new books quote the same (`same_top`)."""
    quotes: dict[str, DirectionQuote] = {}
    rejected: dict[str, str] = {}
    best: DirectionQuote | None = None
    for direction, key_yes, fees_yes, table_yes, key_no, fees_no, table_no in prepared:
        book_yes, book_no = books.get(key_yes), books.get(key_no)
        reason = _rejection(book_yes, book_no, pair, now_ms)
        if reason:
            rejected[direction] = reason
            continue
        quote = previous.get(direction) if previous else None
        if quote is None:
            quote = quote_direction(direction, book_yes, fees_yes, table_yes, book_no, fees_no, table_no)
        elif quote.books_used[0] is not book_yes or quote.books_used[1] is not book_no:
            quote = same_top(quote, book_yes, book_no) or quote_direction(
                direction, book_yes, fees_yes, table_yes, book_no, fees_no, table_no
            )
        quotes[direction] = quote
        if best is None or (quote.net_edge_cents, quote.avg_net_edge_cents) > (
            best.net_edge_cents,
            best.avg_net_edge_cents,
        ):
            best = quote
    if best is None:
        return Evaluation(
            pair.opportunity_key, False, rejected[DIRECTIONS[0]], None, quotes, rejected, now_ms
        )
    return Evaluation(pair.opportunity_key, True, "", best, quotes, rejected, now_ms)


class Detector:
    """Holds the latest book per (venue, instrument, side) and re-evaluates the pairs a book touches.

    Counters: `updates` (books received), `evaluations` (pair evaluations), and one counter per
    rejection reason, counted per rejected *direction*.
    """

    def __init__(self, pairs: Iterable[PairSpec] = ()) -> None:
        self.books: dict[BookKey, Book] = {}
        self.pairs: dict[str, PairSpec] = {}
        self._prepared: dict[str, tuple[PreparedDirection, ...]] = {}
        self._last_quotes: dict[str, dict[str, DirectionQuote]] = {}
        self._pairs_by_instrument: dict[tuple[str, str], list[PairSpec]] = {}
        self.counters: dict[str, int] = {"updates": 0, "evaluations": 0, **dict.fromkeys(REASONS, 0)}
        for pair in pairs:
            self.add_pair(pair)

    def add_pair(self, pair: PairSpec) -> None:
        if pair.opportunity_key in self.pairs:
            self.remove_pair(pair.opportunity_key)
        self.pairs[pair.opportunity_key] = pair
        self._prepared[pair.opportunity_key] = _prepare(pair)
        for instrument in pair.instruments():
            self._pairs_by_instrument.setdefault(instrument, []).append(pair)

    def remove_pair(self, opportunity_key: str) -> None:
        pair = self.pairs.pop(opportunity_key)
        del self._prepared[opportunity_key]
        self._last_quotes.pop(opportunity_key, None)
        for instrument in pair.instruments():
            remaining = [p for p in self._pairs_by_instrument.get(instrument, []) if p is not pair]
            if remaining:
                self._pairs_by_instrument[instrument] = remaining
            else:
                self._pairs_by_instrument.pop(instrument, None)

    def on_book(self, book: Book, now_ms: int) -> list[Evaluation]:
        return self.on_books((book,), now_ms)

    def on_books(self, books: Iterable[Book], now_ms: int) -> list[Evaluation]:
        """Store several books (a Kalshi update yields YES and NO), then evaluate each touched pair once."""
        touched: dict[str, PairSpec] = {}
        for book in books:
            self.counters["updates"] += 1
            self.books[(book.venue, book.instrument_id, book.side)] = book
            for pair in self._pairs_by_instrument.get((book.venue, book.instrument_id), ()):
                touched[pair.opportunity_key] = pair
        return [self._evaluate(pair, now_ms) for pair in touched.values()]

    def evaluate_key(self, opportunity_key: str, now_ms: int) -> Evaluation:
        """Re-evaluate one pair without a new book (e.g. to notice that an open span went stale)."""
        return self._evaluate(self.pairs[opportunity_key], now_ms)

    def _evaluate(self, pair: PairSpec, now_ms: int) -> Evaluation:
        key = pair.opportunity_key
        evaluation = _evaluate_prepared(
            pair, self._prepared[key], self.books, now_ms, self._last_quotes.get(key)
        )
        self._last_quotes[key] = evaluation.directions
        self.counters["evaluations"] += 1
        for reason in evaluation.rejected.values():
            self.counters[reason] += 1
        return evaluation
