"""The scripted past sessions with known call-quality causes (``quality_scenarios``, issue #20), and the
reference implementation of the contract's scoring rules (``tests/quality_reference.py``) they are
checked with.

Everything runs at the fixed ``simhelpers.NOW`` (never today's data), so it holds on any date.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from include.zoom_simulator import Dataset, Simulator
from include.zoom_simulator.__main__ import _parse_args
from include.zoom_simulator.config import SimulatorConfig
from include.zoom_simulator.dataset import QUALITY_KINDS, QUALITY_MINUTES
from tests import quality_reference as ref
from tests.simulator.simhelpers import NOW, crawl, enc, make_simulator, users
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.transform.rows import user_rows
from zoom_qos.zoom.published import SESSION_QOS

VERDICT = ("user_id", "join_time", "media_type", "cause", "cause_user_id", "issues")
DAY = NOW.date() - timedelta(days=1)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(42, NOW, quality_scenarios=True)


@pytest.fixture(scope="module")
def scenarios(ds: Dataset) -> dict[str, dict[str, Any]]:
    return {s["kind"]: s for s in ds.quality_scenarios()}


@pytest.fixture(scope="module")
def truth(ds: Dataset) -> dict[str, list[dict[str, Any]]]:
    return ds.expected_rows(DAY, DAY)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """This module's simulator (the conftest's ``clean`` resets it before each test)."""
    s = make_simulator(quality_scenarios=True).start()
    yield s
    s.stop()


def _of(rows: dict[str, list[dict[str, Any]]], session_id: str) -> dict[str, list[dict[str, Any]]]:
    return {table: [r for r in rows[table] if r["session_id"] == session_id] for table in rows}


def _verdicts(join_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = [{k: r[k] for k in VERDICT} for r in join_rows]
    return sorted(rows, key=lambda r: (r["join_time"], r["user_id"], r["media_type"]))


# ------------------------------------------------------------------------------ the scripted sessions
def test_six_scripted_past_sessions_on_the_day_before_the_anchor(
    ds: Dataset, scenarios: dict[str, dict[str, Any]]
) -> None:
    assert tuple(scenarios) == QUALITY_KINDS
    listed = {s["id"]: s for s in ds.sessions_for_day(DAY)}
    past = {s.id for s in ds.past_sessions(DAY, DAY)}
    for i, s in enumerate(scenarios.values()):
        assert s["start"] == datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9 + i)
        assert timedelta(minutes=20) <= s["end"] - s["start"] <= timedelta(minutes=22)
        assert s["end"] < NOW - timedelta(hours=9) and s["id"] in past
        assert listed[s["id"]]["session_name"].startswith("Scripted: ")
        assert listed[s["id"]]["end_time"] is not None
        assert ds.find_session(s["id"]) is not None
    # Distinct users everywhere, but the reconnector's two joins.
    joins = [(u["user_id"], s["kind"]) for s in scenarios.values() for u in s["users"]]
    assert len({uid for uid, _ in joins}) == len(joins) == 4 + 4 + 3 + 3 + 4 + 3
    assert [len(s["users"]) for s in scenarios.values()] == [4, 4, 3, 3, 4, 3]


def test_counted_in_the_daily_report(ds: Dataset, scenarios: dict[str, dict[str, Any]]) -> None:
    off = Dataset(42, NOW).daily_counts(DAY, DAY)[DAY]
    on = ds.daily_counts(DAY, DAY)[DAY]
    assert on == {
        "sessions": off["sessions"] + 6,
        "users": off["users"] + 21,
        "session_minutes": off["session_minutes"] + 6 * (QUALITY_MINUTES + 1),
    }


def test_every_join_has_a_clean_sample_every_minute(
    ds: Dataset, scenarios: dict[str, dict[str, Any]], truth: dict[str, list[dict[str, Any]]]
) -> None:
    for s in scenarios.values():
        rows = _of(truth, s["id"])
        assert len(rows["sessions"]) == 1
        for join in rows["session_users"]:
            key = (join["user_id"], join["join_time"])
            qos = [r for r in rows["user_qos"] if (r["user_id"], r["join_time"]) == key]
            system = [r for r in rows["user_system_qos"] if (r["user_id"], r["join_time"]) == key]
            times = sorted({r["sampled_at"] for r in qos})
            assert len(times) == int((join["leave_time"] - join["join_time"]).total_seconds()) // 60
            # one sample a minute, each inside its own minute, within the join
            assert [ref.minute(t) for t in times] == [
                ref.minute(times[0]) + timedelta(minutes=k) for k in range(len(times))
            ]
            assert join["join_time"] < times[0] and times[-1] <= join["leave_time"]
            assert sorted((r["sampled_at"], r["stream"]) for r in qos) == [
                (t, b) for t in times for b in ("audio_input", "audio_output", "video_input", "video_output")
            ]
            for r in qos:
                assert None not in (r["bitrate_kbps"], r["latency_ms"], r["jitter_ms"], r["avg_loss_pct"])
                video = r["stream"].startswith("video")
                assert (r["frame_rate_fps"] is not None) == (r["resolution_height"] is not None) == video
            assert sorted(r["sampled_at"] for r in system) == times
            wifi = join["network_type"] == "Wifi"
            for r in system:
                assert None not in (r["zoom_max_cpu_pct"], r["system_max_cpu_pct"], r["cpu_pressure_level"])
                assert (r["wifi_avg_rssi"] is not None) == wifi
            good = [r for r in qos if not ref.is_poor(r, ref.DEFAULT_THRESHOLDS)]
            bad = [r for r in qos if ref.is_poor(r, ref.DEFAULT_THRESHOLDS)]
            assert all(
                r["latency_ms"] <= 50 and r["jitter_ms"] <= 6 and r["avg_loss_pct"] <= 0.2 for r in good
            )
            assert all(
                r["latency_ms"] >= 300 and r["jitter_ms"] >= 60 and r["avg_loss_pct"] >= 7 for r in bad
            )


@pytest.mark.parametrize("kind", QUALITY_KINDS)
def test_the_contracts_rules_give_the_scripted_causes(
    kind: str, scenarios: dict[str, dict[str, Any]], truth: dict[str, list[dict[str, Any]]]
) -> None:
    s = scenarios[kind]
    rows = _of(truth, s["id"])
    got = ref.join_quality(rows["session_users"], rows["user_qos"], rows["user_system_qos"])
    assert _verdicts(got) == s["expected"]
    assert {(r["user_id"], r["join_time"]) for r in s["expected"]} == {
        (r["user_id"], r["join_time"]) for r in rows["session_users"]
    }
    assert all(r["score_version"] == 1 for r in got)


def test_the_expected_verdicts_are_the_scripts(scenarios: dict[str, dict[str, Any]]) -> None:
    """What the brief scripts, spelled out once more by role (so a wrong script cannot agree with
    a wrong reference)."""
    net = "high_latency,high_jitter,high_loss"

    def by_role(kind: str) -> dict[str, list[tuple[str, str | None, str, str]]]:
        s = scenarios[kind]
        roles = {u["user_id"]: u["role"] for u in s["users"]}
        out: dict[str, list[tuple[str, str | None, str, str]]] = {}
        for r in s["expected"]:
            named = roles.get(r["cause_user_id"]) if r["cause_user_id"] else None
            out.setdefault(roles[r["user_id"]], []).append((r["media_type"], named, r["cause"], r["issues"]))
        return {role: sorted(set(v)) for role, v in out.items()}

    assert by_role("broken_uplink") == {
        "sender": [("audio", None, "own_uplink", net), ("video", None, "own_uplink", net)],
        "host_listener": [
            ("audio", "sender", "remote_sender", net),
            ("video", "sender", "remote_sender", net),
        ],
        "listener": [("audio", "sender", "remote_sender", net), ("video", "sender", "remote_sender", net)],
    }
    assert by_role("bad_downlink") == {
        "victim": [("audio", None, "own_downlink", net), ("video", None, "own_downlink", net)],
        "participant": [("audio", None, "none", ""), ("video", None, "none", "")],
    }
    assert by_role("cpu_starved")["victim"] == [
        ("audio", None, "device_cpu", f"{net},cpu_pressure"),
        ("video", None, "device_cpu", f"{net},low_frame_rate,low_resolution,cpu_pressure"),
    ]
    assert by_role("weak_wifi")["victim"] == [
        ("audio", None, "weak_wifi", f"{net},weak_wifi"),
        ("video", None, "weak_wifi", f"{net},weak_wifi"),
    ]
    assert by_role("session_outage") == {
        "participant": [("audio", None, "session_wide", net), ("video", None, "session_wide", net)]
    }
    reconnect = scenarios["reconnect"]
    again = next(u["user_id"] for u in reconnect["users"] if u["role"] == "reconnector")
    mine = [r for r in reconnect["expected"] if r["user_id"] == again]
    assert [(r["media_type"], r["issues"]) for r in mine] == [
        ("audio", "reconnected"),
        ("video", "reconnected"),
        ("audio", ""),
        ("video", ""),
    ]
    first, second = sorted({r["join_time"] for r in mine})
    assert timedelta(seconds=30) <= second - first <= timedelta(minutes=10)
    assert all(r["cause"] == "none" for r in reconnect["expected"])


def test_served_as_zoom_publishes_and_parsed_to_the_truth(
    sim: Simulator, scenarios: dict[str, dict[str, Any]], truth: dict[str, list[dict[str, Any]]]
) -> None:
    for s in scenarios.values():
        problems: list[str] = []
        served = crawl(
            sim,
            SESSION_QOS,
            f"videosdk/sessions/{enc(s['id'])}/users/qos",
            problems,
            type="past",
            page_size=10,
        )
        assert problems == []
        issues = ParseIssues()
        parsed = [user_rows(s["id"], user, issues) for user in served]
        assert issues.total == 0, issues.as_dict()
        rows = _of(truth, s["id"])
        qos = [r for p in parsed if p is not None for r in p.qos]
        system = [r for p in parsed if p is not None for r in p.system]
        assert sorted(qos, key=_order) == sorted(rows["user_qos"], key=_order)
        assert sorted(system, key=_order) == sorted(rows["user_system_qos"], key=_order)
        joins = [p.session_user for p in parsed if p is not None]
        for block in (b for u in served for sample in u["user_qos"] for b in sample.values()):
            assert not isinstance(block, dict) or all(isinstance(v, str | int) for v in block.values())
        got = ref.join_quality(joins, qos, system)
        assert _verdicts(got) == s["expected"]
        members = users(sim, s["id"], page_size=300)
        assert members.status_code == 200
        assert [m["id"] for m in members.json()["users"]] == [u["id"] for u in served]


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["user_id"], row["join_time"], row["sampled_at"], row.get("stream", "")


def test_the_control_endpoint_lists_them(sim: Simulator, scenarios: dict[str, dict[str, Any]]) -> None:
    root = sim.base_url.removesuffix("/v2")
    body = requests.get(f"{root}/_sim/quality_scenarios", timeout=10).json()
    listed = body["quality_scenarios"]
    assert [s["kind"] for s in listed] == list(QUALITY_KINDS)
    for got, want in zip(listed, scenarios.values(), strict=True):
        assert got["id"] == want["id"] and datetime.fromisoformat(got["start"]) == want["start"]
        assert [{**r, "join_time": datetime.fromisoformat(r["join_time"])} for r in got["expected"]] == want[
            "expected"
        ]


# ------------------------------------------------------------------------------------------- the switch
def test_off_by_default_everywhere() -> None:
    assert SimulatorConfig().quality_scenarios is False
    assert _parse_args([]).quality_scenarios is False
    assert _parse_args(["--quality-scenarios"]).quality_scenarios is True
    assert Dataset(42, NOW).quality_scenarios() == []
    assert make_simulator().dataset.quality_scenarios() == []
    assert not any(s["session_name"].startswith("Scripted") for s in Dataset(42, NOW).sessions_for_day(DAY))


def test_the_switch_leaves_every_other_session_as_it_was(
    ds: Dataset, scenarios: dict[str, dict[str, Any]]
) -> None:
    off = Dataset(42, NOW)
    scripted = {s["id"] for s in scenarios.values()}
    assert off.days() == ds.days()
    for day in off.days():
        regular = [s for s in ds.sessions_for_day(day) if s["id"] not in scripted]
        assert json.dumps(regular) == json.dumps(off.sessions_for_day(day)), day
    for s in off.sessions_for_day(DAY):
        assert json.dumps(ds.users_for_session(s["id"])) == json.dumps(off.users_for_session(s["id"]))
        assert json.dumps(ds.participants_for_session(s["id"])) == json.dumps(
            off.participants_for_session(s["id"])
        )
    on_rows, off_rows = (
        ds.expected_rows(DAY, DAY, with_grades=True),
        off.expected_rows(DAY, DAY, with_grades=True),
    )
    for table, rows in off_rows.items():
        assert [r for r in on_rows[table] if r["session_id"] not in scripted] == rows
    assert ds.live_scenarios() == off.live_scenarios()


def test_placed_by_the_anchor_not_the_clock(scenarios: dict[str, dict[str, Any]]) -> None:
    later = Dataset(42, NOW + timedelta(hours=30), anchor=NOW, quality_scenarios=True)
    assert later.quality_scenarios() == list(scenarios.values())
    assert Dataset(42, NOW, quality_scenarios=True).quality_scenarios() == list(scenarios.values())
    other = Dataset(43, NOW, quality_scenarios=True).quality_scenarios()
    assert {s["id"] for s in other}.isdisjoint(s["id"] for s in scenarios.values())


# ------------------------------------------------------------------------- the reference, by hand
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NET = "high_latency,high_jitter,high_loss"


class Call:
    """A hand-built session: joins, and a sample a minute per join (good unless told otherwise)."""

    def __init__(self, session_id: str = "s1") -> None:
        self.session_id = session_id
        self.joins: list[dict[str, Any]] = []
        self.qos: list[dict[str, Any]] = []
        self.system: list[dict[str, Any]] = []

    def join(
        self, user: str, minutes: int = 10, at: int = 5, leave_after: int | None = None
    ) -> dict[str, Any]:
        row = {
            "session_id": self.session_id,
            "user_id": user,
            "join_time": T0 + timedelta(seconds=at),
            "leave_time": T0 + timedelta(seconds=at + (leave_after or minutes * 60 + 10)),
        }
        self.joins.append(row)
        return row

    def sample(self, join: dict[str, Any], m: int, stream: str, bad: bool = False, **values: Any) -> None:
        good = {"latency_ms": 40.0, "jitter_ms": 4.0, "avg_loss_pct": 0.1}
        poor = {"latency_ms": 320.0, "jitter_ms": 70.0, "avg_loss_pct": 8.0}
        video = (
            {"frame_rate_fps": 25.0, "resolution_height": 720} if stream.startswith(("video", "as_")) else {}
        )
        key = {k: join[k] for k in ("session_id", "user_id", "join_time")}
        at = T0 + timedelta(minutes=m, seconds=10)
        self.qos.append(
            {
                **key,
                "sampled_at": at,
                "stream": stream,
                "frame_rate_fps": None,
                "resolution_height": None,
                **(poor if bad else good),
                **video,
                **values,
            }
        )

    def sides(
        self,
        join: dict[str, Any],
        minutes: range,
        media: str = "audio",
        send_bad: range = range(0),
        receive_bad: range = range(0),
    ) -> None:
        for m in minutes:
            self.sample(join, m, f"{media}_input", m in send_bad)
            self.sample(join, m, f"{media}_output", m in receive_bad)

    def system_rows(self, join: dict[str, Any], minutes: range, **values: Any) -> None:
        key = {k: join[k] for k in ("session_id", "user_id", "join_time")}
        for m in minutes:
            row = {
                "zoom_max_cpu_pct": 30.0,
                "system_max_cpu_pct": 45.0,
                "cpu_pressure_level": "nominal",
                "wifi_avg_rssi": None,
                **values,
            }
            self.system.append({**key, "sampled_at": T0 + timedelta(minutes=m, seconds=20), **row})

    def score(self, thresholds: ref.Thresholds | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        rows = ref.join_quality(self.joins, self.qos, self.system, thresholds)
        return {(r["user_id"], r["media_type"]): r for r in rows}


M = range(1, 11)


def test_mos_formula_by_hand() -> None:
    r, score = ref.mos(0, 0, 0)  # d = 10 -> R = 93.2 - 0.25
    assert r == pytest.approx(92.95)
    assert score == pytest.approx(1 + 0.035 * 92.95 + 7e-6 * 92.95 * 32.95 * 7.05)
    assert score == pytest.approx(4.404394368375)
    r, score = ref.mos(40, 4, 0.1)  # d = 58 -> R = 93.2 - 1.45 - 0.25
    assert r == pytest.approx(91.5)
    assert score == pytest.approx(1 + 0.035 * 91.5 + 7e-6 * 91.5 * 31.5 * 8.5)
    # d = 159 is the first branch, d = 160 the second
    assert ref.mos(149, 0, 0)[0] == pytest.approx(93.2 - 159 / 40)
    r, score = ref.mos(150, 0, 0)
    assert r == pytest.approx(89.2)
    assert score == pytest.approx(4.318910784)
    assert ref.mos(300, 70, 8)[0] == pytest.approx(93.2 - (450 - 120) / 10 - 20)


def test_mos_clamps_and_propagates_none() -> None:
    assert ref.mos(5000, 0, 0) == (0.0, 1.0)  # R below 0 -> 0, MOS 1
    assert ref.mos(40, 4, 100) == (0.0, 1.0)
    assert ref.mos(0, 0, -10) == (100.0, 4.5)  # R above 100 -> 100, MOS 1 + 3.5
    for args in ((None, 4, 0.1), (40, None, 0.1), (40, 4, None), (None, None, None)):
        assert ref.mos(*args) == (None, None)
    assert all(1.0 <= ref.mos(lat, 10, 0.5)[1] <= 4.5 for lat in range(0, 2000, 37))  # type: ignore[operator]


def test_media_type_and_direction() -> None:
    cases = {
        "audio_input": ("audio", "send"),
        "audio_output": ("audio", "receive"),
        "video_device_to_rwg": ("video", "send"),
        "video_device_from_rwg": ("video", "receive"),
        "as_input": ("screen_share", "send"),
        "as_device_from_rwg": ("screen_share", "receive"),
        "audio_sharing_input": ("audio", "send"),
        "audio_sharing": ("audio", None),
        "telemetry_output": ("other", "receive"),
    }
    for stream, want in cases.items():
        assert (ref.media_type(stream), ref.direction(stream)) == want, stream


def test_good_calls_and_unrated_rows() -> None:
    call = Call()
    a = call.join("a")
    call.sides(a, M)
    call.sides(a, M, "video")
    for m in M:  # a screen-share block with no network figures: a row, nothing rated
        call.sample(a, m, "as_input", latency_ms=None, jitter_ms=None, avg_loss_pct=None)
        call.sample(a, m, "telemetry_output", bad=True)  # other: never scored
    rows = call.score()
    assert set(rows) == {("a", "audio"), ("a", "video"), ("a", "screen_share")}
    audio, share = rows[("a", "audio")], rows[("a", "screen_share")]
    assert (audio["cause"], audio["issues"], audio["send_samples"], audio["receive_samples"]) == (
        "none",
        "",
        10,
        10,
    )
    assert audio["send_poor_share"] == audio["receive_poor_share"] == 0
    assert audio["avg_mos_receive"] == pytest.approx(ref.mos(40, 4, 0.1)[1])
    assert audio["min_mos_receive"] == pytest.approx(ref.mos(40, 4, 0.1)[1])
    assert rows[("a", "video")]["avg_mos_send"] is None
    assert (share["send_samples"], share["send_poor_share"], share["receive_poor_share"]) == (0, None, None)
    assert (share["cause"], share["issues"]) == ("none", "")


def test_issue_shares_reach_issue_min_share() -> None:
    call = Call()
    a, b = call.join("a"), call.join("b", at=9)
    call.sides(a, M, receive_bad=range(1, 5))  # 4 poor of 20 rated: 0.2
    call.sides(b, M, receive_bad=range(1, 4))  # 3 of 20: 0.15
    for m in M:  # one sample only high in jitter, one with latency unknown
        call.sample(b, m, "audio_sharing", jitter_ms=90.0 if m == 1 else 4.0, latency_ms=None)
    rows = call.score()
    assert rows[("a", "audio")]["issues"] == NET
    assert rows[("b", "audio")]["issues"] == ""  # 4 high jitter of 30, 3 high latency and loss
    assert rows[("b", "audio")]["send_samples"] == 10  # direction None: in the issues, not a side
    assert rows[("b", "audio")]["receive_poor_share"] == pytest.approx(0.3)
    assert rows[("a", "audio")]["cause"] == rows[("b", "audio")]["cause"] == "session_wide"
    # with a limit of 0.35 b's receive side (3/10) is not poor, a's (4/10) is; b's poor samples
    # still count in the minutes of a's session-wide rule
    limits = {m: {**v, "issue_min_share": 0.35} for m, v in ref.DEFAULT_THRESHOLDS.items()}
    rows = call.score(limits)
    assert (rows[("a", "audio")]["cause"], rows[("b", "audio")]["cause"]) == ("session_wide", "none")
    assert rows[("a", "audio")]["issues"] == ""


def test_video_issues_are_send_side_only() -> None:
    call = Call()
    a = call.join("a")
    for m in M:
        call.sample(a, m, "video_input", frame_rate_fps=5.0 if m <= 2 else 25.0, resolution_height=720)
        call.sample(a, m, "video_output", frame_rate_fps=4.0, resolution_height=180)
    assert call.score()[("a", "video")]["issues"] == "low_frame_rate"
    call.qos = [r for r in call.qos if r["sampled_at"] > T0 + timedelta(minutes=2, seconds=30)]
    assert call.score()[("a", "video")]["issues"] == ""


def test_device_cpu_needs_most_of_the_poor_minutes() -> None:
    call = Call()
    a = call.join("a")
    call.sides(a, M, send_bad=M)
    call.sides(a, M, "video", send_bad=M)
    call.system_rows(a, range(1, 7), cpu_pressure_level="critical")  # 6 of the 10 poor minutes
    call.system_rows(a, range(7, 11))
    row = call.score()[("a", "video")]
    assert (row["cause"], row["issues"]) == ("device_cpu", f"{NET},cpu_pressure")
    call.system = [r for r in call.system if r["sampled_at"] > T0 + timedelta(minutes=1, seconds=30)]
    # critical in 5 of the 10 poor minutes: half is not most
    row = call.score()[("a", "video")]
    assert (row["cause"], row["issues"]) == ("own_uplink", f"{NET},cpu_pressure")
    for level in (
        {"zoom_max_cpu_pct": 90.0},
        {"system_max_cpu_pct": 95.0},
        {"cpu_pressure_level": "serious"},
    ):
        call.system = []
        call.system_rows(a, M, **level)
        assert call.score()[("a", "audio")]["cause"] == "device_cpu", level
    call.system = []
    call.system_rows(a, M, zoom_max_cpu_pct=89.9, system_max_cpu_pct=94.9, cpu_pressure_level="fair")
    assert call.score()[("a", "audio")]["cause"] == "own_uplink"


def test_weak_wifi_after_cpu() -> None:
    call = Call()
    a = call.join("a")
    call.sides(a, M, send_bad=M, receive_bad=M)
    call.system_rows(a, M, wifi_avg_rssi=-82.0)
    assert call.score()[("a", "audio")]["cause"] == "weak_wifi"
    assert call.score()[("a", "audio")]["issues"] == f"{NET},weak_wifi"
    call.system = []
    call.system_rows(a, M, wifi_avg_rssi=-82.0, cpu_pressure_level="critical")
    assert call.score()[("a", "audio")]["cause"] == "device_cpu"
    call.system = []
    call.system_rows(a, M, wifi_avg_rssi=-70.0)  # not below -70
    row = call.score()[("a", "audio")]
    assert (row["cause"], row["issues"]) == ("own_uplink", NET)


def test_remote_sender_names_the_sender_with_most_minutes() -> None:
    call = Call()
    listener = call.join("listener")
    x, y, z = call.join("x", at=6), call.join("y", at=7), call.join("z", at=8)
    call.sides(listener, M, receive_bad=M)
    call.sides(x, M, send_bad=range(1, 5))  # 4 minutes
    call.sides(y, M, send_bad=range(5, 9))  # 4 minutes: together 8 of 10
    call.sides(z, M, send_bad=range(9, 10))
    rows = call.score()
    assert (rows[("listener", "audio")]["cause"], rows[("listener", "audio")]["cause_user_id"]) == (
        "remote_sender",
        "x",  # tie with y: the smallest id
    )
    assert rows[("x", "audio")]["cause"] == "own_uplink" and rows[("x", "audio")]["cause_user_id"] is None
    # z is no sender in most minutes alone, and the listener's own other join never counts
    call = Call()
    listener = call.join("listener")
    again = call.join("listener", at=30)
    z = call.join("z", at=8)
    call.sides(listener, M, receive_bad=M)
    call.sides(again, M, send_bad=M)
    call.sides(z, M, send_bad=range(1, 6))  # 5 of 10: not most
    by_join = {
        (r["user_id"], r["join_time"], r["media_type"]): r for r in ref.join_quality(call.joins, call.qos, [])
    }
    assert by_join[("listener", listener["join_time"], "audio")]["cause"] == "own_downlink"


def test_session_wide_needs_half_the_rated_joins() -> None:
    def call(users: str, sender_bad: range = range(0)) -> dict[tuple[str, str], dict[str, Any]]:
        c = Call()
        joins = [c.join(u, at=5 + i) for i, u in enumerate(users)]
        for j in joins[:2]:
            c.sides(j, M, receive_bad=range(3, 9))
        for j in joins[2:]:
            c.sides(j, M, send_bad=sender_bad)
        return c.score()

    rows = call("abcd")
    assert rows[("a", "audio")]["cause"] == rows[("b", "audio")]["cause"] == "session_wide"  # 2 * 2 >= 4
    assert rows[("c", "audio")]["cause"] == "none"
    assert call("abcde")[("a", "audio")]["cause"] == "own_downlink"  # 2 * 2 < 5
    rows = call("abcd", sender_bad=range(3, 9))  # a sender explains it first
    assert (rows[("a", "audio")]["cause"], rows[("a", "audio")]["cause_user_id"]) == ("remote_sender", "c")


def test_reconnected_within_120_seconds_of_leaving() -> None:
    call = Call()
    first = call.join("a", leave_after=300)  # leaves at T0 + 305 s
    call.join("a", at=305 + 120, minutes=5)
    call.sides(first, range(1, 5))
    call.sides(first, range(1, 5), "video")
    call.sides(call.joins[1], range(8, 12))
    rows = ref.join_quality(call.joins, call.qos, [])
    by_join = {(r["join_time"], r["media_type"]): r["issues"] for r in rows}
    assert by_join[(first["join_time"], "audio")] == by_join[(first["join_time"], "video")] == "reconnected"
    assert by_join[(call.joins[1]["join_time"], "audio")] == ""
    assert all(r["cause"] == "none" for r in rows)
    call.joins[1]["join_time"] += timedelta(seconds=1)  # 121 s after leaving
    assert all(r["issues"] == "" for r in ref.join_quality(call.joins, call.qos, []))
    call.joins[0]["leave_time"] = None
    assert all(r["issues"] == "" for r in ref.join_quality(call.joins, call.qos, []))


def test_session_summary() -> None:
    def row(user: str, media: str, cause: str) -> dict[str, Any]:
        return {"session_id": "s", "user_id": user, "join_time": T0, "media_type": media, "cause": cause}

    assert ref.session_summary([row("a", "audio", "none")]) == {"poor_joins": 0, "main_cause": None}
    rows = [
        row("a", "audio", "own_downlink"),
        row("a", "video", "own_downlink"),
        row("b", "audio", "remote_sender"),
        row("b", "video", "remote_sender"),
        row("c", "audio", "none"),
    ]
    assert ref.session_summary(rows) == {"poor_joins": 2, "main_cause": "remote_sender"}  # tie: order
    rows.append(row("c", "video", "own_downlink"))
    assert ref.session_summary(rows) == {"poor_joins": 3, "main_cause": "own_downlink"}


def test_session_audio_mos() -> None:
    call = Call()
    a = call.join("a")
    call.sides(a, range(1, 3), receive_bad=range(2, 3))
    call.sample(a, 3, "audio_output", latency_ms=None)
    want = (ref.mos(40, 4, 0.1)[1] + ref.mos(320, 70, 8)[1]) / 2  # type: ignore[operator]
    assert ref.session_audio_mos(call.qos) == pytest.approx(want)
    assert ref.session_audio_mos([]) is None
