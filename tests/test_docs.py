"""The documentation's code: every Python block parses, and no task-group pattern
leaves a name unbound.

A name that is bound only inside a ``with TaskGroup()`` block (``tasks = [tg.spawn(...)
for ...]``) is unbound after it when the block raises half-way, as it does when a
failure cancels the spawns still to come; a program that catches the group's
``ExceptionGroup`` and then reads the name meets a ``NameError``. So every name that
code after such a block reads must be bound before the block too. The same check
runs over the demo in ``threadkit._cli``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for i, match in enumerate(_BLOCK.finditer(text), 1):
            blocks.append((f"{path.relative_to(ROOT)}#{i}", match.group(1)))
    return blocks


def _is_task_group(expr: ast.expr) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    func = expr.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "TaskGroup"


def _bound(statements: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return names


def _read(statements: list[ast.stmt]) -> set[str]:
    return {
        node.id
        for statement in statements
        for node in ast.walk(statement)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def unbound_after_a_group(tree: ast.AST) -> list[str]:
    """Names bound only inside a ``with TaskGroup()`` block and read after it."""
    problems = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody", "handlers"):
            statements = getattr(node, field, None)
            if not isinstance(statements, list):
                continue
            for i, statement in enumerate(statements):
                if not isinstance(statement, ast.With):
                    continue
                if not any(_is_task_group(item.context_expr) for item in statement.items):
                    continue
                own = {
                    n.id
                    for item in statement.items
                    if item.optional_vars is not None
                    for n in ast.walk(item.optional_vars)
                    if isinstance(n, ast.Name)
                }
                inside = _bound(statement.body) - own
                late = inside & _read(statements[i + 1 :]) - _bound(statements[:i])
                problems += [f"line {statement.lineno}: {name}" for name in sorted(late)]
    return problems


@pytest.mark.parametrize(("where", "code"), python_blocks(), ids=lambda v: v if "#" in v else "")
def test_a_documented_block_parses_and_binds_its_names_first(where: str, code: str) -> None:
    tree = ast.parse(code, filename=where)
    assert unbound_after_a_group(tree) == [], f"{where}: bound only inside a TaskGroup block"


def test_the_demo_binds_its_names_first() -> None:
    source = (ROOT / "src" / "threadkit" / "_cli.py").read_text(encoding="utf-8")
    assert unbound_after_a_group(ast.parse(source)) == []


def test_the_check_finds_the_pattern() -> None:
    bad = "with threadkit.TaskGroup() as tg:\n    tasks = [tg.spawn(f) for f in fs]\nprint(tasks)\n"
    good = "tasks = []\n" + bad
    assert unbound_after_a_group(ast.parse(bad)) == ["line 1: tasks"]
    assert unbound_after_a_group(ast.parse(good)) == []
    assert len(python_blocks()) > 10
