#!/usr/bin/env python3
"""``threadkit.futures.ThreadPoolExecutor`` versus ``concurrent.futures``' one.

Usage::

    python benchmarks/bench_futures.py                   # full run, 11 rounds (~20 s)
    python benchmarks/bench_futures.py --quick           # smoke run (a few seconds)
    python benchmarks/bench_futures.py --only 'burst,map'  # select cases (glob)
    python benchmarks/bench_futures.py --markdown        # results as markdown tables
    python benchmarks/bench_futures.py --self-test       # concurrent.futures vs itself
    taskset -c 0 python benchmarks/bench_futures.py      # pinned to one CPU

What is timed
-------------
Every sample makes a fresh executor and times the whole ``with`` block: from before
the executor is made to after its ``shutdown(wait=True)`` has returned, on both
sides. The stdlib's executor starts its threads in that time (one per ``submit``
until ``max_workers`` exist, none before); threadkit's takes workers from its
process-wide cache, which is what it is for.

* ``burst``: ``ThreadPoolExecutor(4)``, ``--tasks`` (default 5000) ``submit(f)`` of
  a no-op ``f`` in a row, then ``result()`` of each; seconds per task. Target:
  threadkit in at most 0.5x the stdlib's time.
* ``map``: ``ThreadPoolExecutor(4).map(g, range(tasks))`` consumed to the end, ``g``
  returning its argument (the sum of the results is checked); seconds per item.
  Target: at most 0.5x.
* ``latency``: ``ThreadPoolExecutor(1)``, ``submit(f).result()`` one at a time,
  ``--tasks`` times; seconds per task. For information: every task costs two thread
  switches whatever the pool (``bench_taskgroup.py`` part 1 measures that floor).
* ``blocked``: ``ThreadPoolExecutor(n)`` with ``n = --blocked-tasks`` (default
  1000), ``n`` tasks each blocking 50 ms in ``time.sleep``, submitted all, then the
  side's own ``wait(futures)``; wall seconds. The threadkit / stdlib ratio is for
  information; the target is against the floor below.

The floor under ``blocked`` is ``chain_floor.py --pool``: the smallest possible
worker pool (one run queue under one ``_thread`` lock, idle threads on a stack of
their own locks, each job ``time.sleep(0.05)`` plus a counter under the lock), run
in a subprocess of this interpreter (which inherits the CPU affinity) with
``--threads n --rounds 5``, once per round of this benchmark, interleaved with the
two executor samples. Its code runs unchanged; the subprocess imports it and wraps
its per-round report to also take the round's wall time, from the first job's
start to the main thread's return from waiting for the last job (it misses only
the wake of the first job, some microseconds). Its own printout's first-to-last
*start* time leaves out the end of the round, when the jobs wake from their sleep
close together and wait for the CPU (and, with the GIL, for each other): 10-30 ms
on this machine, pinned, with 1000 jobs. Its first round (threads fresh from their
start) is dropped; the floor sample is the median of the other four. Target:
threadkit's ``blocked`` wall time within 1.15x of the floor, as the median of the
per-round ratios (50 ms plus the floor's start spread, what ``chain_floor.py``
prints, is shown next to it for information). ``chain_floor.py``'s threads exist
and are parked before its rounds; the executor's counterpart is a warm worker
cache: after the warm-up, ``n`` calls that wait for each other leave ``n`` idle
workers in it, and before each threadkit sample the cache is filled again
(untimed, and reported) if it holds fewer. Without that, a cold cache can stay
short: the cache starts a worker for a queued job only while none of the running
ones progresses, so once the first calls end (after 50 ms) their workers take the
queued ones, and a cache that has not started ``n`` workers by then runs the burst
in waves (on 3.14t, where a thread start takes a few hundred microseconds, fewer
than 200 workers at first, growing by some dozens a burst).

Methodology
-----------
As ``bench_queue.py``: both executors are measured in one process run. Each round
runs every case once on each side; which side goes first alternates from round to
round (for ``blocked``, the floor joins the rotation), so slow drift hits both
alike. The headline number is the median over rounds of the per-round ratio
``threadkit / stdlib`` (or ``threadkit / floor``), with its interquartile range
(p25-p75) and its min-max; a target is "met" when the median ratio is at or below
it, flagged "(marginal)" when the IQR straddles it.

Before the rounds, every case runs once on each side untimed (``burst``, ``map`` and
``latency`` with a tenth of the tasks, ``blocked`` at full size). The garbage
collector is run before, and disabled during, every sample; a sample that takes
longer than ``--timeout`` seconds makes ``faulthandler`` dump all stacks and exit.
An exception in a case marks that case as failed, prints the traceback and lets the
other cases run; the exit status is 1 if any failed.

Hand-offs between threads across CPUs are dominated by the OS scheduler's wake-up
latency and, with the GIL, by its hand-off; pinned to one CPU (``taskset -c 0``) the
run measures the library's own paths. ``--self-test`` measures
``concurrent.futures`` against itself: every ratio to the stdlib should come out
close to 1.0, which checks the harness.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import chain_floor
from _report import (
    FloorRound,
    add_case_args,
    add_rounds_arg,
    add_timeout_arg,
    case_failed,
    compare_row,
    floor_sample,
    fmt_time,
    load_threadkit,
    pin_note,
    print_platform,
    progress,
    quiesced_sample,
    ratio_cells,
    render,
    select_cases,
    threadkit_line,
)

perf_counter = time.perf_counter

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0

#: How long each task of ``blocked`` blocks: the floor's own figure.
_BLOCK_S: float = chain_floor._BLOCK_S

#: ``chain_floor.py --pool`` rounds per floor sample; the first is dropped.
_FLOOR_ROUNDS = 5

#: Target for ``blocked``: threadkit's wall time over the floor's.
_FLOOR_TARGET = 1.15


@dataclass(frozen=True)
class Side:
    """What one side of the comparison measures: a ``concurrent.futures``-like module."""

    label: str
    futures: ModuleType  # has ThreadPoolExecutor and wait


# --------------------------------------------------------------------------------------
# Cases: each takes a side and a task count, returns seconds (per task, or wall)
# --------------------------------------------------------------------------------------


def _noop() -> None:
    return None


def _ident(x: int) -> int:
    return x


def _block() -> None:
    time.sleep(_BLOCK_S)


def bench_burst(side: Side, n: int) -> float:
    f = _noop
    t0 = perf_counter()
    with side.futures.ThreadPoolExecutor(4) as pool:
        submit = pool.submit
        futures = [submit(f) for _ in range(n)]
        for future in futures:
            future.result()
    t1 = perf_counter()
    if not all(future.done() for future in futures):
        raise AssertionError("a future is not done after result()")
    return (t1 - t0) / n


def bench_map(side: Side, n: int) -> float:
    g = _ident
    t0 = perf_counter()
    with side.futures.ThreadPoolExecutor(4) as pool:
        total = 0
        for value in pool.map(g, range(n)):
            total += value
    t1 = perf_counter()
    expected = n * (n - 1) // 2
    if total != expected:
        raise AssertionError(f"items lost or repeated: sum {total}, expected {expected}")
    return (t1 - t0) / n


def bench_latency(side: Side, n: int) -> float:
    f = _noop
    t0 = perf_counter()
    with side.futures.ThreadPoolExecutor(1) as pool:
        submit = pool.submit
        for _ in range(n):
            submit(f).result()
    t1 = perf_counter()
    return (t1 - t0) / n


def bench_blocked(side: Side, n: int) -> float:
    t0 = perf_counter()
    with side.futures.ThreadPoolExecutor(n) as pool:
        submit = pool.submit
        futures = [submit(_block) for _ in range(n)]
        done, not_done = side.futures.wait(futures, timeout=_sample_timeout)
    t1 = perf_counter()
    if not_done or len(done) != n:
        raise TimeoutError(f"{len(not_done)} of {n} blocked tasks did not finish")
    for future in futures:
        future.result()  # re-raises a task's error
    return t1 - t0


# --------------------------------------------------------------------------------------
# Case table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    func: Callable[[Side, int], float]
    target: float | None  # threadkit / stdlib; None: for information
    blocked: bool = False  # n is --blocked-tasks; compared with the floor too


def build_cases(tasks: int, blocked: int) -> list[Case]:
    """The benchmark cases, in report order, with their target ratios."""
    return [
        Case(
            "burst",
            f"ThreadPoolExecutor(4): submit x{tasks}, result each /task",
            bench_burst,
            0.5,
        ),
        Case(
            "map",
            f"ThreadPoolExecutor(4).map over {tasks} items, consumed /item",
            bench_map,
            0.5,
        ),
        Case(
            "latency",
            "ThreadPoolExecutor(1): submit(f).result() one at a time /task",
            bench_latency,
            None,
        ),
        Case(
            "blocked",
            f"ThreadPoolExecutor({blocked}): {blocked} x sleep({_BLOCK_S:g}), wait, wall",
            bench_blocked,
            None,
            blocked=True,
        ),
    ]


# --------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    std: list[float] = field(default_factory=list)
    tk: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)  # wall seconds, paired with tk
    floor_rounds: list[FloorRound] = field(default_factory=list)
    floor_ratios: list[float] = field(default_factory=list)
    refills: int = 0  # tk samples of a floored case before which the cache was filled
    error: str | None = None


def run_sample(case: Case, side: Side, n: int) -> float:
    """One timed sample with the GC quiesced and a deadlock guard armed."""
    return quiesced_sample(lambda: case.func(side, n), _sample_timeout)


def _idle_workers(side: Side) -> int | None:
    """Idle workers in the side's worker cache; None if it has none (the stdlib)."""
    if side.futures is concurrent.futures:
        return None
    workers = sys.modules.get("threadkit._workers")
    count = getattr(workers, "idle_workers", None)
    return count() if count is not None else None


def fill_cache(side: Side, n: int) -> None:
    """Leave at least ``n`` idle workers in threadkit's cache (untimed).

    ``n`` calls that wait for each other need ``n`` workers at once, and the cache
    starts them (a job waits behind one that blocks only until a searcher sees that
    nothing progresses). A burst of calls that block for a while and then end does
    not need that: the cache reuses the workers whose calls ended first.
    """
    barrier = threading.Barrier(n, timeout=_sample_timeout)
    with side.futures.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(barrier.wait) for _ in range(n)]
    for future in futures:
        future.result()
    deadline = perf_counter() + 1.0  # the workers park a moment after their calls end
    while (_idle_workers(side) or 0) < n and perf_counter() < deadline:
        time.sleep(0.01)


def run(
    cases: Sequence[Case], std: Side, tk: Side, rounds: int, tasks: int, blocked: int
) -> list[Result]:
    results = [Result(case) for case in cases]
    sides = (std, tk)
    progress("warm-up")
    for res in results:
        n = blocked if res.case.blocked else max(1, tasks // 10)
        for side in sides:
            try:
                run_sample(res.case, side, n)
                if res.case.blocked and _idle_workers(side) is not None:
                    fill_cache(side, n)
            except Exception as exc:
                res.error = case_failed(res.case.name, side.label, exc, "warm-up")
                break

    floor = Side("floor", chain_floor)  # a marker in the rotation, never called
    for rnd in range(rounds):
        progress(f"round {rnd + 1}/{rounds}")
        for res in results:
            if res.error is not None:
                continue
            order: tuple[Side, ...] = sides
            if res.case.blocked:
                order = (std, tk, floor)
                k = rnd % len(order)
                order = order[k:] + order[:k]
            elif rnd % 2:
                order = sides[::-1]
            n = blocked if res.case.blocked else tasks
            samples: dict[str, float] = {}
            for side in order:
                try:
                    if side is floor:
                        wall, kept = floor_sample(n, _FLOOR_ROUNDS, _sample_timeout)
                        samples[floor.label] = wall
                        res.floor_rounds += kept
                        continue
                    if side is tk and res.case.blocked:
                        idle = _idle_workers(side)
                        if idle is not None and idle < n:
                            res.refills += 1
                            fill_cache(side, n)
                    samples[side.label] = run_sample(res.case, side, n)
                except Exception as exc:
                    res.error = case_failed(res.case.name, side.label, exc)
                    break
            if res.error is not None:
                continue
            s, t = samples[std.label], samples[tk.label]
            res.std.append(s)
            res.tk.append(t)
            res.ratios.append(t / s)
            if res.case.blocked:
                res.floor.append(samples[floor.label])
                res.floor_ratios.append(t / samples[floor.label])
    return results


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def summarize(res: Result) -> list[str]:
    """Row cells of the main table (threadkit / stdlib) for one result."""
    case = res.case
    failed = res.error is not None
    return compare_row(case.name, case.label, res.std, res.tk, res.ratios, case.target, failed)


def summarize_floor(res: Result) -> list[str]:
    """Row cells of the floor table (threadkit / chain_floor.py --pool)."""
    if res.error is not None or not res.floor_ratios:
        return [res.case.name, "-", "-", "-", "-", "-", "-", "-", "-", "ERROR"]
    starts_only = statistics.median(_BLOCK_S + r.first_to_last_s for r in res.floor_rounds)
    links = statistics.median(r.link_us for r in res.floor_rounds)
    releases = statistics.median(r.release_us for r in res.floor_rounds)
    return [
        res.case.name,
        fmt_time(statistics.median(res.floor)),
        fmt_time(starts_only),
        f"{links:.1f} / {releases:.1f}",
        fmt_time(statistics.median(res.tk)),
        *ratio_cells(res.floor_ratios, _FLOOR_TARGET),
    ]


def print_header(args: argparse.Namespace, tk: Side) -> None:
    print_platform(stack_size=True)
    if args.self_test:
        print(
            "SELF-TEST: concurrent.futures measured against itself; ratios should be ~1.0, "
            "the 'met' column is meaningless."
        )
    else:
        print(threadkit_line(sys.modules["threadkit"]))
    print(
        f"{args.rounds} rounds, interleaved (order alternates each round), "
        f"{args.tasks} tasks per sample ({args.blocked_tasks} for 'blocked'); a fresh "
        "executor per sample,\nmade and shut down (wait=True) inside the timed region "
        "on both sides"
    )
    print(pin_note("bench_futures.py"))
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark threadkit.futures.ThreadPoolExecutor against "
        "concurrent.futures', interleaved in one process.",
    )
    add_rounds_arg(parser, 11)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run: 3 rounds, 500 tasks, 200 blocked tasks",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=None,
        help="tasks per sample of burst, map, latency (default 5000, 500 with --quick)",
    )
    parser.add_argument(
        "--blocked-tasks",
        type=int,
        default=None,
        help="tasks and max_workers of 'blocked' (default 1000, 200 with --quick)",
    )
    add_case_args(parser, "concurrent.futures", tables=True)
    add_timeout_arg(parser)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 11
    if args.tasks is None:
        args.tasks = 500 if args.quick else 5000
    if args.blocked_tasks is None:
        args.blocked_tasks = 200 if args.quick else 1000
    if args.rounds < 1 or args.tasks < 1 or args.timeout <= 0:
        parser.error("--rounds, --tasks and --timeout must be positive")
    if args.blocked_tasks < 2:
        parser.error("--blocked-tasks must be at least 2 (chain_floor.py needs two threads)")
    return args


def load_sides(self_test: bool) -> tuple[Side, Side]:
    std = Side("stdlib", concurrent.futures)
    if self_test:
        return std, Side("stdlib(self)", concurrent.futures)
    load_threadkit()
    import threadkit.futures as tk_futures

    return std, Side("threadkit", tk_futures)


def main(argv: Sequence[str] | None = None) -> int:
    global _sample_timeout
    args = parse_args(argv)
    _sample_timeout = args.timeout
    cases = build_cases(args.tasks, args.blocked_tasks)
    if args.list:
        for case in cases:
            target = "none" if case.target is None else f"<= {case.target:g}"
            if case.blocked:
                target += f"; <= {_FLOOR_TARGET:g} of chain_floor.py --pool"
            print(f"{case.name:8} {case.label}  (target ratio {target})")
        return 0
    cases = select_cases(cases, args.only)
    std, tk = load_sides(args.self_test)

    print_header(args, tk)
    results = run(cases, std, tk, args.rounds, args.tasks, args.blocked_tasks)
    heading = "### " if args.markdown else ""

    print(f"{heading}{tk.label} / stdlib")
    print()
    headers = [
        "case",
        "operation",
        "stdlib",
        tk.label,
        "ratio",
        "IQR p25-p75",
        "min-max",
        "target",
        "met",
    ]
    print(render(headers, [summarize(r) for r in results], args.markdown))

    floored = [r for r in results if r.case.blocked]
    if floored:
        print()
        print(
            f"{heading}{tk.label} 'blocked' / the smallest pool (chain_floor.py --pool "
            f"--threads {args.blocked_tasks}, median of its rounds 2-{_FLOOR_ROUNDS}: "
            "first start to last job done)"
        )
        print()
        headers = [
            "case",
            "floor wall",
            "50 ms + spread",
            "link/release us",
            f"{tk.label} wall",
            "ratio",
            "IQR p25-p75",
            "min-max",
            "target",
            "met",
        ]
        print(render(headers, [summarize_floor(r) for r in floored], args.markdown, 1))
        for res in floored:
            if res.refills:
                print(
                    f"\nnote: before {res.refills} of {len(res.tk)} '{res.case.name}' samples "
                    f"of {tk.label} the cache held fewer than {args.blocked_tasks} idle "
                    "workers and was filled (untimed)"
                )

    failed = [r for r in results if r.error is not None]
    verdicts: list[bool] = []
    for res in results:
        if res.error is not None:
            continue
        if res.case.target is not None and res.ratios:
            verdicts.append(statistics.median(res.ratios) <= res.case.target)
        if res.case.blocked and res.floor_ratios:
            verdicts.append(statistics.median(res.floor_ratios) <= _FLOOR_TARGET)
    print(f"\ntargets met: {sum(verdicts)}/{len(verdicts)} measured ({len(failed)} failed)")
    if failed:
        print()
        for res in failed:
            print(f"ERROR {res.case.name}: {res.error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
