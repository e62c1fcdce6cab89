"""The engine's reads and writes of the run, its decision and its trade.

On PostgreSQL they are server-side prepared statements on Django's own connection (so inside the
engine's `transaction.atomic()` and its row lock): the ORM's Python cost per statement (~1 ms on
a loaded machine, building and compiling the query) was most of a decision's time. The writes of
one decision (decision row, trade row, the run's money) are one statement, with the JSON
serialised once. The SQL is generated from the models' fields, so a new column is written
without touching this file. Any other database (the embedded SQLite) takes the ORM path, with
the same rows and instances.

The instances handed back are those the ORM would give: `from_db` for reads, and for writes the
caller's own instances with their new primary keys (the presenters and the broadcast read them
without another query)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection
from django.db.models import JSONField, Model, OuterRef, Subquery

from simulator.models import Decision, SimulatorRun, SimulatorTrade

_RUN_FIELDS = SimulatorRun._meta.concrete_fields
_RUN_JSON = [(index, field) for index, field in enumerate(_RUN_FIELDS) if isinstance(field, JSONField)]
_RUN_ATTNAMES = [field.attname for field in _RUN_FIELDS]
_statements: dict[Any, str] = {}


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _execute(sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run one prepared statement on Django's connection (and in its transaction)."""
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description is not None else []


def _json(value: Any) -> str:
    """The JSON text of a JSONField value (None: SQL NULL, as Django stores it)."""
    if value is None:
        return None  # type: ignore[return-value]
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson does not know, json.dumps may (and raises the same way if not)
        return json.dumps(value)


# --- reads ------------------------------------------------------------------------------------------


def _run_sql(*, lock: bool, by_intent: bool) -> str:
    key = ("run", lock, by_intent)
    if key not in _statements:
        source = "intent_id" if by_intent else "span_id"
        columns = ", ".join(f'r."{field.column}"' for field in _RUN_FIELDS)
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
    if not _postgres():
        runs = SimulatorRun.objects.annotate(decided_id=_decided_id(intent_id=intent_id, span_id=span_id))
        if lock:
            runs = runs.select_for_update(of=("self",))
        return runs.filter(pk=run_id).first()
    by_intent = intent_id is not None
    rows = _execute(_run_sql(lock=lock, by_intent=by_intent), (intent_id if by_intent else span_id, run_id))
    if not rows:
        return None
    values = list(rows[0])
    decided_id = values.pop()
    for index, field in _RUN_JSON:
        values[index] = field.from_db_value(values[index], None, connection)
    run = SimulatorRun.from_db(connection.alias, _RUN_ATTNAMES, values)
    run.decided_id = decided_id
    return run


# --- writes -----------------------------------------------------------------------------------------


def _insert_fields(model: type[Model]) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _placeholder(field: Any) -> str:
    return "%s::jsonb" if isinstance(field, JSONField) else "%s"


def _write_sql(with_trade: bool, run_fields: tuple[str, ...]) -> str:
    key = ("write", with_trade, run_fields)
    if key not in _statements:
        decision_fields = _insert_fields(Decision)
        columns = ", ".join(f.column for f in decision_fields)
        values = ", ".join(_placeholder(f) for f in decision_fields)
        table = Decision._meta.db_table
        parts = [f"d AS (INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id)"]  # noqa: S608
        if with_trade:
            trade_fields = _insert_fields(SimulatorTrade)
            columns = ", ".join(f.column for f in trade_fields)
            values = ", ".join("d.id" if f.name == "decision" else _placeholder(f) for f in trade_fields)
            table = SimulatorTrade._meta.db_table
            parts.append(f"t AS (INSERT INTO {table} ({columns}) SELECT {values} FROM d RETURNING id)")  # noqa: S608
        sets = ", ".join(
            f"{SimulatorRun._meta.get_field(name).column} = {_placeholder(SimulatorRun._meta.get_field(name))}"
            for name in run_fields
        )
        parts.append(f"r AS (UPDATE {SimulatorRun._meta.db_table} SET {sets} WHERE id = %s)")  # noqa: S608
        ids = "d.id, t.id FROM d, t" if with_trade else "d.id, NULL FROM d"
        _statements[key] = f"WITH {', '.join(parts)} SELECT {ids}"
    return _statements[key]


def _params(obj: Model, fields: Sequence[Any], json_text: dict[int, str], skip: str = "") -> list[Any]:
    """The row's values as Django would send them; each JSON value is serialised once, even when
    two rows hold the same list (the decision's checks and the trade's)."""
    params = []
    for field in fields:
        if field.name == skip:
            continue
        value = field.pre_save(obj, True)
        if isinstance(field, JSONField):
            if id(value) not in json_text:
                json_text[id(value)] = _json(value)
            params.append(json_text[id(value)])
        else:
            params.append(field.get_db_prep_save(value, connection))
    return params


def _saved(obj: Model, pk: int) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def write_decision(
    decision: Decision, *, trade: SimulatorTrade | None = None, run: SimulatorRun, run_fields: Sequence[str]
) -> None:
    """Insert the decision (and its trade) and save `run_fields` of the locked run, together.
    The instances get their primary keys; a second decision for the same (run, intent|span)
    raises IntegrityError, as the ORM would."""
    if not _postgres():
        decision.save(force_insert=True)
        if trade is not None:
            trade.decision = decision
            trade.save(force_insert=True)
        run.save(update_fields=list(run_fields))
        return
    run_fields = tuple(run_fields)
    json_text: dict[int, str] = {}
    params = _params(decision, _insert_fields(Decision), json_text)
    if trade is not None:
        params += _params(trade, _insert_fields(SimulatorTrade), json_text, skip="decision")
    params += _params(run, [SimulatorRun._meta.get_field(name) for name in run_fields], json_text)
    params.append(run.pk)
    ((decision_id, trade_id),) = _execute(_write_sql(trade is not None, run_fields), params)
    _saved(decision, decision_id)
    if trade is not None:
        trade.decision = decision
        _saved(trade, trade_id)
