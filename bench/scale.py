"""Benchmark 7: the warehouse at a large account's scale (PostgreSQL), all baselines from the same run.

A warehouse of ``--scale-days`` days × ``--scale-sessions`` sessions a day (4 joins, 30 one-minute
samples a join, six streams: ~14 million ``user_qos`` rows at the defaults) is generated in SQL
(deterministic, no Zoom involved), then:

1. **upgrade**: ``zoom-qos warehouse upgrade``'s work (``ensure_schema(recompute=True)``): every
   derived table recomputed from the stored samples; its throughput in samples per second.
2. **dashboard**: a dashboard's queries (``daily_quality`` over all days, ``daily_quality_breakdown``,
   the 20 worst sessions of a day from ``session_quality``, one session's ``join_quality``), each
   the best of five, against one full scan of ``user_qos`` (best of three): target ≤ 2 % each.
3. **load of a day**: one more day of the same shape written by ``SessionLoader.write_group`` in
   the transactions a load makes (derived tables maintained), against a binary ``COPY`` of the same
   rows into unindexed tables of the same database: target ≥ 0.5.

Run alone with ``make bench BENCH_ARGS="--only scale"``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from bench.common import PG_LIBPQ, PG_URL, drop_schema

SCHEMA = "bench_scale"
SOURCE = "bench_scale_day"  # the extra day's rows, generated here and read back to be loaded
CEILING = "bench_scale_copy"
FIRST_DAY = datetime(2026, 1, 5, tzinfo=UTC)
STREAMS = ("audio_input", "audio_output", "video_input", "video_output", "as_input", "as_output")
DEVICES = ("Windows", "Mac", "iOS", "Android", "Phone")
NETWORKS = ("Wifi", "Wired", "Cellular", "Others")
CENTERS = ("SC", "NY", "AM", "FR", "TY", "SY", "SP", "MB")
JOINS, MINUTES = 4, 30


def log(message: str) -> None:
    print(f"[scale {datetime.now():%H:%M:%S}] {message}", flush=True)


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


def generate(conn: psycopg.Connection, schema: str, day: int, sessions: int) -> None:
    """Day ``day`` (0-based from FIRST_DAY): ``sessions`` sessions with every row a load writes.

    Values are arithmetic on the indices (deterministic): one join in ten has a bad spell (minutes
    10-20) on its send side, heard by the others; some devices are CPU-starved, some Wi-Fi weak.
    """
    start = FIRST_DAY + timedelta(days=day)
    s = sql.Identifier(schema)
    spacing = 86400 // sessions
    # No query parameters: psycopg then sends the text as it is, % (modulo) included.
    sess = f"""SELECT g AS n, 'd{day}-s' || g AS sid,
        '{start.isoformat()}'::timestamptz + make_interval(secs => g * {spacing}) AS st
        FROM generate_series(0, {sessions} - 1) g"""
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.sessions (session_id, session_name, start_time, end_time,
        duration_seconds, user_count, has_voip, has_video, has_screen_share, loaded_at, qos_status,
        qos_checked_at)
        SELECT sid, 'Session ' || n, st, st + interval '35 minutes', 2100, {JOINS}, true, true, true, now(),
            'loaded', now() FROM ({sess}) x""").format(s=s))
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.raw_sessions (session_id, payload, loaded_at)
        SELECT sid, jsonb_build_object('id', sid), now() FROM ({sess}) x""").format(s=s))
    joins = f"""SELECT x.n, x.sid, j, 'u' || ((x.n * {JOINS} + j + {day * 7}) % 5000) AS uid,
        x.st + make_interval(mins => j) AS jt, (x.n * {JOINS} + j) % 10 = 0 AS bad,
        (x.n * {JOINS} + j) % 23 = 0 AS hot, (x.n * {JOINS} + j) % 17 = 0 AS weak
        FROM ({sess}) x CROSS JOIN generate_series(0, {JOINS - 1}) j"""
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.session_users (session_id, user_id, join_time, leave_time,
        user_name, device, network_type, data_center, loaded_at)
        SELECT sid, uid, jt, jt + interval '{MINUTES} minutes', 'User ' || uid,
            ({_array(DEVICES)})[1 + (n + j) % {len(DEVICES)}],
            ({_array(NETWORKS)})[1 + (n * 3 + j) % {len(NETWORKS)}],
            ({_array(CENTERS)})[1 + (n + j * 5) % {len(CENTERS)}], now() FROM ({joins}) y""").format(s=s))
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.raw_session_users (session_id, user_id, join_time, payload,
        loaded_at)
        SELECT sid, uid, jt, jsonb_build_object('id', uid), now() FROM ({joins}) y""").format(s=s))
    # Send side of a bad join poor in minutes 10-20; the others' receive side too (they hear it).
    poor = """(y.bad AND k % 2 = 0 OR (NOT y.bad AND k % 2 = 1 AND (y.n * 4) % 10 = 0 AND y.j > 0))
        AND m BETWEEN 10 AND 20"""
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.user_qos (session_id, user_id, join_time, sampled_at, stream,
        bitrate_kbps, latency_ms, jitter_ms, avg_loss_pct, max_loss_pct, resolution_width,
        resolution_height, frame_rate_fps, loaded_at)
        SELECT sid, uid, jt, jt + make_interval(mins => m, secs => 5), ({_array(STREAMS)})[k + 1],
            100 + (n * 7 + m * 3 + k) % 900,
            CASE WHEN {poor} THEN 180 + (n * 7 + m * 13) % 200
                 ELSE 20 + (n * 31 + j * 17 + m * 7 + k * 3) % 90 END,
            CASE WHEN {poor} THEN 30 + (n + m) % 60 ELSE 1 + (n * 13 + m * 5 + k) % 25 END,
            CASE WHEN {poor} THEN 2.5 + ((n + m * 3) % 60) / 10.0 ELSE ((n * 11 + m * 3 + k) % 20) / 10.0 END,
            ((n * 5 + m + k) % 40) / 10.0,
            CASE WHEN k IN (2, 3) THEN 1280 END, CASE WHEN k IN (2, 3) THEN 720 - 360 * ((n + m) % 3 / 2) END,
            CASE WHEN k IN (2, 3) THEN 8 + (n + m * 7) % 23 END, now()
        FROM ({joins}) y CROSS JOIN generate_series(0, {MINUTES - 1}) m
        CROSS JOIN generate_series(0, {len(STREAMS) - 1}) k""").format(s=s))
    conn.execute(sql.SQL(f"""INSERT INTO {{s}}.user_system_qos (session_id, user_id, join_time, sampled_at,
        zoom_min_cpu_pct, zoom_avg_cpu_pct, zoom_max_cpu_pct, system_max_cpu_pct, wifi_max_rssi,
        wifi_avg_rssi, wifi_min_rssi, wifi_rssi_unit, cpu_pressure_level, loaded_at)
        SELECT sid, uid, jt, jt + make_interval(mins => m, secs => 5), 5, 10 + m % 10,
            CASE WHEN hot THEN 95 ELSE 20 + (n + m) % 40 END,
            CASE WHEN hot THEN 97 ELSE 40 + (n + m) % 40 END,
            -40, CASE WHEN weak THEN -78 ELSE -50 - (n + m) % 15 END, -90, 'dBm',
            CASE WHEN hot THEN 'serious' ELSE 'nominal' END, now()
        FROM ({joins}) y CROSS JOIN generate_series(0, {MINUTES - 1}) m""").format(s=s))


def _best(conn: sa.Connection, statement: str, times: int, **params: Any) -> float:
    best = float("inf")
    for _ in range(times):
        t0 = time.perf_counter()
        conn.execute(sa.text(statement), params).all()
        best = min(best, time.perf_counter() - t0)
    return best


def dashboard(engine: sa.Engine, prefix: str, day: datetime, session_id: str) -> dict[str, Any]:
    queries = {
        "daily_quality_all_days": f"SELECT * FROM {prefix}daily_quality ORDER BY day, media_type",
        "daily_quality_breakdown": (
            f"SELECT * FROM {prefix}daily_quality_breakdown "
            "ORDER BY day, media_type, dimension, dimension_value"
        ),
        "worst_20_sessions_of_a_day": (
            f"SELECT * FROM {prefix}session_quality WHERE start_time >= :start AND start_time < :stop "
            "ORDER BY poor_share DESC NULLS LAST LIMIT 20"
        ),
        "one_session_join_quality": f"SELECT * FROM {prefix}join_quality WHERE session_id = :sid",
        "daily_causes_all_days": f"SELECT * FROM {prefix}daily_causes ORDER BY day, media_type, cause",
    }
    params = {"start": day, "stop": day + timedelta(days=1), "sid": session_id}
    with engine.connect() as conn:
        scan = _best(conn, f"SELECT count(*), sum(latency_ms) FROM {prefix}user_qos", 3)
        out: dict[str, Any] = {"full_scan_user_qos_seconds": round(scan, 3), "queries": {}}
        for name, statement in queries.items():
            seconds = _best(conn, statement, 5, **params)
            rows = len(conn.execute(sa.text(statement), params).all())
            out["queries"][name] = {"seconds": round(seconds, 4), "rows": rows,
                                    "ratio_to_scan": round(seconds / scan, 4)}
    out["worst_ratio"] = max(q["ratio_to_scan"] for q in out["queries"].values())
    return out


def _prepared_day(engine: sa.Engine) -> list[Any]:
    """The generated day's rows as the loader's prepared sessions (read back from SOURCE)."""
    from zoom_qos.transform.parsing import ParseIssues
    from zoom_qos.warehouse import plan, schema

    rows: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    with engine.connect() as conn:
        for table in plan.LOAD_TABLES:
            cols = [c.name for c in table.columns if c.name != "loaded_at"]
            result = conn.execute(sa.text(f"SELECT {', '.join(cols)} FROM {SOURCE}.{table.name}"))
            for row in result.mappings():
                rows[row["session_id"]][table.name].append(dict(row))
    prepared = []
    for sid, tables in rows.items():
        by_table = {t.name: tables.get(t.name, []) for t in plan.LOAD_TABLES}
        p = plan.PreparedSession(sid, by_table, ParseIssues())
        p.users = len(p.rows[schema.session_users.name])
        p.qos_rows = len(p.rows[schema.user_qos.name])
        p.system_rows = len(p.rows[schema.user_system_qos.name])
        prepared.append(p)
    return prepared


def load_day(warehouse: Any, day: int, sessions: int) -> dict[str, Any]:
    from bench.run import _copy_rows
    from zoom_qos.warehouse import columns, plan
    from zoom_qos.warehouse.loader import SessionLoader
    from zoom_qos.warehouse.store import Warehouse

    drop_schema(SOURCE)
    source = Warehouse(PG_URL, schema=SOURCE)
    source.ensure_schema()
    with psycopg.connect(PG_LIBPQ) as conn:
        generate(conn, SOURCE, day, sessions)
    prepared = _prepared_day(source.engine)
    source.dispose()
    drop_schema(SOURCE)
    groups = list(plan.transactions(prepared, plan.DEFAULT_MAX_ROWS_PER_TRANSACTION))
    total = sum(p.size for p in prepared)
    log(f"load of a day: {len(prepared)} sessions, {total:,} rows, {len(groups)} transactions")
    writer = SessionLoader(warehouse.engine, warehouse.schema)
    t0 = time.monotonic()
    for group in groups:
        writer.write_group(group)
    load_seconds = time.monotonic() - t0

    drop_schema(CEILING)
    copy_seconds = float("inf")
    by_table = {t.name: [r for p in prepared for r in p.rows[t.name]] for t in plan.LOAD_TABLES}
    with psycopg.connect(PG_LIBPQ) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(CEILING)))
        for t in plan.LOAD_TABLES:
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {})").format(
                sql.Identifier(CEILING, t.name), sql.Identifier(SCHEMA, t.name)))
        conn.commit()
        for _ in range(2):
            for t in plan.LOAD_TABLES:
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(CEILING, t.name)))
            conn.commit()
            t1 = time.monotonic()
            with conn.cursor() as cur:
                for t in plan.LOAD_TABLES:
                    _copy_rows(cur, t, CEILING, by_table[t.name], columns.utcnow())
            conn.commit()
            copy_seconds = min(copy_seconds, time.monotonic() - t1)
    drop_schema(CEILING)
    return {"sessions": len(prepared), "rows": total, "transactions": len(groups),
            "load_seconds": round(load_seconds, 2), "copy_seconds": round(copy_seconds, 2),
            "ratio": round(copy_seconds / load_seconds, 3)}


def bench_scale(days: int, sessions: int) -> dict[str, Any]:
    from zoom_qos.warehouse.sql import object_prefix
    from zoom_qos.warehouse.store import Warehouse

    drop_schema(SCHEMA)
    warehouse = Warehouse(PG_URL, schema=SCHEMA)
    warehouse.ensure_schema()
    t0 = time.monotonic()
    with psycopg.connect(PG_LIBPQ) as conn:
        for day in range(days):
            generate(conn, SCHEMA, day, sessions)
            conn.commit()
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCHEMA, "user_qos")))
        samples = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(SCHEMA, "user_qos"))).fetchone()[0]
    seconds = time.monotonic() - t0
    log(f"generated {days} days x {sessions} sessions: {samples:,} user_qos rows in {seconds:.0f}s")

    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 30 or done == total:
            last[0] = time.monotonic()
            log(f"upgrade: {done:,}/{total:,} sessions")

    t0 = time.monotonic()
    warehouse.ensure_schema(progress, recompute=True)
    upgrade_seconds = time.monotonic() - t0
    log(f"upgrade: {upgrade_seconds:.0f}s ({samples / upgrade_seconds:,.0f} samples/s)")
    with warehouse.engine.begin() as conn:
        for table in ("quality_joins", "quality_sessions", "quality_daily", "quality_value_counts",
                      "quality_join_days", "quality_daily_causes", "sessions"):
            conn.exec_driver_sql(f'ANALYZE "{SCHEMA}".{table}')
    prefix = object_prefix("postgresql", SCHEMA)
    result: dict[str, Any] = {
        "days": days, "sessions_per_day": sessions, "user_qos_rows": samples,
        "upgrade_seconds": round(upgrade_seconds, 1),
        "upgrade_samples_per_second": round(samples / upgrade_seconds),
        "upgrade_seconds_per_million_samples": round(upgrade_seconds / samples * 1e6, 1),
        "dashboard": dashboard(warehouse.engine, prefix, FIRST_DAY + timedelta(days=days // 2),
                               f"d{days // 2}-s{sessions // 2}"),
    }
    log(f"dashboard: {result['dashboard']}")
    result["load_day"] = load_day(warehouse, days, sessions)
    log(f"load of a day: {result['load_day']}")
    warehouse.dispose()
    drop_schema(SCHEMA)
    return result
