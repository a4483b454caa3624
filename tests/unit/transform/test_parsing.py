"""Table-driven tests for Zoom unit-string parsing: every unit, empty form and garbage."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from zoom_qos.transform.parsing import (
    ParseIssues,
    is_empty,
    parse_bitrate_kbps,
    parse_bool,
    parse_duration_ms,
    parse_duration_seconds,
    parse_fps,
    parse_number,
    parse_percent,
    parse_resolution,
    parse_timestamp,
)

EMPTY_FORMS = [None, "", " ", "-", " - ", "--", "N/A", "n/a", " N/a ", "NA", "null", "NULL", "None"]
NUMERIC_PARSERS = [parse_bitrate_kbps, parse_duration_ms, parse_percent, parse_fps, parse_number]
GARBAGE = [
    "abc",
    "23 furlongs",
    "1.2.3 ms",
    "1.2.3",
    "ms",
    "12 34",
    "12,34",
    "1e999",
    "inf",
    "NaN",
    "nan",
    "-inf",
    "Infinity",
    "++1",
    "x" * 10_000,
    "1" * 500,
    True,
    False,
    float("nan"),
    float("inf"),
    float("-inf"),
    10**400,
    {"value": 1},
    [1, 2],
    (1,),
    {1, 2},
    b"12",
    object(),
]


def _one(value: object, parser=parse_bitrate_kbps) -> tuple[object, ParseIssues]:
    issues = ParseIssues()
    return parser(value, "f", issues), issues


def approx_eq(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12)


# --------------------------------------------------------------------------- units
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("23 kbps", 23.0),
        ("23kbps", 23.0),
        ("23 Kbps", 23.0),
        ("23 KBPS", 23.0),
        ("23 kb/s", 23.0),
        ("23 kbit/s", 23.0),
        ("1.2 Mbps", 1200.0),
        ("1.2Mbps", 1200.0),
        ("1.2 mbps", 1200.0),
        ("1.2 Mb/s", 1200.0),
        ("2 Gbps", 2_000_000.0),
        ("900 bps", 0.9),
        ("900 b/s", 0.9),
        ("0 bps", 0.0),
        ("1,234 kbps", 1234.0),
        (".5 Mbps", 500.0),
        ("1e3 bps", 1.0),
        ("  23 kbps  ", 23.0),
        ("23", 23.0),
        ("23.5", 23.5),
        (23, 23.0),
        (23.5, 23.5),
        (0, 0.0),
    ],
)
def test_bitrate(raw: object, expected: float) -> None:
    value, issues = _one(raw, parse_bitrate_kbps)
    assert approx_eq(value, expected)
    assert not issues


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("126 ms", 126.0),
        ("126ms", 126.0),
        ("126 MS", 126.0),
        ("6 msec", 6.0),
        ("1.5 s", 1500.0),
        ("2 sec", 2000.0),
        ("2 seconds", 2000.0),
        ("500 us", 0.5),
        ("500 µs", 0.5),
        ("500 μs", 0.5),
        ("500µs", 0.5),
        ("0 ms", 0.0),
        ("-3 ms", -3.0),
        ("126", 126.0),
        (126, 126.0),
        (1.25, 1.25),
    ],
)
def test_duration_ms(raw: object, expected: float) -> None:
    value, issues = _one(raw, parse_duration_ms)
    assert approx_eq(value, expected)
    assert not issues


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.3%", 0.3),
        ("8 %", 8.0),
        ("8%", 8.0),
        ("100%", 100.0),
        ("1.9 pct", 1.9),
        ("0", 0.0),
        (0.3, 0.3),
        (8, 8.0),
    ],
)
def test_percent(raw: object, expected: float) -> None:
    value, issues = _one(raw, parse_percent)
    assert approx_eq(value, expected)
    assert not issues


@pytest.mark.parametrize(
    ("raw", "expected"), [("12 fps", 12.0), ("12fps", 12.0), ("29.97 FPS", 29.97), ("30", 30.0), (25, 25.0)]
)
def test_fps(raw: object, expected: float) -> None:
    value, issues = _one(raw, parse_fps)
    assert approx_eq(value, expected)
    assert not issues


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(-60, -60.0), (-60.5, -60.5), ("-60", -60.0), ("-60 dBm", -60.0), ("-60dbm", -60.0), ("+3", 3.0)],
)
def test_number(raw: object, expected: float) -> None:
    value, issues = _one(raw, parse_number)
    assert approx_eq(value, expected)
    assert not issues


@pytest.mark.parametrize(
    ("parser", "raw"),
    [
        (parse_bitrate_kbps, "23 ms"),
        (parse_bitrate_kbps, "23 kB"),
        (parse_bitrate_kbps, "23 %"),
        (parse_duration_ms, "5 kbps"),
        (parse_duration_ms, "5 min"),
        (parse_duration_ms, "5 ns"),
        (parse_percent, "5 fps"),
        (parse_percent, "5 ms"),
        (parse_fps, "12 Hz"),
        (parse_fps, "12 %"),
        (parse_number, "-60 dB"),
        (parse_number, "-60 mW"),
    ],
)
def test_wrong_unit_for_field_is_counted(parser, raw: str) -> None:
    value, issues = _one(raw, parser)
    assert value is None
    assert issues.as_dict() == {"f": {"count": 1, "example": raw}}


# --------------------------------------------------------------------------- empty, garbage
@pytest.mark.parametrize("parser", NUMERIC_PARSERS)
@pytest.mark.parametrize("raw", EMPTY_FORMS)
def test_empty_forms_are_none_and_not_counted(parser, raw: object) -> None:
    value, issues = _one(raw, parser)
    assert value is None
    assert issues.total == 0
    assert not issues


@pytest.mark.parametrize("parser", NUMERIC_PARSERS)
@pytest.mark.parametrize("raw", GARBAGE, ids=lambda v: type(v).__name__ + ":" + str(v)[:12])
def test_garbage_is_none_and_counted(parser, raw: object) -> None:
    issues = ParseIssues()
    assert parser(raw, "latency", issues) is None
    assert issues.total == 1
    assert issues.counts == {"latency": 1}
    example = issues.as_dict()["latency"]["example"]
    assert isinstance(example, str) and len(example) <= 100


@pytest.mark.parametrize("raw", EMPTY_FORMS)
def test_is_empty(raw: object) -> None:
    assert is_empty(raw)


@pytest.mark.parametrize("raw", [0, 0.0, False, "0", "x", [], {}])
def test_not_empty(raw: object) -> None:
    assert not is_empty(raw)


# --------------------------------------------------------------------------- resolution
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1280*720", (1280, 720)),
        ("1280x720", (1280, 720)),
        ("1280X720", (1280, 720)),
        ("1280 X 720", (1280, 720)),
        ("1280 * 720", (1280, 720)),
        ("1280×720", (1280, 720)),
        (" 640*360 ", (640, 360)),
        ("0*0", (0, 0)),
    ],
)
def test_resolution(raw: str, expected: tuple[int, int]) -> None:
    issues = ParseIssues()
    assert parse_resolution(raw, "resolution", issues) == expected
    assert not issues


@pytest.mark.parametrize("raw", EMPTY_FORMS)
def test_resolution_empty(raw: object) -> None:
    issues = ParseIssues()
    assert parse_resolution(raw, "resolution", issues) == (None, None)
    assert not issues


@pytest.mark.parametrize(
    "raw",
    [
        "1280",
        "1280*",
        "*720",
        "1280*720*3",
        "1280.5*720",
        "-1280*720",
        "HD",
        "1280 by 720",
        1280,
        True,
        [1280, 720],
    ],
)
def test_resolution_garbage_counted(raw: object) -> None:
    issues = ParseIssues()
    assert parse_resolution(raw, "resolution", issues) == (None, None)
    assert issues.counts == {"resolution": 1}
    assert issues.examples == {"resolution": str(raw)}


# --------------------------------------------------------------------------- ParseIssues
def test_parse_issues_counts_per_field_with_first_example() -> None:
    issues = ParseIssues()
    assert not issues and issues.total == 0 and issues.as_dict() == {}
    issues.add("bitrate", "23 furlongs")
    issues.add("bitrate", "abc")
    issues.add("latency", {"x": 1})
    assert issues
    assert issues.total == 3
    assert issues.as_dict() == {
        "bitrate": {"count": 2, "example": "23 furlongs"},
        "latency": {"count": 1, "example": "{'x': 1}"},
    }


def test_parse_issues_merge() -> None:
    a, b = ParseIssues(), ParseIssues()
    a.add("bitrate", "a1")
    b.add("bitrate", "b1")
    b.add("jitter", "b2")
    b.add("jitter", "b3")
    a.merge(b)
    assert a.as_dict() == {
        "bitrate": {"count": 2, "example": "a1"},
        "jitter": {"count": 2, "example": "b2"},
    }
    assert b.total == 3  # the merged-in object is not modified


def test_parse_issues_example_truncated_and_unprintable() -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("no")

    issues = ParseIssues()
    issues.add("f", "y" * 1000)
    issues.add("g", Evil())
    assert issues.as_dict()["f"]["example"] == "y" * 100
    assert issues.as_dict()["g"]["example"] == "<unprintable Evil>"
    assert parse_number(Evil(), "h", issues) is None
    assert issues.counts["h"] == 1


# --------------------------------------------------------------------------- timestamps
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-01T10:00:00Z", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00z", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00.250Z", datetime(2025, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2025-03-01T10:00:00+00:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T12:30:00+02:30", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T05:00:00-05:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01T10:00:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        ("2025-03-01 10:00:00", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        (" 2025-03-01T10:00:00Z ", datetime(2025, 3, 1, 10, tzinfo=UTC)),
        (datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 10, tzinfo=UTC)),
        (
            datetime(2025, 3, 1, 11, tzinfo=timezone(timedelta(hours=1))),
            datetime(2025, 3, 1, 10, tzinfo=UTC),
        ),
    ],
)
def test_timestamp(raw: object, expected: datetime) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "-",
        "N/A",
        "yesterday",
        "2025-13-01T10:00:00Z",
        "2025-03-01T25:00:00Z",
        "10:00",
        1700000000,
        True,
        {},
    ],
)
def test_timestamp_invalid(raw: object) -> None:
    assert parse_timestamp(raw) is None


# --------------------------------------------------------------------------- duration (sessions)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("01:02:03", 3723),
        ("1:02:03", 3723),
        ("62:03", 3723),
        ("00:00:00", 0),
        ("00:45", 45),
        ("45", 45),
        (" 45 ", 45),
        (45, 45),
        (45.0, 45),
        ("100:00:00", 360000),
    ],
)
def test_duration_seconds(raw: object, expected: int) -> None:
    assert parse_duration_seconds(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "-",
        "N/A",
        "abc",
        "1:2:3:4",
        "01:60:00",
        "01:00:60",
        "62:60",
        "-5",
        -5,
        4.5,
        True,
        "1.5",
        ":",
        "٤٥",
    ],
)
def test_duration_seconds_invalid(raw: object) -> None:
    assert parse_duration_seconds(raw) is None


# --------------------------------------------------------------------------- booleans
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("true", True),
        ("True", True),
        (" TRUE ", True),
        ("false", False),
        ("False", False),
        ("1", True),
        ("0", False),
    ],
)
def test_bool(raw: object, expected: bool) -> None:
    assert parse_bool(raw) is expected


@pytest.mark.parametrize("raw", [None, "", "-", "maybe", 2, -1, 1.0, [], {}])
def test_bool_invalid(raw: object) -> None:
    assert parse_bool(raw) is None


def test_utc_day_of_what_the_warehouse_gives_back():
    from datetime import date, datetime, timedelta, timezone

    from zoom_qos.transform.parsing import utc_day

    late_in_new_york = datetime(2026, 11, 30, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert utc_day(late_in_new_york) == date(2026, 12, 1)  # an aware time: its UTC day
    assert utc_day(datetime(2026, 11, 30, 23, 59)) == date(2026, 11, 30)  # naive times are UTC
    assert utc_day(date(2026, 11, 30)) == date(2026, 11, 30)
    assert utc_day("2026-11-30 23:59:59.000000") == date(2026, 11, 30)  # SQLite's text
