"""``zoom-qos superset bundle``: the call-quality dashboard as a Superset import ZIP.

The ZIP is for the user's own warehouse: give it as Superset reaches it (``--database-uri``, e.g.
from inside Superset's container), or as the pipeline does (``--conn-id``, an Airflow connection).
It holds the warehouse's password when the address has one, so it is written readable by its owner
only. Load it with ``superset import-dashboards -p PATH -u admin``; importing a newer bundle for the
same warehouse updates the dashboard in place.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoom_qos.bi.superset import Target, target_from_uri, write_bundle
from zoom_qos.warehouse.connection import DEFAULT_CONN_ID, DEFAULT_SCHEMA, client_url

__all__ = ["add_commands", "bundle"]


def add_commands(groups: Any) -> None:
    group = groups.add_parser("superset", help="the call-quality dashboard for Apache Superset")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd = commands.add_parser(
        "bundle", help="write the dashboard's import ZIP for your warehouse",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )  # fmt: skip
    cmd.add_argument("--out", required=True, type=Path, help="where to write the ZIP")
    source = cmd.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--database-uri",
        help="the warehouse as Superset reaches it: postgresql://user:password@host:5432/database"
        f"[?warehouse_schema=SCHEMA] (schema default {DEFAULT_SCHEMA}), or sqlite:////abs/path.db",
    )
    source.add_argument(
        "--conn-id", nargs="?", const=DEFAULT_CONN_ID,
        help=f"the warehouse's Airflow connection, read as Airflow reads it (default {DEFAULT_CONN_ID})",
    )  # fmt: skip
    cmd.set_defaults(run=bundle)


def bundle(args: argparse.Namespace) -> int:
    if args.database_uri:
        target = target_from_uri(args.database_uri, DEFAULT_SCHEMA)
    else:
        url, schema = client_url(args.conn_id)
        target = Target(url, schema)
    out = write_bundle(target, args.out)
    print(f"Wrote {out} for {target.label}. Load it into Superset with:\n"
          f"  superset import-dashboards -p {out} -u admin")
    if target.url.get_backend_name() == "sqlite":
        print("SQLite: Superset refuses it unless its config sets PREVENT_UNSAFE_DB_CONNECTIONS = False "
              "(docs/superset.md).")
    return 0
