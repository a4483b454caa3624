"""Live monitoring against the simulator's clock: polls while sessions progress, alerts while a call
goes bad, then the daily run turns what the polls saw into the final rows.

The polls run in-process (``live.poll``, what the live DAG's task calls); the simulated clock is
moved between them, so sessions grow, end and degrade in seconds of test time.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.integration.dagrun import RUN_TIMES
from zoom_qos import tasks
from zoom_qos.alerts.live import alert_message
from zoom_qos.hooks import ZoomVideoSdkHook
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline import live
from zoom_qos.pipeline.load import load_batches
from zoom_qos.warehouse.schema import METADATA
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

LIVE_DAG = "zoom_videosdk_qos_live"
TABLES = ("sessions", "session_users", "user_qos", "user_system_qos")


def poll(warehouse: Warehouse, sent: list, n: int) -> dict:
    with closing(ZoomVideoSdkHook(live=True)) as source:
        return live.poll(dag_id=LIVE_DAG, run_id=f"poll-{n}", warehouse=warehouse, source=source,
                         notify=lambda subject, text: sent.append((subject, text)))


def rows(warehouse: Warehouse, table: str, **where: object) -> list[dict]:
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "1 = 1"
    with warehouse.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.text(f"SELECT * FROM {object_prefix(warehouse.dialect, warehouse.schema)}{table} "
                    f"WHERE {clause}"), where)]


def daily_reload(warehouse: Warehouse, day: date, staging: Path, run_id: str) -> dict:
    """A manual reload of ``day`` the way the daily DAG's tasks run it."""
    batches, stats = tasks.list_sessions(
        dag_id="zoom_videosdk_qos", run_id=run_id, interval_start=None, interval_end=None,
        params={"from_date": day.isoformat(), "to_date": day.isoformat()}, staging=staging.as_uri(),
        warehouse=warehouse)
    for batch in batches:
        ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})
    return load_batches(batches, warehouse=warehouse, listing=stats)


def final_rows(warehouse: Warehouse, table: str) -> set[tuple]:
    """A table's rows as typed values, times in UTC (the same on both back ends), without the
    columns that say when they were written."""
    def value(v: object) -> object:
        if isinstance(v, datetime):
            return v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
        return json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v

    with warehouse.engine.connect() as conn:
        return {tuple(sorted((k, value(v)) for k, v in r._mapping.items() if k not in RUN_TIMES))
                for r in conn.execute(sa.select(METADATA.tables[table]))}


def test_polls_follow_sessions_in_progress_alert_once_and_the_daily_run_settles_them(
        simulator, zoom_conn, warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL", "")
    scenarios = {s["kind"]: s for s in simulator.dataset.live_scenarios()}
    degrading, ending = scenarios["degrading"], scenarios["ending"]
    anchor = simulator.now
    sent: list[tuple[str, str]] = []

    first = poll(warehouse, sent, 0)
    assert first["outcome"] == "success" and first["sessions"] >= len(scenarios)
    live_ids = {r["session_id"] for r in rows(warehouse, "sessions", qos_status="live")}
    assert set(s["id"] for s in scenarios.values()) <= live_ids
    samples_before = len(rows(warehouse, "user_qos", session_id=degrading["id"]))

    counts: list[int] = []
    for n, minutes in enumerate(range(3, 31, 3), start=1):
        simulator.set_now(anchor + timedelta(minutes=minutes))
        assert poll(warehouse, sent, n)["outcome"] == "success"
        served = simulator.dataset.users_for_session(degrading["id"])
        held = rows(warehouse, "session_users", session_id=degrading["id"])
        assert len(held) == len(served)  # replaced whole: each join once, as served now
        counts.append(len(rows(warehouse, "user_qos", session_id=degrading["id"])))
    assert samples_before < counts[0] < counts[-1]  # the samples grow poll after poll

    # the session that ended between two polls is no longer polled, and stays live until settled
    assert rows(warehouse, "sessions", session_id=ending["id"])[0]["qos_status"] == "live"

    # the degrading call: one alert per media type of the victim, however many polls saw it
    alerts = rows(warehouse, "qos_alerts", session_id=degrading["id"])
    victim = next(u["user_id"] for u in degrading["users"] if u["role"] == "victim")
    assert Counter((a["user_id"], a["media_type"]) for a in alerts) == {
        (victim, "audio"): 1, (victim, "video"): 1}
    assert all(a["notified_at"] is not None and a["cleared_at"] is None for a in alerts)
    ours = [s for s in sent if degrading["id"] in s[1]]
    assert len(ours) == 2 and all("poor" in subject for subject, _ in ours)

    # every session has ended: the daily run reads them as past, and nothing stays live
    last_end = max(s.end for s in simulator.dataset.live_sessions()) if simulator.dataset.live_sessions() \
        else anchor
    simulator.set_now(max(last_end, anchor + timedelta(hours=1)) + timedelta(minutes=1))
    days = sorted({anchor.date() - timedelta(days=1), anchor.date()})
    for day in days:
        daily_reload(warehouse, day, tmp_path / "staging", f"daily-{day}")
    assert rows(warehouse, "sessions", qos_status="live") == []
    assert {r["qos_status"] for r in rows(warehouse, "sessions") if r["session_id"] in live_ids} == {"loaded"}

    # ... with exactly the rows a plain daily run loads (without any live poll before it)
    plain = Warehouse(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        plain.ensure_schema()
        for day in days:
            daily_reload(plain, day, tmp_path / "staging-plain", f"plain-{day}")
        for table in TABLES:
            assert final_rows(warehouse, table) == final_rows(plain, table), table
    finally:
        plain.dispose()


def test_a_spent_live_share_pauses_polling_without_failing(simulator, zoom_conn, warehouse):
    zoom_conn(backoff_base_seconds=0.05, live_daily_request_budget=1)
    sent: list = []
    assert poll(warehouse, sent, 0)["outcome"] == "paused"  # the listing's page took the share
    (record,) = rows(warehouse, "pipeline_runs", dag_id=LIVE_DAG)
    assert record["outcome"] == "paused" and "live_daily_request_budget" in record["error"]
    assert simulator.stats()["by_endpoint"].get("user_qos", 0) == 0


def test_a_poll_leaves_zoom_to_a_running_daily_extraction_without_shared_pacing():
    class Ti:
        def __init__(self, running: int) -> None:
            self.running, self.asked = running, []

        def get_ti_count(self, **query):
            self.asked.append(query)
            return self.running

    busy, idle = Ti(1), Ti(0)
    assert live.daily_extraction_running(busy) and not live.daily_extraction_running(idle)
    assert busy.asked == [{"dag_id": "zoom_videosdk_qos", "task_ids": ["extract_qos"], "states": ["running"]}]


def test_an_alert_names_who_where_and_the_figures():
    subject, text = alert_message({
        "session_id": "s1", "session_name": "Support call", "user_id": "u1", "user_name": "Ana",
        "media_type": "screen_share", "poor_share": 0.75, "rated_samples": 8, "window_minutes": 10,
        "first_seen_at": datetime(2026, 12, 1, 10, 5, tzinfo=UTC), "device": "Mac",
        "network_type": "Wifi", "data_center": "Frankfurt"})
    assert subject == "Zoom call going bad: Ana in Support call (screen share 75% poor)"
    assert "8 rated samples" in text and "Mac" in text and "Wifi" in text and "Frankfurt" in text


def test_a_failed_poll_is_recorded_and_says_nothing_secret(simulator, monkeypatch, warehouse):
    import pytest

    from tests.conftest import zoom_connection_json
    from zoom_qos.zoom.errors import ZoomAuthError

    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(simulator.base_url,
                                                                          secret="wrong-secret-xyz"))
    with pytest.raises(ZoomAuthError):
        poll(warehouse, [], 0)
    (record,) = rows(warehouse, "pipeline_runs", dag_id=LIVE_DAG)
    assert record["outcome"] == "failed" and "ZoomAuthError" in record["error"]
    assert "wrong-secret-xyz" not in record["error"] and record["api_requests"] >= 1
