"""Fee schedules against the worked examples of exchange-apis.md section 3, plus rounding edges."""

from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET
from exchanges.fees import (
    KALSHI_INDEX_TAKER_RATE,
    KALSHI_MAKER_RATE,
    KALSHI_TAKER_RATE,
    FeeSchedule,
    kalshi_fee_usd,
    kalshi_series_of,
    kalshi_taker_rate,
    kalshi_taker_schedule,
    polymarket_fee_usd,
    polymarket_taker_schedule,
)

D = Decimal


@pytest.mark.parametrize(
    ("contracts", "price", "fee"),
    [
        # exchange-apis.md 3, Kalshi: "taker 10 @ $0.50 -> 0.175 -> $0.18"
        ("10", "0.50", "0.18"),
        # exchange-apis.md 3, Kalshi: "Taker 100 @ $0.30 -> 1.47 -> $1.47"
        ("100", "0.30", "1.47"),
        # rounding edges: any positive fee rounds up to a whole cent
        ("1", "0.50", "0.02"),  # 0.0175
        ("1", "0.01", "0.01"),  # 0.000693
        ("1", "0.99", "0.01"),  # 0.000693
        ("10000", "0.01", "6.93"),  # 6.93 exactly: no extra cent
        ("10000", "0.99", "6.93"),
        ("10000", "0.50", "175.00"),  # the ceiling, $0.0175 per contract
        ("0", "0.50", "0.00"),
        ("1", "0", "0.00"),
        ("1", "1", "0.00"),
        ("2.5", "0.40", "0.05"),  # fractional contracts: 0.042 -> 0.05
    ],
)
def test_kalshi_taker_fee_rounds_up_to_the_cent(contracts, price, fee):
    assert kalshi_fee_usd(D(contracts), D(price)) == D(fee)


@pytest.mark.parametrize(
    ("contracts", "price", "fee_rate", "fee"),
    [
        # exchange-apis.md 3, Polymarket feeRate 0.03: "buy 100 @ 0.50 -> $0.75"
        ("100", "0.50", "0.03", "0.75"),
        # exchange-apis.md 3: "buy 200 @ 0.20 -> 200x0.03x0.16 = $0.96"
        ("200", "0.20", "0.03", "0.96"),
        # "On a fee-free market both are $0.00"
        ("100", "0.50", "0", "0"),
        ("200", "0.20", "0", "0"),
        # rounding edges: kept to 1/100 of a cent, rounded up
        ("1", "0.01", "0.03", "0.0003"),  # 0.000297
        ("1", "0.99", "0.03", "0.0003"),
        ("10000", "0.01", "0.03", "2.97"),
        ("1", "0.50", "0.03", "0.0075"),
    ],
)
def test_polymarket_taker_fee(contracts, price, fee_rate, fee):
    assert polymarket_fee_usd(D(contracts), D(price), fee_rate=D(fee_rate)) == D(fee)


def test_polymarket_fee_free_market_still_validates_its_inputs():
    with pytest.raises(ValueError, match="price"):
        polymarket_fee_usd(D("1"), D("1.5"))


@pytest.mark.parametrize(("contracts", "price"), [("-1", "0.5"), ("1", "-0.01"), ("1", "1.01"), ("1", "50")])
def test_kalshi_fee_refuses_prices_outside_dollars_and_negative_sizes(contracts, price):
    with pytest.raises(ValueError):
        kalshi_fee_usd(D(contracts), D(price))


@pytest.mark.parametrize(
    ("ticker", "series", "rate"),
    [
        ("KXHIGHNY-25NOV24-T50", "KXHIGHNY", KALSHI_TAKER_RATE),
        ("INXD-25NOV24-B5800", "INXD", KALSHI_INDEX_TAKER_RATE),
        ("inx-25dec31-t6000", "INX", KALSHI_INDEX_TAKER_RATE),
        ("NASDAQ100U-25NOV24H1000-B20000", "NASDAQ100U", KALSHI_INDEX_TAKER_RATE),
        ("INXDX-25NOV24", "INXDX", KALSHI_TAKER_RATE),  # a prefix is not the series
    ],
)
def test_index_series_pay_the_lower_taker_multiplier(ticker, series, rate):
    assert kalshi_series_of(ticker) == series
    assert kalshi_taker_rate(ticker) == rate


def test_index_series_fee_is_half_the_default_before_rounding():
    # 0.035 x 10 x 0.25 = 0.0875 -> 0.09, against 0.175 -> 0.18 on a default series
    assert kalshi_taker_schedule("INXD-25NOV24-B5800").fee_usd(D("10"), D("0.50")) == D("0.09")
    assert kalshi_taker_schedule("KXHIGHNY-25NOV24-T50").fee_usd(D("10"), D("0.50")) == D("0.18")


def test_kalshi_maker_rate_on_flagged_series():
    # 0.0175 x 100 x 0.25 = 0.4375 -> 0.44
    assert kalshi_fee_usd(D("100"), D("0.50"), rate=KALSHI_MAKER_RATE) == D("0.44")


def test_kalshi_multi_level_fill_is_rounded_once_per_order():
    schedule = FeeSchedule(venue=KALSHI, rate=KALSHI_TAKER_RATE)
    fills = [(D("0.50"), D("1")), (D("0.51"), D("1")), (D("0.52"), D("1"))]
    # exact: 0.07 x (0.25 + 0.2499 + 0.2496) = 0.052465 -> one ceiling -> 0.06
    assert schedule.fills_fee_usd(fills) == D("0.06")
    fills = [(D("0.50"), D("1"))] * 4
    assert schedule.fills_fee_usd(fills) == D("0.07")  # 4 x 0.0175 = 0.07 exactly
    # rounding each fill would charge 4 x 0.02 = 0.08
    assert sum(kalshi_fee_usd(size, price) for price, size in fills) == D("0.08")


def test_single_level_fill_equals_the_one_order_fee():
    schedule = kalshi_taker_schedule("KXHIGHNY-25NOV24-T50")
    assert (
        schedule.fills_fee_usd([(D("0.30"), D("100"))]) == schedule.fee_usd(D("100"), D("0.30")) == D("1.47")
    )


def test_polymarket_multi_level_fill_is_rounded_once():
    schedule = polymarket_taker_schedule(D("0.03"))
    fills = [(D("0.50"), D("50")), (D("0.50"), D("50"))]
    assert schedule.fills_fee_usd(fills) == D("0.75")
    assert schedule.venue == POLYMARKET
    assert polymarket_taker_schedule().fills_fee_usd(fills) == D("0")


def test_unknown_venue_is_refused():
    with pytest.raises(ValueError, match="unknown venue"):
        FeeSchedule(venue="nyse", rate=D("0.01")).fee_usd(D("1"), D("0.5"))
