"""A warehouse that cannot take a write for good (full, read-only) fails the task at once, naming it;
other database errors keep their retries (zoom_qos.warehouse.unwritable, opened_warehouse)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from tests.integration.load_worker import items
from zoom_qos.core.errors import StorageUnwritableError
from zoom_qos.operators import fail_fast
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse.opening import opened_warehouse
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.unwritable import warehouse_unwritable_cause


@pytest.fixture
def nearly_full_sqlite(tmp_path):
    """A migrated SQLite warehouse that may grow by 8 pages only (``max_page_count``): what a
    full disk looks like to SQLite, without needing one."""
    path = tmp_path / "warehouse.db"
    wh = Warehouse(f"sqlite:///{path}")
    wh.ensure_schema()
    with wh.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @sa.event.listens_for(wh.engine, "connect")
    def cap(dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 8}")

    wh.engine.dispose()  # connections from now on are capped
    yield wh, path
    wh.dispose()


def test_a_full_sqlite_warehouse_is_permanent_naming_the_file_and_loads_nothing_half(nearly_full_sqlite):
    wh, path = nearly_full_sqlite
    sessions = [SessionInput(session, users) for session, users in items(range(40), "v1")]
    with pytest.raises(AirflowFailException) as raised, fail_fast():
        with opened_warehouse(wh) as opened:
            opened.load_sessions(sessions, ParseIssues())
    cause = raised.value.__cause__
    assert isinstance(cause, StorageUnwritableError)
    assert str(path) in str(raised.value) and "database or disk is full (SQLITE_FULL)" in str(raised.value)
    with wh.engine.connect() as conn:
        per_session = dict(conn.exec_driver_sql(
            "SELECT session_id, count(*) FROM user_qos GROUP BY session_id").all())
    want = {s.session["id"]: sum(len(u.get("user_qos") or []) for u in s.users) for s in sessions}
    assert all(per_session[sid] == want[sid] for sid in per_session), per_session  # none half
    assert len(per_session) < len(sessions)


def test_postgresql_disk_full_and_read_only_are_unwritable_but_a_dropped_connection_is_not():
    import psycopg

    assert warehouse_unwritable_cause(psycopg.errors.DiskFull()) == "disk full (SQLSTATE 53100)"
    assert "SQLSTATE 25006" in warehouse_unwritable_cause(psycopg.errors.ReadOnlySqlTransaction())
    assert warehouse_unwritable_cause(psycopg.errors.AdminShutdown()) is None
    assert warehouse_unwritable_cause(psycopg.OperationalError("server closed the connection")) is None
