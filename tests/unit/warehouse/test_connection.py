"""The warehouse connection through Airflow's own API: connections defined the way users define
them (``AIRFLOW_CONN_<ID>`` JSON), read by ``BaseHook`` and opened by SqliteHook / PostgresHook.

PostgreSQL tests use the server at 127.0.0.1:5432 (skipped with the reason when there is none,
failing under ``ZOOM_QOS_REQUIRE_POSTGRES=1``; see tests/warehouse_fixtures.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from zoom_qos.core.errors import PermanentError
from zoom_qos.warehouse.connection import (
    DEFAULT_CONN_ID,
    WarehouseConnectionError,
    airflow_target,
    create_engine,
)
from zoom_qos.warehouse.sql import UnsupportedDatabaseError
from zoom_qos.warehouse.store import Warehouse

SECRET = "s3cr:t/p@ss%word-9f2c"  # characters that need quoting in a URL; long enough to be masked
ENV = "AIRFLOW_CONN_" + DEFAULT_CONN_ID.upper()


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str = DEFAULT_CONN_ID, **fields: Any) -> None:
    """Define Airflow connection ``conn_id`` the way a deployment does: a JSON env variable."""
    monkeypatch.setenv("AIRFLOW_CONN_" + conn_id.upper(), json.dumps(fields))


def pg_fields(url: URL, **extra: Any) -> dict[str, Any]:
    """A postgres connection on the test server's database ``url.database`` (trust auth: the
    password is never checked, so it can be the secret the tests look for)."""
    return {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
            "password": SECRET, "schema": url.database, "extra": extra}


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text) and SECRET not in repr(text)


@pytest.fixture()
def undefined(monkeypatch: pytest.MonkeyPatch) -> None:
    """No warehouse connection anywhere (tests/conftest.py also removes it at start)."""
    monkeypatch.delenv(ENV, raising=False)


class _Comms:
    """The task runner's channel to the supervisor, answering every request with ``error``."""

    def __init__(self, error: Any) -> None:
        from airflow.sdk.execution_time.comms import ErrorResponse

        self.response = ErrorResponse(error=error, detail={"conn_id": DEFAULT_CONN_ID})

    def send(self, _msg: Any) -> Any:
        return self.response


@pytest.fixture()
def in_task(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """As inside a running task: lookups go to the Execution API (after the env variables)."""
    from airflow.sdk.execution_time import task_runner

    def answer(error: Any) -> None:
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", _Comms(error), raising=False)

    yield answer


# --------------------------------------------------------------------------- SQLite
def test_sqlite_connection_is_the_engine_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "conn dir" / "warehouse.db"
    path.parent.mkdir()
    define(monkeypatch, conn_type="sqlite", host=str(path))
    wh = Warehouse.from_airflow()
    try:
        assert (wh.dialect, wh.schema, wh.url.database) == ("sqlite", None, str(path))
        wh.ensure_schema()
        with wh.engine.connect() as conn:
            files = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA database_list")}
            assert files["main"] == str(path)
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # our hooks are on
    finally:
        wh.dispose()


def test_sqlite_connection_as_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    monkeypatch.setenv(ENV, "sqlite://" + quote(str(path), safe=""))  # Airflow's form: the path is the host
    target = airflow_target()
    assert (target.url.drivername, target.url.database, target.creator) == ("sqlite", str(path), None)


@pytest.mark.parametrize("form", ["json", "uri"])
def test_sqlite_connection_without_file(monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    if form == "json":
        define(monkeypatch, "my_conn", conn_type="sqlite")
    else:  # the path lands in 'schema', which SqliteHook ignores: not silently another file
        monkeypatch.setenv("AIRFLOW_CONN_MY_CONN", "sqlite:////abs/path/warehouse.db")
    expected = r"'my_conn' \(sqlite\) has no database file in 'host'"
    with pytest.raises(WarehouseConnectionError, match=expected):
        airflow_target("my_conn")


# --------------------------------------------------------------------------- not defined
@pytest.mark.usefixtures("undefined")
def test_undefined_connection_falls_back_to_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "warehouse.db"
    wh = Warehouse.from_airflow(default_sqlite_path=path)
    try:
        assert wh.url.render_as_string() == f"sqlite:///{path}"
        assert path.parent.is_dir()
        wh.ensure_schema()
        assert path.exists()
    finally:
        wh.dispose()


@pytest.mark.usefixtures("undefined")
def test_undefined_in_a_task_falls_back_to_sqlite(in_task: Any, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import ErrorType

    in_task(ErrorType.CONNECTION_NOT_FOUND)
    target = airflow_target(default_sqlite_path=tmp_path / "w.db")
    assert target.url.database == str(tmp_path / "w.db")


@pytest.mark.usefixtures("undefined")
def test_denied_lookup_in_a_task_raises(in_task: Any, tmp_path: Path) -> None:
    """Airflow's authoritative "no" (not "not found") must not become a local warehouse."""
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied, ErrorType

    in_task(ErrorType.PERMISSION_DENIED)
    with pytest.raises(AirflowSecretsBackendAccessDenied, match=DEFAULT_CONN_ID):
        airflow_target(default_sqlite_path=tmp_path / "w.db")
    assert not (tmp_path / "w.db").exists()


def test_other_lookup_errors_propagate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from airflow.sdk import BaseHook

    def unreachable(conn_id: str) -> Any:
        raise ConnectionError("secrets backend unreachable")

    monkeypatch.setattr(BaseHook, "get_connection", unreachable)
    with pytest.raises(ConnectionError, match="unreachable"):
        Warehouse.from_airflow(default_sqlite_path=tmp_path / "w.db")
    assert not (tmp_path / "w.db").exists()


def test_unreadable_env_connection_is_not_undefined(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Airflow reports a connection whose JSON it cannot parse as "not defined"; a variable that
    is there is a typo to fix, not a reason to write to a local file."""
    monkeypatch.setenv(ENV, '{"conn_type": "postgres", "password": "' + SECRET + '"')  # no closing brace
    with pytest.raises(WarehouseConnectionError, match=f"{ENV} is set but Airflow could not read") as info:
        airflow_target(default_sqlite_path=tmp_path / "w.db")
    assert_no_secret(info.value)
    assert not (tmp_path / "w.db").exists()


def test_without_airflow_falls_back_to_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "airflow.sdk", None)  # import raises ImportError
    wh = Warehouse.from_airflow(default_sqlite_path=tmp_path / "w.db")
    assert wh.dialect == "sqlite"
    wh.dispose()


# --------------------------------------------------------------------------- unsupported
@pytest.mark.parametrize("conn_type", ["mysql", "http", "generic"])
def test_unsupported_conn_type(monkeypatch: pytest.MonkeyPatch, conn_type: str) -> None:
    define(monkeypatch, conn_type=conn_type, host="db.example.com", login="etl", password=SECRET)
    with pytest.raises(WarehouseConnectionError) as info:
        airflow_target()
    message = str(info.value)
    assert f"{DEFAULT_CONN_ID!r}" in message and f"{conn_type!r}" in message
    assert message.endswith("supported: sqlite, postgres.")
    assert_no_secret(info.value)
    assert isinstance(info.value, PermanentError)  # a setting to fix: the task does not retry


def test_an_engine_on_another_database_is_a_permanent_connection_error(tmp_path: Path) -> None:
    """A URL of a database the warehouse does not run on (``check_dialect``): the same branch."""
    with pytest.raises(UnsupportedDatabaseError, match="'mysql'; use sqlite or postgresql") as info:
        create_engine(URL.create("mysql", host="db.example.com", username="etl", password=SECRET), None)
    assert isinstance(info.value, WarehouseConnectionError) and isinstance(info.value, PermanentError)
    assert_no_secret(info.value)


def test_postgres_without_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    define(monkeypatch, conn_type="postgres", host="db.example.com", password=SECRET)
    monkeypatch.setitem(sys.modules, "airflow.providers.postgres.hooks.postgres", None)
    expected = r"postgres provider is not installed.*\[postgres\]"
    with pytest.raises(WarehouseConnectionError, match=expected) as info:
        airflow_target()
    assert_no_secret(info.value)


def test_warehouse_schema_must_be_text(monkeypatch: pytest.MonkeyPatch) -> None:
    define(monkeypatch, conn_type="postgres", host="db.example.com", extra={"warehouse_schema": 3})
    with pytest.raises(WarehouseConnectionError, match="'warehouse_schema' must be a schema name"):
        airflow_target()


def test_postgres_target_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the hook gives, before any connection: host, port, database and user; no password."""
    define(monkeypatch, conn_type="postgres", host="db.example.com", port=6543, login="etl",
           password=SECRET, schema="analytics", extra={"sslmode": "require"})
    target = airflow_target()
    url = target.url
    assert (url.drivername, url.host, url.port, url.username, url.database, url.password) == (
        "postgresql+psycopg", "db.example.com", 6543, "etl", "analytics", None)
    assert target.schema == "zoom_qos" and target.creator is not None
    assert_no_secret(url, url.render_as_string(hide_password=False), target)
    wh = Warehouse(target.url, target.schema, target.creator)  # no connection is opened yet
    assert_no_secret(wh, wh.engine, wh.engine.url)
    wh.dispose()


# --------------------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_postgres_connection_schema_and_libpq_extras(
    monkeypatch: pytest.MonkeyPatch, pg_database: URL, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    define(monkeypatch, **pg_fields(pg_database, warehouse_schema="qos_prod", sslmode="disable",
                                    application_name="zoom_qos_conn_test"))
    wh = Warehouse.from_airflow()
    try:
        assert (wh.dialect, wh.schema, wh.url.database) == ("postgresql", "qos_prod", pg_database.database)
        assert_no_secret(wh, wh.url, wh.url.render_as_string(hide_password=False), wh.engine)
        wh.ensure_schema()
        wh.record_run({"run_id": "manual__conn", "dag_id": "zoom_qos", "outcome": "running"})
        with wh.engine.connect() as conn:
            # extras reach libpq: the ones PostgresHook.get_conn passes on
            assert conn.exec_driver_sql("SHOW application_name").scalar() == "zoom_qos_conn_test"
            assert conn.exec_driver_sql(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar() is False
            # tables land in the schema of the extra
            assert conn.exec_driver_sql("SELECT count(*) FROM qos_prod.pipeline_runs").scalar() == 1
    finally:
        wh.dispose()
    assert_no_secret(caplog.text, capsys.readouterr())


@pytest.mark.postgres
def test_postgres_connection_uses_our_json(monkeypatch: pytest.MonkeyPatch, pg_database: URL) -> None:
    """The hook opens the connections, yet JSON still goes through our serializer (jsonb-safe)."""
    define(monkeypatch, **pg_fields(pg_database))
    wh = Warehouse.from_airflow()
    try:
        value = sa.bindparam("v", {"text": "a\x00b"}, type_=sa.JSON)
        with wh.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.cast(sa.cast(value, sa.Text), sa.Text))).scalar()
        assert stored == '{"text": "a\\ufffdb"}'  # not json.dumps' "\u0000", which jsonb refuses
    finally:
        wh.dispose()


@pytest.mark.postgres
def test_postgres_sslmode_reaches_the_driver(monkeypatch: pytest.MonkeyPatch, pg_admin: sa.Engine) -> None:
    """``sslmode=require`` against the local server (no TLS) fails: the option was honoured."""
    define(monkeypatch, **pg_fields(pg_admin.url, sslmode="require", connect_timeout=3))
    wh = Warehouse.from_airflow()
    try:
        with pytest.raises(sa.exc.OperationalError, match="SSL") as info, wh.engine.connect():
            pass
        assert_no_secret(info.value)
    finally:
        wh.dispose()


@pytest.mark.postgres
def test_postgres_iam_token_per_connection(monkeypatch: pytest.MonkeyPatch, pg_database: URL) -> None:
    """With ``iam``, each new connection asks the hook for a token (they expire), and no token
    ends up in the URL. The token source is stubbed; trust auth accepts any password."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    tokens: list[str] = []

    def token(self: PostgresHook, conn: Any) -> tuple[str, str, int]:
        tokens.append(f"iam-token-{len(tokens)}-abcdef")
        return pg_database.username or "postgres", tokens[-1], pg_database.port or 5432

    monkeypatch.setattr(PostgresHook, "get_iam_token", token)
    define(monkeypatch, **pg_fields(pg_database, iam=True, aws_conn_id="aws_test"))
    wh = Warehouse.from_airflow()
    try:
        issued = len(tokens)  # sqlalchemy_url may take one, for the URL it reads host/port from
        with wh.engine.connect() as first, wh.engine.connect() as second:
            assert first.exec_driver_sql("SELECT 1").scalar() == second.exec_driver_sql("SELECT 1").scalar()
        assert len(tokens) == issued + 2
        for text in (wh, wh.url.render_as_string(hide_password=False)):
            assert not any(t in str(text) for t in tokens)
    finally:
        wh.dispose()
