"""The engine's statements on PostgreSQL's wire: a decision's transaction in two round trips.

Through psycopg's cursor, a decision costs four: BEGIN (psycopg sends it alone before the first
statement of a transaction), the locked read, the write, COMMIT. On loopback a round trip's
fixed cost (libpq, the kernel, the server's protocol loop) is about as large as the statements'
own work, so this module sends
- BEGIN with the locked read, as one simple-protocol message ("BEGIN; EXECUTE name(run, intent)":
  the read is a server-side prepared statement and its parameters are integers), and
- the write with COMMIT, as one libpq pipeline (the write's ~40 parameters bound as text, as
  psycopg's extended protocol does), when the write ends the outermost transaction.
psycopg's own pipeline mode does the same but costs more than the round trips it saves
(measured). Nothing changes in what the transaction does: the same statements, the same lock,
the same isolation; Django's atomic block still wraps it (its COMMIT then finds the transaction
already committed and sends nothing; its on-commit hooks run as before; on an error it rolls back).

An arrival step, short and run outside any atomic block, keeps its transaction on the wire
itself (`begin_and_fetch`, `commit_with`, `rollback`): the same BEGIN and COMMIT in the same round
trips, without the atomic block's bookkeeping around them.

Statements are prepared once per connection under our own names (psycopg's own preparation stays
off, as Django leaves it) and executed with their parameters bound as text, by one psycopg
`Transformer` per connection (as a cursor keeps one: its dumpers and loaders looked up once).
This module uses psycopg's libpq layer (`pgconn`, `generators`, `Connection.wait`), pinned in
requirements.txt: `tests/simulator/test_engine_wire.py` checks what it relies on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from psycopg import errors, generators, pq
from psycopg.adapt import PyFormat, Transformer

_IDLE, _INTRANS, _INERROR = (
    pq.TransactionStatus.IDLE,
    pq.TransactionStatus.INTRANS,
    pq.TransactionStatus.INERROR,
)
_OK = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK})
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC


class _Session:
    """What this module keeps per connection: the names of its prepared statements (sql -> name),
    and the Transformer that binds parameters and loads rows."""

    def __init__(self, raw: Any) -> None:
        self.names: dict[str, bytes] = {}
        self.transformer = Transformer(raw)


_sessions: WeakKeyDictionary[Any, _Session] = WeakKeyDictionary()


def _session(raw: Any) -> _Session:
    session = _sessions.get(raw)
    if session is None:
        session = _sessions[raw] = _Session(raw)
    return session


def _numbered(sql: str) -> str:
    """psycopg's %s placeholders as the server's $1, $2, ..."""
    parts = sql.split("%s")
    return "".join(
        part + (f"${number}" if number < len(parts) else "") for number, part in enumerate(parts, 1)
    )


def _check(raw: Any, results: Sequence[Any]) -> None:
    for result in results:
        if result.status not in _OK and result.status != _PIPELINE_SYNC:
            raise errors.error_from_result(result, encoding=raw.info.encoding)


def _statement(raw: Any, sql: str) -> bytes:
    """The name of `sql` prepared on this connection's server session (prepared on first use).
    Nothing else on the connection prepares statements (psycopg's own preparation stays off:
    Django's cursors bind on the client), so nothing deallocates ours: a server-side prepared
    statement outlives ROLLBACK, and a new connection starts a new registry."""
    names = _session(raw).names
    name = names.get(sql)
    if name is None:
        name = f"arbsim_engine_{len(names)}".encode()
        raw.pgconn.send_prepare(name, _numbered(sql).encode(raw.info.encoding))
        _check(raw, raw.wait(generators.execute(raw.pgconn)))
        names[sql] = name
    return name


def _forget_statements_if_gone(raw: Any, error: Exception) -> None:
    """Should anything have deallocated our statements (DEALLOCATE ALL), prepare them again next time."""
    if isinstance(error, errors.InvalidSqlStatementName):
        _sessions.pop(raw, None)


def _rows(raw: Any, result: Any) -> list[tuple]:
    transformer = _session(raw).transformer
    transformer.set_pgresult(result)
    return transformer.load_rows(0, result.ntuples, tuple)


def _text_values(raw: Any, params: Sequence[Any]) -> tuple[Any, Any]:
    transformer = _session(raw).transformer
    return transformer.dump_sequence(params, [PyFormat.TEXT] * len(params)), transformer.formats


def _opens_a_transaction(raw: Any) -> bool:
    """Whether psycopg would send BEGIN before the next statement (Django's atomic block is open
    and nothing has run in it yet)."""
    return not raw.autocommit and raw.pgconn.transaction_status == _IDLE


def _run(raw: Any, query: bytes | None = None, *, sql: str = "", params: Sequence[Any] = ()) -> list[Any]:
    """Send one message and wait for its results: `query` (simple protocol), else the prepared
    statement of `sql` with `params` bound as text (as psycopg's extended protocol does)."""
    if query is not None:
        raw.pgconn.send_query(query)
    else:
        values, formats = _text_values(raw, params)
        raw.pgconn.send_query_prepared(_statement(raw, sql), values, param_formats=formats)
    results = raw.wait(generators.execute(raw.pgconn))
    _check(raw, results)
    return results


def fetch(django_connection: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
    """Run `sql` (prepared on the server) on Django's connection, in its transaction; its rows.
    When it is the first statement of Django's transaction, BEGIN goes in the same round trip."""
    django_connection.ensure_connection()
    raw = django_connection.connection
    with django_connection.wrap_database_errors, raw.lock:
        try:
            if _opens_a_transaction(raw):
                return _begin_and_fetch(raw, sql, params)
            return _rows(raw, _run(raw, sql=sql, params=params)[0])
        except errors.Error as error:
            _forget_statements_if_gone(raw, error)
            raise


def _begin_and_fetch(raw: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
    begin = raw._get_tx_start_command()  # BEGIN with the connection's options, as psycopg sends it
    if any(type(param) is not int for param in params):  # not the engine's reads: BEGIN alone first
        _run(raw, begin)
        return _rows(raw, _run(raw, sql=sql, params=params)[0])
    # Integers only: "BEGIN; EXECUTE name(1, 2)", one simple-protocol message.
    arguments = ", ".join(str(int(param)) for param in params).encode()
    try:
        results = _run(raw, b"%s; EXECUTE %s(%s)" % (begin, _statement(raw, sql), arguments))
    except errors.InvalidSqlStatementName:
        # Our statement was deallocated behind our back. Nothing ran in this transaction yet:
        # end it, prepare again and start over.
        _run(raw, b"ROLLBACK")
        _sessions.pop(raw, None)
        results = _run(raw, b"%s; EXECUTE %s(%s)" % (begin, _statement(raw, sql), arguments))
    return _rows(raw, results[-1])


def fetch_and_commit(django_connection: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
    """`fetch`, and when the transaction is that of the outermost atomic block (not a test's
    wrapping transaction, no savepoint) with nothing failed in it, COMMIT in the same round trip
    (a libpq pipeline). On an error nothing is committed and the error is raised (the atomic
    block then rolls back). Otherwise the atomic block commits as usual."""
    raw = django_connection.connection
    if (
        raw is None
        or len(django_connection.atomic_blocks) != 1
        or django_connection.savepoint_ids
        or not django_connection.commit_on_exit
        or django_connection.needs_rollback
        or raw.pgconn.transaction_status != _INTRANS
    ):
        return fetch(django_connection, sql, params)
    return _write_and_commit(django_connection, raw, sql, params)


def _write_and_commit(django_connection: Any, raw: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
    with django_connection.wrap_database_errors, raw.lock:
        try:
            name = _statement(raw, sql)
            values, formats = _text_values(raw, params)
            pgconn = raw.pgconn
            pgconn.enter_pipeline_mode()
            try:
                pgconn.send_query_prepared(name, values, param_formats=formats)
                pgconn.send_query_params(b"COMMIT", None)
                pgconn.pipeline_sync()
                results: list[Any] = []
                while not results or results[-1].status != _PIPELINE_SYNC:
                    results.extend(raw.wait(generators.fetch_many(pgconn)))
            finally:
                pgconn.exit_pipeline_mode()
            _check(raw, results)
            return _rows(raw, results[0])
        except errors.Error as error:
            _forget_statements_if_gone(raw, error)
            raise


# --- a transaction of the caller's own, outside Django's atomic blocks -----------------------------


def owns_transactions(django_connection: Any) -> bool:
    """Whether the caller may keep a transaction of its own on this connection: PostgreSQL, in
    autocommit mode (no atomic block open, nothing begun)."""
    if django_connection.vendor != "postgresql" or django_connection.in_atomic_block:
        return False
    django_connection.ensure_connection()
    raw = django_connection.connection
    return raw.autocommit and raw.pgconn.transaction_status == _IDLE


def begin_and_fetch(django_connection: Any, sql: str, params: Sequence[int]) -> list[tuple]:
    """BEGIN and `sql` (integer parameters) in one round trip: the first statement of the caller's
    own transaction (see `owns_transactions`), ended by `commit_with` or `rollback`."""
    raw = django_connection.connection
    with django_connection.wrap_database_errors, raw.lock:
        try:
            return _begin_and_fetch(raw, sql, params)
        except errors.Error as error:
            _forget_statements_if_gone(raw, error)
            raise


def commit_with(django_connection: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
    """`sql` and COMMIT in one round trip: the last statement of the caller's own transaction."""
    return _write_and_commit(django_connection, django_connection.connection, sql, params)


def rollback(django_connection: Any) -> None:
    """End the caller's own transaction if it is still open (it returned early, or failed). A
    connection that broke meanwhile is left as it is: Django closes it as unusable."""
    raw = django_connection.connection
    if raw is None or raw.pgconn.transaction_status not in (_INTRANS, _INERROR):
        return
    with django_connection.wrap_database_errors, raw.lock:
        _run(raw, b"ROLLBACK")
