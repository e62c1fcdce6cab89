"""python -m tools.soak: long fault runs that do not fit in the test suite (docs/reliability.md).

It starts its own throwaway PostgreSQL cluster (PG_BIN or Debian's) and redis-server on free
loopback ports, migrates, then re-runs itself inside that environment and tries, bounded:

- kill:        N intents decided by Celery workers while the exchange double's books move
               between intents (seeded: mostly deep, sometimes thin, jumped past a limit, or
               gone), so most intents trade and their orders meet a moved book at arrival:
               fills, partials, legged trades, unwinds, misses. Random workers (and, every
               third kill, the arrival scheduler process with the steps it holds; `--arrivals
               celery`: arrival tasks on the workers instead) are SIGKILLed
               while decisions and arrivals are in flight; a tenth of the intents and a tenth
               of the trades' arrival tasks are sent twice; beat's sweeps run from here. Then:
               every (run, intent) decided exactly once, every order's arrival done exactly once
               (no trade left in flight, no step done twice per the workers' logs), every
               trade's arithmetic, and the run's money equal to a clean re-computation from its
               trades;
- pg-restart:  the same (without kills) while the PostgreSQL server is crashed and restarted
               twice mid-run, orders in flight;
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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, timedelta
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.numbers import DecimalRule, WholeRule, option_type
from config.progress import Progress
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


# The soak runs beat's sweeps itself, more often and with shorter delays than beat's (10 s and
# 30 s, a step 10 s late, an intent 60 s old), so that what the broker lost comes back in seconds.
SWEEP_EVERY_S = 5.0
ARRIVAL_LATE_S = 5.0
UNDECIDED_AGE_S = 20.0
TICK_S = 0.05


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


WORKER, SCHEDULER = "worker", "arrival scheduler"
READY = {WORKER: b" ready.", SCHEDULER: b"event=arrival_scheduler_ready"}
SCHEDULER_KILL_EVERY = 3


class Workers:
    """Celery worker processes on the simulator queue (and, with arrivals "scheduler", the
    arrival scheduler process, `manage.py sim_arrivals`), killed and replaced on request."""

    def __init__(self, count: int, log_dir: Path, arrivals: str = "celery") -> None:
        self.log_dir, self.started, self.killed, self.schedulers_killed = Path(log_dir), 0, 0, 0
        self.env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_ALWAYS_EAGER": "0",
                    "REDIS_URL": settings.REDIS_URL, "DB_CONN_MAX_AGE": "0",
                    "SIMULATOR_ARRIVALS": arrivals}  # fmt: skip
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.logs: dict[int, Path] = {}
        self.ready: set[int] = set()
        kinds = [WORKER] * count + ([SCHEDULER] if arrivals == "scheduler" else [])
        self.pool = [self._spawn(kind) for kind in kinds]
        self.kinds = kinds

    def _spawn(self, kind: str) -> subprocess.Popen:
        self.started += 1
        path = self.log_dir / f"worker-{self.started}.log"  # logged_arrivals reads them all
        log = open(path, "ab")  # noqa: SIM115
        command = (
            [sys.executable, "-c", WORKER_MAIN, str(VISIBILITY_TIMEOUT_S)]
            if kind == WORKER
            else [sys.executable, str(ROOT / "manage.py"), "sim_arrivals", "--runners", "2"]
        )
        worker = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.logs[worker.pid] = path
        return worker

    def is_ready(self, index: int) -> bool:
        """Started and consuming (its log says so): starting takes seconds on a busy machine."""
        worker = self.pool[index]
        if (
            worker.pid not in self.ready
            and worker.poll() is None
            and READY[self.kinds[index]] in self.logs[worker.pid].read_bytes()
        ):
            self.ready.add(worker.pid)
        return worker.pid in self.ready and worker.poll() is None

    def each_kind_ready(self) -> bool:
        return all(
            any(self.is_ready(i) for i, k in enumerate(self.kinds) if k == kind) for kind in set(self.kinds)
        )

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a random worker that is working (mid-task, mid-transaction, holding messages)
        and start another; with an arrival scheduler, every third kill is the scheduler's (with
        the steps it holds; while one starts again, no order arrives). Never the last worker
        working (with two or more): a kill rate faster than a worker starts would otherwise leave
        none, and nothing to kill. False when none was."""
        if SCHEDULER in self.kinds and self.killed % SCHEDULER_KILL_EVERY == 1:
            ready = [i for i, kind in enumerate(self.kinds) if kind == SCHEDULER and self.is_ready(i)]
        else:
            workers = [i for i, kind in enumerate(self.kinds) if kind == WORKER]
            ready = [i for i in workers if self.is_ready(i)]
            if len(ready) < min(2, len(workers)):
                return False
        if not ready:
            return False
        index = rng.choice(ready)
        victim = self.pool[index]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        self.killed += 1
        self.schedulers_killed += self.kinds[index] == SCHEDULER
        self.pool[index] = self._spawn(self.kinds[index])
        return True

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
    """What was tried and what held for one scenario."""

    scenario: str
    intents: int
    sent: int = 0
    arrivals: str = "celery"  # how the orders arrive: Celery tasks, or the arrival scheduler process
    kills: int = 0
    kills_in_flight: int = 0  # of which while some of the run's orders were on their way
    scheduler_kills: int = 0  # of which of the arrival scheduler
    restarts: int = 0
    restarts_in_flight: int = 0
    book_moves: dict[str, int] = field(default_factory=dict)  # per kind of move
    decided: int = 0
    traded: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    sample_reasons: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)  # full / partial / legged / missed
    unwinds: int = 0
    arrival_steps: int = 0  # orders that reached their venue (legs and unwinds), from the trades
    arrival_steps_logged: int = 0  # "event=arrived" lines in the workers' logs, at most one each
    arrival_steps_resent: int = 0  # arrival tasks sent a second time on purpose
    arrival_steps_swept: int = 0  # sent again by the overdue-arrivals sweep
    money: dict[str, str] = field(default_factory=dict)  # the run's figures, re-computed equal
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return not self.problems


CENT = Decimal("0.01")
MONEY_PLACES = Decimal("0.0001")  # the money columns' places
ARRIVAL_LINE = re.compile(rb"event=arrived trade_id=(\d+) step=(\S+)")
MAX_LISTED = 10  # problems of one kind listed in full; the rest counted


def _amounts(rows) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(row["price"]), Decimal(row["size"])) for row in rows or ()]


def trade_arithmetic(trade) -> list[str]:
    """The arithmetic every completed trade must satisfy, re-computed from its legs: what each
    order could take is at most the arrival book, its fills are the best-first walk of that at or
    below its limit, the hedged size is the smaller fill, the excess is what was unwound or carried,
    and the cost and expected P&L follow from the fills, fees and unwinds."""
    wrong, filled = [], []
    notional = fees = unwound = marks = Decimal(0)
    for index, leg in enumerate(trade.legs):
        where = f"trade {trade.pk} leg {index}"
        fills = _amounts(leg["fills"])
        size = sum((s for _, s in fills), Decimal(0))
        if leg["state"] == "arrived":
            book = dict(_amounts(leg["arrival_book"]))
            available = _amounts(leg["arrival_available"])
            wrong += [
                f"{where}: {s} available at {p}, more than the arrival book's {book.get(p, 0)}"
                for p, s in available
                if s > book.get(p, Decimal(0))
            ]
            walk, left = [], size
            for price, depth in sorted(available):
                if left <= 0 or price > Decimal(leg["limit_price"]):
                    break
                if depth > 0:
                    walk.append((price, min(depth, left)))
                    left -= min(depth, left)
            if fills != walk:
                wrong.append(f"{where}: fills {fills} are not the walk {walk} of what was available")
        elif fills:
            wrong.append(f"{where}: fills on an order that never arrived ({leg['state']})")
        if Decimal(leg["filled_size"]) != size:
            wrong.append(f"{where}: filled_size {leg['filled_size']} but its fills sum to {size}")
        filled.append(size)
        notional += sum((p * s for p, s in fills), Decimal(0))
        fees += Decimal(leg["fee_usd"])
        marks += Decimal(leg.get("carried_mark_usd") or 0)
        if leg.get("unwind"):
            unwind = leg["unwind"]
            sold = _amounts(unwind["fills"])
            walk, left = [], Decimal(unwind["size"])
            for price, depth in sorted(_amounts(unwind["book"]), reverse=True):
                if left <= 0:
                    break
                if depth > 0:
                    walk.append((price, min(depth, left)))
                    left -= min(depth, left)
            if sold != walk:
                wrong.append(f"{where}: the unwind sold {sold}, not the best-first walk {walk} of the bids")
            unwound += Decimal(unwind["proceeds_usd"]) - Decimal(unwind["fee_usd"])
    matched = min(filled)
    if trade.matched_size != matched:
        wrong.append(f"trade {trade.pk}: matched_size {trade.matched_size}, the smaller fill is {matched}")
    for index, (leg, size) in enumerate(zip(trade.legs, filled, strict=True)):
        if Decimal(leg["unhedged_size"]) != size - matched:
            wrong.append(
                f"trade {trade.pk} leg {index}: unhedged {leg['unhedged_size']}, not {size - matched}"
            )
    cost = (notional.quantize(CENT, rounding=ROUND_CEILING) + fees - unwound).quantize(MONEY_PLACES)
    if trade.cost_usd != cost:
        wrong.append(f"trade {trade.pk}: cost_usd {trade.cost_usd}, re-computed {cost}")
    pnl = (matched - cost + marks).quantize(MONEY_PLACES)
    if trade.expected_pnl_usd != pnl:
        wrong.append(f"trade {trade.pk}: expected_pnl_usd {trade.expected_pnl_usd}, re-computed {pnl}")
    return wrong


def arrival_steps_done(trade) -> list[str]:
    """The trade's orders that reached their venue, as the steps that did it."""
    steps = [f"leg:{i}" for i, leg in enumerate(trade.legs) if leg["state"] == "arrived"]
    return steps + [
        f"unwind:{i}" for i, leg in enumerate(trade.legs) if (leg.get("unwind") or {}).get("book") is not None
    ]


def logged_arrivals(log_dir: Path) -> Counter:
    """(trade id, step) -> how many workers logged doing it (`simulator.engine.arrival` logs
    each step it did, after its commit)."""
    done: Counter = Counter()
    for log in Path(log_dir).glob("worker-*.log"):
        for trade_id, step in ARRIVAL_LINE.findall(log.read_bytes()):
            done[(int(trade_id), step.decode())] += 1
    return done


def _listed(problems: list[str], what: str) -> list[str]:
    if len(problems) <= MAX_LISTED:
        return problems
    return [*problems[:MAX_LISTED], f"... and {len(problems) - MAX_LISTED} more {what}"]


def check_run(run_id: int, intent_ids: list[int], verdict: Verdict, log_dir: Path | None = None) -> Verdict:
    """Exactly once per (run, intent) and per arrival step, every trade's arithmetic, and the
    run's money re-computed from its trades: balance = starting - what the completed trades cost -
    what the ones still in flight hold; held = the in-flight trades' reserves; expected P&L = the
    completed trades'."""
    from simulator.models import Decision, SimulatorRun, SimulatorTrade

    run = SimulatorRun.objects.get(pk=run_id)
    decisions = Counter(
        Decision.objects.filter(run=run, intent__isnull=False).values_list("intent_id", flat=True)
    )
    trades = list(SimulatorTrade.objects.filter(run=run).order_by("pk"))
    per_intent = Counter(trade.intent_id for trade in trades)
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
    problems += _listed([f"intent {i} decided {n} times" for i, n in decisions.items() if n > 1], "doubles")
    problems += _listed([f"intent {i} traded {n} times" for i, n in per_intent.items() if n > 1], "doubles")
    traded_decisions = Decision.objects.filter(run=run, outcome="traded").count()
    if traded_decisions != len(trades):
        problems.append(f"{traded_decisions} traded decisions but {len(trades)} trades")

    done = [trade for trade in trades if trade.arrival_outcome]
    in_flight = [trade for trade in trades if not trade.arrival_outcome]
    verdict.outcomes = dict(Counter(trade.arrival_outcome or "in flight" for trade in trades))
    verdict.unwinds = sum(1 for trade in trades for leg in trade.legs if leg.get("unwind"))
    if in_flight:
        problems.append(
            f"{len(in_flight)} trades still have orders on their way (e.g. trade {in_flight[0].pk})"
        )
    problems += _listed([wrong for trade in done for wrong in trade_arithmetic(trade)], "arithmetic errors")
    steps = {(trade.pk, step) for trade in trades for step in arrival_steps_done(trade)}
    verdict.arrival_steps = len(steps)
    if log_dir is not None:
        ours = {trade.pk for trade in trades}
        logged = {key: n for key, n in logged_arrivals(log_dir).items() if key[0] in ours}
        verdict.arrival_steps_logged = sum(logged.values())
        problems += _listed(
            [f"trade {t} step {s} done {n} times (workers' logs)" for (t, s), n in logged.items() if n > 1],
            "steps done twice",
        )
        problems += _listed(
            [
                f"trade {t} step {s} logged as done but not in the trade"
                for (t, s) in logged
                if (t, s) not in steps
            ],
            "unrecorded steps",
        )

    zero = Decimal(0)
    spent = sum((trade.cost_usd for trade in done), zero)
    held = sum((trade.reserved_usd for trade in in_flight), zero)
    expected = {
        "balance_usd": run.starting_usd - spent - held,
        "reserved_usd": held,
        "expected_pnl_usd": sum((trade.expected_pnl_usd for trade in done), zero),
        "trade_count": len(trades),
        "decision_count": sum(decisions.values()),
    }
    if trades and all(trade.decided_at.astimezone(UTC).date() == run.traded_day for trade in trades):
        expected["traded_today_usd"] = spent + held  # held at decision, the unused part released
    for name, value in expected.items():
        if getattr(run, name) != value:
            problems.append(f"run {name} is {getattr(run, name)}, re-computed from the trades: {value}")
    verdict.money = {
        "starting_usd": str(run.starting_usd),
        "spent_usd": str(spent),
        **{k: str(v) for k, v in expected.items()},
    }
    return verdict


KALSHI_KEY_ID = "soak-kalshi-key"
TICKER = "FED-25DEC-T4.00"  # the double's demo scenario: crossed books on this pair
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
KALSHI_LIMIT, POLYMARKET_LIMIT = Decimal("0.45"), Decimal("0.50")
LEGS = [
    {"venue": "kalshi", "instrument_id": TICKER, "side": "yes", "limit_price": str(KALSHI_LIMIT), "size": "10"},
    {"venue": "polymarket", "instrument_id": NO_TOKEN, "side": "no", "limit_price": str(POLYMARKET_LIMIT), "size": "10"},
]  # fmt: skip


def make_scene(double, intents: int, tag: str) -> tuple[int, list[int]]:
    """A user with keys pointing at the double, a running run with room for every trade, and
    `intents` intents on the demo pair. Returns (run id, intent ids)."""
    from django.contrib.auth import get_user_model

    from accounts.services import set_secret, update_profile
    from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
    from ingest.models import MarketPair
    from simulator.services import start_run

    private_pem, public_pem = kalshi_key_pair()
    double.state.register_kalshi_key(KALSHI_KEY_ID, public_pem, balance_cents=10**9)
    user = get_user_model().objects.create_user(f"soak-{tag}-{random.randrange(10**9)}")
    update_profile(user=user, min_net_edge_cents="1", max_leg_usd="100", daily_cap_usd="10000000")
    set_secret(user=user, exchange="kalshi", api_key=KALSHI_KEY_ID,
               extra={"private_key": private_pem, "host": double.kalshi_host})  # fmt: skip
    set_secret(user=user, exchange="polymarket",
               extra={"private_key": TEST_POLYMARKET_PRIVATE_KEY, "host": double.polymarket_host})  # fmt: skip
    MarketPair.objects.get_or_create(
        opportunity_key="FED-DEC",
        defaults={"title": "Fed cut in December", "kalshi_ticker": TICKER,
                  "poly_yes_token": YES_TOKEN, "poly_no_token": NO_TOKEN},
    )  # fmt: skip
    run, _ = start_run(user=user, starting_usd="1000000", label=f"soak {tag}")
    return run.pk, add_intents(run.pk, intents)


def add_intents(run_id: int, count: int) -> list[int]:
    """`count` intents on the demo pair for the run's user, seen now (as ingest would make them:
    each intent's time seeds the run's draws for it, so each draws its own latencies)."""
    from django.utils import timezone

    from ingest.models import ExecutionIntent, MarketPair
    from simulator.models import SimulatorRun

    user_id = SimulatorRun.objects.values_list("user_id", flat=True).get(pk=run_id)
    pair = MarketPair.objects.get(opportunity_key="FED-DEC")
    now = timezone.now()
    rows = ExecutionIntent.objects.bulk_create(
        ExecutionIntent(user_id=user_id, pair=pair, opportunity_key=pair.opportunity_key,
                        direction="kalshi_yes_poly_no", net_edge_cents="3.20", size="10", fees_usd="0.18",
                        cost_usd="9.50", legs=LEGS, books=[], signal_at=now - timedelta(milliseconds=i))
        for i in range(count)
    )  # fmt: skip
    return [row.pk for row in rows]


class BookMover:
    """Moves the double's books on the scene's pair every `every_ms`, seeded, as a market moves
    between intents: mostly a deep book at the intents' limits (they trade in full), sometimes a
    thin one (partial fills, the other leg's excess unwound), a price that jumped past one leg's
    limit (decisions skip it; orders already on their way leg, their filled leg unwound) or past
    both (missed), and now and then thin bids (an unwind sells part and carries the rest). Every
    move is a new snapshot (Polymarket's timestamp goes up; Kalshi's books are stamped when read),
    so the run's liquidity ledger starts again at each move. Puts the books back when stopped."""

    KINDS = {"deep": 70, "thin": 12, "jumped": 13, "gone": 5}

    def __init__(self, double, seed: int, every_ms: tuple[int, int] = (30, 250)) -> None:
        self.double, self.rng, self.every_ms = double, random.Random(seed), every_ms
        self.moves: Counter = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_ts_ms = 0
        self._kalshi = double.state.kalshi_market(TICKER)
        self._polymarket = double.state.polymarket_book(NO_TOKEN)

    def move(self) -> str:
        rng, tick = self.rng, CENT
        kind = rng.choices(list(self.KINDS), weights=list(self.KINDS.values()))[0]
        asks = {"kalshi": KALSHI_LIMIT, "polymarket": POLYMARKET_LIMIT}
        depth = {venue: rng.randint(20, 60) for venue in asks}
        if kind == "thin":
            depth[rng.choice(list(asks))] = rng.randint(1, 9)
        elif kind == "jumped":
            venue = rng.choice(list(asks))
            asks[venue] += tick * rng.randint(1, 3)
        elif kind == "gone":
            for venue in asks:
                asks[venue] += tick * rng.randint(1, 3)
        bids = {venue: rng.randint(1, 9) if rng.random() < 0.2 else rng.randint(20, 200) for venue in asks}
        ask, bid = asks["kalshi"], asks["kalshi"] - tick
        # Kalshi lists bids only: a YES ask at p is a NO bid at 1 - p.
        self.double.state.set_kalshi_book(
            TICKER,
            yes_bids=[[bid, bids["kalshi"]], [bid - 2 * tick, 100]],
            no_bids=[[1 - ask, depth["kalshi"]], [1 - ask - tick, 100]],
        )
        ask, bid = asks["polymarket"], asks["polymarket"] - tick
        self._last_ts_ms = max(int(time.time() * 1000), self._last_ts_ms + 1)
        self.double.state.set_polymarket_book(
            NO_TOKEN,
            bids=[[bid, bids["polymarket"]], [bid - 2 * tick, 100]],
            asks=[[ask, depth["polymarket"]], [ask + tick, 100]],
            timestamp_ms=self._last_ts_ms,
        )
        self.moves[kind] += 1
        return kind

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.every_ms) / 1000):
            self.move()

    def start(self) -> BookMover:
        self.move()
        self._thread = threading.Thread(target=self._loop, name="soak-book-mover", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.double.state.add_kalshi_market(self._kalshi)
        self.double.state.add_polymarket_book(self._polymarket)


def quietly(read, default=None):
    """`read()`, or `default` while the database is unreachable (a restart in progress)."""
    from django.db import DatabaseError, connection

    try:
        return read()
    except DatabaseError:
        connection.close()
        return default


def progress_of(run_id: int) -> tuple[int, int] | None:
    """(decisions, trades with orders on their way); None while the database is unreachable."""
    from simulator.models import Decision, SimulatorTrade

    def read() -> tuple[int, int]:
        decided = Decision.objects.filter(run_id=run_id).count()
        return decided, SimulatorTrade.objects.filter(run_id=run_id, arrival_outcome="").count()

    return quietly(read)


class ArrivalDuplicates:
    """Sends the arrival tasks of about a tenth of the run's new trades a second time (a
    duplicate delivery), once each."""

    def __init__(self, run_id: int, rng: random.Random, share: float = 0.1) -> None:
        self.run_id, self.rng, self.share, self.seen, self.sent = run_id, rng, share, 0, 0

    def __call__(self) -> None:
        from simulator.engine import steps_of
        from simulator.models import SimulatorTrade
        from simulator.tasks import schedule_arrivals

        new = SimulatorTrade.objects.filter(run_id=self.run_id, pk__gt=self.seen).order_by("pk")
        for trade in new.only("legs", "user", "arrival_outcome"):
            self.seen = trade.pk
            if not trade.arrival_outcome and self.rng.random() < self.share:
                steps = steps_of(trade)
                schedule_arrivals(steps)
                self.sent += len(steps)


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
    window: int = 0,
    arrivals: str = "celery",
) -> Verdict:
    """Intents flow to Celery workers while the double's books move; workers are SIGKILLed at
    random moments (and the database restarted `restarts` times when given), a tenth of the
    intents and a tenth of the trades' arrival tasks are sent twice, and the sweeps run as beat
    would, more often. Then every trade's orders are waited for and the run is checked.
    `arrivals`: SIMULATOR_ARRIVALS, for the workers and here (the sweeps, the duplicates)."""
    from config.celery import app
    from simulator import arrival_scheduler
    from simulator.intake import redispatch_overdue_arrivals, redispatch_undecided
    from simulator.tasks import decide_intent_task

    verdict = Verdict(scenario=name, intents=intents, arrivals=arrivals)
    started = time.monotonic()
    run_id, intent_ids = make_scene(double, 0, name)
    window = window or 3 * workers  # undecided intents at a time: arrivals run near their time
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("simulator")
    arrival_scheduler.redis_client().delete(arrival_scheduler.FEED_KEY)
    pool = Workers(workers, log_dir, arrivals)
    mover = BookMover(double, rng.randrange(2**32))
    duplicates = ArrivalDuplicates(run_id, random.Random(rng.randrange(2**32)))
    deadline = started + timeout_s
    display = Progress(f"soak {name}", unit="decided", total=intents, stream=sys.stderr, every_s=10)
    settings.SIMULATOR_ARRIVALS, arrivals_before = arrivals, settings.SIMULATOR_ARRIVALS
    try:
        wait_until(pool.each_kind_ready, max(1.0, deadline - time.monotonic()), "the workers to start")
        mover.start()
        now = time.monotonic()
        next_kill, next_sweep = now + rng.uniform(*kill_every_s), now + SWEEP_EVERY_S
        decided = in_flight = 0
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"timed out after {timeout_s}s with {decided} of {intents} decided "
                                   f"and {in_flight} trades still in flight")  # fmt: skip
            counts = progress_of(run_id)
            if counts is None:  # the database is restarting
                time.sleep(TICK_S)
                continue
            decided, in_flight = counts
            display.update(done=decided, sent=len(intent_ids), in_flight=in_flight, kills=pool.killed,
                           restarts=verdict.restarts, book_moves=sum(mover.moves.values()))  # fmt: skip
            if decided >= intents and in_flight == 0:
                break
            room = min(window - (len(intent_ids) - decided), intents - len(intent_ids))
            if room > 0 and (new := quietly(lambda n=room: add_intents(run_id, n))):
                for intent_id in new:
                    for _ in range(2 if rng.random() < 0.1 else 1):
                        decide_intent_task.delay(run_id, intent_id)
                        verdict.sent += 1
                intent_ids += new
            quietly(duplicates)
            if now >= next_sweep:  # as beat does, more often
                verdict.arrival_steps_swept += quietly(
                    lambda: redispatch_overdue_arrivals(late_s=ARRIVAL_LATE_S), 0
                )
                quietly(lambda: redispatch_undecided(min_age_s=UNDECIDED_AGE_S))
                next_sweep = now + SWEEP_EVERY_S
            if now >= next_kill and pool.killed < max_kills:
                if pool.kill_one(rng):
                    verdict.kills_in_flight += in_flight > 0
                next_kill = now + rng.uniform(*kill_every_s)
            due = (verdict.restarts + 1) * intents / (restarts + 1)  # evenly through the run
            if postgres is not None and verdict.restarts < restarts and decided >= due:
                postgres.stop("immediate")  # as a crash: connections dropped mid-transaction
                time.sleep(restart_down_s)
                postgres.start()
                verdict.restarts += 1
                verdict.restarts_in_flight += in_flight > 0
            time.sleep(TICK_S)
        time.sleep(VISIBILITY_TIMEOUT_S + 1)  # let redeliveries of the last messages land too
    except TimeoutError as error:
        verdict.problems.append(str(error))
    finally:
        display.close()
        mover.stop()
        pool.stop()
        settings.SIMULATOR_ARRIVALS = arrivals_before
    verdict.kills = pool.killed
    verdict.scheduler_kills = pool.schedulers_killed
    verdict.book_moves = dict(mover.moves)
    verdict.arrival_steps_resent = duplicates.sent
    check_run(run_id, intent_ids, verdict, log_dir=log_dir)
    verdict.seconds = round(time.monotonic() - started, 1)
    return verdict


# Here the double's books stay as the demo has them, and a run cannot take the same depth twice
# from one snapshot (its liquidity ledger): one scene's books hold six trades. Keep
# intents_during + 2 within that.
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
            "--intents": (WholeRule(1, 10_000_000), 2_000, "intents for kill and pg-restart"),
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
        parser.add_argument(
            "--arrivals",
            choices=("scheduler", "celery"),
            default="scheduler",
            help="how orders arrive in kill and pg-restart: the arrival scheduler process (what "
            "docker-compose runs; every third kill is its) or Celery tasks due at their time",
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
                        max_kills=1000 if name == "kill" else 0, arrivals=options["arrivals"],
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
        v = verdict
        moves = sum(v.book_moves.values())
        self.stdout.write(
            f"{v.scenario}: {'HELD' if v.held else 'BROKE'} in {v.seconds}s: {v.intents} intents, {v.sent} sent, "
            f"orders arriving by {v.arrivals}, {v.kills} workers killed ({v.kills_in_flight} with orders in "
            f"flight, {v.scheduler_kills} of them the arrival scheduler), {v.restarts} database "
            f"restarts ({v.restarts_in_flight} with orders in flight), {moves} book moves {v.book_moves}"
        )
        if v.intents:
            share = f" ({100 * v.traded // v.decided}%)" if v.decided else ""
            self.stdout.write(
                f"  decisions: {v.decided} of {v.intents} decided once, traded/decided {v.traded}/{v.decided}"
                f"{share}, skipped {v.skipped_by_reason}"
            )
        if v.traded:
            outcomes = ", ".join(f"{name} {count}" for name, count in sorted(v.outcomes.items()))
            self.stdout.write(
                f"  arrivals: {v.arrival_steps} orders reached their venue ({v.arrival_steps_logged} logged by "
                f"the workers); {v.arrival_steps_resent} arrival tasks sent twice on purpose, "
                f"{v.arrival_steps_swept} re-sent by the overdue sweep; outcomes: {outcomes}; {v.unwinds} unwinds"
            )
        if v.money:
            m = v.money
            self.stdout.write(
                f"  money re-computed from {v.traded} trades: balance {m['balance_usd']} = {m['starting_usd']} "
                f"- {m['spent_usd']} spent - {m['reserved_usd']} held; reserved {m['reserved_usd']}; "
                f"expected P&L {m['expected_pnl_usd']}: {'equal' if v.held else 'see the problems'}"
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
