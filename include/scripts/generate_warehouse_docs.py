"""Render the warehouse data dictionary (``docs/warehouse.md``) from the code that defines it.

Tables come from ``zoom_qos.schema.METADATA`` (comments, keys, types, nullability) and views
from ``zoom_qos.views.VIEWS``, so the document cannot drift from the schema:
``tests/unit/warehouse/test_docs.py`` fails when the committed file differs from what this renders.

    python -m include.scripts.generate_warehouse_docs           # write docs/warehouse.md
    python -m include.scripts.generate_warehouse_docs --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "docs" / "warehouse.md"

try:  # Airflow puts plugins/ on the path; a plain `python -m` from the repo root does not.
    import zoom_qos  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(ROOT / "plugins"))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402

from zoom_qos.core.statuses import DEFAULT_QOS_PENDING_MAX_HOURS  # noqa: E402
from zoom_qos.warehouse import schema  # noqa: E402
from zoom_qos.warehouse.derived_schema import derived_state  # noqa: E402
from zoom_qos.warehouse.views import MEDIA_TYPES, VIEWS  # noqa: E402

_PG = postgresql.dialect()
_SQLITE = sqlite.dialect()


def _cell(text: str | None) -> str:
    """One Markdown table cell: single line, pipes escaped."""
    return " ".join((text or "").split()).replace("|", "\\|")


def _type(column: sa.Column, dialect: sa.Dialect) -> str:
    return column.type.compile(dialect=dialect).lower()


def _table_section(table: sa.Table) -> list[str]:
    keys = [c.name for c in table.primary_key.columns]
    lines = [f"### `{table.name}`", "", _cell(table.comment), ""]
    keyline = f"Primary key: {', '.join(f'`{k}`' for k in keys) if keys else '(none)'}"
    indexes = sorted(
        (index.name or "", ", ".join(f"`{c.name}`" for c in index.columns)) for index in table.indexes
    )
    if indexes:
        keyline += "; indexes: " + ", ".join(f"`{name}` ({cols})" for name, cols in indexes)
    lines.append(keyline + ".")
    lines += [
        "",
        "| column | PostgreSQL type | SQLite type | null | description |",
        "|---|---|---|---|---|",
    ]
    for column in table.columns:
        name = f"`{column.name}`" + (" **PK**" if column.primary_key else "")
        null = "yes" if column.nullable else "no"
        lines.append(
            f"| {name} | {_type(column, _PG)} | {_type(column, _SQLITE)} | {null} | {_cell(column.comment)} |"
        )
    return [*lines, ""]


def _view_section(view: object) -> list[str]:
    lines = [f"### `{view.name}`", "", _cell(view.comment), "", "| column | description |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in view.columns.items()]
    return [*lines, ""]


def _conventions() -> list[str]:
    limits = schema.QOS_THRESHOLD_DEFAULTS
    media = ", ".join(f"`{m}`" for m in MEDIA_TYPES)
    return [
        "## Conventions",
        "",
        "### Units",
        "",
        "- Every timestamp is UTC: `timestamp with time zone` on PostgreSQL; on SQLite naive UTC text",
        "  (`YYYY-MM-DD HH:MM:SS.ffffff`). `day` columns are UTC calendar dates.",
        "- A column's suffix is its unit: `_ms` milliseconds, `_seconds` seconds, `_pct` percent",
        "  (`0.3` means 0.3 %, not 30 %), `_kbps` kilobits per second, `_fps` frames per second.",
        "- `*_share` columns are fractions from 0 to 1 (`0.25` = a quarter of the rated samples).",
        "",
        "### NULL rules",
        "",
        '- A value Zoom leaves missing, `null`, `""`, `"-"` or `"N/A"` loads as NULL; a value that',
        "  cannot be parsed loads as NULL and is counted in `pipeline_runs.unparsed_values`.",
        "- Averages and percentiles ignore NULLs; a group with no value has a NULL figure.",
        "- A sample is *rated* when it has at least one of `latency_ms`, `jitter_ms`, `avg_loss_pct`",
        "  and its media type has a `qos_thresholds` row; otherwise `is_poor` is NULL and it counts in",
        "  neither side of a `poor_share`. Streams of media type `other` are never rated.",
        "- Sessions without joins or samples still appear in `session_quality` (counts 0, figures NULL).",
        "- In `daily_quality_breakdown` a NULL device, network type or data center shows as `'unknown'`.",
        "",
        "### Media types, poor samples and p95",
        "",
        "- Media type of a `user_qos.stream`: `audio*` → `audio`, `video*` → `video`,",
        "  `as_*` → `screen_share`, anything else → `other`.",
        "- A rated sample is **poor** when its latency, jitter or average loss is *above* (strictly",
        "  greater than) the limit for its media type in `qos_thresholds`.",
        "- p95 is the nearest-rank 95th percentile: the smallest value with at least 95 % of the",
        "  values at or below it (`percentile_disc(0.95)` on PostgreSQL, the same via `cume_dist()`",
        "  on SQLite), so both back ends report the same figure, which is always a measured value.",
        "",
        "### The poor thresholds",
        "",
        f"`qos_thresholds` holds one row per media type ({media}).",
        "Its defaults follow Zoom's published network guidance and are seeded by migration `0002`:",
        "",
        "| limit | default | column |",
        "|---|---|---|",
        f"| latency | {limits['latency_ms']:g} ms | `latency_ms` |",
        f"| jitter | {limits['jitter_ms']:g} ms | `jitter_ms` |",
        f"| average packet loss | {limits['loss_pct']:g} % | `loss_pct` |",
        "",
        "The views join this table at query time, so changing a limit needs no code change or",
        "reload; every view reflects it immediately:",
        "",
        "```sql",
        "-- PostgreSQL (schema zoom_qos by default); on SQLite drop the schema name",
        "UPDATE zoom_qos.qos_thresholds",
        "   SET latency_ms = 200, note = 'relaxed for satellite links'",
        " WHERE media_type = 'video';",
        "```",
        "",
    ]


#: What each ``sessions.qos_status`` means; every value of ``schema.QOS_STATUSES`` needs one.
_STATUS_MEANINGS: dict[str, str] = {
    "loaded": "Its QoS was read completely: its joins (`session_users`) and samples (`user_qos`, "
    "`user_system_qos`) are the ones in the tables.",
    "pending": "Zoom answered 404/3001 (\"not available … or the session has not ended yet\") less than "
    f"`qos_pending_max_hours` (default {DEFAULT_QOS_PENDING_MAX_HOURS}) after the session ended: Zoom "
    "may still be processing it. No joins or samples, or those a live poll saw, until it is loaded.",
    "unavailable": "Zoom will not serve its QoS: 3001 later than `qos_pending_max_hours` after the end, "
    "400/300 (invalid session id) or 400/12702 (too old). No joins or samples, or those a live poll "
    "saw.",
    "live": "Provisional rows of a session still in progress (DAG `zoom_videosdk_qos_live`), replaced "
    "whole at each poll; replaced by the final rows, and set `loaded`, once a daily run reads it as past.",
}


def _completeness() -> list[str]:
    missing = [status for status in schema.QOS_STATUSES if status not in _STATUS_MEANINGS]
    if missing:
        raise RuntimeError(f"No documentation for sessions.qos_status value(s) {missing}")
    return [
        "## Completeness",
        "",
        "### Every listed session is kept: `sessions.qos_status`",
        "",
        "A session Zoom lists is a fact about the account even when its QoS cannot be read (yet): it",
        "has a `sessions` row in every case, and `qos_status` says what became of its QoS",
        "(`qos_checked_at`: when it was last asked for). The column has no default: whoever writes a",
        "session says which state it is in, one of these values (CHECK `ck_sessions_qos_status`):",
        "",
        "| `qos_status` | meaning |",
        "|---|---|",
        *(f"| `{status}` | {_cell(_STATUS_MEANINGS[status])} |" for status in schema.QOS_STATUSES),
        "",
        "- **Asked again**: every run asks again for each session it lists that is not `loaded`, and",
        "  for the `pending` sessions it does not list, until they turn `unavailable`; one that is",
        "  readable then is loaded and set `loaded`. Only `loaded` sessions are spared a new request",
        "  when a later run's lookback lists them again.",
        "- A `loaded` session that answers 3001 on a later reload keeps its rows and its status.",
        "- Sessions of a v1 warehouse had their QoS read: migration `0003` sets them `loaded`.",
        "- The QoS views read the samples, so `pending` and `unavailable` sessions add nothing to",
        "  them; `session_quality` lists them like any session, with no samples. For complete data",
        "  only, filter `sessions.qos_status = 'loaded'`.",
        "",
        "### Zoom's own count: `daily_usage` and `daily_completeness`",
        "",
        "`daily_usage` holds, per UTC day, what Zoom's daily report (`GET /videosdk/report/daily`)",
        "counted: sessions, users and session minutes. The view `daily_completeness` sets that",
        "count beside the sessions the warehouse holds of the same day (a session counts on the UTC",
        "day of its `start_time`; `live` sessions are not counted) and how many of those are",
        "`loaded`, `pending` or `unavailable`. A day appears when it has a `daily_usage` row or a",
        "session; `zoom_sessions` is NULL where Zoom's count was not read. The days on which the",
        "warehouse holds fewer (or more) sessions than Zoom counted:",
        "",
        "```sql",
        "-- PostgreSQL (schema zoom_qos by default); on SQLite drop the schema name",
        "SELECT usage_date, zoom_sessions, warehouse_sessions, sessions_pending, sessions_unavailable",
        "  FROM zoom_qos.daily_completeness",
        " WHERE zoom_sessions <> warehouse_sessions",
        " ORDER BY usage_date;",
        "```",
        "",
        "### Data-quality check `zoom_daily_count`",
        "",
        "Each run compares, for every UTC day of its window, Zoom's count with the sessions the",
        "warehouse holds (the definition of `daily_completeness`). Its finding in",
        "`pipeline_runs.dq_findings` counts the days whose counts differ and shows the first of them,",
        "e.g. `2026-11-28: Zoom counted 14 sessions, the warehouse holds 12`. A day without",
        "a `daily_usage` row, or without a count in it, is not compared. The check is soft (a warning):",
        "Zoom may list a session late, and a window may not be fully loaded yet; name it in the DAG's",
        "`dq_hard_checks` to make a differing day fail the run.",
        "",
    ]


def render() -> str:
    """The whole Markdown document."""
    lines = [
        "# Warehouse data dictionary",
        "",
        "<!-- Generated by `python -m include.scripts.generate_warehouse_docs` from",
        "     plugins/zoom_qos/warehouse/schema.py and views.py. Do not edit by hand. -->",
        "",
        "This page is the warehouse contract (v3): every table and view the project creates, with",
        "the comments BI tools show. Their names, keys, column names, types and units are the public",
        "interface dashboards read: later versions add tables, columns and views, and rename or drop",
        "nothing without a documented migration (a v1 or v2 warehouse upgrades in place, keeping its rows).",
        "On PostgreSQL every object lives in one schema (`zoom_qos` by default); on SQLite in the",
        "main database. Every load keeps these rules:",
        "",
        "- Every load is an idempotent upsert on the primary key: loading the same data twice, or two",
        "  overlapping runs, leaves exactly the rows one load leaves.",
        "- A session's rows change together, in one transaction: a crash or a failure mid-load leaves",
        "  the old rows or the new ones, never half a session.",
        "- Every session Zoom lists has its `sessions` row, whether or not its QoS could be read",
        "  (`qos_status`, below); nothing Zoom sent is dropped: the raw objects are kept as well.",
        "",
        *_conventions(),
        *_completeness(),
        "## Tables",
        "",
    ]
    derived = {*schema.DERIVED_TABLES, derived_state}
    for table in schema.METADATA.tables.values():
        if table not in derived:
            lines += _table_section(table)
    lines += [
        "## Derived tables",
        "",
        "Kept by the load in the transaction of the rows they derive from, for the sessions that are",
        "not `live`; the views `join_quality`, `session_quality`, `daily_quality`,",
        "`daily_quality_breakdown` and `daily_causes` read them, so a dashboard never aggregates raw",
        "samples. Read the views rather than these tables. How scores, issues and causes are decided:",
        "[docs/quality.md](quality.md). They are recomputed from the stored samples when",
        "`qos_thresholds` or the scoring rules change (by the next task that opens the warehouse, or",
        "at once by `zoom-qos warehouse upgrade`, which also repairs rows changed outside the pipeline).",
        "",
    ]
    for table in (*schema.DERIVED_TABLES, derived_state):
        lines += _table_section(table)
    lines += ["## Views", "", "Created in this order (a view reads only tables and the views before it).", ""]
    for view in VIEWS:
        lines += _view_section(view)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: docs/warehouse.md")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True), str(args.output), "generated"
        )
        sys.stderr.writelines(list(diff)[:60])
        print(
            f"{args.output} is out of date; run: python -m include.scripts.generate_warehouse_docs",
            file=sys.stderr,
        )
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
