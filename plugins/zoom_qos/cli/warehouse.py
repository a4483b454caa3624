"""``zoom-qos warehouse upgrade``: migrate a warehouse and recompute its derived tables.

For a warehouse written by an older version (it migrates in place), or whose rows were changed
outside the pipeline, or after editing ``qos_thresholds`` (to apply it now rather than at the next
task): the migrations and the whole recomputation run in one transaction, so an interrupted upgrade
leaves the warehouse as it was.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import sqlalchemy as sa

from zoom_qos.warehouse import schema
from zoom_qos.warehouse.connection import DEFAULT_CONN_ID
from zoom_qos.warehouse.store import Warehouse

__all__ = ["add_commands", "upgrade"]

#: Seconds between two progress lines (and the first and last are always printed).
_PROGRESS_EVERY = 2.0


def add_commands(groups: Any) -> None:
    group = groups.add_parser("warehouse", help="warehouse maintenance")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    upgrade_cmd = commands.add_parser(
        "upgrade",
        help="migrate to this version's schema and recompute every derived table from the stored samples",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    upgrade_cmd.add_argument(
        "--conn-id", default=DEFAULT_CONN_ID,
        help="Airflow connection of the warehouse, read as Airflow reads it (AIRFLOW_CONN_* included); "
        f"default {DEFAULT_CONN_ID}, or the embedded SQLite file when it is not defined",
    )  # fmt: skip
    upgrade_cmd.set_defaults(run=upgrade)


class _Progress:
    """Prints ``derived: 1,500/20,000 sessions (7 %)`` to stderr every few seconds."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < _PROGRESS_EVERY:
            return
        self.last = now
        share = 100 * done // total if total else 100
        print(f"  derived tables: {done:,}/{total:,} sessions ({share} %)", file=sys.stderr, flush=True)


def upgrade(args: argparse.Namespace) -> int:
    warehouse = Warehouse.from_airflow(args.conn_id)
    try:
        print(f"Upgrading {warehouse!r} (connection {args.conn_id!r}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        warehouse.ensure_schema(_Progress(), recompute=True)
        seconds = time.monotonic() - started
        with warehouse.engine.connect() as conn:
            samples = conn.execute(sa.select(sa.func.count()).select_from(schema.user_qos)).scalar_one()
            sessions = conn.execute(sa.select(sa.func.count()).select_from(schema.sessions)).scalar_one()
        rate = f", {samples / seconds / 1e6:.2f} million samples/s" if samples and seconds else ""
        print(f"Upgraded: schema at head, derived tables recomputed from {samples:,} samples of "
              f"{sessions:,} sessions in {seconds:.1f} s{rate}.")
    finally:
        warehouse.dispose()
    return 0
