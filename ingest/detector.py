"""Cross-venue edge detection ("Time Alignment Approx"): pure, no Django, no I/O, clock injected.

A pair is one yes/no question listed on both venues. For each of its two directions we buy the
YES outcome on one venue and the NO outcome on the other; the pair pays $1 whichever way the
question resolves, so the gross edge per contract is `$1 - ask_yes - ask_no`.

Fees are charged per *order* on its total, with the venue's rounding (Kalshi: ceil to the cent
per order), so the fee of N contracts is not N times the fee of one. Two numbers follow:

- `net_edge_cents`: the edge of a 1-contract order at the best levels, fees of that 1-contract
  order included (a Kalshi contract at $0.50 pays ceil($0.0175) = $0.02). This is "the net edge at
  >= 1 contract" that spans and user thresholds compare against.
- `size` / `avg_net_edge_cents`: we walk both ask ladders together, taking at each step the
  *level pair* chunk `min(remaining size at YES level i, remaining size at NO level j)`. The
  **marginal edge** of a chunk is the extra profit of the hedged position when that chunk is
  added, with each leg's fee recomputed on the leg's whole order (all its fills so far) with
  `FeeSchedule.fills_fee_usd`:

      marginal = profit(fills + chunk) - profit(fills),
      profit(fills) = size x $1 - sum(price x size) - fee_yes(fills_yes) - fee_no(fills_no)

  We keep adding chunks while the marginal edge is > 0 and stop at the first chunk that is not
  (later chunks are at worse prices, so they cannot do better, up to a cent of rounding). Chunks
  are whole level pairs: a chunk is taken entirely or not at all.

For the chosen size we report `cost_usd` = sum(price x size) over both legs, **fees excluded**,
`fees_usd` = the two legs' order fees, and `avg_net_edge_cents` = (size x $1 - cost - fees) / size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Book
from exchanges.fees import FeeSchedule

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

CENTS_QUANTUM = Decimal("0.0001")
HUNDRED = Decimal(100)
ONE = Decimal(1)
ZERO = Decimal(0)

BookKey = tuple[str, str, str]  # (venue, instrument_id, side)
Fill = tuple[Decimal, Decimal]  # (price, size)


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


# The detector's outputs are plain (not frozen) dataclasses: a frozen one costs about 1 us more to
# build, several times per book update. Treat them as read-only all the same.
@dataclass(slots=True)
class LegQuote:
    venue: str
    instrument_id: str
    side: str
    limit_price: Decimal  # the worst level used (the best ask when nothing is taken)
    fills: tuple[Fill, ...]  # (price, size), best first
    fee_usd: Decimal
    fee_schedule: FeeSchedule = field(compare=False, repr=False)

    @property
    def size(self) -> Decimal:
        return sum((size for _, size in self.fills), ZERO)


@dataclass(slots=True)
class DirectionQuote:
    direction: str
    net_edge_cents: Decimal  # at 1 contract, best levels, fees of a 1-contract order
    size: Decimal  # the size taken while the marginal edge stays positive (0: none)
    avg_net_edge_cents: Decimal  # over `size`; equals net_edge_cents when size is 0
    cost_usd: Decimal  # sum(price x size) of both legs, fees excluded
    fees_usd: Decimal
    legs: tuple[LegQuote, LegQuote]  # (YES leg, NO leg)
    books_used: tuple[Book, Book] = field(compare=False, repr=False)


@dataclass(slots=True)
class Evaluation:
    opportunity_key: str
    ok: bool  # at least one direction could be quoted
    reason: str  # "" when ok, else the first direction's rejection reason
    best: DirectionQuote | None  # the direction with the higher net_edge_cents
    directions: dict[str, DirectionQuote]  # only the directions that could be quoted
    rejected: dict[str, str] = field(default_factory=dict)  # direction -> reason
    at_ms: int = 0  # the injected now the evaluation was made at


FeeTable = dict[Decimal, Decimal]  # price -> fee of a 1-contract order, for one FeeSchedule
_fee_tables: dict[FeeSchedule, FeeTable] = {}


def _fee_table(schedule: FeeSchedule) -> FeeTable:
    return _fee_tables.setdefault(schedule, {})


def _one_contract_fee(table: FeeTable, schedule: FeeSchedule, price: Decimal) -> Decimal:
    # The hot path: most updates only need the 1-contract edge at the top of the book.
    fee = table.get(price)
    if fee is None:
        if len(table) > 10_000:
            table.clear()
        fee = table[price] = schedule.fee_usd(ONE, price)
    return fee


# (YES fee table, NO fee table) -> (YES price, NO price) -> the 1-contract edge in cents there.
_top_edges: dict[tuple[int, int], dict[tuple[Decimal, Decimal], Decimal]] = {}


def _top_edge(
    price_yes: Decimal,
    fee_yes: FeeSchedule,
    table_yes: FeeTable,
    price_no: Decimal,
    fee_no: FeeSchedule,
    table_no: FeeTable,
) -> Decimal:
    """The 1-contract edge at two best asks of at least one contract each: it depends on the two
    prices and fee schedules alone, and a pair's best prices repeat, so it is kept."""
    edges = _top_edges.get((id(table_yes), id(table_no)))
    if edges is None:
        edges = _top_edges[(id(table_yes), id(table_no))] = {}
    edge = edges.get((price_yes, price_no))
    if edge is None:
        if len(edges) > 10_000:
            edges.clear()
        fees = _one_contract_fee(table_yes, fee_yes, price_yes) + _one_contract_fee(
            table_no, fee_no, price_no
        )
        edge = edges[(price_yes, price_no)] = _cents(ONE - price_yes - price_no - fees)
    return edge


def _take(ladder: Iterable[Fill], size: Decimal) -> list[Fill]:
    """The fills of buying `size` from (price, size) levels, best first (less if too shallow)."""
    fills: list[Fill] = []
    for price, available in ladder:
        if size <= 0:
            break
        taken = available if available < size else size
        fills.append((price, taken))
        size -= taken
    return fills


def _pairs(book: Book) -> list[Fill]:
    return [(level.price, level.size) for level in book.asks]


def _cents(usd: Decimal) -> Decimal:
    return (usd * HUNDRED).quantize(CENTS_QUANTUM)


def _edge_at_one_contract(
    book_yes: Book,
    fee_yes: FeeSchedule,
    table_yes: FeeTable,
    book_no: Book,
    fee_no: FeeSchedule,
    table_no: FeeTable,
) -> Decimal:
    top_yes, top_no = book_yes.asks[0], book_no.asks[0]
    if top_yes.size >= ONE and top_no.size >= ONE:
        return _top_edge(top_yes.price, fee_yes, table_yes, top_no.price, fee_no, table_no)
    # A best level thinner than one contract: the 1-contract order walks into the next level.
    ladder_yes, ladder_no = _pairs(book_yes), _pairs(book_no)
    fills_yes, fills_no = _take(ladder_yes, ONE), _take(ladder_no, ONE)
    size = min(sum(s for _, s in fills_yes), sum(s for _, s in fills_no))
    fills_yes, fills_no = _take(ladder_yes, size), _take(ladder_no, size)
    cost = sum(p * s for p, s in fills_yes) + sum(p * s for p, s in fills_no)
    fees = fee_yes.fills_fee_usd(fills_yes) + fee_no.fills_fee_usd(fills_no)
    return _cents((size - cost - fees) / size)


def _append_fill(fills: list[Fill], price: Decimal, size: Decimal) -> list[Fill]:
    if fills and fills[-1][0] == price:
        return [*fills[:-1], (price, fills[-1][1] + size)]
    return [*fills, (price, size)]


def quote_direction(
    direction: str, book_yes: Book, fee_yes: FeeSchedule, book_no: Book, fee_no: FeeSchedule
) -> DirectionQuote:
    """Walk both ask ladders together while the marginal edge stays positive (module docstring)."""
    return _quote(direction, book_yes, fee_yes, _fee_table(fee_yes), book_no, fee_no, _fee_table(fee_no))


def _quote(
    direction: str,
    book_yes: Book,
    fee_yes: FeeSchedule,
    table_yes: FeeTable,
    book_no: Book,
    fee_no: FeeSchedule,
    table_no: FeeTable,
) -> DirectionQuote:
    net_edge_cents = _edge_at_one_contract(book_yes, fee_yes, table_yes, book_no, fee_no, table_no)
    asks_yes, asks_no = book_yes.asks, book_no.asks
    books = (book_yes, book_no)
    if asks_yes[0].price + asks_no[0].price >= ONE:
        # The common case: no gross edge at the top, so nothing to walk.
        legs = (_leg(book_yes, fee_yes, [], ZERO), _leg(book_no, fee_no, [], ZERO))
        return _assemble(direction, net_edge_cents, ZERO, ZERO, legs, books)
    fills_yes: list[Fill] = []
    fills_no: list[Fill] = []
    size = cost = fees_yes = fees_no = profit = ZERO
    i = j = 0
    left_yes, left_no = asks_yes[0].size, asks_no[0].size
    while i < len(asks_yes) and j < len(asks_no):
        price_yes, price_no = asks_yes[i].price, asks_no[j].price
        if price_yes + price_no >= ONE:
            break  # no gross edge left; fees are never negative
        chunk = left_yes if left_yes < left_no else left_no
        next_yes = _append_fill(fills_yes, price_yes, chunk)
        next_no = _append_fill(fills_no, price_no, chunk)
        next_fee_yes = fee_yes.fills_fee_usd(next_yes)
        next_fee_no = fee_no.fills_fee_usd(next_no)
        next_cost = cost + chunk * (price_yes + price_no)
        next_profit = size + chunk - next_cost - next_fee_yes - next_fee_no
        if next_profit <= profit:
            break
        fills_yes, fills_no, fees_yes, fees_no = next_yes, next_no, next_fee_yes, next_fee_no
        size, cost, profit = size + chunk, next_cost, next_profit
        left_yes -= chunk
        left_no -= chunk
        if left_yes <= 0:
            i += 1
            left_yes = asks_yes[i].size if i < len(asks_yes) else ZERO
        if left_no <= 0:
            j += 1
            left_no = asks_no[j].size if j < len(asks_no) else ZERO
    legs = (_leg(book_yes, fee_yes, fills_yes, fees_yes), _leg(book_no, fee_no, fills_no, fees_no))
    return _assemble(direction, net_edge_cents, size, cost, legs, books)


def _leg(book: Book, schedule: FeeSchedule, fills: list[Fill], fee_usd: Decimal) -> LegQuote:
    limit_price = fills[-1][0] if fills else book.asks[0].price
    return LegQuote(book.venue, book.instrument_id, book.side, limit_price, tuple(fills), fee_usd, schedule)


def _assemble(
    direction: str,
    net_edge_cents: Decimal,
    size: Decimal,
    cost: Decimal,
    legs: tuple[LegQuote, LegQuote],
    books: tuple[Book, Book],
) -> DirectionQuote:
    fees = legs[0].fee_usd + legs[1].fee_usd
    avg = _cents((size - cost - fees) / size) if size > 0 else net_edge_cents
    return DirectionQuote(direction, net_edge_cents, size, avg, cost, fees, legs, books)


def quote_at_size(quote: DirectionQuote, size: Decimal) -> DirectionQuote:
    """The same direction cut down to `size` (<= quote.size): fills are a prefix, fees recomputed."""
    if size > quote.size:
        raise ValueError("cannot quote more than the detector found")
    book_yes, book_no = quote.books_used
    leg_yes, leg_no = quote.legs
    fills_yes, fills_no = _take(leg_yes.fills, size), _take(leg_no.fills, size)
    fees_yes = leg_yes.fee_schedule.fills_fee_usd(fills_yes) if fills_yes else ZERO
    fees_no = leg_no.fee_schedule.fills_fee_usd(fills_no) if fills_no else ZERO
    cost = sum((p * s for p, s in fills_yes), ZERO) + sum((p * s for p, s in fills_no), ZERO)
    legs = (
        _leg(book_yes, leg_yes.fee_schedule, fills_yes, fees_yes),
        _leg(book_no, leg_no.fee_schedule, fills_no, fees_no),
    )
    return _assemble(quote.direction, quote.net_edge_cents, size, cost, legs, quote.books_used)


def _same_top(previous: DirectionQuote, book_yes: Book, book_no: Book) -> DirectionQuote | None:
    """`previous` moved onto new books, when they quote the same: no gross edge at the top (so
    nothing is walked, whatever the sizes), the same best prices, and best sizes of at least one
    contract on the old books and the new (so the 1-contract edge is priced on the best levels
    alone). Most updates only move size; this skips the fee arithmetic and the legs."""
    if previous.size:
        return None
    top_yes, top_no = book_yes.asks[0], book_no.asks[0]
    old_yes, old_no = previous.books_used[0].asks[0], previous.books_used[1].asks[0]
    if (
        top_yes.price != old_yes.price
        or top_no.price != old_no.price
        or top_yes.price + top_no.price < ONE
        or top_yes.size < ONE
        or top_no.size < ONE
        or old_yes.size < ONE
        or old_no.size < ONE
    ):
        return None
    return DirectionQuote(
        previous.direction,
        previous.net_edge_cents,
        ZERO,
        previous.avg_net_edge_cents,
        ZERO,
        ZERO,
        previous.legs,
        (book_yes, book_no),
    )


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
            (direction, key_yes, fees_yes, _fee_table(fees_yes), key_no, fees_no, _fee_table(fees_no))
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
    one whose new books quote the same (`_same_top`)."""
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
            quote = _quote(direction, book_yes, fees_yes, table_yes, book_no, fees_no, table_no)
        elif quote.books_used[0] is not book_yes or quote.books_used[1] is not book_no:
            quote = _same_top(quote, book_yes, book_no) or _quote(
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
