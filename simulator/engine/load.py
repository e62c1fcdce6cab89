"""Load and lock: the first step of a decision, in one round trip.

`run_intent_and_stamps` reads, in one statement, the run (its row locked), the decision already
made for (run, intent) if any, the intent with its pair, and the user's secret stamps (see
`simulator.engine.validation.secret_stamps`); `run_and_decided` the same for a span start. On
PostgreSQL the statement is prepared on the server and sent with BEGIN (`simulator.engine.wire`);
elsewhere the ORM gives the same instances."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery

from accounts.models import UserSecret
from ingest.models import ExecutionIntent, MarketPair
from simulator.engine.sql import cache_related, execute, on_postgres, shape
from simulator.engine.validation import SecretStamp, secret_stamps
from simulator.models import Decision, SimulatorRun

# What the engine reads of an intent and its pair (core_intent, fee_schedules, draw_key, the
# decision and trade rows); the rest (an intent's books above all) stays in the database.
INTENT_FIELDS = (
    "id",
    "user",
    "pair",
    "opportunity_key",
    "direction",
    "net_edge_cents",
    "size",
    "legs",
    "signal_at",
)
PAIR_FIELDS = (
    "id",
    "opportunity_key",
    "kalshi_ticker",
    "poly_yes_token",
    "poly_no_token",
    "kalshi_fee_rate",
    "poly_fee_rate",
)
_statements: dict[Any, str] = {}


def _run_sql(*, lock: bool, by_intent: bool) -> str:
    key = ("run", lock, by_intent)
    if key not in _statements:
        source = "intent_id" if by_intent else "span_id"
        columns = shape(SimulatorRun).columns("r")
        decisions = Decision._meta.db_table
        decided = f"SELECT d.id FROM {decisions} d WHERE d.run_id = r.id AND d.{source} = %s LIMIT 1"  # noqa: S608
        sql = f"SELECT {columns}, ({decided}) FROM {SimulatorRun._meta.db_table} r WHERE r.id = %s"  # noqa: S608
        _statements[key] = sql + (" FOR UPDATE OF r" if lock else "")
    return _statements[key]


def _decided_id(*, intent_id: int | None, span_id: int | None) -> Subquery:
    decisions = Decision.objects.filter(run_id=OuterRef("pk"))
    if intent_id is not None:
        decisions = decisions.filter(intent_id=intent_id)
    else:
        decisions = decisions.filter(span_id=span_id)
    return Subquery(decisions.values("pk")[:1])


def run_and_decided(
    run_id: int, *, lock: bool = False, intent_id: int | None = None, span_id: int | None = None
) -> SimulatorRun | None:
    """The run with `decided_id` (the decision already made for (run, intent|span), None while
    undecided) in one round trip; its row locked when asked (inside a transaction)."""
    if not on_postgres():
        runs = SimulatorRun.objects.annotate(decided_id=_decided_id(intent_id=intent_id, span_id=span_id))
        if lock:
            runs = runs.select_for_update(of=("self",))
        return runs.filter(pk=run_id).first()
    by_intent = intent_id is not None
    rows = execute(_run_sql(lock=lock, by_intent=by_intent), (intent_id if by_intent else span_id, run_id))
    if not rows:
        return None
    *values, decided_id = rows[0]
    run = shape(SimulatorRun).instance(values)
    run.decided_id = decided_id
    return run


def _inputs_sql(lock: bool) -> str:
    key = ("inputs", lock)
    if key not in _statements:
        runs, decisions, intents, pairs, secrets = (
            SimulatorRun._meta.db_table,
            Decision._meta.db_table,
            ExecutionIntent._meta.db_table,
            MarketPair._meta.db_table,
            UserSecret._meta.db_table,
        )
        decided = f"SELECT d.id FROM {decisions} d WHERE d.run_id = r.id AND d.intent_id = i.id LIMIT 1"  # noqa: S608
        stamps = f"SELECT array_agg(s.exchange), array_agg(s.id), array_agg(s.updated_at) FROM {secrets} s WHERE s.user_id = i.user_id"  # noqa: S608
        columns = ", ".join(
            (
                shape(SimulatorRun).columns("r"),
                f"({decided})",
                shape(ExecutionIntent, INTENT_FIELDS).columns("i"),
                shape(MarketPair, PAIR_FIELDS).columns("p"),
                "stamps.*",
            )
        )
        sql = (
            f"SELECT {columns} FROM {runs} r, {intents} i JOIN {pairs} p ON p.id = i.pair_id,"  # noqa: S608
            f" LATERAL ({stamps}) stamps WHERE r.id = %s AND i.id = %s"
        )
        _statements[key] = sql + (" FOR UPDATE OF r" if lock else "")
    return _statements[key]


def run_intent_and_stamps(
    run_id: int, intent_id: int, *, lock: bool = False
) -> tuple[SimulatorRun | None, ExecutionIntent | None, dict[str, SecretStamp]]:
    """In one round trip: the run with `decided_id` (as `run_and_decided`, its row locked when
    asked), the intent with its pair (as `select_related("pair")`, with only the fields the engine
    reads: `INTENT_FIELDS`, `PAIR_FIELDS`) and the intent's user's secret stamps (as
    `secret_stamps`). (None, None, {}) when either the run or the intent does not exist."""
    if not on_postgres():
        run = run_and_decided(run_id, lock=lock, intent_id=intent_id)
        intent = ExecutionIntent.objects.select_related("pair").filter(pk=intent_id).first()
        if run is None or intent is None:
            return None, None, {}
        return run, intent, secret_stamps(user_id=intent.user_id)
    rows = execute(_inputs_sql(lock), (run_id, intent_id))
    if not rows:
        return None, None, {}
    *values, exchanges, secret_ids, updated_ats = rows[0]
    run_shape, intent_shape, pair_shape = (
        shape(SimulatorRun),
        shape(ExecutionIntent, INTENT_FIELDS),
        shape(MarketPair, PAIR_FIELDS),
    )
    run_end = len(run_shape.fields)
    intent_end = run_end + 1 + len(intent_shape.fields)
    run = run_shape.instance(values[:run_end])
    run.decided_id = values[run_end]
    intent = intent_shape.instance(values[run_end + 1 : intent_end])
    cache_related(intent, pair=pair_shape.instance(values[intent_end:]))
    stamps = dict(zip(exchanges or (), zip(secret_ids or (), updated_ats or (), strict=True), strict=True))
    return run, intent, stamps


def existing_decision(
    run_id: int, *, intent_id: int | None = None, span_id: int | None = None
) -> Decision | None:
    """The decision already made for (run, intent) or (run, span), if any."""
    if intent_id is not None:
        return Decision.objects.filter(run_id=run_id, intent_id=intent_id).first()
    return Decision.objects.filter(run_id=run_id, span_id=span_id).first()
