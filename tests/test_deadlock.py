"""Deadlock detection: a wait that would close a cycle raises DeadlockError instead.

Each test builds its cycle with events and ``wait_until_parked``: the last thread to
wait closes it and must raise; the others must then go on (the raiser's ``with``
blocks release what it held).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit
from helpers import spawn, wait_until, wait_until_blocked, wait_until_parked
from threadkit.diagnostics import (
    DeadlockError,
    add_deadlock_listener,
    deadlock_detection_enabled,
    set_deadlock_detection,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _detection_on() -> Iterator[None]:
    previous = set_deadlock_detection(True)
    yield
    set_deadlock_detection(previous)


def _line_of(fn: Callable[..., object], text: str) -> str:
    """``file:line`` of the first line of ``fn``'s source containing ``text``."""
    import inspect

    lines, start = inspect.getsourcelines(fn)
    for offset, line in enumerate(lines):
        if text in line:
            return f"{__file__}:{start + offset}"
    raise AssertionError(f"{text!r} not in {fn.__name__}")


def _inverted(lock_kind: Callable[[], Any]) -> tuple[BaseException | None, list[str], str]:
    """Two threads take two locks in opposite order; return what the closer raised,
    what the other thread saw, and the report."""
    a, b = lock_kind(), lock_kind()
    holding_a = threadkit.Event()
    events: list[str] = []

    raised: list[BaseException] = []

    def first() -> None:
        try:
            with a:
                holding_a.set()
                wait_until_blocked(a)  # the main thread waits for a, holding b
                with b:  # closes the cycle
                    events.append("first got b")
        except DeadlockError as exc:
            raised.append(exc)

    with b:
        t = threadkit.Thread(target=first, name="first")
        t.start()
        holding_a.wait()
        caught: BaseException | None = None
        try:
            with a:
                events.append("main got a")
        except BaseException as exc:  # the cycle may be closed on either side
            caught = exc
    t.join(10)
    if raised:
        caught = raised[0]
    report = str(caught) if caught is not None else ""
    return caught, events, report


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_two_lock_cycle_raises_in_the_closing_thread(kind: str) -> None:
    caught, events, report = _inverted(getattr(threadkit, kind))
    assert isinstance(caught, DeadlockError)
    assert isinstance(caught, RuntimeError)
    # The other thread went on once the raiser's with block released its lock.
    assert events == ["main got a"]
    assert report.startswith("deadlock: 2 threads wait for each other")
    assert "first waits to acquire" in report and "MainThread" in report
    assert sorted(caught.threads) == ["MainThread", "first"]
    assert report.count("holding <locked threadkit.") == 2


def test_report_names_where_each_thread_waits() -> None:
    a, b = threadkit.Lock(), threadkit.Lock()
    holding = threadkit.Event()

    def other() -> None:
        with b:
            holding.set()
            with a:  # waits here
                pass

    with a:
        t = spawn(other)
        holding.wait()
        wait_until_blocked(a)
        with pytest.raises(DeadlockError) as info, b:  # closes it here
            pass
    t.join(10)
    report = info.value.report
    assert f"at {_line_of(other, 'with a:')} in other" in report
    here = _line_of(test_report_names_where_each_thread_waits, "# closes it here")
    assert f"at {here} in test_report_names_where_each_thread_waits" in report


def test_three_lock_cycle() -> None:
    locks = [threadkit.Lock() for _ in range(3)]
    holding = [threadkit.Event() for _ in range(3)]
    outcome: dict[int, str] = {}

    def member(i: int) -> None:
        with locks[i]:
            holding[i].set()
            for e in holding:
                e.wait()
            if i == 2:
                wait_until_blocked(locks[1])
                wait_until_blocked(locks[2])
            try:
                with locks[(i + 1) % 3]:
                    outcome[i] = "ok"
            except DeadlockError as exc:
                outcome[i] = str(exc)

    threads = [spawn(member, i) for i in range(3)]
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    raised = [text for text in outcome.values() if text != "ok"]
    assert len(raised) == 1, outcome
    assert raised[0].startswith("deadlock: 3 threads wait for each other")
    assert outcome[2] != "ok"  # the last to wait closed it


def test_an_untimed_wait_for_a_lock_the_thread_holds_raises() -> None:
    lock = threadkit.Lock()
    with lock, pytest.raises(DeadlockError, match="a thread waits for itself"):
        lock.acquire()
    with lock:  # the lock is free again and works
        pass


def test_a_timed_wait_that_closes_a_cycle_times_out_as_threading_does() -> None:
    # Giving up after a timeout and backing off is how programs avoid deadlocks: the
    # timed wait keeps threading's contract (False), the other thread then goes on.
    first, second = threadkit.Lock(), threadkit.Lock()
    holding = threadkit.Event()
    done: list[str] = []

    def forward() -> None:
        with first:
            holding.set()
            with second:  # waits for good: the backing-off thread has it
                done.append("forward")

    with second:
        t = spawn(forward)
        holding.wait()
        wait_until_blocked(second)
        assert first.acquire(timeout=0.05) is False  # would close the cycle: times out
        with pytest.raises(TimeoutError):
            t.result(timeout=0.05)
    t.join(10)
    assert done == ["forward"]
    lock = threadkit.Lock()
    with lock:
        assert lock.acquire(timeout=0.01) is False


def test_rlock_reentry_is_not_a_deadlock() -> None:
    lock = threadkit.RLock()
    with lock, lock, lock:
        assert lock._recursion_count() == 3


def test_a_lock_taken_by_acquire_may_be_released_by_another_thread() -> None:
    # A Lock taken by acquire() can be a signal: waiting on it again is not a cycle.
    lock = threadkit.Lock()
    lock.acquire()

    def releaser() -> None:
        wait_until_parked(lock)
        lock.release()

    t = spawn(releaser)
    assert lock.acquire(timeout=30)
    lock.release()
    t.join(10)


def test_condition_wait_taking_its_lock_back_makes_the_other_thread_raise() -> None:
    # The waiter, once notified, must hold the condition's lock again before it
    # leaves wait(): it cannot raise. Whichever side closes the cycle, the notifier
    # raises, and the waiter goes on once the notifier's with blocks unwind.
    cond = threadkit.Condition(threadkit.Lock())
    other = threadkit.Lock()
    waiting = threadkit.Event()

    def waiter() -> str:
        with other, cond:
            waiting.set()
            cond.wait()
            return "woke with the lock"

    t = threadkit.Thread(target=waiter, name="waiter")
    t.start()
    waiting.wait()
    wait_until_parked(cond)
    with pytest.raises(DeadlockError) as info, cond:
        cond.notify()
        with other:
            pass
    assert t.result(10) == "woke with the lock"
    assert "waiter" in info.value.threads


def test_join_cycle() -> None:
    main = threadkit.current_thread()

    def joiner() -> None:
        main.join()

    t = threadkit.Thread(target=joiner, name="joiner", daemon=True)
    t.start()
    wait_until_blocked(main)
    with pytest.raises(DeadlockError, match="waits for the end of"):
        t.join()
    with pytest.raises(DeadlockError):
        t.result()
    assert t.is_alive()  # it waits for the main thread, as it was told
    t.cancel()
    with pytest.raises(threadkit.Cancelled):
        t.result(10)


def test_thread_result_cycle_through_a_lock() -> None:
    lock = threadkit.Lock()

    def worker() -> None:
        with lock:
            pass

    with lock:
        t = threadkit.Thread(target=worker, name="worker")
        t.start()
        wait_until_parked(lock)
        with pytest.raises(DeadlockError) as info:
            t.result()
    t.join(10)
    assert "holding <locked threadkit.Lock" in info.value.report


def test_task_result_cycle() -> None:
    tasks: list[threadkit.Task[Any]] = []
    both = threadkit.Barrier(2)

    def wait_for(i: int) -> None:
        both.wait()
        tasks[1 - i].result()

    with pytest.raises(ExceptionGroup) as info, threadkit.TaskGroup(limit=None) as tg:
        tasks.append(tg.spawn(wait_for, 0))
        tasks.append(tg.spawn(wait_for, 1))
    deadlocks = info.value.subgroup(DeadlockError)
    assert deadlocks is not None
    assert "waits for the result of task TaskGroup-" in str(deadlocks.exceptions[0])


def test_fork_join_in_a_full_limited_group() -> None:
    def child(i: int) -> int:
        return i

    def parent(i: int) -> int:
        return tg.spawn(child, i).result()  # queued behind the parents: never runs

    started = threadkit.Barrier(2)
    with pytest.raises(ExceptionGroup) as info, threadkit.TaskGroup(limit=2) as tg:
        tg.spawn(lambda: (started.wait(), parent(0)))
        tg.spawn(lambda: (started.wait(), parent(1)))
    deadlocks = info.value.subgroup(DeadlockError)
    assert deadlocks is not None
    assert "holding a slot of" in str(deadlocks.exceptions[0])


def test_spawn_waiting_for_room_held_by_tasks_that_wait_for_the_spawner() -> None:
    lock = threadkit.Lock()

    def task() -> None:
        with lock:
            pass

    group = threadkit.TaskGroup(limit=1, max_pending=0)
    with pytest.raises(ExceptionGroup) as info, group as tg, lock:
        tg.spawn(task)
        wait_until_parked(lock)
        tg.spawn(task)  # no room: the one slot's task waits for this thread
    deadlocks = info.value.subgroup(DeadlockError)
    assert deadlocks is not None
    assert "waits for room to spawn into" in str(deadlocks.exceptions[0])


def test_a_thread_behind_a_cycle_it_is_not_in_is_not_told() -> None:
    # t1 and t2 deadlock on a and b; the main thread then waits for t1 without being
    # part of the cycle: its wait is not a deadlock of its own (timeout still works).
    a, b = threadkit.Lock(), threadkit.Lock()
    got = [threadkit.Event(), threadkit.Event()]
    set_deadlock_detection(False)  # build the cycle without anyone raising
    try:

        def t1() -> None:
            with a:
                got[0].set()
                got[1].wait()
                with b:
                    pass

        def t2() -> None:
            with b:
                got[1].set()
                got[0].wait()
                with a:
                    pass

        threads = [spawn(t1), spawn(t2)]
        wait_until_parked(a)
        wait_until_parked(b)
    finally:
        set_deadlock_detection(True)
    with pytest.raises(TimeoutError):
        threads[0].result(timeout=0.01)
    # Break it from outside: a cancel ends one wait of the cycle, then all ends.
    threads[0].cancel()
    for t in threads:
        t.join(10)
        assert not t.is_alive()


def test_off_means_the_wait_blocks() -> None:
    lock = threadkit.RLock()
    set_deadlock_detection(False)
    assert not deadlock_detection_enabled()
    with lock:
        t = spawn(lambda: lock.acquire() and lock.release())
        wait_until_blocked(lock)
        with threadkit.CancelScope() as scope:
            # Nothing raises: the main thread parks until the scope is cancelled.
            spawn(lambda: (wait_until_blocked(t), scope.cancel()))
            t.result()
        assert scope.cancelled_caught
    t.join(10)
    assert not t.is_alive()


def test_listeners_hear_of_each_deadlock_even_when_caught() -> None:
    heard: list[DeadlockError] = []
    remove = add_deadlock_listener(heard.append)
    try:
        lock = threadkit.RLock()

        def other() -> None:
            with lock:
                pass

        with lock:
            t = spawn(other)
            wait_until_parked(lock)
            try:
                t.join()
            except DeadlockError:
                pass
    finally:
        remove()
    t.join(10)
    assert len(heard) == 1 and "waits for the end of" in heard[0].report


@pytest.mark.timeout(120)
def test_no_false_positive_under_random_contention() -> None:
    """Threads take random sets of locks in one global order (with random re-entry,
    Condition waits and joins of finished threads): never a cycle, never a raise."""
    locks: list[Any] = [threadkit.Lock() if i % 2 else threadkit.RLock() for i in range(5)]
    cond = threadkit.Condition(locks[0])
    errors: list[BaseException] = []
    rounds = 2000

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(rounds):
                chosen = sorted(rng.sample(range(len(locks)), rng.randint(1, 3)))
                held = []
                for i in chosen:
                    locks[i].acquire() if rng.random() < 0.3 else locks[i].__enter__()
                    held.append(i)
                    if i % 2 == 0 and rng.random() < 0.2:
                        with locks[i]:  # RLock re-entry
                            pass
                if held == [0] and rng.random() < 0.3:  # waits holding nothing else
                    cond.notify_all()
                    cond.wait(0.001)
                for i in reversed(held):
                    locks[i].release()
        except BaseException as exc:
            errors.append(exc)

    threads = [spawn(worker, seed) for seed in range(6)]
    for t in threads:
        t.join(100)
        assert not t.is_alive()
    assert not errors, errors[:3]


def test_detection_costs_nothing_when_a_wait_has_no_holder() -> None:
    # Event, Semaphore, Condition.wait: anyone may set or release them; never raised.
    ev = threadkit.Event()
    sem = threadkit.Semaphore(0)
    t = spawn(lambda: (ev.wait(), sem.acquire()))
    wait_until_parked(ev)
    ev.set()
    wait_until_parked(sem)
    sem.release()
    t.join(10)
    wait_until(lambda: not t.is_alive())


def test_reprs_of_threads_and_tasks_say_what_they_wait_on() -> None:
    lock = threadkit.Lock()
    with lock:
        t = threadkit.Thread(target=lambda: lock.acquire() and lock.release(), name="blocked")
        t.start()
        wait_until_parked(lock)
        assert repr(t).startswith("<Thread(blocked, started ")
        assert ", waits to acquire <locked threadkit.Lock object owner=MainThread" in repr(t)
        with threadkit.TaskGroup() as tg:
            task = tg.spawn(t.join)
            wait_until_parked(t)
            assert repr(task).endswith(", waits for the end of thread blocked>")
            assert repr(task).startswith(f"<threadkit.Task {task.name} running")
            lock.release()
            t.join(10)
            lock.acquire()  # the with block's exit releases it again
    assert "waits" not in repr(t) and "stopped" in repr(t)
    assert repr(task) == f"<threadkit.Task {task.name} done>"
