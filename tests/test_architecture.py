"""The package's layers hold, and the checks that say so can fail (``make lint`` runs them).

``lint-imports`` checks the contracts of ``[tool.importlinter]`` in pyproject.toml; here it runs on
a copy of the package with one back-import added, and must refuse it. ``import_rules`` is checked
on small packages written for the purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from include.scripts import import_rules

ROOT = Path(__file__).resolve().parents[1]
#: import-linter's command, installed beside this Python by requirements-dev.txt.
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(plugins: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plugins = tmp_path_factory.mktemp("plugins")
    shutil.copytree(ROOT / "plugins" / "zoom_qos", plugins / "zoom_qos",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return plugins


def test_the_contracts_hold_and_a_back_import_breaks_them(package_copy: Path):
    kept = lint_imports(package_copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    statuses = package_copy / "zoom_qos" / "core" / "statuses.py"
    original = statuses.read_text()
    try:  # the core importing the pipeline: two layers the wrong way, and a cycle
        statuses.write_text(original + "\nfrom zoom_qos.pipeline import live  # noqa: E402,F401\n")
        broken = lint_imports(package_copy)
    finally:
        statuses.write_text(original)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout and "zoom_qos.core.statuses -> zoom_qos.pipeline.live" in broken.stdout


def write(root: Path, name: str, text: str) -> None:
    path = root / "zoom_qos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_import_rules_hold_on_the_package():
    assert import_rules.breaches() == []


def test_the_import_rules_refuse_hidden_first_party_imports_and_module_getattr(tmp_path: Path):
    write(tmp_path, "__init__.py", "")
    write(tmp_path, "ok.py", "import json\nfrom zoom_qos import other\n\n\ndef f():\n"
                             "    import yaml  # an optional extra\n    return json, yaml, other\n")
    write(tmp_path, "hidden.py", "def f():\n    from zoom_qos.ok import f\n    return f\n")
    write(tmp_path, "typing_only.py", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                      "    from zoom_qos.ok import f\n    import yaml\n")
    write(tmp_path, "lazy.py", "def f():\n    import yaml\n    return yaml\n")
    write(tmp_path, "magic.py", "def __getattr__(name):\n    raise AttributeError(name)\n")
    found = import_rules.breaches(tmp_path / "zoom_qos")
    assert sorted(line.split(":")[0] for line in found) == [
        "zoom_qos/hidden.py", "zoom_qos/lazy.py", "zoom_qos/magic.py", "zoom_qos/typing_only.py"]
    assert import_rules.main([str(tmp_path / "zoom_qos")]) == 1
