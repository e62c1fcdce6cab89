"""Execution and settlement times from the latency model, and a status derived from the clock."""

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET
from simulator.core import LatencyModel, SettlementDelayModel, TimingConfig, trade_status
from simulator.core.timing import draw_order_timing, settled_after
from tests.simulator import NOW

D = Decimal
FIXED = TimingConfig(
    latency={
        KALSHI: LatencyModel(median_ms=120, sigma=0.0),
        POLYMARKET: LatencyModel(median_ms=250, sigma=0.0),
    },
    settlement={
        KALSHI: SettlementDelayModel(min_s=D("1.5"), max_s=D("1.5")),
        POLYMARKET: SettlementDelayModel(min_s=D("6"), max_s=D("6")),
    },
)


def test_each_leg_draws_its_order_and_unwind_latency_and_the_slower_venue_sets_the_settlement():
    timing = draw_order_timing([KALSHI, POLYMARKET], random.Random(1), FIXED)
    assert timing.latencies_ms == (120, 250)
    assert timing.unwind_latencies_ms == (120, 250)
    assert timing.settlement_delay_s == D("6.000")
    assert settled_after(NOW + timedelta(milliseconds=250), timing.settlement_delay_s) == NOW + timedelta(
        milliseconds=6_250
    )


def test_latencies_are_per_leg_in_the_legs_order():
    timing = draw_order_timing([POLYMARKET, KALSHI, KALSHI], random.Random(1), FIXED)
    assert timing.latencies_ms == (250, 120, 120)
    assert len(timing.unwind_latencies_ms) == 3


def test_draws_come_leg_by_leg_order_then_unwind_then_settlement():
    # A fixed draw order keeps a seeded run reproducible: replay it by hand on the same seed.
    config = TimingConfig()
    timing = draw_order_timing([KALSHI, POLYMARKET], random.Random(4), config)
    rng = random.Random(4)
    expected = []
    for venue in (KALSHI, POLYMARKET):
        expected.append((config.latency[venue].draw_ms(rng), config.latency[venue].draw_ms(rng)))
        expected.append(config.settlement[venue].draw_s(rng))
    assert timing.latencies_ms == (expected[0][0], expected[2][0])
    assert timing.unwind_latencies_ms == (expected[0][1], expected[2][1])
    assert timing.settlement_delay_s == max(expected[1], expected[3])
    assert timing.latencies_ms != timing.unwind_latencies_ms  # an unwind's latency is a draw of its own


def test_status_follows_the_injected_clock():
    executed_at = NOW + timedelta(milliseconds=250)
    settled_at = executed_at + timedelta(seconds=6)
    assert trade_status(NOW, executed_at, settled_at) == "queued"
    assert trade_status(executed_at - timedelta(microseconds=1), executed_at, settled_at) == "queued"
    assert trade_status(executed_at, executed_at, settled_at) == "executed"
    assert trade_status(settled_at - timedelta(microseconds=1), executed_at, settled_at) == "executed"
    assert trade_status(settled_at, executed_at, settled_at) == "settled"
    assert trade_status(settled_at + timedelta(days=3), executed_at, settled_at) == "settled"
    # An order still on its way keeps the trade queued past its expected execution.
    assert trade_status(settled_at + timedelta(days=3), executed_at, settled_at, arrived=False) == "queued"


def test_latency_draws_stay_within_bounds():
    model = LatencyModel(median_ms=120, sigma=3.0, min_ms=30, max_ms=2_000)
    rng = random.Random(5)
    draws = [model.draw_ms(rng) for _ in range(2_000)]
    assert min(draws) == 30 and max(draws) == 2_000  # so wide a spread hits both bounds


def test_default_models_give_kalshi_faster_than_polymarket_and_on_chain_settlement_later():
    rng = random.Random(11)
    config = TimingConfig()
    kalshi = sorted(config.latency[KALSHI].draw_ms(rng) for _ in range(501))
    polymarket = sorted(config.latency[POLYMARKET].draw_ms(rng) for _ in range(501))
    assert 100 <= kalshi[250] <= 140 and 210 <= polymarket[250] <= 290  # medians ~120 and ~250 ms
    delays = [config.settlement[POLYMARKET].draw_s(rng) for _ in range(200)]
    assert all(D(2) <= delay <= D(10) for delay in delays)
    assert all(D(0) <= config.settlement[KALSHI].draw_s(rng) <= D(2) for _ in range(200))


def test_the_same_seed_gives_the_same_times():
    one = draw_order_timing([KALSHI, POLYMARKET], random.Random(3), TimingConfig())
    two = draw_order_timing([KALSHI, POLYMARKET], random.Random(3), TimingConfig())
    assert one == two


def test_naive_datetimes_are_refused():
    naive = datetime(2025, 11, 25, 15, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        trade_status(naive, NOW, NOW)


def test_a_venue_without_a_model_is_refused():
    with pytest.raises(ValueError, match="no timing model"):
        draw_order_timing(["betfair"], random.Random(1), FIXED)
    with pytest.raises(ValueError, match="at least one leg"):
        draw_order_timing([], random.Random(1), FIXED)


def test_bad_models_are_refused():
    with pytest.raises(ValueError):
        LatencyModel(median_ms=10, min_ms=20)
    with pytest.raises(ValueError):
        SettlementDelayModel(min_s=D(3), max_s=D(2))


def test_timing_config_round_trips_json_and_fills_gaps_with_defaults():
    assert TimingConfig.from_json(FIXED.as_json()) == FIXED
    partial = TimingConfig.from_json({"latency": {KALSHI: {"median_ms": 80}}})
    assert partial.latency[KALSHI].median_ms == 80
    assert partial.settlement == TimingConfig().settlement
