"""The whole decision: seven checks in order, the exchange asked only when it should be."""

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
    Decision,
    ExchangeValidation,
    Fill,
    FillConfig,
    Keys,
    LegValidation,
    LiquidityLedger,
    SimConfig,
    decide,
    decide_span,
)
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


def test_all_checks_passing_gives_a_trade():
    decision = run_decide()
    assert decision.outcome == "traded" and decision.reason == ""
    assert tuple(check.name for check in decision.checks) == CHECK_NAMES
    assert all(check.ok for check in decision.checks)
    trade = decision.trade
    # The default scenario (tests/simulator/__init__.py): 10 contracts, cost $9.68, P&L $0.32.
    assert (trade.requested_size, trade.matched_size, trade.fill_pct) == (10, 10, D("1.0000"))
    assert (trade.cost_usd, trade.fees_usd, trade.expected_pnl_usd) == (D("9.68"), D("0.18"), D("0.32"))
    assert trade.decided_at == NOW
    assert trade.executed_at == NOW + timedelta(milliseconds=250)  # the slower leg
    assert trade.settled_at == trade.executed_at + timedelta(seconds=5)
    assert trade.settlement_delay_s == D("5.000")
    assert decision.checks[1].detail == "net edge 3.20c (fills: 3.20c) >= your minimum 1.00c"


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
        "avg_fill_price",
        "fee_usd",
        "fills",
        "book",
    } <= set(leg)
    assert leg["fills"] == [{"price": "0.45", "size": "10"}]
    assert leg["book"] == [{"price": "0.45", "size": "10"}]
    assert payload["trade"]["cost_usd"] == "9.6800"  # USD totals to 4 places
    assert leg["fee_usd"] == "0.18"  # Kalshi charges whole cents
    assert payload["trade"]["executed_at"] == "2025-11-25T15:00:00.250000Z"
    assert payload["validation"]["balances_usd"] == {"kalshi": "500", "polymarket": "500"}


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
    assert decision.reason == "balance: cost $9.68 > run balance $9.67"


def test_a_trade_over_the_daily_cap_is_skipped_at_daily_cap():
    decision = run_decide(state=make_state(traded_today="995"), limits=make_limits(daily_cap="1000"))
    assert_skipped_at(decision, "daily_cap")
    assert (
        decision.reason == "daily_cap: today $995.00 + this trade $9.68 = $1004.68 > your daily cap $1000.00"
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


def test_depth_already_taken_on_the_same_snapshot_is_not_taken_again():
    ledger = LiquidityLedger()
    first = run_decide(ledger=ledger)
    second = run_decide(ledger=ledger)
    assert first.outcome == "traded"
    assert_skipped_at(second, "exchange_validation")
    assert "this run already took the depth at or below 0.45 on this book snapshot" in second.reason


def test_a_second_intent_on_the_same_snapshot_fills_the_next_level():
    ledger = LiquidityLedger()
    validation = make_validation(kalshi=kalshi_book(("0.44", "6"), ("0.45", "20")))
    first = run_decide(validation=validation, ledger=ledger)
    second = run_decide(validation=validation, ledger=ledger)
    assert first.trade.legs[0].fills[0].price == D("0.44")
    # The first took 6 @ 0.44 and 4 @ 0.45; the Polymarket leg is gone too (10 of 10).
    assert_skipped_at(second, "exchange_validation")
    fresh = make_validation(
        kalshi=kalshi_book(("0.44", "6"), ("0.45", "20")), polymarket=polymarket_book(("0.50", "30"))
    )
    third = run_decide(validation=fresh, ledger=ledger)
    # A newer Polymarket snapshot? No: same timestamp, so Kalshi is still reduced to 0.45 x 16.
    assert third.trade.legs[0].fills == (Fill(D("0.45"), D("10")),)
    assert third.trade.legs[0].book_available == (Level(D("0.45"), D("16")),)
    assert third.trade.legs[0].book == (Level(D("0.44"), D("6")), Level(D("0.45"), D("20")))


def test_a_newer_snapshot_restores_the_depth():
    ledger = LiquidityLedger()
    assert run_decide(ledger=ledger).outcome == "traded"
    newer = make_validation(
        kalshi=kalshi_book(("0.45", "10"), ts_ms=2_000_000_000_000),
        polymarket=polymarket_book(("0.50", "10"), ts_ms=2_000_000_000_000),
    )
    assert run_decide(validation=newer, ledger=ledger).trade.matched_size == 10


def test_a_skipped_decision_does_not_consume_the_ledger():
    ledger = LiquidityLedger()
    run_decide(state=make_state(balance="1"), ledger=ledger)
    assert ledger.to_json()["books"] == []


def test_a_marginal_edge_gets_a_partial_fill_that_still_meets_the_minimum():
    # Edge 3.20c with a 2.50c minimum is within the 1c band: some seed must give a partial fill.
    sizes = set()
    for seed in range(30):
        decision = run_decide(limits=make_limits(min_edge="2.50"), seed=seed)
        trade = decision.trade
        sizes.add(trade.matched_size)
        assert trade.expected_pnl_usd * 100 >= D("2.50") * trade.matched_size
        assert trade.fill_pct == (trade.matched_size / trade.requested_size).quantize(D("0.0001"))
    assert min(sizes) < 10
    assert all(3 <= size <= 10 for size in sizes)  # u in [0.3, 1.0] of 10


def test_the_same_seed_and_inputs_give_the_same_decision():
    default_timing = SimConfig()  # the random latency and settlement models
    limits = make_limits(min_edge="2.50")  # marginal, so the partial fill draws too
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
    assert decision.checks[5].detail == "cost $9.68 <= run balance $1000.00"


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
    config = SimConfig(fills=FillConfig(marginal_band_cents=D("0.5")), timing=FIXED_TIMING)
    assert SimConfig.from_json(json.loads(json.dumps(config.as_json()))) == config
    assert SimConfig.from_json({}) == SimConfig()
