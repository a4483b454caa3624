#!/usr/bin/env bash
# Start of the compose file's optional `superset` service (official image apache/superset:6.1.0):
# its metadata (SQLite in the superset-home volume), the admin user, the dashboard bundle the
# `superset-bundle` service wrote, then Superset's own server script. Each step is idempotent:
# a restart re-imports the bundle, which updates the dashboard in place.
set -euo pipefail
# The image is "lean": it carries no database driver. The warehouse is PostgreSQL.
if ! python -c "import psycopg2" 2>/dev/null; then
  uv pip install --python "$(command -v python)" --quiet psycopg2-binary==2.9.13 \
    || python -m pip install --quiet psycopg2-binary==2.9.13
fi
superset db upgrade
superset fab create-admin --username "${SUPERSET_ADMIN_USERNAME}" --password "${SUPERSET_ADMIN_PASSWORD}" \
  --firstname Zoom --lastname QoS --email admin@localhost >/dev/null 2>&1 || true
superset init
superset import-dashboards -p /bundle/zoom_qos_dashboard.zip -u "${SUPERSET_ADMIN_USERNAME}"
exec /usr/bin/run-server.sh
