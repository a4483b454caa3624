"""The Superset import bundle of the call-quality dashboard, for one warehouse.

What a user imports (``superset import-dashboards -p BUNDLE.zip -u admin``) is built here from
``superset_assets/``: the database (the user's warehouse), one dataset per view our charts read
(columns and descriptions from :data:`zoom_qos.warehouse.views.VIEWS`), the charts with their
saved query contexts, and the dashboard with its layout and native filters.

Every uuid is derived from the warehouse's address and the asset's name, so importing a new
bundle for the same warehouse updates the same dashboard in place, and a bundle for another
warehouse (say staging) becomes a dashboard of its own instead of overwriting the first.
"""

from __future__ import annotations

import io
import json
import os
import string
import uuid
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL, make_url

from zoom_qos.bi.query_context import query_context_json
from zoom_qos.core.errors import ZoomQosError
from zoom_qos.warehouse import schema as tables
from zoom_qos.warehouse.views import view_by_name
from zoom_qos.zoom.settings import ZoomSettings

__all__ = ["BundleError", "Target", "build_files", "chart_count", "target_from_uri", "write_bundle"]

#: The folder every file of the ZIP sits in (Superset drops a bundle's first path segment).
ROOT = "zoom_qos_dashboard"
_VERSION = "1.0.0"
#: Fixed namespace of our uuids (a random value drawn once): uuid5(namespace, warehouse + asset).
_NAMESPACE = uuid.UUID("9d765554-c572-493d-996b-970ea4f960b0")
#: What a masked password looks like in Superset's own exports.
_MASK = "XXXXXXXXXX"
_SUPERSET_DRIVERS = {"postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}
_DEFAULT_HEIGHT = 50
_ASSETS = "superset_assets"


class BundleError(ZoomQosError):
    """The bundle cannot be built for this warehouse (an unsupported database, a bad URI)."""


@dataclass(frozen=True)
class Target:
    """The warehouse as Superset reaches it: a URL (with its password) and the schema."""

    url: URL
    schema: str | None

    @property
    def label(self) -> str:
        """Host, database and schema: names the Superset database and seeds the uuids."""
        where = f"{self.url.host or 'localhost'}:{self.url.port or ''}/{self.url.database or ''}"
        if self.url.get_backend_name() == "sqlite":
            where = str(self.url.database)
        return f"{where}/{self.schema}" if self.schema else where


def target_from_uri(uri: str, default_schema: str) -> Target:
    """A warehouse named by a SQLAlchemy URI as Superset reaches it (PostgreSQL or SQLite).

    A ``warehouse_schema`` query parameter names the schema, as in an ``AIRFLOW_CONN_*`` URI.
    """
    try:
        url = make_url(uri)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError
        raise BundleError("--database-uri is not a SQLAlchemy URI (e.g. "
                          "postgresql://user:password@host:5432/database)") from error
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        schema = str(url.query.get("warehouse_schema") or default_schema)
        return Target(url.difference_update_query(["warehouse_schema"]).set(drivername="postgresql"), schema)
    if backend == "sqlite":
        return Target(url, None)
    raise BundleError(f"the warehouse must be PostgreSQL or SQLite, not {backend!r}")


def build_files(target: Target) -> dict[str, str]:
    """The bundle's files (path in the ZIP -> YAML text) for ``target``."""
    charts = _load_charts()
    dashboard = _load("dashboard.yaml")
    database_uuid = _uuid(target, "database", "warehouse")
    views = sorted({chart["dataset"] for chart in charts.values()}
                   | {f["dataset"] for f in dashboard.get("filters", []) if "dataset" in f})
    files = {
        "metadata.yaml": {"version": _VERSION, "type": "Dashboard", "timestamp": "1970-01-01T00:00:00+00:00"},
        "databases/zoom_qos_warehouse.yaml": _database(target, database_uuid),
    }
    for name in views:
        files[f"datasets/zoom_qos_warehouse/{name}.yaml"] = _dataset(target, _relation(name), database_uuid)
    chart_ids = {name: index for index, name in enumerate(charts, start=1)}
    for name, chart in charts.items():
        files[f"charts/{name}.yaml"] = _chart(target, name, chart)
    files["dashboards/zoom_call_quality.yaml"] = _dashboard(target, dashboard, charts, chart_ids)
    return {f"{ROOT}/{path}": yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=110)
            for path, content in files.items()}


def write_bundle(target: Target, out: Path) -> Path:
    """Write the import ZIP to ``out`` (readable by its owner only: it holds the password)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path, text in build_files(target).items():
            bundle.writestr(path, text)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.replace(partial, out)  # never a half-written bundle under the asked-for name
    return out


# ------------------------------------------------------------------------------- assets
def _load(relative: str) -> dict[str, Any]:
    text = resources.files("zoom_qos.bi").joinpath(_ASSETS, relative).read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise BundleError(f"{_ASSETS}/{relative} is not a YAML mapping")
    return loaded


def _load_charts() -> dict[str, dict[str, Any]]:
    folder = resources.files("zoom_qos.bi").joinpath(_ASSETS, "charts")
    names = sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))
    return {name: _load(f"charts/{name}.yaml") for name in names}


def _uuid(target: Target, kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{target.label}|{kind}|{name}"))


# ------------------------------------------------------------------------------- files
def _database(target: Target, database_uuid: str) -> dict[str, Any]:
    url = target.url.set(drivername=_SUPERSET_DRIVERS[target.url.get_backend_name()])
    password = url.password
    shown = url.set(password=_MASK) if password else url
    return {
        "database_name": f"Zoom QoS warehouse ({target.label})",
        "sqlalchemy_uri": shown.render_as_string(hide_password=False),
        **({"password": str(password)} if password else {}),
        **_load("database.yaml"),
        "uuid": database_uuid,
        "version": _VERSION,
    }


@dataclass(frozen=True)
class _Relation:
    """What a dataset needs of a view or table of the contract: its name, comment and columns."""

    name: str
    comment: str
    columns: dict[str, str]


def _relation(name: str) -> _Relation:
    """A view of the contract, or one of its tables (qos_alerts), with the column descriptions."""
    try:
        view = view_by_name(name)
    except KeyError:
        table = tables.METADATA.tables.get(name)
        if table is None:
            raise BundleError(f"the dashboard reads {name!r}, which the warehouse does not have") from None
        columns = {str(c.name): str(c.comment or "") for c in table.columns}
        return _Relation(name, str(table.comment or ""), columns)
    return _Relation(view.name, view.comment, dict(view.columns))


def _is_temporal(column: str) -> bool:
    return column in ("day", "usage_date", "window_start", "window_end") or column.endswith(("_time", "_at"))


def _dataset(target: Target, view: _Relation, database_uuid: str) -> dict[str, Any]:
    temporal = [name for name in view.columns if _is_temporal(name)]
    return {
        "table_name": view.name,
        "main_dttm_col": temporal[0] if temporal else None,
        "description": view.comment,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,  # else Superset's default catalog overrides the URI's database
        "schema": target.schema,
        "sql": None,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "uuid": _uuid(target, "dataset", view.name),
        "metrics": [],
        "columns": [
            {"column_name": name, "verbose_name": None, "is_dttm": _is_temporal(name), "is_active": True,
             "type": None, "groupby": True, "filterable": True, "expression": None, "description": text,
             "python_date_format": None}
            for name, text in view.columns.items()
        ],
        "database_uuid": database_uuid,
        "version": _VERSION,
    }


def _chart(target: Target, name: str, chart: dict[str, Any]) -> dict[str, Any]:
    params = _substitute(chart["params"])
    view = _relation(chart["dataset"])
    missing = sorted(_columns_used(params) - set(view.columns))
    if missing:
        raise BundleError(f"chart {name}: {view.name} has no column {', '.join(missing)}")
    return {
        "slice_name": chart["slice_name"],
        "description": chart.get("description"),
        "viz_type": chart["viz_type"],
        "params": {**params, "viz_type": chart["viz_type"]},
        "query_context": query_context_json(chart["viz_type"], params),
        "cache_timeout": None,
        "uuid": _uuid(target, "chart", name),
        "version": _VERSION,
        "dataset_uuid": _uuid(target, "dataset", view.name),
    }


def _substitute(params: dict[str, Any]) -> dict[str, Any]:
    """``$daily_request_limit`` in a chart's SQL: the default cap, written once (ZoomSettings)."""
    values = {"daily_request_limit": str(ZoomSettings().daily_request_limit)}
    return json.loads(string.Template(json.dumps(params)).substitute(values))


def _columns_used(params: dict[str, Any]) -> set[str]:
    """The plain columns a chart names (its SQL expressions are checked by Superset's import)."""
    used = {*params.get("all_columns", []), *params.get("groupby", [])}
    used |= {f["subject"] for f in params.get("adhoc_filters", []) if f.get("expressionType") == "SIMPLE"}
    if "x_axis" in params:
        used.add(params["x_axis"])
    return used


def _dashboard(target: Target, spec: dict[str, Any], charts: dict[str, dict[str, Any]],
               chart_ids: dict[str, int]) -> dict[str, Any]:
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": spec["dashboard_title"]}},
    }
    for row_index, row in enumerate(spec["rows"], start=1):
        row_id = f"ROW-{row_index}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for item_index, item in enumerate(row, start=1):
            parents = ["ROOT_ID", "GRID_ID", row_id]
            height = item.get("height", _DEFAULT_HEIGHT)
            if "markdown" in item:
                item_id = f"MARKDOWN-{row_index}-{item_index}"
                meta = {"code": item["markdown"], "width": item["width"], "height": height}
                position[item_id] = {"type": "MARKDOWN", "id": item_id, "children": [], "parents": parents,
                                     "meta": meta}
            else:
                name = item["chart"]
                item_id = f"CHART-{name}"
                meta = {"chartId": chart_ids[name], "uuid": _uuid(target, "chart", name),
                        "sliceName": charts[name]["slice_name"], "width": item["width"], "height": height}
                position[item_id] = {"type": "CHART", "id": item_id, "children": [], "parents": parents,
                                     "meta": meta}
            position[row_id]["children"].append(item_id)
    laid_out = {key[len("CHART-"):] for key in position if key.startswith("CHART-")}
    if laid_out != set(charts):
        raise BundleError(f"dashboard.yaml lays out {sorted(laid_out)} but charts/ holds {sorted(charts)}")
    return {
        "dashboard_title": spec["dashboard_title"],
        "description": spec.get("description"),
        "css": "",
        "slug": spec.get("slug"),
        "certified_by": None,
        "certification_details": None,
        "published": spec.get("published", True),
        "uuid": _uuid(target, "dashboard", "zoom_call_quality"),
        "position": position,
        "metadata": {
            "color_scheme": "supersetColors",
            "refresh_frequency": 0,
            "expanded_slices": {},
            "timed_refresh_immune_slices": [],
            "cross_filters_enabled": False,
            "default_filters": "{}",
            "chart_configuration": {},
            "native_filter_configuration": [
                _native_filter(target, index, f, charts, chart_ids)
                for index, f in enumerate(spec.get("filters", []), start=1)
            ],
        },
        "version": _VERSION,
    }


def _native_filter(target: Target, index: int, spec: dict[str, Any], charts: dict[str, dict[str, Any]],
                   chart_ids: dict[str, int]) -> dict[str, Any]:
    """A native filter, kept off the charts it cannot apply to (their dataset lacks its column)."""
    if spec["type"] == "filter_time":
        applies = {name for name, chart in charts.items() if _has_time_filter(chart)}
        targets: list[dict[str, Any]] = [{}]
        control: dict[str, Any] = {}
        default: dict[str, Any] = {"filterState": {"value": "No filter"}, "extraFormData": {}}
    else:
        column = spec["column"]
        applies = {name for name, chart in charts.items() if column in _relation(chart["dataset"]).columns}
        targets = [{"datasetUuid": _uuid(target, "dataset", spec["dataset"]), "column": {"name": column}}]
        control = {"multiSelect": True, "enableEmptyFilter": False, "defaultToFirstItem": False,
                   "inverseSelection": False, "searchAllOptions": False}
        default = {"filterState": {}, "extraFormData": {}}
    applies -= set(spec.get("exclude", []))
    excluded = sorted(chart_ids[name] for name in charts if name not in applies)
    return {
        "id": f"NATIVE_FILTER-{uuid.uuid5(_NAMESPACE, spec['name']).hex[:10]}-{index}",
        "name": spec["name"],
        "filterType": spec["type"],
        "type": "NATIVE_FILTER",
        "targets": targets,
        "controlValues": control,
        "defaultDataMask": default,
        "cascadeParentIds": [],
        # chart ids of the files: Superset maps them to the imported charts' ids
        "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
        "description": "",
    }


def _has_time_filter(chart: dict[str, Any]) -> bool:
    return any(f.get("operator") == "TEMPORAL_RANGE" for f in chart["params"].get("adhoc_filters", []))



def chart_count() -> int:
    """How many charts the dashboard has (what a check of an imported bundle expects)."""
    return len(_load_charts())
