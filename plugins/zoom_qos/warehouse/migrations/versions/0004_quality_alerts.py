"""Quality alerts: one row per UTC day and kind of alert raised, so a day alerts once.

Revision ID: 0004_quality_alerts
Revises: 0003_completeness
Create Date: 2027-01-15

- ``quality_alerts`` (key ``alert_day``, ``kind``): a loaded day whose poor share (view
  ``daily_quality``) or whose gap to Zoom's own count (view ``daily_completeness``) crossed its
  ``[zoom_qos]`` threshold, with the figures, the threshold, the report's path and when the
  configured notifier was told (NULL: it failed, see ``notify_error``). The row is written
  before the notifier is called, so two runs at once cannot both alert: the insert that wins
  the primary key notifies.

A new table only: nothing existing changes. Frozen snapshot: never edit, add a revision instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_quality_alerts"
down_revision = "0003_completeness"
branch_labels = None
depends_on = None


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def upgrade() -> None:
    op.create_table(
        "quality_alerts",
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
            sa.JSON().with_variant(JSONB(), "postgresql"),
            nullable=False,
            comment="The day's figures the alert was raised on (JSON), as sent to the notifier.",
        ),
        sa.Column("report_path", sa.Text(), nullable=True, comment="The QoS report the alert points to."),
        sa.Column("run_id", sa.Text(), nullable=True, comment="The pipeline run that raised the alert."),
        sa.Column(
            "raised_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the alert was raised (UTC).",
        ),
        sa.Column(
            "notified_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the configured notifier was told (UTC); NULL if none is configured or it failed.",
        ),
        sa.Column(
            "notify_error",
            sa.Text(),
            nullable=True,
            comment="Why the notifier failed, or that none is configured; NULL once notified.",
        ),
        schema=_schema(),
        comment=(
            "Quality alerts raised: one per UTC day and kind, ever (a re-run does not alert again). "
            "Added by revision 0004_quality_alerts."
        ),
    )


def downgrade() -> None:
    op.drop_table("quality_alerts", schema=_schema())
