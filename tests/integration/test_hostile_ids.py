"""Session ids built to hurt, from a hostile session list (``tests/hostile_zoom.py``) through the
listing, the extraction and the load: no request to another endpoint, no file outside the staging
folder, no crash in the load; each session is kept, and those that cannot be requested are counted."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from tests.builders import ABSENT, zoom_session
from tests.conftest import zoom_connection_json
from tests.hostile_zoom import Answer, HostileZoom, Request, json_answer
from zoom_qos import tasks
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline.load import load_batches
from zoom_qos.pipeline.runrecord import record_run
from zoom_qos.pipeline.staging import staged_records
from zoom_qos.warehouse import schema
from zoom_qos.zoom.ids import MAX_SESSION_ID_BYTES, UnsafeSessionIdError, encode_session_id

DAY = date(2026, 11, 20)
FAST = {"daily_request_limit": 0, "heavy_requests_per_second": 10_000.0,
        "resource_intensive_requests_per_minute": 10_000.0, "backoff_base_seconds": 0.01,
        "max_retries": 1, "timeout_seconds": 5.0}

#: Listed, never requested: each would address another endpoint or another session, or cannot be
#: a path at all; kept as unavailable.
UNREQUESTABLE = ["..", ".", "../users", "sfk/../aOFJ==", "abc/.", "a\x00b", "a\x01b", "line\r\nbreak"]
#: Listed and requested as any other: a real-looking id, and a long one within the bound.
REQUESTABLE = {"sfk/aOFJSJSYhGwk1hnxgw==": 1, "L" * MAX_SESSION_ID_BYTES: 0}
#: Listed, never requested (over ``MAX_SESSION_ID_BYTES``), and too long for a warehouse key: a
#: counted skip of the load.
TOO_LONG = "z" * 10_000
USER = {"id": "u1", "name": "Ana", "join_time": "2026-11-20T10:01:00Z", "leave_time": "2026-11-20T10:30:00Z",
        "user_qos": [{"date_time": "2026-11-20T10:02:00Z", "audio_input": {"bitrate": "23 kbps"}}]}


def session(session_id: str, day: date = DAY) -> dict:
    start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    return zoom_session(session_id, name="hostile", start=start, length=timedelta(hours=1), users=1,
                        details=False, duration=ABSENT)


LISTED = ([session(i) for i in [*UNREQUESTABLE, *REQUESTABLE, TOO_LONG]]
          + [session("a\x00lookback", DAY - timedelta(days=1))])  # in the lookback: asked of the warehouse
QOS_PATHS = {f"/v2/videosdk/sessions/{encode_session_id(i)}/users/qos": n for i, n in REQUESTABLE.items()}


def zoom_answer(request: Request) -> Answer | None:
    if request.path == "/v2/videosdk/sessions":
        return json_answer({"sessions": LISTED, "next_page_token": ""})
    if request.path == "/v2/videosdk/report/daily":
        return json_answer({"dates": []})
    if request.path in QOS_PATHS:
        return json_answer({"users": [USER] * QOS_PATHS[request.path], "next_page_token": ""})
    return None  # 404/2300: any other endpoint fails the run


@pytest.mark.parametrize("session_id", [*UNREQUESTABLE, TOO_LONG, "y" * (MAX_SESSION_ID_BYTES + 1),
                                        "\ud800", ""])
def test_the_client_refuses_to_encode_an_unrequestable_id(session_id):
    with pytest.raises(UnsafeSessionIdError, match="cannot be requested") as refused:
        encode_session_id(session_id)
    assert len(str(refused.value)) < 300  # a 10,000-character id is shown cut


def test_dot_segments_would_reach_another_endpoint_unless_refused():
    """Why ``..`` is refused: urllib3 resolves dot segments, so the plain encoding reaches
    ``/videosdk/users/qos``; the request is never built."""
    import requests

    with HostileZoom(lambda r: json_answer({})) as zoom:
        requests.get(f"{zoom.base_url}/videosdk/sessions/../users/qos", timeout=5)
        requests.get(f"{zoom.base_url}/videosdk/sessions/./users/qos", timeout=5)
    assert zoom.paths == ["/v2/videosdk/users/qos", "/v2/videosdk/sessions/users/qos"]


def test_hostile_ids_are_kept_counted_and_never_requested(tmp_path, monkeypatch, warehouse):
    staging = tmp_path / "staging"
    with HostileZoom(zoom_answer) as zoom:
        monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK", zoom_connection_json(zoom.base_url, **FAST))
        start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        batches, listing = tasks.list_sessions(
            dag_id="zoom_videosdk_qos", run_id="manual__hostile", interval_start=start,
            interval_end=start + timedelta(days=1), params={"lookback_days": 1, "batch_size": 4},
            today=DAY + timedelta(days=2), staging=staging.as_uri(), warehouse=warehouse)
        extracts = [ZoomSessionQosOperator(task_id="extract_qos", batch=b).execute(context={})
                    for b in batches]
    assert listing["sessions_listed"] == len(LISTED) == listing["sessions_unrequestable"] + len(REQUESTABLE)

    # requests: the list, the month's counts, and the QoS of the requestable ids only, each once
    qos = [p for p in zoom.paths if p.endswith("/users/qos")]
    assert sorted(qos) == sorted(QOS_PATHS)
    assert sorted(set(zoom.paths) - set(qos)) == ["/v2/videosdk/report/daily", "/v2/videosdk/sessions"]
    for path in qos:  # one path segment between sessions/ and /users/qos, which decodes to the id
        segment = path.removeprefix("/v2/videosdk/sessions/").removesuffix("/users/qos")
        assert "/" not in segment and unquote(unquote(segment)) in REQUESTABLE

    # staging: every session staged, every file inside the run's folder, named by hash or number
    records = {}
    for batch in batches:
        records.update(staged_records(batch["qos_uri"]))
    assert sorted(records) == sorted(s["id"] for s in LISTED)
    unread = {i: r for i, r in records.items() if r["status"] != "ok"}
    assert set(unread) == {*UNREQUESTABLE, TOO_LONG, "a\x00lookback"}
    assert all(r["status"] == "unavailable" and r["error"].startswith("not requested: ")
               for r in unread.values())
    assert "'..' path segment" in unread[".."]["error"] and "U+0000" in unread["a\x00b"]["error"]
    assert "10,000 bytes" in unread[TOO_LONG]["error"]
    root = staging.resolve()
    files = [p for p in staging.rglob("*") if p.is_file()]
    assert files and all(p.resolve().is_relative_to(root) for p in files)
    allowed = re.compile(r"(session|grades)-[0-9a-f]{32}\.jsonl|batch-\d{5}\.jsonl|(index|stats)-[\w-]+\.json"
                         r"|[\w.-]+\.json")
    assert all(allowed.fullmatch(p.name) for p in files), sorted(p.name for p in files)
    assert sum(e["sessions_unread"] for e in extracts) == len(unread)

    # the load keeps every session but the one too long for a key, which it counts as skipped
    loaded = load_batches(batches, warehouse=warehouse, listing=listing)
    assert (loaded["sessions_loaded"], loaded["sessions_unavailable"], loaded["sessions_skipped"]) == (
        len(REQUESTABLE), len(unread) - 1, 1)
    assert loaded["users_loaded"] == 1 and loaded["unparsed_detail"]["session_id"]["count"] == 1
    outcome = record_run(run_id="manual__hostile", dag_id="zoom_videosdk_qos", started_at=None,
                               listing=listing, extracts=extracts, loaded=loaded, warehouse=warehouse,
                               batches=batches, staging=staging.as_uri())
    assert outcome == "success"
    with warehouse.engine.connect() as conn:
        kept = schema.sessions.c
        statuses = dict(conn.execute(sa.select(kept.session_id, kept.qos_status)).all())
        runs = schema.pipeline_runs.c
        run = conn.execute(sa.select(runs.sessions_unavailable, runs.sessions_skipped,
                                     runs.sessions_loaded)).one()
    stored = {i.replace("\x00", "\ufffd"): "unavailable" for i in [*UNREQUESTABLE, "a\x00lookback"]}
    assert statuses == {**stored, **{i: "loaded" for i in REQUESTABLE}}  # NUL kept visible, not dropped
    assert tuple(run) == (len(unread) - 1, 1, len(REQUESTABLE))

