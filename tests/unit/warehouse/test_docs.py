"""docs/warehouse.md is generated from the schema and views, and every column is described."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from include.scripts import generate_warehouse_docs as gen
from zoom_qos.warehouse import schema
from zoom_qos.warehouse.views import VIEWS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs" / "warehouse.md"

#: The tables docs/warehouse.md names (the public contract, v2 included) plus the run record it requires.
CONTRACT_TABLES = ("sessions", "session_users", "user_qos", "user_system_qos", "daily_usage", "pipeline_runs")


def test_committed_docs_match_the_generated_text() -> None:
    assert DOCS.read_text(encoding="utf-8") == gen.render(), (
        "docs/warehouse.md is out of date: run `python -m include.scripts.generate_warehouse_docs`"
    )


@pytest.mark.parametrize("name", CONTRACT_TABLES)
def test_every_contract_column_has_a_comment(name: str) -> None:
    table = schema.METADATA.tables[name]
    assert (table.comment or "").strip(), name
    missing = [c.name for c in table.columns if not (c.comment or "").strip()]
    assert not missing, f"{name}: columns without comment: {missing}"


def test_every_table_and_view_is_documented() -> None:
    text = gen.render()
    for table in schema.METADATA.tables.values():
        assert (table.comment or "").strip(), table.name
        assert f"### `{table.name}`" in text
        for column in table.columns:
            assert (column.comment or "").strip(), f"{table.name}.{column.name}"
            assert f"| `{column.name}`" in text
    for view in VIEWS:
        assert f"### `{view.name}`" in text
        assert view.comment.strip() and all(t.strip() for t in view.columns.values()), view.name
    assert "UPDATE zoom_qos.qos_thresholds" in text
    for row in ("| latency | 150 ms |", "| jitter | 40 ms |", "| average packet loss | 2 % |"):
        assert row in text


def test_check_flag_exit_codes(tmp_path: Path) -> None:
    """The command line itself, as a user runs it: its exit codes (the rest is tested in process)."""
    target = tmp_path / "warehouse.md"
    command = [sys.executable, "-m", "include.scripts.generate_warehouse_docs", "--output", str(target)]
    assert subprocess.run([*command, "--check"], cwd=ROOT, capture_output=True).returncode == 1  # missing
    written = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == gen.render()


def test_check_flag_on_a_missing_current_and_stale_file(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "warehouse.md"
    assert gen.main(["--output", str(target), "--check"]) == 1  # missing
    assert gen.main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == gen.render()
    assert gen.main(["--output", str(target), "--check"]) == 0
    target.write_text(gen.render() + "edited by hand\n", encoding="utf-8")
    capsys.readouterr()
    assert gen.main(["--output", str(target), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_completeness_prose_covers_status_usage_view_and_check() -> None:
    text = gen.render()
    section = text[text.index("## Completeness"):text.index("## Tables")]
    for status in schema.QOS_STATUSES:
        assert f"| `{status}` |" in section, status
    assert "`qos_pending_max_hours` (default 72)" in section
    assert "every run asks again for each session it lists that is not `loaded`" in section
    assert "A `loaded` session that answers 3001 on a later reload keeps its rows and its status." in section
    for name in ("`daily_usage`", "`daily_completeness`", "FROM zoom_qos.daily_completeness",
                 "### Data-quality check `zoom_daily_count`", "`dq_hard_checks`"):
        assert name in section, name


def test_a_status_without_documentation_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "QOS_STATUSES", (*schema.QOS_STATUSES, "archived"))
    with pytest.raises(RuntimeError, match="archived"):
        gen.render()
