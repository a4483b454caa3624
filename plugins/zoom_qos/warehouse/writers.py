"""How rows reach each back end: ``executemany`` batches and ``ON CONFLICT`` upserts on both,
binary ``COPY`` on PostgreSQL, and the value conversions they need (JSON text that jsonb takes,
aware UTC times)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection

from zoom_qos.transform.parsing import storable_text
from zoom_qos.warehouse.columns import UtcDateTime
from zoom_qos.warehouse.plan import CHILD_TABLES, PARENT_TABLES

__all__ = ["PgWriter", "Writer", "copy_rows", "copy_values", "json_serializer", "upsert"]

#: Rows per ``executemany`` batch (SQLite loads, upserts).
BATCH_ROWS = 5000
# JSON escape for NUL not preceded by an escaping backslash (jsonb rejects \u0000).
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def json_serializer(value: Any) -> str:
    """JSON for the raw layer: never fails on odd types, and jsonb-safe (no NUL escapes).

    An object decoded from staging brings its own text, stored as is unless it holds a
    ``\\u`` escape (it may be a NUL or a lone surrogate, which jsonb refuses).
    """
    text = getattr(value, "json_text", None)
    if text is not None and "\\u" not in text:
        return str(text)
    text = json.dumps(value, default=str, ensure_ascii=False)
    # The regexes are the costly part of a load's serialization: only run them when they can
    # match. json.dumps escapes NUL, so only a lone surrogate (never ASCII) is unstorable here.
    if not text.isascii():
        text = storable_text(text)
    return _JSON_NUL.sub(r"\1\\ufffd", text) if "\\u0000" in text else text


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT … ON CONFLICT (primary key) DO UPDATE`` of the columns ``rows`` carry, in batches."""
    insert = pg_dialect.insert if conn.dialect.name == "postgresql" else sqlite_dialect.insert
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    updates = {name: value for name, value in updates.items() if name in rows[0]}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
    for batch in _batches(rows):
        conn.execute(stmt, list(batch))


def copy_values(
    table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None
) -> Iterator[list[Any]]:
    """Each row's values in column order, as binary ``COPY`` takes them (JSON text wrapped as
    ``Jsonb``, aware UTC times).

    This runs for every row of a PostgreSQL load (and of the benchmark's COPY ceiling), so per
    row there is one C-level ``map`` over the columns and only the columns that need it are
    converted; times already in UTC (all the transform makes) are left as they are.
    """
    from psycopg.types.json import Jsonb  # the postgres extra: only PostgreSQL loads get here

    columns = [c.name for c in table.columns]
    json_at = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.JSON)]
    time_at = [
        i
        for i, c in enumerate(table.columns)
        if isinstance(c.type, UtcDateTime) and c.name != "loaded_at"
    ]
    stamp_at = columns.index("loaded_at") if "loaded_at" in columns else None
    stamp = None if loaded_at is None else _utc(loaded_at)
    for row in rows:
        values = list(map(row.get, columns))
        if stamp_at is not None:
            values[stamp_at] = stamp
        for i in time_at:
            value = values[i]
            if value is not None and value.tzinfo is not UTC:
                values[i] = _utc(value)
        for i in json_at:
            value = values[i]
            if value is not None:  # JSON text, sent to jsonb as it is
                values[i] = Jsonb(json_serializer(value), dumps=_as_is)
        yield values


def copy_rows(
    cursor: Any, target: Any, table: sa.Table, rows: Iterable[Mapping[str, Any]], loaded_at: datetime | None
) -> None:
    """``COPY`` ``rows`` into ``target`` (a psycopg ``sql`` identifier of a table like ``table``).

    The loader's only way of sending rows to PostgreSQL, shared with the benchmark's COPY
    ceiling so that both pay exactly the same client-side cost per value.
    """
    from psycopg import sql  # the postgres extra

    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    # Binary: PostgreSQL takes numbers and times without parsing text, and the client sends
    # them without formatting it; four times the rows per second of text COPY here.
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, columns)
    with cursor.copy(statement) as copy:
        copy.set_types(_pg_types(table))
        for values in copy_values(table, rows, loaded_at):
            copy.write_row(values)


def _as_is(text: str) -> str:
    return text


@functools.cache
def _pg_types(table: sa.Table) -> list[str]:
    """The PostgreSQL type of each column, which binary ``COPY`` must be told."""
    return [str(c.type.compile(dialect=pg_dialect.dialect())).lower() for c in table.columns]


class Writer:
    """One load transaction's writer; the write lock (SQLite) or the sessions' advisory locks
    (PostgreSQL) must already be held.

    Starting it deletes the sessions' child rows; then every batch written is inserted, except
    that the one ``sessions``/``raw_sessions`` row of a session is upserted (updated in place,
    so anything keyed on a session stays valid). Replacing the children wholesale makes them
    exactly the new set, and is much cheaper than upserting them: in the load benchmark a full
    re-load runs at ~0.8 of a plain COPY's speed, against ~0.43 when the rows went through temp
    tables, a ``DELETE … NOT EXISTS`` and ``INSERT … ON CONFLICT DO UPDATE``.
    """

    def __init__(self, conn: Connection, replaced_ids: Sequence[str], loaded_at: datetime | None) -> None:
        self.conn = conn
        self.loaded_at = loaded_at
        ids = sorted(set(replaced_ids))
        for table in CHILD_TABLES if ids else ():
            conn.execute(table.delete().where(table.c.session_id.in_(ids)))

    def write(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if table.name in PARENT_TABLES:
            upsert(self.conn, table, [{**row, "loaded_at": self.loaded_at} for row in rows])
        else:
            self._insert(table, rows)

    def _insert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        stamped = [{**row, "loaded_at": self.loaded_at} for row in rows]
        for batch in _batches(stamped):
            self.conn.execute(table.insert(), list(batch))


class PgWriter(Writer):
    """The PostgreSQL writer: child rows go straight into their tables with ``COPY``.

    No conflict is possible: the sessions' old child rows are gone, the new ones are distinct
    (deduplicated on the primary key), and every writer holds the sessions' advisory locks.
    """

    def __init__(
        self, conn: Connection, schema_name: str, replaced_ids: Sequence[str], loaded_at: datetime | None
    ) -> None:
        super().__init__(conn, replaced_ids, loaded_at)
        self.schema_name = schema_name

    def _insert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        # the postgres extra: only PostgreSQL loads get here
        import psycopg
        from psycopg import sql

        raw = self.conn.connection.driver_connection  # psycopg.Connection, inside our transaction
        if raw is None:  # the pooled connection was invalidated under us
            raise sa.exc.InvalidRequestError("The warehouse connection was closed during a load.")
        target = sql.Identifier(self.schema_name, table.name)
        try:
            with raw.cursor() as cur:
                copy_rows(cur, target, table, rows, self.loaded_at)
        except psycopg.Error as error:
            # Same exception types as the SQLAlchemy paths (IntegrityError, OperationalError…).
            raise sa.exc.DBAPIError.instance(
                sql.SQL("COPY {}").format(target).as_string(raw),
                None,
                error,
                psycopg.Error,
                hide_parameters=True,
                dialect=self.conn.dialect,
            ) from error
