"""Staging storage: what extraction read, as JSON lines, addressed by URL. The whole staged format.

Extraction and load run as separate tasks, possibly on different workers, and XCom must carry
only references. So each task writes files under ``<staging>/<dag_id>/<run_id>/`` through
Airflow's ``ObjectStoragePath`` (a local folder by default, ``s3://`` or ``gs://`` on a
cluster). Files are written under a temporary name and renamed, so a reader never sees half a
file and a retried task simply overwrites; a write that fails removes its temporary file, and one
no retry can cure (no space left, read-only) is a ``StorageUnwritableError`` naming the path. One
listing writes::

    listing-<id>/sessions/batch-NNNNN.jsonl       the batch's session objects, as Zoom listed them
    listing-<id>/qos/batch-NNNNN/
        session-<hash>.jsonl     a header line (id, status, fetch time), then one user per line
        grades-<hash>.jsonl      the joins' grades (only with read_user_grades)
        index-<segment>-NNNNN.json   sessions finished, written after their files (resumption)
        stats-<segment>.json     what each extraction attempt cost (requests, retries, seconds)
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from airflow.sdk import ObjectStoragePath

from zoom_qos.core.errors import unwritable_as
from zoom_qos.transform.parsing import storable_text
from zoom_qos.zoom.bodies import decode_user

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A path segment made from a DAG or run id (run ids contain ``:`` and ``+``)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def run_folder(staging_url: str, dag_id: str, run_id: str) -> ObjectStoragePath:
    return ObjectStoragePath(staging_url) / safe_name(dag_id) / safe_name(run_id)


@contextmanager
def writing(path: ObjectStoragePath, partial: ObjectStoragePath | None = None) -> Iterator[None]:
    """Around writes to ``path``: on any error ``partial`` (its temporary file) is removed, and an
    error no retry can cure (no space, read-only, no permission) becomes ``StorageUnwritableError``
    naming the path, so the task fails at once instead of meeting the same full disk three times."""
    try:
        with unwritable_as("staging", str(path), catch=Exception):
            yield
    except BaseException:
        if partial is not None:
            with suppress(OSError):  # the error being raised is the one to report
                partial.unlink(missing_ok=True)
        raise


def write_bytes_atomically(target: ObjectStoragePath, data: bytes) -> None:
    """``data`` under ``target``'s name whole or not at all (a small file: an index, stats)."""
    partial = _partial_of(target)
    with writing(target, partial):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.rename(target)


def write_jsonl(path: ObjectStoragePath | str, records: Iterable[dict[str, Any]]) -> int:
    """Write records one per line, atomically where the storage allows. Returns the count."""
    target = ObjectStoragePath(str(path))
    partial = _partial_of(target)
    count = 0
    with writing(target, partial):
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", encoding="utf-8") as out:
            for record in records:
                out.write(storable_text(json.dumps(record, ensure_ascii=False, separators=(",", ":"))))
                out.write("\n")
                count += 1
        partial.rename(target)
    return count


def read_jsonl(path: ObjectStoragePath | str) -> Iterator[dict[str, Any]]:
    """Records of a file written by ``write_jsonl``, streamed line by line."""
    with ObjectStoragePath(str(path)).open("r", encoding="utf-8") as source:
        for line in source:
            if line.strip():
                yield json.loads(line)


# --- one session's QoS, staged as it is read --------------------------------------------------
# File layout: a header line (session id, status, fetch time), then one Zoom user object per
# line, exactly as Zoom sent it. Writing the bytes received, instead of decoding and
# re-encoding every user, was the largest CPU cost of extraction; writing page by page keeps
# memory at one page per session in flight, however many users a session has.

def session_file(qos_folder: str, session_id: str) -> ObjectStoragePath:
    """Where a session's QoS is staged; named by a hash, as ids hold ``/``, ``+`` and ``=``."""
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return ObjectStoragePath(qos_folder) / f"session-{digest}.jsonl"


def _header(session_id: str, status: str, fetched_at: str, error: str | None = None) -> bytes:
    record = {"session_id": session_id, "status": status, "fetched_at": fetched_at}
    if error is not None:
        record["error"] = error
    return storable_text(json.dumps(record, ensure_ascii=False)).encode("utf-8") + b"\n"


def _partial_of(target: ObjectStoragePath) -> ObjectStoragePath:
    """Where ``target`` is written before it is renamed into place; unique per writer, so two
    attempts of one task (a zombie and its retry) never write the same file."""
    return target.with_name(f"{target.name}.{uuid.uuid4().hex[:12]}.partial")


class StagedSessionWriter:
    """Writes one session's users page by page; the file appears complete or not at all.

    ``restart`` forgets what was written (a page-token restart re-reads the list from its
    first page, so the earlier pass is superseded, never merged); ``commit`` publishes the
    file under its final name. Used as a context manager, an exception discards the file.
    """

    def __init__(self, qos_folder: str, session_id: str, fetched_at: str) -> None:
        self.session_id = session_id
        self.fetched_at = fetched_at
        self.target = session_file(qos_folder, session_id)
        self._partial = _partial_of(self.target)
        self._out: Any = None
        self.users = 0

    def __enter__(self) -> StagedSessionWriter:
        with writing(self.target, self._partial):
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        return self

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if self._out is not None:  # not committed: an error, or the caller gave up
            out, self._out = self._out, None
            with suppress(OSError):  # may fail as the write did (a full disk): the file goes all the same
                out.close()
            self._partial.unlink(missing_ok=True)

    def _open(self) -> None:
        self._out = self._partial.open("wb")
        self._out.write(_header(self.session_id, "ok", self.fetched_at))
        self.users = 0

    def restart(self) -> None:
        with writing(self.target):
            self._out.close()
            self._open()

    def write(self, users: list[bytes]) -> None:
        """Append users, each the raw JSON of one object (line breaks inside are whitespace)."""
        if users:
            with writing(self.target):
                self._out.write(b"\n".join(u.replace(b"\n", b" ").replace(b"\r", b" ") for u in users))
                self._out.write(b"\n")
            self.users += len(users)

    def commit(self) -> int:
        with writing(self.target):
            self._out.close()  # should it fail, _out stays set and __exit__ removes the temporary file
            self._out = None
            self._partial.rename(self.target)
        return self.users


def stage_unread_session(qos_folder: str, session_id: str, checked_at: str, status: str, error: str) -> None:
    """Record that a listed session's QoS could not be read, and why (``status``: ``pending`` or
    ``unavailable``, see ``availability.py``), so the load keeps the session with that status and a
    retried task does not ask again."""
    write_bytes_atomically(session_file(qos_folder, session_id),
                           _header(session_id, status, checked_at, error))


def grades_file(qos_folder: str, session_id: str) -> ObjectStoragePath:
    """Where a session's per-join grades (``GET …/users``) are staged, beside its QoS file."""
    qos = session_file(qos_folder, session_id)
    return qos.with_name("grades-" + qos.name.removeprefix("session-"))


#: The fields of a ``GET …/users`` entry that staging keeps: the join's key and its grades.
GRADE_FIELDS = ("id", "join_time", "participant_uuid", "audio_quality", "video_quality",
                "screen_share_quality")


def stage_grades(qos_folder: str, session_id: str, users: Iterable[dict[str, Any]]) -> int:
    """Stage a session's joins with their grades; written before its QoS file is published, so a
    session indexed as read has its grades staged too. Returns the joins written."""
    return write_jsonl(grades_file(qos_folder, session_id),
                       ({k: user.get(k) for k in GRADE_FIELDS} for user in users))


def read_staged_grades(qos_folder: str, session_id: str) -> list[dict[str, Any]] | None:
    """The staged grades of a session, None when none were read (the option is off)."""
    path = grades_file(qos_folder, session_id)
    return list(read_jsonl(path)) if path.exists() else None


def read_staged_session(qos_folder: str, session_id: str) -> tuple[dict[str, Any], Iterator[Any]]:
    """A staged session's header and a lazy iterator over its users (one line at a time)."""
    path = session_file(qos_folder, session_id)
    source = path.open("rb")
    try:
        header = json.loads(source.readline())
    except BaseException:
        source.close()
        raise
    if header.get("session_id") != session_id:
        source.close()
        raise RuntimeError(f"Staged file {path} holds session {header.get('session_id')!r}, not "
                           f"{session_id!r}: the staging folder was modified; clear extract_qos and retry.")
    if header.get("status") != "ok":  # pending or unavailable (or "gone", written before v2)
        source.close()
        return header, iter(())

    def users() -> Iterator[Any]:
        with source:
            for line in source:
                if line.strip():
                    yield decode_user(line)

    return header, users()


# --- a batch folder's bookkeeping: which sessions are staged, and what reading them cost ------

def write_index_part(qos_folder: str, segment: str, part: int, finished: Mapping[str, int | None]) -> None:
    """Record sessions whose files are complete: users staged, None for one whose QoS could not
    be read. Written after the sessions' files, so a file without an index entry is read again."""
    write_bytes_atomically(ObjectStoragePath(f"{qos_folder}/index-{segment}-{part:05d}.json"),
                           json.dumps(dict(finished)).encode())


def staged_index(qos_folder: str) -> dict[str, int | None]:
    """Sessions staged in a batch folder: users per session, None for a session whose QoS could
    not be read (its staged header says whether it is pending or unavailable).

    Read from the small index parts, so checking progress does not re-read (and re-decode)
    everything staged so far.
    """
    folder = ObjectStoragePath(qos_folder)
    if not folder.exists():
        return {}
    index: dict[str, int | None] = {}
    for path in sorted(p for p in folder.iterdir() if _is_final(p.name, "index-")):
        index.update(json.loads(path.read_text()))
    return index


def _is_final(name: str, prefix: str) -> bool:
    """A bookkeeping file under its final name (not another writer's temporary file)."""
    return name.startswith(prefix) and name.endswith(".json")


def write_stats(qos_folder: str, segment: str, stats: Mapping[str, float]) -> None:
    """What one extraction attempt cost; each attempt has its own file, the summary adds them."""
    write_bytes_atomically(ObjectStoragePath(f"{qos_folder}/stats-{segment}.json"),
                           json.dumps(dict(stats)).encode())


def staged_cost(qos_folder: str) -> dict[str, float]:
    """What every extraction attempt of a batch cost together: its stats files, summed."""
    folder = ObjectStoragePath(qos_folder)
    totals: dict[str, float] = {}
    if not folder.exists():
        return totals
    for path in sorted(p for p in folder.iterdir() if _is_final(p.name, "stats-")):
        for key, value in json.loads(path.read_text()).items():
            totals[key] = round(totals.get(key, 0) + value, 3)
    return totals


def staged_records(qos_folder: str) -> dict[str, dict[str, Any]]:
    """Every indexed session of a batch folder with its users, all in memory (for small batches:
    tests and the benchmark's counts)."""
    records = {}
    for session_id in staged_index(qos_folder):
        header, users = read_staged_session(qos_folder, session_id)
        records[session_id] = {**header, "users": list(users)} if header["status"] == "ok" else header
    return records
