"""Span starts and dispatch: one decision per running run watching the key, for every user."""

from decimal import Decimal

import pytest

from accounts.models import UserSecret
from simulator.engine import decide_span_start
from simulator.intake import intent_arrived, span_started
from simulator.models import Decision
from simulator.services import start_run, stop_run
from tests.simulator.factories import (
    NOW,
    ExecutionIntentFactory,
    MarketPairFactory,
    SuccessSpanFactory,
    trader,
)

pytestmark = pytest.mark.django_db
D = Decimal


def start(user, now=NOW, **kwargs):
    run, _ = start_run(user=user, starting_usd="1000", now=now, **kwargs)
    return run


def start_now(user, **kwargs):
    """Dispatched tasks decide on the real clock: these runs start on it too."""
    run, _ = start_run(user=user, starting_usd="1000", **kwargs)
    return run


def test_a_span_start_is_eligible_when_the_checks_would_pass(trading_user, pair):
    run = start(trading_user)
    span = SuccessSpanFactory(pair=pair)
    decision = decide_span_start(run_id=run.pk, span_id=span.pk, now=NOW)
    assert (decision.decision_source, decision.outcome, decision.reason) == ("success_span", "eligible", "")
    assert decision.checks[4]["detail"].startswith("not asked")
    assert not hasattr(decision, "trade") or decision.trade is None
    run.refresh_from_db()
    assert (run.decision_count, run.trade_count, run.balance_usd) == (1, 0, D("1000"))


def test_a_span_start_below_the_users_minimum_is_skipped_with_the_edge(pair):
    user = trader(min_edge="5")
    run = start(user)
    span = SuccessSpanFactory(pair=pair, peak_edge_cents=D("3.2"))
    decision = decide_span_start(run_id=run.pk, span_id=span.pk, now=NOW)
    assert decision.outcome == "skipped"
    assert decision.reason == "net_edge: net edge 3.20c < your minimum 5.00c"


def test_a_span_start_uses_the_users_own_intent_of_that_span(trading_user, pair):
    run, _ = start_run(user=trading_user, starting_usd="5", now=NOW)
    span = SuccessSpanFactory(pair=pair)
    ExecutionIntentFactory(user=trading_user, pair=pair, span=span)
    decision = decide_span_start(run_id=run.pk, span_id=span.pk, now=NOW)
    assert decision.outcome == "skipped" and decision.reason_code == "balance"
    assert "2 orders, 10 contracts" in decision.checks[0]["detail"]


def test_a_span_start_without_keys_names_them(trading_user, pair):
    UserSecret.objects.filter(user=trading_user).delete()
    run = start(trading_user)
    decision = decide_span_start(run_id=run.pk, span_id=SuccessSpanFactory(pair=pair).pk, now=NOW)
    assert decision.reason == "exchange_keys: no kalshi or polymarket keys saved on your profile"


def test_a_span_start_is_decided_once(trading_user, pair):
    run = start(trading_user)
    span = SuccessSpanFactory(pair=pair)
    first = decide_span_start(run_id=run.pk, span_id=span.pk, now=NOW)
    assert decide_span_start(run_id=run.pk, span_id=span.pk, now=NOW).pk == first.pk
    assert Decision.objects.count() == 1


def test_a_span_start_reaches_every_users_running_runs_watching_the_key(
    pair, eager_tasks, django_capture_on_commit_callbacks
):
    other_pair = MarketPairFactory()
    alice, bob = trader(), trader()
    everything = start_now(alice)
    only_this = start_now(bob, opportunity_keys=[pair.opportunity_key])
    start_now(bob, opportunity_keys=[other_pair.opportunity_key])
    stopped = start_now(alice)
    stop_run(user=alice, run_id=stopped.pk)
    span = SuccessSpanFactory(pair=pair)
    with django_capture_on_commit_callbacks(execute=True):
        assert span_started(span) == 2
    decided = set(Decision.objects.filter(span=span).values_list("run_id", flat=True))
    assert decided == {everything.pk, only_this.pk}


def test_an_intent_reaches_only_the_users_runs_watching_the_key(
    pair, monkeypatch, eager_tasks, django_capture_on_commit_callbacks
):
    from tests.simulator.conftest import BookValidator

    monkeypatch.setattr("simulator.engine.pipeline.validate_intent", BookValidator())
    alice, bob = trader(), trader()
    a1 = start_now(alice)
    a2 = start_now(alice, opportunity_keys=[pair.opportunity_key])
    start_now(alice, opportunity_keys=[MarketPairFactory().opportunity_key])
    start_now(bob)
    intent = ExecutionIntentFactory(user=alice, pair=pair)
    with django_capture_on_commit_callbacks(execute=True):
        assert intent_arrived(intent) == 2
    assert set(Decision.objects.filter(intent=intent).values_list("run_id", flat=True)) == {a1.pk, a2.pk}
    assert Decision.objects.filter(intent=intent, outcome="traded").count() == 2
