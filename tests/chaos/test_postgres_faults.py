"""The PostgreSQL warehouse lost mid-load: the loader's connection terminated, or the server crashed.

Either way the load's transaction in flight rolls back whole: right after the fault every session
the warehouse holds is whole (exactly the rows Zoom served for it, in every table); the load's
retry then completes the window, and the run record says success with the counts loaded and no
hard data-quality violation. On the shared server (5432) the test only creates a database of its
own and terminates a backend of that database; the crash is a private server's, made with initdb.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.chaos.harness import ChaosRow, cannot_run, free_port, record, rows_lost, task_tries
from tests.conftest import API_KEY, API_SECRET
from tests.integration.dagrun import (
    AIRFLOW,
    CONTRACT_TABLES,
    METADATA_DB,
    PRIMARY_KEYS,
    RUN_TIMES,
    airflow_env,
    assert_matches_simulator,
)
from tests.warehouse_fixtures import create_pg_database, drop_pg_database, pg_admin_engine
from zoom_qos.warehouse import schema as tables
from zoom_qos.warehouse.store import Warehouse

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: The loader writing QoS rows: a backend of the warehouse's database in a transaction whose
#: statement is (or, between two statements, was) the COPY into user_qos.
LOADING = sa.text(
    "SELECT pid, xact_start FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() "
    "AND xact_start IS NOT NULL AND state <> 'idle' AND query LIKE 'COPY %user_qos%'")
#: How psycopg says the server went away (mid-COPY, or at the next statement).
CONNECTION_LOST = ("server closed the connection unexpectedly", "the connection is lost",
                   "terminating connection due to")


@pytest.fixture
def big_world(tmp_path, migrated_metadata_db):
    """An Airflow home and a simulator with about 80 sessions a day (80 000 rows): a load of
    several transactions (20 000 rows at most each), so that one commits before the fault."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=11, sessions_per_day=60),
                    host="127.0.0.1", port=0).start()
    yield sim, airflow_env(home, sim, home / "warehouse.db", home / "staging")
    sim.stop()


@pytest.fixture
def shared_database() -> Iterator[tuple[sa.Engine, URL]]:
    """A fresh database of the test's own on the shared server, dropped afterwards."""
    admin = pg_admin_engine()
    url = create_pg_database(admin)
    try:
        yield admin, url
    finally:
        drop_pg_database(admin, url)
        admin.dispose()


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb, trust auth, 127.0.0.1 on a free port, its
    socket in its folder) that it may crash and start again: the shared one is never touched."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            cannot_run(f"a private PostgreSQL runs as user postgres, which needs root (uid {os.geteuid()})")
        missing = [p for p in (PG_BIN / "initdb", PG_BIN / "pg_ctl") if not p.exists()]
        if missing or shutil.which("runuser") is None:
            cannot_run(f"a private PostgreSQL needs initdb and pg_ctl in {PG_BIN} and runuser; missing: "
                       f"{[str(p) for p in missing] or 'runuser'}")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            cannot_run("a private PostgreSQL runs as user postgres, which does not exist here")
        self.folder = Path(tempfile.mkdtemp(prefix="zoomqos-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()
        self.log = self.folder / "server.log"
        self.admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def url(self, database: str) -> URL:
        return URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=self.port,
                          database=database)

    def _pg(self, *args: str, check: bool = True) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 or not check, (args, done.stdout, done.stderr)

    def _ctl(self, *args: str, check: bool = True) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), *args, check=check)

    def create(self) -> None:
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres",
                 "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        """Start and wait until it takes connections (after crash recovery, if it crashed)."""
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.folder}")
        self._ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every process quits at once, no checkpoint; the next start
        replays the WAL."""
        self._ctl("-m", "immediate", "stop")

    def remove(self) -> None:
        """Stop it if it runs, and delete its folder."""
        self.admin.dispose()
        self._ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.create()
        yield server
    finally:
        server.remove()


def pg_conn(url: URL) -> str:
    """The ``zoom_qos_warehouse`` connection of ``url`` (trust auth: no password)."""
    return json.dumps({"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
                       "schema": url.database})


def pg_warehouse_rows(url: URL) -> dict[str, dict[tuple, dict]]:
    """What ``warehouse_rows`` reads from a SQLite file, from schema ``zoom_qos`` of ``url``."""
    wh = Warehouse(url)
    rows: dict[str, dict[tuple, dict]] = {}
    try:
        with wh.engine.connect() as conn:
            for name in CONTRACT_TABLES:
                keyed = {}
                for row in conn.execute(sa.select(tables.METADATA.tables[name])).mappings():
                    row = {k: v for k, v in row.items() if k not in RUN_TIMES}
                    keyed[tuple(row[k] for k in PRIMARY_KEYS[name])] = row
                rows[name] = keyed
    finally:
        wh.dispose()
    return rows


def run_record(url: URL) -> dict:
    """The only ``pipeline_runs`` row (the database is the test's own)."""
    wh = Warehouse(url)
    try:
        with wh.engine.connect() as conn:
            return dict(conn.execute(sa.select(tables.pipeline_runs)).mappings().one())
    finally:
        wh.dispose()


def rows_per_session(rows: dict) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for name in CONTRACT_TABLES:
        for row in rows[name]:
            counts.setdefault(row["session_id"], Counter())[name] += 1
    return counts


def whole_sessions(got: dict[str, dict[tuple, dict]], expected: dict[str, list[dict]]) -> int:
    """How many sessions the warehouse holds; fails unless each of them holds, in every table,
    exactly the rows Zoom served for it (none half-loaded)."""
    held = rows_per_session({name: got[name].values() for name in CONTRACT_TABLES})
    served = rows_per_session(expected)
    half = {sid: (dict(n), dict(served.get(sid, {}))) for sid, n in held.items() if n != served.get(sid)}
    assert not half, f"half-loaded sessions (rows held, rows served): {half}"
    assert_matches_simulator(got, {name: [r for r in expected[name] if r["session_id"] in held]
                                   for name in CONTRACT_TABLES})
    return len(held)


class DagRun:
    """``airflow dags test`` of one day, in the background, its output gathered."""

    def __init__(self, env: dict[str, str], day: date) -> None:
        params = json.dumps({"from_date": day.isoformat(), "to_date": day.isoformat()})
        self.process = subprocess.Popen([AIRFLOW, "dags", "test", "zoom_videosdk_qos", "-c", params], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout or ()),
                                       daemon=True)
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """Kill it if it still runs (a failed test); gather the rest of its output."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self.reader.join(10)


def strike_mid_load(admin: sa.Engine, database: str, run: DagRun, fault: Callable[[int], None]) -> None:
    """Wait for the load's second transaction writing QoS rows (one has committed, one is in
    flight), then ``fault(pid)`` with its backend's pid."""
    first = None
    deadline = time.monotonic() + 300
    with admin.connect() as conn:
        while True:
            assert run.process.poll() is None and time.monotonic() < deadline, run.output[-4000:]
            loading = conn.execute(LOADING, {"db": database}).first()
            if loading is not None:
                first = first or loading.xact_start
                if loading.xact_start != first:
                    break
            time.sleep(0.01)
    fault(loading.pid)


@dataclass
class Outcome:
    held: int  # sessions the warehouse held right after the fault, all whole
    sessions: int  # sessions of the day
    lost: int
    record: dict
    recovered: float  # seconds from the fault to the run's end

    def row(self, fault: str, kept: str) -> ChaosRow:
        """The table's row: ``kept`` says what the fault left of the load in flight."""
        return ChaosRow(
            fault=fault,
            outcome=(f"load_warehouse failed on the lost connection; {kept}: {self.held} of {self.sessions} "
                     f"sessions held, all whole; its retry loaded the day; run succeeded, pipeline_runs "
                     f"success with {self.record['qos_rows']} QoS rows, 0 hard DQ violations"),
            rows_lost=self.lost, recovery_seconds=self.recovered)


def load_through(sim: Simulator, env: dict[str, str], admin: sa.Engine, url: URL,
                 fault: Callable[[int], None]) -> Outcome:
    """A run of a past day into ``url``, ``fault`` struck mid-load; checks that the sessions left
    are whole, that the load's retry completed the run, and that the warehouse is Zoom's truth."""
    day = sim.dataset.now.date() - timedelta(days=2)
    expected = sim.dataset.expected_rows(day, day)
    run = DagRun({**env, "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": pg_conn(url)}, day)
    try:
        strike_mid_load(admin, url.database, run, fault)
        struck_at = time.monotonic()
        held = whole_sessions(pg_warehouse_rows(url), expected)
        code = run.process.wait(600)
    finally:
        run.stop()
    recovered = time.monotonic() - struck_at
    assert code == 0 and "state=success" in run.output, run.output[-4000:]
    assert "OperationalError" in run.output and any(m in run.output for m in CONNECTION_LOST), run.output
    assert 0 < held < len(expected["sessions"]), held  # struck mid-load: some committed, not all
    # the first attempt failed, its retry did it
    assert task_tries(env["AIRFLOW_HOME"], "load_warehouse") == [(2, "success")]
    got = pg_warehouse_rows(url)
    lost = rows_lost(got, expected)
    assert lost == 0
    assert_matches_simulator(got, expected)
    row = run_record(url)
    loaded = {"outcome": "success", "sessions_loaded": len(expected["sessions"]),
              "users_loaded": len(expected["session_users"]), "qos_rows": len(expected["user_qos"]),
              "system_rows": len(expected["user_system_qos"]), "dq_hard_violations": 0, "error": None}
    assert {k: row[k] for k in loaded} == loaded, row
    assert row["window_start"] == row["window_end"] == day and row["run_id"] in run.output, row
    return Outcome(held, len(expected["sessions"]), lost, row, recovered)


def test_loader_connection_terminated_mid_load_leaves_whole_sessions_and_the_retry_completes(
        big_world, shared_database):
    sim, env = big_world
    admin, url = shared_database

    def terminate(pid: int) -> None:
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()

    done = load_through(sim, env, admin, url, terminate)
    record(done.row("PostgreSQL: the loader's connection terminated (pg_terminate_backend) mid-load",
                    kept="the transaction in flight rolled back"))


def test_postgres_crashed_mid_load_recovers_whole_sessions_and_the_retry_completes(
        big_world, private_postgres):
    sim, env = big_world
    server = private_postgres
    with server.admin.connect() as conn:
        conn.exec_driver_sql('CREATE DATABASE "warehouse"')
    url = server.url("warehouse")

    def crash_and_restart(_pid: int) -> None:
        server.crash()
        time.sleep(3)
        server.start()

    done = load_through(sim, env, server.admin, url, crash_and_restart)
    assert "not properly shut down; automatic recovery in progress" in server.log.read_text()
    record(done.row("PostgreSQL crashed (pg_ctl stop -m immediate) mid-load, started again 3 s later",
                    kept="crash recovery kept the committed transactions only"))
