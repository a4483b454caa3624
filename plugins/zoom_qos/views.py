"""BI views over the warehouse tables (filled in by the views work; interface fixed here).

Views are *repeatable* schema objects: ``Warehouse.ensure_schema()`` recreates them whenever
their definition changes (checksum of the SQL), after the versioned table migrations ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class View:
    """One view: ``sql(dialect, prefix)`` returns its SELECT statement.

    ``dialect`` is ``"sqlite"`` or ``"postgresql"``; ``prefix`` is what goes before every table
    name (``'"zoom_qos".'`` on PostgreSQL, ``''`` on SQLite), because raw SQL is not rewritten
    by SQLAlchemy's schema translation.
    """

    name: str
    comment: str
    sql: Callable[[str, str], str]
    columns: dict[str, str] = field(default_factory=dict)


VIEWS: list[View] = []
