#!/usr/bin/env python3
"""The floor under "1000 tasks blocking 50 ms": a bare chain of ``_thread`` locks.

Usage::

    taskset -c 0 python benchmarks/chain_floor.py      # pinned, as in the README
    python benchmarks/chain_floor.py --threads 500 --rounds 3
    taskset -c 0 python benchmarks/chain_floor.py --pool --rounds 10
    taskset -c 0 python benchmarks/chain_floor.py --pool --yield --rounds 10

``--threads`` threads are started first and each parks on a ``_thread`` lock of its
own. A round then runs the chain that a task group's warm worker cache runs, with
no bookkeeping at all: thread *i*, once woken, wakes thread *i + 1* (a plain
``release()``) and then blocks for 50 ms in ``time.sleep``. Reported per round: the
median time between two threads starting (a *link*), the median time the
``release()`` that wakes the next thread takes, and the time from the first start
to the last.

A ``release()`` that takes a few microseconds only made the woken thread runnable;
one that takes 7 us or more was most likely pre-empted by it (the kernel ran the
woken thread at once, which found the GIL held and went back to sleep). Compare
with ``bench_taskgroup.py`` part 2: there each start costs about 17 us pinned.

``--pool`` runs the same rounds through the smallest possible worker pool instead:
one shared run queue under one ``_thread`` lock, at most one searcher, idle threads
on a last-in-first-out stack of their own locks, each job ``time.sleep(0.05)``
followed by a little bookkeeping (a counter under the lock), as a task group does.
Run it for ten rounds or so: on this machine (Linux 6.18, whose EEVDF scheduler
lets a woken thread pre-empt the running one when it is owed CPU time) the first
rounds look like the bare chain, then the ``release()`` climbs to 8-10 us and stays
there. Our reading: a thread carries its scheduler credit ("lag") through a sleep;
a worker that waited, runnable, for the CPU at the end of a round (many jobs end
close together there) and parked soon after is owed time, and pre-empts whoever
wakes it in the next round. The bare chain's threads park at once after their
sleep and so stay clear of it. ``--pool --yield`` supports the reading: each idle
thread calls ``os.sched_yield()`` (which gives up its claim to the CPU) just before
it parks, and the pool then keeps the bare chain's 2-3 us ``release()``.
"""

from __future__ import annotations

import _thread
import argparse
import itertools
import os
import statistics
import time
from collections import deque
from typing import Any

_BLOCK_S = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--pool", action="store_true", help="run the rounds through a minimal worker pool"
    )
    parser.add_argument(
        "--yield",
        dest="yield_first",
        action="store_true",
        help="with --pool: os.sched_yield() before each idle park",
    )
    args = parser.parse_args()
    n, rounds = args.threads, args.rounds
    if n < 2 or rounds < 1:
        parser.error("--threads must be at least 2 and --rounds at least 1")
    print(f"{n} threads, {rounds} rounds, each link blocks {_BLOCK_S * 1e3:g} ms")
    print(f"{'round':>5} {'link us':>9} {'release us':>11} {'first-to-last ms':>17}")
    if args.yield_first and not args.pool:
        parser.error("--yield needs --pool")
    if args.pool:
        _pool(n, rounds, args.yield_first)
    else:
        _chain(n, rounds)


def _report(r: int, starts: list[float], releases: list[float]) -> None:
    s = sorted(starts)
    gaps = [(b - a) * 1e6 for a, b in itertools.pairwise(s)]
    rel = [x * 1e6 for x in releases]
    print(
        f"{r:>5} {statistics.median(gaps):>9.1f} {statistics.median(rel):>11.1f} "
        f"{(s[-1] - s[0]) * 1e3:>17.1f}"
    )


def _chain(n: int, rounds: int) -> None:

    gates = [[_thread.allocate_lock() for _ in range(n)] for _ in range(rounds)]
    for row in gates:
        for gate in row:
            gate.acquire()
    starts = [[0.0] * n for _ in range(rounds)]
    releases = [[0.0] * (n - 1) for _ in range(rounds)]
    finished = [[_thread.allocate_lock() for _ in range(n)] for _ in range(rounds)]
    for row in finished:
        for lock in row:
            lock.acquire()
    clock = time.perf_counter

    def link(i: int) -> None:
        for r in range(rounds):
            gates[r][i].acquire()
            starts[r][i] = clock()
            if i + 1 < n:
                t0 = clock()
                gates[r][i + 1].release()
                releases[r][i] = clock() - t0
            time.sleep(_BLOCK_S)
            finished[r][i].release()

    for i in range(n):
        _thread.start_new_thread(link, (i,))
    time.sleep(0.5)  # let every thread reach its first gate (no result depends on it)

    for r in range(rounds):
        gates[r][0].release()
        for lock in finished[r]:
            lock.acquire()
        _report(r, starts[r], releases[r])


def _pool(n: int, rounds: int, yield_first: bool) -> None:
    mutex = _thread.allocate_lock()
    run_queue: deque[int] = deque()
    idle: list[Any] = []  # parked threads' own locks, newest last
    searching = [0]
    left = [0]
    round_over = _thread.allocate_lock()
    round_over.acquire()
    starts: list[float] = []
    releases: list[float] = []
    clock = time.perf_counter

    def job() -> None:
        starts.append(clock())
        time.sleep(_BLOCK_S)
        with mutex:
            left[0] -= 1
            last = not left[0]
        if last:
            round_over.release()

    def worker() -> None:
        me = _thread.allocate_lock()
        me.acquire()
        searcher = True  # whoever started this thread counted it
        while True:
            claimed = None
            with mutex:
                if searcher:
                    searching[0] -= 1
                    searcher = False
                took = bool(run_queue)
                if took:
                    run_queue.popleft()
                    if run_queue and not searching[0] and idle:
                        searching[0] += 1
                        claimed = idle.pop()
                else:
                    idle.append(me)
            if not took:
                if yield_first:
                    os.sched_yield()
                me.acquire()
                searcher = True
                continue
            if claimed is not None:
                t0 = clock()
                claimed.release()
                releases.append(clock() - t0)
            job()

    with mutex:
        searching[0] = n
    for _ in range(n):
        _thread.start_new_thread(worker, ())
    time.sleep(0.5)  # let every thread park (no result depends on it)
    for r in range(rounds):
        starts.clear()
        releases.clear()
        with mutex:
            left[0] = n
            run_queue.extend(range(n))
            searching[0] += 1
            first = idle.pop()
        first.release()
        round_over.acquire()
        _report(r, starts, releases)


if __name__ == "__main__":
    main()
