"""The Airflow Asset that stands for "fresh QoS data in the warehouse".

``load_warehouse`` (DAG ``zoom_videosdk_qos``) declares it as its outlet, so every successful
load emits an asset event; downstream DAGs (``zoom_videosdk_qos_report``) schedule on it and
run once per fresh load, whichever warehouse (SQLite or PostgreSQL) the connection points at.

The URI is a logical one: ``zoom-qos`` is not a real storage scheme, it only names the warehouse
tables and views of this pipeline (a scheme may not contain ``_`` in RFC 3986). It is fixed
rather than derived from the connection, because DAG files are parsed without touching
connections or the network. Each event carries, as ``extra``, the window loaded
(``window_start``, ``window_end``) and the counts (see ``lineage.asset_event_extra``).

The real tables are named at run time instead: ``load_warehouse`` also has the alias
``zoom_qos_tables`` as outlet, which each load resolves to one asset per table written, with
the table's real URI (``postgres://host:port/database/schema/table``, or
``sqlite:///path/to/warehouse.db/table``; see ``lineage.table_asset_uri``).
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias, AssetWatcher

from zoom_qos.triggers import StoredEventsTrigger

__all__ = ["ZOOM_ENDED_SESSIONS", "ZOOM_QOS_ASSET", "ZOOM_QOS_TABLES"]

ZOOM_QOS_ASSET = Asset(
    name="zoom_qos_warehouse",
    uri="zoom-qos://warehouse/qos",
    group="zoom_qos",
    extra={"tables": "sessions, session_users, user_qos, user_system_qos", "docs": "docs/warehouse.md"},
)

#: Resolved by each load to the warehouse tables it wrote (their URIs depend on the connection).
ZOOM_QOS_TABLES = AssetAlias(name="zoom_qos_tables", group="zoom_qos")

#: Sessions Zoom said have ended (``session.ended``, stored by the webhook receiver) and not loaded
#: yet. Its watcher runs in Airflow's triggerer and fires when new ones are due; the DAG
#: ``zoom_videosdk_qos_events`` is scheduled on it. Building the trigger here touches nothing: it
#: connects only when the triggerer runs it.
ZOOM_ENDED_SESSIONS = Asset(
    name="zoom_ended_sessions",
    uri="zoom-qos://webhooks/session-ended",
    group="zoom_qos",
    watchers=[AssetWatcher(name="zoom_session_ended", trigger=StoredEventsTrigger())],
)
