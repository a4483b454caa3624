"""Property-based tests (hypothesis) of the parsers, the user mapping and the loader.

Payloads are generated in the shape of Zoom's ``users/qos`` objects (ZOOM_API.md) with the
odd values the warehouse contract says must never break a load (docs/warehouse.md, "Values"):
known and unknown units, empty-ish values, JSON numbers, garbage text, wrong types.

The generators tag what they produce (which users are keyable, which samples have a valid
``date_time`` and at what instant), so the "no valid sample is lost" property is checked
against the generator's own record rather than against the parser under test.
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import T0, zoom_session
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
from zoom_qos.transform.rows import STREAM_METRICS, session_row, unique_users, user_rows
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.store import Warehouse

# No example database: it would leave an untracked .hypothesis/ folder in the repository.
FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAPPING = settings(max_examples=150, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
# One warehouse per test function, shared by its examples (each uses its own session id).
LOADING = settings(max_examples=60, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])

# --------------------------------------------------------------------------- vocabulary
AUDIO_STREAMS = ("audio_input", "audio_output", "audio_device_from_rwg", "audio_device_to_rwg")
VIDEO_STREAMS = ("video_input", "video_output", "as_input", "as_output", "video_device_from_rwg",
                 "video_device_to_rwg", "as_device_from_rwg", "as_device_to_rwg")
KNOWN_STREAMS = AUDIO_STREAMS + VIDEO_STREAMS
SYSTEM_KEYS = frozenset({"cpu_usage", "wifi_rssi", "cpu_pressure_level"})
USER_TEXT_FIELDS = ("name", "user_key", "device", "client", "os", "os_version", "browser_name",
                    "browser_version", "network_type", "ip_address", "location", "microphone",
                    "speaker", "camera", "data_center", "connection_type")

# Unit -> factor to the warehouse column's unit, per parser (only what docs/warehouse.md names).
BITRATE_UNITS = {"bps": 0.001, "kbps": 1.0, "Mbps": 1000.0}
DURATION_UNITS = {"ms": 1.0, "s": 1000.0}
PERCENT_UNITS = {"%": 1.0}
FPS_UNITS = {"fps": 1.0}
UNIT_PARSERS = (
    (parse_bitrate_kbps, BITRATE_UNITS),
    (parse_duration_ms, DURATION_UNITS),
    (parse_percent, PERCENT_UNITS),
    (parse_fps, FPS_UNITS),
)
FLOAT_PARSERS = (parse_bitrate_kbps, parse_duration_ms, parse_percent, parse_fps, parse_number)
EMPTY_VALUES = ("", "-", "N/A", None, "  ", " - ")
INVALID_TIMESTAMPS = ("yesterday", "2026-13-45T99:00:00Z", "", "-", "N/A", "2025-02-30T10:00:00Z",
                      "10:00", "2025-03-01T25:00:00Z", 1740823200, 1.5, [], {}, True, None)

BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)

# --------------------------------------------------------------------------- generic JSON
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats()  # Python's json accepts NaN/Infinity, so they can reach the loader
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                      max_size=3),
    max_leaves=8,
)
# Lone surrogates are excluded here: they fail a load (see test_malformed.py, xfail).
huge_strings = st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(1_000, 10_000))
garbage_text = st.text(max_size=200) | huge_strings


def number_text(x: float | int) -> str:
    return repr(x) if isinstance(x, float) else str(x)


numbers = (st.integers(min_value=-(10**9), max_value=10**9)
           | st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False))


@st.composite
def with_unit(draw: st.DrawFn, units: dict[str, float]) -> tuple[str, float]:
    """A Zoom-style ``"<number> <unit>"`` string and the value it must convert to."""
    unit = draw(st.sampled_from(sorted(units)))
    x = draw(numbers)
    sep = draw(st.sampled_from(["", " "]))
    return f"{number_text(x)}{sep}{unit}", x * units[unit]


zoom_style = st.sampled_from(["23 kbps", "1.2 Mbps", "900 bps", "126 ms", "0.2 s", "0.3%", "12 fps",
                              "1280*720", "6 ms", "1.9%", "8%"])
unit_strings = st.one_of(*(with_unit(units).map(lambda pair: pair[0]) for _, units in UNIT_PARSERS))
unknown_units = (st.sampled_from(["5 furlongs", "3 parsecs", "12 kB", "7 hz", "1e3 mph"])
                 | st.builds(lambda x, u: f"{number_text(x)} zz{u}", numbers,  # "zz...": no real unit
                             st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=8)))
wrong_types = (st.lists(json_scalars, max_size=3) | st.dictionaries(st.text(max_size=5), json_scalars,
                                                                     max_size=3) | st.booleans())

# Every kind of metric value the brief lists (the "missing key" case is handled by the
# block generator leaving keys out).
metric_values = st.one_of(
    zoom_style,
    unit_strings,
    numbers,
    st.floats(),
    st.sampled_from(EMPTY_VALUES),
    unknown_units,
    garbage_text,
    wrong_types,
)


# --------------------------------------------------------------------------- Zoom shapes
def render_instant(instant: datetime, style: int) -> str:
    """The same instant written several ways Zoom (or a proxy) could write it."""
    if style == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 1:
        return instant.isoformat()  # +00:00
    if style == 2:
        return instant.astimezone(timezone(timedelta(hours=2))).isoformat()
    return instant.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


# Instants on a small grid so that duplicates (same sample time / same join) really happen.
instants = st.builds(lambda m, sec: BASE + timedelta(minutes=m, seconds=sec),
                     st.integers(0, 5), st.sampled_from([0, 0, 0, 30]))


@st.composite
def valid_timestamp(draw: st.DrawFn) -> tuple[str, datetime]:
    instant = draw(instants)
    return render_instant(instant, draw(st.integers(0, 3))), instant


invalid_timestamp = st.sampled_from(INVALID_TIMESTAMPS) | st.text(alphabet="xyz :-", max_size=12)

new_stream_names = st.text(min_size=1, max_size=20).filter(
    lambda name: name not in SYSTEM_KEYS and name != "date_time")
stream_names = st.sampled_from(KNOWN_STREAMS) | new_stream_names


@st.composite
def stream_blocks(draw: st.DrawFn) -> Any:
    """A media block: metrics (a random subset, maybe none), maybe extra keys; rarely not a dict."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_scalars | st.lists(json_scalars, max_size=2))
    keys = draw(st.lists(st.sampled_from(sorted(STREAM_METRICS)), unique=True, max_size=7))
    block: dict[str, Any] = {key: draw(metric_values) for key in keys}
    if "resolution" in block and draw(st.booleans()):
        block["resolution"] = f"{draw(st.integers(0, 4096))}*{draw(st.integers(0, 4096))}"
    if draw(st.integers(0, 4)) == 0:
        block[draw(st.text(max_size=10).filter(lambda k: k not in STREAM_METRICS))] = draw(json_values)
    return block


def cpu_blocks() -> st.SearchStrategy[Any]:
    keys = ("zoom_min_cpu_usage", "zoom_avg_cpu_usage", "zoom_max_cpu_usage", "system_max_cpu_usage")
    pct = st.builds(lambda x: f"{x}%", st.integers(0, 100)) | metric_values
    return st.fixed_dictionaries({}, optional={k: pct for k in keys}) | wrong_types | st.none()


def rssi_blocks() -> st.SearchStrategy[Any]:
    rssi = st.integers(-100, 0) | st.builds(lambda x: f"{x} dBm", st.integers(-100, 0)) | metric_values
    return st.fixed_dictionaries({}, optional={"max_rssi": rssi, "avg_rssi": rssi, "min_rssi": rssi,
                                               "rssi_unit": st.sampled_from(["dBm", "", None])}) \
        | wrong_types | st.none()


@dataclass
class SampleTag:
    instant: datetime | None  # None: no valid date_time (or not a sample at all)
    streams: set[str] = field(default_factory=set)  # blocks that must become user_qos rows
    system: bool = False  # must become a user_system_qos row


@st.composite
def samples(draw: st.DrawFn) -> tuple[Any, SampleTag]:
    kind = draw(st.integers(0, 19))
    if kind == 0:  # not a sample object at all
        return draw(st.text(max_size=20) | st.integers() | st.none() | st.lists(json_scalars, max_size=2)), \
            SampleTag(None)
    sample: dict[str, Any] = {}
    tag = SampleTag(None)
    if kind == 1:
        pass  # date_time missing
    elif kind in (2, 3):
        sample["date_time"] = draw(invalid_timestamp)
    else:
        sample["date_time"], tag.instant = draw(valid_timestamp())
    for name in draw(st.lists(stream_names, unique=True, max_size=5)):
        block = draw(stream_blocks())
        sample[name] = block
        if isinstance(block, dict) and not STREAM_METRICS.isdisjoint(block):
            tag.streams.add(name)
    if draw(st.booleans()):
        sample["cpu_usage"] = draw(cpu_blocks())
    if draw(st.integers(0, 2)) == 0:
        sample["wifi_rssi"] = draw(rssi_blocks())
    if draw(st.integers(0, 3)) == 0:
        sample["cpu_pressure_level"] = draw(st.sampled_from(["nominal", "fair", "serious", "critical"])
                                            | json_scalars)
    tag.system = not SYSTEM_KEYS.isdisjoint(sample)
    if tag.instant is None:
        tag.streams, tag.system = set(), False
    return sample, tag


valid_ids = (st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                     min_size=6, max_size=24)
             | st.integers(min_value=1, max_value=10**12))
invalid_ids = st.sampled_from([None, "", "-", "N/A", True, False, 1.5, [], {}, ["x"], {"id": "x"}])


@dataclass
class UserTag:
    key: tuple[str, datetime] | None  # None: the user cannot be keyed (skipped)
    samples: list[SampleTag] = field(default_factory=list)


@st.composite
def users(draw: st.DrawFn) -> tuple[Any, UserTag]:
    kind = draw(st.integers(0, 29))
    if kind == 0:
        return draw(st.text(max_size=10) | st.none() | st.lists(json_scalars, max_size=2)), UserTag(None)
    user: dict[str, Any] = {}
    valid = True
    if kind == 1:
        user["id"] = draw(invalid_ids)
        valid = False
    elif kind != 2:  # kind 2: id missing
        user["id"] = draw(valid_ids)
    else:
        valid = False
    if kind in (3, 4):
        user["join_time"] = draw(invalid_timestamp)
        valid = False
        instant = None
    elif kind == 5:
        instant = None  # join_time missing
        valid = False
    else:
        user["join_time"], instant = draw(valid_timestamp())
    if draw(st.booleans()):
        user["leave_time"] = draw(st.sampled_from([None, ""]) | valid_timestamp().map(lambda p: p[0])
                                  | invalid_timestamp)
    for name in draw(st.lists(st.sampled_from(USER_TEXT_FIELDS), unique=True, max_size=6)):
        user[name] = draw(st.text(max_size=40) | huge_strings | json_values)
    if draw(st.booleans()):
        user["is_original_host"] = draw(st.booleans() | json_scalars)
    if draw(st.integers(0, 3)) == 0:  # a field Zoom added later
        user[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    tags: list[SampleTag] = []
    qos_kind = draw(st.integers(0, 9))
    if qos_kind == 0:
        user["user_qos"] = draw(st.text(max_size=10) | st.integers() | st.dictionaries(
            st.text(max_size=5), json_scalars, max_size=2) | st.none())
    elif qos_kind != 1:  # qos_kind 1: user_qos missing
        pairs = draw(st.lists(samples(), max_size=6))
        user["user_qos"] = [sample for sample, _ in pairs]
        tags = [tag for _, tag in pairs]
    key = None
    if valid:
        assert instant is not None
        raw_id = user["id"]
        key = (str(raw_id), instant)
    return user, UserTag(key, tags)


@st.composite
def user_lists(draw: st.DrawFn) -> list[tuple[Any, UserTag]]:
    """Users of one session, some of them repeated (pages overlapping, crawl restarted)."""
    listed = draw(st.lists(users(), max_size=6))
    for _ in range(draw(st.integers(0, 3)) if listed else 0):
        listed.append(listed[draw(st.integers(0, len(listed) - 1))])
    # A rejoin: same user id, another join_time; or the same join written another way.
    if listed and draw(st.booleans()):
        original, tag = listed[draw(st.integers(0, len(listed) - 1))]
        if tag.key is not None:
            again = dict(original)
            instant = draw(instants)
            again["join_time"] = render_instant(instant, draw(st.integers(0, 3)))
            listed.append((again, UserTag((tag.key[0], instant), tag.samples)))
    return listed


# --------------------------------------------------------------------------- (a) parsers
def _check_float_parser(parser: Any, value: object) -> None:
    issues = ParseIssues()
    result = parser(value, "metric", issues)
    assert result is None or (isinstance(result, float) and math.isfinite(result))
    expected_count = 1 if result is None and not is_empty(value) else 0
    assert issues.counts.get("metric", 0) == expected_count
    if expected_count:
        example = issues.examples["metric"]
        assert isinstance(example, str) and len(example) <= 100


@FAST
@given(value=json_values | metric_values)
def test_float_parsers_never_raise_and_count_what_they_drop(value: object) -> None:
    for parser in FLOAT_PARSERS:
        _check_float_parser(parser, value)


@FAST
@given(value=json_values | metric_values | st.text())
def test_other_parsers_never_raise_and_return_documented_types(value: object) -> None:
    issues = ParseIssues()
    width, height = parse_resolution(value, "resolution", issues)
    assert (width is None) == (height is None)
    if width is not None:
        assert isinstance(width, int) and isinstance(height, int) and width >= 0 and height >= 0
    assert issues.total == (1 if width is None and not is_empty(value) else 0)

    stamp = parse_timestamp(value)
    assert stamp is None or (isinstance(stamp, datetime) and stamp.utcoffset() == timedelta(0))

    seconds = parse_duration_seconds(value)
    assert seconds is None or (type(seconds) is int and 0 <= seconds <= 2**31 - 1)

    flag = parse_bool(value)
    assert flag is None or isinstance(flag, bool)


@FAST
@given(data=st.data())
def test_known_units_convert_exactly(data: st.DataObject) -> None:
    for parser, units in UNIT_PARSERS:
        text, expected = data.draw(with_unit(units), label=parser.__name__)
        issues = ParseIssues()
        result = parser(text, "metric", issues)
        assert result is not None, text
        assert math.isclose(result, expected, rel_tol=1e-12, abs_tol=1e-12), (text, result, expected)
        assert not issues


@FAST
@given(x=numbers)
def test_json_numbers_are_taken_as_they_are(x: float | int) -> None:
    for parser in FLOAT_PARSERS:
        issues = ParseIssues()
        assert parser(x, "metric", issues) == float(x)
        assert not issues


@FAST
@given(value=st.sampled_from(EMPTY_VALUES))
def test_empty_values_are_null_and_not_counted(value: object) -> None:
    for parser in FLOAT_PARSERS:
        issues = ParseIssues()
        assert parser(value, "metric", issues) is None
        assert not issues
    issues = ParseIssues()
    assert parse_resolution(value, "resolution", issues) == (None, None)
    assert not issues


@FAST
@given(value=unknown_units)
def test_unknown_units_are_null_and_counted_with_an_example(value: str) -> None:
    for parser in (parse_bitrate_kbps, parse_duration_ms, parse_percent, parse_fps):
        issues = ParseIssues()
        assert parser(value, "bitrate", issues) is None
        assert issues.counts == {"bitrate": 1}
        assert issues.examples == {"bitrate": value[:100]}


@FAST
@given(width=st.integers(0, 99_999), height=st.integers(0, 99_999), sep=st.sampled_from(["*", "x", "X"]))
def test_resolution_converts_exactly(width: int, height: int, sep: str) -> None:
    issues = ParseIssues()
    assert parse_resolution(f"{width}{sep}{height}", "resolution", issues) == (width, height)
    assert not issues


@FAST
@given(stamp=valid_timestamp())
def test_valid_timestamps_parse_to_the_same_utc_instant(stamp: tuple[str, datetime]) -> None:
    text, instant = stamp
    parsed = parse_timestamp(text)
    assert parsed == instant and parsed.utcoffset() == timedelta(0)


@FAST
@given(value=garbage_text)
def test_garbage_is_counted_once_with_a_short_example(value: str) -> None:
    issues = ParseIssues()
    result = parse_bitrate_kbps(value, "bitrate", issues)
    if result is None and not is_empty(value):
        assert issues.counts == {"bitrate": 1}
        assert len(issues.examples["bitrate"]) <= 100


# --------------------------------------------------------------------------- (b), (c) mapping
@MAPPING
@given(user=json_values | users().map(lambda pair: pair[0]))
def test_user_rows_never_raises(user: Any) -> None:
    issues = ParseIssues()
    rows = user_rows("session-1", user, issues)
    if rows is not None:
        assert rows.session_user["session_id"] == "session-1"
        for row in rows.qos + rows.system:
            assert row["join_time"] == rows.session_user["join_time"]


@MAPPING
@given(pair=users())
def test_no_valid_sample_is_lost(pair: tuple[Any, UserTag]) -> None:
    user, tag = pair
    issues = ParseIssues()
    rows = user_rows("session-1", user, issues)
    if tag.key is None:
        assert rows is None
        assert issues.total >= 1  # the skip is counted
        return
    assert rows is not None
    user_id, join_time = tag.key
    assert (rows.session_user["user_id"], rows.session_user["join_time"]) == (user_id, join_time)

    # Expected keys from the generator's tags; the last sample holding a key wins.
    expected_qos: dict[tuple[datetime, str], int] = {}
    expected_system: dict[datetime, int] = {}
    for index, sample_tag in enumerate(tag.samples):
        if sample_tag.instant is None:
            continue
        for stream in sample_tag.streams:
            expected_qos[(sample_tag.instant, stream)] = index
        if sample_tag.system:
            expected_system[sample_tag.instant] = index

    got_qos = {(row["sampled_at"], row["stream"]): row for row in rows.qos}
    assert len(got_qos) == len(rows.qos), "duplicate (sampled_at, stream) rows"
    assert set(got_qos) == set(expected_qos)
    got_system = {row["sampled_at"]: row for row in rows.system}
    assert len(got_system) == len(rows.system)
    assert set(got_system) == set(expected_system)

    # Values come from the winning (last) block.
    samples_list = user.get("user_qos") or []
    for (instant, stream), index in expected_qos.items():
        block = samples_list[index][stream]
        row = got_qos[(instant, stream)]
        scratch = ParseIssues()
        assert row["bitrate_kbps"] == parse_bitrate_kbps(block.get("bitrate"), "bitrate", scratch)
        assert row["latency_ms"] == parse_duration_ms(block.get("latency"), "latency", scratch)
        assert row["frame_rate_fps"] == parse_fps(block.get("frame_rate"), "frame_rate", scratch)
        assert (row["resolution_width"], row["resolution_height"]) == parse_resolution(
            block.get("resolution"), "resolution", scratch)
        assert row["user_id"] == user_id and row["join_time"] == join_time
    for instant, index in expected_system.items():
        sample = samples_list[index]
        row = got_system[instant]
        cpu = sample.get("cpu_usage") if isinstance(sample.get("cpu_usage"), dict) else {}
        scratch = ParseIssues()
        assert row["zoom_avg_cpu_pct"] == parse_percent(cpu.get("zoom_avg_cpu_usage"), "x", scratch)
        assert row["cpu_pressure_level"] is None or isinstance(row["cpu_pressure_level"], str)


@MAPPING
@given(listed=user_lists())
def test_dedupe_keeps_one_entry_per_join(listed: list[tuple[Any, UserTag]]) -> None:
    payload = [user for user, _ in listed]
    deduped = list(unique_users(iter(payload)))
    keyed = [row for row in (user_rows("s", user, ParseIssues()) for user in deduped) if row]
    keys = [(row.session_user["user_id"], row.session_user["join_time"]) for row in keyed]
    assert len(keys) == len(set(keys))
    assert set(keys) == {tag.key for _, tag in listed if tag.key is not None}


# --------------------------------------------------------------------------- (d) loading
_session_numbers = itertools.count()


def _session(session_id: str) -> dict[str, Any]:
    return zoom_session(session_id, name="generated", start=T0 - timedelta(minutes=1),
                        length=timedelta(minutes=61), users=3, details=False,
                        has_video=True, audio_quality="good")


@pytest.fixture
def warehouse(tmp_path) -> Iterator[Warehouse]:
    wh = Warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}")
    wh.ensure_schema()
    yield wh
    wh.dispose()


def _session_contents(wh: Warehouse, session_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of one session, raw as SQLite stores it, without ``loaded_at``."""
    contents: dict[str, list[tuple[Any, ...]]] = {}
    with wh.engine.connect() as conn:
        for table in schema.TABLES:
            if "session_id" not in table.c:
                continue
            columns = [c.name for c in table.columns if c.name != "loaded_at"]
            order = ", ".join(c.name for c in table.primary_key.columns)
            query = (f"SELECT {', '.join(columns)} FROM {table.name} "
                     f"WHERE session_id = :sid ORDER BY {order}")
            contents[table.name] = [tuple(row) for row in conn.execute(sa.text(query), {"sid": session_id})]
    return contents


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after}


@LOADING
@given(listed=user_lists())
def test_loading_generated_users_matches_user_rows_and_is_idempotent(
    warehouse: Warehouse, listed: list[tuple[Any, UserTag]]
) -> None:
    session_id = f"sfk/{next(_session_numbers)}+{uuid.uuid4().hex[:8]}=="
    session = _session(session_id)
    payload = [user for user, _ in listed]

    derived = (user_rows(session_id, u, ParseIssues()) for u in unique_users(payload))  # as the loader
    expected = [row for row in derived if row]
    expected_counts = {
        "sessions": 1,
        "raw_sessions": 1,
        "session_users": len(expected),
        "raw_session_users": len(expected),
        "user_qos": sum(len(r.qos) for r in expected),
        "user_system_qos": sum(len(r.system) for r in expected),
        "daily_usage": 0,
        "pipeline_runs": 0,
    }
    assert len(expected) == len({tag.key for _, tag in listed if tag.key is not None})

    before = warehouse.count_rows()
    first_issues = ParseIssues()
    result = warehouse.load_sessions([SessionInput(session, payload)], first_issues)
    after_first = warehouse.count_rows()
    assert result.sessions_loaded
    assert _delta(after_first, before) == expected_counts
    assert (result.users, result.qos_rows, result.system_rows) == (
        expected_counts["session_users"], expected_counts["user_qos"], expected_counts["user_system_qos"])
    first = _session_contents(warehouse, session_id)

    second_issues = ParseIssues()
    warehouse.load_sessions([SessionInput(session, payload)], second_issues)
    assert warehouse.count_rows() == after_first
    assert _session_contents(warehouse, session_id) == first
    assert second_issues.counts == first_issues.counts


@LOADING
@given(listed=user_lists(), session_extra=st.dictionaries(
    st.sampled_from(["end_time", "duration", "user_count", "has_voip", "session_key", "video_quality",
                     "surprise_field"]), json_values, max_size=4))
def test_odd_session_fields_never_fail_a_load(
    warehouse: Warehouse, listed: list[tuple[Any, UserTag]], session_extra: dict[str, Any]
) -> None:
    session_id = f"odd-{next(_session_numbers)}-{uuid.uuid4().hex[:8]}"
    session = {**_session(session_id), **session_extra}
    issues = ParseIssues()
    assert session_row(session, ParseIssues()) is not None
    before = warehouse.count_rows()
    result = warehouse.load_sessions([SessionInput(session, [user for user, _ in listed])], issues)
    assert result.sessions_loaded
    assert _delta(warehouse.count_rows(), before)["sessions"] == 1
