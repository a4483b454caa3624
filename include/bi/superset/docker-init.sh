#!/usr/bin/env bash
# Start of the compose file's optional `superset` service (official image apache/superset:6.1.0,
# run as the image's own user `superset`): the PostgreSQL driver, Superset's metadata (SQLite in
# the superset-home volume), the admin user, the dashboard bundle the `superset-bundle` service
# wrote, then the image's own server script (gunicorn), as the image's CMD starts it.
# Every step is idempotent, so a restart runs them all again.
set -euo pipefail

# The image is "lean": Superset's venv (/app/.venv) has no PostgreSQL driver (psycopg2 is only in
# the wheel's `postgres` extra), and that venv belongs to root with no pip in it. So psycopg2 is
# installed with the image's uv into a folder of the superset-home volume (once: later starts
# find it there) and put on PYTHONPATH. Needs PyPI at the first start.
PYLIB="${SUPERSET_HOME:-/app/superset_home}/python-packages"
export PYTHONPATH="${PYTHONPATH:+${PYTHONPATH}:}${PYLIB}"
if ! python -c "import psycopg2" 2>/dev/null; then
  echo "Installing psycopg2-binary==2.9.13 into ${PYLIB}"
  uv pip install --python "$(command -v python)" --target "${PYLIB}" --no-cache --quiet \
    psycopg2-binary==2.9.13
fi

if [[ ! -r /bundle/zoom_qos_dashboard.zip ]]; then
  echo "ERROR: cannot read /bundle/zoom_qos_dashboard.zip as uid $(id -u): superset-bundle writes it (see docker-compose.yaml)" >&2
  exit 1
fi

superset db upgrade
# Exits 0 with "User already exists" on later starts.
superset fab create-admin --username "${SUPERSET_ADMIN_USERNAME}" --password "${SUPERSET_ADMIN_PASSWORD}" \
  --firstname Superset --lastname Admin --email "${SUPERSET_ADMIN_USERNAME}@localhost"
superset init
# Overwrites the dashboard in place (same uuid); a database, dataset or chart already imported is
# kept as it is (docs/superset.md says how to refresh those).
superset import-dashboards -p /bundle/zoom_qos_dashboard.zip -u "${SUPERSET_ADMIN_USERNAME}"
exec /app/docker/entrypoints/run-server.sh
