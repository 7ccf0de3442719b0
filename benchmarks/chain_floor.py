#!/usr/bin/env python3
"""The floor under "1000 tasks blocking 50 ms": a bare chain of ``_thread`` locks.

Usage::

    taskset -c 0 python benchmarks/chain_floor.py      # pinned, as in the README
    python benchmarks/chain_floor.py --threads 500 --rounds 3

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
"""

from __future__ import annotations

import _thread
import argparse
import itertools
import statistics
import time

_BLOCK_S = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    n, rounds = args.threads, args.rounds
    if n < 2 or rounds < 1:
        parser.error("--threads must be at least 2 and --rounds at least 1")

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

    print(f"{n} threads, {rounds} rounds, each link blocks {_BLOCK_S * 1e3:g} ms")
    print(f"{'round':>5} {'link us':>9} {'release us':>11} {'first-to-last ms':>17}")
    for r in range(rounds):
        gates[r][0].release()
        for lock in finished[r]:
            lock.acquire()
        s = starts[r]
        gaps = [(b - a) * 1e6 for a, b in itertools.pairwise(s)]
        rel = [x * 1e6 for x in releases[r]]
        print(
            f"{r:>5} {statistics.median(gaps):>9.1f} {statistics.median(rel):>11.1f} "
            f"{(s[-1] - s[0]) * 1e3:>17.1f}"
        )


if __name__ == "__main__":
    main()
