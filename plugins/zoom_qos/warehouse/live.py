"""Live monitoring in the warehouse: the quality of sessions in progress, and the alerts on it.

The live poll loads sessions in progress with :meth:`Warehouse.load_live_sessions
<zoom_qos.warehouse.store.Warehouse.load_live_sessions>` (``qos_status = 'live'``, rows replaced
whole at each poll), then calls :func:`evaluate_live_alerts` and, for each alert it raised that
the notifier took, :func:`mark_alert_notified`.

**Window.** Per join of a live session and media type (``audio``, ``video``, ``screen_share``),
the join's samples of the last ``window_minutes`` before its latest sample of any stream:
``latest - window < sampled_at <= latest``. *Rated* and *poor* are exactly ``qos_samples.is_poor``
(the SQL is shared). The view ``live_session_quality`` shows these figures for the default window
(:data:`LIVE_WINDOW_MINUTES`, fixed when the view is created); :func:`live_quality` returns the same
rows for any window.

**Alerts** (table ``qos_alerts``). A join and media type whose window holds at least
``min_samples`` rated samples with a poor share ``>= poor_share`` is *raised*, unless an alert of
it is open (``cleared_at`` NULL): one row, ``first_seen_at`` the join's latest sample at that
evaluation. An open alert whose current share (any rated sample in the window) is below
``poor_share`` is *cleared* (``cleared_at`` = the join's latest sample); if the problem returns
it is a new row. An alert is raised whether or not a notifier is configured (``notified_at``
stays NULL until :func:`mark_alert_notified`). Alerts of sessions no longer live are left as
they are (an alert still open when its session ended keeps ``cleared_at`` NULL).

Evaluation is idempotent and safe under concurrent polls: each batch of live sessions is
evaluated in one write transaction holding the loader's locks on them (advisory locks on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so it reads the sessions' rows as one load left them
and no other evaluation decides on them meanwhile; the insert is ``ON CONFLICT DO NOTHING`` on the
primary key and only the transaction that inserted a row (or cleared it) returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from zoom_qos.core.statuses import LIVE
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.columns import UtcDateTime, utcnow
from zoom_qos.warehouse.connection import write_transaction
from zoom_qos.warehouse.loader import lock_sessions
from zoom_qos.warehouse.plan import MAX_SESSIONS_PER_TRANSACTION
from zoom_qos.warehouse.sql import check_dialect, object_prefix
from zoom_qos.warehouse.view_sql import LIVE_WINDOW_MINUTES, MEDIA_TYPES, live_quality_sql

__all__ = [
    "ALERT_KEY",
    "LIVE_WINDOW_MINUTES",
    "evaluate_live_alerts",
    "live_quality",
    "mark_alert_notified",
]

#: The primary key of a ``qos_alerts`` row: what :func:`mark_alert_notified` reads of an alert.
ALERT_KEY: tuple[str, ...] = ("session_id", "user_id", "join_time", "media_type", "first_seen_at")
_JOIN_MEDIA = ALERT_KEY[:4]


def _engine(source: Any) -> Engine:
    engine = getattr(source, "engine", source)
    if not isinstance(engine, Engine):
        raise TypeError(f"Expected a Warehouse or an SQLAlchemy Engine, got {type(source).__name__}.")
    return engine


def _prefix(conn: Connection) -> str:
    """What goes before table names in raw SQL on ``conn`` (its engine's schema translation)."""
    dialect = check_dialect(conn.dialect.name)
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    return object_prefix(dialect, translate.get(None))


def _figures(
    conn: Connection, window_minutes: int, until: datetime | None = None,
    session_ids: Sequence[str] | None = None, details: bool = False,
) -> list[dict[str, Any]]:
    sql = live_quality_sql(conn.dialect.name, _prefix(conn), None, details=details, until=until is not None,
                           sessions=session_ids is not None)
    stmt = sa.text(sql).columns(join_time=UtcDateTime(), last_sampled_at=UtcDateTime())
    params: dict[str, Any] = {"window_ms": int(window_minutes) * 60_000}
    if until is not None:
        stmt = stmt.bindparams(sa.bindparam("until", type_=UtcDateTime()))
        params["until"] = until
    if session_ids is not None:
        stmt = stmt.bindparams(sa.bindparam("session_ids", expanding=True))
        params["session_ids"] = list(session_ids)
    rows = [dict(row._mapping) for row in conn.execute(stmt, params)]
    for row in rows:
        row["rated_samples"] = int(row["rated_samples"] or 0)
        row["poor_share"] = None if row["poor_share"] is None else float(row["poor_share"])
        if details:
            row["poor_samples"] = int(row["poor_samples"] or 0)
    rows.sort(key=lambda r: (r["session_id"], r["user_id"], r["join_time"],
                             MEDIA_TYPES.index(r["media_type"])))
    return rows


def live_quality(
    conn: Connection, window_minutes: int = LIVE_WINDOW_MINUTES, *, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The rows of the view ``live_session_quality`` for a window of ``window_minutes``.

    ``conn`` is a connection of the warehouse's engine (``Warehouse.engine.connect()``: its schema
    translation gives the PostgreSQL schema). Each row: ``session_id``, ``session_name``,
    ``user_id``, ``user_name``, ``join_time``, ``media_type``, ``rated_samples``, ``poor_share``
    (None if none rated), ``last_sampled_at`` (the join's latest sample, the window's end), in
    (session, user, join, media type) order. ``until`` ignores the samples after it (the state as
    of then).
    """
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, got {window_minutes}")
    return _figures(conn, window_minutes, until)


def _live_session_ids(engine: Engine) -> list[str]:
    sessions = schema.sessions
    with engine.connect() as conn:
        query = sa.select(sessions.c.session_id).where(sessions.c.qos_status == LIVE)
        return sorted(conn.execute(query).scalars())


def _insert_ignoring_conflict(conn: Connection, row: Mapping[str, Any]) -> bool:
    table = schema.qos_alerts
    keys = [c.name for c in table.primary_key.columns]
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table).on_conflict_do_nothing(index_elements=keys).returning(table.c.session_id)
    return conn.execute(stmt, dict(row)).first() is not None  # RETURNING: rowcount is -1 on psycopg


def _key_condition(alert: Mapping[str, Any], keys: Sequence[str]) -> sa.ColumnElement[bool]:
    table = schema.qos_alerts
    return sa.and_(*(table.c[key] == alert[key] for key in keys))


def evaluate_live_alerts(
    source: Any,
    *,
    window_minutes: int,
    poor_share: float,
    min_samples: int,
    now: datetime | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Raise and clear the ``qos_alerts`` of the live sessions; returns ``(raised, cleared)``.

    ``source`` is a :class:`~zoom_qos.warehouse.store.Warehouse` (or its engine). ``poor_share`` is
    the limit (reached at ``>=``), ``min_samples`` the rated samples a window needs to raise.
    ``now``: evaluate as of then (samples after it are ignored); default all samples.

    Each alert **raised** (inserted by this call) is a dict with the ``qos_alerts`` columns
    (``session_id``, ``user_id``, ``join_time``, ``media_type``, ``first_seen_at``, ``poor_share``,
    ``rated_samples``, ``window_minutes``, ``notified_at`` None, ``cleared_at`` None) plus
    ``poor_samples``, ``session_name``, ``user_name``, ``device``, ``network_type`` and
    ``data_center`` (from ``session_users``), ready for the notifier. Each alert **cleared** by this
    call has the same keys, with the alert's ``first_seen_at``, ``cleared_at`` set, and the current
    window's figures (``poor_share``, ``rated_samples``, ``poor_samples``).
    """
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, got {window_minutes}")
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    engine = _engine(source)
    table = schema.qos_alerts
    raised: list[dict[str, Any]] = []
    cleared: list[dict[str, Any]] = []
    live_ids = _live_session_ids(engine)
    for start in range(0, len(live_ids), MAX_SESSIONS_PER_TRANSACTION):
        chunk = live_ids[start : start + MAX_SESSIONS_PER_TRANSACTION]
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                lock_sessions(conn, chunk)
            figures = _figures(conn, window_minutes, now, chunk, details=True)
            query = sa.select(table).where(table.c.session_id.in_(chunk), table.c.cleared_at.is_(None))
            open_alerts = {tuple(r[k] for k in _JOIN_MEDIA): dict(r) for r in conn.execute(query).mappings()}
            for figure in figures:
                rated, poor = figure["rated_samples"], figure["poor_samples"]
                share = poor / rated if rated else None  # exact ratio, compared with the limit as is
                alert = open_alerts.get(tuple(figure[k] for k in _JOIN_MEDIA))
                if alert is not None:
                    if share is None or share >= poor_share:
                        continue
                    done = conn.execute(
                        table.update()
                        .where(_key_condition(alert, ALERT_KEY), table.c.cleared_at.is_(None))
                        .values(cleared_at=figure["last_sampled_at"])
                        .returning(table.c.session_id)
                    ).first()
                    if done is not None:
                        cleared.append(_describe(figure, alert["first_seen_at"], alert["window_minutes"],
                                                 share, alert["notified_at"], figure["last_sampled_at"]))
                elif share is not None and rated >= min_samples and share >= poor_share:
                    row = {**{k: figure[k] for k in _JOIN_MEDIA}, "first_seen_at": figure["last_sampled_at"],
                           "poor_share": share, "rated_samples": rated, "window_minutes": int(window_minutes)}
                    if _insert_ignoring_conflict(conn, row):
                        raised.append(_describe(figure, row["first_seen_at"], row["window_minutes"], share))
    return raised, cleared


def _describe(
    figure: Mapping[str, Any], first_seen_at: datetime, window_minutes: int, share: float,
    notified_at: datetime | None = None, cleared_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        **{k: figure[k] for k in _JOIN_MEDIA},
        "first_seen_at": first_seen_at,
        "poor_share": share,
        "rated_samples": figure["rated_samples"],
        "poor_samples": figure["poor_samples"],
        "window_minutes": window_minutes,
        "notified_at": notified_at,
        "cleared_at": cleared_at,
        **{k: figure[k] for k in ("session_name", "user_name", "device", "network_type", "data_center")},
    }


def mark_alert_notified(source: Any, alert: Mapping[str, Any], notified_at: datetime | None = None) -> bool:
    """Set ``notified_at`` (default now, UTC) of the ``qos_alerts`` row of ``alert`` (a dict
    :func:`evaluate_live_alerts` raised, or any mapping with the :data:`ALERT_KEY` fields) once
    the notifier took it. True when the row exists."""
    table = schema.qos_alerts
    when = notified_at or utcnow()
    with write_transaction(_engine(source)) as conn:
        done = conn.execute(
            table.update().where(_key_condition(alert, ALERT_KEY)).values(notified_at=when)
            .returning(table.c.session_id)
        ).first()
    return done is not None
