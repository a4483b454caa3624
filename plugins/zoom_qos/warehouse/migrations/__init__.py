"""The warehouse's versioned schema (Alembic revisions in ``versions/``) and its BI views.

:func:`ensure_schema` is what every task calls before touching the warehouse:

1. **Fast path** — one read of the Alembic version and one read of the view checksums; if the
   database is at the head revision and every view in ``zoom_qos.warehouse.views.VIEWS`` is present
   with the checksum of its current definition, nothing else happens.
2. Otherwise, serialised across processes (PostgreSQL: ``pg_advisory_xact_lock`` on a fixed
   key; SQLite: ``BEGIN IMMEDIATE``) and in one transaction (PostgreSQL DDL is transactional,
   so a failed upgrade leaves the old schema):

   - a warehouse created before Alembic (the v1 tables, no version table) is stamped
     ``0001_initial``;
   - if an upgrade is due, the managed views are dropped first (a migration may alter a column
     a view uses), then ``alembic upgrade head`` runs on the same connection;
   - views whose definition changed (sha256 of ``sql(dialect, prefix)``, ``comment`` and
     ``columns``) or that are missing are dropped and recreated in list order, views no longer
     listed are dropped, and ``schema_objects`` records the checksums.

Revisions place their objects in the schema given by ``op.get_context().opts["warehouse_schema"]``
(``None`` on SQLite); the version table lives in the same schema (main database on SQLite).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from zoom_qos.warehouse import derived
from zoom_qos.warehouse import views as views_module
from zoom_qos.warehouse.schema import schema_objects
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.views import View

__all__ = [
    "BASELINE_REVISION",
    "MIGRATIONS_DIR",
    "SCHEMA_LOCK_KEY",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "view_checksum",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
#: The revision a pre-Alembic warehouse (made by the old ``create_all``) is stamped with.
BASELINE_REVISION = "0001_initial"
#: Advisory-lock key serialising schema changes on PostgreSQL ("ZoomQOS").
SCHEMA_LOCK_KEY = 0x5A6F6F6D514F53
#: The tables revision 0001 creates; all present and no version table = pre-Alembic warehouse.
_BASELINE_TABLES = frozenset(
    {
        "sessions",
        "raw_sessions",
        "session_users",
        "raw_session_users",
        "user_qos",
        "user_system_qos",
        "pipeline_runs",
    }
)


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with the package (parsed once per process)."""
    return ScriptDirectory(str(MIGRATIONS_DIR))


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"No Alembic revisions found in {MIGRATIONS_DIR}")
    return head


def alembic_config(connection: Connection, schema: str | None) -> Config:
    """An in-memory Alembic config running ``env.py`` on ``connection`` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    config.attributes["warehouse_schema"] = schema
    return config


def _pg_schema(engine_or_conn: Engine | Connection, schema: str | None) -> str | None:
    return schema if engine_or_conn.dialect.name == "postgresql" else None


def _view_sql(view: View, dialect: str, prefix: str) -> str:
    return view.sql(dialect, prefix).strip().rstrip(";").strip()


def view_checksum(view: View, dialect: str, prefix: str) -> str:
    """sha256 of everything ``CREATE VIEW``/``COMMENT ON`` is made from."""
    definition = {
        "sql": _view_sql(view, dialect, prefix),
        "comment": view.comment,
        "columns": dict(view.columns),
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode("utf-8")).hexdigest()


def _current_views() -> list[View]:
    # Read at call time so a monkeypatched or extended VIEWS list is honoured.
    views = list(views_module.VIEWS)
    names = [v.name for v in views]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Duplicate view names in zoom_qos.warehouse.views.VIEWS: {duplicates}")
    return views


class _Objects:
    """Names and SQL snippets for one connection (dialect + schema)."""

    def __init__(self, conn: Connection, schema: str | None) -> None:
        self.dialect = conn.dialect.name
        self.schema = schema if self.dialect == "postgresql" else None
        self.prefix = object_prefix(self.dialect, self.schema)
        self.preparer = conn.dialect.identifier_preparer
        self.literal = sa.String().literal_processor(conn.dialect)

    def name(self, name: str) -> str:
        return self.prefix + self.preparer.quote(name)

    def stored_views_sql(self) -> sa.TextClause:
        """(name, checksum, present) per view recorded in ``schema_objects``: one query."""
        objects = self.name(schema_objects.name)
        if self.dialect == "postgresql":
            return sa.text(
                f"SELECT o.name, o.checksum, v.viewname IS NOT NULL FROM {objects} o "
                "LEFT JOIN pg_catalog.pg_views v ON v.schemaname = :schema AND v.viewname = o.name"
            ).bindparams(schema=self.schema)
        return sa.text(
            f"SELECT o.name, o.checksum, m.name IS NOT NULL FROM {objects} o "
            "LEFT JOIN sqlite_master m ON m.type = 'view' AND m.name = o.name"
        )

    def existing_views_sql(self) -> sa.TextClause:
        if self.dialect == "postgresql":
            return sa.text("SELECT viewname FROM pg_catalog.pg_views WHERE schemaname = :schema").bindparams(
                schema=self.schema
            )
        return sa.text("SELECT name FROM sqlite_master WHERE type = 'view'")

    def drop_view_sql(self, name: str) -> str:
        cascade = " CASCADE" if self.dialect == "postgresql" else ""
        return f"DROP VIEW IF EXISTS {self.name(name)}{cascade}"


def _ddl(conn: Connection, statement: str) -> None:
    # no_parameters: the driver must not read % or ? in a view's SQL as placeholders.
    conn.exec_driver_sql(statement, execution_options={"no_parameters": True})


def current_revision(conn: Connection, schema: str | None) -> str | None:
    """The warehouse's Alembic revision, or None if it has no version table."""
    context = MigrationContext.configure(
        conn, opts={"version_table_schema": _pg_schema(conn, schema), "version_table": VERSION_TABLE}
    )
    heads = context.get_current_heads()
    return heads[0] if heads else None


def _is_current(engine: Engine, schema: str | None, wanted: dict[str, str]) -> bool:
    """Fast path: one version read + one checksum read, no locks taken."""
    with engine.connect() as conn:
        objects = _Objects(conn, schema)
        try:
            versions = conn.execute(
                sa.text(f"SELECT version_num FROM {objects.name(VERSION_TABLE)}")
            ).scalars().all()
            if versions != [head_revision()]:
                return False
            stored = {name: (checksum, bool(present)) for name, checksum, present in
                      conn.execute(objects.stored_views_sql())}
            if stored != {name: (checksum, True) for name, checksum in wanted.items()}:
                return False
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(schema_translate_map={None: schema})
            return derived.state_is_current(conn)
        except (sa.exc.ProgrammingError, sa.exc.OperationalError):
            return False  # a table is missing: new or pre-Alembic warehouse


def ensure_schema(
    engine: Engine, schema: str | None, progress: derived.Progress | None = None, *, recompute: bool = False
) -> bool:
    """Bring the warehouse to the head revision, its views and its derived tables up to date.

    The derived tables are recomputed from the stored samples, in the same transaction, when they
    were made by other scoring rules or other ``qos_thresholds`` (:mod:`zoom_qos.warehouse.derived`);
    ``progress`` hears how far that got. ``recompute`` recomputes them whatever they were made with
    (``zoom-qos warehouse upgrade``: rows may have been changed outside the pipeline).

    Idempotent and safe to call from many processes at once. Returns True when something
    had to be checked under the lock (first run, upgrade or view change), False on the fast
    path. ``engine`` should be a :class:`zoom_qos.warehouse.Warehouse` engine, whose SQLite hook
    turns the ``sqlite_immediate`` option into ``BEGIN IMMEDIATE``.
    """
    schema = _pg_schema(engine, schema)
    views = _current_views()
    prefix = object_prefix(engine.dialect.name, schema)
    wanted = {v.name: view_checksum(v, engine.dialect.name, prefix) for v in views}
    if not recompute and _is_current(engine, schema, wanted):
        return False
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(schema_translate_map={None: schema})
        else:
            conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :n"), {"n": schema}
                ).first()
                if exists is None and schema:
                    _ddl(conn, f"CREATE SCHEMA {conn.dialect.identifier_preparer.quote_schema(schema)}")
            _upgrade(conn, schema)
            _sync_views(conn, schema, views)
            if recompute:
                derived.recompute_all(conn, schema, progress)
            else:
                derived.bring_up_to_date(conn, schema, progress)
    return True


def _upgrade(conn: Connection, schema: str | None) -> None:
    objects = _Objects(conn, schema)
    current = current_revision(conn, schema)
    head = head_revision()
    tables = set(sa.inspect(conn).get_table_names(schema=objects.schema))
    config = alembic_config(conn, objects.schema)
    if current is None and tables & _BASELINE_TABLES:
        missing = _BASELINE_TABLES - tables
        if missing:
            raise RuntimeError(
                f"Warehouse has some but not all v1 tables (missing: {sorted(missing)}) and no "
                f"{VERSION_TABLE} table; refusing to guess its version."
            )
        log.info("Warehouse predates Alembic: stamping it %s.", BASELINE_REVISION)
        command.stamp(config, BASELINE_REVISION)
        current = BASELINE_REVISION
    if current == head:
        return
    if schema_objects.name in tables:
        # A revision may alter columns a view reads; the views are recreated afterwards.
        for (name,) in conn.execute(sa.select(schema_objects.c.name)):
            _ddl(conn, objects.drop_view_sql(name))
        conn.execute(schema_objects.delete())
    log.info("Upgrading warehouse schema from %s to %s.", current or "(empty)", head)
    command.upgrade(config, "head")


def _sync_views(conn: Connection, schema: str | None, views: Sequence[View]) -> None:
    objects = _Objects(conn, schema)
    wanted = {v.name: view_checksum(v, objects.dialect, objects.prefix) for v in views}
    stored = {name: (checksum, bool(present)) for name, checksum, present in
              conn.execute(objects.stored_views_sql())}
    changed = [v for v in views if stored.get(v.name) != (wanted[v.name], True)]
    removed = [name for name in stored if name not in wanted]
    if not changed and not removed:
        return
    for name in removed:
        log.info("Dropping view %s (no longer defined).", name)
        _ddl(conn, objects.drop_view_sql(name))
        conn.execute(schema_objects.delete().where(schema_objects.c.name == name))
    for view in reversed(changed):
        _ddl(conn, objects.drop_view_sql(view.name))
    # CASCADE (PostgreSQL) may have dropped views built on a changed one: recreate those too.
    existing = set(conn.execute(objects.existing_views_sql()).scalars())
    changed_names = {v.name for v in changed}
    insert = pg_dialect.insert if objects.dialect == "postgresql" else sqlite_dialect.insert
    for view in views:
        if view.name not in changed_names and view.name in existing:
            continue
        log.info("Creating view %s.", view.name)
        qualified = objects.name(view.name)
        _ddl(conn, f"CREATE VIEW {qualified} AS\n{_view_sql(view, objects.dialect, objects.prefix)}")
        if objects.dialect == "postgresql":
            _ddl(conn, f"COMMENT ON VIEW {qualified} IS {objects.literal(view.comment)}")
            for column, comment in view.columns.items():
                _ddl(
                    conn,
                    f"COMMENT ON COLUMN {qualified}.{objects.preparer.quote(column)} "
                    f"IS {objects.literal(comment)}",
                )
        stmt = insert(schema_objects).values(name=view.name, checksum=wanted[view.name])
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"], set_={"checksum": stmt.excluded.checksum}
            )
        )
