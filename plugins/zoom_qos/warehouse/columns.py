"""The column types and builders every table of the warehouse is made of.

One timestamp type (``UtcDateTime``: aware UTC in Python, ``timestamptz`` on PostgreSQL, naive UTC
text on SQLite), JSON that is JSONB on PostgreSQL, the join key every per-join table shares, and
nullable columns with their comment (the data dictionary is generated from the comments).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamp that is always aware UTC in Python and UTC in the database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are stored as
    naive UTC text and handed back as aware UTC; without this, SQLite would return naive
    datetimes that callers would have to guess about. Naive input is taken as UTC (the
    parsers already normalise Zoom's timestamps); ISO-8601 strings are accepted too so a
    run record can be written from serialised values.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text selected through a cast or view
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Every table and index of the warehouse at the migration head (``schema`` and ``derived_schema``).
METADATA = sa.MetaData()


def json_type() -> sa.types.TypeEngine[Any]:
    # JSONB on PostgreSQL so analysts can index and query the raw layer; JSON text elsewhere.
    return sa.JSON().with_variant(JSONB(), "postgresql")


def loaded_at() -> sa.Column[datetime]:
    return sa.Column(
        "loaded_at", UtcDateTime(), nullable=False, comment="When this row was last written (UTC)."
    )


def join_key(comment_suffix: str = "") -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session id" + comment_suffix),
        sa.Column("user_id", sa.Text(), primary_key=True, comment="Zoom user `id`" + comment_suffix),
        sa.Column(
            "join_time",
            UtcDateTime(),
            primary_key=True,
            comment="The join's `join_time` (UTC); one row per join",
        ),
    ]


def text(name: str, comment: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def double(name: str, comment: str) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=True, comment=comment)


def integer(name: str, comment: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=True, comment=comment)


def boolean(name: str, comment: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(create_constraint=False), nullable=True, comment=comment)


def utcnow() -> datetime:
    """Aware UTC now; one place so every ``loaded_at``/``recorded_at`` agrees on the zone."""
    return datetime.now(UTC)
