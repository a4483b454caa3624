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

Each key is defined once below, as a ``Setting`` (its default, the values it may take, and its
deprecated variable), next to the function that reads it; ``SETTINGS`` holds them all, in the
table's order (a test checks the table and ``docs/configuration.md`` against it). A value a number
setting cannot take (not a number, NaN, infinite, out of its range) raises ``SettingsError``,
naming the key, the value and the range: a ``PermanentError``, so the task fails without retrying.

Nothing defaults to the package's own folder: installed from a wheel, that is site-packages.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from zoom_qos.core.errors import SettingsError
from zoom_qos.core.statuses import DEFAULT_QOS_PENDING_MAX_HOURS

log = logging.getLogger(__name__)

#: The package's section of the Airflow configuration.
CONFIG_SECTION = "zoom_qos"
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


# --------------------------------------------------------------------------- the [zoom_qos] keys
#: ``text``: taken as written (an empty value is unset); ``number``: a finite number in the
#: setting's range; ``share``: a number from 0 to 1; ``whole``: a number in its range, of which the
#: reader keeps the whole part.
SettingKind = Literal["text", "number", "share", "whole"]


@dataclass(frozen=True)
class Setting:
    """One ``[zoom_qos]`` key: its default, the values it may take and its deprecated variable.

    A number's ``default`` is the value used when the key is unset, and it may take ``minimum``
    (or only more, when ``above``) to ``maximum``. A text setting's default is worked out by its
    reader (from ``data_dir`` for most), so ``default`` is that default as the docs show it.
    """

    key: str
    default: float | str
    kind: SettingKind = "text"
    minimum: float = 0.0
    maximum: float = math.inf
    above: bool = False
    #: The ``ZOOM_QOS_*`` variable that set it before the section existed, read as a fallback.
    legacy_env: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "share" and (self.minimum, self.maximum) != (0.0, 1.0):
            raise ValueError(f"{self.key}: a share ranges from 0 to 1")
        if self.kind != "text" and not (isinstance(self.default, int | float) and self.allows(self.default)):
            raise ValueError(f"{self.key}: the default {self.default!r} lies outside its own range")

    def raw(self) -> str | None:
        """The value as configured, None when unset."""
        return setting(self.key)

    def allows(self, value: float) -> bool:
        """Whether ``value`` lies in the range; NaN compares false with everything, so it never does."""
        low = value > self.minimum if self.above else value >= self.minimum
        return low and value <= self.maximum

    def describe(self) -> str:
        """The range in words, as a refusal names it."""
        if self.kind == "share":
            return "a number from 0 to 1 (e.g. 0.2 for 20 %)"
        if self.above:
            low = f"more than {_number(self.minimum)}"
        else:
            low = "0 or more" if self.minimum == 0 else f"at least {_number(self.minimum)}"
        high = "" if math.isinf(self.maximum) else f" and at most {_number(self.maximum)}"
        return f"{'a whole number' if self.kind == 'whole' else 'a number'}, {low}{high}"

    def shown_default(self) -> str:
        """The default as the table of keys shows it: ``7``, ``0.05``, empty, ``<data_dir>/staging``."""
        if isinstance(self.default, str):
            return self.default
        return f"``{_number(self.default)}``"

    def number(self) -> float:
        """The setting as a number within its range, its default when unset; ``SettingsError``
        (naming the key, the value and what it may be) for anything else. NaN and infinity are
        refused too: every comparison with NaN is false, so a threshold of NaN would never alert,
        and an infinite one never either."""
        if self.kind == "text":
            raise ValueError(f"{self.key} is a text setting, not a number")  # our own code's mistake
        raw = self.raw()
        if raw is None:
            return float(self.default)
        try:
            value = float(raw)
        except ValueError:
            raise self._refusal(raw, "must be a number") from None
        if not math.isfinite(value):
            raise self._refusal(raw, "must be a finite number")
        if value > self.maximum:
            raise self._refusal(raw, "is a share, 0 to 1" if self.kind == "share"
                                else f"must be at most {_number(self.maximum)}")
        if not self.allows(value):  # below the minimum, or at it when it must be more
            if self.above:
                raise self._refusal(raw, f"must be more than {_number(self.minimum)}")
            raise self._refusal(raw, "must not be negative" if self.minimum == 0
                                else f"must be at least {_number(self.minimum)}")
        return value

    def _refusal(self, raw: str, problem: str) -> SettingsError:
        return SettingsError(
            f"[{CONFIG_SECTION}] {self.key} {problem}, got {raw!r}: set it to {self.describe()}, or "
            f"remove it to use the default, {_number(float(self.default))}.")


def _number(value: float) -> str:
    """``value`` as a person writes it in a message: 7 and 0.05, not 7.0."""
    return f"{value:g}"


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


# Where things are -------------------------------------------------------------------------------
DATA_DIR = Setting("data_dir", "``$AIRFLOW_HOME/zoom_qos``", legacy_env="ZOOM_QOS_DATA_DIR")


def data_dir() -> Path:
    """Folder for the embedded warehouse, local staging and reports (setting ``data_dir``)."""
    configured = DATA_DIR.raw()
    return Path(configured).expanduser() if configured else airflow_home() / "zoom_qos"


def default_warehouse_path() -> Path:
    """The SQLite file used when no ``zoom_qos_warehouse`` connection is defined."""
    return data_dir() / "warehouse.db"


STAGING_URL = Setting("staging_url", "``<data_dir>/staging``", legacy_env="ZOOM_QOS_STAGING_URL")


def staging_url() -> str:
    """Where extraction writes what it read: a local folder by default, ``s3://…`` on a cluster.

    Every worker must see the same storage, so a multi-machine deployment sets ``staging_url``
    to a bucket or a shared volume.
    """
    return STAGING_URL.raw() or (data_dir() / "staging").as_uri()


DEFAULT_STAGING_RETENTION_DAYS = 7.0
STAGING_RETENTION_DAYS = Setting("staging_retention_days", DEFAULT_STAGING_RETENTION_DAYS, "number")


def staging_retention_days() -> float:
    """Days a run's staging folder is kept after its successful load (setting
    ``staging_retention_days``, default 7, 0 or more; 0 removes it at the next run's record)."""
    return STAGING_RETENTION_DAYS.number()


REPORT_DIR = Setting("report_dir", "``<data_dir>/reports``", legacy_env="ZOOM_QOS_REPORT_DIR")


def report_dir() -> Path:
    """Where the QoS report is written (setting ``report_dir``)."""
    configured = REPORT_DIR.raw()
    return Path(configured).expanduser() if configured else data_dir() / "reports"


BUDGET_DIR = Setting("budget_dir", "``<data_dir>/budget``", legacy_env="ZOOM_QOS_BUDGET_DIR")


def budget_dir() -> Path:
    """Where the daily request count is kept without Redis (setting ``budget_dir``): every task
    of one machine must see the same folder."""
    configured = BUDGET_DIR.raw()
    return Path(configured).expanduser() if configured else data_dir() / "budget"


RATE_LIMIT_REDIS_URL = Setting("rate_limit_redis_url", "empty", legacy_env="ZOOM_QOS_RATE_LIMIT_REDIS_URL")


def rate_limit_redis_url() -> str:
    """The Redis shared by every worker for pacing and the daily count (setting
    ``rate_limit_redis_url``; the Zoom connection's extra of that name, when set, wins for the
    pacing). Empty: pacing and counting are per machine, and the DAG runs one extraction at a time."""
    return RATE_LIMIT_REDIS_URL.raw() or ""


# Alerts -----------------------------------------------------------------------------------------
#: Read, and checked (``NotifierConfigError``), by ``alerts.notify`` when an alert is sent.
NOTIFIER = Setting("notifier", "empty")
NOTIFIER_KWARGS = Setting("notifier_kwargs", "``{}``")

DEFAULT_ALERT_POOR_SHARE = 0.2
ALERT_POOR_SHARE = Setting("alert_poor_share", DEFAULT_ALERT_POOR_SHARE, "share", maximum=1.0)


def alert_poor_share() -> float:
    """A day's poor share of a media type above this raises an alert (``alert_poor_share``); a
    share, 0 to 1."""
    return ALERT_POOR_SHARE.number()


DEFAULT_ALERT_COUNT_GAP = 0.05
ALERT_COUNT_GAP = Setting("alert_count_gap", DEFAULT_ALERT_COUNT_GAP, "share", maximum=1.0)


def alert_count_gap() -> float:
    """A day's share of Zoom's session count missing from the warehouse above this raises an alert
    (``alert_count_gap``); a share, 0 to 1."""
    return ALERT_COUNT_GAP.number()


# Live monitoring (DAG ``zoom_videosdk_qos_live``): its schedule, window and alert rule -----------
DEFAULT_LIVE_INTERVAL_MINUTES = 5.0
LIVE_INTERVAL_MINUTES = Setting("live_interval_minutes", DEFAULT_LIVE_INTERVAL_MINUTES, "number", above=True)


def live_interval_minutes() -> float:
    """How often the live DAG polls (setting ``live_interval_minutes``, more than 0; read when the
    DAG file is parsed, since it is the schedule)."""
    return LIVE_INTERVAL_MINUTES.number()


DEFAULT_LIVE_WINDOW_MINUTES = 10.0
LIVE_WINDOW_MINUTES = Setting("live_window_minutes", DEFAULT_LIVE_WINDOW_MINUTES, "number", minimum=1.0)


def live_window_minutes() -> float:
    """The minutes of a live join's latest samples its quality is judged on: used in whole
    minutes (the fraction is dropped), so at least 1, or the window would hold no sample."""
    return LIVE_WINDOW_MINUTES.number()


DEFAULT_LIVE_ALERT_POOR_SHARE = 0.5
LIVE_ALERT_POOR_SHARE = Setting("live_alert_poor_share", DEFAULT_LIVE_ALERT_POOR_SHARE, "share", maximum=1.0)


def live_alert_poor_share() -> float:
    """A live join's poor share of one media type at or above which an alert is raised."""
    return LIVE_ALERT_POOR_SHARE.number()


DEFAULT_LIVE_ALERT_MIN_SAMPLES = 5.0
LIVE_ALERT_MIN_SAMPLES = Setting("live_alert_min_samples", DEFAULT_LIVE_ALERT_MIN_SAMPLES, "whole",
                                 minimum=1.0)


def live_alert_min_samples() -> int:
    """Rated samples in the window a live alert needs at least: a whole number (the fraction is
    dropped), at least 1."""
    return int(LIVE_ALERT_MIN_SAMPLES.number())


#: Every ``[zoom_qos]`` key, in the order of the module docstring's table.
SETTINGS: dict[str, Setting] = {s.key: s for s in (
    DATA_DIR, STAGING_URL, STAGING_RETENTION_DAYS, REPORT_DIR, BUDGET_DIR, RATE_LIMIT_REDIS_URL,
    NOTIFIER, NOTIFIER_KWARGS, ALERT_POOR_SHARE, ALERT_COUNT_GAP, LIVE_INTERVAL_MINUTES,
    LIVE_WINDOW_MINUTES, LIVE_ALERT_POOR_SHARE, LIVE_ALERT_MIN_SAMPLES)}
#: Each setting and the environment variable that set it before the section existed.
LEGACY_ENV: dict[str, str] = {s.key: s.legacy_env for s in SETTINGS.values() if s.legacy_env}
