"""The engine's reads and writes of the run, its decision and its trade.

On PostgreSQL they are server-side prepared statements on Django's own connection (so inside the
engine's `transaction.atomic()` and its row lock), sent by `simulator.engine_wire` (BEGIN with
the locked read, COMMIT with the write): the ORM's Python cost per statement (~1 ms on
a loaded machine, building and compiling the query) was most of a decision's time. The writes of
one decision (decision row, trade row, the run's money) are one statement, with the JSON
serialised once. The SQL is generated from the models' fields, so a new column is written
without touching this file. Any other database (the embedded SQLite) takes the ORM path, with
the same rows and instances.

The instances handed back are those the ORM would give (built by filling their attributes, as
`Model.__init__` does, without its per-field descriptor calls), and for writes the caller's own
instances with their new primary keys and related rows cached (the presenters and the broadcast
read them without another query)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import JSONField, Model, OuterRef, Subquery, signals
from django.db.models.base import ModelState

from accounts.models import UserSecret
from ingest.models import ExecutionIntent, MarketPair
from simulator import engine_wire
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.validation import SecretStamp, secret_stamps

_statements: dict[Any, str] = {}


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _execute(sql: str, params: Sequence[Any], *, commit: bool = False) -> list[tuple]:
    """Run one of the engine's statements on Django's connection, in its transaction; its rows.
    `commit`: the statement is the last of its transaction (COMMIT may go with it)."""
    django_connection = connections[DEFAULT_DB_ALIAS]  # `connection` looks this up per attribute
    if commit:
        return engine_wire.fetch_and_commit(django_connection, sql, params)
    return engine_wire.fetch(django_connection, sql, params)


def _json(value: Any) -> str:
    """The JSON text of a JSONField value (None: SQL NULL, as Django stores it)."""
    if value is None:
        return None  # type: ignore[return-value]
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # what orjson does not know, json.dumps may (and raises the same way if not)
        return json.dumps(value)


# --- rows and instances -----------------------------------------------------------------------------


_AS_IS, _JSON, _PREPARED = "as is", "json", "prepared"  # how a field's value is sent


def _kind(field: Any) -> str:
    if isinstance(field, JSONField):
        return _JSON
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return _PREPARED
    return _AS_IS


class _Shape:
    """How the engine reads one model's rows into instances and writes instances back, worked
    out once per model: the fields (all concrete ones, or the few the engine reads), their
    attribute names, which hold JSON, and which fill themselves in on save."""

    def __init__(self, model: type[Model], names: Sequence[str] | None = None) -> None:
        concrete = model._meta.concrete_fields
        self.model = model
        self.fields = [f for f in concrete if names is None or f.name in names]
        self.attnames = [field.attname for field in self.fields]
        self.attname_set = frozenset(self.attnames)
        self.json_fields = [
            (position, field) for position, field in enumerate(self.fields) if isinstance(field, JSONField)
        ]
        self.kinds = [(field, field.attname, _kind(field)) for field in self.fields]
        # Instances are built by filling their __dict__, as Model.__init__ would, unless some
        # app listens to the model's init signals (then through the ORM's own constructor).
        self.plain_init = not (
            signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)
        )

    def columns(self, alias: str) -> str:
        return ", ".join(f'{alias}."{field.column}"' for field in self.fields)

    def instance(self, values: Sequence[Any]) -> Model:
        """The instance the ORM would build from these column values (one per field, in order);
        fields not read are deferred (loaded on first access, as with `.only()`)."""
        values = list(values)
        for position, field in self.json_fields:
            values[position] = _json_value(field, values[position])
        return self.build(dict(zip(self.attnames, values, strict=True)), saved=True)

    def build(self, attributes: dict[str, Any], *, saved: bool = False) -> Model:
        """An instance with these attribute values (by attname); saved or not yet."""
        model = self.model
        if self.plain_init:
            obj = model.__new__(model)
            obj._state = ModelState()
            obj.__dict__.update(attributes)
        else:
            obj = model(**attributes)
        if saved:
            obj._state.adding = False
            obj._state.db = DEFAULT_DB_ALIAS
        return obj

    def params(self, obj: Model, json_text: dict[int, str], skip: str = "") -> list[Any]:
        """The row's values as Django would send them; each JSON value is serialised once, even
        when two rows hold the same list (the decision's checks and the trade's). A plain value
        (a Decimal, an int, a str, an aware datetime...) goes as it is, as Django's own
        preparation would leave it (tested); anything else, and any field that fills itself in
        on save (auto_now), goes through Django's preparation."""
        values = obj.__dict__
        params = []
        for field, attname, kind in self.kinds:
            if attname == skip:
                continue
            value = values[attname] if attname in values else getattr(obj, attname)
            if kind is _JSON:
                if id(value) not in json_text:
                    json_text[id(value)] = _json(value)
                params.append(json_text[id(value)])
            elif kind is _AS_IS and _plain(value):
                params.append(value)
            else:
                params.append(field.get_db_prep_save(field.pre_save(obj, True), connection))
        return params


def _json_value(field: JSONField, value: Any) -> Any:
    """`field.from_db_value`, through orjson (several times faster) when the field has no
    decoder of its own; anything orjson refuses goes the field's own way."""
    if value is not None and field.decoder is None:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    return field.from_db_value(value, None, connections[DEFAULT_DB_ALIAS])


# What the engine reads of an intent and its pair (core_intent, fee_schedules, the decision and
# trade rows); the rest (an intent's books above all) stays in the database.
INTENT_FIELDS = ("id", "user", "pair", "opportunity_key", "direction", "net_edge_cents", "size", "legs")
PAIR_FIELDS = (
    "id",
    "opportunity_key",
    "kalshi_ticker",
    "poly_yes_token",
    "poly_no_token",
    "kalshi_fee_rate",
    "poly_fee_rate",
)
_shapes: dict[Any, _Shape] = {}


def _shape(model: type[Model], names: Sequence[str] | None = None) -> _Shape:
    key = (model, names)
    if key not in _shapes:
        _shapes[key] = _Shape(model, names)
    return _shapes[key]


def new_row(model: type[Model], **attributes: Any) -> Model:
    """An unsaved instance for `write_decision`: every concrete field but the primary key given
    by attname (as `run_id=`), no related instance (see `cache_related`)."""
    shape = _shape(model)
    attributes[model._meta.pk.attname] = None
    if attributes.keys() != shape.attname_set:
        missing, unknown = shape.attname_set - attributes.keys(), attributes.keys() - shape.attname_set
        raise TypeError(f"{model.__name__}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return shape.build(attributes)


def cache_related(obj: Model, **related: Model) -> None:
    """Remember related instances (by field name) so that reading them makes no query."""
    cache = obj._state.fields_cache
    for name, value in related.items():
        cache[obj._meta.get_field(name).cache_name] = value


# --- reads ------------------------------------------------------------------------------------------


def _run_sql(*, lock: bool, by_intent: bool) -> str:
    key = ("run", lock, by_intent)
    if key not in _statements:
        source = "intent_id" if by_intent else "span_id"
        columns = _shape(SimulatorRun).columns("r")
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
    *values, decided_id = rows[0]
    run = _shape(SimulatorRun).instance(values)
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
                _shape(SimulatorRun).columns("r"),
                f"({decided})",
                _shape(ExecutionIntent, INTENT_FIELDS).columns("i"),
                _shape(MarketPair, PAIR_FIELDS).columns("p"),
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
    if not _postgres():
        run = run_and_decided(run_id, lock=lock, intent_id=intent_id)
        intent = ExecutionIntent.objects.select_related("pair").filter(pk=intent_id).first()
        if run is None or intent is None:
            return None, None, {}
        return run, intent, secret_stamps(user_id=intent.user_id)
    rows = _execute(_inputs_sql(lock), (run_id, intent_id))
    if not rows:
        return None, None, {}
    *values, exchanges, secret_ids, updated_ats = rows[0]
    run_shape, intent_shape, pair_shape = (
        _shape(SimulatorRun),
        _shape(ExecutionIntent, INTENT_FIELDS),
        _shape(MarketPair, PAIR_FIELDS),
    )
    run_end = len(run_shape.fields)
    intent_end = run_end + 1 + len(intent_shape.fields)
    run = run_shape.instance(values[:run_end])
    run.decided_id = values[run_end]
    intent = intent_shape.instance(values[run_end + 1 : intent_end])
    cache_related(intent, pair=pair_shape.instance(values[intent_end:]))
    stamps = dict(zip(exchanges or (), zip(secret_ids or (), updated_ats or (), strict=True), strict=True))
    return run, intent, stamps


# --- writes -----------------------------------------------------------------------------------------


def _placeholder(field: Any) -> str:
    return "%s::jsonb" if isinstance(field, JSONField) else "%s"


def _insert_shape(model: type[Model]) -> _Shape:
    return _shape(model, tuple(field.name for field in model._meta.concrete_fields if not field.primary_key))


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
        sets = ", ".join(f"{f.column} = {_placeholder(f)}" for f in _shape(SimulatorRun, run_fields).fields)
        parts.append(f"r AS (UPDATE {SimulatorRun._meta.db_table} SET {sets} WHERE id = %s)")  # noqa: S608
        ids = "d.id, t.id FROM d, t" if with_trade else "d.id, NULL FROM d"
        _statements[key] = f"WITH {', '.join(parts)} SELECT {ids}"
    return _statements[key]


# Values psycopg sends as they are, exactly what Django's get_db_prep_save would give for them.
_PLAIN_TYPES = frozenset({Decimal, int, str, bool, date})


def _plain(value: Any) -> bool:
    kind = type(value)
    return value is None or kind in _PLAIN_TYPES or (kind is datetime and value.tzinfo is not None)


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
    if not _postgres():
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
    params += _shape(SimulatorRun, run_fields).params(run, json_text)
    params.append(run.pk)
    ((decision_id, trade_id),) = _execute(_write_sql(trade is not None, run_fields), params, commit=True)
    _saved(decision, decision_id)
    if trade is not None:
        trade.decision_id = decision_id
        _saved(trade, trade_id)
