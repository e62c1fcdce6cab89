"""L2 books from stream messages: both venues, every documented form, gaps and crossed books."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client.clob_types import OrderBookSummary
from py_clob_client.utilities import generate_orderbook_summary_hash, parse_raw_orderbook_summary

from exchanges.books import kalshi_books, polymarket_book
from exchanges.streams.l2 import (
    KalshiL2,
    PolymarketL2,
    kalshi_books_of,
    kalshi_recording_line,
    polymarket_book_hash,
    polymarket_book_of,
    polymarket_recording_line,
)

D = Decimal
TICKER = "KXFED-26JUL-T4.25"


def snapshot(sid=1, seq=1, ticker=TICKER, **sides):
    return {"type": "orderbook_snapshot", "sid": sid, "seq": seq, "msg": {"market_ticker": ticker, **sides}}


def delta(seq, price, change, side="yes", sid=1, ticker=TICKER, **extra):
    msg = {"market_ticker": ticker, "price_dollars": price, "delta_fp": change, "side": side, **extra}
    return {"type": "orderbook_delta", "sid": sid, "seq": seq, "msg": msg}


def test_kalshi_snapshot_and_deltas_give_the_books_rest_would():
    l2 = KalshiL2()
    l2.apply(
        snapshot(
            seq=2,
            yes_dollars_fp=[["0.0800", "300.00"], ["0.2200", "333.00"]],
            no_dollars_fp=[["0.5400", "20.00"], ["0.5600", "146.00"]],
        )
    )
    applied = l2.apply(delta(3, "0.2200", "-54.00", ts_ms=1669149841000))
    assert applied.changed == (TICKER,)
    l2.apply(delta(4, "0.080", "-300.00"))  # same level written with 3 places; drops at 0
    l2.apply(delta(5, "0.5500", "7.00", side="no"))
    books = l2.books(TICKER, received_ts_ms=10)
    assert books == kalshi_books(
        TICKER,
        [(D("0.22"), D("279"))],
        [(D("0.56"), D("146")), (D("0.55"), D("7")), (D("0.54"), D("20"))],
        received_ts_ms=10,
    )
    assert books["yes"].best_ask.price == D("0.44")


def test_kalshi_legacy_snapshot_forms_and_legacy_deltas_are_read():
    l2 = KalshiL2()
    l2.apply(snapshot(yes=[[8, 300], [22, 333]], no=[[54, 20]]))
    l2.apply(
        {
            "type": "orderbook_delta",
            "sid": 1,
            "seq": 2,
            "msg": {"market_ticker": TICKER, "price": 22, "delta": -33, "side": "yes"},
        }
    )
    assert l2.ladders(TICKER) == ([(D("0.22"), D("300")), (D("0.08"), D("300"))], [(D("0.54"), D("20"))])
    l2.apply(snapshot(seq=3, yes_dollars=[["0.080", 5]], no_dollars=[]))
    assert l2.ladders(TICKER) == ([(D("0.08"), D("5"))], [])


def test_a_sequence_gap_makes_the_subscriptions_books_stale_until_a_new_snapshot():
    l2 = KalshiL2()
    l2.apply(snapshot(seq=1, yes_dollars_fp=[["0.40", "10"]]))
    l2.apply(snapshot(seq=2, ticker="OTHER", yes_dollars_fp=[["0.30", "10"]]))
    l2.apply(snapshot(sid=2, seq=1, ticker="ELSEWHERE", yes_dollars_fp=[["0.30", "10"]]))
    applied = l2.apply(delta(4, "0.40", "5"))
    assert applied.gap_sid == 1 and set(applied.stale) == {TICKER, "OTHER"}
    assert l2.books(TICKER, received_ts_ms=0) is None
    assert l2.recording_line(TICKER, received_ts_ms=0) is None
    assert l2.is_whole("ELSEWHERE")
    l2.apply(delta(5, "0.40", "5"))  # ignored: the book is stale
    l2.apply(snapshot(seq=6, yes_dollars_fp=[["0.40", "10"]]))
    assert l2.ladders(TICKER) == ([(D("0.40"), D("10"))], [])
    assert l2.stale_instruments([TICKER, "OTHER"]) == ["OTHER"]


def test_a_crossed_kalshi_book_is_stale_until_a_snapshot_that_is_not():
    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[["0.40", "10"]], no_dollars_fp=[["0.55", "20"]]))
    # A YES bid at the YES ask the NO bid implies (1 - 0.55): the venue would have matched them.
    applied = l2.apply(delta(2, "0.45", "1"))
    assert applied.stale == (TICKER,) and applied.changed == () and l2.crossed([TICKER, "OTHER"]) == [TICKER]
    assert l2.books(TICKER, received_ts_ms=0) is None and l2.stale_instruments([TICKER]) == [TICKER]
    l2.apply(delta(3, "0.40", "1"))  # ignored: the book is stale
    crossed_snapshot = snapshot(seq=4, yes_dollars_fp=[["0.60", "1"]], no_dollars_fp=[["0.41", "2"]])
    assert l2.apply(crossed_snapshot).stale == (TICKER,)  # $1.01: still crossed
    assert not l2.is_whole(TICKER) and l2.crossed([TICKER]) == [TICKER]
    applied = l2.apply(snapshot(seq=5, yes_dollars_fp=[["0.44", "1"]], no_dollars_fp=[["0.55", "20"]]))
    assert applied.changed == (TICKER,) and l2.crossed([TICKER]) == []
    assert l2.ladders(TICKER) == ([(D("0.44"), D("1"))], [(D("0.55"), D("20"))])
    # NO bids cross too: one cent short of the YES bid's $1 they do not, at it they do.
    assert l2.apply(delta(6, "0.5500", "5", side="no")).changed == (TICKER,)
    assert l2.apply(delta(7, "0.5600", "1", side="no")).stale == (TICKER,)
    assert l2.crossed([TICKER]) == [TICKER]


def test_kalshi_unknown_messages_and_fields_are_ignored():
    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[["0.40", "10"]], market_id="x", brand_new=[1]))
    assert l2.apply({"type": "ticker_v3", "sid": 9, "msg": {}}).changed == ()
    l2.apply(delta(2, "0.40", "1", client_order_id="c", subaccount=3, ts="2026-01-01T00:00:00Z"))
    assert l2.ladders(TICKER) == ([(D("0.40"), D("11"))], [])


def test_kalshi_recording_line_replays_as_the_same_books():
    from ingest.recording import to_book

    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[["0.4000", "10.00"]], no_dollars_fp=[["0.5500", "3.00"]]))
    line = l2.recording_line(TICKER, received_ts_ms=7, venue_ts_ms=5)
    assert line["t"] == 7 and line["vts"] == 5
    books = l2.books(TICKER, received_ts_ms=7, venue_ts_ms=5)
    assert to_book(line, {}) == (books["yes"], books["no"])


def test_a_kalshi_book_taken_before_later_deltas_builds_as_it_was_then():
    """A client hands a book's levels to its consumer and builds the books later, outside its
    lock: later deltas must not reach books taken before them."""
    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[["0.4000", "10.00"]], no_dollars_fp=[["0.5500", "3.00"]]))
    taken = l2.levels(TICKER)
    then = l2.books(TICKER, received_ts_ms=7, venue_ts_ms=5)
    line_then = l2.recording_line(TICKER, received_ts_ms=7, venue_ts_ms=5)
    l2.apply(delta(2, "0.4000", "-10.00"))
    l2.apply(delta(3, "0.4100", "4.00"))
    l2.apply(delta(4, "0.5500", "2.00", side="no"))
    assert kalshi_books_of(TICKER, taken, received_ts_ms=7, venue_ts_ms=5) == then
    assert kalshi_recording_line(TICKER, taken, received_ts_ms=7, venue_ts_ms=5) == line_then
    assert l2.ladders(TICKER) == ([(D("0.41"), D("4"))], [(D("0.55"), D("5"))])


def test_a_level_keeps_the_price_as_first_written():
    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[["0.0800", "300.00"]]))
    l2.apply(delta(2, "0.080", "5.00"))  # the same level written with 3 places
    assert l2.recording_line(TICKER, received_ts_ms=1)["yes"] == [["0.0800", "305.00"]]


TOKEN = "7132"


def book_event(bids, asks, asset=TOKEN, ts="1757908892351", **fields):
    """A `book` event as the venue sends it: the REST summary's fields, hashed by py-clob-client."""
    summary = {
        "market": "0xbd31",
        "asset_id": asset,
        "timestamp": ts,
        "hash": "",
        "bids": [{"price": p, "size": s} for p, s in bids],
        "asks": [{"price": p, "size": s} for p, s in asks],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
        "last_trade_price": "0.50",
        **fields,
    }
    summary["hash"] = generate_orderbook_summary_hash(parse_raw_orderbook_summary(summary))
    return {"event_type": "book", **summary}


def test_polymarket_book_then_price_changes_in_both_forms():
    l2 = PolymarketL2()
    l2.apply(
        [
            book_event([("0.48", "30"), ("0.49", "20")], [("0.53", "60"), ("0.52", "25")]),
            book_event([], [], asset="5211"),
        ]
    )
    l2.apply(
        {
            "event_type": "price_change",
            "market": "0xbd31",
            "timestamp": "1757908892400",
            "price_changes": [
                {
                    "asset_id": TOKEN,
                    "price": "0.5",
                    "size": "200",
                    "side": "BUY",
                    "hash": "h",
                    "best_bid": "0.5",
                },
                {"asset_id": TOKEN, "price": "0.52", "size": "0", "side": "SELL"},
                {"asset_id": "unknown", "price": "0.1", "size": "1", "side": "SELL"},
            ],
        }
    )
    l2.apply(
        {
            "event_type": "price_change",
            "asset_id": TOKEN,
            "hash": "h",
            "timestamp": "1757908892500",
            "changes": [{"price": "0.49", "side": "BUY", "size": "5"}],
        }
    )
    l2.apply({"event_type": "tick_size_change", "asset_id": TOKEN, "new_tick_size": "0.001"})
    book = l2.book(TOKEN, "yes", received_ts_ms=9, venue_ts_ms=l2.venue_ts_ms(TOKEN))
    assert book == polymarket_book(
        TOKEN,
        "yes",
        [(D("0.5"), D("200")), (D("0.49"), D("5")), (D("0.48"), D("30"))],
        [(D("0.53"), D("60"))],
        venue_ts_ms=1757908892500,
        received_ts_ms=9,
    )
    assert l2.is_whole("5211")


def test_a_crossed_polymarket_book_is_stale_until_a_new_book():
    l2 = PolymarketL2()
    l2.apply(book_event([("0.48", "30")], [("0.52", "25")]))
    crossing = {
        "event_type": "price_change",
        "price_changes": [{"asset_id": TOKEN, "price": "0.53", "size": "1", "side": "BUY"}],
    }
    applied = l2.apply(crossing)
    assert applied.stale == (TOKEN,) and applied.changed == ()
    assert l2.book(TOKEN, "yes", received_ts_ms=0) is None
    l2.apply(book_event([("0.48", "30")], [("0.52", "25")]))
    assert l2.is_whole(TOKEN)


def test_polymarket_book_hash_is_py_clob_clients_on_the_same_book():
    event = book_event([("0.48", "30"), ("0.49", "20")], [("0.53", "60"), ("0.52", "25")])
    rest_body = {k: v for k, v in event.items() if k != "event_type"}
    assert polymarket_book_hash(event) == generate_orderbook_summary_hash(
        parse_raw_orderbook_summary(rest_body)
    )
    assert polymarket_book_hash(event) == event["hash"]
    # A `book` event without the REST summary's other fields: those count as null.
    bare = {k: event[k] for k in ("event_type", "asset_id", "market", "bids", "asks", "timestamp")}
    official = OrderBookSummary(
        market=bare["market"],
        asset_id=bare["asset_id"],
        timestamp=bare["timestamp"],
        bids=parse_raw_orderbook_summary(rest_body).bids,
        asks=parse_raw_orderbook_summary(rest_body).asks,
    )
    assert polymarket_book_hash(bare) == generate_orderbook_summary_hash(official) != event["hash"]
    # The levels are hashed in the order they came in, as the venue hashed them.
    reordered = {**event, "bids": event["bids"][::-1]}
    assert polymarket_book_hash(reordered) != event["hash"]


def test_a_polymarket_book_whose_hash_does_not_verify_is_stale_until_one_that_does():
    l2 = PolymarketL2()
    good = book_event([("0.48", "30")], [("0.52", "25")])
    assert l2.apply(good).changed == (TOKEN,)
    damaged = {**good, "bids": [{"price": "0.48", "size": "3"}]}  # the content is not what was hashed
    applied = l2.apply(damaged)
    assert applied.stale == (TOKEN,) and applied.changed == () and l2.hash_failed([TOKEN]) == [TOKEN]
    assert l2.ladders(TOKEN) is None
    assert l2.apply({**good, "hash": "0x" + good["hash"]}).changed == (TOKEN,)  # written with 0x
    assert l2.hash_failed([TOKEN]) == []
    assert l2.ladders(TOKEN) == ([(D("0.48"), D("30"))], [(D("0.52"), D("25"))])
    # A first book that does not verify is stale too (asked for again), and one without a hash is taken.
    assert l2.apply({**damaged, "asset_id": "5211"}).stale == ("5211",)
    assert l2.hash_failed([TOKEN, "5211"]) == ["5211"]
    assert not l2.is_whole("5211")
    assert l2.apply([{**damaged, "asset_id": "5211", "hash": None}]).changed == ("5211",)
    # Not verifying: the damaged book is taken as it is.
    l2.verify_hashes = False
    assert l2.apply(damaged).changed == (TOKEN,)
    assert l2.ladders(TOKEN) == ([(D("0.48"), D("3"))], [(D("0.52"), D("25"))])


def test_a_polymarket_book_taken_before_later_changes_builds_as_it_was_then():
    l2 = PolymarketL2()
    l2.apply(book_event([("0.48", "30")], [("0.52", "25"), ("0.60", "1")]))
    taken = l2.levels(TOKEN)
    then = l2.book(TOKEN, "yes", received_ts_ms=7)
    line_then = l2.recording_line(TOKEN, received_ts_ms=7)
    l2.apply(
        {
            "event_type": "price_change",
            "price_changes": [
                {"asset_id": TOKEN, "price": "0.48", "size": "0", "side": "BUY"},
                {"asset_id": TOKEN, "price": "0.51", "size": "9", "side": "SELL"},
            ],
        }
    )
    assert polymarket_book_of(TOKEN, "yes", taken, received_ts_ms=7) == then
    assert polymarket_recording_line(TOKEN, taken, received_ts_ms=7) == line_then
    assert l2.ladders(TOKEN) == ([], [(D("0.51"), D("9")), (D("0.52"), D("25")), (D("0.60"), D("1"))])


def test_polymarket_recording_line_replays_as_the_same_book():
    from ingest.recording import to_book

    l2 = PolymarketL2()
    l2.apply(book_event([("0.48", "30")], [("0.52", "25"), ("0.60", "1")]))
    line = l2.recording_line(TOKEN, received_ts_ms=7, venue_ts_ms=5)
    assert to_book(line, {TOKEN: "no"}) == (l2.book(TOKEN, "no", received_ts_ms=7, venue_ts_ms=5),)


prices = st.integers(min_value=1, max_value=99).map(lambda c: D(c) / 100)
sizes = st.integers(min_value=0, max_value=500).map(D)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(prices, sizes.filter(bool), max_size=8),
    st.lists(st.tuples(st.sampled_from(["yes", "no"]), prices, st.integers(-600, 600).map(D)), max_size=40),
)
def test_random_kalshi_deltas_give_the_book_they_describe(start, changes):
    l2 = KalshiL2()
    l2.apply(snapshot(yes_dollars_fp=[[f"{p:.4f}", f"{s:.2f}"] for p, s in start.items()]))
    truth = {"yes": dict(start), "no": {}}
    for seq, (side, price, change) in enumerate(changes, start=2):
        applied = l2.apply(delta(seq, f"{price:.4f}", f"{change:.2f}", side=side))
        size = truth[side].get(price, D(0)) + change
        truth[side][price] = size
        if size <= 0:
            del truth[side][price]
        if truth["yes"] and truth["no"] and max(truth["yes"]) + max(truth["no"]) >= 1:
            assert applied.stale == (TICKER,) and l2.crossed([TICKER]) == [TICKER]
            return
        # The books come out as REST's builder makes them of the same ladders, after every change.
        assert l2.books(TICKER, received_ts_ms=seq) == kalshi_books(
            TICKER, list(truth["yes"].items()), list(truth["no"].items()), received_ts_ms=seq
        )
    expected = tuple(sorted(truth[s].items(), reverse=True) for s in ("yes", "no"))
    assert l2.ladders(TICKER) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), prices, sizes), max_size=40))
def test_random_polymarket_changes_give_the_book_they_describe(changes):
    l2 = PolymarketL2()
    l2.apply(book_event([], []))
    truth = {"BUY": {}, "SELL": {}}
    for side, price, size in changes:
        l2.apply(
            {
                "event_type": "price_change",
                "price_changes": [{"asset_id": TOKEN, "price": str(price), "size": str(size), "side": side}],
            }
        )
        if size:
            truth[side][price] = size
        else:
            truth[side].pop(price, None)
        if truth["BUY"] and truth["SELL"] and max(truth["BUY"]) >= min(truth["SELL"]):
            assert not l2.is_whole(TOKEN)
            return
        assert l2.ladders(TOKEN) == (
            sorted(truth["BUY"].items(), reverse=True),
            sorted(truth["SELL"].items()),
        )
        assert l2.book(TOKEN, "no", received_ts_ms=3) == polymarket_book(
            TOKEN, "no", truth["BUY"].items(), truth["SELL"].items(), received_ts_ms=3
        )
