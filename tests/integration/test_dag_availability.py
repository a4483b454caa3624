"""Every listed session is kept: the whole DAG, run as Airflow runs it, against sessions whose QoS
Zoom does not serve yet (404/3001), over two consecutive days' scheduled runs."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from include.zoom_simulator import Faults
from tests.integration.dagrun import assert_matches_simulator, dags_test, warehouse_rows
from zoom_qos import tasks
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline.load import load_batches
from zoom_qos.warehouse.store import Warehouse

pytestmark = pytest.mark.e2e


def query(db, sql: str, **params) -> list:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(sql), params).all()
    engine.dispose()
    return rows


def statuses(db) -> dict[str, str]:
    return dict(query(db, "SELECT session_id, qos_status FROM sessions"))


def ended_ids(sim, day: date) -> list[str]:
    return [s["id"] for s in sim.dataset.sessions_for_day(day) if s.get("end_time")]


def qos_pages(sim, session_id: str) -> int:
    """QoS requests for one session at the published maximum page size (10)."""
    return max(1, math.ceil(len(sim.dataset.users_for_session(session_id)) / 10))


def scheduled_run(env, day: date, at: str = "00:00:30", **conf) -> str:
    """``airflow dags test`` at ``day``+``at``: the run of interval [day - 1, day), as the scheduler."""
    extra = ("-c", json.dumps(conf)) if conf else ()
    return dags_test(env, f"{day.isoformat()}T{at}+00:00", *extra)


def only(expected: dict, session_ids: set[str]) -> dict:
    """The simulator's expected rows (lists per table) of some sessions."""
    return {name: [r for r in rows if r["session_id"] in session_ids] for name, rows in expected.items()}


def only_loaded(rows: dict, session_ids: set[str]) -> dict:
    """The warehouse's rows (keyed per table, as ``warehouse_rows`` gives them) of some sessions."""
    return {name: {k: r for k, r in keyed.items() if r["session_id"] in session_ids}
            for name, keyed in rows.items()}


def test_a_session_not_ready_is_kept_pending_then_loaded_by_the_next_days_run(world, monkeypatch):
    sim, env, db = world
    day = datetime.now(UTC).date() - timedelta(days=2)  # D
    ids = ended_ids(sim, day)
    assert len(ids) >= 3
    late, never = ids[0], ids[1]
    sim.set_faults(Faults(not_ready_sessions={late: 1, never: 10**6}))

    # The run of [D, D+1): both answer 3001 and are kept as pending, with no joins.
    scheduled_run(env, day + timedelta(days=1))
    status = statuses(db)
    assert set(ids) <= set(status), "every listed session has its sessions row"
    assert status[late] == status[never] == "pending"
    assert all(status[i] == "loaded" for i in ids[2:])
    joined = {r.session_id for r in query(db, "SELECT DISTINCT session_id FROM session_users")}
    assert late not in joined and never not in joined
    [run] = query(db, "SELECT sessions_pending, sessions_unavailable, outcome FROM pipeline_runs")
    assert (run.sessions_pending, run.sessions_unavailable, run.outcome) == (2, 0, "success")

    # The run of [D+1, D+2), D in its lookback: the late session is loaded whole; day D's loaded
    # sessions are not read again; the one still answering 3001 costs one request and stays pending.
    sim.reset_stats()
    output = scheduled_run(env, day + timedelta(days=2))
    # A run without params covers its data interval, the day before the logical date, plus the
    # one lookback day, as the scheduler would run it.
    assert f"data_interval_start={day + timedelta(days=1)} 00:00:00+00:00" in output
    assert f"data_interval_end={day + timedelta(days=2)} 00:00:00+00:00" in output
    [window] = query(db, "SELECT window_start, window_end FROM pipeline_runs "
                         "ORDER BY recorded_at DESC LIMIT 1")
    assert tuple(window) == (day.isoformat(), (day + timedelta(days=1)).isoformat())
    next_day = ended_ids(sim, day + timedelta(days=1))
    stats = sim.stats()
    refused = stats["status_counts"].get("429", 0)
    assert stats["by_endpoint"]["user_qos"] - refused == (
        sum(qos_pages(sim, i) for i in next_day) + qos_pages(sim, late) + 1)
    status = statuses(db)
    assert status[late] == "loaded" and status[never] == "pending"
    expected = only(sim.dataset.expected_rows(day, day), {late})
    assert expected["session_users"], "the late session has joins"
    assert_matches_simulator(only_loaded(warehouse_rows(db), {late}), expected)

    # The same run's tasks again, in this process (a DAG run adds nothing to what is checked here),
    # with a short limit: the session still answering 3001 becomes unavailable.
    for name in ("AIRFLOW_CONN_ZOOM_VIDEOSDK", "AIRFLOW__ZOOM_QOS__STAGING_URL"):
        monkeypatch.setenv(name, env[name])
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    batches, listing = tasks.list_sessions(
        dag_id="zoom_videosdk_qos", run_id="short-limit", interval_start=start,
        interval_end=start + timedelta(days=1), params={}, warehouse=Warehouse(f"sqlite:///{db}"))
    for batch in batches:
        ZoomSessionQosOperator(task_id="extract_qos", batch=batch, qos_pending_max_hours=1).execute({})
    loaded = load_batches(batches, warehouse=Warehouse(f"sqlite:///{db}"), listing=listing)
    assert statuses(db)[never] == "unavailable" and loaded["sessions_unavailable"] == 1


def test_zoom_s_daily_counts_land_in_daily_usage_and_daily_completeness(world):
    sim, env, db = world
    day = datetime.now(UTC).date() - timedelta(days=2)
    usage = dict(query(db, "SELECT usage_date, sessions FROM daily_usage"))
    assert usage[day.isoformat()] == len(ended_ids(sim, day))
    [row] = query(db, "SELECT * FROM daily_completeness WHERE usage_date = :d", d=day.isoformat())
    assert row.zoom_sessions == row.warehouse_sessions == len(ended_ids(sim, day))
    assert row.sessions_loaded + row.sessions_pending + row.sessions_unavailable == row.warehouse_sessions
