"""The extraction operator on a staged batch, against the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.zoom_simulator import Faults
from zoom_qos.errors import PageRestartsExhaustedError
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.staging import read_jsonl, write_jsonl
from zoom_qos.transform import dedupe_users


@pytest.fixture
def staged_batch(tmp_path, simulator):
    day = simulator.dataset.now.date() - timedelta(days=2)
    sessions = [s for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")]
    sessions_uri = (tmp_path / "sessions" / "batch-00000.jsonl").as_uri()
    write_jsonl(sessions_uri, sessions)
    batch = {"index": 0, "sessions_uri": sessions_uri,
             "qos_uri": (tmp_path / "qos" / "batch-00000.jsonl").as_uri(), "sessions": len(sessions)}
    return batch, sessions


def run(batch):
    return ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})


def test_batch_is_staged_with_references_and_counts_only(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    result = run(batch)
    records = list(read_jsonl(batch["qos_uri"]))
    assert [r["session_id"] for r in records] == [s["id"] for s in sessions]
    for record in records:
        assert record["status"] == "ok"
        assert record["users"] == simulator.dataset.users_for_session(record["session_id"])
    # XCom gets references and counts, never the data
    assert result["qos_uri"] == batch["qos_uri"] and result["sessions"] == len(sessions)
    assert result["users"] == sum(len(r["users"]) for r in records)
    assert all(not isinstance(v, (list, dict)) for v in result.values())
    assert result["requests"] >= len(sessions)


def test_token_rejections_restart_and_each_user_is_kept_once(simulator, zoom_conn, staged_batch):
    batch, _ = staged_batch
    zoom_conn(qos_page_size=2)
    simulator.set_faults(Faults(expire_next_tokens=3))
    result = run(batch)
    assert result["token_restarts"] == 3
    for record in read_jsonl(batch["qos_uri"]):
        users = record["users"]
        assert users == dedupe_users(users)
        assert users == simulator.dataset.users_for_session(record["session_id"])


def test_endless_token_rejection_fails_with_an_explanation_and_no_output(simulator, zoom_conn,
                                                                          staged_batch, tmp_path):
    batch, _ = staged_batch
    zoom_conn(qos_page_size=2, max_page_restarts=2)
    simulator.set_faults(Faults(expire_page_tokens=True))
    with pytest.raises(PageRestartsExhaustedError, match="restarted 2 times"):
        run(batch)
    assert not (tmp_path / "qos" / "batch-00000.jsonl").exists()


def test_a_session_gone_since_listing_is_skipped_and_counted(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    gone, invalid = sessions[0]["id"], sessions[1]["id"]
    simulator.set_faults(Faults(gone_sessions=[gone], invalid_sessions=[invalid]))
    result = run(batch)
    assert result["sessions_gone"] == 2 and result["sessions"] == len(sessions) - 2
    status = {r["session_id"]: r["status"] for r in read_jsonl(batch["qos_uri"])}
    assert status[gone] == status[invalid] == "gone"

