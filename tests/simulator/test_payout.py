"""Hand-computed payouts of a hedged pair at resolution (the pure core: no database)."""

from decimal import Decimal

import pytest

from simulator.core.payout import payout_usd

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
