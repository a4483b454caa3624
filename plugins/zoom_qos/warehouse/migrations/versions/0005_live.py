"""Live monitoring (docs/warehouse.md, "Live monitoring"): the alerts raised while a session is live.

Revision ID: 0005_live
Revises: 0004_quality_alerts
Create Date: 2027-02-01

- ``qos_alerts`` (key ``session_id``, ``user_id``, ``join_time``, ``media_type``,
  ``first_seen_at``): a join whose poor share of one media type, over its samples of the last
  ``window_minutes``, crossed ``live_alert_poor_share``; ``cleared_at`` once it fell back under it.
- ``sessions.qos_status``: ``live`` is already allowed by the CHECK of revision 0003, so the
  sessions table is left as it is (no batch copy).
- ``pipeline_runs.outcome`` has no CHECK; only its comment changes (``paused``: a live poll whose
  request budget was spent), on PostgreSQL where comments exist.
- The views (``live_session_quality``, and ``qos_samples``/``session_quality`` and the views on
  them now leaving ``live`` sessions out) are repeatable objects: ``ensure_schema`` recreates them.

A new table and a comment: nothing existing changes. Frozen snapshot: never edit, add a revision
instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_live"
down_revision = "0004_quality_alerts"
branch_labels = None
depends_on = None

_OUTCOME_COMMENT_V4 = "success, failed, skipped or running."
_OUTCOME_COMMENT = "success, failed, skipped, paused (a live poll whose request budget was spent) or running."


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _supports_comments() -> bool:
    return bool(op.get_bind().dialect.supports_comments)


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "qos_alerts",
        sa.Column(
            "session_id", sa.Text(), primary_key=True, comment="Zoom session id of the join (session_users)."
        ),
        sa.Column(
            "user_id", sa.Text(), primary_key=True, comment="Zoom user `id` of the join (session_users)."
        ),
        sa.Column(
            "join_time", sa.DateTime(timezone=True), primary_key=True, comment="The join's `join_time` (UTC)."
        ),
        sa.Column(
            "media_type",
            sa.Text(),
            primary_key=True,
            comment="audio, video or screen_share (as in qos_samples).",
        ),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
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
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the notifier was called (UTC); NULL if none is configured, or it failed.",
        ),
        sa.Column(
            "cleared_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Sample time (UTC) at which the share fell back under the limit; NULL while open.",
        ),
        schema=schema,
        comment=(
            "One row per alert raised while a session was live: a join whose poor share of one media "
            "type crossed live_alert_poor_share. An open alert (cleared_at NULL) is not raised again; "
            "one that cleared and returns is a new row. Added by revision 0005_live."
        ),
    )
    if _supports_comments():
        op.alter_column(
            "pipeline_runs",
            "outcome",
            existing_type=sa.Text(),
            existing_nullable=True,
            comment=_OUTCOME_COMMENT,
            existing_comment=_OUTCOME_COMMENT_V4,
            schema=schema,
        )


def downgrade() -> None:
    schema = _schema()
    if _supports_comments():
        op.alter_column(
            "pipeline_runs",
            "outcome",
            existing_type=sa.Text(),
            existing_nullable=True,
            comment=_OUTCOME_COMMENT_V4,
            existing_comment=_OUTCOME_COMMENT,
            schema=schema,
        )
    op.drop_table("qos_alerts", schema=schema)
