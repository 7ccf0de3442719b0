"""threadkit's primitives against the interleavings that break naive code.

One class per primitive. Nothing here synchronises by sleeping: a test learns that a
thread is really blocked from the core (``wait_until_parked`` / ``_core.waiting_on``),
and steps threads through numbered rounds with barriers. The scaffolding (the
round barriers and start/stop flags) uses the *stdlib* ``threading`` primitives, so
that a bug in the primitive under test shows up as a failed assertion, not as a
wedged harness.

The race tests run a few hundred rounds each, moving the "other" side of the race
across a window of a few milliseconds around a short timeout's deadline, with the
interpreter's switch interval turned down so that threads interleave finely. The
invariant checked after every round holds whichever side won the race.

Simulated interruption: ``InterruptingParker`` replaces a thread's parker with one
that raises KeyboardInterrupt as soon as it is unparked. That is exactly "Ctrl-C
lands after the signal reached the waiter but before it saw it", the case where
``WaitQueue.abandon`` must hand the signal on.
"""

from __future__ import annotations

import _thread
import linecache
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import threadkit
from helpers import finish, join_all, parked, spawn, wait_until, wait_until_parked
from threadkit import _core

pytestmark = pytest.mark.timeout(30)

#: Rounds of each race loop.
RACE_ROUNDS = 200
#: The short timeout the race loops aim at (seconds).
SHORT = 0.003
#: Where, relative to the short timeout's deadline, the other side acts: -1.5..+1.5 ms.
OFFSETS = [(k - 5) * 0.0003 for k in range(11)]


# -- helpers -----------------------------------------------------------------------------
def parked_idents(resource: object) -> set[int]:
    return {rec.ident for rec in _core.waiting_on(resource)}


def spin_until(when: float) -> None:
    """Busy-wait to a point in time: aims one side of a race, synchronises nothing."""
    while time.monotonic() < when:
        pass


def remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def lockstep(
    rounds: int,
    setup: Callable[[int], object],
    drive: Callable[[int], object],
    check: Callable[[int], object],
    *workers: Callable[[int], object],
) -> None:
    """Run ``rounds`` rounds: ``setup(i)``; then ``drive(i)`` here and every
    ``worker(i)`` in its own thread, all at once; then ``check(i)`` once all are done.

    The same worker threads serve every round. A failure anywhere breaks the round
    barriers (so nobody waits for a party that is gone) and is re-raised here.
    """
    start = threading.Barrier(len(workers) + 1, timeout=10)
    end = threading.Barrier(len(workers) + 1, timeout=10)

    def serve(step: Callable[[int], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                for i in range(rounds):
                    start.wait()
                    step(i)
                    end.wait()
            except BaseException:
                start.abort()
                end.abort()
                raise

        return run

    threads = [spawn(serve(w)) for w in workers]
    try:
        for i in range(rounds):
            setup(i)
            start.wait()
            drive(i)
            end.wait()
            check(i)
    except BaseException:
        start.abort()
        end.abort()
        join_all(threads)
        for t in threads:
            exc = t.exception()
            if exc is not None and not isinstance(exc, threading.BrokenBarrierError):
                raise exc from None
        raise
    finish(threads)


class InterruptingParker:
    """A parker that raises KeyboardInterrupt the first time it is unparked while armed.

    Installed in a thread's record, it simulates Ctrl-C arriving just after a
    signal reached the parked thread and before the thread saw it.
    """

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self.armed = False
        #: Wake-ups to let through (while armed) before the one that raises.
        self.spare = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got and self.armed:
            if self.spare:
                self.spare -= 1
            else:
                self.armed = False
                raise KeyboardInterrupt
        return bool(got)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def install_interrupting_parker() -> tuple[_core.ThreadRecord, InterruptingParker]:
    rec = _core.current_record()
    parker = InterruptingParker()
    rec.parker = parker  # type: ignore[assignment]
    return rec, parker


# =======================================================================================
class TestLock:
    def test_parked_waiter_woken_by_release_from_non_owner(self) -> None:
        lock = threadkit.Lock()
        assert lock.acquire()
        holders: list[int | None] = []

        def waiter() -> None:
            assert lock.acquire()
            holders.append(lock._holder())
            lock.release()

        w = spawn(waiter)
        wait_until_parked(lock, 1)
        assert holders == []
        # A third thread, which never acquired it, releases the main thread's lock.
        r = spawn(lock.release)
        finish([r, w])
        assert holders == [w.ident]
        assert not lock.locked()
        assert len(lock._queue) == 0

    def test_many_waiters_all_acquire_one_at_a_time(self) -> None:
        lock = threadkit.Lock()
        n = 20
        inside = [0]
        max_inside = [0]
        acquired: list[int] = []

        def waiter(i: int) -> None:
            with lock:
                inside[0] += 1
                max_inside[0] = max(max_inside[0], inside[0])
                for _ in range(200):  # a little work with the lock held
                    pass
                acquired.append(i)
                inside[0] -= 1

        lock.acquire()
        threads = [spawn(waiter, i) for i in range(n)]
        wait_until_parked(lock, n)
        lock.release()
        finish(threads)
        assert sorted(acquired) == list(range(n))
        assert max_inside[0] == 1
        assert not lock.locked()
        assert len(lock._queue) == 0

    def test_acquire_timeout_racing_release(
        self, fast_switch: None, record_property: Callable[[str, object], None]
    ) -> None:
        """A times out just as the lock is released; B waits behind A without a timeout.

        Invariant after every round: A's True means A holds the lock (and is its
        holder); A's False means A does not hold it; and B always gets the lock (a
        wake-up lost to A's timeout would leave B parked on a free lock forever).
        """
        lock = threadkit.Lock()
        owner: list[int | None] = [None]
        deadline = [0.0]
        a_got: list[bool] = []
        b_done: list[int] = []
        b_ident: list[int] = []

        def enter() -> None:  # right after a successful acquire
            me = threadkit.get_ident()
            assert owner[0] is None, f"acquired while {owner[0]} holds the lock"
            assert lock.locked() and lock._holder() == me
            owner[0] = me

        def leave() -> None:
            owner[0] = None
            lock.release()

        def setup(i: int) -> None:
            assert lock.acquire(blocking=False)
            enter()
            deadline[0] = time.monotonic() + SHORT

        def waiter_a(i: int) -> None:
            got = lock.acquire(timeout=remaining(deadline[0]))
            if got:
                enter()
            a_got.append(got)
            if got:
                leave()

        def waiter_b(i: int) -> None:
            if not b_ident:
                b_ident.append(threadkit.get_ident())
            # Queue up behind A (or after A has already given up).
            wait_until(lambda: parked(lock) >= 1 or len(a_got) > i, timeout=5)
            assert lock.acquire()
            enter()
            b_done.append(i)
            leave()

        def drive(i: int) -> None:
            wait_until(lambda: bool(b_ident) and b_ident[0] in parked_idents(lock), timeout=5)
            spin_until(deadline[0] + OFFSETS[i % len(OFFSETS)])
            leave()
            try:
                wait_until(lambda: len(b_done) > i, timeout=2)
            except AssertionError:
                state = f"locked={lock.locked()} parked={parked(lock)} a_got={a_got[i:]}"
                if lock.locked():  # unwedge B, so that the threads can be joined
                    lock.release()
                else:
                    lock.acquire()
                    lock.release()
                raise AssertionError(f"round {i}: B never got the lock ({state})") from None

        def check(i: int) -> None:
            assert not lock.locked()
            assert owner[0] is None
            assert len(lock._queue) == 0

        lockstep(RACE_ROUNDS, setup, drive, check, waiter_a, waiter_b)
        record_property("a_acquired", sum(a_got))
        record_property("a_timed_out", len(a_got) - sum(a_got))

    def test_exception_inside_with_releases(self) -> None:
        lock = threadkit.Lock()
        got: list[bool] = []

        def waiter() -> None:
            got.append(lock.acquire(timeout=10))
            lock.release()

        with pytest.raises(ZeroDivisionError), lock:
            w = spawn(waiter)
            wait_until_parked(lock, 1)
            1 / 0  # noqa: B018
        finish([w])
        assert got == [True]
        assert not lock.locked()

    def test_no_ghost_waiters_after_timeouts(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        results: list[bool] = []

        def waiter(i: int) -> None:
            for _ in range(20):
                results.append(lock.acquire(timeout=0.0005 * (i % 3)))

        threads = [spawn(waiter, i) for i in range(5)]
        finish(threads)
        for timeout in (0, 0.0001, 0.001):
            assert lock.acquire(timeout=timeout) is False
        assert results == [False] * 100
        assert len(lock._queue) == 0
        assert parked(lock) == 0
        # The lock still works for a real waiter, which nothing stale stands in front of.
        w = spawn(lambda: (lock.acquire(), lock.release()))
        wait_until_parked(lock, 1)
        assert len(lock._queue) == 1
        lock.release()
        finish([w])
        assert not lock.locked()
        assert len(lock._queue) == 0

    def test_spurious_unpark_does_not_end_the_wait(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        recs: list[_core.ThreadRecord] = []
        got: list[bool] = []

        def waiter() -> None:
            recs.append(_core.current_record())
            got.append(lock.acquire(timeout=20))
            lock.release()

        w = spawn(waiter)
        wait_until_parked(lock, 1)
        recs[0].unpark()  # a stray permit, as one left over from an earlier wait
        wait_until(recs[0].parker.locked)  # the waiter consumed it ...
        wait_until_parked(lock, 1)  # ... and is parked again
        assert got == []
        lock.release()
        finish([w])
        assert got == [True]

    def test_interrupted_waiter_passes_the_wake_up_on(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        out: dict[str, object] = {}

        def interrupted() -> None:
            _, parker = install_interrupting_parker()
            parker.armed = True
            try:
                lock.acquire()
            except KeyboardInterrupt:
                out["first"] = "interrupted"

        def second() -> None:
            out["second"] = lock.acquire()
            out["holder"] = lock._holder() == threadkit.get_ident()
            lock.release()

        t1 = spawn(interrupted)
        wait_until_parked(lock, 1)
        t2 = spawn(second)
        wait_until_parked(lock, 2)
        lock.release()  # wakes t1, the oldest, which is interrupted before it sees it
        finish([t1, t2])
        assert out == {"first": "interrupted", "second": True, "holder": True}
        assert not lock.locked()
        assert len(lock._queue) == 0


# =======================================================================================
class TestRLock:
    def test_contender_gets_it_only_after_the_last_release(self) -> None:
        rlock = threadkit.RLock()
        for _ in range(3):
            assert rlock.acquire()
        got = threading.Event()
        counts: list[int] = []

        def contender() -> None:
            assert rlock.acquire()
            got.set()
            counts.append(rlock._recursion_count())
            rlock.release()

        c = spawn(contender)
        wait_until_parked(rlock, 1)
        for left in (2, 1):
            rlock.release()
            assert rlock._recursion_count() == left
            # Not the last release: the contender was not woken, it is still parked.
            assert parked(rlock) == 1 and len(rlock._queue) == 1
            assert not got.is_set()
        rlock.release()
        assert rlock._recursion_count() == 0
        finish([c])
        assert got.is_set()
        assert counts == [1]
        assert len(rlock._queue) == 0

    def test_non_owner_release_raises_and_leaves_it_held(self) -> None:
        rlock = threadkit.RLock()
        held = threading.Event()
        done = threading.Event()
        owner_count: list[int] = []

        def owner() -> None:
            rlock.acquire()
            rlock.acquire()
            held.set()
            assert done.wait(10)
            owner_count.append(rlock._recursion_count())
            rlock.release()
            rlock.release()

        got: list[bool] = []

        def contender() -> None:
            got.append(rlock.acquire(timeout=10))
            rlock.release()

        o = spawn(owner)
        assert held.wait(10)
        c = spawn(contender)
        wait_until_parked(rlock, 1)
        with pytest.raises(RuntimeError):
            rlock.release()
        assert rlock._holder() == o.ident
        assert not rlock.acquire(blocking=False)
        assert parked(rlock) == 1  # the failed release woke nobody
        done.set()
        finish([o, c])
        assert owner_count == [2]
        assert got == [True]
        with pytest.raises(RuntimeError):
            rlock.release()  # unowned now

    def test_condition_wait_restores_recursion_count(self) -> None:
        rlock = threadkit.RLock()
        cond = threadkit.Condition(rlock)
        seen: list[object] = []

        def waiter() -> None:
            for _ in range(3):
                rlock.acquire()
            seen.append(cond.wait(10))
            seen.append(rlock._recursion_count())
            for _ in range(3):
                assert rlock._is_owned()
                rlock.release()
            seen.append(rlock._is_owned())
            try:
                rlock.release()
            except RuntimeError:
                seen.append("fourth release refused")

        w = spawn(waiter)
        wait_until_parked(cond, 1)
        # The wait released all three levels: we can take the lock.
        with cond:
            assert rlock._recursion_count() == 1
            cond.notify()
        finish([w])
        assert seen == [True, 3, False, "fourth release refused"]

    def test_condition_wait_releases_to_a_parked_contender(self) -> None:
        rlock = threadkit.RLock()
        cond = threadkit.Condition(rlock)
        step = threading.Event()
        seen: list[object] = []

        def waiter() -> None:
            with cond, cond:  # held twice
                step.set()
                seen.append(cond.wait(10))
                seen.append(rlock._recursion_count())

        def contender() -> None:
            with rlock:  # parked in acquire until the waiter's wait() releases both levels
                cond.notify()

        rlock.acquire()
        w = spawn(waiter)
        wait_until_parked(rlock, 1)
        rlock.release()
        assert step.wait(10)
        c = spawn(contender)
        finish([w, c])
        assert seen == [True, 2]
        assert len(rlock._queue) == 0


# =======================================================================================
LOCK_FACTORIES = {
    "threadkit.RLock": threadkit.RLock,
    "threadkit.Lock": threadkit.Lock,
    "threading.RLock": threading.RLock,
    "threading.Lock": threading.Lock,
}


class TestCondition:
    @pytest.mark.parametrize("make_lock", [threadkit.RLock, threadkit.Lock], ids=["RLock", "Lock"])
    def test_notify_racing_wait_timeout_is_never_lost(
        self,
        make_lock: Callable[[], Any],
        fast_switch: None,
        record_property: Callable[[str, object], None],
    ) -> None:
        """W1 (short timeout) and W2 (no timeout) wait; notify(1) lands at W1's deadline.

        Either W1 took the notify (returns True, W2 still waits untouched) or W1 timed
        out (returns False) and the notify went to W2. Never both, never neither.
        """
        cond = threadkit.Condition(make_lock())
        deadline = [0.0]
        w1: list[bool] = []
        w2: list[bool] = []
        w2_entered: list[int] = []

        def setup(i: int) -> None:
            deadline[0] = time.monotonic() + SHORT

        def waiter_1(i: int) -> None:
            with cond:
                w1.append(cond.wait(remaining(deadline[0])))

        def waiter_2(i: int) -> None:
            wait_until(lambda: parked(cond) >= 1 or len(w1) > i, timeout=5)
            with cond:
                w2_entered.append(i)  # under the lock: once we can take it, W2 waits
                w2.append(cond.wait())

        def drive(i: int) -> None:
            wait_until(lambda: len(w2_entered) > i, timeout=5)
            spin_until(deadline[0] + OFFSETS[i % len(OFFSETS)])
            with cond:
                cond.notify(1)
            wait_until(lambda: len(w1) > i, timeout=5)
            if w1[i]:
                with cond:
                    # The notify was W1's: W2 was not woken too.
                    assert len(cond._waiters) == 1, f"round {i}: notify(1) woke two"
                    assert len(w2) == i
                    cond.notify(1)
            try:
                wait_until(lambda: len(w2) > i, timeout=2)
            except AssertionError:
                with cond:
                    cond.notify_all()  # unwedge W2 so the threads can be joined
                raise AssertionError(f"round {i}: notify(1) lost; W1 -> {w1[i]}") from None

        def check(i: int) -> None:
            assert w2[i] is True
            assert len(cond._waiters) == 0

        lockstep(RACE_ROUNDS, setup, drive, check, waiter_1, waiter_2)
        record_property("w1_notified", sum(w1))
        record_property("w1_timed_out", len(w1) - sum(w1))

    @pytest.mark.parametrize("name", list(LOCK_FACTORIES))
    def test_notify_n_wakes_exactly_n_oldest(self, name: str) -> None:
        cond = threadkit.Condition(LOCK_FACTORIES[name]())
        m, n = 6, 2
        woken: list[tuple[int, bool]] = []

        def waiter(i: int) -> None:
            with cond:
                woken.append((i, cond.wait(20)))

        threads = []
        for i in range(m):
            threads.append(spawn(waiter, i))
            wait_until_parked(cond, i + 1)
        with cond:
            cond.notify(n)
            assert len(cond._waiters) == m - n  # decided here, under the lock
        wait_until(lambda: len(woken) == n)
        assert sorted(woken) == [(0, True), (1, True)]
        assert parked(cond) == m - n  # the others are still parked, not woken
        with cond:
            cond.notify_all()
        finish(threads)
        assert sorted(woken) == [(i, True) for i in range(m)]
        assert len(cond._waiters) == 0

    def test_notify_all_wakes_every_waiter(self) -> None:
        cond = threadkit.Condition()
        m = 12
        woken: list[bool] = []

        def waiter() -> None:
            with cond:
                woken.append(cond.wait(20))

        threads = [spawn(waiter) for _ in range(m)]
        wait_until_parked(cond, m)
        with cond:
            cond.notify_all()
            assert len(cond._waiters) == 0
        finish(threads)
        assert woken == [True] * m

    @pytest.mark.parametrize("name", list(LOCK_FACTORIES))
    def test_notify_wakes_in_fifo_order(self, name: str) -> None:
        cond = threadkit.Condition(LOCK_FACTORIES[name]())
        m = 6
        order: list[int] = []

        def waiter(i: int) -> None:
            with cond:
                assert cond.wait(20)
                order.append(i)

        threads = []
        for i in range(m):
            threads.append(spawn(waiter, i))
            wait_until_parked(cond, i + 1)  # so they park in a known order
        for k in range(m):
            with cond:
                cond.notify(1)
            wait_until(lambda k=k: len(order) == k + 1)
        finish(threads)
        assert order == list(range(m))

    def test_wait_for_predicate(self) -> None:
        cond = threadkit.Condition()
        state = [0]
        calls: list[int] = []
        result: list[object] = []

        def predicate() -> object:
            calls.append(state[0])
            return state[0] >= 3 and f"state {state[0]}"

        def waiter() -> None:
            with cond:
                result.append(cond.wait_for(predicate, timeout=20))

        w = spawn(waiter)
        for value in (1, 2, 3):
            wait_until_parked(cond, 1)  # parked again after each unsatisfying wake-up
            assert result == []
            with cond:
                state[0] = value
                cond.notify_all()
        finish([w])
        assert result == ["state 3"]
        assert calls == [0, 1, 2, 3]
        with cond:
            assert cond.wait_for(lambda: False, timeout=0.01) is False
            assert cond.wait_for(lambda: 0, timeout=0) == 0
        assert len(cond._waiters) == 0

    def test_wait_and_notify_need_the_lock(self) -> None:
        cond = threadkit.Condition()
        with pytest.raises(RuntimeError):
            cond.wait(0)
        with pytest.raises(RuntimeError):
            cond.notify()
        with pytest.raises(RuntimeError):
            cond.notify_all()
        assert len(cond._waiters) == 0

    def test_timed_out_waits_leave_no_ghosts(self) -> None:
        cond = threadkit.Condition()
        with cond:
            for timeout in (0, 0.0001, 0.001, -1):
                assert cond.wait(timeout) is False
                assert len(cond._waiters) == 0
        woken: list[bool] = []
        w = spawn(lambda: cond.acquire() and (woken.append(cond.wait(20)), cond.release()))
        wait_until_parked(cond, 1)
        with cond:
            cond.notify(1)  # goes to the real waiter, not to a stale node
        finish([w])
        assert woken == [True]

    def test_spurious_unpark_does_not_end_the_wait(self) -> None:
        cond = threadkit.Condition()
        recs: list[_core.ThreadRecord] = []
        result: list[bool] = []

        def waiter() -> None:
            recs.append(_core.current_record())
            with cond:
                result.append(cond.wait(20))

        w = spawn(waiter)
        wait_until_parked(cond, 1)
        recs[0].unpark()
        wait_until(recs[0].parker.locked)  # permit consumed; still waiting
        wait_until_parked(cond, 1)
        assert result == []
        with cond:
            cond.notify()
        finish([w])
        assert result == [True]  # a spurious return would have said False

    def test_notify_reaching_an_interrupted_waiter_is_passed_on(self) -> None:
        cond = threadkit.Condition()
        out: dict[str, object] = {}

        def interrupted() -> None:
            _, parker = install_interrupting_parker()
            with cond:
                parker.armed = True
                try:
                    cond.wait(20)
                except KeyboardInterrupt:
                    out["first"] = "interrupted"
                    out["owns after"] = cond._is_owned()

        def second() -> None:
            with cond:
                out["second"] = cond.wait(20)

        t1 = spawn(interrupted)
        wait_until_parked(cond, 1)
        t2 = spawn(second)
        wait_until_parked(cond, 2)
        with cond:
            cond.notify(1)  # reaches t1, the oldest, which is interrupted at once
        finish([t1, t2])
        assert out == {"first": "interrupted", "owns after": True, "second": True}
        assert len(cond._waiters) == 0

    @staticmethod
    def _interrupt_while_reacquiring() -> tuple[dict[str, object], Any, list[threadkit.Thread]]:
        """W1 is notified, then interrupted while parked taking the lock back.

        W1 and W2 wait on a Condition over an RLock; the main thread notifies once
        and keeps the lock until W1 is parked on the RLock inside ``wait`` (in
        ``_acquire_restore``); then it releases, and W1's parker raises
        KeyboardInterrupt at that wake-up. Returns what W1 saw, the Condition and
        the two threads (W2 may still be waiting: see ``_finish_reacquiring``).
        """
        rlock = threadkit.RLock()
        cond = threadkit.Condition(rlock)
        out: dict[str, object] = {}

        def interrupted() -> None:
            _, parker = install_interrupting_parker()
            cond.acquire()
            parker.armed = True
            parker.spare = 1  # the notify's wake-up passes; the lock's one raises
            try:
                out["first"] = cond.wait(20)
            except KeyboardInterrupt:
                out["first"] = "interrupted"
            out["owned after wait"] = cond._is_owned()
            if cond._is_owned():
                cond.release()

        def second() -> None:
            with cond:
                out["second"] = cond.wait(20)

        t1 = spawn(interrupted)
        wait_until_parked(cond, 1)
        t2 = spawn(second)
        wait_until_parked(cond, 2)
        cond.acquire()
        cond.notify(1)  # reaches W1, the oldest
        wait_until_parked(rlock, 1)  # W1 woke and is parked taking the lock back
        cond.release()  # W1 is interrupted right there
        wait_until(lambda: "owned after wait" in out)
        return out, cond, [t1, t2]

    @staticmethod
    def _finish_reacquiring(cond: Any, threads: list[threadkit.Thread]) -> None:
        with cond:
            cond.notify_all()  # W2, if the notify meant for it was lost
        finish(threads)

    def test_interrupt_while_reacquiring_still_raises_with_the_lock_held(self) -> None:
        # Condition.wait's docstring: "Whatever ends the wait, including an
        # exception, the lock is held again before wait returns or raises".
        out, cond, threads = self._interrupt_while_reacquiring()
        try:
            assert out["first"] == "interrupted"
            assert out["owned after wait"] is True, "wait() raised without the lock held"
        finally:
            self._finish_reacquiring(cond, threads)

    def test_interrupt_while_reacquiring_passes_the_notify_on(self) -> None:
        # Condition.wait's docstring: "a notify that reached a waiter interrupted by
        # an exception is passed to the next waiter". W1 took the only notify, then
        # raised out of wait(): W2 must get it.
        out, cond, threads = self._interrupt_while_reacquiring()
        try:
            assert out["first"] == "interrupted"
            try:
                wait_until(lambda: "second" in out, timeout=1)
            except AssertionError:
                raise AssertionError("the notify taken by the interrupted W1 was lost") from None
            assert out["second"] is True
        finally:
            self._finish_reacquiring(cond, threads)

    def test_interrupt_of_a_waiting_waiter_leaves_no_ghost(self) -> None:
        cond = threadkit.Condition()
        out: dict[str, object] = {}
        recs: list[_core.ThreadRecord] = []

        def interrupted() -> None:
            rec, parker = install_interrupting_parker()
            recs.append(rec)
            with cond:
                parker.armed = True
                try:
                    cond.wait(20)
                except KeyboardInterrupt:
                    out["first"] = "interrupted"

        def second() -> None:
            with cond:
                out["second"] = cond.wait(20)

        t1 = spawn(interrupted)
        wait_until_parked(cond, 1)
        t2 = spawn(second)
        wait_until_parked(cond, 2)
        recs[0].unpark()  # Ctrl-C while nobody has signalled t1
        wait_until(lambda: "first" in out)
        assert len(cond._waiters) == 1
        with cond:
            cond.notify(1)  # the only real waiter gets it
        finish([t1, t2])
        assert out == {"first": "interrupted", "second": True}


# =======================================================================================
class TestSemaphore:
    def test_hammer_never_exceeds_value_and_loses_no_permit(self, fast_switch: None) -> None:
        sem = threadkit.Semaphore(3)
        count_lock = _thread.allocate_lock()  # an independent oracle for the counter
        inside = [0]
        max_inside = [0]
        over: list[int] = []
        go = threading.Event()

        def worker(i: int) -> None:
            assert go.wait(10)
            for _ in range(2000):
                sem.acquire()
                with count_lock:
                    inside[0] += 1
                    if inside[0] > max_inside[0]:
                        max_inside[0] = inside[0]
                    if inside[0] > 3:
                        over.append(inside[0])
                with count_lock:
                    inside[0] -= 1
                sem.release()

        threads = [spawn(worker, i) for i in range(8)]
        go.set()
        finish(threads)
        assert over == []
        assert 1 <= max_inside[0] <= 3
        assert sem._value == 3
        assert len(sem._queue) == 0

    def test_release_n_wakes_exactly_n(self) -> None:
        sem = threadkit.Semaphore(0)
        m = 5
        got: list[int] = []

        def waiter(i: int) -> None:
            assert sem.acquire(timeout=20)
            got.append(i)

        threads = []
        for i in range(m):
            threads.append(spawn(waiter, i))
            wait_until_parked(sem, i + 1)
        sem.release(3)
        # Decided inside release: three permits handed over, none left lying around.
        assert sem._value == 0
        assert len(sem._queue) == 2
        wait_until(lambda: len(got) == 3)
        assert sorted(got) == [0, 1, 2]
        assert parked(sem) == 2
        sem.release(4)  # two for the waiters, two left over
        finish(threads)
        assert sorted(got) == list(range(m))
        assert sem._value == 2
        with pytest.raises(ValueError):
            sem.release(0)

    def test_fifo_hand_off_cannot_be_barged(self) -> None:
        sem = threadkit.Semaphore(0)
        m = 6
        order: list[int] = []

        def waiter(i: int) -> None:
            assert sem.acquire(timeout=20)
            order.append(i)

        threads = []
        for i in range(m):
            threads.append(spawn(waiter, i))
            wait_until_parked(sem, i + 1)
        for k in range(m):
            sem.release()
            # The permit went straight to the oldest waiter: a newcomer finds none.
            assert sem.acquire(blocking=False) is False
            assert sem.acquire(timeout=0) is False
            wait_until(lambda k=k: len(order) == k + 1)
        finish(threads)
        assert order == list(range(m))
        assert sem._value == 0

    def test_fifo_skips_a_waiter_that_timed_out(self) -> None:
        sem = threadkit.Semaphore(0)
        order: list[str] = []
        results: dict[str, bool] = {}

        def waiter(name: str, timeout: float | None) -> None:
            results[name] = sem.acquire(timeout=timeout)
            if results[name]:
                order.append(name)

        first = spawn(waiter, "first", None)
        wait_until_parked(sem, 1)
        middle = spawn(waiter, "middle", 0.25)
        wait_until(lambda: parked(sem) == 2 or "middle" in results)
        last = spawn(waiter, "last", None)
        wait_until(lambda: "middle" in results)  # the middle one gave up by itself
        wait_until_parked(sem, 2)
        assert len(sem._queue) == 2
        sem.release()
        wait_until(lambda: len(order) == 1)
        sem.release()
        finish([first, middle, last])
        assert results == {"first": True, "middle": False, "last": True}
        assert order == ["first", "last"]
        assert sem._value == 0 and len(sem._queue) == 0

    def test_acquire_timeout_racing_release_loses_no_permit(
        self, fast_switch: None, record_property: Callable[[str, object], None]
    ) -> None:
        """W1 (short timeout) and W2 (no timeout) wait; one permit lands at W1's deadline.

        Invariant: free permits + successful acquires == permits released, after every
        round; and if W1 got the permit, W2 is still parked and nothing is left over.
        """
        sem = threadkit.Semaphore(0)
        deadline = [0.0]
        released = [0]
        w1: list[bool] = []
        w2: list[int] = []
        w2_ident: list[int] = []

        def setup(i: int) -> None:
            deadline[0] = time.monotonic() + SHORT

        def waiter_1(i: int) -> None:
            w1.append(sem.acquire(timeout=remaining(deadline[0])))

        def waiter_2(i: int) -> None:
            if not w2_ident:
                w2_ident.append(threadkit.get_ident())
            wait_until(lambda: parked(sem) >= 1 or len(w1) > i, timeout=5)
            assert sem.acquire()
            w2.append(i)

        def drive(i: int) -> None:
            wait_until(lambda: bool(w2_ident) and w2_ident[0] in parked_idents(sem), timeout=5)
            spin_until(deadline[0] + OFFSETS[i % len(OFFSETS)])
            sem.release()
            released[0] += 1
            wait_until(lambda: len(w1) > i, timeout=5)
            if w1[i]:
                assert sem._value == 0, f"round {i}: permit duplicated"
                assert len(sem._queue) == 1 and len(w2) == i
                sem.release()
                released[0] += 1
            try:
                wait_until(lambda: len(w2) > i, timeout=2)
            except AssertionError:
                sem.release()  # unwedge W2 so the threads can be joined
                raise AssertionError(f"round {i}: permit lost; W1 -> {w1[i]}") from None

        def check(i: int) -> None:
            assert sem._value + sum(w1) + len(w2) == released[0]
            assert sem._value == 0
            assert len(sem._queue) == 0

        lockstep(RACE_ROUNDS, setup, drive, check, waiter_1, waiter_2)
        record_property("w1_acquired", sum(w1))
        record_property("w1_timed_out", len(w1) - sum(w1))

    def test_timeouts_leave_no_ghosts(self) -> None:
        sem = threadkit.Semaphore(0)
        for timeout in (0, 0.0001, 0.001, -1):
            assert sem.acquire(timeout=timeout) is False
        assert sem.acquire(blocking=False) is False
        assert len(sem._queue) == 0
        sem.release()
        assert sem._value == 1  # nobody stale took the permit
        with pytest.raises(ValueError):
            sem.acquire(blocking=False, timeout=1)

    def test_spurious_unpark_does_not_end_the_wait(self) -> None:
        sem = threadkit.Semaphore(0)
        recs: list[_core.ThreadRecord] = []
        result: list[bool] = []

        def waiter() -> None:
            recs.append(_core.current_record())
            result.append(sem.acquire(timeout=20))

        w = spawn(waiter)
        wait_until_parked(sem, 1)
        recs[0].unpark()
        wait_until(recs[0].parker.locked)
        wait_until_parked(sem, 1)
        assert result == []
        sem.release()
        finish([w])
        assert result == [True]
        assert sem._value == 0

    def test_permit_reaching_an_interrupted_waiter_is_passed_on(self) -> None:
        sem = threadkit.Semaphore(0)
        out: dict[str, object] = {}

        def interrupted() -> None:
            _, parker = install_interrupting_parker()
            parker.armed = True
            try:
                sem.acquire()
            except KeyboardInterrupt:
                out["first"] = "interrupted"

        def second() -> None:
            out["second"] = sem.acquire(timeout=20)

        t1 = spawn(interrupted)
        wait_until_parked(sem, 1)
        t2 = spawn(second)
        wait_until_parked(sem, 2)
        sem.release()  # handed to t1, interrupted before it sees it: t2 gets it
        finish([t1, t2])
        assert out == {"first": "interrupted", "second": True}
        assert sem._value == 0
        assert len(sem._queue) == 0

    def test_permit_of_an_interrupted_last_waiter_goes_back(self) -> None:
        sem = threadkit.Semaphore(0)
        out: list[str] = []

        def interrupted() -> None:
            _, parker = install_interrupting_parker()
            parker.armed = True
            try:
                sem.acquire()
            except KeyboardInterrupt:
                out.append("interrupted")

        t1 = spawn(interrupted)
        wait_until_parked(sem, 1)
        sem.release()
        finish([t1])
        assert out == ["interrupted"]
        assert sem._value == 1
        assert len(sem._queue) == 0


# =======================================================================================
class TestBoundedSemaphore:
    def test_a_waiter_timing_out_during_a_release_does_not_let_the_bound_slip(self) -> None:
        # A release hands its permit to a waiter; that waiter's timeout ends at the
        # same moment, and another release follows. Whatever the order, the outcome
        # must be one threading could give: the waiter got the permit, or one of the
        # two releases raised ValueError. Never "timed out" and no error, with two
        # permits in a semaphore bounded at one.
        sem = threadkit.BoundedSemaphore(1)
        assert sem.acquire()
        outcome: dict[str, Any] = {}
        waited = threading.Event()

        def waiter() -> None:
            outcome["waiter"] = sem.acquire(timeout=0.05)
            waited.set()

        def between_holds(frame: Any, event: str, arg: Any) -> None:
            # The release stops at its first call outside the mutex that is about
            # waking (the hand-over, or the wake after it) until the waiter is done.
            waking = event == "call" and frame.f_code.co_name in ("_hand_over", "wake")
            if waking and "paused" not in outcome:
                outcome["paused"] = True
                waited.wait(10)
                try:
                    sem.release()  # a second release, from somewhere else
                except ValueError as exc:
                    outcome["extra"] = exc

        other = threading.Thread(target=waiter)
        other.start()
        wait_until_parked(sem)
        sys.settrace(between_holds)
        try:
            sem.release()
        except ValueError as exc:
            outcome["first"] = exc
        finally:
            sys.settrace(None)
        join_all([other])
        assert outcome["paused"]
        refused = [outcome.get(k) for k in ("first", "extra") if outcome.get(k) is not None]
        assert outcome["waiter"] is True or (
            len(refused) == 1 and isinstance(refused[0], ValueError)
        )
        assert sem._value <= 1

    def test_over_release_raises_and_changes_nothing(self) -> None:
        sem = threadkit.BoundedSemaphore(2)
        with pytest.raises(ValueError):
            sem.release()
        assert sem.acquire(blocking=False)
        with pytest.raises(ValueError):
            sem.release(2)
        assert sem._value == 1
        sem.release()
        assert sem._value == 2

    def test_release_to_parked_waiters_is_not_an_over_release(self) -> None:
        sem = threadkit.BoundedSemaphore(2)
        assert sem.acquire() and sem.acquire()
        got: list[bool] = []

        def waiter() -> None:
            got.append(sem.acquire(timeout=20))

        threads = [spawn(waiter) for _ in range(2)]
        wait_until_parked(sem, 2)
        sem.release(2)  # both permits go to the waiters, which now hold them
        finish(threads)
        assert got == [True, True]
        assert sem._value == 0
        assert sem.acquire(blocking=False) is False
        with pytest.raises(ValueError):
            sem.release(3)  # only two are held
        assert sem._value == 0
        sem.release(2)
        assert sem._value == 2

    def test_with_block_and_over_release_via_exit(self) -> None:
        sem = threadkit.BoundedSemaphore(1)
        with sem:
            assert sem._value == 0
        assert sem._value == 1
        sem.acquire()
        sem.release()
        with pytest.raises(ValueError):
            sem.__exit__(None, None, None)
        assert sem._value == 1

    def test_hammer_with_timeouts(self, fast_switch: None) -> None:
        sem = threadkit.BoundedSemaphore(2)
        count_lock = _thread.allocate_lock()
        inside = [0]
        over: list[int] = []
        go = threading.Event()

        def worker(i: int) -> None:
            assert go.wait(10)
            for k in range(300):
                if not sem.acquire(timeout=0.0002 if k % 3 else None):
                    continue
                with count_lock:
                    inside[0] += 1
                    if inside[0] > 2:
                        over.append(inside[0])
                with count_lock:
                    inside[0] -= 1
                sem.release()

        threads = [spawn(worker, i) for i in range(6)]
        go.set()
        finish(threads)
        assert over == []
        assert sem._value == 2
        assert len(sem._queue) == 0


# =======================================================================================
class TestEvent:
    def test_set_releases_every_parked_waiter(self) -> None:
        ev = threadkit.Event()
        m = 50
        results: list[bool] = []

        def waiter() -> None:
            results.append(ev.wait(20))

        threads = [spawn(waiter) for _ in range(m)]
        wait_until_parked(ev, m)
        assert results == []
        ev.set()
        assert len(ev._queue) == 0
        finish(threads)
        assert results == [True] * m
        assert ev.wait(0) is True

    def test_wait_timeout_racing_set(
        self, fast_switch: None, record_property: Callable[[str, object], None]
    ) -> None:
        """W1 waits with a short timeout, W2 without; set() lands at W1's deadline.

        Invariants: W2 is always released; W1 returns False only if set() had not
        returned before W1's deadline; no node is left behind.
        """
        ev = threadkit.Event()
        deadline = [0.0]
        set_done = [0.0]
        w1: list[bool] = []
        w2: list[bool] = []
        w2_ident: list[int] = []

        def setup(i: int) -> None:
            ev.clear()
            deadline[0] = time.monotonic() + SHORT

        def waiter_1(i: int) -> None:
            w1.append(ev.wait(remaining(deadline[0])))

        def waiter_2(i: int) -> None:
            if not w2_ident:
                w2_ident.append(threadkit.get_ident())
            w2.append(ev.wait())

        def drive(i: int) -> None:
            wait_until(lambda: bool(w2_ident) and w2_ident[0] in parked_idents(ev), timeout=5)
            spin_until(deadline[0] + OFFSETS[i % len(OFFSETS)])
            ev.set()
            set_done[0] = time.monotonic()
            try:
                wait_until(lambda: len(w2) > i and len(w1) > i, timeout=2)
            except AssertionError:
                ev.set()
                raise AssertionError(f"round {i}: a waiter missed set()") from None

        def check(i: int) -> None:
            assert w2[i] is True
            assert w1[i] or set_done[0] >= deadline[0], f"round {i}: False though set in time"
            assert len(ev._queue) == 0

        lockstep(RACE_ROUNDS, setup, drive, check, waiter_1, waiter_2)
        record_property("w1_set", sum(w1))
        record_property("w1_timed_out", len(w1) - sum(w1))

    def test_clear_then_wait_blocks_again(self) -> None:
        ev = threadkit.Event()
        ev.set()
        assert ev.wait() is True
        assert ev.wait(0) is True
        ev.clear()
        assert ev.is_set() is False
        assert ev.wait(0.001) is False
        assert len(ev._queue) == 0
        results: list[bool] = []
        w = spawn(lambda: results.append(ev.wait(20)))
        wait_until_parked(ev, 1)  # really blocked again
        assert results == []
        ev.set()
        finish([w])
        assert results == [True]

    def test_set_then_clear_still_releases_parked_waiters(self) -> None:
        ev = threadkit.Event()
        results: list[bool] = []
        threads = [spawn(lambda: results.append(ev.wait(20))) for _ in range(3)]
        wait_until_parked(ev, 3)
        ev.set()
        ev.clear()  # before the waiters ran: they were released all the same
        finish(threads)
        assert results == [True] * 3
        assert not ev.is_set()

    def test_spurious_unpark_does_not_end_the_wait(self) -> None:
        ev = threadkit.Event()
        recs: list[_core.ThreadRecord] = []
        result: list[bool] = []

        def waiter() -> None:
            recs.append(_core.current_record())
            result.append(ev.wait(20))

        w = spawn(waiter)
        wait_until_parked(ev, 1)
        recs[0].unpark()
        wait_until(recs[0].parker.locked)
        wait_until_parked(ev, 1)
        assert result == []
        ev.set()
        finish([w])
        assert result == [True]


# =======================================================================================
class TestBarrier:
    def test_a_waiter_awake_when_the_action_fails_sees_the_barrier_broken(self) -> None:
        # The last arrival releases the waiters and, in the same hold of the mutex,
        # marks the generation broken because its action failed. A waiter that is
        # awake at that moment (queued, not yet parked) sees its release without the
        # mutex; it must still see the barrier broken, as threading's waiters do.
        # Trace functions stop each thread at the instant that matters.
        barrier = threadkit.Barrier(2, action=self._failing_action)
        wait_code = threadkit.Barrier.wait.__code__
        queued, released, progressed = threading.Event(), threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}

        def trace_waiter(frame: Any, event: str, arg: Any) -> Any:
            if event == "call" and frame.f_code.co_name == "park":
                queued.set()  # queued under the mutex, about to park
                released.wait(10)
            elif event == "call" and frame.f_code is wait_code:
                return trace_wait
            return None

        def about_to_take_the_mutex(frame: Any) -> bool:
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            return "mutex" in line

        def trace_wait(frame: Any, event: str, arg: Any) -> Any:
            if released.is_set() and (
                event == "return" or (event == "line" and about_to_take_the_mutex(frame))
            ):
                progressed.set()
            return trace_wait

        def trace_last(frame: Any, event: str, arg: Any) -> Any:
            if frame.f_code.co_name != "_trip":
                return None

            def in_trip(f: Any, e: str, a: Any) -> Any:
                nodes = f.f_locals.get("nodes")
                marked = e == "line" and nodes and nodes[0].state is _core.SIGNALLED
                if marked and not released.is_set():
                    # The waiter is marked released; the mutex is held and neither
                    # flag is set yet.
                    released.set()
                    progressed.wait(10)
                return in_trip

            return in_trip

        def run(name: str, trace: Any) -> None:
            if name == "last":
                queued.wait(10)
            sys.settrace(trace)
            try:
                outcome[name] = barrier.wait()
            except BaseException as exc:
                outcome[name] = type(exc)
            finally:
                sys.settrace(None)

        threads = [
            threading.Thread(target=run, args=("waiter", trace_waiter)),
            threading.Thread(target=run, args=("last", trace_last)),
        ]
        for t in threads:
            t.start()
        join_all(threads)
        assert outcome == {"waiter": threadkit.BrokenBarrierError, "last": ValueError}
        assert barrier.broken

    @staticmethod
    def _failing_action() -> None:
        raise ValueError("action failed")

    def test_cycles_with_action(self) -> None:
        parties, cycles = 4, 100
        actions = [0]
        barrier = threadkit.Barrier(parties, action=lambda: actions.__setitem__(0, actions[0] + 1))
        indices: list[list[int]] = [[] for _ in range(cycles)]
        seen: list[tuple[int, int]] = []
        idx_lock = _thread.allocate_lock()

        def worker(i: int) -> None:
            for c in range(cycles):
                index = barrier.wait(20)
                # The action of cycle c ran before anyone was released; that of
                # cycle c+1 cannot run before this thread arrives again.
                if actions[0] != c + 1:
                    seen.append((c, actions[0]))
                with idx_lock:
                    indices[c].append(index)

        threads = [spawn(worker, i) for i in range(parties)]
        finish(threads)
        assert seen == []
        assert actions[0] == cycles
        for c in range(cycles):
            assert sorted(indices[c]) == list(range(parties)), f"cycle {c}"
        assert not barrier.broken
        assert barrier.n_waiting == 0

    def test_abort_wakes_parked_waiters(self) -> None:
        barrier = threadkit.Barrier(4)
        out: list[str] = []

        def waiter() -> None:
            try:
                barrier.wait(20)
                out.append("passed")
            except threadkit.BrokenBarrierError:
                out.append("broken")

        threads = [spawn(waiter) for _ in range(3)]
        wait_until_parked(barrier, 3)
        assert barrier.n_waiting == 3
        barrier.abort()
        finish(threads)
        assert out == ["broken"] * 3
        assert barrier.broken
        assert barrier.n_waiting == 0
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait(20)  # broken for later arrivals too

    def test_reset_while_parked(self) -> None:
        barrier = threadkit.Barrier(3)
        out: list[object] = []

        def waiter() -> None:
            try:
                out.append(barrier.wait(20))
            except threadkit.BrokenBarrierError:
                out.append("broken")

        threads = [spawn(waiter) for _ in range(2)]
        wait_until_parked(barrier, 2)
        barrier.reset()
        finish(threads)
        assert out == ["broken", "broken"]
        assert not barrier.broken
        assert barrier.n_waiting == 0
        # Usable again at once, by a full set of parties.
        out.clear()
        threads = [spawn(waiter) for _ in range(2)]
        wait_until_parked(barrier, 2)
        out.append(barrier.wait(20))
        finish(threads)
        assert sorted(out) == [0, 1, 2]  # type: ignore[type-var]

    def test_timeout_of_one_waiter_breaks_it_for_all(self) -> None:
        barrier = threadkit.Barrier(3)
        out: list[str] = []

        def patient() -> None:
            try:
                barrier.wait()
                out.append("passed")
            except threadkit.BrokenBarrierError:
                out.append("broken")

        p = spawn(patient)
        wait_until_parked(barrier, 1)
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait(timeout=0.01)
        finish([p])
        assert out == ["broken"]
        assert barrier.broken
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait()

    def test_default_timeout_breaks_it(self) -> None:
        barrier = threadkit.Barrier(2, timeout=0.01)
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait()
        assert barrier.broken

    def test_failing_action_breaks_it(self) -> None:
        def action() -> None:
            raise ValueError("action failed")

        barrier = threadkit.Barrier(2, action=action)
        out: list[str] = []

        def waiter() -> None:
            try:
                barrier.wait(20)
                out.append("passed")
            except threadkit.BrokenBarrierError:
                out.append("broken")

        w = spawn(waiter)
        wait_until_parked(barrier, 1)
        with pytest.raises(ValueError, match="action failed"):
            barrier.wait(20)
        finish([w])
        assert out == ["broken"]
        assert barrier.broken

    def test_interrupted_waiter_breaks_it(self) -> None:
        barrier = threadkit.Barrier(3)
        out: dict[str, str] = {}
        recs: list[_core.ThreadRecord] = []

        def interrupted() -> None:
            rec, parker = install_interrupting_parker()
            recs.append(rec)
            parker.armed = True
            try:
                barrier.wait(20)
            except KeyboardInterrupt:
                out["first"] = "interrupted"

        def second() -> None:
            try:
                barrier.wait(20)
                out["second"] = "passed"
            except threadkit.BrokenBarrierError:
                out["second"] = "broken"

        t1 = spawn(interrupted)
        wait_until_parked(barrier, 1)
        t2 = spawn(second)
        wait_until_parked(barrier, 2)
        recs[0].unpark()  # Ctrl-C in t1
        finish([t1, t2])
        assert out == {"first": "interrupted", "second": "broken"}
        assert barrier.broken

    def test_timeout_racing_the_last_arrival(
        self, fast_switch: None, record_property: Callable[[str, object], None]
    ) -> None:
        """W waits with a short timeout; the last party arrives at W's deadline.

        Either both pass (indices 0 and 1, action run once) or both get
        BrokenBarrierError (action not run): never one of each.
        """
        actions = [0]

        def action() -> None:
            actions[0] += 1
            spin_until(time.monotonic() + 0.0003)  # widen the "tripping" window

        barrier = threadkit.Barrier(2, action=action)
        deadline = [0.0]
        outcome: list[object] = []
        passed = [0]

        def attempt(timeout: float | None) -> object:
            try:
                return barrier.wait(timeout)
            except threadkit.BrokenBarrierError:
                return "broken"

        def setup(i: int) -> None:
            if barrier.broken:
                barrier.reset()
            assert barrier.n_waiting == 0
            deadline[0] = time.monotonic() + SHORT

        def waiter(i: int) -> None:
            outcome.append(attempt(remaining(deadline[0])))

        def drive(i: int) -> None:
            spin_until(deadline[0] + OFFSETS[i % len(OFFSETS)])
            mine = attempt(5)
            wait_until(lambda: len(outcome) > i, timeout=5)
            theirs = outcome[i]
            if mine == "broken" or theirs == "broken":
                assert mine == theirs == "broken", f"round {i}: {mine!r} vs {theirs!r}"
                assert barrier.broken
            else:
                assert {mine, theirs} == {0, 1}, f"round {i}: {mine!r} vs {theirs!r}"
                assert not barrier.broken
                passed[0] += 1

        def check(i: int) -> None:
            assert actions[0] == passed[0]
            assert parked(barrier) == 0

        lockstep(RACE_ROUNDS, setup, drive, check, waiter)
        record_property("passed", passed[0])
        record_property("broken", RACE_ROUNDS - passed[0])


# =======================================================================================
class SemaphoreModel(RuleBasedStateMachine):
    """Semaphore / BoundedSemaphore driven from one thread, compared with a counter."""

    def __init__(self) -> None:
        super().__init__()
        self.sem: threadkit.Semaphore = threadkit.Semaphore(0)
        self.model = 0
        self.bound: int | None = None

    @initialize(value=st.integers(0, 5), bounded=st.booleans())
    def create(self, value: int, bounded: bool) -> None:
        if bounded:
            self.sem = threadkit.BoundedSemaphore(value)
            self.bound = value
        else:
            self.sem = threadkit.Semaphore(value)
        self.model = value

    @rule()
    def acquire_nonblocking(self) -> None:
        got = self.sem.acquire(blocking=False)
        assert got == (self.model > 0)
        self.model -= got

    @rule(timeout=st.sampled_from([0, 0.0, -1, 0.00001]))
    def acquire_with_tiny_timeout(self, timeout: float) -> None:
        got = self.sem.acquire(timeout=timeout)
        assert got == (self.model > 0)
        self.model -= got

    @precondition(lambda self: self.model > 0)
    @rule()
    def acquire_blocking_when_available(self) -> None:
        assert self.sem.acquire() is True
        self.model -= 1

    @rule(n=st.integers(1, 4))
    def release(self, n: int) -> None:
        if self.bound is not None and self.model + n > self.bound:
            with pytest.raises(ValueError):
                self.sem.release(n)
        else:
            self.sem.release(n)
            self.model += n

    @rule(n=st.integers(-2, 0))
    def release_non_positive(self, n: int) -> None:
        with pytest.raises(ValueError):
            self.sem.release(n)

    @precondition(lambda self: self.model > 0)
    @rule()
    def with_block(self) -> None:
        with self.sem:
            assert self.sem._value == self.model - 1

    @invariant()
    def matches_model(self) -> None:
        assert self.sem._value == self.model
        assert len(self.sem._queue) == 0
        assert f"value={self.model}" in repr(self.sem)


TestSemaphoreModel = SemaphoreModel.TestCase
TestSemaphoreModel.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, database=None
)


def test_conservation_stress_short_round() -> None:
    """A short round of tests/ft_stress.py (CI runs it longer on the free-threaded
    builds): locks exclusive and free at the end, no permit, item, arrival, hand-off
    or task result lost, under timeouts and cancel scopes expiring mid-wait."""
    import os
    import subprocess
    from pathlib import Path

    here = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, str(here / "ft_stress.py"), "0.3"],
        capture_output=True,
        text=True,
        timeout=50,
        env=dict(os.environ, PYTHONPATH=str(here.parent / "src")),
    )
    assert out.returncode == 0 and out.stdout.rstrip().endswith("OK"), out.stdout + out.stderr
