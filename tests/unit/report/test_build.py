"""Writing the report (zoom_qos.report.build), the package's face, the CLI and the asset wiring of
the two DAGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.unit.report.reportworld import LAST_DAY, load
from zoom_qos.report import build_report
from zoom_qos.warehouse.store import Warehouse


def test_the_package_face() -> None:
    """What the DAG and the CLI use: ``from zoom_qos import report``."""
    from zoom_qos import report

    assert report.DEFAULT_DAYS == 30 and report.REPORT_DIR_ENV == "ZOOM_QOS_REPORT_DIR"
    assert callable(report.render_configured_report) and callable(report.build_report)
    assert set(report.__all__) <= set(dir(report))


def test_a_re_render_replaces_the_report_of_the_period(warehouse: Warehouse, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    first = build_report(warehouse, folder, days=30)
    first.write_text("stale", encoding="utf-8")
    second = build_report(warehouse, folder, days=30)
    assert second == first and second.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in folder.iterdir()] == [first.name]  # no temporary file left behind
    assert oct(first.stat().st_mode & 0o777) == "0o644"


def test_a_full_report_folder_is_permanent_naming_the_file_and_leaves_nothing(
        warehouse: Warehouse, tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    from zoom_qos.core.errors import PermanentError, StorageUnwritableError

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

        def write(self, _text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))
    folder = tmp_path / "reports"
    with pytest.raises(StorageUnwritableError, match="no space left on device") as raised:
        build_report(warehouse, folder, days=30)
    assert str(folder) in str(raised.value) and isinstance(raised.value, PermanentError)
    assert list(folder.iterdir()) == []  # neither the report nor its temporary file


def test_a_warehouse_without_views_is_a_clear_error(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    with pytest.raises(RuntimeError, match="run a load first"):
        build_report(engine, tmp_path)
    engine.dispose()
    assert not list(tmp_path.glob("*.html"))


# --------------------------------------------------------------------------- CLI
def test_the_cli_renders_from_the_configured_warehouse(tmp_path: Path, monkeypatch, capsys) -> None:
    from include.scripts import qos_report

    db = tmp_path / "wh.db"
    wh = Warehouse(f"sqlite:///{db}")
    wh.ensure_schema()
    load(wh, "s-bad")
    wh.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setenv("ZOOM_QOS_REPORT_DIR", str(tmp_path / "by-env"))
    assert qos_report.main([]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed.parent == (tmp_path / "by-env").resolve() and printed.is_file()
    assert qos_report.main(["--out", str(tmp_path / "by-flag"), "--days", "7"]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed.parent == (tmp_path / "by-flag").resolve()
    assert printed.name == f"zoom_qos_report_{LAST_DAY}_{LAST_DAY}.html"  # one day of data only


def test_the_cli_says_why_there_is_no_report(tmp_path: Path, monkeypatch, capsys) -> None:
    from include.scripts import qos_report

    sa.create_engine(f"sqlite:///{tmp_path / 'blank.db'}").dispose()
    monkeypatch.setenv("AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "blank.db")}))
    assert qos_report.main(["--out", str(tmp_path / "out")]) == 1
    assert "No report: The warehouse has no view" in capsys.readouterr().err


# --------------------------------------------------------------------------- DAGs
@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[3] / "dags"))
    assert bag.import_errors == {}
    return bag


def test_every_load_emits_the_asset_and_the_report_dag_is_scheduled_on_it(dagbag) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.definitions.asset import AssetAll

    from zoom_qos.assets import ZOOM_QOS_ASSET, ZOOM_QOS_TABLES

    assert isinstance(ZOOM_QOS_ASSET, Asset)
    # the alias resolves at run time to the warehouse's real tables (see lineage.table_asset_uri)
    assert dagbag.dags["zoom_videosdk_qos"].get_task("load_warehouse").outlets == [ZOOM_QOS_ASSET,
                                                                                   ZOOM_QOS_TABLES]
    consumer = dagbag.dags["zoom_videosdk_qos_report"]
    condition = consumer.timetable.asset_condition
    assert isinstance(condition, AssetAll) and list(condition.objects) == [ZOOM_QOS_ASSET]
    assert consumer.task_ids == ["render_report"]
    assert consumer.params["days"] == 30
    # nothing else produces it: only a load (the daily run's, or the ended sessions') triggers the report
    producers = [(d.dag_id, t.task_id) for d in dagbag.dags.values() for t in d.tasks
                 if ZOOM_QOS_ASSET in (t.outlets or [])]
    assert sorted(producers) == [("zoom_videosdk_qos", "load_warehouse"),
                                 ("zoom_videosdk_qos_events", "load_warehouse")]


def test_sessions_in_progress_get_a_live_now_section_and_stay_out_of_the_daily_figures(
        warehouse: Warehouse, tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.unit.report.reportworld import zoom_session, zoom_user
    from zoom_qos.report.data import load_report_data
    from zoom_qos.transform.parsing import ParseIssues

    before = load_report_data(warehouse, 30)
    day = LAST_DAY + timedelta(days=1)  # later than every loaded day: it would move the period
    session = {**zoom_session("s-live", "Support call in progress", day), "end_time": None}
    user = {**zoom_user("u-live", day, [400, 410, 420, 430, 440, 450]), "leave_time": None}
    warehouse.load_live_sessions([(session, [user])], ParseIssues())
    from zoom_qos.warehouse.live import evaluate_live_alerts

    raised, _ = evaluate_live_alerts(warehouse, window_minutes=10, poor_share=0.5, min_samples=5)
    assert [(a["session_id"], a["media_type"]) for a in raised] == [("s-live", "audio")]
    after = load_report_data(warehouse, 30)
    assert (after.start, after.end, after.totals) == (before.start, before.end, before.totals)
    page = build_report(warehouse, tmp_path).read_text(encoding="utf-8")
    live = page[page.index('id="live-now"'):page.index("</section>", page.index('id="live-now"'))]
    assert "Support call in progress" in live and "100.0%" in live and "<td>open</td>" in live
    assert "1 session(s) in progress" in live and "1 alert(s) open" in live
