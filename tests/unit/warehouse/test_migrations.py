"""Versioned schema (Alembic) and managed BI views, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from tests.builders import run_concurrently
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import migrations, schema
from zoom_qos.warehouse import views as views_module
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.views import View

# Fixtures pg_database (fresh PostgreSQL database) and warehouse_url (sqlite / postgresql).

SCHEMA = "zoom_qos"
HEAD = "0008_webhook_logs"
T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
GRADE_COLUMNS = ("participant_uuid", "audio_quality", "video_quality", "screen_share_quality")


@pytest.fixture(autouse=True)
def no_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables only, unless a test sets its own VIEWS (the real views are tested elsewhere)."""
    monkeypatch.setattr(views_module, "VIEWS", [])


@pytest.fixture()
def warehouse(warehouse_url: URL) -> Iterator[Warehouse]:
    wh = Warehouse(warehouse_url)
    yield wh
    wh.dispose()


def q(wh: Warehouse, name: str) -> str:
    """A table name as raw SQL needs it on this backend."""
    return object_prefix(wh.dialect, wh.schema) + name


def scalar(wh: Warehouse, sql: str, **params: Any) -> Any:
    with wh.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(wh: Warehouse, sql: str, **params: Any) -> list[tuple]:
    with wh.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def version(wh: Warehouse) -> str | None:
    with wh.engine.connect() as conn:
        return migrations.current_revision(conn, wh.schema)


def migrate_to(wh: Warehouse, revision: str) -> None:
    """Run the revisions up to ``revision`` exactly as an older release would have."""
    with wh.engine.begin() as conn:
        if wh.dialect == "postgresql":
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{wh.schema}"')
        command.upgrade(migrations.alembic_config(conn, wh.schema), revision)


def insert_v1_data(wh: Warehouse) -> None:
    """A session, a user, a sample and a run record, written with v1-shaped plain INSERTs."""
    ts = "2025-03-01 10:00:00+00" if wh.dialect == "postgresql" else "2025-03-01 10:00:00.000000"
    statements = [
        f"INSERT INTO {q(wh, 'sessions')} (session_id, session_name, start_time, user_count, has_video, "
        f"loaded_at) VALUES ('s1', 'Standup', '{ts}', 1, true, '{ts}')",
        f"INSERT INTO {q(wh, 'raw_sessions')} (session_id, payload, loaded_at) "
        f"VALUES ('s1', '{{\"id\": \"s1\"}}', '{ts}')",
        f"INSERT INTO {q(wh, 'session_users')} (session_id, user_id, join_time, user_name, loaded_at) "
        f"VALUES ('s1', 'u1', '{ts}', 'Ann', '{ts}')",
        f"INSERT INTO {q(wh, 'user_qos')} (session_id, user_id, join_time, sampled_at, stream, "
        f"latency_ms, loaded_at) VALUES ('s1', 'u1', '{ts}', '{ts}', 'audio_input', 126, '{ts}')",
        f"INSERT INTO {q(wh, 'pipeline_runs')} (run_id, outcome, sessions_loaded, unparsed_detail, "
        f"recorded_at) VALUES ('r1', 'success', 1, '{{\"bitrate\": {{\"count\": 1}}}}', '{ts}')",
    ]
    with wh.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def assert_v1_data_kept(wh: Warehouse) -> None:
    (session,) = [r._asdict() for r in _select(wh, schema.sessions)]
    assert (session["session_id"], session["session_name"], session["start_time"]) == ("s1", "Standup", T0)
    assert (session["user_count"], session["has_video"]) == (1, True)
    # v1 sessions had their QoS read: they become loaded, never asked since
    assert (session["qos_status"], session["qos_checked_at"]) == ("loaded", None)
    (join,) = [r._asdict() for r in _select(wh, schema.session_users)]
    assert (join["user_id"], join["user_name"]) == ("u1", "Ann")
    assert [join[c] for c in GRADE_COLUMNS] == [None] * 4
    assert [(r.stream, r.latency_ms) for r in _select(wh, schema.user_qos)] == [("audio_input", 126.0)]
    assert [r.payload for r in _select(wh, schema.raw_sessions)] == [{"id": "s1"}]
    (run,) = list(_select(wh, schema.pipeline_runs))
    assert (run.run_id, run.outcome, run.sessions_loaded) == ("r1", "success", 1)
    assert run.unparsed_detail == {"bitrate": {"count": 1}}
    assert run.dq_findings is None and run.dq_hard_violations is None
    assert run.sessions_pending is None and run.sessions_unavailable is None


def _select(wh: Warehouse, table: sa.Table) -> list[sa.Row]:
    with wh.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def assert_at_head(wh: Warehouse) -> None:
    assert version(wh) == HEAD == migrations.head_revision()
    thresholds = rows(
        wh, f"SELECT media_type, latency_ms, jitter_ms, loss_pct FROM {q(wh, 'qos_thresholds')}"
    )
    assert sorted(thresholds) == [
        ("audio", 150.0, 40.0, 2.0),
        ("screen_share", 150.0, 40.0, 2.0),
        ("video", 150.0, 40.0, 2.0),
    ]
    with wh.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("pipeline_runs", schema=wh.schema)}
    assert {"dq_findings", "dq_hard_violations", "sessions_pending", "sessions_unavailable"} <= columns
    assert scalar(wh, f"SELECT count(*) FROM {q(wh, 'schema_objects')}") is not None
    with wh.engine.connect() as conn:
        inspector = sa.inspect(conn)
        session_columns = {c["name"]: c for c in inspector.get_columns("sessions", schema=wh.schema)}
        user_columns = {c["name"] for c in inspector.get_columns("session_users", schema=wh.schema)}
        usage = [c["name"] for c in inspector.get_columns("daily_usage", schema=wh.schema)]
        checks = {c["name"] for c in inspector.get_check_constraints("sessions", schema=wh.schema)}
    status = session_columns["qos_status"]
    assert status["nullable"] is False and status["default"] is None  # the fill default is gone
    assert session_columns["qos_checked_at"]["nullable"] is True
    assert set(GRADE_COLUMNS) <= user_columns
    assert usage == ["usage_date", "sessions", "users", "session_minutes", "fetched_at"]
    assert checks == {"ck_sessions_qos_status"}


# --------------------------------------------------------------------------- head == declarations
def test_head_schema_matches_declarations(warehouse: Warehouse) -> None:
    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    connect_args = {"options": f"-csearch_path={SCHEMA}"} if warehouse.dialect == "postgresql" else {}
    engine = sa.create_engine(warehouse.url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            # Types, nullability, keys, indexes and (PostgreSQL) table/column comments.
            assert compare_metadata(context, schema.METADATA) == []
            # ...and the comparison is not vacuous: a declared-but-missing column is reported.
            extended = sa.MetaData()
            for table in schema.METADATA.sorted_tables:
                table.to_metadata(extended)
            extended.tables["qos_thresholds"].append_column(sa.Column("extra", sa.Text()))
            diffs = compare_metadata(context, extended)
            extra = extended.tables["qos_thresholds"].c.extra
            assert [d[0] for d in diffs] == ["add_column"] and diffs[0][2:4] == ("qos_thresholds", extra)
    finally:
        engine.dispose()


def test_fresh_warehouse_loads_and_records_dq(warehouse: Warehouse) -> None:
    warehouse.ensure_schema()
    warehouse.record_run(
        {
            "run_id": "r",
            "outcome": "success",
            "dq_findings": [{"check": "x", "rows": 2}],
            "dq_hard_violations": 0,
        }
    )
    (run,) = _select(warehouse, schema.pipeline_runs)
    assert run.dq_findings == [{"check": "x", "rows": 2}] and run.dq_hard_violations == 0


# --------------------------------------------------------------------------- upgrades
def test_upgrade_from_0001_keeps_data(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    assert version(warehouse) == "0001_initial"
    with warehouse.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names(schema=warehouse.schema))
    assert "qos_thresholds" not in tables and "sessions" in tables
    insert_v1_data(warehouse)

    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    assert_v1_data_kept(warehouse)
    # the upgraded warehouse takes new loads and run records with the new columns
    session = {"id": "s2", "start_time": "2025-03-02T10:00:00Z"}
    assert warehouse.load_sessions([SessionInput(session, [])], ParseIssues()).sessions_loaded
    warehouse.record_run({"run_id": "r1", "dq_hard_violations": 3})
    assert scalar(warehouse, f"SELECT dq_hard_violations FROM {q(warehouse, 'pipeline_runs')}") == 3
    assert warehouse.ensure_schema() is False


def test_pre_alembic_warehouse_is_stamped_then_upgraded(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    insert_v1_data(warehouse)
    with warehouse.engine.begin() as conn:  # what the old create_all left: tables, no version
        conn.exec_driver_sql(f"DROP TABLE {q(warehouse, 'alembic_version')}")
    assert version(warehouse) is None

    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    assert_v1_data_kept(warehouse)


def test_partial_pre_alembic_warehouse_is_refused(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {q(warehouse, 'alembic_version')}")
        conn.exec_driver_sql(f"DROP TABLE {q(warehouse, 'user_system_qos')}")
    with pytest.raises(RuntimeError, match="user_system_qos"):
        warehouse.ensure_schema()
    assert version(warehouse) is None


def downgrade_to(wh: Warehouse, revision: str) -> None:
    with wh.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn, wh.schema), revision)


def test_downgrade_and_upgrade_again(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    insert_v1_data(warehouse)  # v1-shaped INSERTs need the v1 tables (no qos_status yet)
    warehouse.ensure_schema()
    downgrade_to(warehouse, "0001_initial")
    assert version(warehouse) == "0001_initial"
    warehouse.ensure_schema()
    assert_at_head(warehouse)
    assert_v1_data_kept(warehouse)


# --------------------------------------------------------------------------- v2: 0003_completeness
V1_TABLES = ("sessions", "raw_sessions", "session_users", "raw_session_users", "user_qos", "user_system_qos",
             "pipeline_runs")


def insert_more_v1_data(wh: Warehouse) -> None:
    """A second session with every v1 column set, a rejoin and a system sample (v1 INSERTs)."""
    pg = wh.dialect == "postgresql"

    def ts(minute: int) -> str:
        return f"2025-03-02 09:{minute:02d}:00" + ("+00" if pg else ".000000")

    true, false = ("true", "false") if pg else ("1", "0")
    statements = [
        f"INSERT INTO {q(wh, 'sessions')} VALUES ('s0', 'Full', 'key-0', '{ts(0)}', '{ts(30)}', 1800, 2, "
        f"{true}, {true}, {false}, {false}, {true}, 'good', 'fair', 'poor', '{ts(31)}')",
        f"INSERT INTO {q(wh, 'raw_sessions')} VALUES ('s0', '{{\"id\": \"s0\", \"n\": [1, 2]}}', '{ts(31)}')",
        *(
            f"INSERT INTO {q(wh, 'session_users')} (session_id, user_id, join_time, leave_time, user_name, "
            f"device, network_type, data_center, is_original_host, loaded_at) VALUES ('s0', 'u{n}', "
            f"'{ts(join)}', '{ts(join + 5)}', 'Bo', 'Mac', 'Wifi', 'SJ', {true}, '{ts(31)}')"
            for n, join in ((1, 0), (1, 10), (2, 1))  # u1 rejoined
        ),
        f"INSERT INTO {q(wh, 'raw_session_users')} VALUES ('s0', 'u1', '{ts(0)}', '{{\"id\": \"u1\"}}', "
        f"'{ts(31)}')",
        f"INSERT INTO {q(wh, 'user_qos')} (session_id, user_id, join_time, sampled_at, stream, bitrate_kbps, "
        f"latency_ms, jitter_ms, avg_loss_pct, max_loss_pct, resolution_width, resolution_height, "
        f"frame_rate_fps, loaded_at) VALUES ('s0', 'u1', '{ts(0)}', '{ts(1)}', 'video_output', 1200.5, 80, "
        f"4.25, 0.3, 1.5, 1280, 720, 29.97, '{ts(31)}')",
        f"INSERT INTO {q(wh, 'user_system_qos')} (session_id, user_id, join_time, sampled_at, "
        f"zoom_avg_cpu_pct, wifi_avg_rssi, wifi_rssi_unit, loaded_at) VALUES ('s0', 'u2', '{ts(1)}', "
        f"'{ts(2)}', 12.5, -60, 'dBm', '{ts(31)}')",
        f"INSERT INTO {q(wh, 'pipeline_runs')} (run_id, window_start, window_end, started_at, finished_at, "
        f"outcome, sessions_listed, sessions_loaded, recorded_at) VALUES ('r0', '2025-03-02', '2025-03-02', "
        f"'{ts(0)}', '{ts(3)}', 'success', 2, 2, '{ts(3)}')",
    ]
    with wh.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def stored(wh: Warehouse, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """Every row of the tables, only the given columns, as the database returns them."""
    return {
        table: rows(wh, f"SELECT {', '.join(cols)} FROM {q(wh, table)} ORDER BY {', '.join(cols)}")
        for table, cols in columns.items()
    }


def test_v1_warehouse_with_data_upgrades_to_v2_keeping_every_row(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    insert_v1_data(warehouse)
    insert_more_v1_data(warehouse)
    with warehouse.engine.connect() as conn:
        inspector = sa.inspect(conn)
        v1_columns = {
            t: [c["name"] for c in inspector.get_columns(t, schema=warehouse.schema)] for t in V1_TABLES
        }
    before = stored(warehouse, v1_columns)
    assert sum(len(r) for r in before.values()) == 5 + 9  # not vacuous: the rows are there

    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    # every row, every v1 column, value for value (the SQLite batch copy of sessions included)
    assert stored(warehouse, v1_columns) == before
    assert rows(
        warehouse, f"SELECT session_id, qos_status, qos_checked_at FROM {q(warehouse, 'sessions')} ORDER BY 1"
    ) == [("s0", "loaded", None), ("s1", "loaded", None)]
    assert scalar(warehouse, f"SELECT count(*) FROM {q(warehouse, 'daily_usage')}") == 0
    # v1 queries keep working, and the Core declarations read the upgraded rows
    (full,) = [r for r in _select(warehouse, schema.sessions) if r.session_id == "s0"]
    assert (full.has_voip, full.has_screen_share, full.duration_seconds) == (True, False, 1800)
    assert full.end_time == datetime(2025, 3, 2, 9, 30, tzinfo=UTC)


def test_an_analysts_own_view_on_sessions_survives_the_upgrade(warehouse: Warehouse) -> None:
    """SQLite rebuilds ``sessions`` (batch mode): a view reading it must neither block nor break."""
    migrate_to(warehouse, "0002_quality")
    insert_v1_data(warehouse)
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE VIEW {q(warehouse, 'my_sessions')} AS SELECT session_id, session_name "
            f"FROM {q(warehouse, 'sessions')}"
        )
    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    assert rows(warehouse, f"SELECT * FROM {q(warehouse, 'my_sessions')}") == [("s1", "Standup")]
    if warehouse.dialect == "sqlite":  # down and up on one connection: the rename mode is restored
        with warehouse.engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, None), "0002_quality")
            command.upgrade(migrations.alembic_config(conn, None), "head")
            assert conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar() == 0
        assert rows(warehouse, f"SELECT * FROM {q(warehouse, 'my_sessions')}") == [("s1", "Standup")]


def _session(session_id: str, **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, "start_time": T0, "loaded_at": T0, **extra}


def test_v2_qos_status_is_required_and_checked(warehouse: Warehouse) -> None:
    warehouse.ensure_schema()
    checked = datetime(2025, 3, 4, 8, 30, tzinfo=UTC)
    with warehouse.engine.begin() as conn:
        conn.execute(
            schema.sessions.insert(),
            [
                _session(f"s-{status}", qos_status=status, qos_checked_at=checked)
                for status in schema.QOS_STATUSES
            ],
        )
    statuses = {r.session_id: (r.qos_status, r.qos_checked_at) for r in _select(warehouse, schema.sessions)}
    assert statuses == {f"s-{v}": (v, checked) for v in ("loaded", "pending", "unavailable", "live")}
    for bad in ({}, {"qos_status": None}, {"qos_status": "maybe"}, {"qos_status": "Loaded"}):
        with pytest.raises(sa.exc.IntegrityError), warehouse.engine.begin() as conn:
            conn.execute(schema.sessions.insert(), [_session("s-bad", **bad)])
    assert len(_select(warehouse, schema.sessions)) == 4


def test_v2_daily_usage_grades_and_run_counts_take_values(warehouse: Warehouse) -> None:
    warehouse.ensure_schema()
    fetched = datetime(2025, 3, 5, 1, tzinfo=UTC)
    grades = dict(zip(GRADE_COLUMNS, ("uuid-1", "good", "fair", "bad"), strict=True))
    with warehouse.engine.begin() as conn:
        conn.execute(schema.daily_usage.insert(), [
            {"usage_date": date(2025, 3, 4), "sessions": 14, "users": 30, "session_minutes": 900,
             "fetched_at": fetched},
            {"usage_date": date(2025, 3, 5), "sessions": None, "users": None, "session_minutes": None,
             "fetched_at": fetched},
        ])
        conn.execute(schema.sessions.insert(), [_session("s1", qos_status="loaded")])
        conn.execute(schema.session_users.insert(), [
            {"session_id": "s1", "user_id": "u1", "join_time": T0, "loaded_at": T0, **grades}])
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():  # fetched_at is required
            conn.execute(schema.daily_usage.insert(), [{"usage_date": date(2025, 3, 6)}])
    warehouse.record_run(
        {"run_id": "r", "outcome": "success", "sessions_pending": 2, "sessions_unavailable": 1}
    )
    usage = [tuple(r) for r in _select(warehouse, schema.daily_usage)]
    assert usage == [(date(2025, 3, 4), 14, 30, 900, fetched), (date(2025, 3, 5), None, None, None, fetched)]
    (join,) = [r._asdict() for r in _select(warehouse, schema.session_users)]
    assert {c: join[c] for c in GRADE_COLUMNS} == grades
    (run,) = _select(warehouse, schema.pipeline_runs)
    assert (run.sessions_pending, run.sessions_unavailable) == (2, 1)


def test_downgrade_to_0002_removes_only_the_v2_additions(warehouse: Warehouse) -> None:
    migrate_to(warehouse, "0001_initial")
    insert_v1_data(warehouse)
    warehouse.ensure_schema()
    with warehouse.engine.begin() as conn:
        conn.execute(schema.sessions.insert(), [_session("s2", qos_status="pending", qos_checked_at=T0)])
        conn.execute(
            schema.daily_usage.insert(), [{"usage_date": date(2025, 3, 1), "sessions": 2, "fetched_at": T0}]
        )
    downgrade_to(warehouse, "0002_quality")
    assert version(warehouse) == "0002_quality"
    with warehouse.engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names(schema=warehouse.schema))
        columns = {t: {c["name"] for c in inspector.get_columns(t, schema=warehouse.schema)}
                   for t in ("sessions", "session_users", "pipeline_runs")}
    assert "daily_usage" not in tables and "qos_thresholds" in tables
    assert not {"qos_status", "qos_checked_at"} & columns["sessions"]
    assert not set(GRADE_COLUMNS) & columns["session_users"]
    assert not {"sessions_pending", "sessions_unavailable"} & columns["pipeline_runs"]
    assert "dq_findings" in columns["pipeline_runs"]
    kept = rows(warehouse, f"SELECT session_id FROM {q(warehouse, 'sessions')} ORDER BY 1")
    assert kept == [("s1",), ("s2",)]
    # and up again: what a 0002 warehouse holds is taken as loaded, like any v1 session
    warehouse.ensure_schema()
    assert_at_head(warehouse)
    assert rows(warehouse, f"SELECT session_id, qos_status FROM {q(warehouse, 'sessions')} ORDER BY 1") == [
        ("s1", "loaded"), ("s2", "loaded")]


def test_concurrent_ensure_schema(warehouse_url: URL) -> None:
    def work() -> bool:
        wh = Warehouse(warehouse_url)
        try:
            return wh.ensure_schema()
        finally:
            wh.dispose()

    results = run_concurrently(work, threads=4)
    assert len(results) == 4
    wh = Warehouse(warehouse_url)
    assert_at_head(wh)
    assert len(rows(wh, f"SELECT * FROM {q(wh, 'qos_thresholds')}")) == 3  # seeded once
    assert wh.ensure_schema() is False
    wh.dispose()


def test_nothing_changed_costs_four_small_reads(warehouse: Warehouse) -> None:
    warehouse.ensure_schema()
    statements: list[str] = []
    sa.event.listen(warehouse.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert warehouse.ensure_schema() is False
    queries = [q for q in statements if q != "BEGIN"]  # SQLite's explicit BEGIN (deferred)
    assert len(queries) == 4, statements
    assert "alembic_version" in queries[0] and "schema_objects" in queries[1]
    assert "derived_state" in queries[2] and "qos_thresholds" in queries[3]


# --------------------------------------------------------------------------- views
def _view_a(dialect: str, prefix: str) -> str:
    return f"SELECT session_id, session_name, '100%' AS pct FROM {prefix}sessions"


def _view_a_changed(dialect: str, prefix: str) -> str:
    return f"SELECT session_id, upper(session_name) AS session_name, '50%' AS pct FROM {prefix}sessions"


def _view_b(dialect: str, prefix: str) -> str:
    return f"SELECT count(*) AS n, max(pct) AS pct FROM {prefix}v_a"


VIEW_A = View("v_a", "Sessions by name.", _view_a, {"session_name": "The name", "pct": "It's a literal"})
VIEW_B = View("v_b", "Built on v_a.", _view_b, {"n": "Sessions"})


def view_names(wh: Warehouse) -> set[str]:
    if wh.dialect == "postgresql":
        return {r[0] for r in rows(wh, "SELECT viewname FROM pg_views WHERE schemaname = :s", s=wh.schema)}
    return {r[0] for r in rows(wh, "SELECT name FROM sqlite_master WHERE type = 'view'")}


def stored_checksums(wh: Warehouse) -> dict[str, str]:
    return dict(rows(wh, f"SELECT name, checksum FROM {q(wh, 'schema_objects')}"))


def ddl_log(wh: Warehouse) -> list[str]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("CREATE", "DROP", "COMMENT")):
            statements.append(statement)

    sa.event.listen(wh.engine, "before_cursor_execute", record)
    return statements


def test_views_created_kept_recreated_dropped(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse.ensure_schema()
    warehouse.load_sessions(
        [SessionInput({"id": "s1", "session_name": "Ann", "start_time": "2025-03-01T10:00:00Z"}, [])],
        ParseIssues(),
    )
    ddl = ddl_log(warehouse)
    prefix = object_prefix(warehouse.dialect, warehouse.schema)

    # created, in list order (v_b reads v_a)
    monkeypatch.setattr(views_module, "VIEWS", [VIEW_A, VIEW_B])
    assert warehouse.ensure_schema() is True
    assert view_names(warehouse) == {"v_a", "v_b"}
    assert rows(warehouse, f"SELECT n, pct FROM {q(warehouse, 'v_b')}") == [(1, "100%")]
    assert stored_checksums(warehouse) == {
        "v_a": migrations.view_checksum(VIEW_A, warehouse.dialect, prefix),
        "v_b": migrations.view_checksum(VIEW_B, warehouse.dialect, prefix),
    }
    if warehouse.dialect == "postgresql":
        assert scalar(warehouse, "SELECT obj_description('zoom_qos.v_a'::regclass)") == "Sessions by name."
        assert scalar(warehouse, "SELECT col_description('zoom_qos.v_a'::regclass, 3)") == "It's a literal"
        assert scalar(warehouse, "SELECT col_description('zoom_qos.v_b'::regclass, 1)") == "Sessions"
    assert any("CREATE VIEW" in d for d in ddl)

    # unchanged: untouched
    ddl.clear()
    assert warehouse.ensure_schema() is False
    assert ddl == []

    # v_a changed: recreated; v_b (built on it) still there and working
    changed_a = View("v_a", "Sessions by name.", _view_a_changed, {"session_name": "The name, upper"})
    monkeypatch.setattr(views_module, "VIEWS", [changed_a, VIEW_B])
    assert warehouse.ensure_schema() is True
    assert view_names(warehouse) == {"v_a", "v_b"}
    assert rows(warehouse, f"SELECT session_name FROM {q(warehouse, 'v_a')}") == [("ANN",)]
    assert rows(warehouse, f"SELECT n, pct FROM {q(warehouse, 'v_b')}") == [(1, "50%")]
    new_checksum = migrations.view_checksum(changed_a, warehouse.dialect, prefix)
    assert stored_checksums(warehouse)["v_a"] == new_checksum
    created = [d for d in ddl if d.startswith("CREATE VIEW")]
    assert any("v_a" in d for d in created)
    if warehouse.dialect == "sqlite":  # no CASCADE there: the dependant is left alone
        assert not any("v_b" in d for d in created)
    assert warehouse.ensure_schema() is False

    # a comment-only change is applied too
    ddl.clear()
    recommented = View("v_a", "New comment.", _view_a_changed, {"session_name": "The name, upper"})
    monkeypatch.setattr(views_module, "VIEWS", [recommented, VIEW_B])
    assert warehouse.ensure_schema() is True
    if warehouse.dialect == "postgresql":
        assert scalar(warehouse, "SELECT obj_description('zoom_qos.v_a'::regclass)") == "New comment."

    # removed from VIEWS: dropped, and forgotten
    monkeypatch.setattr(views_module, "VIEWS", [recommented])
    assert warehouse.ensure_schema() is True
    assert view_names(warehouse) == {"v_a"}
    assert set(stored_checksums(warehouse)) == {"v_a"}

    # dropped behind our back: noticed on the fast path, recreated
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP VIEW {q(warehouse, 'v_a')}")
    assert warehouse.ensure_schema() is True
    assert view_names(warehouse) == {"v_a"}

    monkeypatch.setattr(views_module, "VIEWS", [])
    assert warehouse.ensure_schema() is True
    assert view_names(warehouse) == set() and stored_checksums(warehouse) == {}


def test_views_recreated_around_an_upgrade(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgrade drops the managed views first (a revision may alter what they read)."""
    monkeypatch.setattr(views_module, "VIEWS", [VIEW_A, VIEW_B])
    warehouse.ensure_schema()
    with warehouse.engine.begin() as conn:
        for name in ("v_b", "v_a"):
            conn.exec_driver_sql(f"DROP VIEW {q(warehouse, name)}")
        command.downgrade(migrations.alembic_config(conn, warehouse.schema), "0001_initial")
    ddl = ddl_log(warehouse)
    assert warehouse.ensure_schema() is True
    assert_at_head(warehouse)
    assert view_names(warehouse) == {"v_a", "v_b"}
    assert any("qos_thresholds" in d for d in ddl)


def test_duplicate_view_names_refused(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views_module, "VIEWS", [VIEW_A, VIEW_A])
    with pytest.raises(ValueError, match="v_a"):
        warehouse.ensure_schema()


@pytest.mark.postgres
def test_custom_schema_gets_its_own_version_table(pg_database: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views_module, "VIEWS", [VIEW_A])
    default, custom = Warehouse(pg_database), Warehouse(pg_database, schema="Analytics QoS")
    default.ensure_schema()
    custom.ensure_schema()
    assert version(default) == version(custom) == HEAD
    tables = rows(
        default,
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'",
    )
    assert sorted(tables) == [("Analytics QoS",), ("zoom_qos",)]
    assert rows(custom, 'SELECT count(*) FROM "Analytics QoS".v_a') == [(0,)]
    assert custom.ensure_schema() is False
    default.dispose()
    custom.dispose()
