"""Helpers to run the whole DAG the way a user does: ``airflow dags test``.

Two ways, the same command: ``dags_test(..., cli=True)`` starts ``airflow dags test`` in a fresh
process, exactly as a user types it; without ``cli`` the run goes to this test process's
*runner*, one long-lived process (``python -m tests.integration.dagrun``) that has imported
Airflow once and runs the same CLI command (``airflow.cli``'s parser and ``dag_test``, hence
``DAG.test()``) for each request, in the environment the request names (Airflow home, metadata
database, connections, settings). A run then costs what the run does, not Airflow's start (some
7 s a run on this machine kind). Each module's ``world`` still has its own Airflow home, metadata
database, simulator, warehouse and staging folder.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET, ROOT, zoom_connection_json
from zoom_qos.warehouse.schema import METADATA

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
CONTRACT_TABLES = ("sessions", "session_users", "user_qos", "user_system_qos")
#: Columns that say when a run wrote or asked, not what Zoom sent: a second run changes them.
RUN_TIMES = frozenset({"loaded_at", "qos_checked_at"})
PRIMARY_KEYS = {name: [c.name for c in METADATA.tables[name].primary_key] for name in CONTRACT_TABLES}


#: The metadata database ``airflow db migrate`` writes in an Airflow home.
METADATA_DB = "airflow.db"


def airflow_env(home: Path, sim: Simulator, warehouse: Path, staging: Path) -> dict[str, str]:
    """The environment of ``airflow`` commands on ``home``, the simulator and a SQLite warehouse."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_CONN_ZOOM_VIDEOSDK": zoom_connection_json(sim.base_url),
        "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        "AIRFLOW__ZOOM_QOS__STAGING_URL": staging.as_uri(),
    }


@pytest.fixture(scope="session")
def migrated_metadata_db(tmp_path_factory) -> Path:
    """Once per session: ``airflow db migrate`` (the costly step, seconds) into a template home;
    the metadata database it leaves is what every ``world`` starts from."""
    home = tmp_path_factory.mktemp("airflow-home-template")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(ROOT)}
    # In the runner: its first request, so it has Airflow imported before the first DAG run.
    returncode, output = run_dag(env, "db", "migrate")
    assert returncode == 0, output[-4000:]
    return home / METADATA_DB


@pytest.fixture(scope="module")
def world(tmp_path_factory, migrated_metadata_db):
    """A simulator, an Airflow home with a migrated metadata database and an environment for
    ``airflow`` commands: all the module's own (its runs, XComs, logs, warehouse file and staging
    folder are apart from other modules'); only the migration is done once per session.

    The simulator also serves what Zoom does not send but a loader must count, not store: values
    in an unknown unit and ``duration`` strings that disagree with the times (``unparsed_values``)."""
    home = tmp_path_factory.mktemp("airflow-home")
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=11, sessions_per_day=10,
                                    unit_faults=True, duration_faults=True),
                    host="127.0.0.1", port=0).start()
    env = airflow_env(home, sim, home / "warehouse.db", home / "staging")
    yield sim, env, home / "warehouse.db"
    sim.stop()


def dags_test(env, *args: str, dag_id: str = "zoom_videosdk_qos", cli: bool = False,
              **overrides: str) -> str:
    """``airflow dags test`` of ``dag_id`` with ``args``, ``overrides`` added to the environment;
    fails the test unless the run succeeded. ``cli``: in a fresh ``airflow`` process, else in the
    runner (the same command, see the module's docstring)."""
    returncode, output = run_dag(env, "dags", "test", dag_id, *args, cli=cli, **overrides)
    assert returncode == 0 and "state=success" in output, output[-4000:]
    return output


def run_dag(env, *argv: str, cli: bool = False, **overrides: str) -> tuple[int, str]:
    """``airflow *argv`` (a ``dags test``) in ``env`` plus ``overrides``: its exit code and its
    output (stdout and stderr)."""
    if cli:
        done = subprocess.run([AIRFLOW, *argv], env={**env, **overrides},
                              capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout + done.stderr
    return _runner().run(list(argv), {**env, **overrides})


class _Runner:
    """The client side of this process's runner (started on first use, stopped at exit)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="zoomqos-dagrunner-"))
        self.log = (self.folder / "runner.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.dagrun"], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lock = threading.Lock()
        self.count = 0
        atexit.register(self.stop)

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
        with self.lock:
            self.count += 1
            output = self.folder / f"run-{self.count}.out"
            assert self.process.stdin and self.process.stdout
            try:
                self.process.stdin.write(json.dumps({"argv": argv, "env": env, "output": str(output)}) + "\n")
                self.process.stdin.flush()
                answer = self.process.stdout.readline()
            except BaseException:  # e.g. pytest-timeout: this run's answer must not be the next one's
                self.process.kill()
                self.process.wait()
                raise
            if not answer:
                self.process.wait(timeout=30)
                raise AssertionError(f"the DAG runner died ({self.process.returncode}): "
                                     f"{(self.folder / 'runner.log').read_text(errors='replace')[-4000:]}")
            returncode = json.loads(answer)["returncode"]
            text = output.read_text(errors="replace")
            output.unlink()
            return returncode, text

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_RUNNER: _Runner | None = None


def _runner() -> _Runner:
    global _RUNNER
    if _RUNNER is None or _RUNNER.process.poll() is not None:
        _RUNNER = _Runner()
    return _RUNNER


def _serve() -> None:
    """The runner: for each request (a JSON line on stdin: argv, env, output file), ``airflow
    *argv`` in this process with ``env`` as its whole environment and its output (fds 1 and 2)
    into the file; answers a JSON line with the exit code. Airflow's settings that are read once
    (the metadata database) are read again for each request, and its connections closed after."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing but answers on the answer pipe
    base = dict(os.environ)
    parser = None
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update(request["env"])
        metadata = Path(os.environ["AIRFLOW_HOME"]) / METADATA_DB
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{metadata}"
        saved = os.dup(1), os.dup(2)
        with open(request["output"], "wb") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            try:
                if parser is None:
                    from airflow.cli import cli_parser

                    parser = cli_parser.get_parser()
                _forget_secrets()
                from airflow import settings

                settings.dispose_orm()
                settings.configure_vars()
                settings.configure_orm()
                args = parser.parse_args(request["argv"])
                try:
                    args.func(args)
                finally:
                    # Closed as a finished ``airflow`` process closes it: the metadata database's
                    # write-ahead log is checkpointed into its file (the template is copied).
                    settings.dispose_orm()
                returncode = 0
            except SystemExit as stop:
                code = stop.code
                returncode = code if isinstance(code, int) else (0 if code is None else 1)
                if isinstance(code, str):
                    print(code, file=sys.stderr)
            except BaseException:  # reported as the run's output, as the CLI would
                import traceback

                traceback.print_exc()
                returncode = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
        os.environ.clear()
        os.environ.update(base)
        answers.write(json.dumps({"returncode": returncode}) + "\n")
        answers.flush()
        if request["argv"][:2] == ["db", "migrate"]:
            _warm_up()


def _forget_secrets() -> None:
    """Each run starts knowing no secret to mask, as a fresh ``airflow`` process does: a secret
    that a run shows before it meets it (and so registers it) is not hidden by an earlier run."""
    for module in ("airflow._shared.secrets_masker.secrets_masker",
                   "airflow.sdk._shared.secrets_masker.secrets_masker"):
        masker = sys.modules.get(module)
        if masker is not None:
            masker._secrets_masker().reset_masker()


def _warm_up() -> None:
    """What the first task run would import (the task runner, the in-process execution API, the
    package), while the test process goes on: no run of it pays for it."""
    try:
        import airflow.cli.commands.dag_command  # noqa: F401
        import airflow.sdk.execution_time.supervisor  # noqa: F401
        import airflow.sdk.execution_time.task_runner  # noqa: F401
        from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

        import zoom_qos.operators  # noqa: F401
        import zoom_qos.tasks  # noqa: F401

        InProcessExecutionAPI().app  # noqa: B018 - builds and caches the versioned API's models
    except Exception:  # only a head start; the runs import what they need anyway
        import traceback

        traceback.print_exc()



def sqlite_conn(path: Path) -> str:
    return json.dumps({"conn_type": "sqlite", "host": str(path)})


def warehouse_rows(path: Path) -> dict[str, dict[tuple, dict]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    rows: dict[str, dict[tuple, dict]] = {}
    with engine.connect() as conn:
        for name in CONTRACT_TABLES:
            table = METADATA.tables[name]
            keyed = {}
            for row in conn.execute(sa.select(table)).mappings():
                row = {k: v for k, v in row.items() if k not in RUN_TIMES}
                keyed[tuple(row[k] for k in PRIMARY_KEYS[name])] = row
            rows[name] = keyed
    engine.dispose()
    return rows


def assert_same_value(table, key, column, got, want):
    if isinstance(want, float) and got is not None:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (table, key, column, got, want)
    else:
        assert got == want, (table, key, column, got, want)


def assert_matches_simulator(rows, expected):
    for name in CONTRACT_TABLES:
        want = {tuple(r[k] for k in PRIMARY_KEYS[name]): r for r in expected[name]}
        assert set(rows[name]) == set(want), f"{name}: keys differ"
        for key, want_row in want.items():
            got_row = rows[name][key]
            for column, value in want_row.items():
                assert_same_value(name, key, column, got_row[column], value)


if __name__ == "__main__":
    _serve()
