"""Intents decided and their orders arrived, per second, by one engine worker on PostgreSQL,
next to a raw libpq loop writing the same rows in no more round trips.

Not a test: prints a table (and `run()` gives its figure rows to `python -m bench`). Needs
DATABASE_URL (PostgreSQL; `./dev bench` starts one) and REDIS_URL for the channel layer. Each
intent goes through both phases, as a worker runs them: `decide_intent` (the trade written with
its orders sent), then every arrival step of its trade (`arrive_in_order`: each leg's order
filled against the book at its arrival, the trade completed and the held money released). The
books at arrival come from memory (deep, so every order fills): the figure is the engine's own
cost, not a venue's. Rows:

- engine, validation against the exchange double on loopback, no cache (every decision signs
  and sends the Kalshi and Polymarket calls),
- engine, validation cached (BookCache TTL longer than the run): the engine's own overhead,
- raw libpq (the reference): the same rows, written and read by the engine's own SQL statements
  (the same text, prepared once on the server), in the same transactions with the same locks,
  in the same number of round trips, from a bare libpq connection (`psycopg.pq`, blocking) with
  every parameter pre-encoded from a trade the engine wrote: no logic, no ORM, no JSON work.
  Per intent: BEGIN + the locked read of run, decided, intent, pair and secret stamps; the
  insert of decision and trade with the run's money, + COMMIT; then per arrival step: BEGIN +
  the run's and trade's rows locked and read; the trade's leg patched (and, at the last step,
  its figures) and the run's ledger (and money) updated, + COMMIT (the last step reads back the
  rows' other columns, for the page). Each "+" is a libpq pipeline: one round trip.

Round trips per intent are counted, not assumed: after the timed batches, a few intents of the
cached engine and of the reference go through a loopback TCP proxy in front of PostgreSQL that
counts each time a client speaks after the server has answered (`RoundTripCounter`).

The three are measured interleaved, in batches of `--batch` intents each, so that load from
other processes on the machine falls on all of them alike; /proc/loadavg is printed with the
figures. The engine's time includes sending its websocket events after commit (Redis layer).
Django's DEBUG query log is off, as in a deployment.

The ratio engine-cached / raw is the figure to watch (target >= 0.5), with p99 latency < 25 ms.

Run: DATABASE_URL=postgres://... .venv/bin/python -m bench.bench_engine [--intents 500 --batch 25]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

TICKER = "FED-25DEC-T4.00"
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
KEY_ID = "bench-engine-key"
DEEP = "1000000"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def row(name: str, latencies_ms: list[float], elapsed_s: float) -> dict:
    return {
        "name": name,
        "per_s": len(latencies_ms) / elapsed_s,
        "p50": statistics.median(latencies_ms),
        "p99": percentile(latencies_ms, 0.99),
    }


def setup_scene(double, intents: int, key_id: str = KEY_ID):
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from accounts.models import UserProfile
    from accounts.services import set_secret
    from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
    from ingest.models import ExecutionIntent, MarketPair

    stamp = int(time.time() * 1000)
    user = get_user_model().objects.create(username=f"bench-engine-{stamp}-{key_id}")
    UserProfile.objects.update_or_create(
        user=user,
        defaults={
            "min_net_edge_cents": Decimal("1"),
            "max_leg_usd": Decimal("100"),
            "daily_cap_usd": Decimal("10000000"),
        },
    )
    private_pem, _ = kalshi_key_pair()
    set_secret(
        user=user,
        exchange="kalshi",
        api_key=key_id,
        extra={"private_key": private_pem, "host": double.kalshi_host},
    )
    set_secret(
        user=user,
        exchange="polymarket",
        extra={"private_key": TEST_POLYMARKET_PRIVATE_KEY, "host": double.polymarket_host},
    )
    pair, _ = MarketPair.objects.get_or_create(
        opportunity_key="BENCH-FED",
        defaults={"kalshi_ticker": TICKER, "poly_yes_token": YES_TOKEN, "poly_no_token": NO_TOKEN},
    )
    legs = [
        {"venue": "kalshi", "instrument_id": TICKER, "side": "yes", "limit_price": "0.45", "size": "10"},
        {"venue": "polymarket", "instrument_id": NO_TOKEN, "side": "no", "limit_price": "0.50", "size": "10"},
    ]
    from django.utils import timezone

    rows = ExecutionIntent.objects.bulk_create(
        [
            ExecutionIntent(
                user=user,
                pair=pair,
                opportunity_key=pair.opportunity_key,
                direction="kalshi_yes_poly_no",
                net_edge_cents=Decimal("3.2"),
                size=Decimal("10"),
                fees_usd=Decimal("0.18"),
                cost_usd=Decimal("9.50"),
                legs=legs,
                books=[],
                signal_at=timezone.now(),
            )
            for _ in range(intents)
        ]
    )
    return user, [intent.pk for intent in rows]


class ArrivalBooks:
    """The book each order meets at arrival, from memory: one deep book per venue, so every
    order fills whole (an `ArrivalBooks` source for `arrive`)."""

    def __init__(self) -> None:
        from decimal import Decimal

        from exchanges.books import Book, Level

        deep = Decimal(DEEP)
        self.books = {
            "kalshi": Book(
                venue="kalshi",
                instrument_id=TICKER,
                side="yes",
                asks=(Level(Decimal("0.45"), deep),),
                bids=(Level(Decimal("0.44"), deep),),
            ),
            "polymarket": Book(
                venue="polymarket",
                instrument_id=NO_TOKEN,
                side="no",
                asks=(Level(Decimal("0.50"), deep),),
                bids=(Level(Decimal("0.47"), deep),),
            ),
        }

    def __call__(self, user_id, order, at):
        return self.books[order.venue], ""


class Mode:
    """One row of the table: its own run, latencies and time, accumulated over the batches."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies_ms: list[float] = []
        self.elapsed_s = 0.0
        self.traded = 0
        self.steps = 0
        self.cpu_s = 0.0  # the measuring thread's own CPU time (not the server's, not waits)

    def result(self) -> dict:
        result = row(self.name, self.latencies_ms, self.elapsed_s)
        result["traded"] = self.traded
        result["steps"] = self.steps
        result["cpu_ms"] = self.cpu_s * 1000 / len(self.latencies_ms)
        return result


def engine_batch(mode: Mode, run_id: int, intent_ids: list[int], validator, books: ArrivalBooks) -> None:
    """Each intent as a worker takes it: decided, then every step of its trade's arrival."""
    from simulator.engine import arrive_in_order, decide_intent, in_flight_steps

    started, cpu = time.perf_counter(), time.thread_time()
    for intent_id in intent_ids:
        t0 = time.perf_counter()
        decision = decide_intent(run_id=run_id, intent_id=intent_id, validator=validator)
        mode.steps += arrive_in_order(in_flight_steps(decision), books=books)
        mode.latencies_ms.append((time.perf_counter() - t0) * 1000)
        mode.traded += decision.outcome == "traded"
    mode.elapsed_s += time.perf_counter() - started
    mode.cpu_s += time.thread_time() - cpu


def _proxy(target: tuple[str, int], ready, count) -> None:
    """The counting proxy's process (see `RoundTripCounter`): threads pumping bytes both ways."""
    import selectors
    import socket
    import threading

    def pump(client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        last_from = None
        with client, server:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is client and last_from is not client:
                        with count.get_lock():
                            count.value += 1
                    last_from = key.fileobj
                    key.data.sendall(data)

    listener = socket.create_server(("127.0.0.1", 0))
    ready.send(listener.getsockname()[1])
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(target)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pump, args=(client, server), daemon=True).start()


class RoundTripCounter:
    """A loopback TCP proxy in front of PostgreSQL that counts round trips: each time a client
    sends after the server has answered (or first on its connection) counts one, however many
    statements or packets that message holds. In a process of its own (libpq's blocking calls
    hold this one's interpreter lock). Only for counting: it adds latency."""

    def __init__(self, host: str, port: int) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0)
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_proxy, args=((host, port), send, self._count), daemon=True)
        self._process.start()
        self.port = receive.recv()

    @property
    def count(self) -> int:
        return self._count.value

    def close(self) -> None:
        self._process.terminate()
        self._process.join(5)


def _numbered(sql: str) -> bytes:
    """%s placeholders as the server's $1, $2, ..."""
    parts = sql.split("%s")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1)).encode()


class RawWriter:
    """The reference: the engine's rows, statements, transactions and round trips, with nothing
    else (see the module's docstring). Its parameters are those of a trade the engine wrote
    (`template`), encoded once; per intent only the run, intent and trade ids change."""

    def __init__(self, template: dict, host: str, port: int) -> None:
        from django.db import connection
        from psycopg import pq
        from psycopg.adapt import PyFormat, Transformer
        from psycopg.conninfo import make_conninfo

        from simulator.engine import arrival, arrival_store, load, write
        from simulator.engine.rows import RESERVE_FIELDS
        from simulator.engine.sql import json_text_of, shape
        from simulator.models import Decision, SimulatorRun, SimulatorTrade

        self.pq = pq
        self.ok = {pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK}
        connection.ensure_connection()
        transformer = Transformer(connection.connection)

        def encoded(params: list) -> list[bytes | None]:
            return list(transformer.dump_sequence(params, [PyFormat.TEXT] * len(params)))

        params = connection.get_connection_params()
        keys = {"dbname", "user", "password"}
        conninfo = make_conninfo(**{k: v for k, v in params.items() if k in keys}, host=host, port=port)
        self.pgconn = pq.PGconn.connect(conninfo.encode())
        if self.pgconn.status != pq.ConnStatus.OK:
            raise RuntimeError(self.pgconn.get_error_message())
        # The arrival's writes, as the engine sends them for two legs sent at once that both fill:
        # the first step patches its leg and the run's ledger; the second patches its leg, writes
        # the trade's figures and the run's ledger and money, and reads back the rows' other columns.
        run_fields = ("liquidity_state", *arrival.MONEY_FIELDS)
        statements = {
            "decide_read": load._inputs_sql(lock=True),
            "decide_write": write._write_sql(True, tuple(RESERVE_FIELDS)),
            "arrive_read": arrival_store._lock_sql(),
            "arrive_write": arrival_store.write_sql((), True, ("liquidity_state",)),
            "complete_write": arrival_store.write_sql(
                arrival.FIGURE_FIELDS, True, run_fields, returning=True
            ),
        }
        for name, sql in statements.items():
            self._check([self.pgconn.prepare(name.encode(), _numbered(sql))])

        # The decision's write: the decision and trade rows (run_id and intent_id set per
        # intent), the run's money, the run's id.
        json_text: dict[int, str] = {}
        decision_shape, trade_shape = write._insert_shape(Decision), write._insert_shape(SimulatorTrade)
        decision = decision_shape.params(template["decision"], json_text)
        trade = trade_shape.params(template["queued"], json_text, skip="decision_id")
        reserve = shape(SimulatorRun, tuple(RESERVE_FIELDS)).params(template["run_decided"], json_text)
        self.decide_params = encoded([*decision, *trade, *reserve, 0])
        names = [f.attname for f in decision_shape.fields]
        trade_names = [f.attname for f in trade_shape.fields if f.attname != "decision_id"]
        self.run_slots = [names.index("run_id"), len(names) + trade_names.index("run_id"), -1]
        self.intent_slots = [names.index("intent_id"), len(names) + trade_names.index("intent_id")]
        # The arrival's writes: the step's leg (its index and JSON), the trade's fields, the
        # trade's id, the run's fields, the run's id (slot -1).
        first_index, done_index = template["step_legs"]
        first_leg = [str(first_index), json_text_of(template["first_leg"].legs[first_index])]
        ledger = shape(SimulatorRun, ("liquidity_state",)).params(template["run_first_leg"], json_text)
        self.arrive_params = encoded([*first_leg, 0, *ledger, 0])
        self.arrive_trade_slot = len(first_leg)
        done_leg = [str(done_index), json_text_of(template["done"].legs[done_index])]
        figures = shape(SimulatorTrade, arrival.FIGURE_FIELDS).params(template["done"], json_text)
        money = shape(SimulatorRun, run_fields).params(template["run_done"], json_text)
        self.complete_params = encoded([*done_leg, *figures, 0, *money, 0])
        self.complete_trade_slot = len(done_leg) + len(figures)

    def _check(self, results) -> None:
        for result in results:
            if result.status not in self.ok:
                raise RuntimeError(result.error_message.decode())

    def _pipeline(self, *messages: tuple[bytes, list]) -> list:
        """One round trip: the messages (b"BEGIN", b"COMMIT" or a prepared statement's name with
        its parameters), then a sync; their results."""
        pq, pgconn = self.pq, self.pgconn
        pgconn.enter_pipeline_mode()
        for name, params in messages:
            if name in (b"BEGIN", b"COMMIT"):
                pgconn.send_query_params(name, None)
            else:
                pgconn.send_query_prepared(name, params)
        pgconn.pipeline_sync()
        results = []
        while True:
            result = pgconn.get_result()
            if result is None:
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            results.append(result)
        pgconn.exit_pipeline_mode()
        self._check(results)
        return results

    def decide_and_arrive(self, run_id: int, intent_id: int) -> None:
        run, intent = str(run_id).encode(), str(intent_id).encode()
        self._pipeline((b"BEGIN", []), (b"decide_read", [run, intent]))
        params = self.decide_params.copy()
        for slot in self.run_slots:
            params[slot] = run
        for slot in self.intent_slots:
            params[slot] = intent
        written = self._pipeline((b"decide_write", params), (b"COMMIT", []))[0]
        trade = written.get_value(0, 1)
        for statement, template, slot in (
            (b"arrive_write", self.arrive_params, self.arrive_trade_slot),
            (b"complete_write", self.complete_params, self.complete_trade_slot),
        ):
            self._pipeline((b"BEGIN", []), (b"arrive_read", [trade]))
            params = template.copy()
            params[slot], params[-1] = trade, run
            self._pipeline((statement, params), (b"COMMIT", []))

    def batch(self, mode: Mode, run_id: int, intent_ids: list[int]) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        for intent_id in intent_ids:
            t0 = time.perf_counter()
            self.decide_and_arrive(run_id, intent_id)
            mode.latencies_ms.append((time.perf_counter() - t0) * 1000)
            mode.traded += 1
            mode.steps += 2
        mode.elapsed_s += time.perf_counter() - started
        mode.cpu_s += time.thread_time() - cpu

    def close(self) -> None:
        self.pgconn.finish()


def capture_template(user, intent_id: int, validator, books: ArrivalBooks) -> dict:
    """One intent decided and arrived step by step by the engine, its rows read after each
    step: the values the reference writes."""
    from simulator.engine import arrive_step, decide_intent, in_flight_steps
    from simulator.models import Decision, SimulatorRun, SimulatorTrade
    from simulator.services import start_run, stop_run

    run_id = start_run(user=user, starting_usd="10000000", label="template")[0].pk
    decision = decide_intent(run_id=run_id, intent_id=intent_id, validator=validator)
    template = {
        "decision": Decision.objects.get(pk=decision.pk),
        "queued": SimulatorTrade.objects.get(decision_id=decision.pk),
        "run_decided": SimulatorRun.objects.get(pk=run_id),
    }
    steps = sorted(in_flight_steps(decision), key=lambda step: step.at)
    if len(steps) != 2:
        raise RuntimeError(f"expected two legs sent at once, got steps {steps}")
    template["step_legs"] = [int(step.step.removeprefix("leg:")) for step in steps]
    for step, trade_key, run_key in zip(
        steps, ("first_leg", "done"), ("run_first_leg", "run_done"), strict=True
    ):
        arrived = arrive_step(step, books)
        if not arrived.done_now or arrived.next_steps:
            raise RuntimeError(f"step {step.step}: expected done with nothing after, got {arrived}")
        template[trade_key] = SimulatorTrade.objects.get(pk=step.trade_id)
        template[run_key] = SimulatorRun.objects.get(pk=run_id)
    if template["done"].arrival_outcome != "full":
        raise RuntimeError(f"the template trade arrived {template['done'].arrival_outcome!r}, not full")
    stop_run(user=user, run_id=run_id)
    return template


def count_round_trips(user, intent_ids: list[int], validator, books, template, database) -> dict:
    """Round trips per intent, engine (validation cached) and reference, through the counting
    proxy: a few intents to prepare the statements on the new connections, then `intent_ids`."""
    from django.db import connection

    from simulator.services import start_run, stop_run

    counter = RoundTripCounter(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))
    warm, counted = intent_ids[:3], intent_ids[3:]
    settings_dict = connection.settings_dict
    original = (settings_dict["HOST"], settings_dict["PORT"])
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", counter.port
    try:
        run_id = start_run(user=user, starting_usd="10000000", label="count")[0].pk
        engine_batch(Mode("warm-up"), run_id, warm, validator, books)
        before = counter.count
        engine_batch(Mode("count"), run_id, counted, validator, books)
        engine = (counter.count - before) / len(counted)
        stop_run(user=user, run_id=run_id)
        raw_run = start_run(user=user, starting_usd="10000000", label="count raw")[0].pk
        raw = RawWriter(template, "127.0.0.1", counter.port)
        raw.batch(Mode("warm-up"), raw_run, warm)
        before = counter.count
        raw.batch(Mode("count"), raw_run, counted)
        reference = (counter.count - before) / len(counted)
        raw.close()
        stop_run(user=user, run_id=raw_run)
    finally:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = original
        counter.close()
    return {"engine": engine, "reference": reference, "intents": len(counted)}


def measure(intents: int = 500, batch: int = 25) -> dict:
    """The three modes, interleaved batch by batch, then the round trips counted.
    -> {"results": [...], "load": (before, after), "round_trips": {...}}."""
    from django.conf import settings
    from django.db import connection

    from bench.common import loadavg, migrate
    from exchanges.double import ExchangeDouble, Scenario
    from exchanges.ratelimit import BookCache
    from exchanges.testing import kalshi_key_pair
    from simulator.engine.validation import ExchangeValidator
    from simulator.services import start_run, stop_run

    migrate()
    debug, settings.DEBUG = settings.DEBUG, False  # no query log: a deployment has none
    _, public_pem = kalshi_key_pair()
    books = ArrivalBooks()
    try:
        with ExchangeDouble(Scenario.demo()) as double:
            double.state.register_kalshi_key(KEY_ID, public_pem, balance_cents=10**12)
            # Deep books so every intent fills: the bench measures the pipeline, not the ledger.
            double.state.set_kalshi_book(TICKER, yes_bids=[["0.40", DEEP]], no_bids=[["0.55", DEEP]])
            double.state.set_polymarket_book(NO_TOKEN, bids=[["0.47", DEEP]], asks=[["0.50", DEEP]])
            user, intent_ids = setup_scene(double, intents)
            # No limiter here: one worker, and the bench is about our own overhead.
            live = ExchangeValidator(cache=BookCache(ttl_s=0))
            cached = ExchangeValidator(cache=BookCache(ttl_s=3600))

            def new_run(label: str) -> int:
                return start_run(user=user, starting_usd="10000000", label=label)[0].pk

            warm = intent_ids[: min(20, len(intent_ids))]
            for validator in (live, cached):
                warm_run = new_run("warm-up")
                engine_batch(Mode("warm-up"), warm_run, warm, validator, books)
                stop_run(user=user, run_id=warm_run)
            template = capture_template(user, intent_ids[0], cached, books)
            database = connection.settings_dict
            raw_writer = RawWriter(template, database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))
            raw_writer.batch(Mode("warm-up"), new_run("warm-up"), warm)
            modes = {
                "live": (Mode("engine, validation against the double"), new_run("engine, live")),
                "cached": (Mode("engine, validation cached"), new_run("engine, cached")),
                "raw": (Mode("raw libpq, same rows and round trips"), new_run("raw")),
            }
            load_before = loadavg()
            for first in range(0, len(intent_ids), batch):
                chunk = intent_ids[first : first + batch]
                engine_batch(*modes["live"], chunk, live, books)
                engine_batch(*modes["cached"], chunk, cached, books)
                raw_writer.batch(*modes["raw"], chunk)
            load_after = loadavg()
            raw_writer.close()
            for _, run_id in modes.values():
                stop_run(user=user, run_id=run_id)
            round_trips = count_round_trips(
                user, intent_ids[: min(23, len(intent_ids))], cached, books, template, database
            )
    finally:
        settings.DEBUG = debug
    return {
        "results": [mode.result() for mode, _ in modes.values()],
        "load": (load_before, load_after),
        "round_trips": round_trips,
    }


def run(intents: int = 500, batch: int = 25) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure, missing_services, setup_django, skipped

    why_not = missing_services()
    if why_not:
        return skipped("engine", why_not)
    setup_django()
    measured = measure(intents, batch)
    live, cached, raw = measured["results"]
    trips = measured["round_trips"]
    load = f"loadavg {measured['load'][0]} -> {measured['load'][1]}"
    rows = []
    for result, note in (
        (live, ""),
        (
            cached,
            f"target: ratio >= 0.5; {intents} intents, {cached['traded']} traded,"
            f" {cached['steps']} arrival steps",
        ),
    ):
        rows.append(
            figure(
                "engine",
                f"{result['name']}, decided + arrived, per s",
                result["per_s"],
                "/s",
                f"{raw['name']}, per s",
                raw["per_s"],
                note,
            )
        )
        rows.append(
            figure(
                "engine",
                f"{result['name']}, decided + arrived, p99",
                result["p99"],
                "ms",
                f"{raw['name']}, p99",
                raw["p99"],
                "target < 25 ms" if note else "",
            )
        )
    rows.append(
        figure(
            "engine",
            "engine, validation cached, CPU per intent (the worker's thread)",
            cached["cpu_ms"],
            "ms",
            f"{raw['name']}, CPU per intent",
            raw["cpu_ms"],
            f"wall time per intent {1000 / cached['per_s']:.2f} ms (reference {1000 / raw['per_s']:.2f} ms)",
        )
    )
    rows.append(
        figure(
            "engine",
            "engine, validation cached, PostgreSQL round trips per intent",
            trips["engine"],
            "trips",
            f"{raw['name']}, round trips per intent",
            trips["reference"],
            f"counted by a TCP proxy over {trips['intents']} intents; {load}",
        )
    )
    return rows


def main() -> None:
    from bench.common import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--batch", type=int, default=25, help="intents per mode before switching")
    args = parser.parse_args()
    rows = run(args.intents, args.batch)
    print_table(
        rows, f"bench_engine: {args.intents} intents, one worker, interleaved in batches of {args.batch}"
    )


if __name__ == "__main__":
    main()
