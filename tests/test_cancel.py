"""Cancel scopes, deadlines and ``Thread.cancel`` against every blocking call.

One class per area:

* ``TestCancelWakesParked``: a thread parked in each blocking call is woken at once by
  ``cancel()`` from another thread, and the primitive is left consistent.
* ``TestDeadlineWakesParked``: the same, with a short scope deadline instead.
* ``TestEntryChecks``: each blocking call raises ``Cancelled`` in an already cancelled
  scope even when it would not block; calls that never block never raise it.
* ``TestTimeoutVersusDeadline``: a call's own ``timeout=`` keeps ``threading``'s
  meaning; a scope's deadline raises ``Cancelled``, which that scope catches.
* ``TestSafetyRaces``: a cancelled waiter never swallows a notify, a release or a
  permit; Condition.wait holds the lock again; a cancelled Barrier.wait breaks it.
* ``TestScopes``: nesting, shields, properties and misuse of ``CancelScope``.
* ``TestThreadCancel``: ``Thread.cancel()``, ``result()`` and ``excepthook``.
* ``TestTiming``: ``current_time``, ``current_effective_deadline``, ``sleep``,
  ``checkpoint``, ``fail_after``/``fail_at``.
* ``TestSleepArguments``: ``sleep`` takes what ``time.sleep`` takes and refuses the
  rest with the same exception, on the running Python.
* ``TestRandomSchedules``: Hypothesis runs random schedules of operations across a
  few threads, with cancellations and deadlines injected, and checks the invariants.

Nothing synchronises by sleeping: a test learns that a thread is parked from the core
(``wait_until_parked``), or polls real state with a bound (``wait_until``). Scaffolding
(start flags, the release of helper threads) uses the *stdlib* ``threading``, so that
a threadkit bug shows up as a failed assertion, not a wedged harness.
"""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

import threadkit
from helpers import (
    cancel_racing,
    finish,
    join_all,
    parked,
    spawn,
    wait_until,
    wait_until_parked,
)
from threadkit import Cancelled, CancelScope, _core

pytestmark = pytest.mark.timeout(30)

#: A scope deadline long enough for a thread to be parked when it expires (seconds).
DEADLINE = 0.05
#: How long a woken thread may take to finish; far above what a prompt wake-up needs.
PROMPT = 2.0
#: Rounds of each race loop.
RACE_ROUNDS = 200


# -- helpers -----------------------------------------------------------------------------
@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace ``threadkit.excepthook`` with a recorder; return what it records."""
    calls: list[Any] = []
    monkeypatch.setattr(threadkit, "excepthook", calls.append)
    return calls


def sleeping(thread: threadkit.Thread) -> bool:
    """True if ``thread`` is parked in ``threadkit.sleep`` (its queue is private)."""
    rec = _core.record_for(thread.ident or 0)
    node = None if rec is None else rec.waiting
    return node is not None and node.operation == "sleep" and node.state is _core.WAITING


def join_promptly(thread: threadkit.Thread, since: float | None = None) -> None:
    """Join ``thread``, failing if it does not end within ``PROMPT`` seconds."""
    thread.join(PROMPT)
    assert not thread.is_alive(), f"{thread} was not woken"
    if since is not None:
        assert time.monotonic() - since < PROMPT


def in_cancelled_scope(call: Callable[[], object]) -> object:
    """Run ``call`` in a cancelled scope; it must not raise ``Cancelled``."""
    with CancelScope() as scope:
        scope.cancel()
        result = call()
    assert not scope.cancelled_caught
    return result


def raises_at_entry(call: Callable[[], object]) -> None:
    """``call`` raises ``Cancelled`` carrying the cancelled scope around it."""
    with CancelScope() as scope:
        scope.cancel()
        with pytest.raises(Cancelled) as info:
            call()
    assert info.value.scope is scope
    assert not scope.cancelled_caught


class Gate:
    """A helper thread that holds something until ``open()`` (stdlib-synchronised)."""

    def __init__(self, hold: Callable[[], object], let_go: Callable[[], object]) -> None:
        self._go = threading.Event()
        self._held = threading.Event()

        def run() -> None:
            hold()
            self._held.set()
            self._go.wait(10)
            let_go()

        self.thread = spawn(run)
        assert self._held.wait(5)

    def open(self) -> None:
        self._go.set()
        finish([self.thread])


# -- the blocking calls ------------------------------------------------------------------
class Case:
    """One blocking call that blocks until interrupted, and what "consistent" means.

    ``block(timeout)`` runs in the thread under test and blocks (until its timeout, if
    given); ``check()`` runs afterwards, in the test's thread, and asserts that the
    primitive is consistent; ``close()`` lets everything go and checks again.
    """

    resource: object

    def block(self, timeout: float | None = None) -> object:
        raise NotImplementedError

    def wait_parked(self, thread: threadkit.Thread) -> None:
        wait_until_parked(self.resource, 1, timeout=5)

    def timed_out(self, outcome: tuple[str, object]) -> None:
        """Assert ``outcome`` is ``threading``'s answer to the call's own timeout."""
        assert outcome == ("returned", False)

    def check(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LockAcquire(Case):
    def __init__(self) -> None:
        self.lock = self.resource = threadkit.Lock()
        assert self.lock.acquire()  # held by the test's thread

    def block(self, timeout: float | None = None) -> object:
        return self.lock.acquire(timeout=-1 if timeout is None else timeout)

    def check(self) -> None:
        assert self.lock.locked()  # still the holder's
        assert len(self.lock._queue) == 0
        assert parked(self.lock) == 0

    def close(self) -> None:
        self.lock.release()
        assert self.lock.acquire(blocking=False)
        self.lock.release()


class RLockAcquire(Case):
    def __init__(self) -> None:
        self.lock = self.resource = threadkit.RLock()
        self.gate = Gate(self.lock.acquire, self.lock.release)  # held by another thread

    def block(self, timeout: float | None = None) -> object:
        return self.lock.acquire(timeout=-1 if timeout is None else timeout)

    def check(self) -> None:
        assert self.lock._holder() == self.gate.thread.ident
        assert len(self.lock._queue) == 0
        assert parked(self.lock) == 0

    def close(self) -> None:
        self.gate.open()
        assert self.lock.acquire(blocking=False)
        assert self.lock._recursion_count() == 1
        self.lock.release()


class ConditionWait(Case):
    """``Condition.wait`` over a Lock or an RLock acquired ``depth`` times."""

    def __init__(self, lock_type: type, depth: int = 1, wait_for: bool = False) -> None:
        self.lock = lock_type()
        self.cond = self.resource = threadkit.Condition(self.lock)
        self.depth = depth
        self.wait_for = wait_for
        self.owned_after: list[bool] = []
        self.depth_after: list[int] = []

    def block(self, timeout: float | None = None) -> object:
        for _ in range(self.depth):
            self.cond.acquire()
        try:
            if self.wait_for:
                return self.cond.wait_for(lambda: False, timeout)
            return self.cond.wait(timeout)
        finally:
            self.owned_after.append(self.cond._is_owned())
            if isinstance(self.lock, threadkit.RLock):
                self.depth_after.append(self.lock._recursion_count())
            for _ in range(self.depth):
                self.cond.release()

    def check(self) -> None:
        # The lock was held again when the call returned or raised, at full depth.
        assert self.owned_after == [True]
        if isinstance(self.lock, threadkit.RLock):
            assert self.depth_after == [self.depth]
        assert len(self.cond._waiters) == 0
        assert len(self.lock._queue) == 0
        assert parked(self.cond) == 0
        assert self.cond.acquire(blocking=False)  # and released by the caller's code
        self.cond.release()


class SemaphoreAcquire(Case):
    def __init__(self, bounded: bool = False) -> None:
        if bounded:
            self.sem = threadkit.BoundedSemaphore(1)
            assert self.sem.acquire()  # the one permit is the test's
        else:
            self.sem = threadkit.Semaphore(0)
        self.resource = self.sem
        self.bounded = bounded

    def block(self, timeout: float | None = None) -> object:
        return self.sem.acquire(timeout=timeout)

    def check(self) -> None:
        assert self.sem._value == 0
        assert len(self.sem._queue) == 0
        assert parked(self.sem) == 0

    def close(self) -> None:
        # The next permit is not swallowed by a ghost waiter.
        self.sem.release()
        assert self.sem._value == 1
        assert self.sem.acquire(blocking=False)


class EventWait(Case):
    def __init__(self) -> None:
        self.event = self.resource = threadkit.Event()

    def block(self, timeout: float | None = None) -> object:
        return self.event.wait(timeout)

    def check(self) -> None:
        assert not self.event.is_set()
        assert len(self.event._queue) == 0
        assert parked(self.event) == 0

    def close(self) -> None:
        self.event.set()
        assert self.event.wait(0)


class BarrierWait(Case):
    def __init__(self) -> None:
        self.barrier = self.resource = threadkit.Barrier(2)

    def block(self, timeout: float | None = None) -> object:
        return self.barrier.wait(timeout)

    def timed_out(self, outcome: tuple[str, object]) -> None:
        kind, value = outcome
        assert kind == "raised" and isinstance(value, threadkit.BrokenBarrierError)

    def check(self) -> None:
        # An interrupted wait breaks the barrier, like any interrupted wait does.
        assert self.barrier.broken
        assert self.barrier.n_waiting == 0
        assert len(self.barrier._gen.queue) == 0
        assert parked(self.barrier) == 0

    def close(self) -> None:
        self.barrier.reset()
        assert not self.barrier.broken


class ThreadWait(Case):
    """``join``, ``result`` or ``exception`` of a thread that runs until ``close()``."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.go = threading.Event()
        self.target = self.resource = spawn(lambda: self.go.wait(10) and "done")

    def block(self, timeout: float | None = None) -> object:
        return getattr(self.target, self.method)(timeout)

    def timed_out(self, outcome: tuple[str, object]) -> None:
        kind, value = outcome
        if self.method == "join":
            assert outcome == ("returned", None)
        else:
            assert kind == "raised" and isinstance(value, TimeoutError)
        assert self.target.is_alive()

    def check(self) -> None:
        assert self.target.is_alive()  # cancelling a joiner does not touch the thread
        assert not self.target.cancel_called
        assert len(self.target._tk_done) == 0
        assert parked(self.target) == 0

    def close(self) -> None:
        self.go.set()
        self.target.join(5)
        assert not self.target.is_alive()
        assert self.target.result() == "done"


class Sleep(Case):
    resource = None

    def block(self, timeout: float | None = None) -> object:
        return threadkit.sleep(60 if timeout is None else timeout)

    def wait_parked(self, thread: threadkit.Thread) -> None:
        wait_until(lambda: sleeping(thread), timeout=5)

    def timed_out(self, outcome: tuple[str, object]) -> None:
        assert outcome == ("returned", None)

    def check(self) -> None:
        pass


CASES: dict[str, Callable[[], Case]] = {
    "Lock.acquire": LockAcquire,
    "RLock.acquire": RLockAcquire,
    "Condition.wait[Lock]": lambda: ConditionWait(threadkit.Lock),
    "Condition.wait[RLock]": lambda: ConditionWait(threadkit.RLock),
    "Condition.wait[RLock x3]": lambda: ConditionWait(threadkit.RLock, depth=3),
    "Condition.wait_for": lambda: ConditionWait(threadkit.RLock, wait_for=True),
    "Semaphore.acquire": SemaphoreAcquire,
    "BoundedSemaphore.acquire": lambda: SemaphoreAcquire(bounded=True),
    "Event.wait": EventWait,
    "Barrier.wait": BarrierWait,
    "Thread.join": lambda: ThreadWait("join"),
    "Thread.result": lambda: ThreadWait("result"),
    "Thread.exception": lambda: ThreadWait("exception"),
    "sleep": Sleep,
}
case_param = pytest.mark.parametrize("make", list(CASES.values()), ids=list(CASES))


def outcome_of(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return ("returned", call())
    except Exception as exc:
        return ("raised", exc)


class Worker:
    """Runs ``case.block()`` inside the scope ``make_scope()`` in a threadkit thread."""

    def __init__(self, case: Case, make_scope: Callable[[], CancelScope]) -> None:
        self.case = case
        self.entered = threading.Event()
        self.scope: CancelScope | None = None
        self.outcome: list[tuple[str, object]] = []
        self.started = self.ended = 0.0

        def run() -> None:
            self.started = time.monotonic()  # before a move_on_after starts counting
            with make_scope() as scope:
                self.scope = scope
                self.entered.set()
                self.outcome.append(outcome_of(case.block))
            self.ended = time.monotonic()

        self.thread = spawn(run)
        assert self.entered.wait(5)

    def finish(self) -> None:
        join_promptly(self.thread)
        self.thread.result()


# =======================================================================================
class TestCancelWakesParked:
    """``scope.cancel()`` from another thread wakes a parked thread at once."""

    @case_param
    def test_cancel_wakes_parked_call(self, make: Callable[[], Case]) -> None:
        case = make()
        worker = Worker(case, CancelScope)
        try:
            case.wait_parked(worker.thread)
            assert worker.scope is not None
            cancelled_at = time.monotonic()
            worker.scope.cancel()
            join_promptly(worker.thread, since=cancelled_at)
            worker.finish()
            # Cancelled left the call and was caught by the scope; nothing returned.
            assert worker.outcome == []
            assert worker.scope.cancelled_caught
            assert worker.scope.cancel_called
            case.check()
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_cancel_wakes_timer_wait(self, hook_calls: list[Any]) -> None:
        fired: list[int] = []
        timer = threadkit.Timer(60, fired.append, args=(1,))
        timer.start()
        wait_until_parked(timer.finished, 1, timeout=5)
        threadkit.Thread.cancel(timer)  # the thread's cancel, not Timer's own
        join_promptly(timer)
        with pytest.raises(Cancelled):
            timer.result()
        assert fired == []
        assert timer.finished.is_set()
        assert len(timer.finished._queue) == 0
        assert hook_calls == []

    def test_timer_own_cancel_still_works(self) -> None:
        timer = threadkit.Timer(60, lambda: 1)
        timer.start()
        wait_until_parked(timer.finished, 1, timeout=5)
        timer.cancel()
        join_promptly(timer)
        assert timer.result() is None
        assert not timer.cancel_called

    def test_cancel_reaches_only_its_own_scope(self) -> None:
        """Two threads, each in its own scope: cancelling one leaves the other parked."""
        a, b = EventWait(), EventWait()
        wa, wb = Worker(a, CancelScope), Worker(b, CancelScope)
        try:
            a.wait_parked(wa.thread)
            b.wait_parked(wb.thread)
            assert wa.scope is not None
            wa.scope.cancel()
            join_promptly(wa.thread)
            assert wb.thread.is_alive() and parked(b.event) == 1
        finally:
            a.close()
            b.close()
            finish([wa.thread, wb.thread])
        assert wb.outcome == [("returned", True)]


class TestDeadlineWakesParked:
    """A scope deadline passing wakes a parked thread at once, and the scope catches it."""

    @case_param
    def test_deadline_wakes_parked_call(self, make: Callable[[], Case]) -> None:
        case = make()
        worker = Worker(case, lambda: threadkit.move_on_after(DEADLINE))
        try:
            worker.finish()
            assert worker.outcome == []
            assert worker.scope is not None and worker.scope.cancelled_caught
            # It waited for the deadline (it did not fail at entry), and not much longer.
            elapsed = worker.ended - worker.started
            assert DEADLINE <= elapsed < PROMPT
            case.check()
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_deadline_wakes_timer_wait(self, hook_calls: list[Any]) -> None:
        fired: list[int] = []

        class DeadlineTimer(threadkit.Timer):
            def run(self) -> Any:
                with threadkit.move_on_after(DEADLINE) as scope:
                    return super().run()
                assert scope.cancelled_caught
                return "moved on"

        timer = DeadlineTimer(60, fired.append, args=(1,))
        timer.start()
        join_promptly(timer)
        assert timer.result() == "moved on"
        assert fired == [] and timer.finished.is_set()
        assert hook_calls == []

    def test_fail_after_on_parked_call(self) -> None:
        case = EventWait()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError), threadkit.fail_after(DEADLINE):
            case.block()
        assert time.monotonic() - t0 < PROMPT
        case.check()


# =======================================================================================
class TestEntryChecks:
    """Every blocking call checks on entry; calls that never block never raise."""

    def test_lock_acquire_of_free_lock(self) -> None:
        lock = threadkit.Lock()
        raises_at_entry(lock.acquire)
        raises_at_entry(lambda: lock.acquire(timeout=5))
        raises_at_entry(lambda: lock.__enter__())
        assert not lock.locked()

    def test_rlock_acquire_free_and_reentrant(self) -> None:
        lock = threadkit.RLock()
        raises_at_entry(lock.acquire)
        assert lock._recursion_count() == 0
        lock.acquire()
        lock.acquire()
        raises_at_entry(lock.acquire)  # even a re-entry, which never blocks
        assert lock._recursion_count() == 2
        lock.release()
        lock.release()
        assert lock._holder() is None

    @pytest.mark.parametrize("lock_type", [threadkit.Lock, threadkit.RLock])
    def test_condition_wait_keeps_lock(self, lock_type: type) -> None:
        cond = threadkit.Condition(lock_type())
        with cond:
            raises_at_entry(cond.wait)
            raises_at_entry(lambda: cond.wait(0))
            assert cond._is_owned()
            assert len(cond._waiters) == 0
        assert cond.acquire(blocking=False)
        cond.release()

    def test_condition_wait_for_with_true_predicate(self) -> None:
        cond = threadkit.Condition()
        with cond:
            raises_at_entry(lambda: cond.wait_for(lambda: True))
            raises_at_entry(lambda: cond.wait_for(lambda: True, 0))
            assert cond._is_owned()
            assert len(cond._waiters) == 0

    @pytest.mark.parametrize("sem_type", [threadkit.Semaphore, threadkit.BoundedSemaphore])
    def test_semaphore_acquire_with_permits(self, sem_type: type) -> None:
        sem = sem_type(2)
        raises_at_entry(sem.acquire)
        raises_at_entry(lambda: sem.acquire(timeout=0))
        raises_at_entry(lambda: sem.__enter__())
        assert sem._value == 2

    def test_event_wait_on_set_event(self) -> None:
        event = threadkit.Event()
        event.set()
        raises_at_entry(event.wait)
        raises_at_entry(lambda: event.wait(0))

    def test_barrier_wait_that_would_trip(self) -> None:
        barrier = threadkit.Barrier(1)
        raises_at_entry(barrier.wait)
        assert not barrier.broken and barrier.n_waiting == 0
        assert barrier.wait() == 0

    def test_join_result_exception_of_finished_thread(self) -> None:
        t = spawn(lambda: 42)
        t.join(5)
        assert not t.is_alive()
        raises_at_entry(t.join)
        raises_at_entry(lambda: t.join(0))
        raises_at_entry(t.result)
        raises_at_entry(t.exception)
        assert t.result() == 42

    def test_sleep_and_checkpoint(self) -> None:
        raises_at_entry(lambda: threadkit.sleep(0))
        raises_at_entry(lambda: threadkit.sleep(0.001))
        raises_at_entry(threadkit.checkpoint)

    def test_expired_deadline_counts_as_cancelled(self) -> None:
        lock = threadkit.Lock()
        with threadkit.move_on_after(0) as scope:
            lock.acquire()
            pytest.fail("acquire did not check the expired deadline")
        assert scope.cancelled_caught and scope.cancel_called
        assert not lock.locked()

    def test_non_blocking_calls_never_raise(self) -> None:
        lock = threadkit.Lock()
        rlock = threadkit.RLock()
        sem = threadkit.Semaphore(1)
        bsem = threadkit.BoundedSemaphore(1)
        event = threadkit.Event()
        cond = threadkit.Condition()
        barrier = threadkit.Barrier(2)
        t = threadkit.Thread(target=lambda: None, daemon=True)
        with cond:
            rlock.acquire()
            with CancelScope() as scope:
                scope.cancel()
                assert lock.acquire(blocking=False)
                assert not lock.acquire(blocking=False)
                lock.release()
                assert rlock.acquire(blocking=False)  # a re-entry
                rlock.release()
                rlock.release()
                assert rlock.acquire(False)
                rlock.release()
                assert sem.acquire(blocking=False)
                assert not sem.acquire(blocking=False)
                sem.release()
                sem.release(2)
                assert bsem.acquire(blocking=False)
                bsem.release()
                event.set()
                assert event.is_set()
                event.clear()
                cond.notify()
                cond.notify_all()
                barrier.abort()
                barrier.reset()
                t.start()  # start() never blocks in threadkit
                assert isinstance(t.is_alive(), bool)
                t.cancel()
            assert not scope.cancelled_caught
        assert not lock.locked() and rlock._holder() is None
        assert sem._value == 3 and bsem._value == 1
        join_promptly(t)

    def test_non_blocking_acquire_of_held_lock_returns_false(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        assert in_cancelled_scope(lambda: lock.acquire(blocking=False)) is False
        assert in_cancelled_scope(lambda: lock.acquire(False)) is False
        lock.release()
        sem = threadkit.Semaphore(0)
        assert in_cancelled_scope(lambda: sem.acquire(blocking=False)) is False
        assert in_cancelled_scope(lambda: sem.acquire(False)) is False

    def test_uncancelled_scope_changes_nothing(self) -> None:
        lock = threadkit.Lock()
        event = threadkit.Event()
        event.set()
        with CancelScope() as scope:
            with lock:
                pass
            assert event.wait()
            threadkit.checkpoint()
        assert not scope.cancel_called and not scope.cancelled_caught


# =======================================================================================
TIMEOUT_CASES = {k: v for k, v in CASES.items() if k != "Condition.wait[RLock x3]"}


class TestTimeoutVersusDeadline:
    """``timeout=`` keeps ``threading``'s meaning; a scope deadline raises ``Cancelled``."""

    def test_lock_call_timeout_inside_long_deadline(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        with threadkit.move_on_after(10) as scope:
            assert lock.acquire(timeout=0.01) is False
        assert not scope.cancel_called and not scope.cancelled_caught
        lock.release()

    def test_lock_scope_deadline_before_call_timeout(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        t0 = time.monotonic()
        with threadkit.move_on_after(0.01) as scope:
            lock.acquire(timeout=10)
            pytest.fail("the scope's deadline did not raise")
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < PROMPT
        assert lock.locked() and len(lock._queue) == 0
        lock.release()

    @pytest.mark.parametrize("make", list(TIMEOUT_CASES.values()), ids=list(TIMEOUT_CASES))
    def test_call_timeout_wins(self, make: Callable[[], Case]) -> None:
        case = make()
        try:
            with threadkit.move_on_after(10) as scope:
                outcome = outcome_of(lambda: case.block(0.01))
            case.timed_out(outcome)
            assert not scope.cancel_called and not scope.cancelled_caught
        finally:
            case.close()

    @pytest.mark.parametrize("make", list(TIMEOUT_CASES.values()), ids=list(TIMEOUT_CASES))
    def test_scope_deadline_wins(self, make: Callable[[], Case]) -> None:
        case = make()
        reached: list[object] = []
        try:
            t0 = time.monotonic()
            with threadkit.move_on_after(0.01) as scope:
                reached.append(outcome_of(lambda: case.block(10)))
            assert time.monotonic() - t0 < PROMPT
            assert reached == []
            assert scope.cancelled_caught
            case.check()
        finally:
            case.close()

    def test_equal_timeouts_stay_consistent(self) -> None:
        """Call timeout and scope deadline at about the same instant: either answer,
        but the lock is left alone and no waiter is left behind."""
        lock = threadkit.Lock()
        lock.acquire()
        for _ in range(20):
            with threadkit.move_on_after(0.002):
                assert lock.acquire(timeout=0.002) is False  # unless Cancelled
            assert len(lock._queue) == 0 and lock.locked()
        lock.release()


# =======================================================================================
class GatedScope(CancelScope):
    """A scope that pauses its waiter right after the waiter has *seen* it cancelled.

    ``WaitQueue.park`` checks for cancellation (reading ``_cancel_called``) while the
    node is still WAITING, then withdraws the node. A signal landing between the two
    is the case where the cancelled waiter must pass the signal on; it is microseconds
    wide, so a race loop almost never hits it. Here, once ``gate_for`` names the
    waiter's thread, the waiter's first read of the flag after ``cancel()`` sets
    ``paused`` and waits for ``resume``: the test signals in between.
    """

    def __init__(self) -> None:
        self._flag = False
        super().__init__()
        self.gate_for: int | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    @property  # type: ignore[override]
    def _cancel_called(self) -> bool:
        flag = self._flag
        if flag and self.gate_for is not None and self.gate_for == threading.get_ident():
            self.gate_for = None
            self.paused.set()
            self.resume.wait(5)
        return flag

    @_cancel_called.setter
    def _cancel_called(self, value: bool) -> None:
        self._flag = value

    def cancel_between(self, waiter: threadkit.Thread, signal: Callable[[], object]) -> None:
        """Cancel, let ``waiter`` see it, run ``signal``, then let ``waiter`` go on."""
        self.gate_for = waiter.ident
        self.cancel()
        assert self.paused.wait(5), "the waiter never looked at the cancellation"
        try:
            signal()
        finally:
            self.resume.set()


def gated(call: Callable[[], object], box: dict[str, Any], name: str) -> None:
    """Run ``call`` in a ``GatedScope`` published as ``box["scope"]``; record the outcome."""
    with GatedScope() as scope:
        box["scope"] = scope
        box[name] = outcome_of(call)
        return
    box[name] = "cancelled"


# =======================================================================================
class TestSafetyRaces:
    """A cancelled waiter never swallows what was meant for it."""

    def test_notify_racing_cancel_is_never_lost(self, fast_switch: None) -> None:
        outcomes = {"a": 0, "b": 0}
        for i in range(RACE_ROUNDS):
            cond = threadkit.Condition(threadkit.Lock() if i % 2 else threadkit.RLock())
            results: dict[str, object] = {}

            def waiter(
                name: str, cond: threadkit.Condition = cond, results: dict = results
            ) -> None:
                with cond:
                    try:
                        results[name] = cond.wait()
                    except Cancelled:
                        results[name] = "cancelled"
                    assert cond._is_owned()

            a = spawn(waiter, "a")
            wait_until_parked(cond, 1, timeout=5)
            b = spawn(waiter, "b")
            wait_until_parked(cond, 2, timeout=5)
            with cancel_racing(a, i) as c, cond:
                cond.notify(1)
            finish([a, c])
            # A's thread has ended, so wherever the notify went, it is there by now.
            b_notified = len(cond._waiters) == 0
            a_consumed = results["a"] is True
            assert a_consumed + b_notified == 1, (i, results, b_notified)
            outcomes["a" if a_consumed else "b"] += 1
            if not b_notified:
                with cond:
                    cond.notify(1)
            finish([b])
            assert results["b"] is True
            assert len(cond._waiters) == 0
        assert sum(outcomes.values()) == RACE_ROUNDS

    def test_semaphore_release_racing_cancel_keeps_the_permit(self, fast_switch: None) -> None:
        for i in range(RACE_ROUNDS):
            sem = threadkit.Semaphore(0)
            results: dict[str, object] = {}

            def acquirer(
                name: str, sem: threadkit.Semaphore = sem, results: dict = results
            ) -> None:
                try:
                    results[name] = sem.acquire()
                except Cancelled:
                    results[name] = "cancelled"

            a = spawn(acquirer, "a")
            wait_until_parked(sem, 1, timeout=5)
            b = spawn(acquirer, "b")
            wait_until_parked(sem, 2, timeout=5)
            with cancel_racing(a, i) as c:
                sem.release()
            finish([a, c])
            a_got = results["a"] is True
            b_got = len(sem._queue) == 0
            assert a_got + b_got + sem._value == 1, (i, results, sem)
            if not b_got:
                sem.release()
            finish([b])
            assert results["b"] is True
            assert sem._value == 0 and len(sem._queue) == 0

    def test_notify_between_cancel_check_and_withdrawal_is_passed_on(self) -> None:
        for lock_type in (threadkit.Lock, threadkit.RLock):
            cond = threadkit.Condition(lock_type())
            box: dict[str, Any] = {}

            def wait(cond: threadkit.Condition = cond) -> object:
                with cond:
                    return cond.wait()

            a = spawn(gated, wait, box, "a")
            wait_until_parked(cond, 1, timeout=5)
            b = spawn(lambda box=box, wait=wait: box.update(b=outcome_of(wait)))
            wait_until_parked(cond, 2, timeout=5)

            def notify(cond: threadkit.Condition = cond) -> None:
                with cond:
                    cond.notify(1)

            box["scope"].cancel_between(a, notify)
            a.join(PROMPT)
            b.join(PROMPT)
            try:
                assert box.get("a") == "cancelled"
                # A was signalled after it saw the cancellation: B must get the notify.
                assert box.get("b") == ("returned", True), "the notify was swallowed"
                assert len(cond._waiters) == 0
            finally:
                with cond:
                    cond.notify_all()
                finish([a, b])

    def test_permit_between_cancel_check_and_withdrawal_is_passed_on(self) -> None:
        for with_next in (True, False):
            sem = threadkit.Semaphore(0)
            box: dict[str, Any] = {}
            a = spawn(gated, sem.acquire, box, "a")
            wait_until_parked(sem, 1, timeout=5)
            threads = [a]
            if with_next:
                threads.append(spawn(lambda box=box, sem=sem: box.update(b=sem.acquire())))
                wait_until_parked(sem, 2, timeout=5)
            box["scope"].cancel_between(a, sem.release)
            join_all(threads)
            assert box["a"] == "cancelled"
            if with_next:
                assert box["b"] is True, "the permit was swallowed"
                assert sem._value == 0
            else:
                assert sem._value == 1, "the permit was swallowed"
            assert len(sem._queue) == 0

    @pytest.mark.parametrize("lock_type", [threadkit.Lock, threadkit.RLock])
    def test_release_between_cancel_check_and_withdrawal_is_passed_on(
        self, lock_type: type
    ) -> None:
        lock = lock_type()
        gate = Gate(lock.acquire, lock.release)
        box: dict[str, Any] = {}
        a = spawn(gated, lock.acquire, box, "a")
        wait_until_parked(lock, 1, timeout=5)

        def take(box: dict[str, Any] = box) -> None:
            box["b"] = lock.acquire()
            lock.release()

        b = spawn(take)
        wait_until_parked(lock, 2, timeout=5)
        box["scope"].cancel_between(a, gate.open)
        # B waits without a timeout: a swallowed wake-up would leave it parked.
        join_all([a, b])
        assert box["a"] == "cancelled" and box["b"] is True
        assert len(lock._queue) == 0
        assert lock.acquire(blocking=False)
        lock.release()

    def test_lock_release_racing_cancel_wakes_someone(self, fast_switch: None) -> None:
        for i in range(RACE_ROUNDS):
            lock = threadkit.Lock() if i % 2 else threadkit.RLock()
            results: dict[str, object] = {}
            gate = Gate(lock.acquire, lock.release) if i % 2 == 0 else None
            if gate is None:
                lock.acquire()

            def acquirer(name: str, lock: Any = lock, results: dict = results) -> None:
                try:
                    results[name] = lock.acquire()
                except Cancelled:
                    results[name] = "cancelled"
                    return
                lock.release()

            a = spawn(acquirer, "a")
            wait_until_parked(lock, 1, timeout=5)
            b = spawn(acquirer, "b")
            wait_until_parked(lock, 2, timeout=5)
            with cancel_racing(a, i) as c:
                if gate is None:
                    lock.release()
                else:
                    gate.open()
            # B waits with no timeout: a lost wake-up would leave it parked for good.
            finish([a, b, c])
            assert results["b"] is True
            assert results["a"] in (True, "cancelled")
            assert len(lock._queue) == 0
            assert lock.acquire(blocking=False)
            lock.release()

    @pytest.mark.parametrize("depth", [1, 3])
    def test_condition_wait_cancelled_holds_rlock_at_depth(self, depth: int) -> None:
        case = ConditionWait(threadkit.RLock, depth=depth)
        worker = Worker(case, CancelScope)
        case.wait_parked(worker.thread)
        assert worker.scope is not None
        worker.scope.cancel()
        worker.finish()
        case.check()

    @pytest.mark.parametrize("lock_type", [threadkit.Lock, threadkit.RLock])
    def test_condition_wait_cancelled_waits_for_the_lock(self, lock_type: type) -> None:
        """Cancelled while another thread holds the lock: ``wait`` parks to take it back
        (not a cancellation point) and raises only once it holds it."""
        lock = lock_type()
        cond = threadkit.Condition(lock)
        seen: list[object] = []

        def waiter() -> None:
            with cond:
                try:
                    cond.wait()
                except Cancelled:
                    seen.append(cond._is_owned())
                    raise

        t = spawn(waiter)
        wait_until_parked(cond, 1, timeout=5)
        with cond:
            t.cancel()
            # It woke, and is now parked taking the lock back.
            wait_until_parked(lock, 1, timeout=5)
            assert seen == [] and t.is_alive()
        join_promptly(t)
        with pytest.raises(Cancelled):
            t.result()
        assert seen == [True]
        assert len(cond._waiters) == 0 and len(lock._queue) == 0
        assert lock.acquire(blocking=False)
        lock.release()

    def test_cancelled_waiter_leaves_the_queue_before_a_notify(self) -> None:
        """Cancelled while the notifier holds the lock: the waiter is out of the queue
        (parked taking the lock back), so a notify now goes to the next waiter."""
        lock = threadkit.Lock()
        cond = threadkit.Condition(lock)
        results: dict[str, object] = {}

        def waiter(name: str) -> None:
            with cond:
                try:
                    results[name] = cond.wait()
                except Cancelled:
                    results[name] = "cancelled"

        a = spawn(waiter, "a")
        wait_until_parked(cond, 1, timeout=5)
        b = spawn(waiter, "b")
        wait_until_parked(cond, 2, timeout=5)
        with cond:
            a.cancel()
            wait_until_parked(lock, 1, timeout=5)  # A left wait's queue
            assert len(cond._waiters) == 1
            cond.notify(1)
        finish([a, b])
        assert results == {"a": "cancelled", "b": True}
        assert len(cond._waiters) == 0 and len(lock._queue) == 0

    def test_barrier_cancelled_waiter_breaks_it(self) -> None:
        barrier = threadkit.Barrier(3)
        results: dict[str, object] = {}

        def waiter(name: str) -> None:
            try:
                results[name] = barrier.wait()
            except BaseException as exc:
                results[name] = type(exc)
                if not isinstance(exc, Cancelled | threadkit.BrokenBarrierError):
                    raise

        a = spawn(waiter, "a")
        b = spawn(waiter, "b")
        wait_until_parked(barrier, 2, timeout=5)
        a.cancel()
        finish([a, b])
        assert results == {"a": Cancelled, "b": threadkit.BrokenBarrierError}
        assert barrier.broken
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait()
        assert len(barrier._gen.queue) == 0

    def test_event_set_racing_cancel(self, fast_switch: None) -> None:
        for i in range(RACE_ROUNDS // 2):
            event = threadkit.Event()
            results: dict[str, object] = {}

            def waiter(name: str, event: threadkit.Event = event, results: dict = results) -> None:
                try:
                    results[name] = event.wait()
                except Cancelled:
                    results[name] = "cancelled"

            a = spawn(waiter, "a")
            b = spawn(waiter, "b")
            wait_until_parked(event, 2, timeout=5)
            if i % 2:
                a.cancel()
                event.set()
            else:
                event.set()
                a.cancel()
            finish([a, b])
            assert results["b"] is True
            assert results["a"] in (True, "cancelled")
            assert len(event._queue) == 0


# =======================================================================================
class TestScopes:
    """Nesting, shields, the scope's properties, and what misuse raises."""

    def test_inner_cancelled_scope_catches_only_its_own(self) -> None:
        after_inner = []
        with CancelScope() as outer:
            with CancelScope() as inner:
                inner.cancel()
                threadkit.checkpoint()
                pytest.fail("not cancelled")
            after_inner.append(True)
            threadkit.checkpoint()  # outer is not cancelled
        assert inner.cancelled_caught and after_inner == [True]
        assert not outer.cancel_called and not outer.cancelled_caught

    def test_outer_cancellation_passes_through_inner(self) -> None:
        with CancelScope() as outer:
            with CancelScope() as inner:
                outer.cancel()
                threadkit.checkpoint()
            pytest.fail("inner swallowed outer's Cancelled")
        assert not inner.cancelled_caught and not inner.cancel_called
        assert outer.cancelled_caught

    def test_both_cancelled_innermost_first(self) -> None:
        seen = []
        with CancelScope() as outer:
            outer.cancel()
            with CancelScope() as inner:
                inner.cancel()
                try:
                    threadkit.checkpoint()
                except Cancelled as exc:
                    seen.append(exc.scope)
                    raise
            seen.append("between")
            threadkit.checkpoint()
            pytest.fail("outer's cancellation was lost")
        assert seen == [inner, "between"]
        assert inner.cancelled_caught and outer.cancelled_caught

    def test_outer_cancelled_without_checkpoint_catches_nothing(self) -> None:
        with CancelScope() as outer:
            with CancelScope() as inner:
                inner.cancel()
                threadkit.checkpoint()
            outer.cancel()
        assert inner.cancelled_caught
        assert outer.cancel_called and not outer.cancelled_caught

    def test_shield_hides_outer_cancellation(self) -> None:
        lock = threadkit.Lock()
        event = threadkit.Event()
        with CancelScope() as outer:
            outer.cancel()
            with CancelScope(shield=True) as shield:
                threadkit.checkpoint()
                with lock:  # blocking calls work in the shield
                    pass
                assert event.wait(0.001) is False  # and keep their timeouts
                threadkit.sleep(0)
                assert threadkit.current_effective_deadline() == math.inf
            assert not shield.cancel_called and not shield.cancelled_caught
            threadkit.checkpoint()
            pytest.fail("outer's cancellation not seen after the shield")
        assert outer.cancelled_caught

    def test_shield_hides_outer_deadline(self) -> None:
        with threadkit.move_on_after(0) as outer:
            with CancelScope(shield=True):
                threadkit.checkpoint()
                threadkit.sleep(0.001)
            threadkit.checkpoint()
        assert outer.cancelled_caught

    def test_shielded_scope_own_cancel_and_deadline_apply(self) -> None:
        with CancelScope(shield=True) as shield:
            shield.cancel()
            threadkit.checkpoint()
        assert shield.cancelled_caught
        with threadkit.move_on_after(0.01, shield=True) as shield2:
            assert shield2.shield
            threadkit.Event().wait()
        assert shield2.cancelled_caught

    def test_shield_inside_cancelled_scope_inside_shield(self) -> None:
        with CancelScope() as a:
            a.cancel()
            with CancelScope(shield=True):
                with CancelScope() as b:
                    b.cancel()
                    with CancelScope(shield=True):
                        threadkit.checkpoint()
                    threadkit.checkpoint()
                assert b.cancelled_caught
                threadkit.checkpoint()
            threadkit.checkpoint()
        assert a.cancelled_caught

    def test_exit_in_another_thread_is_refused(self) -> None:
        errors: list[BaseException] = []
        with CancelScope() as scope:

            def other() -> None:
                try:
                    scope.__exit__(None, None, None)
                except RuntimeError as exc:
                    errors.append(exc)

            finish([spawn(other)])
            assert len(errors) == 1 and "thread" in str(errors[0])
            # The scope is still this thread's, and works.
            scope.cancel()
            threadkit.checkpoint()
        assert scope.cancelled_caught

    def test_enter_twice_is_refused(self) -> None:
        scope = CancelScope()
        with scope, pytest.raises(RuntimeError):
            scope.__enter__()
        with pytest.raises(RuntimeError), scope:
            pass
        # Nor in another thread.
        errors: list[BaseException] = []

        def other() -> None:
            try:
                with scope:
                    pass
            except RuntimeError as exc:
                errors.append(exc)

        finish([spawn(other)])
        assert len(errors) == 1

    def test_exit_out_of_order_is_refused(self) -> None:
        a = CancelScope()
        b = CancelScope()
        a.__enter__()
        b.__enter__()
        with pytest.raises(RuntimeError):
            a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        threadkit.checkpoint()

    def test_properties(self) -> None:
        scope = CancelScope()
        assert scope.deadline is None and not scope.shield
        assert not scope.cancel_called and not scope.cancelled_caught
        scope.shield = True
        assert scope.shield
        scope.shield = False
        scope.deadline = 123.0
        assert scope.deadline == 123.0
        scope.deadline = None
        with pytest.raises(ValueError):
            scope.deadline = math.nan
        assert scope.deadline is None
        d = threadkit.current_time() + 100
        assert threadkit.move_on_at(d).deadline == d
        assert threadkit.fail_at(d).deadline == d
        assert threadkit.move_on_at(d, shield=True).shield
        t0 = threadkit.current_time()
        after = threadkit.move_on_after(5).deadline
        assert after is not None and t0 + 5 <= after <= threadkit.current_time() + 5
        with pytest.raises(ValueError):
            threadkit.move_on_after(-1)
        with pytest.raises(ValueError):
            threadkit.fail_after(-0.1)
        assert "CancelScope" in repr(scope)

    def test_nan_deadline_refused_everywhere(self) -> None:
        """BUG: the deadline setter refuses NaN, but the constructor and the helpers
        accept it, and the scope then silently has no deadline (trio refuses it)."""
        with pytest.raises(ValueError):
            CancelScope(deadline=math.nan)
        with pytest.raises(ValueError):
            threadkit.move_on_at(math.nan)
        with pytest.raises(ValueError):
            threadkit.move_on_after(math.nan)
        with pytest.raises(ValueError):
            threadkit.fail_after(math.nan)

    def test_cancel_called_and_cancelled_caught(self) -> None:
        with CancelScope() as scope:
            scope.cancel()
            scope.cancel()  # idempotent
            assert scope.cancel_called and not scope.cancelled_caught
        assert not scope.cancelled_caught  # no cancellation point: nothing caught
        # cancel() before entering.
        early = CancelScope()
        early.cancel()
        with early:
            threadkit.checkpoint()
        assert early.cancelled_caught
        # A deadline that passed counts as called even before a checkpoint sees it.
        with threadkit.move_on_after(0) as expired:
            assert expired.cancel_called
        assert not expired.cancelled_caught

    def test_cancel_called_of_exited_scope_stays_false(self) -> None:
        """BUG: an exited scope's ``cancel_called`` turns True later, once a deadline it
        never reached passes (trio only looks at the clock while the scope is active)."""
        with threadkit.move_on_after(0.01) as scope:
            pass
        assert not scope.cancel_called
        deadline = scope.deadline
        assert deadline is not None
        wait_until(lambda: threadkit.current_time() > deadline, timeout=5)
        assert not scope.cancel_called
        assert not scope.cancelled_caught

    def test_exception_other_than_cancelled_passes_through(self) -> None:
        with pytest.raises(KeyError), CancelScope() as scope:
            scope.cancel()
            raise KeyError("x")
        assert not scope.cancelled_caught

    def test_foreign_cancelled_not_caught(self) -> None:
        other = CancelScope()
        with pytest.raises(Cancelled), CancelScope() as scope:
            scope.cancel()
            raise Cancelled(other)
        assert not scope.cancelled_caught

    def test_setting_deadline_while_parked_wakes_it(self) -> None:
        case = EventWait()
        worker = Worker(case, CancelScope)  # no deadline: parked without a timeout
        try:
            case.wait_parked(worker.thread)
            assert worker.scope is not None
            t0 = time.monotonic()
            worker.scope.deadline = threadkit.current_time() + 0.02
            join_promptly(worker.thread, since=t0)
            assert worker.scope.cancelled_caught
            assert worker.ended - t0 >= 0.015
            case.check()
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_earlier_deadline_while_parked_retimes_it(self) -> None:
        case = SemaphoreAcquire()
        worker = Worker(case, lambda: threadkit.move_on_after(30))
        try:
            case.wait_parked(worker.thread)
            assert worker.scope is not None
            t0 = time.monotonic()
            worker.scope.deadline = threadkit.current_time() + 0.02
            join_promptly(worker.thread, since=t0)
            assert worker.scope.cancelled_caught
            case.check()
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_removed_deadline_while_parked_no_longer_fires(self) -> None:
        case = EventWait()
        worker = Worker(case, lambda: threadkit.move_on_after(0.3))
        try:
            case.wait_parked(worker.thread)
            assert worker.scope is not None
            old = worker.scope.deadline
            assert old is not None
            worker.scope.deadline = None
            if threadkit.current_time() < old:  # we got there first (the usual case)
                wait_until(lambda: threadkit.current_time() > old + 0.05, timeout=5)
                assert worker.thread.is_alive() and parked(case.event) == 1
                assert not worker.scope.cancel_called
                case.event.set()
                worker.finish()
                assert worker.outcome == [("returned", True)]
                assert not worker.scope.cancelled_caught
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_later_deadline_while_parked_is_kept(self) -> None:
        case = EventWait()
        worker = Worker(case, lambda: threadkit.move_on_after(0.3))
        try:
            case.wait_parked(worker.thread)
            assert worker.scope is not None
            old = worker.scope.deadline
            assert old is not None
            worker.scope.deadline = old + 0.2
            moved_in_time = threadkit.current_time() < old
            # Whether the worker outlived the old deadline is judged by when it
            # ended, not by polling it, which a loaded machine can delay.
            join_promptly(worker.thread)
            assert worker.scope.cancelled_caught
            if moved_in_time:
                assert worker.ended >= old + 0.15
        finally:
            case.close()
            join_promptly(worker.thread)

    def test_unshielding_while_parked_exposes_outer_cancellation(self) -> None:
        event = threadkit.Event()
        scopes: dict[str, CancelScope] = {}
        entered = threading.Event()
        outcome: list[object] = []

        def run() -> None:
            with CancelScope() as outer:
                scopes["outer"] = outer
                with CancelScope(shield=True) as inner:
                    scopes["inner"] = inner
                    entered.set()
                    outcome.append(event.wait())
                outcome.append("after inner")

        t = spawn(run)
        assert entered.wait(5)
        try:
            wait_until_parked(event, 1, timeout=5)
            scopes["outer"].cancel()
            # The shield hides it: the thread stays (or parks again) in the wait.
            wait_until_parked(event, 1, timeout=5)
            assert outcome == [] and t.is_alive()
            scopes["inner"].shield = False
            join_promptly(t)
            t.result()
        finally:
            event.set()
            join_promptly(t)
        assert outcome == []
        assert not scopes["inner"].cancelled_caught
        assert scopes["outer"].cancelled_caught
        assert len(event._queue) == 0

    def test_shield_set_while_parked_then_outer_cancel_hidden(self) -> None:
        event = threadkit.Event()
        scopes: dict[str, CancelScope] = {}
        entered = threading.Event()
        outcome: list[object] = []

        def run() -> None:
            with CancelScope() as outer:
                scopes["outer"] = outer
                with CancelScope() as inner:
                    scopes["inner"] = inner
                    entered.set()
                    outcome.append(event.wait())

        t = spawn(run)
        assert entered.wait(5)
        try:
            wait_until_parked(event, 1, timeout=5)
            scopes["inner"].shield = True
            scopes["outer"].cancel()
            wait_until_parked(event, 1, timeout=5)
            event.set()
            join_promptly(t)
            t.result()
        finally:
            event.set()
            join_promptly(t)
        assert outcome == [True]
        assert not scopes["outer"].cancelled_caught  # no checkpoint after the shield


# =======================================================================================
class TestThreadCancel:
    """``Thread.cancel()``: before start, while parked, and what it reports."""

    def test_cancel_before_start(self, hook_calls: list[Any]) -> None:
        steps: list[str] = []

        def body() -> str:
            steps.append("ran")
            threadkit.checkpoint()
            steps.append("past checkpoint")
            return "finished"

        t = threadkit.Thread(target=body, daemon=True)
        t.cancel()
        assert t.cancel_called
        t.start()
        join_promptly(t)
        with pytest.raises(Cancelled):
            t.result()
        assert isinstance(t.exception(), Cancelled)
        assert steps == ["ran"]
        assert hook_calls == []

    def test_cancel_while_parked(self, hook_calls: list[Any]) -> None:
        event = threadkit.Event()
        t = spawn(event.wait)
        wait_until_parked(event, 1, timeout=5)
        t0 = time.monotonic()
        t.cancel()
        join_promptly(t, since=t0)
        with pytest.raises(Cancelled) as info:
            t.result()
        assert isinstance(info.value.scope, CancelScope)
        assert len(event._queue) == 0 and not event.is_set()
        assert hook_calls == []

    @case_param
    def test_cancel_thread_parked_in_each_call(
        self, make: Callable[[], Case], hook_calls: list[Any]
    ) -> None:
        case = make()
        t = spawn(case.block)
        try:
            case.wait_parked(t)
            t.cancel()
            join_promptly(t)
            assert isinstance(t.exception(), Cancelled)
            case.check()
        finally:
            case.close()
            join_promptly(t)
        assert hook_calls == []

    def test_cancellation_is_sticky_and_shield_allows_cleanup(self) -> None:
        event = threadkit.Event()
        lock = threadkit.Lock()
        steps: list[str] = []

        def body() -> None:
            try:
                event.wait()
            except Cancelled:
                steps.append("cancelled")
            try:
                threadkit.checkpoint()  # still cancelled: what it will do, too
            except Cancelled:
                steps.append("still cancelled")
            with CancelScope(shield=True), lock:  # blocking cleanup, allowed under a shield
                steps.append("cleaned up")
            threadkit.sleep(0)

        t = spawn(body)
        wait_until_parked(event, 1, timeout=5)
        t.cancel()
        join_promptly(t)
        assert isinstance(t.exception(), Cancelled)
        assert steps == ["cancelled", "still cancelled", "cleaned up"]

    def test_other_errors_still_reach_excepthook(self, hook_calls: list[Any]) -> None:
        def fail() -> None:
            raise ValueError("boom")

        t = spawn(fail)
        join_promptly(t)
        with pytest.raises(ValueError):
            t.result()
        assert [c.exc_type for c in hook_calls] == [ValueError]
        assert hook_calls[0].thread is t

    def test_error_raised_while_handling_cancel_reaches_excepthook(
        self, hook_calls: list[Any]
    ) -> None:
        event = threadkit.Event()

        def body() -> None:
            try:
                event.wait()
            except Cancelled:
                raise RuntimeError("cleanup failed") from None

        t = spawn(body)
        wait_until_parked(event, 1, timeout=5)
        t.cancel()
        join_promptly(t)
        assert [c.exc_type for c in hook_calls] == [RuntimeError]

    def test_cancelled_of_another_scope_reaches_excepthook(self, hook_calls: list[Any]) -> None:
        """Only the thread's own cancellation is silent; a stray Cancelled is a failure."""

        def body() -> None:
            raise Cancelled(CancelScope())

        t = spawn(body)
        join_promptly(t)
        assert [c.exc_type for c in hook_calls] == [Cancelled]

    def test_cancel_after_end_changes_nothing(self) -> None:
        t = spawn(lambda: 7)
        join_promptly(t)
        t.cancel()
        assert t.result() == 7
        assert t.cancel_called

    def test_cancel_one_thread_leaves_others(self) -> None:
        event = threadkit.Event()
        a = spawn(event.wait)
        b = spawn(event.wait)
        wait_until_parked(event, 2, timeout=5)
        a.cancel()
        join_promptly(a)
        assert b.is_alive() and parked(event) == 1
        event.set()
        finish([b])
        assert b.result() is True

    def test_thread_scope_inside_cancelled_thread(self) -> None:
        """A scope entered in a cancelled thread does not catch the thread's Cancelled."""
        caught: list[bool] = []

        def body() -> None:
            with CancelScope() as scope:
                try:
                    threadkit.checkpoint()
                finally:
                    caught.append(scope.cancelled_caught)

        t = threadkit.Thread(target=body, daemon=True)
        t.cancel()
        t.start()
        join_promptly(t)
        assert isinstance(t.exception(), Cancelled)
        assert caught == [False]

    def test_cancelled_thread_releases_lock_for_others(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        a = spawn(lock.acquire)
        wait_until_parked(lock, 1, timeout=5)
        b = spawn(lambda: lock.acquire() and lock.release())
        wait_until_parked(lock, 2, timeout=5)
        a.cancel()
        join_promptly(a)
        lock.release()
        finish([b])
        assert not lock.locked() and len(lock._queue) == 0


# =======================================================================================
class TestTiming:
    def test_current_time_is_monotonic_clock(self) -> None:
        a = threadkit.current_time()
        b = time.monotonic()
        c = threadkit.current_time()
        assert a <= b <= c

    def test_current_effective_deadline(self) -> None:
        assert threadkit.current_effective_deadline() == math.inf
        now = threadkit.current_time()
        with threadkit.move_on_at(now + 100):
            assert threadkit.current_effective_deadline() == now + 100
            with threadkit.move_on_at(now + 50):
                assert threadkit.current_effective_deadline() == now + 50
            with threadkit.move_on_at(now + 200):
                assert threadkit.current_effective_deadline() == now + 100
            with CancelScope(shield=True):
                assert threadkit.current_effective_deadline() == math.inf
                with threadkit.move_on_at(now + 300):
                    assert threadkit.current_effective_deadline() == now + 300
            with CancelScope() as scope:
                scope.cancel()
                assert threadkit.current_effective_deadline() == -math.inf
            assert threadkit.current_effective_deadline() == now + 100
        assert threadkit.current_effective_deadline() == math.inf

    def test_current_effective_deadline_is_per_thread(self) -> None:
        seen: list[float] = []
        now = threadkit.current_time()
        with threadkit.move_on_at(now + 100):
            t = spawn(lambda: seen.append(threadkit.current_effective_deadline()))
            finish([t])
        assert seen == [math.inf]

    def test_sleep_arguments(self) -> None:
        with pytest.raises(ValueError):
            threadkit.sleep(-1)
        with pytest.raises(ValueError):
            threadkit.sleep(-0.001)
        with pytest.raises(ValueError):
            threadkit.sleep(math.nan)
        assert threadkit.sleep(0) is None
        t0 = time.monotonic()
        threadkit.sleep(0.01)
        assert time.monotonic() - t0 >= 0.009

    def test_sleep_is_cancellable(self) -> None:
        t0 = time.monotonic()
        with threadkit.move_on_after(0.01) as scope:
            threadkit.sleep(10)
        assert scope.cancelled_caught and time.monotonic() - t0 < PROMPT
        with threadkit.move_on_after(10) as scope:
            threadkit.sleep(0.001)
        assert not scope.cancel_called

    def test_sleep_woken_by_cancel(self) -> None:
        t = spawn(threadkit.sleep, 60)
        wait_until(lambda: sleeping(t), timeout=5)
        t0 = time.monotonic()
        t.cancel()
        join_promptly(t, since=t0)
        assert isinstance(t.exception(), Cancelled)

    def test_checkpoint(self) -> None:
        threadkit.checkpoint()  # nothing to see outside a cancelled scope
        with threadkit.move_on_after(10) as scope:
            threadkit.checkpoint()
        assert not scope.cancel_called
        with threadkit.move_on_at(threadkit.current_time() - 1) as scope:
            threadkit.checkpoint()
            pytest.fail("checkpoint did not raise")
        assert scope.cancelled_caught

    def test_fail_after_raises_timeout_error_on_expiry(self) -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError), threadkit.fail_after(0.01) as scope:
            threadkit.Event().wait()
        assert scope.cancelled_caught and time.monotonic() - t0 < PROMPT
        with pytest.raises(TimeoutError), threadkit.fail_at(threadkit.current_time() + 0.01):
            threadkit.sleep(10)

    def test_fail_after_does_not_raise_without_expiry(self) -> None:
        with threadkit.fail_after(10) as scope:
            threadkit.sleep(0.001)
        assert not scope.cancel_called and not scope.cancelled_caught
        # Expired, but nothing inside was cancelled by it: no error either.
        with threadkit.fail_after(0) as scope:
            pass
        assert not scope.cancelled_caught
        with threadkit.fail_at(threadkit.current_time() + 10):
            pass

    def test_fail_after_lets_outer_cancellation_through(self) -> None:
        with CancelScope() as outer, threadkit.fail_after(10) as inner:
            outer.cancel()
            threadkit.checkpoint()
        assert outer.cancelled_caught and not inner.cancelled_caught

    def test_fail_after_timeout_error_is_catchable_as_exception(self) -> None:
        try:
            with threadkit.fail_after(0):
                threadkit.checkpoint()
        except Exception as exc:
            assert type(exc) is TimeoutError
        else:
            pytest.fail("no TimeoutError")

    def test_cancelled_is_base_exception(self) -> None:
        assert issubclass(Cancelled, BaseException)
        assert not issubclass(Cancelled, Exception)
        with CancelScope() as scope:
            scope.cancel()
            try:
                threadkit.checkpoint()
            except Exception:  # pragma: no cover - must not catch it
                pytest.fail("except Exception caught Cancelled")
        assert scope.cancelled_caught


# -- sleep's arguments, against time.sleep ----------------------------------------------
class HasFloat:
    """A number by ``__float__`` only: refused by time.sleep before 3.15."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __float__(self) -> float:
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value  # type: ignore[no-any-return]  # also a wrong type, on purpose


class HasIndex:
    """An integer by ``__index__``, taken by every version's time.sleep."""

    def __init__(self, value: Any, as_float: float | None = None) -> None:
        self.value = value
        self.as_float = as_float

    def __index__(self) -> int:
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value  # type: ignore[no-any-return]

    def __float__(self) -> float:  # for 3.15, which prefers __index__
        return math.nan if self.as_float is None else self.as_float


class FloatSub(float):
    def __float__(self) -> float:  # time.sleep reads the value, not this
        return -5.0


class IntSub(int):
    def __index__(self) -> int:  # time.sleep reads the value, not this
        return -5


#: The longest duration time.sleep converts: 2**63 - 1 nanoseconds.
SLEEP_LIMIT = (2**63 - 1) / 1e9

#: Arguments every version's time.sleep answers at once: it refuses them, or they are
#: zero (on some versions). Compared in this process.
SLEEP_AT_ONCE: dict[str, Any] = {
    "str": "a",
    "numeric str": "1",
    "None": None,
    "list": [],
    "bytes": b"",
    "complex": 0j,
    "nan": math.nan,
    "-nan": -math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "1e100": 1e100,
    "-1e100": -1e100,
    "-1": -1,
    "-1.0": -1.0,
    "-1e-300": -1e-300,
    "0": 0,
    "0.0": 0.0,
    "-0.0": -0.0,
    "False": False,
    "2**63 ns": 2**63 / 1e9,
    "-(2**63) ns": -(2**63) / 1e9,
    "just above -(2**63) ns": math.nextafter(-(2**63) / 1e9, 0),
    "int above the limit": 9223372037,
    "int below minus the limit": -9223372037,
    "-9223372036": -9223372036,
    "2**100": 2**100,
    "Decimal(0)": Decimal(0),
    "Decimal(-1)": Decimal(-1),
    "Decimal('-0')": Decimal("-0"),
    "Decimal('nan')": Decimal("nan"),
    "Decimal('snan')": Decimal("snan"),
    "Decimal('1e100')": Decimal("1e100"),
    "Fraction(0)": Fraction(0),
    "tiny negative Fraction": Fraction(-1, 10**30),
    "__float__ 0": HasFloat(0.0),
    "__float__ -1": HasFloat(-1.0),
    "__float__ nan": HasFloat(math.nan),
    "__float__ returns str": HasFloat("x"),
    "__float__ raises": HasFloat(RuntimeError("boom")),
    "__index__ 0": HasIndex(0),
    "__index__ -3": HasIndex(-3),
    "__index__ 2**70": HasIndex(2**70),
    "__index__ raises": HasIndex(RuntimeError("boom")),
    "__index__ 0 and __float__ nan": HasIndex(0, as_float=math.nan),
    "float subclass 0": FloatSub(0.0),
    "float subclass nan": FloatSub("nan"),
    "int subclass -1": IntSub(-1),
    "int subclass 0": IntSub(0),
}

#: Arguments that time.sleep takes, on every version or from some version on, and then
#: sleeps: each is written as an expression, evaluated at the call, since the last
#: one depends on the clock. Compared with time.sleep in a child process.
SLEEP_TAKEN = {
    "1.5": "1.5",
    "int": "7",
    "True": "True",
    "9.2e9": "9.2e9",
    "just before the deadline limit": "SLEEP_LIMIT - time.monotonic() - 60",
    "Fraction(1, 3)": "Fraction(1, 3)",
    "Decimal('0.5')": "Decimal('0.5')",
    "__float__ 2.5": "HasFloat(2.5)",
    "__index__ 3": "HasIndex(3)",
}

#: Run in a child: for each expression, call time.sleep with it in a daemon thread and
#: report how it answered, or "sleeping" once the thread is blocked in the kernel's
#: nanosleep (read from /proc, not guessed from the time it took).
_SLEEP_CHILD = """
from __future__ import annotations
import json, math, sys, time, threading
from decimal import Decimal
from fractions import Fraction
{classes}
# Named as in the test module: 3.14 names the type in its TypeError.
HasFloat.__module__ = HasIndex.__module__ = {module!r}
SLEEP_LIMIT = {limit!r}

def answer(expr, deadline):
    box = []
    def call():
        try:
            time.sleep(eval(expr))
            box.append("returned")
        except BaseException as exc:
            box.append([type(exc).__name__, str(exc)])
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    while not box and time.monotonic() < deadline:
        try:
            with open(f"/proc/self/task/{{thread.native_id}}/wchan") as f:
                if "nanosleep" in f.read():
                    return "sleeping"
        except OSError:
            pass
    return box[0] if box else "unknown"

deadline = time.monotonic() + 10
print(json.dumps({{e: answer(e, deadline) for e in json.loads(sys.argv[1])}}), flush=True)
"""


def sleep_answer(sleep: Callable[[Any], object], seconds: Any) -> object:
    """How ``sleep(seconds)`` answers at once: "taken" (it returned, or raised
    ``Cancelled`` in the cancelled scope around it: it was about to sleep), or the
    type and message of what it raised."""
    try:
        with CancelScope() as scope:
            scope.cancel()
            sleep(seconds)
    except BaseException as exc:
        return [type(exc).__name__, str(exc)]
    return "taken"


@pytest.fixture(scope="module")
def time_sleep_answers() -> dict[str, Any]:
    """time.sleep's answer to each of ``SLEEP_TAKEN``, from a child process."""
    if not sys.platform.startswith("linux"):
        pytest.skip("tells a sleeping thread by /proc/<pid>/task/<tid>/wchan (Linux)")
    classes = "\n".join(textwrap.dedent(inspect.getsource(cls)) for cls in (HasFloat, HasIndex))
    code = _SLEEP_CHILD.format(classes=classes, module=__name__, limit=SLEEP_LIMIT)
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(SLEEP_TAKEN.values()))],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert out.returncode == 0, out.stderr
    answers: dict[str, Any] = json.loads(out.stdout)
    return answers


class TestSleepArguments:
    @pytest.mark.parametrize("seconds", SLEEP_AT_ONCE.values(), ids=SLEEP_AT_ONCE.keys())
    def test_answers_as_time_sleep_does(self, seconds: Any) -> None:
        assert sleep_answer(threadkit.sleep, seconds) == sleep_answer(time.sleep, seconds)

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's clock_nanosleep")
    def test_refuses_a_deadline_past_the_clock_limit_as_time_sleep_does(self) -> None:
        # time.sleep's absolute deadline (the monotonic clock plus the duration, in
        # int64 nanoseconds) wraps past 2**63 - 1: clock_nanosleep refuses it.
        seconds = SLEEP_LIMIT - time.monotonic() / 2
        expected = sleep_answer(time.sleep, seconds)
        assert expected == ["OSError", "[Errno 22] Invalid argument"]
        assert sleep_answer(threadkit.sleep, seconds) == expected

    @pytest.mark.parametrize("expr", SLEEP_TAKEN.values(), ids=SLEEP_TAKEN.keys())
    def test_takes_what_time_sleep_takes(
        self, expr: str, time_sleep_answers: dict[str, Any]
    ) -> None:
        expected = time_sleep_answers[expr]
        if expected == "unknown":
            pytest.skip("could not tell whether time.sleep was sleeping")
        seconds = eval(expr)
        assert sleep_answer(threadkit.sleep, seconds) == (
            "taken" if expected == "sleeping" else expected
        )


# =======================================================================================
KINDS = [
    "lock_acquire",
    "lock_release",
    "cond_wait",
    "cond_wait_nested",
    "cond_wait_for",
    "cond_notify",
    "cond_notify_all",
    "event_set",
    "event_clear",
    "event_wait",
    "sem_acquire",
    "sem_release",
    "checkpoint",
    "sleep",
]
#: One operation: (what, the call's own timeout or None, the op scope's deadline).
op_strategy = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from([None, None, None, 0.0, 0.001]),
    st.sampled_from([0.0005, 0.002, 0.005]),
)
#: One injection from the main thread: (worker, once it reached this op, what).
injection_strategy = st.tuples(
    st.integers(0, 2),
    st.integers(0, 7),
    st.sampled_from(["cancel", "cancel", "deadline_now", "deadline_later", "thread_cancel"]),
)
SEM_INITIAL = 2


class Shared:
    """The primitives the workers of one example share."""

    def __init__(self) -> None:
        self.lock = threadkit.Lock()
        self.cond = threadkit.Condition(threadkit.RLock())
        self.event = threadkit.Event()
        self.sem = threadkit.Semaphore(SEM_INITIAL)


def run_ops(shared: Shared, ops: list[tuple[str, float | None, float]], w: int, box: dict) -> None:
    """A worker: run ``ops``, each in its own short-deadline scope; keep the books."""
    holds_lock = False
    sem_held = 0
    problems: list[str] = box["problems"]
    lock, cond, event, sem = shared.lock, shared.cond, shared.event, shared.sem
    rlock = cond._lock

    def cond_wait(depth: int, timeout: float | None, wait_for: bool) -> None:
        for _ in range(depth):
            cond.acquire()  # a cancellation point: may raise, holding fewer levels
            levels[0] += 1
        try:
            if wait_for:
                cond.wait_for(event.is_set, timeout)
            else:
                cond.wait(timeout)
        finally:
            if rlock._recursion_count() != depth:
                problems.append(f"{w}: cond lock depth {rlock._recursion_count()} != {depth}")

    levels = [0]
    try:
        for k, (kind, timeout, deadline) in enumerate(ops):
            box["progress"][w] = k
            levels[0] = 0
            try:
                with threadkit.move_on_after(deadline) as scope:
                    box["scopes"][w] = scope
                    if kind == "lock_acquire":
                        if not holds_lock:
                            holds_lock = lock.acquire(timeout=-1 if timeout is None else timeout)
                        elif lock.acquire(blocking=False):
                            problems.append(f"{w}: acquired a lock it holds")
                    elif kind == "lock_release":
                        if holds_lock:
                            holds_lock = False
                            lock.release()
                    elif kind in ("cond_wait", "cond_wait_nested", "cond_wait_for"):
                        depth = 2 if kind == "cond_wait_nested" else 1
                        cond_wait(depth, timeout, kind == "cond_wait_for")
                    elif kind in ("cond_notify", "cond_notify_all"):
                        with cond:
                            if kind == "cond_notify":
                                cond.notify()
                            else:
                                cond.notify_all()
                    elif kind == "event_set":
                        event.set()
                    elif kind == "event_clear":
                        event.clear()
                    elif kind == "event_wait":
                        event.wait(timeout)
                    elif kind == "sem_acquire":
                        if sem.acquire(timeout=timeout):
                            sem_held += 1
                    elif kind == "sem_release":
                        if sem_held:
                            sem_held -= 1
                            sem.release()
                    elif kind == "checkpoint":
                        threadkit.checkpoint()
                    elif kind == "sleep":
                        threadkit.sleep(timeout or 0.001)
            except Cancelled:
                box["cancelled"][w] += 1  # the thread's own cancel() went through
            else:
                box["caught"][w] += scope.cancelled_caught
            finally:
                box["scopes"][w] = None
                while levels[0] > 0 and rlock._is_owned():
                    levels[0] -= 1
                    cond.release()
            if rlock._is_owned():
                problems.append(f"{w}: still holds the condition's lock after {kind}")
    finally:
        box["progress"][w] = len(ops)
        box["sem_held"][w] = sem_held
        if holds_lock:
            lock.release()


def worker_parked(thread: threadkit.Thread) -> bool:
    rec = _core.record_for(thread.ident or 0)
    return rec is not None and rec.waiting is not None


class TestRandomSchedules:
    """Random schedules, random cancels and deadlines: the invariants always hold."""

    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
        # No shrinking: a schedule's outcome depends on the interleaving too, and a
        # wedged example would cost seconds per shrink step.
        phases=[Phase.explicit, Phase.generate],
    )
    @example(  # a thread cancelled while parked, holding the lock and permits
        schedules=[
            [
                ("lock_acquire", None, 0.005),
                ("sem_acquire", None, 0.005),
                ("sem_acquire", None, 0.005),
                ("cond_wait_nested", None, 0.005),
                ("sem_acquire", None, 0.005),
            ],
            [
                ("sem_acquire", None, 0.005),
                ("lock_acquire", None, 0.005),
                ("event_wait", None, 0.005),
                ("cond_wait", None, 0.005),
            ],
        ],
        injections=[(0, 3, "thread_cancel"), (1, 1, "cancel"), (1, 2, "deadline_later")],
    )
    @example(  # notifies and events racing cancels and moved deadlines
        schedules=[
            [("cond_wait", None, 0.005), ("event_wait", None, 0.005), ("cond_notify", 0, 0.005)],
            [("cond_wait_for", None, 0.005), ("event_set", None, 0.005)],
            [
                ("cond_notify_all", None, 0.005),
                ("cond_wait", 0.001, 0.005),
                ("sleep", 0.001, 0.002),
            ],
        ],
        injections=[(0, 0, "cancel"), (1, 0, "deadline_now"), (2, 1, "thread_cancel")],
    )
    @given(
        schedules=st.lists(st.lists(op_strategy, min_size=2, max_size=8), min_size=2, max_size=3),
        injections=st.lists(injection_strategy, min_size=1, max_size=6),
    )
    def test_random_schedules_keep_invariants(
        self,
        schedules: list[list[tuple[str, float | None, float]]],
        injections: list[tuple[int, int, str]],
    ) -> None:
        armed_before = _core.armed[0]
        shared = Shared()
        n = len(schedules)
        box: dict[str, Any] = {
            "problems": [],
            "progress": [-1] * n,
            "scopes": [None] * n,
            "cancelled": [0] * n,
            "caught": [0] * n,
            "sem_held": [0] * n,
        }
        threads = [
            threadkit.Thread(target=run_ops, args=(shared, ops, w, box), daemon=True)
            for w, ops in enumerate(schedules)
        ]
        for t in threads:
            t.start()
        try:
            for w, at, what in sorted(injections, key=lambda inj: inj[1]):
                if w >= n:
                    continue
                at = min(at, len(schedules[w]))
                wait_until(lambda w=w, at=at: box["progress"][w] >= at, timeout=5)
                # Aim at a parked thread when there is one soon: it is the harder case.
                wait_until(
                    lambda w=w, at=at: (
                        box["progress"][w] != at
                        or worker_parked(threads[w])
                        or not threads[w].is_alive()
                    ),
                    timeout=5,
                )
                scope = box["scopes"][w]
                where = "parked" if worker_parked(threads[w]) else "running"
                if what == "thread_cancel":
                    threads[w].cancel()
                    hypothesis_event(f"injected: thread_cancel while {where}")
                elif scope is not None:
                    hypothesis_event(f"injected: {what} while {where}")
                    if what == "cancel":
                        scope.cancel()
                    elif what == "deadline_now":
                        scope.deadline = threadkit.current_time()
                    else:
                        scope.deadline = threadkit.current_time() + 0.001
        finally:
            join_all(threads, timeout=10)
        for t in threads:
            t.result()  # a worker's own failure, if any
        assert box["problems"] == []
        hypothesis_event(f"ops caught by their scope: {min(sum(box['caught']), 3)}+")
        hypothesis_event(f"ops cut by Thread.cancel: {min(sum(box['cancelled']), 3)}+")
        # No ghost waiters anywhere, nothing held, no permit lost or made up.
        assert len(shared.lock._queue) == 0
        assert not shared.lock.locked()
        assert len(shared.cond._waiters) == 0
        assert len(shared.cond._lock._queue) == 0
        assert shared.cond._lock._holder() is None
        assert len(shared.event._queue) == 0
        assert len(shared.sem._queue) == 0
        assert shared.sem._value == SEM_INITIAL - sum(box["sem_held"])
        for resource in (shared.lock, shared.cond, shared.cond._lock, shared.event, shared.sem):
            assert parked(resource) == 0
        # Every scope the workers entered was exited: none is still counted as armed.
        assert _core.armed[0] == armed_before
        # And everything still works.
        assert shared.lock.acquire(blocking=False)
        shared.lock.release()
        if sum(box["sem_held"]):
            shared.sem.release(sum(box["sem_held"]))
        assert shared.sem._value == SEM_INITIAL
