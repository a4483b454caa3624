"""Print row counts per warehouse table and the latest run record (used by ``make demo``)."""

from __future__ import annotations

import sys

from zoom_qos.core.config import WAREHOUSE_CONN_ID
from zoom_qos.warehouse.store import Warehouse


def main() -> int:
    warehouse = Warehouse.from_airflow(WAREHOUSE_CONN_ID)
    try:
        counts = warehouse.count_rows()
    finally:
        warehouse.dispose()
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        print(f"    {name.ljust(width)}  {count:>8}")
    core = ("sessions", "session_users", "user_qos", "user_system_qos")
    empty = [name for name in core if not counts.get(name)]
    if empty:
        print(f"No rows in {', '.join(empty)}: the demo did not load what it should.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
