"""Render the QoS report from the configured warehouse and print its path (used by ``make demo``).

    python -m include.scripts.qos_report [--out DIR] [--days N]

The warehouse is the ``zoom_qos_warehouse`` Airflow connection, else ``<data_dir>/warehouse.db``;
the report goes to ``--out``, else the ``[zoom_qos] report_dir`` setting, else ``reports/`` in the
package's data folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoom_qos.report import DEFAULT_DAYS, render_configured_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m include.scripts.qos_report", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=None,
                        help="folder (default: the [zoom_qos] report_dir setting, else <data_dir>/reports)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS,
                        help=f"UTC days of data, ending on the newest sample's day (default {DEFAULT_DAYS})")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    try:
        path = render_configured_report(args.out, days=args.days)
    except RuntimeError as error:  # e.g. no views yet: nothing was ever loaded
        print(f"No report: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
