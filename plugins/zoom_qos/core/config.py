"""Names, defaults and the package's settings, shared by the DAGs, the hook and the loader.

Credentials, URLs and tuning of Zoom and the warehouse are Airflow connections. What a deployment
sets for the package itself is Airflow configuration, section ``[zoom_qos]``: in ``airflow.cfg``,
as ``AIRFLOW__ZOOM_QOS__<KEY>`` environment variables, or from a secrets backend, like any other
Airflow setting. The older ``ZOOM_QOS_*`` variables still work and log a deprecation warning.

======================  ==========================  ==============================================
key                     default                     what
======================  ==========================  ==============================================
data_dir                ``$AIRFLOW_HOME/zoom_qos``  the embedded SQLite warehouse, local staging, reports
staging_url             ``<data_dir>/staging``      where extraction stages (``s3://…`` on a cluster)
staging_retention_days  ``7``                       days a run's staging is kept after its load
report_dir              ``<data_dir>/reports``      where the QoS report is written
budget_dir              ``<data_dir>/budget``       the daily request count, when there is no Redis
rate_limit_redis_url    empty                       Redis shared by every worker for pacing and the
                                                    daily count; empty: one extraction at a time
notifier                empty                       class path of an Airflow notifier for alerts
notifier_kwargs         ``{}``                      its arguments, a JSON object
alert_poor_share        ``0.2``                     a loaded day's poor share that raises an alert
alert_count_gap         ``0.05``                    share of Zoom's count missing from the warehouse
                                                    that raises an alert
live_interval_minutes   ``5``                       how often the live DAG polls sessions in progress
live_window_minutes     ``10``                      the recent samples a live join is judged on
live_alert_poor_share   ``0.5``                     a live join's poor share that raises an alert
live_alert_min_samples  ``5``                       rated samples a live alert needs at least
======================  ==========================  ==============================================

Nothing defaults to the package's own folder: installed from a wheel, that is site-packages.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

from zoom_qos.core.statuses import DEFAULT_QOS_PENDING_MAX_HOURS

log = logging.getLogger(__name__)

#: The package's section of the Airflow configuration.
CONFIG_SECTION = "zoom_qos"
#: Each setting and the environment variable that set it before the section existed.
LEGACY_ENV = {"data_dir": "ZOOM_QOS_DATA_DIR", "staging_url": "ZOOM_QOS_STAGING_URL",
              "report_dir": "ZOOM_QOS_REPORT_DIR", "budget_dir": "ZOOM_QOS_BUDGET_DIR",
              "rate_limit_redis_url": "ZOOM_QOS_RATE_LIMIT_REDIS_URL"}
_warned: set[str] = set()

ZOOM_CONN_ID = "zoom_videosdk"
WAREHOUSE_CONN_ID = "zoom_qos_warehouse"
DEFAULT_ZOOM_BASE_URL = "https://api.zoom.us/v2"
DEFAULT_WAREHOUSE_SCHEMA = "zoom_qos"



class ParamRange(NamedTuple):
    """An integer param's default and the values it may take (``minimum`` to ``maximum``, both
    included)."""

    default: int
    minimum: int
    maximum: int

    def schema(self) -> dict[str, Any]:
        """What a ``Param`` is declared with, so Airflow checks the same range at trigger time."""
        return {"default": self.default, "type": "integer", "minimum": self.minimum,
                "maximum": self.maximum}


#: The daily DAG's integer params, defined once: the DAG declares its ``Param``s with them, the
#: listing refuses a value outside them before any request (``windows.check_listing_params``; a
#: caller such as a script or a test is not checked by Airflow) and fills in any it leaves out.
#: What each one means is in the DAG's param descriptions.
LISTING_PARAMS: dict[str, ParamRange] = {
    # Zoom lists at most a month per request; a longer lookback is a manual reload's job.
    "lookback_days": ParamRange(1, 0, 31),
    # The longest lookback: waiting longer than that to call a session settled reads every
    # lookback session again anyway.
    "lookback_settle_minutes": ParamRange(60, 0, 31 * 24 * 60),
    # Zoom serves nothing older than six months (at most 184 days), so none stays pending longer.
    "qos_pending_max_hours": ParamRange(DEFAULT_QOS_PENDING_MAX_HOURS, 0, 184 * 24),
    # Sessions per mapped extraction task; more than 10,000 is one task reading a busy day alone.
    "batch_size": ParamRange(100, 1, 10_000),
}
LISTING_PARAM_DEFAULTS: dict[str, int] = {name: bounds.default for name, bounds in LISTING_PARAMS.items()}

DEFAULT_STAGING_RETENTION_DAYS = 7.0
#: Live monitoring (DAG ``zoom_videosdk_qos_live``): its schedule, window and alert rule.
DEFAULT_LIVE_INTERVAL_MINUTES = 5.0
DEFAULT_LIVE_WINDOW_MINUTES = 10.0
DEFAULT_LIVE_ALERT_POOR_SHARE = 0.5
DEFAULT_LIVE_ALERT_MIN_SAMPLES = 5.0


def setting(key: str) -> str | None:
    """The package's setting ``key`` (``[zoom_qos]``), else its deprecated ``ZOOM_QOS_*`` variable."""
    value: str | None = None
    try:
        from airflow.configuration import conf  # the core runs without Airflow too
    except ImportError:  # outside Airflow (scripts, the client's own tests)
        pass
    else:
        value = conf.get(CONFIG_SECTION, key, fallback=None) or None
    if value:
        return value
    legacy = LEGACY_ENV.get(key)
    if legacy is None:
        return None
    value = os.environ.get(legacy)
    if value and legacy not in _warned:
        _warned.add(legacy)
        log.warning("%s is deprecated: set [%s] %s in the Airflow configuration (or AIRFLOW__%s__%s) "
                    "instead.", legacy, CONFIG_SECTION, key, CONFIG_SECTION.upper(), key.upper())
    return value or None


def airflow_home() -> Path:
    """``$AIRFLOW_HOME``, or Airflow's own default ``~/airflow``."""
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


def data_dir() -> Path:
    """Folder for the embedded warehouse, local staging and reports (setting ``data_dir``)."""
    configured = setting("data_dir")
    return Path(configured).expanduser() if configured else airflow_home() / "zoom_qos"


def default_warehouse_path() -> Path:
    """The SQLite file used when no ``zoom_qos_warehouse`` connection is defined."""
    return data_dir() / "warehouse.db"


def staging_url() -> str:
    """Where extraction writes what it read: a local folder by default, ``s3://…`` on a cluster.

    Every worker must see the same storage, so a multi-machine deployment sets ``staging_url``
    to a bucket or a shared volume.
    """
    return setting("staging_url") or (data_dir() / "staging").as_uri()


def report_dir() -> Path:
    """Where the QoS report is written (setting ``report_dir``)."""
    configured = setting("report_dir")
    return Path(configured).expanduser() if configured else data_dir() / "reports"


def budget_dir() -> Path:
    """Where the daily request count is kept without Redis (setting ``budget_dir``): every task
    of one machine must see the same folder."""
    configured = setting("budget_dir")
    return Path(configured).expanduser() if configured else data_dir() / "budget"


def rate_limit_redis_url() -> str:
    """The Redis shared by every worker for pacing and the daily count (setting
    ``rate_limit_redis_url``; the Zoom connection's extra of that name, when set, wins for the
    pacing). Empty: pacing and counting are per machine, and the DAG runs one extraction at a time."""
    return setting("rate_limit_redis_url") or ""


def staging_retention_days() -> float:
    """Days a run's staging folder is kept after its successful load (setting
    ``staging_retention_days``, default 7; 0 removes it at the next run's record)."""
    return number_setting("staging_retention_days", DEFAULT_STAGING_RETENTION_DAYS)


def number_setting(key: str, default: float) -> float:
    """Setting ``key`` as a number of 0 or more, ``default`` when unset. NaN and infinity are
    refused too: every comparison with NaN is false, so a threshold of NaN would never alert,
    and an infinite one never either."""
    raw = setting(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"[{CONFIG_SECTION}] {key} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"[{CONFIG_SECTION}] {key} must be a finite number (0 or more), got {raw!r}")
    if value < 0:
        raise ValueError(f"[{CONFIG_SECTION}] {key} must not be negative, got {raw!r}")
    return value


def share_setting(key: str, default: float) -> float:
    """Setting ``key`` as a share, 0 to 1: a threshold above 1 could never be crossed."""
    value = number_setting(key, default)
    if value > 1:
        raise ValueError(f"[{CONFIG_SECTION}] {key} is a share, 0 to 1 (e.g. 0.2 for 20 %); got {value:g}")
    return value


def live_interval_minutes() -> float:
    """How often the live DAG polls (setting ``live_interval_minutes``; read when the DAG file is
    parsed, since it is the schedule)."""
    value = number_setting("live_interval_minutes", DEFAULT_LIVE_INTERVAL_MINUTES)
    if value <= 0:
        raise ValueError(f"[{CONFIG_SECTION}] live_interval_minutes must be more than 0, got {value}")
    return value


def live_window_minutes() -> float:
    """The minutes of a live join's latest samples its quality is judged on: used in whole
    minutes (the fraction is dropped), so at least 1, or the window would hold no sample."""
    value = number_setting("live_window_minutes", DEFAULT_LIVE_WINDOW_MINUTES)
    if value < 1:
        raise ValueError(f"[{CONFIG_SECTION}] live_window_minutes must be at least 1 (whole minutes), "
                         f"got {value:g}")
    return value


def live_alert_poor_share() -> float:
    """A live join's poor share of one media type at or above which an alert is raised."""
    return share_setting("live_alert_poor_share", DEFAULT_LIVE_ALERT_POOR_SHARE)


def live_alert_min_samples() -> int:
    """Rated samples in the window a live alert needs at least: a whole number, at least 1."""
    value = number_setting("live_alert_min_samples", DEFAULT_LIVE_ALERT_MIN_SAMPLES)
    if value < 1:
        raise ValueError(f"[{CONFIG_SECTION}] live_alert_min_samples must be at least 1, got {value:g}")
    return int(value)
