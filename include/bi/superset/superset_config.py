"""Superset's configuration for ``make bi-demo`` and ``make bi-test`` (SUPERSET_CONFIG_PATH).

Local use on 127.0.0.1 only: Superset's own metadata in a SQLite file of ``SUPERSET_HOME``, the
secret key from the environment (drawn once per home by include/scripts/superset_bi.py).
"""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = f"sqlite:///{os.environ['SUPERSET_HOME']}/superset.db"
# Every chart is drawn when the dashboard opens, not only those scrolled into view (the check and the
# screenshot see all of them).
FEATURE_FLAGS = {"DASHBOARD_VIRTUALIZATION": False}
# A SQLite warehouse is refused by default (Superset could then open any file on the server). Only for
# a local try of the embedded warehouse: set ZOOM_QOS_SUPERSET_ALLOW_SQLITE=1.
PREVENT_UNSAFE_DB_CONNECTIONS = os.environ.get("ZOOM_QOS_SUPERSET_ALLOW_SQLITE") != "1"
