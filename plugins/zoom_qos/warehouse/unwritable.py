"""Which database errors mean the warehouse cannot take a write until someone acts.

A full disk under SQLite, a PostgreSQL whose disk is full, a database file on a read-only mount:
retrying a minute later meets the same refusal, so the task should fail at once and say where and
why (``StorageUnwritableError``). Everything else a database raises (a dropped connection, a
deadlock, a restart) keeps its usual path: Airflow's retries.
"""

from __future__ import annotations

import sqlite3

from zoom_qos.core.errors import unwritable_cause

#: SQLite's primary result codes that mean "no write will succeed here".
_SQLITE_CODES = {
    sqlite3.SQLITE_FULL: "database or disk is full (SQLITE_FULL)",
    sqlite3.SQLITE_READONLY: "attempt to write a readonly database (SQLITE_READONLY)",
}
#: PostgreSQL's SQLSTATEs of the same kind.
_SQLSTATES = {
    "53100": "disk full (SQLSTATE 53100)",
    "25006": "read-only SQL transaction (SQLSTATE 25006)",
}


def warehouse_unwritable_cause(error: BaseException) -> str | None:
    """Why the warehouse refused a write for good, as a message says it; None otherwise.

    ``error`` is what SQLAlchemy raised (its ``orig`` is the driver's error) or the driver's own.
    """
    driver = getattr(error, "orig", None) or error
    code = getattr(driver, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_CODES:
        return _SQLITE_CODES[code & 0xFF]
    state = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    if isinstance(state, str) and state in _SQLSTATES:
        return _SQLSTATES[state]
    return unwritable_cause(error)
