"""Zoom's event notifications (webhooks): the receiver's store, Zoom's own alerts, failed deliveries.

Revision ID: 0007_webhooks
Revises: 0006_scoring
Create Date: 2027-04-01

- ``webhook_events`` (key ``event_key``, the event's own identity): every event the receiver
  answered 2xx, stored once however often Zoom delivered it; the events DAG marks the
  ``session.ended`` ones handled (``handled_at``, ``outcome``) as it loads their sessions.
- ``zoom_session_alerts`` (key ``session_id``, ``event_ts``): Zoom's ``session.alert``s.
- ``webhook_delivery_failures`` (key ``event``, ``event_ts``, ``delivered_at``): deliveries Zoom's
  ``webhook_logs`` report marks failed.
- The view comparing Zoom's alerts with ours (``alert_comparison``) is a repeatable object:
  ``ensure_schema`` creates it.

New tables only: nothing existing changes. Frozen snapshot: never edit, add a revision instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_webhooks"
down_revision = "0006_scoring"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _text(name: str, comment: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "webhook_events",
        sa.Column(
            "event_key",
            sa.Text(),
            primary_key=True,
            comment="The event's own identity: sha256 of its event name, event_ts and object id "
            "(session_id). Zoom's retries and duplicate deliveries of one event share it, so they "
            "are stored once.",
        ),
        sa.Column("event", sa.Text(), nullable=False, comment="Zoom's event name, e.g. session.ended."),
        sa.Column("event_ts", _TS, nullable=False, comment="Zoom's event_ts (UTC, millisecond precision)."),
        _text("session_id", "payload.object.session_id: the session id the REST paths take; NULL if none."),
        _text("request_id", "x-zm-request-id of the first delivery stored."),
        sa.Column(
            "payload",
            sa.JSON().with_variant(JSONB(), "postgresql"),
            nullable=False,
            comment="The event's payload.object as Zoom sent it (JSON).",
        ),
        sa.Column("received_at", _TS, nullable=False, comment="When the first delivery was stored (UTC)."),
        sa.Column(
            "deliveries",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("1"),
            comment="Deliveries of this event received (Zoom's retries and duplicates included).",
        ),
        sa.Column(
            "attempts",
            sa.Integer(),
            nullable=False,
            server_default=sa.text("0"),
            comment="session.ended: times the events DAG asked Zoom for the session's QoS.",
        ),
        sa.Column(
            "next_attempt_at",
            _TS,
            nullable=True,
            comment="session.ended whose QoS Zoom did not serve yet (pending): not asked again before "
            "this (UTC).",
        ),
        sa.Column(
            "handled_at",
            _TS,
            nullable=True,
            comment="When the events DAG was done with it (UTC); NULL while the session is still to load.",
        ),
        _text("handled_by", "The run (dag_id/run_id) that handled it."),
        _text(
            "outcome",
            "What handling it came to: loaded, pending (asked again after next_attempt_at), unavailable, "
            "left_to_daily (its backoff ran out: the daily run takes it).",
        ),
        comment="Zoom's event notifications as the receiver stored them, once per event.",
        schema=schema,
    )
    op.create_index("ix_webhook_events_open", "webhook_events", ["event", "handled_at"], schema=schema)
    op.create_table(
        "zoom_session_alerts",
        sa.Column(
            "session_id", sa.Text(), primary_key=True, comment="Zoom session id (payload.object.session_id)."
        ),
        sa.Column("event_ts", _TS, primary_key=True, comment="Zoom's event_ts of the alert (UTC)."),
        _text("alert_id", "payload.object.id of the alert."),
        _text("session_name", "Zoom session_name."),
        _text("session_key", "Zoom session_key."),
        sa.Column(
            "issues",
            sa.Text(),
            nullable=False,
            comment="Zoom's issues, in its words and order, joined by ', ' (e.g. 'Unstable audio quality, "
            "High CPU occupation'); '' if none.",
        ),
        sa.Column("received_at", _TS, nullable=False, comment="When it was stored (UTC)."),
        comment="Zoom's own session.alert notifications: one row per alert (per session; Zoom names "
        "no user).",
        schema=schema,
    )
    op.create_table(
        "webhook_delivery_failures",
        sa.Column("event", sa.Text(), primary_key=True, comment="Zoom's event name of the failed delivery."),
        sa.Column("event_ts", _TS, primary_key=True, comment="Zoom's event_ts of it (UTC)."),
        sa.Column("delivered_at", _TS, primary_key=True, comment="When Zoom tried the delivery (UTC)."),
        _text("session_id", "The session the event was about, when the log names it."),
        _text("status", "The delivery's status as Zoom's webhook_logs report gives it."),
        sa.Column("retry_num", sa.Integer(), nullable=True, comment="Zoom's retry number of that delivery."),
        _text("endpoint", "The URL Zoom delivered to."),
        sa.Column(
            "recorded_at", _TS, nullable=False, comment="When the reconciliation recorded it (UTC)."
        ),
        comment="Deliveries Zoom's webhook_logs report marks failed (read daily): the sessions concerned "
        "are left to the daily run.",
        schema=schema,
    )


def _drop_managed_views(schema: str | None) -> None:
    """A view reads the tables dropped below; ``ensure_schema`` recreates the views it manages."""
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
    op.drop_index("ix_webhook_events_open", "webhook_events", schema=schema)
    for name in ("webhook_delivery_failures", "zoom_session_alerts", "webhook_events"):
        op.drop_table(name, schema=schema)
