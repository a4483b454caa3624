"""Zoom session/user objects → warehouse rows (exact rows for a realistic user)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.builders import SESSION_ID, qos_sample, stream_metrics, zoom_user
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.transform.rows import daily_usage_rows, grade_index, session_row, unique_users, user_rows
from zoom_qos.warehouse.schema import session_users, user_qos, user_system_qos

SID = SESSION_ID
JOIN = datetime(2025, 3, 1, 10, 0, 5, tzinfo=UTC)
T1 = datetime(2025, 3, 1, 10, 1, tzinfo=UTC)
T2 = datetime(2025, 3, 1, 10, 2, tzinfo=UTC)


def video() -> dict[str, str]:
    return {
        "bitrate": "1.2 Mbps",
        "latency": "80 ms",
        "jitter": "4 ms",
        "avg_loss": "0%",
        "max_loss": "8%",
        "resolution": "1280*720",
        "frame_rate": "12 fps",
    }


def make_user(**overrides: Any) -> dict[str, Any]:
    """A QoS user object shaped like Zoom's `users/qos` response (ZOOM_API.md): every field set."""
    profile = {
        "name": "Jill Chill",
        "user_key": "jill-key",
        "is_original_host": True,
        "device": "Mac",
        "client": "Video SDK",
        "os": "Mac",
        "os_version": "14.2",
        "browser_name": "Chrome",
        "browser_version": "121.0",
        "network_type": "Wifi",
        "ip_address": "192.0.2.10",
        "location": "San Jose (US)",
        "microphone": "MacBook Pro Microphone",
        "speaker": "MacBook Pro Speakers",
        "camera": "FaceTime HD Camera",
        "data_center": "US",
        "connection_type": "UDP",
    }
    samples = [
        qos_sample(
            T1,
            audio_input=stream_metrics(),
            audio_output=stream_metrics("-"),
            video_input=video(),
            video_output={**video(), "resolution": "", "frame_rate": "-"},
            as_input={"bitrate": "", "latency": "", "jitter": "", "avg_loss": "", "max_loss": ""},
            cpu_usage={
                "zoom_min_cpu_usage": "1%",
                "zoom_avg_cpu_usage": "8%",
                "zoom_max_cpu_usage": "15%",
                "system_max_cpu_usage": "40%",
            },
            wifi_rssi={"max_rssi": -40, "avg_rssi": -55, "min_rssi": -70, "rssi_unit": "dBm"},
            cpu_pressure_level="nominal",
        ),
        qos_sample(T2, audio_input=stream_metrics("1.2 Mbps")),
    ]
    return zoom_user("16778240", join=JOIN, samples=samples, **(profile | overrides))


def qos_row(stream: str, sampled_at: datetime = T1, **values: Any) -> dict[str, Any]:
    base = {
        "session_id": SID,
        "user_id": "16778240",
        "join_time": JOIN,
        "sampled_at": sampled_at,
        "stream": stream,
        "bitrate_kbps": None,
        "latency_ms": None,
        "jitter_ms": None,
        "avg_loss_pct": None,
        "max_loss_pct": None,
        "resolution_width": None,
        "resolution_height": None,
        "frame_rate_fps": None,
    }
    base.update(values)
    return base


AUDIO = {"latency_ms": 126.0, "jitter_ms": 6.0, "avg_loss_pct": 0.3, "max_loss_pct": 1.9}
VIDEO = {
    "bitrate_kbps": 1200.0,
    "latency_ms": 80.0,
    "jitter_ms": 4.0,
    "avg_loss_pct": 0.0,
    "max_loss_pct": 8.0,
}


def test_realistic_user_exact_rows() -> None:
    issues = ParseIssues()
    user = make_user()
    original = copy.deepcopy(user)
    rows = user_rows(SID, user, issues)
    assert rows is not None
    assert not issues, issues.as_dict()
    assert user == original  # input not mutated

    assert rows.session_user == {
        "session_id": SID,
        "user_id": "16778240",
        "join_time": JOIN,
        "leave_time": datetime(2025, 3, 1, 10, 30, tzinfo=UTC),
        "user_name": "Jill Chill",
        "user_key": "jill-key",
        "device": "Mac",
        "client": "Video SDK",
        "os": "Mac",
        "os_version": "14.2",
        "browser_name": "Chrome",
        "browser_version": "121.0",
        "network_type": "Wifi",
        "ip_address": "192.0.2.10",
        "location": "San Jose (US)",
        "microphone": "MacBook Pro Microphone",
        "speaker": "MacBook Pro Speakers",
        "camera": "FaceTime HD Camera",
        "data_center": "US",
        "connection_type": "UDP",
        "is_original_host": True,
        "participant_uuid": None,
        "audio_quality": None,
        "video_quality": None,
        "screen_share_quality": None,
    }
    assert set(rows.session_user) == {c.name for c in session_users.columns} - {"loaded_at"}

    assert rows.qos == [
        qos_row("audio_input", bitrate_kbps=23.0, **AUDIO),
        qos_row("audio_output", **AUDIO),
        qos_row("video_input", resolution_width=1280, resolution_height=720, frame_rate_fps=12.0, **VIDEO),
        qos_row("video_output", **VIDEO),
        qos_row("as_input"),
        qos_row("audio_input", T2, bitrate_kbps=1200.0, **AUDIO),
    ]
    for row in rows.qos:
        assert set(row) == {c.name for c in user_qos.columns} - {"loaded_at"}

    assert rows.system == [
        {
            "session_id": SID,
            "user_id": "16778240",
            "join_time": JOIN,
            "sampled_at": T1,
            "zoom_min_cpu_pct": 1.0,
            "zoom_avg_cpu_pct": 8.0,
            "zoom_max_cpu_pct": 15.0,
            "system_max_cpu_pct": 40.0,
            "wifi_max_rssi": -40.0,
            "wifi_avg_rssi": -55.0,
            "wifi_min_rssi": -70.0,
            "wifi_rssi_unit": "dBm",
            "cpu_pressure_level": "nominal",
        }
    ]
    assert set(rows.system[0]) == {c.name for c in user_system_qos.columns} - {"loaded_at"}
    assert rows.raw == {"session_id": SID, "user_id": "16778240", "join_time": JOIN, "payload": original}


def test_unknown_fields_kept_in_raw_and_new_stream_loads() -> None:
    sample = {
        "date_time": "2025-03-01T10:01:00Z",
        "video_device_from_rwg": {"bitrate": "500 kbps", "resolution": "640x360", "frame_rate": "15 fps"},
        "holo_stream_v2": {"latency": "2 s", "jitter": "500 us"},  # a block Zoom adds later
        "new_scalar_metric": "7",
        "new_nested_info": {"vendor": "x"},  # not a stream: no metric keys
    }
    user = make_user(user_qos=[sample], favourite_colour="teal", extra_block={"a": [1, 2]})
    issues = ParseIssues()
    rows = user_rows(SID, user, issues)
    assert rows is not None and not issues
    assert rows.qos == [
        qos_row(
            "video_device_from_rwg",
            bitrate_kbps=500.0,
            resolution_width=640,
            resolution_height=360,
            frame_rate_fps=15.0,
        ),
        qos_row("holo_stream_v2", latency_ms=2000.0, jitter_ms=0.5),
    ]
    assert rows.system == []
    assert rows.raw["payload"]["favourite_colour"] == "teal"
    assert rows.raw["payload"]["extra_block"] == {"a": [1, 2]}
    assert rows.raw["payload"]["user_qos"][0]["new_scalar_metric"] == "7"


def test_missing_blocks_and_fields() -> None:
    user = {
        "id": "u1",
        "join_time": "2025-03-01T10:00:05Z",
        "user_qos": [{"date_time": "2025-03-01T10:01:00Z"}],
    }
    issues = ParseIssues()
    rows = user_rows(SID, user, issues)
    assert rows is not None and not issues
    assert rows.session_user["leave_time"] is None
    assert rows.session_user["user_name"] is None
    assert rows.session_user["is_original_host"] is None
    assert rows.qos == [] and rows.system == []


def test_partial_system_sample() -> None:
    sample = {"date_time": "2025-03-01T10:01:00Z", "cpu_pressure_level": "serious", "wifi_rssi": "-"}
    rows = user_rows(SID, make_user(user_qos=[sample]), ParseIssues())
    assert rows is not None
    assert rows.system == [
        {
            "session_id": SID,
            "user_id": "16778240",
            "join_time": JOIN,
            "sampled_at": T1,
            "zoom_min_cpu_pct": None,
            "zoom_avg_cpu_pct": None,
            "zoom_max_cpu_pct": None,
            "system_max_cpu_pct": None,
            "wifi_max_rssi": None,
            "wifi_avg_rssi": None,
            "wifi_min_rssi": None,
            "wifi_rssi_unit": None,
            "cpu_pressure_level": "serious",
        }
    ]


def test_bad_values_counted_by_zoom_field_name() -> None:
    sample = {
        "date_time": "2025-03-01T10:01:00Z",
        "audio_input": {"bitrate": "23 furlongs", "latency": "abc", "jitter": "6 ms", "avg_loss": "0.3%"},
        "video_input": {"resolution": "big", "frame_rate": "12 Hz"},
        "cpu_usage": {"zoom_avg_cpu_usage": "lots", "zoom_max_cpu_usage": "9%"},
        "wifi_rssi": {"avg_rssi": "strong"},
    }
    issues = ParseIssues()
    rows = user_rows(SID, make_user(user_qos=[sample], is_original_host="maybe", leave_time="soon"), issues)
    assert rows is not None
    assert issues.as_dict() == {
        "avg_rssi": {"count": 1, "example": "strong"},
        "bitrate": {"count": 1, "example": "23 furlongs"},
        "frame_rate": {"count": 1, "example": "12 Hz"},
        "is_original_host": {"count": 1, "example": "maybe"},
        "latency": {"count": 1, "example": "abc"},
        "leave_time": {"count": 1, "example": "soon"},
        "resolution": {"count": 1, "example": "big"},
        "zoom_avg_cpu_usage": {"count": 1, "example": "lots"},
    }
    audio_row = rows.qos[0]
    assert (audio_row["bitrate_kbps"], audio_row["latency_ms"], audio_row["jitter_ms"]) == (None, None, 6.0)
    assert rows.system[0]["zoom_avg_cpu_pct"] is None and rows.system[0]["zoom_max_cpu_pct"] == 9.0
    assert rows.session_user["is_original_host"] is None and rows.session_user["leave_time"] is None


def test_user_without_samples() -> None:
    for user in (make_user(user_qos=[]), {k: v for k, v in make_user().items() if k != "user_qos"}):
        issues = ParseIssues()
        rows = user_rows(SID, user, issues)
        assert rows is not None and rows.qos == [] and rows.system == [] and not issues
        assert rows.session_user["user_name"] == "Jill Chill"


@pytest.mark.parametrize("bad", [{"date_time": "x"}, "sample", 42, {"a": 1}])
def test_non_list_user_qos_counted(bad: object) -> None:
    issues = ParseIssues()
    rows = user_rows(SID, make_user(user_qos=bad), issues)
    assert rows is not None and rows.qos == [] and rows.system == []
    assert issues.counts == {"user_qos": 1}


def test_bad_samples_skipped_and_counted() -> None:
    samples = [
        "not a sample",
        None,
        {"date_time": "garbage", "audio_input": stream_metrics()},
        {"audio_input": stream_metrics()},
        {"date_time": "2025-03-01T10:01:00Z", "audio_input": stream_metrics()},
    ]
    issues = ParseIssues()
    rows = user_rows(SID, make_user(user_qos=samples), issues)
    assert rows is not None
    assert [r["stream"] for r in rows.qos] == ["audio_input"]
    assert issues.counts == {"user_qos_sample": 2, "date_time": 2}


def test_duplicate_sample_last_wins() -> None:
    samples = [
        {"date_time": "2025-03-01T10:01:00Z", "audio_input": stream_metrics("10 kbps")},
        {"date_time": "2025-03-01T10:01:00+00:00", "audio_input": stream_metrics("20 kbps"), "cpu_usage": {}},
        {
            "date_time": "2025-03-01T11:01:00+01:00",
            "audio_input": stream_metrics("30 kbps"),
            "cpu_pressure_level": "fair",
        },
    ]
    rows = user_rows(SID, make_user(user_qos=samples), ParseIssues())
    assert rows is not None
    assert [r["bitrate_kbps"] for r in rows.qos] == [30.0]
    assert [r["cpu_pressure_level"] for r in rows.system] == ["fair"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": True}, "id"),
        ({"join_time": None}, "join_time"),
        ({"join_time": "yesterday"}, "join_time"),
    ],
)
def test_unkeyable_user_is_none_and_counted(overrides: dict[str, Any], field: str) -> None:
    issues = ParseIssues()
    assert user_rows(SID, make_user(**overrides), issues) is None
    assert issues.counts == {field: 1}


def test_non_mapping_user_counted() -> None:
    issues = ParseIssues()
    assert user_rows(SID, ["not", "a", "user"], issues) is None  # type: ignore[arg-type]
    assert issues.counts == {"user": 1}


def test_text_field_conversion() -> None:
    user = make_user(
        id=16778240, name=12345, device="-", os="N/A", camera="", ip_address=None, location={"c": "US"}
    )
    rows = user_rows(SID, user, ParseIssues())
    assert rows is not None
    su = rows.session_user
    assert su["user_id"] == "16778240" and su["user_name"] == "12345"
    assert su["device"] is None and su["os"] is None and su["camera"] is None and su["ip_address"] is None
    assert su["location"] == '{"c": "US"}'


def test_rejoin_two_rows_and_dedupe() -> None:
    first = make_user()
    rejoin = make_user(join_time="2025-03-01T10:40:00Z", leave_time="2025-03-01T10:50:00Z", user_qos=[])
    reread = make_user(name="Jill (re-read)", join_time="2025-03-01T10:00:05+00:00")
    deduped = list(unique_users([first, rejoin, reread]))
    assert deduped == [first, rejoin]  # the first read of the first join won
    rows = [user_rows(SID, u, ParseIssues()) for u in deduped]
    keys = sorted((r.session_user["user_id"], r.session_user["join_time"]) for r in rows if r)
    assert keys == [("16778240", JOIN), ("16778240", datetime(2025, 3, 1, 10, 40, tzinfo=UTC))]


def test_dedupe_keeps_unkeyable_users_for_counting() -> None:
    bad1, bad2 = {"id": "x"}, {"id": "x"}
    assert list(unique_users([bad1, bad2, make_user()])) == [bad1, bad2, make_user()]


SESSION = {
    "id": SID,
    "session_name": "Standup",
    "start_time": "2025-03-01T10:00:00Z",
    "end_time": "2025-03-01T11:02:03Z",
    "duration": "01:02:03",
    "user_count": 3,
    "has_voip": False,
    "has_video": True,
    "has_screen_share": True,
    "has_recording": False,
    "has_pstn": False,
    "has_session_summary": False,
    "session_key": "abc",
    "audio_quality": "good",
    "video_quality": "fair",
    "screen_share_quality": "poor",
}


def test_session_row_exact() -> None:
    issues = ParseIssues()
    assert session_row(SESSION, issues) == {
        "session_id": SID,
        "session_name": "Standup",
        "session_key": "abc",
        "start_time": datetime(2025, 3, 1, 10, tzinfo=UTC),
        "end_time": datetime(2025, 3, 1, 11, 2, 3, tzinfo=UTC),
        "duration_seconds": 3723,
        "user_count": 3,
        "has_voip": False,
        "has_video": True,
        "has_screen_share": True,
        "has_recording": False,
        "has_pstn": False,
        "audio_quality": "good",
        "video_quality": "fair",
        "screen_share_quality": "poor",
    }
    assert not issues


@pytest.mark.parametrize(
    ("duration", "end_time", "expected", "counted"),
    [
        ("62:03", "2025-03-01T11:02:03Z", 3723, False),
        # The published definition's own example: "30:00" for a ten-minute session.
        ("30:00", "2025-03-01T10:10:00Z", 600, True),
        ("62:03", "2025-03-01T10:00:01Z", 1, True),  # more than 60 s off: the timestamps win
        ("10:59", "2025-03-01T10:10:00Z", 659, False),  # within 60 s: Zoom's value is kept
        ("00:11:01", "2025-03-01T10:10:00Z", 600, True),
        ("30:00", None, 1800, False),  # nothing to check it against
        ("", "2025-03-01T10:10:00Z", 600, False),
        (None, "2025-03-01T10:10:00.900Z", 600, False),
        ("weird", "2025-03-01T10:10:00Z", 600, True),
        ("weird", None, None, True),
        (None, "2025-03-01T09:00:00Z", None, False),  # end before start: no guess
    ],
)
def test_session_duration_fallback(
    duration: object, end_time: object, expected: int | None, counted: bool
) -> None:
    issues = ParseIssues()
    row = session_row({**SESSION, "duration": duration, "end_time": end_time}, issues)
    assert row is not None and row["duration_seconds"] == expected
    assert issues.counts == ({"duration": 1} if counted else {})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": None}, "session_id"),
        ({"start_time": "never"}, "start_time"),
        ({"start_time": None}, "start_time"),
    ],
)
def test_session_unkeyable(overrides: dict[str, Any], field: str) -> None:
    issues = ParseIssues()
    assert session_row({**SESSION, **overrides}, issues) is None
    assert issues.counts == {field: 1}


def test_session_odd_values() -> None:
    issues = ParseIssues()
    row = session_row({**SESSION, "user_count": "many", "has_video": "yes-ish", "end_time": "-"}, issues)
    assert row is not None
    assert row["user_count"] is None and row["has_video"] is None and row["end_time"] is None
    assert issues.counts == {"user_count": 1, "has_video": 1}
    row = session_row({**SESSION, "user_count": "7", "has_video": "true"}, ParseIssues())
    assert row is not None and row["user_count"] == 7 and row["has_video"] is True


def test_grades_are_matched_to_joins_on_id_and_join_time_as_an_instant() -> None:
    issues = ParseIssues()
    grades = grade_index([
        {"id": "16778240", "join_time": "2025-03-01T10:00:05+00:00", "participant_uuid": "P-1",
         "audio_quality": "poor", "video_quality": "good", "screen_share_quality": ""},
        {"id": "16778240", "join_time": "2025-03-01T11:00:00Z", "audio_quality": "bad"},  # a rejoin
        {"id": None, "join_time": "2025-03-01T10:00:05Z"},
    ], issues)
    assert issues.counts == {"grades_join": 1} and len(grades) == 2
    rows = user_rows(SID, make_user(), ParseIssues(), grades)
    assert rows is not None
    assert {k: rows.session_user[k] for k in ("participant_uuid", "audio_quality", "video_quality",
                                              "screen_share_quality")} == {
        "participant_uuid": "P-1", "audio_quality": "poor", "video_quality": "good",
        "screen_share_quality": None}
    unmatched = user_rows(SID, make_user(join_time="2025-03-01T12:00:00Z"), ParseIssues(), grades)
    assert unmatched is not None and unmatched.session_user["audio_quality"] is None


def test_daily_usage_rows_from_zoom_s_daily_report() -> None:
    issues = ParseIssues()
    rows = daily_usage_rows([
        {"date": "2026-11-01", "sessions": 20, "users": 80, "session_minutes": 380},
        {"date": "2026-11-02", "sessions": "7", "users": -1, "session_minutes": None},
        {"date": "yesterday", "sessions": 1},
        "not an object",
    ], issues)
    assert rows == [
        {"usage_date": datetime(2026, 11, 1).date(), "sessions": 20, "users": 80, "session_minutes": 380},
        {"usage_date": datetime(2026, 11, 2).date(), "sessions": 7, "users": None, "session_minutes": None},
    ]
    assert issues.counts == {"users": 1, "daily_usage_date": 1, "daily_usage": 1}
