"""`make events-test`: Zoom's webhooks driving the loads, on real Airflow processes on this machine.

Starts Airflow's api-server, scheduler, dag-processor and triggerer (LocalExecutor; fresh
PostgreSQL databases for the metadata and the warehouse), the Zoom API simulator, and the
package's webhook receiver (``zoom-qos webhooks serve``). Then, playing Zoom's notification side:

1. sends signed ``session.ended`` notifications for ``--sessions`` sessions the simulator serves,
   spread over ``--spread`` seconds, each at the moment "its session ends" (T);
2. waits until each session is ``loaded`` in the warehouse, through the triggerer's watcher and the
   DAG ``zoom_videosdk_qos_events``, and reports the latency from T (median, worst: target 3 min);
3. sends forged, stale, replayed-late, unsigned and oversized requests and checks that the
   warehouse's webhook store did not change;
4. stops everything it started and drops its databases. Prints PASS/FAIL with the figures.

Run from the project root with the project's venv:
``python -m include.scripts.events_test [--sessions 10] [--spread 60] [--keep]``. Exit 0 = PASS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from include.scripts.cluster_test import (
    AIRFLOW,
    BIN,
    PG_HOST,
    PG_PORT,
    PG_USER,
    ROOT,
    Cluster,
    Failure,
    airflow_cli,
    free_port,
    http_ok,
    log,
    pg_url,
    query,
    wait_for,
)
from include.zoom_simulator import Dataset
from zoom_qos.core.contracts import EVENTS_DAG_ID
from zoom_qos.zoom.webhooks import MAX_BODY_BYTES, sign

API_KEY, API_SECRET = "events-test-key", "events-test-secret-" + secrets.token_hex(8)
TOKEN = "events-test-webhook-token-" + secrets.token_hex(8)
SEED, SESSIONS_PER_DAY = 7, 24
SCHEMA = "zoom_qos"
TARGET_SECONDS = 180


def notify(url: str, raw: bytes, *, secret: str = TOKEN, at: int | None = None,
           signed: bool = True) -> int:
    stamp = str(int(time.time()) if at is None else at)
    headers = {"content-type": "application/json"}
    if signed:
        headers.update({"x-zm-request-timestamp": stamp, "x-zm-signature": sign(secret, stamp, raw),
                        "x-zm-request-id": secrets.token_hex(8)})
    request = urllib.request.Request(url, data=raw, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def ended_body(session: dict[str, Any]) -> bytes:
    obj = {"id": 1000 + len(session["id"]), "uuid": secrets.token_hex(8), "session_id": session["id"],
           "session_name": session["session_name"], "session_key": session.get("session_key"),
           "start_time": session["start_time"], "end_time": session["end_time"]}
    return json.dumps({"event": "session.ended", "event_ts": int(time.time() * 1000),
                       "payload": {"account_id": "events-test", "object": obj}}).encode()


def run(args: argparse.Namespace, cluster: Cluster, report: dict[str, Any]) -> None:
    work = cluster.workdir
    home, staging, data = work / "airflow-home", work / "staging", work / "data"
    for folder in (home, staging, data):
        folder.mkdir(parents=True, exist_ok=True)
    meta_db = cluster.create_database("zoomqos_events_meta")
    warehouse_db = cluster.create_database("zoomqos_events_wh")

    now = datetime.now(UTC).replace(microsecond=0)
    ready = work / "simulator.url"
    cluster.start("simulator", [sys.executable, "-m", "include.zoom_simulator", "--host", "127.0.0.1",
                                "--port", "0", "--api-key", API_KEY, "--api-secret", API_SECRET,
                                "--seed", str(SEED), "--sessions-per-day", str(SESSIONS_PER_DAY),
                                "--live-scenarios", "0", "--now", now.isoformat(), "--ready-file",
                                str(ready)], env={"PATH": str(BIN), "PYTHONPATH": str(ROOT)})
    wait_for("the simulator", lambda: ready.exists() and ready.read_text().strip(), 30, cluster, 0.1)
    base_url = ready.read_text().strip()

    api_port, receiver_port = free_port(), free_port()
    meta_url = pg_url(meta_db).render_as_string(hide_password=False)
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}", "HOME": str(work),
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__ZOOM_QOS__STAGING_URL": staging.as_uri(), "AIRFLOW__ZOOM_QOS__DATA_DIR": str(data),
        "AIRFLOW_CONN_ZOOM_VIDEOSDK": json.dumps({
            "conn_type": "http", "host": base_url, "login": API_KEY, "password": API_SECRET,
            "extra": {"webhook_secret_token": TOKEN}}),
        "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps({
            "conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER,
            "schema": warehouse_db, "extra": {"warehouse_schema": SCHEMA}}),
    }
    cluster.env = env
    log("airflow db migrate")
    airflow_cli(env, "db", "migrate", timeout=300)
    meta = sa.create_engine(pg_url(meta_db), pool_size=2, pool_pre_ping=True)
    report["engines"] = [meta]
    warehouse = sa.create_engine(pg_url(warehouse_db, "psycopg"), pool_size=2)
    report["engines"].append(warehouse)

    cluster.start("receiver", [str(BIN / "zoom-qos"), "webhooks", "serve", "--host", "127.0.0.1",
                               "--port", str(receiver_port)])
    cluster.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                 "--workers", "1"])
    cluster.start("scheduler", [AIRFLOW, "scheduler"])
    cluster.start("dag-processor", [AIRFLOW, "dag-processor"])
    cluster.start("triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"])
    receiver = f"http://127.0.0.1:{receiver_port}/webhooks/zoom"
    wait_for("the receiver", lambda: http_ok(f"http://127.0.0.1:{receiver_port}/health"), 120, cluster,
             0.5)
    wait_for("the api-server", lambda: http_ok(f"http://127.0.0.1:{api_port}/api/v2/monitor/health"),
             180, cluster, 1)
    wait_for(f"the dag-processor to parse {EVENTS_DAG_ID}",
             lambda: query(meta, "select 1 from serialized_dag where dag_id = :d", d=EVENTS_DAG_ID),
             180, cluster, 1)
    airflow_cli(env, "dags", "unpause", EVENTS_DAG_ID, "-y")
    # The watcher starts once the scheduler has registered the asset's trigger.
    def watching() -> bool:
        registered = query(meta, "select id from trigger where classpath = :c",
                           c="zoom_qos.triggers.StoredEventsTrigger")
        started = (cluster.logs / "triggerer.log").read_text(errors="replace")
        return bool(registered) and any(f"trigger ID {row[0]} starting" in started for row in registered)

    wait_for("the triggerer to run the asset watcher", watching, 180, cluster, 1)

    # 1-2: notifications at T, and each session loaded by T + the target
    dataset = Dataset(SEED, now, SESSIONS_PER_DAY, live_scenarios=0)
    sessions = dataset.sessions_for_day(now.date() - timedelta(days=1))
    chosen = sessions[: args.sessions]
    if len(chosen) < args.sessions:
        raise Failure(f"the simulator serves only {len(chosen)} sessions yesterday")
    gap = args.spread / max(1, len(chosen) - 1)
    sent_at: dict[str, float] = {}
    loaded_at: dict[str, float] = {}
    deadline = time.monotonic() + args.spread + TARGET_SECONDS + 120
    pending = list(chosen)
    next_send = time.monotonic()
    while time.monotonic() < deadline and len(loaded_at) < len(chosen):
        cluster.check_alive()
        if pending and time.monotonic() >= next_send:
            session = pending.pop(0)
            status = notify(receiver, ended_body(session))
            if status != 200:
                raise Failure(f"the receiver answered {status} to a signed session.ended")
            sent_at[session["id"]] = time.monotonic()
            log(f"session.ended sent for {len(sent_at)}/{len(chosen)}")
            next_send += gap
        waiting = [s for s in sent_at if s not in loaded_at]
        if waiting:
            rows = query(warehouse, f"select session_id from {SCHEMA}.sessions "
                                    "where qos_status = 'loaded' and session_id = any(:ids)", ids=waiting)
            for (session_id,) in rows:
                loaded_at[session_id] = time.monotonic()
                took = loaded_at[session_id] - sent_at[session_id]
                log(f"loaded {len(loaded_at)}/{len(chosen)}: {took:.0f} s after its notification")
        time.sleep(0.5)
    latencies = sorted(loaded_at[s] - sent_at[s] for s in loaded_at)
    report["latency"] = {"sessions": len(chosen), "loaded": len(latencies),
                         "median_s": round(statistics.median(latencies), 1) if latencies else None,
                         "worst_s": round(latencies[-1], 1) if latencies else None}
    if len(loaded_at) < len(chosen):
        raise Failure(f"{len(chosen) - len(loaded_at)} of {len(chosen)} sessions were not loaded in time")
    if latencies[-1] > TARGET_SECONDS:
        raise Failure(f"worst latency {latencies[-1]:.0f} s is over the {TARGET_SECONDS} s target")

    # 3: what must change nothing
    before = query(warehouse, f"select count(*), sum(deliveries) from {SCHEMA}.webhook_events")[0]
    raw = ended_body(sessions[args.sessions])
    refusals = {
        "forged": notify(receiver, raw, secret="not-the-token"),
        "stale": notify(receiver, raw, at=int(time.time()) - 3600),
        "unsigned": notify(receiver, raw, signed=False),
        "oversized": notify(receiver, b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'),
    }
    report["refusals"] = refusals
    after = query(warehouse, f"select count(*), sum(deliveries) from {SCHEMA}.webhook_events")[0]
    if tuple(after) != tuple(before) or any(code < 400 for code in refusals.values()):
        raise Failure(f"refused requests changed the store or were accepted: {refusals}, {before} -> {after}")
    runs = query(warehouse, f"select outcome, count(*) from {SCHEMA}.pipeline_runs where dag_id = :d "
                            "group by outcome", d=EVENTS_DAG_ID)
    report["runs"] = {outcome: n for outcome, n in runs}


def execute(sessions: int, spread: float, keep: bool = False) -> tuple[dict[str, Any], str | None]:
    """Run the whole check; returns the report and the failure (None when it passed). Everything it
    started is stopped and its databases dropped, whatever happened (the work folder is kept on a
    failure, or with ``keep``)."""
    args = argparse.Namespace(sessions=sessions, spread=spread)
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="zoomqos-events-")))
    report: dict[str, Any] = {}
    failure: str | None = None
    try:
        run(args, cluster, report)
    except Failure as error:
        failure = str(error)
    except Exception:
        failure = "unexpected error:\n" + traceback.format_exc()
    finally:
        for engine in report.pop("engines", []):
            with contextlib.suppress(Exception):
                engine.dispose()
        problems = cluster.stop_all()
        with contextlib.suppress(Exception):
            cluster.drop_databases()
        if problems:
            failure = (failure + "\n" if failure else "") + "cleanup: " + "; ".join(problems)
    if failure:
        failure += f"\nLogs: {cluster.logs}"
    elif not keep:
        shutil.rmtree(cluster.workdir, ignore_errors=True)
    return report, failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="sessions notified as ended")
    parser.add_argument("--spread", type=float, default=60.0,
                        help="seconds the notifications are spread over")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    report, failure = execute(args.sessions, args.spread, args.keep)
    print("\n==> Events test summary")
    print(json.dumps(report, indent=1, default=str))
    if failure:
        print(f"\nFAIL: {failure}")
        return 1
    lat = report["latency"]
    print(f"\nPASS: {lat['loaded']} sessions loaded from Zoom's notifications, latency median "
          f"{lat['median_s']} s, worst {lat['worst_s']} s (target {TARGET_SECONDS} s); forged, stale, "
          "unsigned and oversized requests changed nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
