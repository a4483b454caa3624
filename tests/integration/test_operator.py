"""The extraction operator on a staged batch, against the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk import ObjectStoragePath

from include.zoom_simulator import Faults
from zoom_qos.operators import ZoomSessionQosOperator
from zoom_qos.pipeline.staging import staged_records, write_jsonl
from zoom_qos.transform.rows import unique_users
from zoom_qos.zoom.errors import PageRestartsExhaustedError


@pytest.fixture
def staged_batch(tmp_path, simulator):
    day = simulator.dataset.now.date() - timedelta(days=2)
    sessions = [s for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")]
    sessions_uri = (tmp_path / "sessions" / "batch-00000.jsonl").as_uri()
    write_jsonl(sessions_uri, sessions)
    batch = {"index": 0, "sessions_uri": sessions_uri,
             "qos_uri": (tmp_path / "qos" / "batch-00000").as_uri(), "sessions": len(sessions)}
    return batch, sessions


def pages(simulator, session_id: str) -> int:
    """Requests needed for one session's QoS at the simulator's default page size (10)."""
    return max(1, -(-len(simulator.dataset.users_for_session(session_id)) // 10))


def run(batch):
    return ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})


def test_batch_is_staged_with_references_and_counts_only(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    result = run(batch)
    records = list(staged_records(batch["qos_uri"]).values())
    assert sorted(r["session_id"] for r in records) == sorted(s["id"] for s in sessions)
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
    for record in staged_records(batch["qos_uri"]).values():
        users = record["users"]
        assert users == list(unique_users(users))
        assert users == simulator.dataset.users_for_session(record["session_id"])


def test_endless_token_rejection_fails_with_an_explanation(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    zoom_conn(qos_page_size=2, max_page_restarts=2)
    simulator.set_faults(Faults(expire_page_tokens=True))
    with pytest.raises(PageRestartsExhaustedError, match="restarted 2 times"):
        run(batch)
    # sessions that needed a page token were not staged; the single-page ones read meanwhile are,
    # complete, so a retry does not read them again
    staged = staged_records(batch["qos_uri"])
    multi_page = {s["id"] for s in sessions if len(simulator.dataset.users_for_session(s["id"])) > 2}
    assert multi_page and not multi_page & set(staged)
    for session_id, record in staged.items():
        assert record["users"] == simulator.dataset.users_for_session(session_id)


def test_sessions_whose_qos_zoom_does_not_serve_are_staged_with_their_status(
        simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    not_ready, invalid, too_old = (s["id"] for s in sessions[:3])
    simulator.set_faults(Faults(not_ready_sessions={not_ready: 1}, invalid_sessions=[invalid],
                                too_old_sessions=[too_old]))
    result = run(batch)
    assert result["sessions_unread"] == 3 and result["sessions"] == len(sessions) - 3
    staged = staged_records(batch["qos_uri"])
    status = {sid: r["status"] for sid, r in staged.items()}
    # the sessions ended two days ago: a 3001 is "not ready yet", within the default 72 hours
    assert (status[not_ready], status[invalid], status[too_old]) == ("pending", "unavailable", "unavailable")
    assert all(status[s["id"]] == "ok" for s in sessions[3:])
    assert datetime.fromisoformat(staged[not_ready]["fetched_at"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_a_3001_long_after_the_end_is_unavailable(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    simulator.set_faults(Faults(not_ready_sessions={sessions[0]["id"]: 1}))
    ZoomSessionQosOperator(task_id="extract_qos", batch=batch, qos_pending_max_hours="24").execute(context={})
    assert staged_records(batch["qos_uri"])[sessions[0]["id"]]["status"] == "unavailable"


def test_a_400_300_about_another_field_fails_and_skips_nothing(simulator, zoom_conn, staged_batch,
                                                                monkeypatch):
    """Zoom uses code 300 for any invalid field: only one about the session id makes it unavailable."""
    import dataclasses

    from zoom_qos.hooks import ZoomSettings, ZoomVideoSdkHook
    from zoom_qos.zoom.errors import ZoomApiError

    batch, _ = staged_batch
    real = ZoomSettings.from_extra

    def oversized(extra):  # as if the published maximum were not checked
        return dataclasses.replace(real(extra), qos_page_size=11)

    monkeypatch.setattr(ZoomSettings, "from_extra", staticmethod(oversized))
    assert ZoomVideoSdkHook().settings.qos_page_size == 11
    with pytest.raises(ZoomApiError, match="page_size") as caught:
        run(batch)
    assert (caught.value.status, caught.value.code) == (400, 300)
    assert staged_records(batch["qos_uri"]) == {}


@pytest.mark.parametrize("faults,error,message", [
    ({"not_videosdk_account": True}, "ZoomAccountError", "'zoom_videosdk'.*not a Video SDK account"),
    ({"forbidden_endpoints": ["user_qos"]}, "ZoomForbiddenError", "403.*lacks a scope"),
])
def test_account_and_permission_errors_fail_at_once_with_what_to_check(
        simulator, zoom_conn, staged_batch, faults, error, message):
    from airflow.sdk.exceptions import AirflowFailException

    from zoom_qos.zoom import errors

    batch, sessions = staged_batch
    simulator.set_faults(Faults.from_dict(faults))
    with pytest.raises(AirflowFailException, match=message) as caught:  # no retry can cure it
        run(batch)
    assert isinstance(caught.value.__cause__, getattr(errors, error))
    assert "test-api-secret" not in str(caught.value)
    assert staged_records(batch["qos_uri"]) == {}
    # no retries of a refusal that cannot change: about one request per session in flight at most
    assert simulator.stats()["by_endpoint"]["user_qos"] <= len(sessions)


def test_an_over_encoded_path_fails_saying_the_endpoint_was_not_recognized(
        simulator, zoom_conn, staged_batch, monkeypatch):
    from urllib.parse import quote

    from airflow.sdk.exceptions import AirflowFailException

    from zoom_qos.zoom.client import ZoomClient
    from zoom_qos.zoom.errors import ZoomEndpointError

    batch, _ = staged_batch
    # What Zoom's generated JavaScript SDK does: the whole path, id included, encoded again.
    original = ZoomClient.get_json

    def over_encoded(self, endpoint, *args, **kwargs):
        return original(self, quote(endpoint, safe=""), *args, **kwargs)

    monkeypatch.setattr(ZoomClient, "get_json", over_encoded)
    with pytest.raises(AirflowFailException, match="did not recognize the endpoint.*2300") as caught:
        run(batch)
    assert isinstance(caught.value.__cause__, ZoomEndpointError)



def test_a_retried_task_does_not_fetch_finished_sessions_again(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    # the first attempt fails part-way (a daily limit, deferral off)
    simulator.set_faults(Faults(daily_limit_after=4, daily_reset_seconds=3600))
    first = ZoomSessionQosOperator(task_id="extract_qos", batch=batch, defer_on_daily_limit=False)
    with pytest.raises(Exception, match="daily request limit"):
        first.execute(context={})
    simulator.set_faults(Faults())
    staged_first = set(staged_records(batch["qos_uri"]))
    simulator.reset_stats()
    result = run(batch)
    assert result["sessions"] == len(sessions)
    # only the unfinished sessions were read again
    remaining = [s["id"] for s in sessions if s["id"] not in staged_first]
    assert staged_first and remaining
    assert simulator.stats()["by_endpoint"]["user_qos"] == sum(pages(simulator, i) for i in remaining)


def test_resume_skips_what_an_earlier_attempt_staged(simulator, zoom_conn, staged_batch):
    batch, sessions = staged_batch
    run(batch)
    simulator.reset_stats()
    result = run(batch)  # a retry of a finished batch reads nothing from Zoom
    assert simulator.stats()["by_endpoint"]["user_qos"] == 0
    assert result["sessions"] == len(sessions)


def test_daily_limit_defers_until_the_reset(simulator, zoom_conn, staged_batch):
    from airflow.sdk.exceptions import TaskDeferred

    batch, sessions = staged_batch
    simulator.set_faults(Faults(daily_limit_after=3, daily_reset_seconds=3600))
    with pytest.raises(TaskDeferred) as deferred:
        run(batch)
    assert deferred.value.method_name == "resume_after_daily_limit"
    moment = deferred.value.trigger.moment
    assert moment > datetime.now(UTC) + timedelta(minutes=59)
    staged = staged_records(batch["qos_uri"])
    assert 1 <= len(staged) < len(sessions)  # what was read before the limit is kept
    # after the reset the task resumes where it stopped
    simulator.set_faults(Faults())
    simulator.reset_stats()
    operator = ZoomSessionQosOperator(task_id="extract_qos", batch=batch)
    result = operator.resume_after_daily_limit(context={}, event=None)
    assert result["sessions"] == len(sessions)
    remaining = [s["id"] for s in sessions if s["id"] not in staged]
    assert simulator.stats()["by_endpoint"]["user_qos"] == sum(pages(simulator, i) for i in remaining)


def test_daily_limit_without_deferral_fails_saying_when_it_resets(simulator, zoom_conn, staged_batch):
    batch, _ = staged_batch
    simulator.set_faults(Faults(daily_limit_exhausted=True))
    operator = ZoomSessionQosOperator(task_id="extract_qos", batch=batch, defer_on_daily_limit=False)
    with pytest.raises(Exception, match="daily request limit is exhausted.*resets at 20"):
        operator.execute(context={})


def test_a_backfill_stops_at_its_share_of_the_daily_budget_and_defers_to_midnight(
        simulator, zoom_conn, tmp_path, monkeypatch):
    """The budget's clock is fixed (any day, any time of day gives the same figures), and the batch
    needs more requests than the day allows (one user a page; sessions of as many days as it takes),
    so both the backfill and the scheduled run stop at their shares."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import TaskDeferred

    from zoom_qos.zoom import client as client_module

    noon = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    real_budget_for = client_module.budget_for
    monkeypatch.setattr(client_module, "budget_for", lambda **kw: real_budget_for(clock=lambda: noon, **kw))
    sessions: list[dict] = []
    day = simulator.dataset.now.date() - timedelta(days=2)
    while sum(max(1, len(simulator.dataset.users_for_session(s["id"]))) for s in sessions) <= 8:
        sessions += [s for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")]
        day -= timedelta(days=1)
    batch = {"index": 0, "sessions_uri": (tmp_path / "sessions.jsonl").as_uri(),
             "qos_uri": (tmp_path / "qos").as_uri(), "sessions": len(sessions)}
    write_jsonl(batch["sessions_uri"], sessions)
    zoom_conn(backoff_base_seconds=0.05, qos_page_size=1, daily_request_limit=8, backfill_reserve_requests=5,
              live_daily_request_budget=0)
    backfill = {"dag_run": SimpleNamespace(run_type="backfill"), "params": {}}
    with pytest.raises(TaskDeferred) as deferred:
        ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context=backfill)
    # 8 - 5 reserved for scheduled runs: exactly 3 requests went to Zoom
    assert simulator.stats()["by_endpoint"]["user_qos"] == 3
    # the next 00:00 UTC after the budget's day, plus daily_limit_resume_delay_seconds (30)
    assert deferred.value.trigger.moment == datetime(2026, 3, 11, tzinfo=UTC) + timedelta(seconds=30)
    staged = staged_records(batch["qos_uri"])
    assert len(staged) < len(sessions)
    # a scheduled run of the same day may still spend the reserve, and stops there
    simulator.reset_stats()
    with pytest.raises(TaskDeferred):
        ZoomSessionQosOperator(task_id="extract_qos", batch=batch).execute(context={})
    assert simulator.stats()["by_endpoint"]["user_qos"] == 5


def test_each_session_is_staged_in_its_own_file_one_user_per_line(simulator, zoom_conn, staged_batch):
    from zoom_qos.pipeline.staging import session_file

    batch, sessions = staged_batch
    zoom_conn(qos_page_size=2)
    run(batch)
    for session in sessions:
        lines = session_file(batch["qos_uri"], session["id"]).read_bytes().splitlines()
        assert len(lines) == 1 + len(simulator.dataset.users_for_session(session["id"]))
    leftovers = [p.name for p in ObjectStoragePath(batch["qos_uri"]).iterdir() if ".partial" in p.name]
    assert leftovers == []


def test_a_wrong_secret_fails_the_extraction_at_once_and_keeps_its_cost(simulator, monkeypatch,
                                                                      staged_batch):
    from airflow.sdk.exceptions import AirflowFailException

    from tests.conftest import zoom_connection_json
    from zoom_qos.pipeline.staging import staged_cost
    from zoom_qos.zoom.errors import AUTH_REFUSED_MESSAGE, ZoomAuthError

    batch, sessions = staged_batch
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK",
                       zoom_connection_json(simulator.base_url, secret="wrong-secret-xyz"))
    with pytest.raises(AirflowFailException) as caught:  # no retry: a key does not fix itself
        run(batch)
    assert isinstance(caught.value.__cause__, ZoomAuthError)
    assert AUTH_REFUSED_MESSAGE in str(caught.value) and "wrong-secret-xyz" not in str(caught.value)
    sent = simulator.stats()["by_endpoint"]["user_qos"]
    assert 2 <= sent <= 2 * len(sessions)  # a renewal each, for the sessions in flight at most
    # the failed attempt's requests are kept for the run record
    assert staged_cost(batch["qos_uri"])["requests"] == sent


def test_an_extraction_cleared_after_its_staging_was_removed_fails_at_once(simulator, zoom_conn,
                                                                          staged_batch, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from zoom_qos.core.errors import StagingRemovedError

    batch, _ = staged_batch
    (tmp_path / "sessions" / "batch-00000.jsonl").unlink()  # what the retention removes
    with pytest.raises(AirflowFailException, match="clear the whole run") as caught:
        run(batch)
    assert isinstance(caught.value.__cause__, StagingRemovedError)
    assert simulator.stats()["requests"] == 0
