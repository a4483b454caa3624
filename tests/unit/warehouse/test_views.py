"""BI views (zoom_qos.warehouse.views) on SQLite and PostgreSQL: known answers and identical results."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from zoom_qos.warehouse import schema
from zoom_qos.warehouse.derived import recompute_all
from zoom_qos.warehouse.migrations import ensure_schema
from zoom_qos.warehouse.sql import UnsupportedDatabaseError, object_prefix
from zoom_qos.warehouse.store import Warehouse
from zoom_qos.warehouse.views import MEDIA_TYPES, VIEWS, view_by_name
from zoom_qos.warehouse.webhook_schema import zoom_session_alerts

T0 = datetime(2025, 3, 1, 10, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
#: The documented defaults (150 ms / 40 ms / 2 %), the same for every media type.
DEFAULT_THRESHOLDS: dict[str, float] = {"latency_ms": 150.0, "jitter_ms": 40.0, "loss_pct": 2.0}
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --------------------------------------------------------------------------- warehouse fixtures
@dataclass
class Db:
    """A built warehouse: engine (schema-translated on PostgreSQL), schema and raw-SQL prefix."""

    dialect: str
    engine: sa.Engine
    schema: str | None
    prefix: str

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> None:
        """Run a statement; the derived tables follow a threshold change as a task's ensure_schema
        makes them."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(statement.replace("{p}", self.prefix)), params or {})
        ensure_schema(self.engine, self.schema)

    def rows(self, view: str, order_by: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            result = conn.execute(sa.text(f"SELECT * FROM {self.prefix}{view} ORDER BY {order_by}"))
            return [dict(row._mapping) for row in result]

    def insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stamp = {"loaded_at": T0} if "loaded_at" in table.c else {"recorded_at": T0}
        # executemany takes its columns from the first row: give every row every key
        keys = dict.fromkeys(k for row in rows for k in row)
        with self.engine.begin() as conn:
            conn.execute(table.insert(), [{**stamp, **dict.fromkeys(keys), **row} for row in rows])
            # Rows written outside the pipeline: derive from them as `zoom-qos warehouse upgrade` does.
            recompute_all(conn, self.schema)


def build_schema(wh: Warehouse) -> str:
    """The real thing: migrations to head and every view, as each load does; returns the prefix."""
    wh.ensure_schema()
    return object_prefix(wh.dialect, wh.schema)


@pytest.fixture()
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Factory: ``make_db("sqlite" | "postgresql")`` builds and returns a fresh :class:`Db`."""
    warehouses: list[Warehouse] = []

    def make(dialect: str) -> Db:
        if dialect == "sqlite":
            url = URL.create("sqlite", database=str(tmp_path / f"wh-{len(warehouses)}.db"))
        else:
            url = request.getfixturevalue("pg_database")
        wh = Warehouse(url)
        warehouses.append(wh)
        prefix = build_schema(wh)
        return Db(wh.dialect, wh.engine, wh.schema, prefix)

    yield make
    for wh in warehouses:
        wh.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, make_db: Any) -> Db:
    return make_db(request.param)


# --------------------------------------------------------------------------- data helpers
def session(session_id: str, start: datetime, user_count: int | None = 2, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "session_name": f"name-{session_id}",
        "start_time": start,
        "end_time": start + timedelta(hours=1),
        "duration_seconds": 3600,
        "user_count": user_count,
        "qos_status": "loaded",
        **extra,
    }


def join(session_id: str, user_id: str, at: datetime, leave: datetime | None, **extra: Any) -> dict[str, Any]:
    row = {"session_id": session_id, "user_id": user_id, "join_time": at, "leave_time": leave}
    row.update({name: None for name in ("device", "network_type", "data_center")})
    row.update(extra)
    return row


def sample(
    joined: dict[str, Any],
    at: datetime,
    stream: str,
    latency: float | None = None,
    jitter: float | None = None,
    loss: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "session_id": joined["session_id"],
        "user_id": joined["user_id"],
        "join_time": joined["join_time"],
        "sampled_at": at,
        "stream": stream,
        "latency_ms": latency,
        "jitter_ms": jitter,
        "avg_loss_pct": loss,
        **extra,
    }


def minute(n: float) -> timedelta:
    return timedelta(minutes=n)


def load_known(db: Db) -> None:
    """The hand-built data set whose answers the tests below state."""
    db.insert(
        schema.sessions,
        [
            session("S1", T0),
            session("S2", T0 + timedelta(hours=2), user_count=None),  # no joins, no samples
            session("S3", datetime(2025, 3, 2, 23, tzinfo=UTC), user_count=1),
        ],
    )
    u1a = join("S1", "u1", T0, T0 + minute(30), device="Windows", network_type="Wired", data_center="SJ")
    u1b = join("S1", "u1", T0 + minute(40), T0 + minute(50.5), device="Windows", network_type="Wired")
    u2 = join("S1", "u2", T0 + minute(5), None, network_type="Wifi", data_center="SJ")  # device unknown
    u3 = join(
        "S3",
        "u3",
        datetime(2025, 3, 2, 23, tzinfo=UTC),
        datetime(2025, 3, 2, 23, 45, tzinfo=UTC),
        device="Mac",
        network_type="Wifi",
    )
    db.insert(schema.session_users, [u1a, u1b, u2, u3])
    samples = [
        # audio: latency 10..200 (5 above 150), jitter 5, loss 0.1
        *(sample(u1a, T0 + minute(i), "audio_input", 10.0 * i, 5.0, 0.1) for i in range(1, 21)),
        sample(u2, T0 + minute(6), "audio_output", None, 50.0, 0.5),  # poor on jitter
        sample(u2, T0 + minute(7), "audio_output"),  # no metrics: not rated
        sample(u1a, T0 + minute(2), "custom_block", 999.0, 999.0, 99.0),  # other: not rated
        # video on the rejoin: one poor (loss 3 %), one fine
        sample(u1b, T0 + minute(41), "video_input", 100.0, 10.0, 3.0),
        sample(u1b, T0 + minute(42), "video_input", 100.0, 10.0, 1.0),
        # screen share at 01:30+02:00 = 23:30 UTC on 2 March: UTC day is 2025-03-02
        sample(u3, datetime(2025, 3, 3, 1, 30, tzinfo=PLUS_TWO), "as_input", 50.0, 1.0, 0.0),
        sample(u3, datetime(2025, 3, 2, 23, 31, tzinfo=UTC), "as_output", 60.0, 1.0, 0.0),
    ]
    db.insert(schema.user_qos, samples)


def norm(value: Any) -> Any:
    """Back-end-neutral form of a view value: ISO text for dates/times, rounded floats."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return norm(parsed)
    return value


def normed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: norm(v) for k, v in row.items()} for row in rows]


def by_key(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(norm(row[k]) for k in keys): {k: norm(v) for k, v in row.items()} for row in rows}


# --------------------------------------------------------------------------- definitions
def test_views_declared_in_dependency_order_with_docs() -> None:
    names = [v.name for v in VIEWS]
    assert names == [
        "qos_samples", "session_quality", "daily_quality", "daily_quality_breakdown", "join_quality",
        "daily_causes", "grade_agreement", "run_health", "daily_completeness", "live_session_quality",
        "alert_comparison",
    ]
    for index, view in enumerate(VIEWS):
        assert view.comment.strip(), view.name
        assert view.columns and all(text.strip() for text in view.columns.values()), view.name
        for dialect in ("sqlite", "postgresql"):
            sql = view.sql(dialect, "PFX.")
            for later in names[index:]:
                assert f"PFX.{later} " not in sql + " ", f"{view.name} reads {later}, declared later"
    with pytest.raises(UnsupportedDatabaseError, match="'mysql'"):
        VIEWS[0].sql("mysql", "")


def test_session_quality_has_every_media_column() -> None:
    columns = view_by_name("session_quality").columns
    for media in MEDIA_TYPES:
        for metric in ("latency_ms", "jitter_ms", "loss_pct"):
            assert f"{media}_avg_{metric}" in columns
            assert f"{media}_p95_{metric}" in columns
        assert f"{media}_poor_share" in columns


@pytest.mark.parametrize("backend", BACKENDS)
def test_view_columns_match_declaration(backend: str, make_db: Any) -> None:
    db = make_db(backend)
    with db.engine.connect() as conn:
        for view in VIEWS:
            result = conn.execute(sa.text(f"SELECT * FROM {db.prefix}{view.name} WHERE 1 = 0"))
            assert list(result.keys()) == list(view.columns), view.name


# --------------------------------------------------------------------------- known answers
def test_qos_samples_media_type_poor_flag_and_day(db: Db) -> None:
    load_known(db)
    rows = db.rows("qos_samples", "sampled_at, stream")
    assert len(rows) == 27
    media = {r["stream"]: r["media_type"] for r in rows}
    assert media == {
        "audio_input": "audio",
        "audio_output": "audio",
        "custom_block": "other",
        "video_input": "video",
        "as_input": "screen_share",
        "as_output": "screen_share",
    }
    poor = [(r["stream"], norm(r["latency_ms"])) for r in rows if r["is_poor"] == 1]
    assert sorted(poor, key=str) == sorted(
        [("audio_input", 10.0 * i) for i in range(16, 21)] + [("audio_output", None), ("video_input", 100.0)],
        key=str,
    )
    unrated = [r["stream"] for r in rows if r["is_poor"] is None]
    assert sorted(unrated) == ["audio_output", "custom_block"]
    days = {r["stream"]: norm(r["day"]) for r in rows if r["session_id"] == "S3"}
    assert days == {"as_input": "2025-03-02", "as_output": "2025-03-02"}
    u2 = next(r for r in rows if r["user_id"] == "u2")
    assert (u2["device"], u2["network_type"], u2["data_center"]) == (None, "Wifi", "SJ")


def test_session_quality_known_answers(db: Db) -> None:
    load_known(db)
    rows = by_key(db.rows("session_quality", "session_id"), "session_id")
    assert set(rows) == {("S1",), ("S2",), ("S3",)}
    s1 = rows[("S1",)]
    assert (s1["user_count"], s1["users"], s1["joins"]) == (2, 2, 3)  # u1 rejoined
    assert s1["minutes"] == 40.5  # 30 + 10.5; u2 never left
    assert s1["samples"] == 25
    assert s1["poor_share"] == round(7 / 23, 9)  # 5 latency + 1 jitter (audio) + 1 loss (video)
    assert s1["audio_avg_latency_ms"] == 105.0
    assert s1["audio_p95_latency_ms"] == 190.0  # nearest rank: 19th of 20
    assert s1["audio_avg_jitter_ms"] == round(150 / 21, 9)
    assert s1["audio_p95_jitter_ms"] == 5.0  # 20th of 21 (50 is the 21st)
    assert s1["audio_avg_loss_pct"] == round(2.5 / 21, 9)
    assert s1["audio_p95_loss_pct"] == 0.1
    assert s1["audio_poor_share"] == round(6 / 21, 9)
    assert s1["video_avg_latency_ms"] == 100.0
    assert s1["video_p95_loss_pct"] == 3.0
    assert s1["video_avg_loss_pct"] == 2.0
    assert s1["video_poor_share"] == 0.5
    assert s1["screen_share_avg_latency_ms"] is None and s1["screen_share_poor_share"] is None
    assert norm(s1["start_time"]) == "2025-03-01T10:00:00.000000+00:00"

    s2 = rows[("S2",)]  # a session without joins or samples still appears
    assert (s2["users"], s2["joins"], s2["minutes"], s2["samples"], s2["poor_share"]) == (0, 0, None, 0, None)
    assert all(s2[f"{m}_avg_latency_ms"] is None for m in MEDIA_TYPES)

    s3 = rows[("S3",)]
    assert (s3["users"], s3["joins"], s3["minutes"], s3["samples"]) == (1, 1, 45.0, 2)
    assert s3["screen_share_avg_latency_ms"] == 55.0 and s3["screen_share_p95_latency_ms"] == 60.0
    assert s3["screen_share_poor_share"] == 0.0 and s3["poor_share"] == 0.0


def test_threshold_update_changes_poor_share(db: Db) -> None:
    load_known(db)
    db.sql("UPDATE {p}qos_thresholds SET latency_ms = 100 WHERE media_type = 'audio'")
    s1 = by_key(db.rows("session_quality", "session_id"), "session_id")[("S1",)]
    assert s1["audio_poor_share"] == round(11 / 21, 9)  # 110..200 and the jitter sample
    assert s1["video_poor_share"] == 0.5  # video threshold untouched (100 is not > 100)
    daily = by_key(db.rows("daily_quality", "day, media_type"), "day", "media_type")
    assert daily[("2025-03-01", "audio")]["poor_samples"] == 11
    db.sql("UPDATE {p}qos_thresholds SET loss_pct = 5 WHERE media_type = 'video'")
    s1 = by_key(db.rows("session_quality", "session_id"), "session_id")[("S1",)]
    assert s1["video_poor_share"] == 0.0


def test_daily_quality_known_answers(db: Db) -> None:
    load_known(db)
    rows = by_key(db.rows("daily_quality", "day, media_type"), "day", "media_type")
    assert set(rows) == {
        ("2025-03-01", "audio"),
        ("2025-03-01", "video"),
        ("2025-03-01", "other"),
        ("2025-03-02", "screen_share"),
    }
    audio = rows[("2025-03-01", "audio")]
    assert (audio["sessions"], audio["users"], audio["samples"], audio["poor_samples"]) == (1, 2, 22, 6)
    assert audio["poor_share"] == round(6 / 21, 9)
    assert (audio["avg_latency_ms"], audio["p95_latency_ms"], audio["p95_jitter_ms"]) == (105.0, 190.0, 5.0)
    other = rows[("2025-03-01", "other")]
    assert (other["samples"], other["poor_samples"], other["poor_share"]) == (1, None, None)
    assert other["avg_latency_ms"] == 999.0
    share = rows[("2025-03-02", "screen_share")]
    assert (share["sessions"], share["users"], share["samples"], share["poor_samples"]) == (1, 1, 2, 0)
    assert (share["avg_latency_ms"], share["p95_latency_ms"], share["avg_loss_pct"]) == (55.0, 60.0, 0.0)


def test_daily_quality_breakdown_known_answers(db: Db) -> None:
    load_known(db)
    rows = by_key(
        db.rows("daily_quality_breakdown", "day, media_type, dimension, dimension_value"),
        "day",
        "media_type",
        "dimension",
        "dimension_value",
    )
    day = "2025-03-01"
    windows = rows[(day, "audio", "device", "Windows")]
    assert (windows["samples"], windows["poor_samples"], windows["poor_share"]) == (20, 5, 0.25)
    assert (windows["users"], windows["p95_latency_ms"]) == (1, 190.0)
    unknown = rows[(day, "audio", "device", "unknown")]  # u2 has no device
    assert (unknown["samples"], unknown["poor_samples"], unknown["poor_share"]) == (2, 1, 1.0)
    assert unknown["avg_latency_ms"] is None and unknown["p95_jitter_ms"] == 50.0
    # data_center: the rejoin (video) has none, the first join and u2 are in SJ
    assert rows[(day, "video", "data_center", "unknown")]["samples"] == 2
    assert rows[(day, "audio", "data_center", "SJ")]["samples"] == 22
    assert rows[(day, "audio", "network_type", "Wired")]["samples"] == 20
    assert rows[("2025-03-02", "screen_share", "network_type", "Wifi")]["p95_latency_ms"] == 60.0
    # every dimension covers the same samples as daily_quality
    daily = by_key(db.rows("daily_quality", "day, media_type"), "day", "media_type")
    for dim in ("device", "network_type", "data_center"):
        for key, row in daily.items():
            parts = [r["samples"] for k, r in rows.items() if k[:3] == (*key, dim)]
            assert sum(parts) == row["samples"], (key, dim)


# --------------------------------------------------------------------------- p95 on both back ends
def random_dataset(seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    sessions_, joins, samples = [], [], []
    for n in range(6):
        sid = f"R{n}"
        start = T0 + timedelta(days=n % 3, hours=n)
        sessions_.append(session(sid, start, user_count=3))
        for u in range(rng.randint(1, 3)):
            device = rng.choice(["A", "B", None])
            grades = {f"{m}_quality": rng.choice(["good", "fair", "poor", "bad", None])
                      for m in ("audio", "video", "screen_share")}
            j = join(sid, f"ru{u}", start + minute(u), start + minute(30 + u), device=device, **grades)
            joins.append(j)
            for i in range(rng.randint(5, 60)):
                for stream in ("audio_input", "video_output", "as_input", "other_x"):
                    def metric(scale: float) -> float | None:
                        if rng.random() < 0.1:
                            return None
                        return float(rng.randint(0, 30)) * scale  # many ties
                    samples.append(sample(j, start + timedelta(seconds=20 * i + u), stream,
                                          metric(10.0), metric(3.0), metric(0.25)))
    return sessions_, joins, samples


MEASURES = (("latency_ms", "latency_ms"), ("jitter_ms", "jitter_ms"), ("avg_loss_pct", "loss_pct"))


def nearest_rank_p95(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    return present[math.ceil(0.95 * len(present)) - 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_p95_is_nearest_rank(backend: str, make_db: Any) -> None:
    db = make_db(backend)
    sessions_, joins, samples = random_dataset()
    db.insert(schema.sessions, sessions_)
    db.insert(schema.session_users, joins)
    db.insert(schema.user_qos, samples)
    media_of = {"audio_input": "audio", "video_output": "video", "as_input": "screen_share"}
    rows = by_key(db.rows("session_quality", "session_id"), "session_id")
    for sess in sessions_:
        sid = sess["session_id"]
        for stream, media in media_of.items():
            mine = [x for x in samples if x["session_id"] == sid and x["stream"] == stream]
            for col, short in MEASURES:
                values = [x[col] for x in mine]
                assert rows[(sid,)][f"{media}_p95_{short}"] == nearest_rank_p95(values), (sid, media, short)
                present = [v for v in values if v is not None]
                expected_avg = round(sum(present) / len(present), 9) if present else None
                assert rows[(sid,)][f"{media}_avg_{short}"] == pytest.approx(expected_avg, abs=1e-8)


@pytest.mark.postgres
def test_both_back_ends_give_identical_figures(make_db: Any) -> None:
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    order = {
        "qos_samples": "session_id, user_id, join_time, sampled_at, stream",
        "session_quality": "session_id",
        "daily_quality": "day, media_type",
        "daily_quality_breakdown": "day, media_type, dimension, dimension_value",
        "join_quality": "session_id, user_id, join_time, media_type",
        "daily_causes": "day, media_type, cause",
        "grade_agreement": "media_type, zoom_grade",
        "run_health": "run_id",
        "daily_completeness": "usage_date",
        "live_session_quality": "session_id, user_id, join_time, media_type",
        "alert_comparison": "session_id",
    }
    for backend in ("sqlite", "postgresql"):
        db = make_db(backend)
        load_known(db)
        load_completeness(db)
        sessions_, joins, samples = random_dataset(seed=5)
        sessions_[1]["qos_status"] = "live"  # in live_session_quality only
        db.insert(schema.sessions, sessions_)
        db.insert(schema.session_users, joins)
        db.insert(schema.user_qos, samples)
        load_runs(db)
        flagged = sessions_[0]["session_id"]
        db.insert(zoom_session_alerts, [{"session_id": flagged, "event_ts": T0, "issues": "Call Reconnection",
                                         "received_at": T0}])
        db.insert(schema.qos_alerts, [{"session_id": "elsewhere", "user_id": "u", "join_time": T0,
                                       "media_type": "video", "first_seen_at": T0, "poor_share": 0.5,
                                       "rated_samples": 4, "window_minutes": 10}])
        results[backend] = {view.name: normed(db.rows(view.name, order[view.name])) for view in VIEWS}
    for view in VIEWS:
        lite, pg = results["sqlite"][view.name], results["postgresql"][view.name]
        assert len(lite) == len(pg) > 0, view.name
        for a, b in zip(lite, pg, strict=True):
            assert a == b, view.name


# --------------------------------------------------------------------------- run_health
def run(run_id: str, outcome: str, finished: datetime | None = T0 + timedelta(seconds=150.5), **counts: Any):
    row: dict[str, Any] = {
        "run_id": run_id,
        "dag_id": "zoom_qos_daily",
        "window_start": date(2025, 3, 1),
        "window_end": date(2025, 3, 1),
        "started_at": T0,
        "finished_at": finished,
        "outcome": outcome,
    }
    for name in ("sessions_listed", "sessions_loaded", "sessions_skipped", "users_loaded", "qos_rows",
                 "system_rows", "api_requests", "retries", "rate_limit_waits", "token_restarts",
                 "unparsed_values"):
        row[name] = counts.get(name, 0)
    return row


def load_runs(db: Db) -> None:
    db.insert(
        schema.pipeline_runs,
        [
            run("r_ok", "success", sessions_listed=3, sessions_loaded=3, users_loaded=7, qos_rows=90,
                api_requests=12, retries=1, rate_limit_waits=2),
            run("r_failed", "failed", unparsed_values=4),
            run("r_unparsed", "success", unparsed_values=3),
            run("r_dq", "success"),
            run("r_token", "success", token_restarts=1),
            run("r_skipsess", "success", sessions_skipped=2),
            run("r_skipped", "skipped"),
            run("r_running", "running", finished=None),
            {"run_id": "r_nulls", "outcome": "success"},
        ],
    )
    db.sql("UPDATE {p}pipeline_runs SET dq_hard_violations = 2 WHERE run_id = 'r_dq'")
    db.sql("UPDATE {p}pipeline_runs SET dq_hard_violations = 0 WHERE run_id <> 'r_dq'")


def test_run_health_labels_and_figures(db: Db) -> None:
    load_runs(db)
    rows = by_key(db.rows("run_health", "run_id"), "run_id")
    labels = {key[0]: row["health"] for key, row in rows.items()}
    assert labels == {
        "r_ok": "healthy",
        "r_failed": "failed",
        "r_unparsed": "degraded",
        "r_dq": "degraded",
        "r_token": "degraded",
        "r_skipsess": "degraded",
        "r_skipped": "skipped",
        "r_running": "running",
        "r_nulls": "healthy",
    }
    ok = rows[("r_ok",)]
    assert ok["duration_seconds"] == 150.5
    assert (ok["sessions_loaded"], ok["users_loaded"], ok["qos_rows"], ok["api_requests"]) == (3, 7, 90, 12)
    assert (ok["retries"], ok["rate_limit_waits"], ok["dq_hard_violations"]) == (1, 2, 0)
    assert (ok["window_start"], ok["window_end"]) == ("2025-03-01", "2025-03-01")
    assert rows[("r_running",)]["duration_seconds"] is None
    assert rows[("r_dq",)]["dq_hard_violations"] == 2


@pytest.mark.postgres
def test_day_is_utc_whatever_the_session_time_zone(make_db: Any) -> None:
    db = make_db("postgresql")
    load_known(db)
    with db.engine.connect() as conn:
        for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):
            conn.exec_driver_sql(f"SET TIME ZONE '{zone}'")
            days = conn.execute(
                sa.text(f"SELECT DISTINCT day FROM {db.prefix}qos_samples WHERE session_id = 'S3'")
            ).scalars().all()
            assert days == [date(2025, 3, 2)], zone
            completeness = conn.execute(
                sa.text(f"SELECT usage_date, warehouse_sessions FROM {db.prefix}daily_completeness "
                        "ORDER BY usage_date")
            ).all()
            assert [tuple(r) for r in completeness] == [(date(2025, 3, 1), 2), (date(2025, 3, 2), 1)], zone
            minutes = conn.execute(
                sa.text(f"SELECT minutes FROM {db.prefix}session_quality WHERE session_id = 'S1'")
            ).scalar_one()
            assert minutes == 40.5


# --------------------------------------------------------------------------- daily_completeness
FETCHED = datetime(2025, 3, 10, 2, tzinfo=UTC)


def usage(day: date, sessions: int | None, users: int | None = None) -> dict[str, Any]:
    return {"usage_date": day, "sessions": sessions, "users": users, "session_minutes": None,
            "fetched_at": FETCHED}


def load_completeness(db: Db) -> None:
    """Sessions of every status around UTC midnights, and Zoom's counts of some of the days.

    Expected per day (zoom, warehouse, loaded, pending, unavailable):
    03-04: 5, 4, 2, 1, 1 (a live session does not count); 03-05: NULL, 1, 0, 1, 0 (no usage row);
    03-06: 2, 0, 0, 0, 0 (no session); 03-07: NULL, 0, ... (usage row without a count);
    03-08: no row (only a live session).
    """
    day = datetime(2025, 3, 4, tzinfo=UTC)
    db.insert(
        schema.sessions,
        [
            session("C-l1", day),  # 00:00 UTC exactly: this day
            session("C-l2", day + timedelta(hours=23, minutes=59, seconds=59)),
            session("C-p1", day + timedelta(hours=12), qos_status="pending", qos_checked_at=FETCHED),
            session("C-u1", day + timedelta(hours=13), qos_status="unavailable", qos_checked_at=FETCHED),
            session("C-live", day + timedelta(hours=14), qos_status="live"),
            # 01:00 at +02:00 on 03-06 is 23:00 UTC on 03-05
            session("C-p2", datetime(2025, 3, 6, 1, tzinfo=PLUS_TWO), qos_status="pending"),
            session("C-live2", datetime(2025, 3, 8, 9, tzinfo=UTC), qos_status="live"),
        ],
    )
    db.insert(
        schema.daily_usage,
        [usage(date(2025, 3, 4), 5, 9), usage(date(2025, 3, 6), 2, 3), usage(date(2025, 3, 7), None)],
    )


COMPLETENESS_COLUMNS = (
    "zoom_sessions", "warehouse_sessions", "sessions_loaded", "sessions_pending", "sessions_unavailable"
)


def test_daily_completeness_known_answers(db: Db) -> None:
    load_completeness(db)
    rows = by_key(db.rows("daily_completeness", "usage_date"), "usage_date")
    figures = {key[0]: tuple(row[c] for c in COMPLETENESS_COLUMNS) for key, row in rows.items()}
    assert figures == {
        "2025-03-04": (5, 4, 2, 1, 1),
        "2025-03-05": (None, 1, 0, 1, 0),
        "2025-03-06": (2, 0, 0, 0, 0),
        "2025-03-07": (None, 0, 0, 0, 0),
    }


def test_daily_completeness_follows_the_tables(db: Db) -> None:
    """A view, not a snapshot: a status change or a new Zoom count shows at once."""
    load_completeness(db)
    db.sql("UPDATE {p}sessions SET qos_status = 'loaded' WHERE session_id = 'C-p1'")
    db.sql("UPDATE {p}sessions SET qos_status = 'loaded' WHERE session_id = 'C-live2'")
    db.insert(schema.daily_usage, [usage(date(2025, 3, 5), 1)])
    rows = by_key(db.rows("daily_completeness", "usage_date"), "usage_date")
    assert tuple(rows[("2025-03-04",)][c] for c in COMPLETENESS_COLUMNS) == (5, 4, 3, 0, 1)
    assert tuple(rows[("2025-03-05",)][c] for c in COMPLETENESS_COLUMNS) == (1, 1, 0, 1, 0)
    assert rows[("2025-03-08",)]["warehouse_sessions"] == 1  # no longer live: counted


def test_daily_completeness_of_the_known_data_set(db: Db) -> None:
    load_known(db)  # sessions only, no Zoom counts: every day is there, zoom_sessions NULL
    rows = db.rows("daily_completeness", "usage_date")
    assert [(norm(r["usage_date"]), r["zoom_sessions"], r["warehouse_sessions"], r["sessions_loaded"])
            for r in rows] == [("2025-03-01", None, 2, 2), ("2025-03-02", None, 1, 1)]


def test_run_health_says_why_a_run_is_degraded(db: Db) -> None:
    load_runs(db)
    db.sql("UPDATE {p}pipeline_runs SET unparsed_values = 1074, token_restarts = 1 "
           "WHERE run_id = 'r_unparsed'")
    rows = by_key(db.rows("run_health", "run_id"), "run_id")
    reasons = {key[0]: row["health_reason"] for key, row in rows.items()}
    assert reasons["r_unparsed"] == ("1,074 values could not be parsed; "
                                     "1 list restarted after a page token expired")
    assert reasons["r_dq"] == "2 rows violate hard data-quality checks"
    assert reasons["r_skipsess"] == "2 sessions were skipped"
    assert reasons["r_ok"] is None and reasons["r_nulls"] is None and reasons["r_skipped"] is None
