"""``zoom-qos webhooks serve``: the receiver of Zoom's event notifications (docs/webhooks.md).

Its secret token is the ``zoom_videosdk`` connection's extra ``webhook_secret_token`` (the app's
secret token in Zoom's Marketplace, not the API secret), read as Airflow reads connections
(``AIRFLOW_CONN_*``, secrets backends); events are stored in the warehouse of the
``zoom_qos_warehouse`` connection, migrated at start. It binds 127.0.0.1 unless told otherwise: put
it behind your HTTPS ingress, never Airflow's API server.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import uvicorn

from zoom_qos.core.config import ZOOM_CONN_ID
from zoom_qos.core.errors import SettingsError
from zoom_qos.receiver.app import create_app
from zoom_qos.warehouse.connection import DEFAULT_CONN_ID
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import ZoomEvent

__all__ = ["SECRET_EXTRA", "add_commands", "secret_token", "serve"]

#: The Zoom connection's extra holding the app's webhook secret token.
SECRET_EXTRA = "webhook_secret_token"


def add_commands(groups: Any) -> None:
    group = groups.add_parser("webhooks", help="the receiver of Zoom's event notifications")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd = commands.add_parser("serve", help="receive Zoom's webhooks at POST /webhooks/zoom",
                              description=__doc__.splitlines()[0] if __doc__ else None)
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    cmd.add_argument("--conn-id", default=ZOOM_CONN_ID,
                     help=f"Zoom connection holding extra {SECRET_EXTRA!r} (default {ZOOM_CONN_ID})")
    cmd.add_argument("--warehouse-conn-id", default=DEFAULT_CONN_ID,
                     help=f"warehouse connection the events are stored in (default {DEFAULT_CONN_ID})")
    cmd.set_defaults(run=serve)


def secret_token(conn_id: str) -> str:
    """The webhook secret token of Zoom connection ``conn_id``, masked in Airflow's logs. Airflow is
    imported here only, as the warehouse connection does, so the other commands run without it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as error:
        raise SettingsError(f"Airflow connection {conn_id!r} is not defined: define it (docs/webhooks.md) "
                            f"with the extra {SECRET_EXTRA!r}.") from error
    token = conn.extra_dejson.get(SECRET_EXTRA)
    if not isinstance(token, str) or not token.strip():
        raise SettingsError(f"Airflow connection {conn_id!r} has no extra {SECRET_EXTRA!r}: copy your Video "
                            "SDK app's secret token (Marketplace → the app → Features) into it.")
    mask_secret(token)
    return token.strip()


def serve(args: argparse.Namespace) -> int:
    token = secret_token(args.conn_id)
    warehouse = Warehouse.from_airflow(args.warehouse_conn_id)
    try:
        warehouse.ensure_schema()

        def store(event: ZoomEvent) -> bool:
            return store_event(warehouse.engine, event, datetime.now(UTC))

        uvicorn.run(create_app(token, store), host=args.host, port=args.port, log_level="info",
                    access_log=False)
    finally:
        warehouse.dispose()
    return 0
