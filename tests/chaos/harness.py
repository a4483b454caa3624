"""What the infrastructure-fault runs share: the table they fill, root-only mounts, a private Redis.

Each test of this folder injects one fault of our own infrastructure into a real run (``airflow
dags test`` against the simulator, as an operator would) and records a row of the table that
``make chaos`` prints: the fault, what the run did, the rows lost (0, or the test fails) and the
time from the fault to a complete day.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.dagrun import (
    CONTRACT_TABLES,
    METADATA_DB,
    PRIMARY_KEYS,
    assert_matches_simulator,
    warehouse_rows,
)

#: Set by ``.ci/run``: a fault test that cannot run here (no root, no redis-server) fails instead
#: of skipping.
REQUIRE_ENV = "ZOOM_QOS_REQUIRE_CHAOS"


@dataclass(frozen=True)
class ChaosRow:
    """One line of the fault table."""

    fault: str
    outcome: str
    rows_lost: int
    recovery_seconds: float


#: The rows recorded by this session's tests, in the order they ran.
ROWS: list[ChaosRow] = []


def record(row: ChaosRow) -> None:
    ROWS.append(row)


def table_markdown(rows: list[ChaosRow]) -> str:
    lines = ["| fault | what the run did | rows lost | time to recover |", "|---|---|---:|---:|"]
    lines += [f"| {r.fault} | {r.outcome} | {r.rows_lost} | {r.recovery_seconds:.0f} s |" for r in rows]
    return "\n".join(lines) + "\n"


def cannot_run(reason: str) -> None:
    """Skip, saying why, or fail where the fault tests are required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the fault tests must run here)")
    pytest.skip(reason)


def rows_lost(got: dict[str, dict[tuple, dict]], expected: dict[str, list[dict]]) -> int:
    """Rows the simulator served that the warehouse does not hold (by primary key, every table)."""
    lost = 0
    for name in CONTRACT_TABLES:
        want = {tuple(r[k] for k in PRIMARY_KEYS[name]) for r in expected[name]}
        lost += len(want - set(got.get(name, {})))
    return lost


def assert_day_complete(sim, warehouse_db: Path, day) -> int:  # noqa: ANN001 (a Simulator, a date)
    """The SQLite warehouse holds exactly what the simulator served for ``day``, row for row; returns
    the rows lost, 0 (the table's column)."""
    expected = sim.dataset.expected_rows(day, day)
    got = warehouse_rows(warehouse_db)
    lost = rows_lost(got, expected)
    assert lost == 0, f"{lost} rows of {day} lost"
    assert_matches_simulator(got, expected)
    return lost


# --- mounts (root only) -------------------------------------------------------------------------

def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        cannot_run(f"{what} needs root: mounting a size-capped tmpfs or a read-only bind mount is the "
                   f"only way to fill or lock a folder for a root-run task (chmod stops nothing); "
                   f"running as uid {os.geteuid()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``) mounted at ``path``; unmounted afterwards."""
    _need_root("A full file system")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        cannot_run(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize_tmpfs(path: Path, size: str) -> None:
    """Give a mounted tmpfs more room, keeping what it holds (``mount -o remount,size=``)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` bind-mounted read-only onto itself: root's writes fail with EROFS."""
    _need_root("A read-only folder")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True,
                          text=True)
    if done.returncode:
        cannot_run(f"mount --bind -o ro failed: {done.stderr.strip()}")
    try:
        yield path
    finally:
        writable_again(path)


def writable_again(path: Path) -> None:
    """Undo :func:`read_only` (idempotent)."""
    while subprocess.run(["findmnt", "-n", str(path)], capture_output=True).returncode == 0:
        subprocess.run(["umount", "-l", str(path)], check=False)


def task_tries(home: str | Path, task_id: str) -> list[tuple[int, str]]:
    """(try number, state) of each instance of ``task_id`` in the newest run of ``home``'s metadata
    database: how a test tells a task that failed at once from one that failed after its retries."""
    meta = sqlite3.connect(Path(home) / METADATA_DB)
    try:
        return meta.execute(
            "SELECT try_number, state FROM task_instance WHERE task_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run ORDER BY id DESC LIMIT 1) ORDER BY map_index", (task_id,),
        ).fetchall()
    finally:
        meta.close()


def assert_failed_without_retries(home: str | Path, task_id: str) -> None:
    tries = task_tries(home, task_id)
    assert tries and all(number == 1 for number, _ in tries), tries  # no instance was tried again
    assert "failed" in {state for _, state in tries}, tries


# --- a Redis of the test's own ----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server on a port of its own, without persistence (as this machine's), that a test
    may SIGKILL and start again: the shared one at 6379 is never touched."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            cannot_run("redis-server is not installed (Debian's redis-server package)")
        self.binary = str(binary)
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved (it saves nothing anyway)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None
