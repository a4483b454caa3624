"""Data-quality checks of loaded sessions, as SQL aggregates (SQLite and PostgreSQL).

:func:`run_checks` looks only at the sessions it is given (a run checks what it loaded), in
chunks of at most :data:`CHUNK_SIZE` ids, with one aggregate query per check per chunk: the
database counts the offending rows and picks one example; no rows come back to Python.

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

Which checks are *hard* (fail the run) is the caller's choice; by default only
``orphan_rows``, which means the load itself went wrong, while the others describe what Zoom
sent.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from zoom_qos import schema as s

__all__ = [
    "CHECKS",
    "CHUNK_SIZE",
    "DEFAULT_HARD_CHECKS",
    "DEFAULT_MARGIN_SECONDS",
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


def _summary(select_from: Any, where: ColumnElement[bool], example: ColumnElement[str]) -> sa.Select[Any]:
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
def _loss_out_of_range(conn: Connection, ids: list[str], margin: int) -> list[sa.Select[Any]]:
    q = s.user_qos

    def bad(col: Any) -> ColumnElement[bool]:
        return sa.or_(col < 0, col > 100)

    example = _describe(
        ("session", q.c.session_id), ("user", q.c.user_id), ("stream", q.c.stream),
        ("avg_loss_pct", q.c.avg_loss_pct), ("max_loss_pct", q.c.max_loss_pct),
    )  # fmt: skip
    where = sa.and_(q.c.session_id.in_(ids), sa.or_(bad(q.c.avg_loss_pct), bad(q.c.max_loss_pct)))
    return [_summary(q, where, example)]


def _negative_metric(conn: Connection, ids: list[str], margin: int) -> list[sa.Select[Any]]:
    q = s.user_qos
    example = _describe(
        ("session", q.c.session_id), ("user", q.c.user_id), ("stream", q.c.stream),
        ("latency_ms", q.c.latency_ms), ("jitter_ms", q.c.jitter_ms), ("bitrate_kbps", q.c.bitrate_kbps),
    )  # fmt: skip
    where = sa.and_(
        q.c.session_id.in_(ids),
        sa.or_(q.c.latency_ms < 0, q.c.jitter_ms < 0, q.c.bitrate_kbps < 0),
    )
    return [_summary(q, where, example)]


def _sample_outside_join(conn: Connection, ids: list[str], margin: int) -> list[sa.Select[Any]]:
    su = s.session_users
    limit = margin * 1000
    queries = []
    for child in (s.user_qos, s.user_system_qos):
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


def _users_exceed_user_count(conn: Connection, ids: list[str], margin: int) -> list[sa.Select[Any]]:
    su, se = s.session_users, s.sessions
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


def _orphan_rows(conn: Connection, ids: list[str], margin: int) -> list[sa.Select[Any]]:
    su, se = s.session_users, s.sessions
    queries = []
    for child in (s.user_qos, s.user_system_qos):
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


#: Every check, by name, in the order findings are reported.
CHECKS = {
    "loss_out_of_range": _loss_out_of_range,
    "negative_metric": _negative_metric,
    "sample_outside_join": _sample_outside_join,
    "users_exceed_user_count": _users_exceed_user_count,
    "orphan_rows": _orphan_rows,
}


def _chunks(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(str(i) for i in ids))
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
) -> list[Finding]:
    """Run the checks over ``session_ids``; one :class:`Finding` per check that found rows.

    ``schema`` is the PostgreSQL warehouse schema, applied with ``schema_translate_map``;
    pass None on SQLite, or when ``conn`` already translates (``Warehouse.engine`` does).
    ``margin_seconds`` is the slack around a join for ``sample_outside_join``.
    ``hard_checks`` names the checks whose findings are hard (fail the run); ``checks``
    limits which checks run (default: all of :data:`CHECKS`). Read-only; the caller owns the
    transaction.
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
    for chunk in _chunks(session_ids, chunk_size):
        for name in totals:
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


def hard_violations(findings: Sequence[Finding]) -> int:
    """Rows found by hard checks (``pipeline_runs.dq_hard_violations``)."""
    return sum(f.count for f in findings if f.hard)


def findings_as_json(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """JSON-ready list for ``pipeline_runs.dq_findings`` (a JSON column takes it as is)."""
    records = [asdict(f) for f in findings]
    json.dumps(records)  # fail here, not in the run record, if a value is not serialisable
    return records
