"""A reference implementation of the warehouse contract's call-quality rules (v3, "call quality,
scored and explained" in WAREHOUSE.md), for tests: plain Python over lists of row dicts, no SQL and
nothing from ``zoom_qos.warehouse``, so a test can compare the warehouse's ``join_quality`` with an
independent reading of the same rules.

Inputs are rows shaped like the warehouse tables (keys named as their columns):

- ``session_users``: ``session_id``, ``user_id``, ``join_time``, ``leave_time``;
- ``user_qos``: ``session_id``, ``user_id``, ``join_time``, ``sampled_at``, ``stream``, ``latency_ms``,
  ``jitter_ms``, ``avg_loss_pct``, ``frame_rate_fps``, ``resolution_height``;
- ``user_system_qos``: the join's key, ``sampled_at``, ``zoom_max_cpu_pct``, ``system_max_cpu_pct``,
  ``cpu_pressure_level``, ``wifi_avg_rssi``;

and thresholds ``{media_type: {"latency_ms", "jitter_ms", "loss_pct", "min_frame_rate_fps",
"min_resolution_height", "issue_min_share"}}`` (``DEFAULT_THRESHOLDS``). Times are datetimes.
The contract covers sessions that are not ``live``: callers pass those sessions' rows only.

Where the contract is silent the product's decisions apply (the SQL implementation follows them):

- media type: a stream starting with ``audio`` is audio, ``video`` video, ``as_`` screen_share, any
  other ``other`` (never scored); direction: ``*_input``/``*_device_to_rwg`` send,
  ``*_output``/``*_device_from_rwg`` receive, else None;
- a sample is *rated* when its media type has a thresholds row and at least one of latency, jitter
  and loss is present; *poor* when rated and one of them is strictly above its threshold;
- one ``join_quality`` row per join and media type (audio, video, screen_share) with at least one
  ``user_qos`` row of that media type, rated or not;
- MOS averages take the side's samples with latency, jitter and loss all present;
- high_latency/high_jitter/high_loss: share over all the join's rated samples of the media type
  (any direction, None included; a None metric does not meet the condition); low_frame_rate and
  low_resolution: video only, over its rated send-side samples; cpu_pressure and weak_wifi: share of
  the join's ``user_system_qos`` rows (none: not raised); raised at share >= issue_min_share;
  reconnected: a later join of the same user in the session at most 120 s after this leave_time;
- a side is poor with >= 1 rated sample and its poor share >= issue_min_share;
- a sample's minute is ``sampled_at`` cut to the minute; "the minutes it is poor" are those with a
  poor sample of the media type (any direction); a system condition holds in a minute when any of
  the join's system rows of that minute meets it; "most" is strictly more than half;
- remote_sender: of the minutes R with a poor receive sample, those where another user of the
  session has a poor send-side sample of the media type; cause_user_id is the user with the most
  such minutes (ties: the smallest id); session_wide: of R, the minutes where twice the number of
  the session's joins with a poor receive sample reaches N, the joins with rated samples of the
  media type.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "CAUSES",
    "DEFAULT_THRESHOLDS",
    "ISSUES",
    "MEDIA_TYPES",
    "cpu_condition",
    "direction",
    "is_poor",
    "is_rated",
    "join_quality",
    "media_type",
    "minute",
    "mos",
    "session_audio_mos",
    "session_summary",
    "wifi_condition",
]

MEDIA_TYPES = ("audio", "video", "screen_share")
ISSUES = (
    "high_latency",
    "high_jitter",
    "high_loss",
    "low_frame_rate",
    "low_resolution",
    "cpu_pressure",
    "weak_wifi",
    "reconnected",
)
#: In the order they are tried; ``none`` when neither side is poor.
CAUSES = ("device_cpu", "weak_wifi", "own_uplink", "remote_sender", "session_wide", "own_downlink", "unknown")
SCORE_VERSION = 1
RECONNECT_WITHIN = timedelta(seconds=120)

DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    media: {
        "latency_ms": 150.0,
        "jitter_ms": 40.0,
        "loss_pct": 2.0,
        "min_frame_rate_fps": 10.0,
        "min_resolution_height": 360.0,
        "issue_min_share": 0.2,
    }
    for media in MEDIA_TYPES
}

#: (user_qos column, thresholds key, issue) of the three network metrics.
_METRICS = (
    ("latency_ms", "latency_ms", "high_latency"),
    ("jitter_ms", "jitter_ms", "high_jitter"),
    ("avg_loss_pct", "loss_pct", "high_loss"),
)

JoinKey = tuple[str, str, datetime]
Thresholds = Mapping[str, Mapping[str, float | None]]


# ------------------------------------------------------------------------------------------ samples
def media_type(stream: str) -> str:
    """``audio``, ``video``, ``screen_share`` or ``other`` (not scored)."""
    if stream.startswith("audio"):
        return "audio"
    if stream.startswith("video"):
        return "video"
    if stream.startswith("as_"):
        return "screen_share"
    return "other"


def direction(stream: str) -> str | None:
    """``send`` (what the user sends), ``receive`` (what the user receives) or None."""
    if stream.endswith(("_input", "_device_to_rwg")):
        return "send"
    if stream.endswith(("_output", "_device_from_rwg")):
        return "receive"
    return None


def mos(
    latency_ms: float | None, jitter_ms: float | None, avg_loss_pct: float | None
) -> tuple[float | None, float | None]:
    """``(r_factor, mos)`` of an audio sample by the simplified E-model (score version 1);
    ``(None, None)`` when latency, jitter or loss is missing."""
    if latency_ms is None or jitter_ms is None or avg_loss_pct is None:
        return None, None
    d = latency_ms + 2 * jitter_ms + 10
    r = 93.2 - d / 40 if d < 160 else 93.2 - (d - 120) / 10
    r = min(100.0, max(0.0, r - 2.5 * avg_loss_pct))
    score = 1 + 0.035 * r + 0.000007 * r * (r - 60) * (100 - r)
    return r, min(4.5, max(1.0, score))


def _above(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


def _below(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value < limit


def is_rated(row: Mapping[str, Any], thresholds: Thresholds) -> bool:
    """Its media type has a thresholds row and latency, jitter or loss is present."""
    return media_type(row["stream"]) in thresholds and any(row.get(col) is not None for col, _, _ in _METRICS)


def is_poor(row: Mapping[str, Any], thresholds: Thresholds) -> bool:
    """Rated, and latency, jitter or loss strictly above its threshold."""
    if not is_rated(row, thresholds):
        return False
    limits = thresholds[media_type(row["stream"])]
    return any(_above(row.get(col), limits.get(key)) for col, key, _ in _METRICS)


def cpu_condition(row: Mapping[str, Any]) -> bool:
    """A ``user_system_qos`` row under CPU pressure."""
    zoom, system = row.get("zoom_max_cpu_pct"), row.get("system_max_cpu_pct")
    return (
        (zoom is not None and zoom >= 90)
        or (system is not None and system >= 95)
        or row.get("cpu_pressure_level") in ("serious", "critical")
    )


def wifi_condition(row: Mapping[str, Any]) -> bool:
    """A ``user_system_qos`` row on a weak Wi-Fi signal."""
    rssi = row.get("wifi_avg_rssi")
    return rssi is not None and rssi < -70


def minute(at: datetime) -> datetime:
    """``sampled_at`` cut to the minute."""
    return at.replace(second=0, microsecond=0)


def _key(row: Mapping[str, Any]) -> JoinKey:
    return row["session_id"], row["user_id"], row["join_time"]


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------------------------ join_quality
def join_quality(
    session_users: Iterable[Mapping[str, Any]],
    user_qos: Iterable[Mapping[str, Any]],
    user_system_qos: Iterable[Mapping[str, Any]],
    thresholds: Thresholds | None = None,
) -> list[dict[str, Any]]:
    """The ``join_quality`` rows of the given sessions, ordered by session, join time, user and media.

    Each row: ``session_id``, ``user_id``, ``join_time``, ``media_type``, ``send_samples``,
    ``send_poor_share``, ``receive_samples``, ``receive_poor_share``, ``avg_mos_send``,
    ``avg_mos_receive``, ``min_mos_receive``, ``issues``, ``cause``, ``cause_user_id``,
    ``score_version``.
    """
    limits_of = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    joins = list(session_users)
    samples: dict[tuple[JoinKey, str], list[Mapping[str, Any]]] = defaultdict(list)
    for sample in user_qos:
        media = media_type(sample["stream"])
        if media in MEDIA_TYPES:
            samples[(_key(sample), media)].append(sample)
    system: dict[JoinKey, list[Mapping[str, Any]]] = defaultdict(list)
    for sys_row in user_system_qos:
        system[_key(sys_row)].append(sys_row)

    # Per session and media type: each join's poor-send and poor-receive minutes, and who is rated.
    poor_send: dict[tuple[str, str], dict[JoinKey, set[datetime]]] = defaultdict(dict)
    poor_receive: dict[tuple[str, str], dict[JoinKey, set[datetime]]] = defaultdict(dict)
    rated_joins: dict[tuple[str, str], set[JoinKey]] = defaultdict(set)
    for (key, media), rows in samples.items():
        group = (key[0], media)
        for sample in rows:
            if is_rated(sample, limits_of):
                rated_joins[group].add(key)
            if is_poor(sample, limits_of):
                side = direction(sample["stream"])
                if side == "send":
                    poor_send[group].setdefault(key, set()).add(minute(sample["sampled_at"]))
                elif side == "receive":
                    poor_receive[group].setdefault(key, set()).add(minute(sample["sampled_at"]))

    out: list[dict[str, Any]] = []
    order = sorted(
        samples.items(), key=lambda item: (item[0][0][0], item[0][0][2], item[0][0][1], item[0][1])
    )
    for (key, media), rows in order:
        session_id, user_id, join_time = key
        limits = limits_of.get(media)
        min_share = limits.get("issue_min_share") if limits is not None else None
        rated = [r for r in rows if is_rated(r, limits_of)]
        poor = [r for r in rated if is_poor(r, limits_of)]
        send = [r for r in rated if direction(r["stream"]) == "send"]
        receive = [r for r in rated if direction(r["stream"]) == "receive"]
        send_share = _share(sum(is_poor(r, limits_of) for r in send), len(send))
        receive_share = _share(sum(is_poor(r, limits_of) for r in receive), len(receive))

        def reached(share: float | None, limit: float | None = min_share) -> bool:
            return share is not None and limit is not None and share >= limit

        row: dict[str, Any] = {
            "session_id": session_id,
            "user_id": user_id,
            "join_time": join_time,
            "media_type": media,
            "send_samples": len(send),
            "send_poor_share": send_share,
            "receive_samples": len(receive),
            "receive_poor_share": receive_share,
            "avg_mos_send": None,
            "avg_mos_receive": None,
            "min_mos_receive": None,
        }
        if media == "audio":
            scores: dict[str | None, list[float]] = defaultdict(list)
            for r in rows:
                score = mos(r.get("latency_ms"), r.get("jitter_ms"), r.get("avg_loss_pct"))[1]
                if score is not None:
                    scores[direction(r["stream"])].append(score)
            row["avg_mos_send"] = _mean(scores["send"])
            row["avg_mos_receive"] = _mean(scores["receive"])
            row["min_mos_receive"] = min(scores["receive"], default=None)

        raised: set[str] = set()
        for col, limit_key, issue in _METRICS:
            limit = limits.get(limit_key) if limits is not None else None
            if reached(_share(sum(_above(r.get(col), limit) for r in rated), len(rated))):
                raised.add(issue)
        if media == "video" and limits is not None:
            for col, limit_key, issue in (
                ("frame_rate_fps", "min_frame_rate_fps", "low_frame_rate"),
                ("resolution_height", "min_resolution_height", "low_resolution"),
            ):
                limit = limits.get(limit_key)
                if reached(_share(sum(_below(r.get(col), limit) for r in send), len(send))):
                    raised.add(issue)
        sys_rows = system.get(key, [])
        if reached(_share(sum(map(cpu_condition, sys_rows)), len(sys_rows))):
            raised.add("cpu_pressure")
        if reached(_share(sum(map(wifi_condition, sys_rows)), len(sys_rows))):
            raised.add("weak_wifi")
        if _reconnected(key, joins):
            raised.add("reconnected")
        row["issues"] = ",".join(issue for issue in ISSUES if issue in raised)

        send_poor = bool(send) and reached(send_share)
        receive_poor = bool(receive) and reached(receive_share)
        cause, cause_user = "none", None
        if send_poor or receive_poor:
            group = (session_id, media)
            poor_minutes = {minute(r["sampled_at"]) for r in poor}
            receive_minutes = poor_receive[group].get(key, set())
            senders = _remote_senders(key, receive_minutes, poor_send[group])
            if _most(_minutes_meeting(sys_rows, poor_minutes, cpu_condition), poor_minutes):
                cause = "device_cpu"
            elif _most(_minutes_meeting(sys_rows, poor_minutes, wifi_condition), poor_minutes):
                cause = "weak_wifi"
            elif send_poor:
                cause = "own_uplink"
            elif receive_poor and _most(set().union(*senders.values()), receive_minutes):
                cause = "remote_sender"
                cause_user = min(senders, key=lambda uid: (-len(senders[uid]), uid))
            elif receive_poor and _most(
                _session_wide_minutes(receive_minutes, poor_receive[group], len(rated_joins[group])),
                receive_minutes,
            ):
                cause = "session_wide"
            elif receive_poor:
                cause = "own_downlink"
            else:
                cause = "unknown"
        row.update(cause=cause, cause_user_id=cause_user, score_version=SCORE_VERSION)
        out.append(row)
    return out


def _reconnected(key: JoinKey, joins: list[Mapping[str, Any]]) -> bool:
    """The same user joined the session again after this join, within 120 s of its leave_time."""
    this = next((j for j in joins if _key(j) == key), None)
    if this is None or this.get("leave_time") is None:
        return False
    until = this["leave_time"] + RECONNECT_WITHIN
    return any(
        j["session_id"] == key[0] and j["user_id"] == key[1] and key[2] < j["join_time"] <= until
        for j in joins
    )


def _most(hits: set[datetime], minutes: set[datetime]) -> bool:
    """Strictly more than half of ``minutes`` are in ``hits``."""
    return len(hits & minutes) * 2 > len(minutes)


def _minutes_meeting(
    sys_rows: list[Mapping[str, Any]], minutes: set[datetime], condition: Callable[[Mapping[str, Any]], bool]
) -> set[datetime]:
    """Of ``minutes``, those in which one of the join's system rows meets ``condition``."""
    return {minute(r["sampled_at"]) for r in sys_rows if condition(r)} & minutes


def _remote_senders(
    key: JoinKey, receive_minutes: set[datetime], poor_send: Mapping[JoinKey, set[datetime]]
) -> dict[str, set[datetime]]:
    """Other users of the session (another user_id) -> the minutes of ``receive_minutes`` in which
    they had a poor send-side sample (users with none left out)."""
    found: dict[str, set[datetime]] = defaultdict(set)
    for other, minutes in poor_send.items():
        if other[1] != key[1]:
            found[other[1]] |= minutes & receive_minutes
    return {uid: minutes for uid, minutes in found.items() if minutes}


def _session_wide_minutes(
    receive_minutes: set[datetime], poor_receive: Mapping[JoinKey, set[datetime]], rated_joins: int
) -> set[datetime]:
    """Of ``receive_minutes``, those in which at least half of the session's rated joins (this one
    included) had a poor receive sample."""
    return {
        m
        for m in receive_minutes
        if 2 * sum(m in minutes for minutes in poor_receive.values()) >= rated_joins
    }


# ----------------------------------------------------------------------------------------- sessions
def session_summary(join_rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``poor_joins`` (distinct joins with a cause other than none in any media type) and
    ``main_cause`` (the most frequent such cause among the rows, ties by the cause order; None
    when none) of one session's ``join_quality`` rows."""
    poor = [r for r in join_rows if r["cause"] != "none"]
    counts = Counter(r["cause"] for r in poor)
    main = min(counts, key=lambda c: (-counts[c], CAUSES.index(c))) if counts else None
    return {"poor_joins": len({_key(r) for r in poor}), "main_cause": main}


def session_audio_mos(user_qos: Iterable[Mapping[str, Any]]) -> float | None:
    """``session_quality.audio_mos`` as read here: the mean MOS of the session's receive-side audio
    samples (those with latency, jitter and loss present); None without any."""
    scores = [
        score
        for r in user_qos
        if media_type(r["stream"]) == "audio" and direction(r["stream"]) == "receive"
        for score in [mos(r.get("latency_ms"), r.get("jitter_ms"), r.get("avg_loss_pct"))[1]]
        if score is not None
    ]
    return _mean(scores)
