"""A chart's saved query context, from its form data: what Superset's REST API runs for it."""

from __future__ import annotations

import json

import pytest

from zoom_qos.bi.query_context import query_context, query_context_json

TIME = {"clause": "WHERE", "expressionType": "SIMPLE", "subject": "day", "operator": "TEMPORAL_RANGE",
        "comparator": "No filter"}
SQL_FILTER = {"clause": "WHERE", "expressionType": "SQL", "sqlExpression": "cause <> 'none'"}
NULL_FILTER = {"clause": "WHERE", "expressionType": "SIMPLE", "subject": "cleared_at", "operator": "IS NULL"}
METRIC = {"expressionType": "SQL", "sqlExpression": "SUM(joins)", "label": "joins"}


def test_a_raw_table_selects_its_columns_in_its_order_with_its_filters() -> None:
    params = {"query_mode": "raw", "all_columns": ["day", "cause"], "order_by_cols": ['["day", false]'],
              "adhoc_filters": [TIME, SQL_FILTER, NULL_FILTER], "row_limit": 20}
    context = query_context("table", params)
    (query,) = context["queries"]
    assert query["columns"] == ["day", "cause"] and query["metrics"] == []
    assert query["orderby"] == [["day", False]]
    assert query["filters"] == [{"col": "day", "op": "TEMPORAL_RANGE", "val": "No filter"},
                                {"col": "cleared_at", "op": "IS NULL"}]
    assert query["extras"]["where"] == "(cause <> 'none')"
    assert query["row_limit"] == 20
    assert context["form_data"]["viz_type"] == "table" and context["result_format"] == "json"


def test_an_aggregate_table_groups_and_sorts_by_its_sort_metric() -> None:
    sort = {**METRIC, "label": "sort"}
    context = query_context("table", {"query_mode": "aggregate", "groupby": ["cause"], "metrics": [METRIC],
                                      "timeseries_limit_metric": sort, "order_desc": True})
    (query,) = context["queries"]
    assert query["columns"] == ["cause"] and query["metrics"] == [METRIC]
    assert query["orderby"] == [[sort, False]]


def test_a_time_series_has_a_daily_base_axis_and_one_column_per_series() -> None:
    context = query_context("echarts_timeseries_bar", {"x_axis": "day", "time_grain_sqla": "P1D",
                                                       "metrics": [METRIC], "groupby": ["cause"]})
    (query,) = context["queries"]
    axis, series = query["columns"]
    assert axis["columnType"] == "BASE_AXIS" and axis["sqlExpression"] == "day" and axis["timeGrain"] == "P1D"
    assert series == "cause"
    pivot, flatten = query["post_processing"]
    assert pivot["options"]["index"] == ["day"] and pivot["options"]["columns"] == ["cause"]
    assert list(pivot["options"]["aggregates"]) == ["joins"] and flatten == {"operation": "flatten"}
    assert query["extras"]["time_grain_sqla"] == "P1D"


def test_a_big_number_asks_for_its_one_metric() -> None:
    (query,) = query_context("big_number_total", {"metric": METRIC})["queries"]
    assert query["metrics"] == [METRIC] and query["columns"] == []


def test_a_type_the_dashboard_does_not_use_is_refused() -> None:
    with pytest.raises(ValueError, match="pie"):
        query_context("pie", {})


def test_the_stored_text_is_the_same_context_as_json() -> None:
    params = {"metric": METRIC}
    stored = json.loads(query_context_json("big_number_total", params))
    assert stored == query_context("big_number_total", params)
