"""The events path end to end: stored ``session.ended`` events loaded by the DAG
``zoom_videosdk_qos_events`` (``airflow dags test``, as a run started by the watcher or by hand is),
then the daily run, which reads none of those sessions again.

What the receiver stores is exercised in tests/unit/receiver; here the events are stored as it
stores them (``store_event``), for sessions the simulator serves, chosen from what it serves.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from include.zoom_simulator import Simulator, SimulatorConfig
from include.zoom_simulator.config import ENDPOINT_QOS, ENDPOINT_WEBHOOK_LOGS
from include.zoom_simulator.webhooks import ended_object, event_body
from tests.conftest import API_KEY, API_SECRET, zoom_connection_json
from tests.integration.dagrun import METADATA_DB, airflow_env, dags_test, sqlite_conn
from zoom_qos.core.contracts import EVENTS_DAG_ID
from zoom_qos.pipeline.events import FIRST_RETRY
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhook_schema import webhook_delivery_failures, webhook_events
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, migrated_metadata_db: Any) -> Iterator[tuple]:
    home = tmp_path_factory.mktemp("airflow-home-events")
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    # The simulator's clock is the real one (the pipeline counts Zoom's six months and the pending
    # window on it); every expectation is computed from what it serves, so any date holds.
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=5, sessions_per_day=4,
                                    live_scenarios=0), host="127.0.0.1", port=0).start()
    env = airflow_env(home, sim, home / "warehouse.db", home / "staging")
    yield sim, env, home
    sim.stop()


def ended(session: dict[str, Any]) -> ZoomEvent:
    """``session.ended`` for a listed session, as Zoom sends it (its integer ``id`` deprecated)."""
    obj = {"id": 81234567890, "uuid": "x", "session_id": session["id"],
           "session_name": session["session_name"], "session_key": session.get("session_key"),
           "start_time": session["start_time"], "end_time": session["end_time"]}
    ts = datetime.fromisoformat(session["end_time"].replace("Z", "+00:00")) + timedelta(seconds=2)
    return ZoomEvent("session.ended", ts, obj, "req-" + session["id"][:8])


def events(wh: Warehouse) -> dict[str, dict[str, Any]]:
    with wh.engine.connect() as conn:
        return {r.session_id: dict(r._mapping) for r in conn.execute(sa.select(webhook_events))}


def asked(wh: Warehouse, session_ids: list[str]) -> dict[str, Any]:
    """When each session's QoS was last asked of Zoom (``qos_checked_at``)."""
    s = schema.sessions.c
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(s.session_id, s.qos_checked_at).where(s.session_id.in_(session_ids)))
        return {str(i): t for i, t in rows}


def statuses(wh: Warehouse) -> dict[str, str]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.sessions.c.session_id, schema.sessions.c.qos_status))
        return {str(i): str(s) for i, s in rows}


def test_ended_sessions_are_loaded_then_the_daily_run_does_not_read_them_again(
    world: tuple, tmp_path: Path
) -> None:
    sim, env, _ = world
    now = sim.now
    day = (now - timedelta(days=1)).date()
    listed = sim.dataset.sessions_for_day(day)
    assert len(listed) >= 3
    chosen = listed[:2]
    wh = Warehouse(URL.create("sqlite", database=str(tmp_path / "events.db")))
    conn = sqlite_conn(tmp_path / "events.db")
    try:
        wh.ensure_schema()
        for session in chosen:
            assert store_event(wh.engine, ended(session), now)
        # A session that ended a minute ago (on the real clock, which the pending window is counted
        # on) and that Zoom does not serve yet (3001): pending, asked again after the first backoff.
        real = datetime.now(UTC).replace(microsecond=0)
        ghost = {"id": "ghost-session-id==", "session_name": "just ended",
                 "start_time": (real - timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
                 "end_time": (real - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")}
        assert store_event(wh.engine, ended(ghost), now)

        sim.reset_stats()
        started = datetime.now(UTC)
        dags_test(env, dag_id=EVENTS_DAG_ID, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=conn)
        got = events(wh)
        for session in chosen:
            row = got[session["id"]]
            assert row["outcome"] == "loaded" and row["handled_at"] is not None and row["attempts"] == 1
        assert statuses(wh)[chosen[0]["id"]] == "loaded"
        ghost_row = got[ghost["id"]]
        assert ghost_row["outcome"] == "pending" and ghost_row["handled_at"] is None
        assert started + FIRST_RETRY - timedelta(seconds=5) <= ghost_row["next_attempt_at"]
        with wh.engine.connect() as c:
            runs = c.execute(sa.select(schema.pipeline_runs.c.dag_id, schema.pipeline_runs.c.outcome)).all()
            users = c.execute(sa.select(sa.func.count()).select_from(schema.session_users).where(
                schema.session_users.c.session_id == chosen[0]["id"])).scalar_one()
        assert (EVENTS_DAG_ID, "success") in [tuple(r) for r in runs]
        assert users > 0

        # Started again with nothing due (the ghost waits for its backoff): skipped, no request.
        sim.reset_stats()
        dags_test(env, dag_id=EVENTS_DAG_ID, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=conn)
        assert sim.stats()["requests"] == 0

        # The scheduled daily run of that day reads every listed session but those the events loaded.
        checked = asked(wh, [s["id"] for s in chosen])
        sim.reset_stats()
        dags_test(env, (day + timedelta(days=1)).isoformat(), AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=conn)
        status = statuses(wh)
        assert all(status[s["id"]] in ("loaded", "pending", "unavailable") for s in listed)
        assert sim.stats()["by_endpoint"][ENDPOINT_QOS] >= len(listed) - len(chosen)
        assert asked(wh, [s["id"] for s in chosen]) == checked  # their QoS was not asked for again
        with wh.engine.connect() as c:
            raw = c.execute(sa.select(schema.raw_sessions.c.payload).where(
                schema.raw_sessions.c.session_id == chosen[0]["id"])).scalar_one()
        assert "user_count" in raw  # the list's own object replaced what the event carried
    finally:
        wh.dispose()


def test_the_daily_run_records_the_deliveries_zoom_failed(world: tuple, tmp_path: Path) -> None:
    """A session.ended Zoom could not deliver (nothing listening: refused, retried three times) is in
    Zoom's webhook log; the daily run's reconciliation keeps each failed attempt, once."""
    _, _, home = world
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=5, sessions_per_day=4,
                                    live_scenarios=0, webhook_url=f"http://127.0.0.1:{dead}/webhooks/zoom",
                                    webhook_secret_token="whsec-test", webhook_time_scale=1 / 36000),
                    host="127.0.0.1", port=0).start()
    wh = Warehouse(URL.create("sqlite", database=str(tmp_path / "reconcile.db")))
    try:
        assert sim.webhooks is not None
        day = (sim.now - timedelta(days=1)).date()
        session = sim.dataset.past_sessions(day, day)[0]
        sim.webhooks.enqueue("session.ended", event_body("session.ended", session.end, ended_object(session)),
                             session.id)
        deadline = time.monotonic() + 20
        while len(sim.webhooks.log()) < 4 or sim.webhooks.pending():
            assert time.monotonic() < deadline, sim.webhooks.state()
            time.sleep(0.05)
        env = airflow_env(home, sim, tmp_path / "reconcile.db", tmp_path / "staging")
        with_token = zoom_connection_json(sim.base_url, webhook_secret_token="whsec-test")
        for _ in range(2):  # twice: nothing doubles
            dags_test(env, (day + timedelta(days=1)).isoformat(), AIRFLOW_CONN_ZOOM_VIDEOSDK=with_token)
        assert sim.stats()["by_endpoint"][ENDPOINT_WEBHOOK_LOGS] == 2
        f = webhook_delivery_failures.c
        with wh.engine.connect() as conn:
            rows = conn.execute(sa.select(f.retry_num, f.status, f.failed_reason_type, f.session_id, f.event)
                                .order_by(f.retry_num)).all()
        assert [tuple(r) for r in rows] == [(n, -1, 2, session.id, "session.ended") for n in range(4)]
    finally:
        wh.dispose()
        sim.stop()
