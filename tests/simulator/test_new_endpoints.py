"""The session users list (``GET .../users``) and the daily usage report (``GET /report/daily``):
their joins and counts must agree with what the other endpoints serve, or a completeness check
built on them would prove nothing."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from include.zoom_simulator import Simulator
from include.zoom_simulator.dataset import AUDIO_BLOCKS, is_poor
from include.zoom_simulator.server import DAILY_RANGE_MESSAGE
from tests.simulator.simhelpers import NOW, crawl, enc, get, make_simulator, qos, users
from zoom_qos.zoom.published import SESSION_QOS, SESSION_USERS, SESSIONS


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def sessions_of(sim: Simulator, lo: date, hi: date) -> list[str]:
    return [s.id for s in sim.dataset.past_sessions(lo, hi)]


# ------------------------------------------------------------------ users list
def test_users_joins_match_qos_joins(sim: Simulator) -> None:
    checked, rejoins = 0, 0
    for sid in sessions_of(sim, date(2026, 11, 18), date(2026, 11, 19)):
        base = f"videosdk/sessions/{enc(sid)}"
        joins = crawl(sim, SESSION_USERS, f"{base}/users", type="past", page_size=4)
        qos_joins = crawl(sim, SESSION_QOS, f"{base}/users/qos", type="past", page_size=10)
        assert [(u["id"], u["join_time"]) for u in joins] == [(u["id"], u["join_time"]) for u in qos_joins]
        identity = set(SESSION_QOS.item_fields) - {"user_qos"}
        assert all({k: a.get(k) for k in identity} == {k: b.get(k) for k in identity}
                   for a, b in zip(joins, qos_joins, strict=True))
        ids = [u["id"] for u in joins]
        rejoins += len(ids) - len(set(ids))
        for uid in set(ids):
            uuids = {u["participant_uuid"] for u in joins if u["id"] == uid}
            assert len(uuids) == 1  # one participant, however often they join
        checked += len(joins)
    assert checked > 100 and rejoins > 0


def test_users_fields(sim: Simulator) -> None:
    members = [u for sid in sessions_of(sim, date(2026, 11, 1), date(2026, 11, 10))
               for u in sim.dataset.participants_for_session(sid)]
    uuid_form = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")
    assert all(uuid_form.fullmatch(u["participant_uuid"]) for u in members)
    phones = [u for u in members if u["device"] == "Phone"]
    assert phones and all(len(u["audio_call"]) == 1 for u in phones)
    assert all(u["audio_call"][0]["call_type"] in ("call-in", "call-out") for u in phones)
    assert all(u["audio_call"] == [] for u in members if u["device"] != "Phone")
    assert all("user_qos" not in u for u in members)


def test_grades_follow_the_joins_qos(sim: Simulator) -> None:
    """A join with mostly poor audio samples grades poor or bad; a clean one good or fair."""
    lo, hi = date(2026, 11, 1), date(2026, 11, 14)
    rows = sim.dataset.expected_rows(lo, hi, with_grades=True)
    shares: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows["user_qos"]:
        if r["stream"] in AUDIO_BLOCKS and None not in (r["latency_ms"], r["jitter_ms"], r["avg_loss_pct"]):
            acc = shares[(r["session_id"], r["user_id"], r["join_time"])]
            acc[0] += is_poor(r["latency_ms"], r["jitter_ms"], r["avg_loss_pct"])
            acc[1] += 1
    grade = {(r["session_id"], r["user_id"], r["join_time"]): r["audio_quality"]
             for r in rows["session_users"]}
    bad = [grade[k] for k, (p, n) in shares.items() if n >= 20 and p / n > 0.7]
    clean = [grade[k] for k, (p, n) in shares.items() if n >= 20 and p / n < 0.03]
    assert len(bad) > 10 and set(bad) <= {"poor", "bad"}
    assert len(clean) > 100 and set(clean) <= {"good", "fair"}
    assert sum(g == "good" for g in grade.values()) > len(grade) / 2  # most joins are fine


def test_users_of_a_live_session_have_no_leave_time_until_they_leave(sim: Simulator) -> None:
    live = sim.dataset.live_sessions()[0].id
    members = users(sim, live, type="live", page_size=300).json()["users"]
    assert members
    still_in = [u for u in members if "leave_time" not in u]
    assert still_in and all(ts(u["join_time"]) <= NOW for u in members)
    assert all(ts(u["leave_time"]) <= NOW for u in members if "leave_time" in u)
    assert users(sim, live, type="").status_code == 200  # type defaults to live
    assert users(sim, live, type="past").status_code == 404


def test_users_page_tokens_are_bound_to_their_list(sim: Simulator) -> None:
    sid = next(s for s in sessions_of(sim, date(2026, 11, 10), date(2026, 11, 20))
               if len(sim.dataset.participants_for_session(s)) > 3)
    qos_token = qos(sim, sid, page_size=1).json()["next_page_token"]
    r = users(sim, sid, page_size=1, next_page_token=qos_token)
    assert r.status_code == 400 and r.json()["code"] == 300
    users_token = users(sim, sid, page_size=1).json()["next_page_token"]
    assert users(sim, sid, page_size=1, next_page_token=users_token).status_code == 200


def test_stats_count_the_new_endpoints(sim: Simulator) -> None:
    sid = sessions_of(sim, date(2026, 11, 20), date(2026, 11, 20))[0]
    users(sim, sid)
    users(sim, sid)
    get(sim, "videosdk/report/daily", year=2026, month=11)
    assert sim.stats()["by_endpoint"] == {"list_sessions": 0, "user_qos": 0, "session_users": 2,
                                          "daily_report": 1, "webhook_logs": 0}


def test_new_endpoints_are_heavy() -> None:
    with make_simulator(enforce_rate_limits=True, heavy_rate_per_second=2) as s:
        sid = s.dataset.past_sessions(date(2026, 11, 20), date(2026, 11, 20))[0].id
        answers = [users(s, sid), get(s, "videosdk/report/daily", year=2026, month=11), users(s, sid)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert answers[2].headers["X-RateLimit-Category"] == "Heavy"


# ----------------------------------------------------------------- daily report
def test_daily_report_agrees_with_the_listed_sessions(sim: Simulator) -> None:
    report = get(sim, "videosdk/report/daily", year=2026, month=10).json()
    assert [d["date"] for d in report["dates"]] == [f"2026-10-{n:02d}" for n in range(1, 32)]
    for entry in report["dates"]:
        day = entry["date"]
        listed = crawl(sim, SESSIONS, "videosdk/sessions", type="past", page_size=300,
                       **{"from": day, "to": day})
        minutes = sum(int((ts(s["end_time"]) - ts(s["start_time"])).total_seconds()) // 60 for s in listed)
        assert entry == {"date": day, "sessions": len(listed), "users": sum(s["user_count"] for s in listed),
                         "session_minutes": minutes}
    assert sum(d["sessions"] for d in report["dates"]) > 100


def test_daily_report_days_covered(sim: Simulator) -> None:
    this_month = get(sim, "videosdk/report/daily", year=2026, month=11).json()["dates"]
    assert this_month[0]["date"] == "2026-11-01" and this_month[-1]["date"] == NOW.date().isoformat()
    first = sim.dataset.first_day
    oldest = get(sim, "videosdk/report/daily", year=first.year, month=first.month).json()["dates"]
    assert oldest[0]["date"] == first.isoformat()  # days before the six-month history: left out
    assert {d["date"]: {k: v for k, v in d.items() if k != "date"} for d in this_month} == {
        k.isoformat(): v for k, v in sim.dataset.daily_counts(date(2026, 11, 1), date(2026, 11, 30)).items()}


@pytest.mark.parametrize("params", [
    {"year": 2026, "month": 4},  # wholly before the six months
    {"year": 2026, "month": 12},  # wholly in the future
    {"year": 1, "month": 1},
])
def test_daily_report_outside_six_months(sim: Simulator, params: dict[str, int]) -> None:
    r = get(sim, "videosdk/report/daily", **params)
    assert r.status_code == 400 and r.json() == {"code": 300, "message": DAILY_RANGE_MESSAGE}


@pytest.mark.parametrize("params", [{}, {"year": 2026}, {"month": 11}, {"year": 2026, "month": 0},
                                    {"year": "2026", "month": "Nov"}])
def test_daily_report_needs_year_and_month(sim: Simulator, params: dict[str, Any]) -> None:
    r = get(sim, "videosdk/report/daily", **params)
    assert r.status_code == 400 and r.json()["code"] == 300
    assert re.search(r"year|month", r.json()["message"])


def test_daily_counts_skip_live_sessions(sim: Simulator) -> None:
    today = NOW.date()
    counts = sim.dataset.daily_counts(today - timedelta(days=1), today)
    started_today = sim.dataset.sessions_for_day(today)
    assert counts[today]["sessions"] == sum(1 for s in started_today if s["end_time"]) < len(started_today)
