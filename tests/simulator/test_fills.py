"""Sizing at the validated book: hand-computed cases (the arithmetic in the comments), then
properties. What an order fills at arrival is tested in test_execution.py."""

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from simulator.core import CHECK_NAMES
from simulator.core.execution import reserve_usd, worst_case_cost_usd
from simulator.core.fills import (
    LegBook,
    depth_at_limit,
    fill_hedged_pair,
    fill_leg,
    fill_pair,
    fill_pct,
    requested_size,
    take,
)
from simulator.core.types import Fill, IntentLeg
from tests.simulator import (
    TICKER,
    TOKEN,
    kalshi_book,
    levels,
    make_fee_schedules,
    make_intent,
    make_limits,
    make_validation,
    polymarket_book,
    run_decide,
)

D = Decimal
KALSHI_FEES = kalshi_taker_schedule(TICKER)


def kalshi_leg(limit: str = "0.45", *asks: tuple[str, str]) -> LegBook:
    ladder = levels(*asks)
    return LegBook(IntentLeg(KALSHI, TICKER, YES, D(limit), D(100)), ladder, ladder, KALSHI_FEES)


def polymarket_leg(limit: str = "0.50", *asks: tuple[str, str], fee_rate: str = "0") -> LegBook:
    ladder = levels(*asks)
    schedule = polymarket_taker_schedule(D(fee_rate))
    return LegBook(IntentLeg(POLYMARKET, TOKEN, NO, D(limit), D(100)), ladder, ladder, schedule)


def hedged(kalshi: LegBook, polymarket: LegBook, *, requested: str = "10", minimum: str = "1"):
    return fill_hedged_pair(
        leg_books=[kalshi, polymarket], requested=D(requested), min_net_edge_cents=D(minimum)
    )


def test_requested_size_is_capped_so_no_leg_exceeds_max_leg_usd():
    # $4 buys floor(4 / 0.45) = 8 at Kalshi and floor(4 / 0.50) = 8 at Polymarket.
    assert requested_size(make_intent(size="20"), make_limits(max_leg="4")) == 8
    # $4.60 / 0.50 = 9.2 -> 9 whole contracts; 4.60 / 0.45 = 10.2 would allow 10.
    assert requested_size(make_intent(size="20"), make_limits(max_leg="4.60")) == 9
    assert requested_size(make_intent(size="5"), make_limits(max_leg="100")) == 5


def test_take_walks_levels_best_first_and_stops_at_the_limit():
    ladder = levels(("0.46", "10"), ("0.45", "4"), ("0.47", "50"))  # unsorted on purpose
    assert take(ladder, D("0.46"), D("9")) == (Fill(D("0.45"), D("4")), Fill(D("0.46"), D("5")))
    # 0.47 is over the limit: only 4 + 10 = 14 are reachable.
    assert depth_at_limit(ladder, D("0.46")) == 14
    with pytest.raises(ValueError, match="only 14 of 15"):
        take(ladder, D("0.46"), D("15"))


def test_thin_book_fills_only_what_is_there():
    # Kalshi shows 3 contracts at 0.45 for a 10-contract intent: both legs get 3.
    outcome = hedged(kalshi_leg("0.45", ("0.45", "3")), polymarket_leg("0.50", ("0.50", "10")))
    pair = outcome.pair
    assert outcome.depth_size == 3
    assert pair.matched_size == 3
    assert [leg.fills for leg in pair.legs] == [(Fill(D("0.45"), D("3")),), (Fill(D("0.50"), D("3")),)]
    # Kalshi fee: 0.07 x 3 x 0.45 x 0.55 = 0.051975 -> $0.06. Cost 1.35 + 1.50 + 0.06 = 2.91.
    assert pair.fees_usd == D("0.06")
    assert pair.cost_usd == D("2.91")
    assert pair.expected_pnl_usd == D("0.09")
    assert fill_pct(pair.matched_size, outcome.requested_size) == D("0.3000")


def test_depth_above_the_limit_is_never_taken():
    # 0.45 x 4 is under the limit; 0.47 x 100 is not: 4 contracts.
    outcome = hedged(
        kalshi_leg("0.46", ("0.45", "4"), ("0.47", "100")), polymarket_leg("0.50", ("0.50", "10"))
    )
    assert outcome.pair.matched_size == 4
    assert outcome.pair.legs[0].fills == (Fill(D("0.45"), D("4")),)


def test_two_levels_fill_at_each_level_price_and_average():
    # 4 @ 0.45 then 6 @ 0.46: notional 1.80 + 2.76 = 4.56, average 0.456.
    outcome = hedged(
        kalshi_leg("0.46", ("0.45", "4"), ("0.46", "10")), polymarket_leg("0.50", ("0.50", "10"))
    )
    kalshi = outcome.pair.legs[0]
    assert kalshi.fills == (Fill(D("0.45"), D("4")), Fill(D("0.46"), D("6")))
    assert kalshi.avg_fill_price == D("0.4560")
    # Fee: 0.07 x (4 x 0.45 x 0.55 + 6 x 0.46 x 0.54) = 0.07 x (0.99 + 1.4904) = 0.173628 -> $0.18.
    assert kalshi.fee_usd == D("0.18")
    # Cost 4.56 + 5.00 + 0.18 = 9.74; P&L 10 - 9.74 = 0.26.
    assert outcome.pair.cost_usd == D("9.74")
    assert outcome.pair.expected_pnl_usd == D("0.26")


def test_hedging_trims_the_deeper_leg_to_the_shallower_one():
    # Polymarket has 2 + 4 = 6 under its limit; Kalshi has 10: both legs get 6.
    outcome = hedged(
        kalshi_leg("0.45", ("0.44", "5"), ("0.45", "5")),
        polymarket_leg("0.50", ("0.49", "2"), ("0.50", "4"), ("0.51", "40")),
    )
    pair = outcome.pair
    assert pair.matched_size == 6
    assert pair.legs[0].fills == (Fill(D("0.44"), D("5")), Fill(D("0.45"), D("1")))
    assert pair.legs[1].fills == (Fill(D("0.49"), D("2")), Fill(D("0.50"), D("4")))
    assert all(leg.size == 6 for leg in pair.legs)


def test_kalshi_fee_is_rounded_once_per_order_not_per_fill():
    # 2 @ 0.40 and 2 @ 0.50 in one order. Per fill it would be ceil(0.0336) + ceil(0.035) = 0.04 + 0.04.
    # Per order: 0.07 x (2 x 0.40 x 0.60 + 2 x 0.50 x 0.50) = 0.07 x 0.98 = 0.0686 -> $0.07.
    kalshi = fill_leg(kalshi_leg("0.50", ("0.40", "2"), ("0.50", "2")), D("4"))
    assert kalshi.fee_usd == D("0.07")


def test_polymarket_fee_rate_applies_on_fee_enabled_markets():
    # 100 @ 0.50 with feeRate 0.03: 100 x 0.03 x 0.25 = $0.75 (exchange-apis.md section 3).
    leg = fill_leg(polymarket_leg("0.50", ("0.50", "200"), fee_rate="0.03"), D("100"))
    assert leg.fee_usd == D("0.7500")
    assert fill_leg(polymarket_leg("0.50", ("0.50", "200")), D("100")).fee_usd == 0


def test_fractional_level_sizes_still_give_whole_contracts():
    # Polymarket shares: 2.5 + 3.75 = 6.25 reachable -> 6 whole contracts, the last level partly.
    outcome = hedged(
        kalshi_leg("0.45", ("0.45", "10")), polymarket_leg("0.50", ("0.49", "2.5"), ("0.50", "3.75"))
    )
    assert outcome.pair.matched_size == 6
    assert outcome.pair.legs[1].fills == (Fill(D("0.49"), D("2.5")), Fill(D("0.50"), D("3.5")))
    # Notional 6 x 0.45 + 2.5 x 0.49 + 3.5 x 0.50 = 2.70 + 1.225 + 1.75 = 5.675; Kalshi fee
    # 0.07 x 6 x 0.2475 = 0.10395 -> 0.11; cost 5.785.
    assert outcome.pair.cost_usd == D("5.7850")


def test_a_marginal_edge_is_sized_to_the_whole_depth_and_draws_nothing():
    # The size sent is the depth at the validated book whatever the edge: competitors racing us at a
    # marginal edge take their share at arrival (test_execution.py), not here.
    outcome = hedged(
        kalshi_leg("0.45", ("0.45", "10")), polymarket_leg("0.50", ("0.50", "10")), minimum="3.1"
    )
    assert outcome.depth_size == 10 and outcome.pair.matched_size == 10
    assert outcome.fill_pct == D("1.0000")


def test_size_is_reduced_until_the_real_fills_meet_the_minimum():
    # Kalshi 10 @ 0.45; Polymarket 4 @ 0.50 then 6 @ 0.55. Minimum 2c.
    # 10: 4.50 + 2.00 + 3.30 + fee ceil(0.17325)=0.18 -> 9.98, edge 0.2c: too thin.
    # 6:  2.70 + 2.00 + 1.10 + fee ceil(0.10395)=0.11 -> 5.91, edge 1.5c: too thin.
    # 5:  2.25 + 2.00 + 0.55 + fee ceil(0.086625)=0.09 -> 4.89, edge 2.2c: kept.
    outcome = hedged(
        kalshi_leg("0.45", ("0.45", "10")),
        polymarket_leg("0.55", ("0.50", "4"), ("0.55", "6")),
        minimum="2",
    )
    assert outcome.at_target.matched_size == 10
    assert outcome.at_target.net_edge_cents == D("0.2")
    assert outcome.pair.matched_size == 5
    assert outcome.pair.cost_usd == D("4.89")
    assert outcome.pair.net_edge_cents == D("2.2")


def test_no_size_meets_the_minimum_gives_no_pair():
    # 0.45 + 0.52 = 0.97 leaves 3c before fees; Kalshi's fee at any size takes >= 1.73c, and at
    # 1 contract ceil(0.017325) = 0.02 leaves 1c. Nothing reaches 3c.
    outcome = hedged(kalshi_leg("0.45", ("0.45", "10")), polymarket_leg("0.52", ("0.52", "10")), minimum="3")
    assert outcome.pair is None
    # At the full 10: 10 - 4.50 - 5.20 - 0.18 = 0.12 -> 1.2c.
    assert outcome.at_target.net_edge_cents == D("1.2")


def test_fill_pct_is_rounded_down_to_four_places():
    assert fill_pct(D(1), D(3)) == D("0.3333")
    assert fill_pct(D(2), D(3)) == D("0.6666")
    assert fill_pct(D(5), D(5)) == D("1.0000")


def test_pair_cost_is_notional_plus_fees():
    pair = fill_pair([kalshi_leg("0.45", ("0.45", "10")), polymarket_leg("0.50", ("0.50", "10"))], D("10"))
    # 4.50 + 5.00 + 0.18 (ceil of 0.17325) = 9.68: the default scenario's 3.20c edge.
    assert (pair.cost_usd, pair.fees_usd, pair.expected_pnl_usd) == (D("9.68"), D("0.18"), D("0.32"))
    assert pair.net_edge_cents == D("3.2")


prices = st.integers(min_value=5, max_value=70).map(lambda cents: D(cents) / 100)
# The limit sits a few cents around the best ask, as ingest sets it.
limit_offsets = st.integers(min_value=-2, max_value=10).map(lambda cents: D(cents) / 100)
sizes = st.one_of(
    st.integers(min_value=1, max_value=40).map(D), st.integers(1, 4000).map(lambda n: D(n) / 100)
)
ladders = st.lists(st.tuples(prices, sizes), min_size=1, max_size=6, unique_by=lambda level: level[0])


@settings(max_examples=300, deadline=None)
@given(
    kalshi_asks=ladders,
    polymarket_asks=ladders,
    kalshi_offset=limit_offsets,
    polymarket_offset=limit_offsets,
    size=st.integers(min_value=1, max_value=60),
    min_edge=st.sampled_from(["0", "0.5", "1", "3"]),
    intent_edge=st.sampled_from(["3", "3.5", "20"]),
    polymarket_rate=st.sampled_from(["0", "0.03"]),
    max_leg=st.sampled_from(["5", "100"]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_fills_at_the_validated_book_never_beat_it_and_the_orders_hold_their_worst_case(
    kalshi_asks,
    polymarket_asks,
    kalshi_offset,
    polymarket_offset,
    size,
    min_edge,
    intent_edge,
    polymarket_rate,
    max_leg,
    seed,
):
    kalshi = kalshi_book(*((str(p), str(s)) for p, s in kalshi_asks))
    polymarket = polymarket_book(*((str(p), str(s)) for p, s in polymarket_asks))
    kalshi_limit = max(kalshi.best_ask.price + kalshi_offset, D("0.01"))
    polymarket_limit = max(polymarket.best_ask.price + polymarket_offset, D("0.01"))
    legs = (
        IntentLeg(KALSHI, TICKER, YES, kalshi_limit, D(size)),
        IntentLeg(POLYMARKET, TOKEN, NO, polymarket_limit, D(size)),
    )
    schedules = make_fee_schedules(polymarket_rate)
    decision = run_decide(
        make_intent(legs=legs, size=str(size), net_edge_cents=intent_edge),
        make_limits(min_edge=min_edge, max_leg=max_leg),
        validation=make_validation(kalshi, polymarket),
        fee_schedules=schedules,
        seed=seed,
    )
    assert tuple(check.name for check in decision.checks) == CHECK_NAMES
    event(decision.reason.split(":")[0] or decision.outcome)
    if decision.outcome != "traded":
        assert decision.reason.split(":")[0] in {"net_edge", "exchange_validation", "has_orders"}
        return
    trade = decision.trade
    assert 1 <= trade.order_size <= trade.requested_size <= size
    # The size sent is the pair that meets the minimum at the validated book (no ledger: all of it).
    leg_books = [
        LegBook(leg, book.asks, book.asks, schedules[(leg.venue, leg.instrument_id)])
        for leg, book in zip(legs, (kalshi, polymarket), strict=True)
    ]
    pair = fill_hedged_pair(
        leg_books=leg_books, requested=trade.requested_size, min_net_edge_cents=D(min_edge)
    ).pair
    assert pair is not None and pair.matched_size == trade.order_size
    assert trade.seen_edge_cents == pair.net_edge_cents
    assert trade.signal_edge_cents == D(intent_edge)
    notional = D(0)
    for leg, book, order in zip(pair.legs, (kalshi, polymarket), trade.legs, strict=True):
        assert leg.size == trade.order_size
        book_sizes = {level.price: level.size for level in book.asks}
        for fill in leg.fills:
            assert book.best_ask.price <= fill.price <= leg.limit_price
            assert fill.size <= book_sizes[fill.price]
        assert leg.limit_price * trade.requested_size <= D(max_leg)
        assert leg.fee_usd == schedules[(leg.venue, leg.instrument_id)].fills_fee_usd(
            [(fill.price, fill.size) for fill in leg.fills]
        )
        notional += sum(fill.price * fill.size for fill in leg.fills)
        assert (order.limit_price, order.size, order.fills) == (leg.limit_price, trade.order_size, ())
    assert pair.fees_usd == sum(leg.fee_usd for leg in pair.legs)
    assert pair.cost_usd == notional.quantize(D("0.0001"), rounding=ROUND_CEILING) + pair.fees_usd
    assert pair.expected_pnl_usd == pair.matched_size - pair.cost_usd
    assert pair.expected_pnl_usd * 100 >= D(min_edge) * pair.matched_size
    # What is held is every contract at its limit plus the largest fee: never less than the fills.
    reserved = reserve_usd(
        worst_case_cost_usd(leg.limit_price, trade.order_size, schedules[(leg.venue, leg.instrument_id)])
        for leg in pair.legs
    )
    assert trade.reserved_usd == reserved >= pair.cost_usd
    assert fill_pct(pair.matched_size, trade.requested_size) == (
        pair.matched_size / trade.requested_size
    ).quantize(D("0.0001"), rounding=ROUND_DOWN)


@settings(max_examples=150, deadline=None)
@given(
    kalshi_asks=ladders,
    polymarket_asks=ladders,
    requested=st.integers(min_value=1, max_value=40),
    min_edge=st.sampled_from(["0", "1", "2", "3"]),
)
def test_the_size_kept_is_the_largest_that_meets_the_minimum(
    kalshi_asks, polymarket_asks, requested, min_edge
):
    kalshi = kalshi_leg("0.99", *((str(p), str(s)) for p, s in kalshi_asks))
    polymarket = polymarket_leg("0.99", *((str(p), str(s)) for p, s in polymarket_asks))
    if min(depth_at_limit(lb.available, D("0.99")) for lb in (kalshi, polymarket)) < 1:
        return
    outcome = hedged(kalshi, polymarket, requested=str(requested), minimum=min_edge)
    kept = outcome.pair.matched_size if outcome.pair is not None else D(0)
    for size in range(int(kept) + 1, int(outcome.depth_size) + 1):
        assert not fill_pair([kalshi, polymarket], D(size)).meets(D(min_edge))
    if outcome.pair is not None:
        assert outcome.pair.meets(D(min_edge))
