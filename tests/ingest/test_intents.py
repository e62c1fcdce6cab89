"""Execution intents: each user's own threshold, their leg cap, and the cooldown."""

import json
from decimal import Decimal as D

from exchanges.books import KALSHI, NO, POLYMARKET, YES, kalshi_books, polymarket_book
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from ingest.detector import KALSHI_YES_POLY_NO, PairSpec, evaluate
from ingest.intents import IntentEmitter, UserThreshold

TICKER = "KXFEDDECISION-26DEC-C25"
PAIR = PairSpec(
    "FED-DEC-CUT", TICKER, "1001", "1002", kalshi_taker_schedule(TICKER), polymarket_taker_schedule()
)


def evaluation(kalshi_yes_asks=(("0.45", "100"),), poly_no_asks=(("0.50", "100"),), at_ms=0):
    """Kalshi YES asks (given as the NO bids they come from) against Polymarket NO token asks."""
    no_bids = [(1 - D(p), D(s)) for p, s in kalshi_yes_asks]
    kalshi = kalshi_books(TICKER, [(D("0.10"), D(10))], no_bids, received_ts_ms=at_ms)
    books = {
        (KALSHI, TICKER, YES): kalshi[YES],
        (KALSHI, TICKER, NO): kalshi[NO],
        (POLYMARKET, "1001", YES): polymarket_book(
            "1001", YES, [], [(D("0.90"), D(10))], received_ts_ms=at_ms
        ),
        (POLYMARKET, "1002", NO): polymarket_book(
            "1002", NO, [], [(D(p), D(s)) for p, s in poly_no_asks], received_ts_ms=at_ms
        ),
    }
    return evaluate(PAIR, books, now_ms=at_ms)


def user(user_id, min_edge="2", max_leg="1000", watched=None):
    return UserThreshold(user_id, D(min_edge), D(max_leg), watched)


def test_only_users_whose_own_minimum_is_met_and_who_watch_the_key_get_an_intent():
    # 100 contracts: 100 x (1 - 0.45 - 0.50) - Kalshi fee $1.74 = $3.26 -> 3.26c a contract.
    users = [
        user(1, min_edge="2"),
        user(2, min_edge="3.26"),
        user(3, min_edge="3.27"),
        user(4, watched=frozenset({"BTC-150K"})),
        user(5, watched=frozenset({"FED-DEC-CUT"})),
    ]
    drafts = IntentEmitter(cooldown_ms=30_000).emit(evaluation(), users, now_ms=0, span_key="FED-DEC-CUT:x:0")
    assert [d.user_id for d in drafts] == [1, 2, 5]
    draft = drafts[0]
    assert (draft.opportunity_key, draft.direction, draft.span_key) == (
        "FED-DEC-CUT",
        KALSHI_YES_POLY_NO,
        "FED-DEC-CUT:x:0",
    )
    assert (draft.size, draft.net_edge_cents, draft.fees_usd) == (D(100), D("3.2600"), D("1.74"))
    kalshi_leg, poly_leg = draft.legs
    assert (kalshi_leg.venue, kalshi_leg.instrument_id, kalshi_leg.side) == (KALSHI, TICKER, YES)
    assert (kalshi_leg.limit_price, kalshi_leg.size) == (D("0.45"), D(100))
    assert (poly_leg.venue, poly_leg.instrument_id, poly_leg.side) == (POLYMARKET, "1002", NO)
    assert (poly_leg.limit_price, poly_leg.size) == (D("0.50"), D(100))


def test_size_is_capped_so_each_legs_notional_stays_within_max_leg_usd_and_fees_are_recomputed():
    # $10 a leg: YES at 0.45 allows floor(22.2) = 22, NO at 0.50 allows 20 -> 20 contracts.
    [draft] = IntentEmitter(cooldown_ms=0).emit(evaluation(), [user(1, max_leg="10")], now_ms=0)
    assert draft.size == D(20)
    assert all(leg.size == 20 for leg in draft.legs)
    # Kalshi fee ceil(0.07 x 20 x 0.2475 = 0.3465) = $0.35; (20 - 19.00 - 0.35) / 20 = 3.25c.
    assert draft.fees_usd == D("0.35")
    assert draft.cost_usd == D("19.00")
    assert draft.net_edge_cents == D("3.2500")


def test_the_cap_uses_the_limit_price_of_the_deepest_level_the_size_reaches():
    # Kalshi YES 0.45 x 10 then 0.47 x 10; Polymarket NO 0.50 x 15. The detector takes 15.
    ev = evaluation(kalshi_yes_asks=(("0.45", "10"), ("0.47", "10")), poly_no_asks=(("0.50", "15"),))
    assert ev.best.size == D(15)
    # $5 a leg: 10 at 0.45 costs $4.50; 11 would reach 0.47 and 11 x 0.47 = $5.17 > $5.
    [draft] = IntentEmitter(cooldown_ms=0).emit(ev, [user(1, max_leg="5")], now_ms=0)
    assert draft.size == D(10)
    assert draft.legs[0].limit_price == D("0.45")


def test_a_cap_below_one_contract_emits_nothing():
    assert IntentEmitter(cooldown_ms=0).emit(evaluation(), [user(1, max_leg="0.40")], now_ms=0) == []


def test_a_small_cap_can_push_the_edge_below_the_users_minimum():
    # 2 contracts pay ceil(0.07 x 2 x 0.2475 = 0.03465) = $0.04: (0.10 - 0.04) / 2 = 3c < 3.2c.
    users = [user(1, min_edge="3.2", max_leg="1")]
    assert IntentEmitter(cooldown_ms=0).emit(evaluation(), users, now_ms=0) == []


def test_an_opportunity_without_size_emits_nothing():
    ev = evaluation(poly_no_asks=(("0.56", "100"),))
    assert IntentEmitter(cooldown_ms=0).emit(ev, [user(1, min_edge="-100")], now_ms=0) == []


def test_the_cooldown_throttles_each_user_and_pair_even_across_spans():
    emitter = IntentEmitter(cooldown_ms=5000)
    alice, bob = user(1), user(2)
    assert len(emitter.emit(evaluation(at_ms=0), [alice], now_ms=0, span_key="a")) == 1
    assert emitter.emit(evaluation(at_ms=1000), [alice], now_ms=1000, span_key="a") == []
    assert emitter.emit(evaluation(at_ms=2000), [alice], now_ms=2000, span_key="b") == []  # new span
    assert [d.user_id for d in emitter.emit(evaluation(at_ms=3000), [alice, bob], now_ms=3000)] == [2]
    assert [d.user_id for d in emitter.emit(evaluation(at_ms=5000), [alice, bob], now_ms=5000)] == [1]


def test_cooldowns_survive_a_restart():
    emitter = IntentEmitter(cooldown_ms=5000)
    emitter.emit(evaluation(), [user(1)], now_ms=0)
    restarted = IntentEmitter(cooldown_ms=5000)
    restarted.restore_cooldowns(json.loads(json.dumps(emitter.export_cooldowns())))
    assert restarted.emit(evaluation(at_ms=1000), [user(1)], now_ms=1000) == []


def test_the_intent_carries_a_json_snapshot_of_the_books_it_was_computed_from():
    ev = evaluation(
        kalshi_yes_asks=(("0.45", "10"), ("0.47", "10")), poly_no_asks=(("0.50", "15"),), at_ms=42
    )
    [draft] = IntentEmitter(cooldown_ms=0).emit(ev, [user(1)], now_ms=50)
    data = json.loads(json.dumps(draft.as_json()))
    kalshi_book, poly_book = data["books"]
    assert kalshi_book["asks"] == [{"price": "0.45", "size": "10"}, {"price": "0.47", "size": "10"}]
    assert (kalshi_book["venue"], kalshi_book["side"], kalshi_book["received_ts_ms"]) == ("kalshi", "yes", 42)
    assert poly_book["asks"] == [{"price": "0.50", "size": "15"}]
    assert data["legs"][0] == {
        "venue": "kalshi",
        "instrument_id": TICKER,
        "side": "yes",
        "limit_price": "0.47",
        "size": "15",
    }
    assert data["created_ms"] == 50
