"""Book normalisation on hand-written payloads of both venues, and balance units."""

from decimal import Decimal
from types import SimpleNamespace

import pytest

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Level, kalshi_books, polymarket_book
from exchanges.kalshi import balance_usd_from_cents, books_from_orderbook
from exchanges.polymarket import balance_usd_from_base_units, book_from_summary
from exchanges.results import MalformedPayload

D = Decimal


def kalshi_payload(yes, no):
    return SimpleNamespace(yes_dollars=yes, no_dollars=no)


def poly_summary(bids=(), asks=(), **overrides):
    fields = {
        "market": "0xcond",
        "asset_id": "TOKEN",
        "timestamp": "1730000000123",
        "hash": "abc",
        "bids": None if bids is None else [SimpleNamespace(price=p, size=s) for p, s in bids],
        "asks": None if asks is None else [SimpleNamespace(price=p, size=s) for p, s in asks],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
        "last_trade_price": "0.50",
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def test_kalshi_documented_example_gives_both_sides_bids_and_derived_asks():
    books = books_from_orderbook(
        "T1",
        kalshi_payload([["0.4000", "100.00"], ["0.4200", "13.00"]], [["0.5500", "20.00"]]),
        received_ts_ms=7,
    )
    yes, no = books[YES], books[NO]
    assert yes.best_bid == Level(D("0.42"), D("13"))
    assert yes.best_ask == Level(D("0.45"), D("20"))
    assert no.best_bid == Level(D("0.55"), D("20"))
    assert no.best_ask == Level(D("0.58"), D("13"))
    assert [lv.price for lv in no.asks] == [D("0.58"), D("0.60")]
    assert yes.venue == no.venue == KALSHI
    assert yes.received_ts_ms == 7 and yes.venue_ts_ms is None and yes.ts_ms == 7


def test_kalshi_best_bid_is_found_whatever_the_served_order():
    ascending = kalshi_payload([["0.10", "1.00"], ["0.30", "2.00"], ["0.20", "3.00"]], [])
    books = books_from_orderbook("T1", ascending, received_ts_ms=0)
    assert [lv.price for lv in books[YES].bids] == [D("0.30"), D("0.20"), D("0.10")]
    assert books[YES].asks == ()
    assert [lv.price for lv in books[NO].asks] == [D("0.70"), D("0.80"), D("0.90")]


def test_kalshi_fractional_counts_are_kept_exactly():
    books = books_from_orderbook(
        "T1", kalshi_payload([["0.4200", "13.37"]], [["0.5000", "0.01"]]), received_ts_ms=0
    )
    assert books[YES].best_bid.size == D("13.37")
    assert books[YES].best_ask == Level(D("0.5"), D("0.01"))
    assert books[NO].best_ask.size == D("13.37")


def test_kalshi_equal_prices_merge_and_zero_counts_drop():
    books = books_from_orderbook(
        "T1", kalshi_payload([["0.40", "1.50"], ["0.40", "2.50"], ["0.41", "0.00"]], []), received_ts_ms=0
    )
    assert books[YES].bids == (Level(D("0.40"), D("4.00")),)


def test_kalshi_empty_book_has_no_quotes():
    books = books_from_orderbook("T1", kalshi_payload([], []), received_ts_ms=0)
    assert books[YES].best_bid is None and books[YES].best_ask is None


@pytest.mark.parametrize(
    "yes_levels",
    [
        [["abc", "1.00"]],  # unparseable price
        [["0.40", "NaN"]],  # not finite
        [["1.40", "1.00"]],  # price outside dollars
        [["0.40", "-1.00"]],  # negative count
        [["0.40"]],  # not a pair
        [[0.40, "1.00"]],  # a float instead of a string
        None,  # the list itself missing
    ],
)
def test_kalshi_unusable_levels_are_malformed(yes_levels):
    with pytest.raises(MalformedPayload):
        books_from_orderbook("T1", kalshi_payload(yes_levels, []), received_ts_ms=0)


def test_kalshi_books_function_derives_asks_from_the_other_side():
    books = kalshi_books(
        "T1", [(D("0.42"), D("13"))], [(D("0.55"), D("20"))], venue_ts_ms=5, received_ts_ms=9
    )
    assert books[YES].best_ask.price + books[NO].best_bid.price == D(1)
    assert books[NO].best_ask.price + books[YES].best_bid.price == D(1)
    assert books[YES].ts_ms == 5


def test_polymarket_string_levels_served_best_last_are_resorted_best_first():
    summary = poly_summary(
        bids=[("0.48", "120"), ("0.49", "50")],
        asks=[("0.53", "30"), ("0.52", "75")],
    )
    book = book_from_summary(summary, token_id="TOKEN", side=YES, received_ts_ms=99)
    assert book.venue == POLYMARKET and book.side == YES and book.instrument_id == "TOKEN"
    assert book.bids == (Level(D("0.49"), D("50")), Level(D("0.48"), D("120")))
    assert book.asks == (Level(D("0.52"), D("75")), Level(D("0.53"), D("30")))
    assert book.venue_ts_ms == 1730000000123 and book.ts_ms == 1730000000123
    assert book.received_ts_ms == 99
    assert book.extra["tick_size"] == "0.01"
    assert book.extra["neg_risk"] is False
    assert book.extra["min_order_size"] == "5"
    assert not book.is_crossed()


def test_polymarket_fractional_share_sizes_and_fine_ticks_are_exact():
    summary = poly_summary(bids=[("0.4815", "10.123456")], asks=[("0.4825", "0.5")], tick_size="0.0001")
    book = book_from_summary(summary, token_id="T", side=NO, received_ts_ms=0)
    assert book.best_bid == Level(D("0.4815"), D("10.123456"))
    assert book.best_ask == Level(D("0.4825"), D("0.5"))


def test_polymarket_missing_timestamp_falls_back_to_receive_time():
    book = book_from_summary(poly_summary([], [], timestamp=None), token_id="T", side=YES, received_ts_ms=42)
    assert book.venue_ts_ms is None and book.ts_ms == 42


@pytest.mark.parametrize(
    "overrides",
    [
        {"bids": [("x", "1")]},
        {"asks": [("0.5", "Infinity")]},
        {"asks": [("2", "1")]},
        {"bids": None},
        {"timestamp": "yesterday"},
    ],
)
def test_polymarket_unusable_values_are_malformed(overrides):
    with pytest.raises(MalformedPayload):
        book_from_summary(poly_summary(**overrides), token_id="T", side=YES, received_ts_ms=0)


def test_polymarket_book_function_never_trusts_the_served_order():
    book = polymarket_book(
        "T", YES, [(D("0.1"), D("1")), (D("0.3"), D("1"))], [(D("0.9"), D("1")), (D("0.7"), D("1"))]
    )
    assert book.best_bid.price == D("0.3") and book.best_ask.price == D("0.7")


@pytest.mark.parametrize(
    ("cents", "usd"),
    [(100000, D("1000.00")), (0, D("0.00")), (1, D("0.01")), (12345, D("123.45")), (-250, D("-2.50"))],
)
def test_kalshi_balance_integer_cents_become_dollars(cents, usd):
    assert balance_usd_from_cents(cents) == usd


@pytest.mark.parametrize("cents", ["100", 1.5, True, None])
def test_kalshi_balance_that_is_not_integer_cents_is_malformed(cents):
    with pytest.raises(MalformedPayload):
        balance_usd_from_cents(cents)


@pytest.mark.parametrize(
    ("base_units", "usd"),
    [
        ("1000000000", D("1000")),
        ("1", D("0.000001")),
        ("0", D("0")),
        ("123456789", D("123.456789")),
        (2500000, D("2.5")),
    ],
)
def test_polymarket_balance_six_decimal_base_units_become_dollars(base_units, usd):
    assert balance_usd_from_base_units(base_units) == usd


@pytest.mark.parametrize("base_units", ["12.5", "-1", "lots", None, 1.0])
def test_polymarket_balance_that_is_not_whole_base_units_is_malformed(base_units):
    with pytest.raises(MalformedPayload):
        balance_usd_from_base_units(base_units)
