#!/usr/bin/env python3
"""CPU-bound pure-Python work on threads: do threadkit's threads run it in parallel?

Usage::

    python benchmarks/bench_freethreaded.py                # full run (about 15 s)
    python benchmarks/bench_freethreaded.py --quick        # smoke run (a second or two)
    python benchmarks/bench_freethreaded.py --markdown     # results as a markdown table
    PYTHONPATH=src /opt/py314t/bin/python3 benchmarks/bench_freethreaded.py

On a free-threaded build (3.13t and later, ``Py_GIL_DISABLED``) threads run Python
code in parallel, so work split over two threads on two CPUs should take about half
the time it takes on one. This script checks that threadkit's ways of splitting work
get there, next to the stdlib's. On a build with the GIL the same run shows speedups
of about 1x (or below): only one thread runs Python code at a time. It says so in its
header.

What is timed
-------------
*The work.*  ``--items`` items (default 40), each a loop of integer arithmetic on
local variables that takes about ``--item-ms`` (default 5 ms) on one thread; the
loop count is calibrated at start-up. Each item returns a number; every sample
checks the sum of them against the one-thread result, so a way that loses or
repeats an item fails instead of looking fast.

*The ways*, with ``W`` = ``--workers`` (default: the CPUs this process may use,
at least 2):

- ``serial``: every item in turn on the main thread (the baseline);
- ``tg_map``: ``sum(tg.map(fn, items))`` in a ``threadkit.TaskGroup(limit=W)``
  block (at most ``W`` tasks in flight, one task per item);
- ``tg_map_deep``: the same with ``limit=2*W``: twice as many tasks in flight as
  CPUs (a diagnostic: how much of ``tg_map``'s shortfall a deeper window hides);
- ``tg_spawn``: a ``threadkit.TaskGroup()`` block spawning ``W`` tasks, each running
  a share of the items (every ``W``-th one), then summing their results;
- ``tk_threads``: ``W`` ``threadkit.Thread`` objects, one share each, started, then
  joined;
- ``std_threads``: the same with ``threading.Thread``;
- ``tpe_map``: ``sum(pool.map(fn, items))`` in a ``ThreadPoolExecutor(W)`` block.

Each sample times the whole of it, with ``time.perf_counter``: entering and leaving
the group or pool block, and starting and joining the threads, are inside the timed
region, as they are in a program (thread start-up is about 0.1 ms, against a sample
of 100 ms and more). ``time.process_time`` (the CPU time of every thread of the
process) is read around the same region: *CPU/wall* near ``W`` means ``W`` threads
were running all along; near 1, one at a time. *Threads* is how many distinct
threads ran items in a sample. *Others* is how many CPUs the rest of the machine
kept busy meanwhile (Linux: ``/proc/stat``'s busy time less this process's, in
clock ticks of 10 ms, so a rough figure for one sample): on a shared machine, a
way cannot reach ``W``x while another process holds a CPU. The end of the report
gives the same figure per round (all its samples together, a fairer figure) and
counts the rounds so disturbed.

Rounds and ratios
-----------------
After an untimed warm-up of every way, ``--rounds`` rounds (default 11) each take
one sample of every way, in an order that rotates from round to round, so that
drift and bursts of load on the machine (it is printed, before and after) spread
over all of them. Reported per way: the median wall time with its min-max over
rounds; the *speedup*, the per-round ratio serial / this way (both samples from the
same round), median and min-max; the median CPU/wall; and the per-round ratio of
this way's time to ``std_threads``'s, which separates what threadkit adds from what
the interpreter allows. On a free-threaded build with the GIL off, the goal for a
way is a median speedup of at least 0.9 x ``W`` (1.8x with two workers), flagged
"(marginal)" when the interquartile range of the speedups straddles it. The garbage
collector is run before, and disabled during, every sample; a sample that takes
longer than ``--timeout`` seconds makes ``faulthandler`` dump all stacks and exit.

On a shared machine a sample can lose a CPU to another process for a few
milliseconds; samples of 100 ms and more (the default) absorb that, the 4 ms samples
of ``--quick`` do not: its speedups only show that every way runs and is correct.

The GIL
-------
``sys._is_gil_enabled()`` is read before threadkit is imported, after the import,
and after the run: importing an extension module that does not declare itself
free-threading safe turns the GIL back on, for the whole process, without an
error. threadkit is pure Python and must leave it off; the exit status is 1 if the
GIL went from off to on during the run (and if any way failed).
"""

from __future__ import annotations

import _thread
import argparse
import faulthandler
import gc
import os
import statistics
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType

from _report import (
    add_timeout_arg,
    fmt_time,
    load_threadkit,
    print_platform,
    progress,
    quartiles,
    render,
    threadkit_line,
)

perf_counter = time.perf_counter
process_time = time.process_time

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0

#: CPUs that other processes may keep busy before a round is called disturbed.
_BUSY = 0.25

#: Idents of the threads that ran an item, appended by ``_item`` (reset per sample).
_ran_on: list[int] = []


# --------------------------------------------------------------------------------------
# The work
# --------------------------------------------------------------------------------------


def _spin(n: int) -> int:
    """``n`` rounds of integer arithmetic on locals: pure Python, touching no shared object."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFFF
    return x


def _item(n: int) -> int:
    """One item: ``_spin(n)``, noting which thread ran it."""
    _ran_on.append(_thread.get_ident())
    return _spin(n)


def _share(items: Sequence[int]) -> int:
    """The sum of ``_item`` over ``items``: one thread's share."""
    total = 0
    for n in items:
        total += _item(n)
    return total


def calibrate(item_s: float) -> int:
    """The loop count that makes one ``_spin`` last about ``item_s`` on this thread."""
    n = 1000
    while True:
        best = min(_timed_spin(n) for _ in range(3))
        if best >= item_s / 4 or n >= 10**9:
            return max(1, round(n * item_s / best))
        n *= 4


def _timed_spin(n: int) -> float:
    t0 = perf_counter()
    _spin(n)
    return perf_counter() - t0


# --------------------------------------------------------------------------------------
# The ways: each runs every item and returns the sum of the items' results
# --------------------------------------------------------------------------------------


def way_serial(tk: ModuleType, items: list[int], workers: int) -> int:
    return _share(items)


def way_tg_map(tk: ModuleType, items: list[int], workers: int) -> int:
    with tk.TaskGroup(limit=workers) as tg:
        total: int = sum(tg.map(_item, items))
    return total


def way_tg_map_deep(tk: ModuleType, items: list[int], workers: int) -> int:
    return way_tg_map(tk, items, 2 * workers)


def way_tg_spawn(tk: ModuleType, items: list[int], workers: int) -> int:
    with tk.TaskGroup() as tg:
        tasks = [tg.spawn(_share, items[i::workers]) for i in range(workers)]
    total: int = sum(task.result() for task in tasks)
    return total


def _threads(thread_cls: type[threading.Thread], items: list[int], workers: int) -> int:
    totals = [0] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            totals[i] = _share(items[i::workers])
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [thread_cls(target=run, args=(i,), daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(_sample_timeout)
        if thread.is_alive():
            raise TimeoutError(f"{thread.name} did not finish")
    if errors:
        raise errors[0]
    return sum(totals)


def way_tk_threads(tk: ModuleType, items: list[int], workers: int) -> int:
    return _threads(tk.Thread, items, workers)


def way_std_threads(tk: ModuleType, items: list[int], workers: int) -> int:
    return _threads(threading.Thread, items, workers)


def way_tpe_map(tk: ModuleType, items: list[int], workers: int) -> int:
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(_item, items))
    return total


@dataclass(frozen=True)
class Way:
    name: str
    label: str
    func: Callable[[ModuleType, list[int], int], int]


def build_ways(workers: int) -> list[Way]:
    w = workers
    return [
        Way("serial", "one thread, item after item", way_serial),
        Way("tg_map", f"threadkit TaskGroup(limit={w}).map, a task per item", way_tg_map),
        Way("tg_map_deep", f"threadkit TaskGroup(limit={2 * w}).map", way_tg_map_deep),
        Way("tg_spawn", f"threadkit TaskGroup, {w} tasks of one share each", way_tg_spawn),
        Way("tk_threads", f"{w} threadkit.Thread, one share each", way_tk_threads),
        Way("std_threads", f"{w} threading.Thread, one share each", way_std_threads),
        Way("tpe_map", f"ThreadPoolExecutor({w}).map, stdlib", way_tpe_map),
    ]


# --------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------


@dataclass
class Series:
    way: Way
    wall: list[float] = field(default_factory=list)
    #: CPU seconds of this process, per sample.
    cpu: list[float] = field(default_factory=list)
    #: CPU seconds the rest of the machine used meanwhile, per sample (None: unknown).
    others: list[float | None] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    error: str | None = None


def _machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        # user nice system idle iowait irq softirq steal: all but idle and iowait.
        busy = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def run_sample(
    way: Way, tk: ModuleType, items: list[int], workers: int, expected: int | None
) -> tuple[float, float, float | None, int]:
    """One timed sample: (wall s, CPU s, other processes' CPU s, distinct threads)."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    _ran_on.clear()
    faulthandler.dump_traceback_later(_sample_timeout, exit=True)
    try:
        b0 = _machine_busy()
        c0 = process_time()
        t0 = perf_counter()
        total = way.func(tk, items, workers)
        t1 = perf_counter()
        c1 = process_time()
        b1 = _machine_busy()
    finally:
        faulthandler.cancel_dump_traceback_later()
        if gc_was_enabled:
            gc.enable()
    if len(_ran_on) != len(items):
        raise AssertionError(f"{len(_ran_on)} items ran, of {len(items)}")
    if expected is not None and total != expected:
        raise AssertionError(f"wrong result: {total}, expected {expected}")
    others = None if b0 is None or b1 is None else max(0.0, (b1 - b0) - (c1 - c0))
    return t1 - t0, c1 - c0, others, len(set(_ran_on))


def run(
    ways: Sequence[Way], tk: ModuleType, items: list[int], workers: int, rounds: int
) -> list[Series]:
    """Warm-up, then interleaved rounds: every way once per round, in a rotating order."""
    series = [Series(way) for way in ways]
    expected = sum(_spin(n) for n in items)
    progress("warm-up")
    for s in series:
        _attempt(s, tk, items[: max(workers, len(items) // 8)], workers, None, keep=False)
    for rnd in range(rounds):
        progress(f"round {rnd + 1}/{rounds}")
        k = rnd % len(series)
        for s in series[k:] + series[:k]:
            _attempt(s, tk, items, workers, expected, keep=True)
    return series


def _attempt(
    s: Series, tk: ModuleType, items: list[int], workers: int, expected: int | None, keep: bool
) -> None:
    if s.error is not None:
        return
    try:
        wall, cpu, others, threads = run_sample(s.way, tk, items, workers, expected)
    except Exception as exc:
        s.error = f"{type(exc).__name__}: {exc}"
        print(f"\n!! way {s.way.name!r} failed:", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
        return
    if keep:
        s.wall.append(wall)
        s.cpu.append(cpu)
        s.others.append(others)
        s.threads.append(threads)


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def _span(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(min(values))}-{fmt(max(values))}"


def _x(value: float) -> str:
    return f"{value:.2f}"


def report(series: list[Series], goal: float | None, markdown: bool) -> str:
    serial = series[0]
    std = next(s for s in series if s.way.name == "std_threads")
    rows = []
    for s in series:
        if s.error is not None or not s.wall:
            rows.append([s.way.name, s.way.label, *["-"] * 8, f"ERROR: {s.error}"])
            continue
        wall = [fmt_time(statistics.median(s.wall)), _span(s.wall, fmt_time)]
        util = _x(statistics.median(c / w for c, w in zip(s.cpu, s.wall, strict=True)))
        threads = f"{statistics.median(s.threads):g}"
        others = _others(s)
        if serial.error is not None or len(serial.wall) != len(s.wall):
            speed = ["-", "-"]
            verdict = "-"
        else:
            speedups = [a / b for a, b in zip(serial.wall, s.wall, strict=True)]
            speed = [_x(statistics.median(speedups)), _span(speedups, _x)]
            verdict = "-" if goal is None or s is serial else _verdict(speedups, goal)
        if s is std or std.error is not None or len(std.wall) != len(s.wall):
            vs_std = "-"
        else:
            vs_std = _x(statistics.median(a / b for a, b in zip(s.wall, std.wall, strict=True)))
        row = [s.way.name, s.way.label, *wall, *speed, util, threads, others, vs_std]
        rows.append([*row, verdict])
    met = f"speedup >= {goal:.2g}" if goal is not None else "met"
    headers = [
        "case",
        "way",
        "wall",
        "min-max",
        "speedup",
        "min-max",
        "CPU/wall",
        "threads",
        "others",
        "/std_threads",
        met,
    ]
    return render(headers, rows, markdown)


def _others(s: Series) -> str:
    """Median CPUs the rest of the machine kept busy during ``s``'s samples, or "?"."""
    known = [o / w for o, w in zip(s.others, s.wall, strict=True) if o is not None]
    return _x(statistics.median(known)) if known else "?"


def others_per_round(series: Sequence[Series]) -> list[float]:
    """CPUs the rest of the machine kept busy in each round (all its samples together).

    Empty if unknown. A round lasts long enough for the clock ticks of ``/proc/stat``
    to give a fair figure, where one sample may be only a few ticks long.
    """
    ok = [s for s in series if s.error is None and s.wall]
    rounds = min((len(s.wall) for s in ok), default=0)
    out = []
    for r in range(rounds):
        others = [s.others[r] for s in ok]
        if any(o is None for o in others):
            return []
        out.append(sum(o for o in others if o is not None) / sum(s.wall[r] for s in ok))
    return out


def _verdict(speedups: Sequence[float], goal: float) -> str:
    p25, med, p75 = quartiles(speedups)
    out = "yes" if med >= goal else "no"
    if p25 < goal <= p75:
        out += " (marginal)"
    return out


def _gil_enabled() -> bool | None:
    """``sys._is_gil_enabled()``, or None before 3.13 (every build had the GIL)."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    return None if is_gil_enabled is None else bool(is_gil_enabled())


def _gil_word(state: bool | None) -> str:
    return "n/a" if state is None else ("ENABLED" if state else "disabled")


def _loadavg() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def free_threaded_build() -> bool:
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def print_header(
    tk: ModuleType, args: argparse.Namespace, loop: int, gil_at_start: bool | None
) -> None:
    print_platform(gil=False)
    print(threadkit_line(tk))
    if free_threaded_build():
        forced = os.environ.get("PYTHON_GIL")
        note = f" (PYTHON_GIL={forced} in the environment)" if forced is not None else ""
        print(f"free-threaded build (Py_GIL_DISABLED){note}")
        if gil_at_start:
            print("!! the GIL was enabled before threadkit was imported: expect ~1x speedups")
    else:
        print(
            "GIL build: only one thread runs Python code at a time, so every way with "
            "threads is expected at ~1x (or below); no goal"
        )
    print(
        f"{args.items} items of ~{args.item_ms:g} ms ({loop} loop rounds each), "
        f"{args.workers} workers, {args.rounds} rounds, interleaved (order rotates)"
    )
    if args.workers > usable_cpus():
        print(f"note: {args.workers} workers on {usable_cpus()} usable CPUs")
    print(f"load average (1/5/15 min) at start: {_loadavg()}")
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="CPU-bound pure-Python work on one thread, on threadkit's threads "
        "and on the stdlib's: speedups (for free-threaded builds).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fast smoke run: 3 rounds of 8 items of ~1 ms"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default 11, 3 with --quick)"
    )
    parser.add_argument(
        "--items",
        type=int,
        default=None,
        help="items per sample, rounded up to a multiple of --workers (default 40, 8 with --quick)",
    )
    parser.add_argument(
        "--item-ms",
        type=float,
        default=None,
        help="milliseconds one item takes on one thread (default 5, 1 with --quick)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="threads, tasks in flight and pool size (default: usable CPUs, at least 2)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    add_timeout_arg(parser)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 11
    if args.items is None:
        args.items = 8 if args.quick else 40
    if args.item_ms is None:
        args.item_ms = 1.0 if args.quick else 5.0
    if args.workers is None:
        args.workers = max(2, usable_cpus())
    if min(args.rounds, args.items, args.workers) < 1 or args.item_ms <= 0 or args.timeout <= 0:
        parser.error("--rounds, --items, --item-ms, --workers and --timeout must be positive")
    args.items = -(-args.items // args.workers) * args.workers
    return args


def main(argv: Sequence[str] | None = None) -> int:
    global _sample_timeout
    args = parse_args(argv)
    _sample_timeout = args.timeout
    preloaded = "threadkit" in sys.modules
    gil_at_start = _gil_enabled()
    tk = load_threadkit()
    gil_after_import = _gil_enabled()
    loop = calibrate(args.item_ms / 1e3)
    print_header(tk, args, loop, gil_at_start)

    items = [loop + i for i in range(args.items)]
    series = run(build_ways(args.workers), tk, items, args.workers, args.rounds)
    gil_after_run = _gil_enabled()

    parallel = free_threaded_build() and gil_at_start is False
    goal = 0.9 * min(args.workers, usable_cpus()) if parallel else None
    heading = "### " if args.markdown else ""
    print(
        f"{heading}{args.items} items of ~{args.item_ms:g} ms, {args.workers} workers, "
        f"{args.rounds} rounds: wall time (median, min-max), speedup = serial / this "
        "(per round: median, min-max)"
    )
    print()
    print(report(series, goal, args.markdown))
    print()
    print(f"load average (1/5/15 min) at end: {_loadavg()}")
    others = others_per_round(series)
    if others:
        busy = sum(o >= _BUSY for o in others)
        print(
            f"other processes kept {statistics.fmean(others):.2f} CPUs busy on average "
            f"(max {max(others):.2f} in a round); {busy} of {len(others)} rounds at "
            f">= {_BUSY:g}" + (": their speedups are understated" if busy else "")
        )
    print(f"threadkit worker threads alive at end: {len(tk._workers.workers())}")
    print(
        "sys._is_gil_enabled(): "
        + ("(threadkit was imported before main) " if preloaded else "")
        + f"before importing threadkit {_gil_word(gil_at_start)}, "
        f"after importing it {_gil_word(gil_after_import)}, "
        f"after the run {_gil_word(gil_after_run)}"
    )
    status = 0
    if gil_at_start is False and (gil_after_import or gil_after_run):
        print("!! the GIL was turned on during the run")
        status = 1
    failed = [s for s in series if s.error is not None]
    for s in failed:
        print(f"ERROR {s.way.name}: {s.error}")
    return 1 if failed else status


if __name__ == "__main__":
    sys.exit(main())
