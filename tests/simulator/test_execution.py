"""Orders at arrival: each function by hand-computed cases (the arithmetic in the comments), then
whole trades over generated books, latencies, competition and settings, where the arithmetic a
trade records must hold and its cost never passes what was held at decision."""

import json
import random
from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from exchanges.books import KALSHI, NO, POLYMARKET, YES, Level
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from simulator.core.execution import (
    ARRIVED,
    CARRY,
    FAK,
    FOK,
    FULL,
    IOC,
    LEGGED,
    MISSED,
    NOT_SENT,
    PARTIAL,
    SENT,
    UNWIND,
    WAITING,
    CompetitionConfig,
    ExecutionConfig,
    LegOrder,
    Unwind,
    arrival_available,
    changes_only_its_leg,
    expected_execution_at,
    fill_at_arrival,
    hedge,
    is_complete,
    legs_from_json,
    pending_steps,
    pending_steps_of_json,
    plan_orders,
    reserve_usd,
    send_waiting,
    settle_arrival,
    unwind_at_arrival,
    worst_case_cost_usd,
)
from simulator.core.payout import leg_contracts
from simulator.core.types import Fill, IntentLeg
from tests.simulator import NOW, TICKER, TOKEN, FixedDrawRandom, levels

D = Decimal
ZERO = D(0)
KALSHI_FEES = kalshi_taker_schedule(TICKER)  # 0.07 x C x P x (1 - P), up to the cent per order
POLYMARKET_FEES = polymarket_taker_schedule()  # fee-free
NO_COMPETITION = (ZERO, ZERO)
MS = timedelta(milliseconds=1)


def order(
    venue: str = KALSHI,
    *,
    limit: str = "0.45",
    size: str = "10",
    order_type: str | None = None,
    latency_ms: int = 120,
    unwind_latency_ms: int = 90,
    state: str = SENT,
) -> LegOrder:
    """One leg's order as decided at NOW (sent unless `state` says it waits)."""
    sent = state == SENT
    return LegOrder(
        venue=venue,
        instrument_id=TICKER if venue == KALSHI else TOKEN,
        side=YES if venue == KALSHI else NO,
        limit_price=D(limit),
        order_type=order_type or (IOC if venue == KALSHI else FAK),
        size=D(size),
        latency_ms=latency_ms,
        unwind_latency_ms=unwind_latency_ms,
        book=levels((limit, size)),
        book_available=levels((limit, size)),
        state=state,
        sent_at=NOW if sent else None,
        arrived_at=NOW + latency_ms * MS if sent else None,
    )


def arrive(
    leg: LegOrder,
    *asks: tuple[str, str],
    best_bid: str | None = None,
    taken: dict[str, str] | None = None,
    shares: tuple[Decimal, Decimal] = NO_COMPETITION,
    rng: random.Random | None = None,
) -> LegOrder:
    schedule = KALSHI_FEES if leg.venue == KALSHI else POLYMARKET_FEES
    return fill_at_arrival(
        leg,
        arrival_asks=levels(*asks),
        best_bid=D(best_bid) if best_bid is not None else None,
        book_ts_ms=1_000,
        taken_by_run={D(price): D(size) for price, size in (taken or {}).items()},
        shares=shares,
        rng=rng or random.Random(0),
        schedule=schedule,
    )


# --- settings ---------------------------------------------------------------------------------------


def test_the_default_execution_is_both_legs_at_once_taking_what_is_there_and_unwinding_the_excess():
    config = ExecutionConfig()
    assert (config.kalshi_order_type, config.polymarket_order_type) == (IOC, FAK)
    assert (config.sequencing, config.unhedged) == ("together", UNWIND)
    assert config.order_type(KALSHI) == IOC and config.order_type(POLYMARKET) == FAK


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kalshi_order_type": FAK}, "kalshi_order_type must be one of ioc, fok"),
        ({"polymarket_order_type": IOC}, "polymarket_order_type must be one of fak, fok"),
        ({"sequencing": "both"}, "sequencing must be one of together, kalshi_first, polymarket_first"),
        ({"unhedged": "hold"}, "unhedged must be one of unwind, carry"),
    ],
)
def test_an_execution_setting_a_venue_does_not_offer_is_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        ExecutionConfig(**arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"share_max": D("1.2")}, "share_max must be between 0 and 1"),
        ({"share_min": D("-0.1")}, "share_min must be between 0 and 1"),
        ({"marginal_share_max": D("2")}, "marginal_share_max must be between 0 and 1"),
        ({"share_min": D("0.5"), "share_max": D("0.2")}, "share_min must not exceed share_max"),
        (
            {"marginal_share_min": D("0.8"), "marginal_share_max": D("0.7")},
            "marginal_share_min must not exceed marginal_share_max",
        ),
        ({"marginal_band_cents": D("-1")}, "marginal_band_cents must be >= 0"),
    ],
)
def test_a_competition_model_out_of_range_is_refused_by_name(arguments, message):
    with pytest.raises(ValueError, match=message):
        CompetitionConfig(**arguments)


def test_execution_settings_round_trip_json_and_missing_keys_take_the_defaults():
    config = ExecutionConfig(
        kalshi_order_type=FOK,
        polymarket_order_type=FOK,
        sequencing="polymarket_first",
        unhedged=CARRY,
        competition=CompetitionConfig(
            share_min=D("0.05"), share_max=D("0.1"), marginal_band_cents=D("0.5"), marginal_share_max=D("0.9")
        ),
    )
    stored = json.loads(json.dumps(config.as_json()))
    assert stored["competition"]["share_max"] == "0.1"
    assert ExecutionConfig.from_json(stored) == config
    assert ExecutionConfig.from_json(None) == ExecutionConfig.from_json({}) == ExecutionConfig()
    partly = ExecutionConfig.from_json({"unhedged": CARRY, "competition": {"share_max": "0.3"}})
    assert partly == ExecutionConfig(unhedged=CARRY, competition=CompetitionConfig(share_max=D("0.3")))


def test_an_edge_within_the_band_above_the_minimum_is_marginal_and_meets_more_competition():
    competition = CompetitionConfig()  # band 1c: shares up to 20%, or up to 70% when marginal
    assert competition.is_marginal(D("3.5"), D("3"))
    assert not competition.is_marginal(D("4"), D("3"))  # exactly the band's width above: not marginal
    assert competition.shares(marginal=False) == (D("0"), D("0.2"))
    assert competition.shares(marginal=True) == (D("0"), D("0.7"))


# --- decision: the orders sent ------------------------------------------------------------------------


def intent_legs() -> list[IntentLeg]:
    return [
        IntentLeg(KALSHI, TICKER, YES, D("0.45"), D(10)),
        IntentLeg(POLYMARKET, TOKEN, NO, D("0.50"), D(10)),
    ]


def planned(sequencing: str = "together", **config) -> tuple[LegOrder, ...]:
    book = levels(("0.45", "10"))
    return plan_orders(
        intent_legs(),
        size=D(7),
        books=[(book, book), (book, book)],
        latencies_ms=[120, 250],
        unwind_latencies_ms=[80, 300],
        decided_at=NOW,
        config=ExecutionConfig(sequencing=sequencing, **config),
    )


def test_together_both_orders_are_sent_at_the_decision_at_their_limits():
    kalshi, polymarket = planned(kalshi_order_type=FOK)
    assert (kalshi.limit_price, kalshi.size, kalshi.order_type, kalshi.state) == (D("0.45"), 7, FOK, SENT)
    assert (polymarket.limit_price, polymarket.size, polymarket.order_type) == (D("0.50"), 7, FAK)
    assert kalshi.sent_at == polymarket.sent_at == NOW
    assert (kalshi.arrived_at, polymarket.arrived_at) == (NOW + 120 * MS, NOW + 250 * MS)
    assert (kalshi.unwind_latency_ms, polymarket.unwind_latency_ms) == (80, 300)
    assert expected_execution_at((kalshi, polymarket), NOW) == NOW + 250 * MS


def test_in_a_sequence_the_second_venue_waits_for_the_first_fill():
    kalshi, polymarket = planned("kalshi_first")
    assert (kalshi.state, polymarket.state) == (SENT, WAITING)
    assert polymarket.sent_at is None and polymarket.arrived_at is None
    assert expected_execution_at((kalshi, polymarket), NOW) == NOW + 370 * MS
    kalshi, polymarket = planned("polymarket_first")
    assert (kalshi.state, polymarket.state) == (WAITING, SENT)


def test_the_worst_case_is_every_contract_at_the_limit_plus_the_largest_fee_under_it():
    # 10 at 0.45: 4.50 + ceil(0.07 x 10 x 0.45 x 0.55 = 0.17325) = 4.68.
    assert worst_case_cost_usd(D("0.45"), D(10), KALSHI_FEES) == D("4.68")
    # Over 0.50 the fee peaks at 0.50: 7.00 + ceil(0.07 x 10 x 0.25 = 0.175) = 7.18.
    assert worst_case_cost_usd(D("0.70"), D(10), KALSHI_FEES) == D("7.18")
    # A sub-cent notional is rounded up to $0.0001: 3 x 0.333 = 0.999; fee-free.
    assert worst_case_cost_usd(D("0.3333"), D(3), POLYMARKET_FEES) == D("0.9999")


# --- arrival ----------------------------------------------------------------------------------------------


def test_what_is_left_is_each_level_less_this_runs_takes_then_less_the_competitors_share():
    # Shares scripted on the 1/10,000 grid over [0, 0.5]: step 5000 -> 0.25, step 0 -> 0, 10000 -> 0.5.
    left = arrival_available(
        levels(("0.44", "10"), ("0.45", "7.5"), ("0.46", "3")),
        taken_by_run={D("0.44"): D("2"), D("0.46"): D("5")},
        shares=(ZERO, D("0.5")),
        rng=FixedDrawRandom(5000, 0, 10_000),
    )
    # 0.44: (10 - 2) x 0.75 = 6; 0.45: 7.5 x 1 = 7.5; 0.46: 3 - 5 -> nothing left.
    assert left == levels(("0.44", "6.00"), ("0.45", "7.50"), ("0.46", "0.00"))
    # Rounded down to the hundredth: 3.33 x (1 - 0.25) = 2.4975 -> 2.49.
    assert arrival_available(
        levels(("0.44", "3.33")), taken_by_run={}, shares=(D("0.25"), D("0.25")), rng=random.Random(1)
    ) == levels(("0.44", "2.49"))


def test_an_ioc_order_takes_what_is_left_at_or_under_its_limit_best_first_and_cancels_the_rest():
    leg = arrive(order(), ("0.44", "2"), ("0.45", "4"), ("0.46", "50"), best_bid="0.43")
    assert leg.state == ARRIVED
    assert leg.fills == (Fill(D("0.44"), D("2")), Fill(D("0.45"), D("4")))  # never the 0.46 level
    assert leg.filled_size == 6
    # Fee 0.07 x (2 x 0.44 x 0.56 + 4 x 0.45 x 0.55) = 0.07 x 1.4828 = 0.103796 -> $0.11.
    assert leg.fee_usd == D("0.11")
    assert leg.detail == "only 6 of 10 at or below 0.45 at arrival"
    assert leg.arrival_book == levels(("0.44", "2"), ("0.45", "4"), ("0.46", "50"))
    assert leg.arrival_best_bid == D("0.43") and leg.book_ts_ms == 1_000
    assert leg.avg_fill_price == D("0.4467")  # (0.88 + 1.80) / 6 = 0.44666..., to 4 places


def test_a_fill_and_kill_order_on_polymarket_takes_what_is_there_too():
    leg = arrive(order(POLYMARKET, limit="0.50"), ("0.49", "2.5"), ("0.50", "3.75"))
    # 2.5 + 3.75 = 6.25 shares reachable: 6 whole contracts, the last level partly.
    assert leg.fills == (Fill(D("0.49"), D("2.50")), Fill(D("0.50"), D("3.50")))
    assert leg.filled_size == 6 and leg.fee_usd == 0


def test_a_fill_or_kill_order_fills_all_or_nothing():
    short = arrive(order(order_type=FOK), ("0.44", "2"), ("0.45", "4"))
    assert short.fills == () and short.filled_size == 0 and short.fee_usd == 0
    assert short.detail == "fill-or-kill: only 6 of 10 at or below 0.45 at arrival"
    whole_size = arrive(order(order_type=FOK), ("0.44", "2"), ("0.45", "9"))
    assert whole_size.fills == (Fill(D("0.44"), D("2")), Fill(D("0.45"), D("8")))
    assert whole_size.detail == ""


def test_a_book_that_moved_past_the_limit_fills_nothing_and_says_so():
    leg = arrive(order(), ("0.47", "30"), ("0.48", "10"))
    assert leg.fills == () and leg.fee_usd == 0
    assert leg.detail == "book moved past the limit: best ask 0.47 > limit 0.45 at arrival"


@pytest.mark.parametrize(
    ("arrival", "detail"),
    [
        # Competitors took the whole level at the limit: the book did not move past it.
        ({"asks": (("0.45", "10"),), "shares": (D(1), D(1))}, "only 0 of 10 at or below 0.45 at arrival"),
        # This run's earlier orders took it.
        ({"asks": (("0.45", "10"),), "taken": {"0.45": "10"}}, "only 0 of 10 at or below 0.45 at arrival"),
        # Half a contract at the limit, the rest above it.
        ({"asks": (("0.45", "0.5"), ("0.47", "9"))}, "only 0 of 10 at or below 0.45 at arrival"),
        (
            {"asks": (("0.45", "0.5"), ("0.47", "9")), "order_type": FOK},
            "fill-or-kill: only 0 of 10 at or below 0.45 at arrival",
        ),
    ],
)
def test_asks_at_the_limit_that_others_took_are_a_thin_book_not_a_moved_one(arrival, detail):
    leg = order(order_type=arrival.get("order_type"))
    shares = arrival.get("shares", NO_COMPETITION)
    filled = arrive(leg, *arrival["asks"], taken=arrival.get("taken"), shares=shares)
    assert filled.fills == () and filled.detail == detail


def test_no_book_at_arrival_fills_nothing_and_keeps_the_reason():
    empty = arrive(order())
    assert empty.fills == () and empty.detail == "no asks at arrival"
    unavailable = fill_at_arrival(
        order(),
        arrival_asks=None,
        taken_by_run={},
        shares=NO_COMPETITION,
        rng=random.Random(0),
        schedule=KALSHI_FEES,
        unavailable="no book at arrival: unreachable: timed out",
    )
    assert unavailable.state == ARRIVED and unavailable.fills == ()
    assert (
        unavailable.arrival_book == () and unavailable.detail == "no book at arrival: unreachable: timed out"
    )


def test_what_this_run_already_took_from_the_snapshot_is_not_taken_again():
    leg = arrive(order(), ("0.44", "6"), ("0.45", "20"), taken={"0.44": "6", "0.45": "12"})
    assert leg.fills == (Fill(D("0.45"), D("8")),)
    assert leg.arrival_available == levels(("0.44", "0"), ("0.45", "8"))


def test_competitors_take_more_at_a_marginal_edge():
    # 13 offered for a 10-contract order. At a comfortable edge competitors take at most 20%:
    # 13 x 0.8 = 10.4, always enough. At a marginal edge they may take 70%: some seeds fill less.
    competition = CompetitionConfig()
    comfortable, marginal = [], []
    for seed in range(30):
        for shares, out in ((competition.shares(False), comfortable), (competition.shares(True), marginal)):
            out.append(arrive(order(), ("0.45", "13"), shares=shares, rng=random.Random(seed)).filled_size)
    assert set(comfortable) == {D(10)}
    assert min(marginal) < 10 and sum(marginal) < sum(comfortable)
    assert all(D(3) <= size <= 10 for size in marginal)  # 13 x 0.3 = 3.9 at worst: 3 whole


def test_the_same_seed_draws_the_same_competition():
    one = arrive(order(), ("0.44", "5"), ("0.45", "9"), shares=(ZERO, D("0.7")), rng=random.Random(8))
    two = arrive(order(), ("0.44", "5"), ("0.45", "9"), shares=(ZERO, D("0.7")), rng=random.Random(8))
    assert one == two


# --- sequencing ----------------------------------------------------------------------------------------


def test_the_waiting_leg_is_sent_at_the_first_arrival_sized_to_its_fill():
    first = arrive(order(), ("0.45", "6"))  # arrives at +120 ms with 6 of 10
    second = order(POLYMARKET, limit="0.50", latency_ms=250, state=WAITING)
    assert send_waiting((order(), second)) == (order(), second)  # the first is still on its way
    kalshi, polymarket = send_waiting((first, second))
    assert kalshi == first
    assert (polymarket.state, polymarket.size) == (SENT, D(6))
    assert polymarket.sent_at == NOW + 120 * MS
    assert polymarket.arrived_at == NOW + 370 * MS
    assert pending_steps((kalshi, polymarket)) == [("leg:1", NOW + 370 * MS)]


def test_the_waiting_leg_is_not_sent_when_the_first_filled_nothing():
    first = arrive(order(), ("0.47", "10"))
    kalshi, polymarket = send_waiting((first, order(POLYMARKET, limit="0.50", state=WAITING)))
    assert (polymarket.state, polymarket.size, polymarket.sent_at) == (NOT_SENT, 0, None)
    assert polymarket.detail == "not sent: the first leg filled nothing"
    assert pending_steps((kalshi, polymarket)) == []
    result = settle_arrival(
        hedge((kalshi, polymarket), policy=UNWIND),
        decided_size=D(10),
        signal_edge_cents=D("3.2"),
        decided_at=NOW,
    )
    assert result.outcome == MISSED and result.cost_usd == 0
    assert result.reason == (
        f"kalshi {TICKER}: book moved past the limit: best ask 0.47 > limit 0.45 at arrival; "
        f"polymarket {TOKEN}: not sent: the first leg filled nothing"
    )


# --- hedge, unwind, carry ----------------------------------------------------------------------------------


def legged_pair() -> tuple[LegOrder, LegOrder]:
    """Kalshi fills 10 @ 0.45 at +120 ms; Polymarket only 6 @ 0.50 at +250 ms."""
    kalshi = arrive(order(unwind_latency_ms=90), ("0.45", "10"), best_bid="0.41")
    polymarket = arrive(order(POLYMARKET, limit="0.50", latency_ms=250), ("0.50", "6"))
    return kalshi, polymarket


def test_the_hedged_size_is_the_smaller_fill_and_the_excess_is_unwound_after_the_last_arrival():
    kalshi, polymarket = hedge(legged_pair(), policy=UNWIND)
    assert (kalshi.unhedged_size, polymarket.unhedged_size) == (4, 0)
    assert polymarket.unwind is None
    unwind = kalshi.unwind
    # Sent when the last leg's fill is known (+250 ms), one Kalshi unwind latency later (+90 ms).
    assert (unwind.size, unwind.sent_at, unwind.arrived_at) == (4, NOW + 250 * MS, NOW + 340 * MS)
    assert not unwind.arrived and not is_complete((kalshi, polymarket))
    assert pending_steps((kalshi, polymarket)) == [("unwind:0", NOW + 340 * MS)]


def test_hedging_waits_for_every_order():
    kalshi, _ = legged_pair()
    with pytest.raises(ValueError, match="every order must have arrived"):
        hedge((kalshi, order(POLYMARKET)), policy=UNWIND)


def test_a_carried_excess_is_marked_at_the_mid_of_its_arrival_book():
    kalshi, polymarket = hedge(legged_pair(), policy=CARRY)
    # Mid of bid 0.41 and ask 0.45 = 0.43: 4 x 0.43 = $1.72.
    assert (kalshi.unhedged_size, kalshi.carried_size, kalshi.carried_mark_usd) == (4, 4, D("1.72"))
    assert kalshi.unwind is None and is_complete((kalshi, polymarket))
    result = settle_arrival(
        (kalshi, polymarket), decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW
    )
    # Cost 4.50 + 3.00 + fee 0.18 = 7.68; P&L 6 - 7.68 + 1.72 = 0.04: 0.6666c per hedged contract.
    assert (result.outcome, result.matched_size, result.cost_usd) == (PARTIAL, 6, D("7.68"))
    assert (result.expected_pnl_usd, result.carried_mark_usd) == (D("0.04"), D("1.72"))
    assert result.realised_edge_cents == D("0.6666")
    assert result.slippage_cents == D("2.5334")
    assert result.unwind_cost_usd == 0


def test_a_carried_excess_without_a_bid_is_marked_from_zero():
    kalshi = arrive(order(), ("0.45", "10"))  # no bids at arrival: the mid is (0 + 0.45) / 2
    polymarket = arrive(order(POLYMARKET, limit="0.50", latency_ms=250), ("0.50", "7"))
    kalshi, _ = hedge((kalshi, polymarket), policy=CARRY)
    assert kalshi.carried_mark_usd == D("0.675")  # 3 x 0.225


def test_the_unwind_sells_at_the_bids_best_first_and_its_loss_counts_in_the_cost():
    kalshi, polymarket = hedge(legged_pair(), policy=UNWIND)
    kalshi = unwind_at_arrival(kalshi, bids=levels(("0.42", "3"), ("0.40", "5")), schedule=KALSHI_FEES)
    unwind = kalshi.unwind
    assert unwind.arrived and unwind.fills == (Fill(D("0.42"), D("3")), Fill(D("0.40"), D("1")))
    # Proceeds 1.26 + 0.40 = 1.66; fee 0.07 x (3 x 0.42 x 0.58 + 1 x 0.40 x 0.60) = 0.067956 -> 0.07.
    assert (unwind.proceeds_usd, unwind.fee_usd, unwind.detail) == (D("1.66"), D("0.07"), "")
    assert kalshi.carried_size == 0 and is_complete((kalshi, polymarket))
    result = settle_arrival(
        (kalshi, polymarket), decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW
    )
    # Cost 4.50 + 0.18 + 3.00 - (1.66 - 0.07) = 6.09; P&L 6 - 6.09 = -0.09 on 6 hedged contracts.
    assert (result.outcome, result.matched_size, result.cost_usd) == (PARTIAL, 6, D("6.09"))
    assert result.fees_usd == D("0.25")  # 0.18 on the leg, 0.07 on its unwind
    assert result.expected_pnl_usd == D("-0.09")
    assert result.realised_edge_cents == D("-1.5") and result.slippage_cents == D("4.7")
    # The 4 sold had cost 4 x (4.50 + 0.18) / 10 = 1.872 and brought back 1.59: 0.282 lost.
    assert result.unwind_cost_usd == D("0.282")
    assert result.executed_at == NOW + 340 * MS  # the unwind's arrival
    assert leg_contracts(kalshi.as_json()) == 6  # what the leg still holds at resolution


def test_bids_too_thin_for_the_unwind_leave_the_rest_carried():
    kalshi, _ = hedge(legged_pair(), policy=UNWIND)
    kalshi = unwind_at_arrival(kalshi, bids=levels(("0.30", "1.5")), schedule=KALSHI_FEES)
    assert kalshi.unwind.fills == (Fill(D("0.30"), D("1.5")),)
    assert kalshi.unwind.detail == "the bids took 1.50 of 4.00: 2.50 carried"
    assert kalshi.carried_size == D("2.5") and kalshi.carried_mark_usd == 0  # nobody bid for it
    assert leg_contracts(kalshi.as_json()) == D("8.5")
    gone = unwind_at_arrival(
        hedge(legged_pair(), policy=UNWIND)[0], bids=None, schedule=KALSHI_FEES, unavailable="no book"
    )
    assert gone.unwind.fills == () and gone.unwind.detail == "no book" and gone.carried_size == 4


def test_an_unwind_arrives_once():
    kalshi, _ = hedge(legged_pair(), policy=UNWIND)
    done = unwind_at_arrival(kalshi, bids=levels(("0.42", "4")), schedule=KALSHI_FEES)
    with pytest.raises(ValueError, match="no unwind on its way"):
        unwind_at_arrival(done, bids=levels(("0.42", "4")), schedule=KALSHI_FEES)
    with pytest.raises(ValueError, match="no unwind on its way"):
        unwind_at_arrival(order(), bids=(), schedule=KALSHI_FEES)


# --- the trade once every order is done --------------------------------------------------------------------


def test_both_legs_filled_in_full_is_a_full_trade():
    kalshi = arrive(order(), ("0.45", "10"))
    polymarket = arrive(order(POLYMARKET, limit="0.50", latency_ms=250), ("0.50", "10"))
    legs = hedge((kalshi, polymarket), policy=UNWIND)
    assert legs == (kalshi, polymarket)  # nothing unhedged: nothing changes
    result = settle_arrival(legs, decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW)
    # The default scenario's figures: 4.50 + 5.00 + 0.18 = 9.68; 10 - 9.68 = 0.32: 3.2c, no slippage.
    assert (result.outcome, result.matched_size, result.cost_usd, result.fees_usd) == (
        FULL,
        10,
        D("9.68"),
        D("0.18"),
    )
    assert (result.expected_pnl_usd, result.realised_edge_cents, result.slippage_cents) == (
        D("0.32"),
        D("3.2"),
        D("0"),
    )
    assert result.executed_at == NOW + 250 * MS and result.reason == ""


def test_one_leg_filled_and_the_other_nothing_is_legged_and_fully_unwound():
    kalshi = arrive(order(), ("0.45", "10"))
    polymarket = arrive(order(POLYMARKET, limit="0.50", latency_ms=250), ("0.55", "10"))
    kalshi, polymarket = hedge((kalshi, polymarket), policy=UNWIND)
    kalshi = unwind_at_arrival(kalshi, bids=levels(("0.44", "10")), schedule=KALSHI_FEES)
    result = settle_arrival(
        (kalshi, polymarket), decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW
    )
    # Bought 4.50 + 0.18, sold 4.40 - ceil(0.07 x 10 x 0.2464 = 0.17248) = 4.22: lost 0.46.
    assert (result.outcome, result.matched_size, result.cost_usd) == (LEGGED, 0, D("0.46"))
    assert result.expected_pnl_usd == D("-0.46") and result.unwind_cost_usd == D("0.46")
    assert result.realised_edge_cents is None and result.slippage_cents is None
    assert result.reason == ""  # only a missed trade carries a reason


def test_no_leg_filled_is_missed_with_each_legs_reason():
    kalshi = arrive(order(), ("0.47", "10"))
    polymarket = arrive(order(POLYMARKET, limit="0.50", latency_ms=250))
    legs = hedge((kalshi, polymarket), policy=UNWIND)
    result = settle_arrival(legs, decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW)
    assert (result.outcome, result.matched_size, result.cost_usd, result.expected_pnl_usd) == (
        MISSED,
        0,
        0,
        0,
    )
    assert result.reason == (
        f"kalshi {TICKER}: book moved past the limit: best ask 0.47 > limit 0.45 at arrival; "
        f"polymarket {TOKEN}: no asks at arrival"
    )


def test_a_trade_with_an_order_on_its_way_cannot_be_settled():
    kalshi, polymarket = hedge(legged_pair(), policy=UNWIND)
    with pytest.raises(ValueError, match="still has orders on their way"):
        settle_arrival((kalshi, polymarket), decided_size=D(10), signal_edge_cents=D("3.2"), decided_at=NOW)


def test_the_legs_notional_is_rounded_up_once_to_the_hundredth_of_a_cent():
    # Sub-cent prices: 6 x 0.333 = 1.998 on Kalshi; 3 x 0.33333 + 3 x 0.34 = 0.99999 + 1.02 on
    # Polymarket. The legs' notional 4.01799 is rounded up once, to 4.0180.
    kalshi = arrive(order(limit="0.34", size="6"), ("0.333", "6"))
    polymarket = arrive(
        order(POLYMARKET, limit="0.34", size="6", latency_ms=250), ("0.33333", "3"), ("0.34", "3")
    )
    legs = hedge((kalshi, polymarket), policy=CARRY)
    result = settle_arrival(legs, decided_size=D(6), signal_edge_cents=D("5"), decided_at=NOW)
    # Kalshi fee ceil(0.07 x 6 x 0.333 x 0.667 = 0.0932869) = 0.10; notional 1.998 + 0.99999 + 1.02
    # = 4.01799 -> 4.0180; cost 4.1180.
    assert result.cost_usd == D("4.1180")


def test_the_costliest_unwind_still_fits_in_what_was_held():
    # The tightest case on the cent grid: 1 contract, Kalshi filled at its 0.50 limit (fee at its
    # largest, 0.02), Polymarket's 0.01 order filled nothing. The unwind meets a sliver: 0.01 of a
    # contract at 0.01 brings back $0.0001 and pays Kalshi's whole-cent fee, $0.01.
    # Held: 0.50 + 0.02 + 0.01 = 0.53. Cost: 0.50 + 0.02 - (0.0001 - 0.01) = 0.5299.
    # Held: 0.50 + 0.02 + 0.01 = 0.53, plus the cent an unwind's fee rounding can lose: 0.54.
    for poly_limit in ("0.01", "0.005"):  # a Polymarket market on a 0.001 tick
        kalshi = arrive(order(limit="0.50", size="1"), ("0.50", "1"))
        polymarket = arrive(order(POLYMARKET, limit=poly_limit, size="1", latency_ms=250), ("0.02", "5"))
        kalshi, polymarket = hedge((kalshi, polymarket), policy=UNWIND)
        kalshi = unwind_at_arrival(kalshi, bids=levels(("0.01", "0.01")), schedule=KALSHI_FEES)
        assert (kalshi.unwind.proceeds_usd, kalshi.unwind.fee_usd) == (D("0.0001"), D("0.01"))
        result = settle_arrival(
            (kalshi, polymarket), decided_size=D(1), signal_edge_cents=D("1"), decided_at=NOW
        )
        held = reserve_usd(
            [
                worst_case_cost_usd(D("0.50"), D(1), KALSHI_FEES),
                worst_case_cost_usd(D(poly_limit), D(1), POLYMARKET_FEES),
            ]
        )
        assert (result.outcome, result.cost_usd, held) == (LEGGED, D("0.5299"), D("0.54"))
        assert result.cost_usd <= held


def test_orders_round_trip_their_json():
    kalshi, polymarket = hedge(legged_pair(), policy=UNWIND)
    kalshi = unwind_at_arrival(kalshi, bids=levels(("0.30", "1.5")), schedule=KALSHI_FEES)
    waiting = order(POLYMARKET, state=WAITING)
    legs = (kalshi, polymarket, waiting)
    stored = json.loads(json.dumps([leg.as_json() for leg in legs]))
    assert legs_from_json(stored) == legs
    assert D(stored[0]["filled_size"]) == 10 and stored[0]["avg_fill_price"] == "0.4500"
    assert stored[0]["unwind"]["arrived_at"] == "2025-11-25T15:00:00.340000Z"
    assert stored[2]["sent_at"] is None and stored[2]["arrival_book"] is None
    # An order whose venue gave no book, and a bid of zero, survive too.
    blind = fill_at_arrival(
        order(),
        arrival_asks=None,
        taken_by_run={},
        shares=NO_COMPETITION,
        rng=random.Random(0),
        schedule=KALSHI_FEES,
    )
    zero_bid = replace(arrive(order(), ("0.45", "1")), arrival_best_bid=ZERO)
    for leg in (blind, zero_bid):
        assert LegOrder.from_json(json.loads(json.dumps(leg.as_json()))) == leg
    assert Unwind.from_json(kalshi.unwind.as_json()) == kalshi.unwind


# --- whole trades over generated books: the arithmetic a trade records -------------------------------------

CENT = D("0.01")
USD = D("0.0001")
grid_prices = st.integers(min_value=1, max_value=99).map(lambda cents: D(cents) * CENT)
crumbs = st.integers(min_value=1, max_value=9).map(lambda n: D(n) / 100)  # a sliver of a contract
level_sizes = st.one_of(
    st.integers(min_value=1, max_value=40).map(D),  # whole contracts
    st.integers(min_value=1, max_value=4_000).map(lambda n: D(n) / 100),  # Polymarket's fractional shares
    crumbs,
)


def ladder(
    around: Decimal,
    offsets: st.SearchStrategy[int],
    *,
    bids: bool = False,
    min_size: int = 0,
    sizes: st.SearchStrategy[Decimal] = level_sizes,
):
    """A book side on the cent grid: unique prices `around` +/- whole cents, best first (asks up,
    bids down), each with a size."""
    rows = st.lists(st.tuples(offsets, sizes), min_size=min_size, max_size=5, unique_by=lambda row: row[0])
    return rows.map(
        lambda rows: tuple(
            sorted(
                {
                    price: Level(price, size)
                    for offset, size in rows
                    if CENT <= (price := around + offset * CENT) <= 99 * CENT
                }.values(),
                key=lambda level: level.price,
                reverse=bids,
            )
        )
    )


# Competitors' share of each level: none, the default model's two ranges, or any range.
shares = st.one_of(
    st.sampled_from([(ZERO, ZERO), (ZERO, D("0.2")), (ZERO, D("0.7"))]),
    st.tuples(st.integers(0, 100), st.integers(0, 100)).map(
        lambda pair: (D(min(pair)) / 100, D(max(pair)) / 100)
    ),
)


def leg_at_arrival(draw, venue: str, *, legging: bool) -> dict:
    """One leg: its limit, and what its order meets at arrival: asks that moved a few cents either
    way (or none, or no book at all), this run's earlier takes, the best bid, and the bids its
    unwind meets later. `legging`: always a book, take-what-is-there orders, and only slivers at
    any price to unwind into (tiny proceeds against a whole-cent Kalshi fee)."""
    limit = draw(grid_prices)
    asks = draw(ladder(limit, st.integers(min_value=-4, max_value=3), min_size=1))
    prices = [level.price for level in asks]
    take_what_is_there = IOC if venue == KALSHI else FAK
    if legging:
        arrival_asks, order_type = asks, take_what_is_there
        unwind_bids = draw(
            ladder(D("0.50"), st.integers(min_value=-49, max_value=49), bids=True, sizes=crumbs)
        )
    else:
        arrival_asks = draw(st.sampled_from([asks, asks, asks, asks, (), None]))
        order_type = draw(st.sampled_from([take_what_is_there, take_what_is_there, FOK]))
        unwind_bids = draw(
            st.one_of(ladder(limit, st.integers(min_value=-30, max_value=0), bids=True), st.none())
        )
    return {
        "venue": venue,
        "limit": limit,
        "seen": (Level(limit, D(10)),),
        "arrival_asks": arrival_asks,
        "arrival_bids": draw(ladder(limit, st.integers(min_value=-8, max_value=-1), bids=True)),
        "taken": draw(st.dictionaries(st.sampled_from(prices), level_sizes, max_size=1)) if prices else {},
        "latency_ms": draw(st.integers(min_value=1, max_value=5_000)),
        "unwind_latency_ms": draw(st.integers(min_value=1, max_value=5_000)),
        "unwind_bids": unwind_bids,
        "order_type": order_type,
    }


@st.composite
def trades(draw, *, legging: bool = False) -> dict:
    """A whole trade's inputs. `legging`: every excess unwound, no competitors."""
    legs = [leg_at_arrival(draw, KALSHI, legging=legging), leg_at_arrival(draw, POLYMARKET, legging=legging)]
    return {
        "legs": legs[::-1] if draw(st.booleans()) else legs,  # either venue may be the first leg
        "size": D(draw(st.integers(min_value=1, max_value=25))),
        "sequencing": draw(st.sampled_from(["together", "together", "kalshi_first", "polymarket_first"])),
        "unhedged": UNWIND if legging else draw(st.sampled_from([UNWIND, CARRY])),
        "shares": NO_COMPETITION if legging else draw(shares),
        "kalshi_ticker": draw(st.sampled_from([TICKER, "INX-25NOV25-B6000"])),  # taker 0.07, index 0.035
        "polymarket_rate": draw(st.sampled_from(["0", "0.03", "0.25"])),
        "signal_edge_cents": D(draw(st.integers(min_value=-500, max_value=5_000))) / 100,
        "seed": draw(st.integers(min_value=0, max_value=2**32)),
    }


def schedules_of(trade: dict) -> dict[str, object]:
    return {
        KALSHI: kalshi_taker_schedule(trade["kalshi_ticker"]),
        POLYMARKET: polymarket_taker_schedule(D(trade["polymarket_rate"])),
    }


def run_trade(trade: dict) -> dict:
    """The trade from decision to its last arrival, as the engine drives it: each step when it is
    due (earliest first), a leg filled at its arrival book, a waiting leg sent, the excess hedged,
    each unwind sold at its bids."""
    legs = trade["legs"]
    schedules = schedules_of(trade)
    config = ExecutionConfig(
        kalshi_order_type=next(leg["order_type"] for leg in legs if leg["venue"] == KALSHI),
        polymarket_order_type=next(leg["order_type"] for leg in legs if leg["venue"] == POLYMARKET),
        sequencing=trade["sequencing"],
        unhedged=trade["unhedged"],
    )
    intent_legs = [
        IntentLeg(leg["venue"], TICKER if leg["venue"] == KALSHI else TOKEN, YES, leg["limit"], trade["size"])
        for leg in legs
    ]
    orders = plan_orders(
        intent_legs,
        size=trade["size"],
        books=[(leg["seen"], leg["seen"]) for leg in legs],
        latencies_ms=[leg["latency_ms"] for leg in legs],
        unwind_latencies_ms=[leg["unwind_latency_ms"] for leg in legs],
        decided_at=NOW,
        config=config,
    )
    planned_orders = orders
    reserved = reserve_usd(worst_case_cost_usd(o.limit_price, o.size, schedules[o.venue]) for o in orders)
    steps_run = []
    while pending := pending_steps(orders):
        step, _ = min(pending, key=lambda item: (item[1], item[0]))
        steps_run.append(step)
        kind, index = step.split(":")
        index = int(index)
        leg = legs[index]
        # What the engine reads from the stored legs without building them agrees with the orders.
        stored = [order.as_json() for order in orders]
        assert pending_steps_of_json(stored) == pending
        only_its_leg, before = changes_only_its_leg(stored, index), orders
        if kind == "leg":
            asks = leg["arrival_asks"]
            filled = fill_at_arrival(
                orders[index],
                arrival_asks=asks,
                best_bid=leg["arrival_bids"][0].price if leg["arrival_bids"] else None,
                book_ts_ms=1_000 if asks is not None else None,
                taken_by_run=leg["taken"] if asks is not None else {},
                shares=trade["shares"],
                rng=random.Random(f"{trade['seed']}:arrival:{index}"),
                schedule=schedules[leg["venue"]],
                unavailable="no book at arrival: unreachable",
            )
            orders = send_waiting(tuple(filled if i == index else o for i, o in enumerate(orders)))
            if all(o.state not in (WAITING, SENT) for o in orders):
                orders = hedge(orders, policy=config.unhedged)
        else:
            sold = unwind_at_arrival(
                orders[index],
                bids=leg["unwind_bids"],
                schedule=schedules[leg["venue"]],
                unavailable="no book at the unwind's arrival",
            )
            orders = tuple(sold if i == index else o for i, o in enumerate(orders))
        if only_its_leg:
            assert all(
                new is old for i, (old, new) in enumerate(zip(before, orders, strict=True)) if i != index
            )
            assert not is_complete(orders)
    result = settle_arrival(
        orders, decided_size=trade["size"], signal_edge_cents=trade["signal_edge_cents"], decided_at=NOW
    )
    return {
        "planned": planned_orders,
        "orders": orders,
        "reserved": reserved,
        "result": result,
        "steps": steps_run,
    }


def walk(ladder, limit, size) -> tuple[Fill, ...]:
    """Best first, at or under `limit` (None: any price), until `size` is taken."""
    fills = []
    remaining = size
    for level in ladder:
        if remaining <= 0 or (limit is not None and level.price > limit):
            break
        if level.size <= 0:
            continue
        taken = min(level.size, remaining)
        fills.append(Fill(level.price, taken))
        remaining -= taken
    return tuple(fills)


def fee_of(schedule, fills) -> Decimal:
    return schedule.fills_fee_usd([(fill.price, fill.size) for fill in fills]) if fills else ZERO


@settings(max_examples=300, deadline=None)
@given(trade=trades())
def test_every_trade_keeps_the_arithmetic_it_records_and_never_costs_more_than_was_held(trade):
    run = run_trade(trade)
    orders, result = run["orders"], run["result"]
    schedules = schedules_of(trade)
    event(result.outcome)
    assert is_complete(orders) and pending_steps(orders) == []

    for index, (o, leg) in enumerate(zip(orders, trade["legs"], strict=True)):
        schedule = schedules[o.venue]
        assert o.fills == () or o.state == ARRIVED
        if o.state == NOT_SENT:
            assert o.fills == () and o.arrival_book is None and o.sent_at is None
            continue
        assert o.state == ARRIVED
        asks = leg["arrival_asks"]
        if asks is None:
            assert o.arrival_book == () and o.fills == ()
        else:
            assert o.arrival_book == asks
            # What competitors and this run left is never more than the level offered.
            assert [level.price for level in o.arrival_available] == [level.price for level in asks]
            for left, offered in zip(o.arrival_available, asks, strict=True):
                taken = leg["taken"].get(offered.price, ZERO)
                assert ZERO <= left.size <= max(offered.size - taken, ZERO) <= offered.size
            # Fills are the best-first walk of what was left, at or under the limit, whole contracts,
            # never more than the order asked; fill-or-kill: all or nothing.
            depth = sum((lvl.size for lvl in o.arrival_available if lvl.price <= o.limit_price), ZERO)
            wanted = min(o.size, depth.to_integral_value(rounding=ROUND_FLOOR))
            if o.order_type == FOK and wanted < o.size:
                wanted = ZERO
            assert o.fills == walk(o.arrival_available, o.limit_price, wanted)
            for fill in o.fills:
                assert asks[0].price <= fill.price <= o.limit_price
        assert o.filled_size == sum((fill.size for fill in o.fills), ZERO)
        assert o.filled_size == o.filled_size.to_integral_value() and o.filled_size <= o.size
        assert o.fee_usd == fee_of(schedule, o.fills)
        assert (o.detail == "") == (o.filled_size == o.size)
        # A leg sent second goes out at the first leg's arrival, sized to its fill.
        if run["planned"][index].state == WAITING:
            first = [other for other, plan in zip(orders, run["planned"], strict=True) if plan.state == SENT]
            assert o.size == min(other.filled_size for other in first) > 0
            assert o.sent_at == max(other.arrived_at for other in first)
        assert o.arrived_at == o.sent_at + o.latency_ms * MS

    matched = min(o.filled_size for o in orders)
    assert result.matched_size == matched
    last_arrival = max(o.arrived_at for o in orders if o.arrived_at is not None)
    unwinds_net = ZERO
    marks = ZERO
    for o, leg in zip(orders, trade["legs"], strict=True):
        schedule = schedules[o.venue]
        assert o.unhedged_size == o.filled_size - matched
        if o.unhedged_size == 0:
            assert o.unwind is None and o.carried_size == 0 and o.carried_mark_usd == 0
        elif trade["unhedged"] == CARRY:
            assert o.unwind is None and o.carried_size == o.unhedged_size
            ask = o.arrival_book[0].price
            bid = o.arrival_best_bid if o.arrival_best_bid is not None else ZERO
            assert o.carried_mark_usd == (o.unhedged_size * (ask + bid) / 2).quantize(
                USD, rounding=ROUND_FLOOR
            )
        else:
            unwind = o.unwind
            assert unwind.size == o.unhedged_size
            assert unwind.sent_at == last_arrival
            assert unwind.arrived_at == last_arrival + o.unwind_latency_ms * MS
            assert unwind.fills == walk(leg["unwind_bids"] or (), None, unwind.size)
            assert unwind.proceeds_usd == sum((f.price * f.size for f in unwind.fills), ZERO).quantize(
                USD, rounding=ROUND_FLOOR
            )
            assert unwind.fee_usd == fee_of(schedule, unwind.fills)
            assert o.carried_size == unwind.size - unwind.sold_size and o.carried_mark_usd == 0
            unwinds_net += unwind.proceeds_usd - unwind.fee_usd
        marks += o.carried_mark_usd
        # What the leg holds when the markets resolve: its fills less what its unwind sold.
        assert leg_contracts(o.as_json()) == o.filled_size - (o.unwind.sold_size if o.unwind else ZERO)
        assert leg_contracts(o.as_json()) == matched + o.carried_size

    legs_notional = sum((f.price * f.size for o in orders for f in o.fills), ZERO)
    cost = legs_notional.quantize(USD, rounding=ROUND_CEILING) + sum(o.fee_usd for o in orders) - unwinds_net
    assert result.cost_usd == cost
    assert result.expected_pnl_usd == matched * 1 - cost + marks
    assert result.carried_mark_usd == marks
    if matched > 0:
        assert result.realised_edge_cents == (result.expected_pnl_usd * 100 / matched).quantize(
            USD, rounding=ROUND_FLOOR
        )
        assert result.slippage_cents == trade["signal_edge_cents"] - result.realised_edge_cents
    else:
        assert result.realised_edge_cents is None and result.slippage_cents is None
    filled = [o.filled_size for o in orders]
    expected_outcome = (
        MISSED
        if all(size == 0 for size in filled)
        else LEGGED
        if 0 in filled
        else FULL
        if all(size == trade["size"] for size in filled)
        else PARTIAL
    )
    assert result.outcome == expected_outcome
    assert (result.reason != "") == (result.outcome == MISSED)
    assert result.executed_at == max(
        [o.arrived_at for o in orders if o.arrived_at is not None]
        + [o.unwind.arrived_at for o in orders if o.unwind is not None]
    )
    # The money invariant: what the orders cost never passes the worst case held at decision.
    assert result.cost_usd <= run["reserved"]
    assert run["reserved"] == reserve_usd(
        worst_case_cost_usd(o.limit_price, o.size, schedules[o.venue]) for o in run["planned"]
    )
    # Every order survives the JSON a trade row stores.
    assert legs_from_json(json.loads(json.dumps([o.as_json() for o in orders]))) == orders


@settings(max_examples=150, deadline=None)
@given(trade=trades(legging=True))
def test_a_legged_trade_unwound_into_slivers_never_costs_more_than_was_held(trade):
    run = run_trade(trade)
    orders, result = run["orders"], run["result"]
    event(result.outcome)
    event("unwound" if any(o.unwind is not None for o in orders) else "nothing to unwind")
    unwinds = [o.unwind for o in orders if o.unwind is not None]
    notional = sum((f.price * f.size for o in orders for f in o.fills), ZERO)
    assert result.cost_usd == (
        notional.quantize(USD, rounding=ROUND_CEILING)
        + sum((o.fee_usd for o in orders), ZERO)
        - sum((u.proceeds_usd - u.fee_usd for u in unwinds), ZERO)
    )
    assert result.cost_usd <= run["reserved"]


@settings(max_examples=40, deadline=None)
@given(trade=trades())
def test_the_same_inputs_and_seed_give_the_same_trade(trade):
    one, two = run_trade(trade), run_trade(trade)
    assert one == two
    assert [o.as_json() for o in one["orders"]] == [o.as_json() for o in two["orders"]]
