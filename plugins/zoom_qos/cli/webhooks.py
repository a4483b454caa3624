"""``zoom-qos webhooks serve``: the receiver of Zoom's event notifications (docs/webhooks.md).

Its secret token is the ``zoom_videosdk`` connection's extra ``webhook_secret_token`` (the app's
secret token in Zoom's Marketplace, not the API secret), read as Airflow reads connections
(``AIRFLOW_CONN_*``, secrets backends); events are stored in the warehouse of the
``zoom_qos_warehouse`` connection, migrated at start. It binds 127.0.0.1 unless told otherwise: put
it behind your HTTPS ingress, never Airflow's API server.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

import uvicorn

from zoom_qos.core.config import ZOOM_CONN_ID
from zoom_qos.core.errors import SettingsError
from zoom_qos.receiver.app import PATH, create_app
from zoom_qos.warehouse.connection import DEFAULT_CONN_ID
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.webhooks import store_event
from zoom_qos.zoom.webhooks import WEBHOOK_SECRET_EXTRA, ZoomEvent, configured_secret_token

__all__ = ["MAX_CONCURRENCY", "SECRET_EXTRA", "add_commands", "listen", "secret_token", "serve"]

log = logging.getLogger(__name__)

SECRET_EXTRA = WEBHOOK_SECRET_EXTRA
#: Connections and requests served at once; past it uvicorn answers 503 (Zoom retries a 5xx). With
#: bodies bounded at 64 KiB, this bounds what a flood of requests can make the receiver hold.
MAX_CONCURRENCY = 200


def add_commands(groups: Any) -> None:
    group = groups.add_parser("webhooks", help="the receiver of Zoom's event notifications")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmd = commands.add_parser("serve", help="receive Zoom's webhooks at POST /webhooks/zoom",
                              description=__doc__.splitlines()[0] if __doc__ else None)
    cmd.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; your HTTPS ingress forwards to it)")
    cmd.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    cmd.add_argument("--conn-id", default=ZOOM_CONN_ID,
                     help=f"Zoom connection holding extra {SECRET_EXTRA!r} (default {ZOOM_CONN_ID})")
    cmd.add_argument("--warehouse-conn-id", default=DEFAULT_CONN_ID,
                     help=f"warehouse connection the events are stored in (default {DEFAULT_CONN_ID})")
    cmd.set_defaults(run=serve)


def secret_token(conn_id: str) -> str:
    """The webhook secret token of Zoom connection ``conn_id``, handed to Airflow's secrets masker
    before anything else happens, so no log line can show it. A missing connection or extra is a
    one-line :class:`SettingsError` naming both (and never the token)."""
    # Airflow's connections are read here only (as the warehouse connection does), so that importing
    # the command line, and its other commands, does not load Airflow's settings.
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as error:
        env = "AIRFLOW_CONN_" + conn_id.upper()
        if os.environ.get(env, "").strip():  # Airflow skips a value it cannot parse: a typo, not absence
            raise SettingsError(f"{env} is set but Airflow could not read connection {conn_id!r} from it: "
                                "fix its JSON or URI (docs/configuration.md).") from error
        raise SettingsError(f"Airflow connection {conn_id!r} is not defined: define it with the extra "
                            f"{SECRET_EXTRA!r} (docs/webhooks.md).") from error
    token = configured_secret_token(conn.extra_dejson)
    if token is not None:
        mask_secret(token)
        return token
    raise SettingsError(f"Airflow connection {conn_id!r} has no extra {SECRET_EXTRA!r} (or it is empty or "
                        "not text): copy your Video SDK app's secret token (Marketplace → the app → "
                        "Features) into it.")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, bound here rather than by uvicorn so that an address in use
    is a one-line error naming it and what to do (uvicorn's own message goes to a logger that
    Airflow's logging setup silences)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise SettingsError(f"cannot listen on {host!r}: not an address of this machine ({error.strerror}); "
                            "pass --host 127.0.0.1, 0.0.0.0 or one of its addresses.") from error
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise SettingsError(f"cannot listen on {host}:{port} ({error.strerror or error}): choose another "
                            "--port, or stop what listens there.") from error
    return sock


def serve(args: argparse.Namespace) -> int:
    """Token first (nothing starts without it), then the port, then the warehouse's migrations;
    then uvicorn serves until stopped (SIGINT, SIGTERM)."""
    token = secret_token(args.conn_id)
    sock = listen(args.host, args.port)
    warehouse = Warehouse.from_airflow(args.warehouse_conn_id)
    try:
        warehouse.ensure_schema()

        def store(event: ZoomEvent) -> bool:
            return store_event(warehouse.engine, event, datetime.now(UTC))

        host, port = sock.getsockname()[:2]
        config = uvicorn.Config(create_app(token, store), log_level="info", access_log=False,
                                limit_concurrency=MAX_CONCURRENCY, server_header=False)
        log.info("Receiving Zoom's webhooks at http://%s:%d%s (health: /health); stop with Ctrl-C.",
                 host, port, PATH)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        warehouse.dispose()
    return 0
