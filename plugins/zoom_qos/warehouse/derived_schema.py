"""The derived tables: call quality scored per join, per session and per day, kept by the load.

The BI views ``join_quality``, ``session_quality``, ``daily_quality``, ``daily_quality_breakdown``
and ``daily_causes`` read these tables instead of aggregating raw samples at query time, so a
dashboard tile costs a few index reads whatever the warehouse's size. The load maintains them in
the transaction of the session rows they derive from (``zoom_qos.warehouse.derived``); they hold
the sessions that are not ``live``. Declared beside ``schema`` on the same ``METADATA`` (revision
0006_scoring creates them).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from zoom_qos.warehouse.columns import METADATA, UtcDateTime, double, integer, join_key, text
from zoom_qos.warehouse.scoring import MEASURES, MEDIA_TYPES

__all__ = [
    "DERIVED_TABLES",
    "derived_state",
    "quality_daily",
    "quality_daily_causes",
    "quality_join_days",
    "quality_joins",
    "quality_sessions",
    "quality_value_counts",
]


def _count(name: str, comment: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, comment=comment)


def _day(comment: str) -> sa.Column[Any]:
    return sa.Column("day", sa.Date(), primary_key=True, comment=comment)


def _media(comment: str = "audio, video or screen_share.") -> sa.Column[str]:
    return sa.Column("media_type", sa.Text(), primary_key=True, comment=comment)


quality_joins = sa.Table(
    "quality_joins",
    METADATA,
    *join_key(" (session_users)."),
    _media(),
    sa.Column("day", sa.Date(), nullable=False, comment="UTC day of join_time (daily_causes groups by it)."),
    _count("send_samples", "Rated send-side samples (the user's *_input and *_device_to_rwg streams)."),
    _count("send_poor_samples", "Of send_samples, those rated poor."),
    double("send_poor_share", "send_poor_samples / send_samples; NULL when 0 samples."),
    _count("receive_samples", "Rated receive-side samples (*_output and *_device_from_rwg streams)."),
    _count("receive_poor_samples", "Of receive_samples, those rated poor."),
    double("receive_poor_share", "receive_poor_samples / receive_samples; NULL when 0 samples."),
    double("avg_mos_send", "Mean MOS of the send-side audio samples (audio only, else NULL)."),
    double("avg_mos_receive", "Mean MOS of the receive-side audio samples (audio only, else NULL)."),
    double("min_mos_receive", "Lowest MOS of the receive-side audio samples (audio only, else NULL)."),
    sa.Column("issues", sa.Text(), nullable=False, comment="Raised issues, comma-separated, '' when none."),
    sa.Column("cause", sa.Text(), nullable=False, comment="Cause of the poor media, 'none' when not poor."),
    text("cause_user_id", "For remote_sender: the participant whose send side explains it; else NULL."),
    sa.Column("score_version", sa.Integer(), nullable=False, comment="Version of the scoring rules (1)."),
    sa.Index("ix_quality_joins_day", "day"),
    comment="One row per join and media type with samples: the join_quality view. Kept by the load.",
)


def _session_media_columns() -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = []
    for media in MEDIA_TYPES:
        for short, col in MEASURES:
            cols.append(double(f"{media}_avg_{short}", f"Mean {col} of the session's {media} samples."))
            cols.append(double(f"{media}_p95_{short}", f"Nearest-rank p95 {col} of its {media} samples."))
        cols.append(double(f"{media}_poor_share", f"Poor {media} samples / rated {media} samples."))
    return cols


quality_sessions = sa.Table(
    "quality_sessions",
    METADATA,
    sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session id (sessions)."),
    _count("users", "Distinct user ids in session_users."),
    _count("joins", "session_users rows."),
    double("minutes", "Sum of leave_time - join_time over joins with both, in minutes."),
    _count("samples", "user_qos rows of the session."),
    double("poor_share", "Poor samples / rated samples over all media types."),
    *_session_media_columns(),
    double("audio_mos", "Mean MOS of the session's receive-side audio samples."),
    _count("poor_joins", "Distinct joins with a cause other than none in any media type."),
    text("main_cause", "Most frequent cause among its poor join_quality rows; NULL when none."),
    comment="One row per session that is not live, behind the session_quality view. Kept by the load.",
)

quality_join_days = sa.Table(
    "quality_join_days",
    METADATA,
    *join_key(" (session_users)."),
    _media("audio, video, screen_share or other."),
    _day("UTC day of the samples."),
    text("device", "session_users.device of the join."),
    text("network_type", "session_users.network_type of the join."),
    text("data_center", "session_users.data_center of the join."),
    _count("samples", "user_qos rows of the join, media type and day."),
    _count("rated_samples", "Of samples, those rated."),
    _count("poor_samples", "Of rated_samples, those rated poor."),
    sa.Index("ix_quality_join_days_day", "day"),
    comment="Per join, media type and UTC day: sample counts and the join's dimensions. "
    "Kept by the load.",
)

def _day_group(dimension_comment: str) -> list[sa.Column[Any]]:
    """The key of a day-level group: UTC day, media type, dimension and its value."""
    return [
        _day("UTC day of the samples."),
        _media("audio, video, screen_share or other."),
        sa.Column("dimension", sa.Text(), primary_key=True, comment=dimension_comment),
        sa.Column(
            "dimension_value",
            sa.Text(),
            primary_key=True,
            comment="'' for the whole day; else the value ('unknown' where NULL).",
        ),
    ]


quality_value_counts = sa.Table(
    "quality_value_counts",
    METADATA,
    *_day_group("'' (the whole day), device, network_type or data_center."),
    sa.Column("metric", sa.Text(), primary_key=True, comment="latency_ms, jitter_ms or loss_pct."),
    sa.Column("value", sa.Double(), primary_key=True, comment="One distinct value of the metric."),
    _count("samples", "Samples of the group with that value."),
    comment="How many samples of a day and group have each value of a metric: exact daily p95s "
    "without reading the samples. Kept by the load.",
)


def _stat_columns() -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [
        _count("sessions", "Distinct sessions with samples in the group."),
        _count("users", "Distinct user ids with samples in the group."),
        _count("samples", "user_qos rows in the group."),
        integer("poor_samples", "Samples rated poor (NULL if none is rated)."),
        double("poor_share", "poor_samples / rated samples (NULL if none is rated)."),
    ]
    for short, col in MEASURES:
        cols.append(double(f"avg_{short}", f"Mean {col}."))
        cols.append(double(f"p95_{short}", f"Nearest-rank 95th percentile of {col}."))
    return cols


quality_daily = sa.Table(
    "quality_daily",
    METADATA,
    *_day_group("'' (daily_quality), device, network_type or data_center (daily_quality_breakdown)."),
    *_stat_columns(),
    comment="The rows of daily_quality and daily_quality_breakdown. Kept by the load.",
)

quality_daily_causes = sa.Table(
    "quality_daily_causes",
    METADATA,
    _day("UTC day of the joins' join_time."),
    _media(),
    sa.Column("cause", sa.Text(), primary_key=True, comment="A cause of join_quality, none included."),
    _count("joins", "join_quality rows of the day, media type and cause."),
    comment="The rows of daily_causes. Kept by the load.",
)

derived_state = sa.Table(
    "derived_state",
    METADATA,
    sa.Column("name", sa.Text(), primary_key=True, comment="What the checksum covers."),
    sa.Column(
        "checksum", sa.Text(), nullable=False, comment="sha256 of what the derived rows were made with."
    ),
    sa.Column("updated_at", UtcDateTime(), nullable=False, comment="When they were last recomputed (UTC)."),
    comment="What the derived tables were computed with (the scoring rules, each media type's "
    "thresholds): a change recomputes them.",
)

#: The tables the load keeps, in the order they are filled.
DERIVED_TABLES: tuple[sa.Table, ...] = (
    quality_joins, quality_sessions, quality_join_days, quality_value_counts, quality_daily,
    quality_daily_causes,
)  # fmt: skip
