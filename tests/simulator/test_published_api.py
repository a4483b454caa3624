"""The simulator against Zoom's published API definition (``zoom_qos.zoom.published``).

The pipeline's tests trust the simulator to be Zoom; these tests make sure it is the Zoom of the
published definition: its answers have the documented shapes, and it refuses what the definition
refuses (page sizes, parameters, session-id encodings), with the documented codes.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from include.zoom_simulator import Simulator, decode_session_segment
from include.zoom_simulator.server import NOT_RECOGNIZED_MESSAGE, QOS_NOT_AVAILABLE, USERS_NOT_AVAILABLE
from tests.simulator.simhelpers import NOW, crawl, enc, get, qos, raw_get, users
from zoom_qos.zoom import published
from zoom_qos.zoom.published import (
    DAILY_USAGE,
    DEVICES,
    NETWORK_TYPES,
    QUALITY_GRADES,
    SESSION_QOS,
    SESSION_USERS,
    SESSIONS,
    needs_double_encoding,
    request_problems,
    response_problems,
)

DAYS = (date(2026, 11, 20), date(2026, 10, 3), date(2026, 6, 15))






def past_ids(sim: Simulator) -> list[str]:
    return [s.id for s in sim.dataset.past_sessions(sim.dataset.first_day, NOW.date())]


def rich_session(sim: Simulator, day: date, minimum: int = 11) -> str:
    """A past session of ``day`` (or soon after) with at least ``minimum`` joins: several QoS pages."""
    for back in range(30):
        for s in sim.dataset.past_sessions(day + timedelta(days=back), day + timedelta(days=back)):
            if len(sim.dataset.users_for_session(s.id)) >= minimum:
                return s.id
    raise AssertionError("no session that big")


# ------------------------------------------------------------ responses conform
def test_the_checker_catches_a_departure() -> None:
    """The conformance tests below rely on response_problems; make sure it can say no."""
    assert response_problems(SESSIONS, {"sessions": [{"id": "x", "duration": 600}]})
    assert response_problems(SESSION_QOS, {"page_size": 11, "users": []})
    assert response_problems(SESSION_USERS, {"users": [{"audio_call": {}}]})
    assert response_problems(DAILY_USAGE, {"dates": [{"date": "2026-11-01", "sessions": "3"}]})


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("page_size", [None, 7])
def test_sessions_list_conforms(sim: Simulator, day: date, page_size: int | None) -> None:
    problems: list[str] = []
    params: dict[str, Any] = {"type": "past", "from": day.isoformat(),
                              "to": (day + timedelta(days=3)).isoformat()}
    if page_size:
        params["page_size"] = page_size
    sessions = crawl(sim, SESSIONS, "videosdk/sessions", problems, **params)
    assert len(sessions) > 7 and problems == []
    for s in sessions:
        assert set(SESSIONS.item_fields) <= set(s)
        assert re.fullmatch(r"(\d\d:)?\d{2,}:\d\d|", s["duration"])
        assert {s["audio_quality"], s["video_quality"], s["screen_share_quality"]} <= {*QUALITY_GRADES, ""}


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("page_size", [None, 10])
def test_qos_list_conforms(sim: Simulator, day: date, page_size: int | None) -> None:
    sid = rich_session(sim, day)
    problems: list[str] = []
    params = {"type": "past", **({"page_size": page_size} if page_size else {})}
    served = crawl(sim, SESSION_QOS, f"videosdk/sessions/{enc(sid)}/users/qos", problems, **params)
    assert served == sim.dataset.users_for_session(sid) and problems == []
    for u in served:
        assert set(SESSION_QOS.item_fields) <= set(u)
        assert u["device"] in DEVICES and u["network_type"] in NETWORK_TYPES
        assert re.fullmatch(r"[A-Z]{2}", u["data_center"])
        for sample in u["user_qos"]:
            rssi = sample.get("wifi_rssi")
            if rssi:
                assert rssi["rssi_unit"] == "dBm"
                assert all(type(v) is int for k, v in rssi.items() if k.endswith("_rssi"))


@pytest.mark.parametrize("day", DAYS)
@pytest.mark.parametrize("page_size", [None, 3])
def test_users_list_conforms(sim: Simulator, day: date, page_size: int | None) -> None:
    sid = rich_session(sim, day, minimum=4)
    problems: list[str] = []
    params = {"type": "past", **({"page_size": page_size} if page_size else {})}
    served = crawl(sim, SESSION_USERS, f"videosdk/sessions/{enc(sid)}/users", problems, **params)
    assert served == sim.dataset.participants_for_session(sid) and problems == []
    for u in served:
        assert set(SESSION_USERS.item_fields) <= set(u)
        assert {u["audio_quality"], u["video_quality"], u["screen_share_quality"]} <= {*QUALITY_GRADES, ""}
        assert all(set(call) == {"call_number", "call_type", "zoom_number"} for call in u["audio_call"])


@pytest.mark.parametrize(("year", "month"), [(2026, 11), (2026, 8), (2026, 5)])
def test_daily_report_conforms(sim: Simulator, year: int, month: int) -> None:
    r = get(sim, "videosdk/report/daily", year=year, month=month)
    assert r.status_code == 200
    body = r.json()
    assert response_problems(DAILY_USAGE, body) == []
    assert set(DAILY_USAGE.fields) <= set(body) and (body["year"], body["month"]) == (year, month)
    assert body["dates"] and all(set(DAILY_USAGE.item_fields) <= set(d) for d in body["dates"])


def test_every_endpoint_of_the_definition_is_served(sim: Simulator) -> None:
    """No endpoint the pipeline may read is missing from the simulator."""
    sid = past_ids(sim)[-1]
    paths = {SESSIONS.name: ("videosdk/sessions", {"type": "past", "from": "2026-11-20", "to": "2026-11-20"}),
             SESSION_QOS.name: (f"videosdk/sessions/{enc(sid)}/users/qos", {"type": "past"}),
             SESSION_USERS.name: (f"videosdk/sessions/{enc(sid)}/users", {"type": "past"}),
             DAILY_USAGE.name: ("videosdk/report/daily", {"year": 2026, "month": 11}),
             published.WEBHOOK_LOGS.name: ("videosdk/report/webhook_logs", {"type": 1})}
    assert set(paths) == {e.name for e in published.ENDPOINTS}
    for endpoint in published.ENDPOINTS:
        path, params = paths[endpoint.name]
        r = get(sim, path, **params)
        assert r.status_code == 200 and response_problems(endpoint, r.json()) == [], endpoint.name


# ------------------------------------------------------ refused as published
def test_qos_page_size_limits(sim: Simulator) -> None:
    sid = rich_session(sim, DAYS[0])
    over = qos(sim, sid, page_size=11)
    assert over.status_code == 400 and over.json()["code"] == 300
    assert "page_size" in over.json()["message"] and "10" in over.json()["message"]
    default = qos(sim, sid).json()
    assert default["page_size"] == 1 and len(default["users"]) == 1 and default["next_page_token"]
    assert qos(sim, sid, page_size=10).json()["page_size"] == 10


@pytest.mark.parametrize("which", ["sessions", "users"])
def test_list_page_size_limits(sim: Simulator, which: str) -> None:
    sid = rich_session(sim, DAYS[0], minimum=4)
    path, extra = (("videosdk/sessions", {"from": "2026-11-20", "to": "2026-11-20"}) if which == "sessions"
                   else (f"videosdk/sessions/{enc(sid)}/users", {}))
    over = get(sim, path, type="past", page_size=301, **extra)
    assert over.status_code == 400 and over.json()["code"] == 300
    assert "page_size" in over.json()["message"] and "300" in over.json()["message"]
    assert get(sim, path, type="past", page_size=300, **extra).json()["page_size"] == 300
    assert get(sim, path, type="past", **extra).json()["page_size"] == 30  # the published default


CASES: list[tuple[str, dict[str, Any]]] = [
    ("qos", {"type": "past", "page_size": "0"}),
    ("qos", {"type": "past", "page_size": "ten"}),
    ("qos", {"type": "scheduled"}),
    ("qos", {"type": "past", "page_size": "10"}),
    ("qos", {"type": "past", "page_size": ""}),
    ("qos", {"type": "past", "from": "2026-11-01", "to": "2026-11-30"}),  # not parameters: ignored
    ("users", {"type": "past", "page_size": "-3"}),
    ("users", {"type": "past", "page_size": "299"}),
    ("sessions", {"type": "past", "from": "2026-11-20"}),
    ("sessions", {"type": "past", "from": "20261120", "to": "2026-11-20"}),
    ("sessions", {"type": "yesterday", "from": "2026-11-20", "to": "2026-11-20"}),
    ("sessions", {"type": "past", "from": "2026-11-20", "to": "2026-11-20", "colour": "blue"}),
    ("daily", {"year": "2026", "month": "13"}),
    ("daily", {"year": "twenty", "month": "11"}),
    ("daily", {"year": "2026", "month": "11", "page_size": "5"}),
]


@pytest.mark.parametrize(("which", "params"), CASES)
def test_refuses_exactly_what_the_definition_refuses(sim: Simulator, which: str,
                                                     params: dict[str, Any]) -> None:
    sid = past_ids(sim)[-1]
    endpoint, path = {"qos": (SESSION_QOS, f"videosdk/sessions/{enc(sid)}/users/qos"),
                      "users": (SESSION_USERS, f"videosdk/sessions/{enc(sid)}/users"),
                      "sessions": (SESSIONS, "videosdk/sessions"),
                      "daily": (DAILY_USAGE, "videosdk/report/daily")}[which]
    documented = {k: v for k, v in params.items() if k in endpoint.query}
    refused = bool(request_problems(endpoint, documented))
    r = get(sim, path, **params)
    assert (r.status_code, r.json().get("code")) == ((400, 300) if refused else (200, None)), r.text


def test_unknown_parameters_are_tolerated_but_flagged(sim: Simulator) -> None:
    sid = past_ids(sim)[-1]
    assert qos(sim, sid, future_param="x").status_code == 200
    assert request_problems(SESSION_QOS, {"type": "past", "future_param": "x"})  # what the hook's tests use


# ------------------------------------------------------------ session ids
def test_dataset_has_every_kind_of_id(sim: Simulator) -> None:
    ids = past_ids(sim)
    assert any(i.startswith("/") for i in ids) and any(i.startswith("+") for i in ids)
    assert any("//" in i and not i.startswith("/") for i in ids)
    assert any("/" in i and not needs_double_encoding(i) for i in ids)  # single "/" inside: encoded once


def _id_of_kind(sim: Simulator, kind: str) -> str:
    tests = {
        "leading slash": lambda i: i.startswith("/"),
        "leading plus": lambda i: i.startswith("+"),
        "double slash": lambda i: "//" in i and not i.startswith(("/", "+")),
        "inner slash": lambda i: "/" in i and not needs_double_encoding(i),
        "inner plus": lambda i: "+" in i and not needs_double_encoding(i),
    }
    return next(i for i in past_ids(sim) if tests[kind](i))


ID_KINDS = ["leading slash", "leading plus", "double slash", "inner slash", "inner plus"]


@pytest.mark.parametrize("kind", ID_KINDS)
@pytest.mark.parametrize("endpoint", ["qos", "users"])
def test_session_id_encoding_is_strict(sim: Simulator, kind: str, endpoint: str) -> None:
    sid = _id_of_kind(sim, kind)
    call, message = (qos, QOS_NOT_AVAILABLE) if endpoint == "qos" else (users, USERS_NOT_AVAILABLE)
    right = 2 if needs_double_encoding(sid) else 1
    assert call(sim, sid, times=right).status_code == 200
    wrong = call(sim, sid, times=3 - right)
    assert wrong.status_code == 404 and wrong.json() == {"code": 3001, "message": message}


@pytest.mark.parametrize("template", [
    "/v2/videosdk%2Fsessions%2F{id}%2Fusers%2Fqos?type=past",  # the whole path encoded
    "/v2/videosdk/sessions/{id}%252Fusers%252Fqos?type=past",  # the whole path encoded twice (JS SDK)
    "/v2/videosdk%252Fsessions%252F{id}%252Fusers?type=past",
    "/v2/videosdk/sessions/{id}/%75sers/qos?type=past",  # an encoded letter of a fixed name
    "/v2/videosdk/report%2Fdaily?year=2026&month=11",
    "/v2/videosdk%2Fsessions?type=past&from=2026-11-20&to=2026-11-20",
])
def test_over_encoded_paths_are_not_recognized(sim: Simulator, template: str) -> None:
    sid = _id_of_kind(sim, "leading slash")
    r = raw_get(sim, template.format(id=enc(sid, 2)))
    assert r.status_code == 404 and r.json() == {"code": 2300, "message": NOT_RECOGNIZED_MESSAGE}
    assert sim.stats()["by_endpoint"].get("other") == 1


def test_decode_session_segment() -> None:
    assert decode_session_segment("%252Babc%253D") == "+abc="
    assert decode_session_segment("%2Babc") is None and decode_session_segment("+abc") is None
    assert decode_session_segment("ab%2Bcd%3D") == "ab+cd=" and decode_session_segment("ab+cd") == "ab+cd"
    assert decode_session_segment("sfk%252FaOFJ%253D%253D") is None  # a plain id, over-encoded
    assert decode_session_segment("ab%252F%252Fc") == "ab//c" and decode_session_segment("ab//c") is None
    assert decode_session_segment("plainAZ09") == "plainAZ09"



@pytest.mark.parametrize("fault", [
    {"not_ready_sessions": "SID"}, {"invalid_sessions": "SID"}, {"too_old_sessions": "SID"},
    {"gone_sessions": "SID"}, {"not_videosdk_account": True},
])
@pytest.mark.parametrize("endpoint", [published.SESSION_QOS, published.SESSION_USERS])
def test_each_error_the_simulator_answers_is_one_the_definition_documents(
        sim: Simulator, fault: dict[str, Any], endpoint: published.Endpoint) -> None:
    from include.zoom_simulator import Faults

    session_id = past_ids(sim)[0]
    name, value = next(iter(fault.items()))
    value = {session_id: 10**6} if name == "not_ready_sessions" else [session_id] if value == "SID" else value
    sim.set_faults(Faults.from_dict({name: value}))
    answer = (qos if endpoint is published.SESSION_QOS else users)(sim, session_id)
    assert answer.status_code >= 400
    assert (answer.status_code, answer.json()["code"]) in endpoint.errors, answer.text
