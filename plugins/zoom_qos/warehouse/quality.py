"""Data-quality checks of loaded sessions and days, as SQL aggregates (SQLite and PostgreSQL).

:func:`run_checks` looks only at the sessions and days it is given (a run checks what it
loaded), in chunks of at most :data:`CHUNK_SIZE` ids (or days), with one aggregate query per
check per chunk: the database counts the offending rows and picks one example; no rows come
back to Python.

Checks (``Finding.check``):

``loss_out_of_range``
    ``user_qos`` rows whose ``avg_loss_pct`` or ``max_loss_pct`` is outside 0–100.
``negative_metric``
    ``user_qos`` rows with a negative ``latency_ms``, ``jitter_ms`` or ``bitrate_kbps``.
``sample_outside_join``
    ``user_qos``/``user_system_qos`` rows sampled before ``join_time - margin`` or after
    ``leave_time + margin`` of their join (a join without ``leave_time`` is open-ended).
``users_exceed_user_count``
    Sessions with more distinct ``session_users.user_id`` values than Zoom's ``user_count``.
``orphan_rows``
    ``user_qos``/``user_system_qos`` rows without their ``session_users`` join, and
    ``session_users`` rows without their ``sessions`` row.
``zoom_daily_count`` (a check of the run's *days*, not of its sessions)
    UTC days whose Zoom count (``daily_usage.sessions``) differs from the number of sessions the
    warehouse holds that started on that day (UTC date of ``start_time``, ``live`` sessions
    excluded: the ``daily_completeness`` view's definition); the count is the number of such
    days. A day without a ``daily_usage`` row, or whose row has no count, is not compared.

Which checks are *hard* (fail the run) is the caller's choice; by default only
``orphan_rows``, which means the load itself went wrong, while the others describe what Zoom
sent (a differing day count usually means sessions Zoom lists late, or a window not loaded yet).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from zoom_qos.warehouse import schema as tables

__all__ = [
    "CHECKS",
    "CHUNK_SIZE",
    "DAY_CHECKS",
    "DEFAULT_HARD_CHECKS",
    "DEFAULT_MARGIN_SECONDS",
    "SESSION_CHECKS",
    "Finding",
    "findings_as_json",
    "hard_violations",
    "run_checks",
]

CHUNK_SIZE = 500
DEFAULT_MARGIN_SECONDS = 120
DEFAULT_HARD_CHECKS: frozenset[str] = frozenset({"orphan_rows"})
_EXAMPLE_CHARS = 200


@dataclass(frozen=True)
class Finding:
    """One failed check: how many rows (or sessions) failed it, and one short example."""

    check: str
    count: int
    example: str
    hard: bool


# --------------------------------------------------------------------------- SQL helpers
def _txt(expr: Any) -> ColumnElement[str]:
    return sa.func.coalesce(sa.cast(expr, sa.Text()), "NULL")


def _describe(*parts: tuple[str, Any]) -> ColumnElement[str]:
    """``'name=value name=value'`` built in SQL (so ``min()`` can pick an example)."""
    expr: ColumnElement[str] | None = None
    for label, value in parts:
        piece = sa.literal(f"{label}=", sa.Text()) + _txt(value)
        expr = piece if expr is None else expr + sa.literal(" ", sa.Text()) + piece
    assert expr is not None
    return expr


def _millis_between(conn: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    """Whole milliseconds from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    if conn.dialect.name == "postgresql":
        return sa.func.round(sa.extract("epoch", end - start) * 1000)
    return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400000.0)


#: Every check's query: how many rows failed it, and the smallest example.
_CountAndExample = sa.Select[int, str]


def _summary(select_from: Any, where: ColumnElement[bool], example: ColumnElement[str]) -> _CountAndExample:
    return sa.select(sa.func.count(), sa.func.min(example)).select_from(select_from).where(where)


def _join_condition(child: sa.Table, su: sa.Table) -> ColumnElement[bool]:
    return sa.and_(
        su.c.session_id == child.c.session_id,
        su.c.user_id == child.c.user_id,
        su.c.join_time == child.c.join_time,
    )


# --------------------------------------------------------------------------- checks
# Each check returns the (count, example) queries for one chunk of session ids; a check over
# two tables returns two queries (their counts are added).
def _loss_out_of_range(conn: Connection, ids: list[str], margin: int) -> list[_CountAndExample]:
    q = tables.user_qos

    def bad(col: Any) -> ColumnElement[bool]:
        return sa.or_(col < 0, col > 100)

    example = _describe(
        ("session", q.c.session_id), ("user", q.c.user_id), ("stream", q.c.stream),
        ("avg_loss_pct", q.c.avg_loss_pct), ("max_loss_pct", q.c.max_loss_pct),
    )  # fmt: skip
    where = sa.and_(q.c.session_id.in_(ids), sa.or_(bad(q.c.avg_loss_pct), bad(q.c.max_loss_pct)))
    return [_summary(q, where, example)]


def _negative_metric(conn: Connection, ids: list[str], margin: int) -> list[_CountAndExample]:
    q = tables.user_qos
    example = _describe(
        ("session", q.c.session_id), ("user", q.c.user_id), ("stream", q.c.stream),
        ("latency_ms", q.c.latency_ms), ("jitter_ms", q.c.jitter_ms), ("bitrate_kbps", q.c.bitrate_kbps),
    )  # fmt: skip
    where = sa.and_(
        q.c.session_id.in_(ids),
        sa.or_(q.c.latency_ms < 0, q.c.jitter_ms < 0, q.c.bitrate_kbps < 0),
    )
    return [_summary(q, where, example)]


def _sample_outside_join(conn: Connection, ids: list[str], margin: int) -> list[_CountAndExample]:
    su = tables.session_users
    limit = margin * 1000
    queries = []
    for child in (tables.user_qos, tables.user_system_qos):
        early = _millis_between(conn, su.c.join_time, child.c.sampled_at) < -limit
        late = sa.and_(
            su.c.leave_time.is_not(None),
            _millis_between(conn, su.c.leave_time, child.c.sampled_at) > limit,
        )
        example = _describe(
            ("table", sa.literal(child.name, sa.Text())), ("session", child.c.session_id),
            ("user", child.c.user_id), ("sampled_at", child.c.sampled_at),
            ("join_time", su.c.join_time), ("leave_time", su.c.leave_time),
        )  # fmt: skip
        source = child.join(su, _join_condition(child, su))
        where = sa.and_(child.c.session_id.in_(ids), sa.or_(early, late))
        queries.append(_summary(source, where, example))
    return queries


def _users_exceed_user_count(conn: Connection, ids: list[str], margin: int) -> list[_CountAndExample]:
    su, se = tables.session_users, tables.sessions
    per_session = (
        sa.select(su.c.session_id, sa.func.count(sa.distinct(su.c.user_id)).label("users"))
        .where(su.c.session_id.in_(ids))
        .group_by(su.c.session_id)
        .subquery("per_session")
    )
    example = _describe(
        ("session", se.c.session_id), ("users", per_session.c.users), ("user_count", se.c.user_count)
    )
    source = per_session.join(se, se.c.session_id == per_session.c.session_id)
    where = sa.and_(se.c.user_count.is_not(None), per_session.c.users > se.c.user_count)
    return [_summary(source, where, example)]


def _orphan_rows(conn: Connection, ids: list[str], margin: int) -> list[_CountAndExample]:
    su, se = tables.session_users, tables.sessions
    queries = []
    for child in (tables.user_qos, tables.user_system_qos):
        parent = sa.select(sa.literal(1)).where(_join_condition(child, su)).exists()
        example = _describe(
            ("table", sa.literal(child.name, sa.Text())), ("session", child.c.session_id),
            ("user", child.c.user_id), ("join_time", child.c.join_time),
        )  # fmt: skip
        queries.append(_summary(child, sa.and_(child.c.session_id.in_(ids), ~parent), example))
    parent = sa.select(sa.literal(1)).where(se.c.session_id == su.c.session_id).exists()
    example = _describe(
        ("table", sa.literal(su.name, sa.Text())), ("session", su.c.session_id), ("user", su.c.user_id)
    )
    queries.append(_summary(su, sa.and_(su.c.session_id.in_(ids), ~parent), example))
    return queries


def _utc_day(conn: Connection, ts: Any) -> ColumnElement[Any]:
    """The UTC calendar date of a timestamp column, as ``zoom_qos.warehouse.views`` computes it."""
    if conn.dialect.name == "postgresql":
        # A literal, not a bind parameter: the same expression is selected and grouped by.
        return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), ts), sa.Date())
    return sa.func.date(ts)  # SQLite stores naive UTC text


def _day_text(conn: Connection, day: Any) -> ColumnElement[str]:
    # to_char, not a cast: a cast to text follows the session's DateStyle on PostgreSQL.
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(day, "YYYY-MM-DD", type_=sa.Text())
    return sa.cast(day, sa.Text())


def _zoom_daily_count(conn: Connection, days: list[date], margin: int) -> list[_CountAndExample]:
    se, du = tables.sessions, tables.daily_usage
    # Bounds on start_time (not on its day) so the filter is a plain range on the column.
    low = datetime.combine(min(days), time.min)
    high = datetime.combine(max(days) + timedelta(days=1), time.min)
    day = _utc_day(conn, se.c.start_time)
    held = (
        sa.select(day.label("usage_date"), sa.func.count().label("sessions"))
        .where(se.c.start_time >= low, se.c.start_time < high, se.c.qos_status != "live")
        .group_by(day)
        .subquery("held")
    )
    held_count = sa.func.coalesce(held.c.sessions, 0)
    example = (
        _day_text(conn, du.c.usage_date)
        + sa.literal(": Zoom counted ", sa.Text())
        + sa.cast(du.c.sessions, sa.Text())
        + sa.case((du.c.sessions == 1, " session"), else_=" sessions")
        + sa.literal(", the warehouse holds ", sa.Text())
        + sa.cast(held_count, sa.Text())
    )
    source = du.outerjoin(held, held.c.usage_date == du.c.usage_date)
    where = sa.and_(du.c.usage_date.in_(days), du.c.sessions.is_not(None), held_count != du.c.sessions)
    return [_summary(source, where, example)]


_Check = Callable[[Connection, list[Any], int], list[_CountAndExample]]

#: Checks of the run's sessions: each takes a chunk of session ids.
SESSION_CHECKS: dict[str, _Check] = {
    "loss_out_of_range": _loss_out_of_range,
    "negative_metric": _negative_metric,
    "sample_outside_join": _sample_outside_join,
    "users_exceed_user_count": _users_exceed_user_count,
    "orphan_rows": _orphan_rows,
}
#: Checks of the run's days: each takes a chunk of UTC dates.
DAY_CHECKS: dict[str, _Check] = {
    "zoom_daily_count": _zoom_daily_count,
}
#: Every check, by name, in the order findings are reported.
CHECKS: dict[str, _Check] = {**SESSION_CHECKS, **DAY_CHECKS}

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def run_checks(
    conn: Connection,
    schema: str | None,
    session_ids: Sequence[str],
    margin_seconds: int = DEFAULT_MARGIN_SECONDS,
    *,
    hard_checks: Collection[str] = DEFAULT_HARD_CHECKS,
    checks: Collection[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    days: Sequence[date] | None = None,
) -> list[Finding]:
    """Run the checks over ``session_ids`` and ``days``; one :class:`Finding` per check that found rows.

    ``schema`` is the PostgreSQL warehouse schema, applied with ``schema_translate_map``;
    pass None on SQLite, or when ``conn`` already translates (``Warehouse.engine`` does).
    ``margin_seconds`` is the slack around a join for ``sample_outside_join``.
    ``hard_checks`` names the checks whose findings are hard (fail the run); ``checks``
    limits which checks run (default: all of :data:`CHECKS`). ``days`` are the UTC days of the
    run (its window) for the :data:`DAY_CHECKS`, which find nothing when it is None or empty.
    Read-only; the caller owns the transaction.
    """
    if margin_seconds < 0:
        raise ValueError("margin_seconds must not be negative")
    if not 1 <= chunk_size <= CHUNK_SIZE:
        raise ValueError(f"chunk_size must be between 1 and {CHUNK_SIZE}")
    selected = list(CHECKS) if checks is None else list(checks)
    unknown = sorted((set(selected) | set(hard_checks)) - set(CHECKS))
    if unknown:
        raise ValueError(f"Unknown data-quality checks: {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    if schema is not None:
        conn = conn.execution_options(schema_translate_map={None: schema})
    totals: dict[str, list[Any]] = {name: [0, None] for name in CHECKS if name in selected}
    ids = [str(i) for i in session_ids]
    dates = [_as_date(d) for d in days or ()]
    for name in totals:
        scope: list[Any] = dates if name in DAY_CHECKS else ids
        for chunk in _chunks(scope, chunk_size):
            for query in CHECKS[name](conn, chunk, margin_seconds):
                count, example = conn.execute(query).one()
                totals[name][0] += int(count or 0)
                if example is not None:  # the smallest example overall, whatever the chunking
                    current = totals[name][1]
                    totals[name][1] = str(example) if current is None else min(current, str(example))
    return [
        Finding(check=name, count=count, example=(example or "")[:_EXAMPLE_CHARS], hard=name in hard_checks)
        for name, (count, example) in totals.items()
        if count
    ]


def _as_date(value: date) -> date:
    # A datetime is a date too, but would compare unequal to the date column's values; an aware
    # one is a moment, whose day is its UTC day here.
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if not isinstance(value, date):
        raise TypeError(f"days must be dates, got {type(value).__name__}")
    return value


def hard_violations(findings: Sequence[Finding]) -> int:
    """Rows found by hard checks (``pipeline_runs.dq_hard_violations``)."""
    return sum(f.count for f in findings if f.hard)


def findings_as_json(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """JSON-ready list for ``pipeline_runs.dq_findings`` (a JSON column takes it as is)."""
    records = [asdict(f) for f in findings]
    json.dumps(records)  # fail here, not in the run record, if a value is not serialisable
    return records
