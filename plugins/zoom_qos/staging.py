"""Staging storage: what extraction read, as JSON lines, addressed by URL.

Extraction and load run as separate tasks, possibly on different workers, and XCom must carry
only references. So each task writes files under ``<staging>/<dag_id>/<run_id>/`` through
Airflow's ``ObjectStoragePath`` (a local folder by default, ``s3://`` or ``gs://`` on a
cluster). Files are written under a temporary name and renamed, so a reader never sees half a
file and a retried task simply overwrites.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from airflow.sdk import ObjectStoragePath

from zoom_qos.parsing import storable_text

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A path segment made from a DAG or run id (run ids contain ``:`` and ``+``)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def run_folder(staging_url: str, dag_id: str, run_id: str) -> ObjectStoragePath:
    return ObjectStoragePath(staging_url) / safe_name(dag_id) / safe_name(run_id)


def write_jsonl(path: ObjectStoragePath | str, records: Iterable[dict[str, Any]]) -> int:
    """Write records one per line, atomically where the storage allows. Returns the count."""
    target = ObjectStoragePath(str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    count = 0
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
