#!/usr/bin/env python3
"""Cancellation benchmarks for ``threadkit``: cancel latency and the cost of an idle scope.

Usage::

    python benchmarks/bench_cancel.py                  # full run: 1000 trials, 15 rounds
    python benchmarks/bench_cancel.py --quick          # smoke run (a few seconds)
    python benchmarks/bench_cancel.py --markdown       # results as markdown tables
    python benchmarks/bench_cancel.py --part latency   # only part 1 (or: --part idle)
    taskset -c 0 python benchmarks/bench_cancel.py     # pinned to one CPU

Part 1: cancel latency
----------------------
*What is timed.*  The time from ``cancel()``, called in the main thread, to the
cancelled thread having ``Cancelled`` in hand, raised out of the call it was
parked in.  The main thread reads ``time.perf_counter()`` right before
``cancel()`` (t0); the worker wraps the blocking call in ``try`` and reads the
clock first thing in ``except Cancelled`` (t1), then re-raises so that the
scope catches its own exception as usual.  One trial gives ``t1 - t0``; both
clocks are the same system-wide monotonic clock, read in two threads.

*Cases.*  A worker inside an entered ``threadkit.CancelScope()`` (no deadline)
parked in ``Event.wait()`` (never set), ``Lock.acquire()`` (the main thread
holds the lock), ``Condition.wait()`` (never notified) and
``threadkit.sleep(3600)``, each cancelled with ``scope.cancel()``; and a
``threadkit.Thread`` parked in ``Event.wait()`` outside any scope of its own,
cancelled with ``Thread.cancel()``.  The scope cases use one long-lived worker
each, which takes a fresh scope from the main thread for every trial; the
``Thread.cancel()`` case starts a new thread per trial (a thread's cancellation
is final), and the thread start is not timed.

*Parked, really.*  Before cancelling, the main thread spins (bounded by
``--timeout``, sleeping between polls so the worker gets the GIL) until
``threadkit._core.waiting_on(resource)`` lists the worker (for ``sleep()``,
whose wait queue is private, the worker's record shows a waiting ``sleep``
node) *and* the worker's innermost Python frame is ``WaitQueue.park``.  It then
sleeps ``--settle-us`` (default 500 us) more, so that the worker has gone from
there into the blocking lock acquire and is asleep in the kernel.  The latency
therefore includes a real wake-up: ``cancel()`` itself, the OS waking the
worker, the worker getting the GIL (the main thread gives it up by blocking on
a stdlib lock until the worker reports back), and raising and unwinding to the
call site.

*Order and noise.*  The cases are interleaved: every trial index runs one
trial of each case, in an order that rotates, so drift and bursts of load on
the machine spread over all of them.  A few warm-up trials per case are not
recorded.  The garbage collector is disabled during the trials and run every
50 trial indices, outside any timed region.  Reported: min, median, p90, p99
and max in microseconds, how many trials took 1 ms or more, and whether p99 is
below 1 ms, the goal on an idle machine.  Tail percentiles are dominated by
scheduling: on a loaded machine (the load average is printed before and after)
or with the GIL contended, p99 can exceed 1 ms without any fault in threadkit.
Pinning to one CPU (``taskset -c 0``) turns the cross-CPU wake-up into a
same-CPU context switch, which is usually faster and steadier.

Part 2: idle scope cost
-----------------------
*What is timed.*  The per-operation time of three uncontended operations on
threadkit primitives: ``with lock: pass`` on a ``Lock``, ``event.wait()`` on a
set ``Event`` and ``with cond: cond.notify()`` on a ``Condition`` (no waiters),
each in three variants: outside any scope; inside an entered, idle
``threadkit.CancelScope()`` (no deadline, not cancelled); and inside an entered
``threadkit.move_on_after(3600)``, a scope with a far deadline.  Entering and
leaving the scope is outside the timed region.  Loops are unrolled ten times.
One primitive object per case serves all variants and rounds, so they do not
differ in memory layout.

*Expectations.*  An idle scope should cost nothing: threadkit's blocking calls
only look at the thread's scopes while ``threadkit._core.armed`` is non-zero,
and an idle scope does not arm it.  The goal is an in-scope / no-scope ratio of
at most 1.10.  A scope with a deadline *arms* the cancellation checks: every
blocking call then looks up the thread's record and walks its scope stack,
reading the clock for the deadline, so it is expected to cost more; it is
reported separately, with no goal.  The harness checks ``armed`` in every
sample (0, 0 and 1 for the three variants) and fails the case otherwise.

*Sampling and ratios*, much as in ``bench_primitives.py``: each case is
calibrated (this is also the warm-up) so that a sub-sample takes about
``--sample-ms`` / 5; all three variants then use the same operation count.  In
each round every variant runs 5 sub-samples, interleaved across the variants
(A B C, B C A, ...), with the GC run before and disabled during each; the
round's value for a variant is its fastest sub-sample, since load on the
machine only ever makes a sample slower.  (The code under test is the same
deterministic path in all three variants, so the minimum is not flattering
any of them.)  The headline is the median over rounds of the per-round ratio
in-scope / no-scope, with its interquartile range (p25-p75); "(marginal)"
flags a goal that the IQR straddles.  The per-op columns are medians over
rounds.

*Errors.*  An exception in a case marks it as failed, prints the traceback and
lets the other cases run; the exit status is 1 if any case failed.  A latency
trial that does not finish within ``--timeout`` seconds fails its case (its
worker, a daemon thread, is left behind); a stuck part-2 sample makes
``faulthandler`` dump all stacks and exit.
"""

from __future__ import annotations

import _thread
import argparse
import faulthandler
import gc
import os
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from _report import fmt_time, print_platform, progress, quartiles, render

try:
    import threadkit
    from threadkit import _core
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise SystemExit(
        f"error: cannot import threadkit ({_exc}); install it (pip install -e .) "
        "or run with PYTHONPATH=src"
    ) from _exc

perf_counter = time.perf_counter

#: Unroll factor of the part-2 loops.
_UNROLL = 10

#: Part 2: sub-samples per variant per round, interleaved across the variants.
_SUBSAMPLES = 5

#: The code object a parked thread's innermost Python frame runs.
_PARK_CODES = _core.PARK_CODES

#: Latency goal: p99 below this (seconds), on an idle machine.
_LATENCY_GOAL = 1e-3

#: Ratio goal for an idle scope (in-scope / no-scope).
_IDLE_GOAL = 1.10

#: Seconds a trial or a sample may take before it counts as stuck; set from --timeout.
_timeout = 30.0


# --------------------------------------------------------------------------------------
# Part 1: cancel latency
# --------------------------------------------------------------------------------------


def _stamp_cancelled(call: Callable[[], object], stamp: list[float]) -> None:
    """Run the blocking ``call``; when it raises ``Cancelled``, time-stamp and re-raise."""
    try:
        call()
    except threadkit.Cancelled:
        stamp.append(perf_counter())
        raise
    raise AssertionError(f"{call!r} returned instead of raising Cancelled")


def _is_parked(ident: int, resource: object | None, operation: str) -> bool:
    """True once thread ``ident`` is parked in ``operation`` on ``resource``.

    ``resource=None`` (``sleep()``, whose queue is private) checks the thread's record
    for a waiting node of ``operation``. Either way, the thread's innermost Python
    frame must be ``WaitQueue.park``, the one place where threadkit blocks.
    """
    if resource is not None:
        if not any(rec.ident == ident for rec in _core.waiting_on(resource)):
            return False
    else:
        rec = _core.record_for(ident)
        node = rec.waiting if rec is not None else None
        if node is None or node.operation != operation or node.state is not _core.WAITING:
            return False
    frame = sys._current_frames().get(ident)
    return frame is not None and frame.f_code in _PARK_CODES


def _wait_parked(ident: int | None, resource: object | None, operation: str) -> None:
    """Bounded spin until ``_is_parked``; sleeps between polls so the worker can run."""
    if ident is None:
        raise RuntimeError("worker thread has no ident")
    deadline = perf_counter() + _timeout
    delay = 0.0
    while not _is_parked(ident, resource, operation):
        if perf_counter() > deadline:
            raise TimeoutError(f"worker did not park in {operation} within {_timeout} s")
        time.sleep(delay)
        delay = min(max(2 * delay, 1e-6), 1e-3)


class _Target(Protocol):
    def start(self) -> None: ...

    def trial(self, settle: float) -> float: ...

    def close(self) -> None: ...


class _ScopeTarget:
    """A long-lived worker that, per trial, parks inside a fresh scope from main.

    ``body(stamp)`` makes the blocking call through ``_stamp_cancelled``; the main
    thread cancels the scope once the worker is parked on ``resource``.
    """

    def __init__(
        self,
        name: str,
        body: Callable[[list[float]], None],
        resource: object | None,
        operation: str,
        setup: Callable[[], object] | None = None,
        teardown: Callable[[], object] | None = None,
    ) -> None:
        self._body = body
        self._resource = resource
        self._operation = operation
        self._setup = setup
        self._teardown = teardown
        # Harness signalling uses bare _thread locks, never the code under test.
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._scope: threadkit.CancelScope | None = None
        self._stamp: list[float] = []
        self._error: BaseException | None = None
        self._caught = False
        self._stuck = False
        self._thread = threadkit.Thread(target=self._loop, name=f"bench-{name}", daemon=True)

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            scope = self._scope
            if scope is None:
                return
            try:
                with scope:
                    self._body(self._stamp)
            except BaseException as exc:
                self._error = exc
            self._caught = scope.cancelled_caught
            self._done.release()

    def start(self) -> None:
        if self._setup is not None:
            self._setup()
        self._thread.start()

    def trial(self, settle: float) -> float:
        scope = threadkit.CancelScope()
        self._scope = scope
        self._stamp.clear()
        self._error = None
        self._caught = False
        self._go.release()
        try:
            _wait_parked(self._thread.ident, self._resource, self._operation)
        except BaseException:
            self._stuck = True  # the case fails; let the worker go, whatever it is doing
            scope.cancel()
            raise
        time.sleep(settle)
        t0 = perf_counter()
        scope.cancel()
        if not self._done.acquire(True, _timeout):
            self._stuck = True
            raise TimeoutError(f"no Cancelled within {_timeout} s of cancel()")
        if self._error is not None:
            raise self._error
        if not self._caught or len(self._stamp) != 1:
            raise AssertionError(
                f"scope caught its Cancelled: {self._caught}; stamps: {len(self._stamp)}"
            )
        return self._stamp[0] - t0

    def close(self) -> None:
        if not self._stuck and self._thread.is_alive():
            self._scope = None
            self._go.release()
            self._thread.join(_timeout)
        if self._teardown is not None:
            self._teardown()


class _ThreadCancelTarget:
    """A new ``threadkit.Thread`` per trial, parked in ``Event.wait()``, then ``cancel()``."""

    def __init__(self) -> None:
        self._event = threadkit.Event()  # never set

    def start(self) -> None:
        pass

    def trial(self, settle: float) -> float:
        done = _thread.allocate_lock()
        done.acquire()
        stamp: list[float] = []
        event = self._event

        def body() -> None:
            try:
                _stamp_cancelled(event.wait, stamp)
            finally:
                done.release()

        thread = threadkit.Thread(target=body, name="bench-thread-cancel", daemon=True)
        thread.start()
        try:
            _wait_parked(thread.ident, event, "wait")
        except BaseException:
            thread.cancel()  # let it go, whatever it is doing
            raise
        time.sleep(settle)
        t0 = perf_counter()
        thread.cancel()
        if not done.acquire(True, _timeout):
            raise TimeoutError(f"no Cancelled within {_timeout} s of Thread.cancel()")
        exc = thread.exception(_timeout)
        if not isinstance(exc, threadkit.Cancelled) or len(stamp) != 1:
            raise AssertionError(f"thread ended with {exc!r}; stamps: {len(stamp)}")
        return stamp[0] - t0

    def close(self) -> None:
        pass


def _event_target() -> _Target:
    event = threadkit.Event()  # never set
    return _ScopeTarget("event", lambda stamp: _stamp_cancelled(event.wait, stamp), event, "wait")


def _lock_target() -> _Target:
    lock = threadkit.Lock()  # held by the main thread for the whole part

    return _ScopeTarget(
        "lock",
        lambda stamp: _stamp_cancelled(lock.acquire, stamp),
        lock,
        "acquire",
        setup=lock.acquire,
        teardown=lock.release,
    )


def _condition_target() -> _Target:
    cond = threadkit.Condition()  # never notified

    def body(stamp: list[float]) -> None:
        with cond:
            _stamp_cancelled(cond.wait, stamp)

    return _ScopeTarget("condition", body, cond, "wait")


def _sleep_target() -> _Target:
    return _ScopeTarget(
        "sleep", lambda stamp: _stamp_cancelled(lambda: threadkit.sleep(3600), stamp), None, "sleep"
    )


@dataclass(frozen=True)
class LatencyCase:
    name: str
    label: str
    make: Callable[[], _Target]


LATENCY_CASES = [
    LatencyCase("event_wait", "scope.cancel(), parked in Event.wait()", _event_target),
    LatencyCase("lock_acquire", "scope.cancel(), parked in Lock.acquire()", _lock_target),
    LatencyCase("condition_wait", "scope.cancel(), parked in Condition.wait()", _condition_target),
    LatencyCase("sleep", "scope.cancel(), parked in threadkit.sleep()", _sleep_target),
    LatencyCase("thread_cancel", "Thread.cancel(), parked in Event.wait()", _ThreadCancelTarget),
]


@dataclass
class LatencyResult:
    case: LatencyCase
    target: _Target | None = None
    samples: list[float] = field(default_factory=list)
    error: str | None = None


def run_latency(trials: int, warmup: int, settle: float) -> list[LatencyResult]:
    results = [LatencyResult(case) for case in LATENCY_CASES]
    for res in results:
        try:
            res.target = res.case.make()
            res.target.start()
        except Exception as exc:
            _fail(res, "start", exc)

    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        total = warmup + trials
        for i in range(total):
            if i % 50 == 0:
                gc.collect()
            if i == warmup or (i > warmup and (i - warmup) % 200 == 0):
                progress(f"latency trial {i - warmup + 1}/{trials}")
            shift = i % len(results)
            for res in results[shift:] + results[:shift]:
                if res.error is not None or res.target is None:
                    continue
                try:
                    latency = res.target.trial(settle)
                except Exception as exc:
                    where = f"trial {i - warmup + 1}" if i >= warmup else f"warm-up {i + 1}"
                    _fail(res, where, exc)
                    continue
                if i >= warmup:
                    res.samples.append(latency)
    finally:
        if gc_was_enabled:
            gc.enable()
        for res in results:
            if res.target is not None:
                try:
                    res.target.close()
                except Exception as exc:
                    _fail(res, "close", exc)
    return results


def _fail(res: LatencyResult | IdleResult, where: str, exc: BaseException) -> None:
    if res.error is None:
        res.error = f"{where}: {type(exc).__name__}: {exc}"
    print(f"\n!! case {res.case.name!r} failed ({where}):", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_row(res: LatencyResult) -> list[str]:
    case = res.case
    if res.error is not None or not res.samples:
        return [case.name, case.label, str(len(res.samples)), *["-"] * 6, "ERROR"]
    values = sorted(res.samples)
    us = [_percentile(values, q) * 1e6 for q in (0.0, 50.0, 90.0, 99.0, 100.0)]
    slow = sum(v >= _LATENCY_GOAL for v in values)
    p99 = _percentile(values, 99.0)
    return [
        case.name,
        case.label,
        str(len(values)),
        *(f"{v:.1f}" for v in us),
        str(slow),
        "yes" if p99 < _LATENCY_GOAL else "no",
    ]


# --------------------------------------------------------------------------------------
# Part 2: idle scope cost
# --------------------------------------------------------------------------------------


def _time_lock(lock: Any, n: int) -> float:
    """Seconds per uncontended ``with lock: pass``, unrolled 10x."""
    loops = max(1, n // _UNROLL)
    t0 = perf_counter()
    for _ in range(loops):
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
        with lock:
            pass
    return (perf_counter() - t0) / (loops * _UNROLL)


def _time_event_wait(event: Any, n: int) -> float:
    """Seconds per ``event.wait()`` on a set Event, unrolled 10x."""
    loops = max(1, n // _UNROLL)
    wait = event.wait
    t0 = perf_counter()
    for _ in range(loops):
        wait()
        wait()
        wait()
        wait()
        wait()
        wait()
        wait()
        wait()
        wait()
        wait()
    return (perf_counter() - t0) / (loops * _UNROLL)


def _time_cond_notify(cond: Any, n: int) -> float:
    """Seconds per ``with cond: cond.notify()`` (no waiters), unrolled 10x."""
    loops = max(1, n // _UNROLL)
    notify = cond.notify
    t0 = perf_counter()
    for _ in range(loops):
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
        with cond:
            notify()
    return (perf_counter() - t0) / (loops * _UNROLL)


def _set_event() -> Any:
    event = threadkit.Event()
    event.set()
    return event


@dataclass(frozen=True)
class IdleCase:
    name: str
    label: str
    make: Callable[[], Any]
    func: Callable[[Any, int], float]


IDLE_CASES = [
    IdleCase("lock", "Lock: `with lock: pass`", threadkit.Lock, _time_lock),
    IdleCase("event_wait", "Event (set): `event.wait()`", _set_event, _time_event_wait),
    IdleCase(
        "condition_notify",
        "Condition: `with cond: cond.notify()`",
        threadkit.Condition,
        _time_cond_notify,
    ),
]


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    scope: Callable[[], AbstractContextManager[Any]] | None
    armed: int  # expected value of threadkit._core.armed[0] inside


NO_SCOPE = Variant("none", "no scope", None, 0)
IDLE_SCOPE = Variant("idle", "idle CancelScope()", threadkit.CancelScope, 0)
DEADLINE_SCOPE = Variant(
    "deadline", "move_on_after(3600) (armed)", lambda: threadkit.move_on_after(3600), 1
)
VARIANTS = [NO_SCOPE, IDLE_SCOPE, DEADLINE_SCOPE]


@dataclass
class IdleResult:
    case: IdleCase
    n: int = 0
    #: The one primitive of the case, shared by all variants (same memory layout).
    obj: object = None
    per_op: dict[str, list[float]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None


def _check_armed(expected: int) -> None:
    armed = _core.armed[0]
    if armed != expected:
        raise RuntimeError(f"threadkit._core.armed is {armed}, expected {expected}")


def run_idle_sample(case: IdleCase, obj: object, variant: Variant, n: int) -> float:
    """One timed sample on ``obj`` in ``variant``'s scope, GC quiesced, guard armed."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    faulthandler.dump_traceback_later(_timeout, exit=True)
    try:
        if variant.scope is None:
            _check_armed(variant.armed)
            seconds = case.func(obj, n)
        else:
            with variant.scope():
                _check_armed(variant.armed)
                seconds = case.func(obj, n)
    finally:
        faulthandler.cancel_dump_traceback_later()
        if gc_was_enabled:
            gc.enable()
    if not seconds > 0.0:
        raise RuntimeError(f"non-positive time per op: {seconds!r}")
    return seconds


def _estimate_per_op(case: IdleCase, obj: object, variant: Variant, calib_s: float) -> float:
    """Grow n until a sample lasts ``calib_s``; seconds per op (best of the last two)."""
    n = _UNROLL
    while True:
        per_op = run_idle_sample(case, obj, variant, n)
        spent = per_op * n
        if spent >= calib_s or n >= 10**9:
            return min(per_op, run_idle_sample(case, obj, variant, n))
        n = int(n * min(100.0, max(2.0, calib_s * 1.2 / spent)))


def run_idle(rounds: int, sample_s: float) -> list[IdleResult]:
    results = [IdleResult(case) for case in IDLE_CASES]
    sub_s = sample_s / _SUBSAMPLES
    for res in results:
        progress(f"calibrating {res.case.name}")
        try:
            res.obj = res.case.make()
            per_ops = [_estimate_per_op(res.case, res.obj, v, sub_s / 2) for v in VARIANTS]
        except Exception as exc:
            _fail(res, "calibration", exc)
            continue
        res.n = max(_UNROLL, round(sub_s / statistics.fmean(per_ops)))
        res.per_op = {v.key: [] for v in VARIANTS}
        res.ratios = {v.key: [] for v in VARIANTS if v is not NO_SCOPE}

    nv = len(VARIANTS)
    for rnd in range(rounds):
        progress(f"idle-cost round {rnd + 1}/{rounds}")
        for res in results:
            if res.error is not None:
                continue
            subs: dict[str, list[float]] = {v.key: [] for v in VARIANTS}
            try:
                for j in range(_SUBSAMPLES):
                    shift = (rnd + j) % nv
                    for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                        subs[variant.key].append(run_idle_sample(res.case, res.obj, variant, res.n))
            except Exception as exc:
                _fail(res, f"round {rnd + 1}", exc)
                continue
            # Load on the machine only ever makes a sub-sample slower: keep the fastest.
            best = {key: min(values) for key, values in subs.items()}
            base = best[NO_SCOPE.key]
            for key, seconds in best.items():
                res.per_op[key].append(seconds)
                if key != NO_SCOPE.key:
                    res.ratios[key].append(seconds / base)
    return results


def idle_rows(res: IdleResult) -> list[list[str]]:
    case = res.case
    rows = []
    for variant in (IDLE_SCOPE, DEADLINE_SCOPE):
        goal = f"<= {_IDLE_GOAL:.2f}" if variant is IDLE_SCOPE else "none (armed)"
        ratios = res.ratios.get(variant.key, [])
        if res.error is not None or not ratios:
            rows.append([case.name, case.label, variant.label, "-", "-", "-", "-", goal, "ERROR"])
            continue
        p25, med, p75 = quartiles(ratios)
        if variant is IDLE_SCOPE:
            verdict = "yes" if med <= _IDLE_GOAL else "no"
            if p25 <= _IDLE_GOAL < p75:
                verdict += " (marginal)"
        else:
            verdict = "-"
        rows.append(
            [
                case.name,
                case.label,
                variant.label,
                fmt_time(statistics.median(res.per_op[NO_SCOPE.key])),
                fmt_time(statistics.median(res.per_op[variant.key])),
                f"{med:.3f}",
                f"{p25:.3f}-{p75:.3f}",
                goal,
                verdict,
            ]
        )
    return rows


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def _loadavg() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def print_header(args: argparse.Namespace) -> None:
    print_platform()
    version = getattr(threadkit, "__version__", "?")
    print(f"threadkit {version} from {threadkit.__file__}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"load average (1/5/15 min) at start: {_loadavg()}")
    print()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark threadkit's cancellation: cancel latency and idle scope cost.",
    )
    parser.add_argument(
        "--part",
        choices=("all", "latency", "idle"),
        default="all",
        help="run both parts (default) or only one",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=None,
        help="cancel-latency trials per case (default 1000, 50 with --quick)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved idle-cost rounds (default 15, 3 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fast smoke run: 50 trials, 3 rounds, ~5 ms samples",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=None,
        help="target duration of one idle-cost sample (default 50, 5 with --quick)",
    )
    parser.add_argument(
        "--settle-us",
        type=float,
        default=500.0,
        help="extra sleep after the worker is seen parked, before cancel() (default 500)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before a stuck trial or sample counts as failed (default 30)",
    )
    args = parser.parse_args(argv)
    if args.trials is None:
        args.trials = 50 if args.quick else 1000
    if args.rounds is None:
        args.rounds = 3 if args.quick else 15
    if args.sample_ms is None:
        args.sample_ms = 5.0 if args.quick else 50.0
    if args.trials < 1 or args.rounds < 1 or args.sample_ms <= 0 or args.timeout <= 0:
        parser.error("--trials, --rounds, --sample-ms and --timeout must be positive")
    if args.settle_us < 0:
        parser.error("--settle-us must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    global _timeout
    args = parse_args(argv)
    _timeout = args.timeout
    print_header(args)
    failed: list[str] = []

    if args.part in ("all", "latency"):
        warmup = max(3, min(20, args.trials // 50))
        lat = run_latency(args.trials, warmup, args.settle_us * 1e-6)
        print(
            f"Cancel latency: cancel() in the main thread -> Cancelled caught in the worker; "
            f"{args.trials} trials per case (+{warmup} warm-up), interleaved, "
            f"settle {args.settle_us:g} us"
        )
        headers = [
            "case",
            "cancelled by / parked in",
            "trials",
            "min us",
            "median us",
            "p90 us",
            "p99 us",
            "max us",
            ">=1ms",
            "p99 < 1 ms",
        ]
        print(render(headers, [latency_row(r) for r in lat], args.markdown, 2))
        print(
            "Goal: p99 < 1 ms on an idle machine. Tails are set by the OS scheduler and the "
            "GIL hand-off;\n      judge them against the load average."
        )
        print()
        failed += [r.case.name for r in lat if r.error is not None]

    if args.part in ("all", "idle"):
        idle = run_idle(args.rounds, args.sample_ms / 1e3)
        print(
            f"Idle scope cost: per-op time inside an entered scope / outside any scope; "
            f"{args.rounds} rounds, interleaved, ~{args.sample_ms:g} ms per variant per round "
            f"({_SUBSAMPLES} sub-samples, fastest kept)"
        )
        headers = [
            "case",
            "operation",
            "scope",
            "no scope/op",
            "in scope/op",
            "ratio",
            "IQR p25-p75",
            "goal",
            "met",
        ]
        rows = [row for r in idle for row in idle_rows(r)]
        print(render(headers, rows, args.markdown, 3))
        print(
            "Note: a scope with a deadline arms the cancellation checks (threadkit._core.armed "
            "> 0): every blocking call\n      then walks the thread's scope stack and reads the "
            "clock, so it is expected to cost more; no goal."
        )
        counts = ", ".join(f"{r.case.name}={r.n}" for r in idle if r.error is None)
        if counts:
            print(f"ops per sub-sample: {counts}")
        print()
        failed += [r.case.name for r in idle if r.error is not None]

    print(f"load average (1/5/15 min) at end: {_loadavg()}")
    if failed:
        print(f"FAILED cases: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
