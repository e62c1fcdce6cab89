"""The 24h capture report (`simulator.report.build_report`) on a week of history: 1M decisions,
100k trades, 50k success spans, and whether its SQL plans use indexes.

Not a test: returns figures (`python -m bench bench_report` prints them). Needs PostgreSQL
(DATABASE_URL); works in its own throwaway database next to it (created, migrated, dropped).

Seeded data (deterministic, generated in SQL with generate_series, so set-up takes seconds):
- 50 pairs, 10 users with 5 running runs each watching every key (the report's heaviest case:
  every span in the window is judged);
- 50,000 spans over 7 days (about 7,100 in a 24h window), peak edge 1-7 cents;
- 100,000 intents, two per span, for two users each, signalled inside the span;
- 400,000 intent decisions (4 of the user's 5 runs decide each intent), 100,000 of them traded:
  100,000 trades executed 300 ms after the signal;
- 600,000 span decisions (12 runs per span start, one third skipped): 1,000,000 decisions.

Figures: milliseconds per report for one of the ten users (median of several, after a warm-up),
the query count, and, from EXPLAIN ANALYZE of each captured query, the Seq Scans left on the
big tables. Reference, same database, same window: the two index range counts any such report
needs at least (spans started in the window, the user's trades executed in it).

Run: DATABASE_URL=postgres://... .venv/bin/python -m bench bench_report
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.common import figure, missing_services, setup_django, skipped

BENCH = "report"
DATABASE_NAME = "bench_report"
PAIRS, USERS, RUNS_PER_USER = 50, 10, 5
SPANS, INTENTS = 50_000, 100_000
SPAN_DECISION_RUNS = 12  # of the 50 runs, per span start
HISTORY_DAYS = 7
REPORTS = 7
BIG_TABLES = {"simulator_decisions", "simulator_trades", "success_spans", "execution_intents"}
REPORT_ARGS = {"hours": 24, "max_gap_s": 120, "min_edge_cents": Decimal("3")}

CHECKS_JSON = json.dumps([{"name": "has_orders", "ok": True, "detail": "ok"}])
LEGS_JSON = json.dumps(
    [
        {
            "venue": "kalshi",
            "side": "yes",
            "limit_price": "0.45",
            "avg_fill_price": "0.44",
            "fills": [],
            "filled_size": "10",
            "latency_ms": 120,
            "detail": "",
        },
        {
            "venue": "polymarket",
            "side": "no",
            "limit_price": "0.51",
            "avg_fill_price": "0.50",
            "fills": [],
            "filled_size": "10",
            "latency_ms": 250,
            "detail": "",
        },
    ]
)

SEED_SQL = [
    (
        "spans",
        """
        INSERT INTO success_spans (span_key, pair_id, opportunity_key, direction, threshold_cents,
            started_at, ended_at, peak_edge_cents, mean_edge_cents, last_edge_cents, max_size,
            close_reason, tracker_state)
        SELECT 'bench-span-' || g, p.id, p.opportunity_key, 'kalshi_yes_poly_no', 1,
            %(now)s - (g + 1) * (%(history)s / %(spans)s),
            %(now)s - (g + 1) * (%(history)s / %(spans)s) + make_interval(secs => 5 + (g * 7919) %% 300),
            1 + g %% 7, 1 + g %% 5, 1, 10 + g %% 90, 'edge_below_threshold', '{}'
        FROM generate_series(0, %(spans)s - 1) AS g
        JOIN (SELECT id, opportunity_key, row_number() OVER (ORDER BY id) - 1 AS n FROM market_pairs) AS p
          ON p.n = g %% %(pairs)s
        """,
    ),
    (
        "intents",
        """
        INSERT INTO execution_intents (user_id, pair_id, opportunity_key, direction, span_id,
            net_edge_cents, size, fees_usd, cost_usd, legs, books, signal_at, created_at)
        SELECT u.id, s.pair_id, s.opportunity_key, 'kalshi_yes_poly_no', s.id, 3.2, 10, 0.18, 9.50,
            %(legs)s, '[]', s.started_at + make_interval(secs => 1 + g / %(spans)s),
            s.started_at + make_interval(secs => 1 + g / %(spans)s)
        FROM generate_series(0, %(intents)s - 1) AS g
        JOIN (SELECT id, pair_id, opportunity_key, started_at, row_number() OVER (ORDER BY id) - 1 AS n
              FROM success_spans) AS s ON s.n = g %% %(spans)s
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM auth_user
              WHERE username LIKE 'bench-report-%%') AS u ON u.n = g %% %(users)s
        """,
    ),
    (
        "intent decisions",
        """
        INSERT INTO simulator_decisions (run_id, intent_id, span_id, decision_source, outcome,
            reason, reason_code, checks, edge_cents, opportunity_key, created_at)
        SELECT r.id, i.id, NULL, 'intent',
            CASE WHEN r.k = i.id %% 4 THEN 'traded' ELSE 'skipped' END,
            CASE WHEN r.k = i.id %% 4 THEN '' ELSE 'daily cap reached' END,
            CASE WHEN r.k = i.id %% 4 THEN '' ELSE 'daily_cap' END,
            %(checks)s, 3.2, i.opportunity_key, i.signal_at + interval '50 milliseconds'
        FROM execution_intents AS i
        JOIN (SELECT id, user_id, row_number() OVER (PARTITION BY user_id ORDER BY id) - 1 AS k
              FROM simulator_runs) AS r ON r.user_id = i.user_id AND r.k < 4
        """,
    ),
    (
        "trades",
        """
        INSERT INTO simulator_trades (run_id, intent_id, decision_id, user_id, opportunity_key,
            direction, net_edge_cents, requested_size, matched_size, fill_pct, cost_usd, fees_usd,
            expected_pnl_usd, legs, checks, validation, decided_at, executed_at, settled_at,
            settlement_delay_s, order_size, arrival_outcome, reserved_usd, signal_edge_cents,
            realised_edge_cents, slippage_cents, unwind_cost_usd, carried_mark_usd)
        SELECT d.run_id, d.intent_id, d.id, r.user_id, d.opportunity_key, 'kalshi_yes_poly_no',
            3.2, 10, 10, 1, 9.68, 0.18, 0.32, %(legs)s, %(checks)s, '{"ok": true}',
            d.created_at, d.created_at + interval '250 milliseconds',
            d.created_at + interval '5 seconds', 5, 10,
            (ARRAY['full', 'full', 'full', 'full', 'full', 'full', 'full', 'partial', 'legged', 'missed'])[d.id %% 10 + 1],
            9.69, 3.2 + (d.id %% 7) / 10.0, 3.2, (d.id %% 7) / 10.0, 0, 0
        FROM simulator_decisions AS d JOIN simulator_runs AS r ON r.id = d.run_id
        WHERE d.outcome = 'traded'
        """,
    ),
    (
        "span decisions",
        """
        INSERT INTO simulator_decisions (run_id, intent_id, span_id, decision_source, outcome,
            reason, reason_code, checks, edge_cents, opportunity_key, created_at)
        SELECT r.id, NULL, s.id, 'success_span',
            CASE WHEN (s.id + r.id) %% 3 = 0 THEN 'skipped' ELSE 'eligible' END,
            CASE WHEN (s.id + r.id) %% 3 = 0 THEN 'net edge below the run minimum' ELSE '' END,
            CASE WHEN (s.id + r.id) %% 3 = 0 THEN 'net_edge' ELSE '' END,
            %(checks)s, s.peak_edge_cents, s.opportunity_key, s.started_at + interval '20 milliseconds'
        FROM success_spans AS s
        JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM simulator_runs) AS r
          ON (s.id + r.n) %% (%(users)s * %(runs_per_user)s) < %(span_decision_runs)s
        """,
    ),
]


def seed(now: datetime) -> Any:
    """The week of history; returns the user the report is built for."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from ingest.models import MarketPair
    from simulator.models import SimulatorRun

    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"bench-report-{n}") for n in range(USERS)])
    MarketPair.objects.bulk_create(
        [
            MarketPair(
                opportunity_key=f"BENCH-{n:02d}",
                kalshi_ticker=f"KXBENCH-{n:02d}",
                poly_yes_token=f"{n}1",
                poly_no_token=f"{n}2",
            )
            for n in range(PAIRS)
        ]
    )
    started = now - timedelta(days=HISTORY_DAYS + 1)
    SimulatorRun.objects.bulk_create(
        [
            SimulatorRun(
                user=user,
                label=f"bench run {k}",
                starting_usd=Decimal("100000"),
                balance_usd=Decimal("100000"),
                started_at=started,
                ends_at=now + timedelta(days=1),
                seed=k,
            )
            for user in users
            for k in range(RUNS_PER_USER)
        ]
    )
    params = {
        "now": now,
        "history": timedelta(days=HISTORY_DAYS),
        "spans": SPANS,
        "intents": INTENTS,
        "pairs": PAIRS,
        "users": USERS,
        "runs_per_user": RUNS_PER_USER,
        "span_decision_runs": SPAN_DECISION_RUNS,
        "legs": LEGS_JSON,
        "checks": CHECKS_JSON,
    }
    with connection.cursor() as cursor:
        for name, sql in SEED_SQL:
            started_at = time.perf_counter()
            cursor.execute(sql, params)
            print(
                f"  seeded {name}: {cursor.rowcount:,} rows in {time.perf_counter() - started_at:.1f} s",
                flush=True,
            )
        cursor.execute("ANALYZE")
    return users[0]


def _timed_ms(work) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _plan_nodes(plan: dict) -> list[dict]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


def explain(queries: list[str]) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE each captured query: its time and the big tables it reads by Seq Scan."""
    from django.db import connection

    explained = []
    with connection.cursor() as cursor:
        for sql in queries:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            (document,) = cursor.fetchone()
            document = json.loads(document) if isinstance(document, str) else document
            nodes = _plan_nodes(document[0]["Plan"])
            explained.append(
                {
                    "sql": sql,
                    "ms": document[0]["Execution Time"],
                    "seq_scans": sorted(
                        {
                            node["Relation Name"]
                            for node in nodes
                            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES
                        }
                    ),
                    "indexes": sorted({node["Index Name"] for node in nodes if "Index Name" in node}),
                }
            )
    return explained


def measure(user, now: datetime) -> dict[str, Any]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from simulator.report import build_report

    def report() -> dict:
        return build_report(user=user, now=now, **REPORT_ARGS)

    window_start = now - timedelta(hours=REPORT_ARGS["hours"])

    def reference() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM success_spans WHERE started_at BETWEEN %s AND %s AND peak_edge_cents >= %s",
                [window_start, now, REPORT_ARGS["min_edge_cents"]],
            )
            cursor.execute(
                "SELECT count(*) FROM simulator_trades WHERE user_id = %s AND executed_at BETWEEN %s AND %s",
                [user.pk, window_start, now],
            )

    # The log keeps the last 9,000 queries only: once full, CaptureQueriesContext sees none.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        result = report()
    reference()
    report_ms = [_timed_ms(report) for _ in range(REPORTS)]
    reference_ms = [_timed_ms(reference) for _ in range(REPORTS)]
    return {
        "result": result,
        "report_ms": report_ms,
        "reference_ms": reference_ms,
        "queries": [query["sql"] for query in captured.captured_queries],
    }


def run() -> list[dict[str, Any]]:
    reason = missing_services()
    if reason:
        return skipped(BENCH, reason)
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    database = settings.DATABASES["default"]
    database.setdefault("TEST", {})["NAME"] = DATABASE_NAME
    started = time.perf_counter()
    # create_test_db returns the test database's name: keep ours to switch back to it.
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        now = timezone.now().replace(microsecond=0)
        user = seed(now)
        setup_s = time.perf_counter() - started
        print(f"  set-up (create, migrate, seed, analyze): {setup_s:.0f} s", flush=True)
        measured = measure(user, now)
        explained = explain(measured["queries"])
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    result = measured["result"]
    print(
        f"  report for 1 of {USERS} users: {result['spans']} spans in the window, {result['captured']} captured, "
        f"{sum(r['trades'] for r in result['by_run'])} trades in the window",
        flush=True,
    )
    print("  EXPLAIN ANALYZE per query (ms, seq scans on big tables, indexes):")
    for number, query in enumerate(explained, 1):
        print(
            f"    {number:>2}. {query['ms']:8.1f} ms  seq: {', '.join(query['seq_scans']) or '-':<22}"
            f" idx: {', '.join(query['indexes']) or '-'}\n        {query['sql'][:160]}"
        )
    seq_scans = sorted({table for query in explained for table in query["seq_scans"]})
    if not explained:
        raise RuntimeError("no query captured while building the report")
    slowest = max(explained, key=lambda query: query["ms"])
    return [
        figure(
            BENCH,
            "24h report, 1M decisions / 100k trades / 50k spans, median",
            statistics.median(measured["report_ms"]),
            "ms",
            "index range counts of the window's spans and the user's trades, median",
            statistics.median(measured["reference_ms"]),
            note=(
                f"{REPORTS} reports after a warm-up, min {min(measured['report_ms']):.0f} ms;"
                f" {result['spans']} spans judged, {result['captured']} captured; set-up {setup_s:.0f} s"
            ),
        ),
        figure(BENCH, "24h report, queries", len(measured["queries"]), "queries"),
        figure(
            BENCH,
            "24h report, big tables read by Seq Scan",
            len(seq_scans),
            "tables",
            note=(", ".join(seq_scans) if seq_scans else "none: every big table read through an index")
            + f"; slowest query {slowest['ms']:.0f} ms",
        ),
    ]


def main() -> None:
    from bench.common import print_table

    print_table(run(), "bench_report")


if __name__ == "__main__":
    main()
