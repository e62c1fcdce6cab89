"""What a trade says about its orders' arrival, and what a run holds unhedged, through the API."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.simulator.surface_fixtures import MOVED, leg_order_json, make_legged_trade, make_run, make_trade

pytestmark = pytest.mark.django_db

ARRIVAL_FIELDS = {
    "order_size", "reserved_usd", "arrival_outcome", "signal_edge_cents", "realised_edge_cents",
    "slippage_cents", "unwind_cost_usd", "carried_mark_usd",
}  # fmt: skip
LEG_FIELDS = {
    "venue", "instrument_id", "side", "limit_price", "order_type", "size", "state", "latency_ms",
    "unwind_latency_ms", "sent_at", "arrived_at", "book", "book_available", "arrival_book",
    "arrival_available", "arrival_book_ts_ms", "arrival_best_bid", "fills", "filled_size",
    "avg_fill_price", "fee_usd", "detail", "unhedged_size", "carried_size", "carried_mark_usd", "unwind",
}  # fmt: skip


def in_flight_trade(run, decided_at):
    """Both orders sent at `decided_at`, neither arrived: nothing filled yet."""
    legs = [
        leg_order_json(venue="kalshi", decided_at=decided_at, latency_ms=120, arrival_book=None),
        leg_order_json(
            venue="polymarket",
            side="no",
            limit_price="0.51",
            decided_at=decided_at,
            latency_ms=400,
            arrival_book=None,
        ),
    ]
    return make_trade(
        run,
        executed_at=decided_at + timedelta(milliseconds=400),
        decided_at=decided_at,
        arrival_outcome="",
        matched_size=Decimal("0"),
        fill_pct=Decimal("0"),
        cost_usd=Decimal("0"),
        fees_usd=Decimal("0"),
        expected_pnl_usd=Decimal("0"),
        realised_edge_cents=None,
        slippage_cents=None,
        legs=legs,
    )


def carried_trade(run, *, carried="4", mark="1.7200", **fields):
    """Kalshi filled 10, Polymarket 6: 6 hedged, Kalshi's 4 extra carried at the mid."""
    legs = [
        leg_order_json(
            venue="kalshi",
            fills=[("0.44", "10")],
            unhedged_size=carried,
            carried_size=carried,
            carried_mark_usd=mark,
        ),
        leg_order_json(
            venue="polymarket",
            side="no",
            limit_price="0.51",
            arrival_book=[("0.50", "6")],
            fills=[("0.50", "6")],
            detail="only 6 of 10 at or below 0.51 at arrival",
        ),
    ]
    values = {"arrival_outcome": "partial", "matched_size": Decimal("6"), "carried_mark_usd": Decimal(mark)}
    values.update(fields)
    return make_trade(run, legs=legs, **values)


def test_a_trade_in_flight_is_queued_with_no_outcome_whatever_the_clock(api, user):
    decided_at = timezone.now() - timedelta(minutes=5)  # its executed_at has passed, yet nothing arrived
    trade = in_flight_trade(make_run(user), decided_at)
    body = api.get(f"/simulator/trades/{trade.pk}").json()
    assert set(body) >= ARRIVAL_FIELDS
    assert body["status"] == "queued"
    assert body["arrival_outcome"] is None
    assert body["realised_edge_cents"] is None and body["slippage_cents"] is None
    assert body["order_size"] == "10.00"
    assert body["reserved_usd"] == "9.6700"
    kalshi, polymarket = body["legs"]
    assert set(kalshi) == LEG_FIELDS
    assert kalshi["state"] == "sent"
    assert kalshi["arrival_book"] is None and kalshi["fills"] == [] and kalshi["avg_fill_price"] is None
    assert polymarket["sent_at"] == decided_at.isoformat().replace("+00:00", "Z")


def test_a_legged_trade_shows_both_books_the_fills_and_the_unwind(api, user):
    trade = make_legged_trade(make_run(user), timezone.now() - timedelta(seconds=1))
    body = api.get(f"/simulator/trades/{trade.pk}").json()
    assert body["status"] == "executed"
    assert body["arrival_outcome"] == "legged"
    assert body["matched_size"] == "0.00"
    assert (body["signal_edge_cents"], body["realised_edge_cents"], body["slippage_cents"]) == (
        "4.5000",
        None,
        None,
    )
    assert body["unwind_cost_usd"] == "0.5900"
    kalshi, polymarket = body["legs"]
    assert kalshi["book"] == [{"price": "0.44", "size": "30"}]
    assert kalshi["arrival_book"] == [{"price": "0.44", "size": "12"}, {"price": "0.45", "size": "20"}]
    assert kalshi["arrival_available"][0] == {"price": "0.44", "size": "10"}
    assert (kalshi["filled_size"], kalshi["avg_fill_price"], kalshi["unhedged_size"]) == (
        "10",
        "0.4400",
        "10",
    )
    unwind = kalshi["unwind"]
    assert unwind["book"] == [{"price": "0.42", "size": "6"}, {"price": "0.41", "size": "10"}]
    assert unwind["fills"] == [{"price": "0.42", "size": "6"}, {"price": "0.41", "size": "4"}]
    assert (unwind["proceeds_usd"], unwind["fee_usd"]) == ("4.16", "0.17")
    assert polymarket["fills"] == [] and polymarket["avg_fill_price"] is None
    assert polymarket["detail"] == MOVED
    # cost = legs (price x size + fee) - unwinds (proceeds - fee)
    legs_cost = Decimal("0.44") * 10 + Decimal(kalshi["fee_usd"])
    assert legs_cost - (Decimal(unwind["proceeds_usd"]) - Decimal(unwind["fee_usd"])) == Decimal(
        body["cost_usd"]
    )


def test_a_completed_trade_is_executed_then_settled_by_the_clock(api, user):
    trade = make_trade(make_run(user), executed_at=timezone.now() - timedelta(minutes=5))
    body = api.get(f"/simulator/trades/{trade.pk}").json()
    assert (body["status"], body["arrival_outcome"]) == ("settled", "full")
    assert (body["signal_edge_cents"], body["realised_edge_cents"], body["slippage_cents"]) == (
        "4.5000",
        "4.5000",
        "0.0000",
    )


def test_a_run_shows_what_it_holds_reserved_and_unhedged(api, user):
    run = make_run(
        user,
        reserved_usd=Decimal("19.3400"),
        unhedged_exposure_usd=Decimal("2.6000"),
        unhedged_contracts=Decimal("6"),
    )
    body = api.get(f"/simulator/runs/{run.pk}").json()
    assert body["reserved_usd"] == "19.3400"
    assert (body["unhedged_exposure_usd"], body["unhedged_contracts"]) == ("2.6000", "6.00")
    listed = api.get("/simulator/runs").json()["results"]
    assert [(r["id"], r["unhedged_exposure_usd"], r["unhedged_contracts"]) for r in listed] == [
        (run.pk, "2.6000", "6.00")
    ]
    status = api.get("/simulator/status").json()
    assert status["runs"][0]["unhedged_contracts"] == "6.00"


def test_a_user_sees_only_their_own_exposure(api, user, other_user):
    mine = make_run(user, unhedged_exposure_usd=Decimal("0.43"), unhedged_contracts=Decimal("1"))
    theirs = make_run(other_user, unhedged_exposure_usd=Decimal("3.01"), unhedged_contracts=Decimal("7"))
    runs = api.get("/simulator/runs").json()["results"]
    assert [(r["id"], r["unhedged_exposure_usd"], r["unhedged_contracts"]) for r in runs] == [
        (mine.pk, "0.4300", "1.00")
    ]
    assert api.get(f"/simulator/runs/{theirs.pk}").status_code == 404
    assert api.get("/simulator/active").json()["runs"][0]["unhedged_exposure_usd"] == "0.4300"
