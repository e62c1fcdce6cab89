"""Stopping and expiring runs."""

from datetime import timedelta

import pytest

from config.errors import ConflictError, NotFoundError
from simulator.engine import expire_runs
from simulator.services import start_run, stop_run
from tests.simulator.factories import NOW

pytestmark = pytest.mark.django_db


def test_stop_without_an_id_stops_the_latest_running_run(trading_user):
    first, _ = start_run(user=trading_user, starting_usd=10, now=NOW)
    latest, _ = start_run(user=trading_user, starting_usd=10, now=NOW + timedelta(seconds=1))
    stopped = stop_run(user=trading_user, now=NOW + timedelta(minutes=5))
    assert stopped.pk == latest.pk
    assert (stopped.status, stopped.stop_reason, stopped.stopped_at) == (
        "stopped",
        "stopped by user",
        NOW + timedelta(minutes=5),
    )
    first.refresh_from_db()
    assert first.status == "running"


def test_stop_by_id_with_a_reason(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=10)
    assert stop_run(user=trading_user, run_id=run.pk, reason="enough").stop_reason == "enough"


def test_stopping_a_stopped_run_is_a_conflict(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=10)
    stop_run(user=trading_user, run_id=run.pk)
    with pytest.raises(ConflictError, match=f"run {run.pk} is already stopped"):
        stop_run(user=trading_user, run_id=run.pk)


def test_another_users_run_is_not_found(trading_user, other_user):
    run, _ = start_run(user=trading_user, starting_usd=10)
    with pytest.raises(NotFoundError) as caught:
        stop_run(user=other_user, run_id=run.pk)
    assert caught.value.status == 404
    run.refresh_from_db()
    assert run.status == "running"


def test_unknown_run_and_no_running_run_are_not_found(trading_user):
    with pytest.raises(NotFoundError, match="run 999999 not found"):
        stop_run(user=trading_user, run_id=999999)
    with pytest.raises(NotFoundError, match="you have no running simulator run"):
        stop_run(user=trading_user)


def test_runs_past_their_end_time_expire(trading_user):
    short, _ = start_run(user=trading_user, starting_usd=10, duration_minutes=30, now=NOW)
    endless, _ = start_run(user=trading_user, starting_usd=10, now=NOW)
    assert expire_runs(now=NOW + timedelta(minutes=29)) == 0
    assert expire_runs(now=NOW + timedelta(minutes=30)) == 1
    short.refresh_from_db()
    assert (short.status, short.stop_reason) == ("expired", "reached its end time")
    assert short.stopped_at == NOW + timedelta(minutes=30)
    endless.refresh_from_db()
    assert endless.status == "running"


def test_an_until_stopped_run_expires_after_seven_days(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=10, duration_minutes=0, now=NOW)
    assert expire_runs(now=NOW + timedelta(days=7, seconds=-1)) == 0
    assert expire_runs(now=NOW + timedelta(days=7)) == 1
    run.refresh_from_db()
    assert run.status == "expired"


def test_an_expired_run_cannot_be_stopped(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=10, duration_minutes=1, now=NOW)
    expire_runs(now=NOW + timedelta(hours=1))
    with pytest.raises(ConflictError, match=f"run {run.pk} is already expired"):
        stop_run(user=trading_user, run_id=run.pk)
