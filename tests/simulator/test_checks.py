"""Each check alone: what it lets through, and the words a user reads when it does not."""

from dataclasses import replace
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from simulator.core import CHECK_NAMES, NOT_RUN_DETAIL, Check, IntentLeg, Keys
from simulator.core.checks import (
    check_balance,
    check_daily_cap,
    check_exchange_books,
    check_exchange_keys,
    check_has_orders,
    check_instrument_ids,
    check_net_edge,
    check_venue_balances,
    complete,
    format_cents,
    format_usd,
    reason_of,
)
from tests.simulator import (
    TICKER,
    TOKEN,
    kalshi_book,
    make_intent,
    make_limits,
    make_state,
    make_validation,
)

D = Decimal


def test_the_names_and_their_order_are_the_contract():
    assert CHECK_NAMES == (
        "has_orders",
        "net_edge",
        "instrument_ids",
        "exchange_keys",
        "exchange_validation",
        "balance",
        "daily_cap",
    )


def test_complete_lists_the_checks_not_run_after_a_failure():
    checks = complete([Check("has_orders", True, "2 orders"), Check("net_edge", False, "too thin")])
    assert tuple(check.name for check in checks) == CHECK_NAMES
    assert checks[2:] == tuple(Check(name, False, NOT_RUN_DETAIL) for name in CHECK_NAMES[2:])
    assert reason_of(checks) == "net_edge: too thin"


def test_complete_refuses_checks_out_of_order():
    with pytest.raises(ValueError, match="out of order"):
        complete([Check("net_edge", True, "")])


def test_money_and_edges_read_like_money_and_edges():
    assert format_usd(D("3.2")) == "$3.20"
    assert format_usd(D("0.0175")) == "$0.0175"
    assert format_cents(D("2.1")) == "2.10c"
    assert format_cents(D("2.999")) == "2.99c"  # rounded down: never shown as reaching 3.00c


def test_has_orders_passes_a_hedged_pair_and_says_when_the_size_was_capped():
    assert check_has_orders(make_intent(), make_limits()) == Check(
        "has_orders", True, "2 orders, 10 contracts"
    )
    capped = check_has_orders(make_intent(), make_limits(max_leg="4"))
    assert capped.ok and capped.detail == "2 orders, 8 contracts (capped from 10 by your max leg $4.00)"


@pytest.mark.parametrize(
    ("legs", "detail"),
    [
        ((), "intent has no orders"),
        ((IntentLeg(KALSHI, TICKER, YES, D("0.45"), D(10)),), "a hedged pair needs 2 orders, intent has 1"),
        (
            (
                IntentLeg("betfair", "X", YES, D("0.45"), D(10)),
                IntentLeg(POLYMARKET, TOKEN, NO, D("0.5"), D(10)),
            ),
            "unknown venue 'betfair'",
        ),
        (
            (
                IntentLeg(KALSHI, TICKER, YES, D("1.2"), D(10)),
                IntentLeg(POLYMARKET, TOKEN, NO, D("0.5"), D(10)),
            ),
            f"kalshi {TICKER} yes: limit price 1.2 not between 0 and 1",
        ),
        (
            (
                IntentLeg(KALSHI, TICKER, YES, D("0.45"), D(0)),
                IntentLeg(POLYMARKET, TOKEN, NO, D("0.5"), D(10)),
            ),
            f"kalshi {TICKER} yes: size 0 is not positive",
        ),
    ],
)
def test_has_orders_refuses_what_is_not_a_hedged_pair(legs, detail):
    assert check_has_orders(make_intent(legs=legs), make_limits()) == Check("has_orders", False, detail)


def test_net_edge_compares_with_the_users_minimum():
    assert check_net_edge(make_intent(net_edge_cents="2.1"), make_limits(min_edge="3")) == Check(
        "net_edge", False, "net edge 2.10c < your minimum 3.00c"
    )
    assert check_net_edge(make_intent(net_edge_cents="3"), make_limits(min_edge="3")).ok  # equal is enough


def test_instrument_ids_need_both_the_ticker_and_the_token():
    assert check_instrument_ids(make_intent()).ok
    assert check_instrument_ids(make_intent(ticker="")).detail == "kalshi ticker missing"
    assert check_instrument_ids(make_intent(token="")).detail == "polymarket token id missing"


def test_exchange_keys_name_the_missing_venues():
    assert check_exchange_keys(make_intent(), Keys(kalshi=True, polymarket=True)).ok
    missing = check_exchange_keys(make_intent(), Keys(kalshi=False, polymarket=False))
    assert missing.detail == "no kalshi or polymarket keys saved on your profile"


def test_exchange_books_accept_asks_at_the_limit():
    validation = make_validation(kalshi=kalshi_book(("0.45", "1")))
    assert check_exchange_books(make_intent(), validation).ok


def test_exchange_books_refuse_an_untradeable_market_and_a_missing_answer():
    validation = make_validation()
    untradeable = replace(validation.legs[0], tradeable=False)
    closed = replace(validation, legs=(untradeable, validation.legs[1]))
    assert (
        check_exchange_books(make_intent(), closed).detail
        == f"kalshi {TICKER} yes: market not open for trading"
    )
    only_one = replace(validation, legs=(validation.legs[1],))
    assert (
        check_exchange_books(make_intent(), only_one).detail == f"kalshi {TICKER} yes: no validation result"
    )
    no_book = replace(validation, legs=(replace(validation.legs[0], book=None), validation.legs[1]))
    assert check_exchange_books(make_intent(), no_book).detail == f"kalshi {TICKER} yes: no order book"


def test_exchange_books_trust_the_overall_verdict_too():
    refused = replace(make_validation(), ok=False, detail="kalshi exchange paused")
    assert check_exchange_books(make_intent(), refused).detail == "kalshi exchange paused"


def test_venue_balances_must_cover_the_worst_case_cost_of_each_venues_orders():
    # Kalshi: 10 at the 0.45 limit + fee 0.18 = $4.68; Polymarket: 10 at 0.50, no fee = $5.00.
    worst = {KALSHI: D("4.68"), POLYMARKET: D("5.00")}
    assert check_venue_balances(make_validation(kalshi_balance="4.68"), worst).ok
    low = check_venue_balances(make_validation(kalshi_balance="3.20"), worst)
    assert low == Check("exchange_validation", False, "kalshi balance $3.20 < leg cost $4.68")
    low_polymarket = check_venue_balances(make_validation(polymarket_balance="4.9999"), worst)
    assert low_polymarket.detail == "polymarket balance $4.9999 < leg cost $5.00"
    unknown = check_venue_balances(make_validation(polymarket_balance=None), worst)
    assert unknown == Check("exchange_validation", False, "polymarket balance unknown")


def test_balance_is_the_runs_fake_usd():
    assert check_balance(D("9.68"), make_state(balance="9.68")).ok
    assert check_balance(D("9.68"), make_state(balance="9.67")) == Check(
        "balance", False, "worst-case cost $9.68 > run balance $9.67"
    )
    assert check_balance(D("9.68"), make_state(balance="9.68")).detail == (
        "worst-case cost $9.68 <= run balance $9.68"
    )


def test_daily_cap_counts_what_was_traded_today():
    assert check_daily_cap(D("5"), make_state(traded_today="95"), make_limits(daily_cap="100")).ok
    over = check_daily_cap(D("5.01"), make_state(traded_today="95"), make_limits(daily_cap="100"))
    assert over == Check(
        "daily_cap", False, "today $95.00 + this trade $5.01 = $100.01 > your daily cap $100.00"
    )
