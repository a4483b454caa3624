"""What raw SQL needs to know of the back end: which dialects the warehouse runs on, and what goes
before an object's name. SQLAlchemy Core statements get the schema from ``schema_translate_map``;
raw SQL (views, the report's queries) is not rewritten, so it takes the prefix from here."""

from __future__ import annotations

from typing import Literal

from zoom_qos.core.errors import WarehouseConnectionError

Dialect = Literal["sqlite", "postgresql"]
DIALECTS: tuple[Dialect, ...] = ("sqlite", "postgresql")


class UnsupportedDatabaseError(WarehouseConnectionError):
    """The warehouse is neither SQLite nor PostgreSQL: the connection (or URL) must change, so it
    is permanent, as any other ``WarehouseConnectionError`` (and a ``ValueError`` too)."""


def check_dialect(name: str) -> Dialect:
    """``name`` as a supported dialect, or a clear error naming what is supported."""
    for dialect in DIALECTS:
        if name == dialect:
            return dialect
    raise UnsupportedDatabaseError(f"Unsupported warehouse database {name!r}; use sqlite or postgresql.")


def object_prefix(dialect: str, schema: str | None) -> str:
    """What goes before every object name in raw SQL: ``'"zoom_qos".'`` on PostgreSQL, ``''`` on
    SQLite (one database, no schema)."""
    if check_dialect(dialect) == "postgresql" and schema:
        return '"' + schema.replace('"', '""') + '".'
    return ""
