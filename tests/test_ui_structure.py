"""The UI stays small and on its side of the line: every function in ui/ fits on a screen
(at most 80 lines), and no UI module reaches into the command line (codi.cli)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: ui/*.py, ui/evaluation/*.py and any later subpackage.
UI_FILES = sorted(p for p in (REPO_ROOT / "ui").rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 80


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function or method, nested ones included, over MAX_LINES."""
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_LINES]


def imports_cli(source: str) -> bool:
    """Whether the module imports codi.cli (as `import codi.cli`, `from codi.cli import ...`
    or `from codi import cli`), at the top or inside a function."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(
                a.name == "codi.cli" or a.name.startswith("codi.cli.") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "codi.cli" or node.module.startswith("codi.cli."):
                return True
            if node.module == "codi" and any(a.name == "cli" for a in node.names):
                return True
    return False


def test_the_checks_catch_what_they_look_for():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def big():\n{body}\n") == [("big", MAX_LINES + 1)]
    assert long_functions("class C:\n    def small(self):\n        return 1\n") == []
    assert imports_cli("def f():\n    from codi import cli\n")
    assert imports_cli("import codi.cli as c\n")
    assert imports_cli("from codi.cli import main\n")
    assert not imports_cli("from codi.errors import CoDiUserError\nimport codi.clip\n")


def test_the_ui_modules_are_found():
    names = {path.relative_to(REPO_ROOT).as_posix() for path in UI_FILES}
    assert {"ui/app.py", "ui/evaluation/tab.py"} <= names


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_ui_functions_are_short(path):
    assert long_functions(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_ui_does_not_import_the_cli(path):
    assert not imports_cli(path.read_text(encoding="utf-8"))
