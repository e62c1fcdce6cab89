"""Every number a person or a client hands the product, as a property over all the surfaces at once.

Hypothesis writes numbers as text (and, where a client sends JSON, as JSON values): plain decimals,
exponents, huge and tiny magnitudes, NaN/Infinity/-0, extra decimal places, thousands separators,
non-ASCII digits, whitespace, booleans, junk. Each is handed to every surface in SURFACES through
its real entry point (the HTTP API, the Profile page's form, `call_command`, a command's own
argument parser, a scenario file, a pair fixture). The property, for each:

- never a 500, never an uncaught exception;
- what the rule in the README accepts (plain decimal notation or a JSON number, in the field's
  range, no more places than the field keeps; "-0" is 0) is accepted and stored as that value;
- anything else is refused with a message naming the field and the accepted range, and nothing
  was written.

`expected` below is the rule written out independently of config.numbers: the specification.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import UserProfile
from exchanges.double import Scenario
from ingest.models import MarketPair
from simulator.core import SimConfig
from simulator.models import SimulatorRun
from simulator.run_settings import LATENCY_VENUES
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

REFUSED = object()  # what `expected` says of a value the rule refuses
UNCHECKED = object()  # accepted, but the surface does not show the value back (a page past the end)
PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)", re.ASCII)
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def expected(raw: Any, low: Decimal, high: Decimal, places: int) -> Any:
    """The value the rule accepts `raw` as, or REFUSED."""
    if isinstance(raw, bool):
        return REFUSED
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            return REFUSED
        value = Decimal(repr(raw))
    elif isinstance(raw, str) and PLAIN.fullmatch(raw.strip()):
        value = Decimal(raw.strip())
    else:
        return REFUSED
    if not low <= value <= high:
        return REFUSED
    with localcontext(prec=10_000):
        if value != value.quantize(Decimal(1).scaleb(-places)):
            return REFUSED
    return value


# --- numbers as text ---------------------------------------------------------------------------

DIGITS = st.text("0123456789", min_size=1, max_size=25)
SIGN = st.sampled_from(["", "", "-", "+"])
PLAIN_TEXT = st.builds(
    lambda sign, whole, fraction: f"{sign}{whole}{fraction}",
    SIGN,
    DIGITS,
    st.one_of(st.just(""), st.text("0123456789", max_size=12).map(lambda digits: "." + digits)),
)
EXPONENT_TEXT = st.builds(
    lambda mantissa, e, power: f"{mantissa}{e}{power}",
    PLAIN_TEXT,
    st.sampled_from(["e", "E"]),
    st.sampled_from(["3", "+3", "-9", "999", "-999", "+40", "0", "-0"]),
)
IN_RANGE_TEXT = st.one_of(
    st.integers(0, 200).map(str),
    st.integers(0, 6)
    .flatmap(
        lambda places: st.decimals(
            min_value=-1000, max_value=100_000, places=places, allow_nan=False, allow_infinity=False
        )
    )
    .map(lambda value: f"{value:f}"),
)
ODD_TEXT = st.sampled_from(
    [
        "NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "+Inf", "inf", "-inf",
        "-0", "-0.0", "+0", "0", "-0.000", "0.0000000001", "1e999", "1E+3", "1e3", "1e-9",
        str(10**40), "1" + "0" * 40, "9" * 400,
        "1,000", "1_000", "1 000", "1.000,50", "1'000", "1\u00a0000",
        "\u0661\u0662\u0663", "\u0661\u0662.\u0665", "\uff11\uff12", "\u06f1\u06f2", "\U0001d7cf", "\u00bd", "\u00b2",
        "true", "false", "null", "", " ", "\t", " 12 ", "\n5\n", "0x10", "1/2", "12abc", ".", "..",
        "-", "+", "1.2.3", "--1", "+-1", "5.", ".5", "0001", "1.50000000000",
    ]
)  # fmt: skip
JUNK_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
PADDED = st.tuples(st.sampled_from(["", " ", "\t"]), IN_RANGE_TEXT, st.sampled_from(["", " ", "\n"])).map(
    "".join
)
NUMBERS_AS_TEXT = st.one_of(PLAIN_TEXT, EXPONENT_TEXT, IN_RANGE_TEXT, ODD_TEXT, JUNK_TEXT, PADDED)
JSON_VALUES = st.one_of(
    NUMBERS_AS_TEXT,
    st.integers(-(10**40), 10**40),
    st.integers(-5, 300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-10, max_value=1000, allow_nan=False),
    st.booleans(),
    st.none(),
    st.just([]),
    st.just({}),
)


# --- the surfaces ------------------------------------------------------------------------------


@dataclass
class Outcome:
    accepted: bool
    stored: Any = UNCHECKED
    message: str = ""


@dataclass
class World:
    user: Any
    api: APIClient
    browser: Client
    tmp_path: Any
    admin: Client

    def admin_row(self, model: type) -> Any:
        if model is UserProfile:
            return UserProfile.objects.get_or_create(user=self.user)[0]
        return MarketPair.objects.get_or_create(
            opportunity_key=GOOD_PAIR["opportunity_key"], defaults=GOOD_PAIR
        )[0]

    def state(self) -> tuple:
        """What a refused input must leave as it was."""
        profile = UserProfile.objects.filter(user=self.user).values_list(
            "min_net_edge_cents", "max_leg_usd", "daily_cap_usd"
        )
        return (
            list(SimulatorRun.objects.order_by("pk").values_list("pk", "status")),
            list(profile),
            list(
                MarketPair.objects.order_by("pk").values_list(
                    "pk", "alignment_tolerance_s", "kalshi_fee_rate"
                )
            ),
        )


@dataclass
class Surface:
    id: str
    name: str  # what a refusal must name
    low: Decimal
    high: Decimal
    places: int
    submit: Callable[[World, Any], Outcome]
    typed: bool = False  # takes JSON values (numbers, booleans, null), not only text
    null: Any = REFUSED  # what JSON null means
    blank: Any = REFUSED  # what empty or whitespace-only text means
    words: dict[str, Any] = field(default_factory=dict)  # other words the option takes

    def expect(self, raw: Any) -> Any:
        if raw is None:
            return self.null
        if isinstance(raw, str) and not raw.strip():
            return self.blank
        if isinstance(raw, str) and raw.strip() in self.words:
            return self.words[raw.strip()]
        return expected(raw, self.low, self.high, self.places)


def d(text: str | int) -> Decimal:
    return Decimal(str(text))


def api_refusal(answer) -> Outcome:
    assert answer.status_code == 400, (answer.status_code, answer.content[:300])
    return Outcome(False, message=json.dumps(answer.json()))


def run_value(run: SimulatorRun, name: str) -> Any:
    """What the run keeps of a start field: a column, or a run setting in its sim_config."""
    if name in LATENCY_VENUES:
        return SimConfig.from_json(run.sim_config).timing.latency[LATENCY_VENUES[name]].median_ms
    return getattr(run, name)


def api_start(name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        body = {"starting_usd": "100", "label": "numbers", name: value}
        answer = world.api.post("/simulator/start", body, format="json")
        if answer.status_code != 201:
            return api_refusal(answer)
        run = SimulatorRun.objects.get(pk=answer.json()["id"])
        run.delete()  # at most five may run
        return Outcome(True, run_value(run, name))

    return submit


def api_stop(world: World, value: Any) -> Outcome:
    answer = world.api.post("/simulator/stop", {"run_id": value}, format="json")
    if answer.status_code == 404:  # a well-formed id: none of this user's runs has it
        found = re.search(r"run (\d+) not found", answer.content.decode())
        return Outcome(True, int(found[1]) if found else None)
    return api_refusal(answer)


def api_report(name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        answer = world.api.get("/simulator/report", {name: value})
        if answer.status_code == 200:
            return Outcome(True, answer.json()[name])
        return api_refusal(answer)

    return submit


def api_page(world: World, value: Any) -> Outcome:
    answer = world.api.get("/simulator/runs", {"page": value})
    if answer.status_code == 200:
        return Outcome(True, 1)  # no runs: one empty page
    if answer.status_code == 404:  # a page past the end, as DRF answers it
        return Outcome(True, UNCHECKED)
    return api_refusal(answer)


OTHER_THRESHOLD = {
    "min_net_edge_cents": "max_leg_usd",
    "max_leg_usd": "daily_cap_usd",
    "daily_cap_usd": "max_leg_usd",
}


def api_profile(name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        # A good field beside the bad one: a refusal must not save it either.
        body = {name: value, OTHER_THRESHOLD[name]: "77"}
        answer = world.api.put("/api/profile", body, format="json")
        if answer.status_code == 200:
            return Outcome(True, getattr(UserProfile.objects.get(user=world.user), name))
        return api_refusal(answer)

    return submit


def page_profile(name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        form = {"min_net_edge_cents": "2", "max_leg_usd": "50", "daily_cap_usd": "500", name: value}
        answer = world.browser.post("/accounts/profile/", form)
        if answer.status_code == 302:
            return Outcome(True, getattr(UserProfile.objects.get(user=world.user), name))
        assert answer.status_code == 400, answer.status_code
        errors = re.findall(r'<p class="error">(.*?)</p>', answer.content.decode(), re.S)
        return Outcome(False, message=html.unescape(" ".join(errors)))

    return submit


def admin_change(model: type, name: str, fields: Callable[[World], dict]) -> Callable[[World, Any], Outcome]:
    """The admin's change form for `model` (a superuser edits thresholds and pairs there too)."""

    def submit(world: World, value: Any) -> Outcome:
        row = world.admin_row(model)
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/{row.pk}/change/"
        answer = world.admin.post(url, {**fields(world), name: value})
        if answer.status_code == 302:
            row.refresh_from_db()
            return Outcome(True, getattr(row, name))
        assert answer.status_code == 200, answer.status_code  # the form again, with its errors
        block = re.search(
            rf'field-{name}\b.*?<ul class="errorlist"[^>]*>(.*?)</ul>', answer.content.decode(), re.S
        )
        return Outcome(False, message=f"{name}: " + html.unescape(block[1]) if block else "")

    return submit


def profile_fields(world: World) -> dict:
    return {"user": world.user.pk, "min_net_edge_cents": "2", "max_leg_usd": "50", "daily_cap_usd": "500"}


def pair_fields(world: World) -> dict:
    return {
        **GOOD_PAIR,
        "alignment_tolerance_s": "86400",
        "kalshi_fee_rate": "0.07",
        "poly_fee_rate": "0",
        "active": "on",
    }


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def command_sim_start(option: str, name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        try:
            out = run_command(
                "sim_start", "--user", world.user.username, "--starting-usd=100", f"{option}={value}"
            )
        except CommandError as error:
            return Outcome(False, message=str(error))
        run = SimulatorRun.objects.get(pk=int(re.search(r"started run (\d+)", out)[1]))
        run.delete()
        return Outcome(True, run_value(run, name))

    return submit


def command_sim_stop(world: World, value: Any) -> Outcome:
    try:
        run_command("sim_stop", "--user", world.user.username, f"--run-id={value}")
    except CommandError as error:
        found = re.search(r"run (\d+) not found", str(error))
        if found:
            return Outcome(True, int(found[1]))
        return Outcome(False, message=str(error))
    raise AssertionError("this user has no run to stop")


REPORT_LINES = {
    "--hours": r"\((\d+) h\)",
    "--max-gap-s": r"max gap\s+(\d+) s",
    "--min-edge-cents": r"min edge\s+(\S+) c",
}


def command_sim_report(option: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        try:
            out = run_command("sim_report", "--user", world.user.username, f"{option}={value}")
        except CommandError as error:
            return Outcome(False, message=str(error))
        return Outcome(True, re.search(REPORT_LINES[option], out)[1])

    return submit


def option_parser(command: str, option: str, *required: str) -> Callable[[World, Any], Outcome]:
    """The command's own argument parser, as `manage.py <command>` and `call_command` use it (for
    the commands that serve or run until stopped: their numbers are all read here). "soak" is the
    developer harness `python -m tools.soak`, a command of its own outside manage.py."""
    dest = option.lstrip("-").replace("-", "_")

    def submit(world: World, value: Any) -> Outcome:
        if command == "soak":
            from tools.soak import Command as Soak

            parser = Soak().create_parser("python -m", "tools.soak")
        else:
            parser = load_command_class(get_commands()[command], command).create_parser("manage.py", command)
        try:
            options = parser.parse_args([*required, f"{option}={value}"])
        except CommandError as error:
            return Outcome(False, message=str(error))
        return Outcome(True, getattr(options, dest))

    return submit


GOOD_PAIR = {
    "opportunity_key": "NUM-PAIR",
    "kalshi_ticker": "KXNUM-26DEC-T1",
    "poly_yes_token": "1111",
    "poly_no_token": "2222",
}


def pair_fixture(name: str) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        path = world.tmp_path / "pairs.json"
        path.write_text(json.dumps([{**GOOD_PAIR, name: value}]))
        try:
            run_command("pairs_import", str(path))
        except CommandError as error:
            return Outcome(False, message=str(error))
        pair = MarketPair.objects.get(opportunity_key="NUM-PAIR")
        pair.delete()
        return Outcome(True, getattr(pair, name))

    return submit


def scenario_file(
    place: Callable[[Any], dict], read: Callable[[Any], Any]
) -> Callable[[World, Any], Outcome]:
    def submit(world: World, value: Any) -> Outcome:
        path = world.tmp_path / "scenario.json"
        path.write_text(json.dumps(place(value)))
        try:
            scenario = Scenario.load(path)
        except ValueError as error:  # exchange_double turns it into a CommandError
            return Outcome(False, message=str(error))
        return Outcome(True, read(scenario))

    return submit


def kalshi_market(level: list) -> dict:
    return {"kalshi": {"markets": {"KXNUM": {"yes_bids": [level]}}}}


def poly_book(**book: Any) -> dict:
    return {"polymarket": {"books": {"777": book}}}


def book_move(**move: Any) -> dict:
    return {"moves": [{"venue": "polymarket", "kind": "jump", **move}]}


PORT = (d(0), d(65535), 0)
SPEED = (d("0.01"), d(100_000), 2)
SECONDS_3 = (d(0), d(86400), 3)
DURATION_S = (d("0.001"), d(31_536_000), 3)
POLL_S = (d("0.01"), d(3600), 3)
SEED = (d(0), d(2**63 - 1), 0)
THRESHOLDS = {
    "min_net_edge_cents": (d("0.01"), d(99), 2),
    "max_leg_usd": (d("0.01"), d(1_000_000), 2),
    "daily_cap_usd": (d("0.01"), d(10_000_000), 2),
}
RUN_ID = (d(1), d(2**63 - 1), 0)
KALSHI_LATENCY_MS = (d(30), d(2000), 0)
POLYMARKET_LATENCY_MS = (d(60), d(5000), 0)

SURFACES = [
    Surface("api start starting_usd", "starting_usd", d("0.0001"), d(10_000_000), 4, api_start("starting_usd"), typed=True),
    Surface("api start duration_minutes", "duration_minutes", d(0), d(10080), 0, api_start("duration_minutes"), typed=True, null=0, blank=0),
    Surface("api start kalshi_latency_ms", "kalshi_latency_ms", *KALSHI_LATENCY_MS, api_start("kalshi_latency_ms"), typed=True, null=120, blank=120),
    Surface("api start polymarket_latency_ms", "polymarket_latency_ms", *POLYMARKET_LATENCY_MS, api_start("polymarket_latency_ms"), typed=True, null=250, blank=250),
    Surface("api stop run_id", "run_id", *RUN_ID, api_stop, typed=True, null=None, blank=None),
    Surface("api report hours", "hours", d(1), d(168), 0, api_report("hours"), blank=24),
    Surface("api report max_gap_s", "max_gap_s", d(0), d(86400), 0, api_report("max_gap_s"), blank=120),
    Surface("api report min_edge_cents", "min_edge_cents", d(0), d(100), 4, api_report("min_edge_cents"), blank=3),
    Surface("api runs page", "page", d(1), d(10**9), 0, api_page, blank=1, words={"last": 1}),
    *[Surface(f"api profile {name}", name, *bounds, api_profile(name), typed=True, null=None, blank=None) for name, bounds in THRESHOLDS.items()],
    *[Surface(f"page profile {name}", name, *bounds, page_profile(name), blank=None) for name, bounds in THRESHOLDS.items()],
    *[Surface(f"admin profile {name}", name, *bounds, admin_change(UserProfile, name, profile_fields), blank=None) for name, bounds in THRESHOLDS.items()],
    Surface("admin pair alignment_tolerance_s", "alignment_tolerance_s", d(0), d(31_536_000), 0, admin_change(MarketPair, "alignment_tolerance_s", pair_fields)),
    Surface("admin pair kalshi_fee_rate", "kalshi_fee_rate", d(0), d(1), 4, admin_change(MarketPair, "kalshi_fee_rate", pair_fields)),
    Surface("sim_start --starting-usd", "starting_usd", d("0.0001"), d(10_000_000), 4, command_sim_start("--starting-usd", "starting_usd")),
    Surface("sim_start --duration-minutes", "duration_minutes", d(0), d(10080), 0, command_sim_start("--duration-minutes", "duration_minutes"), blank=0),
    Surface("sim_start --kalshi-latency-ms", "--kalshi-latency-ms", *KALSHI_LATENCY_MS, command_sim_start("--kalshi-latency-ms", "kalshi_latency_ms")),
    Surface("sim_start --polymarket-latency-ms", "--polymarket-latency-ms", *POLYMARKET_LATENCY_MS, command_sim_start("--polymarket-latency-ms", "polymarket_latency_ms")),
    Surface("sim_stop --run-id", "--run-id", *RUN_ID, command_sim_stop),
    Surface("sim_report --hours", "hours", d(1), d(168), 0, command_sim_report("--hours"), blank=24),
    Surface("sim_report --max-gap-s", "max_gap_s", d(0), d(86400), 0, command_sim_report("--max-gap-s"), blank=120),
    Surface("sim_report --min-edge-cents", "min_edge_cents", d(0), d(100), 4, command_sim_report("--min-edge-cents"), blank=3),
    Surface("sim_runs --limit", "--limit", d(1), d(10_000), 0, option_parser("sim_runs", "--limit", "--user", "u")),
    Surface("sim_status --trades", "--trades", d(0), d(10_000), 0, option_parser("sim_status", "--trades", "--user", "u")),
    Surface("demo --port", "--port", d(1), d(65535), 0, option_parser("demo", "--port")),
    Surface("demo --double-port", "--double-port", *PORT, option_parser("demo", "--double-port")),
    Surface("demo --speed", "--speed", *SPEED, option_parser("demo", "--speed")),
    Surface("exchange_double --port", "--port", *PORT, option_parser("exchange_double", "--port")),
    Surface("exchange_double --ws-port", "--ws-port", *PORT, option_parser("exchange_double", "--ws-port")),
    Surface("ingest_run --speed", "--speed", *SPEED, option_parser("ingest_run", "--speed", "--live"), words={"max": None}),
    Surface("ingest_run --threshold-cents", "--threshold-cents", d(0), d(100), 4, option_parser("ingest_run", "--threshold-cents", "--live")),
    Surface("ingest_run --max-skew-ms", "--max-skew-ms", d(0), d(3_600_000), 0, option_parser("ingest_run", "--max-skew-ms", "--live")),
    Surface("ingest_run --cooldown-s", "--cooldown-s", *SECONDS_3, option_parser("ingest_run", "--cooldown-s", "--live")),
    Surface("ingest_run --stats-every-s", "--stats-every-s", *SECONDS_3, option_parser("ingest_run", "--stats-every-s", "--live")),
    Surface("ingest_run --pairs-every-s", "--pairs-every-s", *SECONDS_3, option_parser("ingest_run", "--pairs-every-s", "--live")),
    Surface("ingest_run --duration-s", "--duration-s", *DURATION_S, option_parser("ingest_run", "--duration-s", "--live")),
    Surface("ingest_run --poll-interval-s", "--poll-interval-s", *POLL_S, option_parser("ingest_run", "--poll-interval-s", "--live")),
    Surface("record --duration-s", "--duration-s", *DURATION_S, option_parser("record", "--duration-s", "--out", "r.jsonl.gz")),
    Surface("record --poll-interval-s", "--poll-interval-s", *POLL_S, option_parser("record", "--poll-interval-s", "--out", "r.jsonl.gz")),
    Surface("make_recording --pairs", "--pairs", d(1), d(1000), 0, option_parser("make_recording", "--pairs", "--out", "r")),
    Surface("make_recording --hours", "--hours", d("0.001"), d(720), 3, option_parser("make_recording", "--hours", "--out", "r")),
    Surface("make_recording --seed", "--seed", *SEED, option_parser("make_recording", "--seed", "--out", "r")),
    Surface("make_recording --updates-per-s", "--updates-per-s", d("0.01"), d(1000), 2, option_parser("make_recording", "--updates-per-s", "--out", "r")),
    *[
        Surface(f"pairs_discover {option}", option, *bounds, option_parser("pairs_discover", option, "--kalshi-markets", "k", "--polymarket-markets", "p"))
        for option, bounds in {"--tolerance-s": (d(0), d(31_536_000), 3), "--min-score": (d(0), d(100), 2), "--limit": (d(0), d(1_000_000), 0)}.items()
    ],
    *[
        Surface(f"soak {option}", option, *bounds, option_parser("soak", option))
        for option, bounds in {
            "--intents": (d(1), d(10_000_000), 0), "--workers": (d(1), d(64), 0), "--redis-down-s": (d(0), d(3600), 3),
            "--fuzz-examples": (d(1), d(1_000_000), 0), "--seed": SEED, "--timeout-s": (d(1), d(86400), 3),
        }.items()
    ],
    Surface("pair fixture alignment_tolerance_s", "alignment_tolerance_s", d(0), d(31_536_000), 0, pair_fixture("alignment_tolerance_s"), typed=True, null=86400),
    Surface("pair fixture kalshi_fee_rate", "kalshi_fee_rate", d(0), d(1), 4, pair_fixture("kalshi_fee_rate"), typed=True, null=Decimal("0.07")),
    Surface("pair fixture poly_fee_rate", "poly_fee_rate", d(0), d(1), 4, pair_fixture("poly_fee_rate"), typed=True, null=0),
    Surface(
        "scenario kalshi bid price", "kalshi.markets.KXNUM.yes_bids[0].price", d(0), d(1), 4,
        scenario_file(lambda v: kalshi_market([v, "10"]), lambda s: s.kalshi_markets["KXNUM"].yes_bids[0][0]), typed=True,
    ),
    Surface(
        "scenario kalshi bid count", "kalshi.markets.KXNUM.yes_bids[0].count", d(0), d(10**9), 2,
        scenario_file(lambda v: kalshi_market(["0.40", v]), lambda s: s.kalshi_markets["KXNUM"].yes_bids[0][1]), typed=True,
    ),
    Surface(
        "scenario polymarket ask price", "polymarket.books.777.asks[0].price", d(0), d(1), 4,
        scenario_file(lambda v: poly_book(asks=[{"price": v, "size": "5"}]), lambda s: s.polymarket_books["777"].asks[0]["price"]), typed=True,
    ),
    Surface(
        "scenario polymarket ask size", "polymarket.books.777.asks[0].size", d(0), d(10**9), 6,
        scenario_file(lambda v: poly_book(asks=[["0.5", v]]), lambda s: s.polymarket_books["777"].asks[0]["size"]), typed=True,
    ),
    Surface(
        "scenario polymarket tick_size", "polymarket.books.777.tick_size", d("0.0001"), d("0.1"), 4,
        scenario_file(lambda v: poly_book(tick_size=v), lambda s: s.polymarket_books["777"].tick_size), typed=True,
    ),
    Surface(
        "scenario polymarket base_fee", "polymarket.books.777.base_fee", d(0), d(10_000), 0,
        scenario_file(lambda v: poly_book(base_fee=v), lambda s: s.polymarket_books["777"].base_fee), typed=True,
    ),
    Surface(
        "scenario default_balance", "default_balance", d(0), d(10**18), 0,
        scenario_file(lambda v: {"default_balance": v}, lambda s: s.default_balance), typed=True,
    ),
    Surface(
        "scenario auth_window_s", "auth_window_s", d("0.001"), d(86400), 3,
        scenario_file(lambda v: {"auth_window_s": v}, lambda s: s.auth_window_s), typed=True,
    ),
    *[
        Surface(
            f"scenario move {name}", f"moves[0].{name}", d(low), d(high), places,
            scenario_file(lambda v, name=name: book_move(**{name: v}), lambda s, name=name: getattr(s.moves[0], name)),
            typed=True, null=None if optional else REFUSED,
        )
        for name, low, high, places, optional in [
            ("every", 1, 1_000_000, 0, False),
            ("times", 1, 10**9, 0, True),
            ("after_ms", 0, 60_000, 0, False),
            ("lasts_ms", 1, 3_600_000, 0, True),
            ("keep", 0, 1, 4, False),
            ("depth_cents", 0, 100, 1, False),
            ("cents", "0.1", 99, 1, False),
        ]
    ],
]  # fmt: skip


@pytest.fixture
def world(user, tmp_path) -> World:
    api = APIClient(raise_request_exception=False)  # a 500 is an answer here, as a server gives it
    api.force_authenticate(user)
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    admin = Client(raise_request_exception=False)
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    return World(user=user, api=api, browser=browser, tmp_path=tmp_path, admin=admin)


def check(surface: Surface, world: World, value: Any) -> None:
    before = world.state()
    outcome = surface.submit(world, value)
    want = surface.expect(value)
    if want is REFUSED:
        assert not outcome.accepted, f"{surface.id}: {value!r} was accepted as {outcome.stored!r}"
        assert surface.name in outcome.message, (surface.id, value, outcome.message)
        low, high = f"{surface.low:f}", f"{surface.high:f}"
        assert f"from {low} to {high}" in outcome.message, (surface.id, value, outcome.message)
        assert world.state() == before, f"{surface.id}: {value!r} was refused but something was written"
        return
    assert outcome.accepted, f"{surface.id}: {value!r} refused: {outcome.message}"
    if outcome.stored is UNCHECKED:
        return
    if want is None or outcome.stored is None:
        assert outcome.stored == want, (surface.id, value, outcome.stored)
        return
    stored = Decimal(str(outcome.stored))
    assert stored == Decimal(str(want)), (surface.id, value, outcome.stored, want)
    assert not stored.is_signed(), f"{surface.id}: {value!r} stored as a negative zero"


@pytest.mark.parametrize("surface", SURFACES, ids=[surface.id for surface in SURFACES])
@EXAMPLES
@given(data=st.data())
def test_a_number_is_accepted_by_the_rule_or_refused_naming_the_field_and_range(world, surface, data):
    value = data.draw(JSON_VALUES if surface.typed else NUMBERS_AS_TEXT, label="value")
    check(surface, world, value)


@EXAMPLES
@given(text=NUMBERS_AS_TEXT)
def test_an_id_in_a_url_is_found_or_not_found_never_a_500(world, text):
    for path in (
        "/simulator/runs/{}",
        "/simulator/runs/{}/trades",
        "/simulator/trades/{}",
        "/execution/intents/{}",
    ):
        answer = world.api.get(path.format(quote(text, safe="")))
        assert answer.status_code == 404, (path, text, answer.status_code, answer.content[:200])


def test_the_example_that_was_a_500_is_a_400_naming_the_field_and_range(world):
    """POST /simulator/start with an exponent or a number larger than the column: decimal.InvalidOperation."""
    for value in ("1E+3", "1e999", "123456789012345678901234567890"):
        answer = world.api.post("/simulator/start", {"starting_usd": value}, format="json")
        assert answer.status_code == 400
        (message,) = answer.json()["starting_usd"]
        assert "from 0.0001 to 10000000, at most 4 decimal places" in message
    assert not SimulatorRun.objects.exists()
