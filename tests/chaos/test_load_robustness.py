"""Bulk loads on PostgreSQL survive SIGKILL mid-transaction and concurrent overlapping runs.

The loading happens in subprocesses (``tests/integration/load_worker.py``) so it can really be
killed. Each session's rows in all six load tables (contract + raw) are compared by fingerprint
with clean loads of the "old" and "new" data into separate schemas of the same database.

Part of ``make chaos`` (marker ``chaos``, as everything in this folder), not ``make test``: a loader
process killed mid-transaction and two loader processes at once are what the deployment does to
the code, not the code itself. Needs only the PostgreSQL server at 127.0.0.1:5432; on CI
(``ZOOM_QOS_REQUIRE_POSTGRES=1``) it fails instead of skipping without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.integration import load_worker
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema as tables
from zoom_qos.warehouse.store import Warehouse

# Fixture pg_database: a fresh PostgreSQL database, dropped afterwards (skip/fail rule inside).
pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(load_worker.__file__)
LOAD_TABLES = (
    tables.sessions,
    tables.raw_sessions,
    tables.session_users,
    tables.raw_session_users,
    tables.user_qos,
    tables.user_system_qos,
)
SCHEMA = "zoom_qos"


def fingerprints(wh: Warehouse) -> dict[str, tuple]:
    """Per session id: its rows (all columns but ``loaded_at``) in every load table, in key order."""
    per_session: dict[str, dict[str, list]] = defaultdict(lambda: {t.name: [] for t in LOAD_TABLES})
    with wh.engine.connect() as conn:
        for table in LOAD_TABLES:
            columns = [c for c in table.columns if c.name != "loaded_at"]
            for row in conn.execute(sa.select(*columns).order_by(*table.primary_key.columns)):
                per_session[row.session_id][table.name].append(json.dumps(tuple(row), default=str))
    return {sid: tuple(tuple(tables[t.name]) for t in LOAD_TABLES) for sid, tables in per_session.items()}


def clean_load(url: URL, schema: str, version: str, indexes: range) -> dict[str, tuple]:
    wh = Warehouse(url, schema)
    wh.ensure_schema()
    wh.load_sessions(load_worker.items(indexes, version), ParseIssues())
    result = fingerprints(wh)
    wh.dispose()
    return result


def worker(url: URL, *args: Any, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins")])
    return subprocess.Popen(
        [sys.executable, str(WORKER), url.render_as_string(hide_password=False), SCHEMA, *map(str, args)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{err[-3000:]}"
    return out


@pytest.fixture()
def warehouse(pg_database: URL) -> Iterator[Warehouse]:
    wh = Warehouse(pg_database, SCHEMA)
    wh.ensure_schema()
    yield wh
    wh.dispose()


def test_data_versions_really_differ() -> None:
    for i in range(40):
        old, new = load_worker.make_users(i, "old"), load_worker.make_users(i, "new")
        assert old != new
    counts = [
        (len(load_worker.make_users(i, "old")), len(load_worker.make_users(i, "new"))) for i in range(40)
    ]
    assert any(o > n for o, n in counts) and any(o < n for o, n in counts)


def test_sigkill_mid_load_leaves_whole_sessions(
    warehouse: Warehouse, pg_database: URL, tmp_path: Path
) -> None:
    n = 40
    indexes = range(n)
    expected_old = clean_load(pg_database, "expected_old", "old", indexes)
    expected_new = clean_load(pg_database, "expected_new", "new", indexes)
    assert all(expected_old[sid] != expected_new[sid] for sid in expected_old)

    warehouse.load_sessions(load_worker.items(indexes, "old"), ParseIssues())
    assert fingerprints(warehouse) == expected_old

    ready = tmp_path / "ready.json"
    pause_after = 5
    proc = worker(
        pg_database,
        "new",
        0,
        n - 1,
        "--max-rows",
        150,
        env={load_worker.PAUSE_ENV: str(pause_after), load_worker.READY_ENV: str(ready)},
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"worker exited before pausing:\n{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("worker did not reach the pause point")
        time.sleep(0.05)
    state = json.loads(ready.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # inside transaction pause_after + 1
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    committed, in_flight = set(state["committed"]), set(state["in_flight"])
    assert len(committed) >= pause_after and in_flight and not committed & in_flight
    actual = fingerprints(warehouse)
    assert set(actual) == set(expected_old)
    partial = [sid for sid in actual if actual[sid] not in (expected_old[sid], expected_new[sid])]
    assert partial == []
    now_new = {sid for sid in actual if actual[sid] == expected_new[sid]}
    assert now_new == committed  # the in-flight group rolled back completely

    # the rerun completes (no locks left behind) and equals a clean load of the new version
    finish(worker(pg_database, "new", 0, n - 1, "--max-rows", 150))
    assert fingerprints(warehouse) == expected_new
    assert warehouse.count_rows()["sessions"] == n


def test_concurrent_overlapping_loads(warehouse: Warehouse, pg_database: URL) -> None:
    expected_new = clean_load(pg_database, "expected_new", "new", range(90))
    warehouse.load_sessions(load_worker.items(range(90), "old"), ParseIssues())

    for round_ in range(3):
        first = worker(pg_database, "new", 0, 59, "--shuffle", 2 * round_, "--repeat", 2, "--max-rows", 200)
        second = worker(
            pg_database, "new", 30, 89, "--shuffle", 2 * round_ + 1, "--repeat", 2, "--max-rows", 200
        )
        outputs = [finish(first), finish(second)]
        for out in outputs:
            summaries = [json.loads(line) for line in out.splitlines()]
            assert [x["loaded"] for x in summaries] == [60, 60]
            assert all(x["transactions"] > 5 for x in summaries)  # many interleaved transactions
        assert fingerprints(warehouse) == expected_new

    with warehouse.engine.connect() as conn:
        for table in LOAD_TABLES:
            keys = [c for c in table.primary_key.columns]
            total = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            distinct = conn.execute(
                sa.select(sa.func.count()).select_from(sa.select(*keys).distinct().subquery())
            ).scalar_one()
            assert total == distinct, table.name
    expected_rows = Warehouse(pg_database, "expected_new")
    assert warehouse.count_rows() == expected_rows.count_rows()
    expected_rows.dispose()
