"""Alerts through an Airflow notifier: a failed DAG run, and a loaded day of poor quality.

The notifier is configured in the package's section (see ``zoom_qos.config``)::

    [zoom_qos]
    notifier = airflow.providers.smtp.notifications.smtp.SmtpNotifier
    notifier_kwargs = {"to": "oncall@example.com", "from_email": "airflow@example.com"}

``notifier`` is the class path of an Airflow ``BaseNotifier`` (the SMTP, Slack, Teams… providers
ship one), ``notifier_kwargs`` its arguments as a JSON object. Nothing is configured by default,
and then nothing is sent. The class is imported only when an alert is sent, never when the DAG
is parsed, so a wrong path fails the alert (naming the setting), not the DAG file.

What the alert says goes into the notifier's own message arguments the configured ones leave
unset (``subject``/``title``, and ``html_content``/``text``/``message``/``body``), and is in the
template context as ``zoom_qos_alert`` (``subject``, ``message``, and the figures), so
``notifier_kwargs`` may shape it: ``{"subject": "[QoS] {{ zoom_qos_alert.subject }}"}``.

* **Failure**: :func:`on_dag_failure` is the daily DAG's ``on_failure_callback`` (run by the DAG
  processor): the DAG id, the run id, the failed tasks and the links to them. No connection,
  param or XCom value is included, so nothing secret leaves Airflow.
* **Quality** (:func:`quality_alerts`, the ``check_alerts`` task after a successful load): for
  each day of the run's window, the poor share of each media type (view ``daily_quality``) above
  ``alert_poor_share``, and the share of Zoom's own session count missing from the warehouse
  (view ``daily_completeness``) above ``alert_count_gap``. Each (day, kind) alerts once, ever:
  the alert is a ``quality_alerts`` row, inserted before the notifier is called, so a re-run of
  the day, or two runs at once, do not alert again; a figure that changes later (a lookback
  loads more of the day) does not alert again either, the row keeps the figures that alerted.
  A notifier that fails is logged and recorded (``notified_at`` NULL, ``notify_error``); it never
  fails the load, and that alert is not sent again.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa

from zoom_qos.config import CONFIG_SECTION, number_setting, setting
from zoom_qos.errors import ZoomQosError
from zoom_qos.transform.parsing import utc_day

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier

    from zoom_qos.warehouse import Warehouse

__all__ = [
    "COUNT_GAP",
    "DEFAULT_ALERT_COUNT_GAP",
    "DEFAULT_ALERT_POOR_SHARE",
    "POOR_SHARE",
    "NotifierConfigError",
    "QualityAlert",
    "alert_count_gap",
    "alert_poor_share",
    "configured_notifier",
    "notify",
    "on_dag_failure",
    "quality_alerts",
]

log = logging.getLogger(__name__)

DEFAULT_ALERT_POOR_SHARE = 0.2
DEFAULT_ALERT_COUNT_GAP = 0.05
#: The kinds of quality alert (``quality_alerts.kind``).
POOR_SHARE = "poor_share"
COUNT_GAP = "count_gap"
#: Where the alert goes in the notifier's own arguments, when the configuration leaves them unset.
_SUBJECT_ARGS = ("subject", "title")
_MESSAGE_ARGS = ("html_content", "text", "message", "body")
#: The template context key holding the alert (subject, message, figures).
CONTEXT_KEY = "zoom_qos_alert"


class NotifierConfigError(ZoomQosError, ValueError):
    """``[zoom_qos] notifier`` or ``notifier_kwargs`` cannot be used; the message names which."""


def alert_poor_share() -> float:
    """A day's poor share of a media type above this raises an alert (``alert_poor_share``)."""
    return number_setting("alert_poor_share", DEFAULT_ALERT_POOR_SHARE)


def alert_count_gap() -> float:
    """A day's share of Zoom's session count missing from the warehouse above this raises an alert
    (``alert_count_gap``)."""
    return number_setting("alert_count_gap", DEFAULT_ALERT_COUNT_GAP)


# --------------------------------------------------------------------------- the notifier
def _notifier_setting() -> tuple[type[BaseNotifier], dict[str, Any]] | None:
    """The configured notifier class and its arguments, None when none is configured."""
    path = (setting("notifier") or "").strip()
    if not path:
        return None
    from airflow.sdk import BaseNotifier
    from airflow.sdk.module_loading import import_string

    try:
        notifier_class = import_string(path)
    except (ImportError, ValueError) as error:
        raise NotifierConfigError(
            f"[{CONFIG_SECTION}] notifier = {path!r} cannot be imported ({error}); set it to the class "
            "path of an Airflow notifier, e.g. airflow.providers.smtp.notifications.smtp.SmtpNotifier, "
            "and install its provider."
        ) from error
    if not (isinstance(notifier_class, type) and issubclass(notifier_class, BaseNotifier)):
        raise NotifierConfigError(
            f"[{CONFIG_SECTION}] notifier = {path!r} is not an Airflow notifier (a BaseNotifier subclass)."
        )
    raw = setting("notifier_kwargs") or "{}"
    try:
        kwargs = json.loads(raw)
    except json.JSONDecodeError as error:
        raise NotifierConfigError(
            f"[{CONFIG_SECTION}] notifier_kwargs is not valid JSON ({error.msg} at position {error.pos}); "
            'it must be a JSON object of the notifier\'s arguments, e.g. {"to": "oncall@example.com"}.'
        ) from None
    if not isinstance(kwargs, dict):
        raise NotifierConfigError(
            f"[{CONFIG_SECTION}] notifier_kwargs must be a JSON object of the notifier's arguments, "
            f"got {type(kwargs).__name__}."
        )
    return notifier_class, kwargs


def configured_notifier(subject: str = "", message: str = "") -> BaseNotifier | None:
    """The configured notifier, built to send ``subject`` and ``message``; None when none is
    configured. Raises ``NotifierConfigError`` for a wrong class path, bad JSON or arguments the
    class refuses.

    The alert fills the class's message arguments that ``notifier_kwargs`` leaves unset. A
    templated one reads it from the context (``zoom_qos_alert``), so the text itself is never
    rendered as a template.
    """
    configured = _notifier_setting()
    if configured is None:
        return None
    notifier_class, kwargs = configured
    accepted: Mapping[str, Any]
    try:
        accepted = inspect.signature(notifier_class.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - a C-level or odd __init__
        accepted = {}
    templated = set(getattr(notifier_class, "template_fields", ()))
    for names, value, expression in (
        (_SUBJECT_ARGS, subject, f"{{{{ {CONTEXT_KEY}.subject }}}}"),
        (_MESSAGE_ARGS, message, f"{{{{ {CONTEXT_KEY}.message }}}}"),
    ):
        if not value or any(name in kwargs for name in names):
            continue
        for name in names:
            if name not in accepted:
                continue
            if name in templated:
                kwargs[name] = (f"<pre>{{{{ {CONTEXT_KEY}.message | e }}}}</pre>"
                                if name == "html_content" else expression)
            else:
                kwargs[name] = f"<pre>{html.escape(value)}</pre>" if name == "html_content" else value
            break
    try:
        return notifier_class(**kwargs)
    except TypeError as error:
        raise NotifierConfigError(
            f"[{CONFIG_SECTION}] notifier_kwargs do not fit {notifier_class.__name__}: {error}"
        ) from error


def notify(subject: str, message: str, context: Mapping[str, Any] | None = None,
           **details: Any) -> bool:
    """Send an alert through the configured notifier; False when none is configured.

    ``context`` is the Airflow context when there is one (the notifier's templates may use it);
    the alert is added to it as ``zoom_qos_alert``. A notifier's own failure propagates.
    """
    notifier = configured_notifier(subject, message)
    if notifier is None:
        log.info("No [%s] notifier configured; not sent: %s", CONFIG_SECTION, subject)
        return False
    alert_context: dict[str, Any] = dict(context or {})
    alert_context[CONTEXT_KEY] = {"subject": subject, "message": message, **details}
    if not hasattr(alert_context.get("dag"), "get_template_env"):
        # A DAG callback's context holds the serialized DAG, which has no template environment:
        # the notifier then renders with its default one.
        alert_context.pop("dag", None)
    notifier(alert_context)
    log.info("Alert sent through %s: %s", type(notifier).__name__, subject)
    return True


# --------------------------------------------------------------------------- DAG failure
def on_dag_failure(context: Mapping[str, Any]) -> None:
    """The DAG's ``on_failure_callback``: tell the configured notifier which run failed and where.

    Does nothing when no notifier is configured. A wrong configuration raises
    ``NotifierConfigError`` (the DAG processor logs it with the callback).
    """
    if not (setting("notifier") or "").strip():
        return
    subject, message, details = failure_message(context)
    notify(subject, message, context, **details)


def failure_message(context: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Subject, text and details of a failed run's alert, from the callback's context: ids, the
    failed tasks and links only (no connection, param or XCom value)."""
    dag = context.get("dag")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = str(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or "?")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", None) or "?")
    failed = _failed_tasks(dag_id, run_id, ti)
    base = _base_url()
    run_url = f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id)}" if base else None
    log_url = None
    if ti is not None:
        try:
            log_url = str(ti.log_url)
        except Exception:  # noqa: BLE001 - a link is a nicety; the alert must go out
            log_url = None
    lines = [f"The Airflow DAG run {run_id} of {dag_id} failed."]
    lines.append("Failed tasks: " + (", ".join(failed) if failed else "unknown (see the run)"))
    if context.get("reason"):
        lines.append(f"Reason: {context['reason']}")
    if log_url:
        lines.append(f"Log of {getattr(ti, 'task_id', 'the last task')}: {log_url}")
    if run_url:
        lines.append(f"Run: {run_url}")
    lines.append("The run's pipeline_runs row in the warehouse says what it did; clear the failed "
                 "tasks (or the whole run) once the cause is fixed.")
    details = {"dag_id": dag_id, "run_id": run_id, "failed_tasks": failed, "log_url": log_url,
               "run_url": run_url}
    return f"Airflow: {dag_id} run {run_id} failed", "\n".join(lines), details


def _failed_tasks(dag_id: str, run_id: str, ti: Any) -> list[str]:
    """The run's failed task instances (``task_id`` or ``task_id_<map index>``), asked of the
    API server; the callback's last task instance when that cannot be asked."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        failed = sorted(task for task, state in (states.get(run_id) or {}).items()
                        if str(getattr(state, "value", state)) == "failed")
        if failed:
            return failed
    except Exception:  # noqa: BLE001 - outside a supervised process (tests, scripts)
        log.debug("Could not ask the task states of %s", run_id, exc_info=True)
    task_id = getattr(ti, "task_id", None)
    return [str(task_id)] if task_id else []


def _base_url() -> str | None:
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback=None)
    except Exception:  # noqa: BLE001
        return None
    return str(base).rstrip("/") if base else None


# --------------------------------------------------------------------------- quality
@dataclass
class QualityAlert:
    """One day and kind of alert, with what crossed the threshold."""

    day: date
    kind: str
    threshold: float
    observed: float
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        what = "poor call quality" if self.kind == POOR_SHARE else "sessions missing against Zoom's count"
        return f"Zoom QoS alert {self.day.isoformat()}: {what} ({self.observed:.1%})"

    def message(self, report_path: str | None, run_id: str | None) -> str:
        day = self.day.isoformat()
        if self.kind == POOR_SHARE:
            lines = [f"On {day} (UTC) the share of poor QoS samples was above "
                     f"[{CONFIG_SECTION}] alert_poor_share = {self.threshold:g}:"]
            for media, figures in self.figures["media_types"].items():
                mark = "  <-- above" if media in self.figures["above"] else ""
                lines.append(f"  {media}: {figures['poor_share']:.1%} poor ({figures['poor_samples']:,} "
                             f"of {figures['samples']:,} samples, {figures['sessions']:,} sessions){mark}")
        else:
            f = self.figures
            lines = [f"On {day} (UTC) {f['missing']:,} of the {f['zoom_sessions']:,} sessions Zoom counted "
                     f"({f['gap']:.1%}) are not in the warehouse, above [{CONFIG_SECTION}] alert_count_gap "
                     f"= {self.threshold:g}.",
                     f"  warehouse: {f['warehouse_sessions']:,} sessions ({f['sessions_loaded']:,} loaded, "
                     f"{f['sessions_pending']:,} pending, {f['sessions_unavailable']:,} unavailable)"]
        if report_path:
            lines.append(f"Report: {report_path} (rendered by zoom_videosdk_qos_report after the load)")
        if run_id:
            lines.append(f"Run: {run_id}")
        lines.append("This day and kind of alert is sent once; see the warehouse table quality_alerts.")
        return "\n".join(lines)


def quality_alerts(
    warehouse: Warehouse,
    days: Iterable[date],
    report_path: str | Path | None = None,
    *,
    run_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Raise the quality alerts of ``days`` not raised before; returns them (JSON-able: day, kind,
    threshold, observed, notified).

    Each alert is first inserted into ``quality_alerts``; only the run whose insert wins notifies,
    so a day alerts once even with two runs at once. A notifier failure is logged as a warning and
    recorded, never raised; a wrong notifier configuration raises ``NotifierConfigError`` before
    anything is recorded (so the alerts are sent once it is fixed and the task is cleared).
    ``report_path`` defaults to ``report.build.expected_report_path``.
    """
    days = sorted(set(days))
    if not days:
        return []
    # A wrong configuration fails here, before anything is recorded (building sends nothing).
    configured = configured_notifier("check", "check") is not None
    found = evaluate(warehouse, days, alert_poor_share(), alert_count_gap())
    if not found:
        log.info("Quality alerts: nothing above the thresholds on %s..%s", days[0], days[-1])
        return []
    if report_path is None:
        from zoom_qos.report.build import expected_report_path  # Jinja2 only when alerting

        report_path = expected_report_path(warehouse)
    path = str(report_path)
    raised: list[dict[str, Any]] = []
    for alert in found:
        stamp = now or datetime.now(UTC)
        row = {"alert_day": alert.day, "kind": alert.kind, "threshold": alert.threshold,
               "observed": alert.observed, "figures": alert.figures, "report_path": path,
               "run_id": run_id, "raised_at": stamp, "notified_at": None,
               "notify_error": None if configured else "no notifier configured"}
        if not warehouse.claim_quality_alert(row):
            log.info("Quality alert %s %s was raised before; not sent again", alert.day, alert.kind)
            continue
        message = alert.message(path, run_id)
        log.warning("Quality alert: %s\n%s", alert.subject, message)
        notified = False
        if configured:
            try:
                notified = notify(alert.subject, message, context, day=alert.day.isoformat(), kind=alert.kind,
                                  threshold=alert.threshold, observed=alert.observed, figures=alert.figures,
                                  report_path=path)
            except Exception as error:  # noqa: BLE001 - a notifier failure must not fail the load
                log.warning("The notifier failed to send the quality alert %s %s: %s: %s", alert.day,
                            alert.kind, type(error).__name__, error, exc_info=True)
                warehouse.note_quality_alert(alert.day, alert.kind,
                                             notify_error=f"{type(error).__name__}: {error}"[:500])
            else:
                if notified:
                    warehouse.note_quality_alert(alert.day, alert.kind, notified_at=datetime.now(UTC))
        raised.append({"day": alert.day.isoformat(), "kind": alert.kind, "threshold": alert.threshold,
                       "observed": alert.observed, "notified": notified})
    return raised


def evaluate(warehouse: Warehouse, days: Iterable[date], poor_share: float,
             count_gap: float) -> list[QualityAlert]:
    """The (day, kind) crossings of ``days``, from the views, whether alerted before or not.

    A day's poor share crosses when one of its media types has a poor share above ``poor_share``;
    its count gap when ``(zoom_sessions - warehouse_sessions) / zoom_sessions`` is above
    ``count_gap`` (days without Zoom's count are not judged).
    """
    from zoom_qos.warehouse.sql import object_prefix
    from zoom_qos.warehouse.views import MEDIA_TYPES

    wanted = sorted(set(days))
    if not wanted:
        return []
    prefix = object_prefix(warehouse.dialect, warehouse.schema)
    bounds: dict[str, Any] = {"first": wanted[0], "last": wanted[-1]}
    if warehouse.dialect == "sqlite":  # the views' days are ISO text there
        bounds = {k: v.isoformat() for k, v in bounds.items()}
    media_list = ", ".join(f"'{m}'" for m in MEDIA_TYPES)
    with warehouse.engine.connect() as conn:
        quality = conn.execute(sa.text(
            f"SELECT day, media_type, sessions, samples, poor_samples, poor_share FROM {prefix}daily_quality "
            f"WHERE day >= :first AND day <= :last AND media_type IN ({media_list}) "
            "ORDER BY day, media_type"), bounds).mappings().all()
        completeness = conn.execute(sa.text(
            "SELECT usage_date, zoom_sessions, warehouse_sessions, sessions_loaded, sessions_pending, "
            f"sessions_unavailable FROM {prefix}daily_completeness "
            "WHERE usage_date >= :first AND usage_date <= :last ORDER BY usage_date"),
            bounds).mappings().all()
    keep = set(wanted)
    by_day: dict[date, dict[str, dict[str, Any]]] = {}
    for row in quality:
        day = utc_day(row["day"])
        if day in keep and row["poor_share"] is not None:
            by_day.setdefault(day, {})[str(row["media_type"])] = {
                "poor_share": round(float(row["poor_share"]), 6),
                "poor_samples": int(row["poor_samples"] or 0), "samples": int(row["samples"] or 0),
                "sessions": int(row["sessions"] or 0)}
    alerts: list[QualityAlert] = []
    for day, media in sorted(by_day.items()):
        above = [m for m, f in media.items() if f["poor_share"] > poor_share]
        if above:
            worst = max(media[m]["poor_share"] for m in above)
            alerts.append(QualityAlert(day, POOR_SHARE, poor_share, worst,
                                       {"media_types": media, "above": above}))
    for row in completeness:
        day = utc_day(row["usage_date"])
        zoom = row["zoom_sessions"]
        if day not in keep or zoom is None or int(zoom) <= 0:
            continue
        counts = ("zoom_sessions", "warehouse_sessions", "sessions_loaded", "sessions_pending",
                  "sessions_unavailable")
        figures: dict[str, Any] = {k: int(row[k] or 0) for k in counts}
        figures["missing"] = max(0, figures["zoom_sessions"] - figures["warehouse_sessions"])
        figures["gap"] = round(figures["missing"] / figures["zoom_sessions"], 6)
        if figures["gap"] > count_gap:
            alerts.append(QualityAlert(day, COUNT_GAP, count_gap, figures["gap"], figures))
    return sorted(alerts, key=lambda a: (a.day, a.kind))
