"""Names and defaults shared by the DAG, the hook and the loader.

Everything a deployment may want to change is either an Airflow connection (credentials,
URLs, tuning extras) or an environment variable listed here, so that a DAG file never has to
be edited to run somewhere else.
"""

from __future__ import annotations

import os
from pathlib import Path

ZOOM_CONN_ID = "zoom_videosdk"
WAREHOUSE_CONN_ID = "zoom_qos_warehouse"
DEFAULT_ZOOM_BASE_URL = "https://api.zoom.us/v2"
DEFAULT_WAREHOUSE_SCHEMA = "zoom_qos"

#: Defaults of the daily DAG's params, defined once: the DAG declares its params with them, and
#: the listing fills in any that a caller (a test, a script) leaves out. What each one means is
#: in the DAG's param descriptions.
LISTING_PARAM_DEFAULTS: dict[str, int] = {
    "lookback_days": 1,
    "lookback_settle_minutes": 60,
    "batch_size": 100,
}

# plugins/zoom_qos/config.py -> project root two levels up.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """Folder for the embedded warehouse and local staging (``ZOOM_QOS_DATA_DIR`` overrides)."""
    return Path(os.environ.get("ZOOM_QOS_DATA_DIR") or PROJECT_ROOT / "data")


def default_warehouse_path() -> Path:
    """The SQLite file used when no ``zoom_qos_warehouse`` connection is defined."""
    return data_dir() / "warehouse.db"


def staging_url() -> str:
    """Where extraction writes what it read: a local folder by default, ``s3://…`` on a cluster.

    Every worker must see the same storage, so a multi-machine deployment points
    ``ZOOM_QOS_STAGING_URL`` at a bucket or a shared volume.
    """
    return os.environ.get("ZOOM_QOS_STAGING_URL") or (data_dir() / "staging").as_uri()
