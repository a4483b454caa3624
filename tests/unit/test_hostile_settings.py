"""Settings that are not what they should be are refused, naming the setting, the value and what
is allowed, before any request to Zoom or any write (staging, warehouse file, schema).

The listing tests run ``tasks.list_sessions`` as the DAG task does (``fail_fast``) against the
local simulator, with the embedded SQLite warehouse and local staging under ``data_dir``, and
check that the simulator counted no request and that neither the staging folder nor the warehouse
file exists. ``test_a_good_listing_requests_and_writes`` shows the same checks do see a listing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy.engine import URL

from include.zoom_simulator import Simulator, SimulatorConfig
from tests.conftest import API_KEY, API_SECRET
from zoom_qos import tasks
from zoom_qos.alerts import daily as day_alerts
from zoom_qos.alerts.notify import NotifierConfigError
from zoom_qos.core import config
from zoom_qos.core.errors import InvalidParamError, PermanentError, SettingsError
from zoom_qos.operators import fail_fast
from zoom_qos.pipeline.privacy import Pseudonymizer
from zoom_qos.pipeline.windows import check_listing_params, requested_window
from zoom_qos.warehouse.connection import WarehouseConnectionError, airflow_target
from zoom_qos.warehouse.sql import UnsupportedDatabaseError, check_dialect
from zoom_qos.zoom.auth import ZoomJwtAuth
from zoom_qos.zoom.budget import budget_for
from zoom_qos.zoom.errors import ZoomConfigError
from zoom_qos.zoom.pagination import RestartingPaginator
from zoom_qos.zoom.settings import ZoomSettings

WAREHOUSE_ENV = "AIRFLOW_CONN_ZOOM_QOS_WAREHOUSE"


# --------------------------------------------------------------------------- the listing, end to end
@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    """One simulator for the module (stopping one takes half a second): each test resets its
    counters, and none changes its faults or clock."""
    sim = Simulator(SimulatorConfig(api_key=API_KEY, api_secret=API_SECRET, seed=7, sessions_per_day=8),
                    host="127.0.0.1", port=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``[zoom_qos] data_dir`` in a fresh folder: the default warehouse file and staging go there."""
    folder = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__DATA_DIR", str(folder))
    monkeypatch.delenv("AIRFLOW__ZOOM_QOS__STAGING_URL", raising=False)
    monkeypatch.delenv(WAREHOUSE_ENV, raising=False)
    return folder


def list_as_the_dag_does(simulator: Simulator, **params: Any) -> tuple[list[dict], dict]:
    """One day's listing with ``params``, its warehouse and staging the configured defaults."""
    day = simulator.dataset.now.date() - timedelta(days=2)
    with fail_fast():
        return tasks.list_sessions(dag_id="zoom_videosdk_qos", run_id="hostile", interval_start=None,
                                   interval_end=None, params={"from_date": day.isoformat(),
                                                              "to_date": day.isoformat(), **params})


def assert_nothing_sent_or_written(simulator: Simulator, data_dir: Path) -> None:
    stats = simulator.stats()
    assert stats["requests"] == 0 and sum(stats["by_endpoint"].values()) == 0, stats
    assert config.default_warehouse_path().parent == data_dir
    assert not (data_dir / "staging").exists() and not config.default_warehouse_path().exists()
    assert not data_dir.exists()  # nothing at all: not even the folder the warehouse file goes in


def test_a_good_listing_requests_and_writes(simulator, zoom_conn, data_dir):
    """The control: with nothing wrong, the checks below would see requests and files."""
    simulator.reset_stats()
    batches, _ = list_as_the_dag_does(simulator)
    assert simulator.stats()["requests"] > 0 and batches
    assert (data_dir / "staging").is_dir() and config.default_warehouse_path().is_file()


@pytest.mark.parametrize("name,value,allowed", [
    ("lookback_days", 10_000, "from 0 to 31"),
    ("lookback_days", -1, "from 0 to 31"),
    ("lookback_days", "abc", "from 0 to 31"),
    ("lookback_days", True, "from 0 to 31"),
    ("lookback_settle_minutes", -5, "from 0 to 44,640"),
    ("qos_pending_max_hours", 2.5, "from 0 to 4,416"),
    ("qos_pending_max_hours", float("nan"), "from 0 to 4,416"),
    ("batch_size", 0, "from 1 to 10,000"),
    ("batch_size", -3, "from 1 to 10,000"),
    ("batch_size", 10**9, "from 1 to 10,000"),
])
def test_a_param_out_of_range_fails_before_any_request_or_write(simulator, zoom_conn, data_dir, name,
                                                                value, allowed):
    simulator.reset_stats()
    with pytest.raises(AirflowFailException) as caught:
        list_as_the_dag_does(simulator, **{name: value})
    assert isinstance(caught.value.__cause__, InvalidParamError)
    message = str(caught.value)
    assert f"param {name} must be a whole number {allowed}, got {value!r}" in message
    assert_nothing_sent_or_written(simulator, data_dir)


@pytest.mark.parametrize("extra,named", [
    ({"max_retries": "x"}, "'max_retries' must be a int, got 'x'"),  # the wrong type fails at once too
    ({"read_user_grades": "sure"}, "'read_user_grades' must be a bool, got 'sure'"),
    ({"backfill_reserve_requests": 60_000}, r"'backfill_reserve_requests' \(60,000\) and "
                                            r"'live_daily_request_budget' \(3,000\) together must be less"),
    ({"max_concurrent_sessions": 0}, "'max_concurrent_sessions' is 0, but it must be from 1 to 256"),
    ({"heavy_requests_per_second": -1}, "'heavy_requests_per_second' is -1.0, but it must be more than 0"),
    ({"timeout_seconds": "NaN"}, "'timeout_seconds' is nan, but it must be more than 0 and at most 3,600"),
    ({"list_page_size": 0}, "'list_page_size' is 0, but Zoom's published definition allows 1 to 300"),
    ({"daily_request_limit": -5}, "'daily_request_limit' is -5, but it must be from 0 to 10,000,000"),
])
def test_a_bad_zoom_extra_fails_before_any_request_or_write(simulator, zoom_conn, data_dir, extra, named):
    """Of the wrong type or out of range, a ``ZoomConfigError``: permanent, the task does not retry."""
    zoom_conn(**extra)
    simulator.reset_stats()
    with pytest.raises(AirflowFailException, match=named) as caught:
        list_as_the_dag_does(simulator)
    assert isinstance(caught.value.__cause__, ZoomConfigError)
    assert API_SECRET not in str(caught.value)
    assert_nothing_sent_or_written(simulator, data_dir)


# --------------------------------------------------------------------------- the listing params
def test_the_params_come_back_typed_with_their_defaults():
    assert check_listing_params({"lookback_days": "3", "batch_size": 50.0, "from_date": None}) == {
        "lookback_days": 3, "lookback_settle_minutes": 60, "qos_pending_max_hours": 72, "batch_size": 50}


@pytest.mark.parametrize("name", sorted(config.LISTING_PARAMS))
def test_each_end_of_a_param_s_range_is_taken_and_one_past_it_refused(name):
    bounds = config.LISTING_PARAMS[name]
    for inside in (bounds.minimum, bounds.maximum):
        assert check_listing_params({name: inside})[name] == inside
    for outside in (bounds.minimum - 1, bounds.maximum + 1):
        with pytest.raises(InvalidParamError, match=f"param {name} .* got {outside}:"):
            check_listing_params({name: outside})
    assert issubclass(InvalidParamError, PermanentError)


def test_a_huge_lookback_is_refused_not_cut_to_what_zoom_serves():
    today = date(2026, 11, 26)
    assert requested_window(None, None, None, None, 31, today).days == 32
    refused = "lookback_days must be a whole number from 0 to 31, got 10000"
    with pytest.raises(InvalidParamError, match=refused):
        requested_window(None, None, None, None, 10_000, today)


def test_the_dag_declares_its_params_with_the_same_ranges():
    """Airflow refuses, at trigger time, what the listing refuses: one definition of both."""
    from airflow.sdk.exceptions import ParamValidationError

    from dags.zoom_videosdk_qos import zoom_videosdk_qos

    params = zoom_videosdk_qos().params
    for name, bounds in config.LISTING_PARAMS.items():
        param = params.get_param(name)
        assert (param.value, param.schema["minimum"], param.schema["maximum"]) == (
            bounds.default, bounds.minimum, bounds.maximum)
        assert param.resolve(bounds.maximum) == bounds.maximum
        with pytest.raises(ParamValidationError):
            param.resolve(bounds.maximum + 1)


# --------------------------------------------------------------------------- the Zoom connection's extras
@pytest.mark.parametrize("name,raw,shown,allowed", [
    ("max_concurrent_sessions", 0, "0", "from 1 to 256"),
    ("max_concurrent_sessions", 10_000, "10000", "from 1 to 256"),
    ("heavy_requests_per_second", 0, "0.0", "more than 0 and at most 10,000"),
    ("heavy_requests_per_second", "inf", "inf", "more than 0 and at most 10,000"),
    ("resource_intensive_requests_per_minute", -20, "-20.0", "more than 0 and at most 10,000"),
    ("timeout_seconds", 0, "0.0", "more than 0 and at most 3,600"),
    ("timeout_seconds", float("nan"), "nan", "more than 0 and at most 3,600"),
    ("max_retries", -3, "-3", "from 0 to 100"),
    ("retry_max_total_seconds", 0, "0.0", "more than 0 and at most 86,400"),
    ("backoff_base_seconds", "-0.5", "-0.5", "more than 0 and at most 600"),
    ("page_token_ttl_seconds", 3600, "3600.0", "more than 0 and at most 900"),
    ("page_token_safety_seconds", 0, "0.0", "more than 0 and at most 900"),
    ("max_page_restarts", -1, "-1", "from 0 to 100"),
    ("jwt_ttl_seconds", 0, "0", "more than 60 and at most 86,400"),
    ("jwt_ttl_seconds", 60, "60", "more than 60 and at most 86,400"),
    ("daily_limit_resume_delay_seconds", -1, "-1.0", "from 0 to 3,600"),
    ("daily_request_limit", -5, "-5", "from 0 to 10,000,000"),
    ("backfill_reserve_requests", -1, "-1", "from 0 to 10,000,000"),
    ("live_daily_request_budget", 10**12, "1000000000000", "from 0 to 10,000,000"),
])
def test_an_extra_out_of_its_range_is_refused_naming_it_the_value_and_the_range(name, raw, shown, allowed):
    with pytest.raises(ZoomConfigError) as caught:
        ZoomSettings.from_extra({name: raw})
    message = str(caught.value)
    assert f"Connection extra {name!r} is {shown}, but it must be {allowed}: " in message
    assert "or remove it to use the default" in message


@pytest.mark.parametrize("extra", [
    {"qos_page_size": 0}, {"qos_page_size": -1}, {"list_page_size": 0}, {"users_page_size": -300},
])
def test_a_page_size_of_0_or_less_is_refused(extra):
    (name, raw), = extra.items()
    with pytest.raises(ZoomConfigError, match=f"{name}' is {raw}, but Zoom's published definition allows 1 "):
        ZoomSettings.from_extra(extra)


def test_the_ends_of_each_range_are_taken():
    """0 where it means something (no retries, no restarts, no tracking, no live share, resume at
    once), and each maximum."""
    zeros = {"max_retries": 0, "max_page_restarts": 0, "daily_request_limit": 0,
             "backfill_reserve_requests": 0, "live_daily_request_budget": 0,
             "daily_limit_resume_delay_seconds": 0}
    assert all(getattr(ZoomSettings.from_extra(zeros), name) == 0 for name in zeros)
    for field in dataclasses.fields(ZoomSettings):
        bounds = field.metadata.get("bounds")
        if bounds is None or field.name == "page_token_safety_seconds":  # below the lifetime: next test
            continue
        assert getattr(ZoomSettings.from_extra({field.name: bounds.high}), field.name) == bounds.high


def test_the_safety_margin_must_leave_a_page_token_some_life():
    with pytest.raises(ZoomConfigError, match=r"'page_token_safety_seconds' \(60\) must be less than "
                                              r"'page_token_ttl_seconds' \(60\)"):
        ZoomSettings.from_extra({"page_token_ttl_seconds": 60})
    assert ZoomSettings.from_extra({"page_token_ttl_seconds": 1.2, "page_token_safety_seconds": 0.9})


@pytest.mark.parametrize("extra", [{"max_retries": True}, {"daily_request_limit": False},
                                   {"max_concurrent_sessions": 2.5}, {"max_retries": float("inf")},
                                   {"jwt_ttl_seconds": float("nan")}, {"heavy_requests_per_second": True}])
def test_booleans_and_fractions_are_no_counts(extra):
    (name, _), = extra.items()
    with pytest.raises(ZoomConfigError, match=f"Connection extra {name!r} must be a"):
        ZoomSettings.from_extra(extra)


def test_every_default_lies_in_its_range():
    for field in dataclasses.fields(ZoomSettings):
        bounds = field.metadata.get("bounds")
        if bounds is not None:
            assert bounds.allows(field.default), field.name
    assert ZoomSettings.from_extra({}) == ZoomSettings()


# --------------------------------------------------------------------------- the warehouse schema
def define_postgres(monkeypatch: pytest.MonkeyPatch, url: URL, schema: object) -> None:
    monkeypatch.setenv(WAREHOUSE_ENV, json.dumps({
        "conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
        "password": "pw-7d1e", "schema": url.database, "extra": {"warehouse_schema": schema}}))


HOSTILE_SCHEMAS = ['qos"; DROP SCHEMA public CASCADE; --', "zoom;qos", "zoom qos", "zoom-qos", "9lives",
                   "x" * 64, "pg_qos", "ſchema", "zoom\nqos", "zoom_qos'"]


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS)
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(monkeypatch, schema):
    define_postgres(monkeypatch, URL.create("postgresql", host="db.example.com", port=5432, username="etl",
                                            database="analytics"), schema)
    with pytest.raises(WarehouseConnectionError) as caught:
        airflow_target()
    message = str(caught.value)
    assert "'zoom_qos_warehouse'" in message and "'warehouse_schema'" in message
    assert repr(schema.strip()[:80]) in message and "a plain identifier" in message
    assert "at most 63 characters" in message and "pw-7d1e" not in message


@pytest.mark.parametrize("schema", ["zoom_qos", "Analytics_QoS", "_x9", "q" * 63])
def test_plain_identifiers_are_taken(monkeypatch, schema):
    define_postgres(monkeypatch, URL.create("postgresql", host="db.example.com", port=5432, username="etl",
                                            database="analytics"), f"  {schema} ")
    assert airflow_target().schema == schema


def schema_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT nspname FROM pg_catalog.pg_namespace")).scalars())


@pytest.mark.postgres
def test_a_hostile_schema_name_creates_nothing_on_postgresql(simulator, zoom_conn, data_dir, monkeypatch,
                                                             pg_admin):
    """On the server's own ``postgres`` database (refused before any connection, so no database of
    its own is needed); a name that would make two schemas if it reached SQL unquoted."""
    hostile = 'qos_hostile"; CREATE SCHEMA qos_injected; --'
    before = schema_names(pg_admin)
    define_postgres(monkeypatch, pg_admin.url, hostile)
    simulator.reset_stats()
    try:
        refused = "'warehouse_schema' is 'qos_hostile\"; CREATE"
        with pytest.raises(AirflowFailException, match=refused) as failed:
            list_as_the_dag_does(simulator)
        assert isinstance(failed.value.__cause__, WarehouseConnectionError)  # permanent: no retries
        assert schema_names(pg_admin) == before and "public" in before
    finally:  # only if the refusal failed: leave the shared server as it was
        with pg_admin.connect() as conn:
            for name in (hostile, "qos_injected"):
                conn.execute(sa.DDL(f"DROP SCHEMA IF EXISTS {conn.dialect.identifier_preparer.quote(name)} "
                                    "CASCADE"))
    assert simulator.stats()["requests"] == 0
    assert not data_dir.exists()


# --------------------------------------------------------------------------- [zoom_qos] settings
@pytest.mark.parametrize("key,read", [
    ("alert_poor_share", config.alert_poor_share),
    ("alert_count_gap", config.alert_count_gap),
    ("live_alert_poor_share", config.live_alert_poor_share),
])
@pytest.mark.parametrize("raw,problem", [
    ("nan", "must be a finite number"), ("inf", "must be a finite number"), ("-0.1", "must not be negative"),
    ("1.5", "is a share, 0 to 1"), ("lots", "must be a number"),
])
def test_a_share_is_a_finite_number_from_0_to_1(monkeypatch, key, read, raw, problem):
    assert 0 < read() < 1  # the default
    monkeypatch.setenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", raw)
    with pytest.raises(SettingsError, match=f"zoom_qos\\] {key} {problem}"):
        read()
    monkeypatch.setenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", "1")
    assert read() == 1


@pytest.mark.parametrize("key,read,raw,problem", [
    ("staging_retention_days", config.staging_retention_days, "nan", "must be a finite number"),
    ("staging_retention_days", config.staging_retention_days, "inf", "must be a finite number"),
    ("live_interval_minutes", config.live_interval_minutes, "nan", "must be a finite number"),
    ("live_window_minutes", config.live_window_minutes, "0.5", "must be at least 1"),
    ("live_alert_min_samples", config.live_alert_min_samples, "0", "must be at least 1"),
])
def test_numbers_of_the_section_are_finite_and_in_range(monkeypatch, key, read, raw, problem):
    monkeypatch.setenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", raw)
    with pytest.raises(SettingsError, match=f"zoom_qos\\] {key} {problem}"):
        read()


# --------------------------------------------------------------------------- every path, whatever is wrong
# Each way a setting reaches the package: a value of the wrong type and one out of range are refused
# alike, with the settings error (a ``PermanentError``: the task fails at once, Airflow does not retry
# what only a change of the setting can fix), naming the setting and never a secret.
def refused(call: Callable[[], object], error: type[Exception] = SettingsError) -> str:
    """The message of the error ``call`` raises, checked to be an ``error`` and permanent."""
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, PermanentError), type(caught.value).__mro__
    return str(caught.value)


#: Each number of the [zoom_qos] section and its public reader.
SECTION_READERS: dict[str, Callable[[], float]] = {
    "staging_retention_days": config.staging_retention_days,
    "alert_poor_share": config.alert_poor_share,
    "alert_count_gap": config.alert_count_gap,
    "live_interval_minutes": config.live_interval_minutes,
    "live_window_minutes": config.live_window_minutes,
    "live_alert_poor_share": config.live_alert_poor_share,
    "live_alert_min_samples": config.live_alert_min_samples,
}


def test_every_number_of_the_section_is_tried_here():
    assert set(SECTION_READERS) == {s.key for s in config.SETTINGS.values() if s.kind != "text"}
    # the daily alerts read theirs through the same definitions
    assert (day_alerts.alert_poor_share, day_alerts.alert_count_gap) == (config.alert_poor_share,
                                                                         config.alert_count_gap)
    assert day_alerts.DEFAULT_ALERT_POOR_SHARE == config.ALERT_POOR_SHARE.default


def out_of_range(setting: config.Setting) -> list[str]:
    """Values just outside ``setting``'s range: below (or at, when it must be more) and above."""
    values = [f"{setting.minimum:g}" if setting.above else f"{setting.minimum - 0.5:g}"]
    if math.isfinite(setting.maximum):
        values.append(f"{setting.maximum + 0.5:g}")
    return values


@pytest.mark.parametrize("key", sorted(SECTION_READERS))
def test_a_section_number_of_the_wrong_type_or_out_of_range_is_a_settings_error(monkeypatch, key):
    setting, read = config.SETTINGS[key], SECTION_READERS[key]
    assert read() == setting.default  # unset: the default, which lies in the range
    for raw in ["lots", "5 minutes", "0x10", *out_of_range(setting)]:
        monkeypatch.setenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", raw)
        message = refused(read)
        assert f"[zoom_qos] {key} " in message and f"got {raw!r}" in message, message
        assert "remove it to use the default" in message, message


#: Each extra of the Zoom connection that a wrong type can reach (text extras take any text).
TYPED_EXTRAS = [f for f in dataclasses.fields(ZoomSettings) if not isinstance(f.default, str)]


def extra_out_of_range(field: dataclasses.Field[Any]) -> object | None:
    if "endpoint" in field.metadata:
        return 0
    bounds = field.metadata.get("bounds")
    if bounds is None:
        return None  # a flag: only its type can be wrong
    return bounds.low if bounds.above else bounds.low - 1


@pytest.mark.parametrize("field", TYPED_EXTRAS, ids=lambda f: f.name)
def test_a_zoom_extra_of_the_wrong_type_or_out_of_range_is_a_zoom_config_error(field):
    # text is the path of a CA bundle for ``verify``, so its wrong types are others
    bad = [7, "", [3], {"n": 1}] if field.name == "verify" else ["lots", [3], {"n": 1}, None]
    outside = extra_out_of_range(field)
    for raw in [*bad, *([] if outside is None else [outside])]:
        message = refused(lambda raw=raw: ZoomSettings.from_extra({field.name: raw}), ZoomConfigError)
        assert f"Connection extra {field.name!r}" in message, message
    if field.name != "verify":  # a path of a CA bundle is text, so text is no wrong type for it
        refused(lambda: ZoomSettings.from_extra({field.name: "x" * 10_000}), ZoomConfigError)


@pytest.mark.parametrize("kwargs,named", [
    ({"daily_limit": "60000"}, "'daily_request_limit'"),                    # the wrong type
    ({"reserve": 1.5}, "'backfill_reserve_requests'"),
    ({"live_budget": None}, "'live_daily_request_budget'"),
    ({"daily_limit": True}, "'daily_request_limit'"),
    ({"daily_limit": -1}, "'daily_request_limit'"),                         # out of range
    ({"reserve": 60_000}, "'backfill_reserve_requests' (60,000) must be less than"),
    ({"reserve": 50_000, "live_budget": 10_000}, "together must be less than 'daily_request_limit'"),
])
def test_the_budget_s_extras_wrong_or_out_of_range_are_a_zoom_config_error(tmp_path, kwargs, named):
    arguments: dict[str, Any] = {"daily_limit": 60_000, "reserve": 0, "live_budget": 0, **kwargs}
    for backfill in (False, True):
        message = refused(lambda backfill=backfill: budget_for(
            **arguments, backfill=backfill, account="acct", directory=tmp_path), ZoomConfigError)
        assert named in message, message


@pytest.mark.parametrize("key,secret,ttl", [
    ("k", "s3cret-9a", "1800"), ("k", "s3cret-9a", None), ("k", "s3cret-9a", True),  # the wrong type
    ("k", "s3cret-9a", 60), ("k", "s3cret-9a", 0), ("k", "s3cret-9a", float("nan")),  # out of range
    ("", "s3cret-9a", 1800), ("k", "", 1800), (None, "s3cret-9a", 1800), ("k", 42, 1800),  # credentials
])
def test_the_jwt_settings_from_the_connection_are_a_zoom_config_error(key, secret, ttl):
    message = refused(lambda: ZoomJwtAuth(key, secret, ttl_seconds=ttl), ZoomConfigError)
    assert ("jwt_ttl_seconds" in message) != ("API key" in message), message
    assert "s3cret-9a" not in message


@pytest.mark.parametrize("ttl,safety", [
    ("900", 60), (900, None), (float("nan"), 60),   # the wrong type (NaN is no number of seconds)
    (60, 60), (60, 900), (0, 0),                    # out of range: no life left to a token
])
def test_the_page_token_settings_are_a_zoom_config_error(ttl, safety):
    message = refused(lambda: RestartingPaginator(token_ttl=ttl, safety=safety), ZoomConfigError)
    assert "'page_token_safety_seconds'" in message and "'page_token_ttl_seconds'" in message


@pytest.mark.parametrize("key", [12345678901234567890, None, b"s1xteen-bytes-k3y!",  # the wrong type
                                 "k3y-7f", "q" * 15])                                  # too short
def test_the_pseudonymization_key_is_a_zoom_config_error_without_showing_it(key):
    message = refused(lambda: Pseudonymizer(key), ZoomConfigError)
    assert "'pseudonymization_key'" in message and "at least 16 characters" in message
    if key is not None:
        assert str(key) not in message and repr(key) not in message


def test_a_notifier_setting_is_a_settings_error():
    """Its wrong values are tried in tests/unit/alerts (a class path that does not import, JSON of
    the wrong type, arguments the class refuses)."""
    assert issubclass(NotifierConfigError, SettingsError) and issubclass(NotifierConfigError, ValueError)


def test_an_unsupported_warehouse_is_a_permanent_warehouse_connection_error():
    message = refused(lambda: check_dialect("mysql"), UnsupportedDatabaseError)
    assert "'mysql'; use sqlite or postgresql" in message
    assert issubclass(UnsupportedDatabaseError, WarehouseConnectionError)
    assert issubclass(UnsupportedDatabaseError, ValueError)  # as before


@pytest.mark.parametrize("schema", [123, ["zoom_qos"], "zoom qos", "x" * 64])  # the wrong type, a bad name
def test_a_bad_warehouse_schema_extra_is_a_permanent_warehouse_connection_error(monkeypatch, schema):
    define_postgres(monkeypatch, URL.create("postgresql", host="db.example.com", port=5432, username="etl",
                                            database="analytics"), schema)
    message = refused(airflow_target, WarehouseConnectionError)
    assert "'warehouse_schema'" in message and "pw-7d1e" not in message


def test_the_settings_errors_are_permanent_value_errors():
    """Permanent: ``fail_fast`` fails the task at once. A ``ValueError`` too: callers that caught
    the plain one before still do."""
    for error in (SettingsError, ZoomConfigError, NotifierConfigError, WarehouseConnectionError,
                  UnsupportedDatabaseError):
        assert issubclass(error, PermanentError) and issubclass(error, ValueError), error
    assert issubclass(ZoomConfigError, SettingsError)
