"""The warehouse tables, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

Table and column names, keys, types and units are the public interface of the warehouse contract
(``docs/warehouse.md``); BI tools show the ``comment=`` texts. Tables are declared without a
schema so the same objects serve SQLite (main database) and PostgreSQL, where the configured
schema is applied at run time via ``schema_translate_map={None: schema}``.

This module declares the schema at the *current* migration head. The database itself is
created and upgraded only by the Alembic revisions in ``zoom_qos.warehouse.migrations`` (each one a frozen
snapshot written by hand); ``tests/unit/warehouse/test_migrations.py`` checks that upgrading to head
yields exactly these declarations. Change both together: a new revision, and this file.
"""

from __future__ import annotations

import sqlalchemy as sa

from zoom_qos.core.statuses import QosStatus
from zoom_qos.transform.rows import SESSION_USER_TEXT_FIELDS
from zoom_qos.warehouse.columns import (
    METADATA,
    UtcDateTime,
    boolean,
    double,
    integer,
    join_key,
    json_type,
    loaded_at,
    text,
)
from zoom_qos.warehouse.derived_schema import DERIVED_TABLES
from zoom_qos.warehouse.webhook_schema import WEBHOOK_TABLES

__all__ = [
    "DERIVED_TABLES",
    "METADATA",
    "QOS_STATUSES",
    "QOS_THRESHOLD_DEFAULTS",
    "TABLES",
    "WEBHOOK_TABLES",
    "daily_usage",
    "pipeline_runs",
    "qos_alerts",
    "qos_thresholds",
    "quality_alerts",
    "raw_session_users",
    "raw_sessions",
    "schema_objects",
    "session_users",
    "sessions",
    "user_qos",
    "user_system_qos",
]



#: ``sessions.qos_status`` values (revision 0003 keeps its own frozen copy in its CHECK):
#: ``loaded`` its QoS was read completely; ``pending`` Zoom answered 404/3001 less than
#: ``qos_pending_max_hours`` after the session ended (asked again); ``unavailable`` Zoom will not
#: return it (3001 later than that, 400/300 invalid id, 400/12702 too old); ``live`` provisional
#: rows of a session in progress.
QOS_STATUSES: tuple[str, ...] = tuple(status.value for status in QosStatus)


sessions = sa.Table(
    "sessions",
    METADATA,
    sa.Column(
        "session_id",
        sa.Text(),
        primary_key=True,
        comment="Zoom session `id`, exactly as returned (not URL-encoded).",
    ),
    text("session_name", "Zoom `session_name`."),
    text("session_key", "Zoom `session_key` (set by the app that created the session)."),
    sa.Column("start_time", UtcDateTime(), nullable=False, comment="Session start (UTC)."),
    sa.Column("end_time", UtcDateTime(), nullable=True, comment="Session end (UTC); NULL if unknown."),
    integer("duration_seconds", "Zoom `duration` parsed to seconds, else end_time - start_time."),
    integer("user_count", "Zoom `user_count`."),
    boolean("has_voip", "Zoom `has_voip`."),
    boolean("has_video", "Zoom `has_video`."),
    boolean("has_screen_share", "Zoom `has_screen_share`."),
    boolean("has_recording", "Zoom `has_recording`."),
    boolean("has_pstn", "Zoom `has_pstn`."),
    text("audio_quality", "Zoom `audio_quality`: good, fair, poor or bad."),
    text("video_quality", "Zoom `video_quality`: good, fair, poor or bad."),
    text("screen_share_quality", "Zoom `screen_share_quality`: good, fair, poor or bad."),
    loaded_at(),
    # Added by revision 0003_completeness. No server default: the loader always says which state
    # a session is in, so a row that does not is refused instead of silently claiming "loaded".
    sa.Column(
        "qos_status",
        sa.Text(),
        nullable=False,
        comment=(
            "State of the session's QoS: loaded (read completely; its joins and samples are the rows "
            "here), pending (Zoom answered 3001 less than qos_pending_max_hours after the end; asked "
            "again every run), unavailable (Zoom will not return it: 3001 after that, invalid id or too "
            "old), live (provisional rows of a session in progress)."
        ),
    ),
    sa.Column(
        "qos_checked_at",
        UtcDateTime(),
        nullable=True,
        comment="When the session's QoS was last asked for (UTC); NULL if never.",
    ),
    sa.CheckConstraint(
        "qos_status IN (" + ", ".join(f"'{v}'" for v in QOS_STATUSES) + ")", name="ck_sessions_qos_status"
    ),
    # Added by revision 0006_scoring: session_quality is read by day of start_time.
    sa.Index("ix_sessions_start_time", "start_time"),
    comment="One row per Zoom Video SDK session Zoom lists, whether or not its QoS could be read.",
)

raw_sessions = sa.Table(
    "raw_sessions",
    METADATA,
    sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session `id`."),
    sa.Column("payload", json_type(), nullable=False,
              comment="The session object exactly as Zoom returned it."),
    loaded_at(),
    comment="Raw layer: each session object as received, so the model can be re-derived.",
)

#: Per-join grades read (optionally) from the session's users list into ``session_users``.
SESSION_USER_GRADE_FIELDS: tuple[str, ...] = ("audio_quality", "video_quality", "screen_share_quality")

session_users = sa.Table(
    "session_users",
    METADATA,
    *join_key(),
    sa.Column("leave_time", UtcDateTime(), nullable=True, comment="The join's `leave_time` (UTC)."),
    text("user_name", "Zoom user `name`."),
    *(text(name, f"Zoom user `{name}`.") for name in SESSION_USER_TEXT_FIELDS),
    boolean("is_original_host", "Zoom `is_original_host`."),
    loaded_at(),
    # Added by revision 0003_completeness: the per-join grades of GET /videosdk/sessions/{id}/users.
    text(
        "participant_uuid",
        "Zoom `participant_uuid` of the join (extra read_user_grades); NULL if not read or no match.",
    ),
    *(
        text(
            name,
            f"Zoom per-join `{name}`: good, fair, poor or bad (extra read_user_grades); "
            "NULL if not read or no match.",
        )
        for name in SESSION_USER_GRADE_FIELDS
    ),
    sa.Index("ix_session_users_join_time", "join_time"),
    comment="One row per join of a user to a session (a rejoin is a new row).",
)

raw_session_users = sa.Table(
    "raw_session_users",
    METADATA,
    *join_key(),
    sa.Column(
        "payload",
        json_type(),
        nullable=False,
        comment="The QoS user object exactly as Zoom returned it, samples included.",
    ),
    loaded_at(),
    comment="Raw layer: each user object as received, so the model can be re-derived without Zoom.",
)

user_qos = sa.Table(
    "user_qos",
    METADATA,
    *join_key(),
    sa.Column("sampled_at", UtcDateTime(), primary_key=True, comment="The sample's `date_time` (UTC)."),
    sa.Column(
        "stream",
        sa.Text(),
        primary_key=True,
        comment="Zoom block name, e.g. audio_input, video_output, as_input, audio_device_from_rwg.",
    ),
    double("bitrate_kbps", "`bitrate` in kilobits per second."),
    double("latency_ms", "`latency` in milliseconds."),
    double("jitter_ms", "`jitter` in milliseconds."),
    double("avg_loss_pct", "`avg_loss` in percent (0.3 means 0.3%)."),
    double("max_loss_pct", "`max_loss` in percent."),
    integer("resolution_width", "`resolution` width in pixels."),
    integer("resolution_height", "`resolution` height in pixels."),
    double("frame_rate_fps", "`frame_rate` in frames per second."),
    loaded_at(),
    sa.Index("ix_user_qos_sampled_at", "sampled_at"),
    comment="One row per join, per sample time, per media stream.",
)

user_system_qos = sa.Table(
    "user_system_qos",
    METADATA,
    *join_key(),
    sa.Column("sampled_at", UtcDateTime(), primary_key=True, comment="The sample's `date_time` (UTC)."),
    double("zoom_min_cpu_pct", "`cpu_usage.zoom_min_cpu_usage` in percent."),
    double("zoom_avg_cpu_pct", "`cpu_usage.zoom_avg_cpu_usage` in percent."),
    double("zoom_max_cpu_pct", "`cpu_usage.zoom_max_cpu_usage` in percent."),
    double("system_max_cpu_pct", "`cpu_usage.system_max_cpu_usage` in percent."),
    double("wifi_max_rssi", "`wifi_rssi.max_rssi`."),
    double("wifi_avg_rssi", "`wifi_rssi.avg_rssi`."),
    double("wifi_min_rssi", "`wifi_rssi.min_rssi`."),
    text("wifi_rssi_unit", "`wifi_rssi.rssi_unit`."),
    text("cpu_pressure_level", "`cpu_pressure_level` as sent by Zoom."),
    loaded_at(),
    sa.Index("ix_user_system_qos_sampled_at", "sampled_at"),
    comment="One row per join, per sample time: CPU and Wi-Fi figures.",
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    METADATA,
    sa.Column("run_id", sa.Text(), primary_key=True, comment="Airflow run id (or the CLI's own id)."),
    text("dag_id", "Airflow DAG id that ran."),
    sa.Column(
        "window_start", sa.Date(), nullable=True, comment="First day of the session window (Zoom `from`)."
    ),
    sa.Column("window_end", sa.Date(), nullable=True, comment="Last day of the session window (Zoom `to`)."),
    sa.Column("started_at", UtcDateTime(), nullable=True, comment="Run start (UTC)."),
    sa.Column("finished_at", UtcDateTime(), nullable=True, comment="Run end (UTC); NULL while running."),
    text(
        "outcome", "success, failed, skipped, paused (a live poll whose request budget was spent) or running."
    ),
    integer("sessions_listed", "Sessions returned by the session list."),
    integer("sessions_loaded", "Sessions written to the warehouse."),
    integer("sessions_skipped", "Sessions not written (unkeyable, still live, or errors)."),
    integer("users_loaded", "session_users rows written."),
    integer("qos_rows", "user_qos rows written."),
    integer("system_rows", "user_system_qos rows written."),
    integer("api_requests", "HTTP requests made to Zoom."),
    integer("retries", "Requests retried after an error."),
    integer("rate_limit_waits", "Times the run waited for a Zoom rate limit (HTTP 429)."),
    double("rate_limit_wait_seconds", "Total seconds spent waiting for rate limits."),
    integer("token_restarts", "List crawls restarted because a next_page_token expired."),
    integer("unparsed_values", "Values loaded as NULL because they could not be parsed."),
    sa.Column(
        "unparsed_detail",
        json_type(),
        nullable=True,
        comment='Per field: {"count": n, "example": "..."} of unparsed values.',
    ),
    double("extract_seconds", "Seconds spent calling Zoom."),
    double("load_seconds", "Seconds spent writing the warehouse."),
    text("error", "Error summary when the run failed."),
    sa.Column(
        "recorded_at", UtcDateTime(), nullable=False, comment="When this record was last written (UTC)."
    ),
    # Added by revision 0002_quality.
    sa.Column(
        "dq_findings",
        json_type(),
        nullable=True,
        comment="Data-quality checks of this run's loaded sessions: the findings of each check (JSON).",
    ),
    integer("dq_hard_violations",
            "Data-quality findings that fail the run (hard rules); NULL if not checked."),
    # Added by revision 0003_completeness.
    integer("sessions_pending", "Listed sessions the run left pending (QoS not out yet; asked again)."),
    integer("sessions_unavailable",
            "Listed sessions the run left unavailable (Zoom will not serve their QoS)."),
    comment="One row per pipeline run: what it loaded, what it cost, how it ended.",
)

daily_usage = sa.Table(
    "daily_usage",
    METADATA,
    sa.Column("usage_date", sa.Date(), primary_key=True, comment="The UTC day (Zoom `date`)."),
    integer("sessions", "Zoom `sessions`: the sessions Zoom counted on the day."),
    integer("users", "Zoom `users` of the day."),
    integer("session_minutes", "Zoom `session_minutes`: minutes of the day's sessions."),
    sa.Column(
        "fetched_at",
        UtcDateTime(),
        nullable=False,
        comment="When Zoom's figures for the day were read (UTC).",
    ),
    comment=(
        "Zoom's own count of each UTC day (GET /videosdk/report/daily), to compare with what the "
        "warehouse holds (view daily_completeness). Added by revision 0003_completeness."
    ),
)

quality_alerts = sa.Table(
    "quality_alerts",
    METADATA,
    sa.Column("alert_day", sa.Date(), primary_key=True, comment="The UTC day the alert is about."),
    sa.Column(
        "kind",
        sa.Text(),
        primary_key=True,
        comment="poor_share (daily_quality) or count_gap (daily_completeness).",
    ),
    sa.Column(
        "threshold",
        sa.Double(),
        nullable=False,
        comment="The [zoom_qos] threshold crossed (alert_poor_share or alert_count_gap), a share 0..1.",
    ),
    sa.Column(
        "observed",
        sa.Double(),
        nullable=False,
        comment="The figure that crossed it: the highest poor share of the day's media types, or "
        "the share of Zoom's count missing from the warehouse.",
    ),
    sa.Column(
        "figures",
        json_type(),
        nullable=False,
        comment="The day's figures the alert was raised on (JSON), as sent to the notifier.",
    ),
    text("report_path", "The QoS report the alert points to."),
    text("run_id", "The pipeline run that raised the alert."),
    sa.Column("raised_at", UtcDateTime(), nullable=False, comment="When the alert was raised (UTC)."),
    sa.Column(
        "notified_at",
        UtcDateTime(),
        nullable=True,
        comment="When the configured notifier was told (UTC); NULL if none is configured or it failed.",
    ),
    text("notify_error", "Why the notifier failed, or that none is configured; NULL once notified."),
    comment=(
        "Quality alerts raised: one per UTC day and kind, ever (a re-run does not alert again). "
        "Added by revision 0004_quality_alerts."
    ),
)

qos_alerts = sa.Table(
    "qos_alerts",
    METADATA,
    sa.Column(
        "session_id", sa.Text(), primary_key=True, comment="Zoom session id of the join (session_users)."
    ),
    sa.Column("user_id", sa.Text(), primary_key=True, comment="Zoom user `id` of the join (session_users)."),
    sa.Column("join_time", UtcDateTime(), primary_key=True, comment="The join's `join_time` (UTC)."),
    sa.Column(
        "media_type", sa.Text(), primary_key=True, comment="audio, video or screen_share (as in qos_samples)."
    ),
    sa.Column(
        "first_seen_at",
        UtcDateTime(),
        primary_key=True,
        comment="Sample time (UTC) at which the poor share first crossed the limit: the join's latest "
        "sample when the alert was raised.",
    ),
    sa.Column(
        "poor_share",
        sa.Double(),
        nullable=False,
        comment="Poor share (0..1) of the join's rated samples of that media type in the window.",
    ),
    sa.Column("rated_samples", sa.Integer(), nullable=False, comment="Samples rated in that window."),
    sa.Column(
        "window_minutes",
        sa.Integer(),
        nullable=False,
        comment="The window used: the join's samples of the last window_minutes up to first_seen_at.",
    ),
    sa.Column(
        "notified_at",
        UtcDateTime(),
        nullable=True,
        comment="When the notifier was called (UTC); NULL if none is configured, or it failed.",
    ),
    sa.Column(
        "cleared_at",
        UtcDateTime(),
        nullable=True,
        comment="Sample time (UTC) at which the share fell back under the limit; NULL while open.",
    ),
    comment=(
        "One row per alert raised while a session was live: a join whose poor share of one media "
        "type crossed live_alert_poor_share. An open alert (cleared_at NULL) is not raised again; "
        "one that cleared and returns is a new row. Added by revision 0005_live."
    ),
)

#: Zoom's published network guidance; a QoS sample is "poor" when any limit is exceeded.
#: Seeded by revision 0002_quality (which keeps its own frozen copy of these numbers).
QOS_THRESHOLD_DEFAULTS: dict[str, float] = {"latency_ms": 150.0, "jitter_ms": 40.0, "loss_pct": 2.0}

qos_thresholds = sa.Table(
    "qos_thresholds",
    METADATA,
    sa.Column(
        "media_type",
        sa.Text(),
        primary_key=True,
        comment="audio, video or screen_share (the media of a user_qos stream).",
    ),
    sa.Column("latency_ms", sa.Double(), nullable=False, comment="Latency above this (ms) is poor."),
    sa.Column("jitter_ms", sa.Double(), nullable=False, comment="Jitter above this (ms) is poor."),
    sa.Column(
        "loss_pct", sa.Double(), nullable=False, comment="Packet loss above this (percent) is poor."
    ),
    double("min_frame_rate_fps", "Send-side video frame rate below this (fps) raises low_frame_rate."),
    double("min_resolution_height", "Send-side video height below this (pixels) raises low_resolution."),
    sa.Column(
        "issue_min_share",
        sa.Double(),
        nullable=False,
        server_default=sa.text("0.2"),
        comment="Share of a join's samples meeting an issue's condition that raises it; a side whose "
        "poor share reaches it is poor.",
    ),
    text("note", "Where the limits come from."),
    comment="QoS limits per media type; a sample exceeding any of them counts as poor. Editable.",
)

schema_objects = sa.Table(
    "schema_objects",
    METADATA,
    sa.Column("name", sa.Text(), primary_key=True, comment="Name of a managed view (without schema)."),
    sa.Column(
        "checksum", sa.Text(), nullable=False, comment="sha256 of the definition the view was created from."
    ),
    comment="Bookkeeping for repeatable objects (BI views): recreated when their definition changes.",
)

#: The data tables: the session tables in the order a session load writes them, Zoom's daily
#: counts, then the run record. The reference/bookkeeping tables (``qos_thresholds``,
#: ``schema_objects``) and the alerts raised (``quality_alerts``, ``qos_alerts``) are in METADATA only.
TABLES: tuple[sa.Table, ...] = (
    sessions,
    raw_sessions,
    session_users,
    raw_session_users,
    user_qos,
    user_system_qos,
    daily_usage,
    pipeline_runs,
)
