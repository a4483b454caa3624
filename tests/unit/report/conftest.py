"""Fixtures of the report tests: the small warehouse of ``reportworld`` (on each back end) and its
30-day report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.unit.report.reportworld import LAST_DAY, load
from zoom_qos.report import build_report
from zoom_qos.warehouse.store import Warehouse


@pytest.fixture()
def warehouse(warehouse_url: URL) -> Iterator[Warehouse]:
    wh = Warehouse(warehouse_url)
    wh.ensure_schema()
    load(wh)
    yield wh
    wh.dispose()


@pytest.fixture()
def html_text(warehouse: Warehouse, tmp_path: Path) -> str:
    path = build_report(warehouse, tmp_path / "reports", days=30)
    assert path.parent == (tmp_path / "reports").resolve()
    assert path.name == f"zoom_qos_report_{LAST_DAY - timedelta(days=29)}_{LAST_DAY}.html"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # one file, no leftovers
    return path.read_text(encoding="utf-8")
