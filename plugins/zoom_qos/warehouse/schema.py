"""The warehouse tables, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

Table and column names, keys, types and units are the public interface of the warehouse contract
(``docs/warehouse.md``); BI tools show the ``comment=`` texts. Tables are declared without a
schema so the same objects serve SQLite (main database) and PostgreSQL, where the configured
schema is applied at run time via ``schema_translate_map={None: schema}``.

This module declares the schema at the *current* migration head. The database itself is
created and upgraded only by the Alembic revisions in ``zoom_qos.warehouse.migrations`` (each one a frozen
snapshot written by hand); ``tests/unit/test_migrations.py`` checks that upgrading to head
yields exactly these declarations. Change both together: a new revision, and this file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from zoom_qos.core.statuses import LIVE, LOADED, PENDING, UNAVAILABLE
from zoom_qos.transform.rows import SESSION_USER_TEXT_FIELDS

__all__ = [
    "METADATA",
    "QOS_STATUSES",
    "QOS_THRESHOLD_DEFAULTS",
    "TABLES",
    "UtcDateTime",
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

class UtcDateTime(TypeDecorator[datetime]):
    """Timestamp that is always aware UTC in Python and UTC in the database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones, so values are stored as
    naive UTC text and handed back as aware UTC; without this, SQLite would return naive
    datetimes that callers would have to guess about. Naive input is taken as UTC (the
    parsers already normalise Zoom's timestamps); ISO-8601 strings are accepted too so a
    run record can be written from serialised values.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text selected through a cast or view
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.types.TypeEngine[Any]:
    # JSONB on PostgreSQL so analysts can index and query the raw layer; JSON text elsewhere.
    return sa.JSON().with_variant(JSONB(), "postgresql")


METADATA = sa.MetaData()


def _loaded_at() -> sa.Column[datetime]:
    return sa.Column(
        "loaded_at", UtcDateTime(), nullable=False, comment="When this row was last written (UTC)."
    )


def _join_key(comment_suffix: str = "") -> list[sa.Column[Any]]:
    return [
        sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session id" + comment_suffix),
        sa.Column("user_id", sa.Text(), primary_key=True, comment="Zoom user `id`" + comment_suffix),
        sa.Column(
            "join_time",
            UtcDateTime(),
            primary_key=True,
            comment="The join's `join_time` (UTC); one row per join",
        ),
    ]


def _text(name: str, comment: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def _double(name: str, comment: str) -> sa.Column[float]:
    return sa.Column(name, sa.Double(), nullable=True, comment=comment)


def _int(name: str, comment: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=True, comment=comment)


def _bool(name: str, comment: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(create_constraint=False), nullable=True, comment=comment)


#: ``sessions.qos_status`` values (revision 0003 keeps its own frozen copy in its CHECK):
#: ``loaded`` its QoS was read completely; ``pending`` Zoom answered 404/3001 less than
#: ``qos_pending_max_hours`` after the session ended (asked again); ``unavailable`` Zoom will not
#: return it (3001 later than that, 400/300 invalid id, 400/12702 too old); ``live`` provisional
#: rows of a session in progress.
QOS_STATUSES: tuple[str, ...] = (LOADED, PENDING, UNAVAILABLE, LIVE)


sessions = sa.Table(
    "sessions",
    METADATA,
    sa.Column(
        "session_id",
        sa.Text(),
        primary_key=True,
        comment="Zoom session `id`, exactly as returned (not URL-encoded).",
    ),
    _text("session_name", "Zoom `session_name`."),
    _text("session_key", "Zoom `session_key` (set by the app that created the session)."),
    sa.Column("start_time", UtcDateTime(), nullable=False, comment="Session start (UTC)."),
    sa.Column("end_time", UtcDateTime(), nullable=True, comment="Session end (UTC); NULL if unknown."),
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
    comment="One row per Zoom Video SDK session Zoom lists, whether or not its QoS could be read.",
)

raw_sessions = sa.Table(
    "raw_sessions",
    METADATA,
    sa.Column("session_id", sa.Text(), primary_key=True, comment="Zoom session `id`."),
    sa.Column("payload", _json(), nullable=False, comment="The session object exactly as Zoom returned it."),
    _loaded_at(),
    comment="Raw layer: each session object as received, so the model can be re-derived.",
)

#: Per-join grades read (optionally) from the session's users list into ``session_users``.
SESSION_USER_GRADE_FIELDS: tuple[str, ...] = ("audio_quality", "video_quality", "screen_share_quality")

session_users = sa.Table(
    "session_users",
    METADATA,
    *_join_key(),
    sa.Column("leave_time", UtcDateTime(), nullable=True, comment="The join's `leave_time` (UTC)."),
    _text("user_name", "Zoom user `name`."),
    *(_text(name, f"Zoom user `{name}`.") for name in SESSION_USER_TEXT_FIELDS),
    _bool("is_original_host", "Zoom `is_original_host`."),
    _loaded_at(),
    # Added by revision 0003_completeness: the per-join grades of GET /videosdk/sessions/{id}/users.
    _text(
        "participant_uuid",
        "Zoom `participant_uuid` of the join (extra read_user_grades); NULL if not read or no match.",
    ),
    *(
        _text(
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
    *_join_key(),
    sa.Column(
        "payload",
        _json(),
        nullable=False,
        comment="The QoS user object exactly as Zoom returned it, samples included.",
    ),
    _loaded_at(),
    comment="Raw layer: each user object as received, so the model can be re-derived without Zoom.",
)

user_qos = sa.Table(
    "user_qos",
    METADATA,
    *_join_key(),
    sa.Column("sampled_at", UtcDateTime(), primary_key=True, comment="The sample's `date_time` (UTC)."),
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
    sa.Index("ix_user_qos_sampled_at", "sampled_at"),
    comment="One row per join, per sample time, per media stream.",
)

user_system_qos = sa.Table(
    "user_system_qos",
    METADATA,
    *_join_key(),
    sa.Column("sampled_at", UtcDateTime(), primary_key=True, comment="The sample's `date_time` (UTC)."),
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
    sa.Index("ix_user_system_qos_sampled_at", "sampled_at"),
    comment="One row per join, per sample time: CPU and Wi-Fi figures.",
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    METADATA,
    sa.Column("run_id", sa.Text(), primary_key=True, comment="Airflow run id (or the CLI's own id)."),
    _text("dag_id", "Airflow DAG id that ran."),
    sa.Column(
        "window_start", sa.Date(), nullable=True, comment="First day of the session window (Zoom `from`)."
    ),
    sa.Column("window_end", sa.Date(), nullable=True, comment="Last day of the session window (Zoom `to`)."),
    sa.Column("started_at", UtcDateTime(), nullable=True, comment="Run start (UTC)."),
    sa.Column("finished_at", UtcDateTime(), nullable=True, comment="Run end (UTC); NULL while running."),
    _text(
        "outcome", "success, failed, skipped, paused (a live poll whose request budget was spent) or running."
    ),
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
    sa.Column(
        "unparsed_detail",
        _json(),
        nullable=True,
        comment='Per field: {"count": n, "example": "..."} of unparsed values.',
    ),
    _double("extract_seconds", "Seconds spent calling Zoom."),
    _double("load_seconds", "Seconds spent writing the warehouse."),
    _text("error", "Error summary when the run failed."),
    sa.Column(
        "recorded_at", UtcDateTime(), nullable=False, comment="When this record was last written (UTC)."
    ),
    # Added by revision 0002_quality.
    sa.Column(
        "dq_findings",
        _json(),
        nullable=True,
        comment="Data-quality checks of this run's loaded sessions: the findings of each check (JSON).",
    ),
    _int("dq_hard_violations", "Data-quality findings that fail the run (hard rules); NULL if not checked."),
    # Added by revision 0003_completeness.
    _int("sessions_pending", "Listed sessions the run left pending (QoS not out yet; asked again)."),
    _int("sessions_unavailable", "Listed sessions the run left unavailable (Zoom will not serve their QoS)."),
    comment="One row per pipeline run: what it loaded, what it cost, how it ended.",
)

daily_usage = sa.Table(
    "daily_usage",
    METADATA,
    sa.Column("usage_date", sa.Date(), primary_key=True, comment="The UTC day (Zoom `date`)."),
    _int("sessions", "Zoom `sessions`: the sessions Zoom counted on the day."),
    _int("users", "Zoom `users` of the day."),
    _int("session_minutes", "Zoom `session_minutes`: minutes of the day's sessions."),
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
        _json(),
        nullable=False,
        comment="The day's figures the alert was raised on (JSON), as sent to the notifier.",
    ),
    _text("report_path", "The QoS report the alert points to."),
    _text("run_id", "The pipeline run that raised the alert."),
    sa.Column("raised_at", UtcDateTime(), nullable=False, comment="When the alert was raised (UTC)."),
    sa.Column(
        "notified_at",
        UtcDateTime(),
        nullable=True,
        comment="When the configured notifier was told (UTC); NULL if none is configured or it failed.",
    ),
    _text("notify_error", "Why the notifier failed, or that none is configured; NULL once notified."),
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
    _text("note", "Where the limits come from."),
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


def utcnow() -> datetime:
    """Aware UTC now; one place so every ``loaded_at``/``recorded_at`` agrees on the zone."""
    return datetime.now(UTC)
