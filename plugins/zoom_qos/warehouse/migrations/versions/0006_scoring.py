"""Call quality scored and explained (docs/quality.md): the derived tables and the new thresholds.

Revision ID: 0006_scoring
Revises: 0005_live
Create Date: 2027-03-01

- ``qos_thresholds`` gains ``min_frame_rate_fps`` and ``min_resolution_height`` (video: 10 fps and
  360 pixels; NULL, i.e. never raised, for the other media) and ``issue_min_share`` (0.2 for every
  media type, and the default of rows added later).
- The derived tables the load keeps: ``quality_joins`` (behind the ``join_quality`` view),
  ``quality_sessions`` (``session_quality``), ``quality_join_days`` and ``quality_value_counts``
  (what the day-level rows are computed from), ``quality_daily`` (``daily_quality`` and
  ``daily_quality_breakdown``), ``quality_daily_causes`` (``daily_causes``), and ``derived_state``
  (what they were computed with). They are created empty: ``ensure_schema`` finds ``derived_state``
  empty and fills them from the stored samples in the same transaction.
- An index on ``sessions.start_time`` (a session's day is the day of its start).

Frozen snapshot: never edit, add a revision instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006_scoring"
down_revision = "0005_live"
branch_labels = None
depends_on = None

_MEDIA = ("audio", "video", "screen_share")
_MEASURES = (("latency_ms", "latency_ms"), ("jitter_ms", "jitter_ms"), ("loss_pct", "avg_loss_pct"))
_TS = sa.DateTime(timezone=True)


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _count(name: str, comment: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer(), nullable=False, comment=comment)


def _double(name: str, comment: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Double(), nullable=True, comment=comment)


def _text(name: str, comment: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def _join_key() -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session id (session_users)."),
        sa.Column("user_id", sa.Text(), primary_key=True, comment="Zoom user `id` (session_users)."),
        sa.Column(
            "join_time", _TS, primary_key=True, comment="The join's `join_time` (UTC); one row per join"
        ),
    ]


def _key(name: str, comment: str, type_: Any = None) -> sa.Column[Any]:
    return sa.Column(name, type_ if type_ is not None else sa.Text(), primary_key=True, comment=comment)


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table("qos_thresholds", schema=schema) as batch:
        batch.add_column(
            _double(
                "min_frame_rate_fps", "Send-side video frame rate below this (fps) raises low_frame_rate."
            )
        )
        batch.add_column(
            _double(
                "min_resolution_height", "Send-side video height below this (pixels) raises low_resolution."
            )
        )
        batch.add_column(
            sa.Column(
                "issue_min_share",
                sa.Double(),
                nullable=False,
                server_default=sa.text("0.2"),
                comment="Share of a join's samples meeting an issue's condition that raises it; a side whose "
                "poor share reaches it is poor.",
            )
        )
    thresholds = sa.table(
        "qos_thresholds",
        sa.column("media_type"),
        sa.column("min_frame_rate_fps"),
        sa.column("min_resolution_height"),
        schema=schema,
    )
    op.execute(
        thresholds.update()
        .where(thresholds.c.media_type == "video")
        .values(min_frame_rate_fps=10.0, min_resolution_height=360.0)
    )
    op.create_index("ix_sessions_start_time", "sessions", ["start_time"], schema=schema)

    op.create_table(
        "quality_joins",
        *_join_key(),
        _key("media_type", "audio, video or screen_share."),
        sa.Column(
            "day", sa.Date(), nullable=False, comment="UTC day of join_time (daily_causes groups by it)."
        ),
        _count("send_samples", "Rated send-side samples (the user's *_input and *_device_to_rwg streams)."),
        _count("send_poor_samples", "Of send_samples, those rated poor."),
        _double("send_poor_share", "send_poor_samples / send_samples; NULL when 0 samples."),
        _count("receive_samples", "Rated receive-side samples (*_output and *_device_from_rwg streams)."),
        _count("receive_poor_samples", "Of receive_samples, those rated poor."),
        _double("receive_poor_share", "receive_poor_samples / receive_samples; NULL when 0 samples."),
        _double("avg_mos_send", "Mean MOS of the send-side audio samples (audio only, else NULL)."),
        _double("avg_mos_receive", "Mean MOS of the receive-side audio samples (audio only, else NULL)."),
        _double("min_mos_receive", "Lowest MOS of the receive-side audio samples (audio only, else NULL)."),
        sa.Column(
            "issues", sa.Text(), nullable=False, comment="Raised issues, comma-separated, '' when none."
        ),
        sa.Column(
            "cause", sa.Text(), nullable=False, comment="Cause of the poor media, 'none' when not poor."
        ),
        _text("cause_user_id", "For remote_sender: the participant whose send side explains it; else NULL."),
        sa.Column("score_version", sa.Integer(), nullable=False, comment="Version of the scoring rules (1)."),
        schema=schema,
        comment="One row per join and media type with samples: the join_quality view. Kept by the load.",
    )
    op.create_index("ix_quality_joins_day", "quality_joins", ["day"], schema=schema)

    media_cols: list[sa.Column[Any]] = []
    for media in _MEDIA:
        for short, col in _MEASURES:
            media_cols.append(
                _double(f"{media}_avg_{short}", f"Mean {col} of the session's {media} samples.")
            )
            media_cols.append(
                _double(f"{media}_p95_{short}", f"Nearest-rank p95 {col} of its {media} samples.")
            )
        media_cols.append(_double(f"{media}_poor_share", f"Poor {media} samples / rated {media} samples."))
    op.create_table(
        "quality_sessions",
        _key("session_id", "Zoom session id (sessions)."),
        _count("users", "Distinct user ids in session_users."),
        _count("joins", "session_users rows."),
        _double("minutes", "Sum of leave_time - join_time over joins with both, in minutes."),
        _count("samples", "user_qos rows of the session."),
        _double("poor_share", "Poor samples / rated samples over all media types."),
        *media_cols,
        _double("audio_mos", "Mean MOS of the session's receive-side audio samples."),
        _count("poor_joins", "Distinct joins with a cause other than none in any media type."),
        _text("main_cause", "Most frequent cause among its poor join_quality rows; NULL when none."),
        schema=schema,
        comment="One row per session that is not live, behind the session_quality view. Kept by the load.",
    )

    op.create_table(
        "quality_join_days",
        *_join_key(),
        _key("media_type", "audio, video, screen_share or other."),
        _key("day", "UTC day of the samples.", sa.Date()),
        _text("device", "session_users.device of the join."),
        _text("network_type", "session_users.network_type of the join."),
        _text("data_center", "session_users.data_center of the join."),
        _count("samples", "user_qos rows of the join, media type and day."),
        _count("rated_samples", "Of samples, those rated."),
        _count("poor_samples", "Of rated_samples, those rated poor."),
        schema=schema,
        comment="Per join, media type and UTC day: sample counts and the join's dimensions. "
        "Kept by the load.",
    )
    op.create_index("ix_quality_join_days_day", "quality_join_days", ["day"], schema=schema)

    op.create_table(
        "quality_value_counts",
        _key("day", "UTC day of the samples.", sa.Date()),
        _key("media_type", "audio, video, screen_share or other."),
        _key("dimension", "'' (the whole day), device, network_type or data_center."),
        _key("dimension_value", "'' for the whole day; else the value ('unknown' where NULL)."),
        _key("metric", "latency_ms, jitter_ms or loss_pct."),
        _key("value", "One distinct value of the metric.", sa.Double()),
        _count("samples", "Samples of the group with that value."),
        schema=schema,
        comment="How many samples of a day and group have each value of a metric: exact daily p95s "
        "without reading the samples. Kept by the load.",
    )

    stats: list[sa.Column[Any]] = [
        _count("sessions", "Distinct sessions with samples in the group."),
        _count("users", "Distinct user ids with samples in the group."),
        _count("samples", "user_qos rows in the group."),
        sa.Column(
            "poor_samples", sa.Integer(), nullable=True, comment="Samples rated poor (NULL if none is rated)."
        ),
        _double("poor_share", "poor_samples / rated samples (NULL if none is rated)."),
    ]
    for short, col in _MEASURES:
        stats.append(_double(f"avg_{short}", f"Mean {col}."))
        stats.append(_double(f"p95_{short}", f"Nearest-rank 95th percentile of {col}."))
    op.create_table(
        "quality_daily",
        _key("day", "UTC day of the samples.", sa.Date()),
        _key("media_type", "audio, video, screen_share or other."),
        _key(
            "dimension", "'' (daily_quality), device, network_type or data_center (daily_quality_breakdown)."
        ),
        _key("dimension_value", "'' for the whole day; else the value ('unknown' where NULL)."),
        *stats,
        schema=schema,
        comment="The rows of daily_quality and daily_quality_breakdown. Kept by the load.",
    )

    op.create_table(
        "quality_daily_causes",
        _key("day", "UTC day of the joins' join_time.", sa.Date()),
        _key("media_type", "audio, video or screen_share."),
        _key("cause", "A cause of join_quality, none included."),
        _count("joins", "join_quality rows of the day, media type and cause."),
        schema=schema,
        comment="The rows of daily_causes. Kept by the load.",
    )

    op.create_table(
        "derived_state",
        _key("name", "What the checksum covers."),
        sa.Column(
            "checksum", sa.Text(), nullable=False, comment="sha256 of what the derived rows were made with."
        ),
        sa.Column("updated_at", _TS, nullable=False, comment="When they were last recomputed (UTC)."),
        schema=schema,
        comment="What the derived tables were computed with (the scoring rules, each media type's "
        "thresholds): a change recomputes them.",
    )


def _drop_managed_views(schema: str | None) -> None:
    """The BI views read the tables dropped below; ``ensure_schema`` recreates the views it manages."""
    bind = op.get_bind()
    prefix = f'"{schema}".' if schema else ""
    objects = sa.table("schema_objects", sa.column("name"), schema=schema)
    cascade = " CASCADE" if bind.dialect.name == "postgresql" else ""
    for (name,) in bind.execute(sa.select(objects.c.name)).all():
        op.execute(f'DROP VIEW IF EXISTS {prefix}"{name}"{cascade}')
    op.execute(objects.delete())


def downgrade() -> None:
    schema = _schema()
    _drop_managed_views(schema)
    for name in (
        "derived_state",
        "quality_daily_causes",
        "quality_daily",
        "quality_value_counts",
        "quality_join_days",
        "quality_sessions",
        "quality_joins",
    ):
        op.drop_table(name, schema=schema)
    op.drop_index("ix_sessions_start_time", "sessions", schema=schema)
    with op.batch_alter_table("qos_thresholds", schema=schema) as batch:
        for name in ("issue_min_share", "min_resolution_height", "min_frame_rate_fps"):
            batch.drop_column(name)
