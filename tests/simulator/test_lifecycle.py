"""Markets followed to resolution: a pair resolved in the exchange double pays its trades once,
without a command, and the run's JSON (what the page draws) shows the realised P&L; venues that
resolve the question differently flag the pair, its trades and the report."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from exchanges.books import KALSHI, POLYMARKET
from exchanges.double import ExchangeDouble, KalshiMarket, PolymarketBook, Scenario
from exchanges.streams import CLOSED, DETERMINED, LifecycleEvent
from ingest.lifecycle import LifecycleFollower, on_lifecycle_event
from ingest.models import MarketPair
from ingest.sources import LiveHosts
from simulator.engine import arrive_in_order, decide_intent, in_flight_steps
from simulator.models import SimulatorTrade
from simulator.services import start_run
from tests.simulator.conftest import UNCHANGED_BOOKS, ArrivalBooks
from tests.simulator.factories import ExecutionIntentFactory, MarketPairFactory, set_thresholds

pytestmark = pytest.mark.django_db

CONDITION_ID = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def double():
    with ExchangeDouble(Scenario()) as running:
        yield running


@pytest.fixture
def pair(db, double):
    """The pair, listed on both venues of the double (fresh markets for every test)."""
    pair = MarketPairFactory(opportunity_key="NYC-HIGH-50F", poly_condition_id=CONDITION_ID)
    double.state.add_kalshi_market(KalshiMarket(ticker=pair.kalshi_ticker))
    for token, outcome in ((pair.poly_yes_token, "Yes"), (pair.poly_no_token, "No")):
        double.state.add_polymarket_book(PolymarketBook(token_id=token, market=CONDITION_ID, outcome=outcome))
    return pair


@pytest.fixture
def traded(trading_user, pair, book_validator):
    """One arrived trade on the pair (YES on Kalshi + NO on Polymarket) in a run of $1,000."""
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    now = timezone.now() - timedelta(minutes=5)  # inside the report's window
    run, _ = start_run(user=trading_user, starting_usd="1000", now=now)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=now, validator=book_validator)
    assert decision.outcome == "traded", decision.reason
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED_BOOKS))
    return SimulatorTrade.objects.get(pk=decision.trade.pk)


@pytest.fixture
def page(trading_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(trading_user)
    return client


@pytest.fixture
def follower(double) -> LifecycleFollower:
    return LifecycleFollower(hosts=LiveHosts.of_double(double.base_url))


def _run(page, trade) -> dict:
    return page.get(f"/simulator/runs/{trade.run_id}").json()


def _trade(page, trade) -> dict:
    return page.get(f"/simulator/trades/{trade.pk}").json()


def test_a_pair_resolved_in_the_double_pays_its_trades_once_and_the_page_shows_it(
    traded, pair, double, follower, page
):
    MarketPairFactory(opportunity_key="NOT-TRADED", kalshi_close_time=timezone.now() + timedelta(days=3))
    before = _run(page, traded)
    cost, matched = traded.cost_usd, traded.matched_size

    # Open, then closed: nothing to pay. Only the traded pair is asked about (one call a venue).
    assert follower.poll().calls == 2
    double.state.set_kalshi_status(pair.kalshi_ticker, "closed")
    assert follower.poll().paid == []
    assert _run(page, traded)["realised_pnl_usd"] == "0.0000"

    double.state.set_kalshi_status(pair.kalshi_ticker, "determined", "yes")
    double.state.set_polymarket_resolved(pair.poly_yes_token)
    paid = follower.poll().paid
    assert [(p["opportunity_key"], p["trades"]) for p in paid] == [(pair.opportunity_key, 1)]

    run = _run(page, traded)
    assert Decimal(run["realised_pnl_usd"]) == Decimal(run["pnl_usd"]) == matched - cost
    assert Decimal(run["balance_usd"]) == Decimal(before["balance_usd"]) + matched
    trade = _trade(page, traded)
    assert Decimal(trade["payout_usd"]) == matched  # the Kalshi YES leg won, the Polymarket NO lost
    assert Decimal(trade["realised_pnl_usd"]) == matched - cost
    assert trade["resolved_at"] is not None and trade["resolution_disagreement"] is False
    points = page.get(f"/simulator/runs/{traded.run_id}/equity").json()["points"]
    assert [(p["event"], Decimal(p["realised_pnl_usd"])) for p in points] == [
        ("arrived", Decimal(0)),
        ("resolved", matched - cost),
    ]
    assert Decimal(points[-1]["balance_usd"]) == Decimal("1000") - cost + matched
    pairs = {p["opportunity_key"]: p for p in page.get("/simulator/pairs").json()["results"]}
    assert (pairs[pair.opportunity_key]["kalshi_result"], pairs[pair.opportunity_key]["poly_result"]) == (
        "yes",
        "yes",
    )

    # Again, from a new process (a fresh follower), and from the streams: nothing moves.
    again = LifecycleFollower(hosts=LiveHosts.of_double(double.base_url)).poll()
    assert (again.calls, again.paid) == (0, [])
    for event in (
        LifecycleEvent(KALSHI, pair.kalshi_ticker, DETERMINED, "yes"),
        LifecycleEvent(POLYMARKET, pair.poly_yes_token, DETERMINED, "yes"),
    ):
        assert on_lifecycle_event(event) == []
    assert _run(page, traded) == run


def test_venues_resolving_differently_flag_the_pair_its_trades_and_the_report(traded, pair, page, capsys):
    # Stream events: Kalshi resolves NO, Polymarket's YES token wins; a closed event says nothing.
    assert on_lifecycle_event(LifecycleEvent(POLYMARKET, pair.poly_yes_token, CLOSED, None)) == []
    assert on_lifecycle_event(LifecycleEvent(KALSHI, pair.kalshi_ticker, DETERMINED, "no")) == []
    paid = on_lifecycle_event(LifecycleEvent(POLYMARKET, pair.poly_no_token, DETERMINED, "no"))
    assert [(p["trades"], p["resolution_disagreement"]) for p in paid] == [(1, True)]

    assert MarketPair.objects.get(pk=pair.pk).resolution_disagreement
    trade = _trade(page, traded)
    assert trade["resolution_disagreement"] is True
    assert Decimal(trade["payout_usd"]) == 0  # both legs lost: Kalshi YES, Polymarket NO
    realised, expected = -traded.cost_usd, traded.expected_pnl_usd

    report = page.get("/simulator/report", {"hours": 24, "min_edge_cents": 0}).json()
    assert report["resolution_disagreements"] == 1
    assert report["resolution_disagreement_trades"] == 1
    assert Decimal(report["resolution_disagreement_pnl_usd"]) == realised
    assert Decimal(report["resolution_disagreement_cost_usd"]) == expected - realised
    assert Decimal(report["realised_pnl_usd"]) == realised

    call_command("sim_report", "--user", traded.user.username, "--min-edge-cents", "0")
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split("  ")[0]: line.rstrip().split("  ")[-1].strip() for line in lines}
    assert rows["resolution disagreements"] == "1 pairs (1 trades)"
    assert rows["disagreement cost"] == f"${expected - realised}"


def test_a_pair_resolved_by_hand_is_not_paid_again_when_the_venues_resolve(
    traded, pair, double, follower, page
):
    call_command("sim_resolve", "--key", pair.opportunity_key, "--kalshi", "yes", "--polymarket", "yes")
    by_hand = _run(page, traded)
    assert Decimal(by_hand["realised_pnl_usd"]) == traded.matched_size - traded.cost_usd

    double.state.set_kalshi_status(pair.kalshi_ticker, "finalized", "yes")
    double.state.set_polymarket_resolved(pair.poly_yes_token)
    summary = follower.poll()
    assert (summary.pairs, summary.paid) == (0, [])  # paid and nothing open: not even asked
    assert on_lifecycle_event(LifecycleEvent(KALSHI, pair.kalshi_ticker, DETERMINED, "yes")) == []
    assert _run(page, traded) == by_hand


def test_a_correction_by_hand_pays_the_trades_again_by_the_difference_and_the_venues_cannot_undo_it(
    traded, pair, double, follower, page
):
    double.state.set_kalshi_status(pair.kalshi_ticker, "finalized", "yes")
    double.state.set_polymarket_resolved(pair.poly_yes_token)
    follower.poll()
    paid = _trade(page, traded)
    assert (paid["resolution_disagreement"], Decimal(paid["payout_usd"])) == (False, traded.matched_size)
    before = _run(page, traded)

    # The Polymarket result was wrong: its NO token won. Both of this trade's legs win now.
    call_command("sim_resolve", "--key", pair.opportunity_key, "--kalshi", "yes", "--polymarket", "no")
    corrected = _trade(page, traded)
    both_legs = sum(
        Decimal(leg["filled_size"]) - Decimal(leg["unhedged_size"]) + Decimal(leg["carried_size"])
        for leg in corrected["legs"]
    )  # every contract held
    assert both_legs > traded.matched_size
    assert Decimal(corrected["payout_usd"]) == both_legs
    assert corrected["resolution_disagreement"] is True
    run = _run(page, traded)
    assert Decimal(run["realised_pnl_usd"]) == both_legs - traded.cost_usd
    assert Decimal(run["balance_usd"]) - Decimal(before["balance_usd"]) == both_legs - traded.matched_size

    # The venues' own word, heard again, does not undo the correction.
    assert on_lifecycle_event(LifecycleEvent(POLYMARKET, pair.poly_yes_token, DETERMINED, "yes")) == []
    follower.poll()
    assert _run(page, traded) == run


def test_a_trade_still_on_its_way_when_the_pair_resolves_is_paid_by_the_next_pass(
    trading_user, pair, double, follower, book_validator, page
):
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    now = timezone.now() - timedelta(minutes=5)
    run, _ = start_run(user=trading_user, starting_usd="1000", now=now)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=now, validator=book_validator)
    double.state.set_kalshi_status(pair.kalshi_ticker, "determined", "no")
    double.state.set_polymarket_resolved(pair.poly_no_token)

    first = follower.poll().paid
    assert [(p["trades"], p["in_flight"]) for p in first] == [(0, 1)]  # what it holds is not known yet
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED_BOOKS))
    trade = SimulatorTrade.objects.get(pk=decision.trade.pk)
    assert [(p["trades"], p["in_flight"]) for p in follower.poll().paid] == [(1, 0)]
    assert Decimal(_trade(page, trade)["payout_usd"]) == trade.matched_size  # Polymarket's NO leg won
    assert follower.poll().paid == []
