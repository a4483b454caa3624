"""The derived tables (zoom_qos.warehouse.derived) kept by the load equal a from-scratch recomputation
after every kind of change, on SQLite and PostgreSQL; the MOS follows the contract's formula."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests import quality_reference
from tests.builders import qos_sample, stream_metrics, zoom_session, zoom_user
from zoom_qos.transform.parsing import ParseIssues
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.derived import recompute_all
from zoom_qos.warehouse.derived_schema import DERIVED_TABLES, quality_joins
from zoom_qos.warehouse.plan import SessionInput
from zoom_qos.warehouse.sql import object_prefix
from zoom_qos.warehouse.store import Warehouse

DAY1 = datetime(2025, 3, 1, 9, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 23, 50, tzinfo=UTC)  # its joins run past midnight: two sample days


def _stream(rng: random.Random, bad: bool, video: bool = False) -> dict[str, Any]:
    latency = rng.choice([280, 320, 410]) if bad else rng.choice([20, 40, 60, 90])
    extra: dict[str, Any] = {}
    if video:
        extra = {
            "resolution": rng.choice(["1280*720", "640*360", "320*180"]),
            "frame_rate": f"{rng.choice([5, 8, 15, 25, 30])} fps",
        }
    return stream_metrics(
        latency=f"{latency} ms",
        jitter=f"{rng.choice([2, 8, 55]) if bad else 4} ms",
        avg_loss=f"{rng.choice([0.1, 3.5, 9.0]) if bad else 0.2}%",
        **extra,
    )


def random_user(
    rng: random.Random, user_id: str, join: datetime, minutes: int, **fields: Any
) -> dict[str, Any]:
    """A join with a minute of samples per minute: four streams, CPU and Wi-Fi, bad spells at random."""
    samples = []
    bad_send, bad_receive = rng.random() < 0.4, rng.random() < 0.4
    hot, weak = rng.random() < 0.2, rng.random() < 0.2  # a CPU-starved device, a weak Wi-Fi signal
    for i in range(minutes):
        at = join + timedelta(minutes=i, seconds=5)
        sends_bad, hears_bad = bad_send and rng.random() < 0.7, bad_receive and rng.random() < 0.7
        samples.append(
            qos_sample(
                at,
                audio_input=_stream(rng, sends_bad),
                audio_output=_stream(rng, hears_bad),
                video_input=_stream(rng, sends_bad, video=True),
                video_output=_stream(rng, hears_bad, video=True),
                cpu_usage={
                    "zoom_max_cpu_usage": f"{rng.choice([93, 60] if hot else [20, 60])}%",
                    "system_max_cpu_usage": f"{rng.choice([96, 70] if hot else [30, 70])}%",
                },
                wifi_rssi={"avg_rssi": rng.choice([-78, -60] if weak else [-45, -60]), "rssi_unit": "dBm"},
                cpu_pressure_level=rng.choice(["serious", "fair"] if hot else ["nominal", "fair"]),
            )
        )
    return zoom_user(
        user_id,
        join=join,
        leave=join + timedelta(minutes=minutes),
        samples=samples,
        network_type=rng.choice(["Wifi", "Wired", None]),
        data_center=rng.choice(["SC", "NY"]),
        **fields,
    )


def random_session(seed: str, start: datetime, users: int = 4) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = random.Random(seed)
    joins = []
    for u in range(users):
        join = start + timedelta(minutes=rng.randint(0, 3))
        joins.append(random_user(rng, f"{seed}-u{u}", join, rng.randint(6, 20)))
    if rng.random() < 0.6:  # a reconnect: the first user again, within seconds
        first = joins[0]
        leave = datetime.fromisoformat(first["leave_time"].replace("Z", "+00:00"))
        joins.append(random_user(rng, first["id"], leave + timedelta(seconds=rng.choice([30, 90, 400])), 5))
    return zoom_session(seed, start=start, length=timedelta(minutes=30), users=users), joins


def derived_rows(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in DERIVED_TABLES:
        rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).tuples().all()
        out[table.name] = [tuple(row) for row in rows]
    return out


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    """Equal rows, floats within 1e-9 (a mean's last digit depends on the order it summed in)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def assert_equals_from_scratch(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """The derived rows the loads left equal those recomputed from the stored rows (rolled back)."""
    with wh.engine.connect() as conn:
        kept = derived_rows(conn)
        conn.rollback()
        with conn.begin() as transaction:
            recompute_all(conn, wh.schema)
            fresh = derived_rows(conn)
            transaction.rollback()
    for name in kept:
        assert same(kept[name], fresh[name]), (name, kept[name], fresh[name])
    return kept


def load(wh: Warehouse, *items: SessionInput) -> None:
    wh.load_sessions(list(items), ParseIssues())


def test_loads_keep_the_derived_tables_equal_to_a_recomputation(warehouse: Warehouse) -> None:
    wh = warehouse
    a, b, c = (random_session(s, DAY1 + timedelta(hours=h)) for s, h in (("A", 0), ("B", 1), ("C", 2)))
    load(wh, SessionInput(*a), SessionInput(*b), SessionInput(*c))
    first = assert_equals_from_scratch(wh)
    assert {row[0] for row in first["quality_sessions"]} == {"A", "B", "C"}
    assert first["quality_joins"] and first["quality_daily"] and first["quality_value_counts"]

    # a reload of A with other users: exactly A's rows change, the day's figures follow
    load(wh, SessionInput(*random_session("A", DAY1, users=2)[:1], random_session("A2", DAY1, users=2)[1]))
    after_reload = assert_equals_from_scratch(wh)
    assert same(
        [r for r in after_reload["quality_joins"] if r[0] != "A"],
        [r for r in first["quality_joins"] if r[0] != "A"],
    )

    # a late session on the same day, and one whose joins cross midnight
    load(
        wh,
        SessionInput(*random_session("D", DAY1 + timedelta(hours=5))),
        SessionInput(*random_session("E", DAY2)),
    )
    assert_equals_from_scratch(wh)

    # a live session counts nowhere until its final rows are loaded
    live = random_session("L", DAY1 + timedelta(hours=6))
    wh.load_live_sessions([SessionInput(live[0], live[1][:2], "live")], ParseIssues())
    rows = assert_equals_from_scratch(wh)
    assert "L" not in {row[0] for row in rows["quality_sessions"]}
    load(wh, SessionInput(*live))
    assert "L" in {row[0] for row in assert_equals_from_scratch(wh)["quality_sessions"]}

    # a pending session, then read; a loaded session answering 3001 keeps its derived rows
    pending = random_session("P", DAY1 + timedelta(hours=7))
    load(wh, SessionInput(pending[0], (), "pending"))
    assert_equals_from_scratch(wh)
    load(wh, SessionInput(*pending), SessionInput(b[0], (), "pending"))
    assert "B" in {row[0] for row in assert_equals_from_scratch(wh)["quality_sessions"]}


def test_a_threshold_change_is_applied_by_the_next_ensure_schema(warehouse: Warehouse) -> None:
    wh = warehouse
    load(wh, *(SessionInput(*random_session(s, DAY1 + timedelta(hours=h))) for s, h in (("A", 0), ("B", 1))))
    before = assert_equals_from_scratch(wh)
    assert wh.ensure_schema() is False  # nothing changed: the fast path
    prefix = object_prefix(wh.dialect, wh.schema)
    with wh.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE {prefix}qos_thresholds SET latency_ms = 30, issue_min_share = 0.05 "
                "WHERE media_type = 'audio'"
            )
        )
    assert wh.ensure_schema() is True  # recomputed from the stored samples, no call to Zoom
    after = assert_equals_from_scratch(wh)
    assert same(after["quality_value_counts"], before["quality_value_counts"])  # values do not depend on it
    audio_before = [r for r in before["quality_joins"] if r[3] == "audio"]
    audio_after = [r for r in after["quality_joins"] if r[3] == "audio"]
    assert not same(audio_before, audio_after)
    assert same(
        [r for r in before["quality_joins"] if r[3] != "audio"],
        [r for r in after["quality_joins"] if r[3] != "audio"],
    )
    assert wh.ensure_schema() is False


def contract_mos(latency: float, jitter: float, loss: float) -> float:
    """The contract's formula, written out on its own (score version 1)."""
    d = latency + 2 * jitter + 10
    r = 93.2 - d / 40 if d < 160 else 93.2 - (d - 120) / 10
    r = min(100.0, max(0.0, r - 2.5 * loss))
    return min(4.5, max(1.0, 1 + 0.035 * r + 0.000007 * r * (r - 60) * (100 - r)))


def test_mos_of_each_sample_follows_the_formula(warehouse: Warehouse) -> None:
    points = [
        (0, 0, 0),
        (40, 4, 0.1),
        (120, 10, 1.0),
        (139, 5, 0.0),
        (150, 40, 2),
        (300, 70, 8),
        (900, 300, 40),
        (20, 2, 0.0),
    ]
    samples = [
        qos_sample(
            DAY1 + timedelta(minutes=i, seconds=5),
            audio_output=stream_metrics(latency=f"{lat} ms", jitter=f"{jit} ms", avg_loss=f"{loss}%"),
            video_output=stream_metrics(latency=f"{lat} ms", jitter=f"{jit} ms", avg_loss=f"{loss}%"),
        )
        for i, (lat, jit, loss) in enumerate(points)
    ]
    load(
        warehouse, SessionInput(zoom_session("M", start=DAY1), [zoom_user("u1", join=DAY1, samples=samples)])
    )
    prefix = object_prefix(warehouse.dialect, warehouse.schema)
    with warehouse.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT latency_ms, jitter_ms, avg_loss_pct, mos, media_type, direction "
                    f"FROM {prefix}qos_samples "
                    "WHERE session_id = 'M' ORDER BY sampled_at"
                )
            )
            .tuples()
            .all()
        )
        jq = conn.execute(
            sa.text(
                f"SELECT avg_mos_receive, min_mos_receive, avg_mos_send FROM {prefix}join_quality "
                "WHERE session_id = 'M' AND media_type = 'audio'"
            )
        ).one()
        video = conn.execute(
            sa.text(
                f"SELECT avg_mos_receive FROM {prefix}join_quality "
                "WHERE session_id = 'M' AND media_type = 'video'"
            )
        ).scalar_one()
    audio = [r for r in rows if r[4] == "audio"]
    assert len(audio) == len(points) and all(r[5] == "receive" for r in audio)
    expected = [contract_mos(*p) for p in points]
    for row, want in zip(audio, expected, strict=True):
        assert math.isclose(row[3], want, abs_tol=0.01), row
    assert all(r[3] is None for r in rows if r[4] == "video") and video is None
    assert math.isclose(jq[0], sum(expected) / len(expected), abs_tol=0.01)
    assert math.isclose(jq[1], min(expected), abs_tol=0.01) and jq[2] is None
    assert min(expected) == 1.0 and max(expected) > 4.3  # both clamps and the top of the scale are exercised


def test_join_quality_equals_the_reference_implementation(warehouse: Warehouse) -> None:
    """The SQL of every back end against tests/quality_reference.py (the contract in plain Python),
    over random calls with every cause, on the rows the warehouse stored."""
    load(warehouse, *(SessionInput(*random_session(f"Q{i}", DAY1 + timedelta(hours=i))) for i in range(12)))
    tables = {}
    with warehouse.engine.connect() as conn:
        for name in ("session_users", "user_qos", "user_system_qos"):
            table = getattr(schema, name)
            tables[name] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        got = {
            (r.session_id, r.user_id, r.join_time, r.media_type): r
            for r in conn.execute(sa.select(quality_joins))
        }
    want = quality_reference.join_quality(
        tables["session_users"], tables["user_qos"], tables["user_system_qos"]
    )
    assert len(want) == len(got) > 0
    causes = set()
    for row in want:
        mine = got[(row["session_id"], row["user_id"], row["join_time"], row["media_type"])]
        causes.add(row["cause"])
        assert (mine.issues, mine.cause, mine.cause_user_id) == (
            row["issues"],
            row["cause"],
            row["cause_user_id"],
        )
        assert (mine.send_samples, mine.receive_samples) == (row["send_samples"], row["receive_samples"])
        for column in (
            "send_poor_share",
            "receive_poor_share",
            "avg_mos_send",
            "avg_mos_receive",
            "min_mos_receive",
        ):
            a, b = getattr(mine, column), row[column]
            assert (a is None and b is None) or math.isclose(a, b, abs_tol=1e-9), (column, a, b)
    assert {"own_uplink", "remote_sender", "own_downlink", "device_cpu", "weak_wifi", "none"} <= causes
