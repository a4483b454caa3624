"""The tables of Zoom's event notifications (webhooks): what the receiver stored, and Zoom's alerts.

``webhook_events`` is the receiver's durable store: an event is answered 2xx only once its row is
committed, and the DAG ``zoom_videosdk_qos_events`` loads the sessions of the ``session.ended``
rows it has not handled yet. ``zoom_session_alerts`` keeps Zoom's own ``session.alert``s (per
session; Zoom names no user). ``webhook_delivery_failures`` holds the deliveries Zoom's
``webhook_logs`` report marks failed, so an operator sees a broken endpoint before data is late.
Declared beside ``schema`` on the same ``METADATA`` (revision 0007_webhooks creates them).
"""

from __future__ import annotations

import sqlalchemy as sa

from zoom_qos.warehouse.columns import METADATA, UtcDateTime, json_type, text

__all__ = ["WEBHOOK_TABLES", "webhook_delivery_failures", "webhook_events", "zoom_session_alerts"]

webhook_events = sa.Table(
    "webhook_events",
    METADATA,
    sa.Column(
        "event_key",
        sa.Text(),
        primary_key=True,
        comment="The event's own identity: sha256 of its event name, event_ts and object id "
        "(session_id). Zoom's retries and duplicate deliveries of one event share it, so they "
        "are stored once.",
    ),
    sa.Column("event", sa.Text(), nullable=False, comment="Zoom's event name, e.g. session.ended."),
    sa.Column(
        "event_ts", UtcDateTime(), nullable=False, comment="Zoom's event_ts (UTC, millisecond precision)."
    ),
    text("session_id", "payload.object.session_id: the session id the REST paths take; NULL if none."),
    text("request_id", "x-zm-request-id of the first delivery stored."),
    sa.Column(
        "payload", json_type(), nullable=False, comment="The event's payload.object as Zoom sent it (JSON)."
    ),
    sa.Column(
        "received_at", UtcDateTime(), nullable=False, comment="When the first delivery was stored (UTC)."
    ),
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
        UtcDateTime(),
        nullable=True,
        comment="session.ended whose QoS Zoom did not serve yet (pending): not asked again before "
        "this (UTC).",
    ),
    sa.Column(
        "handled_at",
        UtcDateTime(),
        nullable=True,
        comment="When the events DAG was done with it (UTC); NULL while the session is still to load.",
    ),
    text("handled_by", "The run (dag_id/run_id) that handled it."),
    text(
        "outcome",
        "What handling it came to: loaded, pending (asked again after next_attempt_at), unavailable, "
        "left_to_daily (its backoff ran out: the daily run takes it).",
    ),
    sa.Index("ix_webhook_events_open", "event", "handled_at"),
    comment="Zoom's event notifications as the receiver stored them, once per event.",
)

zoom_session_alerts = sa.Table(
    "zoom_session_alerts",
    METADATA,
    sa.Column(
        "session_id", sa.Text(), primary_key=True, comment="Zoom session id (payload.object.session_id)."
    ),
    sa.Column("event_ts", UtcDateTime(), primary_key=True, comment="Zoom's event_ts of the alert (UTC)."),
    text("alert_id", "payload.object.id of the alert."),
    text("session_name", "Zoom session_name."),
    text("session_key", "Zoom session_key."),
    sa.Column(
        "issues",
        sa.Text(),
        nullable=False,
        comment="Zoom's issues, in its words and order, joined by ', ' (e.g. 'Unstable audio quality, "
        "High CPU occupation'); '' if none.",
    ),
    sa.Column("received_at", UtcDateTime(), nullable=False, comment="When it was stored (UTC)."),
    comment="Zoom's own session.alert notifications: one row per alert (per session; Zoom names no user).",
)

webhook_delivery_failures = sa.Table(
    "webhook_delivery_failures",
    METADATA,
    sa.Column("event", sa.Text(), primary_key=True, comment="Zoom's event name of the failed delivery."),
    sa.Column("event_ts", UtcDateTime(), primary_key=True, comment="Zoom's event_ts of it (UTC)."),
    sa.Column(
        "delivered_at", UtcDateTime(), primary_key=True, comment="When Zoom tried the delivery (UTC)."
    ),
    text("session_id", "The session the event was about, when the log names it."),
    text("status", "The delivery's status as Zoom's webhook_logs report gives it."),
    sa.Column("retry_num", sa.Integer(), nullable=True, comment="Zoom's retry number of that delivery."),
    text("endpoint", "The URL Zoom delivered to."),
    sa.Column(
        "recorded_at", UtcDateTime(), nullable=False, comment="When the reconciliation recorded it (UTC)."
    ),
    comment="Deliveries Zoom's webhook_logs report marks failed (read daily): the sessions concerned "
    "are left to the daily run.",
)

WEBHOOK_TABLES: tuple[sa.Table, ...] = (webhook_events, zoom_session_alerts, webhook_delivery_failures)
