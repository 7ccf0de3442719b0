"""ruff and mypy --strict are clean (skipped only where the tools are not installed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


def _tool(module: str) -> None:
    try:
        __import__(module)
    except ImportError:  # pragma: no cover
        pytest.skip(f"{module} is not installed")


def test_ruff_check() -> None:
    _tool("ruff")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format() -> None:
    _tool("ruff")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    _tool("mypy")
    if shutil.which("git") is None:  # pragma: no cover
        pass
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "src/threadkit"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert out.returncode == 0, out.stdout + out.stderr
