"""The sim_* management commands: the services' checks and messages, as tables."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from simulator.engine import decide_intent
from simulator.models import SimulatorRun
from simulator.services import start_run
from tests.simulator.conftest import BookValidator
from tests.simulator.factories import ExecutionIntentFactory

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_sim_start_starts_a_run_and_prints_warnings(user, pair):
    out, err = run_command(
        "sim_start",
        "--user",
        user.username,
        "--starting-usd",
        "1000",
        "--opportunity-key",
        pair.opportunity_key,
        "--duration-minutes",
        "60",
        "--label",
        "cli",
    )
    run = SimulatorRun.objects.get(user=user)
    assert f"started run {run.pk} for {user.username}: $1000" in out
    assert (
        run.opportunity_keys == [pair.opportunity_key] and run.duration_minutes == 60 and run.label == "cli"
    )
    assert "warning: no kalshi keys saved on your profile: the checks will skip trades" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--starting-usd", "-3"], "starting_usd: must be greater than or equal to 0.0001"),
        (
            ["--starting-usd", "10", "--duration-minutes", "10081"],
            "duration_minutes: must be less than or equal to 10080 (accepted: a whole number of minutes from 0 to 10080)",
        ),
        (
            ["--starting-usd", "10", "--opportunity-key", "NOPE"],
            "opportunity_keys: unknown opportunity key: NOPE",
        ),
    ],
)
def test_sim_start_names_the_bad_field(user, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_command("sim_start", "--user", user.username, *args)


def test_sim_start_refuses_a_sixth_run_and_an_unknown_user(user):
    for _ in range(5):
        run_command("sim_start", "--user", user.username, "--starting-usd", "10")
    with pytest.raises(
        CommandError, match="detail: you already have 5 running simulator runs; stop one first"
    ):
        run_command("sim_start", "--user", user.username, "--starting-usd", "10")
    with pytest.raises(CommandError, match="user: no user named 'ghost'"):
        run_command("sim_start", "--user", "ghost", "--starting-usd", "10")


def test_sim_stop_stops_the_latest_and_refuses_twice(user):
    run, _ = start_run(user=user, starting_usd=10)
    out, _ = run_command("sim_stop", "--user", user.username)
    assert f"stopped run {run.pk}" in out
    with pytest.raises(CommandError, match=f"detail: run {run.pk} is already stopped"):
        run_command("sim_stop", "--user", user.username, "--run-id", str(run.pk))


def test_sim_stop_cannot_reach_another_users_run(user, other_user):
    run, _ = start_run(user=other_user, starting_usd=10)
    with pytest.raises(CommandError, match=f"detail: run {run.pk} not found"):
        run_command("sim_stop", "--user", user.username, "--run-id", str(run.pk))


def test_sim_runs_and_sim_status_print_tables(trading_user, pair):
    run, _ = start_run(user=trading_user, starting_usd=1000, label="table")
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decide_intent(run_id=run.pk, intent_id=intent.pk, validator=BookValidator())
    out, _ = run_command("sim_runs", "--user", trading_user.username)
    header, row = out.splitlines()
    assert header.split()[:3] == ["id", "status", "label"]
    assert row.split()[:3] == [str(run.pk), "running", "table"] and "$990.3100" in row  # $9.69 held
    out, _ = run_command("sim_status", "--user", trading_user.username)
    assert "running runs of" in out and "recent trades:" in out and pair.opportunity_key in out


def test_sim_runs_says_when_there_are_none(user):
    out, _ = run_command("sim_runs", "--user", user.username)
    assert out.strip() == f"{user.username} has no simulator runs"
