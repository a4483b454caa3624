"""Completeness (docs/warehouse.md, v2): every listed session kept with its QoS state; Zoom's daily count.

Revision ID: 0003_completeness
Revises: 0002_quality
Create Date: 2026-12-01

- ``sessions.qos_status`` (text, not null; ``loaded``/``pending``/``unavailable``/``live``, a
  named CHECK) and ``sessions.qos_checked_at`` (timestamp, null). Every v1 session had its QoS
  read, so existing rows become ``loaded``: a server default fills them while the column is
  added, and is dropped again, because the loader must always say which state a session is in.
  SQLite cannot drop a default or add a CHECK with ALTER TABLE, so that step runs in batch mode
  (the table is copied into a new one; every row and column is kept), with SQLite's legacy
  rename so that views of the analysts' own on ``sessions`` survive the swap (the managed views
  are dropped and recreated by ``ensure_schema``). Both back ends run the same code path.
- ``session_users.participant_uuid``, ``audio_quality``, ``video_quality``,
  ``screen_share_quality`` (text, null): per-join grades of the optional users read.
- ``daily_usage``: Zoom's own count of each UTC day (``GET /videosdk/report/daily``).
- ``pipeline_runs.sessions_pending``, ``sessions_unavailable`` (integer, null).

Everything added is nullable or filled, so every v1 query keeps working. Frozen snapshot: never
edit, add a revision instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0003_completeness"
down_revision = "0002_quality"
branch_labels = None
depends_on = None

_STATUS_CHECK = "ck_sessions_qos_status"
_STATUS_CONDITION = "qos_status IN ('loaded', 'pending', 'unavailable', 'live')"
_STATUS_COMMENT = (
    "State of the session's QoS: loaded (read completely; its joins and samples are the rows "
    "here), pending (Zoom answered 3001 less than qos_pending_max_hours after the end; asked "
    "again every run), unavailable (Zoom will not return it: 3001 after that, invalid id or too "
    "old), live (provisional rows of a session in progress)."
)
_SESSIONS_COMMENT_V1 = "One row per Zoom Video SDK session."
_SESSIONS_COMMENT = "One row per Zoom Video SDK session Zoom lists, whether or not its QoS could be read."
_GRADE_FIELDS = ("audio_quality", "video_quality", "screen_share_quality")


def _schema() -> str | None:
    return op.get_context().opts.get("warehouse_schema")


def _supports_comments() -> bool:
    return bool(op.get_bind().dialect.supports_comments)


@contextmanager
def _views_survive_table_swap() -> Iterator[None]:
    """On SQLite, rename the batch's new table without checking the views that read the old one.

    Batch mode drops ``sessions`` and renames its copy to ``sessions``. A modern SQLite checks
    every view in the file at that rename and fails on one that reads ``sessions`` (gone at that
    instant), so a view an analyst made would block the upgrade. The legacy rename does not
    look at views, and the view reads the new ``sessions`` once the swap is done.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    previous = bind.exec_driver_sql("PRAGMA legacy_alter_table").scalar()
    bind.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    try:
        yield
    finally:
        bind.exec_driver_sql(f"PRAGMA legacy_alter_table = {'ON' if previous else 'OFF'}")


def _text(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=True, comment=comment)


def _int(name: str, comment: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=True, comment=comment)


def upgrade() -> None:
    schema = _schema()

    # sessions: the status, filled 'loaded' for every existing row by a temporary default.
    op.add_column(
        "sessions",
        sa.Column("qos_status", sa.Text(), nullable=False, server_default="loaded", comment=_STATUS_COMMENT),
        schema=schema,
    )
    op.add_column(
        "sessions",
        sa.Column(
            "qos_checked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the session's QoS was last asked for (UTC); NULL if never.",
        ),
        schema=schema,
    )
    # A second step: on SQLite the batch copies the rows, qos_status included, into a table
    # declared without the default (in the step above the copy would have had nothing to fill it).
    with _views_survive_table_swap(), op.batch_alter_table("sessions", schema=schema) as batch:
        batch.alter_column(
            "qos_status",
            existing_type=sa.Text(),
            existing_nullable=False,
            existing_server_default="loaded",
            existing_comment=_STATUS_COMMENT,
            server_default=None,
        )
        batch.create_check_constraint(_STATUS_CHECK, sa.text(_STATUS_CONDITION))
    if _supports_comments():
        op.create_table_comment(
            "sessions", _SESSIONS_COMMENT, existing_comment=_SESSIONS_COMMENT_V1, schema=schema
        )

    op.add_column(
        "session_users",
        _text(
            "participant_uuid",
            "Zoom `participant_uuid` of the join (extra read_user_grades); NULL if not read or no match.",
        ),
        schema=schema,
    )
    for name in _GRADE_FIELDS:
        op.add_column(
            "session_users",
            _text(
                name,
                f"Zoom per-join `{name}`: good, fair, poor or bad (extra read_user_grades); "
                "NULL if not read or no match.",
            ),
            schema=schema,
        )

    op.add_column(
        "pipeline_runs",
        _int("sessions_pending", "Listed sessions the run left pending (QoS not out yet; asked again)."),
        schema=schema,
    )
    op.add_column(
        "pipeline_runs",
        _int(
            "sessions_unavailable",
            "Listed sessions the run left unavailable (Zoom will not serve their QoS).",
        ),
        schema=schema,
    )

    op.create_table(
        "daily_usage",
        sa.Column("usage_date", sa.Date(), primary_key=True, comment="The UTC day (Zoom `date`)."),
        _int("sessions", "Zoom `sessions`: the sessions Zoom counted on the day."),
        _int("users", "Zoom `users` of the day."),
        _int("session_minutes", "Zoom `session_minutes`: minutes of the day's sessions."),
        sa.Column(
            "fetched_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When Zoom's figures for the day were read (UTC).",
        ),
        schema=schema,
        comment=(
            "Zoom's own count of each UTC day (GET /videosdk/report/daily), to compare with what the "
            "warehouse holds (view daily_completeness). Added by revision 0003_completeness."
        ),
    )


def downgrade() -> None:
    """Back to v2's predecessor: the v2 columns and ``daily_usage`` (and what they held) go."""
    schema = _schema()
    op.drop_table("daily_usage", schema=schema)
    for name in ("sessions_unavailable", "sessions_pending"):
        op.drop_column("pipeline_runs", name, schema=schema)
    for name in (*reversed(_GRADE_FIELDS), "participant_uuid"):
        op.drop_column("session_users", name, schema=schema)
    if _supports_comments():
        op.create_table_comment(
            "sessions", _SESSIONS_COMMENT_V1, existing_comment=_SESSIONS_COMMENT, schema=schema
        )
    # SQLite refuses to drop a column a CHECK names: drop the constraint first, in one copy.
    with _views_survive_table_swap(), op.batch_alter_table("sessions", schema=schema) as batch:
        batch.drop_constraint(_STATUS_CHECK, type_="check")
        batch.drop_column("qos_checked_at")
        batch.drop_column("qos_status")
