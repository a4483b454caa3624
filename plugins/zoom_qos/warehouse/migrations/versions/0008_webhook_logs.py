"""Zoom's webhook_logs as the reconciliation reads them (``webhook_delivery_failures`` rebuilt), and
the receiver's memory of the signed requests it stored (``webhook_signatures_seen``).

Revision ID: 0008_webhook_logs
Revises: 0007_webhooks
Create Date: 2027-04-08

0007 keyed the table on guesses (event, event_ts, delivered_at) made before Zoom's published
definition of ``GET /videosdk/report/webhook_logs`` was read: each log entry carries a
``request_id`` (kept across retries) and a ``retry_num``, its ``status`` is the HTTP code (an
integer, -1 when no answer came) and a ``failed_reason_type``. Nothing wrote to the 0007 table (no
release read the report), so it is dropped and created again, keyed on (``request_id``,
``retry_num``).

``webhook_signatures_seen`` is new: the receiver's memory of the signed requests it stored (a hash
of each ``x-zm-signature``, kept ten minutes), so that the same signed request sent again within the
signature window (a replay) changes nothing, not even the delivery count.

Frozen snapshot: never edit, add a revision instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008_webhook_logs"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_NAME = "webhook_delivery_failures"


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _text(name: str, comment: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def upgrade() -> None:
    schema = _schema()
    op.drop_table(_NAME, schema=schema)
    op.create_table(
        _NAME,
        sa.Column(
            "request_id",
            sa.Text(),
            primary_key=True,
            comment="Zoom's request_id of the delivery (the same for its retries; 'sha256:…' of the log "
            "entry when Zoom gives none).",
        ),
        sa.Column("retry_num", sa.Integer(), primary_key=True,
                  comment="Zoom's retry_num: 0 the first attempt, 1-3 retries."),
        sa.Column("event", sa.Text(), nullable=False, comment="Zoom's event name, e.g. session.ended."),
        sa.Column("event_ts", _TS, nullable=True, comment="The event's event_ts (UTC), from its body."),
        _text("session_id", "payload.object.session_id of the event, from its body; NULL if none."),
        sa.Column("status", sa.Integer(), nullable=False,
                  comment="The HTTP status our endpoint answered; -1 when none came (connection refused, "
                  "timed out)."),
        sa.Column("failed_reason_type", sa.Integer(), nullable=True,
                  comment="Zoom's reason code for a connection error (1 read time out, 2 connection "
                  "refused, 9 certificate error, 12 TLS verify failed …; docs/webhooks.md)."),
        _text("endpoint", "The URL Zoom delivered to."),
        sa.Column("attempted_at", _TS, nullable=False, comment="When Zoom tried (its date_time, UTC)."),
        sa.Column("recorded_at", _TS, nullable=False, comment="When the reconciliation recorded it (UTC)."),
        comment="Deliveries Zoom's webhook_logs report marks failed (read by the daily run): each failed "
        "attempt once. The sessions concerned are left to the daily run.",
        schema=schema,
    )


    op.create_table(
        "webhook_signatures_seen",
        sa.Column("signature_hash", sa.Text(), primary_key=True,
                  comment="sha256 of a stored delivery's x-zm-signature: the same signed request sent again "
                  "(a replay) is recognised and changes nothing. Zoom's own retries are signed anew."),
        sa.Column("received_at", _TS, nullable=False, comment="When it was stored (UTC)."),
        comment="The receiver's memory of the signed requests it stored, kept for twice the signature "
        "window (older requests are refused as stale anyway).",
        schema=schema,
    )
    op.create_index("ix_webhook_signatures_seen_received_at", "webhook_signatures_seen", ["received_at"],
                    schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_index("ix_webhook_signatures_seen_received_at", "webhook_signatures_seen", schema=schema)
    op.drop_table("webhook_signatures_seen", schema=schema)
    op.drop_table(_NAME, schema=schema)
    op.create_table(
        _NAME,
        sa.Column("event", sa.Text(), primary_key=True, comment="Zoom's event name of the failed delivery."),
        sa.Column("event_ts", _TS, primary_key=True, comment="Zoom's event_ts of it (UTC)."),
        sa.Column("delivered_at", _TS, primary_key=True, comment="When Zoom tried the delivery (UTC)."),
        _text("session_id", "The session the event was about, when the log names it."),
        _text("status", "The delivery's status as Zoom's webhook_logs report gives it."),
        sa.Column("retry_num", sa.Integer(), nullable=True, comment="Zoom's retry number of that delivery."),
        _text("endpoint", "The URL Zoom delivered to."),
        sa.Column("recorded_at", _TS, nullable=False, comment="When the reconciliation recorded it (UTC)."),
        comment="Deliveries Zoom's webhook_logs report marks failed (read daily): the sessions concerned "
        "are left to the daily run.",
        schema=schema,
    )
