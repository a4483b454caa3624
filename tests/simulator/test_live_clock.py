"""Live sessions: the simulated clock, the scripted live scenarios and ``type`` on every endpoint.

Every test drives the clock explicitly (``Simulator.advance`` / ``set_now``, or ``POST /_sim/clock``)
on a simulator of its own, so nothing sleeps and the shared module simulator stays at NOW.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from include.zoom_simulator import Dataset, Simulator
from include.zoom_simulator.dataset import AUDIO_BLOCKS, POOR_LIMITS, VIDEO_BLOCKS, iso
from tests.simulator.simhelpers import NOW, enc, get, make_simulator

TODAY, YESTERDAY = NOW.date().isoformat(), (NOW.date() - timedelta(days=1)).isoformat()
SPAN = {"from": YESTERDAY, "to": TODAY}  # what the product's live poll asks for


@pytest.fixture(scope="module")
def _live_sim() -> Iterator[Simulator]:
    s = make_simulator().start()
    yield s
    s.stop()


@pytest.fixture
def live_sim(_live_sim: Simulator) -> Simulator:
    """This module's own simulator (frozen clock), put back at NOW for each test that moves it.
    Going back is safe: nothing the dataset caches depends on the clock."""
    _live_sim.set_now(NOW)
    _live_sim.reset()
    return _live_sim


def scenario(sim: Simulator, kind: str) -> dict[str, Any]:
    return next(s for s in sim.dataset.live_scenarios() if s["kind"] == kind)


def role_id(sc: dict[str, Any], role: str) -> str:
    return next(u["user_id"] for u in sc["users"] if u["role"] == role)


def joins(sim: Simulator, sid: str, endpoint: str = "users/qos", **params: Any) -> requests.Response:
    """One page of a session's joins (``type`` left out unless given: the default must be live)."""
    params.setdefault("page_size", 10 if endpoint == "users/qos" else 300)
    return get(sim, f"videosdk/sessions/{enc(sid)}/{endpoint}", **params)


def live_users(sim: Simulator, sid: str, endpoint: str = "users/qos") -> list[dict[str, Any]]:
    r = joins(sim, sid, endpoint, type="live")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_page_token"] == ""  # scenarios are small: one page holds every join
    return body["users"]


def listed(sim: Simulator, kind: str, **span: str) -> list[dict[str, Any]]:
    r = get(sim, "videosdk/sessions", type=kind, page_size=300, **(span or SPAN))
    assert r.status_code == 200, r.text
    assert r.json()["next_page_token"] == ""
    return r.json()["sessions"]


def assert_not_available(r: requests.Response) -> None:
    assert r.status_code == 404 and r.json()["code"] == 3001, r.text


# ------------------------------------------------------------------ helpers of the monitor
_METRICS = (("latency", "latency_ms"), ("jitter", "jitter_ms"), ("avg_loss", "avg_loss_pct"))


def _number(value: Any) -> float | None:
    """A rendered metric in ms or % ("0.2 s" counts as 200 ms); None for what cannot be read."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?(ms|s|%)", value if isinstance(value, str) else "")
    return None if m is None else float(m[1]) * (1000.0 if m[2] == "s" else 1.0)


def poor_share(users: list[dict[str, Any]], user_id: str | None = None,
               since: datetime | None = None) -> float:
    """Share of readable audio/video stream samples beyond Zoom's guidance (``POOR_LIMITS``)."""
    flags: list[bool] = []
    for user in users:
        if user_id is not None and user["id"] != user_id:
            continue
        for sample in user["user_qos"]:
            if since is not None and sample["date_time"] <= iso(since):
                continue
            for name in AUDIO_BLOCKS + VIDEO_BLOCKS:
                block = sample.get(name) or {}
                readings = [(_number(block.get(k)), POOR_LIMITS[limit]) for k, limit in _METRICS]
                if all(value is None for value, _ in readings):
                    continue
                flags.append(any(value is not None and value > limit for value, limit in readings))
    assert flags, "no readable samples"
    return sum(flags) / len(flags)


# ------------------------------------------------------------------------- the clock
def test_samples_grow_between_two_reads(live_sim: Simulator) -> None:
    churn = scenario(live_sim, "churn")
    host = role_id(churn, "host")
    before = {u["id"]: len(u["user_qos"]) for u in live_users(live_sim, churn["id"]) if u["id"] == host}
    assert live_sim.advance(180) == NOW + timedelta(minutes=3)
    after_users = live_users(live_sim, churn["id"])
    after = {u["id"]: len(u["user_qos"]) for u in after_users if u["id"] == host}
    assert before[host] >= 5 and after[host] == before[host] + 3
    assert all(s["date_time"] <= iso(live_sim.now) for u in after_users for s in u["user_qos"])
    # the running duration grows too; end_time stays null while live
    row = next(s for s in listed(live_sim, "live") if s["id"] == churn["id"])
    ran = int((live_sim.now - churn["start"]).total_seconds())
    assert row["end_time"] is None and row["duration"] == f"00:{ran // 60:02d}:{ran % 60:02d}"


def test_clock_speed_runs_the_clock_and_zero_freezes_it() -> None:
    frozen = Dataset(42, NOW)
    fast = Dataset(42, NOW, clock_speed=3600.0)  # an hour a second
    time.sleep(0.05)
    assert frozen.now == NOW
    assert NOW + timedelta(seconds=60) <= fast.now <= NOW + timedelta(hours=1)
    assert fast.advance(0) >= NOW + timedelta(seconds=60)  # advance() adds to the running clock
    with pytest.raises(ValueError):
        Dataset(42, NOW, clock_speed=-1)
    with pytest.raises(ValueError):
        frozen.advance(-5)


def test_clock_control_endpoint(live_sim: Simulator) -> None:
    root = live_sim.base_url.removesuffix("/v2")
    assert requests.get(f"{root}/_sim/clock", timeout=10).json() == {
        "now": NOW.isoformat(), "clock_speed": 0.0, "anchor": NOW.isoformat()}
    r = requests.post(f"{root}/_sim/clock", json={"advance_seconds": 90}, timeout=10)
    assert r.status_code == 200 and r.json()["now"] == (NOW + timedelta(seconds=90)).isoformat()
    r = requests.post(f"{root}/_sim/clock", json={"now": "2026-11-26T13:00:00Z"}, timeout=10)
    assert r.json()["now"] == "2026-11-26T13:00:00+00:00" and live_sim.now == NOW + timedelta(hours=1)
    assert requests.get(f"{root}/_sim/health", timeout=10).json()["now"] == "2026-11-26T13:00:00+00:00"
    for bad in ({}, {"advance_seconds": -1}, {"advance_seconds": "x"}, {"now": "soon"},
                {"now": "2026-11-26T13:00:00Z", "advance_seconds": 1}):
        assert requests.post(f"{root}/_sim/clock", json=bad, timeout=10).status_code == 400


# ----------------------------------------------------------------------- scenarios
def test_scenarios_are_deterministic_and_configurable() -> None:
    a, b = Dataset(42, NOW).live_scenarios(), Dataset(42, NOW).live_scenarios()
    assert a == b and [s["kind"] for s in a] == ["churn", "degrading", "ending"]
    assert all(s["start"] < NOW < s["end"] for s in a)
    assert {s["id"] for s in a} != {s["id"] for s in Dataset(43, NOW).live_scenarios()}
    assert Dataset(42, NOW, live_scenarios=0).live_scenarios() == []
    five = Dataset(42, NOW, live_scenarios=5).live_scenarios()
    ends = [s["end"] for s in five if s["kind"] == "ending"]
    assert len(ends) == 3 and ends == sorted(ends) and ends[-1] < NOW + timedelta(minutes=12)
    # placed by the anchor, not by the clock: a later frozen dataset with the same anchor has them
    assert Dataset(42, NOW + timedelta(hours=3), anchor=NOW).live_scenarios() == a


def test_a_user_joins_mid_session_and_others_leave(live_sim: Simulator) -> None:
    churn = scenario(live_sim, "churn")
    late, early, back = (role_id(churn, r) for r in ("late_joiner", "early_leaver", "rejoiner"))
    qos_now = live_users(live_sim, churn["id"])
    members_now = live_users(live_sim, churn["id"], "users")
    assert late not in {u["id"] for u in qos_now} | {m["id"] for m in members_now}  # not there yet
    early_qos = next(u for u in qos_now if u["id"] == early)
    early_member = next(m for m in members_now if m["id"] == early)
    assert early_qos["leave_time"] is None and "leave_time" not in early_member  # still in
    assert all(u["join_time"] <= iso(NOW) for u in qos_now)

    live_sim.advance(5 * 60)  # A+5min: late_joiner joined at A+3, early_leaver left at A+4
    qos_later = live_users(live_sim, churn["id"])
    members_later = live_users(live_sim, churn["id"], "users")
    assert [u["id"] for u in qos_later] == [m["id"] for m in members_later]  # same joins, same order
    joined = next(u for u in qos_later if u["id"] == late)
    assert joined["join_time"] == iso(NOW + timedelta(minutes=3)) and joined["leave_time"] is None
    assert len(joined["user_qos"]) == 2  # A+4 and A+5
    left = iso(NOW + timedelta(minutes=4))
    assert next(u for u in qos_later if u["id"] == early)["leave_time"] == left
    assert next(m for m in members_later if m["id"] == early)["leave_time"] == left
    assert [u["leave_time"] for u in qos_later if u["id"] == back] == [iso(NOW + timedelta(minutes=2))]

    live_sim.advance(2 * 60)  # A+7min: the rejoiner is back, as a second join
    back_joins = [u for u in live_users(live_sim, churn["id"]) if u["id"] == back]
    assert [u["join_time"] for u in back_joins][1] == iso(NOW + timedelta(minutes=6))
    assert back_joins[1]["leave_time"] is None


def test_the_degrading_session_turns_poor_and_stays_poor(live_sim: Simulator) -> None:
    deg = scenario(live_sim, "degrading")
    victim, degrades_at = role_id(deg, "victim"), deg["degrades_at"]
    assert degrades_at == NOW + timedelta(minutes=5)
    shares, grades = [], []
    for minutes in (0, 10, 20, 35):
        live_sim.set_now(NOW + timedelta(minutes=minutes))
        shares.append(poor_share(live_users(live_sim, deg["id"])))
        grades.append(next(m["audio_quality"] for m in live_users(live_sim, deg["id"], "users")
                           if m["id"] == victim))
    assert shares[0] < 0.05 and shares == sorted(shares) and shares[-1] > 0.12, shares
    assert grades[0] == "good" and grades[-1] in ("poor", "bad"), grades
    # once ended (type=past), every five minutes of the victim after the drop are poor: no flapping
    live_sim.set_now(deg["end"])
    past = joins(live_sim, deg["id"], type="past").json()["users"]
    others = [u for u in past if u["id"] != victim]
    assert poor_share(others) < 0.05
    t = degrades_at
    while t + timedelta(minutes=5) <= deg["end"]:
        until = iso(t + timedelta(minutes=5))
        window = [{**u, "user_qos": [s for s in u["user_qos"] if s["date_time"] <= until]} for u in past]
        assert poor_share(window, victim, since=t) > 0.75
        t += timedelta(minutes=5)


def test_a_session_ends_between_two_polls(live_sim: Simulator) -> None:
    ending = scenario(live_sim, "ending")
    sid = ending["id"]
    assert NOW < ending["end"] < NOW + timedelta(minutes=5)
    # poll 1, at NOW: live everywhere, not past anywhere
    assert sid in {s["id"] for s in listed(live_sim, "live")}
    assert sid not in {s["id"] for s in listed(live_sim, "past")}
    assert live_users(live_sim, sid) and live_users(live_sim, sid, "users")
    assert_not_available(joins(live_sim, sid, type="past"))
    assert_not_available(joins(live_sim, sid, "users", type="past"))

    live_sim.advance(5 * 60)  # poll 2: it ended in between
    assert sid not in {s["id"] for s in listed(live_sim, "live")}
    assert_not_available(joins(live_sim, sid, type="live"))
    assert_not_available(joins(live_sim, sid, "users", type="live"))
    assert_not_available(joins(live_sim, sid))  # the default type is live
    row = next(s for s in listed(live_sim, "past") if s["id"] == sid)
    assert row["end_time"] == iso(ending["end"])
    past = joins(live_sim, sid, type="past").json()["users"]
    assert past and all(u["leave_time"] for u in past)

    # exactly what a frozen simulator at that later time (same anchor) serves, byte for byte
    with make_simulator(now=NOW + timedelta(minutes=5), live_anchor=NOW) as frozen:
        for path, params in ((f"videosdk/sessions/{enc(sid)}/users/qos", {"type": "past", "page_size": 10}),
                             (f"videosdk/sessions/{enc(sid)}/users", {"type": "past", "page_size": 300}),
                             ("videosdk/sessions", {"type": "past", "page_size": 300, **SPAN}),
                             ("videosdk/sessions", {"type": "live", "page_size": 300, **SPAN}),
                             ("videosdk/report/daily", {"year": 2026, "month": 11})):
            ours, theirs = get(live_sim, path, **params), get(frozen, path, **params)
            assert ours.status_code == theirs.status_code == 200, (path, ours.text)
            assert ours.content == theirs.content, path
        day = NOW.date()
        truth = frozen.dataset.expected_rows(day, day, with_grades=True)
        assert live_sim.dataset.expected_rows(day, day, with_grades=True) == truth
        assert sid in {r["session_id"] for r in truth["sessions"]}


def test_type_defaults_to_live_on_every_endpoint(sim: Simulator) -> None:
    live_ids = {s.id for s in sim.dataset.live_sessions()}
    assert {s["id"] for s in get(sim, "videosdk/sessions", **SPAN).json()["sessions"]} == live_ids
    churn = scenario(sim, "churn")["id"]
    past = sim.dataset.past_sessions(NOW.date() - timedelta(days=3), NOW.date())[0].id
    for endpoint in ("users/qos", "users"):
        assert get(sim, f"videosdk/sessions/{enc(churn)}/{endpoint}").status_code == 200
        assert_not_available(get(sim, f"videosdk/sessions/{enc(past)}/{endpoint}"))
        assert_not_available(joins(sim, churn, endpoint, type="past"))
        assert joins(sim, past, endpoint, type="past").status_code == 200


def test_live_list_holds_the_sessions_in_progress_that_started_in_the_range(sim: Simulator) -> None:
    live = sim.dataset.live_sessions()
    assert {s["id"] for s in listed(sim, "live")} == {s.id for s in live}
    assert listed(sim, "live", **{"from": YESTERDAY, "to": YESTERDAY}) == []
    assert all(s["end_time"] is None for s in listed(sim, "live"))


def test_sessions_starting_later_appear_when_their_time_comes(live_sim: Simulator) -> None:
    later = Dataset(42, NOW + timedelta(hours=6), anchor=NOW)
    upcoming = [s for s in later.sessions_for_day(NOW.date()) if s["start_time"] > iso(NOW)]
    assert upcoming  # today's sessions after NOW exist, but not yet
    first = upcoming[0]
    assert first["id"] not in {s["id"] for s in live_sim.dataset.sessions_for_day(NOW.date())}
    assert_not_available(joins(live_sim, first["id"], type="live"))
    live_sim.set_now(datetime.fromisoformat(first["start_time"].replace("Z", "+00:00")))
    assert first["id"] in {s["id"] for s in listed(live_sim, "live")}
    assert joins(live_sim, first["id"], type="live").status_code == 200


def test_scenario_sessions_are_in_the_truth_once_past(live_sim: Simulator) -> None:
    ids = {s["id"] for s in live_sim.dataset.live_scenarios()}
    day = NOW.date()
    assert not ids & {r["session_id"] for r in live_sim.dataset.expected_rows(day, day)["sessions"]}
    live_sim.set_now(NOW + timedelta(hours=2))
    rows = live_sim.dataset.expected_rows(day, day)
    assert ids <= {r["session_id"] for r in rows["sessions"]}
    for sid in ids:
        served = joins(live_sim, sid, type="past").json()["users"]
        assert len([r for r in rows["session_users"] if r["session_id"] == sid]) == len(served)
        samples = {(u["id"], u["join_time"], s["date_time"]) for u in served for s in u["user_qos"]}
        stored = {(r["user_id"], iso(r["join_time"]), iso(r["sampled_at"]))
                  for r in rows["user_qos"] if r["session_id"] == sid}
        assert stored == samples
    counts = live_sim.dataset.daily_counts(day, day)[day]
    assert counts["sessions"] == len(rows["sessions"])


def test_a_running_clock_serves_growing_data() -> None:
    """clock_speed > 0 without any explicit move: a few tenths of a second are minutes of samples."""
    with make_simulator(clock_speed=1200.0) as fast:  # 20 simulated minutes per second
        churn = scenario(fast, "churn")["id"]
        first = sum(len(u["user_qos"]) for u in live_users(fast, churn))
        time.sleep(0.3)  # >= 6 simulated minutes
        second = sum(len(u["user_qos"]) for u in live_users(fast, churn))
        assert second > first
        assert fast.now > datetime(2026, 11, 26, 12, 5, tzinfo=UTC)
