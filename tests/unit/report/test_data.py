"""Reading the views (zoom_qos.report.data): the report's figures are the BI views' figures, over
the period of data present, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.unit.report.reportworld import EVIL_DEVICE, LAST_DAY, add_completeness, load
from zoom_qos.report.data import load_report_data
from zoom_qos.warehouse.sql import UnsupportedDatabaseError
from zoom_qos.warehouse.store import Warehouse


def _prefix(warehouse: Warehouse) -> str:
    return f'"{warehouse.schema}".' if warehouse.schema else ""


def test_figures_match_the_bi_views(warehouse: Warehouse) -> None:
    data = load_report_data(warehouse, days=30)
    assert (data.start, data.end) == (LAST_DAY - timedelta(days=29), LAST_DAY)
    prefix = _prefix(warehouse)
    with warehouse.engine.connect() as conn:
        daily = conn.execute(sa.text(
            f"SELECT day, media_type, samples, poor_share FROM {prefix}daily_quality")).mappings().all()
        breakdown = conn.execute(sa.text(
            f"SELECT dimension, dimension_value, sum(samples) AS samples, sum(poor_samples) AS poor "
            f"FROM {prefix}daily_quality_breakdown WHERE day >= :start "
            "GROUP BY dimension, dimension_value"),
            {"start": data.start if warehouse.dialect == "postgresql" else data.start.isoformat()},
        ).mappings().all()
    in_period = {(str(r["day"])[:10], r["media_type"]): (float(r["poor_share"]), int(r["samples"]))
                 for r in daily if str(r["day"])[:10] >= data.start.isoformat()}
    shown = {(d.isoformat(), media): (share, samples)
             for media, points in data.trend.items() for d, share, samples in points}
    assert shown.keys() == in_period.keys()
    for key, (share, samples) in in_period.items():
        assert shown[key] == (pytest.approx(share), samples)
    # every sample here is rated, so the view's poor_samples / samples is the period's share
    for row in breakdown:
        values = {v: (share, n) for v, share, n in data.breakdowns[row["dimension"]]}
        assert values[row["dimension_value"]] == (pytest.approx(int(row["poor"]) / int(row["samples"])),
                                                  int(row["samples"]))
    assert data.breakdowns["device"][0][0] == EVIL_DEVICE  # 100% poor: first bar
    assert data.totals["sessions"] == 4 and data.totals["samples"] == 18
    assert data.totals["poor"] == 4 + 2 + 2
    assert data.totals["over_latency_ms"] == 8 and data.totals["over_avg_loss_pct"] == 4
    latency = dict(((low, n) for low, _, n in data.histograms["latency_ms"]))
    assert latency[300.0] == 4 + 2 and sum(latency.values()) == 18
    assert data.thresholds == {"latency_ms": 150.0, "avg_loss_pct": 2.0}


def test_the_window_ends_with_the_newest_data_and_starts_no_earlier_than_the_oldest(
    warehouse: Warehouse,
) -> None:
    data = load_report_data(warehouse, days=2)
    assert (data.start, data.end) == (LAST_DAY - timedelta(days=1), LAST_DAY)
    assert [w["session_id"] for w in data.worst] == ["s-bad", "s-mid-high"]
    assert {d for points in data.trend.values() for d, _, _ in points} == {data.start, data.end}
    everything = load_report_data(warehouse, days=365)
    assert (everything.start, everything.end) == (LAST_DAY - timedelta(days=40), LAST_DAY)
    assert everything.worst[0]["session_id"] == "s-old" and len(everything.days) == 41


def test_an_engine_works_as_well_as_a_warehouse(warehouse: Warehouse) -> None:
    """A bare engine: on PostgreSQL the schema comes from its schema_translate_map."""
    from_engine = load_report_data(warehouse.engine)
    from_warehouse = load_report_data(warehouse)
    assert from_engine.worst == from_warehouse.worst and from_engine.trend == from_warehouse.trend


def test_days_must_be_positive_and_the_source_a_warehouse_or_an_engine(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        load_report_data(warehouse, days=0)
    with pytest.raises(TypeError, match="Warehouse or an SQLAlchemy Engine"):
        load_report_data("sqlite:///warehouse.db")


def test_an_unsupported_database_is_the_shared_dialect_error(tmp_path: Path, monkeypatch) -> None:
    """The dialect check is zoom_qos.warehouse.sql's, as for the views: one message, one type."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setattr(engine.dialect, "name", "mysql")
    with pytest.raises(UnsupportedDatabaseError, match="'mysql'; use sqlite or postgresql"):
        load_report_data(engine)
    engine.dispose()


def test_the_report_needs_the_completeness_view(warehouse: Warehouse) -> None:
    with warehouse.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP VIEW {_prefix(warehouse)}daily_completeness")
    with pytest.raises(RuntimeError, match="daily_completeness"):
        load_report_data(warehouse)


def test_completeness_figures_are_the_views(warehouse: Warehouse) -> None:
    add_completeness(warehouse)
    data = load_report_data(warehouse, days=30)
    with warehouse.engine.connect() as conn:
        view = {
            str(r["usage_date"])[:10]: (r["zoom_sessions"], r["warehouse_sessions"], r["sessions_loaded"],
                                        r["sessions_pending"], r["sessions_unavailable"])
            for r in conn.execute(sa.text(f"SELECT * FROM {_prefix(warehouse)}daily_completeness")).mappings()
        }
    shown = {d.day.isoformat(): (d.zoom_sessions, d.warehouse_sessions, d.loaded, d.pending, d.unavailable)
             for d in data.completeness}
    assert [d.day for d in data.completeness] == data.days
    in_period = {k: v for k, v in view.items() if k >= data.start.isoformat()}
    assert {k: v for k, v in shown.items() if k in view} == in_period
    assert all(v == (None, 0, 0, 0, 0) for k, v in shown.items() if k not in view)
    assert (LAST_DAY - timedelta(days=40)).isoformat() in view  # s-old: in the view, not in the period
    assert [d.day for d in data.completeness if d.differs] == [LAST_DAY - timedelta(days=1)]


def test_sessions_without_zoom_counts_are_days_not_compared(tmp_path: Path) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'one.db'}")
    wh.ensure_schema()
    try:
        load(wh, "s-good")
        data = load_report_data(wh, days=3)
    finally:
        wh.dispose()
    assert [(d.zoom_sessions, d.warehouse_sessions, d.loaded) for d in data.completeness] == [(None, 1, 1)]
    assert not data.completeness[0].differs
