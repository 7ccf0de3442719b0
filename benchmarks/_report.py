"""Shared by the benchmark scripts: time formatting, quartiles, the result tables,
the harness pieces of the interleaved stdlib-versus-threadkit comparisons and the
``chain_floor.py --pool`` floor sample."""

from __future__ import annotations

import argparse
import faulthandler
import fnmatch
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol, TypeVar

import chain_floor

__all__ = [
    "FloorRound",
    "add_case_args",
    "add_rounds_arg",
    "add_timeout_arg",
    "case_failed",
    "compare_row",
    "floor_sample",
    "fmt_time",
    "load_threadkit",
    "pin_note",
    "print_platform",
    "progress",
    "quartiles",
    "quiesced_sample",
    "ratio_cells",
    "render",
    "select_cases",
    "threadkit_line",
    "unrolled",
    "verdict",
]


def fmt_time(seconds: float) -> str:
    """``1.23 us``-style: three significant digits in the largest fitting unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def unrolled(op: Callable[[], object], n: int) -> float:
    """Seconds per call of ``op``, over ``n`` calls (rounded down to tens), unrolled
    ten times so that the loop itself costs little."""
    loops = max(1, n // 10)
    start = time.perf_counter()
    for _ in range(loops):
        op()
        op()
        op()
        op()
        op()
        op()
        op()
        op()
        op()
        op()
    return (time.perf_counter() - start) / (loops * 10)


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


def print_platform(*, gil: bool = True, stack_size: bool = False) -> None:
    """Print the interpreter line and the machine line of a benchmark's header.

    The machine line names the CPUs, the affinity, the switch interval and, if
    ``gil`` (and the interpreter can tell), whether the GIL is enabled; with
    ``stack_size`` also ``threading.stack_size()``.
    """
    impl = platform.python_implementation()
    print(f"Python {platform.python_version()} ({impl}) on {platform.platform()}")
    affinity = ""
    if hasattr(os, "sched_getaffinity"):
        affinity = f", affinity {sorted(os.sched_getaffinity(0))}"
    line = f"{os.cpu_count()} CPUs{affinity}, switchinterval {sys.getswitchinterval() * 1e3:g} ms"
    if gil and hasattr(sys, "_is_gil_enabled"):
        line += f", GIL {'enabled' if sys._is_gil_enabled() else 'disabled'}"
    if stack_size:
        line += f", stack_size {threading.stack_size() or 'default'}"
    print(line)


def threadkit_line(mod: ModuleType) -> str:
    """``threadkit <version> from <where>``: which threadkit a run measures."""
    version = getattr(mod, "__version__", "?")
    return f"threadkit {version} from {getattr(mod, '__file__', None) or mod.__path__}"


def progress(msg: str) -> None:
    """A progress line on stderr (the results go to stdout)."""
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def case_failed(case: str, side: str, exc: BaseException, stage: str | None = None) -> str:
    """Print the traceback of ``exc``, raised by ``case`` on ``side`` (in ``stage``, such
    as warm-up, if given), to stderr; return the one-line description for the report."""
    where = side if stage is None else f"{side}, {stage}"
    print(f"\n!! case {case!r} failed ({where}):", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()
    label = side if stage is None else f"{side} ({stage})"
    return f"{label}: {type(exc).__name__}: {exc}"


def quiesced_sample(sample: Callable[[], float], timeout: float, what: str = "time") -> float:
    """Run one timed sample, ``sample()``, with the GC quiesced and a deadlock guard armed.

    The garbage collector is run before and disabled during the sample; if it takes
    longer than ``timeout`` seconds, ``faulthandler`` dumps all stacks and exits. A
    result that is not positive raises ``RuntimeError`` ("non-positive ``what``").
    """
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        seconds = sample()
    finally:
        faulthandler.cancel_dump_traceback_later()
        if gc_was_enabled:
            gc.enable()
    if not seconds > 0.0:
        raise RuntimeError(f"non-positive {what}: {seconds!r}")
    return seconds


def verdict(ratios: Sequence[float], target: float) -> str:
    """The "met" cell: "yes" if the median ratio is at most ``target``, else "no";
    with " (marginal)" when the interquartile range straddles the target."""
    p25, med, p75 = quartiles(ratios)
    out = "yes" if med <= target else "no"
    if p25 <= target < p75:
        out += " (marginal)"
    return out


def ratio_cells(ratios: Sequence[float], target: float | None) -> list[str]:
    """The cells ratio, IQR p25-p75, min-max, target and met of a comparison row
    (target and met "-" when there is no target)."""
    p25, med, p75 = quartiles(ratios)
    return [
        f"{med:.2f}",
        f"{p25:.2f}-{p75:.2f}",
        f"{min(ratios):.2f}-{max(ratios):.2f}",
        "-" if target is None else f"<= {target:g}",
        "-" if target is None else verdict(ratios, target),
    ]


def compare_row(
    name: str,
    label: str,
    std: Sequence[float],
    tk: Sequence[float],
    ratios: Sequence[float],
    target: float | None,
    failed: bool,
) -> list[str]:
    """A row of a stdlib-versus-threadkit table: case, operation, the two sides' median
    times and the ``ratio_cells``; with "ERROR" in the last cell if the case ``failed``
    or has no ratios."""
    if failed or not ratios:
        std_cell = fmt_time(statistics.median(std)) if std else "-"
        target_cell = "-" if target is None else f"<= {target:g}"
        return [name, label, std_cell, "-", "-", "-", "-", target_cell, "ERROR"]
    return [
        name,
        label,
        fmt_time(statistics.median(std)),
        fmt_time(statistics.median(tk)),
        *ratio_cells(ratios, target),
    ]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_C = TypeVar("_C", bound=_Named)


def select_cases(cases: list[_C], patterns: list[str]) -> list[_C]:
    """The cases whose names match one of the ``--only`` globs (comma-separated within
    an argument), in their order; all of them if there are none. Exits with an error
    line if a glob matches no case."""
    globs = [p.strip() for arg in patterns for p in arg.split(",") if p.strip()]
    if not globs:
        return cases
    unknown = [g for g in globs if not any(fnmatch.fnmatchcase(c.name, g) for c in cases)]
    if unknown:
        names = ", ".join(c.name for c in cases)
        raise SystemExit(f"error: no case matches {', '.join(unknown)} (cases: {names})")
    return [c for c in cases if any(fnmatch.fnmatchcase(c.name, g) for g in globs)]


def add_case_args(parser: argparse.ArgumentParser, against: str, tables: bool = False) -> None:
    """Add ``--only``, ``--list``, ``--markdown`` and ``--self-test`` (which measures the
    stdlib module ``against`` against itself); ``tables`` if the run prints several."""
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only matching cases (glob, comma-separated, repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list case names and exit")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print markdown tables" if tables else "print a markdown table",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help=f"measure {against} against itself (ratios should be ~1.0)",
    )


def add_rounds_arg(parser: argparse.ArgumentParser, default: int) -> None:
    """Add ``--rounds``: interleaved rounds (``default``, 3 with ``--quick``; the script
    resolves the ``None`` it defaults to)."""
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"number of interleaved rounds (default {default}, 3 with --quick)",
    )


def pin_note(script: str) -> str:
    """The header's note that cross-CPU hand-offs dominate, and how to pin ``script``."""
    return (
        "Note: hand-offs between threads are dominated by cross-CPU wake-up latency; "
        "for the library's own paths\n      pin the run to one CPU: "
        f"taskset -c 0 python benchmarks/{script}"
    )


def add_timeout_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--timeout``: seconds (default 60) before a stuck sample aborts the run."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds before a stuck sample aborts the run (default 60)",
    )


@dataclass(frozen=True)
class FloorRound:
    """One round of ``chain_floor.py --pool``: what it printed, and its wall time."""

    link_us: float
    release_us: float
    first_to_last_s: float
    wall_s: float


#: Runs ``chain_floor.main()`` in the subprocess with one addition: the time at which
#: each round ended (its ``_report`` is called once the last job is done) minus the
#: round's first start, printed as JSON after the rounds.
_FLOOR_BOOT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import chain_floor
walls = []
report = chain_floor._report
def timed_report(r, starts, releases):
    walls.append(time.perf_counter() - min(starts))
    report(r, starts, releases)
chain_floor._report = timed_report
sys.argv = [chain_floor.__file__, *sys.argv[2:]]
chain_floor.main()
print("walls", json.dumps(walls))
"""


def floor_sample(n: int, rounds: int, timeout: float) -> tuple[float, list[FloorRound]]:
    """Run ``chain_floor.py --pool --threads n --rounds rounds`` in a subprocess; return
    the median wall seconds of its rounds but the first (threads fresh from their start,
    dropped), and those rounds.

    The subprocess is this interpreter, so it runs with this process's CPU affinity;
    it is killed, and ``subprocess.TimeoutExpired`` raised, after ``timeout`` seconds.
    """
    if rounds < 2:
        raise ValueError("floor_sample needs at least two rounds (the first is dropped)")
    here = os.path.dirname(os.path.abspath(chain_floor.__file__))
    args = ["--pool", "--threads", str(n), "--rounds", str(rounds)]
    cmd = [sys.executable, "-c", _FLOOR_BOOT, here, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"chain_floor.py failed ({out.returncode}): {out.stderr.strip()}")
    printed: list[tuple[float, float, float]] = []
    walls: list[float] = []
    for line in out.stdout.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[0].isdigit():
            link, release, first_to_last = (float(c) for c in cells[1:])
            printed.append((link, release, first_to_last * 1e-3))
        elif line.startswith("walls "):
            walls = [float(w) for w in json.loads(line[len("walls ") :])]
    if len(printed) != rounds or len(walls) != rounds:
        raise RuntimeError(f"chain_floor.py printed {len(printed)} rounds:\n{out.stdout}")
    kept = [FloorRound(*p, w) for p, w in zip(printed, walls, strict=True)][1:]
    return statistics.median(r.wall_s for r in kept), kept
