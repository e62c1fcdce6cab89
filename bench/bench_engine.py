"""Intents decided per second by one engine worker on PostgreSQL, next to a raw psycopg loop.

Not a test: prints a table (and `run()` gives its figure rows to `python -m bench`). Needs
DATABASE_URL (PostgreSQL; `./dev bench` starts one) and REDIS_URL for the channel layer. Rows:

- engine, validation against the exchange double on loopback, no cache (every decision signs and
  sends the Kalshi and Polymarket calls),
- engine, validation cached (BookCache TTL longer than the run): the engine's own overhead,
- raw psycopg: the same rows (decision, trade, run update, with the engine's JSON) in the same
  transactions (lock the run, check for an existing decision, insert, insert, update, commit),
  with no logic at all, on psycopg's defaults (statements prepared after 5 uses).

The three are measured interleaved, in batches of `--batch` intents each, so that load from
other processes on the machine falls on all of them alike; /proc/loadavg is printed with the
figures. The engine's latency includes sending its websocket events after commit (Redis layer).
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


def setup_scene(double, intents: int):
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from accounts.models import UserProfile
    from accounts.services import set_secret
    from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
    from ingest.models import ExecutionIntent, MarketPair

    stamp = int(time.time() * 1000)
    user = get_user_model().objects.create(username=f"bench-engine-{stamp}")
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
        api_key=KEY_ID,
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


class Mode:
    """One row of the table: its own run, latencies and time, accumulated over the batches."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies_ms: list[float] = []
        self.elapsed_s = 0.0
        self.traded = 0

    def result(self) -> dict:
        result = row(self.name, self.latencies_ms, self.elapsed_s)
        result["traded"] = self.traded
        return result


def engine_batch(mode: Mode, run_id: int, intent_ids: list[int], validator) -> None:
    from simulator.engine import decide_intent

    started = time.perf_counter()
    for intent_id in intent_ids:
        t0 = time.perf_counter()
        decision = decide_intent(run_id=run_id, intent_id=intent_id, validator=validator)
        mode.latencies_ms.append((time.perf_counter() - t0) * 1000)
        mode.traded += decision.outcome == "traded"
    mode.elapsed_s += time.perf_counter() - started


class RawWriter:
    """The same writes with psycopg and nothing else: the floor for one worker."""

    def __init__(self, user, template_run_id: int) -> None:
        import json

        import psycopg
        from django.db import connection

        from simulator.models import SimulatorRun, SimulatorTrade

        template = SimulatorTrade.objects.filter(run_id=template_run_id).order_by("-id").first()
        self.user_id = user.pk
        self.legs, self.checks, self.validation = (
            json.dumps(template.legs),
            json.dumps(template.checks),
            json.dumps(template.validation),
        )
        self.ledger = json.dumps(SimulatorRun.objects.get(pk=template_run_id).liquidity_state)
        params = connection.get_connection_params()
        self.connection = psycopg.connect(
            **{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}
        )

    def batch(self, mode: Mode, run_id: int, intent_ids: list[int]) -> None:
        raw = self.connection
        started = time.perf_counter()
        for intent_id in intent_ids:
            t0 = time.perf_counter()
            with raw.transaction(), raw.cursor() as cur:
                cur.execute("SELECT balance_usd FROM simulator_runs WHERE id = %s FOR UPDATE", (run_id,))
                cur.execute(
                    "SELECT id FROM simulator_decisions WHERE run_id = %s AND intent_id = %s",
                    (run_id, intent_id),
                )
                cur.execute(
                    "INSERT INTO simulator_decisions (run_id, intent_id, decision_source, outcome, reason, reason_code,"
                    " checks, edge_cents, opportunity_key, created_at) VALUES (%s, %s, 'intent', 'traded', '', '',"
                    " %s, 3.2, 'BENCH-FED', now()) RETURNING id",
                    (run_id, intent_id, self.checks),
                )
                decision_id = cur.fetchone()[0]
                cur.execute(
                    "INSERT INTO simulator_trades (run_id, intent_id, decision_id, user_id, opportunity_key, direction,"
                    " net_edge_cents, requested_size, matched_size, fill_pct, cost_usd, fees_usd, expected_pnl_usd,"
                    " legs, checks, validation, decided_at, executed_at, settled_at, settlement_delay_s) VALUES"
                    " (%s, %s, %s, %s, 'BENCH-FED', 'kalshi_yes_poly_no', 3.2, 10, 10, 1, 9.68, 0.18, 0.32,"
                    " %s, %s, %s, now(), now(), now(), 5)",
                    (run_id, intent_id, decision_id, self.user_id, self.legs, self.checks, self.validation),
                )
                cur.execute(
                    "UPDATE simulator_runs SET balance_usd = balance_usd - 9.68, expected_pnl_usd = expected_pnl_usd"
                    " + 0.32, trade_count = trade_count + 1, decision_count = decision_count + 1,"
                    " traded_today_usd = traded_today_usd + 9.68, liquidity_state = %s WHERE id = %s",
                    (self.ledger, run_id),
                )
            mode.latencies_ms.append((time.perf_counter() - t0) * 1000)
            mode.traded += 1
        mode.elapsed_s += time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def measure(intents: int = 500, batch: int = 25) -> dict:
    """The three modes, interleaved batch by batch. -> {"results": [...], "load": (before, after)}."""
    from django.conf import settings

    from bench.common import loadavg, migrate
    from exchanges.double import ExchangeDouble, Scenario
    from exchanges.ratelimit import BookCache
    from exchanges.testing import kalshi_key_pair
    from simulator.engine.validation import ExchangeValidator
    from simulator.services import start_run, stop_run

    migrate()
    debug, settings.DEBUG = settings.DEBUG, False  # no query log: a deployment has none
    _, public_pem = kalshi_key_pair()
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

            warm_run = new_run("warm-up")
            warm = intent_ids[: min(20, len(intent_ids))]
            engine_batch(Mode("warm-up"), warm_run, warm, live)
            stop_run(user=user, run_id=warm_run)
            warm_run = new_run("warm-up")
            engine_batch(Mode("warm-up"), warm_run, warm, cached)
            raw_writer = RawWriter(user, template_run_id=warm_run)
            stop_run(user=user, run_id=warm_run)
            modes = {
                "live": (Mode("engine, validation against the double"), new_run("engine, live")),
                "cached": (Mode("engine, validation cached"), new_run("engine, cached")),
                "raw": (Mode("raw psycopg, same rows and transactions"), new_run("raw")),
            }
            load_before = loadavg()
            for first in range(0, len(intent_ids), batch):
                chunk = intent_ids[first : first + batch]
                engine_batch(*modes["live"], chunk, live)
                engine_batch(*modes["cached"], chunk, cached)
                raw_writer.batch(*modes["raw"], chunk)
            load_after = loadavg()
            raw_writer.close()
            for _, run_id in modes.values():
                stop_run(user=user, run_id=run_id)
    finally:
        settings.DEBUG = debug
    return {"results": [mode.result() for mode, _ in modes.values()], "load": (load_before, load_after)}


def run(intents: int = 500, batch: int = 25) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure, missing_services, setup_django, skipped

    why_not = missing_services()
    if why_not:
        return skipped("engine", why_not)
    setup_django()
    measured = measure(intents, batch)
    live, cached, raw = measured["results"]
    load = f"loadavg {measured['load'][0]} -> {measured['load'][1]}"
    rows = []
    for result, note in ((live, ""), (cached, "target: ratio >= 0.5")):
        rows.append(
            figure(
                "engine",
                f"{result['name']}, per s",
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
                f"{result['name']}, p99",
                result["p99"],
                "ms",
                f"{raw['name']}, p99",
                raw["p99"],
                "target < 25 ms" if note else "",
            )
        )
    rows[-1]["note"] += f"; {load}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=500)
    parser.add_argument("--batch", type=int, default=25, help="intents per mode before switching")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench_engine: set DATABASE_URL to a PostgreSQL database (./dev bench does)")
        return
    import django

    django.setup()
    measured = measure(args.intents, args.batch)
    results = measured["results"]
    print(
        f"\nbench_engine: {args.intents} intents, one worker, PostgreSQL, interleaved in batches of {args.batch}"
    )
    print(f"{'':44} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'traded':>7}")
    for result in results:
        print(
            f"{result['name']:44} {result['per_s']:9.0f} {result['p50']:8.2f} {result['p99']:8.2f} {result['traded']!s:>7}"
        )
    ratio = results[1]["per_s"] / results[2]["per_s"]
    print(
        f"ratio engine (validation cached) / raw: {ratio:.2f} (target >= 0.5); p99 {results[1]['p99']:.1f} ms (target < 25)"
    )
    print(f"loadavg before: {measured['load'][0]}; after: {measured['load'][1]}")


if __name__ == "__main__":
    main()
