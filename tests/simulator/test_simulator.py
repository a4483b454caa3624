"""Tests for the local Zoom Video SDK API simulator (include.zoom_simulator).

The pipeline's own tests trust this simulator to behave like Zoom, so these pin down
each documented behaviour and each fault switch over real HTTP.
"""

from __future__ import annotations

import email.utils
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from include.zoom_simulator import Dataset, Faults, Simulator, SimulatorConfig, decode_session_segment
from include.zoom_simulator.dataset import UNKNOWN_UNITS
from include.zoom_simulator.server import QOS_NOT_AVAILABLE
from tests.simulator.simhelpers import KEY, NOW, SECRET, enc, make_simulator

DAY = date(2026, 11, 20)
ROOT = Path(__file__).resolve().parents[2]


def make_jwt(key: str = KEY, secret: str = SECRET, exp_in: int = 3600, iat: bool = True) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": key, "exp": now + exp_in}
    if iat:
        payload["iat"] = now
    return jwt.encode(payload, secret, algorithm="HS256")


def auth(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or make_jwt()}"}


def list_sessions(sim: Simulator, **params: Any) -> requests.Response:
    params.setdefault("from", DAY.isoformat())
    params.setdefault("to", DAY.isoformat())
    return requests.get(f"{sim.base_url}/videosdk/sessions", params=params, headers=auth(), timeout=10)


def qos(sim: Simulator, session_id: str, times: int | None = None, **params: Any) -> requests.Response:
    params.setdefault("type", "past")
    url = f"{sim.base_url}/videosdk/sessions/{enc(session_id, times)}/users/qos"
    return requests.get(url, params=params, headers=auth(), timeout=10)


def past_ids(sim: Simulator, days: int = 183) -> list[str]:
    ds = sim.dataset
    return [s.id for s in ds.past_sessions(NOW.date() - timedelta(days=days), NOW.date())]


def crawl_qos(sim: Simulator, session_id: str, page_size: int | None = None) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = []
    token = ""
    while True:
        params: dict[str, Any] = {"next_page_token": token} if token else {}
        if page_size:
            params["page_size"] = page_size
        body = qos(sim, session_id, **params).json()
        users += body["users"]
        token = body["next_page_token"]
        if not token:
            return users


#: A metric value in a unit no loader knows (only with ``unit_faults``).
UNKNOWN_UNIT = re.compile(rf" ({'|'.join(UNKNOWN_UNITS)})$")
#: Every string a stream or system block holds in Zoom's own data: a number in one of its units, a
#: resolution, the RSSI unit, or one of the empty-ish values ("", "-", "N/A").
ZOOM_VALUE = re.compile(r"[\d.]+ (kbps|Mbps|bps|ms|s|fps)|[\d.]+%|\d+\*\d+|dBm|-|N/A|")


@pytest.fixture(scope="module")
def unparseable_sim() -> Iterator[Simulator]:
    """A simulator that also serves what a loader cannot parse, which Zoom does not send: values in
    an unknown unit and ``duration`` strings that disagree with the session's times."""
    with make_simulator(unit_faults=True, duration_faults=True) as s:
        yield s


def served_window(sim: Simulator, lo: date, hi: date) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """The past sessions of [lo, hi] as listed, and each one's QoS users as crawled."""
    sessions: list[dict[str, Any]] = []
    token = ""
    while True:
        body = list_sessions(sim, type="past", **{"from": lo.isoformat(), "to": hi.isoformat()},
                             page_size=300, next_page_token=token).json()
        sessions += body["sessions"]
        token = body["next_page_token"]
        if not token:
            return sessions, {s["id"]: crawl_qos(sim, s["id"], page_size=10) for s in sessions}


def block_values(users: list[dict[str, Any]]) -> list[Any]:
    """Every value in the samples' blocks (stream, CPU and Wi-Fi), in the order served."""
    return [v for u in users for sample in u["user_qos"] for b in sample.values() if isinstance(b, dict)
            for v in b.values()]


def iso_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def duration_seconds(text: str) -> int:
    """Zoom's duration string, "HH:MM:SS" or "MM:SS" (minutes may exceed 59), in seconds."""
    parts = [int(p) for p in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + parts[2] if len(parts) == 3 else parts[0] * 60 + parts[1]


# ------------------------------------------------------------------ auth
def test_jwt_accepted(sim: Simulator) -> None:
    assert list_sessions(sim, type="past").status_code == 200


@pytest.mark.parametrize("token", [
    make_jwt(secret="wrong-secret-0123456789abcdef0123"),
    make_jwt(key="not-the-api-key"),
    make_jwt(exp_in=-60),
    make_jwt(iat=False),
    "not.a.jwt",
])
def test_jwt_rejected(sim: Simulator, token: str) -> None:
    r = requests.get(f"{sim.base_url}/videosdk/sessions", params={"from": "2026-11-20", "to": "2026-11-20"},
                     headers=auth(token), timeout=10)
    assert r.status_code == 401
    assert r.json() == {"code": 124, "message": "Invalid access token."}
    assert r.headers["Content-Type"].startswith("application/json")


def test_missing_authorization_header(sim: Simulator) -> None:
    r = requests.get(f"{sim.base_url}/videosdk/sessions", params={"from": "2026-11-20", "to": "2026-11-20"})
    assert r.status_code == 401 and r.json()["code"] == 124


# ------------------------------------------------------------ list sessions
def test_type_defaults_to_live(sim: Simulator) -> None:
    body = list_sessions(sim, **{"from": "2026-11-26", "to": "2026-11-26"}).json()
    live = {s.id for s in sim.dataset.live_sessions()}
    assert live and {s["id"] for s in body["sessions"]} == live
    assert all(s["end_time"] is None for s in body["sessions"])
    past = list_sessions(sim, type="past", **{"from": "2026-11-26", "to": "2026-11-26"}).json()
    assert not live & {s["id"] for s in past["sessions"]}


def test_list_paging_echo_cap_and_final_token(sim: Simulator) -> None:
    params = {"type": "past", "from": "2026-11-18", "to": "2026-11-21"}
    expected = [s.id for s in sim.dataset.past_sessions(date(2026, 11, 18), date(2026, 11, 21))]
    seen: list[str] = []
    token, pages = "", 0
    while True:
        body = list_sessions(sim, page_size=7, next_page_token=token, **params).json()
        pages += 1
        assert body["page_size"] == 7 and body["from"] == "2026-11-18" and body["to"] == "2026-11-21"
        assert len(body["sessions"]) <= 7
        seen += [s["id"] for s in body["sessions"]]
        token = body["next_page_token"]
        if token == "":
            break
    assert seen == expected and pages == -(-len(expected) // 7)
    first = list_sessions(sim, **params).json()
    assert first["page_size"] == 30  # the published default
    assert list_sessions(sim, page_size=300, **params).json()["page_size"] == 300  # the maximum, echoed
    over = list_sessions(sim, page_size=5000, **params)  # above the published maximum: refused
    assert over.status_code == 400 and over.json()["code"] == 300
    assert "page_size" in over.json()["message"] and "300" in over.json()["message"]


def test_list_session_fields(sim: Simulator) -> None:
    sessions = list_sessions(sim, type="past").json()["sessions"]
    fields = {"id", "session_name", "start_time", "end_time", "duration", "user_count", "has_voip",
              "has_video", "has_screen_share", "has_recording", "has_pstn", "has_session_summary",
              "session_key", "audio_quality", "video_quality", "screen_share_quality"}
    assert sessions and all(fields <= set(s) for s in sessions)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["start_time"]) for s in sessions)
    assert all(re.fullmatch(r"(\d\d:)?\d{2,}:\d\d|", s["duration"]) for s in sessions)
    every = [s for d in sim.dataset.days()[-40:] for s in sim.dataset.sessions_for_day(d)]
    assert {s["duration"].count(":") for s in every} >= {1, 2}  # both "62:03" and "01:02:03" forms
    assert all(isinstance(s["session_key"], str) for s in every)  # a string, as published
    assert any(s["session_key"] == "" for s in every) and any(s["session_key"] for s in every)


def test_list_filters(sim: Simulator) -> None:
    sessions = list_sessions(sim, type="past").json()["sessions"]
    keyed = next(s for s in sessions if s["session_key"])
    body = list_sessions(sim, type="past", session_key=keyed["session_key"]).json()
    assert [s["id"] for s in body["sessions"]] == [keyed["id"]]


@pytest.mark.parametrize(("params", "needle"), [
    ({"from": None}, "from"),
    ({"to": None}, "to"),
    ({"from": "2026/11/01"}, "from"),
    ({"to": "2026-13-01"}, "to"),
    ({"from": "2026-11-21", "to": "2026-11-20"}, "from"),
    ({"from": "2026-10-01", "to": "2026-11-20"}, "month"),
    ({"from": "2026-05-01", "to": "2026-05-20"}, "six months"),
    ({"type": "yesterday"}, "type"),
    ({"page_size": "abc"}, "page_size"),
])
def test_range_and_parameter_validation(sim: Simulator, params: dict[str, Any], needle: str) -> None:
    query: dict[str, Any] = {"type": "past", "from": "2026-11-20", "to": "2026-11-20", **params}
    query = {k: v for k, v in query.items() if v is not None}
    r = requests.get(f"{sim.base_url}/videosdk/sessions", params=query, headers=auth(), timeout=10)
    assert r.status_code == 400
    assert r.json()["code"] == 300 and needle in r.json()["message"]


def test_one_month_is_allowed(sim: Simulator) -> None:
    assert list_sessions(sim, type="past", **{"from": "2026-10-20", "to": "2026-11-20"}).status_code == 200


# ---------------------------------------------------------------------- QoS
def test_qos_paging_across_pages(sim: Simulator) -> None:
    big = next(i for i in past_ids(sim) if len(sim.dataset.users_for_session(i)) > 20)
    expected = sim.dataset.users_for_session(big)
    first = qos(sim, big).json()
    assert first["page_size"] == 1 and len(first["users"]) == 1 and first["next_page_token"]  # default 1
    full = qos(sim, big, page_size=10).json()
    assert full["page_size"] == 10 and len(full["users"]) == 10
    assert crawl_qos(sim, big) == expected
    assert crawl_qos(sim, big, page_size=4) == expected
    assert crawl_qos(sim, big, page_size=10) == expected
    over = qos(sim, big, page_size=50)  # above the published maximum 10: refused, not capped
    assert over.status_code == 400 and over.json()["code"] == 300


def test_qos_user_shape(sim: Simulator) -> None:
    users = [u for i in past_ids(sim, 5) for u in sim.dataset.users_for_session(i)]
    identity = {"id", "name", "user_key", "is_original_host", "device", "client", "os", "os_version",
                "browser_name", "browser_version", "network_type", "ip_address", "location", "microphone",
                "speaker", "camera", "data_center", "connection_type", "join_time", "leave_time", "user_qos"}
    assert all(identity <= set(u) for u in users)
    assert any(not u["user_qos"] for u in users)
    assert any("future_field" in u for u in users)
    ids = [u["id"] for u in users]
    assert len(ids) > len(set(ids))  # rejoins share the id
    samples = [s for u in users for s in u["user_qos"]]
    assert any("wifi_rssi" in s for s in samples) and any("cpu_pressure_level" in s for s in samples)
    video = next(s["video_input"] for s in samples if "video_input" in s and "resolution" in s["video_input"])
    assert re.fullmatch(r"\d+\*\d+", video["resolution"])
    rendered = [v for s in samples for b in s.values() if isinstance(b, dict) for v in b.values()]
    assert any(isinstance(v, str) and v.endswith(" kbps") for v in rendered)
    assert any(isinstance(v, str) and v.endswith(" Mbps") for v in rendered)
    assert not any(isinstance(v, str) and UNKNOWN_UNIT.search(v) for v in rendered)  # see unit_faults
    assert any(isinstance(v, int | float) and not isinstance(v, bool) for v in rendered)
    assert any(v.endswith(" s") for v in rendered if isinstance(v, str))
    assert any(v.endswith(" bps") and not v.endswith("kbps") for v in rendered if isinstance(v, str))
    assert any(v in ("", "-", "N/A") for v in rendered)


def test_qos_type_default_live_and_not_found(sim: Simulator) -> None:
    past = past_ids(sim, 5)[0]
    r = qos(sim, past, type="")
    assert r.status_code == 404 and r.json() == {"code": 3001, "message": QOS_NOT_AVAILABLE}
    live = sim.dataset.live_sessions()[0].id
    r = requests.get(f"{sim.base_url}/videosdk/sessions/{enc(live)}/users/qos", headers=auth(), timeout=10)
    assert r.status_code == 200 and r.json()["users"]
    assert qos(sim, live, type="past").status_code == 404
    assert qos(sim, "bm9zdWNoc2Vzc2lvbg==").json()["code"] == 3001


def test_session_id_encoding_rules(sim: Simulator) -> None:
    ids = past_ids(sim)
    leading = next(i for i in ids if i.startswith("/"))
    double = next(i for i in ids if "//" in i and not i.startswith("/"))
    plain = next(i for i in ids if ("+" in i or "=" in i) and not i.startswith("/") and "//" not in i)
    for sid in (leading, double):
        assert qos(sim, sid, times=1).json() == {"code": 3001, "message": QOS_NOT_AVAILABLE}
        assert qos(sim, sid, times=2).status_code == 200
    assert qos(sim, plain, times=1).status_code == 200
    assert qos(sim, plain, times=2).json()["code"] == 3001  # over-encoded: Zoom decodes once, finds nothing
    raw = f"{sim.base_url}/videosdk/sessions/{leading}/users/qos?type=past"
    r = requests.get(raw, headers=auth(), timeout=10)
    assert r.status_code == 404 and r.json()["code"] == 3001
    assert decode_session_segment("sfk%2FaOFJ%3D%3D") == "sfk/aOFJ=="
    assert decode_session_segment("%252Fabc%253D") == "/abc="
    assert decode_session_segment("%2Fabc") is None and decode_session_segment("ab%2F%2Fc") is None


def test_unknown_path_and_method(sim: Simulator) -> None:
    r = requests.get(f"{sim.base_url}/videosdk/nothing", headers=auth(), timeout=10)
    assert r.status_code == 404
    assert r.json() == {"code": 2300, "message": "This API endpoint is not recognized."}
    r = requests.post(f"{sim.base_url}/videosdk/sessions", headers=auth(), timeout=10)
    assert r.status_code == 405


# ------------------------------------------------------------- page tokens
def test_page_token_expiry_and_misuse(sim: Simulator) -> None:
    params = {"type": "past", "page_size": 2}
    token = list_sessions(sim, **params).json()["next_page_token"]
    assert list_sessions(sim, next_page_token=token, **params).status_code == 200  # reusable while fresh
    bad = list_sessions(sim, next_page_token="made-up", **params)
    assert bad.status_code == 400
    assert bad.json() == {"code": 300, "message": "The next page token is invalid or expired."}
    other = list_sessions(sim, next_page_token=token, **{**params, "from": "2026-11-19"})
    assert other.status_code == 400
    sim.set_faults(Faults(token_ttl_seconds=0.05))
    token = list_sessions(sim, **params).json()["next_page_token"]
    time.sleep(0.1)
    assert list_sessions(sim, next_page_token=token, **params).json()["code"] == 300
    assert sim.stats()["invalid_token_errors"] == 3
    assert "token_restarts_seen" not in sim.stats()


def test_config_token_ttl() -> None:
    cfg = SimulatorConfig(api_key=KEY, api_secret=SECRET, now=NOW, page_token_ttl_seconds=0.05,
                          enforce_rate_limits=False)
    with Simulator(cfg) as s:
        token = list_sessions(s, type="past", page_size=1).json()["next_page_token"]
        time.sleep(0.1)
        assert list_sessions(s, type="past", page_size=1, next_page_token=token).status_code == 400


def test_fault_expire_page_tokens_and_next_n(sim: Simulator) -> None:
    params = {"type": "past", "page_size": 2}
    token = list_sessions(sim, **params).json()["next_page_token"]
    sim.set_faults(Faults(expire_page_tokens=True))
    assert list_sessions(sim, next_page_token=token, **params).status_code == 400
    sim.set_faults(Faults(expire_next_tokens=2))
    assert list_sessions(sim, **params).status_code == 200  # no token: not counted
    assert list_sessions(sim, next_page_token=token, **params).status_code == 400
    assert list_sessions(sim, next_page_token=token, **params).status_code == 400
    assert list_sessions(sim, next_page_token=token, **params).status_code == 200
    assert sim.stats()["invalid_token_errors"] == 3


# ------------------------------------------------------------------ faults
def test_fault_latency(sim: Simulator) -> None:
    sim.set_faults(Faults(latency_ms=150))
    t0 = time.monotonic()
    assert list_sessions(sim, type="past").status_code == 200
    assert time.monotonic() - t0 >= 0.15


def test_fault_qps_429_every(sim: Simulator) -> None:
    sim.set_faults(Faults(qps_429_every=3))
    codes = [list_sessions(sim, type="past") for _ in range(6)]
    assert [r.status_code for r in codes] == [200, 200, 429, 200, 200, 429]
    r = codes[2]
    assert r.json() == {"code": 429, "message": "You have reached the maximum per-second rate limit for this "
                                                "API. Try again later."}
    assert r.headers["X-RateLimit-Category"] == "Resource-intensive"
    assert r.headers["X-RateLimit-Type"] == "QPS" and r.headers["Retry-After"] == "1"
    assert r.headers["X-RateLimit-Limit"] == "20" and r.headers["X-RateLimit-Remaining"] == "0"
    big = past_ids(sim, 3)[0]
    assert qos(sim, big).status_code == 200 and qos(sim, big).status_code == 200
    assert qos(sim, big).headers["X-RateLimit-Category"] == "Heavy"


def test_fault_retry_after_http_date(sim: Simulator) -> None:
    sim.set_faults(Faults(qps_429_every=1, retry_after_http_date=True))
    r = list_sessions(sim, type="past")
    assert r.status_code == 429
    assert email.utils.parsedate_to_datetime(r.headers["Retry-After"]).tzinfo is not None


def test_fault_bare_429(sim: Simulator) -> None:
    sim.set_faults(Faults(bare_429_every=2))
    a, b = list_sessions(sim, type="past"), list_sessions(sim, type="past")
    assert a.status_code == 200 and b.status_code == 429 and b.json()["code"] == 429
    assert not any(h.lower().startswith("x-ratelimit") or h.lower() == "retry-after" for h in b.headers)


def test_fault_daily_limit_exhausted(sim: Simulator) -> None:
    sim.set_faults(Faults(daily_limit_exhausted=True))
    r = qos(sim, past_ids(sim, 3)[0])
    assert r.status_code == 429 and "daily" in r.json()["message"]
    assert r.headers["X-RateLimit-Type"] == "Daily-limit" and r.headers["X-RateLimit-Category"] == "Heavy"
    retry = datetime.strptime(r.headers["Retry-After"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    real_now = datetime.now(UTC)
    assert retry.time().hour == 0 and real_now < retry <= real_now + timedelta(days=1)


def test_fault_server_errors_rotate(sim: Simulator) -> None:
    sim.set_faults(Faults(server_error_every=1))
    statuses = [list_sessions(sim, type="past") for _ in range(3)]
    assert sorted(r.status_code for r in statuses) == [500, 502, 503]
    assert any(r.headers["Content-Type"].startswith("text/html") for r in statuses)


def test_fault_truncated_body(sim: Simulator) -> None:
    sim.set_faults(Faults(truncated_body_every=2))
    ok = list_sessions(sim, type="past")
    cut = list_sessions(sim, type="past")
    assert ok.status_code == cut.status_code == 200
    ok.json()
    assert len(cut.content) == len(ok.content) // 2
    with pytest.raises(ValueError):
        cut.json()


def test_fault_reset_connection(sim: Simulator) -> None:
    sim.set_faults(Faults(reset_connection_every=2))
    assert list_sessions(sim, type="past").status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        list_sessions(sim, type="past")
    assert list_sessions(sim, type="past").status_code == 200
    assert sim.stats()["connection_resets"] == 1


def test_fault_gone_and_invalid_sessions(sim: Simulator) -> None:
    gone, invalid = past_ids(sim, 3)[:2]
    sim.set_faults(Faults(gone_sessions=[gone], invalid_sessions=[invalid]))
    listed = list_sessions(sim, type="past", **{"from": "2026-11-22", "to": "2026-11-26"}).json()["sessions"]
    assert gone in {s["id"] for s in listed}
    assert qos(sim, gone).json() == {"code": 3001, "message": QOS_NOT_AVAILABLE}
    r = qos(sim, invalid)
    assert r.status_code == 400 and r.json() == {"code": 300, "message": "Invalid session ID."}


def test_fault_expired_jwt_every(sim: Simulator) -> None:
    sim.set_faults(Faults(expired_jwt_every=2))
    codes = [list_sessions(sim, type="past").status_code for _ in range(4)]
    assert codes == [200, 401, 200, 401]


def test_faults_counters_skip_control_endpoints(sim: Simulator) -> None:
    sim.set_faults(Faults(qps_429_every=2))
    assert list_sessions(sim, type="past").status_code == 200
    requests.get(f"{sim.base_url.removesuffix('/v2')}/_sim/health", timeout=10)
    assert list_sessions(sim, type="past").status_code == 429


# ------------------------------------------------------------ rate limits
def test_real_rate_limits() -> None:
    cfg = SimulatorConfig(api_key=KEY, api_secret=SECRET, now=NOW, heavy_rate_per_second=2,
                          resource_intensive_per_minute=2, daily_limit=5)
    with Simulator(cfg) as s:
        codes = [list_sessions(s, type="past") for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        h = codes[2].headers
        assert h["X-RateLimit-Category"] == "Resource-intensive" and h["X-RateLimit-Type"] == "QPS"
        assert int(h["Retry-After"]) >= 1 and h["X-RateLimit-Limit"] == "2"
        sid = s.dataset.past_sessions(date(2026, 11, 20), date(2026, 11, 20))[0].id
        codes = [qos(s, sid) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[2].headers["X-RateLimit-Category"] == "Heavy"
        time.sleep(0.6)  # one Heavy token back; this is the 5th admitted call of the day
        assert qos(s, sid).status_code == 200
        time.sleep(0.6)
        daily = qos(s, sid)
        assert daily.status_code == 429 and daily.headers["X-RateLimit-Type"] == "Daily-limit"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", daily.headers["Retry-After"])
        assert s.stats()["status_counts"] == {"200": 5, "429": 3}


# ------------------------------------------------------------------ control
def test_control_endpoints(sim: Simulator) -> None:
    root = sim.base_url.removesuffix("/v2")
    assert requests.get(f"{root}/_sim/health", timeout=10).json()["status"] == "ok"
    list_sessions(sim, type="past")
    stats = requests.get(f"{root}/_sim/stats", timeout=10).json()
    assert stats["requests"] == 1
    assert stats["by_endpoint"] == {"list_sessions": 1, "user_qos": 0, "session_users": 0, "daily_report": 0,
                                    "webhook_logs": 0}
    assert stats["status_counts"] == {"200": 1}
    r = requests.post(f"{root}/_sim/faults", json={"qps_429_every": 1, "gone_sessions": ["x"]}, timeout=10)
    assert r.status_code == 200 and sim.faults.qps_429_every == 1 and sim.faults.gone_sessions == ["x"]
    assert list_sessions(sim, type="past").status_code == 429
    assert requests.post(f"{root}/_sim/faults", json={"nope": 1}, timeout=10).status_code == 400
    assert requests.post(f"{root}/_sim/faults", data=b"{not json", timeout=10).status_code == 400
    assert requests.post(f"{root}/_sim/reset", timeout=10).json() == {"status": "reset"}
    assert sim.faults == Faults() and sim.stats()["requests"] == 0
    assert requests.get(f"{root}/_sim/unknown", timeout=10).status_code == 404


def test_garbage_requests_do_not_crash(sim: Simulator) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        conn.sendall(b"\x00\x01garbage\r\n\r\n")
        conn.recv(1024)
    weird = f"{sim.base_url}/videosdk/sessions/%ZZ%/users/qos?type=past&page_size=-1"
    assert requests.get(weird, headers=auth(), timeout=10).status_code in (400, 404)
    assert list_sessions(sim, type="past", page_size="0").status_code == 400
    assert requests.get(f"{sim.base_url.removesuffix('/v2')}/_sim/health", timeout=10).status_code == 200


# ------------------------------------------------------------------ dataset
def test_determinism() -> None:
    a, b = Dataset(7, NOW), Dataset(7, NOW)
    c = Dataset(8, NOW)
    for d in (date(2026, 6, 1), DAY, NOW.date()):
        assert a.sessions_for_day(d) == b.sessions_for_day(d)
    sid = a.sessions_for_day(DAY)[0]["id"]
    assert a.users_for_session(sid) == b.users_for_session(sid)
    assert a.expected_rows(DAY, DAY) == b.expected_rows(DAY, DAY)
    assert a.sessions_for_day(DAY) != c.sessions_for_day(DAY)
    later = Dataset(7, NOW + timedelta(days=1))  # past data does not depend on `now`
    assert later.sessions_for_day(DAY) == a.sessions_for_day(DAY)


def test_dataset_covers_six_months_and_edges(sim: Simulator) -> None:
    ds = sim.dataset
    assert ds.days()[0] == NOW.date() - timedelta(days=183) and ds.days()[-1] == NOW.date()
    assert ds.sessions_for_day(NOW.date() - timedelta(days=184)) == []
    every = [s for d in ds.days() for s in ds.sessions_for_day(d)]
    assert all(datetime.fromisoformat(s["start_time"].replace("Z", "+00:00")) <= NOW for s in every)
    ends = [s["end_time"] for s in every if s["end_time"]]
    assert any(e.endswith("T00:00:00Z") for e in ends) and any(e.endswith("T23:59:59Z") for e in ends)
    assert any(s["start_time"].endswith("T00:00:00Z") for s in every)
    assert any(s["end_time"] and s["end_time"][:10] != s["start_time"][:10] for s in every)


def test_by_default_only_the_odd_values_zoom_sends_are_served(sim: Simulator,
                                                              unparseable_sim: Simulator) -> None:
    """The default data is as Zoom sends it: every block value a number, a number in one of Zoom's
    units or an empty-ish value, every ``duration`` within a minute of the times, nothing a loader
    cannot parse. The switches add values in an unknown unit (and disagreeing durations) in place
    of some values, and change nothing else."""
    lo, hi = date(2026, 11, 19), date(2026, 11, 20)
    sessions, served = served_window(sim, lo, hi)
    values = [v for users in served.values() for v in block_values(users)]
    assert values and all(isinstance(v, int | float) or ZOOM_VALUE.fullmatch(v) for v in values)
    assert {"", "-", "N/A"} <= set(values) and any(isinstance(v, int | float) for v in values)
    assert all(abs(duration_seconds(s["duration"])
                   - (iso_time(s["end_time"]) - iso_time(s["start_time"])).total_seconds()) <= 60
               for s in sessions if s["duration"])
    assert sim.dataset.unparseable_count(lo, hi) == 0

    on_sessions, on_served = served_window(unparseable_sim, lo, hi)
    assert [{**s, "duration": None} for s in on_sessions] == [{**s, "duration": None} for s in sessions]
    assert on_served.keys() == served.keys()
    changed = 0
    for sid, users in served.items():
        assert [{**u, "user_qos": None} for u in on_served[sid]] == [{**u, "user_qos": None} for u in users]
        on_values = block_values(on_served[sid])
        assert len(on_values) == len(block_values(users))
        for off, on in zip(block_values(users), on_values, strict=True):
            if on != off:  # only a value now in an unknown unit differs
                assert isinstance(on, str) and UNKNOWN_UNIT.search(on), (off, on)
                changed += 1
    assert changed > 0
    assert changed == sum(1 for users in on_served.values() for v in block_values(users)
                          if isinstance(v, str) and UNKNOWN_UNIT.search(v))


def test_expected_rows_match_served_data(unparseable_sim: Simulator) -> None:
    sim = unparseable_sim
    lo, hi = date(2026, 11, 19), date(2026, 11, 20)
    sessions, served = served_window(sim, lo, hi)
    rows = sim.dataset.expected_rows(lo, hi)
    assert [r["session_id"] for r in rows["sessions"]] == [s["id"] for s in sessions]
    joins = [(sid, u["id"], u["join_time"]) for sid, users in served.items() for u in users]
    assert len(rows["session_users"]) == len(joins) == len(set(joins))
    samples = [(sid, u, s) for sid, users in served.items() for u in users for s in u["user_qos"]]
    blocks = sum(1 for _, _, s in samples for k, v in s.items() if isinstance(v, dict)
                 and k not in ("cpu_usage", "wifi_rssi"))
    assert len(rows["user_qos"]) == blocks
    system = sum(1 for _, _, s in samples if {"cpu_usage", "wifi_rssi", "cpu_pressure_level"} & set(s))
    assert len(rows["user_system_qos"]) == system
    assert {r["stream"] for r in rows["user_qos"]} >= {"audio_input", "video_input", "as_input"}
    odd_units = sum(1 for _, _, s in samples for b in s.values() if isinstance(b, dict) for v in b.values()
                    if isinstance(v, str) and UNKNOWN_UNIT.search(v))
    elapsed = {s["id"]: (iso_time(s["end_time"]) - iso_time(s["start_time"])).total_seconds()
               for s in sessions}
    mismatched = sum(1 for s in sessions
                     if s["duration"] and abs(duration_seconds(s["duration"]) - elapsed[s["id"]]) > 60)
    assert sim.dataset.unparseable_count(lo, hi) == odd_units + mismatched and odd_units > 0
    # Spot-check parsed values against the rendered strings.
    first = rows["sessions"][0]
    assert isinstance(first["start_time"], datetime) and first["start_time"].tzinfo is not None
    assert set(first) == {"session_id", "session_name", "session_key", "start_time", "end_time",
                          "duration_seconds", "user_count", "has_voip", "has_video", "has_screen_share",
                          "has_recording", "has_pstn", "audio_quality", "video_quality",
                          "screen_share_quality", "qos_status"}
    units = {"kbps": 1.0, "Mbps": 1000.0, "bps": 0.001, "ms": 1.0, "s": 1000.0}
    by_key = {(r["session_id"], r["user_id"], r["join_time"], r["sampled_at"], r["stream"]): r
              for r in rows["user_qos"]}
    checked = 0
    for sid, u, s in samples:
        join = datetime.fromisoformat(u["join_time"].replace("Z", "+00:00"))
        at = datetime.fromisoformat(s["date_time"].replace("Z", "+00:00"))
        block = s.get("audio_input")
        if not isinstance(block, dict):
            continue
        row = by_key[(sid, u["id"], join, at, "audio_input")]
        m = re.fullmatch(r"([\d.]+) (kbps|Mbps|bps)", str(block.get("bitrate")))
        if m:
            assert row["bitrate_kbps"] == pytest.approx(float(m.group(1)) * units[m.group(2)])
            checked += 1
        if block.get("latency") in (None, "", "-", "N/A"):
            assert row["latency_ms"] is None
    assert checked > 50


# --------------------------------------------------------------------- CLI
def test_cli_ready_file_and_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.zoom_simulator", "--host", "127.0.0.1", "--port", "0",
         "--api-key", KEY, "--api-secret", SECRET, "--seed", "42", "--ready-file", str(ready),
         "--faults", '{"qps_429_every": 2}'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        base = ready.read_text().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v2", base)
        root = base.removesuffix("/v2")
        assert requests.get(f"{root}/_sim/health", timeout=5).json()["status"] == "ok"
        assert requests.get(f"{root}/_sim/faults", timeout=5).json()["qps_429_every"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"Zoom API simulator listening on {base}" in out
