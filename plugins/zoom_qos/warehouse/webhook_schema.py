"""The tables of Zoom's event notifications (webhooks): what the receiver stored, and Zoom's alerts.

``webhook_events`` is the receiver's durable store: an event is answered 2xx only once its row is
committed, and the DAG ``zoom_videosdk_qos_events`` loads the sessions of the ``session.ended``
rows it has not handled yet. ``zoom_session_alerts`` keeps Zoom's own ``session.alert``s (per
session; Zoom names no user). ``webhook_delivery_failures`` holds the deliveries Zoom's
``webhook_logs`` report marks failed, so an operator sees a broken endpoint before data is late.
Declared beside ``schema`` on the same ``METADATA`` (revision 0007_webhooks creates them, 0008_webhook_logs
rebuilds ``webhook_delivery_failures``).
"""

from __future__ import annotations

import sqlalchemy as sa

from zoom_qos.warehouse.columns import METADATA, UtcDateTime, json_type, text

__all__ = ["WEBHOOK_TABLES", "webhook_delivery_failures", "webhook_events", "webhook_signatures_seen",
           "zoom_session_alerts"]

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
    sa.Column(
        "request_id",
        sa.Text(),
        primary_key=True,
        comment="Zoom's request_id of the delivery (the same for its retries; 'sha256:…' of the log "
        "entry when Zoom gives none).",
    ),
    sa.Column(
        "retry_num",
        sa.Integer(),
        primary_key=True,
        comment="Zoom's retry_num: 0 the first attempt, 1-3 retries.",
    ),
    sa.Column("event", sa.Text(), nullable=False, comment="Zoom's event name, e.g. session.ended."),
    sa.Column("event_ts", UtcDateTime(), nullable=True, comment="The event's event_ts (UTC), from its body."),
    text("session_id", "payload.object.session_id of the event, from its body; NULL if none."),
    sa.Column(
        "status",
        sa.Integer(),
        nullable=False,
        comment="The HTTP status our endpoint answered; -1 when none came (connection refused, "
        "timed out).",
    ),
    sa.Column(
        "failed_reason_type",
        sa.Integer(),
        nullable=True,
        comment="Zoom's reason code for a connection error (1 read time out, 2 connection refused, "
        "9 certificate error, 12 TLS verify failed …; docs/webhooks.md).",
    ),
    text("endpoint", "The URL Zoom delivered to."),
    sa.Column("attempted_at", UtcDateTime(), nullable=False, comment="When Zoom tried (its date_time, UTC)."),
    sa.Column(
        "recorded_at", UtcDateTime(), nullable=False, comment="When the reconciliation recorded it (UTC)."
    ),
    comment="Deliveries Zoom's webhook_logs report marks failed (read by the daily run): each failed "
    "attempt once. The sessions concerned are left to the daily run.",
)

webhook_signatures_seen = sa.Table(
    "webhook_signatures_seen",
    METADATA,
    sa.Column(
        "signature_hash",
        sa.Text(),
        primary_key=True,
        comment="sha256 of a stored delivery's x-zm-signature: the same signed request sent again (a "
        "replay) is recognised and changes nothing. Zoom's own retries are signed anew.",
    ),
    sa.Column("received_at", UtcDateTime(), nullable=False, comment="When it was stored (UTC)."),
    sa.Index("ix_webhook_signatures_seen_received_at", "received_at"),
    comment="The receiver's memory of the signed requests it stored, kept for twice the signature "
    "window (older requests are refused as stale anyway).",
)

WEBHOOK_TABLES: tuple[sa.Table, ...] = (webhook_events, zoom_session_alerts, webhook_delivery_failures,
                                        webhook_signatures_seen)
