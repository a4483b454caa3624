"""Render the warehouse data dictionary (``docs/warehouse.md``) from the code that defines it.

Tables come from ``zoom_qos.schema.METADATA`` (comments, keys, types, nullability) and views
from ``zoom_qos.views.VIEWS``, so the document cannot drift from the schema:
``tests/unit/test_docs.py`` fails when the committed file differs from what this renders.

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

from zoom_qos import schema  # noqa: E402
from zoom_qos.views import MEDIA_TYPES, VIEWS  # noqa: E402

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


def render() -> str:
    """The whole Markdown document."""
    lines = [
        "# Warehouse data dictionary",
        "",
        "<!-- Generated by `python -m include.scripts.generate_warehouse_docs` from",
        "     plugins/zoom_qos/schema.py and plugins/zoom_qos/views.py. Do not edit by hand. -->",
        "",
        "The public contract is `WAREHOUSE.md`; this page lists every table and view the project",
        "creates, with the comments BI tools show. On PostgreSQL every object lives in one schema",
        "(`zoom_qos` by default); on SQLite in the main database.",
        "",
        *_conventions(),
        "## Tables",
        "",
    ]
    for table in schema.METADATA.tables.values():
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
