"""``zoom-qos warehouse upgrade``: an older warehouse migrated in place and its derived tables
recomputed from the stored samples, rows changed outside the pipeline repaired, errors in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import URL

from tests.unit.warehouse.test_derived import DAY1, assert_equals_from_scratch, load, random_session
from tests.unit.warehouse.test_migrations import version
from zoom_qos.warehouse import migrations
from zoom_qos.warehouse.derived_schema import quality_joins, quality_sessions
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

SECRET = "n0t-a-real-p@ssword-8d1e"
#: The console script, as a user runs it (installed beside this interpreter by the editable install).
ZOOM_QOS = Path(sys.executable).with_name("zoom-qos")


def zoom_qos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ZOOM_QOS), *args], capture_output=True, text=True, timeout=300)


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str, url: URL) -> None:
    """The warehouse as an Airflow connection in an ``AIRFLOW_CONN_*`` JSON variable."""
    if url.get_backend_name() == "sqlite":
        fields = {"conn_type": "sqlite", "host": url.database}
    else:
        fields = {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
                  "schema": url.database, "password": SECRET}
    monkeypatch.setenv("AIRFLOW_CONN_" + conn_id.upper(), json.dumps(fields))


def count(wh: Warehouse, table: sa.Table) -> int:
    with wh.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_upgrade_migrates_an_older_warehouse_and_derives_from_its_samples(
    warehouse_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = Warehouse(warehouse_url)
    try:
        # A warehouse of the previous version with data: loaded at head, then taken back to 0005
        # (which keeps every data row and drops the derived tables).
        wh.ensure_schema()
        a, b = random_session("A", DAY1), random_session("B", DAY1 + timedelta(hours=3))
        load(wh, SessionInput(*a), SessionInput(*b))
        with wh.engine.begin() as conn:
            command.downgrade(migrations.alembic_config(conn, wh.schema), "0005_live")
        assert version(wh) == "0005_live"

        define(monkeypatch, "old_wh", warehouse_url)
        done = zoom_qos("warehouse", "upgrade", "--conn-id", "old_wh")
        out, err = done.stdout, done.stderr
        assert done.returncode == 0, err
        assert version(wh) == migrations.head_revision()
        assert "Upgraded" in out and "samples" in out and "derived tables: 2/2 sessions (100 %)" in err
        assert SECRET not in out + err
        assert count(wh, quality_sessions) == 2 and count(wh, quality_joins) > 0
        assert_equals_from_scratch(wh)
    finally:
        wh.dispose()


def test_upgrade_repairs_rows_changed_outside_the_pipeline(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = warehouse
    load(wh, SessionInput(*random_session("A", DAY1)))
    prefix = object_prefix(wh.dialect, wh.schema)
    with wh.engine.begin() as conn:  # an analyst "fixes" samples by hand
        conn.execute(sa.text(f"UPDATE {prefix}user_qos SET latency_ms = 999 WHERE stream = 'audio_input'"))
    with pytest.raises(AssertionError):
        assert_equals_from_scratch(wh)
    define(monkeypatch, "wh", wh.url)
    done = zoom_qos("warehouse", "upgrade", "--conn-id", "wh")
    assert done.returncode == 0, done.stderr
    assert_equals_from_scratch(wh)
    with wh.engine.connect() as conn:
        issues = conn.execute(sa.text(f"SELECT issues FROM {prefix}join_quality WHERE media_type = 'audio'"))
        assert all("high_latency" in row[0] for row in issues)


def test_an_unreachable_warehouse_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    url = URL.create("postgresql+psycopg", username="nobody", host="127.0.0.1", port=1, database="none")
    define(monkeypatch, "gone", url)
    done = zoom_qos("warehouse", "upgrade", "--conn-id", "gone")
    out, err = done.stdout, done.stderr
    assert done.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("zoom-qos: error: the warehouse failed") and "Connection refused" in last, err
    assert "check its Airflow connection" in last and len(err.strip().splitlines()) == 2  # what, then why
    assert "Traceback" not in err and SECRET not in out + err


def test_the_console_script_says_what_it_does() -> None:
    done = zoom_qos("warehouse", "upgrade", "--help")
    assert done.returncode == 0 and "--conn-id" in done.stdout and "zoom_qos_warehouse" in done.stdout
    done = zoom_qos("warehouse", "downgrade")
    assert done.returncode == 2 and "invalid choice: 'downgrade'" in done.stderr
