#!/usr/bin/env python3
"""``threadkit.TaskGroup`` benchmarks: per-task cost, 1000 blocked tasks, memory per task.

Usage::

    python benchmarks/bench_taskgroup.py                 # full run (well under a minute)
    python benchmarks/bench_taskgroup.py --quick         # smoke run (a few seconds)
    python benchmarks/bench_taskgroup.py --markdown      # results as markdown tables
    python benchmarks/bench_taskgroup.py --rounds 9      # rounds for every part
    taskset -c 0 python benchmarks/bench_taskgroup.py    # pinned to one CPU

Part 1: per-task cost
---------------------
A trivial task (``lambda: None``), two ways of using it, three tools each.

*One at a time* (latency): ``tg.spawn(f).result()`` in one entered
``threadkit.TaskGroup`` (entering and leaving the group is outside the timed region),
``ThreadPoolExecutor(4).submit(f).result()`` (the pool is created and warmed up
outside the timed region) and ``threading.Thread(target=f)`` ``start()`` + ``join()``.
Every task here costs two thread switches whatever the tool (the task runs on
another thread, and the caller waits for it), so this row shows the overhead on
top of that floor. A fourth way, *floor*, measures it: the smallest pool there is
(one ``_thread`` worker, a deque under a ``_thread`` lock, a lock to wake the
worker and one to answer, no task object, context or error handling). Its ratios
to ThreadPoolExecutor and Thread are printed under the table, next to the goals:
no pool can beat them.

*A burst* (throughput): ``--tasks`` tasks spawned in a row, then all awaited: a
``TaskGroup`` block that spawns them (its end waits for them), ``submit`` them all
to a warmed-up ``ThreadPoolExecutor(4)`` and then ``result()`` each, or start that
many ``threading.Thread`` objects and then join each.

Each sample runs ``--tasks`` tasks and gives microseconds per task; each round takes
one sample of each way, in an order that rotates from round to round. The headline
numbers are the medians over rounds of the per-round ratios TaskGroup / TPE and
TaskGroup / Thread, with their interquartile range (p25-p75); goals: <= 0.5 and
<= 0.25. A verdict is flagged "(marginal)" when the IQR straddles the goal.

Part 2: the threading-docs example at scale
-------------------------------------------
``--scale-tasks`` tasks (default 1000) each blocking 50 ms in ``time.sleep(0.05)``,
started all at once: a ``TaskGroup`` (no ``limit``) spawning all of them, timed
from before entering the block to after leaving it, once with the worker cache warm
(a first, untimed group of as many tasks ran just before) and once cold (the cache
emptied first); as many ``threading.Thread`` objects started, then joined; and a
``ThreadPoolExecutor(n)`` (created inside the timed region), submit-all then
``concurrent.futures.wait`` (its ``shutdown`` is outside the timed region).
Reported: wall time and its ratio to the ideal 50 ms; goal for the TaskGroup:
within 1.3x. Rounds are interleaved as in part 1.

Part 3: peak memory per task
----------------------------
With ``tracemalloc`` started, ``--scale-tasks`` tasks are started (TaskGroup: once
on a warm worker cache, where the workers exist already, and once on a cold one,
where each task also allocates its worker's ``Thread`` object) that check in and
then block on one ``threadkit.Event``; once all have checked in (and a short settle
delay), the peak of ``tracemalloc.get_traced_memory()`` since the reset before the
start, minus the traced memory at that reset, divided by the number of tasks, is the
KiB per task; then the event is set and the tasks are joined.  This counts the
*Python heap only* (objects allocated through Python's allocators): thread stacks
and the OS and C-level thread state are not included.  TaskGroup vs
``threading.Thread`` vs ``ThreadPoolExecutor(n)``.

Every part uses the default ``threading.stack_size``.  The garbage collector is run
before, and disabled during, every sample; a sample that takes longer than
``--timeout`` seconds makes ``faulthandler`` dump all stacks and exit.
"""

from __future__ import annotations

import _thread
import argparse
import faulthandler
import gc
import itertools
import statistics
import sys
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from _report import (
    add_timeout_arg,
    load_threadkit,
    print_platform,
    progress,
    quartiles,
    render,
    threadkit_line,
    verdict,
)

perf_counter = time.perf_counter

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0

#: How long each task of part 2 blocks.
_BLOCK_S = 0.05


def _noop() -> None:
    return None


def _guarded(func: Callable[[ModuleType, int], float], tk: ModuleType, n: int) -> float:
    """Run one sample, ``func(tk, n)``, with the GC quiesced and a deadlock guard armed."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    faulthandler.dump_traceback_later(_sample_timeout, exit=True)
    try:
        return func(tk, n)
    finally:
        faulthandler.cancel_dump_traceback_later()
        if gc_was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------
# Part 1: per-task cost (seconds per task)
# --------------------------------------------------------------------------------------


def cost_taskgroup(tk: ModuleType, n: int) -> float:
    f = _noop
    with tk.TaskGroup() as tg:
        spawn = tg.spawn
        t0 = perf_counter()
        for _ in range(n):
            spawn(f).result()
        t1 = perf_counter()
    return (t1 - t0) / n


def cost_tpe(tk: ModuleType, n: int) -> float:
    f = _noop
    with ThreadPoolExecutor(4) as pool:
        for _ in range(8):
            pool.submit(f).result()  # warm-up: the worker thread exists
        submit = pool.submit
        t0 = perf_counter()
        for _ in range(n):
            submit(f).result()
        t1 = perf_counter()
    return (t1 - t0) / n


def burst_taskgroup(tk: ModuleType, n: int) -> float:
    f = _noop
    t0 = perf_counter()
    with tk.TaskGroup() as tg:
        spawn = tg.spawn
        for _ in range(n):
            spawn(f)
    t1 = perf_counter()
    return (t1 - t0) / n


def burst_tpe(tk: ModuleType, n: int) -> float:
    f = _noop
    with ThreadPoolExecutor(4) as pool:
        for _ in range(8):
            pool.submit(f).result()  # warm-up: the worker thread exists
        submit = pool.submit
        t0 = perf_counter()
        futures = [submit(f) for _ in range(n)]
        for future in futures:
            future.result()
        t1 = perf_counter()
    return (t1 - t0) / n


def burst_thread(tk: ModuleType, n: int) -> float:
    f = _noop
    new_thread = threading.Thread
    t0 = perf_counter()
    threads = [new_thread(target=f) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    t1 = perf_counter()
    return (t1 - t0) / n


def cost_floor(tk: ModuleType, n: int) -> float:
    """The smallest pool there is: one ``_thread`` worker, two locks per task.

    No task object, context, scope or error handling: what any pool, threadkit's
    included, cannot go below when the caller waits for each task.
    """
    f = _noop
    mutex = _thread.allocate_lock()
    jobs: deque[tuple[Callable[[], None] | None, Any]] = deque()
    idle: list[Any] = []
    wake = _thread.allocate_lock()
    wake.acquire()

    def worker() -> None:
        while True:
            with mutex:
                job = jobs.popleft() if jobs else None
                if job is None:
                    idle.append(wake)
            if job is None:
                wake.acquire()
                continue
            fn, done = job
            if fn is not None:
                fn()
            done.release()
            if fn is None:
                return

    def run(fn: Callable[[], None] | None) -> None:
        done = _thread.allocate_lock()
        done.acquire()
        with mutex:
            jobs.append((fn, done))
            parked = idle.pop() if idle else None
        if parked is not None:
            parked.release()
        done.acquire()

    _thread.start_new_thread(worker, ())
    try:
        run(f)  # warm-up: the worker runs and parks
        t0 = perf_counter()
        for _ in range(n):
            run(f)
        t1 = perf_counter()
    finally:
        run(None)  # the worker ends
    return (t1 - t0) / n


def cost_thread(tk: ModuleType, n: int) -> float:
    f = _noop
    new_thread = threading.Thread
    t0 = perf_counter()
    for _ in range(n):
        thread = new_thread(target=f)
        thread.start()
        thread.join()
    t1 = perf_counter()
    return (t1 - t0) / n


# --------------------------------------------------------------------------------------
# Part 2: n tasks blocking 50 ms (wall seconds)
# --------------------------------------------------------------------------------------


def _block() -> None:
    time.sleep(_BLOCK_S)


def _spawn_blocked(tk: ModuleType, n: int) -> float:
    t0 = perf_counter()
    with tk.TaskGroup() as tg:
        for _ in range(n):
            tg.spawn(_block)
    return perf_counter() - t0


def _empty_cache(tk: ModuleType) -> None:
    for worker in tk._workers.retire_idle():
        worker.join()


def scale_taskgroup_warm(tk: ModuleType, n: int) -> float:
    _spawn_blocked(tk, n)  # untimed: leaves n idle workers in the cache
    return _spawn_blocked(tk, n)


def scale_taskgroup_cold(tk: ModuleType, n: int) -> float:
    _empty_cache(tk)
    return _spawn_blocked(tk, n)


def scale_thread(tk: ModuleType, n: int) -> float:
    t0 = perf_counter()
    threads = [threading.Thread(target=_block) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return perf_counter() - t0


def scale_tpe(tk: ModuleType, n: int) -> float:
    t0 = perf_counter()
    pool = ThreadPoolExecutor(n)
    try:
        futures = [pool.submit(_block) for _ in range(n)]
        wait(futures)
        t1 = perf_counter()
    finally:
        pool.shutdown()
    for future in futures:
        future.result()
    return t1 - t0


# --------------------------------------------------------------------------------------
# Part 3: peak Python-heap memory per task (bytes per task)
# --------------------------------------------------------------------------------------


class _Parked:
    """Tasks that check in, then block on one threadkit.Event until released."""

    def __init__(self, tk: ModuleType, n: int) -> None:
        self.n = n
        self.release = tk.Event()
        self.all_in = threading.Event()
        self._count = itertools.count(1)

    def task(self) -> None:
        if next(self._count) == self.n:  # itertools.count is atomic under the GIL
            self.all_in.set()
        self.release.wait()

    def peak_per_task(self, start: Callable[[], None]) -> float:
        """Start the tasks with ``start`` under tracemalloc; return peak bytes per task."""
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            try:
                start()
                if not self.all_in.wait(_sample_timeout):
                    raise TimeoutError("tasks did not all check in")
                time.sleep(0.05)  # let the last ones get from check-in into wait()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                self.release.set()
        finally:
            tracemalloc.stop()
        return (peak - base) / self.n


def memory_taskgroup_cold(tk: ModuleType, n: int) -> float:
    _empty_cache(tk)  # every task needs a new worker: its Thread object counts too
    return memory_taskgroup(tk, n)


def memory_taskgroup(tk: ModuleType, n: int) -> float:
    parked = _Parked(tk, n)
    result = 0.0
    with tk.TaskGroup() as tg:

        def start() -> None:
            for _ in range(n):
                tg.spawn(parked.task)

        result = parked.peak_per_task(start)
    return result


def memory_thread(tk: ModuleType, n: int) -> float:
    parked = _Parked(tk, n)
    threads: list[threading.Thread] = []

    def start() -> None:
        for _ in range(n):
            thread = threading.Thread(target=parked.task)
            thread.start()
            threads.append(thread)

    try:
        return parked.peak_per_task(start)
    finally:
        for thread in threads:
            thread.join()


def memory_tpe(tk: ModuleType, n: int) -> float:
    parked = _Parked(tk, n)
    pool: list[ThreadPoolExecutor] = []

    def start() -> None:
        pool.append(ThreadPoolExecutor(n))
        for _ in range(n):
            pool[0].submit(parked.task)

    try:
        return parked.peak_per_task(start)
    finally:
        if pool:
            pool[0].shutdown()


# --------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Way:
    name: str
    label: str
    func: Callable[[ModuleType, int], float]


@dataclass
class Series:
    way: Way
    values: list[float] = field(default_factory=list)


def run_part(
    title: str, ways: Sequence[Way], tk: ModuleType, n: int, rounds: int, warmup: bool
) -> list[Series]:
    """Interleaved rounds: every round samples every way once, in a rotating order."""
    series = [Series(way) for way in ways]
    if warmup:
        progress(f"{title}: warm-up")
        for s in series:
            _guarded(s.way.func, tk, max(1, n // 10))
    for rnd in range(rounds):
        progress(f"{title}: round {rnd + 1}/{rounds}")
        k = rnd % len(series)
        for s in series[k:] + series[:k]:
            s.values.append(_guarded(s.way.func, tk, n))
    return series


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def _spread(values: Sequence[float], scale: float, fmt: str) -> tuple[str, str]:
    p25, med, p75 = quartiles([v * scale for v in values])
    return format(med, fmt), f"{format(p25, fmt)}-{format(p75, fmt)}"


def report_cost(series: list[Series], markdown: bool) -> str:
    tg = series[0]
    goals = {"tpe": 0.5, "thread": 0.25}
    rows = []
    for s in series:
        us, us_iqr = _spread(s.values, 1e6, ".2f")
        if s is tg:
            rows.append([s.way.name, s.way.label, us, us_iqr, "-", "-", "-", "-"])
            continue
        ratios = [a / b for a, b in zip(tg.values, s.values, strict=True)]
        med, iqr = _spread(ratios, 1.0, ".2f")
        goal = goals.get(s.way.name)
        if goal is None:
            rows.append([s.way.name, s.way.label, us, us_iqr, med, iqr, "-", "-"])
            continue
        row = [s.way.name, s.way.label, us, us_iqr, med, iqr, f"<= {goal:g}"]
        rows.append([*row, verdict(ratios, goal)])
    headers = [
        "case",
        "operation",
        "us/task",
        "IQR us",
        "TaskGroup/this",
        "IQR",
        "goal",
        "met",
    ]
    table = render(headers, rows, markdown)
    floor = next((s for s in series if s.way.name == "floor"), None)
    if floor is None:
        return table
    lines = [table, ""]
    for s in series:
        goal = goals.get(s.way.name)
        if goal is not None:
            ratios = [a / b for a, b in zip(floor.values, s.values, strict=True)]
            med, iqr = _spread(ratios, 1.0, ".2f")
            lines.append(
                f"floor/{s.way.name}: {med} ({iqr}), against the goal <= {goal:g} for "
                "TaskGroup/" + s.way.name
            )
    return "\n".join(lines)


def report_scale(series: list[Series], markdown: bool) -> str:
    rows = []
    for s in series:
        ms, ms_iqr = _spread(s.values, 1e3, ".1f")
        ideal = [v / _BLOCK_S for v in s.values]
        x, x_iqr = _spread(ideal, 1.0, ".2f")
        is_tg = s.way.name.startswith("taskgroup")
        goal, met = ("<= 1.3", verdict(ideal, 1.3)) if is_tg else ("-", "-")
        rows.append([s.way.name, s.way.label, ms, ms_iqr, x, x_iqr, goal, met])
    headers = ["case", "operation", "wall ms", "IQR ms", "x ideal 50 ms", "IQR", "goal", "met"]
    return render(headers, rows, markdown)


def report_memory(series: list[Series], markdown: bool) -> str:
    # Compared with the cold TaskGroup: the conservative figure.
    tg = next(s for s in series if s.way.name == "taskgroup-cold")
    rows = []
    for s in series:
        kib, kib_iqr = _spread(s.values, 1 / 1024, ".2f")
        ratios = [a / b for a, b in zip(tg.values, s.values, strict=True)]
        is_tg = s.way.name.startswith("taskgroup")
        ratio = "-" if is_tg else format(statistics.median(ratios), ".2f")
        rows.append([s.way.name, s.way.label, kib, kib_iqr, ratio])
    headers = ["case", "tasks", "KiB/task (Python heap)", "IQR", "cold TaskGroup/this"]
    return render(headers, rows, markdown)


def print_header(tk: ModuleType, args: argparse.Namespace) -> None:
    print_platform(gil=False, stack_size=True)
    print(threadkit_line(tk))
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark threadkit.TaskGroup against threading.Thread and "
        "ThreadPoolExecutor.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds for every part (default 15 / 5 / 3 for parts 1 / 2 / 3; "
        "3 / 1 / 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run: fewer rounds, 300 tasks in part 1, 200 in parts 2 and 3",
    )
    parser.add_argument(
        "--tasks", type=int, default=None, help="tasks per sample in part 1 (default 2000)"
    )
    parser.add_argument(
        "--scale-tasks",
        type=int,
        default=None,
        help="tasks in parts 2 and 3 (default 1000)",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    add_timeout_arg(parser)
    args = parser.parse_args(argv)
    if args.rounds is None:
        per_part = (3, 1, 1) if args.quick else (15, 5, 3)
        args.rounds_cost, args.rounds_scale, args.rounds_mem = per_part
    else:
        args.rounds_cost = args.rounds_scale = args.rounds_mem = args.rounds
    if args.tasks is None:
        args.tasks = 300 if args.quick else 2000
    if args.scale_tasks is None:
        args.scale_tasks = 200 if args.quick else 1000
    if min(args.rounds_cost, args.tasks, args.scale_tasks) < 1 or args.timeout <= 0:
        parser.error("--rounds, --tasks, --scale-tasks and --timeout must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    global _sample_timeout
    args = parse_args(argv)
    _sample_timeout = args.timeout
    tk = load_threadkit()
    print_header(tk, args)
    heading = "### " if args.markdown else ""

    cost = run_part(
        "per-task cost",
        [
            Way("taskgroup", "tg.spawn(f).result()", cost_taskgroup),
            Way("tpe", "ThreadPoolExecutor(4).submit(f).result()", cost_tpe),
            Way("thread", "Thread(target=f) start+join", cost_thread),
            Way("floor", "smallest pool: one _thread worker, two locks a task", cost_floor),
        ],
        tk,
        args.tasks,
        args.rounds_cost,
        warmup=True,
    )
    burst = run_part(
        "per-task cost, burst",
        [
            Way("taskgroup", "spawn all in a TaskGroup, block end waits", burst_taskgroup),
            Way("tpe", "ThreadPoolExecutor(4): submit all, result each", burst_tpe),
            Way("thread", "Threads: start all, join each", burst_thread),
        ],
        tk,
        args.tasks,
        args.rounds_cost,
        warmup=True,
    )
    n = args.scale_tasks
    scale = run_part(
        "blocked tasks",
        [
            Way("taskgroup", f"TaskGroup, spawn {n}, warm cache", scale_taskgroup_warm),
            Way("taskgroup-cold", f"TaskGroup, spawn {n}, cold cache", scale_taskgroup_cold),
            Way("thread", f"{n} Threads, start all, join all", scale_thread),
            Way("tpe", f"ThreadPoolExecutor({n}), submit all, wait", scale_tpe),
        ],
        tk,
        n,
        args.rounds_scale,
        warmup=False,
    )
    memory = run_part(
        "memory",
        [
            Way("taskgroup", f"{n} TaskGroup tasks, warm cache", memory_taskgroup),
            Way("taskgroup-cold", f"{n} TaskGroup tasks, cold cache", memory_taskgroup_cold),
            Way("thread", f"{n} threading.Threads", memory_thread),
            Way("tpe", f"ThreadPoolExecutor({n}), {n} tasks", memory_tpe),
        ],
        tk,
        n,
        args.rounds_mem,
        warmup=False,
    )

    print(
        f"{heading}Part 1: per-task cost of `lambda: None`, {args.tasks} tasks per sample, "
        f"{args.rounds_cost} rounds"
    )
    print()
    print(report_cost(cost, args.markdown))
    print()
    print(f"{heading}Part 1b: the same, as a burst: {args.tasks} tasks started, then awaited")
    print()
    print(report_cost(burst, args.markdown))
    print()
    print(
        f"{heading}Part 2: {n} tasks each blocking {_BLOCK_S * 1e3:g} ms, "
        f"{args.rounds_scale} round(s)"
    )
    print()
    print(report_scale(scale, args.markdown))
    print()
    print(
        f"{heading}Part 3: peak traced memory per blocked task (tracemalloc: Python heap "
        f"only, no thread stacks or C thread state), {args.rounds_mem} round(s)"
    )
    print()
    print(report_memory(memory, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
