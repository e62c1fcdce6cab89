"""A run cannot take the same size twice from one book snapshot."""

import json
from decimal import Decimal

import pytest

from exchanges.books import Book, Level
from simulator.core import Fill, LiquidityLedger
from tests.simulator import BOOK_TS_MS, kalshi_book, polymarket_book

D = Decimal


def test_a_fresh_ledger_leaves_the_book_as_it_is():
    book = kalshi_book(("0.45", "10"))
    assert LiquidityLedger().apply(book) is book


def test_size_taken_from_a_snapshot_is_subtracted_on_the_same_snapshot():
    ledger = LiquidityLedger()
    book = kalshi_book(("0.44", "6"), ("0.45", "20"))
    ledger.consume(book, [Fill(D("0.44"), D("6")), Fill(D("0.45"), D("4"))])
    # 0.44 is used up and dropped; 20 - 4 = 16 remain at 0.45.
    assert ledger.apply(book).asks == (Level(D("0.45"), D("16")),)
    # Taking more from the same snapshot adds up.
    ledger.consume(book, [Fill(D("0.45"), D("16"))])
    assert ledger.apply(book).asks == ()


def test_a_newer_snapshot_resets_the_instrument():
    ledger = LiquidityLedger()
    old = kalshi_book(("0.45", "10"))
    ledger.consume(old, [Fill(D("0.45"), D("10"))])
    newer = kalshi_book(("0.45", "10"), ("0.46", "5"), ts_ms=BOOK_TS_MS + 1)
    assert ledger.apply(newer) is newer
    ledger.consume(newer, [Fill(D("0.45"), D("3"))])
    assert ledger.apply(newer).asks == (Level(D("0.45"), D("7")), Level(D("0.46"), D("5")))


def test_an_older_snapshot_is_still_reduced_by_what_a_newer_one_gave():
    ledger = LiquidityLedger()
    ledger.consume(kalshi_book(("0.45", "10"), ts_ms=BOOK_TS_MS + 500), [Fill(D("0.45"), D("8"))])
    stale = kalshi_book(("0.45", "10"))
    assert ledger.apply(stale).asks == (Level(D("0.45"), D("2")),)
    # Filling from the stale view adds to the newer snapshot's entry; it does not go back in time.
    ledger.consume(stale, [Fill(D("0.45"), D("2"))])
    assert ledger.to_json()["books"][0]["ts_ms"] == BOOK_TS_MS + 500
    assert ledger.apply(kalshi_book(("0.45", "10"), ts_ms=BOOK_TS_MS + 500)).asks == ()


def test_instruments_are_kept_apart():
    ledger = LiquidityLedger()
    ledger.consume(kalshi_book(("0.45", "10")), [Fill(D("0.45"), D("10"))])
    polymarket = polymarket_book(("0.45", "10"))
    assert ledger.apply(polymarket) is polymarket


def test_the_venue_timestamp_is_the_snapshot_identity_when_present():
    ledger = LiquidityLedger()
    book = Book(
        venue="kalshi",
        instrument_id="T",
        side="yes",
        asks=(Level(D("0.45"), D("10")),),
        venue_ts_ms=5,
        received_ts_ms=900,
    )
    ledger.consume(book, [Fill(D("0.45"), D("4"))])
    # Received again later, but the venue says it is the same book: still reduced.
    again = Book(
        venue="kalshi", instrument_id="T", side="yes", asks=book.asks, venue_ts_ms=5, received_ts_ms=1_900
    )
    assert ledger.apply(again).asks == (Level(D("0.45"), D("6")),)


def test_the_ledger_round_trips_through_json():
    ledger = LiquidityLedger()
    ledger.consume(kalshi_book(("0.45", "10")), [Fill(D("0.45"), D("4.5"))])
    ledger.consume(polymarket_book(("0.50", "10")), [Fill(D("0.50"), D("4.5"))])
    stored = json.loads(json.dumps(ledger.to_json()))
    restored = LiquidityLedger.from_json(stored)
    assert restored == ledger
    assert restored.apply(kalshi_book(("0.45", "10"))).asks == (Level(D("0.45"), D("5.5")),)


def test_an_empty_stored_ledger_is_a_fresh_one_and_an_unknown_version_is_refused():
    assert LiquidityLedger.from_json(None) == LiquidityLedger()
    assert LiquidityLedger.from_json({}) == LiquidityLedger()
    with pytest.raises(ValueError, match="version"):
        LiquidityLedger.from_json({"version": 99, "books": []})
