"""Map Zoom's session and QoS-user objects onto warehouse rows (see docs/warehouse.md).

Pure functions with no database or Airflow dependency, so the mapping can be tested with
hand-written Zoom objects and re-run later over the raw layer. Nothing here raises on odd
input: values that cannot be used are loaded as NULL and counted in :class:`ParseIssues`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

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
    storable_text,
)
from zoom_qos.zoom.bodies import JsonObject
from zoom_qos.zoom.ids import MAX_SESSION_ID_BYTES

__all__ = [
    "GRADE_COLUMNS",
    "SESSION_USER_TEXT_FIELDS",
    "STREAM_METRICS",
    "GradeIndex",
    "UserRows",
    "daily_usage_rows",
    "grade_index",
    "session_row",
    "unique_users",
    "user_rows",
]

#: A sample block holding any of these keys is a media stream (one ``user_qos`` row).
#: Detecting streams by content, not by a fixed list of names, means a block Zoom adds
#: later (another ``*_device_from_rwg``) loads as a new ``stream`` value with no code change.
STREAM_METRICS: frozenset[str] = frozenset(
    {"bitrate", "latency", "jitter", "avg_loss", "max_loss", "resolution", "frame_rate"}
)
#: Blocks that carry system, not stream, figures (they go to ``user_system_qos``).
SYSTEM_BLOCKS: frozenset[str] = frozenset({"cpu_usage", "wifi_rssi"})
_SYSTEM_KEYS = SYSTEM_BLOCKS | {"cpu_pressure_level"}

_SESSION_TEXT_FIELDS = (
    "session_name",
    "session_key",
    "audio_quality",
    "video_quality",
    "screen_share_quality",
)
_SESSION_BOOL_FIELDS = ("has_voip", "has_video", "has_screen_share", "has_recording", "has_pstn")
_INT32_MAX = 2**31 - 1
#: How far a session's ``duration`` may be from ``end_time - start_time`` and still be believed.
#: The published definition documents "hh:mm:ss" yet shows "30:00" for a ten-minute session.
DURATION_TOLERANCE_SECONDS = 60
#: ``session_users`` columns filled from ``GET …/users`` (the optional per-join grades).
GRADE_COLUMNS = ("participant_uuid", "audio_quality", "video_quality", "screen_share_quality")
#: Per join (user id, join time as an instant): its grade columns.
GradeIndex = dict[tuple[str, datetime], dict[str, str | None]]

_Parser = Callable[[object, str, ParseIssues], "float | None"]
_STREAM_COLUMNS: tuple[tuple[str, str, _Parser], ...] = (
    ("bitrate", "bitrate_kbps", parse_bitrate_kbps),
    ("latency", "latency_ms", parse_duration_ms),
    ("jitter", "jitter_ms", parse_duration_ms),
    ("avg_loss", "avg_loss_pct", parse_percent),
    ("max_loss", "max_loss_pct", parse_percent),
    ("frame_rate", "frame_rate_fps", parse_fps),
)
_CPU_COLUMNS = (
    ("zoom_min_cpu_usage", "zoom_min_cpu_pct"),
    ("zoom_avg_cpu_usage", "zoom_avg_cpu_pct"),
    ("zoom_max_cpu_usage", "zoom_max_cpu_pct"),
    ("system_max_cpu_usage", "system_max_cpu_pct"),
)
_RSSI_COLUMNS = (
    ("max_rssi", "wifi_max_rssi"),
    ("avg_rssi", "wifi_avg_rssi"),
    ("min_rssi", "wifi_min_rssi"),
)


#: Text fields copied as-is from the Zoom user object into ``session_users``.
SESSION_USER_TEXT_FIELDS: tuple[str, ...] = (
    "user_key",
    "device",
    "client",
    "os",
    "os_version",
    "browser_name",
    "browser_version",
    "network_type",
    "ip_address",
    "location",
    "microphone",
    "speaker",
    "camera",
    "data_center",
    "connection_type",
)


@dataclass
class UserRows:
    """Rows derived from one Zoom user object (one join), keyed by warehouse column names.

    ``loaded_at`` is absent: the loader stamps one time for the whole session load.
    """

    session_user: dict[str, Any]
    qos: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def _text(value: object) -> str | None:
    """Text column value: empty-ish → None, scalars via str(), nested objects as JSON.

    Text is made storable (see ``storable_text``): one odd character must not fail a load.
    """
    if is_empty(value):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, (Mapping, list, tuple)):
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    return storable_text(text)


def _bool(mapping: Mapping[str, Any], key: str, issues: ParseIssues) -> bool | None:
    value = mapping.get(key)
    result = parse_bool(value)
    if result is None and not is_empty(value):
        issues.add(key, value)
    return result


def _timestamp(mapping: Mapping[str, Any], key: str, issues: ParseIssues) -> datetime | None:
    value = mapping.get(key)
    result = parse_timestamp(value)
    if result is None and not is_empty(value):
        issues.add(key, value)
    return result


def _count(value: object, key: str, issues: ParseIssues) -> int | None:
    """Non-negative 32-bit integer (``user_count``); JSON ints or digit strings."""
    if is_empty(value):
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip()) if len(value) < 12 else None
    if number is None or not 0 <= number <= _INT32_MAX:
        issues.add(key, value)
        return None
    return number


def _key_text(value: object) -> str | None:
    """A key column (id): str/int only, kept exactly as sent (no stripping), but storable: a NUL
    becomes U+FFFD as in the raw layer's JSON, not dropped, so ``a\x00b`` is not keyed as ``ab``."""
    if isinstance(value, bool) or is_empty(value):
        return None
    if isinstance(value, str):
        return storable_text(value.replace("\x00", "\ufffd")) or None
    if isinstance(value, int):
        return str(value)
    return None


def session_row(session: Mapping[str, Any], issues: ParseIssues) -> dict[str, Any] | None:
    """The ``sessions`` row for one listed session, or None if it has no usable key.

    A session without ``id`` or a parseable ``start_time`` cannot be keyed or placed in a
    window, so it is counted and skipped rather than loaded half-empty; so is one whose id is
    longer than ``MAX_SESSION_ID_BYTES`` (never requested either), which a PostgreSQL key cannot
    be relied on to hold.
    """
    if not isinstance(session, Mapping):
        issues.add("session", session)
        return None
    session_id = _key_text(session.get("id"))
    if session_id is None or len(session_id.encode("utf-8")) > MAX_SESSION_ID_BYTES:
        issues.add("session_id", session.get("id"))
        return None
    start_time = parse_timestamp(session.get("start_time"))
    if start_time is None:
        issues.add("start_time", session.get("start_time"))
        return None
    end_time = _timestamp(session, "end_time", issues)

    raw_duration = session.get("duration")
    duration = parse_duration_seconds(raw_duration)
    elapsed = None
    if end_time is not None and end_time >= start_time:
        seconds = int((end_time - start_time).total_seconds())
        elapsed = seconds if seconds <= _INT32_MAX else None
    if duration is not None and elapsed is not None and abs(duration - elapsed) > DURATION_TOLERANCE_SECONDS:
        duration = None  # the timestamps are trusted: the value counts as unparsed
    if duration is None:
        if not is_empty(raw_duration):
            issues.add("duration", raw_duration)
        duration = elapsed

    row: dict[str, Any] = {
        "session_id": session_id,
        "start_time": start_time,
        "end_time": end_time,
        "duration_seconds": duration,
        "user_count": _count(session.get("user_count"), "user_count", issues),
    }
    for name in _SESSION_TEXT_FIELDS:
        row[name] = _text(session.get(name))
    for name in _SESSION_BOOL_FIELDS:
        row[name] = _bool(session, name, issues)
    return row


def _stream_row(row: dict[str, Any], block: Mapping[str, Any], issues: ParseIssues) -> dict[str, Any]:
    """Fill ``row`` (its key columns set) with one media block's figures. The hottest loop of a
    load (one call per sample and stream), hence the plain loop into one dict."""
    get = block.get
    for key, column, parser in _STREAM_COLUMNS:
        row[column] = parser(get(key), key, issues)
    row["resolution_width"], row["resolution_height"] = parse_resolution(get("resolution"), "resolution",
                                                                         issues)
    return row


def _sub_block(sample: Mapping[str, Any], key: str, issues: ParseIssues) -> Mapping[str, Any]:
    block = sample.get(key)
    if isinstance(block, Mapping):
        return block
    if not is_empty(block):
        issues.add(key, block)
    return {}


def _system_row(sample: Mapping[str, Any], issues: ParseIssues) -> dict[str, Any]:
    cpu = _sub_block(sample, "cpu_usage", issues)
    rssi = _sub_block(sample, "wifi_rssi", issues)
    row: dict[str, Any] = {column: parse_percent(cpu.get(key), key, issues) for key, column in _CPU_COLUMNS}
    for key, column in _RSSI_COLUMNS:
        row[column] = parse_number(rssi.get(key), key, issues)
    row["wifi_rssi_unit"] = _text(rssi.get("rssi_unit"))
    row["cpu_pressure_level"] = _text(sample.get("cpu_pressure_level"))
    return row


def user_rows(
    session_id: str, user: Mapping[str, Any], issues: ParseIssues, grades: GradeIndex | None = None
) -> UserRows | None:
    """All rows for one join of one user, or None if the join cannot be keyed.

    The key is (session_id, user ``id``, ``join_time``); without both a user cannot be
    told apart from a rejoin, so it is counted and skipped. ``grades`` (from
    :func:`grade_index`) fills the join's grade columns, matched on that key; NULL without a match.
    """
    if not isinstance(user, Mapping):
        issues.add("user", user)
        return None
    user_id = _key_text(user.get("id"))
    if user_id is None:
        issues.add("id", user.get("id"))
        return None
    join_time = parse_timestamp(user.get("join_time"))
    if join_time is None:
        issues.add("join_time", user.get("join_time"))
        return None

    key = {"session_id": session_id, "user_id": user_id, "join_time": join_time}
    session_user: dict[str, Any] = {
        **key,
        "leave_time": _timestamp(user, "leave_time", issues),
        "user_name": _text(user.get("name")),
    }
    for name in SESSION_USER_TEXT_FIELDS:
        session_user[name] = _text(user.get(name))
    session_user["is_original_host"] = _bool(user, "is_original_host", issues)
    matched = grades.get((user_id, join_time)) if grades else None
    for name in GRADE_COLUMNS:
        session_user[name] = matched[name] if matched else None

    qos: dict[tuple[datetime, str], dict[str, Any]] = {}
    system: dict[datetime, dict[str, Any]] = {}
    samples = user.get("user_qos")
    if samples is None:
        samples = []
    elif not isinstance(samples, list):
        issues.add("user_qos", samples)
        samples = []
    for sample in samples:
        if not isinstance(sample, Mapping):
            issues.add("user_qos_sample", sample)
            continue
        sampled_at = parse_timestamp(sample.get("date_time"))
        if sampled_at is None:
            issues.add("date_time", sample.get("date_time"))
            continue
        sample_key = {**key, "sampled_at": sampled_at}
        for stream, block in sample.items():
            if stream in _SYSTEM_KEYS or not isinstance(block, Mapping):
                continue
            if STREAM_METRICS.isdisjoint(block.keys()):
                continue
            # Same (sampled_at, stream) twice in one join: the last one wins.
            stream = stream if stream.__class__ is str else str(stream)
            qos[(sampled_at, stream)] = _stream_row({**sample_key, "stream": stream}, block, issues)
        if not _SYSTEM_KEYS.isdisjoint(sample.keys()):
            system[sampled_at] = {**sample_key, **_system_row(sample, issues)}

    return UserRows(
        session_user=session_user,
        qos=list(qos.values()),
        system=list(system.values()),
        raw={**key, "payload": user if isinstance(user, JsonObject) else dict(user)},
    )


def grade_index(entries: Iterable[Mapping[str, Any]], issues: ParseIssues) -> GradeIndex:
    """The joins of ``GET /videosdk/sessions/{id}/users`` by (``id``, ``join_time``), with their
    grade columns; entries that cannot be keyed are counted and left out (a rejoin is its own key)."""
    index: GradeIndex = {}
    for entry in entries:
        key = _join_key(entry)
        if key is None:
            issues.add("grades_join", entry.get("id") if isinstance(entry, Mapping) else entry)
            continue
        index[key] = {name: _text(entry.get(name)) for name in GRADE_COLUMNS}
    return index


def daily_usage_rows(dates: Iterable[object], issues: ParseIssues) -> list[dict[str, Any]]:
    """``daily_usage`` rows (without ``fetched_at``) from the ``dates`` of Zoom's daily report;
    an entry without a readable ``date`` is counted and skipped, an odd count loads as NULL."""
    rows = []
    for entry in dates:
        if not isinstance(entry, Mapping):
            issues.add("daily_usage", entry)
            continue
        try:
            day = date.fromisoformat(str(entry.get("date"))[:10])
        except ValueError:
            issues.add("daily_usage_date", entry.get("date"))
            continue
        rows.append({"usage_date": day,
                     **{name: _count(entry.get(name), name, issues)
                        for name in ("sessions", "users", "session_minutes")}})
    return rows


def _join_key(user: object) -> tuple[str, datetime] | None:
    """(id, join_time as a UTC instant) of a user entry, or None if it cannot be keyed."""
    if not isinstance(user, Mapping):
        return None
    user_id = _key_text(user.get("id"))
    join_time = parse_timestamp(user.get("join_time"))
    if user_id is None or join_time is None:
        return None
    return (user_id, join_time)


def _join_digest(key: tuple[str, datetime]) -> bytes:
    """16 bytes standing for one join: a seen-set of these costs ~80 bytes per join, not ~200."""
    user_id, join_time = key
    text = f"{len(user_id)}:{user_id}|{join_time.isoformat()}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def unique_users(users: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Lazily, one entry per (id, join_time); the FIRST occurrence wins.

    Pages can overlap and a crawl restarted after an expired page token re-reads users, so the
    same join can arrive twice. Sessions can be too big to hold in memory, and without
    look-ahead only the first occurrence can win. ``join_time`` is compared as an instant, so
    ``...Z`` and ``...+00:00`` are the same join. Only a 128-bit digest of each key is
    remembered (a collision is as likely as guessing a random UUID twice). Unkeyable users pass
    through untouched (``user_rows`` counts them); they are not remembered, so ``id()`` reuse
    cannot drop one.
    """
    seen: set[bytes] = set()
    for user in users:
        key = _join_key(user)
        if key is not None:
            digest = _join_digest(key)
            if digest in seen:
                continue
            seen.add(digest)
        yield user
