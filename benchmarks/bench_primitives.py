#!/usr/bin/env python3
"""Side-by-side micro-benchmarks: ``threadkit`` versus the stdlib ``threading``.

Usage::

    python benchmarks/bench_primitives.py                  # full run, 15 rounds
    python benchmarks/bench_primitives.py --quick          # smoke run (seconds)
    python benchmarks/bench_primitives.py --only 'lock*'   # select cases (glob)
    python benchmarks/bench_primitives.py --markdown       # results as a markdown table
    python benchmarks/bench_primitives.py --self-test      # threading vs threading
    taskset -c 0 python benchmarks/bench_primitives.py     # pinned, for hand-off cases

Methodology
-----------
*Same process, interleaved.*  Both implementations are measured in one process
run.  Each round runs every case once with ``threading`` and once with
``threadkit``; which module goes first alternates from round to round.  Slow
drift (CPU frequency scaling, thermal throttling, other load on the machine,
heap growth) therefore hits both sides of a pair alike instead of biasing
whichever implementation happened to be measured second or in a separate run.

*Ratios with spread.*  The headline number is the median over rounds of the
per-round ratio ``threadkit / stdlib``, computed from the two samples of the
same round.  Pairing cancels most of the shared noise, so these ratios are much
tighter than a ratio of two independently noisy medians.  The interquartile
range (p25-p75) of the per-round ratios is printed next to it: a target is
reported as "met" when the median ratio is at or below it, and flagged
"(marginal)" when the IQR straddles the target, i.e. the verdict could flip
between runs.  The per-operation medians of each side are printed as well.

*Sampling.*  Time is read with ``time.perf_counter``.  Before the rounds, each
case is calibrated on both modules (this also serves as warm-up) and an
operation count is chosen so that one sample takes roughly ``--sample-ms``
(default 50 ms) on average over the two sides; both sides then use the same
count.  The N-waiter ``Event`` release is one release per sample.  The garbage
collector is run before, and disabled during, every sample.  Uncontended loops
are unrolled ten times so the ``for`` loop's own cost is a small share.

*What is timed.*  Threads of the case are ``mod.Thread`` objects and the
measured primitives come from ``mod``; thread start-up is excluded from every
case except ``thread_start_join``.  The harness's own start gates, readiness
barriers and check-in counters use the stdlib (``threading`` / ``_thread``) on
both sides, so the primitive being measured is the only thing
that differs between the two sides, and a broken primitive only fails its own
cases.

*Hand-off cases* (contended Lock, ping-pongs, Barrier, Event release) mostly
measure how fast one thread can wake another.  Across cores that is dominated
by the OS scheduler's cross-CPU wake-up latency and by the GIL hand-off, which
adds a lot of noise; pinning the process to one CPU (``taskset -c 0``) makes
them measure the library's own hand-off path.  Results also depend on
``sys.getswitchinterval()`` (left at its default and printed).  Releasing
5000 waiters is a thundering herd on the GIL and is the noisiest case by far
(single samples vary by 2x and more); give it more rounds, e.g.
``--only event_release --rounds 31``.

*Errors.*  An exception in a case (on either side) marks that case as failed,
prints the traceback and lets the other cases run; the exit status is 1 if any
case failed.  A deadlock cannot be recovered in-process: if one sample takes
longer than ``--timeout`` seconds, ``faulthandler`` dumps all thread stacks and
exits the process.

``--self-test`` measures ``threading`` against itself: every ratio should come
out close to 1.0 with an IQR around it, which checks the harness (the "met"
column is meaningless then).
"""

from __future__ import annotations

import _thread
import argparse
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
    fmt_time,
    print_platform,
    progress,
    quartiles,
    quiesced_sample,
    render,
    select_cases,
    verdict,
)

perf_counter = time.perf_counter

#: Harness synchronisation always uses the stdlib, whichever module is measured.
_harness = threading

#: Unroll factor of the uncontended loops.
_UNROLL = 10

#: Default stack size for the N-waiter case (keeps thousands of threads cheap).
_WAITER_STACK_SIZE = 256 * 1024

#: Per-sample deadlock guard; set from --timeout.
_sample_timeout = 60.0


# --------------------------------------------------------------------------------------
# Worker-thread helper
# --------------------------------------------------------------------------------------


class _Workers:
    """Run ``count`` ``mod.Thread`` threads executing ``target`` and collect their errors.

    With ``gate=True``, ``start()`` returns only once every worker is running
    (a stdlib barrier), so the thread start-up cost stays outside the timed
    region; with ``gate=False`` the target must signal readiness itself.
    ``join()`` joins with a timeout and re-raises the first exception a worker
    raised.
    """

    def __init__(
        self,
        mod: ModuleType,
        target: Callable[[], object],
        count: int,
        *,
        gate: bool = True,
        stack_size: int | None = None,
    ) -> None:
        self._mod = mod
        self._target = target
        self._count = count
        self._stack_size = stack_size
        self._ready = _harness.Barrier(count + 1, timeout=_sample_timeout) if gate else None
        self.threads: list[Any] = []
        self.errors: list[BaseException] = []

    def _run(self) -> None:
        try:
            if self._ready is not None:
                self._ready.wait()
            self._target()
        except BaseException as exc:
            self.errors.append(exc)
            if self._ready is not None:
                self._ready.abort()

    def start(self) -> None:
        old_size = None
        if self._stack_size is not None:
            old_size = self._mod.stack_size(self._stack_size)
        try:
            for i in range(self._count):
                thread = self._mod.Thread(target=self._run, name=f"bench-{i}", daemon=True)
                thread.start()
                self.threads.append(thread)
        except BaseException:
            # Let gated threads already started exit (BrokenBarrierError), then re-raise.
            # Ungated targets must be released by the caller, which then calls join().
            if self._ready is not None:
                self._ready.abort()
            raise
        finally:
            if old_size is not None:
                self._mod.stack_size(old_size)
        if self._ready is not None:
            self._ready.wait()

    def join(self) -> None:
        deadline = perf_counter() + _sample_timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - perf_counter()))
            if thread.is_alive():
                raise TimeoutError(f"worker thread {thread.name} did not finish")
        if self.errors:
            raise self.errors[0]


# --------------------------------------------------------------------------------------
# Cases: each takes the module and an operation count n, returns seconds per operation
# --------------------------------------------------------------------------------------


def _time_with_blocks(obj: Any, n: int) -> float:
    """Seconds per uncontended ``with obj: pass`` (acquire + release), unrolled 10x."""
    loops = max(1, n // _UNROLL)
    t0 = perf_counter()
    for _ in range(loops):
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
        with obj:
            pass
    return (perf_counter() - t0) / (loops * _UNROLL)


def bench_lock(mod: ModuleType, n: int) -> float:
    """Uncontended ``with lock:`` on a Lock."""
    return _time_with_blocks(mod.Lock(), n)


def bench_rlock(mod: ModuleType, n: int) -> float:
    """Uncontended ``with rlock:`` on an RLock (not nested)."""
    return _time_with_blocks(mod.RLock(), n)


def bench_semaphore(mod: ModuleType, n: int) -> float:
    """Uncontended ``with sem:`` on a Semaphore(1)."""
    return _time_with_blocks(mod.Semaphore(1), n)


def bench_bounded_semaphore(mod: ModuleType, n: int) -> float:
    """Uncontended ``with sem:`` on a BoundedSemaphore(1)."""
    return _time_with_blocks(mod.BoundedSemaphore(1), n)


def bench_local_get(mod: ModuleType, n: int) -> float:
    """Reading an attribute of a ``local()`` (the calling thread's own value)."""
    data = mod.local()
    data.x = 1
    loops = max(1, n // _UNROLL)
    t0 = perf_counter()
    for _ in range(loops):
        # Bare reads on purpose: the attribute lookup is what is measured.
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
        data.x  # noqa: B018
    return (perf_counter() - t0) / (loops * _UNROLL)


def _bench_contended_lock(mod: ModuleType, n: int, nthreads: int) -> float:
    """``nthreads`` threads each doing ``with lock: counter += 1``; seconds per acquisition."""
    lock = mod.Lock()
    per_thread = max(1, n // nthreads)
    total = per_thread * nthreads
    go = _harness.Event()
    ends: list[float] = []
    counter = 0

    def work() -> None:
        nonlocal counter
        go.wait()
        for _ in range(per_thread):
            with lock:
                counter += 1
        ends.append(perf_counter())

    workers = _Workers(mod, work, nthreads)
    workers.start()
    t0 = perf_counter()
    go.set()
    workers.join()
    if counter != total:
        raise AssertionError(f"lost updates: counter={counter}, expected {total}")
    return (max(ends) - t0) / total


def bench_lock_contended_2(mod: ModuleType, n: int) -> float:
    """Contended Lock, 2 threads."""
    return _bench_contended_lock(mod, n, 2)


def bench_lock_contended_4(mod: ModuleType, n: int) -> float:
    """Contended Lock, 4 threads."""
    return _bench_contended_lock(mod, n, 4)


def bench_condition_pingpong(mod: ModuleType, n: int) -> float:
    """Two threads alternate a turn flag under one Condition; seconds per round trip."""
    cond = mod.Condition()
    turn = 0  # 0: main's turn, 1: responder's turn

    def responder() -> None:
        nonlocal turn
        for _ in range(n):
            with cond:
                while turn != 1:
                    cond.wait()
                turn = 0
                cond.notify()

    workers = _Workers(mod, responder, 1)
    workers.start()
    t0 = perf_counter()
    for _ in range(n):
        with cond:
            turn = 1
            cond.notify()
            while turn != 0:
                cond.wait()
    elapsed = perf_counter() - t0
    workers.join()
    return elapsed / n


def bench_event_pingpong(mod: ModuleType, n: int) -> float:
    """Two threads bounce two Events (set / wait / clear); seconds per round trip."""
    ping = mod.Event()
    pong = mod.Event()

    def responder() -> None:
        for _ in range(n):
            ping.wait()
            ping.clear()
            pong.set()

    workers = _Workers(mod, responder, 1)
    workers.start()
    t0 = perf_counter()
    for _ in range(n):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = perf_counter() - t0
    workers.join()
    return elapsed / n


def bench_barrier_4(mod: ModuleType, n: int) -> float:
    """Barrier(4): main + 3 threads call wait() n times; seconds per cycle.

    The first cycle is a start gate and is not timed.
    """
    barrier = mod.Barrier(4)

    def party() -> None:
        for _ in range(n + 1):
            barrier.wait()

    workers = _Workers(mod, party, 3)
    workers.start()
    barrier.wait()
    t0 = perf_counter()
    for _ in range(n):
        barrier.wait()
    elapsed = perf_counter() - t0
    workers.join()
    return elapsed / n


def _noop() -> None:
    pass


def bench_thread_start_join(mod: ModuleType, n: int) -> float:
    """``Thread(target=noop)``, ``start()``, ``join()``; seconds per thread."""
    thread_cls = mod.Thread
    t0 = perf_counter()
    for _ in range(n):
        thread = thread_cls(target=_noop)
        thread.start()
        thread.join()
    return (perf_counter() - t0) / n


def bench_event_release(mod: ModuleType, n: int) -> float:
    """n threads block in one ``Event.wait()``; seconds from ``set()`` until all passed it.

    Each waiter checks in just before calling ``wait()``; once all have, the
    main thread sleeps a little more so they are all blocked, then starts the
    clock and calls ``set()``.  Each waiter appends a time stamp as soon as its
    ``wait()`` returns (``list.append`` is atomic, so the harness adds no lock
    contention of its own); after joining, the latest stamp ends the interval.
    """
    event = mod.Event()
    check_in_lock = _thread.allocate_lock()
    all_waiting = _harness.Event()
    waiting = 0
    stamps: list[float] = []

    def waiter() -> None:
        nonlocal waiting
        with check_in_lock:
            waiting += 1
            if waiting == n:
                all_waiting.set()
        event.wait()
        stamps.append(perf_counter())

    workers = _Workers(mod, waiter, n, gate=False, stack_size=_WAITER_STACK_SIZE)
    try:
        workers.start()
        if not all_waiting.wait(_sample_timeout):
            raise TimeoutError(f"only {waiting} of {n} waiters started")
        time.sleep(0.05 + 10e-6 * n)  # let the last ones get from check-in into wait()
        t0 = perf_counter()
        event.set()
    finally:
        event.set()  # never leave waiters blocked, even on error
        workers.join()
    if len(stamps) != n:
        raise AssertionError(f"only {len(stamps)} of {n} waiters passed Event.wait()")
    return max(stamps) - t0


# --------------------------------------------------------------------------------------
# Case table
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    func: Callable[[ModuleType, int], float]
    target: float
    fixed_n: int | None = None  # if set, no calibration: n is fixed, one op per sample
    min_n: int = 1


def build_cases(waiters: int) -> list[Case]:
    """The benchmark cases, in report order, with their target ratios."""
    return [
        Case("lock", "Lock `with` uncontended", bench_lock, 1.5, min_n=_UNROLL),
        Case("rlock", "RLock `with` uncontended", bench_rlock, 1.5, min_n=_UNROLL),
        Case("semaphore", "Semaphore `with` uncontended", bench_semaphore, 0.5, min_n=_UNROLL),
        Case(
            "bounded_semaphore",
            "BoundedSemaphore `with` uncontended",
            bench_bounded_semaphore,
            0.5,
            min_n=_UNROLL,
        ),
        Case("local_get", "local() attribute read", bench_local_get, 1.5, min_n=_UNROLL),
        Case(
            "lock_contended_2",
            "Lock, 2 threads contending /acq",
            bench_lock_contended_2,
            1.5,
            min_n=2,
        ),
        Case(
            "lock_contended_4",
            "Lock, 4 threads contending /acq",
            bench_lock_contended_4,
            1.5,
            min_n=4,
        ),
        Case(
            "condition_pingpong", "Condition ping-pong /round trip", bench_condition_pingpong, 1.0
        ),
        Case("event_pingpong", "Event ping-pong /round trip", bench_event_pingpong, 1.0),
        Case("barrier_4", "Barrier(4) /cycle", bench_barrier_4, 1.0),
        Case("thread_start_join", "Thread start+join /thread", bench_thread_start_join, 1.0),
        Case(
            "event_release",
            f"Event.set() releasing {waiters} waiters",
            bench_event_release,
            0.5,
            fixed_n=waiters,
        ),
    ]


# --------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    case: Case
    n: int = 0
    std: list[float] = field(default_factory=list)
    tk: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    error: str | None = None


def run_sample(case: Case, mod: ModuleType, n: int) -> float:
    """One timed sample with the GC quiesced and a deadlock guard armed."""
    return quiesced_sample(lambda: case.func(mod, n), _sample_timeout, "time per op")


def estimate_per_op(case: Case, mod: ModuleType, calib_s: float) -> float:
    """Grow n until one sample lasts at least ``calib_s``; return seconds per op.

    The final count is sampled twice and the faster result is kept, so that a
    single disturbed sample cannot shrink the operation count.
    """
    n = case.min_n
    while True:
        per_op = run_sample(case, mod, n)
        spent = per_op * n
        if spent >= calib_s or n >= 10**9:
            return min(per_op, run_sample(case, mod, n))
        grow = calib_s * 1.2 / spent
        n = int(n * min(100.0, max(2.0, grow)))


def calibrate(
    case: Case, sides: Sequence[tuple[str, ModuleType]], sample_s: float
) -> tuple[int, str | None]:
    """Return (n, error): n ops make one sample last ~sample_s, averaged over both sides."""
    if case.fixed_n is not None:
        return case.fixed_n, None
    per_ops = []
    for side, mod in sides:
        try:
            per_ops.append(estimate_per_op(case, mod, sample_s / 4))
        except Exception as exc:
            return 0, case_failed(case.name, side, exc, "calibration")
    n = round(sample_s / statistics.fmean(per_ops))
    return max(case.min_n, n), None


def run(
    cases: Sequence[Case],
    std_mod: ModuleType,
    tk_mod: ModuleType,
    rounds: int,
    sample_s: float,
    tk_label: str,
) -> list[Result]:
    results = [Result(case) for case in cases]
    sides = (("stdlib", std_mod), (tk_label, tk_mod))

    for res in results:
        progress(f"calibrating {res.case.name}")
        res.n, res.error = calibrate(res.case, sides, sample_s)

    for rnd in range(rounds):
        progress(f"round {rnd + 1}/{rounds}")
        order = sides if rnd % 2 == 0 else sides[::-1]
        for res in results:
            if res.error is not None:
                continue
            samples: dict[str, float] = {}
            for side, mod in order:
                try:
                    samples[side] = run_sample(res.case, mod, res.n)
                except Exception as exc:
                    res.error = case_failed(res.case.name, side, exc)
                    break
            if res.error is not None:
                continue
            std, tk = samples["stdlib"], samples[tk_label]
            res.std.append(std)
            res.tk.append(tk)
            res.ratios.append(tk / std)
    return results


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def summarize(res: Result) -> list[str]:
    """Table row cells for one result."""
    case = res.case
    target = f"<= {case.target:g}"
    if res.error is not None or not res.ratios:
        std = fmt_time(statistics.median(res.std)) if res.std else "-"
        return [case.name, case.label, std, "-", "-", "-", target, "ERROR"]
    p25, med, p75 = quartiles(res.ratios)
    return [
        case.name,
        case.label,
        fmt_time(statistics.median(res.std)),
        fmt_time(statistics.median(res.tk)),
        f"{med:.2f}",
        f"{p25:.2f}-{p75:.2f}",
        target,
        verdict(res.ratios, case.target),
    ]


def print_header(args: argparse.Namespace, tk_mod: ModuleType, rounds: int) -> None:
    print_platform()
    if args.self_test:
        print(
            "SELF-TEST: threading measured against itself; ratios should be ~1.0, "
            "the 'met' column is meaningless."
        )
    else:
        version = getattr(tk_mod, "__version__", "?")
        print(f"threadkit {version} from {getattr(tk_mod, '__file__', None) or tk_mod.__path__}")
    print(
        f"{rounds} rounds, interleaved (order alternates each round), "
        f"~{args.sample_ms:g} ms per sample, {args.waiters} waiters in event_release"
    )
    print(
        "Note: hand-off cases (contended Lock, ping-pongs, Barrier, Event release) are "
        "dominated by cross-CPU wake-up latency;\n      for stable numbers pin the run to one "
        "CPU: taskset -c 0 python benchmarks/bench_primitives.py"
    )
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

_REQUIRED_API = (
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "Thread",
    "stack_size",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark threadkit against threading, interleaved in one process.",
    )
    add_rounds_arg(parser, 15)
    parser.add_argument(
        "--quick", action="store_true", help="fast smoke run: 3 rounds, ~5 ms samples, 500 waiters"
    )
    add_case_args(parser, "threading")
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=None,
        help="target duration of one sample (default 50, 5 with --quick)",
    )
    parser.add_argument(
        "--waiters",
        type=int,
        default=None,
        help="threads in the event_release case (default 5000, 500 with --quick)",
    )
    add_timeout_arg(parser)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.quick else 15
    if args.sample_ms is None:
        args.sample_ms = 5.0 if args.quick else 50.0
    if args.waiters is None:
        args.waiters = 500 if args.quick else 5000
    if args.rounds < 1 or args.sample_ms <= 0 or args.waiters < 1 or args.timeout <= 0:
        parser.error("--rounds, --sample-ms, --waiters and --timeout must be positive")
    return args


def load_threadkit(self_test: bool) -> tuple[ModuleType, str]:
    if self_test:
        return threading, "stdlib(self)"
    try:
        import threadkit
    except ImportError as exc:
        raise SystemExit(
            f"error: cannot import threadkit ({exc}); install it (pip install -e .) or run "
            "with PYTHONPATH=src, or use --self-test"
        ) from exc
    missing = [name for name in _REQUIRED_API if not hasattr(threadkit, name)]
    if missing:
        print(
            f"warning: threadkit lacks {', '.join(missing)}; affected cases will fail",
            file=sys.stderr,
        )
    return threadkit, "threadkit"


def main(argv: Sequence[str] | None = None) -> int:
    global _sample_timeout
    args = parse_args(argv)
    _sample_timeout = args.timeout
    cases = build_cases(args.waiters)
    if args.list:
        for case in cases:
            print(f"{case.name:20} {case.label}  (target ratio <= {case.target:g})")
        return 0
    cases = select_cases(cases, args.only)
    tk_mod, tk_label = load_threadkit(args.self_test)

    print_header(args, tk_mod, args.rounds)
    results = run(cases, threading, tk_mod, args.rounds, args.sample_ms / 1e3, tk_label)

    headers = [
        "case",
        "operation",
        "stdlib/op",
        f"{tk_label}/op",
        "ratio",
        "IQR p25-p75",
        "target",
        "met",
    ]
    print(render(headers, [summarize(r) for r in results], args.markdown))

    failed = [r for r in results if r.error is not None]
    measured = [r for r in results if r.error is None and r.ratios]
    met = sum(statistics.median(r.ratios) <= r.case.target for r in measured)
    print(f"\ntargets met: {met}/{len(measured)} measured cases ({len(failed)} failed)")
    if failed:
        print()
        for res in failed:
            print(f"ERROR {res.case.name}: {res.error}")
    counts = ", ".join(f"{r.case.name}={r.n}" for r in results if r.error is None)
    if counts:
        print(f"\nops per sample: {counts}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
