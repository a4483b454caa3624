"""OpenLineage names and facets (``zoom_qos.lineage``), without running a task."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy.engine import URL

from zoom_qos import lineage
from zoom_qos.hooks import zoom_base_url
from zoom_qos.warehouse.quality import CHECKS
from zoom_qos.zoom.published import SESSION_QOS, SESSIONS

PG_URL = URL.create("postgresql+psycopg", username="etl", password="s3cr:t@pw", host="db.internal",
                    port=6432, database="analytics")

RESULT = {
    "sessions_loaded": 4, "sessions_pending": 1, "sessions_unavailable": 2, "users_loaded": 30,
    "qos_rows": 3000, "system_rows": 400, "daily_usage_days": 31, "dq_hard_violations": 3,
    "dq_findings": [{"check": "orphan_rows", "count": 3, "example": "x", "hard": True},
                    {"check": "negative_metric", "count": 5, "example": "y", "hard": False}],
}


def test_a_postgres_table_is_named_by_host_port_database_schema_and_table_without_credentials():
    namespace, name = lineage.table_id(PG_URL, "zoom_qos", "user_qos")
    assert (namespace, name) == ("postgres://db.internal:6432", "analytics.zoom_qos.user_qos")
    uri = lineage.table_asset_uri(PG_URL, "zoom_qos", "user_qos")
    assert uri == "postgres://db.internal:6432/analytics/zoom_qos/user_qos"
    for text in (namespace, name, uri):
        assert "s3cr" not in text and "etl" not in text


def test_postgres_defaults_to_port_5432():
    url = "postgresql+psycopg://u:p@db/analytics"
    expected = ("postgres://db:5432", "analytics.zoom_qos.sessions")
    assert lineage.table_id(url, "zoom_qos", "sessions") == expected


def test_a_sqlite_table_is_named_by_the_absolute_file_path_and_the_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = URL.create("sqlite", database="data/warehouse.db")  # relative: resolved
    path = (tmp_path / "data" / "warehouse.db").resolve()
    assert lineage.table_id(url, None, "sessions") == (f"sqlite://{path}", "sessions")
    assert lineage.table_asset_uri(url, None, "sessions") == f"sqlite:{path}/sessions"


@pytest.mark.parametrize("url, schema", [(PG_URL, "zoom_qos"), ("sqlite:////srv/zoom/warehouse.db", None)])
def test_table_asset_uris_are_accepted_and_kept_as_they_are_by_airflow(url, schema):
    from airflow.sdk import Asset

    uri = lineage.table_asset_uri(url, schema, "daily_usage")
    assert Asset(uri=uri).uri == uri


def test_zoom_endpoints_are_named_by_server_and_path_template():
    base = zoom_base_url(None)
    assert lineage.endpoint_id(base, SESSIONS) == ("https://api.zoom.us", "/v2/videosdk/sessions")
    assert lineage.endpoint_id("http://127.0.0.1:8080/v2/", SESSION_QOS) == (
        "http://127.0.0.1:8080", "/v2/videosdk/sessions/{sessionId}/users/qos")


@pytest.mark.parametrize("host, schema, port, expected", [
    (None, None, None, "https://api.zoom.us/v2"), ("api.zoom.us/v2", None, None, "https://api.zoom.us/v2"),
    ("http://127.0.0.1/v2", None, 8080, "http://127.0.0.1:8080/v2"),
    ("127.0.0.1:9000/v2", "http", 8080, "http://127.0.0.1:9000/v2"),
    ("zoom.example/v2/", "http", None, "http://zoom.example/v2"),
])
def test_the_hook_and_lineage_take_the_base_url_from_the_connection_alike(monkeypatch, host, schema,
                                                                        port, expected):
    from airflow.sdk import Connection

    from zoom_qos.hooks import ZoomVideoSdkHook

    conn = Connection(conn_id="zoom_videosdk", conn_type="http", host=host, schema=schema, port=port,
                      login="key", password="secret-value")
    monkeypatch.setattr(ZoomVideoSdkHook, "get_connection", classmethod(lambda cls, conn_id: conn))
    hook = ZoomVideoSdkHook("zoom_videosdk")
    assert zoom_base_url(host, schema, port) == hook.client.base_url == expected
    hook.close()


@pytest.mark.parametrize("location, expected", [
    ("file:///data/staging/zoom_videosdk_qos", ("file", "/data/staging/zoom_videosdk_qos")),
    ("s3://bucket/zoom/staging/zoom_videosdk_qos/", ("s3://bucket", "zoom/staging/zoom_videosdk_qos")),
    ("gcs://bucket/staging", ("gs://bucket", "staging")),
])
def test_staging_locations_follow_the_file_and_bucket_naming(location, expected):
    assert lineage.storage_id(location) == expected


def test_rows_written_count_every_session_row_and_the_asset_extra_carries_the_window():
    rows = lineage.rows_written(RESULT)
    assert rows == {"sessions": 7, "session_users": 30, "user_qos": 3000, "user_system_qos": 400,
                    "daily_usage": 31}
    extra = lineage.asset_event_extra(RESULT, {"window_start": "2026-01-01", "window_end": "2026-01-02"})
    assert extra["window_start"] == "2026-01-01" and extra["window_end"] == "2026-01-02"
    assert extra["rows"] == rows and extra["dq_hard_violations"] == 3


def test_every_data_quality_check_names_its_tables():
    assert set(lineage.CHECK_TABLES) == set(CHECKS)
    assert all(set(tables) <= set(lineage.LOAD_TABLES) for tables in lineage.CHECK_TABLES.values())


def test_load_facets_carry_rows_and_assertions_from_the_result():
    result = lineage.load_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/staging/dag"),
                                  warehouse_url=PG_URL, schema="zoom_qos", result=RESULT,
                                  hard_checks=["orphan_rows"])
    assert result is not None
    assert {(d.namespace, d.name) for d in result.inputs} == {
        ("file", "/staging/dag"), ("https://api.zoom.us", "/v2/videosdk/sessions"),
        ("https://api.zoom.us", "/v2/videosdk/report/daily")}
    outputs = {d.name: d for d in result.outputs}
    assert set(outputs) == {f"analytics.zoom_qos.{t}" for t in lineage.LOAD_TABLES}
    qos = outputs["analytics.zoom_qos.user_qos"]
    assert qos.outputFacets["outputStatistics"].rowCount == 3000
    assertions = {a.assertion: a for a in qos.facets["dataQualityAssertions"].assertions}
    assert (assertions["orphan_rows"].success, assertions["orphan_rows"].severity,
            assertions["orphan_rows"].actual) == (False, "error", "3")
    assert (assertions["negative_metric"].success, assertions["negative_metric"].severity) == (False, "warn")
    assert assertions["loss_out_of_range"].success is True
    assert "dataQualityAssertions" not in outputs["analytics.zoom_qos.sessions"].facets


def test_before_the_load_there_are_datasets_but_no_counts():
    result = lineage.load_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/s"),
                                  warehouse_url="sqlite:////w.db", schema=None)
    assert result is not None
    assert all(not d.outputFacets and not d.facets for d in result.outputs)


def test_extraction_reads_the_users_endpoint_only_with_grades():
    without = lineage.extract_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/s"),
                                      read_user_grades=False, users=12)
    with_grades = lineage.extract_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/s"),
                                          read_user_grades=True)
    assert without is not None and with_grades is not None
    assert [d.name for d in without.inputs] == ["/v2/videosdk/sessions/{sessionId}/users/qos"]
    assert [d.name for d in with_grades.inputs] == ["/v2/videosdk/sessions/{sessionId}/users/qos",
                                                    "/v2/videosdk/sessions/{sessionId}/users"]
    assert without.outputs[0].outputFacets["outputStatistics"].rowCount == 12


@pytest.mark.parametrize("missing", ["airflow.providers.openlineage.extractors",
                                     "openlineage.client.event_v2"])
def test_without_openlineage_there_is_no_lineage_and_no_error(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes the import raise ImportError
    assert lineage.extract_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/s"),
                                   read_user_grades=False) is None
    assert lineage.load_lineage(base_url="https://api.zoom.us/v2", staging=("file", "/s"),
                                warehouse_url=PG_URL, schema="zoom_qos", result=RESULT) is None
