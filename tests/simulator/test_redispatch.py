"""Intents the broker lost are decided anyway: the database is the record of what must be decided."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import ExecutionIntent
from simulator.intake import redispatch_undecided
from simulator.models import Decision
from simulator.services import start_run
from tests.simulator.factories import ExecutionIntentFactory

pytestmark = pytest.mark.django_db


def aged(intent, seconds: float):
    ExecutionIntent.objects.filter(pk=intent.pk).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )
    intent.refresh_from_db()
    return intent


def test_an_intent_whose_task_was_lost_is_decided_once_by_the_sweep(trading_user, pair, eager_tasks):
    run, _ = start_run(user=trading_user, starting_usd="1000")
    run.started_at = timezone.now() - timedelta(hours=1)
    run.save(update_fields=["started_at"])
    lost = aged(ExecutionIntentFactory(user=trading_user, pair=pair), 120)

    assert redispatch_undecided() == 1
    assert Decision.objects.filter(run=run, intent=lost).count() == 1
    assert redispatch_undecided() == 0  # decided: nothing more to send
    assert Decision.objects.filter(run=run, intent=lost).count() == 1


def test_the_sweep_leaves_young_intents_to_the_broker_and_old_ones_to_runs_that_saw_them(
    trading_user, pair, eager_tasks
):
    run, _ = start_run(user=trading_user, starting_usd="1000")
    young = ExecutionIntentFactory(user=trading_user, pair=pair)  # the broker's own redelivery comes first
    before_the_run = aged(ExecutionIntentFactory(user=trading_user, pair=pair), 120)
    assert run.started_at > before_the_run.created_at

    assert redispatch_undecided() == 0
    assert not Decision.objects.filter(intent__in=[young, before_the_run]).exists()


def test_the_sweep_sends_nothing_for_keys_the_run_does_not_watch(trading_user, pair, eager_tasks):
    from tests.simulator.factories import MarketPairFactory

    other_pair = MarketPairFactory(opportunity_key="OTHER-KEY")
    run, _ = start_run(user=trading_user, starting_usd="1000", opportunity_keys=[pair.opportunity_key])
    run.started_at = timezone.now() - timedelta(hours=1)
    run.save(update_fields=["started_at"])
    aged(ExecutionIntentFactory(user=trading_user, pair=other_pair), 120)
    assert redispatch_undecided() == 0


def test_an_old_lost_intent_is_found_behind_any_number_of_newer_decided_ones(trading_user, pair, eager_tasks):
    """The sweep asks for what is undecided, oldest first: a cap on how many it sends never hides
    an old lost intent behind newer ones that were decided (the soak lost one this way)."""
    run, _ = start_run(user=trading_user, starting_usd="1000")
    run.started_at = timezone.now() - timedelta(hours=1)
    run.save(update_fields=["started_at"])
    lost = aged(ExecutionIntentFactory(user=trading_user, pair=pair), 600)
    newer = [aged(ExecutionIntentFactory(user=trading_user, pair=pair), 300 - i) for i in range(3)]
    for intent in newer:
        Decision.objects.create(run=run, intent=intent, decision_source="intent", outcome="skipped",
                                checks=[], opportunity_key=intent.opportunity_key, created_at=timezone.now())  # fmt: skip

    assert redispatch_undecided(limit=2) == 1
    assert Decision.objects.filter(run=run, intent=lost).count() == 1
