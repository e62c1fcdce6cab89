"""Intents decided per second by one engine worker on PostgreSQL, next to a raw psycopg loop.

Not a test: prints a table. Needs DATABASE_URL (PostgreSQL; `./dev bench` starts one). Rows:

- engine, validation against the exchange double on loopback, no cache (every decision signs and
  sends the Kalshi and Polymarket calls),
- engine, validation cached (BookCache TTL longer than the run): the engine's own overhead,
- raw psycopg: the same rows (decision, trade, run update) in the same transactions (lock the
  run, check for an existing decision, insert, insert, update, commit), with no logic at all.

The ratio engine-cached / raw is the figure to watch (target >= 0.5), with p99 latency < 25 ms.

Run: DATABASE_URL=postgres://... .venv/bin/python bench/bench_engine.py [--intents 500]
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


def engine_loop(user, intent_ids: list[int], validator, label: str) -> dict:
    from simulator.engine import decide_intent
    from simulator.services import start_run

    run, _ = start_run(user=user, starting_usd="10000000", label=label)
    latencies = []
    traded = 0
    started = time.perf_counter()
    for intent_id in intent_ids:
        t0 = time.perf_counter()
        decision = decide_intent(run_id=run.pk, intent_id=intent_id, validator=validator)
        latencies.append((time.perf_counter() - t0) * 1000)
        traded += decision.outcome == "traded"
    elapsed = time.perf_counter() - started
    result = row(label, latencies, elapsed)
    result["traded"] = traded
    from simulator.services import stop_run

    stop_run(user=user, run_id=run.pk)
    return result


def raw_loop(user, intent_ids: list[int]) -> dict:
    """The same writes with psycopg and nothing else: the floor for one worker."""
    import json

    import psycopg
    from django.db import connection

    from simulator.models import SimulatorTrade
    from simulator.services import start_run, stop_run

    run, _ = start_run(user=user, starting_usd="10000000", label="raw")
    template = SimulatorTrade.objects.order_by("-id").first()
    legs, checks, validation = (
        json.dumps(template.legs),
        json.dumps(template.checks),
        json.dumps(template.validation),
    )
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    latencies = []
    with psycopg.connect(
        **{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port"}}
    ) as raw:
        started = time.perf_counter()
        for intent_id in intent_ids:
            t0 = time.perf_counter()
            with raw.transaction(), raw.cursor() as cur:
                cur.execute("SELECT balance_usd FROM simulator_runs WHERE id = %s FOR UPDATE", (run.pk,))
                cur.execute(
                    "SELECT id FROM simulator_decisions WHERE run_id = %s AND intent_id = %s",
                    (run.pk, intent_id),
                )
                cur.execute(
                    "INSERT INTO simulator_decisions (run_id, intent_id, decision_source, outcome, reason, reason_code,"
                    " checks, edge_cents, opportunity_key, created_at) VALUES (%s, %s, 'intent', 'traded', '', '',"
                    " %s, 3.2, 'BENCH-FED', now()) RETURNING id",
                    (run.pk, intent_id, checks),
                )
                decision_id = cur.fetchone()[0]
                cur.execute(
                    "INSERT INTO simulator_trades (run_id, intent_id, decision_id, user_id, opportunity_key, direction,"
                    " net_edge_cents, requested_size, matched_size, fill_pct, cost_usd, fees_usd, expected_pnl_usd,"
                    " legs, checks, validation, decided_at, executed_at, settled_at, settlement_delay_s) VALUES"
                    " (%s, %s, %s, %s, 'BENCH-FED', 'kalshi_yes_poly_no', 3.2, 10, 10, 1, 9.68, 0.18, 0.32,"
                    " %s, %s, %s, now(), now(), now(), 5)",
                    (run.pk, intent_id, decision_id, user.pk, legs, checks, validation),
                )
                cur.execute(
                    "UPDATE simulator_runs SET balance_usd = balance_usd - 9.68, expected_pnl_usd = expected_pnl_usd"
                    " + 0.32, trade_count = trade_count + 1, decision_count = decision_count + 1,"
                    " traded_today_usd = traded_today_usd + 9.68, liquidity_state = %s WHERE id = %s",
                    (json.dumps(run.liquidity_state), run.pk),
                )
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
    stop_run(user=user, run_id=run.pk)
    return row("raw psycopg, same rows and transactions", latencies, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=500)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench_engine: set DATABASE_URL to a PostgreSQL database (./dev bench does)")
        return
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.disable(logging.INFO)
    call_command("migrate", verbosity=0)

    from exchanges.double import ExchangeDouble, Scenario
    from exchanges.ratelimit import BookCache
    from exchanges.testing import kalshi_key_pair
    from simulator.validation import ExchangeValidator

    _, public_pem = kalshi_key_pair()
    with ExchangeDouble(Scenario.demo()) as double:
        double.state.register_kalshi_key(KEY_ID, public_pem, balance_cents=10**12)
        # Deep books so every intent fills: the bench measures the pipeline, not the ledger.
        double.state.set_kalshi_book(TICKER, yes_bids=[["0.40", DEEP]], no_bids=[["0.55", DEEP]])
        double.state.set_polymarket_book(NO_TOKEN, bids=[["0.47", DEEP]], asks=[["0.50", DEEP]])
        user, intent_ids = setup_scene(double, args.intents)
        # No limiter here: one worker, and the bench is about our own overhead.
        live = ExchangeValidator(cache=BookCache(ttl_s=0))
        cached = ExchangeValidator(cache=BookCache(ttl_s=3600))
        warm = min(20, len(intent_ids))
        engine_loop(user, intent_ids[:warm], cached.validate, "warm-up")
        results = [
            engine_loop(user, intent_ids, live.validate, "engine, validation against the double"),
            engine_loop(user, intent_ids, cached.validate, "engine, validation cached"),
            raw_loop(user, intent_ids),
        ]
    print(f"\nbench_engine: {args.intents} intents, one worker, PostgreSQL")
    print(f"{'':44} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'traded':>7}")
    for result in results:
        traded = result.get("traded", "")
        print(
            f"{result['name']:44} {result['per_s']:9.0f} {result['p50']:8.2f} {result['p99']:8.2f} {traded!s:>7}"
        )
    ratio = results[1]["per_s"] / results[2]["per_s"]
    print(
        f"ratio engine (validation cached) / raw: {ratio:.2f} (target >= 0.5); p99 {results[1]['p99']:.1f} ms (target < 25)"
    )


if __name__ == "__main__":
    main()
