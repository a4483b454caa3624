"""Data-quality checks (zoom_qos.quality) on SQLite and PostgreSQL, with planted violations."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import test_views
from test_views import BACKENDS, T0, Db, join, minute, sample, session

from zoom_qos import schema as s
from zoom_qos.quality import (
    CHECKS,
    DEFAULT_HARD_CHECKS,
    Finding,
    findings_as_json,
    hard_violations,
    run_checks,
)

SECOND = timedelta(seconds=1)

# The warehouse fixtures are the view tests' (same schema build, same fresh databases).
make_db = test_views.make_db


def clean_data(db: Db, sid: str = "C1") -> None:
    """A session whose rows pass every check (rejoin, open join, boundary samples)."""
    db.insert(s.sessions, [session(sid, T0, user_count=2)])
    a = join(sid, "u1", T0, T0 + minute(10))
    b = join(sid, "u1", T0 + minute(20), T0 + minute(30))  # rejoin: still one user
    c = join(sid, "u2", T0, None)  # never left: open-ended
    db.insert(s.session_users, [a, b, c])
    db.insert(
        s.user_qos,
        [
            sample(a, T0 - 120 * SECOND, "audio_input", 10.0, 1.0, 0.0, max_loss_pct=100.0, bitrate_kbps=0.0),
            sample(a, T0 + minute(10) + 120 * SECOND, "audio_input", 0.0, 0.0, 100.0),
            sample(b, T0 + minute(25), "video_input", None, None, None),
            sample(c, T0 + timedelta(hours=5), "as_input", 1.0, 1.0, 1.0),
        ],
    )
    db.insert(s.user_system_qos, [{**_key(a), "sampled_at": T0 + minute(1), "zoom_avg_cpu_pct": 3.0}])


def _key(joined: dict[str, Any]) -> dict[str, Any]:
    return {k: joined[k] for k in ("session_id", "user_id", "join_time")}


def planted_data(db: Db) -> None:
    """Session P1 holds one or more violations of every check; P2 too many users; P9 no row."""
    db.insert(s.sessions, [session("P1", T0, user_count=1), session("P2", T0, user_count=1)])
    a = join("P1", "u1", T0, T0 + minute(10))
    ghost = join("P1", "ghost", T0, T0 + minute(10))  # never inserted: its samples are orphans
    p2 = [join("P2", "u1", T0, None), join("P2", "u2", T0, None)]
    lost = join("P9", "u1", T0, None)  # session_users row without a sessions row
    db.insert(s.session_users, [a, *p2, lost])
    db.insert(
        s.user_qos,
        [
            # loss_out_of_range: 2 rows
            sample(a, T0 + minute(1), "audio_input", 10.0, 1.0, 120.0),
            sample(a, T0 + minute(1), "audio_output", 10.0, 1.0, 0.0, max_loss_pct=-0.5),
            # negative_metric: 3 rows
            sample(a, T0 + minute(2), "audio_input", -5.0, 1.0, 0.0),
            sample(a, T0 + minute(2), "audio_output", 1.0, -1.0, 0.0),
            sample(a, T0 + minute(2), "video_input", 1.0, 1.0, 0.0, bitrate_kbps=-1.0),
            # sample_outside_join: 2 user_qos rows (one just early, one late)
            sample(a, T0 - 121 * SECOND, "audio_input", 1.0, 1.0, 0.0),
            sample(a, T0 + minute(10) + 121 * SECOND, "audio_input", 1.0, 1.0, 0.0),
            # orphan_rows: a sample of a join that does not exist
            sample(ghost, T0 + minute(1), "audio_input", 1.0, 1.0, 0.0),
        ],
    )
    db.insert(
        s.user_system_qos,
        [
            {**_key(a), "sampled_at": T0 + minute(15)},  # sample_outside_join (late)
            {**_key(ghost), "sampled_at": T0 + minute(1)},  # orphan_rows
        ],
    )


EXPECTED = {
    "loss_out_of_range": 2,
    "negative_metric": 3,
    "sample_outside_join": 3,
    "users_exceed_user_count": 1,
    "orphan_rows": 3,
}


def check(db: Db, ids: list[str], **kwargs: Any) -> list[Finding]:
    with db.engine.connect() as conn:
        return run_checks(conn, None, ids, **kwargs)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, make_db: Any) -> Db:
    return make_db(request.param)


def test_clean_data_has_no_findings(db: Db) -> None:
    clean_data(db)
    assert check(db, ["C1"]) == []
    assert check(db, []) == []


def test_planted_violations_of_every_kind(db: Db) -> None:
    clean_data(db)
    planted_data(db)
    findings = check(db, ["C1", "P1", "P2", "P9"])
    assert [f.check for f in findings] == list(CHECKS)  # every check found something, in order
    assert {f.check: f.count for f in findings} == EXPECTED
    assert {f.check for f in findings if f.hard} == {"orphan_rows"} == set(DEFAULT_HARD_CHECKS)
    by_check = {f.check: f for f in findings}
    assert "P2" in by_check["users_exceed_user_count"].example
    assert "users=2" in by_check["users_exceed_user_count"].example
    assert "ghost" in by_check["orphan_rows"].example or "P9" in by_check["orphan_rows"].example
    assert by_check["loss_out_of_range"].example.startswith("session=P1 ")
    assert all(0 < len(f.example) <= 200 for f in findings)
    assert hard_violations(findings) == 3


def test_only_the_given_sessions_are_checked(db: Db) -> None:
    clean_data(db)
    planted_data(db)
    assert check(db, ["C1"]) == []
    only_p2 = check(db, ["P2"])
    assert [(f.check, f.count) for f in only_p2] == [("users_exceed_user_count", 1)]
    only_p9 = check(db, ["P9"])
    assert [(f.check, f.count, f.hard) for f in only_p9] == [("orphan_rows", 1, True)]


def test_margin_is_a_parameter(db: Db) -> None:
    planted_data(db)
    tight = {f.check: f.count for f in check(db, ["P1"], margin_seconds=0)}
    loose = {f.check: f.count for f in check(db, ["P1"], margin_seconds=3600)}
    assert tight["sample_outside_join"] == 3
    assert "sample_outside_join" not in loose


def test_chunks_give_the_same_answer(db: Db) -> None:
    clean_data(db)
    planted_data(db)
    ids = [f"missing-{i}" for i in range(1200)] + ["P1", "C1", "P2", "P9", "P1"]  # 3 chunks of <= 500
    expected = check(db, ["C1", "P1", "P2", "P9"])
    assert check(db, ids) == expected
    assert check(db, ["P9", "P1", "C1", "P2"], chunk_size=1) == expected
    with pytest.raises(ValueError, match="chunk_size"):
        check(db, ids, chunk_size=501)


def test_hard_checks_and_selection_can_be_overridden(db: Db) -> None:
    planted_data(db)
    findings = check(db, ["P1", "P2", "P9"], hard_checks={"loss_out_of_range"})
    assert {f.check for f in findings if f.hard} == {"loss_out_of_range"}
    assert hard_violations(findings) == 2
    assert [f.check for f in check(db, ["P1"], checks=["negative_metric"])] == ["negative_metric"]
    with pytest.raises(ValueError, match="Unknown data-quality checks: nope"):
        check(db, ["P1"], hard_checks={"nope"})


def test_findings_as_json_for_the_run_record(db: Db) -> None:
    planted_data(db)
    findings = check(db, ["P1", "P2", "P9"])
    record = findings_as_json(findings)
    assert json.loads(json.dumps(record)) == record
    assert record[0] == {
        "check": findings[0].check,
        "count": findings[0].count,
        "example": findings[0].example,
        "hard": findings[0].hard,
    }
    db.insert(s.pipeline_runs, [{"run_id": "r1", "outcome": "success"}])
    with db.engine.begin() as conn:  # the run record takes it as JSON and the hard count
        conn.execute(
            sa.text(
                f"UPDATE {db.prefix}pipeline_runs SET dq_findings = :findings, dq_hard_violations = :hard "
                "WHERE run_id = 'r1'"
            ).bindparams(sa.bindparam("findings", type_=s.pipeline_runs.c.dq_findings.type)),
            {"findings": record, "hard": hard_violations(findings)},
        )
    health = {r["run_id"]: r["health"] for r in db.rows("run_health", "run_id")}
    assert health == {"r1": "degraded"}


@pytest.mark.postgres
def test_schema_argument_translates_tables(make_db: Any) -> None:
    db = make_db("postgresql")
    planted_data(db)
    plain = sa.create_engine(db.engine.url)  # no schema_translate_map: tables are in zoom_qos
    try:
        with plain.connect() as conn:
            findings = run_checks(conn, db.schema, ["P1", "P2", "P9"])
    finally:
        plain.dispose()
    assert {f.check: f.count for f in findings} == EXPECTED
