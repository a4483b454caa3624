"""The Superset bundle: Superset's import format, for one warehouse, consistent with our views.

What Superset itself makes of it (import, chart data, the dashboard drawn) is `make bi-test`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from zoom_qos.bi import superset
from zoom_qos.bi.superset import BundleError, Target, build_files, chart_count, target_from_uri, write_bundle
from zoom_qos.warehouse.views import VIEWS

SECRET = "s3cr3t-pw-4c9a"
PG = target_from_uri(f"postgresql://bi:{SECRET}@db.internal:5433/warehouse?warehouse_schema=qos", "zoom_qos")
ZOOM_QOS = Path(sys.executable).with_name("zoom-qos")


def parsed(target: Target) -> dict[str, dict[str, Any]]:
    """The bundle's files, parsed, by their path under the bundle's folder."""
    out = {}
    for path, text in build_files(target).items():
        folder, _, rest = path.partition("/")
        assert folder == superset.ROOT
        out[rest] = yaml.safe_load(text)
    return out


def of_kind(files: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [content for path, content in files.items() if path.startswith(kind + "/")]


def test_the_bundle_is_superset_import_format_and_its_references_hold() -> None:
    files = parsed(PG)
    assert files["metadata.yaml"]["type"] == "Dashboard" and files["metadata.yaml"]["version"] == "1.0.0"
    (database,) = of_kind(files, "databases")
    datasets = {d["uuid"]: d for d in of_kind(files, "datasets")}
    charts = {c["uuid"]: c for c in of_kind(files, "charts")}
    (dashboard,) = of_kind(files, "dashboards")
    assert len(charts) == chart_count() > 10
    assert all(d["database_uuid"] == database["uuid"] for d in datasets.values())
    assert all(c["dataset_uuid"] in datasets for c in charts.values())
    laid_out = {node["meta"]["uuid"] for node in dashboard["position"].values()
                if isinstance(node, dict) and node.get("type") == "CHART"}
    assert laid_out == set(charts)
    # Every row fits Superset's 12-column grid.
    grid = dashboard["position"]
    for row_id in grid["GRID_ID"]["children"]:
        assert sum(grid[child]["meta"]["width"] for child in grid[row_id]["children"]) <= 12, row_id


def test_every_chart_reads_columns_its_dataset_has_and_carries_its_query_context() -> None:
    files = parsed(PG)
    datasets = {d["uuid"]: d for d in of_kind(files, "datasets")}
    for chart in of_kind(files, "charts"):
        columns = {c["column_name"] for c in datasets[chart["dataset_uuid"]]["columns"]}
        context = json.loads(chart["query_context"])
        (query,) = context["queries"]
        named = [c for c in query["columns"] if isinstance(c, str)]
        named += [c["sqlExpression"] for c in query["columns"] if isinstance(c, dict)]
        named += [f["col"] for f in query["filters"]]
        assert set(named) <= columns, (chart["slice_name"], set(named) - columns)
        assert query["metrics"] or query["columns"], chart["slice_name"]
        assert context["form_data"]["viz_type"] == chart["viz_type"] == chart["params"]["viz_type"]


def test_datasets_are_our_views_with_their_documented_columns_in_the_warehouse_schema() -> None:
    files = parsed(PG)
    views = {view.name: view for view in VIEWS}
    for dataset in of_kind(files, "datasets"):
        assert dataset["schema"] == "qos" and dataset["catalog"] is None
        name = dataset["table_name"]
        if name in views:
            described = {c["column_name"]: c["description"] for c in dataset["columns"]}
            assert described == views[name].columns
        temporal = {c["column_name"] for c in dataset["columns"] if c["is_dttm"]}
        assert dataset["main_dttm_col"] in temporal


def test_the_password_is_kept_apart_from_the_uri_as_superset_exports_do() -> None:
    (database,) = of_kind(parsed(PG), "databases")
    assert database["password"] == SECRET
    assert SECRET not in database["sqlalchemy_uri"]
    assert database["sqlalchemy_uri"] == "postgresql+psycopg2://bi:XXXXXXXXXX@db.internal:5433/warehouse"


def test_uuids_are_stable_for_a_warehouse_and_differ_for_another() -> None:
    def uuids(target: Target) -> list[str]:
        return sorted(content["uuid"] for path, content in parsed(target).items() if "uuid" in content)

    again = target_from_uri(f"postgresql://bi:{SECRET}@db.internal:5433/warehouse?warehouse_schema=qos", "x")
    staging = target_from_uri("postgresql://bi@db.internal:5433/warehouse?warehouse_schema=staging", "x")
    assert uuids(PG) == uuids(again)
    assert not set(uuids(PG)) & set(uuids(staging))


def test_native_filters_stay_off_charts_whose_dataset_lacks_their_column() -> None:
    files = parsed(PG)
    (dashboard,) = of_kind(files, "dashboards")
    chart_ids = {node["meta"]["sliceName"]: node["meta"]["chartId"] for node in dashboard["position"].values()
                 if isinstance(node, dict) and node.get("type") == "CHART"}
    datasets = {d["uuid"]: d for d in of_kind(files, "datasets")}
    columns = {chart["slice_name"]: {c["column_name"] for c in datasets[chart["dataset_uuid"]]["columns"]}
               for chart in of_kind(files, "charts")}
    filters = {f["name"]: f for f in dashboard["metadata"]["native_filter_configuration"]}
    device = filters["Device"]
    assert device["targets"][0]["column"] == {"name": "device"}
    lacking = {chart_ids[n] for n, cols in columns.items() if "device" not in cols}
    assert set(device["scope"]["excluded"]) == lacking
    period = filters["Period"]
    assert chart_ids["Sessions in progress"] in period["scope"]["excluded"]
    assert chart_ids["Worst sessions"] not in period["scope"]["excluded"]


def test_a_chart_naming_a_column_its_view_lacks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {"slice_name": "x", "viz_type": "table", "dataset": "join_quality",
           "params": {"query_mode": "raw", "all_columns": ["no_such_column"]}}
    monkeypatch.setattr(superset, "_load_charts", lambda: {"x": bad})
    with pytest.raises(BundleError, match="no_such_column"):
        build_files(PG)


@pytest.mark.parametrize(("uri", "schema"), [
    ("postgresql://u@h/db", "zoom_qos"),
    ("postgres://u@h/db?warehouse_schema=other", "other"),
    ("sqlite:////tmp/warehouse.db", None),
])
def test_a_uri_names_the_warehouse_and_its_schema(uri: str, schema: str | None) -> None:
    target = target_from_uri(uri, "zoom_qos")
    assert target.schema == schema
    assert "warehouse_schema" not in target.url.query


@pytest.mark.parametrize("uri", ["mysql://u@h/db", "not a uri"])
def test_a_warehouse_we_do_not_support_is_refused(uri: str) -> None:
    with pytest.raises(BundleError):
        target_from_uri(uri, "zoom_qos")


def test_the_zip_is_written_whole_and_for_its_owner_only(tmp_path: Path) -> None:
    out = write_bundle(PG, tmp_path / "sub" / "bundle.zip")
    assert out.stat().st_mode & 0o777 == 0o600
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as bundle:
        assert sorted(bundle.namelist()) == sorted(build_files(PG))
    assert [p.name for p in out.parent.iterdir()] == ["bundle.zip"]


def test_the_command_line_writes_the_bundle_and_never_shows_the_password(tmp_path: Path) -> None:
    env = dict(os.environ, AIRFLOW_CONN_BI_WH=json.dumps(
        {"conn_type": "postgres", "host": "db.internal", "login": "bi", "password": SECRET,
         "schema": "warehouse", "extra": {"warehouse_schema": "qos", "sslmode": "require"}}))
    done = subprocess.run([str(ZOOM_QOS), "superset", "bundle", "--conn-id", "BI_WH", "--out",
                           str(tmp_path / "b.zip")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "superset import-dashboards -p" in done.stdout
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle:
        database = yaml.safe_load(bundle.read(f"{superset.ROOT}/databases/zoom_qos_warehouse.yaml"))
    assert database["password"] == SECRET
    assert database["sqlalchemy_uri"].endswith("@db.internal/warehouse?sslmode=require")


def test_the_command_line_names_a_bad_uri_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(ZOOM_QOS), "superset", "bundle", "--database-uri", "mysql://u:pw@h/db",
                           "--out", str(tmp_path / "b.zip")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("zoom-qos: error: BundleError:") and "Traceback" not in done.stderr
    assert not (tmp_path / "b.zip").exists()
