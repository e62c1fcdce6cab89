"""Book moves: the double changes a book shortly after it was read, as the official clients see it."""

import dataclasses
import threading
import time
from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from exchanges.double import BookMove, ExchangeDouble, Scenario, demo_book_moves
from exchanges.double.moves import ladder_of, moved_book, moved_kalshi_book
from exchanges.testing import make_kalshi_client, make_polymarket_client
from ingest.live import mirror_to_double

TICKER = "KXMOVE-26JAN01-T50"
TOKEN = "3333333333333333333333333333333333333333333333333333333333333333333333333333"
# YES asks (from NO bids): 0.45 x 20, 0.50 x 5; NO asks (from YES bids): 0.58 x 13, 0.60 x 100.
YES_BIDS = [["0.42", "13"], ["0.40", "100"]]
NO_BIDS = [["0.55", "20"], ["0.50", "5"]]
POLY_BIDS = [["0.49", "50"], ["0.48", "120"]]
POLY_ASKS = [["0.52", "75"], ["0.53", "30"], ["0.97", "10"]]
STORED_NO_BIDS = [["0.5500", "20.00"], ["0.5000", "5.00"]]  # as the state keeps NO_BIDS


def ladder(*levels):
    return [(D(price), D(size)) for price, size in levels]


def poll(predicate, timeout_s=5.0):
    """Wait for a move the double applies on its own timer (bounded; no timing is asserted)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the book did not move in time"
        time.sleep(0.005)


# --- the rule, on ladders ------------------------------------------------------------------------


def test_thin_keeps_a_share_of_each_ask_within_the_depth_rounded_down_to_the_sizes_places():
    move = BookMove(venue="polymarket", kind="thin", keep="0.3", depth_cents=1)

    bids, asks = moved_book(
        move, ladder(("0.49", "50")), ladder(("0.52", "75"), ("0.53", "30.50"), ("0.54", "9"))
    )

    assert asks == ladder(("0.52", "22"), ("0.53", "9.15"), ("0.54", "9"))
    assert bids == ladder(("0.49", "50"))  # a thin book is thin on the side orders take


def test_thin_drops_a_level_left_with_nothing():
    move = BookMove(venue="polymarket", kind="thin", keep="0.1")

    _, asks = moved_book(move, [], ladder(("0.52", "5"), ("0.53", "30")))

    assert asks == ladder(("0.53", "3"))


def test_empty_removes_the_asks_within_the_depth_and_keeps_the_deeper_ones():
    move = BookMove(venue="polymarket", kind="empty", depth_cents=1)

    _, asks = moved_book(move, [], ladder(("0.53", "30"), ("0.52", "75"), ("0.60", "8")))

    assert asks == ladder(("0.60", "8"))


def test_jump_raises_asks_and_bids_and_drops_what_would_reach_a_dollar():
    move = BookMove(venue="polymarket", kind="jump", cents=3)

    bids, asks = moved_book(
        move, ladder(("0.49", "50"), ("0.97", "1")), ladder(("0.52", "75"), ("0.97", "10"))
    )

    assert asks == ladder(("0.55", "75"))
    assert bids == ladder(("0.52", "50"))


def test_kalshi_yes_thin_thins_the_no_bids_that_make_the_yes_asks():
    move = BookMove(venue="kalshi", kind="thin", side="yes", keep="0.5", depth_cents=0)

    yes_bids, no_bids = moved_kalshi_book(move, ladder_of(YES_BIDS), ladder_of(NO_BIDS))

    assert no_bids == ladder(("0.55", "10"), ("0.50", "5"))  # the best YES ask, 0.45, halved
    assert yes_bids == ladder_of(YES_BIDS)


def test_kalshi_no_empty_removes_the_yes_bids_that_make_the_no_asks():
    move = BookMove(venue="kalshi", kind="empty", side="no", depth_cents=0)

    yes_bids, no_bids = moved_kalshi_book(move, ladder_of(YES_BIDS), ladder_of(NO_BIDS))

    assert yes_bids == ladder(("0.40", "100"))  # the best NO ask, 0.58, is gone
    assert no_bids == ladder_of(NO_BIDS)


def test_kalshi_thin_without_a_side_thins_both_outcomes_asks():
    move = BookMove(venue="kalshi", kind="thin", keep="0.3")

    yes_bids, no_bids = moved_kalshi_book(move, ladder_of(YES_BIDS), ladder_of(NO_BIDS))

    assert yes_bids == ladder(("0.42", "3"), ("0.40", "30"))
    assert no_bids == ladder(("0.55", "6"), ("0.50", "1"))


def test_kalshi_yes_jump_raises_yes_and_lowers_no_clamped_below_a_dollar():
    move = BookMove(venue="kalshi", kind="jump", side="yes", cents=3)

    yes_bids, no_bids = moved_kalshi_book(move, ladder(("0.42", "13")), ladder(("0.55", "20"), ("0.02", "9")))

    # YES asks 0.45 -> 0.48; 0.98 would be 1.01, so the NO bid at 0.02 goes.
    assert no_bids == ladder(("0.52", "20"))
    assert yes_bids == ladder(("0.45", "13"))


def test_kalshi_no_jump_raises_no_and_lowers_yes():
    move = BookMove(venue="kalshi", kind="jump", side="no", cents="2.5")

    yes_bids, no_bids = moved_kalshi_book(move, ladder_of(YES_BIDS), ladder_of(NO_BIDS))

    assert yes_bids == ladder(("0.395", "13"), ("0.375", "100"))  # NO asks 0.58 -> 0.605, ...
    assert no_bids == ladder(("0.575", "20"), ("0.525", "5"))


def test_every_and_times_count_matching_reads_only():
    move = BookMove(venue="kalshi", kind="thin", instrument=TICKER, every=2, times=2)

    fired = [move.count_read(venue, ticker) for venue, ticker in [("kalshi", TICKER)] * 7]
    other = [move.count_read("kalshi", "OTHER"), move.count_read("polymarket", TICKER)]

    assert fired == [False, True, False, True, False, False, False]
    assert other == [False, False]
    assert (move.reads, move.fired) == (4, 2)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"venue": "kalshi", "kind": "shrink"}, "kind"),
        ({"venue": "kalshi", "kind": "jump"}, "side"),
        ({"venue": "polymarket", "kind": "thin", "side": "no"}, "side"),
        ({"venue": "kalshi", "kind": "thin", "keep": "1.5"}, "keep"),
        ({"venue": "kalshi", "kind": "thin", "every": 0}, "every"),
    ],
)
def test_a_move_refused_names_its_field(fields, named):
    with pytest.raises(ValueError, match=f"^{named}: "):
        BookMove(**fields)


# --- through the official clients ----------------------------------------------------------------


def _scenario(moves=()):
    return Scenario.from_dict(
        {
            "kalshi": {"markets": {TICKER: {"yes_bids": YES_BIDS, "no_bids": NO_BIDS}}},
            "polymarket": {"books": {TOKEN: {"bids": POLY_BIDS, "asks": POLY_ASKS}}},
            "moves": list(moves),
        }
    )


@pytest.fixture
def double():
    with ExchangeDouble(_scenario()) as running:
        yield running


@pytest.fixture
def kalshi(double):
    return make_kalshi_client(double.kalshi_host)


@pytest.fixture
def polymarket(double):
    return make_polymarket_client(double.polymarket_host)


def asks_of(summary):
    return sorted((level.price, level.size) for level in summary.asks)


def test_a_kalshi_book_read_is_thinned_after_the_delay_for_the_next_read(double, kalshi):
    double.add_book_move(BookMove(venue="kalshi", kind="thin", side="yes", keep="0.3", after_ms=30, times=1))

    seen = kalshi.get_market_orderbook(TICKER).orderbook_fp
    poll(lambda: double.state.kalshi_market(TICKER).no_bids != STORED_NO_BIDS)
    arrived = kalshi.get_market_orderbook(TICKER).orderbook_fp

    assert seen.no_dollars == [["0.5000", "5.00"], ["0.5500", "20.00"]]
    assert arrived.no_dollars == [["0.5000", "1.50"], ["0.5500", "6.00"]]  # YES asks 0.45 x 6, 0.50 x 1.5
    assert arrived.yes_dollars == seen.yes_dollars


def test_a_polymarket_price_jumps_past_the_limit_after_the_delay(double, polymarket):
    double.add_book_move(BookMove(venue="polymarket", kind="jump", instrument=TOKEN, cents=3, after_ms=30))

    seen = polymarket.get_order_book(TOKEN)
    poll(lambda: double.state.polymarket_book(TOKEN).asks[0]["price"] != "0.52")
    arrived = polymarket.get_order_book(TOKEN)

    assert asks_of(seen) == [("0.52", "75"), ("0.53", "30"), ("0.97", "10")]
    assert asks_of(arrived) == [("0.55", "75"), ("0.56", "30")]
    assert int(arrived.timestamp) >= int(seen.timestamp)


def test_every_nth_read_moves_the_book_at_most_times_times(double, polymarket):
    # after_ms=0: the move is applied as soon as the read has its answer, so no waiting.
    double.add_book_move(BookMove(venue="polymarket", kind="thin", keep="0.5", every=2, times=2, after_ms=0))

    best_ask_sizes = [dict(asks_of(polymarket.get_order_book(TOKEN)))["0.52"] for _ in range(7)]

    assert best_ask_sizes == ["75", "75", "37", "37", "18", "18", "18"]
    assert [(move.reads, move.fired) for move in double.book_moves] == [(4, 2)]


def test_a_move_on_one_instrument_leaves_the_others_alone(double, kalshi, polymarket):
    double.add_book_move(BookMove(venue="polymarket", kind="empty", instrument="another-token", after_ms=0))

    polymarket.get_order_book(TOKEN)
    kalshi.get_market_orderbook(TICKER)

    assert asks_of(polymarket.get_order_book(TOKEN)) == [("0.52", "75"), ("0.53", "30"), ("0.97", "10")]
    assert double.book_moves[0].reads == 0


def test_a_replay_mirror_replaces_a_moved_book(double, kalshi, polymarket):
    double.add_book_move(BookMove(venue="kalshi", kind="empty", after_ms=0))
    double.add_book_move(BookMove(venue="polymarket", kind="empty", after_ms=0))
    kalshi.get_market_orderbook(TICKER)
    polymarket.get_order_book(TOKEN)
    double.clear_book_moves()
    assert double.state.kalshi_market(TICKER).no_bids == []

    mirror_to_double(
        double.state, {"t": 1, "venue": "kalshi", "id": TICKER, "yes": [], "no": [["0.51", "4"]]}
    )
    mirror_to_double(
        double.state,
        {"t": 2, "venue": "polymarket", "id": TOKEN, "bids": [], "asks": [{"price": "0.6", "size": "2"}]},
    )

    assert kalshi.get_market_orderbook(TICKER).orderbook_fp.no_dollars == [["0.5100", "4.00"]]
    assert asks_of(polymarket.get_order_book(TOKEN)) == [("0.6", "2")]


def test_a_lasting_move_also_moves_a_book_set_while_it_lasts(double, kalshi):
    double.add_book_move(
        BookMove(venue="kalshi", kind="thin", keep="0.5", after_ms=0, lasts_ms=60_000, times=1)
    )
    kalshi.get_market_orderbook(TICKER)
    thinned = kalshi.get_market_orderbook(TICKER).orderbook_fp

    mirror_to_double(
        double.state, {"t": 1, "venue": "kalshi", "id": TICKER, "yes": [], "no": [["0.51", "40"]]}
    )

    assert thinned.no_dollars == [["0.5000", "2.50"], ["0.5500", "10.00"]]
    assert kalshi.get_market_orderbook(TICKER).orderbook_fp.no_dollars == [["0.5100", "20.00"]]


def test_a_lasting_move_ends_with_the_book_as_last_set(double, kalshi):
    double.add_book_move(BookMove(venue="kalshi", kind="empty", after_ms=0, lasts_ms=50, times=1))
    kalshi.get_market_orderbook(TICKER)  # sets the move off: the book empties for 50 ms
    mirror_to_double(
        double.state, {"t": 1, "venue": "kalshi", "id": TICKER, "yes": [], "no": [["0.51", "4"]]}
    )

    poll(lambda: double.state.kalshi_market(TICKER).no_bids == [["0.5100", "4.00"]])

    assert double.book_moves[0].fired == 1
    assert kalshi.get_market_orderbook(TICKER).orderbook_fp.no_dollars == [["0.5100", "4.00"]]


def test_demo_preset_thins_kalshi_on_the_third_read_empties_polymarket_once_on_the_fifth_and_jumps_it_on_the_seventh(
    double, kalshi, polymarket
):
    for move in demo_book_moves():
        # Lasting until the book is set again, so that what is asserted cannot end first.
        double.add_book_move(dataclasses.replace(move, lasts_ms=None))

    kalshi_sizes = [kalshi.get_market_orderbook(TICKER).orderbook_fp.no_dollars[-1][1] for _ in range(3)]
    poll(lambda: double.state.kalshi_market(TICKER).no_bids != STORED_NO_BIDS)
    poly_asks = [asks_of(polymarket.get_order_book(TOKEN)) for _ in range(5)]
    poll(lambda: not double.state.polymarket_book(TOKEN).asks)
    double.state.set_polymarket_book(TOKEN, POLY_BIDS, POLY_ASKS)  # the replay sets it again
    later = [asks_of(polymarket.get_order_book(TOKEN))[0] for _ in range(2)]
    poll(lambda: double.state.polymarket_book(TOKEN).asks[0]["price"] != "0.52")

    assert kalshi_sizes == ["20.00"] * 3
    assert kalshi.get_market_orderbook(TICKER).orderbook_fp.no_dollars[-1] == ["0.5500", "6.00"]
    assert [asks[0] for asks in poly_asks] == [("0.52", "75")] * 5
    assert later == [("0.52", "75")] * 2  # the empty came once; the 7th read sets off the jump
    assert asks_of(polymarket.get_order_book(TOKEN))[0] == ("0.55", "75")
    assert [(move.kind, move.fired) for move in double.book_moves] == [("thin", 1), ("jump", 1), ("empty", 1)]


def test_moves_in_a_scenario_file_apply_when_the_double_serves_it(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        f"kalshi:\n  markets:\n    {TICKER}:\n      no_bids: [['0.55', '20']]\n"
        f"moves:\n  - {{venue: kalshi, kind: thin, side: yes, keep: '0.5', after_ms: 0}}\n"
    )

    with ExchangeDouble(Scenario.load(path)) as running:
        client = make_kalshi_client(running.kalshi_host)
        client.get_market_orderbook(TICKER)

        assert client.get_market_orderbook(TICKER).orderbook_fp.no_dollars == [["0.5500", "10.00"]]


def test_a_scenario_file_with_bad_moves_names_each_bad_field(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "moves:\n"
        "  - {venue: kalshi, kind: thin, keep: '1.5'}\n"
        "  - {venue: polymarket, kind: jump, after: 5}\n"
        "  - {kind: empty}\n"
    )

    with pytest.raises(CommandError) as raised:
        call_command("exchange_double", "--scenario", str(path), "--port", "0")

    message = str(raised.value)
    assert "moves[0].keep: must be less than or equal to 1" in message
    assert "moves[1].after: unknown key" in message
    assert "moves[2].venue: is required" in message


def test_stopping_the_double_leaves_no_timer_thread(kalshi, double):
    double.add_book_move(BookMove(venue="kalshi", kind="thin", after_ms=60_000))
    kalshi.get_market_orderbook(TICKER)
    assert any(thread.name == "exchange-double-timers" for thread in threading.enumerate())

    double.stop()

    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("exchange-double")]
    assert double.state.kalshi_market(TICKER).no_bids == STORED_NO_BIDS
