"""Data quality: QoS thresholds, run-record DQ columns, bookkeeping for managed views.

Revision ID: 0002_quality
Revises: 0001_initial
Create Date: 2025-06-15

- ``qos_thresholds``: per media type, the limits above which a QoS sample is "poor", seeded
  with Zoom's published network guidance (latency <= 150 ms, jitter <= 40 ms, loss <= 2 %).
- ``pipeline_runs.dq_findings`` (JSON) and ``dq_hard_violations`` (integer), both nullable, so
  existing run records stay valid.
- ``schema_objects``: name -> checksum of the BI views ``ensure_schema`` keeps up to date.

Frozen snapshot: never edit, add a revision instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_quality"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_NOTE = "Zoom network guidance: latency <= 150 ms, jitter <= 40 ms, packet loss <= 2 %."
_SEED = [
    {"media_type": media, "latency_ms": 150.0, "jitter_ms": 40.0, "loss_pct": 2.0, "note": _NOTE}
    for media in ("audio", "video", "screen_share")
]


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def upgrade() -> None:
    schema = _schema()
    thresholds = op.create_table(
        "qos_thresholds",
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
        sa.Column("note", sa.Text(), nullable=True, comment="Where the limits come from."),
        schema=schema,
        comment="QoS limits per media type; a sample exceeding any of them counts as poor. Editable.",
    )
    op.bulk_insert(thresholds, _SEED)

    op.add_column(
        "pipeline_runs",
        sa.Column(
            "dq_findings",
            sa.JSON().with_variant(JSONB(), "postgresql"),
            nullable=True,
            comment="Data-quality checks of this run's loaded sessions: the findings of each check (JSON).",
        ),
        schema=schema,
    )
    op.add_column(
        "pipeline_runs",
        sa.Column(
            "dq_hard_violations",
            sa.Integer(),
            nullable=True,
            comment="Data-quality findings that fail the run (hard rules); NULL if not checked.",
        ),
        schema=schema,
    )

    op.create_table(
        "schema_objects",
        sa.Column("name", sa.Text(), primary_key=True, comment="Name of a managed view (without schema)."),
        sa.Column(
            "checksum",
            sa.Text(),
            nullable=False,
            comment="sha256 of the definition the view was created from.",
        ),
        schema=schema,
        comment="Bookkeeping for repeatable objects (BI views): recreated when their definition changes.",
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_table("schema_objects", schema=schema)
    op.drop_column("pipeline_runs", "dq_hard_violations", schema=schema)
    op.drop_column("pipeline_runs", "dq_findings", schema=schema)
    op.drop_table("qos_thresholds", schema=schema)
