"""What deadlock detection costs, and how fast it answers.

* **Contended Lock, 2 and 4 threads** (``with lock: counter += 1``), detection on
  against off, interleaved round by round in one process: the check runs only
  before a thread parks, so only the contended path can pay. Target: at most 1.10.
  ``threading.Lock`` is timed in the same rounds for scale.
* **Uncontended ``with lock:``** on against off: the check is not on this path at
  all, so the ratio shows the noise floor of the comparison.
* **Time to DeadlockError**: two threads take two locks in opposite order; from the
  closing ``with`` to the ``DeadlockError`` in that thread. Target: under 1 ms.

Run: ``python benchmarks/bench_diagnostics.py [--rounds N]`` (pin hand-off cases to
one CPU with ``taskset -c 0`` for less noise).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
from collections.abc import Callable
from time import perf_counter

from _report import fmt_time, load_threadkit, print_platform, quartiles

threadkit = load_threadkit()
from threadkit.diagnostics import DeadlockError, set_deadlock_detection  # noqa: E402

#: The innermost frame of a thread asleep in a park.
_ASLEEP = threadkit._core.PARK_CODES - {threadkit._core.WaitQueue.park.__code__}

#: How many waits the deadlock check ran on, per contended sample (detection on).
checked: list[int] = []


def contended(
    lock_type: Callable[[], object], nthreads: int, per_thread: int, yield_inside: bool = False
) -> float:
    """Seconds per acquisition of one lock by ``nthreads`` threads; with
    ``yield_inside`` each holder gives up its CPU (``os.sched_yield()``) while it
    holds the lock, so that nearly every other acquire parks (and is checked)."""
    lock = lock_type()
    go = threading.Event()
    counter = [0]
    ends: list[float] = []

    def work() -> None:
        go.wait()
        rec = threadkit._core.current_record()
        first = rec.seq
        for _ in range(per_thread):
            with lock:  # type: ignore[attr-defined]
                counter[0] += 1
                if yield_inside:
                    os.sched_yield()  # lets the GIL and the CPU go: the others park
        ends.append(perf_counter())
        checked.append(rec.seq - first)  # waits published for the check

    threads = [threadkit.Thread(target=work, daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    t0 = perf_counter()
    go.set()
    for t in threads:
        t.join(60)
    assert counter[0] == nthreads * per_thread
    return (max(ends) - t0) / (nthreads * per_thread)


def uncontended(lock_type: Callable[[], object], n: int) -> float:
    lock = lock_type()
    t0 = perf_counter()
    for _ in range(n // 5):
        with lock:  # type: ignore[attr-defined]
            pass
        with lock:  # type: ignore[attr-defined]
            pass
        with lock:  # type: ignore[attr-defined]
            pass
        with lock:  # type: ignore[attr-defined]
            pass
        with lock:  # type: ignore[attr-defined]
            pass
    return (perf_counter() - t0) / n


def time_to_error() -> float:
    """Seconds from the closing acquire of a two-lock cycle to its DeadlockError."""
    a, b = threadkit.Lock(), threadkit.Lock()
    holding = threadkit.Event()
    parked = threadkit.Event()

    def other() -> None:
        with b:
            holding.set()
            parked.set()
            with a:
                pass

    with a:
        t = threadkit.Thread(target=other, daemon=True)
        t.start()
        holding.wait()
        parked.wait()
        # Until the other thread sleeps in its park on ``a`` (queued is not enough:
        # it must be past its own check, or it would be the one to find the cycle).
        while not (
            a._waiters
            and (frame := sys._current_frames().get(t.ident)) is not None
            and frame.f_code in _ASLEEP
        ):
            threadkit.sleep(0)
        t0 = perf_counter()
        try:
            with b:
                pass
        except DeadlockError:
            elapsed = perf_counter() - t0
        else:
            raise AssertionError("no DeadlockError")
    t.join(10)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-thread", type=int, default=20000)
    args = parser.parse_args()
    print_platform()
    rows = []
    for nthreads, yield_inside in ((2, False), (4, False), (2, True), (4, True)):
        on, off, std = [], [], []
        checked.clear()
        per_thread = args.per_thread // nthreads // (4 if yield_inside else 1)
        for rnd in range(args.rounds):
            order = (True, False) if rnd % 2 == 0 else (False, True)
            for flag in order:
                set_deadlock_detection(flag)
                gc.collect()
                (on if flag else off).append(
                    contended(threadkit.Lock, nthreads, per_thread, yield_inside)
                )
            std.append(contended(threading.Lock, nthreads, per_thread, yield_inside))
        set_deadlock_detection(True)
        # ``checked`` holds the "on" samples only: half of each round's contended runs.
        parks = sum(checked) / (args.rounds * per_thread * nthreads)
        how = ", holder yields" if yield_inside else ""
        label = f"Lock, {nthreads} threads contending{how} /acq ({parks:.2f} checked waits/acq)"
        rows.append((label, on, off, std))
    on, off = [], []
    for rnd in range(args.rounds):
        for flag in (True, False) if rnd % 2 == 0 else (False, True):
            set_deadlock_detection(flag)
            (on if flag else off).append(uncontended(threadkit.Lock, 200_000))
    set_deadlock_detection(True)
    rows.append(("Lock `with` uncontended", on, off, []))

    print("| case | on | off | on/off median (p25-p75) | threading.Lock |")
    print("|---|---|---|---|---|")
    for label, on, off, std in rows:
        ratios = sorted(a / b for a, b in zip(on, off, strict=True))
        p25, med, p75 = quartiles(ratios)
        std_cell = fmt_time(quartiles(std)[1]) if std else "-"
        print(
            f"| {label} | {fmt_time(quartiles(on)[1])} | {fmt_time(quartiles(off)[1])} "
            f"| {med:.2f} ({p25:.2f}-{p75:.2f}) | {std_cell} |"
        )
    times = sorted(time_to_error() for _ in range(max(50, args.rounds * 5)))
    p25, med, p75 = quartiles(times)
    worst = times[-1]
    print(
        f"\ntime from the closing acquire to DeadlockError: median {fmt_time(med)} "
        f"(p25 {fmt_time(p25)}, p75 {fmt_time(p75)}, max {fmt_time(worst)}; "
        f"{len(times)} cycles)"
    )


if __name__ == "__main__":
    main()
