"""What goes in which transaction of a load: sessions turned into rows, and grouped so memory and
locks stay bounded whatever the sessions' sizes.

A session is turned into rows until it reaches :data:`STREAM_THRESHOLD_ROWS` rows (or the
transaction bound). If its users end first it is *small*: consecutive small sessions share a
transaction of at most about ``max_rows_per_transaction`` rows, held in memory. Otherwise it is
*big*: it is a transaction of its own, and the users not read yet are left to the writer to
stream (:mod:`zoom_qos.warehouse.loader`).

Duplicate users (same ``id`` and ``join_time`` instant) load once, and the **first** occurrence
wins (:func:`zoom_qos.transform.rows.unique_users`): a stream cannot look ahead. Staging
guarantees that a page-token restart does not hand the loader the same join twice, so the choice
only matters for entries Zoom itself duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from zoom_qos.core.statuses import LIVE, LOADED
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.transform.rows import GradeIndex, UserRows, grade_index, session_row, unique_users, user_rows
from zoom_qos.warehouse import schema

__all__ = [
    "CHILD_TABLES",
    "DEFAULT_MAX_ROWS_PER_TRANSACTION",
    "LOAD_TABLES",
    "MAX_SESSIONS_PER_TRANSACTION",
    "PARENT_TABLES",
    "STREAM_THRESHOLD_ROWS",
    "PreparedSession",
    "SessionInput",
    "append_user",
    "prepare",
    "row_count",
    "stream_limit",
    "transactions",
]

#: A session that reaches this many rows (all tables) while its users are read is big: it is
#: written alone, in its own transaction, while the rest of its users are read. Below it,
#: sessions are held in memory whole and share transactions.
STREAM_THRESHOLD_ROWS = 5_000
#: Default bound on rows (all tables) per transaction of small sessions; they are held in
#: memory until their transaction is written, so this bounds the loader's memory too.
DEFAULT_MAX_ROWS_PER_TRANSACTION = 20_000
#: Bound on sessions per transaction: on PostgreSQL each takes an advisory lock, and the
#: shared lock table holds about max_locks_per_transaction (64) x max_connections entries.
MAX_SESSIONS_PER_TRANSACTION = 500
#: Tables a session load writes, in order; the first two hold one row per session, the others
#: (the children) are made to hold exactly the new set of the session's rows.
LOAD_TABLES: tuple[sa.Table, ...] = (
    schema.sessions,
    schema.raw_sessions,
    schema.session_users,
    schema.raw_session_users,
    schema.user_qos,
    schema.user_system_qos,
)
PARENT_TABLES = frozenset({schema.sessions.name, schema.raw_sessions.name})
CHILD_TABLES = tuple(table for table in LOAD_TABLES if table.name not in PARENT_TABLES)


@dataclass(frozen=True)
class SessionInput:
    """One listed session to load, with what became of its QoS.

    ``qos_status`` ``loaded``: ``users`` (any iterable, read once) are its joins and samples, which
    replace the ones in the warehouse. ``live``: a session in progress; its users *so far* replace
    its rows the same way, unless the warehouse already holds it ``loaded`` (then nothing of it is
    written: a late poll never overwrites final rows). ``pending``/``unavailable``: Zoom did not
    serve its QoS, so only its ``sessions``/``raw_sessions`` rows are written and its joins and
    samples, if an earlier run loaded them, are kept (a ``loaded`` session stays ``loaded``; a
    ``live`` one takes the status given). ``checked_at``: when its QoS was asked for. ``grades``:
    the ``GET …/users`` entries of the session (None: not read).
    """

    session: Mapping[str, Any]
    users: Iterable[Mapping[str, Any]] = ()
    qos_status: str = LOADED
    checked_at: datetime | None = None
    grades: Sequence[Mapping[str, Any]] | None = None


@dataclass
class PreparedSession:
    """One session's rows per table (without ``loaded_at``), what they count, the issues found.

    For a big session ``rows`` holds the users read so far and ``rest`` the users not read yet
    (deduplicated and turned into rows lazily); the counts grow as ``rest`` is written.
    """

    session_id: str
    rows: dict[str, list[dict[str, Any]]]
    issues: ParseIssues
    rest: Iterator[UserRows] | None = None
    #: Written without QoS (pending/unavailable): its child rows are left as they are.
    unread: bool = False
    #: A live session (provisional rows of a session in progress).
    live: bool = False
    #: Set by the loader inside the transaction: a live session not written because the
    #: warehouse holds its final (``loaded``) rows.
    kept_final: bool = False
    users: int = 0
    qos_rows: int = 0
    system_rows: int = 0

    @property
    def size(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def add(self, derived: UserRows) -> None:
        """Hold one user's rows (and count them)."""
        append_user(self.rows, derived)
        self.count(derived)

    def count(self, derived: UserRows) -> None:
        self.users += 1
        self.qos_rows += len(derived.qos)
        self.system_rows += len(derived.system)


def append_user(rows: dict[str, list[dict[str, Any]]], derived: UserRows) -> None:
    rows[schema.session_users.name].append(derived.session_user)
    rows[schema.raw_session_users.name].append(derived.raw)
    rows[schema.user_qos.name].extend(derived.qos)
    rows[schema.user_system_qos.name].extend(derived.system)


def row_count(derived: UserRows) -> int:
    return 2 + len(derived.qos) + len(derived.system)


def stream_limit(max_rows: int) -> int:
    """Rows at which a session stops being read whole and is streamed in a transaction of its own."""
    return min(STREAM_THRESHOLD_ROWS, max_rows)


def _check_users(session_id: str, users: object) -> Iterable[Mapping[str, Any]]:
    """``users`` itself if it can be a sequence of user objects; a clear error if not.

    A dict or a string is iterable too, but iterating one would "load" its keys or characters
    as unkeyable users instead of failing.
    """
    if isinstance(users, Iterable) and not isinstance(users, (str, bytes, Mapping)):
        return users
    raise TypeError(
        f"The users of session {session_id!r} must be an iterable of Zoom user objects, got "
        f"{type(users).__name__}; pass [] for a session without users."
    )


def _derived_users(
    session_id: str, users: Iterable[Mapping[str, Any]], issues: ParseIssues, grades: GradeIndex | None
) -> Iterator[UserRows]:
    """Each distinct, keyable join of a session as rows, read lazily (first occurrence wins)."""
    for user in unique_users(users):
        derived = user_rows(session_id, user, issues, grades)
        if derived is not None:
            yield derived


def prepare(item: SessionInput, issues: ParseIssues, limit: int | None = None) -> PreparedSession | None:
    """One session's rows (users deduplicated), or None if the session cannot be keyed.

    With ``limit``, reading the users stops once the rows reach it, and the users not read yet
    are left in ``rest`` to be streamed; without, every user is read (``rest`` stays None).
    """
    session = item.session
    srow = session_row(session, issues)
    if srow is None:
        return None
    srow["qos_status"] = item.qos_status
    srow["qos_checked_at"] = item.checked_at
    session_id: str = srow["session_id"]
    rows: dict[str, list[dict[str, Any]]] = {
        schema.sessions.name: [srow],
        schema.raw_sessions.name: [{"session_id": session_id, "payload": dict(session)}],
        **{table.name: [] for table in CHILD_TABLES},
    }
    prepared = PreparedSession(session_id, rows, issues, unread=item.qos_status not in (LOADED, LIVE),
                               live=item.qos_status == LIVE)
    if prepared.unread:
        return prepared
    grades = None if item.grades is None else grade_index(item.grades, issues)
    derived = _derived_users(session_id, _check_users(session_id, item.users), issues, grades)
    for user in derived:
        prepared.add(user)
        if limit is not None and prepared.size >= limit:
            prepared.rest = derived
            break
    return prepared


def transactions(prepared: Iterable[PreparedSession], max_rows: int) -> Iterator[list[PreparedSession]]:
    """Consecutive sessions grouped into the transactions a load writes.

    A group ends before it would exceed ``max_rows`` rows or :data:`MAX_SESSIONS_PER_TRANSACTION`
    sessions, or hold the same session twice. A big session (users left to stream, or at least
    :func:`stream_limit` rows) is a group of its own. Each group is yielded before the next
    session is read, so at most one small group and one session's first rows are in memory at a
    time.
    """
    alone_from = stream_limit(max_rows)
    group: list[PreparedSession] = []
    size = 0
    for session in prepared:
        alone = session.rest is not None or session.size >= alone_from
        if group and (
            alone
            or size + session.size > max_rows
            or len(group) >= MAX_SESSIONS_PER_TRANSACTION
            or any(p.session_id == session.session_id for p in group)
        ):
            yield group
            group, size = [], 0
        if alone:
            yield [session]
        else:
            group.append(session)
            size += session.size
    if group:
        yield group
