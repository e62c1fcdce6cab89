"""Write: the decision row, its trade row and the run's money, as one statement.

The last statement of the decision's transaction: on PostgreSQL the COMMIT goes in the same round
trip (`simulator.engine.wire.fetch_and_commit`), with each JSON value serialised once; elsewhere
the ORM saves the same instances."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import JSONField, Model

from simulator.engine.sql import Shape, cache_related, execute, on_postgres, shape
from simulator.models import Decision, SimulatorRun, SimulatorTrade

_statements: dict[Any, str] = {}


def _placeholder(field: Any) -> str:
    return "%s::jsonb" if isinstance(field, JSONField) else "%s"


def _insert_shape(model: type[Model]) -> Shape:
    return shape(model, tuple(field.name for field in model._meta.concrete_fields if not field.primary_key))


def _write_sql(with_trade: bool, run_fields: tuple[str, ...]) -> str:
    key = ("write", with_trade, run_fields)
    if key not in _statements:
        decision_fields = _insert_shape(Decision).fields
        columns = ", ".join(f.column for f in decision_fields)
        values = ", ".join(_placeholder(f) for f in decision_fields)
        table = Decision._meta.db_table
        parts = [f"d AS (INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id)"]  # noqa: S608
        if with_trade:
            trade_fields = _insert_shape(SimulatorTrade).fields
            columns = ", ".join(f.column for f in trade_fields)
            values = ", ".join("d.id" if f.name == "decision" else _placeholder(f) for f in trade_fields)
            table = SimulatorTrade._meta.db_table
            parts.append(f"t AS (INSERT INTO {table} ({columns}) SELECT {values} FROM d RETURNING id)")  # noqa: S608
        sets = ", ".join(f"{f.column} = {_placeholder(f)}" for f in shape(SimulatorRun, run_fields).fields)
        parts.append(f"r AS (UPDATE {SimulatorRun._meta.db_table} SET {sets} WHERE id = %s)")  # noqa: S608
        ids = "d.id, t.id FROM d, t" if with_trade else "d.id, NULL FROM d"
        _statements[key] = f"WITH {', '.join(parts)} SELECT {ids}"
    return _statements[key]


def _saved(obj: Model, pk: int) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS


def write_decision(
    decision: Decision, *, trade: SimulatorTrade | None = None, run: SimulatorRun, run_fields: Sequence[str]
) -> None:
    """Insert the decision (and its trade) and save `run_fields` of the locked run, together, as
    the last statement of the decision's transaction (on PostgreSQL its COMMIT goes with it).
    The instances get their primary keys (the trade its decision, the decision its trade); a
    second decision for the same (run, intent|span) raises IntegrityError, as the ORM would."""
    if trade is not None:
        cache_related(trade, decision=decision)
        cache_related(decision, trade=trade)
    if not on_postgres():
        decision.save(force_insert=True)
        if trade is not None:
            trade.decision_id = decision.pk
            trade.save(force_insert=True)
        run.save(update_fields=list(run_fields))
        return
    run_fields = tuple(run_fields)
    json_text: dict[int, str] = {}
    params = _insert_shape(Decision).params(decision, json_text)
    if trade is not None:
        params += _insert_shape(SimulatorTrade).params(trade, json_text, skip="decision_id")
    params += shape(SimulatorRun, run_fields).params(run, json_text)
    params.append(run.pk)
    ((decision_id, trade_id),) = execute(_write_sql(trade is not None, run_fields), params, commit=True)
    _saved(decision, decision_id)
    if trade is not None:
        trade.decision_id = decision_id
        _saved(trade, trade_id)
