"""The hook against the simulator: every request path Zoom can take."""

from __future__ import annotations

from datetime import timedelta

import pytest

from include.zoom_simulator import Faults
from zoom_qos.hooks import ZoomSettings, ZoomVideoSdkHook
from zoom_qos.transform.rows import unique_users
from zoom_qos.zoom import published
from zoom_qos.zoom.bodies import decode_user
from zoom_qos.zoom.errors import ZoomApiError, ZoomAuthError, ZoomConfigError, ZoomDailyLimitError


def past_day(simulator, days_ago: int = 2):
    return simulator.dataset.now.date() - timedelta(days=days_ago)


def expected_past_ids(simulator, day) -> set[str]:
    return {s["id"] for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")}


def busiest_session(simulator, day) -> str:
    return max(simulator.dataset.sessions_for_day(day), key=lambda s: s["user_count"])["id"]


@pytest.fixture
def sent_requests(monkeypatch) -> list[tuple[str, dict]]:
    """Every request the hook's sessions send: its URL and the query parameters it sets."""
    import requests

    sent: list[tuple[str, dict]] = []
    real_get = requests.Session.get

    def recording_get(self, url, params=None, **kwargs):
        sent.append((url, {k: v for k, v in (params or {}).items() if v is not None}))
        return real_get(self, url, params=params, **kwargs)

    monkeypatch.setattr(requests.Session, "get", recording_get)
    return sent


def users_qos(hook: ZoomVideoSdkHook, session_id: str):
    """Users of a past session with their QoS samples, decoded, page after page (after a page-token
    restart users repeat: callers key them by ``(id, join_time)``)."""
    for _, users in hook.iter_session_qos_pages(session_id):
        for user in users:
            yield decode_user(user)


def test_lists_the_past_sessions_of_a_day(simulator, zoom_conn):
    day = past_day(simulator)
    hook = ZoomVideoSdkHook()
    listed = [s["id"] for s in hook.iter_past_sessions(day, day)]
    assert set(listed) == expected_past_ids(simulator, day) and len(listed) == len(set(listed))
    assert hook.stats.requests >= 1


def test_small_pages_are_followed_to_the_end(simulator, zoom_conn):
    zoom_conn(list_page_size=2, qos_page_size=3)
    day = past_day(simulator)
    hook = ZoomVideoSdkHook()
    assert {s["id"] for s in hook.iter_past_sessions(day, day)} == expected_past_ids(simulator, day)
    session_id = busiest_session(simulator, day)
    users = list(users_qos(hook, session_id))
    assert users == simulator.dataset.users_for_session(session_id)


def test_ids_that_need_double_encoding_are_found(simulator, zoom_conn):
    hook = ZoomVideoSdkHook()
    tricky = []
    for back in range(1, 60):
        day = past_day(simulator, back)
        tricky += [s["id"] for s in simulator.dataset.sessions_for_day(day)
                   if s.get("end_time") and (s["id"].startswith("/") or "//" in s["id"])]
        if len(tricky) >= 2:
            break
    assert tricky, "the simulator should serve ids beginning with / or containing //"
    for session_id in tricky:
        assert list(users_qos(hook, session_id)) == simulator.dataset.users_for_session(
            session_id)


def test_expired_jwt_is_renewed_once(simulator, zoom_conn):
    """Every second request meets an expired token: one join a page, so that the session's read
    takes several requests whatever the day's data (its joins are counted from what is served)."""
    zoom_conn(backoff_base_seconds=0.05, qos_page_size=1)
    simulator.set_faults(Faults(expired_jwt_every=2))
    day = past_day(simulator)
    session_id = max((s["id"] for s in simulator.dataset.sessions_for_day(day) if s.get("end_time")),
                     key=lambda i: len(simulator.dataset.users_for_session(i)))
    joins = len(simulator.dataset.users_for_session(session_id))
    assert joins >= 2, "the day's busiest ended session has two joins at least"
    hook = ZoomVideoSdkHook()
    assert list(users_qos(hook, session_id)) == simulator.dataset.users_for_session(session_id)
    assert hook.stats.jwt_renewals_on_401 >= 1


def test_wrong_secret_is_a_clear_error_without_the_secret(simulator, monkeypatch):
    from tests.conftest import zoom_connection_json

    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK",
                       zoom_connection_json(simulator.base_url, secret="wrong-secret-xyz"))
    hook = ZoomVideoSdkHook()
    with pytest.raises(ZoomAuthError) as caught:
        list(hook.iter_past_sessions(past_day(simulator), past_day(simulator)))
    assert caught.value.code == 124 and "wrong-secret-xyz" not in str(caught.value)
    ok, message = hook.test_connection()
    assert not ok and "API key" in message


def test_test_connection_succeeds_with_good_credentials(simulator, zoom_conn):
    assert ZoomVideoSdkHook().test_connection()[0] is True


@pytest.mark.parametrize(
    "faults",
    [
        Faults(qps_429_every=3),
        Faults(qps_429_every=3, retry_after_http_date=True),
        Faults(bare_429_every=3),
        Faults(server_error_every=3),
        Faults(truncated_body_every=3),
        Faults(reset_connection_every=4),
    ],
    ids=["429-seconds", "429-http-date", "429-bare", "5xx", "truncated", "reset"],
)
def test_transient_faults_are_retried_and_lose_nothing(simulator, zoom_conn, faults):
    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    zoom_conn(qos_page_size=2, backoff_base_seconds=0.05)
    simulator.set_faults(faults)
    hook = ZoomVideoSdkHook()
    assert list(users_qos(hook, session_id)) == simulator.dataset.users_for_session(session_id)
    assert hook.stats.retries >= 1
    if faults.qps_429_every or faults.bare_429_every:
        assert hook.stats.rate_limit_waits >= 1


def test_daily_limit_says_when_it_resets(simulator, zoom_conn):
    simulator.set_faults(Faults(daily_limit_exhausted=True))
    with pytest.raises(ZoomDailyLimitError) as caught:
        list(ZoomVideoSdkHook().iter_past_sessions(past_day(simulator), past_day(simulator)))
    assert caught.value.reset_at is not None
    assert caught.value.reset_at.isoformat()[:10] in str(caught.value)


def test_expired_page_token_restarts_and_keeps_each_user_once(simulator, zoom_conn):
    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    zoom_conn(qos_page_size=2)
    simulator.set_faults(Faults(expire_next_tokens=2))
    hook = ZoomVideoSdkHook()
    users = list(unique_users(users_qos(hook, session_id)))
    assert users == simulator.dataset.users_for_session(session_id)
    assert hook.stats.token_restarts == 2
    assert simulator.stats()["invalid_token_errors"] == 2


def test_slow_consumer_never_sends_a_stale_token(simulator, zoom_conn):
    """The proactive path: a token older than its lifetime is not sent; the list restarts."""
    import time

    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    zoom_conn(qos_page_size=2, page_token_ttl_seconds=1.2, page_token_safety_seconds=0.9)
    simulator.set_faults(Faults(token_ttl_seconds=1.2))
    hook = ZoomVideoSdkHook()
    users = []
    slow_once = True
    for user in users_qos(hook, session_id):
        users.append(user)
        if slow_once:
            slow_once = False
            time.sleep(0.5)  # longer than the 0.3 s the client allows a token
    assert list(unique_users(users)) == simulator.dataset.users_for_session(session_id)
    assert hook.stats.token_restarts == 1
    assert simulator.stats()["invalid_token_errors"] == 0


def test_a_session_not_ready_is_recognised(simulator, zoom_conn):
    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    simulator.set_faults(Faults(gone_sessions=[session_id]))
    with pytest.raises(ZoomApiError) as caught:
        list(users_qos(ZoomVideoSdkHook(), session_id))
    error = caught.value
    assert error.session_not_ready and not error.session_unavailable and error.session_id == session_id


def test_settings_from_extras_are_typed_and_validated():
    settings = ZoomSettings.from_extra({"qos_page_size": "5", "heavy_requests_per_second": 10,
                                        "verify": "false", "read_user_grades": "true",
                                        "unrelated": "ignored"})
    assert settings.qos_page_size == 5 and settings.heavy_requests_per_second == 10.0
    assert settings.verify is False and settings.read_user_grades is True
    with pytest.raises(ValueError, match="qos_page_size"):
        ZoomSettings.from_extra({"qos_page_size": "many"})


def test_page_sizes_default_to_the_published_maxima_and_may_not_exceed_them():
    default = ZoomSettings()
    assert (default.qos_page_size, default.list_page_size, default.users_page_size) == (10, 300, 300)
    for extra, maximum in (({"qos_page_size": 11}, 10), ({"list_page_size": 301}, 300),
                           ({"users_page_size": 500}, 300), ({"qos_page_size": 0}, 10)):
        with pytest.raises(ZoomConfigError, match=f"{next(iter(extra))}.*at most {maximum}"):
            ZoomSettings.from_extra(extra)


def test_a_page_size_above_the_maximum_fails_when_the_connection_is_read(simulator, zoom_conn):
    zoom_conn(qos_page_size=100)
    with pytest.raises(ZoomConfigError, match="qos_page_size' is 100"):
        ZoomVideoSdkHook().get_conn()
    assert simulator.stats()["requests"] == 0


def test_empty_host_defaults_to_zoom(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_VIDEOSDK",
                       '{"conn_type": "http", "login": "k", "password": "s"}')
    hook = ZoomVideoSdkHook()
    hook.get_conn()
    assert hook.base_url == "https://api.zoom.us/v2"


def test_waiting_on_the_rate_limit_counts_against_the_token_lifetime(simulator, zoom_conn):
    """A token that would be sent after a long pacing wait is not sent: the list restarts."""
    from zoom_qos.zoom.errors import PageRestartsExhaustedError

    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    # one request per 2 s, but a token may only be used 0.5 s after it was issued
    zoom_conn(qos_page_size=2, heavy_requests_per_second=0.5, page_token_ttl_seconds=1.5,
              page_token_safety_seconds=1.0, max_page_restarts=1)
    hook = ZoomVideoSdkHook()
    with pytest.raises(PageRestartsExhaustedError):
        list(users_qos(hook, session_id))
    assert simulator.stats()["invalid_token_errors"] == 0  # no stale token ever reached Zoom
    assert hook.stats.token_restarts == 2


def test_every_request_the_hook_sends_is_one_zoom_s_definition_accepts(simulator, zoom_conn,
                                                                       sent_requests):
    """The hook's real requests (path and query) checked against the published definition, so a
    default or a parameter that Zoom would refuse fails here, not against Zoom."""
    import re
    from urllib.parse import urlsplit

    from zoom_qos.zoom.published import ENDPOINTS, request_problems

    sent = sent_requests
    zoom_conn(read_user_grades=True)
    day = past_day(simulator)
    session_id = busiest_session(simulator, day)
    hook = ZoomVideoSdkHook()
    assert list(hook.iter_past_sessions(day, day))
    assert [users for _, users in hook.iter_session_qos_pages(session_id)]
    assert [users for _, users in hook.iter_session_users_pages(session_id)]
    assert hook.daily_usage(day.year, day.month)
    now = simulator.now
    assert list(hook.iter_webhook_logs(now - timedelta(days=6), now)) == []  # no webhooks configured

    templates = {e.name: re.compile("^/v2/" + re.escape(e.path).replace(r"\{sessionId\}", "[^/]+") + "$")
                 for e in ENDPOINTS}
    seen = set()
    for url, params in sent:
        path = urlsplit(url).path
        [endpoint] = [e for e in ENDPOINTS if templates[e.name].match(path)]
        seen.add(endpoint.name)
        assert request_problems(endpoint, params) == [], (path, params)
        if endpoint.page_size is not None:  # the published maximum: the fewest requests
            assert int(params["page_size"]) == endpoint.max_page_size, (path, params)
        if endpoint.query.get("type") == published.SESSIONS.query["type"]:
            assert params["type"] == "past"  # Zoom's default is live
    assert seen == {e.name for e in ENDPOINTS}


def test_the_hook_reads_its_connection_once_and_gives_each_thread_a_session(simulator, zoom_conn,
                                                                             monkeypatch):
    import threading

    import requests

    from zoom_qos import hooks

    reads: list[str] = []
    real = ZoomVideoSdkHook.get_connection
    monkeypatch.setattr(ZoomVideoSdkHook, "get_connection",
                        classmethod(lambda cls, conn_id: reads.append(conn_id) or real(conn_id)))
    masked: list[str] = []
    monkeypatch.setattr(hooks, "mask_secret", masked.append)
    hook = ZoomVideoSdkHook()
    assert reads == []  # nothing read until the client is needed
    assert hook.settings.qos_page_size == 10
    day = past_day(simulator)
    assert list(hook.iter_past_sessions(day, day))
    sessions = [hook.get_conn()]
    thread = threading.Thread(target=lambda: sessions.append(hook.get_conn()))
    thread.start()
    thread.join()
    assert reads == ["zoom_videosdk"]
    assert sessions[0] is hook.get_conn() and sessions[1] is not sessions[0]
    assert all(isinstance(s, requests.Session) for s in sessions)
    assert masked[0] == "test-api-secret-3f9c2d17a8" and hook.client.auth.token() in masked
    hook.close()
    assert hook.client.session_count() == 0 and reads == ["zoom_videosdk"]


def test_the_daily_count_is_kept_where_the_config_section_says(simulator, zoom_conn, monkeypatch, tmp_path):
    zoom_conn(daily_request_limit=50_000, backfill_reserve_requests=0)
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__BUDGET_DIR", str(tmp_path / "counts"))
    hook = ZoomVideoSdkHook()
    list(hook.iter_past_sessions(past_day(simulator), past_day(simulator)))
    counts = list((tmp_path / "counts").glob("*.json"))
    assert len(counts) == 1 and hook.stats.requests >= 1


# --- live sessions ----------------------------------------------------------------------------
def live_range(simulator):
    """Today's UTC date and yesterday's, for sessions running over midnight."""
    today = simulator.dataset.now.date()
    return today - timedelta(days=1), today


def test_lists_the_live_sessions_and_reads_their_qos_so_far(simulator, zoom_conn, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__BUDGET_DIR", str(tmp_path / "counts"))
    hook = ZoomVideoSdkHook(live=True)
    listed = [s["id"] for s in hook.iter_live_sessions(*live_range(simulator))]
    expected = {s.id for s in simulator.dataset.live_sessions()}
    assert expected and set(listed) == expected and len(listed) == len(set(listed))
    for session_id in listed:
        users = [decode_user(u) for _, page in hook.iter_session_qos_pages(session_id, session_type="live")
                 for u in page]
        assert users == simulator.dataset.users_for_session(session_id)
        joins = [u for _, page in hook.iter_session_users_pages(session_id, session_type="live")
                 for u in page]
        assert len(joins) == len(simulator.dataset.participants_for_session(session_id))
    # counted as live polling's requests, apart from the scheduled runs'
    [counts] = list((tmp_path / "counts").glob("*.json"))
    [day] = json.loads(counts.read_text()).values()
    assert day == {"scheduled": 0, "backfill": 0, "live": hook.stats.requests}


def test_a_session_asked_as_the_other_type_is_not_available(simulator, zoom_conn):
    hook = ZoomVideoSdkHook(live=True)
    past = busiest_session(simulator, past_day(simulator))
    [live, *_] = [s.id for s in simulator.dataset.live_sessions()]
    for session_id, session_type in ((past, "live"), (live, "past")):
        with pytest.raises(ZoomApiError) as caught:
            list(hook.iter_session_qos_pages(session_id, session_type=session_type))  # type: ignore[arg-type]
        assert (caught.value.status, caught.value.code) == (404, 3001)
        assert caught.value.session_id == session_id


def test_live_polling_stops_at_its_share_without_sending(simulator, zoom_conn):
    from zoom_qos.core.errors import DailyLimitReached
    from zoom_qos.zoom.budget import LiveBudgetExhaustedError

    zoom_conn(daily_request_limit=1_000, backfill_reserve_requests=100, live_daily_request_budget=1)
    hook = ZoomVideoSdkHook(live=True)
    [session_id, *_] = [s["id"] for s in hook.iter_live_sessions(*live_range(simulator))]
    sent = simulator.stats()["requests"]
    with pytest.raises(DailyLimitReached) as caught:  # what live polling pauses on
        list(hook.iter_session_qos_pages(session_id, session_type="live"))
    assert isinstance(caught.value, LiveBudgetExhaustedError) and caught.value.kind == "live"
    assert "live_daily_request_budget = 1" in str(caught.value)
    assert simulator.stats()["requests"] == sent  # nothing was sent
    # the scheduled runs' share is untouched
    assert list(ZoomVideoSdkHook().iter_past_sessions(past_day(simulator), past_day(simulator)))


def test_every_live_request_the_hook_sends_is_one_zoom_s_definition_accepts(simulator, zoom_conn,
                                                                            sent_requests):
    from zoom_qos.zoom.published import SESSION_QOS, SESSION_USERS, SESSIONS, request_problems

    sent = sent_requests
    zoom_conn(qos_page_size=2, users_page_size=2, list_page_size=1)  # several pages of each
    hook = ZoomVideoSdkHook(live=True)
    [session_id, *_] = [s["id"] for s in hook.iter_live_sessions(*live_range(simulator))]
    list(hook.iter_session_qos_pages(session_id, session_type="live"))
    list(hook.iter_session_users_pages(session_id, session_type="live"))
    assert len(sent) >= 3
    for url, params in sent:
        endpoint = (SESSION_QOS if url.endswith("/users/qos") else SESSION_USERS if url.endswith("/users")
                    else SESSIONS)
        assert request_problems(endpoint, params) == [], (url, params)
        assert params["type"] == "live"
    assert simulator.stats()["status_counts"].get("400", 0) == 0
