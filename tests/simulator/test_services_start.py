"""Starting a run: every field validated by name, thresholds snapshotted, at most 5 running."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from config.errors import ConflictError
from simulator.models import SimulatorRun
from simulator.services import start_run
from tests.accounts.factories import UserFactory
from tests.simulator.factories import NOW, MarketPairFactory, set_thresholds

pytestmark = pytest.mark.django_db
D = Decimal


def field_errors(call) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value.message_dict


def test_a_run_starts_with_its_balance_and_a_snapshot_of_the_thresholds(trading_user, pair):
    run, warnings = start_run(user=trading_user, starting_usd="1000.50", label="fed", notes="try", now=NOW)
    assert warnings == []
    assert run.status == "running"
    assert run.starting_usd == run.balance_usd == D("1000.50")
    assert (run.min_net_edge_cents, run.max_leg_usd, run.daily_cap_usd) == (D("1.00"), D("100"), D("1000"))
    assert run.opportunity_keys == []
    assert run.started_at == NOW and run.ends_at == NOW + timedelta(days=7) and run.duration_minutes == 0
    assert 0 <= run.seed < 2**63
    set_thresholds(trading_user, min_edge="9")
    run.refresh_from_db()
    assert run.min_net_edge_cents == D("1.00")


def test_a_duration_sets_the_end_time(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=100, duration_minutes=90, now=NOW)
    assert run.ends_at == NOW + timedelta(minutes=90)


def test_missing_thresholds_and_keys_are_warned_about(db):
    user = UserFactory()
    run, warnings = start_run(user=user, starting_usd=100)
    assert run.min_net_edge_cents is None
    assert "min_net_edge_cents is not set on your profile: the checks will skip trades" in warnings
    assert "no kalshi keys saved on your profile: the checks will skip trades" in warnings
    assert "no polymarket keys saved on your profile: the checks will skip trades" in warnings
    assert len(warnings) == 5


@pytest.mark.parametrize(
    ("starting_usd", "message"),
    [
        (None, "is required"),
        ("abc", "must be a decimal number"),
        ("NaN", "must be a finite decimal number"),
        ("Infinity", "must be a finite decimal number"),
        ("0", "must be greater than or equal to 0.0001"),
        ("-5", "must be greater than or equal to 0.0001"),
        ("10000000.01", "must be less than or equal to 10000000"),
        ("1.00001", "at most 4 decimal places"),
        ("1e3", "must be a decimal number written plainly"),
        (True, "not true or false"),
    ],
)
def test_starting_usd_is_validated(trading_user, starting_usd, message):
    errors = field_errors(lambda: start_run(user=trading_user, starting_usd=starting_usd))
    assert list(errors) == ["starting_usd"]
    assert message in errors["starting_usd"][0]


def test_the_largest_starting_amount_is_accepted(trading_user):
    run, _ = start_run(user=trading_user, starting_usd="10000000.0000")
    assert run.balance_usd == D("10000000")


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        (-1, "must be greater than or equal to 0"),
        (10081, "must be less than or equal to 10080"),
        (1.5, "whole number of minutes"),
        ("ten", "whole number of minutes"),
        (True, "whole number of minutes"),
    ],
)
def test_duration_minutes_is_validated(trading_user, duration, message):
    errors = field_errors(lambda: start_run(user=trading_user, starting_usd=10, duration_minutes=duration))
    assert list(errors) == ["duration_minutes"]
    assert message in errors["duration_minutes"][0]


def test_seven_days_exactly_is_allowed(trading_user):
    run, _ = start_run(user=trading_user, starting_usd=10, duration_minutes=10080, now=NOW)
    assert run.ends_at == NOW + timedelta(days=7)


def test_unknown_opportunity_keys_are_named(trading_user, pair):
    errors = field_errors(
        lambda: start_run(
            user=trading_user, starting_usd=10, opportunity_keys=[pair.opportunity_key, "NOPE", "ALSO"]
        )
    )
    assert errors == {"opportunity_keys": ["unknown opportunity keys: NOPE, ALSO"]}


def test_known_opportunity_keys_are_kept_once_each(trading_user):
    a, b = MarketPairFactory(), MarketPairFactory()
    keys = [a.opportunity_key, b.opportunity_key, a.opportunity_key]
    run, _ = start_run(user=trading_user, starting_usd=10, opportunity_keys=keys)
    assert run.opportunity_keys == [a.opportunity_key, b.opportunity_key]


def test_opportunity_keys_must_be_a_list(trading_user):
    errors = field_errors(lambda: start_run(user=trading_user, starting_usd=10, opportunity_keys="NYC"))
    assert errors == {"opportunity_keys": ["must be a list of opportunity keys"]}


def test_label_and_notes_lengths_are_limited(trading_user):
    errors = field_errors(
        lambda: start_run(user=trading_user, starting_usd=10, label="x" * 121, notes="y" * 2001)
    )
    assert errors["label"] == ["must be at most 120 characters (got 121)"]
    assert errors["notes"] == ["must be at most 2000 characters (got 2001)"]


def test_every_bad_field_is_reported_at_once(trading_user):
    errors = field_errors(lambda: start_run(user=trading_user, starting_usd=-1, duration_minutes=-1))
    assert set(errors) == {"starting_usd", "duration_minutes"}
    assert not SimulatorRun.objects.exists()


def test_sixth_running_run_is_refused(trading_user):
    for _ in range(5):
        start_run(user=trading_user, starting_usd=10)
    with pytest.raises(ConflictError) as caught:
        start_run(user=trading_user, starting_usd=10)
    assert caught.value.status == 409 and caught.value.field == "detail"
    assert str(caught.value) == "you already have 5 running simulator runs; stop one first"
    assert SimulatorRun.objects.filter(user=trading_user).count() == 5


def test_a_stopped_run_frees_a_slot_and_other_users_do_not_count(trading_user, other_user):
    from simulator.services import stop_run

    for _ in range(5):
        start_run(user=trading_user, starting_usd=10)
    start_run(user=other_user, starting_usd=10)
    stop_run(user=trading_user)
    run, _ = start_run(user=trading_user, starting_usd=10)
    assert run.status == "running"


def test_starting_broadcasts_the_run_after_commit(
    trading_user, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr("simulator.services.broadcast_run", lambda run: sent.append(run.pk))
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = start_run(user=trading_user, starting_usd=10)
        assert sent == []
    assert sent == [run.pk]
