"""Read and write for the arrival phase (`simulator.engine.arrival`): two round trips a step.

A step's task carries its order (`arrival.Step`: venue, instrument, side, arrival time, user), so
the book it meets is asked before anything is read, with no lock held. Then one transaction
(`StepTransaction`):

1. `lock`: the first statement, BEGIN in the same round trip: the run's row and the trade's row
   locked (run first, as every writer of the run locks it), with the few fields a step works
   on (`RUN_FIELDS`, `TRADE_FIELDS`) and the trade's intent and pair. Locking the trade's row too
   is what makes the trade read fresh: a statement that waited for the run's lock re-reads the
   rows it locks at their latest version, so a step of the same trade committed meanwhile is seen.
2. `write`: the trade's changed legs (a step that changes one leg patches that leg alone in the
   stored JSON), the trade's figures and the run's money when the trade completes, the run's
   liquidity ledger when the order took from a book, and (when the trade missed) its decision's
   reason, as one statement, the last of the transaction: its COMMIT goes with it. A completed
   live trade's rows come back from the same statement, as committed, for the page.

On PostgreSQL outside any atomic block the transaction is kept on the wire (`wire.begin_and_fetch`,
`wire.commit_with`, `wire.rollback`); inside one (a caller's, a test's) the same statements run in
a savepoint of it; elsewhere (the embedded SQLite) the ORM reads and saves the same rows.

`trade_orders` is the read a step made before its task carried its order (one round trip more):
for a task sent that way, or a caller with only the trade and the step's name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import JSONField, Model

from ingest.models import ExecutionIntent, MarketPair
from simulator.engine import wire
from simulator.engine.load import PAIR_FIELDS
from simulator.engine.sql import Shape, cache_related, execute, json_text_of, on_postgres, shape
from simulator.models import Decision, SimulatorRun, SimulatorTrade

# What a step reads of the run, the trade and its intent (the draw key, `inputs.draw_key`).
RUN_FIELDS = (
    "id",
    "user",
    "kind",
    "seed",
    "min_net_edge_cents",
    "sim_config",
    "liquidity_state",
    "balance_usd",
    "reserved_usd",
    "traded_day",
    "traded_today_usd",
    "expected_pnl_usd",
    "unhedged_exposure_usd",
    "unhedged_contracts",
)
TRADE_FIELDS = (
    "id",
    "run",
    "intent",
    "decision",
    "user",
    "legs",
    "arrival_outcome",
    "requested_size",
    "order_size",
    "net_edge_cents",
    "signal_edge_cents",
    "reserved_usd",
    "decided_at",
    "executed_at",
    "settled_at",
)
INTENT_FIELDS = ("id", "pair", "opportunity_key", "direction", "signal_at")
MISSED_FIELDS = ("reason", "reason_code")  # what a missed trade changes of its decision
_statements: dict[Any, str] = {}
_layouts: dict[str, list[tuple[Shape, int, int]]] = {}


def _placeholder(field: Any) -> str:
    return "%s::jsonb" if isinstance(field, JSONField) else "%s"


ORDERS_FIELDS = ("id", "user", "legs", "arrival_outcome")


def _orders_sql() -> str:
    key = "orders"
    if key not in _statements:
        columns = shape(SimulatorTrade, ORDERS_FIELDS).columns("t")
        _statements[key] = f"SELECT {columns} FROM {SimulatorTrade._meta.db_table} t WHERE t.id = %s"  # noqa: S608
    return _statements[key]


def trade_orders(trade_id: int) -> SimulatorTrade | None:
    """The trade's user, legs and arrival outcome, unlocked; None when there is no such trade."""
    if not on_postgres():
        return SimulatorTrade.objects.filter(pk=trade_id).only(*ORDERS_FIELDS).first()
    rows = execute(_orders_sql(), (trade_id,))
    return shape(SimulatorTrade, ORDERS_FIELDS).instance(rows[0]) if rows else None


_LOCK_SHAPES = (
    (SimulatorRun, RUN_FIELDS),
    (SimulatorTrade, TRADE_FIELDS),
    (ExecutionIntent, INTENT_FIELDS),
    (MarketPair, PAIR_FIELDS),
)


def _lock_layout() -> list[tuple[Shape, int, int]]:
    """Each shape of the locked read with where its columns start and end in the row."""
    if "lock layout" not in _layouts:
        shapes = [shape(model, names) for model, names in _LOCK_SHAPES]
        bounds = [0, *accumulate(len(part.fields) for part in shapes)]
        _layouts["lock layout"] = list(zip(shapes, bounds, bounds[1:], strict=False))
    return _layouts["lock layout"]


def _lock_sql() -> str:
    key = "lock"
    if key not in _statements:
        runs, trades, intents, pairs = (model._meta.db_table for model, _ in _LOCK_SHAPES)
        columns = ", ".join(
            shape(model, names).columns(alias)
            for (model, names), alias in zip(_LOCK_SHAPES, "rtip", strict=True)
        )
        _statements[key] = (
            f"SELECT {columns} FROM {runs} r JOIN {trades} t ON t.run_id = r.id"  # noqa: S608
            f" JOIN {intents} i ON i.id = t.intent_id JOIN {pairs} p ON p.id = i.pair_id"
            " WHERE t.id = %s FOR UPDATE OF r, t"
        )
    return _statements[key]


_unread_shapes: dict[tuple[type, tuple[str, ...]], Shape] = {}


def _unread(model: type, written: tuple[str, ...]) -> Shape:
    """The fields of `model` a step neither read (`RUN_FIELDS`, `TRADE_FIELDS`) nor wrote."""
    key = (model, written)
    if key not in _unread_shapes:
        read = RUN_FIELDS if model is SimulatorRun else TRADE_FIELDS
        names = tuple(
            f.name for f in model._meta.concrete_fields if f.name not in read and f.name not in written
        )
        _unread_shapes[key] = shape(model, names)
    return _unread_shapes[key]


def _update(model: type, names: tuple[str, ...], *, returning: bool, patched_leg: bool = False) -> str:
    sets = [f"{f.column} = {_placeholder(f)}" for f in shape(model, names).fields]
    if patched_leg:  # the trade's legs: one of them replaced, the others left as stored
        sets.insert(0, "legs = jsonb_set(legs, ARRAY[%s::text], %s::jsonb)")
    columns = f" RETURNING {_unread(model, names).columns(model._meta.db_table)}" if returning else ""
    return f"UPDATE {model._meta.db_table} SET {', '.join(sets)} WHERE id = %s{columns}"  # noqa: S608


def write_sql(
    trade_fields: tuple[str, ...],
    patched_leg: bool,
    run_fields: tuple[str, ...],
    *,
    missed: bool = False,
    returning: bool = False,
) -> str:
    """The step's write (see `StepTransaction.write`); its parameters, in order: the patched
    leg's index and JSON, the trade's fields, the trade's id; the decision's reason, reason code
    and id; the run's fields, the run's id. With `returning` (the run's fields given): the run's
    and the trade's other columns, those the step neither read nor wrote."""
    key = ("write", trade_fields, patched_leg, run_fields, missed, returning)
    if key not in _statements:
        parts = [
            f"t AS ({_update(SimulatorTrade, trade_fields, returning=returning, patched_leg=patched_leg)})"
        ]
        if missed:
            parts.append(f"d AS ({_update(Decision, MISSED_FIELDS, returning=False)})")
        if run_fields:
            parts.append(f"r AS ({_update(SimulatorRun, run_fields, returning=returning)})")
        rows = "SELECT 1"
        if returning:
            run_columns = _unread(SimulatorRun, run_fields).columns("r")
            trade_columns = _unread(SimulatorTrade, trade_fields).columns("t")
            rows = f"SELECT {run_columns}, {trade_columns} FROM r, t"  # noqa: S608
        _statements[key] = f"WITH {', '.join(parts)} {rows}"
    return _statements[key]


def _whole(obj: Model, unread: Shape, values: Sequence[Any]) -> Model:
    """`obj` (the fields a step read and wrote) with the others as `values`: a whole instance."""
    whole = shape(unread.model)
    rest = unread.instance(values).__dict__
    attributes = {name: rest[name] if name in rest else obj.__dict__[name] for name in whole.attnames}
    return whole.build(attributes, saved=True)


class StepTransaction:
    """One arrival step's transaction: `lock`, then at most one `write` (its last statement).
    Opened by `step_transaction`."""

    def __init__(self, on_wire: bool) -> None:
        self.on_wire = on_wire  # PostgreSQL, the transaction kept here rather than by Django
        self._connection = connections[DEFAULT_DB_ALIAS]

    def lock(self, trade_id: int) -> tuple[SimulatorRun, SimulatorTrade] | None:
        """The run (its row locked) and the trade (locked too) as they stand now, with the
        fields a step works on; the trade's `intent` (`INTENT_FIELDS`) and its `pair` cached on
        it. None when there is no such trade. On SQLite: whole instances."""
        if not on_postgres():
            run_id = SimulatorTrade.objects.filter(pk=trade_id).values_list("run_id", flat=True).first()
            if run_id is None:
                return None
            run = SimulatorRun.objects.select_for_update().get(pk=run_id)
            return run, SimulatorTrade.objects.select_related("intent__pair").get(pk=trade_id)
        if self.on_wire:
            rows = wire.begin_and_fetch(self._connection, _lock_sql(), (trade_id,))
        else:
            rows = execute(_lock_sql(), (trade_id,))
        if not rows:
            return None
        values = rows[0]
        run, trade, intent, pair = (part.instance(values[start:end]) for part, start, end in _lock_layout())
        cache_related(intent, pair=pair)
        cache_related(trade, intent=intent, run=run)
        return run, trade

    def write(
        self,
        trade: SimulatorTrade,
        trade_fields: Sequence[str],
        run: SimulatorRun,
        run_fields: Sequence[str],
        *,
        leg: tuple[int, dict[str, Any]] | None = None,
        missed: tuple[str, str] | None = None,
        returning: bool = False,
    ) -> tuple[SimulatorRun, SimulatorTrade] | None:
        """Save `trade_fields` of the trade (with `leg`, (index, JSON): that leg of its `legs`
        alone), `run_fields` of the locked run and, for a missed trade, its decision's (reason,
        reason_code); COMMIT with it. With `returning`: the run and the trade, whole, as written
        (their other columns read back by the same statement; on SQLite: the instances given)."""
        if leg is not None:
            index, data = leg
            trade.legs = [data if i == index else other for i, other in enumerate(trade.legs)]
        if not on_postgres():
            trade.save(update_fields=list(trade_fields) + (["legs"] if leg is not None else []))
            if run_fields:
                run.save(update_fields=list(run_fields))
            if missed is not None:
                Decision.objects.filter(pk=trade.decision_id).update(
                    **dict(zip(MISSED_FIELDS, missed, strict=True))
                )
            return (run, trade) if returning else None
        trade_fields, run_fields = tuple(trade_fields), tuple(run_fields)
        json_text: dict[int, str] = {}
        params: list[Any] = []
        if leg is not None:
            params += [str(leg[0]), json_text_of(leg[1])]
        params += shape(SimulatorTrade, trade_fields).params(trade, json_text)
        params.append(trade.pk)
        if missed is not None:
            reason = dict(zip(MISSED_FIELDS, missed, strict=True))
            params += [reason[field.name] for field in shape(Decision, MISSED_FIELDS).fields]
            params.append(trade.decision_id)
        if run_fields:
            params += shape(SimulatorRun, run_fields).params(run, json_text)
            params.append(run.pk)
        sql = write_sql(
            trade_fields, leg is not None, run_fields, missed=missed is not None, returning=returning
        )
        if self.on_wire:
            rows = wire.commit_with(self._connection, sql, params)
        else:
            rows = execute(sql, params, commit=True)
        if not returning:
            return None
        run_rest, trade_rest = _unread(SimulatorRun, run_fields), _unread(SimulatorTrade, trade_fields)
        values = rows[0]
        whole_run = _whole(run, run_rest, values[: len(run_rest.fields)])
        whole_trade = _whole(trade, trade_rest, values[len(run_rest.fields) :])
        cache_related(whole_trade, run=whole_run)
        return whole_run, whole_trade


@contextmanager
def step_transaction() -> Iterator[StepTransaction]:
    """The step's transaction. On PostgreSQL outside any atomic block, kept on the wire: BEGIN
    goes with the locked read, COMMIT with the write, and a step that leaves without writing (or
    fails) is rolled back; Django's atomic block and its bookkeeping cost a step more than a
    tenth of its time. Inside an atomic block, and on SQLite: Django's atomic block."""
    connection = connections[DEFAULT_DB_ALIAS]
    if not wire.owns_transactions(connection):
        with transaction.atomic():
            yield StepTransaction(on_wire=False)
        return
    try:
        yield StepTransaction(on_wire=True)
    finally:
        wire.rollback(connection)
