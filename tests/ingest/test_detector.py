"""The detector: net edge after fees on hand-computed books, depth walking, and rejections."""

from decimal import Decimal as D

from exchanges.books import KALSHI, NO, POLYMARKET, YES, kalshi_books, polymarket_book
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from ingest.detector import (
    KALSHI_YES_POLY_NO,
    POLY_YES_KALSHI_NO,
    Detector,
    PairSpec,
    evaluate,
)

TICKER = "KXFEDDECISION-26DEC-C25"
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


def pair(poly_fee_rate=D(0), key="FED-DEC-CUT", ticker=TICKER, yes=YES_TOKEN, no=NO_TOKEN):
    return PairSpec(
        key, ticker, yes, no, kalshi_taker_schedule(ticker), polymarket_taker_schedule(poly_fee_rate)
    )


def books_of(kalshi_yes_bids, kalshi_no_bids, poly_yes_asks, poly_no_asks, ts=(0, 0, 0), ticker=TICKER):
    """The four books of a pair keyed as the detector keeps them; prices/sizes as strings."""
    as_d = lambda levels: [(D(p), D(s)) for p, s in levels]  # noqa: E731
    kalshi = kalshi_books(ticker, as_d(kalshi_yes_bids), as_d(kalshi_no_bids), received_ts_ms=ts[0])
    poly_yes = polymarket_book(YES_TOKEN, YES, [], as_d(poly_yes_asks), received_ts_ms=ts[1])
    poly_no = polymarket_book(NO_TOKEN, NO, [], as_d(poly_no_asks), received_ts_ms=ts[2])
    return {
        (KALSHI, ticker, YES): kalshi[YES],
        (KALSHI, ticker, NO): kalshi[NO],
        (POLYMARKET, YES_TOKEN, YES): poly_yes,
        (POLYMARKET, NO_TOKEN, NO): poly_no,
    }


def test_yes_on_kalshi_and_no_on_polymarket_nets_the_edge_after_kalshi_fees():
    # Kalshi NO bid 0.55 x 100 -> YES ask 0.45 x 100. Polymarket NO ask 0.50 x 100, no fee.
    books = books_of([("0.40", "100")], [("0.55", "100")], [("0.52", "50")], [("0.50", "100")])
    evaluation = evaluate(pair(), books, now_ms=0)
    quote = evaluation.directions[KALSHI_YES_POLY_NO]
    # 1 contract: 100 - 45 - 50 = 5c gross; Kalshi fee ceil(0.07 x 0.45 x 0.55 = 0.017325) = 2c.
    assert quote.net_edge_cents == D("3.0000")
    # 100 contracts: fee ceil(0.07 x 100 x 0.2475 = 1.7325) = $1.74; profit 5.00 - 1.74 = $3.26.
    assert quote.size == D(100)
    assert quote.cost_usd == D("95.00")  # 100 x (0.45 + 0.50), fees excluded
    assert quote.fees_usd == D("1.74")
    assert quote.avg_net_edge_cents == D("3.2600")  # better per contract than a 1-contract order
    kalshi_leg, poly_leg = quote.legs
    assert (kalshi_leg.venue, kalshi_leg.side, kalshi_leg.limit_price) == (KALSHI, YES, D("0.45"))
    assert kalshi_leg.fills == ((D("0.45"), D(100)),)
    assert kalshi_leg.fee_usd == D("1.74")
    assert (poly_leg.venue, poly_leg.instrument_id, poly_leg.side) == (POLYMARKET, NO_TOKEN, NO)
    assert poly_leg.fee_usd == D("0.0000")
    assert evaluation.ok and evaluation.best is quote


def test_the_losing_direction_is_quoted_with_no_size():
    books = books_of([("0.40", "100")], [("0.55", "100")], [("0.52", "50")], [("0.50", "100")])
    quote = evaluate(pair(), books, now_ms=0).directions[POLY_YES_KALSHI_NO]
    # Polymarket YES 0.52 + Kalshi NO (1 - 0.40 = 0.60) = 1.12; Kalshi fee ceil(0.0168) = 2c.
    assert quote.net_edge_cents == D("-14.0000")
    assert quote.size == 0
    assert quote.fees_usd == 0
    assert quote.avg_net_edge_cents == quote.net_edge_cents
    assert quote.legs[0].limit_price == D("0.52")


def test_yes_on_polymarket_and_no_on_kalshi_pays_both_venues_fees():
    # Polymarket YES ask 0.51 x 200 (fee rate 0.03); Kalshi YES bid 0.55 x 150 -> NO ask 0.45 x 150.
    books = books_of([("0.55", "150")], [("0.30", "10")], [("0.51", "200")], [("0.60", "10")])
    quote = evaluate(pair(poly_fee_rate=D("0.03")), books, now_ms=0).directions[POLY_YES_KALSHI_NO]
    # 1 contract: gross 4c; Polymarket 0.03 x 0.51 x 0.49 = 0.007497 -> $0.0075 (up to 1/100 cent);
    # Kalshi ceil(0.017325) = $0.02. 4 - 0.75 - 2 = 1.25c.
    assert quote.net_edge_cents == D("1.2500")
    # 150 contracts (Kalshi's depth): Polymarket 150 x 0.007497 = 1.12455 -> $1.1246;
    # Kalshi 150 x 0.017325 = 2.59875 -> $2.60; profit 6.00 - 3.7246 = $2.2754 -> 1.5169c each.
    assert quote.size == D(150)
    assert quote.legs[0].fee_usd == D("1.1246")
    assert quote.legs[1].fee_usd == D("2.60")
    assert quote.fees_usd == D("3.7246")
    assert quote.cost_usd == D("144.00")
    assert quote.avg_net_edge_cents == D("1.5169")


def test_depth_walk_stops_where_the_marginal_edge_turns_negative():
    # Kalshi YES asks 0.45 x 10, 0.47 x 10, 0.49 x 10; Polymarket NO asks 0.50 x 15, 0.52 x 100.
    books = books_of(
        [("0.30", "10")],
        [("0.55", "10"), ("0.53", "10"), ("0.51", "10")],
        [("0.90", "10")],
        [("0.50", "15"), ("0.52", "100")],
    )
    quote = evaluate(pair(), books, now_ms=0).directions[KALSHI_YES_POLY_NO]
    # chunk 1: 10 @ 0.45 + 0.50, gross 0.50; Kalshi raw 0.17325 -> 0.18; profit 0.32 (marginal +0.32)
    # chunk 2:  5 @ 0.47 + 0.50, gross 0.15; raw 0.17325 + 0.087185 = 0.260435 -> 0.27; profit 0.38 (+0.06)
    # chunk 3:  5 @ 0.47 + 0.52, gross 0.05; raw 0.34762 -> 0.35; profit 0.35 (-0.03): stop before it.
    assert quote.size == D(15)
    kalshi_leg, poly_leg = quote.legs
    assert kalshi_leg.fills == ((D("0.45"), D(10)), (D("0.47"), D(5)))
    assert kalshi_leg.limit_price == D("0.47")
    assert poly_leg.fills == ((D("0.50"), D(15)),)
    assert poly_leg.limit_price == D("0.50")
    assert quote.fees_usd == D("0.27")
    assert quote.cost_usd == D("14.35")
    assert quote.avg_net_edge_cents == D("2.5333")  # 0.38 / 15
    assert quote.net_edge_cents == D("3.0000")


def test_an_edge_eaten_by_one_contract_rounding_still_has_size_at_depth():
    # Gross 2c at 0.45 + 0.53: a 1-contract order pays a whole 2c Kalshi fee (edge 0), but 100
    # contracts pay $1.74 against $2.00 gross.
    books = books_of([("0.30", "10")], [("0.55", "100")], [("0.90", "10")], [("0.53", "100")])
    quote = evaluate(pair(), books, now_ms=0).directions[KALSHI_YES_POLY_NO]
    assert quote.net_edge_cents == D("0.0000")
    assert quote.size == D(100)
    assert quote.avg_net_edge_cents == D("0.2600")


def test_a_stale_side_is_rejected_and_counted():
    books = books_of([("0.40", "100")], [("0.55", "100")], [("0.52", "50")], [("0.50", "100")], ts=(0, 0, 0))
    detector = Detector([pair()])
    detector.books.update(books)
    evaluation = detector.evaluate_key("FED-DEC-CUT", now_ms=10_001)
    assert not evaluation.ok
    assert evaluation.reason == "stale"
    assert evaluation.best is None
    assert detector.counters["stale"] == 2  # both directions
    assert detector.evaluate_key("FED-DEC-CUT", now_ms=10_000).ok  # exactly max_age is still fresh


def test_books_further_apart_than_max_skew_are_rejected():
    detector = Detector([pair()])
    # Kalshi at t=0; Polymarket YES at 2000 (just within), Polymarket NO at 2001 (too far).
    detector.books.update(
        books_of(
            [("0.40", "100")], [("0.55", "100")], [("0.52", "50")], [("0.50", "100")], ts=(0, 2000, 2001)
        )
    )
    evaluation = detector.evaluate_key("FED-DEC-CUT", now_ms=2001)
    assert evaluation.rejected == {KALSHI_YES_POLY_NO: "skewed"}
    assert list(evaluation.directions) == [POLY_YES_KALSHI_NO]
    assert evaluation.ok
    assert detector.counters["skewed"] == 1


def test_the_venue_timestamp_is_what_staleness_is_judged_on():
    kalshi = kalshi_books(TICKER, [(D("0.40"), D(1))], [(D("0.55"), D(1))], received_ts_ms=9000)
    poly_no = polymarket_book(NO_TOKEN, NO, [], [(D("0.50"), D(1))], venue_ts_ms=1000, received_ts_ms=9000)
    detector = Detector([pair()])
    detector.on_books(kalshi.values(), now_ms=9000)
    [evaluation] = detector.on_book(poly_no, now_ms=12_000)
    assert evaluation.rejected[KALSHI_YES_POLY_NO] == "stale"  # 12000 - 1000 > 10000


def test_missing_crossed_and_empty_books_are_rejected_not_raised():
    detector = Detector([pair()])
    kalshi = kalshi_books(TICKER, [(D("0.40"), D(10))], [(D("0.55"), D(10))], received_ts_ms=0)
    [evaluation] = detector.on_books(kalshi.values(), now_ms=0)
    assert (evaluation.ok, evaluation.reason) == (False, "missing")
    crossed = polymarket_book(NO_TOKEN, NO, [(D("0.55"), D(5))], [(D("0.50"), D(5))], received_ts_ms=0)
    [evaluation] = detector.on_book(crossed, now_ms=0)
    assert evaluation.rejected[KALSHI_YES_POLY_NO] == "crossed"
    bids_only = polymarket_book(NO_TOKEN, NO, [(D("0.45"), D(5))], [], received_ts_ms=0)
    [evaluation] = detector.on_book(bids_only, now_ms=0)
    assert evaluation.rejected[KALSHI_YES_POLY_NO] == "no_asks"
    assert detector.counters["missing"] == 4
    assert (detector.counters["crossed"], detector.counters["no_asks"]) == (1, 1)
    assert detector.counters["updates"] == 4
    assert detector.counters["evaluations"] == 3


def test_a_book_only_re_evaluates_the_pairs_that_use_it():
    other = pair(key="BTC-150K", ticker="KXBTCMAXY-26DEC31-T150000", yes="111", no="222")
    detector = Detector([pair(), other])
    kalshi = kalshi_books(TICKER, [(D("0.40"), D(10))], [(D("0.55"), D(10))], received_ts_ms=0)
    evaluations = detector.on_books(kalshi.values(), now_ms=0)  # YES and NO books: one evaluation
    assert [e.opportunity_key for e in evaluations] == ["FED-DEC-CUT"]
    assert detector.on_book(polymarket_book("999", YES, [], [(D("0.5"), D(1))]), now_ms=0) == []
    detector.remove_pair("FED-DEC-CUT")
    assert detector.on_books(kalshi.values(), now_ms=0) == []


def test_a_best_level_thinner_than_one_contract_prices_the_one_contract_edge_across_levels():
    # Kalshi YES asks 0.45 x 0.5 then 0.46 x 10 (fractional contracts exist on Kalshi).
    books = books_of([("0.30", "10")], [("0.55", "0.5"), ("0.54", "10")], [("0.90", "10")], [("0.50", "10")])
    quote = evaluate(pair(), books, now_ms=0).directions[KALSHI_YES_POLY_NO]
    # 1 contract: 0.5 @ 0.45 + 0.5 @ 0.46 = 0.455; Polymarket 0.50; Kalshi fee on the one order
    # 0.07 x (0.5 x 0.2475 + 0.5 x 0.2484) = 0.0173565 -> $0.02. 100 - 45.5 - 50 - 2 = 2.5c.
    assert quote.net_edge_cents == D("2.5000")


def test_a_stream_of_updates_quotes_exactly_what_a_fresh_evaluation_would():
    """The detector skips work between updates (a direction whose books did not change, or whose
    new books quote the same best prices): every evaluation still equals `evaluate` on its books."""
    from itertools import islice

    from ingest.recording import to_book, token_sides
    from ingest.synthetic import iter_updates, synthetic_pairs

    pairs = synthetic_pairs(3, seed=5)
    sides = token_sides(pairs)
    detector = Detector(pairs)
    by_key = {p.opportunity_key: p for p in pairs}
    checked = 0
    for update in islice(iter_updates(pairs, hours=1.0, seed=5), 20_000):
        for evaluation in detector.on_books(to_book(update, sides), update["t"]):
            fresh = evaluate(by_key[evaluation.opportunity_key], detector.books, update["t"])
            assert evaluation.directions == fresh.directions
            assert evaluation.rejected == fresh.rejected
            for direction, quote in evaluation.directions.items():
                assert quote.books_used == fresh.directions[direction].books_used
                assert all(a is b for a, b in zip(quote.books_used, fresh.directions[direction].books_used))
            checked += 1
    assert checked == 20_000
