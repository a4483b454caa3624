"""Data-quality checks (zoom_qos.warehouse.quality) on SQLite and PostgreSQL, with planted violations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import test_views
from test_views import BACKENDS, PLUS_TWO, T0, Db, join, load_completeness, minute, sample, session, usage

from zoom_qos.warehouse import schema
from zoom_qos.warehouse.quality import (
    CHECKS,
    DAY_CHECKS,
    DEFAULT_HARD_CHECKS,
    SESSION_CHECKS,
    Finding,
    findings_as_json,
    hard_violations,
    run_checks,
)

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
#: The run's days for the day checks: the day before T0, T0's day and the day after.
DAYS = [(T0 - DAY).date(), T0.date(), (T0 + DAY).date()]

# The warehouse fixtures are the view tests' (same schema build, same fresh databases).
make_db = test_views.make_db


def clean_data(db: Db, sid: str = "C1") -> None:
    """A session whose rows pass every check (rejoin, open join, boundary samples)."""
    db.insert(schema.sessions, [session(sid, T0, user_count=2)])
    a = join(sid, "u1", T0, T0 + minute(10))
    b = join(sid, "u1", T0 + minute(20), T0 + minute(30))  # rejoin: still one user
    c = join(sid, "u2", T0, None)  # never left: open-ended
    db.insert(schema.session_users, [a, b, c])
    db.insert(
        schema.user_qos,
        [
            sample(a, T0 - 120 * SECOND, "audio_input", 10.0, 1.0, 0.0, max_loss_pct=100.0, bitrate_kbps=0.0),
            sample(a, T0 + minute(10) + 120 * SECOND, "audio_input", 0.0, 0.0, 100.0),
            sample(b, T0 + minute(25), "video_input", None, None, None),
            sample(c, T0 + timedelta(hours=5), "as_input", 1.0, 1.0, 1.0),
        ],
    )
    db.insert(schema.user_system_qos, [{**_key(a), "sampled_at": T0 + minute(1), "zoom_avg_cpu_pct": 3.0}])
    # the day before: one session without joins, and Zoom counted exactly that one
    db.insert(schema.sessions, [session(f"{sid}-eve", T0 - DAY, user_count=0)])
    db.insert(schema.daily_usage, [usage((T0 - DAY).date(), 1)])


def _key(joined: dict[str, Any]) -> dict[str, Any]:
    return {k: joined[k] for k in ("session_id", "user_id", "join_time")}


def planted_data(db: Db) -> None:
    """Session P1 holds one or more violations of every check; P2 too many users; P9 no row;
    Zoom counted a session the day after T0, the warehouse has none."""
    db.insert(schema.sessions, [session("P1", T0, user_count=1), session("P2", T0, user_count=1)])
    db.insert(schema.daily_usage, [usage((T0 + DAY).date(), 1)])
    a = join("P1", "u1", T0, T0 + minute(10))
    ghost = join("P1", "ghost", T0, T0 + minute(10))  # never inserted: its samples are orphans
    p2 = [join("P2", "u1", T0, None), join("P2", "u2", T0, None)]
    lost = join("P9", "u1", T0, None)  # session_users row without a sessions row
    db.insert(schema.session_users, [a, *p2, lost])
    db.insert(
        schema.user_qos,
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
        schema.user_system_qos,
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
    "zoom_daily_count": 1,
}


def check(db: Db, ids: list[str], **kwargs: Any) -> list[Finding]:
    with db.engine.connect() as conn:
        return run_checks(conn, None, ids, **kwargs)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, make_db: Any) -> Db:
    return make_db(request.param)


def test_clean_data_has_no_findings(db: Db) -> None:
    clean_data(db)
    assert check(db, ["C1", "C1-eve"], days=DAYS) == []
    assert check(db, []) == []


def test_planted_violations_of_every_kind(db: Db) -> None:
    clean_data(db)
    planted_data(db)
    findings = check(db, ["C1", "P1", "P2", "P9"], days=DAYS)
    assert [f.check for f in findings] == list(CHECKS)  # every check found something, in order
    assert {f.check: f.count for f in findings} == EXPECTED
    assert {f.check for f in findings if f.hard} == {"orphan_rows"} == set(DEFAULT_HARD_CHECKS)
    by_check = {f.check: f for f in findings}
    assert "P2" in by_check["users_exceed_user_count"].example
    assert "users=2" in by_check["users_exceed_user_count"].example
    assert "ghost" in by_check["orphan_rows"].example or "P9" in by_check["orphan_rows"].example
    assert by_check["loss_out_of_range"].example.startswith("session=P1 ")
    assert by_check["zoom_daily_count"].example == (
        "2025-03-02: Zoom counted 1 session, the warehouse holds 0"
    )
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
    db.insert(schema.pipeline_runs, [{"run_id": "r1", "outcome": "success"}])
    with db.engine.begin() as conn:  # the run record takes it as JSON and the hard count
        conn.execute(
            sa.text(
                f"UPDATE {db.prefix}pipeline_runs SET dq_findings = :findings, dq_hard_violations = :hard "
                "WHERE run_id = 'r1'"
            ).bindparams(sa.bindparam("findings", type_=schema.pipeline_runs.c.dq_findings.type)),
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
            findings = run_checks(conn, db.schema, ["P1", "P2", "P9"], days=DAYS)
    finally:
        plain.dispose()
    assert {f.check: f.count for f in findings} == EXPECTED


# --------------------------------------------------------------------------- zoom_daily_count
COMPLETENESS_DAYS = [date(2025, 3, 4) + i * DAY for i in range(5)]  # 03-04 .. 03-08


def test_zoom_daily_count_finds_the_days_whose_counts_differ(db: Db) -> None:
    load_completeness(db)  # 03-04: Zoom 5, warehouse 4 (+1 live); 03-06: Zoom 2, warehouse 0
    (finding,) = check(db, [], days=COMPLETENESS_DAYS)
    assert finding == Finding(
        check="zoom_daily_count",
        count=2,
        example="2025-03-04: Zoom counted 5 sessions, the warehouse holds 4",  # the first such day
        hard=False,
    )
    # the same days as the view says differ (one definition)
    differing = [r["usage_date"] for r in db.rows("daily_completeness", "usage_date")
                 if r["zoom_sessions"] is not None and r["zoom_sessions"] != r["warehouse_sessions"]]
    assert len(differing) == finding.count
    # only the run's days are compared
    only = check(db, [], days=[date(2025, 3, 6)])
    assert [(f.count, f.example) for f in only] == [
        (1, "2025-03-06: Zoom counted 2 sessions, the warehouse holds 0")]
    assert check(db, [], days=[date(2025, 3, 5), date(2025, 3, 7), date(2025, 3, 8)]) == []  # not compared
    assert check(db, [], days=[]) == [] and check(db, []) == [] and check(db, [], days=None) == []


def test_zoom_daily_count_equal_counts_utc_days_and_live_sessions(db: Db) -> None:
    load_completeness(db)
    # 03-05 holds one session: C-p2, started 01:00 on 03-06 at +02:00 (23:00 UTC on 03-05)
    db.insert(schema.daily_usage, [usage(date(2025, 3, 5), 1)])
    assert check(db, [], days=[date(2025, 3, 5)]) == []
    db.sql("UPDATE {p}daily_usage SET sessions = 0 WHERE usage_date = '2025-03-05'")
    assert [f.count for f in check(db, [], days=[date(2025, 3, 5)])] == [1]
    # a session that is no longer live counts: 03-04 then holds Zoom's 5
    db.sql("UPDATE {p}sessions SET qos_status = 'pending' WHERE session_id = 'C-live'")
    assert check(db, [], days=[date(2025, 3, 4)]) == []
    # and a session at 23:59:59 UTC belongs to its own day, not the next
    db.insert(schema.sessions, [session("late", datetime(2025, 3, 6, 23, 59, 59, 999999, tzinfo=UTC))])
    assert [f.example for f in check(db, [], days=[date(2025, 3, 6)])] == [
        "2025-03-06: Zoom counted 2 sessions, the warehouse holds 1"]


def test_zoom_daily_count_is_soft_unless_named_hard(db: Db) -> None:
    load_completeness(db)
    findings = check(db, [], days=COMPLETENESS_DAYS, hard_checks={"zoom_daily_count"})
    assert [(f.check, f.hard) for f in findings] == [("zoom_daily_count", True)]
    assert hard_violations(findings) == 2
    assert check(db, [], days=COMPLETENESS_DAYS, checks=["orphan_rows"]) == []
    assert "zoom_daily_count" in CHECKS and set(CHECKS) == set(SESSION_CHECKS) | set(DAY_CHECKS)


def test_zoom_daily_count_chunks_and_day_types(db: Db) -> None:
    load_completeness(db)
    expected = check(db, [], days=COMPLETENESS_DAYS)
    assert check(db, [], days=list(reversed(COMPLETENESS_DAYS)) * 2, chunk_size=1) == expected
    as_datetimes = [datetime(d.year, d.month, d.day, 12, tzinfo=UTC) for d in COMPLETENESS_DAYS]
    assert check(db, [], days=as_datetimes) == expected
    # 01:00 on 03-07 at +02:00 is 03-06 (UTC): Zoom counted 2 that day, the warehouse holds 0
    (finding,) = check(db, [], days=[datetime(2025, 3, 7, 1, tzinfo=PLUS_TWO)])
    assert finding.example.startswith("2025-03-06: ")
    with pytest.raises(TypeError, match="dates"):
        check(db, [], days=["2025-03-04"])  # type: ignore[list-item]


@pytest.mark.postgres
def test_zoom_daily_count_example_is_iso_whatever_the_date_style(make_db: Any) -> None:
    db = make_db("postgresql")
    load_completeness(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET DateStyle TO 'SQL, DMY'")
        conn.exec_driver_sql("SET TIME ZONE 'Pacific/Kiritimati'")
        (finding,) = run_checks(conn, None, [], days=COMPLETENESS_DAYS)
    assert finding.example == "2025-03-04: Zoom counted 5 sessions, the warehouse holds 4"
    assert finding.count == 2
