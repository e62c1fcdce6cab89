"""How the engine's statements reach PostgreSQL, and how rows become model instances and back.

The engine's reads (`simulator.engine.load`) and its write (`simulator.engine.write`) are
server-side prepared statements on Django's own connection (so inside the engine's
`transaction.atomic()` and its row lock), sent by `simulator.engine.wire` (BEGIN with the locked
read, COMMIT with the write): the ORM's Python cost per statement (~1 ms on a loaded machine,
building and compiling the query) was most of a decision's time. The SQL is generated from the
models' fields (a `Shape` per model), so a new column is read and written without touching the
engine. Any other database (the embedded SQLite) takes the ORM path, with the same rows and
instances.

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
from django.db.models import JSONField, Model, signals
from django.db.models.base import ModelState

from simulator.engine import wire


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def execute(sql: str, params: Sequence[Any], *, commit: bool = False) -> list[tuple]:
    """Run one of the engine's statements on Django's connection, in its transaction; its rows.
    `commit`: the statement is the last of its transaction (COMMIT may go with it)."""
    django_connection = connections[DEFAULT_DB_ALIAS]  # `connection` looks this up per attribute
    if commit:
        return wire.fetch_and_commit(django_connection, sql, params)
    return wire.fetch(django_connection, sql, params)


def json_text_of(value: Any) -> str:
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


class Shape:
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
                    json_text[id(value)] = json_text_of(value)
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


_shapes: dict[Any, Shape] = {}


def shape(model: type[Model], names: Sequence[str] | None = None) -> Shape:
    key = (model, names)
    if key not in _shapes:
        _shapes[key] = Shape(model, names)
    return _shapes[key]


def new_row(model: type[Model], **attributes: Any) -> Model:
    """An unsaved instance for `write_decision`: every concrete field but the primary key given
    by attname (as `run_id=`), no related instance (see `cache_related`)."""
    model_shape = shape(model)
    attributes[model._meta.pk.attname] = None
    if attributes.keys() != model_shape.attname_set:
        missing, unknown = (
            model_shape.attname_set - attributes.keys(),
            attributes.keys() - model_shape.attname_set,
        )
        raise TypeError(f"{model.__name__}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return model_shape.build(attributes)


def cache_related(obj: Model, **related: Model) -> None:
    """Remember related instances (by field name) so that reading them makes no query."""
    cache = obj._state.fields_cache
    for name, value in related.items():
        cache[obj._meta.get_field(name).cache_name] = value


# Values psycopg sends as they are, exactly what Django's get_db_prep_save would give for them.
_PLAIN_TYPES = frozenset({Decimal, int, str, bool, date})


def _plain(value: Any) -> bool:
    kind = type(value)
    return value is None or kind in _PLAIN_TYPES or (kind is datetime and value.tzinfo is not None)
