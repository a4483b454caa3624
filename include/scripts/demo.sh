#!/usr/bin/env bash
# `make demo`: the whole product on one machine without a Zoom account.
# Starts the Zoom API simulator, runs the daily DAG over the last three complete UTC days into the
# embedded SQLite warehouse (or the zoom_qos_warehouse connection, if set) and the live DAG once,
# prints the counts and renders the report.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${AIRFLOW_HOME:?run through make demo}"
mkdir -p "$AIRFLOW_HOME" data
log="$AIRFLOW_HOME/demo.log"
: > "$log"

echo "==> Preparing the Airflow metadata database in $AIRFLOW_HOME"
airflow db migrate >>"$log" 2>&1 || { tail -n 30 "$log"; exit 1; }

ready="$AIRFLOW_HOME/simulator.url"
rm -f "$ready"
echo "==> Starting the Zoom API simulator"
# Yesterday holds six scripted calls whose causes are known (--quality-scenarios); the calls in progress
# started a quarter of an hour ago, so one of them is already degrading when the live DAG looks.
python -m include.zoom_simulator --host 127.0.0.1 --port 0 --api-key demo-key \
  --api-secret demo-secret --seed 42 --quality-scenarios \
  --live-anchor "$(date -u -d '15 minutes ago' +%FT%TZ)" \
  --ready-file "$ready" >>"$AIRFLOW_HOME/simulator.log" 2>&1 &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$ready" ] && break; sleep 0.1; done
[ -s "$ready" ] || { echo "The simulator did not start; see $AIRFLOW_HOME/simulator.log"; exit 1; }
base_url=$(cat "$ready")
echo "    listening on $base_url"

case "${WAREHOUSE:-sqlite}" in
  sqlite) echo "==> Warehouse: SQLite (data/warehouse.db, or the zoom_qos_warehouse connection if set)" ;;
  postgres)
    pg_url="${DEMO_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/zoom_qos_demo}"
    echo "==> Warehouse: PostgreSQL ${pg_url%%\?*} (schema zoom_qos)"
    python -m include.scripts.create_database "$pg_url"
    export AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE="${pg_url}?warehouse_schema=zoom_qos"
    ;;
  *) echo "WAREHOUSE must be sqlite or postgres, not '${WAREHOUSE}'"; exit 2 ;;
esac

export AIRFLOW_CONN_ZOOM_VIDEOSDK="{\"conn_type\": \"http\", \"host\": \"$base_url\", \"login\": \"demo-key\", \"password\": \"demo-secret\"}"
from=$(date -u -d '3 days ago' +%F)
to=$(date -u -d '1 day ago' +%F)
echo "==> Running the DAG zoom_videosdk_qos for $from .. $to (log: $log)"
if ! airflow dags test zoom_videosdk_qos -c "{\"from_date\": \"$from\", \"to_date\": \"$to\"}" >>"$log" 2>&1; then
  echo "The DAG run failed. Last lines of $log:"; tail -n 40 "$log"; exit 1
fi
grep -E "DagRun Finished" "$log" | tail -n 1

echo "==> Running the DAG zoom_videosdk_qos_live once: the calls in progress, and their alerts"
if ! airflow dags test zoom_videosdk_qos_live >>"$log" 2>&1; then
  echo "The live DAG run failed. Last lines of $log:"; tail -n 40 "$log"; exit 1
fi

echo "==> What landed in the warehouse"
python -m include.scripts.warehouse_summary

echo "==> Rendering the QoS report (last 30 days of data)"
report=$(python -m include.scripts.qos_report | tail -n 1)
echo "    report: $report"
