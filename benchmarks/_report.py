"""Shared by the benchmark scripts: time formatting, quartiles and the result tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from types import ModuleType

__all__ = ["fmt_time", "load_threadkit", "quartiles", "render"]


def fmt_time(seconds: float) -> str:
    """``1.23 us``-style: three significant digits in the largest fitting unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p25, median and p75 of ``values`` (all three the value itself if only one)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return p25, p50, p75


def render(headers: list[str], rows: list[list[str]], markdown: bool, text_cols: int = 2) -> str:
    """A plain-text or markdown table: the first ``text_cols`` columns and the last one
    are left-aligned, the others (numbers) right-aligned."""
    last = len(headers) - 1
    left = [i < text_cols or i == last for i in range(len(headers))]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---" if lft else "---:" for lft in left) + "|")
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = (
            c.ljust(w) if lft else c.rjust(w) for c, w, lft in zip(cells, widths, left, strict=True)
        )
        return "  ".join(padded).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def load_threadkit() -> ModuleType:
    """Import threadkit, or exit with a line that says how to make it importable."""
    try:
        import threadkit
    except ImportError as exc:
        raise SystemExit(
            f"error: cannot import threadkit ({exc}); install it (pip install -e .) or run "
            "with PYTHONPATH=src"
        ) from exc
    return threadkit
