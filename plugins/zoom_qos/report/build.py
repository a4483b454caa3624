"""Writing the report: read the views, render the page, replace the file atomically.

:func:`build_report` is what the report DAG and ``make demo`` run (through
:func:`render_configured_report`, which finds the warehouse and the folder from the
configuration). The file name carries the period, ``zoom_qos_report_<first day>_<last day>.html``,
so a re-render of the same period overwrites its report and a new period gets a new file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from zoom_qos.core.config import LEGACY_ENV, WAREHOUSE_CONN_ID, report_dir
from zoom_qos.core.errors import unwritable_as
from zoom_qos.report.data import DEFAULT_DAYS, load_report_data, report_period
from zoom_qos.report.page import render_html
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

__all__ = ["REPORT_DIR_ENV", "build_report", "expected_report_path", "render_configured_report",
           "report_file_name"]

log = logging.getLogger(__name__)

#: The deprecated variable for the report folder (``[zoom_qos] report_dir`` now).
REPORT_DIR_ENV = LEGACY_ENV["report_dir"]


def report_file_name(start: date, end: date) -> str:
    """The report's file name: its period, so each period's report is kept apart."""
    return f"zoom_qos_report_{start.isoformat()}_{end.isoformat()}.html"


def expected_report_path(warehouse: Warehouse, folder: str | Path | None = None,
                         days: int = DEFAULT_DAYS) -> Path:
    """The report ``zoom_videosdk_qos_report`` renders from the warehouse as it is now (what an
    alert points to, before the report DAG has run)."""
    with warehouse.engine.connect() as conn:
        start, end, _ = report_period(conn, object_prefix(warehouse.dialect, warehouse.schema), days)
    base = Path(folder).expanduser() if folder is not None else report_dir()
    return (base / report_file_name(start, end)).resolve()


def render_configured_report(output_dir: str | Path | None = None, days: int = DEFAULT_DAYS) -> Path:
    """Report on the configured warehouse (``zoom_qos_warehouse`` connection, else SQLite)."""
    warehouse = Warehouse.from_airflow(WAREHOUSE_CONN_ID)
    try:
        path = build_report(warehouse, output_dir or report_dir(), days=days)
    finally:
        warehouse.dispose()
    log.info("QoS report written to %s", path)
    return path


def build_report(
    engine_or_warehouse: object,
    output_dir: str | Path,
    days: int = DEFAULT_DAYS,
    *,
    schema: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Write the report of the last ``days`` days of data to ``output_dir``; returns its path.

    ``engine_or_warehouse`` is a :class:`~zoom_qos.warehouse.Warehouse` or an SQLAlchemy
    engine (on PostgreSQL ``schema`` defaults to the engine's schema translation, else
    ``zoom_qos``). The file is replaced atomically (a temporary file in the same folder, then
    ``os.replace``), so a reader never sees half a report; a folder that cannot take it (full,
    read-only) is a ``StorageUnwritableError`` naming it, which no retry cures.
    """
    now = now or datetime.now(UTC)
    data = load_report_data(engine_or_warehouse, days, schema=schema, today=now.astimezone(UTC).date())
    document = render_html(data, generated_at=now)
    folder = Path(output_dir).expanduser()
    path = folder / report_file_name(data.start, data.end)
    with unwritable_as("the QoS report", str(path)):
        _write_atomically(path, document)
    return path.resolve()


def _write_atomically(path: Path, document: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
