"""Alerts through the configured Airflow notifier: quality alerts once per day and kind, and the
DAG's failure callback. The notifier here is a BaseNotifier that records what it was asked to send."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk import BaseNotifier

from tests.builders import run_concurrently
from zoom_qos.alerts import daily as day_alerts
from zoom_qos.alerts import notify as alerts
from zoom_qos.alerts.daily import alert_quality
from zoom_qos.core.errors import SettingsError
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.derived import recompute_all
from zoom_qos.warehouse.store import Warehouse

DAY = date(2026, 11, 20)
CALLS: list[dict[str, Any]] = []


class RecordingNotifier(BaseNotifier):
    """Records each notification: its rendered subject and text, its arguments, the alert."""

    template_fields = ("subject", "text")

    def __init__(self, subject: str | None = None, text: str | None = None, channel: str | None = None,
                 fail: bool = False) -> None:
        super().__init__()
        self.subject, self.text, self.channel, self.fail = subject, text, channel, fail

    def notify(self, context: Any) -> None:
        if self.fail:
            raise RuntimeError("the mail server is down")
        CALLS.append({"subject": self.subject, "text": self.text, "channel": self.channel,
                      "alert": context.get(alerts.CONTEXT_KEY), "context": context})


@pytest.fixture(autouse=True)
def recording(monkeypatch):
    """The recording notifier configured as ``[zoom_qos] notifier`` (by the name pytest imported
    this module under, so the class that records is this one), default thresholds."""
    CALLS.clear()
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER", f"{__name__}.RecordingNotifier")
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER_KWARGS", json.dumps({"channel": "#qos"}))
    for key in ("ALERT_POOR_SHARE", "ALERT_COUNT_GAP"):
        monkeypatch.delenv(f"AIRFLOW__ZOOM_QOS__{key}", raising=False)
    yield CALLS
    CALLS.clear()


def seed(wh: Warehouse, day: date, *, audio: tuple[int, int], video: tuple[int, int] = (0, 4),
         zoom_sessions: int | None = None, sessions: int = 1) -> None:
    """``sessions`` sessions on ``day``; the first has ``audio``/``video`` = (poor, total) samples
    (poor: latency 400 ms; good: 50 ms); Zoom counted ``zoom_sessions`` that day."""
    start = datetime(day.year, day.month, day.day, 10, tzinfo=UTC)
    now = datetime.now(UTC)
    ids = [f"s-{day.isoformat()}-{n}" for n in range(sessions)]
    samples = []
    for stream, (poor, total) in (("audio_input", audio), ("video_input", video)):
        samples += [{"session_id": ids[0], "user_id": "u1", "join_time": start, "stream": stream,
                     "sampled_at": start + timedelta(minutes=n), "latency_ms": 400.0 if n < poor else 50.0,
                     "jitter_ms": 1.0, "avg_loss_pct": 0.0, "loaded_at": now} for n in range(total)]
    with wh.engine.begin() as conn:
        conn.execute(schema.sessions.insert(), [{"session_id": i, "start_time": start, "qos_status": "loaded",
                                                 "loaded_at": now} for i in ids])
        conn.execute(schema.user_qos.insert(), samples)
        if zoom_sessions is not None:
            conn.execute(schema.daily_usage.insert(), [{"usage_date": day, "sessions": zoom_sessions,
                                                        "fetched_at": now}])
        recompute_all(conn, wh.schema)  # rows written outside the loader: derive from them


def alert_rows(wh: Warehouse) -> list[dict[str, Any]]:
    table = schema.quality_alerts
    with wh.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.alert_day, table.c.kind))
                .mappings()]


# --------------------------------------------------------------------------- quality alerts
def test_each_day_and_kind_above_its_threshold_alerts_once_with_the_figures_and_the_report(
        warehouse, recording):
    seed(warehouse, DAY, audio=(5, 10), zoom_sessions=10)  # audio 50 % poor; 9 of 10 missing
    seed(warehouse, DAY + timedelta(days=1), audio=(0, 10), zoom_sessions=1)  # fine
    days = [DAY, DAY + timedelta(days=1)]

    raised = day_alerts.quality_alerts(warehouse, days, "/reports/zoom_qos_report_x.html", run_id="r1")

    assert [(a["day"], a["kind"], a["notified"]) for a in raised] == [
        (DAY.isoformat(), "count_gap", True), (DAY.isoformat(), "poor_share", True)]
    assert len(recording) == 2
    gap, poor = recording
    assert gap["alert"]["kind"] == "count_gap" and gap["alert"]["figures"]["zoom_sessions"] == 10
    assert gap["alert"]["figures"]["missing"] == 9 and gap["alert"]["observed"] == pytest.approx(0.9)
    assert poor["alert"]["figures"]["media_types"]["audio"]["poor_share"] == pytest.approx(0.5)
    assert poor["alert"]["figures"]["above"] == ["audio"]
    for call in recording:  # the message reached the notifier's own arguments, rendered
        assert call["text"] == call["alert"]["message"] and call["subject"] == call["alert"]["subject"]
        assert "/reports/zoom_qos_report_x.html" in call["text"] and DAY.isoformat() in call["subject"]
        assert call["channel"] == "#qos"  # notifier_kwargs passed through
    assert "audio: 50.0% poor (5 of 10 samples, 1 sessions)  <-- above" in poor["text"]
    assert "9 of the 10 sessions Zoom counted (90.0%)" in gap["text"]

    rows = alert_rows(warehouse)
    assert [(r["alert_day"], r["kind"]) for r in rows] == [(DAY, "count_gap"), (DAY, "poor_share")]
    assert all(r["notified_at"] is not None and r["notify_error"] is None for r in rows)
    assert rows[1]["threshold"] == day_alerts.DEFAULT_ALERT_POOR_SHARE and rows[1]["observed"] == 0.5
    assert rows[1]["figures"]["media_types"]["video"]["poor_share"] == 0.0
    assert rows[0]["report_path"] == "/reports/zoom_qos_report_x.html" and rows[0]["run_id"] == "r1"

    # a re-run of the same days with the same figures: nothing new is sent
    assert day_alerts.quality_alerts(warehouse, days, "/reports/zoom_qos_report_x.html", run_id="r2") == []
    assert len(recording) == 2 and len(alert_rows(warehouse)) == 2


def test_figures_at_or_below_the_thresholds_do_not_alert(warehouse, recording, monkeypatch):
    seed(warehouse, DAY, audio=(2, 10), zoom_sessions=20, sessions=19)  # 20 % poor, 5 % missing
    assert day_alerts.quality_alerts(warehouse, [DAY], "r.html") == []  # not above 0.2 nor 0.05
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__ALERT_POOR_SHARE", "0.5")
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__ALERT_COUNT_GAP", "0.5")
    seed(warehouse, DAY + timedelta(days=1), audio=(4, 10), zoom_sessions=3, sessions=2)
    assert day_alerts.quality_alerts(warehouse, [DAY, DAY + timedelta(days=1)], "r.html") == []
    assert recording == [] and alert_rows(warehouse) == []


def test_days_outside_the_run_window_are_not_judged(warehouse, recording):
    seed(warehouse, DAY, audio=(10, 10), zoom_sessions=10)
    assert day_alerts.quality_alerts(warehouse, [DAY + timedelta(days=1)], "r.html") == []
    assert day_alerts.quality_alerts(warehouse, [], "r.html") == [] and recording == []


def test_without_a_notifier_nothing_is_sent_and_nothing_fails(warehouse, recording, monkeypatch):
    monkeypatch.delenv("AIRFLOW__ZOOM_QOS__NOTIFIER")
    seed(warehouse, DAY, audio=(9, 10), zoom_sessions=1)
    raised = day_alerts.quality_alerts(warehouse, [DAY], "r.html")
    assert [(a["kind"], a["notified"]) for a in raised] == [("poor_share", False)]
    assert recording == []
    (row,) = alert_rows(warehouse)
    assert row["notified_at"] is None and row["notify_error"] == "no notifier configured"
    assert alerts.configured_notifier("s", "m") is None
    alerts.on_dag_failure({"run_id": "r1"})  # the failure callback does nothing either


def test_a_failing_notifier_is_a_warning_and_the_task_does_not_fail(warehouse, recording, monkeypatch,
                                                                     caplog):
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER_KWARGS", json.dumps({"fail": True}))
    seed(warehouse, DAY, audio=(9, 10), zoom_sessions=1)
    listing = {"window_start": DAY.isoformat(), "window_end": DAY.isoformat()}
    with caplog.at_level(logging.WARNING, logger="zoom_qos.alerts.daily"):
        raised = alert_quality({"sessions_loaded": 1}, listing, run_id="r1", warehouse=warehouse)
    assert [(a["kind"], a["notified"]) for a in raised] == [("poor_share", False)]
    assert "The notifier failed to send the quality alert" in caplog.text
    assert "mail server is down" in caplog.text
    (row,) = alert_rows(warehouse)
    assert row["notified_at"] is None and "RuntimeError: the mail server is down" in row["notify_error"]


def test_no_load_means_no_check(warehouse, recording):
    seed(warehouse, DAY, audio=(9, 10))
    listing = {"window_start": DAY.isoformat(), "window_end": DAY.isoformat()}
    assert alert_quality(None, listing, warehouse=warehouse) == []
    assert alert_quality({"sessions_loaded": 1}, {}, warehouse=warehouse) == []
    assert recording == [] and alert_rows(warehouse) == []


@pytest.mark.parametrize(("key", "value", "named"), [
    ("NOTIFIER", "no.such.module.Notifier", "[zoom_qos] notifier"),
    ("NOTIFIER", "json.JSONDecoder", "is not an Airflow notifier"),
    ("NOTIFIER_KWARGS", "{to: nobody}", "[zoom_qos] notifier_kwargs is not valid JSON"),
    ("NOTIFIER_KWARGS", "[1, 2]", "[zoom_qos] notifier_kwargs must be a JSON object"),
    ("NOTIFIER_KWARGS", '{"no_such_argument": 1}', "[zoom_qos] notifier_kwargs do not fit"),
])
def test_a_wrong_notifier_setting_fails_naming_it_before_anything_is_recorded(
        warehouse, recording, monkeypatch, key, value, named):
    monkeypatch.setenv(f"AIRFLOW__ZOOM_QOS__{key}", value)
    seed(warehouse, DAY, audio=(9, 10))
    with pytest.raises(alerts.NotifierConfigError) as caught:
        day_alerts.quality_alerts(warehouse, [DAY], "r.html")
    assert named in str(caught.value)
    assert isinstance(caught.value, SettingsError)  # permanent: the task fails without retrying
    assert alert_rows(warehouse) == [] and recording == []  # sent once the setting is fixed


def test_two_runs_at_once_alert_once(warehouse, recording):
    seed(warehouse, DAY, audio=(9, 10), zoom_sessions=5)

    def run() -> list[dict[str, Any]]:
        other = Warehouse(warehouse.url, schema=warehouse.schema or "zoom_qos")
        try:
            return day_alerts.quality_alerts(other, [DAY], "r.html")
        finally:
            other.dispose()

    results = run_concurrently(run, threads=4)
    assert sorted(a["kind"] for r in results for a in r) == ["count_gap", "poor_share"]
    assert sorted(c["alert"]["kind"] for c in recording) == ["count_gap", "poor_share"]


def test_the_report_path_is_the_one_the_report_dag_writes(warehouse, tmp_path):
    from zoom_qos.report import build_report
    from zoom_qos.report.build import expected_report_path

    seed(warehouse, DAY, audio=(1, 10))
    seed(warehouse, DAY + timedelta(days=3), audio=(1, 10))
    expected = expected_report_path(warehouse, tmp_path)
    assert build_report(warehouse, tmp_path) == expected
    assert expected.name == f"zoom_qos_report_{DAY}_{DAY + timedelta(days=3)}.html"


def test_the_smtp_notifier_gets_the_alert_as_subject_and_html(monkeypatch):
    smtp = "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER", smtp)
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER_KWARGS", json.dumps({"to": "oncall@example.com"}))
    notifier = alerts.configured_notifier("Zoom QoS alert", "a < b\nline two")
    assert type(notifier).__name__ == "SmtpNotifier"
    notifier.render_template_fields({alerts.CONTEXT_KEY: {"subject": "Zoom QoS alert",
                                                          "message": "a < b\nline two"}})
    assert notifier.subject == "Zoom QoS alert"
    assert notifier.html_content == "<pre>a &lt; b\nline two</pre>"


# --------------------------------------------------------------------------- DAG failure
def test_the_failure_callback_sends_the_dag_the_run_and_the_failed_task(recording):
    ti = SimpleNamespace(task_id="extract_qos", dag_id="zoom_videosdk_qos", run_id="scheduled__2026-11-20",
                         log_url="http://airflow.example/dags/zoom_videosdk_qos/runs/x/tasks/extract_qos")
    from airflow.sdk import DAG

    context = {"dag": DAG("zoom_videosdk_qos", schedule=None), "run_id": "scheduled__2026-11-20",
               "ti": ti, "reason": "task_failure",
               "conn": "postgresql://u:hunter2@db/zoom"}  # never copied into the alert
    alerts.on_dag_failure(context)
    (call,) = recording
    assert call["subject"] == "Airflow: zoom_videosdk_qos run scheduled__2026-11-20 failed"
    for text in ("zoom_videosdk_qos", "scheduled__2026-11-20", "Failed tasks: extract_qos",
                 "Reason: task_failure", ti.log_url):
        assert text in call["text"]
    assert "hunter2" not in call["text"] and "hunter2" not in json.dumps(call["alert"], default=str)
    assert call["alert"]["failed_tasks"] == ["extract_qos"] and call["alert"]["log_url"] == ti.log_url


def test_the_daily_dag_calls_back_on_failure_and_checks_alerts_after_the_load(monkeypatch):
    """Parsing imports no notifier (a wrong class path must not break the DAG file)."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__NOTIFIER", "no.such.module.Notifier")
    dag_file = Path(__file__).resolve().parents[3] / "dags" / "zoom_videosdk_qos.py"
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    dag = bag.dags["zoom_videosdk_qos"]
    callbacks = dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else [
        dag.on_failure_callback]
    assert callbacks == [alerts.on_dag_failure]
    check = dag.get_task("check_alerts")
    assert check.upstream_task_ids == {"load_warehouse"} and check.trigger_rule == "all_success"
    assert dag.get_task("record_run").upstream_task_ids == {"check_alerts"}
    assert dag.get_task("record_run").trigger_rule == "all_done"
