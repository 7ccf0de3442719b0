#!/usr/bin/env python3
"""``threadkit.queue`` versus the stdlib's ``queue``: items through a queue between threads.

Usage::

    python benchmarks/bench_queue.py                   # full run, 11 rounds (a few seconds)
    python benchmarks/bench_queue.py --quick           # smoke run (under a second)
    python benchmarks/bench_queue.py --only 'queue_*'  # select cases (glob)
    python benchmarks/bench_queue.py --markdown        # results as a markdown table
    python benchmarks/bench_queue.py --self-test       # queue vs queue
    taskset -c 0 python benchmarks/bench_queue.py      # pinned to one CPU

What is timed
-------------
``--items`` items (default 20000, the integers ``0..items-1``) go through one queue
from ``P`` producer threads to ``C`` consumer threads: each producer ``put``\\ s its
share, each consumer ``get``\\ s its share (``items / C``; ``--items`` is rounded up
to a multiple of 4), so no sentinel is needed and every ``get`` is a blocking one.
A sample is timed from the moment the producers and consumers, all already started
and waiting at a gate, are let go, until the last consumer has taken its last item;
the result is seconds per item. Every sample checks that the sum of the items taken
is the sum of the items put, so a queue that loses or repeats an
item fails instead of looking fast.

The cases: ``Queue()`` (unbounded) and ``Queue(maxsize=100)`` (bounded: producers
wait for room, the ``not_full`` side of the queue is exercised), each with one
producer and one consumer (1P1C) and with four of each (4P4C); and ``SimpleQueue``
1P1C, the stdlib's C ``_queue.SimpleQueue`` against threadkit's pure-Python one, for
information (no target), with ten times the items (its calls are much cheaper).
Target for the ``Queue`` cases: threadkit in at most 0.7x the stdlib's time.

With the GIL, an unbounded queue seldom makes anyone wait (a producer runs ahead
for a switch interval, then the consumers find items waiting), so ``queue_*``
mostly measure the fast paths of ``put`` and ``get``; with ``maxsize=100`` a
producer waits for room about once per 50 items, which adds ``Condition.wait``
and the hand-off between threads. Without the GIL (free-threaded builds) the
threads also contend for the queue's mutex.

Methodology
-----------
As ``bench_primitives.py``: both implementations are measured in one process run.
A *side* is a thread module and a queue module: ``threading.Thread`` with
``queue``, or ``threadkit.Thread`` with ``threadkit.queue``. Each round runs every
case once on each side; which side goes first alternates from round to round, so
slow drift hits both alike. The headline number is the median over rounds of the
per-round ratio ``threadkit / stdlib`` (the two samples of one round), with its
interquartile range (p25-p75) and its min-max; a target is "met" when the median
ratio is at or below it, flagged "(marginal)" when the IQR straddles it. The
per-item medians of each side are printed as well.

Before the rounds, every case runs once on each side with a tenth of its items
(warm-up, untimed). The harness's own gate (a ``Barrier``) and the "go" ``Event``
come from the stdlib on both sides, so the queue and the thread class are the only
things that differ. The garbage collector is run before, and disabled during, every
sample; a sample that takes longer than ``--timeout`` seconds makes ``faulthandler``
dump all stacks and exit. An exception in a case marks that case as failed, prints
the traceback and lets the other cases run; the exit status is 1 if any failed.

Hand-offs between threads across CPUs are dominated by the OS scheduler's wake-up
latency and, with the GIL, by its hand-off; pinned to one CPU (``taskset -c 0``) the
run measures the library's own paths. Unpinned, with the GIL, the stdlib's unbounded
1P1C is bimodal: about 1 us or about 2 us an item, the slow mode more often with a
shorter ``sys.getswitchinterval()`` (and not at all with 50 ms), which shows as a
wide min-max. ``--self-test`` measures ``queue`` against itself: every ratio should
come out close to 1.0, which checks the harness.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from _report import (
    add_case_args,
    add_rounds_arg,
    add_timeout_arg,
    case_failed,
    compare_row,
    load_threadkit,
    pin_note,
    print_platform,
    progress,
    quiesced_sample,
    render,
    select_cases,
    threadkit_line,
)

perf_counter = time.perf_counter

#: Harness synchronisation always uses the stdlib, whichever side is measured.
_harness = threading

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0


@dataclass(frozen=True)
class Side:
    """What one side of the comparison measures: its thread class and its queues."""

    label: str
    threads: ModuleType  # has Thread
    queues: ModuleType  # has Queue, SimpleQueue


# --------------------------------------------------------------------------------------
# Cases: each takes a side and an item count, returns seconds per item
# --------------------------------------------------------------------------------------


def _shares(total: int, parts: int) -> list[range]:
    """``range(total)`` cut into ``parts`` contiguous ranges of equal length."""
    size = total // parts
    return [range(i * size, (i + 1) * size) for i in range(parts)]


def _through(q: Any, side: Side, n: int, producers: int, consumers: int) -> float:
    """``n`` items from ``producers`` threads to ``consumers`` threads through ``q``.

    Returns seconds per item, from the gate opening to the last item taken.
    """
    put = q.put
    get = q.get
    go = _harness.Event()
    ends: list[float] = []
    sums: list[int] = []
    errors: list[BaseException] = []
    ready = _harness.Barrier(producers + consumers + 1, timeout=_sample_timeout)

    def produce(items: range) -> None:
        go.wait()
        for item in items:
            put(item)

    def consume(count: int) -> None:
        go.wait()
        total = 0
        for _ in range(count):
            total += get()
        ends.append(perf_counter())
        sums.append(total)

    def gated(target: Callable[[Any], None], arg: Any) -> Callable[[], None]:
        def run() -> None:
            try:
                ready.wait()
                target(arg)
            except BaseException as exc:
                errors.append(exc)
                ready.abort()
                go.set()

        return run

    per_consumer = n // consumers
    targets = [gated(produce, share) for share in _shares(n, producers)]
    targets += [gated(consume, per_consumer) for _ in range(consumers)]
    threads = []
    try:
        for i, target in enumerate(targets):
            thread = side.threads.Thread(target=target, name=f"bench-{i}", daemon=True)
            thread.start()
            threads.append(thread)
    except BaseException:
        ready.abort()
        raise
    ready.wait()
    t0 = perf_counter()
    go.set()
    deadline = t0 + _sample_timeout
    for thread in threads:
        thread.join(max(0.0, deadline - perf_counter()))
        if thread.is_alive():
            raise TimeoutError(f"worker thread {thread.name} did not finish")
    if errors:
        raise errors[0]
    expected = n * (n - 1) // 2
    if len(ends) != consumers or sum(sums) != expected:
        raise AssertionError(f"items lost or repeated: sum {sum(sums)}, expected {expected}")
    return (max(ends) - t0) / n


def bench_queue_1p1c(side: Side, n: int) -> float:
    return _through(side.queues.Queue(), side, n, 1, 1)


def bench_bounded_1p1c(side: Side, n: int) -> float:
    return _through(side.queues.Queue(maxsize=100), side, n, 1, 1)


def bench_queue_4p4c(side: Side, n: int) -> float:
    return _through(side.queues.Queue(), side, n, 4, 4)


def bench_bounded_4p4c(side: Side, n: int) -> float:
    return _through(side.queues.Queue(maxsize=100), side, n, 4, 4)


def bench_simple_1p1c(side: Side, n: int) -> float:
    return _through(side.queues.SimpleQueue(), side, n, 1, 1)


# --------------------------------------------------------------------------------------
# Case table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    func: Callable[[Side, int], float]
    target: float | None  # None: for information
    scale: int = 1  # items per sample: --items times this


def build_cases() -> list[Case]:
    """The benchmark cases, in report order, with their target ratios."""
    return [
        Case("queue_1p1c", "Queue() 1P1C put+get /item", bench_queue_1p1c, 0.7),
        Case("bounded_1p1c", "Queue(100) 1P1C put+get /item", bench_bounded_1p1c, 0.7),
        Case("queue_4p4c", "Queue() 4P4C put+get /item", bench_queue_4p4c, 0.7),
        Case("bounded_4p4c", "Queue(100) 4P4C put+get /item", bench_bounded_4p4c, 0.7),
        Case("simple_1p1c", "SimpleQueue 1P1C put+get /item", bench_simple_1p1c, None, scale=10),
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
    error: str | None = None


def run_sample(case: Case, side: Side, n: int) -> float:
    """One timed sample with the GC quiesced and a deadlock guard armed."""
    return quiesced_sample(lambda: case.func(side, n), _sample_timeout, "time per item")


def run(cases: Sequence[Case], std: Side, tk: Side, rounds: int, n: int) -> list[Result]:
    results = [Result(case) for case in cases]
    sides = (std, tk)
    progress("warm-up")
    for res in results:
        for side in sides:
            try:
                run_sample(res.case, side, max(4, n * res.case.scale // 40 * 4))
            except Exception as exc:
                res.error = case_failed(res.case.name, side.label, exc, "warm-up")
                break

    for rnd in range(rounds):
        progress(f"round {rnd + 1}/{rounds}")
        order = sides if rnd % 2 == 0 else sides[::-1]
        for res in results:
            if res.error is not None:
                continue
            samples: dict[str, float] = {}
            for side in order:
                try:
                    samples[side.label] = run_sample(res.case, side, n * res.case.scale)
                except Exception as exc:
                    res.error = case_failed(res.case.name, side.label, exc)
                    break
            if res.error is not None:
                continue
            s, t = samples[std.label], samples[tk.label]
            res.std.append(s)
            res.tk.append(t)
            res.ratios.append(t / s)
    return results


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def summarize(res: Result) -> list[str]:
    """Table row cells for one result."""
    case = res.case
    failed = res.error is not None
    return compare_row(case.name, case.label, res.std, res.tk, res.ratios, case.target, failed)


def print_header(args: argparse.Namespace, tk: Side) -> None:
    print_platform()
    if args.self_test:
        print(
            "SELF-TEST: queue measured against itself; ratios should be ~1.0, "
            "the 'met' column is meaningless."
        )
    else:
        print(threadkit_line(tk.threads))
    print(
        f"{args.rounds} rounds, interleaved (order alternates each round), "
        f"{args.items} items per sample (SimpleQueue: {args.items * 10})"
    )
    print(pin_note("bench_queue.py"))
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark threadkit.queue against queue, interleaved in one process.",
    )
    add_rounds_arg(parser, 11)
    parser.add_argument(
        "--quick", action="store_true", help="fast smoke run: 3 rounds of 2000 items"
    )
    parser.add_argument(
        "--items",
        type=int,
        default=None,
        help="items per sample, rounded up to a multiple of 4 (default 20000, 2000 with --quick)",
    )
    add_case_args(parser, "queue")
    add_timeout_arg(parser)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 11
    if args.items is None:
        args.items = 2000 if args.quick else 20000
    if args.rounds < 1 or args.items < 1 or args.timeout <= 0:
        parser.error("--rounds, --items and --timeout must be positive")
    args.items = -(-args.items // 4) * 4
    return args


def load_sides(self_test: bool) -> tuple[Side, Side]:
    std = Side("stdlib", threading, queue)
    if self_test:
        return std, Side("stdlib(self)", threading, queue)
    tk = load_threadkit()
    import threadkit.queue as tk_queue

    return std, Side("threadkit", tk, tk_queue)


def main(argv: Sequence[str] | None = None) -> int:
    global _sample_timeout
    args = parse_args(argv)
    _sample_timeout = args.timeout
    cases = build_cases()
    if args.list:
        for case in cases:
            target = "none" if case.target is None else f"<= {case.target:g}"
            print(f"{case.name:14} {case.label}  (target ratio {target})")
        return 0
    cases = select_cases(cases, args.only)
    std, tk = load_sides(args.self_test)

    print_header(args, tk)
    results = run(cases, std, tk, args.rounds, args.items)

    headers = [
        "case",
        "operation",
        "stdlib/item",
        f"{tk.label}/item",
        "ratio",
        "IQR p25-p75",
        "min-max",
        "target",
        "met",
    ]
    print(render(headers, [summarize(r) for r in results], args.markdown))

    failed = [r for r in results if r.error is not None]
    measured = [r for r in results if r.error is None and r.ratios and r.case.target is not None]
    met = sum(statistics.median(r.ratios) <= (r.case.target or 0.0) for r in measured)
    print(f"\ntargets met: {met}/{len(measured)} measured cases ({len(failed)} failed)")
    if failed:
        print()
        for res in failed:
            print(f"ERROR {res.case.name}: {res.error}")
    counts = ", ".join(f"{c.name}={args.items * c.scale}" for c in cases)
    print(f"\nitems per sample: {counts}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
