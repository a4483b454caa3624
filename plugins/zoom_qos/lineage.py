"""OpenLineage datasets and facets of the pipeline: what it reads from Zoom, what it writes where.

The operators' ``get_openlineage_facets_on_start/complete`` methods call these functions; the
OpenLineage provider (``apache-airflow-providers-openlineage``, extra ``[openlineage]``) calls
those methods after (or before) a task runs, never at DAG parse time. Nothing here imports
OpenLineage at module level: without the provider, :func:`operator_lineage` returns None and the
pipeline runs exactly as before.

Names follow OpenLineage's naming spec (https://openlineage.io/docs/spec/naming):

* a Zoom endpoint: namespace ``{scheme}://{host}[:{port}]`` of the connection's base URL, name
  the endpoint's path (``/v2/videosdk/sessions``, ``/v2/videosdk/sessions/{sessionId}/users/qos``);
* a PostgreSQL table: namespace ``postgres://{host}:{port}``, name ``{database}.{schema}.{table}``;
* a SQLite table (the spec has no entry for SQLite): namespace ``sqlite://{absolute path}`` (the
  database file is the data source), name the table;
* staging: a local folder has namespace ``file`` and its path as name; ``s3://``/``gs://`` the
  bucket as namespace and the key as name.

Credentials never appear: only host, port, database, schema and table are read from a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseHook
from sqlalchemy.engine import URL, make_url

from zoom_qos.core.config import staging_url
from zoom_qos.hooks import zoom_base_url
from zoom_qos.pipeline.staging import safe_name
from zoom_qos.warehouse.quality import CHECKS
from zoom_qos.zoom.published import DAILY_USAGE, SESSION_QOS, SESSION_USERS, SESSIONS, Endpoint
from zoom_qos.zoom.settings import ZoomSettings

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

__all__ = [
    "CHECK_TABLES",
    "LOAD_TABLES",
    "DatasetId",
    "asset_event_extra",
    "endpoint_id",
    "extract_lineage",
    "load_lineage",
    "operator_lineage",
    "rows_written",
    "storage_id",
    "table_asset_uri",
    "table_id",
]

log = logging.getLogger(__name__)

#: An OpenLineage dataset identity: (namespace, name).
DatasetId = tuple[str, str]

#: The tables a load writes, each with the field of ``load_batches``' result that counts its rows
#: (``sessions`` is special: see :func:`rows_written`).
LOAD_TABLES: dict[str, str] = {
    "sessions": "sessions_loaded",
    "session_users": "users_loaded",
    "user_qos": "qos_rows",
    "user_system_qos": "system_rows",
    "daily_usage": "daily_usage_days",
}

#: Which tables each data-quality check (``warehouse/quality.py``) looks at: its assertion is
#: reported on each of them.
CHECK_TABLES: dict[str, tuple[str, ...]] = {
    "loss_out_of_range": ("user_qos",),
    "negative_metric": ("user_qos",),
    "sample_outside_join": ("user_qos", "user_system_qos"),
    "users_exceed_user_count": ("session_users",),
    "orphan_rows": ("session_users", "user_qos", "user_system_qos"),
    "zoom_daily_count": ("daily_usage",),
}

_POSTGRES_PORT = 5432


# --------------------------------------------------------------------------- names (pure)
def endpoint_id(base_url: str, endpoint: Endpoint) -> DatasetId:
    """A Zoom endpoint as a dataset: the server as namespace, the full path template as name,
    so every account's ``/v2/videosdk/sessions`` is one dataset however its sessions vary."""
    parts = urlsplit(base_url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return f"{parts.scheme}://{netloc}", f"{parts.path.rstrip('/')}/{endpoint.path.lstrip('/')}"


def table_id(url: str | URL, schema: str | None, table: str) -> DatasetId:
    """A warehouse table as OpenLineage names it, from the warehouse's SQLAlchemy URL and schema
    (only host, port, database and schema are read: never the user or password)."""
    url = make_url(url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        host = url.host or "localhost"
        return (f"postgres://{host}:{url.port or _POSTGRES_PORT}",
                f"{url.database or 'postgres'}.{schema or 'public'}.{table}")
    if backend == "sqlite":
        return f"sqlite://{_sqlite_path(url)}", table
    raise ValueError(f"No OpenLineage naming for {backend!r} warehouses")


def table_asset_uri(url: str | URL, schema: str | None, table: str) -> str:
    """A warehouse table as an Airflow Asset URI: ``postgres://host:port/database/schema/table``
    (the postgres provider's form, which it also translates to OpenLineage), and for SQLite
    ``sqlite:{absolute path}/{table}``: that is ``sqlite:///{absolute path}/{table}`` as Airflow
    normalizes it (``urlunsplit`` drops the empty authority; no handler knows ``sqlite``), so
    the URI given is the URI stored."""
    url = make_url(url)
    namespace, name = table_id(url, schema, table)
    if url.get_backend_name() == "postgresql":
        return f"{namespace}/{name.replace('.', '/')}"
    return f"sqlite:{_sqlite_path(url)}/{quote(name)}"


def _sqlite_path(url: URL) -> str:
    """The SQLite file's absolute path (``:memory:`` and empty stay as they are)."""
    database = url.database or ""
    if not database or database == ":memory:":
        return database
    return quote(str(Path(database).expanduser().resolve()), safe="/")


def storage_id(location: str) -> DatasetId:
    """A staging location (a local path, ``file://``, ``s3://``, ``gs://``...) as a dataset."""
    parts = urlsplit(str(location))
    if parts.scheme in ("", "file"):
        path = parts.path if parts.scheme else str(Path(location).expanduser().resolve())
        return "file", path.rstrip("/") or "/"
    scheme = "gs" if parts.scheme == "gcs" else parts.scheme
    if scheme in ("s3", "gs", "s3a"):
        return f"{scheme}://{parts.netloc}", parts.path.strip("/")
    return f"{scheme}://{parts.netloc}", parts.path.rstrip("/") or "/"


# --------------------------------------------------------------------------- counts (pure)
def rows_written(result: Mapping[str, Any]) -> dict[str, int]:
    """Rows each table got from one load, from ``load_batches``' result.

    ``sessions`` gets a row for every session given, read or not: the loaded ones and those left
    ``pending`` or ``unavailable``.
    """
    rows = {table: int(result.get(field) or 0) for table, field in LOAD_TABLES.items()}
    unread = int(result.get("sessions_pending") or 0) + int(result.get("sessions_unavailable") or 0)
    rows["sessions"] += unread
    return rows


def asset_event_extra(result: Mapping[str, Any], listing: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the warehouse Asset's event carries: the window loaded and the counts, so a consumer
    (the report DAG, a sensor) can tell what is fresh without querying the warehouse."""
    listing = listing or {}
    return {
        "window_start": listing.get("window_start"),
        "window_end": listing.get("window_end"),
        "sessions_loaded": result.get("sessions_loaded"),
        "sessions_pending": result.get("sessions_pending"),
        "sessions_unavailable": result.get("sessions_unavailable"),
        "users_loaded": result.get("users_loaded"),
        "qos_rows": result.get("qos_rows"),
        "system_rows": result.get("system_rows"),
        "daily_usage_days": result.get("daily_usage_days"),
        "dq_hard_violations": result.get("dq_hard_violations"),
        "rows": rows_written(result),
    }


# --------------------------------------------------------------------------- OpenLineage objects
def zoom_connection_lineage(conn_id: str) -> tuple[str, bool]:
    """The base URL of a Zoom connection and whether it reads the users' grades, without building
    a client (that would set up rate limiting and the daily budget just to name datasets)."""
    conn = BaseHook.get_connection(conn_id)
    base_url = zoom_base_url(conn.host, conn.schema, conn.port)
    return base_url, ZoomSettings.from_extra(conn.extra_dejson).read_user_grades


def staging_dataset(dag_id: str) -> DatasetId:
    """The DAG's staging area as one dataset: each run writes its own sub-folder of it, but naming
    the area rather than the run's folder keeps one node in the lineage graph across runs."""
    return storage_id(f"{staging_url().rstrip('/')}/{safe_name(dag_id)}")


def operator_lineage(inputs: Sequence[Dataset], outputs: Sequence[Dataset]) -> OperatorLineage | None:
    """The provider's ``OperatorLineage``, or None without the provider."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage  # the openlineage extra
    except ImportError:
        return None
    return OperatorLineage(inputs=list(inputs), outputs=list(outputs))


def _input(dataset: DatasetId) -> Dataset:
    from openlineage.client.event_v2 import InputDataset  # the openlineage extra

    return InputDataset(namespace=dataset[0], name=dataset[1])


def _output(dataset: DatasetId, rows: int | None = None,
            assertions: Sequence[Any] = ()) -> Dataset:
    """An output dataset; ``rows`` (this run's) as the ``outputStatistics`` facet and the
    data-quality ``assertions`` as the ``dataQualityAssertions`` facet, when given."""
    # the openlineage extra, only called when it is installed
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq
    from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

    output_facets: dict[str, Any] = {}
    facets: dict[str, Any] = {}
    if rows is not None:
        output_facets["outputStatistics"] = statistics.OutputStatisticsOutputDatasetFacet(rowCount=rows)
    if assertions:
        facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(assertions=list(assertions))
    return OutputDataset(namespace=dataset[0], name=dataset[1], facets=facets, outputFacets=output_facets)


def _assertions(findings: Iterable[Mapping[str, Any]], hard_checks: Iterable[str]) -> dict[str, list[Any]]:
    """Every check of ``quality.CHECKS`` as an assertion on each table it looks at: failed when it
    found rows (``actual`` says how many), with severity ``error`` for hard checks, else ``warn``."""
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dq  # the extra

    found = {str(f["check"]): f for f in findings}
    hard = set(hard_checks) | {name for name, f in found.items() if f.get("hard")}
    by_table: dict[str, list[Any]] = {}
    for check in CHECKS:
        count = int(found[check]["count"]) if check in found else 0
        assertion = dq.Assertion(assertion=check, name=check, success=count == 0,
                                 severity="error" if check in hard else "warn", expected="0",
                                 actual=str(count))
        for table in CHECK_TABLES.get(check, tuple(LOAD_TABLES)):
            by_table.setdefault(table, []).append(assertion)
    return by_table


def extract_lineage(*, base_url: str, staging: DatasetId, read_user_grades: bool,
                    users: int | None = None) -> OperatorLineage | None:
    """One extraction batch: the QoS endpoint (and the users endpoint when the grades are read)
    into staging; ``users`` staged, once known, as the staging output's row count."""
    try:
        endpoints = [SESSION_QOS, SESSION_USERS] if read_user_grades else [SESSION_QOS]
        return operator_lineage([_input(endpoint_id(base_url, e)) for e in endpoints],
                                [_output(staging, users)])
    except ImportError:
        return None


def load_lineage(*, base_url: str, staging: DatasetId, warehouse_url: str | URL, schema: str | None,
                 result: Mapping[str, Any] | None = None,
                 hard_checks: Iterable[str] = ()) -> OperatorLineage | None:
    """The load: staging plus the two endpoints the listing read (the sessions list and the daily
    report, whose counts go to ``sessions`` and ``daily_usage``) into the warehouse tables; with
    ``result`` (``load_batches``' return), each table's rows written and its checks' outcome."""
    try:
        inputs = [_input(staging), *(_input(endpoint_id(base_url, e)) for e in (SESSIONS, DAILY_USAGE))]
        rows = rows_written(result) if result is not None else {}
        assertions = _assertions(result.get("dq_findings") or [], hard_checks) if result is not None else {}
        outputs = [_output(table_id(warehouse_url, schema, table), rows.get(table), assertions.get(table, ()))
                   for table in LOAD_TABLES]
        return operator_lineage(inputs, outputs)
    except ImportError:
        return None
