"""The infrastructure-fault runs (``make chaos``): marked ``chaos``, left out of ``make test``.

They need root (tmpfs, bind mounts), a redis-server binary and PostgreSQL's initdb, and take
minutes; ``make chaos`` runs them one after another and prints the fault table, which it also
writes to ``$ZOOM_QOS_CHAOS_TABLE`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.harness import ROWS, table_markdown
from tests.integration.dagrun import migrated_metadata_db, world  # noqa: F401  (fixtures)

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.chaos)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if not ROWS:
        return
    terminalreporter.write_sep("=", "infrastructure faults")
    terminalreporter.write(table_markdown(ROWS))
    target = os.environ.get("ZOOM_QOS_CHAOS_TABLE")
    if target:
        Path(target).write_text(table_markdown(ROWS))
