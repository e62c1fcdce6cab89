"""The detection rule: a direction's quote (edge, size, cost, fees) from two ask ladders. Pure:
no Django, no I/O. `ingest.detector` holds the books and decides when a direction is quoted.

A direction buys the YES outcome on one venue and the NO outcome on the other; the pair pays $1
whichever way the question resolves, so the gross edge per contract is `$1 - ask_yes - ask_no`.

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

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from exchanges.books import Book
from exchanges.fees import FeeSchedule

CENTS_QUANTUM = Decimal("0.0001")
HUNDRED = Decimal(100)
ONE = Decimal(1)
ZERO = Decimal(0)

Fill = tuple[Decimal, Decimal]  # (price, size)


# The quotes are plain (not frozen) dataclasses: a frozen one costs about 1 us more to
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


FeeTable = dict[Decimal, Decimal]  # price -> fee of a 1-contract order, for one FeeSchedule
_fee_tables: dict[FeeSchedule, FeeTable] = {}


def fee_table(schedule: FeeSchedule) -> FeeTable:
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
    direction: str,
    book_yes: Book,
    fee_yes: FeeSchedule,
    table_yes: FeeTable,
    book_no: Book,
    fee_no: FeeSchedule,
    table_no: FeeTable,
) -> DirectionQuote:
    """Walk both ask ladders together while the marginal edge stays positive (module docstring).
    The fee tables (`fee_table`) keep each schedule's 1-contract fees between calls."""
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


def same_top(previous: DirectionQuote, book_yes: Book, book_no: Book) -> DirectionQuote | None:
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
