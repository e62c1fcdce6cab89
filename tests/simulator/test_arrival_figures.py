"""The report's execution figures on hand-built arrived trades (pure: no database)."""

from decimal import Decimal

import pytest

from simulator.arrival_figures import (
    ArrivedLeg,
    ArrivedTrade,
    arrival_figures,
    is_legging_incident,
    miss_kind,
    missed_reason,
    percentile,
)

D = Decimal


def leg(venue="kalshi", filled="10", latency_ms=100, detail="", state="arrived") -> ArrivedLeg:
    return ArrivedLeg(venue=venue, state=state, latency_ms=latency_ms, filled_size=D(filled), detail=detail)


def trade(
    outcome, kalshi: ArrivedLeg, polymarket: ArrivedLeg, slippage=None, unwind_cost="0"
) -> ArrivedTrade:
    return ArrivedTrade(
        outcome=outcome,
        slippage_cents=D(slippage) if slippage is not None else None,
        unwind_cost_usd=D(unwind_cost),
        legs=(kalshi, polymarket),
    )


def test_percentile_is_nearest_rank():
    assert percentile([], D("0.5")) is None
    assert percentile([1, 2, 3, 4], D("0.50")) == 2
    assert percentile([1, 2, 3, 4], D("0.95")) == 4
    assert percentile([D("0.1")], D("0.99")) == D("0.1")
    # 100 values: p95 is the 95th, p99 the 99th, never between two values
    values = list(range(1, 101))
    assert (percentile(values, D("0.95")), percentile(values, D("0.99"))) == (95, 99)


@pytest.mark.parametrize(
    ("detail", "kind"),
    [
        ("book moved past the limit: best ask 0.52 > limit 0.50 at arrival", "book moved past the limit"),
        ("fill-or-kill: only 3 of 10 at or below 0.45 at arrival", "fill-or-kill"),
        ("only 3 of 10 at or below 0.45 at arrival", "thin book"),
        ("no asks at arrival", "no asks at arrival"),
        ("no book at arrival: polymarket unreachable", "no book at arrival"),
        ("something new", "other"),
        ("not sent: the first leg filled nothing", None),
        ("", None),
    ],
)
def test_a_legs_shortfall_is_named_by_its_kind(detail, kind):
    assert miss_kind(detail) == kind


def test_a_missed_trade_names_each_kind_of_its_legs_once_in_a_fixed_order():
    moved = "book moved past the limit: best ask 0.52 > limit 0.50 at arrival"
    both_moved = trade("missed", leg(filled="0", detail=moved), leg("polymarket", filled="0", detail=moved))
    assert missed_reason(both_moved) == "book moved past the limit"
    mixed = trade(
        "missed", leg(filled="0", detail="no asks at arrival"), leg("polymarket", filled="0", detail=moved)
    )
    assert missed_reason(mixed) == "book moved past the limit + no asks at arrival"
    first_then_not_sent = trade(
        "missed",
        leg(filled="0", detail=moved),
        leg("polymarket", filled="0", detail="not sent: the first leg filled nothing", state="not_sent"),
    )
    assert missed_reason(first_then_not_sent) == "book moved past the limit"


def test_legging_is_legs_filling_different_sizes():
    assert is_legging_incident(trade("legged", leg(filled="10"), leg("polymarket", filled="0")))
    assert is_legging_incident(trade("partial", leg(filled="10"), leg("polymarket", filled="4")))
    assert not is_legging_incident(trade("partial", leg(filled="4"), leg("polymarket", filled="4")))
    assert not is_legging_incident(trade("full", leg(), leg("polymarket")))


def test_figures_over_a_mix_of_trades():
    moved = "book moved past the limit: best ask 0.52 > limit 0.50 at arrival"
    trades = [
        trade("full", leg(latency_ms=100), leg("polymarket", latency_ms=300), slippage="0"),
        trade("full", leg(latency_ms=120), leg("polymarket", latency_ms=320), slippage="0.5"),
        trade(
            "partial",
            leg(filled="10", latency_ms=140),
            leg("polymarket", filled="6", latency_ms=340, detail="only 6 of 10 at or below 0.50 at arrival"),
            slippage="2.25",
            unwind_cost="0.1200",
        ),
        trade(
            "partial",
            leg(filled="5", latency_ms=160),
            leg("polymarket", filled="5", latency_ms=360),
            slippage="1",
        ),
        trade(
            "legged",
            leg(filled="0", latency_ms=180, detail=moved),
            leg("polymarket", filled="10", latency_ms=380),
            unwind_cost="0.3050",
        ),
        trade(
            "missed",
            leg(filled="0", latency_ms=200, detail=moved),
            leg("polymarket", filled="0", latency_ms=400, detail="no asks at arrival"),
        ),
        trade(
            "missed",
            leg(filled="0", latency_ms=220, detail=moved),
            leg("polymarket", filled="0", latency_ms=900, detail=moved),
        ),
    ]
    figures = arrival_figures(trades)
    assert figures.trades == 7
    assert figures.outcomes == {"full": 2, "partial": 2, "legged": 1, "missed": 2}
    # slippage over the 4 trades with a realised edge: 0, 0.5, 1, 2.25
    assert (figures.slippage_cents.low, figures.slippage_cents.high) == (D("0.5"), D("2.25"))
    assert figures.slippage_cents.count == 4
    assert figures.legging_incidents == 2  # the uneven partial and the legged trade
    assert figures.unwind_cost_usd == D("0.4250")
    assert figures.missed_reasons == {
        "book moved past the limit": 1,
        "book moved past the limit + no asks at arrival": 1,
    }
    kalshi, polymarket = figures.latency_ms["kalshi"], figures.latency_ms["polymarket"]
    assert (kalshi.low, kalshi.high, kalshi.count) == (160, 220, 7)
    assert (polymarket.low, polymarket.high, polymarket.count) == (360, 900, 7)


def test_a_leg_never_sent_has_no_arrival_latency():
    sequenced = trade(
        "missed",
        leg(filled="0", latency_ms=90, detail="no asks at arrival"),
        leg(
            "polymarket",
            filled="0",
            latency_ms=400,
            state="not_sent",
            detail="not sent: the first leg filled nothing",
        ),
    )
    figures = arrival_figures([sequenced])
    assert figures.latency_ms["kalshi"].count == 1
    assert figures.latency_ms["polymarket"].count == 0
    assert figures.latency_ms["polymarket"].low is None


def test_no_trades_give_zeros_and_no_percentiles():
    figures = arrival_figures([])
    assert figures.outcomes == {"full": 0, "partial": 0, "legged": 0, "missed": 0}
    assert figures.slippage_cents.low is None
    assert figures.unwind_cost_usd == 0
    assert figures.missed_reasons == {}
