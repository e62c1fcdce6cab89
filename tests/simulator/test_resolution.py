"""A pair's markets resolve: its trades are paid out once, and their runs' balance and realised
P&L move by exactly what the legs paid."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from config.errors import NotFoundError
from simulator.engine import arrive_in_order, decide_intent, in_flight_steps
from simulator.models import SimulatorRun, SimulatorTrade
from simulator.services import resolve_pair, start_run, stop_run
from tests.simulator.conftest import UNCHANGED_BOOKS, ArrivalBooks
from tests.simulator.factories import NOW, ExecutionIntentFactory, set_thresholds

pytestmark = pytest.mark.django_db


@pytest.fixture
def traded(trading_user, pair, book_validator):
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    run, _ = start_run(user=trading_user, starting_usd="1000", now=NOW)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert decision.outcome == "traded", decision.reason
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED_BOOKS))
    return SimulatorRun.objects.get(pk=run.pk), SimulatorTrade.objects.get(pk=decision.trade.pk)


def test_venues_agreeing_pay_the_matched_size_and_realise_the_expected_pnl(traded, pair):
    run, trade = traded
    summary = resolve_pair(opportunity_key=pair.opportunity_key, kalshi="yes", polymarket="yes")

    trade.refresh_from_db()
    assert trade.payout_usd == trade.matched_size  # one leg wins, $1 per contract
    assert trade.resolved_at is not None
    after = SimulatorRun.objects.get(pk=run.pk)
    assert after.balance_usd == run.balance_usd + trade.matched_size
    assert after.pnl_usd == trade.matched_size - trade.cost_usd == trade.expected_pnl_usd
    assert after.balance_usd == Decimal("1000") + after.pnl_usd  # nothing else is open
    assert summary == {
        "trades": 1,
        "runs": 1,
        "payout_usd": trade.matched_size,
        "pnl_usd": after.pnl_usd,
        "in_flight": 0,
        "corrected": 0,
        "resolution_disagreement": False,
    }


def test_venues_disagreeing_against_the_pair_pay_nothing(traded, pair):
    run, trade = traded
    legs = {leg["venue"]: leg["side"] for leg in trade.legs}
    against = {venue: "no" if side == "yes" else "yes" for venue, side in legs.items()}
    resolve_pair(opportunity_key=pair.opportunity_key, **against)
    after = SimulatorRun.objects.get(pk=run.pk)
    assert after.pnl_usd == -trade.cost_usd
    assert after.balance_usd == run.balance_usd


def test_resolving_twice_pays_once_even_for_a_stopped_run(traded, pair, trading_user):
    run, trade = traded
    stop_run(user=trading_user, run_id=run.pk)
    resolve_pair(opportunity_key=pair.opportunity_key, kalshi="no", polymarket="no")
    once = SimulatorRun.objects.get(pk=run.pk)
    assert once.pnl_usd == trade.matched_size - trade.cost_usd
    assert resolve_pair(opportunity_key=pair.opportunity_key, kalshi="no", polymarket="no")["trades"] == 0
    again = SimulatorRun.objects.get(pk=run.pk)
    assert (again.balance_usd, again.pnl_usd) == (once.balance_usd, once.pnl_usd)


def test_bad_results_and_unknown_pairs_are_refused_and_change_nothing(traded, pair):
    run, _ = traded
    with pytest.raises(ValidationError) as bad:
        resolve_pair(opportunity_key=pair.opportunity_key, kalshi="maybe", polymarket="yes")
    assert bad.value.message_dict == {"kalshi": ["must be one of yes, no"]}
    with pytest.raises(NotFoundError, match="no market pair"):
        resolve_pair(opportunity_key="NO-SUCH-KEY", kalshi="yes", polymarket="yes")
    assert SimulatorRun.objects.get(pk=run.pk).pnl_usd == 0


def test_the_command_says_what_it_paid_and_names_a_bad_argument(traded, pair, capsys):
    _, trade = traded
    with pytest.raises(CommandError, match="polymarket: must be one of yes, no"):
        call_command("sim_resolve", "--key", pair.opportunity_key, "--kalshi", "yes", "--polymarket", "x")
    call_command("sim_resolve", "--key", pair.opportunity_key, "--kalshi", "yes", "--polymarket", "yes")
    assert capsys.readouterr().out == (
        f"resolved 1 trades in 1 runs: paid ${trade.matched_size:.4f},"
        f" realised P&L ${trade.matched_size - trade.cost_usd:.4f}\n"
    )
