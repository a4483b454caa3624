"""`make cluster-test`: the pipeline on a real Airflow 3.3 CeleryExecutor cluster, on this machine.

Starts every Airflow component as its own process (api-server, scheduler, dag-processor,
triggerer, two Celery workers), with Redis (127.0.0.1:6379) as the broker and fresh PostgreSQL
databases for the metadata and the warehouse, plus the Zoom API simulator. Then:

1. ``airflow backfill create`` over three days (logical dates D-4 .. D-2, D = today UTC);
2. while extraction tasks run, SIGKILLs one Celery worker (its process group and every
   process below it, task processes included), so its tasks must be detected as lost
   (heartbeat timeout) and retried on the surviving worker;
3. waits until every backfill run succeeded (or one failed, or the timeout);
4. compares the warehouse row by row with the simulator's truth for the sessions the runs
   read: each run reads its day plus a one-day lookback, so days D-5 .. D-2;
5. stops every process it started, by pid (SIGTERM, then SIGKILL), drops the databases,
   empties the Redis databases it used, and prints PASS/FAIL with timings.

Run from the project root with the project's venv:
``python -m include.scripts.cluster_test [--keep] [--timeout 600]``. Exit status 0 = PASS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (str(ROOT), str(ROOT / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import URL  # noqa: E402

from include.zoom_simulator import Dataset  # noqa: E402
from zoom_qos.warehouse.schema import METADATA  # noqa: E402

DAG_ID = "zoom_videosdk_qos"
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
API_KEY, API_SECRET = "cluster-test-key", "cluster-test-secret-" + secrets.token_hex(8)
SEED, SESSIONS_PER_DAY = 42, 12
WAREHOUSE_SCHEMA = "zoom_qos"
CONTRACT_TABLES = ("sessions", "session_users", "user_qos", "user_system_qos")
PRIMARY_KEYS = {name: [c.name for c in METADATA.tables[name].primary_key] for name in CONTRACT_TABLES}
# Faster detection of a lost task than the default 300 s (scheduler section in Airflow 3.3).
HEARTBEAT_TIMEOUT_SECONDS = 30
T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", flush=True)


class Failure(Exception):
    """The cluster test failed; the message says why."""


# ------------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_url(database: str, driver: str = "psycopg2") -> URL:
    return URL.create(f"postgresql+{driver}", username=PG_USER, host=PG_HOST, port=PG_PORT, database=database)


def admin_engine() -> sa.Engine:
    return sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT",
                            connect_args={"connect_timeout": 5})


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = children_map(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def signal_pid(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def tail_text(text: str, lines: int = 25) -> str:
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


def tail(path: Path, lines: int = 25) -> str:
    try:
        return tail_text(path.read_text(errors="replace"), lines)
    except OSError:
        return f"(no log at {path})"


# ------------------------------------------------------------------------------- the cluster
class Process:
    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path) -> None:
        self.name, self.popen, self.log_path = name, popen, log_path
        self.pid = popen.pid
        self.expected_dead = False


class Cluster:
    """Everything the test starts and must clean up."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.databases: list[str] = []
        self.redis_dbs: list[int] = []
        self.env: dict[str, str] = {}

    # -- processes
    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log_path = self.logs / f"{name}.log"
        fh = open(log_path, "ab")  # noqa: SIM115 - owned by the child; closed below
        try:
            popen = subprocess.Popen(argv, cwd=ROOT, env=env or self.env, stdin=subprocess.DEVNULL,
                                     stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            fh.close()
        proc = Process(name, popen, log_path)
        self.processes.append(proc)
        log(f"started {name} (pid {proc.pid}, log {log_path.name})")
        return proc

    def check_alive(self) -> None:
        for proc in self.processes:
            if not proc.expected_dead and proc.popen.poll() is not None:
                raise Failure(f"{proc.name} (pid {proc.pid}) exited with {proc.popen.returncode}:\n"
                              f"{tail(proc.log_path)}")

    def kill_hard(self, proc: Process) -> list[int]:
        """SIGKILL a process, its process group and every process below it (own groups too)."""
        proc.expected_dead = True
        below = descendants(proc.pid)
        groups = {proc.pid}
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(pid))
        signal_group(proc.pid, signal.SIGKILL)
        signal_pid(proc.pid, signal.SIGKILL)
        for pid in below:
            signal_pid(pid, signal.SIGKILL)
        for pgid in groups - {proc.pid}:
            signal_group(pgid, signal.SIGKILL)
        proc.popen.wait(timeout=10)
        return below

    def stop_all(self, grace: float = 20.0) -> list[str]:
        """SIGTERM every process started (and its tree), then SIGKILL what is left."""
        problems: list[str] = []
        trees = {proc.pid: [proc.pid, *descendants(proc.pid)] for proc in self.processes}
        for proc in reversed(self.processes):
            if proc.popen.poll() is None:
                signal_group(proc.pid, signal.SIGTERM)
                signal_pid(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes:
            leftovers = [pid for pid in trees[proc.pid] + descendants(proc.pid) if alive(pid)]
            if proc.popen.poll() is None or leftovers:
                log(f"{proc.name}: still running after {grace:.0f}s, SIGKILL {sorted(set(leftovers))}")
                signal_group(proc.pid, signal.SIGKILL)
                for pid in set(leftovers):
                    signal_pid(pid, signal.SIGKILL)
                try:
                    proc.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    problems.append(f"{proc.name} (pid {proc.pid}) did not die")
        time.sleep(0.3)
        for proc in self.processes:
            left = [pid for pid in trees[proc.pid] if alive(pid)]
            if left:
                problems.append(f"{proc.name}: processes {left} still alive")
        return problems

    # -- databases
    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{secrets.token_hex(5)}"
        engine = admin_engine()
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        self.databases.append(name)
        return name

    def drop_databases(self) -> None:
        if not self.databases:
            return
        engine = admin_engine()
        with engine.connect() as conn:
            for name in self.databases:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()

    # -- redis
    def claim_redis_dbs(self, count: int) -> list[int]:
        """Redis database indexes that are empty now (never 0 or 15: other tools use those)."""
        import redis

        for index in range(1, 15):
            if len(self.redis_dbs) == count:
                break
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index, socket_timeout=5)
            try:
                if client.dbsize() == 0:
                    # A marker, so a concurrent run of this script picks another index.
                    if client.set("zoomqos-cluster-test", os.getpid(), nx=True, ex=3600):
                        self.redis_dbs.append(index)
            finally:
                client.close()
        if len(self.redis_dbs) < count:
            raise Failure("not enough empty Redis databases on 127.0.0.1:6379")
        return self.redis_dbs

    def release_redis_dbs(self) -> None:
        import redis

        for index in self.redis_dbs:
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index, socket_timeout=5)
            with contextlib.suppress(Exception):
                client.flushdb()
            client.close()


# ------------------------------------------------------------------------------ airflow state
def airflow_cli(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run([AIRFLOW, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise Failure(f"`airflow {' '.join(args)}` exited {done.returncode}:\n{output[-3000:]}")
    return done.stdout


def query(engine: sa.Engine, sql: str, **params: Any) -> list[sa.Row]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def wait_for(what: str, check, timeout: float, cluster: Cluster, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        cluster.check_alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except Exception:  # not up yet
        return False


# ------------------------------------------------------------------------------- verification
def warehouse_rows(database: str) -> dict[str, dict[tuple, dict]]:
    engine = sa.create_engine(pg_url(database, "psycopg"),
                              execution_options={"schema_translate_map": {None: WAREHOUSE_SCHEMA}})
    rows: dict[str, dict[tuple, dict]] = {}
    try:
        with engine.connect() as conn:
            for name in CONTRACT_TABLES:
                keyed = {}
                for row in conn.execute(sa.select(METADATA.tables[name])).mappings():
                    row = {k: v for k, v in row.items() if k != "loaded_at"}
                    keyed[tuple(row[k] for k in PRIMARY_KEYS[name])] = row
                rows[name] = keyed
    finally:
        engine.dispose()
    return rows


def same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    return got == want


def compare(rows: dict[str, dict[tuple, dict]], expected: dict[str, list[dict]]) -> list[str]:
    """Every difference between the warehouse and the truth (empty = exact)."""
    problems: list[str] = []
    for name in CONTRACT_TABLES:
        want = {tuple(r[k] for k in PRIMARY_KEYS[name]): r for r in expected[name]}
        got = rows[name]
        missing, extra = set(want) - set(got), set(got) - set(want)
        if missing:
            problems.append(f"{name}: {len(missing)} rows missing, e.g. {sorted(missing, key=str)[:2]}")
        if extra:
            problems.append(f"{name}: {len(extra)} unexpected rows, e.g. {sorted(extra, key=str)[:2]}")
        wrong = 0
        for key in set(want) & set(got):
            for column, value in want[key].items():
                if not same(got[key].get(column), value):
                    wrong += 1
                    if wrong <= 3:
                        problems.append(f"{name} {key} {column}: warehouse {got[key].get(column)!r}, "
                                        f"Zoom {value!r}")
        if wrong > 3:
            problems.append(f"{name}: {wrong} differing values in all")
    return problems


# ------------------------------------------------------------------------------------- the test
def run(args: argparse.Namespace, cluster: Cluster, timings: dict[str, float]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    work = cluster.workdir
    home, staging, data = work / "airflow-home", work / "staging", work / "data"
    for folder in (home, staging, data):
        folder.mkdir(parents=True, exist_ok=True)

    # -- preflight: the CeleryExecutor must import in this venv, and the services must answer
    check = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('celery'), "
         "m.version('apache-airflow-providers-celery')); "
         "import airflow.providers.celery.executors.celery_executor_utils"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "AIRFLOW_HOME": str(home)})
    if check.returncode != 0:
        versions = (check.stdout.strip() or "? ?").split()
        hint = ""
        if "cannot import name 'retry' from 'celery.backends.database'" in check.stderr:
            hint = (f"\n  apache-airflow-providers-celery {versions[-1]} imports "
                    f"celery.backends.database.retry, "
                    f"which celery 5.7.0 removed (installed: celery {versions[0]}); the CeleryExecutor "
                    f"cannot start. Pin celery<5.7 (e.g. celery==5.6.3) next to the provider pin.")
        raise Failure("the CeleryExecutor does not import in this venv:\n"
                      + tail_text(check.stderr, 6) + hint)
    try:
        engine = admin_engine()
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as error:
        raise Failure(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {error}") from error
    try:
        broker_db, limiter_db = cluster.claim_redis_dbs(2)
    except Failure:
        raise
    except Exception as error:
        raise Failure(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {error}") from error

    meta_db = cluster.create_database("zoomqos_cluster_meta")
    warehouse_db = cluster.create_database("zoomqos_cluster_wh")
    log(f"databases: metadata {meta_db}, warehouse {warehouse_db}; Redis db {broker_db} (broker), "
        f"{limiter_db} (rate limiter)")

    # -- the simulator, anchored at a fixed `now` shared with the truth computed below
    now = datetime.now(UTC).replace(microsecond=0)
    ready = work / "simulator.url"
    sim_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ZOOM_QOS"))}
    sim_env["PYTHONPATH"] = str(ROOT)
    cluster.start("simulator", [sys.executable, "-m", "include.zoom_simulator", "--host", "127.0.0.1",
                                "--port", "0", "--api-key", API_KEY, "--api-secret", API_SECRET,
                                "--seed", str(SEED), "--sessions-per-day", str(SESSIONS_PER_DAY),
                                "--now", now.isoformat(), "--ready-file", str(ready),
                                "--faults", json.dumps({"latency_ms": args.latency_ms})], env=sim_env)
    wait_for("the simulator", lambda: ready.exists() and ready.read_text().strip(), 30, cluster, 0.1)
    base_url = ready.read_text().strip()
    sim_root = base_url.rsplit("/v2", 1)[0]

    # -- one environment for every Airflow process
    api_port = free_port()
    meta_url = pg_url(meta_db).render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ZOOM_QOS"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{broker_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta_url.replace("postgresql+psycopg2", "postgresql"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # Airflow 3's default auth manager; every UI/API user is an admin, no login, no prompt.
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        # Workers run tasks through the execution API, served by the api-server.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Only backfill runs: no scheduled run of the latest day may write to the warehouse.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        # A task whose worker died is detected after this many seconds (default 300).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # A task the killed worker had received but not started stays "queued": requeue it after
        # 2 minutes instead of 10 (it goes back to "scheduled"; no try is used).
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
        # The pipeline
        "AIRFLOW__ZOOM_QOS__STAGING_URL": staging.as_uri(),
        "AIRFLOW__ZOOM_QOS__DATA_DIR": str(data),
        "AIRFLOW__ZOOM_QOS__RATE_LIMIT_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{limiter_db}",
        "AIRFLOW_CONN_ZOOM_VIDEOSDK": json.dumps({
            "conn_type": "http", "host": base_url, "login": API_KEY, "password": API_SECRET,
            "extra": {"qos_page_size": 2, "max_concurrent_sessions": args.max_concurrent_sessions}}),
        "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps({
            "conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER,
            "schema": warehouse_db, "extra": {"warehouse_schema": WAREHOUSE_SCHEMA}}),
    })
    cluster.env = env
    (work / "env.json").write_text(json.dumps({k: v for k, v in env.items()
                                               if k.startswith(("AIRFLOW", "ZOOM_QOS"))}, indent=1))

    started = time.monotonic()
    log("airflow db migrate")
    airflow_cli(env, "db", "migrate", timeout=300)
    timings["db migrate"] = time.monotonic() - started
    meta = sa.create_engine(pg_url(meta_db), pool_size=2, pool_pre_ping=True)
    report["meta_engine"] = meta

    # -- the components (the serve-logs sidecars would bind 0.0.0.0; logs are local files here)
    started = time.monotonic()
    cluster.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                 "--workers", "2"])
    cluster.start("scheduler", [AIRFLOW, "scheduler"])
    cluster.start("dag-processor", [AIRFLOW, "dag-processor"])
    cluster.start("triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"])
    workers = []
    for name in ("worker-a", "worker-b"):
        workers.append(cluster.start(name, [AIRFLOW, "celery", "worker", "--celery-hostname",
                                            f"{name}@%h", "--queues", "default", "--concurrency", "2",
                                            "--skip-serve-logs", "--without-mingle", "--without-gossip"]))
    wait_for("the api-server", lambda: http_ok(f"http://127.0.0.1:{api_port}/api/v2/monitor/health"),
             180, cluster, 1)
    for worker in workers:
        wait_for(f"{worker.name} to be ready",
                 lambda w=worker: " ready." in w.log_path.read_text(errors="replace"), 180, cluster, 1)
    timings["components up"] = time.monotonic() - started

    started = time.monotonic()

    warned: set[str] = set()

    def parsed():
        for filename, stacktrace in query(meta, "select filename, stacktrace from import_error"):
            if filename.endswith(f"{DAG_ID}.py"):
                raise Failure(f"{filename} does not import:\n{stacktrace[-2000:]}")
            if filename not in warned:  # another DAG file: not this test's business
                warned.add(filename)
                log(f"warning: {filename} does not import: {stacktrace.strip().splitlines()[-1]}")
        return query(meta, "select 1 from serialized_dag where dag_id = :d", d=DAG_ID)

    wait_for(f"the dag-processor to parse {DAG_ID}", parsed, 180, cluster, 1)
    timings["DAG parsed"] = time.monotonic() - started
    log(f"{DAG_ID} parsed")

    # -- the backfill
    today = now.date()
    first, last = today - timedelta(days=4), today - timedelta(days=2)
    airflow_cli(env, "dags", "unpause", DAG_ID, "-y")
    started = time.monotonic()
    out = airflow_cli(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", first.isoformat(),
                      "--to-date", last.isoformat(), "--max-active-runs", "3")
    log(f"backfill created for {first} .. {last}: " + " ".join(out.split())[-300:])
    report["kill"] = watch_runs(args, cluster, meta, workers, first, last, timings, started)
    timings["backfill"] = time.monotonic() - started

    # -- the warehouse against the simulator's truth
    started = time.monotonic()
    data_from, data_to = first - timedelta(days=1), last
    truth = Dataset(SEED, now, SESSIONS_PER_DAY).expected_rows(data_from, data_to)
    rows = warehouse_rows(warehouse_db)
    problems = compare(rows, truth)
    counts = {name: len(rows[name]) for name in CONTRACT_TABLES}
    log(f"warehouse rows for sessions of {data_from} .. {data_to}: {counts}")
    if not all(counts.values()):
        problems.append("a contract table is empty; nothing to compare")
    if problems:
        raise Failure("the warehouse differs from what the simulator served:\n  " + "\n  ".join(problems))
    engine = sa.create_engine(pg_url(warehouse_db, "psycopg"))
    with engine.connect() as conn:
        run_rows = conn.execute(sa.text(f"select run_id, outcome, window_start, window_end "
                                        f"from {WAREHOUSE_SCHEMA}.pipeline_runs order by window_start")).all()
    engine.dispose()
    windows = [(str(r.window_start), str(r.window_end), r.outcome) for r in run_rows]
    want_windows = [((d - timedelta(days=1)).isoformat(), d.isoformat(), "success")
                    for d in (first + timedelta(days=i) for i in range((last - first).days + 1))]
    if sorted(windows) != want_windows:
        raise Failure(f"pipeline_runs windows/outcomes {windows}, expected {want_windows}")
    timings["verify"] = time.monotonic() - started
    report["counts"] = counts
    report["window"] = f"{data_from} .. {data_to}"
    with contextlib.suppress(Exception):
        with urllib.request.urlopen(f"{sim_root}/_sim/stats", timeout=5) as response:
            report["sim_stats"] = json.loads(response.read())
    return report


def watch_runs(args, cluster: Cluster, meta: sa.Engine, workers: list[Process], first: date, last: date,
               timings: dict[str, float], started: float) -> dict[str, Any]:
    """Poll the backfill's runs; kill a worker while it runs an extraction task."""
    deadline = time.monotonic() + args.timeout
    kill: dict[str, Any] = {}
    last_summary = ""
    while True:
        cluster.check_alive()
        runs = query(meta, "select run_id, state, data_interval_start, data_interval_end from dag_run "
                           "where dag_id = :d order by logical_date", d=DAG_ID)
        tis = query(meta, "select run_id, task_id, map_index, state, try_number, pid, start_date "
                          "from task_instance where dag_id = :d", d=DAG_ID)
        summary = " | ".join(
            f"{r.data_interval_start:%m-%d}:{r.state}" for r in runs) + "  tasks: " + ", ".join(
            f"{state}={n}" for state, n in sorted(_count(t.state or "none" for t in tis).items()))
        if summary != last_summary:
            log(summary)
            last_summary = summary

        if not kill:
            kill = maybe_kill(cluster, workers, tis, started, args)

        states = [r.state for r in runs]
        if runs and any(s == "failed" for s in states):
            raise Failure(f"a backfill run failed: {summary}\n" + failed_task_logs(cluster, tis))
        if len(runs) == (last - first).days + 1 and all(s == "success" for s in states):
            break
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {args.timeout}s; runs: {summary}")
        time.sleep(0.5)

    for r in runs:
        if r.data_interval_end - r.data_interval_start != timedelta(days=1):
            raise Failure(f"run {r.run_id} covers {r.data_interval_start} .. {r.data_interval_end}, "
                          "not one day")
    starts = sorted(r.data_interval_start.date() for r in runs)
    if starts != [first + timedelta(days=i) for i in range((last - first).days + 1)]:
        raise Failure(f"backfill runs cover {starts}, expected {first} .. {last}")
    if not kill:
        raise Failure("every extraction task finished before a worker could be killed mid-run; "
                      "raise --latency-ms")
    # The killed attempts must have been retried and succeeded (on the surviving worker).
    final = {(t.run_id, t.task_id, t.map_index): t for t in tis}
    for key, try_number in kill["tasks"]:
        ti = final.get(tuple(key))
        if ti is None or ti.state != "success" or ti.try_number <= try_number:
            raise Failure(f"task {key} killed at try {try_number} ended as "
                          f"{ti and ti.state} at try {ti and ti.try_number}")
    kill["retried"] = [(k, final[tuple(k)].try_number) for k, _ in kill["tasks"]]
    kill["heartbeat_timeouts"] = query(meta, "select count(*) from log where event = 'heartbeat timeout' "
                                             "and dag_id = :d", d=DAG_ID)[0][0]
    timings["kill -> all runs success"] = time.monotonic() - kill["at"]
    return kill


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def owner(pid: int | None, workers: list[Process]) -> Process | None:
    """The worker a task process runs under (walking up its parents)."""
    seen = 0
    while pid and pid > 1 and seen < 20:
        for worker in workers:
            if pid == worker.pid:
                return worker
        pid = parent_of(pid)
        seen += 1
    return None


def maybe_kill(cluster: Cluster, workers: list[Process], tis, started: float, args) -> dict[str, Any]:
    """SIGKILL the worker that runs the most extraction tasks, once one has run for a moment."""
    now = datetime.now(UTC)
    ripe: dict[int, int] = {}  # worker pid -> extraction tasks running for kill_after seconds
    running: dict[int, list] = {}  # worker pid -> every task it runs
    for ti in tis:
        if ti.state != "running" or not ti.pid:
            continue
        worker = owner(ti.pid, workers)
        if worker is None:
            continue
        running.setdefault(worker.pid, []).append(ti)
        if (ti.task_id == "extract_qos" and ti.start_date
                and (now - ti.start_date).total_seconds() >= args.kill_after):
            ripe[worker.pid] = ripe.get(worker.pid, 0) + 1
    if not ripe:
        return {}
    victim_pid = max(ripe, key=lambda pid: ripe[pid])
    victim = next(w for w in workers if w.pid == victim_pid)
    tasks = [((t.run_id, t.task_id, t.map_index), t.try_number) for t in running[victim_pid]]
    killed = cluster.kill_hard(victim)
    log(f"SIGKILLed {victim.name} (pid {victim.pid}, process group and {len(killed)} processes below it) "
        f"while it ran {[f'{k[0][0]} {k[0][1]}[{k[0][2]}] try {k[1]}' for k in tasks]}")
    return {"worker": victim.name, "tasks": tasks, "at": time.monotonic(),
            "after_backfill_s": time.monotonic() - started}


def failed_task_logs(cluster: Cluster, tis) -> str:
    home = Path(cluster.env.get("AIRFLOW_HOME", ""))
    out = []
    for ti in tis:
        if ti.state in ("failed", "upstream_failed"):
            out.append(f"  {ti.run_id} {ti.task_id}[{ti.map_index}] {ti.state} try {ti.try_number}")
    for path in sorted((home / "logs").rglob("*.log"))[-40:]:
        text = path.read_text(errors="replace")
        if "ERROR" in text or "error" in text.lower():
            out.append(f"--- {path.relative_to(home)}\n{tail(path, 15)}")
    return "\n".join(out[-60:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the runs")
    parser.add_argument("--latency-ms", type=float, default=150, help="simulator latency per request")
    parser.add_argument("--max-concurrent-sessions", type=int, default=2,
                        help="sessions one extraction task reads at once (connection extra)")
    parser.add_argument("--kill-after", type=float, default=5.0,
                        help="kill a worker once one of its extraction tasks has run this long (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) after a pass")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="zoomqos-cluster-"))
    cluster = Cluster(workdir)
    timings: dict[str, float] = {}
    report: dict[str, Any] = {}
    failure: str | None = None
    log(f"work folder {workdir}")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # Explicit handlers: a shell starts background jobs with SIGINT ignored, and SIGTERM (e.g. a
    # killed `make`) would otherwise skip the cleanup.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        report = run(args, cluster, timings)
    except Failure as error:
        failure = str(error)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception:  # report anything, then clean up
        failure = "unexpected error:\n" + traceback.format_exc()
    finally:
        # Cleanup runs to the end: a second Ctrl-C or SIGTERM must not leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        started = time.monotonic()
        with contextlib.suppress(Exception):
            report.get("meta_engine") and report["meta_engine"].dispose()
        try:
            problems = cluster.stop_all()
        except BaseException as error:
            problems = [f"stopping processes: {error!r}"]
        timings["stop"] = time.monotonic() - started
        for what, step in (("databases", cluster.drop_databases), ("redis", cluster.release_redis_dbs)):
            try:
                step()
            except Exception as error:
                problems.append(f"cleaning up {what}: {error!r}")
        if problems and failure is None:
            failure = "cleanup: " + "; ".join(problems)
        elif problems:
            failure += "\ncleanup: " + "; ".join(problems)

    total = time.monotonic() - T0
    print("\n==> Cluster test summary")
    for step, seconds in timings.items():
        print(f"    {step:<28} {seconds:6.1f} s")
    print(f"    {'total':<28} {total:6.1f} s")
    kill = report.get("kill")
    if kill:
        print(f"    killed {kill['worker']} {kill['after_backfill_s']:.1f}s after the backfill was created; "
              f"its tasks finished at tries {kill.get('retried')}; "
              f"heartbeat timeouts logged: {kill.get('heartbeat_timeouts')}")
    if report.get("counts"):
        print(f"    warehouse (sessions of {report['window']}): {report['counts']}")
    if report.get("sim_stats"):
        print(f"    simulator requests: {report['sim_stats'].get('requests')} "
              f"{report['sim_stats'].get('status_counts')}")
    print(f"    processes started: {', '.join(f'{p.name}={p.pid}' for p in cluster.processes)}")
    if failure:
        print(f"\nFAIL: {failure}")
        if cluster.processes:
            print(f"Logs: {cluster.logs} (Airflow home and task logs: {workdir / 'airflow-home'})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        return 1
    if args.keep:
        print(f"Logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nPASS: backfill of 3 days on a CeleryExecutor cluster, one worker killed mid-run, "
          "warehouse exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
