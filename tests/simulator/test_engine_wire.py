"""The engine's transaction in two round trips on PostgreSQL (simulator.engine.wire): BEGIN goes
with the locked read and COMMIT with the write, with the same effects as Django's own commit."""

from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from simulator.engine import decide_intent, wire
from simulator.engine.load import run_intent_and_stamps
from simulator.engine.sql import new_row
from simulator.engine.write import write_decision
from simulator.models import Decision, SimulatorRun
from simulator.services import start_run
from tests.simulator.conftest import needs_postgres
from tests.simulator.factories import NOW, ExecutionIntentFactory, set_thresholds

pytestmark = [pytest.mark.postgres_only, needs_postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene(trading_user, pair):
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    run, _ = start_run(user=trading_user, starting_usd="1000", now=NOW)
    return run, [ExecutionIntentFactory(user=trading_user, pair=pair) for _ in range(2)]


def other_connection_sees(decision_pk: int) -> bool:
    params = connection.get_connection_params()
    keys = {"dbname", "user", "password", "host", "port"}
    with psycopg.connect(**{k: v for k, v in params.items() if k in keys}) as other:
        return (
            other.execute("SELECT 1 FROM simulator_decisions WHERE id = %s", (decision_pk,)).fetchone()
            is not None
        )


def skipped_decision(run: SimulatorRun, intent) -> Decision:
    return new_row(Decision, run_id=run.pk, intent_id=intent.pk, span_id=None, decision_source="intent",
                   outcome="skipped", reason="test", reason_code="test", checks=[], edge_cents=Decimal("1"),
                   opportunity_key=intent.opportunity_key, created_at=NOW)  # fmt: skip


def test_the_write_of_the_outermost_transaction_commits_with_it(scene):
    run, (intent, _) = scene
    with transaction.atomic():
        locked, _, _ = run_intent_and_stamps(run.pk, intent.pk, lock=True)
        decision = skipped_decision(locked, intent)
        locked.decision_count += 1
        write_decision(decision, run=locked, run_fields=["decision_count"])
        # Committed already: another session sees it before the atomic block ends.
        assert other_connection_sees(decision.pk)
    assert SimulatorRun.objects.get(pk=run.pk).decision_count == 1
    prepared = {
        name for (name,) in connection.cursor().execute("SELECT name FROM pg_prepared_statements").fetchall()
    }
    assert {"arbsim_engine_0", "arbsim_engine_1"} <= prepared


def test_inside_an_outer_transaction_the_write_waits_for_it(scene):
    run, (intent, _) = scene
    with transaction.atomic():
        with transaction.atomic():
            locked, _, _ = run_intent_and_stamps(run.pk, intent.pk, lock=True)
            decision = skipped_decision(locked, intent)
            write_decision(decision, run=locked, run_fields=["decision_count"])
        assert not other_connection_sees(decision.pk)
    assert other_connection_sees(decision.pk)


def test_a_failing_write_commits_nothing_and_the_connection_goes_on(scene, book_validator):
    run, (first, second) = scene
    decide_intent(run_id=run.pk, intent_id=first.pk, now=NOW, validator=book_validator)
    before = SimulatorRun.objects.get(pk=run.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        locked, _, _ = run_intent_and_stamps(run.pk, first.pk, lock=True)
        locked.decision_count += 1
        write_decision(skipped_decision(locked, first), run=locked, run_fields=["decision_count"])
    after = SimulatorRun.objects.get(pk=run.pk)
    assert (after.decision_count, after.balance_usd) == (before.decision_count, before.balance_usd)
    assert Decision.objects.filter(run=run, intent=first).count() == 1
    decision = decide_intent(run_id=run.pk, intent_id=second.pk, now=NOW, validator=book_validator)
    assert Decision.objects.get(run=run, intent=second) == decision
    assert SimulatorRun.objects.get(pk=run.pk).decision_count == before.decision_count + 1


def test_statements_deallocated_behind_its_back_are_prepared_again(scene, book_validator):
    run, (first, second) = scene
    assert (
        decide_intent(run_id=run.pk, intent_id=first.pk, now=NOW, validator=book_validator).outcome
        == "traded"
    )
    connection.cursor().execute("DEALLOCATE ALL")
    decision = decide_intent(run_id=run.pk, intent_id=second.pk, now=NOW, validator=book_validator)
    assert Decision.objects.get(run=run, intent=second) == decision
    assert SimulatorRun.objects.get(pk=run.pk).decision_count == 2


def test_a_first_statement_with_other_parameters_still_opens_the_transaction(db):
    with transaction.atomic():
        assert wire.fetch(connection, "SELECT %s::text, %s::numeric", ["text", Decimal("1.50")]) == [
            ("text", Decimal("1.50"))
        ]
        assert connection.connection.pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
