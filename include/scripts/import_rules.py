"""The import rules import-linter cannot see, checked on the package's source (``make lint``).

import-linter checks the layers and cycles (``[tool.importlinter]`` in pyproject.toml) over every
import, wherever it sits; hiding one inside a function or behind ``TYPE_CHECKING`` would still
dodge a cycle at run time, and a module-level ``__getattr__`` would hide what a module exports. So:

- no first-party (``zoom_qos``) import inside a function, a class or an ``if`` block (not even
  ``if TYPE_CHECKING:``);
- no module-level ``__getattr__``.

A third-party import may sit in a function (an optional extra, a heavy library needed by one
path) when a comment on its line or the line before says why; under ``if TYPE_CHECKING:`` it
needs none (it never runs).

Usage: ``python -m include.scripts.import_rules [PACKAGE_DIR]``; exits 1 and lists each breach.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "zoom_qos"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "plugins" / PACKAGE


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""] if node.level == 0 else [PACKAGE]  # a relative import is ours
    return [alias.name for alias in node.names]


def _type_only(tree: ast.Module) -> set[int]:
    """Imports under a module-level ``if TYPE_CHECKING:``: never run."""
    found: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)}
    return found


def _nested_imports(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Imports that are not statements of the module's own body, each with whether it is for
    type checking only."""
    top = set(map(id, tree.body))
    type_only = _type_only(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
            yield node, id(node) in type_only


def _has_reason(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or on the line before the block of imports it is in."""
    if "#" in lines[lineno - 1]:
        return True
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith(("import ", "from ")):
        index -= 1
    return index >= 0 and lines[index].strip().startswith("#")


def breaches(root: Path = DEFAULT_ROOT) -> list[str]:
    """Each breach of the rules in the package under ``root``, as ``path:line: what``."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if "versions" in path.parts:  # Alembic revisions are scripts Alembic loads, not modules
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source, filename=str(path))
        shown = path.relative_to(root.parent)
        for node, type_only in _nested_imports(tree):
            names = _imported_names(node)
            if any(name == PACKAGE or name.startswith(PACKAGE + ".") for name in names):
                found.append(f"{shown}:{node.lineno}: first-party import not at the module's top level")
            elif not type_only and not _has_reason(lines, node.lineno):
                found.append(f"{shown}:{node.lineno}: a nested import of {', '.join(names)} without a "
                             "comment saying why it is not at the top")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                found.append(f"{shown}:{node.lineno}: module-level __getattr__")
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else DEFAULT_ROOT
    problems = breaches(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} import rule breach(es): see include/scripts/import_rules.py")
        return 1
    print(f"Import rules kept ({root})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
