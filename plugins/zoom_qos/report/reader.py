"""How the report reads the warehouse: raw SQL with the schema prefix, the same on both back ends."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from zoom_qos.warehouse.sql import Dialect, check_dialect, object_prefix

__all__ = ["Reader", "int_value", "num_value"]


def num_value(value: Any) -> float | None:
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal | int | float) else float(str(value))


def int_value(value: Any) -> int:
    return int(value or 0)


class Reader:
    """Raw SQL over the views, with the schema prefix and the date parameters of the dialect."""

    def __init__(self, engine: sa.Engine, schema: str | None) -> None:
        self.dialect: Dialect = check_dialect(engine.dialect.name)
        self.schema = schema if self.dialect == "postgresql" else None
        self.prefix = object_prefix(self.dialect, self.schema)

    def day(self, value: date) -> date | str:
        # qos_samples.day is a date on PostgreSQL and 'YYYY-MM-DD' text on SQLite.
        return value if self.dialect == "postgresql" else value.isoformat()

    def rows(self, conn: sa.Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
        """``sql`` with ``{p}`` before each object name, as dicts."""
        return [dict(r._mapping) for r in conn.execute(sa.text(sql.replace("{p}", self.prefix)), params)]

    def greatest(self, *columns: str) -> str:
        """Largest non-NULL of the columns (-1 if all are NULL) on both back ends."""
        name = "greatest" if self.dialect == "postgresql" else "max"
        return f"{name}({', '.join(f'COALESCE({c}, -1)' for c in columns)})"

    def bucket(self, column: str, width: float) -> str:
        # Values are non-negative (negative ones are data-quality findings and land in bin 0);
        # CAST truncates on SQLite but rounds on PostgreSQL, hence floor() there.
        if self.dialect == "postgresql":
            return f"floor({column} / {width!r})"
        return f"CAST({column} / {width!r} AS INTEGER)"
