#!/usr/bin/env python3
"""``threadkit.TaskGroup`` benchmarks: per-task cost, one slow item in ``map``, 1000
blocked tasks, memory per task.

Usage::

    python benchmarks/bench_taskgroup.py                 # full run (~1 min; 3.14t ~4)
    python benchmarks/bench_taskgroup.py --quick         # smoke run (a few seconds)
    python benchmarks/bench_taskgroup.py --markdown      # results as markdown tables
    python benchmarks/bench_taskgroup.py --rounds 9      # rounds for every part
    taskset -c 0 python benchmarks/bench_taskgroup.py    # pinned to one CPU

Part 1: per-task cost
---------------------
A trivial task (``lambda: None``), three ways of using it.

*One at a time* (latency): ``tg.spawn(f).result()`` in one entered
``threadkit.TaskGroup()`` (default ``limit``; entering and leaving the group is
outside the timed region), ``ThreadPoolExecutor(4).submit(f).result()`` (the pool
is created and warmed up outside the timed region) and ``threading.Thread(target=f)``
``start()`` + ``join()``. Every task here costs two thread switches whatever the
tool (the task runs on another thread, and the caller waits for it), so this row
shows the overhead on top of that floor. A fourth way, *floor*, measures it: the
smallest pool there is (one ``_thread`` worker, a deque under a ``_thread`` lock, a
lock to wake the worker and one to answer, no task object, context or error
handling). Goal: TaskGroup / floor <= 1.3. The ratios to ThreadPoolExecutor and
Thread are for information; those of the floor to them are printed under the table
(no pool can beat them).

*A burst* (throughput): ``--tasks`` tasks spawned in a row, then all awaited: a
``TaskGroup(limit=None)`` block that spawns them (its end waits for them),
``submit`` them all to a warmed-up ``ThreadPoolExecutor(4)`` and then ``result()``
each, or start that many ``threading.Thread`` objects and then join each. Goals:
TaskGroup / TPE <= 0.5, TaskGroup / Thread <= 0.25.

*A burst into a limited group*: the same burst into a ``TaskGroup(limit=4)``
(``--tasks`` spawns, then the block's end awaits them all; the spawner may wait for a
slot), against the same warmed-up ``ThreadPoolExecutor(4)``, submit-all then
``result()`` each. Goal: TaskGroup / TPE <= 0.5.

Each sample runs ``--tasks`` tasks and gives microseconds per task.

Part 1d: one slow item in ``map``
---------------------------------
100 items; items 0, 10, ..., 90 sleep 1 s (``time.sleep``), the others 10 ms (both
times ``--map-scale``, 0.1 with ``--quick``); each returns its item.
``ThreadPoolExecutor(10).map(fn, items)`` consumed into a list (the pool made and
shut down inside the timed region) against ``list(tg.map(fn, items))`` inside a
``with threadkit.TaskGroup(limit=10)`` block (timed from before entering to after
leaving it); the results are checked. Wall time each; goal TaskGroup / TPE <= 1.1.
No 10-slot pool can beat the total sleep divided by 10 (1.09 s), printed under the
table. A map that keeps only 10 items in flight, counting finished ones not yet
handed back, waits about 10 s: each sample's deadlock guard allows at least twice
the total sleep (21.8 s), whatever ``--timeout``.

Part 2: the threading-docs example at scale
-------------------------------------------
``--scale-tasks`` tasks (default 1000) each blocking 50 ms in ``time.sleep(0.05)``,
started all at once: a ``TaskGroup(limit=None)`` spawning all of them, timed from
before entering the block to after leaving it, once with the worker cache warm and
once cold (the cache emptied first). Warm means ``n`` idle workers: if the cache
holds fewer, an untimed group of ``n`` tasks that wait for each other (a barrier)
fills it first, as ``bench_futures.py`` does (a group of ``n`` blocking tasks would
not: the cache reuses the workers whose tasks ended first, and a cold start of 1000
leaves a few hundred on 3.14t); how often that was needed is printed. Then: as many
``threading.Thread`` objects started, then joined; a ``ThreadPoolExecutor(n)``
(created inside the timed region), submit-all then ``concurrent.futures.wait`` (its
``shutdown`` is outside the timed region); and the floor: ``chain_floor.py --pool``
(the smallest possible worker pool: one run queue under one ``_thread`` lock, idle
threads on a stack of their own locks, each job ``time.sleep(0.05)`` plus a counter
under the lock) with ``--threads n --rounds 5``, run in a subprocess of this
interpreter (it inherits the CPU affinity) as one of the ways of each round, as
``bench_futures.py`` runs it (the code is shared, in ``_report.floor_sample``): its
wall time from the first job's start to the main thread's return from waiting for
the last job, median of its rounds 2-5 (its threads exist and are parked before its
rounds, as the warm cache's workers are). Reported: wall time, its ratio to the
ideal 50 ms (for information) and, for the TaskGroup (warm and cold), the per-round
ratio to the floor; goal: <= 1.15.

Part 3: peak memory per task
----------------------------
With ``tracemalloc`` started, ``--scale-tasks`` tasks are started (in a
``TaskGroup(limit=None)``: once on a warm worker cache, where the workers exist
already, and once on a cold one, where each task also allocates its worker's
``Thread`` object) that check in and then block on one ``threadkit.Event``; once all
have checked in (and a short settle delay), the peak of
``tracemalloc.get_traced_memory()`` since the reset before the start, minus the
traced memory at that reset, divided by the number of tasks, is the KiB per task;
then the event is set and the tasks are joined.  This counts the *Python heap only*
(objects allocated through Python's allocators): thread stacks and the OS and
C-level thread state are not included.  TaskGroup vs ``threading.Thread`` vs
``ThreadPoolExecutor(n)``.

Methodology
-----------
Each round takes one sample of each way of a part, in an order that rotates from
round to round, so slow drift hits all alike. The headline numbers are the medians
over rounds of the per-round ratios (TaskGroup / the other way), with their
interquartile range (p25-p75); a goal is met when the median ratio is at or below
it, flagged "(marginal)" when the IQR straddles it. The goals are summed up at the
end. Every part uses the default ``threading.stack_size``. The garbage collector is
run before, and disabled during, every sample; a sample that takes longer than
``--timeout`` seconds (more for part 1d, see there) makes ``faulthandler`` dump all
stacks and exit.
"""

from __future__ import annotations

import _thread
import argparse
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

import chain_floor
from _report import (
    FloorRound,
    add_timeout_arg,
    floor_sample,
    load_threadkit,
    print_platform,
    progress,
    quartiles,
    quiesced_sample,
    render,
    threadkit_line,
    verdict,
)

perf_counter = time.perf_counter

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0

#: How long each task of part 2 blocks: the floor's own figure.
_BLOCK_S: float = chain_floor._BLOCK_S

#: ``chain_floor.py --pool`` rounds per floor sample; the first is dropped.
_FLOOR_ROUNDS = 5

#: Every round of the floor samples of part 2, in order (for the note under its table).
_floor_rounds: list[FloorRound] = []

#: Warm samples of part 2 before which the cache was filled (for the same note).
_refills = 0

#: Part 1d: items, slots, and the sleeps (times --map-scale) of the slow and other items.
_MAP_ITEMS = 100
_MAP_LIMIT = 10
_MAP_SLOW_S = 1.0
_MAP_FAST_S = 0.01

#: Goals: TaskGroup / the named way, per table.
_GOALS_ONE = {"floor": 1.3}
_GOALS_BURST = {"tpe": 0.5, "thread": 0.25}
_GOALS_LIMITED = {"tpe": 0.5}
_GOALS_MAP = {"tpe": 1.1}
_GOAL_SCALE = 1.15  # part 2, TaskGroup (warm and cold) / floor


def _noop() -> None:
    return None


def _guarded(
    func: Callable[[ModuleType, int], float], tk: ModuleType, n: int, timeout: float | None = None
) -> float:
    """Run one sample, ``func(tk, n)``, with the GC quiesced and a deadlock guard armed
    (``timeout`` seconds, ``--timeout`` if None)."""
    return quiesced_sample(lambda: func(tk, n), timeout or _sample_timeout, "sample")


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
    return _burst(tk, n, None)


def burst_taskgroup_limited(tk: ModuleType, n: int) -> float:
    return _burst(tk, n, 4)


def _burst(tk: ModuleType, n: int, limit: int | None) -> float:
    f = _noop
    t0 = perf_counter()
    with tk.TaskGroup(limit=limit) as tg:
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
# Part 1d: one slow item in map (wall seconds)
# --------------------------------------------------------------------------------------


def map_ways(slow: float, fast: float) -> tuple[Callable[..., float], Callable[..., float]]:
    """The TaskGroup and ThreadPoolExecutor samples of part 1d: every tenth item (0,
    10, ...) sleeps ``slow`` seconds, the others ``fast``."""

    def item(i: int) -> int:
        time.sleep(slow if i % 10 == 0 else fast)
        return i

    def check(out: list[int], n: int) -> None:
        if out != list(range(n)):
            raise AssertionError(f"map results out of order or lost: {out[:20]}...")

    def map_taskgroup(tk: ModuleType, n: int) -> float:
        t0 = perf_counter()
        with tk.TaskGroup(limit=_MAP_LIMIT) as tg:
            out = list(tg.map(item, range(n)))
        t1 = perf_counter()
        check(out, n)
        return t1 - t0

    def map_tpe(tk: ModuleType, n: int) -> float:
        t0 = perf_counter()
        with ThreadPoolExecutor(_MAP_LIMIT) as pool:
            out = list(pool.map(item, range(n)))
        t1 = perf_counter()
        check(out, n)
        return t1 - t0

    return map_taskgroup, map_tpe


def map_sleep_total(n: int, slow: float, fast: float) -> float:
    """The sum of the sleeps of part 1d's ``n`` items."""
    n_slow = len(range(0, n, 10))
    return n_slow * slow + (n - n_slow) * fast


# --------------------------------------------------------------------------------------
# Part 2: n tasks blocking 50 ms (wall seconds)
# --------------------------------------------------------------------------------------


def _block() -> None:
    time.sleep(_BLOCK_S)


def _spawn_blocked(tk: ModuleType, n: int) -> float:
    t0 = perf_counter()
    with tk.TaskGroup(limit=None) as tg:
        for _ in range(n):
            tg.spawn(_block)
    return perf_counter() - t0


def _empty_cache(tk: ModuleType) -> None:
    for worker in tk._workers.retire_idle():
        worker.join()


def _fill_cache(tk: ModuleType, n: int) -> None:
    """Leave at least ``n`` idle workers in the worker cache (untimed).

    ``n`` tasks that wait for each other need ``n`` workers at once, and the cache
    starts them. A group of ``n`` tasks that block and then end does not: the cache
    starts a worker for a queued task only while none of the running ones progresses,
    and reuses those whose tasks ended first (on 3.14t, a cold group of 1000 leaves a
    few hundred).
    """
    barrier = threading.Barrier(n, timeout=_sample_timeout)
    with tk.TaskGroup(limit=None) as tg:
        for _ in range(n):
            tg.spawn(barrier.wait)
    deadline = perf_counter() + 1.0  # the workers park a moment after their tasks end
    while tk._workers.idle_workers() < n and perf_counter() < deadline:
        time.sleep(0.01)


def scale_taskgroup_warm(tk: ModuleType, n: int) -> float:
    global _refills
    if tk._workers.idle_workers() < n:
        _refills += 1
        _fill_cache(tk, n)
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


def scale_floor(tk: ModuleType, n: int) -> float:
    """``chain_floor.py --pool --threads n``: the median wall time of its rounds 2-5."""
    wall, kept = floor_sample(n, _FLOOR_ROUNDS, _sample_timeout)
    _floor_rounds.extend(kept)
    return wall


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
    with tk.TaskGroup(limit=None) as tg:

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
    timeout: float | None = None  # the sample's deadlock guard; None: --timeout


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
            _guarded(s.way.func, tk, max(1, n // 10), s.way.timeout)
    for rnd in range(rounds):
        progress(f"{title}: round {rnd + 1}/{rounds}")
        k = rnd % len(series)
        for s in series[k:] + series[:k]:
            s.values.append(_guarded(s.way.func, tk, n, s.way.timeout))
    return series


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """One goal of the run, for the summary: a median per-round ratio <= ``target``."""

    what: str
    ratios: list[float]
    target: float


def _spread(values: Sequence[float], scale: float, fmt: str) -> tuple[str, str]:
    p25, med, p75 = quartiles([v * scale for v in values])
    return format(med, fmt), f"{format(p25, fmt)}-{format(p75, fmt)}"


def _ratios(a: Series, b: Series) -> list[float]:
    """Per-round ratios ``a / b``."""
    return [x / y for x, y in zip(a.values, b.values, strict=True)]


def report_compare(
    series: list[Series],
    goals: dict[str, float],
    markdown: bool,
    record: list[Goal],
    title: str,
    unit: str = "us/task",
    scale: float = 1e6,
    fmt: str = ".2f",
) -> str:
    """A table of every way's median value and IQR, and the ratio of the first way
    (the TaskGroup) to each other, with its goal from ``goals`` (by way name) if any;
    the goals are also appended to ``record`` as ``title: <first> / <way>``."""
    tg = series[0]
    rows = []
    for s in series:
        value, value_iqr = _spread(s.values, scale, fmt)
        if s is tg:
            rows.append([s.way.name, s.way.label, value, value_iqr, "-", "-", "-", "-"])
            continue
        ratios = _ratios(tg, s)
        med, iqr = _spread(ratios, 1.0, ".2f")
        goal = goals.get(s.way.name)
        if goal is None:
            rows.append([s.way.name, s.way.label, value, value_iqr, med, iqr, "-", "-"])
            continue
        met = verdict(ratios, goal)
        rows.append([s.way.name, s.way.label, value, value_iqr, med, iqr, f"<= {goal:g}", met])
        record.append(Goal(f"{title}: {tg.way.name} / {s.way.name}", ratios, goal))
    headers = ["case", "operation", unit, "IQR", "TaskGroup/this", "IQR p25-p75", "goal", "met"]
    return render(headers, rows, markdown)


def report_one_at_a_time(series: list[Series], markdown: bool, record: list[Goal]) -> str:
    """The one-at-a-time table, and the floor's ratios to ThreadPoolExecutor and Thread
    (what no pool can beat) under it."""
    lines = [report_compare(series, _GOALS_ONE, markdown, record, "one at a time"), ""]
    floor = next(s for s in series if s.way.name == "floor")
    for s in series:
        if s.way.name in ("tpe", "thread"):
            med, iqr = _spread(_ratios(floor, s), 1.0, ".2f")
            lines.append(
                f"floor/{s.way.name}: {med} ({iqr}), the lowest TaskGroup/{s.way.name} "
                "any pool can reach"
            )
    return "\n".join(lines)


def report_map(
    series: list[Series], markdown: bool, record: list[Goal], slow: float, fast: float
) -> str:
    table = report_compare(series, _GOALS_MAP, markdown, record, "map", "wall s", 1.0, ".3f")
    bound = map_sleep_total(_MAP_ITEMS, slow, fast) / _MAP_LIMIT
    return (
        f"{table}\n\nlower bound for {_MAP_LIMIT} slots: the sum of the sleeps / "
        f"{_MAP_LIMIT} = {bound:.3g} s"
    )


def report_scale(series: list[Series], markdown: bool, record: list[Goal], n: int) -> str:
    floor = next(s for s in series if s.way.name == "floor")
    rows = []
    for s in series:
        ms, ms_iqr = _spread(s.values, 1e3, ".1f")
        ideal = [v / _BLOCK_S for v in s.values]
        x, x_iqr = _spread(ideal, 1.0, ".2f")
        if s.way.name.startswith("taskgroup"):
            ratios = _ratios(s, floor)
            med, iqr = _spread(ratios, 1.0, ".2f")
            cells = [med, iqr, f"<= {_GOAL_SCALE:g}", verdict(ratios, _GOAL_SCALE)]
            record.append(Goal(f"{n} blocked: {s.way.name} / floor", ratios, _GOAL_SCALE))
        else:
            cells = ["-", "-", "-", "-"]
        rows.append([s.way.name, s.way.label, ms, ms_iqr, x, x_iqr, *cells])
    headers = [
        "case",
        "operation",
        "wall ms",
        "IQR ms",
        "x ideal 50 ms",
        "IQR",
        "this/floor",
        "IQR p25-p75",
        "goal",
        "met",
    ]
    lines = [render(headers, rows, markdown)]
    if _floor_rounds:
        spread = statistics.median(r.first_to_last_s for r in _floor_rounds) * 1e3
        link = statistics.median(r.link_us for r in _floor_rounds)
        release = statistics.median(r.release_us for r in _floor_rounds)
        lines += [
            "",
            f"floor: chain_floor.py --pool --threads {n}, median of its rounds "
            f"2-{_FLOOR_ROUNDS} (first start to last job done); over its "
            f"{len(_floor_rounds)} kept rounds, median first-to-last start {spread:.1f} ms, "
            f"link {link:.1f} us, release {release:.1f} us",
        ]
    warm = next((s for s in series if s.way.name == "taskgroup"), None)
    if warm is not None:
        lines += [
            "",
            f"warm cache: before {_refills} of {len(warm.values)} warm samples the cache "
            f"held fewer than {n} idle workers and was filled (untimed)",
        ]
    return "\n".join(lines)


def report_memory(series: list[Series], markdown: bool) -> str:
    # Compared with the cold TaskGroup: the conservative figure.
    tg = next(s for s in series if s.way.name == "taskgroup-cold")
    rows = []
    for s in series:
        kib, kib_iqr = _spread(s.values, 1 / 1024, ".2f")
        ratios = _ratios(tg, s)
        is_tg = s.way.name.startswith("taskgroup")
        ratio = "-" if is_tg else format(statistics.median(ratios), ".2f")
        rows.append([s.way.name, s.way.label, kib, kib_iqr, ratio])
    headers = ["case", "tasks", "KiB/task (Python heap)", "IQR", "cold TaskGroup/this"]
    return render(headers, rows, markdown)


def report_goals(record: list[Goal]) -> str:
    """One line per goal (median ratio, IQR, target, verdict), then the count met."""
    width = max(len(g.what) for g in record)
    lines = []
    for g in record:
        p25, med, p75 = quartiles(g.ratios)
        lines.append(
            f"{g.what.ljust(width)}  {med:5.2f} ({p25:.2f}-{p75:.2f})  goal <= {g.target:<4g}"
            f"  {verdict(g.ratios, g.target)}"
        )
    met = sum(statistics.median(g.ratios) <= g.target for g in record)
    lines.append(f"goals met: {met}/{len(record)}")
    return "\n".join(lines)


def print_header(tk: ModuleType, args: argparse.Namespace) -> None:
    print_platform(gil=True, stack_size=True)
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
        help="rounds for every part (default 15 / 5 / 5 / 3 for parts 1 / 1d / 2 / 3; "
        "3 / 1 / 1 / 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run: fewer rounds, 300 tasks in part 1, --map-scale 0.1, "
        "200 tasks in parts 2 and 3",
    )
    parser.add_argument(
        "--tasks", type=int, default=None, help="tasks per sample in part 1 (default 5000)"
    )
    parser.add_argument(
        "--map-scale",
        type=float,
        default=None,
        help="part 1d's sleeps are 1 s and 10 ms times this (default 1, 0.1 with --quick)",
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
        per_part = (3, 1, 1, 1) if args.quick else (15, 5, 5, 3)
        args.rounds_cost, args.rounds_map, args.rounds_scale, args.rounds_mem = per_part
    else:
        args.rounds_cost = args.rounds_map = args.rounds_scale = args.rounds_mem = args.rounds
    if args.tasks is None:
        args.tasks = 300 if args.quick else 5000
    if args.map_scale is None:
        args.map_scale = 0.1 if args.quick else 1.0
    if args.scale_tasks is None:
        args.scale_tasks = 200 if args.quick else 1000
    if min(args.rounds_cost, args.tasks) < 1 or args.timeout <= 0 or args.map_scale <= 0:
        parser.error("--rounds, --tasks, --map-scale and --timeout must be positive")
    if args.scale_tasks < 2:
        parser.error("--scale-tasks must be at least 2 (chain_floor.py needs two threads)")
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
            Way("taskgroup", "TaskGroup(): tg.spawn(f).result()", cost_taskgroup),
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
            Way(
                "taskgroup",
                "TaskGroup(limit=None): spawn all, block end waits",
                burst_taskgroup,
            ),
            Way("tpe", "ThreadPoolExecutor(4): submit all, result each", burst_tpe),
            Way("thread", "Threads: start all, join each", burst_thread),
        ],
        tk,
        args.tasks,
        args.rounds_cost,
        warmup=True,
    )
    limited = run_part(
        "per-task cost, burst into limit=4",
        [
            Way(
                "taskgroup",
                "TaskGroup(limit=4): spawn all, block end waits",
                burst_taskgroup_limited,
            ),
            Way("tpe", "ThreadPoolExecutor(4): submit all, result each", burst_tpe),
        ],
        tk,
        args.tasks,
        args.rounds_cost,
        warmup=True,
    )
    slow, fast = _MAP_SLOW_S * args.map_scale, _MAP_FAST_S * args.map_scale
    map_tg, map_tpe = map_ways(slow, fast)
    # A map that stalls behind the slow items takes about the sum of their sleeps.
    map_guard = max(_sample_timeout, 2 * map_sleep_total(_MAP_ITEMS, slow, fast))
    mapped = run_part(
        "map, one slow item in ten",
        [
            Way(
                "taskgroup",
                f"TaskGroup(limit={_MAP_LIMIT}): list(tg.map(fn, items))",
                map_tg,
                map_guard,
            ),
            Way(
                "tpe",
                f"ThreadPoolExecutor({_MAP_LIMIT}).map(fn, items), list",
                map_tpe,
                map_guard,
            ),
        ],
        tk,
        _MAP_ITEMS,
        args.rounds_map,
        warmup=False,
    )
    n = args.scale_tasks
    scale = run_part(
        "blocked tasks",
        [
            Way("taskgroup", f"TaskGroup(limit=None), spawn {n}, warm cache", scale_taskgroup_warm),
            Way(
                "taskgroup-cold",
                f"TaskGroup(limit=None), spawn {n}, cold cache",
                scale_taskgroup_cold,
            ),
            Way("thread", f"{n} Threads, start all, join all", scale_thread),
            Way("tpe", f"ThreadPoolExecutor({n}), submit all, wait", scale_tpe),
            Way("floor", f"chain_floor.py --pool --threads {n}", scale_floor),
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

    record: list[Goal] = []
    print(
        f"{heading}Part 1: per-task cost of `lambda: None`, one at a time, {args.tasks} "
        f"tasks per sample, {args.rounds_cost} rounds"
    )
    print()
    print(report_one_at_a_time(cost, args.markdown, record))
    print()
    print(f"{heading}Part 1b: the same, as a burst: {args.tasks} tasks started, then awaited")
    print()
    print(report_compare(burst, _GOALS_BURST, args.markdown, record, "burst"))
    print()
    print(
        f"{heading}Part 1c: a burst into a limited group: {args.tasks} tasks started, then awaited"
    )
    print()
    print(report_compare(limited, _GOALS_LIMITED, args.markdown, record, "limit=4 burst"))
    print()
    print(
        f"{heading}Part 1d: map over {_MAP_ITEMS} items, every tenth sleeping {slow:g} s, "
        f"the others {fast * 1e3:g} ms; {_MAP_LIMIT} slots, {args.rounds_map} round(s)"
    )
    print()
    print(report_map(mapped, args.markdown, record, slow, fast))
    print()
    print(
        f"{heading}Part 2: {n} tasks each blocking {_BLOCK_S * 1e3:g} ms, "
        f"{args.rounds_scale} round(s)"
    )
    print()
    print(report_scale(scale, args.markdown, record, n))
    print()
    print(
        f"{heading}Part 3: peak traced memory per blocked task (tracemalloc: Python heap "
        f"only, no thread stacks or C thread state), {args.rounds_mem} round(s)"
    )
    print()
    print(report_memory(memory, args.markdown))
    print()
    print(f"{heading}Goals: TaskGroup / the other way, median of per-round ratios (IQR)")
    print()
    goals = report_goals(record)
    print(f"```\n{goals}\n```" if args.markdown else goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
