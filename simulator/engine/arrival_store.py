"""Read and write for the arrival phase (`simulator.engine.arrival`), three round trips a step.

1. `trade_orders`: the trade's orders and user, no lock, no transaction (the caller then reads
   the book the order meets, which may be a venue call: no lock is held meanwhile).
2. `lock_run_and_trade`: the first statement of the step's transaction, BEGIN in the same
   round trip: the run's row and the trade's row locked (run first, as every writer of the run
   locks it), with the trade's intent and pair. Locking the trade's row too is what makes the
   trade read fresh: a statement that waited for the run's lock re-reads the rows it locks at
   their latest version, so a step of the same trade committed meanwhile is seen.
3. `write_arrival`: the trade's fields, the run's and (when the trade missed) its decision's
   reason, as one statement, the last of the transaction: its COMMIT goes with it.

On PostgreSQL these are server-side prepared statements sent by `simulator.engine.wire`, as the
decision's are; elsewhere (the embedded SQLite) the ORM reads and saves the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from django.db.models import JSONField

from ingest.models import ExecutionIntent, MarketPair
from simulator.engine.load import PAIR_FIELDS
from simulator.engine.sql import cache_related, execute, on_postgres, shape
from simulator.models import Decision, SimulatorRun, SimulatorTrade

# What the arrival reads of the intent: its draw key (`inputs.draw_key`) and its pair's fees.
INTENT_FIELDS = ("id", "pair", "opportunity_key", "direction", "signal_at")
MISSED_FIELDS = ("reason", "reason_code")  # what a missed trade changes of its decision
_statements: dict[Any, str] = {}


def _placeholder(field: Any) -> str:
    return "%s::jsonb" if isinstance(field, JSONField) else "%s"


def _orders_sql() -> str:
    key = "orders"
    if key not in _statements:
        columns = shape(SimulatorTrade, ("user", "legs")).columns("t")
        _statements[key] = f"SELECT {columns} FROM {SimulatorTrade._meta.db_table} t WHERE t.id = %s"  # noqa: S608
    return _statements[key]


def trade_orders(trade_id: int) -> tuple[int, list[dict]] | None:
    """(user id, legs JSON) of the trade, unlocked; None when there is no such trade."""
    if not on_postgres():
        row = SimulatorTrade.objects.filter(pk=trade_id).values_list("user_id", "legs").first()
        return tuple(row) if row is not None else None  # type: ignore[return-value]
    rows = execute(_orders_sql(), (trade_id,))
    if not rows:
        return None
    values = shape(SimulatorTrade, ("user", "legs")).instance(rows[0])
    return values.user_id, values.legs


def _lock_sql() -> str:
    key = "lock"
    if key not in _statements:
        runs, trades, intents, pairs = (
            SimulatorRun._meta.db_table,
            SimulatorTrade._meta.db_table,
            ExecutionIntent._meta.db_table,
            MarketPair._meta.db_table,
        )
        columns = ", ".join(
            (
                shape(SimulatorRun).columns("r"),
                shape(SimulatorTrade).columns("t"),
                shape(ExecutionIntent, INTENT_FIELDS).columns("i"),
                shape(MarketPair, PAIR_FIELDS).columns("p"),
            )
        )
        _statements[key] = (
            f"SELECT {columns} FROM {runs} r JOIN {trades} t ON t.run_id = r.id"  # noqa: S608
            f" JOIN {intents} i ON i.id = t.intent_id JOIN {pairs} p ON p.id = i.pair_id"
            " WHERE t.id = %s FOR UPDATE OF r, t"
        )
    return _statements[key]


def lock_run_and_trade(trade_id: int) -> tuple[SimulatorRun, SimulatorTrade]:
    """Inside the step's transaction: the run (its row locked) and the trade as they stand now,
    the trade's `intent` (the fields `INTENT_FIELDS`) and its `pair` cached on it."""
    if not on_postgres():
        run_id = SimulatorTrade.objects.filter(pk=trade_id).values_list("run_id", flat=True).get()
        run = SimulatorRun.objects.select_for_update().get(pk=run_id)
        return run, SimulatorTrade.objects.select_related("intent__pair").get(pk=trade_id)
    (values,) = execute(_lock_sql(), (trade_id,))
    shapes = (
        shape(SimulatorRun),
        shape(SimulatorTrade),
        shape(ExecutionIntent, INTENT_FIELDS),
        shape(MarketPair, PAIR_FIELDS),
    )
    bounds = [0, *accumulate(len(part.fields) for part in shapes)]
    run, trade, intent, pair = (
        part.instance(values[start:end]) for part, start, end in zip(shapes, bounds, bounds[1:], strict=False)
    )
    cache_related(intent, pair=pair)
    cache_related(trade, intent=intent, run=run)
    return run, trade


def _update(model: type, names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{f.column} = {_placeholder(f)}" for f in shape(model, names).fields)
    return f"UPDATE {model._meta.db_table} SET {sets} WHERE id = %s"  # noqa: S608


def _write_sql(trade_fields: tuple[str, ...], run_fields: tuple[str, ...], with_decision: bool) -> str:
    key = ("write", trade_fields, run_fields, with_decision)
    if key not in _statements:
        parts = [f"t AS ({_update(SimulatorTrade, trade_fields)})"]
        if with_decision:
            parts.append(f"d AS ({_update(Decision, MISSED_FIELDS)})")
        _statements[key] = f"WITH {', '.join(parts)} {_update(SimulatorRun, run_fields)}"
    return _statements[key]


def write_arrival(
    trade: SimulatorTrade,
    trade_fields: Sequence[str],
    run: SimulatorRun,
    run_fields: Sequence[str],
    missed: tuple[str, str] | None = None,
) -> None:
    """Save `trade_fields` of the trade, `run_fields` of the locked run and, for a missed trade,
    its decision's (reason, reason_code): the last statement of the step's transaction."""
    if not on_postgres():
        trade.save(update_fields=list(trade_fields))
        run.save(update_fields=list(run_fields))
        if missed is not None:
            Decision.objects.filter(pk=trade.decision_id).update(
                **dict(zip(MISSED_FIELDS, missed, strict=True))
            )
        return
    trade_fields, run_fields = tuple(trade_fields), tuple(run_fields)
    json_text: dict[int, str] = {}
    params = shape(SimulatorTrade, trade_fields).params(trade, json_text)
    params.append(trade.pk)
    if missed is not None:
        reason = dict(zip(MISSED_FIELDS, missed, strict=True))
        params += [reason[field.name] for field in shape(Decision, MISSED_FIELDS).fields]
        params.append(trade.decision_id)
    params += shape(SimulatorRun, run_fields).params(run, json_text)
    params.append(run.pk)
    execute(_write_sql(trade_fields, run_fields, missed is not None), params, commit=True)
