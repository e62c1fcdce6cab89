"""The whole decision: seven checks in order, the exchange asked only when it should be, and a
traded decision's orders sent with their worst-case cost held (what they fill is decided at
arrival: test_execution.py)."""

import json
import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET, YES, Level
from simulator.core import (
    CHECK_NAMES,
    NOT_RUN_DETAIL,
    CompetitionConfig,
    Decision,
    ExchangeValidation,
    ExecutionConfig,
    Fill,
    Keys,
    LegValidation,
    LiquidityLedger,
    SimConfig,
    decide,
    decide_span,
)
from simulator.core.execution import SENT, WAITING
from tests.simulator import (
    ALL_KEYS,
    FIXED_TIMING,
    NOW,
    TICKER,
    TOKEN,
    kalshi_book,
    leg_ok,
    make_fee_schedules,
    make_intent,
    make_limits,
    make_state,
    make_validation,
    polymarket_book,
    run_decide,
)

D = Decimal


def assert_skipped_at(decision: Decision, name: str) -> None:
    assert decision.outcome == "skipped"
    assert decision.trade is None
    assert decision.reason.startswith(f"{name}: ")
    assert tuple(check.name for check in decision.checks) == CHECK_NAMES
    failed_at = CHECK_NAMES.index(name)
    assert all(check.ok for check in decision.checks[:failed_at])
    assert not decision.checks[failed_at].ok
    assert decision.reason == f"{name}: {decision.checks[failed_at].detail}"
    assert all(not check.ok and check.detail == NOT_RUN_DETAIL for check in decision.checks[failed_at + 1 :])


def test_all_checks_passing_sends_one_order_per_leg_and_holds_the_worst_case():
    decision = run_decide()
    assert decision.outcome == "traded" and decision.reason == ""
    assert tuple(check.name for check in decision.checks) == CHECK_NAMES
    assert all(check.ok for check in decision.checks)
    trade = decision.trade
    # The default scenario (tests/simulator/__init__.py): 10 contracts at the limits 0.45 and 0.50;
    # the most they can cost is 4.50 + 0.18 (Kalshi's fee) + 5.00 = $9.68, plus a cent for an
    # unwind's fee rounding: $9.69 held. $9.68 is also what the
    # fills at the validated book cost (3.20c).
    assert (trade.requested_size, trade.order_size, trade.reserved_usd) == (10, 10, D("9.69"))
    assert (trade.signal_edge_cents, trade.seen_edge_cents) == (D("3.20"), D("3.2"))
    kalshi, polymarket = trade.legs
    assert (kalshi.venue, kalshi.limit_price, kalshi.size, kalshi.order_type) == (
        KALSHI,
        D("0.45"),
        10,
        "ioc",
    )
    assert (polymarket.venue, polymarket.limit_price, polymarket.order_type) == (POLYMARKET, D("0.50"), "fak")
    # Sent at the decision, each arriving one latency later; nothing is filled yet.
    assert kalshi.state == polymarket.state == SENT
    assert kalshi.sent_at == polymarket.sent_at == NOW
    assert kalshi.arrived_at == NOW + timedelta(milliseconds=120)
    assert polymarket.arrived_at == NOW + timedelta(milliseconds=250)
    assert kalshi.fills == polymarket.fills == ()
    assert kalshi.arrival_book is None
    assert trade.decided_at == NOW
    assert trade.executed_at == NOW + timedelta(milliseconds=250)  # expected: the last arrival
    assert trade.settled_at == trade.executed_at + timedelta(seconds=5)
    assert trade.settlement_delay_s == D("5.000")
    assert trade.latencies_ms == {KALSHI: 120, POLYMARKET: 250}
    assert decision.checks[1].detail == "net edge 3.20c (fills: 3.20c) >= your minimum 1.00c"
    assert decision.checks[5].detail == "worst-case cost $9.69 <= run balance $1000.00"


def test_a_traded_decision_serialises_to_the_json_contract():
    payload = json.loads(json.dumps(run_decide().as_json()))
    assert [check["name"] for check in payload["checks"]] == list(CHECK_NAMES)
    assert set(payload["checks"][0]) == {"name", "ok", "detail"}
    leg = payload["trade"]["legs"][0]
    assert {
        "venue",
        "instrument_id",
        "side",
        "limit_price",
        "order_type",
        "sent_at",
        "arrived_at",
        "book",
        "arrival_book",
        "arrival_available",
        "fills",
        "filled_size",
        "unhedged_size",
        "unwind",
    } <= set(leg)
    assert leg["fills"] == [] and leg["arrival_book"] is None and leg["unwind"] is None
    assert leg["book"] == [{"price": "0.45", "size": "10"}]
    assert leg["sent_at"] == "2025-11-25T15:00:00Z"
    assert leg["arrived_at"] == "2025-11-25T15:00:00.120000Z"
    assert payload["trade"]["reserved_usd"] == "9.6900"  # USD totals to 4 places
    assert payload["trade"]["order_size"] == "10"
    assert payload["trade"]["executed_at"] == "2025-11-25T15:00:00.250000Z"
    assert payload["validation"]["balances_usd"] == {"kalshi": "500", "polymarket": "500"}


def test_the_worst_case_is_every_contract_at_its_limit_not_at_the_better_book():
    # The book offers 0.40 under a 0.45 limit: the fills there cost 4.00 + 0.17 + 5.00 = 9.17
    # (8.30c), but the book can move up to the limit before the order arrives: $9.68 (and the unwind's cent) is held.
    decision = run_decide(validation=make_validation(kalshi=kalshi_book(("0.40", "10"))))
    trade = decision.trade
    assert trade.seen_edge_cents == D("8.3")
    assert trade.reserved_usd == D("9.69")
    assert decision.checks[5].detail == "worst-case cost $9.69 <= run balance $1000.00"


def test_the_worst_case_fee_is_the_largest_a_fill_at_or_under_the_limit_can_carry():
    # Kalshi at a 0.70 limit: a fill at 0.50 carries the largest fee, 0.07 x 10 x 0.25 = 0.175 ->
    # $0.18 (at 0.70 it would be 0.147 -> $0.15). Held: 7.00 + 0.18 + 2.50 = $9.68, plus the unwind's cent.
    intent = make_intent(kalshi_limit="0.70", polymarket_limit="0.25", net_edge_cents="3")
    validation = make_validation(
        kalshi=kalshi_book(("0.70", "10")), polymarket=polymarket_book(("0.25", "10"))
    )
    assert run_decide(intent, validation=validation).trade.reserved_usd == D("9.69")


def test_an_intent_without_orders_is_skipped_at_has_orders():
    decision = run_decide(make_intent(legs=()))
    assert_skipped_at(decision, "has_orders")
    assert decision.reason == "has_orders: intent has no orders"


def test_a_max_leg_too_small_for_one_contract_is_skipped_at_has_orders():
    decision = run_decide(limits=make_limits(max_leg="0.40"))
    assert_skipped_at(decision, "has_orders")
    assert decision.reason == "has_orders: your max leg $0.40 buys no whole contract at 0.50"


def test_an_edge_under_the_minimum_is_skipped_at_net_edge():
    decision = run_decide(limits=make_limits(min_edge="3.50"))
    assert_skipped_at(decision, "net_edge")
    assert decision.reason == "net_edge: net edge 3.20c < your minimum 3.50c"


def test_a_missing_ticker_is_skipped_at_instrument_ids():
    decision = run_decide(make_intent(ticker=""))
    assert_skipped_at(decision, "instrument_ids")
    assert decision.reason == "instrument_ids: kalshi ticker missing"


def test_a_missing_token_id_is_skipped_at_instrument_ids():
    assert run_decide(make_intent(token=" ")).reason == "instrument_ids: polymarket token id missing"


def test_missing_keys_are_skipped_at_exchange_keys():
    decision = run_decide(keys=Keys(kalshi=True, polymarket=False))
    assert_skipped_at(decision, "exchange_keys")
    assert decision.reason == "exchange_keys: no polymarket keys saved on your profile"


@pytest.mark.parametrize(
    "failing",
    [
        {"intent": make_intent(legs=())},
        {"limits": make_limits(min_edge="5")},
        {"intent": make_intent(ticker="")},
        {"keys": Keys(kalshi=False, polymarket=False)},
    ],
)
def test_the_exchange_is_not_asked_when_a_cheap_check_fails(failing):
    def validate():
        raise AssertionError("the exchange must not be called")

    arguments = {"intent": make_intent(), "limits": make_limits(), "keys": ALL_KEYS} | failing
    decision = decide(
        arguments["intent"],
        arguments["limits"],
        make_state(),
        arguments["keys"],
        validate,
        make_fee_schedules(),
        random.Random(1),
        NOW,
        LiquidityLedger(),
    )
    assert decision.outcome == "skipped" and decision.validation is None


def unreachable_kalshi() -> ExchangeValidation:
    kalshi = LegValidation(KALSHI, TICKER, YES, False, "unreachable", "timed out after 2.0s", False, None)
    return ExchangeValidation(
        ok=False,
        legs=(kalshi, leg_ok(polymarket_book(("0.50", "10")))),
        balances_usd={KALSHI: None, POLYMARKET: D(500)},
        detail="kalshi unreachable",
    )


def closed_polymarket() -> ExchangeValidation:
    closed = replace(leg_ok(polymarket_book(("0.50", "10"))), ok=False, kind="closed", detail="market closed")
    return replace(make_validation(), ok=False, legs=(make_validation().legs[0], closed))


@pytest.mark.parametrize(
    ("validation", "reason"),
    [
        (unreachable_kalshi(), f"kalshi {TICKER} yes: unreachable: timed out after 2.0s"),
        (closed_polymarket(), "polymarket 71321045...992563 no: closed: market closed"),
        (
            make_validation(kalshi=kalshi_book(("0.46", "10"))),
            f"kalshi {TICKER} yes: best ask 0.46 > limit 0.45",
        ),
        (make_validation(kalshi=kalshi_book()), f"kalshi {TICKER} yes: no asks in the book"),
        (make_validation(polymarket_balance=None), "polymarket balance unknown"),
        # 10 @ 0.45 + fee 0.18 = $4.68 on Kalshi.
        (make_validation(kalshi_balance="3.20"), "kalshi balance $3.20 < leg cost $4.68"),
        # The venue holds the worst case: 10 at the 0.45 limit (the book is at 0.40) + fee 0.18.
        (
            make_validation(kalshi=kalshi_book(("0.40", "10")), kalshi_balance="4.67"),
            "kalshi balance $4.67 < leg cost $4.68",
        ),
        (
            make_validation(kalshi=kalshi_book(("0.45", "0.5"))),
            f"kalshi {TICKER} yes: only 0.5 contracts at or below 0.45",
        ),
    ],
)
def test_a_failed_exchange_validation_is_skipped_with_its_detail(validation, reason):
    decision = run_decide(validation=validation)
    assert_skipped_at(decision, "exchange_validation")
    assert decision.reason == f"exchange_validation: {reason}"
    assert decision.validation == validation


def test_a_market_without_a_fee_schedule_is_skipped_at_exchange_validation():
    schedules = make_fee_schedules()
    del schedules[(POLYMARKET, TOKEN)]
    decision = run_decide(fee_schedules=schedules)
    assert_skipped_at(decision, "exchange_validation")
    assert decision.reason.endswith("no fee schedule known for this market")


def test_a_cost_over_the_run_balance_is_skipped_at_balance():
    decision = run_decide(state=make_state(balance="9.67"))
    assert_skipped_at(decision, "balance")
    assert decision.reason == "balance: worst-case cost $9.69 > run balance $9.67"


def test_a_trade_over_the_daily_cap_is_skipped_at_daily_cap():
    decision = run_decide(state=make_state(traded_today="995"), limits=make_limits(daily_cap="1000"))
    assert_skipped_at(decision, "daily_cap")
    assert (
        decision.reason == "daily_cap: today $995.00 + this trade $9.69 = $1004.69 > your daily cap $1000.00"
    )


def test_fills_worse_than_the_intent_claimed_are_skipped_at_net_edge():
    # The intent says 4c, but the validated Polymarket ask is 0.52: 10 - 4.50 - 5.20 - 0.18 = 0.12,
    # 1.2c at 10 contracts, and no smaller size reaches 3c (1 contract: 1 - 0.97 - 0.02 = 1c).
    decision = run_decide(
        make_intent(polymarket_limit="0.52", net_edge_cents="4"),
        make_limits(min_edge="3"),
        validation=make_validation(polymarket=polymarket_book(("0.52", "10"))),
    )
    assert decision.outcome == "skipped" and decision.trade is None
    assert decision.reason == "net_edge: fills at the validated book give 1.20c < your minimum 3.00c"
    # net_edge is judged again after the exchange answered: the exchange itself was fine.
    assert [(check.name, check.ok) for check in decision.checks] == [
        ("has_orders", True),
        ("net_edge", False),
        ("instrument_ids", True),
        ("exchange_keys", True),
        ("exchange_validation", True),
        ("balance", False),
        ("daily_cap", False),
    ]
    assert decision.checks[5].detail == NOT_RUN_DETAIL
    assert decision.validation is not None


def take_from(ledger: LiquidityLedger, book, *fills: tuple[str, str]) -> None:
    """What an earlier trade's orders took at arrival from `book`'s snapshot."""
    ledger.consume(book, [Fill(D(price), D(size)) for price, size in fills])


def test_depth_already_taken_on_the_same_snapshot_is_not_ordered_again():
    ledger = LiquidityLedger()
    take_from(ledger, kalshi_book(("0.45", "10")), ("0.45", "10"))
    decision = run_decide(ledger=ledger)
    assert_skipped_at(decision, "exchange_validation")
    assert "this run already took the depth at or below 0.45 on this book snapshot" in decision.reason


def test_an_intent_on_a_snapshot_already_taken_from_is_sized_to_what_is_left():
    ledger = LiquidityLedger()
    validation = make_validation(kalshi=kalshi_book(("0.44", "6"), ("0.45", "20")))
    take_from(ledger, kalshi_book(("0.44", "6"), ("0.45", "20")), ("0.44", "6"), ("0.45", "4"))
    trade = run_decide(validation=validation, ledger=ledger).trade
    assert trade.order_size == 10
    assert trade.legs[0].book_available == (Level(D("0.45"), D("16")),)
    assert trade.legs[0].book == (Level(D("0.44"), D("6")), Level(D("0.45"), D("20")))
    # The Polymarket side was taken down to 3: both orders go out for 3.
    take_from(ledger, polymarket_book(("0.50", "10")), ("0.50", "7"))
    trade = run_decide(validation=validation, ledger=ledger).trade
    assert trade.order_size == 3
    assert trade.legs[1].book_available == (Level(D("0.50"), D("3")),)


def test_a_newer_snapshot_restores_the_depth():
    ledger = LiquidityLedger()
    take_from(ledger, kalshi_book(("0.45", "10")), ("0.45", "10"))
    newer = make_validation(
        kalshi=kalshi_book(("0.45", "10"), ts_ms=2_000_000_000_000),
        polymarket=polymarket_book(("0.50", "10"), ts_ms=2_000_000_000_000),
    )
    assert run_decide(validation=newer, ledger=ledger).trade.order_size == 10


def test_a_decision_never_changes_the_ledger():
    # Fills are taken at arrival: neither a traded nor a skipped decision consumes anything.
    ledger = LiquidityLedger()
    assert run_decide(ledger=ledger).outcome == "traded"
    run_decide(state=make_state(balance="1"), ledger=ledger)
    assert ledger.to_json()["books"] == []
    assert run_decide(ledger=ledger).trade.order_size == 10


def test_a_marginal_edge_sends_the_whole_size():
    # Edge 3.20c with a 2.50c minimum is within the 1c marginal band: the orders still ask for the
    # whole depth; competitors take their (larger) share when the orders arrive.
    for seed in range(10):
        trade = run_decide(limits=make_limits(min_edge="2.50"), seed=seed).trade
        assert trade.order_size == 10 and trade.reserved_usd == D("9.69")


@pytest.mark.parametrize(
    ("sequencing", "waiting"), [("kalshi_first", POLYMARKET), ("polymarket_first", KALSHI)]
)
def test_a_sequence_sends_the_first_venue_and_holds_the_other_leg_back(sequencing, waiting):
    config = SimConfig(execution=ExecutionConfig(sequencing=sequencing), timing=FIXED_TIMING)
    trade = run_decide(config=config).trade
    sent = [leg for leg in trade.legs if leg.venue != waiting]
    held = [leg for leg in trade.legs if leg.venue == waiting]
    assert [leg.state for leg in sent] == [SENT] and sent[0].sent_at == NOW
    assert [leg.state for leg in held] == [WAITING]
    assert held[0].sent_at is None and held[0].arrived_at is None
    # Expected: the first leg's latency, then the second's (120 + 250 ms); the whole size is held.
    assert trade.executed_at == NOW + timedelta(milliseconds=370)
    assert trade.reserved_usd == D("9.69")


def test_the_runs_order_types_are_on_the_orders():
    config = SimConfig(
        execution=ExecutionConfig(kalshi_order_type="fok", polymarket_order_type="fok"), timing=FIXED_TIMING
    )
    assert [leg.order_type for leg in run_decide(config=config).trade.legs] == ["fok", "fok"]


def test_the_same_seed_and_inputs_give_the_same_decision():
    default_timing = SimConfig()  # the random latency and settlement models
    limits = make_limits(min_edge="2.50")
    one = run_decide(limits=limits, seed=99, config=default_timing)
    two = run_decide(limits=limits, seed=99, config=default_timing)
    assert one == two
    assert one.as_json() == two.as_json()
    others = {
        run_decide(limits=limits, seed=seed, config=default_timing).trade.executed_at for seed in range(5)
    }
    assert len(others) > 1


def test_a_success_span_start_is_eligible_without_asking_the_exchange():
    decision = decide_span(make_intent(), make_limits(), make_state(), ALL_KEYS, make_fee_schedules())
    assert decision.outcome == "eligible" and decision.reason == "" and decision.trade is None
    assert tuple(check.name for check in decision.checks) == CHECK_NAMES
    assert decision.checks[4].detail == "not asked: a span decision does not call the exchange"
    # Estimated at the limits: 4.50 + 5.00 + 0.18 = 9.68.
    assert decision.checks[5].detail == "worst-case cost $9.68 <= run balance $1000.00"


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"intent": make_intent(legs=())}, "has_orders"),
        ({"limits": make_limits(min_edge="4")}, "net_edge"),
        ({"keys": Keys(kalshi=False, polymarket=True)}, "exchange_keys"),
        ({"state": make_state(balance="5")}, "balance"),
        ({"state": make_state(traded_today="999")}, "daily_cap"),
    ],
)
def test_a_success_span_start_says_why_a_run_was_not_eligible(arguments, name):
    values = {
        "intent": make_intent(),
        "limits": make_limits(),
        "state": make_state(),
        "keys": ALL_KEYS,
    } | arguments
    decision = decide_span(
        values["intent"], values["limits"], values["state"], values["keys"], make_fee_schedules()
    )
    assert_skipped_at(decision, name)


def test_sim_config_round_trips_json():
    execution = ExecutionConfig(
        kalshi_order_type="fok",
        sequencing="kalshi_first",
        unhedged="carry",
        competition=CompetitionConfig(marginal_band_cents=D("0.5"), share_max=D("0.1")),
    )
    config = SimConfig(execution=execution, timing=FIXED_TIMING)
    assert SimConfig.from_json(json.loads(json.dumps(config.as_json()))) == config
    assert SimConfig.from_json({}) == SimConfig()
