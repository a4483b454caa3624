"""The run record: one ``pipeline_runs`` row per DAG run, written at its start and completed at its
end, so a run that dies midway still leaves a trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.columns import utcnow
from zoom_qos.warehouse.writers import upsert

__all__ = ["record_run"]

log = logging.getLogger(__name__)


def _run_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` as a ``pipeline_runs`` row: unknown keys dropped with a warning (rather than failing
    the run they describe), :class:`ParseIssues` as their JSON, window dates from ISO text."""
    if not record.get("run_id"):
        raise ValueError("record_run needs a run_id")
    columns = schema.pipeline_runs.c
    row: dict[str, Any] = {}
    for key, value in record.items():
        if key not in columns:
            log.warning("record_run: ignoring unknown column %r", key)
            continue
        row[key] = _coerce(key, value)
    detail = record.get("unparsed_detail")
    if isinstance(detail, ParseIssues) and "unparsed_values" not in record:
        row["unparsed_values"] = detail.total
    row.setdefault("recorded_at", utcnow())
    row["run_id"] = str(row["run_id"])
    return row


def record_run(conn: Connection, record: Mapping[str, Any]) -> None:
    """Upsert the run's row by ``run_id``; only the given columns are updated."""
    upsert(conn, schema.pipeline_runs, [_run_row(record)])


def _coerce(key: str, value: Any) -> Any:
    if isinstance(value, ParseIssues):
        return value.as_dict()
    if key in ("window_start", "window_end") and value is not None:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, str):
            return date.fromisoformat(value[:10])
    return value
