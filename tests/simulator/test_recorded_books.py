"""A recording's books as the venues on its own clock: the book that stood at a moment is the
latest update at or before it, never a later one (no look-ahead)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET, YES, Book, Level
from simulator.core import IntentLeg
from simulator.core.execution import LegOrder
from simulator.engine.recorded import RecordedBooks

D = Decimal
TICKER = "KXTEST-26"


def kalshi_book(received_ms: int, ask: str) -> Book:
    return Book.of(
        KALSHI,
        TICKER,
        YES,
        bids=(),
        asks=(Level(D(ask), D(10)),),
        venue_ts_ms=None,
        received_ts_ms=received_ms,
    )


def order() -> LegOrder:
    return LegOrder(
        venue=KALSHI,
        instrument_id=TICKER,
        side=YES,
        limit_price=D("0.60"),
        order_type="ioc",
        size=D(5),
        latency_ms=50,
        unwind_latency_ms=50,
        book=(),
        book_available=(),
    )


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def books() -> RecordedBooks:
    return RecordedBooks([kalshi_book(1_000, "0.40"), kalshi_book(2_000, "0.45"), kalshi_book(3_000, "0.50")])


@pytest.mark.parametrize(
    ("arrival_ms", "best_ask"),
    [(1_000, "0.40"), (1_999, "0.40"), (2_000, "0.45"), (2_500, "0.45"), (9_000, "0.50")],
)
def test_an_order_meets_the_latest_book_recorded_at_or_before_its_arrival(books, arrival_ms, best_ask):
    book, reason = books.arrival_books(user_id=1, order=order(), at=at(arrival_ms))
    assert reason == "" and book.asks[0].price == D(best_ask)


def test_an_order_arriving_before_anything_was_recorded_meets_no_book_and_says_why(books):
    book, reason = books.arrival_books(user_id=1, order=order(), at=at(999))
    assert book is None and reason == "no book at arrival: nothing recorded for it yet"


def test_books_filed_one_by_one_never_show_one_read_later():
    replay = RecordedBooks()
    replay.add(kalshi_book(1_000, "0.40"))
    assert replay.book_at(KALSHI, TICKER, YES, 5_000).asks[0].price == D("0.40")
    replay.add(kalshi_book(4_000, "0.55"))
    assert replay.book_at(KALSHI, TICKER, YES, 5_000).asks[0].price == D("0.55")
    assert replay.book_at(KALSHI, TICKER, YES, 3_999).asks[0].price == D("0.40")


def test_a_recording_whose_time_goes_backwards_is_refused():
    replay = RecordedBooks([kalshi_book(2_000, "0.40")])
    with pytest.raises(ValueError, match="goes backwards"):
        replay.add(kalshi_book(1_999, "0.41"))


def test_validation_at_decision_time_sees_each_legs_book_as_it_stood_and_names_a_missing_one(books):
    legs = [
        IntentLeg(venue=KALSHI, instrument_id=TICKER, side=YES, limit_price=D("0.6"), size=D(5)),
        IntentLeg(venue=POLYMARKET, instrument_id="123", side=YES, limit_price=D("0.5"), size=D(5)),
    ]
    validation = books.validate(user_id=1, legs=legs, now=at(2_500))
    kalshi, polymarket = validation.legs
    assert kalshi.ok and kalshi.book.asks[0].price == D("0.45")
    assert not validation.ok and not polymarket.ok
    assert polymarket.detail == "no recorded book at this time"
