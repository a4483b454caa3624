"""Alerts through an Airflow notifier: the configured notifier, and a failed DAG run's alert.

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

* **Failure**: :func:`on_dag_failure` is the DAGs' ``on_failure_callback`` (run by the DAG
  processor): the DAG id, the run id, the failed tasks and the links to them. No connection,
  param or XCom value is included, so nothing secret leaves Airflow.
* **Quality**: the daily alerts of ``zoom_qos.alerts.daily`` are sent through :func:`notify`.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from zoom_qos.core.config import CONFIG_SECTION, NOTIFIER, NOTIFIER_KWARGS
from zoom_qos.core.errors import SettingsError

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier


__all__ = [
    "CONTEXT_KEY",
    "NotifierConfigError",
    "configured_notifier",
    "notify",
    "on_dag_failure",
]

log = logging.getLogger(__name__)

#: Where the alert goes in the notifier's own arguments, when the configuration leaves them unset.
_SUBJECT_ARGS = ("subject", "title")
_MESSAGE_ARGS = ("html_content", "text", "message", "body")
#: The template context key holding the alert (subject, message, figures).
CONTEXT_KEY = "zoom_qos_alert"


class NotifierConfigError(SettingsError):
    """``[zoom_qos] notifier`` or ``notifier_kwargs`` cannot be used; the message names which.
    A ``SettingsError``: permanent, no retry fixes the configuration."""


# --------------------------------------------------------------------------- the notifier
def _notifier_setting() -> tuple[type[BaseNotifier], dict[str, Any]] | None:
    """The configured notifier class and its arguments, None when none is configured."""
    path = (NOTIFIER.raw() or "").strip()
    if not path:
        return None
    # Airflow's notifier machinery only when a notifier is configured
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
    raw = NOTIFIER_KWARGS.raw() or "{}"
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
    if not (NOTIFIER.raw() or "").strip():
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
        except Exception:  # a link is a nicety; the alert must go out
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
        # only inside a supervised task process
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, run_ids=[run_id])
        failed = sorted(task for task, state in (states.get(run_id) or {}).items()
                        if str(getattr(state, "value", state)) == "failed")
        if failed:
            return failed
    except Exception:  # outside a supervised process (tests, scripts)
        log.debug("Could not ask the task states of %s", run_id, exc_info=True)
    task_id = getattr(ti, "task_id", None)
    return [str(task_id)] if task_id else []


def _base_url() -> str | None:
    try:
        from airflow.configuration import conf  # Airflow may be absent (scripts)

        base = conf.get("api", "base_url", fallback=None)
    except Exception:
        return None
    return str(base).rstrip("/") if base else None
