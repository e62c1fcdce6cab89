"""A run's execution settings (time in force per venue, leg sequencing, the unhedged excess, the
median latency per venue): defaults, set through the API, the page's form and `sim_start`,
refused naming the field, snapshotted on the run and shown back on every surface."""

import re
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from exchanges.books import KALSHI, POLYMARKET
from simulator import presenters
from simulator.api.serializers import RunExecutionOut, RunOut
from simulator.core import SimConfig
from simulator.models import SimulatorRun
from simulator.services import start_run
from tests.simulator.surface_fixtures import make_run

pytestmark = pytest.mark.django_db

DEFAULTS = {
    "kalshi_order_type": "ioc",
    "polymarket_order_type": "fak",
    "sequencing": "together",
    "unhedged": "unwind",
    "kalshi_latency_ms": 120,
    "polymarket_latency_ms": 250,
}
CHOSEN = {
    "kalshi_order_type": "fok",
    "polymarket_order_type": "fok",
    "sequencing": "polymarket_first",
    "unhedged": "carry",
    "kalshi_latency_ms": 400,
    "polymarket_latency_ms": 900,
}


def config_of(run_id: int) -> SimConfig:
    return SimConfig.from_json(SimulatorRun.objects.get(pk=run_id).sim_config)


# --- POST /simulator/start -----------------------------------------------------------------------


def test_a_run_started_without_settings_snapshots_the_defaults(api):
    answer = api.post("/simulator/start", {"starting_usd": "100"}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["execution"] == DEFAULTS
    run = SimulatorRun.objects.get(pk=answer.json()["id"])
    assert run.sim_config == SimConfig().as_json()  # the whole model, written out on the run


@pytest.mark.parametrize(("field", "value"), CHOSEN.items())
def test_each_setting_is_snapshotted_on_the_run(api, field, value):
    answer = api.post("/simulator/start", {"starting_usd": "100", field: value}, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["execution"] == {**DEFAULTS, field: value}
    shown = api.get(f"/simulator/runs/{answer.json()['id']}").json()["execution"]
    assert shown == {**DEFAULTS, field: value}


def test_all_settings_together_reach_the_model_the_engine_reads(api):
    answer = api.post("/simulator/start", {"starting_usd": "100", **CHOSEN}, format="json")
    assert answer.status_code == 201, answer.json()
    config = config_of(answer.json()["id"])
    assert config.execution.order_type(KALSHI) == "fok"
    assert config.execution.order_type(POLYMARKET) == "fok"
    assert (config.execution.sequencing, config.execution.unhedged) == ("polymarket_first", "carry")
    default = SimConfig().timing.latency
    for venue, median_ms in ((KALSHI, 400), (POLYMARKET, 900)):
        model = config.timing.latency[venue]
        assert model.median_ms == median_ms
        # Only the median is a setting: the spread and the bounds stay the venue's model.
        assert (model.sigma, model.min_ms, model.max_ms) == (
            default[venue].sigma,
            default[venue].min_ms,
            default[venue].max_ms,
        )


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_latency_takes_the_default(api, empty):
    body = {"starting_usd": "100", "kalshi_latency_ms": empty, "polymarket_latency_ms": empty}
    answer = api.post("/simulator/start", body, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["execution"] == DEFAULTS


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("kalshi_order_type", "fak", "ioc, fok"),  # Polymarket's name for it, not Kalshi's
        ("kalshi_order_type", "IOC", "ioc, fok"),
        ("polymarket_order_type", "ioc", "fak, fok"),
        ("sequencing", "both", "together, kalshi_first, polymarket_first"),
        ("sequencing", None, "together, kalshi_first, polymarket_first"),
        ("unhedged", "hold", "unwind, carry"),
        ("unhedged", "", "unwind, carry"),
        ("unhedged", ["carry"], "unwind, carry"),
        ("kalshi_latency_ms", 29, "from 30 to 2000"),
        ("kalshi_latency_ms", 2001, "from 30 to 2000"),
        ("kalshi_latency_ms", "120.5", "from 30 to 2000"),
        ("kalshi_latency_ms", "1e2", "from 30 to 2000"),
        ("polymarket_latency_ms", 59, "from 60 to 5000"),
        ("polymarket_latency_ms", 5001, "from 60 to 5000"),
        ("polymarket_latency_ms", True, "from 60 to 5000"),
    ],
)
def test_a_bad_setting_is_a_400_naming_the_field_and_nothing_is_written(api, field, value, says):
    answer = api.post("/simulator/start", {"starting_usd": "100", field: value}, format="json")
    assert answer.status_code == 400
    assert list(answer.json()) == [field]
    (message,) = answer.json()[field]
    assert says in message
    assert not SimulatorRun.objects.exists()


def test_the_schema_lists_the_choices_and_the_latency_ranges():
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    start = components["StartInput"]["properties"]

    def choices(name: str) -> list[str]:
        (ref,) = start[name]["allOf"]
        return components[ref["$ref"].rsplit("/", 1)[1]]["enum"]

    assert choices("kalshi_order_type") == ["ioc", "fok"]
    assert choices("polymarket_order_type") == ["fak", "fok"]
    assert choices("sequencing") == ["together", "kalshi_first", "polymarket_first"]
    assert choices("unhedged") == ["unwind", "carry"]
    assert (start["kalshi_latency_ms"]["minimum"], start["kalshi_latency_ms"]["maximum"]) == (30, 2000)
    assert (start["polymarket_latency_ms"]["minimum"], start["polymarket_latency_ms"]["maximum"]) == (
        60,
        5000,
    )
    assert start["kalshi_order_type"]["default"] == "ioc"


# --- the service (every caller: API, page, commands, the demo) -------------------------------------


def test_the_service_refuses_every_bad_setting_at_once_and_writes_nothing(user):
    with pytest.raises(ValidationError) as refused:
        start_run(user=user, starting_usd="100", sequencing="sideways", kalshi_latency_ms="5")
    assert set(refused.value.message_dict) == {"sequencing", "kalshi_latency_ms"}
    assert (
        "must be one of together, kalshi_first, polymarket_first"
        in refused.value.message_dict["sequencing"][0]
    )
    assert not SimulatorRun.objects.exists()


# --- what the run shows back -----------------------------------------------------------------------


def test_a_run_without_a_snapshot_shows_the_default_settings(user):
    run = make_run(user)  # sim_config {}: the default model
    assert presenters.run_json(run)["execution"] == DEFAULTS


def test_the_run_presenter_and_its_schema_name_the_same_fields(user):
    shown = presenters.run_json(make_run(user))
    assert set(shown) == set(RunOut().fields)
    assert set(shown["execution"]) == set(RunExecutionOut().fields)


# --- sim_start, sim_runs, sim_status ---------------------------------------------------------------


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_sim_start_takes_the_settings_and_sim_runs_and_sim_status_show_them(user):
    out = run_command(
        "sim_start",
        "--user",
        user.username,
        "--starting-usd",
        "100",
        "--kalshi-order-type",
        "fok",
        "--polymarket-order-type",
        "fok",
        "--sequencing",
        "kalshi_first",
        "--unhedged",
        "carry",
        "--kalshi-latency-ms",
        "300",
        "--polymarket-latency-ms",
        "700",
    )
    line = "K fok 300ms, P fok 700ms, kalshi_first, carry"
    assert line in out
    run_id = int(re.search(r"started run (\d+)", out)[1])
    config = config_of(run_id)
    assert (config.execution.kalshi_order_type, config.execution.sequencing) == ("fok", "kalshi_first")
    assert config.timing.latency[POLYMARKET].median_ms == 700
    assert line in run_command("sim_runs", "--user", user.username)
    assert line in run_command("sim_status", "--user", user.username)


def test_sim_start_without_settings_uses_the_defaults(user):
    out = run_command("sim_start", "--user", user.username, "--starting-usd", "100")
    assert "K ioc 120ms, P fak 250ms, together, unwind" in out
    assert SimulatorRun.objects.get().sim_config == SimConfig().as_json()


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--kalshi-order-type", "fak", "argument --kalshi-order-type: invalid choice: 'fak'"),
        ("--polymarket-order-type", "ioc", "argument --polymarket-order-type: invalid choice: 'ioc'"),
        ("--sequencing", "both", "argument --sequencing: invalid choice: 'both'"),
        ("--unhedged", "hold", "argument --unhedged: invalid choice: 'hold'"),
        ("--kalshi-latency-ms", "10", "argument --kalshi-latency-ms: must be greater than or equal to 30"),
        ("--polymarket-latency-ms", "1e3", "argument --polymarket-latency-ms: must be a whole number"),
    ],
)
def test_sim_start_refuses_a_bad_setting_naming_the_option(user, option, value, says):
    with pytest.raises(CommandError, match=re.escape(says)):
        run_command("sim_start", "--user", user.username, "--starting-usd", "100", f"{option}={value}")
    assert not SimulatorRun.objects.exists()


# --- the page's start form -------------------------------------------------------------------------


def test_the_start_form_offers_each_setting_with_its_default_and_an_error_slot(user):
    browser = Client()
    browser.force_login(user)
    page = browser.get("/simulator/").content.decode()
    fieldset = re.search(r'<fieldset id="execution-settings">.*?</fieldset>', page, re.S)[0]
    assert "<legend>Execution</legend>" in fieldset
    for name, default in DEFAULTS.items():
        assert f'data-error-for="{name}"' in fieldset, name
        if isinstance(default, int):
            assert f'<input name="{name}" value="{default}"' in fieldset, name
        else:
            select = re.search(rf'<select name="{name}">(.*?)</select>', fieldset, re.S)[1]
            assert f'<option value="{default}" selected>' in select, name
    kalshi = re.search(r'<select name="kalshi_order_type">(.*?)</select>', fieldset, re.S)[1]
    assert re.findall(r'value="(\w+)"', kalshi) == ["ioc", "fok"]
