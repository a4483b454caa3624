"""The package's settings: Airflow's [zoom_qos] section first, then the deprecated ZOOM_QOS_* variables,
and data under $AIRFLOW_HOME, never inside the installed package."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from zoom_qos.core import config
from zoom_qos.core.errors import PermanentError, SettingsError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in config.SETTINGS:
        monkeypatch.delenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", raising=False)
    for legacy in config.LEGACY_ENV.values():
        monkeypatch.delenv(legacy, raising=False)
    monkeypatch.setattr(config, "_warned", set())


def test_data_lives_under_airflow_home_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert config.data_dir() == tmp_path / "zoom_qos"
    assert config.default_warehouse_path() == tmp_path / "zoom_qos" / "warehouse.db"
    assert config.staging_url() == (tmp_path / "zoom_qos" / "staging").as_uri()
    assert config.report_dir() == tmp_path / "zoom_qos" / "reports"
    package = Path(config.__file__).resolve().parent
    assert package not in config.data_dir().resolve().parents


def test_the_airflow_config_section_sets_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__STAGING_URL", "s3://bucket/zoom-qos")
    monkeypatch.setenv("ZOOM_QOS_STAGING_URL", "file:///ignored")  # the section wins
    assert config.data_dir() == tmp_path / "d"
    assert config.staging_url() == "s3://bucket/zoom-qos"
    assert config.report_dir() == tmp_path / "d" / "reports"


def test_the_old_variables_still_work_with_one_deprecation_warning(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ZOOM_QOS_DATA_DIR", str(tmp_path / "old"))
    with caplog.at_level(logging.WARNING, logger="zoom_qos.core.config"):
        assert config.data_dir() == tmp_path / "old"
        assert config.data_dir() == tmp_path / "old"
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "AIRFLOW__ZOOM_QOS__DATA_DIR" in warnings[0]


def test_the_budget_folder_and_shared_redis_are_settings_too(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert config.budget_dir() == tmp_path / "zoom_qos" / "budget"
    assert config.rate_limit_redis_url() == ""
    monkeypatch.setenv("ZOOM_QOS_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:6379/3")  # the old name
    assert config.rate_limit_redis_url() == "redis://127.0.0.1:6379/3"
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__BUDGET_DIR", str(tmp_path / "b"))
    assert config.budget_dir() == tmp_path / "b"


@pytest.mark.parametrize("raw, problem", [("soon", "must be a number"), ("-1", "must not be negative")])
def test_a_retention_that_is_not_a_number_of_days_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str,
                                                             problem: str) -> None:
    assert config.staging_retention_days() == config.DEFAULT_STAGING_RETENTION_DAYS
    monkeypatch.setenv("AIRFLOW__ZOOM_QOS__STAGING_RETENTION_DAYS", raw)
    with pytest.raises(SettingsError, match=f"staging_retention_days {problem}") as caught:
        config.staging_retention_days()
    assert isinstance(caught.value, PermanentError)  # the task fails at once: no retry fixes a setting


# --------------------------------------------------------------------------- one definition per key
def docstring_table() -> dict[str, str]:
    """The module docstring's table of keys: each key and its default, as written. Its columns are
    where the ``=`` rules put them; a row with an empty key goes on the row above."""
    lines = (config.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line)]
    assert len(rules) == 3, "a table of three rules: above the header, below it, below the rows"
    starts = [m.start() for m in re.finditer(r"=+", lines[rules[0]])]
    table = {}
    for line in lines[rules[1] + 1:rules[2]]:
        key, default = line[:starts[1]].strip(), line[starts[1]:starts[2]].strip()
        if key:
            table[key] = default
    return table


def docs_table() -> dict[str, str]:
    """The ``[zoom_qos]`` table of docs/configuration.md: each key and its default, backticks off."""
    section = DOCS.read_text(encoding="utf-8").split("## `[zoom_qos]` settings", 1)[1].split("\n## ", 1)[0]
    return {key: default.strip().strip("`")
            for key, default in re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", section, flags=re.MULTILINE)}


def test_each_setting_is_in_the_docstring_table_with_its_default():
    table = docstring_table()
    assert list(table) == list(config.SETTINGS), "the same keys, in the same order"
    for key, setting in config.SETTINGS.items():
        assert table[key] == setting.shown_default(), key


def test_each_setting_is_in_the_configuration_docs_with_its_default():
    table = docs_table()
    assert list(table) == list(config.SETTINGS), "the same keys, in the same order"
    for key, setting in config.SETTINGS.items():
        assert table[key] == setting.shown_default().strip("`"), key


def test_each_number_s_default_lies_in_its_range_and_is_read_when_unset():
    numbers = [s for s in config.SETTINGS.values() if s.kind != "text"]
    assert numbers
    for setting in numbers:
        assert isinstance(setting.default, float) and setting.allows(setting.default), setting.key
        assert setting.number() == setting.default, setting.key
    assert config.DEFAULT_LIVE_WINDOW_MINUTES == config.LIVE_WINDOW_MINUTES.default
    assert config.live_alert_min_samples() == 5 and isinstance(config.live_alert_min_samples(), int)


def test_a_setting_cannot_be_defined_against_itself():
    with pytest.raises(ValueError, match="outside its own range"):
        config.Setting("x", -1.0, "number")
    with pytest.raises(ValueError, match="a share ranges from 0 to 1"):
        config.Setting("x", 0.5, "share", maximum=2.0)


def test_only_the_section_s_old_keys_have_a_legacy_variable():
    assert config.LEGACY_ENV == {
        "data_dir": "ZOOM_QOS_DATA_DIR", "staging_url": "ZOOM_QOS_STAGING_URL",
        "report_dir": "ZOOM_QOS_REPORT_DIR", "budget_dir": "ZOOM_QOS_BUDGET_DIR",
        "rate_limit_redis_url": "ZOOM_QOS_RATE_LIMIT_REDIS_URL"}
