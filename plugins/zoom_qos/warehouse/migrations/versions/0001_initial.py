"""Initial warehouse: the v1 contract tables, raw layer and run record.

Revision ID: 0001_initial
Revises:
Create Date: 2025-06-01

A frozen snapshot of the tables as first shipped (docs/warehouse.md, v1). Never edit it: change the
schema with a new revision. Types are spelled out here instead of imported, so later changes
to ``zoom_qos.warehouse.schema`` cannot alter what this revision creates. Timestamps are
``timestamptz`` on PostgreSQL and naive-UTC ``DATETIME`` on SQLite; JSON is ``jsonb`` on
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _ts(name: str, comment: str, *, nullable: bool = True, primary_key: bool = False) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, primary_key=primary_key, comment=comment
    )


def _json(name: str, comment: str, *, nullable: bool) -> sa.Column:
    return sa.Column(name, sa.JSON().with_variant(JSONB(), "postgresql"), nullable=nullable, comment=comment)


def _text(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def _double(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=True, comment=comment)


def _int(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=True, comment=comment)


def _bool(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(create_constraint=False), nullable=True, comment=comment)


def _loaded_at() -> sa.Column:
    return _ts("loaded_at", "When this row was last written (UTC).", nullable=False)


def _join_key() -> list[sa.Column]:
    return [
        sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session id"),
        sa.Column("user_id", sa.Text(), primary_key=True, comment="Zoom user `id`"),
        _ts(
            "join_time",
            "The join's `join_time` (UTC); one row per join",
            nullable=False,
            primary_key=True,
        ),
    ]


_USER_TEXT_FIELDS = (
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


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "sessions",
        sa.Column(
            "session_id",
            sa.Text(),
            primary_key=True,
            comment="Zoom session `id`, exactly as returned (not URL-encoded).",
        ),
        _text("session_name", "Zoom `session_name`."),
        _text("session_key", "Zoom `session_key` (set by the app that created the session)."),
        _ts("start_time", "Session start (UTC).", nullable=False),
        _ts("end_time", "Session end (UTC); NULL if unknown."),
        _int("duration_seconds", "Zoom `duration` parsed to seconds, else end_time - start_time."),
        _int("user_count", "Zoom `user_count`."),
        _bool("has_voip", "Zoom `has_voip`."),
        _bool("has_video", "Zoom `has_video`."),
        _bool("has_screen_share", "Zoom `has_screen_share`."),
        _bool("has_recording", "Zoom `has_recording`."),
        _bool("has_pstn", "Zoom `has_pstn`."),
        _text("audio_quality", "Zoom `audio_quality`: good, fair, poor or bad."),
        _text("video_quality", "Zoom `video_quality`: good, fair, poor or bad."),
        _text("screen_share_quality", "Zoom `screen_share_quality`: good, fair, poor or bad."),
        _loaded_at(),
        schema=schema,
        comment="One row per Zoom Video SDK session.",
    )
    op.create_table(
        "raw_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session `id`."),
        _json("payload", "The session object exactly as Zoom returned it.", nullable=False),
        _loaded_at(),
        schema=schema,
        comment="Raw layer: each session object as received, so the model can be re-derived.",
    )
    op.create_table(
        "session_users",
        *_join_key(),
        _ts("leave_time", "The join's `leave_time` (UTC)."),
        _text("user_name", "Zoom user `name`."),
        *(_text(name, f"Zoom user `{name}`.") for name in _USER_TEXT_FIELDS),
        _bool("is_original_host", "Zoom `is_original_host`."),
        _loaded_at(),
        schema=schema,
        comment="One row per join of a user to a session (a rejoin is a new row).",
    )
    op.create_index("ix_session_users_join_time", "session_users", ["join_time"], schema=schema)
    op.create_table(
        "raw_session_users",
        *_join_key(),
        _json(
            "payload",
            "The QoS user object exactly as Zoom returned it, samples included.",
            nullable=False,
        ),
        _loaded_at(),
        schema=schema,
        comment="Raw layer: each user object as received, so the model can be re-derived without Zoom.",
    )
    op.create_table(
        "user_qos",
        *_join_key(),
        _ts("sampled_at", "The sample's `date_time` (UTC).", nullable=False, primary_key=True),
        sa.Column(
            "stream",
            sa.Text(),
            primary_key=True,
            comment="Zoom block name, e.g. audio_input, video_output, as_input, audio_device_from_rwg.",
        ),
        _double("bitrate_kbps", "`bitrate` in kilobits per second."),
        _double("latency_ms", "`latency` in milliseconds."),
        _double("jitter_ms", "`jitter` in milliseconds."),
        _double("avg_loss_pct", "`avg_loss` in percent (0.3 means 0.3%)."),
        _double("max_loss_pct", "`max_loss` in percent."),
        _int("resolution_width", "`resolution` width in pixels."),
        _int("resolution_height", "`resolution` height in pixels."),
        _double("frame_rate_fps", "`frame_rate` in frames per second."),
        _loaded_at(),
        schema=schema,
        comment="One row per join, per sample time, per media stream.",
    )
    op.create_index("ix_user_qos_sampled_at", "user_qos", ["sampled_at"], schema=schema)
    op.create_table(
        "user_system_qos",
        *_join_key(),
        _ts("sampled_at", "The sample's `date_time` (UTC).", nullable=False, primary_key=True),
        _double("zoom_min_cpu_pct", "`cpu_usage.zoom_min_cpu_usage` in percent."),
        _double("zoom_avg_cpu_pct", "`cpu_usage.zoom_avg_cpu_usage` in percent."),
        _double("zoom_max_cpu_pct", "`cpu_usage.zoom_max_cpu_usage` in percent."),
        _double("system_max_cpu_pct", "`cpu_usage.system_max_cpu_usage` in percent."),
        _double("wifi_max_rssi", "`wifi_rssi.max_rssi`."),
        _double("wifi_avg_rssi", "`wifi_rssi.avg_rssi`."),
        _double("wifi_min_rssi", "`wifi_rssi.min_rssi`."),
        _text("wifi_rssi_unit", "`wifi_rssi.rssi_unit`."),
        _text("cpu_pressure_level", "`cpu_pressure_level` as sent by Zoom."),
        _loaded_at(),
        schema=schema,
        comment="One row per join, per sample time: CPU and Wi-Fi figures.",
    )
    op.create_index("ix_user_system_qos_sampled_at", "user_system_qos", ["sampled_at"], schema=schema)
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.Text(), primary_key=True, comment="Airflow run id (or the CLI's own id)."),
        _text("dag_id", "Airflow DAG id that ran."),
        sa.Column(
            "window_start",
            sa.Date(),
            nullable=True,
            comment="First day of the session window (Zoom `from`).",
        ),
        sa.Column(
            "window_end", sa.Date(), nullable=True, comment="Last day of the session window (Zoom `to`)."
        ),
        _ts("started_at", "Run start (UTC)."),
        _ts("finished_at", "Run end (UTC); NULL while running."),
        _text("outcome", "success, failed, skipped or running."),
        _int("sessions_listed", "Sessions returned by the session list."),
        _int("sessions_loaded", "Sessions written to the warehouse."),
        _int("sessions_skipped", "Sessions not written (unkeyable, still live, or errors)."),
        _int("users_loaded", "session_users rows written."),
        _int("qos_rows", "user_qos rows written."),
        _int("system_rows", "user_system_qos rows written."),
        _int("api_requests", "HTTP requests made to Zoom."),
        _int("retries", "Requests retried after an error."),
        _int("rate_limit_waits", "Times the run waited for a Zoom rate limit (HTTP 429)."),
        _double("rate_limit_wait_seconds", "Total seconds spent waiting for rate limits."),
        _int("token_restarts", "List crawls restarted because a next_page_token expired."),
        _int("unparsed_values", "Values loaded as NULL because they could not be parsed."),
        _json(
            "unparsed_detail",
            'Per field: {"count": n, "example": "..."} of unparsed values.',
            nullable=True,
        ),
        _double("extract_seconds", "Seconds spent calling Zoom."),
        _double("load_seconds", "Seconds spent writing the warehouse."),
        _text("error", "Error summary when the run failed."),
        _ts("recorded_at", "When this record was last written (UTC).", nullable=False),
        schema=schema,
        comment="One row per pipeline run: what it loaded, what it cost, how it ended.",
    )


def downgrade() -> None:
    schema = _schema()
    for table in (
        "pipeline_runs",
        "user_system_qos",
        "user_qos",
        "raw_session_users",
        "session_users",
        "raw_sessions",
        "sessions",
    ):
        op.drop_table(table, schema=schema)
