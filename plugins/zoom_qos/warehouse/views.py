"""BI views over the warehouse tables, with the same meaning on SQLite and PostgreSQL.

Views are *repeatable* schema objects: ``Warehouse.ensure_schema()`` recreates them whenever
their definition changes (checksum of the SQL), after the versioned table migrations ran.
``VIEWS`` is in dependency order (a view only reads tables and the views before it). This module
names and documents the views; their SQL is built in ``zoom_qos.warehouse.view_sql``, where
``MEDIA_TYPES`` and ``METRICS`` are defined beside the SQL that rates samples by them (import
them from here).

Shared definitions (documented in ``docs/warehouse.md``):

* **media type** of a ``user_qos.stream``: ``audio*`` → ``audio``, ``video*`` → ``video``,
  ``as_*`` → ``screen_share``, anything else → ``other`` (case-sensitive, as Zoom names them).
* **poor sample**: ``latency_ms``, ``jitter_ms`` or ``avg_loss_pct`` above the threshold of its
  media type in ``qos_thresholds`` (joined at query time, so an ``UPDATE qos_thresholds``
  changes every view at once). A sample with none of the three metrics, or of a media type
  without a threshold row (``other``), is not rated: ``is_poor`` is NULL and it counts in
  neither side of a poor share.
* **p95**: nearest-rank 95th percentile of the non-NULL values, i.e. the smallest value whose
  cumulative share is >= 0.95: ``percentile_disc(0.95)`` on PostgreSQL and the equivalent
  ``cume_dist()`` window on SQLite, so both back ends return the very same sample value.
* Durations are computed at millisecond precision on both back ends.
* **Completeness** (``daily_completeness``): a session counts on the UTC day of its
  ``start_time``; ``live`` sessions (provisional rows of a session in progress) are not counted.
  The same definition is the ``zoom_daily_count`` data-quality check (``zoom_qos.warehouse.quality``).
* **Live sessions** (``sessions.qos_status = 'live'``: provisional rows of a session in progress,
  replaced at every live poll) are left out of ``qos_samples`` and so of every view built on it
  (``daily_quality``, ``daily_quality_breakdown``), and of ``session_quality`` and
  ``daily_completeness``. Only ``live_session_quality`` shows them.
* **Live window** (``live_session_quality``): per join, the samples of the last
  ``LIVE_WINDOW_MINUTES`` (10) minutes before the join's latest sample of any stream
  (``latest - window < sampled_at <= latest``, in whole milliseconds); rated and poor as in
  ``qos_samples``. The view's window is fixed when it is created;
  ``zoom_qos.warehouse.live.live_quality(conn, window_minutes)`` returns the same rows for any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zoom_qos.warehouse.view_sql import (
    LIVE_WINDOW_MINUTES,
    MEASURES,
    MEDIA_TYPES,
    METRICS,
    alert_comparison_sql,
    daily_breakdown_sql,
    daily_causes_sql,
    daily_completeness_sql,
    daily_quality_sql,
    grade_agreement_sql,
    join_quality_sql,
    live_quality_sql,
    qos_samples_sql,
    run_health_sql,
    session_quality_sql,
)

__all__ = [
    "LIVE_WINDOW_MINUTES",
    "MEDIA_TYPES",
    "METRICS",
    "VIEWS",
    "View",
    "view_by_name",
]


@dataclass(frozen=True)
class View:
    """One view: ``sql(dialect, prefix)`` returns its SELECT statement.

    ``dialect`` is ``"sqlite"`` or ``"postgresql"``; ``prefix`` is what goes before every table
    name (``'"zoom_qos".'`` on PostgreSQL, ``''`` on SQLite), because raw SQL is not rewritten
    by SQLAlchemy's schema translation.
    """

    name: str
    comment: str
    sql: Callable[[str, str], str]
    columns: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- column docs
_QOS_SAMPLES_COLUMNS: dict[str, str] = {
    "session_id": "Zoom session id (user_qos.session_id).",
    "user_id": "Zoom user id (user_qos.user_id).",
    "join_time": "The join's join_time (UTC).",
    "sampled_at": "The sample's time (UTC).",
    "stream": "Zoom block name, e.g. audio_input, video_output, as_input.",
    "media_type": "audio, video, screen_share or other, derived from stream.",
    "day": "UTC calendar date of sampled_at.",
    "bitrate_kbps": "Bitrate in kilobits per second.",
    "latency_ms": "Latency in milliseconds.",
    "jitter_ms": "Jitter in milliseconds.",
    "avg_loss_pct": "Average packet loss in percent.",
    "max_loss_pct": "Maximum packet loss in percent.",
    "resolution_width": "Resolution width in pixels.",
    "resolution_height": "Resolution height in pixels.",
    "frame_rate_fps": "Frame rate in frames per second.",
    "is_poor": (
        "1 if latency, jitter or average loss exceeds the media type's qos_thresholds row, 0 if not; "
        "NULL if not rated (no metric, or no threshold row, e.g. media_type other)."
    ),
    "device": "session_users.device of the join (NULL if unknown).",
    "network_type": "session_users.network_type of the join (NULL if unknown).",
    "data_center": "session_users.data_center of the join (NULL if unknown).",
    "direction": (
        "send (*_input, *_device_to_rwg: what the user sends), receive (*_output, *_device_from_rwg: what "
        "the user receives) or NULL (any other stream)."
    ),
    "r_factor": (
        "E-model R factor (score version 1) of an audio sample with latency, jitter and average loss, "
        "0..100; else NULL."
    ),
    "mos": "Mean opinion score 1..4.5 from r_factor (audio only); else NULL.",
}


def _session_quality_columns() -> dict[str, str]:
    cols = {
        "session_id": "Zoom session id (sessions.session_id).",
        "session_name": "Zoom session_name.",
        "start_time": "Session start (UTC).",
        "end_time": "Session end (UTC); NULL if unknown.",
        "duration_seconds": "Session duration in seconds (sessions.duration_seconds).",
        "user_count": "Zoom's user_count for the session.",
        "users": "Distinct user_id values in session_users for the session.",
        "joins": "session_users rows (joins; a rejoin counts again).",
        "minutes": (
            "Sum over joins with both join_time and leave_time of (leave_time - join_time), in minutes; "
            "NULL if no join has both."
        ),
        "samples": "user_qos rows of the session (every stream, rated or not); 0 if none.",
        "poor_share": "Poor samples / rated samples over all media types (0..1); NULL if none rated.",
    }
    names = {"audio": "audio", "video": "video", "screen_share": "screen-share"}
    for media in MEDIA_TYPES:
        label = names[media]
        for short, col in MEASURES:
            unit = "percent" if short == "loss_pct" else "milliseconds"
            what = {"latency_ms": "latency", "jitter_ms": "jitter", "loss_pct": "average packet loss"}[short]
            cols[f"{media}_avg_{short}"] = f"Mean {what} of {label} samples, in {unit} (user_qos.{col})."
            cols[f"{media}_p95_{short}"] = (
                f"Nearest-rank 95th percentile {what} of {label} samples, in {unit}."
            )
        cols[f"{media}_poor_share"] = f"Poor {label} samples / rated {label} samples (0..1)."
    cols["audio_mos"] = "Mean MOS of the session's receive-side audio samples (1..4.5); NULL if none."
    cols["poor_joins"] = "Distinct joins with a cause other than none in any media type (join_quality)."
    cols["main_cause"] = (
        "Most frequent cause among the session's poor join_quality rows, ties broken by the cause order "
        "of docs/quality.md; NULL when no join is poor."
    )
    return cols


_STAT_DOCS: dict[str, str] = {
    "sessions": "Distinct sessions with samples in the group.",
    "users": "Distinct user_id values with samples in the group.",
    "samples": "user_qos rows in the group.",
    "poor_samples": "Samples rated poor (NULL if no sample in the group is rated).",
    "poor_share": "poor_samples / rated samples (0..1); NULL if none rated.",
    "avg_latency_ms": "Mean latency in milliseconds.",
    "p95_latency_ms": "Nearest-rank 95th percentile latency in milliseconds.",
    "avg_jitter_ms": "Mean jitter in milliseconds.",
    "p95_jitter_ms": "Nearest-rank 95th percentile jitter in milliseconds.",
    "avg_loss_pct": "Mean average packet loss in percent.",
    "p95_loss_pct": "Nearest-rank 95th percentile of average packet loss in percent.",
}


_DAILY_COLUMNS: dict[str, str] = {
    "day": "UTC calendar date of the samples.",
    "media_type": "audio, video, screen_share or other.",
    **_STAT_DOCS,
}

_BREAKDOWN_COLUMNS: dict[str, str] = {
    "day": "UTC calendar date of the samples.",
    "media_type": "audio, video, screen_share or other.",
    "dimension": "Which session_users attribute the row breaks down by: device, network_type or data_center.",
    "dimension_value": "The attribute's value; 'unknown' where it is NULL.",
    **_STAT_DOCS,
}


_RUN_HEALTH_COLUMNS: dict[str, str] = {
    "run_id": "Airflow run id (pipeline_runs.run_id).",
    "dag_id": "Airflow DAG id that ran.",
    "window_start": "First day of the session window loaded.",
    "window_end": "Last day of the session window loaded.",
    "outcome": "success, failed, skipped, paused (a live poll whose request budget was spent) or running, "
    "as recorded by the run.",
    "started_at": "Run start (UTC).",
    "finished_at": "Run end (UTC); NULL while running.",
    "duration_seconds": "finished_at - started_at in seconds (millisecond precision); NULL while running.",
    "sessions_listed": "Sessions returned by the session list.",
    "sessions_loaded": "Sessions written to the warehouse.",
    "sessions_skipped": "Sessions not written (unkeyable, still live, or errors).",
    "users_loaded": "session_users rows written.",
    "qos_rows": "user_qos rows written.",
    "system_rows": "user_system_qos rows written.",
    "api_requests": "HTTP requests made to Zoom.",
    "retries": "Requests retried after an error.",
    "rate_limit_waits": "Times the run waited for a Zoom rate limit (HTTP 429).",
    "rate_limit_wait_seconds": "Total seconds spent waiting for rate limits.",
    "token_restarts": "List crawls restarted because a next_page_token expired.",
    "unparsed_values": "Values loaded as NULL because they could not be parsed.",
    "dq_hard_violations": "Rows found by hard data-quality checks (see pipeline_runs.dq_findings).",
    "health": (
        "failed if outcome is failed; running while running; degraded if unparsed_values, "
        "dq_hard_violations, token_restarts or sessions_skipped is above 0; else skipped "
        "(outcome skipped), paused (outcome paused) or healthy."
    ),
    "health_reason": (
        "Why the run is degraded, in words, e.g. \"1,074 values could not be parsed; 2 lists restarted "
        "after a page token expired\": each of unparsed_values, dq_hard_violations, token_restarts "
        "and sessions_skipped above 0, joined by \"; \". NULL when none is."
    ),
    "error": "Error summary when the run failed.",
}


_DAILY_COMPLETENESS_COLUMNS: dict[str, str] = {
    "usage_date": "UTC day: every day with a daily_usage row or a (not live) session starting on it.",
    "zoom_sessions": (
        "Sessions Zoom counted on the day (daily_usage.sessions); NULL if its count was not read."
    ),
    "warehouse_sessions": (
        "Sessions in the warehouse whose start_time falls on the day (UTC), live ones excluded; 0 if none."
    ),
    "sessions_loaded": "Of warehouse_sessions, those with qos_status loaded (their QoS is in the warehouse).",
    "sessions_pending": "Of warehouse_sessions, those with qos_status pending (QoS asked again every run).",
    "sessions_unavailable": (
        "Of warehouse_sessions, those with qos_status unavailable (Zoom will not serve it)."
    ),
}


_LIVE_COLUMNS: dict[str, str] = {
    "session_id": "Zoom session id of a session in progress (sessions.qos_status live).",
    "session_name": "Zoom session_name.",
    "user_id": "Zoom user id of the join.",
    "user_name": "session_users.user_name of the join.",
    "join_time": "The join's join_time (UTC).",
    "media_type": "audio, video or screen_share: one row per media type with samples in the window.",
    "rated_samples": "Samples of the media type rated in the window (as qos_samples.is_poor).",
    "poor_share": "Poor samples / rated samples in the window (0..1); NULL if none rated.",
    "last_sampled_at": (
        f"The join's latest sample of any stream (UTC): the window is the {LIVE_WINDOW_MINUTES} "
        "minutes before it."
    ),
}


_JOIN_QUALITY_COLUMNS: dict[str, str] = {
    "session_id": "Zoom session id of the join (session_users).",
    "user_id": "Zoom user id of the join.",
    "join_time": "The join's join_time (UTC).",
    "media_type": "audio, video or screen_share.",
    "send_samples": "Rated send-side samples of the media type (what the user sent).",
    "send_poor_share": "Poor share of send_samples (0..1); NULL when 0 samples.",
    "receive_samples": "Rated receive-side samples of the media type (what the user received).",
    "receive_poor_share": "Poor share of receive_samples (0..1); NULL when 0 samples.",
    "avg_mos_send": "Mean MOS of the send-side audio samples (audio only, else NULL).",
    "avg_mos_receive": "Mean MOS of the receive-side audio samples (audio only, else NULL).",
    "min_mos_receive": "Lowest MOS of the receive-side audio samples (audio only, else NULL).",
    "issues": (
        "Raised issues, comma-separated in this order: high_latency, high_jitter, high_loss, "
        "low_frame_rate, low_resolution, cpu_pressure, weak_wifi, reconnected; '' when none."
    ),
    "cause": (
        "Why the media was poor: device_cpu, weak_wifi, own_uplink, remote_sender, session_wide, "
        "own_downlink or unknown (the first that holds); none when neither side is poor."
    ),
    "cause_user_id": "For remote_sender: the participant whose poor send side the user heard; else NULL.",
    "score_version": "Version of the scoring rules (1).",
    "day": "UTC day of join_time.",
    "send_poor_samples": "Of send_samples, those rated poor.",
    "receive_poor_samples": "Of receive_samples, those rated poor.",
    "user_name": "session_users.user_name of the join.",
    "device": "session_users.device of the join.",
    "network_type": "session_users.network_type of the join.",
    "data_center": "session_users.data_center of the join.",
    "location": "session_users.location of the join (as Zoom reports it).",
    "client": "session_users.client of the join (the SDK or app).",
    "os": "session_users.os of the join.",
}

_ALERT_COMPARISON_COLUMNS: dict[str, str] = {
    "session_id": "A session Zoom (session.alert, zoom_session_alerts) or our live DAG (qos_alerts) flagged.",
    "session_name": "Zoom session_name (sessions); NULL if the session is not in the warehouse yet.",
    "flagged_by_zoom": "1 if Zoom sent a session.alert for the session, else 0.",
    "flagged_by_us": "1 if the live DAG raised a qos_alerts row for one of its joins, else 0.",
    "zoom_alerts": "session.alert notifications of the session.",
    "zoom_first_alert_at": "Zoom's event_ts of its first alert (UTC); NULL if none.",
    "zoom_last_issues": "The issues of Zoom's latest alert, in its words; NULL if none.",
    "our_alerts": "qos_alerts rows of the session (per join and media type).",
    "our_first_alert_at": "first_seen_at of our first alert (UTC); NULL if none.",
}

_DAILY_CAUSES_COLUMNS: dict[str, str] = {
    "day": "UTC day of the joins' join_time.",
    "media_type": "audio, video or screen_share.",
    "cause": "A cause of join_quality (none included).",
    "joins": "join_quality rows of the day, media type and cause.",
}

_GRADE_AGREEMENT_COLUMNS: dict[str, str] = {
    "media_type": "audio, video or screen_share.",
    "zoom_grade": "Zoom's own grade of the join (session_users.*_quality): good, fair, poor or bad.",
    "joins": "join_quality rows with that grade.",
    "poor_joins": "Of joins, those our scoring found poor (cause other than none).",
}


VIEWS: list[View] = [
    View(
        name="qos_samples",
        comment=(
            "user_qos samples with their media type, UTC day, poor flag (against qos_thresholds) "
            "and the join's device, network type and data center; sessions in progress (qos_status "
            "live) are left out. Helper for the other views."
        ),
        sql=qos_samples_sql,
        columns=_QOS_SAMPLES_COLUMNS,
    ),
    View(
        name="session_quality",
        comment=(
            "One row per session: joins, users, minutes, samples and, per media type, average and "
            "p95 latency/jitter/loss and poor share. Sessions without samples have NULL metrics; "
            "sessions in progress (qos_status live) are left out."
        ),
        sql=session_quality_sql,
        columns=_session_quality_columns(),
    ),
    View(
        name="daily_quality",
        comment="One row per UTC day and media type: sessions, users, samples, poor share, avg/p95 metrics.",
        sql=daily_quality_sql,
        columns=_DAILY_COLUMNS,
    ),
    View(
        name="daily_quality_breakdown",
        comment=(
            "daily_quality broken down by device, network_type and data_center: one row per day, "
            "media type, dimension and dimension value. Filter on dimension to pick a breakdown."
        ),
        sql=daily_breakdown_sql,
        columns=_BREAKDOWN_COLUMNS,
    ),
    View(
        name="join_quality",
        comment=(
            "One row per join and media type with samples: send and receive poor shares, audio MOS, "
            "the issues raised and the cause of poor quality (docs/quality.md). Sessions in progress "
            "are left out."
        ),
        sql=join_quality_sql,
        columns=_JOIN_QUALITY_COLUMNS,
    ),
    View(
        name="daily_causes",
        comment="One row per UTC day (of join_time), media type and cause: how many joins had it.",
        sql=daily_causes_sql,
        columns=_DAILY_CAUSES_COLUMNS,
    ),
    View(
        name="grade_agreement",
        comment=(
            "Where per-user grades are read: per media type and Zoom grade, how many joins our scoring "
            "found poor."
        ),
        sql=grade_agreement_sql,
        columns=_GRADE_AGREEMENT_COLUMNS,
    ),
    View(
        name="run_health",
        comment="One row per pipeline run: what it loaded, what it cost, and a health label.",
        sql=run_health_sql,
        columns=_RUN_HEALTH_COLUMNS,
    ),
    View(
        name="daily_completeness",
        comment=(
            "One row per UTC day: the sessions Zoom counted (daily_usage) against the sessions the "
            "warehouse holds that started on the day, and how many of those have their QoS loaded, "
            "pending or unavailable. Live sessions are not counted."
        ),
        sql=daily_completeness_sql,
        columns=_DAILY_COMPLETENESS_COLUMNS,
    ),
    View(
        name="live_session_quality",
        comment=(
            "Sessions in progress only (qos_status live): one row per join and media type, rated "
            f"samples and poor share over the join's last {LIVE_WINDOW_MINUTES} minutes of samples "
            "(live_quality() in zoom_qos.warehouse.live takes another window)."
        ),
        sql=live_quality_sql,
        columns=_LIVE_COLUMNS,
    ),
    View(
        name="alert_comparison",
        comment=(
            "One row per session flagged by Zoom's own session.alert or by our live alerts (qos_alerts): "
            "which of the two flagged it, how often and when first."
        ),
        sql=alert_comparison_sql,
        columns=_ALERT_COMPARISON_COLUMNS,
    ),
]


def view_by_name(name: str) -> View:
    """The :class:`View` called ``name`` (KeyError if there is none)."""
    for view in VIEWS:
        if view.name == name:
            return view
    raise KeyError(name)
