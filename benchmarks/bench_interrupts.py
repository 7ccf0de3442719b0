#!/usr/bin/env python3
"""What the Ctrl-C protection costs: threadkit now, threadkit before it, and the stdlib.

Usage::

    python benchmarks/bench_interrupts.py                      # baseline: git rev 6b08385
    python benchmarks/bench_interrupts.py --baseline-rev REV   # any earlier commit
    python benchmarks/bench_interrupts.py --quick              # smoke run (seconds)
    taskset -c 0 python benchmarks/bench_interrupts.py         # pinned: less noise

The protection (``threadkit._core._interrupts``) adds no code to the uncontended
paths: the SIGINT handler decides what to defer by walking the interrupted frames,
only when a Ctrl-C arrives. What it did change: a park now blocks in one more Python
function (``block``, the one frame open to Ctrl-C) and tests a flag first, and
``Condition.__enter__`` tests whether its lock is threadkit's. This script measures
exactly those paths against the same code without the protection.

Methodology: the baseline is the package as it was at ``--baseline-rev``, extracted
with ``git archive`` and imported under another name (``threadkit_base``: its imports
are relative), so the three implementations run in one process, interleaved: each
round measures every case once per implementation, in an order that rotates from
round to round. Headline numbers are the medians over rounds of the per-round
ratios (now / before, now / stdlib), with their interquartile range. The SIGINT
handler is installed (a thread is started first), as in a real program.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import fmt_time, quartiles, render, unrolled

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "6b08385"  # main before the Ctrl-C protection


def load_baseline(rev: str) -> ModuleType:
    """Import ``src/threadkit`` as of ``rev`` under the name ``threadkit_base``."""
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src/threadkit"],
        check=True,
        capture_output=True,
    ).stdout
    root = Path(tempfile.mkdtemp(prefix="threadkit-base-"))
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(root, filter="data")
    (root / "src" / "threadkit").rename(root / "threadkit_base")
    sys.path.insert(0, str(root))
    return importlib.import_module("threadkit_base")


def ping_pong(mod: Any, n: int) -> float:
    """Seconds per round trip between two threads through two Events (the park path)."""
    a, b = mod.Event(), mod.Event()

    def other() -> None:
        for _ in range(n):
            a.wait()
            a.clear()
            b.set()

    t = mod.Thread(target=other)
    t.start()
    start = time.perf_counter()
    for _ in range(n):
        a.set()
        b.wait()
        b.clear()
    elapsed = time.perf_counter() - start
    t.join()
    return elapsed / n


def make_cases(mod: Any) -> dict[str, Callable[[int], float]]:
    lock, rlock, ev, sem = mod.Lock(), mod.RLock(), mod.Event(), mod.Semaphore(1)
    cond = mod.Condition(mod.Lock())

    def with_lock() -> None:
        with lock:
            pass

    def with_rlock() -> None:
        with rlock:
            pass

    def with_cond() -> None:
        with cond:
            pass

    def with_cond_notify() -> None:
        with cond:
            cond.notify()

    def with_sem() -> None:
        with sem:
            pass

    return {
        "with lock: pass": lambda n: unrolled(with_lock, n),
        "with rlock: pass": lambda n: unrolled(with_rlock, n),
        "Event.set(), no waiter": lambda n: unrolled(ev.set, n),
        "with cond: pass": lambda n: unrolled(with_cond, n),
        "with cond: cond.notify()": lambda n: unrolled(with_cond_notify, n),
        "with semaphore: pass": lambda n: unrolled(with_sem, n),
        "Event ping-pong, per round trip": lambda n: ping_pong(mod, n // 100),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="3 rounds, few ops")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.ops = 3, 20_000

    import threadkit

    base = load_baseline(args.baseline_rev)
    threadkit.Thread(target=int).start()  # the main thread's first start: SIGINT is taken
    base.Thread(target=int).start()
    impls: dict[str, ModuleType] = {"now": threadkit, "before": base, "stdlib": threading}
    cases = {name: make_cases(mod) for name, mod in impls.items()}
    times: dict[str, dict[str, list[float]]] = {
        case: {name: [] for name in impls} for case in cases["now"]
    }
    order = list(impls)
    for round_ in range(args.rounds):
        order = order[1:] + order[:1]
        for case in times:
            for name in order:
                gc.collect()
                gc.disable()
                try:
                    times[case][name].append(cases[name][case](args.ops))
                finally:
                    gc.enable()
        print(f"  .. round {round_ + 1}/{args.rounds}", file=sys.stderr)

    rows = []
    for case, by in times.items():
        vs_before = [n / b for n, b in zip(by["now"], by["before"], strict=True)]
        vs_std = [n / s for n, s in zip(by["now"], by["stdlib"], strict=True)]
        lo, mid, hi = quartiles(vs_before)
        slo, smid, shi = quartiles(vs_std)
        rows.append(
            [
                case,
                fmt_time(statistics.median(by["now"])),
                fmt_time(statistics.median(by["before"])),
                fmt_time(statistics.median(by["stdlib"])),
                f"{mid:.3f}",
                f"{lo:.3f}-{hi:.3f}",
                f"{smid:.3f}",
                f"{slo:.3f}-{shi:.3f}",
            ]
        )
    headers = [
        "case",
        "now",
        "before",
        "stdlib",
        "now/before",
        "IQR",
        "now/stdlib",
        "IQR",
    ]
    print(
        f"Ctrl-C protection cost: {args.rounds} rounds, interleaved; before = "
        f"{args.baseline_rev}; Python {sys.version.split()[0]}; "
        f"CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}"
    )
    print(render(headers, rows, args.markdown, text_cols=1))


if __name__ == "__main__":
    main()
