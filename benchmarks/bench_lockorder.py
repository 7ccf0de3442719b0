#!/usr/bin/env python3
"""What lock-order checking costs per acquire: on, off, and ``threading``'s locks.

Usage::

    python benchmarks/bench_lockorder.py               # 15 rounds
    python benchmarks/bench_lockorder.py --quick       # smoke run (seconds)
    python benchmarks/bench_lockorder.py --markdown    # results as a markdown table
    taskset -c 0 python benchmarks/bench_lockorder.py  # pinned: less noise

``threadkit.diagnostics.check_lock_order()`` replaces ``Lock`` and ``RLock`` methods
with recording wrappers; off, the originals are back. Every case here is
uncontended and single-threaded, so it measures exactly what a wrapper adds: one
flag test, the thread's held stack (a ``_thread._local`` read and a list push and
pop) and, while other locks are held, one dictionary look-up per held lock to find
the edge already recorded (the first acquisition of each order, which records the
edge and its stack, is in the warm-up).

Methodology: one process, interleaved. Each round measures every case once per
side (checking off, checking on, the stdlib), in an order that rotates from round
to round; checking is switched on only around its own samples, and the locks are
the same objects on both threadkit sides (made while it was on, so they are classed
by creation site as in a checked program). Loops are unrolled ten times and the
garbage collector is off during a sample. Headline numbers are the medians over
rounds of the per-round ratios (on / off, on / stdlib) with their interquartile
range, and the added nanoseconds per acquire (median of on - off, per acquire).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _report import (
    fmt_time,
    load_threadkit,
    print_platform,
    quartiles,
    render,
    threadkit_line,
    unrolled,
)

SIDES = ("off", "on", "stdlib")


def make_cases(mod: Any) -> dict[str, tuple[int, Callable[[], object]]]:
    """Case name -> (acquires per call, the call), over locks of ``mod``."""
    lock = mod.Lock()
    rlock = mod.RLock()
    a = mod.Lock()
    b = mod.Lock()
    c = mod.RLock()
    d = mod.Lock()

    def with_lock() -> None:
        with lock:
            pass

    def with_rlock() -> None:
        with rlock:
            pass

    def acquire_release() -> None:
        lock.acquire()
        lock.release()

    def nested_pair() -> None:
        with a, b:
            pass

    def nested_four() -> None:
        with a, b, c, d:
            pass

    return {
        "with Lock: pass": (1, with_lock),
        "with RLock: pass": (1, with_rlock),
        "Lock.acquire(); release()": (1, acquire_release),
        "with A: with B: pass": (2, nested_pair),
        "4 nested (Lock, Lock, RLock, Lock)": (4, nested_four),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="3 rounds, few ops")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.ops = 3, 20_000

    threadkit = load_threadkit()
    from threadkit import _lockorder

    check = _lockorder.check_lock_order
    check(True)
    try:
        ours = make_cases(threadkit)
        for _, op in ours.values():
            op()  # record every order once, with its stack
    finally:
        check(False)
    cases = {"off": ours, "on": ours, "stdlib": make_cases(threading)}
    times: dict[str, dict[str, list[float]]] = {c: {s: [] for s in SIDES} for c in ours}

    def sample(side: str, case: str) -> float:
        op = cases[side][case][1]
        if side == "on":
            check(True)
        gc.collect()
        gc.disable()
        try:
            return unrolled(op, args.ops)
        finally:
            gc.enable()
            if side == "on":
                check(False)

    for case in times:  # warm-up, both states
        for side in SIDES:
            sample(side, case)
    order = list(SIDES)
    for round_ in range(args.rounds):
        order = order[1:] + order[:1]
        for case in times:
            for side in order:
                times[case][side].append(sample(side, case))
        print(f"  .. round {round_ + 1}/{args.rounds}", file=sys.stderr)
    assert not _lockorder.lock_order_reports(), "a consistent order was reported"

    rows = []
    for case, by in times.items():
        per = ours[case][0]
        on_off = [n / f for n, f in zip(by["on"], by["off"], strict=True)]
        on_std = [n / s for n, s in zip(by["on"], by["stdlib"], strict=True)]
        added = [(n - f) / per for n, f in zip(by["on"], by["off"], strict=True)]
        lo, mid, hi = quartiles(on_off)
        slo, smid, shi = quartiles(on_std)
        alo, amid, ahi = quartiles(added)
        rows.append(
            [
                case,
                fmt_time(statistics.median(by["off"])),
                fmt_time(statistics.median(by["on"])),
                fmt_time(statistics.median(by["stdlib"])),
                f"{mid:.2f}",
                f"{lo:.2f}-{hi:.2f}",
                f"{smid:.2f}",
                f"{slo:.2f}-{shi:.2f}",
                f"{amid * 1e9:.0f}",
                f"{alo * 1e9:.0f}-{ahi * 1e9:.0f}",
            ]
        )
    headers = [
        "case (one call)",
        "off",
        "on",
        "stdlib",
        "on/off",
        "IQR",
        "on/stdlib",
        "IQR",
        "ns added per acquire",
        "IQR",
    ]
    print(f"Lock-order checking cost: {args.rounds} rounds, interleaved, {args.ops} ops/sample")
    print_platform()
    print(threadkit_line(threadkit))
    print(render(headers, rows, args.markdown, text_cols=1))


if __name__ == "__main__":
    main()
