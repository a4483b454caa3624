"""The live DAG as a user runs it: ``airflow dags test zoom_videosdk_qos_live``, twice, the
simulator's clock moved on between the polls (the first in a fresh ``airflow`` process, as a user
types it, the second in the test's DAG runner: the same command, see ``dagrun``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.conftest import API_SECRET
from tests.integration.dagrun import dags_test

pytestmark = pytest.mark.e2e

LIVE_DAG = "zoom_videosdk_qos_live"


def poll(env: dict[str, str], cli: bool = False) -> str:
    return dags_test(env, dag_id=LIVE_DAG, cli=cli)


def test_the_live_dag_polls_sessions_in_progress_and_records_each_poll(world):
    sim, env, db = world
    first = poll(env, cli=True)
    sim.advance(180)
    second = poll(env)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT outcome, sessions_listed, api_requests FROM pipeline_runs "
                                    "WHERE dag_id = :d ORDER BY started_at"), {"d": LIVE_DAG}).all()
        live = conn.execute(sa.text("SELECT count(*) FROM sessions WHERE qos_status = 'live'")).scalar_one()
        samples = conn.execute(sa.text(
            "SELECT count(*) FROM user_qos q JOIN sessions s ON s.session_id = q.session_id "
            "WHERE s.qos_status = 'live'")).scalar_one()
        view = conn.execute(sa.text("SELECT count(*) FROM live_session_quality")).scalar_one()
    engine.dispose()
    assert [r.outcome for r in runs] == ["success", "success"]
    assert all(r.sessions_listed >= 1 and r.api_requests >= 2 for r in runs)
    assert live >= 1 and samples > 0 and view > 0
    assert API_SECRET not in first + second
