"""python -m tools.soak: long fault runs that do not fit in the test suite (docs/reliability.md).

It starts its own throwaway PostgreSQL cluster (PG_BIN or Debian's) and redis-server on free
loopback ports, migrates, then re-runs itself inside that environment and tries, bounded:

- kill:        N intents decided by Celery workers while random workers are SIGKILLed (and a
               tenth of the intents is sent twice); every (run, intent) decided exactly once,
               the run's money equal to a clean re-computation from its trades;
- pg-restart:  the same while the PostgreSQL server is restarted mid-run;
- redis-down:  Redis stopped for S seconds: trades decided meanwhile are committed (their
               broadcast fails), and a websocket client gets frames again once Redis is back;
- fuzz:        the OpenAPI fuzz of tests/simulator/test_openapi_fuzz.py at a larger budget.

It prints what was tried and what held, and exits 1 if anything did not hold. The test suite
runs the same scenarios at a small size (tests/hardening/).

SIGINT (Ctrl-C) or SIGTERM, whatever disposition it inherited, stops it: the outer process hands
a SIGTERM to the inner one, which unwinds the scenario in hand (its workers and servers stopped
by the same try/finally blocks as on a failure) and prints the verdicts it has; then the outer
one stops its Redis and PostgreSQL and prints "soak stopped". Exit code 0.
"""

# ruff: noqa: S603, S607 - a developer tool that runs our own binaries (redis-server, pg_ctl, python)

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.numbers import DecimalRule, WholeRule, option_type
from config.shutdown import GracefulShutdown, StopRequested

SCENARIOS = ("kill", "pg-restart", "redis-down", "fuzz")
ROOT = Path(__file__).resolve().parent.parent
# A Celery worker on the simulator queue; a short visibility timeout hands a killed worker's
# unacknowledged message to another worker in seconds instead of Redis's default hour.
WORKER_MAIN = (
    "import sys; from config.celery import app; "
    "app.conf.broker_transport_options = {'visibility_timeout': float(sys.argv[1])}; "
    "app.worker_main(['worker', '-Q', 'simulator', '-P', 'solo', '--without-heartbeat', "
    "'--without-gossip', '--without-mingle', '-l', 'INFO'])"
)
VISIBILITY_TIMEOUT_S = 2.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SWEEP_EVERY_S = 30.0


def wait_until(condition, timeout_s: float, what: str, every_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


# --- throwaway servers ------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own on a fixed loopback port: stop it and start it again on the
    same port, as an outage would. No persistence (like the suite's)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir, self.port = Path(workdir), port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.ping, 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class PostgresCluster:
    """A PostgreSQL cluster of our own (initdb + pg_ctl, as ./dev does; as user postgres when
    root, since PostgreSQL refuses to run as root)."""

    def __init__(self, workdir: Path, port: int | None = None, pg_bin: str | None = None) -> None:
        self.workdir, self.port = Path(workdir), port or free_port()
        self.bin = Path(pg_bin or os.environ.get("PG_BIN") or _debian_pg_bin())
        self.data = self.workdir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://arbsim@127.0.0.1:{self.port}/arbsim"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> PostgresCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            self.workdir.chmod(0o755)
            shutil.chown(self.workdir, "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "arbsim", "--auth=trust", "-E", "UTF8"
        )
        self.start()
        subprocess.run(
            [self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "arbsim", "arbsim"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return self

    def start(self) -> None:
        # Durable commits (unlike ./dev's test cluster): with synchronous_commit=off a crash
        # forgets the last commits while their task messages are already acknowledged, so a
        # decision would be lost. The restart scenario crashes this server on purpose.
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c max_connections=100"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.workdir / "log"),
                  "-w", "-s", "start", "-o", options)  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-s", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


def _debian_pg_bin() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise CommandError("PostgreSQL binaries not found: set PG_BIN or install postgresql")
    return str(found[-1].parent)


# --- workers and the scene they work on ---------------------------------------------------------


def database_url() -> str:
    """The URL of the database this process uses (under pytest: the test database)."""
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Workers:
    """Celery worker processes on the simulator queue, killed and replaced on request."""

    def __init__(self, count: int, log_dir: Path) -> None:
        self.log_dir, self.started, self.killed = Path(log_dir), 0, 0
        self.env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_ALWAYS_EAGER": "0",
                    "REDIS_URL": settings.REDIS_URL, "DB_CONN_MAX_AGE": "0"}  # fmt: skip
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.pool = [self._spawn() for _ in range(count)]

    def _spawn(self) -> subprocess.Popen:
        self.started += 1
        log = open(self.log_dir / f"worker-{self.started}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_MAIN, str(VISIBILITY_TIMEOUT_S)],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random worker wherever it is (mid-task, mid-transaction) and start another."""
        index = rng.randrange(len(self.pool))
        victim = self.pool[index]
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            self.killed += 1
        self.pool[index] = self._spawn()

    def stop(self) -> None:
        for worker in self.pool:
            if worker.poll() is None:
                worker.terminate()
        for worker in self.pool:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


@dataclass
class Verdict:
    """What was tried and what held for one run."""

    scenario: str
    intents: int
    sent: int = 0
    kills: int = 0
    restarts: int = 0
    decided: int = 0
    traded: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    sample_reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


def check_run(run_id: int, intent_ids: list[int], verdict: Verdict) -> Verdict:
    """Exactly once per (run, intent), and the run's money re-computed from its trades."""
    from simulator.models import Decision, SimulatorRun, SimulatorTrade

    run = SimulatorRun.objects.get(pk=run_id)
    decisions = Counter(
        Decision.objects.filter(run=run, intent__isnull=False).values_list("intent_id", flat=True)
    )
    trades = list(
        SimulatorTrade.objects.filter(run=run).values_list("intent_id", "cost_usd", "expected_pnl_usd")
    )
    per_intent = Counter(intent for intent, _, _ in trades)
    missing = [i for i in intent_ids if decisions[i] == 0]
    verdict.decided = sum(1 for i in intent_ids if decisions[i])
    verdict.traded = len(trades)
    verdict.skipped_by_reason = dict(
        Counter(Decision.objects.filter(run=run, outcome="skipped").values_list("reason_code", flat=True))
    )
    verdict.sample_reasons = list(
        Decision.objects.filter(run=run, outcome="skipped").values_list("reason", flat=True).distinct()[:5]
    )
    problems = verdict.problems
    if missing:
        problems.append(f"{len(missing)} intents never decided (e.g. {missing[:5]})")
    problems += [f"intent {i} decided {n} times" for i, n in decisions.items() if n > 1]
    problems += [f"intent {i} traded {n} times" for i, n in per_intent.items() if n > 1]
    traded_decisions = Decision.objects.filter(run=run, outcome="traded").count()
    if traded_decisions != len(trades):
        problems.append(f"{traded_decisions} traded decisions but {len(trades)} trades")
    costs = sum((cost for _, cost, _ in trades), start=run.starting_usd * 0)
    pnl = sum((p for _, _, p in trades), start=run.starting_usd * 0)
    expected = {
        "balance_usd": run.starting_usd - costs,
        "expected_pnl_usd": pnl,
        "trade_count": len(trades),
        "decision_count": sum(decisions.values()),
    }
    for name, value in expected.items():
        if getattr(run, name) != value:
            problems.append(f"run {name} is {getattr(run, name)}, re-computed from the rows: {value}")
    return verdict


KALSHI_KEY_ID = "soak-kalshi-key"
TICKER = "FED-25DEC-T4.00"  # the double's demo scenario: crossed books on this pair
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


def make_scene(double, intents: int, tag: str) -> tuple[int, list[int]]:
    """A user with keys pointing at the double, a running run with room for every trade, and
    `intents` intents on the demo pair. Returns (run id, intent ids)."""
    from django.contrib.auth import get_user_model

    from accounts.services import set_secret, update_profile
    from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
    from ingest.models import ExecutionIntent, MarketPair
    from simulator.services import start_run

    private_pem, public_pem = kalshi_key_pair()
    double.state.register_kalshi_key(KALSHI_KEY_ID, public_pem, balance_cents=10**9)
    user = get_user_model().objects.create_user(f"soak-{tag}-{random.randrange(10**9)}")
    update_profile(user=user, min_net_edge_cents="1", max_leg_usd="100", daily_cap_usd="10000000")
    set_secret(user=user, exchange="kalshi", api_key=KALSHI_KEY_ID,
               extra={"private_key": private_pem, "host": double.kalshi_host})  # fmt: skip
    set_secret(user=user, exchange="polymarket",
               extra={"private_key": TEST_POLYMARKET_PRIVATE_KEY, "host": double.polymarket_host})  # fmt: skip
    pair, _ = MarketPair.objects.get_or_create(
        opportunity_key="FED-DEC",
        defaults={"title": "Fed cut in December", "kalshi_ticker": TICKER,
                  "poly_yes_token": YES_TOKEN, "poly_no_token": NO_TOKEN},
    )  # fmt: skip
    run, _ = start_run(user=user, starting_usd="1000000", label=f"soak {tag}")
    legs = [
        {"venue": "kalshi", "instrument_id": TICKER, "side": "yes", "limit_price": "0.45", "size": "10"},
        {"venue": "polymarket", "instrument_id": NO_TOKEN, "side": "no", "limit_price": "0.50", "size": "10"},
    ]
    rows = ExecutionIntent.objects.bulk_create(
        ExecutionIntent(user=user, pair=pair, opportunity_key=pair.opportunity_key,
                        direction="kalshi_yes_poly_no", net_edge_cents="3.20", size="10", fees_usd="0.18",
                        cost_usd="9.50", legs=legs, books=[], signal_at=run.started_at)
        for _ in range(intents)
    )  # fmt: skip
    return run.pk, [row.pk for row in rows]


def decided_count(run_id: int) -> int | None:
    """Decisions so far; None while the database is unreachable (a restart in progress)."""
    from django.db import DatabaseError, connection

    from simulator.models import Decision

    try:
        return Decision.objects.filter(run_id=run_id).count()
    except DatabaseError:
        connection.close()
        return None


def workers_scenario(
    *,
    name: str,
    double,
    intents: int,
    workers: int,
    log_dir: Path,
    rng: random.Random,
    timeout_s: float,
    kill_every_s: tuple[float, float] = (2.0, 5.0),
    max_kills: int = 1000,
    postgres: PostgresCluster | None = None,
    restarts: int = 0,
    restart_down_s: float = 2.0,
) -> Verdict:
    """Intents flow to Celery workers; workers are SIGKILLed at random moments (and the
    database restarted `restarts` times when given); a tenth of the intents is sent twice."""
    from config.celery import app
    from simulator.sweeps import redispatch_undecided
    from simulator.tasks import decide_intent_task

    verdict = Verdict(scenario=name, intents=intents)
    started = time.monotonic()
    run_id, intent_ids = make_scene(double, intents, name)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("simulator")
    pool = Workers(workers, log_dir)
    try:
        for intent_id in intent_ids:
            for _ in range(2 if rng.random() < 0.1 else 1):
                decide_intent_task.delay(run_id, intent_id)
                verdict.sent += 1
        deadline = time.monotonic() + timeout_s
        last_sweep = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(*kill_every_s))
            if time.monotonic() - last_sweep >= SWEEP_EVERY_S:  # as beat does in a deployment
                redispatch_undecided.delay()
                last_sweep = time.monotonic()
            done = decided_count(run_id)
            if done is not None and done >= intents:
                break
            if pool.killed < max_kills:
                pool.kill_one(rng)
            due = done is not None and done < intents  # mid-run: while intents are still flowing
            if postgres is not None and verdict.restarts < restarts and due:
                postgres.stop("immediate")  # as a crash: connections dropped mid-transaction
                time.sleep(restart_down_s)
                postgres.start()
                verdict.restarts += 1
        verdict.kills = pool.killed
        wait_until(lambda: (decided_count(run_id) or 0) >= intents, max(5.0, deadline - time.monotonic()),
                   "every intent to be decided", every_s=0.5)  # fmt: skip
        time.sleep(VISIBILITY_TIMEOUT_S + 1)  # let redeliveries of the last messages land too
    except TimeoutError as error:
        verdict.problems.append(str(error))
    finally:
        pool.stop()
    check_run(run_id, intent_ids, verdict)
    verdict.seconds = round(time.monotonic() - started, 1)
    return verdict


# The double's books never move, and a run cannot take the same depth twice (its liquidity
# ledger): one scene's books hold six trades. Keep intents_during + 2 within that.
def redis_outage_scenario(*, redis: RedisServer, down_s: float, double, intents_during: int = 4) -> Verdict:
    """The channel layer's Redis is stopped for `down_s` and started again on its port. Intents
    decided meanwhile (eager tasks, through the engine) are committed although their broadcast
    fails; a websocket client that reconnects afterwards gets frames again."""
    import asyncio
    from unittest import mock

    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.db import transaction
    from django.test import Client, override_settings

    from config.asgi import application
    from config.celery import app
    from exchanges.ratelimit import BookCache, LocalRateLimiter
    from ingest.models import ExecutionIntent
    from simulator.engine import validation
    from simulator.intake import intent_arrived
    from simulator.models import SimulatorTrade

    verdict = Verdict(scenario="redis-down", intents=intents_during + 2)
    started = time.monotonic()
    run_id, intent_ids = make_scene(double, intents_during + 2, "redis")
    # Exchange validation on a local limiter: this scenario is about the channel layer.
    validator = validation.ExchangeValidator(
        timeout_s=2, cache=BookCache(ttl_s=0), rate_limiter=LocalRateLimiter()
    )
    user = ExecutionIntent.objects.get(pk=intent_ids[0]).user
    browser = Client()
    browser.force_login(user)
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"),
               (b"cookie", f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode())]  # fmt: skip
    layer = {"default": {"BACKEND": settings.REDIS_CHANNEL_LAYER, "CONFIG": {"hosts": [redis.url]}}}

    def decide(intent_id: int) -> SimulatorTrade | None:
        with transaction.atomic():
            intent_arrived(ExecutionIntent.objects.get(pk=intent_id))
        verdict.sent += 1
        return SimulatorTrade.objects.filter(run_id=run_id, intent_id=intent_id).first()

    async def trade_frame(socket_, trade) -> bool:
        while True:  # the trade's frame, after its run frame if that came first
            frame = await socket_.receive_json_from(timeout=5)
            if frame["event"] == "simulator:trade":
                return frame["data"]["id"] == trade.pk

    async def connect() -> WebsocketCommunicator:
        socket_ = WebsocketCommunicator(application, "/ws/simulator/", headers=headers)
        connected, _ = await socket_.connect(timeout=5)
        if not connected:
            raise ConnectionError("the socket was refused")
        return socket_

    async def scenario() -> None:
        first = await connect()
        trade = await sync_to_async(decide)(intent_ids[0])
        if trade is None or not await trade_frame(first, trade):
            verdict.problems.append("no trade frame before the outage")
        redis.stop()
        outage_started = time.monotonic()
        for intent_id in intent_ids[1:-1]:
            decision_started = time.monotonic()
            if await sync_to_async(decide)(intent_id) is None:
                verdict.problems.append(f"intent {intent_id} was not traded while Redis was down")
            if time.monotonic() - decision_started > 5:
                verdict.problems.append(f"intent {intent_id} took over 5 s to decide while Redis was down")
            await asyncio.sleep(down_s / max(1, intents_during))
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - outage_started)))
        with contextlib.suppress(Exception):  # the old socket's consumer lost its layer
            await first.disconnect()
        redis.start()
        second = None
        for _ in range(20):  # as the page does: reconnect with a pause until it is accepted
            try:
                second = await connect()
                break
            except Exception:
                await asyncio.sleep(0.5)
        if second is None:
            verdict.problems.append("the websocket could not reconnect after Redis came back")
            return
        trade = await sync_to_async(decide)(intent_ids[-1])
        if trade is None or not await trade_frame(second, trade):
            verdict.problems.append("no trade frame after Redis came back")
        await second.disconnect()

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with (
            override_settings(CHANNEL_LAYERS=layer),
            mock.patch.object(validation, "default_validator", lambda: validator),
        ):
            asyncio.run(scenario())
    finally:
        app.conf.task_always_eager = eager
        if redis.process is None:
            redis.start()
    check_run(run_id, intent_ids, verdict)
    verdict.seconds = round(time.monotonic() - started, 1)
    return verdict


def fuzz_scenario(examples: int) -> Verdict:
    """tests/hardening/test_openapi_soak.py: test_openapi_fuzz's schema and rows, more examples."""
    verdict = Verdict(scenario="fuzz", intents=0)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/hardening/test_openapi_soak.py"],
        cwd=ROOT, env={**os.environ, "ARBSIM_FUZZ_EXAMPLES": str(examples)},
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    summary = (result.stdout.strip().splitlines() or ["no output"])[-1]
    verdict.sent = examples
    verdict.skipped_by_reason = {"pytest": summary}  # type: ignore[dict-item]
    if result.returncode != 0:
        verdict.problems.append(f"fuzz failed: {summary}\n{result.stdout[-3000:]}")
    verdict.seconds = round(time.monotonic() - started, 1)
    return verdict


class Command(BaseCommand):
    help = "Long fault runs on throwaway PostgreSQL and Redis: worker kills, a database restart, a Redis outage, API fuzz."

    def add_arguments(self, parser):
        parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"any of {', '.join(SCENARIOS)}")
        number = {
            "--intents": (WholeRule(1, 10_000_000), 10_000, "intents for kill and pg-restart"),
            "--workers": (WholeRule(1, 64), 2, "Celery worker processes"),
            "--redis-down-s": (DecimalRule(Decimal(0), Decimal(3600), places=3), 30.0, "Redis outage length"),
            "--fuzz-examples": (WholeRule(1, 1_000_000), 400, "per API operation"),
            "--seed": (WholeRule(0, 2**63 - 1), 7, "random seed"),
            "--timeout-s": (
                DecimalRule(Decimal(1), Decimal(86400), places=3),
                1800,
                "bound on each scenario",
            ),
        }
        for option, (rule, default, purpose) in number.items():
            convert = float if isinstance(rule, DecimalRule) else None
            parser.add_argument(
                option,
                type=option_type(rule, convert),
                default=default,
                help=f"{purpose} ({rule.accepted()})",
            )
        parser.add_argument("--json", action="store_true", help="one JSON line per scenario")
        parser.add_argument("--inside", help=argparse_hidden())

    def handle(self, *args, **options):
        scenarios = [name.strip() for name in options["scenarios"].split(",") if name.strip()]
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown:
            raise CommandError(f"unknown scenarios {sorted(unknown)}: choose from {', '.join(SCENARIOS)}")
        if options["inside"]:
            return self.run_scenarios(scenarios, options)
        with GracefulShutdown() as shutdown:
            self.run_outside(options, shutdown)

    def run_outside(self, options, shutdown: GracefulShutdown) -> None:
        """Throwaway PostgreSQL and Redis, migrated; this command again (--inside) against them."""
        workdir = Path(tempfile.mkdtemp(prefix="arbsim-soak-"))
        workdir.chmod(0o755)
        postgres = PostgresCluster(workdir / "pg")
        redis = RedisServer(workdir / "redis")
        held = False
        try:
            postgres.init()
            redis.start()
            env = {
                **os.environ,
                "DATABASE_URL": postgres.url,
                "REDIS_URL": redis.url,
                "CELERY_TASK_ALWAYS_EAGER": "0",
            }
            manage = [sys.executable, str(ROOT / "manage.py")]
            subprocess.run(
                [*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=600
            )
            self.stderr.write(f"soak: PostgreSQL {postgres.url}, Redis {redis.url}, logs in {workdir}")
            inside = json.dumps(
                {"pg_dir": str(postgres.workdir), "pg_port": postgres.port, "pg_bin": str(postgres.bin)}
            )
            argv = [sys.executable, "-m", "tools.soak", "--inside", inside, *sys.argv[1:]]
            if not shutdown.requested.is_set():
                inner = subprocess.Popen(argv, cwd=ROOT, env=env)
                shutdown.on_stop(lambda: inner.send_signal(signal.SIGTERM))
                held = inner.wait() == 0
        finally:
            redis.stop()
            postgres.destroy()
        if shutdown.requested.is_set():
            self.stdout.write(
                f"soak stopped ({shutdown.reason}): its workers, PostgreSQL and Redis are down; logs in {workdir}"
            )
            return
        if not held:
            raise CommandError(f"something did not hold (see above; worker logs kept in {workdir})")
        shutil.rmtree(workdir, ignore_errors=True)

    def run_scenarios(self, scenarios: list[str], options) -> None:
        with GracefulShutdown(interrupt_main=True):
            try:
                verdicts = self.run_inside(scenarios, options)
            except StopRequested as stop:
                self.stderr.write(f"soak: stopped by {stop}, the scenario in hand unwound")
                return
        if not all(verdict.held for verdict in verdicts):
            raise CommandError("something did not hold")

    def run_inside(self, scenarios: list[str], options) -> list[Verdict]:
        from exchanges.double import ExchangeDouble, Scenario

        inside = json.loads(options["inside"])
        postgres = PostgresCluster(Path(inside["pg_dir"]), inside["pg_port"], inside["pg_bin"])
        rng = random.Random(options["seed"])
        logs = postgres.workdir.parent / "logs"
        verdicts = []
        with ExchangeDouble(Scenario.demo()) as double:
            for name in scenarios:
                self.stderr.write(f"soak: {name} ...")
                if name in ("kill", "pg-restart"):
                    verdict = workers_scenario(
                        name=name, double=double, intents=options["intents"], workers=options["workers"],
                        log_dir=logs / name, rng=rng, timeout_s=options["timeout_s"],
                        postgres=postgres if name == "pg-restart" else None,
                        restarts=2 if name == "pg-restart" else 0,
                        kill_every_s=(2.0, 5.0) if name == "kill" else (1.0, 2.0),
                        max_kills=1000 if name == "kill" else 0,
                    )  # fmt: skip
                elif name == "redis-down":
                    redis = RedisServer(postgres.workdir.parent / "layer-redis").start()
                    try:
                        verdict = redis_outage_scenario(
                            redis=redis, down_s=options["redis_down_s"], double=double
                        )
                    finally:
                        redis.stop()
                else:
                    verdict = fuzz_scenario(options["fuzz_examples"])
                verdicts.append(verdict)
                self.report(verdict, as_json=options["json"])
        return verdicts

    def report(self, verdict: Verdict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({**asdict(verdict), "held": verdict.held}, default=str))
            return
        self.stdout.write(
            f"{verdict.scenario}: {'HELD' if verdict.held else 'BROKE'} in {verdict.seconds}s: "
            f"{verdict.intents} intents, {verdict.sent} sent, {verdict.kills} workers killed, "
            f"{verdict.restarts} database restarts -> {verdict.decided} decided once, {verdict.traded} traded, "
            f"skipped {verdict.skipped_by_reason}"
        )
        for problem in verdict.problems:
            self.stdout.write(f"  problem: {problem}")


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    Command().run_from_argv(["python -m", "tools.soak", *sys.argv[1:]])


if __name__ == "__main__":
    main()
