"""The runtime never imports threading, queue or concurrent.futures; _core stays at the bottom.

The one exception: ``threadkit.futures`` (and ``_executor`` under it) must hand out real
``concurrent.futures.Future`` objects, so it imports ``concurrent.futures``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import threadkit

pytestmark = pytest.mark.timeout(60)

PACKAGE = Path(threadkit.__file__).parent
FORBIDDEN = {"threading", "queue", "concurrent", "_threading_local"}
#: Modules allowed to import ``concurrent`` (and nothing else forbidden).
FUTURES_SIDE = {"futures.py", "_executor.py"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by ``path`` (relative ones resolved), with level."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        base = parts
    else:
        base = parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
                found.append((mod, node.level))
            else:
                found.append((node.module or "", 0))
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_forbidden_imports(path: Path) -> None:
    for name, _level in _imports(path):
        top = name.split(".")[0]
        if top == "concurrent" and path.name in FUTURES_SIDE and path.parent == PACKAGE:
            continue
        assert top not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "_core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_above_it(path: Path) -> None:
    for name, _level in _imports(path):
        if name.startswith("threadkit"):
            assert name.startswith("threadkit._core"), f"_core/{path.name} imports {name}"


def test_importing_threadkit_loads_no_forbidden_module() -> None:
    code = (
        "import sys; import threadkit, threadkit._cli, threadkit.queue; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(FORBIDDEN)!r}); print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
