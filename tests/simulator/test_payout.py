"""Hand-computed payouts of a hedged pair at resolution (the pure core: no database)."""

from decimal import Decimal

import pytest

from simulator.core.payout import leg_contracts, payout_usd

D = Decimal
KALSHI_YES = {
    "venue": "kalshi",
    "side": "yes",
    "fills": [{"price": "0.45", "size": "6"}, {"price": "0.46", "size": "4"}],
}
POLY_NO = {"venue": "polymarket", "side": "no", "fills": [{"price": "0.50", "size": "10"}]}


@pytest.mark.parametrize(
    ("kalshi", "polymarket", "paid"),
    [
        ("yes", "yes", D("10")),  # the venues agree: the Kalshi yes leg pays
        ("no", "no", D("10")),  # they agree the other way: the Polymarket no leg pays
        ("yes", "no", D("20")),  # they disagree in the pair's favour: both legs pay
        ("no", "yes", D("0")),  # they disagree against it: neither pays
    ],
)
def test_a_hedged_pair_pays_one_dollar_per_contract_of_each_winning_leg(kalshi, polymarket, paid):
    assert payout_usd([KALSHI_YES, POLY_NO], {"kalshi": kalshi, "polymarket": polymarket}) == paid


def test_a_venue_without_a_result_is_refused():
    with pytest.raises(ValueError, match="no result for venue 'polymarket'"):
        payout_usd([KALSHI_YES, POLY_NO], {"kalshi": "yes"})


def test_a_leg_holds_its_fills_less_what_its_unwind_sold():
    # Kalshi filled 10, Polymarket 6: 4 excess unwound, of which the bids took 3 (1 left carried).
    kalshi = KALSHI_YES | {
        "unwind": {"fills": [{"price": "0.40", "size": "2"}, {"price": "0.39", "size": "1"}]}
    }
    polymarket = POLY_NO | {"fills": [{"price": "0.50", "size": "6"}]}
    assert leg_contracts(kalshi) == D("7")
    assert payout_usd([kalshi, polymarket], {"kalshi": "yes", "polymarket": "yes"}) == D("7")
    assert payout_usd([kalshi, polymarket], {"kalshi": "no", "polymarket": "no"}) == D("6")


def test_a_carried_excess_and_a_leg_without_unwind_pay_in_full():
    # No unwind (carried, or nothing to unwind): every filled contract is held.
    assert leg_contracts(KALSHI_YES | {"unwind": None}) == D("10")
    assert leg_contracts({"venue": "kalshi", "side": "yes", "fills": []}) == D("0")
    legged = [KALSHI_YES, POLY_NO | {"fills": []}]
    assert payout_usd(legged, {"kalshi": "no", "polymarket": "no"}) == D("0")
