"""The package's settings: Airflow's [zoom_qos] section first, then the deprecated ZOOM_QOS_* variables,
and data under $AIRFLOW_HOME, never inside the installed package."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from zoom_qos.core import config


@pytest.fixture(autouse=True)
def no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, legacy in config.LEGACY_ENV.items():
        monkeypatch.delenv(f"AIRFLOW__ZOOM_QOS__{key.upper()}", raising=False)
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
    with pytest.raises(ValueError, match=f"staging_retention_days {problem}"):
        config.staging_retention_days()
