"""A chart's saved query context, derived from its form data (``params``).

Superset's browser builds a chart's query from its form data each time it draws it, and saves
the result as the chart's ``query_context`` only when someone saves the chart in the editor. The
REST API's ``GET /api/v1/chart/{id}/data/`` (and with it alerts, reports and thumbnails) runs
*only* that saved context. Our charts are files, never saved in an editor, so the bundle writes
the context itself, from the same form data, for the few visualization types the dashboard uses.
The datasource id written here is a placeholder: Superset rewrites it on import.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SUPPORTED_VIZ_TYPES", "query_context", "query_context_json"]

_TIMESERIES = ("echarts_timeseries_line", "echarts_timeseries_bar")
SUPPORTED_VIZ_TYPES = ("table", "big_number_total", *_TIMESERIES)

#: Adhoc-filter operators that take no comparator.
_UNARY = ("IS NULL", "IS NOT NULL")


def query_context(viz_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The ``query_context`` of a chart of ``viz_type`` with form data ``params``.

    Raises ``ValueError`` for a type the dashboard does not use (add it here first).
    """
    if viz_type == "table":
        query = _table_query(params)
    elif viz_type == "big_number_total":
        query = {"columns": [], "metrics": [params["metric"]], "orderby": []}
    elif viz_type in _TIMESERIES:
        query = _timeseries_query(params)
    else:
        raise ValueError(f"no query context for viz_type {viz_type!r}; supported: {SUPPORTED_VIZ_TYPES}")
    filters, where = _filters(params.get("adhoc_filters", []))
    query.update(
        filters=filters,
        extras={"having": "", "where": where, **_time_grain(params)},
        row_limit=params.get("row_limit", 10000),
        series_limit=0,
        order_desc=params.get("order_desc", True),
        url_params={},
        custom_params={},
        custom_form_data={},
        annotation_layers=[],
        applied_time_extras={},
    )
    return {
        "datasource": {"id": 0, "type": "table"},
        "force": False,
        "queries": [query],
        "form_data": {**params, "viz_type": viz_type},
        "result_format": "json",
        "result_type": "full",
    }


def query_context_json(viz_type: str, params: dict[str, Any]) -> str:
    """:func:`query_context` as the JSON text Superset stores."""
    return json.dumps(query_context(viz_type, params), sort_keys=True)


def _table_query(params: dict[str, Any]) -> dict[str, Any]:
    if params.get("query_mode") == "raw":
        orderby = [json.loads(item) for item in params.get("order_by_cols", [])]
        return {"columns": list(params["all_columns"]), "metrics": [], "orderby": orderby}
    metrics = list(params.get("metrics", []))
    sort = params.get("timeseries_limit_metric") or (metrics[0] if metrics else None)
    orderby = [[sort, not params.get("order_desc", True)]] if sort else []
    return {"columns": list(params.get("groupby", [])), "metrics": metrics, "orderby": orderby}


def _timeseries_query(params: dict[str, Any]) -> dict[str, Any]:
    axis = {
        "columnType": "BASE_AXIS",
        "expressionType": "SQL",
        "label": params["x_axis"],
        "sqlExpression": params["x_axis"],
        "timeGrain": params.get("time_grain_sqla", "P1D"),
    }
    metrics = list(params["metrics"])
    # As Superset's browser does: one column per series (pivot), then flat column names.
    pivot = {
        "operation": "pivot",
        "options": {
            "index": [params["x_axis"]],
            "columns": list(params.get("groupby", [])),
            "aggregates": {_label(m): {"operator": "mean"} for m in metrics},
            "drop_missing_columns": False,
        },
    }
    return {
        "columns": [axis, *params.get("groupby", [])],
        "metrics": metrics,
        "orderby": [[metrics[0], False]],
        "post_processing": [pivot, {"operation": "flatten"}],
        "time_offsets": [],
    }


def _filters(adhoc: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """Simple adhoc filters as query filters; SQL ones joined into the WHERE extra."""
    filters: list[dict[str, Any]] = []
    where: list[str] = []
    for item in adhoc:
        if item.get("expressionType") == "SQL":
            where.append(f"({item['sqlExpression']})")
            continue
        entry = {"col": item["subject"], "op": item["operator"]}
        if item["operator"] not in _UNARY:
            entry["val"] = item.get("comparator")
        filters.append(entry)
    return filters, " AND ".join(where)


def _time_grain(params: dict[str, Any]) -> dict[str, Any]:
    grain = params.get("time_grain_sqla")
    return {"time_grain_sqla": grain} if grain else {}


def _label(metric: Any) -> str:
    return metric if isinstance(metric, str) else str(metric["label"])
