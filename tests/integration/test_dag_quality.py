"""Call quality end to end: the simulator's scripted calls (known causes) loaded by the real DAG
(``airflow dags test``) into SQLite and PostgreSQL, then read back from ``join_quality``.

Each scripted call says which issues and cause each join must get (``Dataset.quality_scenarios``):
a broken uplink heard by everyone (``remote_sender`` naming the sender), a bad downlink, a
CPU-starved device, weak Wi-Fi, a whole-session outage, a reconnect. The MOS of chosen samples is
checked against the contract's formula, and the derived rows against a from-scratch recomputation
after a reload and a threshold change.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET
from tests.integration.dagrun import METADATA_DB, airflow_env, dags_test, sqlite_conn
from tests.unit.warehouse.test_derived import assert_equals_from_scratch, contract_mos
from tests.warehouse_fixtures import create_pg_database, drop_pg_database, pg_admin_engine
from zoom_qos.warehouse.derived_schema import quality_joins
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory, migrated_metadata_db: Any) -> Iterator[tuple]:
    """A simulator serving the scripted calls (and a few ordinary sessions), an Airflow home."""
    home = tmp_path_factory.mktemp("airflow-home-quality")
    shutil.copyfile(migrated_metadata_db, home / METADATA_DB)
    sim = Simulator(
        SimulatorConfig(
            api_key=API_KEY, api_secret=API_SECRET, seed=23, sessions_per_day=3, quality_scenarios=True
        ),
        host="127.0.0.1",
        port=0,
    ).start()
    env = airflow_env(home, sim, home / "warehouse.db", home / "staging")
    yield sim, env, home
    sim.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, scripted: tuple, tmp_path: Any) -> Iterator[tuple[str, Warehouse]]:
    """The warehouse connection (JSON of AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE) and the same warehouse."""
    if request.param == "sqlite":
        path = tmp_path / "quality.db"
        wh = Warehouse(URL.create("sqlite", database=str(path)))
        yield sqlite_conn(path), wh
        wh.dispose()
        return
    admin = pg_admin_engine()
    url = create_pg_database(admin)
    conn = json.dumps(
        {
            "conn_type": "postgres",
            "host": url.host,
            "port": url.port,
            "login": url.username,
            "schema": url.database,
        }
    )
    wh = Warehouse(url)
    yield conn, wh
    wh.dispose()
    drop_pg_database(admin, url)
    admin.dispose()


def found_rows(wh: Warehouse, session_ids: list[str]) -> dict[tuple, dict[str, Any]]:
    with wh.engine.connect() as conn:
        rows = conn.execute(sa.select(quality_joins).where(quality_joins.c.session_id.in_(session_ids)))
        return {(r.session_id, r.user_id, r.join_time, r.media_type): dict(r._mapping) for r in rows}


def test_each_scripted_call_gets_its_issues_cause_and_sender(scripted: tuple, target: tuple) -> None:
    sim, env, _ = scripted
    conn_json, wh = target
    scenarios = sim.dataset.quality_scenarios()
    day = sim.dataset.quality_day.isoformat()
    params = json.dumps({"from_date": day, "to_date": day})
    dags_test(env, "-c", params, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=conn_json)

    found = found_rows(wh, [s["id"] for s in scenarios])
    for scenario in scenarios:
        for want in scenario["expected"]:
            key = (scenario["id"], want["user_id"], want["join_time"], want["media_type"])
            assert key in found, (scenario["kind"], key)
            got = found[key]
            assert (got["issues"], got["cause"], got["cause_user_id"]) == (
                want["issues"],
                want["cause"],
                want["cause_user_id"],
            ), (scenario["kind"], want, got)
    kinds = {s["kind"]: s for s in scenarios}
    causes = {row["cause"] for row in found.values()}
    assert {
        "own_uplink",
        "remote_sender",
        "own_downlink",
        "device_cpu",
        "weak_wifi",
        "session_wide",
    } <= causes
    assert any(
        "reconnected" in row["issues"]
        for row in found.values()
        if row["session_id"] == kinds["reconnect"]["id"]
    )

    # The MOS of the samples the broken uplink's listeners heard follows the formula.
    prefix = object_prefix(wh.dialect, wh.schema)
    with wh.engine.connect() as c:
        samples = (
            c.execute(
                sa.text(
                    f"SELECT latency_ms, jitter_ms, avg_loss_pct, mos FROM {prefix}qos_samples "
                    "WHERE session_id = :sid AND media_type = 'audio' AND direction = 'receive' "
                    "ORDER BY sampled_at"
                ),
                {"sid": kinds["broken_uplink"]["id"]},
            )
            .tuples()
            .all()
        )
    assert len(samples) >= 20
    for latency, jitter, loss, mos in samples:
        assert math.isclose(mos, contract_mos(latency, jitter, loss), abs_tol=0.01)
    assert min(s[3] for s in samples) < 3.6 < max(s[3] for s in samples)  # bad and good minutes
    assert_equals_from_scratch(wh)

    # A reload of the day after a threshold change: the derived rows follow, equal to a recomputation.
    with wh.engine.begin() as c:
        c.execute(sa.text(f"UPDATE {prefix}qos_thresholds SET latency_ms = 20 WHERE media_type = 'audio'"))
    dags_test(env, "-c", params, AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE=conn_json)
    after = found_rows(wh, [s["id"] for s in scenarios])
    assert_equals_from_scratch(wh)
    assert [k for k in after if after[k]["cause"] != found[k]["cause"] and k[3] == "audio"]
    assert all(after[k] == found[k] for k in after if k[3] == "video")
