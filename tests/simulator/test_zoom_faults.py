"""The fault switches that play Zoom's documented refusals: a session not ready yet (3001), too
old (12702), invalid (300), gone (3001), an account that is not a Video SDK account (200), an app
without the scope (403), and a daily report whose count differs from the warehouse."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from include.zoom_simulator import ENDPOINT_NAMES, Faults, Simulator
from include.zoom_simulator.server import (
    FORBIDDEN_CODE,
    INVALID_SESSION,
    NOT_VIDEO_SDK_MESSAGE,
    QOS_NOT_AVAILABLE,
    TOO_OLD_MESSAGE,
    USERS_NOT_AVAILABLE,
)
from tests.simulator.simhelpers import NOW, get, qos, users

DAY = date(2026, 11, 20)






def ids(sim: Simulator, n: int = 3) -> list[str]:
    return [s.id for s in sim.dataset.past_sessions(DAY, DAY)][:n]


def answer(r: requests.Response) -> tuple[int, int | None, str | None]:
    body = r.json()
    return r.status_code, body.get("code"), body.get("message")


def every_endpoint(sim: Simulator, sid: str) -> dict[str, requests.Response]:
    return {
        "list_sessions": get(sim, "videosdk/sessions", type="past", **{"from": "2026-11-20",
                                                                        "to": "2026-11-20"}),
        "user_qos": qos(sim, sid),
        "session_users": users(sim, sid),
        "daily_report": get(sim, "videosdk/report/daily", year=2026, month=11),
        "webhook_logs": get(sim, "videosdk/report/webhook_logs"),
    }


# ---------------------------------------------------------------- not ready
def test_not_ready_sessions_counts_qos_and_users_requests(sim: Simulator) -> None:
    late, other = ids(sim, 2)
    sim.set_faults(Faults(not_ready_sessions={late: 3}))
    assert answer(qos(sim, late)) == (404, 3001, QOS_NOT_AVAILABLE)
    assert answer(users(sim, late)) == (404, 3001, USERS_NOT_AVAILABLE)
    assert qos(sim, other).status_code == 200  # only the named session waits
    assert answer(qos(sim, late)) == (404, 3001, QOS_NOT_AVAILABLE)
    assert qos(sim, late).status_code == 200 and users(sim, late).status_code == 200  # now served
    listed = get(sim, "videosdk/sessions", type="past", **{"from": "2026-11-20", "to": "2026-11-20"}).json()
    assert late in {s["id"] for s in listed["sessions"]}  # listed all along
    sim.set_faults(Faults(not_ready_sessions={late: 1}))  # counting restarts with new faults
    assert qos(sim, late).status_code == 404 and qos(sim, late).status_code == 200


def test_not_ready_sessions_never(sim: Simulator) -> None:
    late = ids(sim, 1)[0]
    sim.set_faults(Faults(not_ready_sessions={late: 10**9}))
    assert all(qos(sim, late).status_code == 404 for _ in range(5))


def test_not_ready_until(sim: Simulator) -> None:
    late, ready = ids(sim, 2)
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat().replace("+00:00", "Z")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    sim.set_faults(Faults(not_ready_until={late: soon, ready: past}))
    assert answer(qos(sim, late)) == (404, 3001, QOS_NOT_AVAILABLE)
    assert answer(users(sim, late)) == (404, 3001, USERS_NOT_AVAILABLE)
    assert qos(sim, ready).status_code == 200
    time.sleep(1.7)
    assert qos(sim, late).status_code == 200 and users(sim, late).status_code == 200


# ------------------------------------------------------- other session faults
@pytest.mark.parametrize("endpoint", ["qos", "users"])
def test_too_old_invalid_and_gone_sessions(sim: Simulator, endpoint: str) -> None:
    old, invalid, gone = ids(sim, 3)
    sim.set_faults(Faults(too_old_sessions=[old], invalid_sessions=[invalid], gone_sessions=[gone]))
    call, not_found = (qos, QOS_NOT_AVAILABLE) if endpoint == "qos" else (users, USERS_NOT_AVAILABLE)
    assert answer(call(sim, old)) == (400, 12702, TOO_OLD_MESSAGE)
    assert answer(call(sim, invalid)) == (400, 300, INVALID_SESSION)
    assert answer(call(sim, gone)) == (404, 3001, not_found)
    sim.set_faults(Faults())
    assert all(call(sim, sid).status_code == 200 for sid in (old, invalid, gone))


# ------------------------------------------------------- account and scopes
def test_not_videosdk_account(sim: Simulator) -> None:
    sim.set_faults(Faults(not_videosdk_account=True))
    answers = {name: answer(r) for name, r in every_endpoint(sim, ids(sim, 1)[0]).items()}
    assert answers == dict.fromkeys(ENDPOINT_NAMES, (400, 200, NOT_VIDEO_SDK_MESSAGE))
    assert sim.stats()["by_endpoint"] == dict.fromkeys(ENDPOINT_NAMES, 1)


def test_forbidden_endpoints(sim: Simulator) -> None:
    sim.set_faults(Faults(forbidden_endpoints=["session_users", "daily_report"]))
    statuses = every_endpoint(sim, ids(sim, 1)[0])
    assert {name: r.status_code for name, r in statuses.items()} == {
        "list_sessions": 200, "user_qos": 200, "session_users": 403, "daily_report": 403, "webhook_logs": 200}
    body = statuses["session_users"].json()
    assert body["code"] == FORBIDDEN_CODE and "scope" in body["message"] and "/users" in body["message"]
    assert "report/daily" in statuses["daily_report"].json()["message"]


# ------------------------------------------------------------ daily offsets
def test_daily_report_offsets(sim: Simulator) -> None:
    plain = {d["date"]: d for d in get(sim, "videosdk/report/daily", year=2026, month=11).json()["dates"]}
    sim.set_faults(Faults(daily_report_offsets={"2026-11-20": 5, "2026-11-21": -1000, "2027-01-01": 3}))
    shifted = {d["date"]: d for d in get(sim, "videosdk/report/daily", year=2026, month=11).json()["dates"]}
    assert shifted["2026-11-20"]["sessions"] == plain["2026-11-20"]["sessions"] + 5
    assert shifted["2026-11-21"]["sessions"] == 0  # never negative
    assert shifted["2026-11-20"]["users"] == plain["2026-11-20"]["users"]  # only `sessions` moves
    untouched = set(plain) - {"2026-11-20", "2026-11-21"}
    assert untouched and all(shifted[d] == plain[d] for d in untouched)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("faults", [
    {"not_ready_sessions": {"x": -1}},
    {"not_ready_sessions": {"x": "2"}},
    {"not_ready_sessions": ["x"]},
    {"not_ready_until": {"x": "tomorrow"}},
    {"not_ready_until": {"x": 5}},
    {"too_old_sessions": "x"},
    {"forbidden_endpoints": ["user_qos", "nope"]},
    {"daily_report_offsets": {"2026-13-01": 1}},
    {"daily_report_offsets": {"20261101": 1}},
    {"daily_report_offsets": {"2026-11-01": 1.5}},
    {"not_videosdk_account": "yes"},
])
def test_new_faults_are_validated(sim: Simulator, faults: dict[str, object]) -> None:
    root = sim.base_url.removesuffix("/v2")
    r = requests.post(f"{root}/_sim/faults", json=faults, timeout=10)
    assert r.status_code == 400 and next(iter(faults)) in r.json()["message"]
    assert sim.faults == Faults()


def test_new_faults_round_trip_through_control_routes(sim: Simulator) -> None:
    root = sim.base_url.removesuffix("/v2")
    faults = {"not_ready_sessions": {"a": 2}, "not_ready_until": {"b": NOW.isoformat()},
              "too_old_sessions": ["c"], "not_videosdk_account": True, "forbidden_endpoints": ["user_qos"],
              "daily_report_offsets": {"2026-11-20": -2}}
    assert requests.post(f"{root}/_sim/faults", json=faults, timeout=10).status_code == 200
    shown = requests.get(f"{root}/_sim/faults", timeout=10).json()
    assert {k: shown[k] for k in faults} == faults
    assert sim.faults.not_ready_sessions == {"a": 2}
