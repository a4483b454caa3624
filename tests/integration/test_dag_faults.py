"""The whole DAG under faults: chaos, Zoom's daily limit, and secrets that must not leak."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.zoom_simulator import Faults
from tests.conftest import API_SECRET, zoom_connection_json
from tests.integration.dagrun import (
    CONTRACT_TABLES,
    assert_matches_simulator,
    dags_test,
    run_dag,
    sqlite_conn,
    warehouse_rows,
)
from tests.warehouse_fixtures import create_pg_database, drop_pg_database, pg_admin_engine

pytestmark = pytest.mark.e2e
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def window(sim, first: int, last: int) -> str:
    today = sim.dataset.now.date()
    return json.dumps({"from_date": (today - timedelta(days=first)).isoformat(),
                       "to_date": (today - timedelta(days=last)).isoformat()})


def test_chaos_run_ends_with_exactly_what_zoom_served(world, tmp_path):
    """10 % of requests fail in every way the simulator knows; the warehouse still holds, row for
    row, the numbers the simulator decided (its truth, not a second run of our own loader)."""
    sim, env, _ = world
    params = window(sim, 5, 2)
    fast = zoom_connection_json(sim.base_url, backoff_base_seconds=0.05, qos_page_size=2)
    sim.reset_stats()
    sim.set_faults(Faults(chaos_rate=0.10, chaos_seed=20261126))
    try:
        dags_test(env, "-c", params, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(tmp_path / "chaos.db"),
                  AIRFLOW_CONN_ZOOM_VIDEOSDK=fast)
    finally:
        sim.set_faults(Faults())
    chaos = sim.stats()["chaos"]
    assert sum(chaos.values()) >= 10 and len(chaos) >= 5, chaos  # a real mix of faults happened
    today = sim.dataset.now.date()
    expected = sim.dataset.expected_rows(today - timedelta(days=5), today - timedelta(days=2))
    assert all(expected[name] for name in CONTRACT_TABLES)
    assert_matches_simulator(warehouse_rows(tmp_path / "chaos.db"), expected)


def test_daily_limit_parks_the_task_and_resumes_after_the_reset(world, tmp_path):
    sim, env, _ = world
    params = window(sim, 3, 3)
    db = tmp_path / "daily.db"
    sim.set_faults(Faults(daily_limit_after=4, daily_reset_seconds=3))
    try:
        output = dags_test(env, "-c", params, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(db),
                           AIRFLOW_CONN_ZOOM_VIDEOSDK=zoom_connection_json(
                               sim.base_url, daily_limit_resume_delay_seconds=1))
    finally:
        sim.set_faults(Faults())
    assert "Deferring until" in output and "daily limit has reset; resuming" in output
    day = sim.dataset.now.date() - timedelta(days=3)
    expected = {(r["session_id"],) for r in sim.dataset.expected_rows(day, day)["sessions"]}
    assert set(warehouse_rows(db)["sessions"]) == expected


@pytest.fixture
def postgres_warehouse():
    admin = pg_admin_engine()
    url = create_pg_database(admin)
    yield url
    drop_pg_database(admin, url)
    admin.dispose()


def test_no_secret_reaches_logs_xcom_staging_or_the_warehouse(world, tmp_path, postgres_warehouse):
    sim, env, _ = world
    db_password = "Pg-Pass-7c1e9a"  # trust auth accepts it; it must still never be shown
    pseudo_key = "pseudo-key-5b8d2f0e44"
    warehouse = json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 5432,
                            "login": "postgres", "password": db_password,
                            "schema": postgres_warehouse.database})
    staging = tmp_path / "staging"
    # In the runner, each run starts knowing no secret to mask, as a fresh ``airflow`` process.
    output = dags_test(env, "-c", window(sim, 2, 2), AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=warehouse,
                       AIRFLOW__ZOOM_QOS__STAGING_URL=staging.as_uri(),
                       AIRFLOW_CONN_ZOOM_VIDEOSDK=zoom_connection_json(
                           sim.base_url, pseudonymization_key=pseudo_key))
    secrets = [API_SECRET, db_password, pseudo_key]

    def leaks(text: str) -> list[str]:
        return [s for s in secrets if s in text] + JWT.findall(text)

    assert leaks(output) == []
    # task log files, if the executor wrote any
    for log in Path(env["AIRFLOW_HOME"]).glob("logs/**/*"):
        if log.is_file():
            assert leaks(log.read_text(errors="replace")) == [], log
    # XCom values in the metadata database
    meta = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    xcoms = " ".join(str(v) for (v,) in meta.execute("SELECT value FROM xcom"))
    meta.close()
    assert xcoms and leaks(xcoms) == []
    # staging files
    staged = " ".join(p.read_text() for p in staging.rglob("*") if p.is_file())
    assert staged and leaks(staged) == []
    # every text the warehouse holds, raw layer and run record included
    engine = sa.create_engine(postgres_warehouse)
    with engine.connect() as conn:
        dump = " ".join(
            str(row) for table in ("sessions", "session_users", "raw_sessions", "raw_session_users",
                                   "pipeline_runs")
            for row in conn.execute(sa.text(f"SELECT * FROM zoom_qos.{table}")))
        names = [n for (n,) in conn.execute(sa.text("SELECT user_name FROM zoom_qos.session_users"))]
    engine.dispose()
    assert dump and leaks(dump) == []
    # pseudonymization was on: no real user name reached the warehouse
    assert names and all(n is None or n.startswith("pseudo:") for n in names)


def test_a_wrong_secret_fails_the_run_after_one_attempt_and_records_what_it_knew(world, tmp_path):
    """A user's mistake costs one attempt, says which fields to fix, and the run record still has
    the window asked for and the requests spent (one, and one with a renewed JWT)."""
    from zoom_qos.zoom.errors import AUTH_REFUSED_MESSAGE

    sim, env, _ = world
    db = tmp_path / "wrong-secret.db"
    sent = tmp_path / "notifications.jsonl"
    day = (sim.dataset.now.date() - timedelta(days=2)).isoformat()
    returncode, output = run_dag(
        env, "dags", "test", "zoom_videosdk_qos", "-c", json.dumps({"from_date": day, "to_date": day}),
        AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=sqlite_conn(db),
        AIRFLOW_CONN_ZOOM_VIDEOSDK=zoom_connection_json(sim.base_url, secret="wrong-secret-xyz"),
        AIRFLOW__ZOOM_QOS__NOTIFIER="tests.notifiers.FileNotifier",
        AIRFLOW__ZOOM_QOS__NOTIFIER_KWARGS=json.dumps({"path": str(sent)}))
    assert returncode != 0, output[-4000:]  # ``airflow dags test`` exits 1 when the run failed
    assert "state=failed" in output and AUTH_REFUSED_MESSAGE in output, output[-4000:]
    assert "wrong-secret-xyz" not in output
    meta = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    tries = meta.execute(
        "SELECT try_number, state FROM task_instance WHERE task_id = 'list_sessions' AND run_id IN "
        "(SELECT run_id FROM dag_run WHERE state = 'failed')").fetchall()
    meta.close()
    assert tries == [(1, "failed")]  # no retry
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM pipeline_runs")).mappings().one()
    engine.dispose()
    assert row["outcome"] == "failed" and str(row["window_start"]).startswith(day)
    assert str(row["window_end"]).startswith(day) and row["api_requests"] == 2
    # the configured notifier heard of the failed run once, with what failed and no secret
    assert sent.exists(), output[-6000:]
    (alert,) = [json.loads(line) for line in sent.read_text().splitlines()]
    assert "zoom_videosdk_qos" in alert["subject"] and "failed" in alert["subject"]
    meta = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    (failed_run,) = meta.execute(
        "SELECT run_id FROM dag_run WHERE state = 'failed' ORDER BY id DESC").fetchone()
    meta.close()
    assert failed_run in alert["text"] and "Failed tasks:" in alert["text"]
    assert "wrong-secret-xyz" not in json.dumps(alert)
