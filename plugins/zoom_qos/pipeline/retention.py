"""Staging retention: a run's staged files go ``staging_retention_days`` after its successful load.

Staging only carries a run's data from its extraction to its load, so it is not kept forever.
After a successful load the run record marks the run's folder (``<staging>/<dag_id>/<run_id>/``)
as loaded: a small ``_loaded_at.json`` with the time and the listing folders it covers (every one
there at the time, those of earlier failed attempts included). Then it sweeps the DAG's staging:
the listing folders of every other run marked longer ago than the retention are removed, with the
marker (the run folder goes once empty). Folders without a marker (a run still going, or one
that failed) are never touched; nor is a listing made after the marking (a cleared run listing
again): it gets its own marker when its load succeeds. Works on a local folder as on object
storage, through the same ``ObjectStoragePath`` as ``staging``.

A run whose staging was removed and that is cleared again must list again: clearing the whole run
(list_sessions included) makes a fresh listing folder, extracted and loaded as the first time.
Clearing only the extraction or the load would read files that are gone: :func:`require_staged`
fails them at once (``errors.StagingRemovedError``, permanent: no retries) with what to do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath

from zoom_qos.core.config import CONFIG_SECTION, staging_retention_days
from zoom_qos.core.errors import StagingRemovedError
from zoom_qos.pipeline.staging import run_folder, safe_name

__all__ = [
    "LOADED_MARKER",
    "SweepResult",
    "mark_loaded",
    "require_staged",
    "retain_after_load",
    "sweep",
]

log = logging.getLogger(__name__)

#: The file that marks a run's staging as loaded: ``{"loaded_at": ISO time, "listings": [...]}``.
LOADED_MARKER = "_loaded_at.json"
_LISTING_PREFIX = "listing-"


@dataclass
class SweepResult:
    """What a sweep removed: the run folders (their names), and the files and bytes freed."""

    runs: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def _path(value: ObjectStoragePath | str) -> ObjectStoragePath:
    return value if isinstance(value, ObjectStoragePath) else ObjectStoragePath(str(value))


def mark_loaded(folder: ObjectStoragePath | str, now: datetime | None = None) -> list[str]:
    """Mark a run's staging folder as loaded now; returns the listing folders the mark covers
    (none, and no marker, when the run staged nothing)."""
    folder = _path(folder)
    if not folder.exists():
        return []
    listings = sorted(p.name for p in folder.iterdir() if p.name.startswith(_LISTING_PREFIX))
    if listings:
        stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        (folder / LOADED_MARKER).write_text(json.dumps({"loaded_at": stamp, "listings": listings}))
    return listings


def _marker(folder: ObjectStoragePath) -> dict[str, Any] | None:
    marker = folder / LOADED_MARKER
    if not marker.exists():
        return None
    try:
        content = json.loads(marker.read_text())
        loaded_at = datetime.fromisoformat(content["loaded_at"])
        listings = [str(name) for name in content["listings"]]
    except (ValueError, KeyError, TypeError) as error:
        log.warning("Staging retention: %s is not a valid marker (%s); the folder is kept", marker, error)
        return None
    if loaded_at.tzinfo is None:
        loaded_at = loaded_at.replace(tzinfo=UTC)
    return {"loaded_at": loaded_at, "listings": listings, "raw": content}


def _remove_tree(path: ObjectStoragePath) -> tuple[int, int]:
    """Remove a folder and everything under it; returns (files, bytes) removed."""
    fs, key = path.fs, path.path
    found = fs.find(key, detail=True) if path.exists() else {}
    files = [info for info in found.values() if info.get("type") == "file"]
    if path.exists():
        fs.rm(key, recursive=True)
    return len(files), sum(int(info.get("size") or 0) for info in files)


def sweep(
    root: ObjectStoragePath | str,
    retention_days: float,
    *,
    now: datetime | None = None,
    exclude: Iterable[str] = (),
) -> SweepResult:
    """Remove what runs under ``root`` (a DAG's staging) marked loaded at least ``retention_days``
    ago staged; ``exclude`` names run folders left alone (the run sweeping). A folder that cannot
    be removed is logged as a warning and kept for the next sweep; nothing raises."""
    root = _path(root)
    result = SweepResult()
    try:
        if not root.exists():
            return result
        runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name)
    except Exception as error:  # retention must never fail the run
        log.warning("Staging retention: could not list %s: %s: %s", root, type(error).__name__, error)
        return result
    skip = set(exclude)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    for folder in runs:
        if folder.name in skip:
            continue
        try:
            marker = _marker(folder)
            if marker is None or marker["loaded_at"] > cutoff:
                continue
            files = size = 0
            for name in marker["listings"]:
                removed_files, removed_bytes = _remove_tree(folder / name)
                files, size = files + removed_files, size + removed_bytes
            # A run marked again meanwhile (cleared, loaded anew) keeps its new marker.
            current = _marker(folder)
            if current is not None and current["raw"] == marker["raw"]:
                (folder / LOADED_MARKER).unlink(missing_ok=True)
            if folder.exists() and not any(True for _ in folder.iterdir()):
                folder.fs.rm(folder.path, recursive=True)  # empty (object storage has no such folder)
        except Exception as error:  # retention must never fail the run
            log.warning("Staging retention: could not remove %s: %s: %s", folder, type(error).__name__, error)
            continue
        result.runs.append(folder.name)
        result.files += files
        result.bytes += size
        log.info("Staging retention: removed %s (loaded %s): %d files, %d bytes", folder,
                 marker["loaded_at"].isoformat(), files, size)
    if result.runs:
        log.info("Staging retention: %d run folders removed from %s, %d files, %d bytes freed",
                 len(result.runs), root, result.files, result.bytes)
    return result


def retain_after_load(staging: str, dag_id: str, run_id: str, *, now: datetime | None = None,
                      retention_days: float | None = None) -> SweepResult:
    """After a successful load: mark the run's staging loaded, then sweep the DAG's staging (the
    run itself is left for a later sweep, so 0 days removes it at the next run's record). Never
    raises: a failure is logged as a warning."""
    result = SweepResult()
    try:
        days = staging_retention_days() if retention_days is None else retention_days
        folder = run_folder(staging, dag_id, run_id)
        mark_loaded(folder, now)
        return sweep(ObjectStoragePath(staging) / safe_name(dag_id), days, now=now,
                     exclude={folder.name})
    except Exception as error:  # retention must never fail the run
        log.warning("Staging retention failed for %s (the run is not affected): %s: %s", run_id,
                    type(error).__name__, error)
    return result


def require_staged(batch: Mapping[str, Any]) -> None:
    """Fail at once, saying what to do, when a batch's staged sessions are gone (a task cleared
    after the staging retention removed its run's files)."""
    sessions_uri = batch.get("sessions_uri")
    if not sessions_uri or _path(sessions_uri).exists():
        return
    raise StagingRemovedError(
        f"The staged files of this run are gone ({sessions_uri} does not exist): staging is removed "
        f"[{CONFIG_SECTION}] staging_retention_days after a run's successful load. Clearing only "
        "extract_qos or load_warehouse cannot work; clear the whole run, list_sessions included, so "
        "that it lists and extracts again."
    )
