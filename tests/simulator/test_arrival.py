"""The arrival phase through the engine: each order fills against the book standing when it
arrives, the excess is unwound or carried, the held money is released exactly, each step happens
once, and a recording replayed twice with the same seed gives the same trades byte for byte."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command

from ingest.models import ExecutionIntent, SuccessSpan
from simulator import presenters, recorded_clock
from simulator.core import ExecutionConfig, SimConfig
from simulator.engine import arrive, arrive_in_order, arrive_step, decide_intent, in_flight_steps
from simulator.engine.recorded import RecordedBooks
from simulator.intake import redispatch_overdue_arrivals
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.recorded_clock import RecordedClock
from simulator.services import resolve_pair, start_run, stop_run
from simulator.tasks import arrive_task
from tests.simulator.conftest import UNCHANGED_BOOKS, ArrivalBooks
from tests.simulator.factories import NOW, ExecutionIntentFactory, set_thresholds

pytestmark = pytest.mark.django_db
D = Decimal
NO_COMPETITION = {"share_min": "0", "share_max": "0", "marginal_share_min": "0", "marginal_share_max": "0"}


UNCHANGED = UNCHANGED_BOOKS


def start(user, **execution) -> SimulatorRun:
    run, _ = start_run(user=user, starting_usd="1000", now=NOW)
    config = SimConfig(execution=ExecutionConfig(**execution)).as_json()
    config["execution"]["competition"] = NO_COMPETITION
    SimulatorRun.objects.filter(pk=run.pk).update(sim_config=config)
    return SimulatorRun.objects.get(pk=run.pk)


def decide_and_arrive(user, run, validator, books) -> SimulatorTrade:
    intent = ExecutionIntentFactory(user=user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=validator)
    assert decision.outcome == "traded", decision.reason
    queued = SimulatorTrade.objects.get(decision=decision)
    assert queued.arrival_outcome == "" and queued.matched_size == 0
    arrive_in_order(in_flight_steps(decision), books=books)
    return SimulatorTrade.objects.get(pk=queued.pk)


def money_is_exact(run_id: int) -> None:
    """Balance and held money re-computed from the trades."""
    run = SimulatorRun.objects.get(pk=run_id)
    trades = list(SimulatorTrade.objects.filter(run_id=run_id))
    done = [t for t in trades if t.arrival_outcome]
    held = sum((t.reserved_usd for t in trades if not t.arrival_outcome), D(0))
    assert run.reserved_usd == held
    assert run.balance_usd == run.starting_usd - sum((t.cost_usd for t in done), D(0)) - held
    assert run.expected_pnl_usd == sum((t.expected_pnl_usd for t in done), D(0))


def test_a_decision_holds_the_worst_case_and_the_arrival_releases_what_was_not_spent(
    trading_user, book_validator
):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    queued = SimulatorTrade.objects.get(decision=decision)
    held = SimulatorRun.objects.get(pk=run.pk)
    assert queued.reserved_usd > D("9.50")  # every contract at its limit, plus the largest fee
    assert held.reserved_usd == queued.reserved_usd
    assert held.balance_usd == D(1000) - queued.reserved_usd
    assert held.traded_today_usd == queued.reserved_usd
    assert [leg["state"] for leg in queued.legs] == ["sent", "sent"]
    money_is_exact(run.pk)

    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED))
    trade = SimulatorTrade.objects.get(pk=queued.pk)
    run = SimulatorRun.objects.get(pk=run.pk)
    assert trade.arrival_outcome == "full" and trade.matched_size == 10
    assert (trade.cost_usd, trade.expected_pnl_usd) == (D("9.68"), D("0.32"))
    assert run.reserved_usd == 0 and run.traded_today_usd == D("9.68")
    assert trade.realised_edge_cents == D("3.2") and trade.slippage_cents == D("0")
    money_is_exact(run.pk)


def test_a_price_that_jumped_past_the_limit_legs_the_trade_and_the_filled_leg_is_unwound(
    trading_user, book_validator
):
    run = start(trading_user)
    books = ArrivalBooks(
        kalshi=([("0.45", "10")], [("0.43", "4"), ("0.41", "20")]),
        polymarket=([("0.53", "10")], [("0.52", "50")]),  # the ask jumped 3 cents above the limit
    )
    trade = decide_and_arrive(trading_user, run, book_validator, books)
    kalshi, poly = trade.legs
    assert trade.arrival_outcome == "legged" and trade.matched_size == 0
    assert D(poly["filled_size"]) == 0 and "moved past the limit" in poly["detail"]
    assert D(kalshi["filled_size"]) == 10 and D(kalshi["unhedged_size"]) == 10
    unwind = kalshi["unwind"]
    assert [(D(f["price"]), D(f["size"])) for f in unwind["fills"]] == [(D("0.43"), 4), (D("0.41"), 6)]
    assert D(unwind["proceeds_usd"]) == D("4") * D("0.43") + D("6") * D("0.41")
    # What the legs cost less what the unwind brought back: a loss, the trade's whole P&L.
    assert trade.cost_usd == D("4.5") + D(kalshi["fee_usd"]) - (
        D(unwind["proceeds_usd"]) - D(unwind["fee_usd"])
    )
    assert trade.expected_pnl_usd == -trade.cost_usd and trade.unwind_cost_usd == trade.cost_usd
    assert trade.realised_edge_cents is None and trade.slippage_cents is None
    timeline = [
        datetime.fromisoformat(moment)
        for moment in (kalshi["sent_at"], kalshi["arrived_at"], unwind["sent_at"], unwind["arrived_at"])
    ]
    assert timeline == sorted(timeline) and timeline[0] < timeline[1] < timeline[3]
    last_fill = max(datetime.fromisoformat(kalshi["arrived_at"]), datetime.fromisoformat(poly["arrived_at"]))
    assert timeline[2] == last_fill
    assert sorted(venue for venue, _ in books.reads[:2]) == ["kalshi", "polymarket"]
    assert books.reads[2] == ("kalshi", timeline[3])  # the unwind reads the bids at its arrival
    money_is_exact(run.pk)


def test_no_leg_filled_is_a_missed_trade_whose_decision_says_why(trading_user, book_validator):
    run = start(trading_user)
    books = ArrivalBooks(kalshi=([("0.47", "10")], []), polymarket=([], []))
    trade = decide_and_arrive(trading_user, run, book_validator, books)
    assert trade.arrival_outcome == "missed" and trade.cost_usd == 0 and trade.expected_pnl_usd == 0
    assert trade.decision.outcome == "traded" and trade.decision.reason_code == "arrival"
    assert "moved past the limit" in trade.decision.reason and "no asks at arrival" in trade.decision.reason
    run = SimulatorRun.objects.get(pk=run.pk)
    assert run.balance_usd == D(1000) and run.traded_today_usd == 0
    money_is_exact(run.pk)


def test_a_thin_book_gives_a_partial_and_carry_keeps_the_excess_marked_at_the_mid(
    trading_user, book_validator
):
    run = start(trading_user, unhedged="carry")
    books = ArrivalBooks(
        kalshi=([("0.45", "6"), ("0.46", "9")], [("0.41", "9")]),
        polymarket=([("0.50", "10")], [("0.48", "9")]),
    )
    trade = decide_and_arrive(trading_user, run, book_validator, books)
    _, poly = trade.legs
    assert trade.arrival_outcome == "partial" and trade.matched_size == 6
    assert D(poly["carried_size"]) == 4 and poly["unwind"] is None
    assert D(poly["carried_mark_usd"]) == D(4) * (D("0.50") + D("0.48")) / 2
    assert trade.expected_pnl_usd == 6 - trade.cost_usd + D(poly["carried_mark_usd"])
    money_is_exact(run.pk)
    held = SimulatorRun.objects.get(pk=run.pk)
    assert (held.unhedged_contracts, held.unhedged_exposure_usd) == (4, D(poly["carried_mark_usd"]))
    # The pair resolves: the carried NO contracts pay too (NO won on Polymarket), and the run
    # holds nothing unhedged any more.
    resolve_pair(opportunity_key=trade.opportunity_key, kalshi="no", polymarket="no")
    trade.refresh_from_db()
    assert trade.payout_usd == 10  # the 6 hedged and the 4 carried NO contracts
    resolved = SimulatorRun.objects.get(pk=run.pk)
    assert (resolved.unhedged_contracts, resolved.unhedged_exposure_usd) == (0, 0)
    assert resolved.pnl_usd == 10 - trade.cost_usd


def test_fill_or_kill_takes_nothing_from_a_book_that_cannot_fill_it_whole(trading_user, book_validator):
    run = start(trading_user, kalshi_order_type="fok")
    books = ArrivalBooks(
        kalshi=([("0.45", "9")], [("0.44", "50")]), **{"polymarket": UNCHANGED["polymarket"]}
    )
    trade = decide_and_arrive(trading_user, run, book_validator, books)
    kalshi, poly = trade.legs
    assert D(kalshi["filled_size"]) == 0 and "fill-or-kill" in kalshi["detail"]
    assert trade.arrival_outcome == "legged" and D(poly["unwind"]["size"]) == 10


def test_one_venue_first_sends_the_other_leg_at_its_fill_sized_to_it(trading_user, book_validator):
    run = start(trading_user, sequencing="kalshi_first")
    books = ArrivalBooks(kalshi=([("0.45", "7")], [("0.44", "50")]), polymarket=UNCHANGED["polymarket"])
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    steps = in_flight_steps(decision)
    assert [step.step for step in steps] == ["leg:0"]  # the Polymarket order waits
    arrive_in_order(steps, books=books)
    trade = SimulatorTrade.objects.get(decision=decision)
    kalshi, poly = trade.legs
    assert poly["sent_at"] == kalshi["arrived_at"] and D(poly["size"]) == 7
    assert trade.arrival_outcome == "partial" and trade.matched_size == 7 and kalshi["unwind"] is None
    money_is_exact(run.pk)


def test_a_retried_step_whose_commit_reply_was_lost_sends_the_leg_it_made_due(trading_user, book_validator):
    """The COMMIT went through but its reply was lost: the retry finds the step done and still
    hands back the waiting leg it sent, which otherwise would wait for the overdue sweep."""
    run = start(trading_user, sequencing="kalshi_first")
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    (first,) = in_flight_steps(decision)
    books = ArrivalBooks(**UNCHANGED)
    sent = arrive_step(first, books).next_steps
    assert [step.step for step in sent] == ["leg:1"]
    retried = arrive_step(first, books)  # the retry after the lost reply
    assert not retried.done_now and retried.next_steps == sent
    by_name = arrive(trade_id=first.trade_id, step=first.step, books=books)
    assert not by_name.done_now and by_name.next_steps == sent
    assert arrive_in_order(retried.next_steps, books=books) == 1
    assert arrive_step(first, books).next_steps == []  # nothing left on its way
    assert SimulatorTrade.objects.get(pk=first.trade_id).arrival_outcome == "full"
    money_is_exact(run.pk)


def test_each_step_happens_once_whatever_the_deliveries(trading_user, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    first, second = in_flight_steps(decision)
    books = ArrivalBooks(**UNCHANGED)
    assert arrive_step(first, books).done_now
    assert not arrive_step(first, books).done_now  # a redelivery
    # A step known by its name only (the trade's orders read first) is done once too.
    assert arrive(trade_id=second.trade_id, step=second.step, books=books).done_now
    assert not arrive(trade_id=second.trade_id, step=second.step, books=books).done_now
    assert arrive_in_order(in_flight_steps(decision), books=books) == 0
    trade = SimulatorTrade.objects.get(pk=first.trade_id)
    assert trade.arrival_outcome == "full" and trade.cost_usd == D("9.68")
    money_is_exact(run.pk)


def test_a_task_queued_with_the_trade_and_step_name_only_still_arrives_once(trading_user, book_validator):
    """A broker may still hold arrival tasks sent before steps carried their order."""
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    first, second = in_flight_steps(decision)
    at_decision = [ArrivalBooks(**UNCHANGED)(trading_user.pk, step, NOW)[0] for step in (first, second)]
    with recorded_clock.running(RecordedClock(RecordedBooks(at_decision))):
        assert arrive_task(first.trade_id, first.step) == "in_flight"
        assert arrive_task(first.trade_id, first.step) == "in_flight"  # a redelivery
        assert arrive_task(*second.task_args()) == "full"
        assert arrive_task(*second.task_args()) == "full"
    trade = SimulatorTrade.objects.get(pk=first.trade_id)
    assert [D(leg["filled_size"]) for leg in trade.legs] == [10, 10]
    money_is_exact(run.pk)


def test_a_run_stopped_while_orders_are_in_flight_lets_them_complete(trading_user, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    stop_run(user=trading_user, run_id=run.pk)
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED))
    trade = SimulatorTrade.objects.get(decision=decision)
    assert trade.arrival_outcome == "full"
    assert SimulatorRun.objects.get(pk=run.pk).status == "stopped"
    money_is_exact(run.pk)


def test_the_sweep_sends_again_an_arrival_whose_task_was_lost(trading_user, book_validator, eager_tasks):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    # Nobody scheduled its arrivals (a worker killed between the commit and the scheduling).
    assert redispatch_overdue_arrivals(now=NOW + timedelta(seconds=2)) == 0  # not late yet
    assert redispatch_overdue_arrivals(now=NOW + timedelta(seconds=30)) == 2
    trade = SimulatorTrade.objects.get(decision=decision)
    assert trade.arrival_outcome != ""  # arrived (nothing answers at the user's venue host: missed)
    money_is_exact(run.pk)


def test_the_trade_json_shows_the_orders_on_their_way_then_their_fills(trading_user, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    queued = presenters.trade_json(SimulatorTrade.objects.get(decision=decision), now=NOW)
    assert queued["status"] == "queued"
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED))
    done = SimulatorTrade.objects.get(decision=decision)
    shown = presenters.trade_json(done, now=done.executed_at)
    assert shown["status"] == "executed" and D(shown["matched_size"]) == 10
    for leg in shown["legs"]:
        assert leg["arrival_book"] and leg["fills"] and leg["order_type"] in ("ioc", "fak")


BUNDLED = Path(settings.BASE_DIR) / "ingest" / "data" / "demo_recording.jsonl.gz"


def _replayed_trades(user, seed: int) -> tuple[bytes, set[str]]:
    run, _ = start_run(user=user, starting_usd="5000")
    SimulatorRun.objects.filter(pk=run.pk).update(seed=seed)
    call_command("ingest_run", "--replay", str(BUNDLED), "--recorded-clock", stdout=io.StringIO())
    assert Decision.objects.filter(run_id=run.pk).exists()
    trades = SimulatorTrade.objects.filter(run_id=run.pk).order_by("decided_at", "opportunity_key")
    shown, outcomes = [], {trade.arrival_outcome for trade in trades}
    for trade in trades:
        data = presenters.trade_json(trade, now=trade.settled_at)
        shown.append({k: v for k, v in data.items() if k not in ("id", "run_id", "intent_id", "decision_id")})
    # Clear the replay's own rows, so the second one starts where the first did.
    SimulatorRun.objects.filter(pk=run.pk).delete()
    ExecutionIntent.objects.all().delete()
    SuccessSpan.objects.all().delete()
    return orjson.dumps(shown), outcomes


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # ingest hands intents over when their rows commit
def test_the_bundled_recording_replayed_twice_with_one_seed_gives_the_same_trades_byte_for_byte(trading_user):
    set_thresholds(trading_user, min_edge="1.00", max_leg="100", daily_cap="100000")
    first, outcomes = _replayed_trades(trading_user, seed=7)
    assert first == _replayed_trades(trading_user, seed=7)[0]
    assert "" not in outcomes and len(outcomes) > 1, outcomes  # all arrived; the books moved
    assert first != _replayed_trades(trading_user, seed=8)[0]
