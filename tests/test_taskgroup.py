"""TaskGroup: structured concurrency for threads.

One class per area:

* ``TestAPI``: ``TaskGroup``/``Task`` signatures and attributes, misuse errors, the
  ``contextvars`` copy a task runs in, and the enclosing cancel scopes and deadlines
  a task inherits.
* ``TestExit``: leaving the block waits for every task; the first failure cancels the
  group (every blocking call of the parked siblings raises ``Cancelled``); failures
  come out together as one ``ExceptionGroup``; KeyboardInterrupt, SystemExit and
  outer cancellations pass through bare; nesting; late spawns; ``cancel_scope``;
  ``Task.cancel``; nothing reaches ``excepthook``.
* ``TestBackpressure``: ``limit=n`` bounds the running tasks, ``spawn`` waits for a
  slot cancellably and never leaks one, ``map`` keeps input order and a bounded
  window, even over an endless iterable, and reports a failing item.
* ``TestCtrlC``: a real SIGINT to the main thread while it is parked in the block or
  waiting at its end: every task is cancelled, the block waits for them, then
  KeyboardInterrupt propagates; a further Ctrl-C abandons a task that ignores its
  cancellation, and a task stuck outside threadkit does not keep the interpreter
  alive (in a subprocess).

Nothing synchronises by sleeping: a test learns that a thread is parked from the core
(``wait_until_parked``, ``parked``), or polls real state with a bound
(``wait_until``). Scaffolding that must not itself be cancelled or interrupted (hold
points inside tasks, SIGINT senders) uses the *stdlib* ``threading``.
"""

from __future__ import annotations

import _thread
import contextvars
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

import threadkit
from helpers import wait_until, wait_until_parked
from threadkit import Cancelled, CancelScope, Task, TaskGroup, _core, _taskgroup

pytestmark = pytest.mark.timeout(30)

SRC = str(Path(threadkit.__file__).parent.parent)
_MAIN = threading.main_thread().ident or 0
#: How long a prompt reaction may take at most; far above what one needs (seconds).
PROMPT = 1.0
#: A scope deadline that expires while the tasks are parked (seconds).
DEADLINE = 0.05

var: contextvars.ContextVar[str] = contextvars.ContextVar("taskgroup_test_var", default="unset")


# -- helpers -----------------------------------------------------------------------------
def fail(exc: BaseException) -> NoReturn:
    """A task body that raises ``exc``."""
    raise exc


def parked(thread: threadkit.Thread | None) -> bool:
    """True if ``thread`` is parked in a threadkit call right now (not idle in the cache)."""
    ident = None if thread is None else thread.ident
    rec = None if ident is None else _core.record_for(ident)
    node = None if rec is None else rec.waiting
    return node is not None and node.state is _core.WAITING and node.operation != "idle"


def wait_parked(*tasks: Task[Any]) -> None:
    """Wait until every task is running and parked in a threadkit call."""
    for task in tasks:
        wait_until(lambda task=task: not task.done() and parked(task.thread))


def main_parked_on(resource: object) -> bool:
    """True if the main thread is parked on ``resource`` right now."""
    rec = _core.record_for(_MAIN)
    node = None if rec is None else rec.waiting
    return node is not None and node.resource is resource and node.state is _core.WAITING


def in_thread(fn: Callable[[], object]) -> threading.Thread:
    """Run ``fn`` in a started stdlib thread (scaffolding outside threadkit)."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace ``threadkit.excepthook`` with a recorder; return what it records."""
    calls: list[Any] = []
    monkeypatch.setattr(threadkit, "excepthook", calls.append)
    return calls


@pytest.fixture
def ctx_var() -> Iterator[contextvars.ContextVar[str]]:
    """The test ContextVar, reset to its default after the test."""
    token = var.set("unset")
    try:
        yield var
    finally:
        var.reset(token)


class Blocker:
    """A blocking threadkit call for a task to park in, and its clean-up."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._cleanup: list[Callable[[], object]] = []
        if kind == "Event.wait":
            self.call: Callable[[], object] = threadkit.Event().wait
        elif kind == "sleep":
            self.call = lambda: threadkit.sleep(60)
        elif kind == "Lock.acquire":
            lock = threadkit.Lock()
            lock.acquire()  # held by the test, so the task parks
            self.call = lock.acquire
            self._cleanup.append(lock.release)
        elif kind == "RLock.acquire":
            rlock = threadkit.RLock()
            rlock.acquire()
            self.call = rlock.acquire
            self._cleanup.append(rlock.release)
        elif kind == "Condition.wait":
            cond = threadkit.Condition()

            def wait() -> None:
                with cond:
                    cond.wait()

            self.call = wait
        elif kind == "Semaphore.acquire":
            self.call = threadkit.Semaphore(0).acquire
        elif kind == "Barrier.wait":
            self.call = threadkit.Barrier(2).wait
        elif kind == "join":
            release = threading.Event()
            other = threadkit.Thread(target=release.wait, args=(10,), daemon=True)
            other.start()
            self.call = other.join
            self._cleanup += [release.set, other.join]
        else:  # pragma: no cover
            raise ValueError(kind)

    def cleanup(self) -> None:
        for step in self._cleanup:
            step()


BLOCKERS = [
    "Event.wait",
    "sleep",
    "Lock.acquire",
    "RLock.acquire",
    "Condition.wait",
    "Semaphore.acquire",
    "Barrier.wait",
    "join",
]


# == API =================================================================================
class TestAPI:
    def test_spawn_returns_task_with_outcome(self) -> None:
        def add(a: int, b: int, *, c: int = 0) -> int:
            return a + b + c

        with TaskGroup() as tg:
            task = tg.spawn(add, 1, 2, c=3)
            assert isinstance(task, Task)
            assert task.result(timeout=5) == 6
            assert task.exception() is None
            assert task.done()

    def test_enter_returns_the_group(self) -> None:
        tg = TaskGroup()
        with tg as entered:
            assert entered is tg

    def test_fn_is_positional_only_and_name_is_not_passed_on(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(lambda **kw: kw, fn=1, args=2, name="named")
        assert task.result() == {"fn": 1, "args": 2}
        assert task.name == "named"

    def test_names(self) -> None:
        with TaskGroup(name="workers") as tg:
            assert tg.name == "workers"
            named = tg.spawn(lambda: threadkit.current_thread().name, name="fetch-1")
            a = tg.spawn(lambda: threadkit.current_thread().name)
            b = tg.spawn(lambda: threadkit.current_thread().name)
        assert named.name == "fetch-1"
        assert named.result() == "fetch-1"  # the worker wears the task's name
        assert isinstance(a.name, str) and a.name.startswith("workers.")
        assert a.name != b.name
        assert a.result() == a.name
        assert TaskGroup().name != TaskGroup().name

    def test_task_thread(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(threadkit.current_thread)
            me = threadkit.current_thread()
        assert isinstance(task.thread, threadkit.Thread)
        assert task.result() is task.thread
        assert task.thread is not me
        assert task.thread.daemon
        assert task.thread.name != task.name  # it wears the task's name only meanwhile

    def test_done_and_timeouts_while_running(self) -> None:
        release = threadkit.Event()
        with TaskGroup() as tg:
            task = tg.spawn(lambda: release.wait() and "ok")
            wait_parked(task)
            assert not task.done()
            with pytest.raises(TimeoutError):
                task.result(timeout=0.01)
            with pytest.raises(TimeoutError):
                task.exception(timeout=0.01)
            release.set()
            assert task.result(timeout=5) == "ok"
            assert task.done()

    def test_cancel_scope(self) -> None:
        tg = TaskGroup()
        assert isinstance(tg.cancel_scope, CancelScope)
        with tg:
            assert not tg.cancel_scope.cancel_called
        assert not tg.cancel_scope.cancelled_caught

    @pytest.mark.parametrize("limit", [0, -1])
    def test_limit_must_be_positive(self, limit: int) -> None:
        with pytest.raises(ValueError):
            TaskGroup(limit=limit)

    def test_spawn_before_entering(self) -> None:
        tg = TaskGroup()
        with pytest.raises(RuntimeError):
            tg.spawn(int)

    def test_spawn_into_closed_group(self) -> None:
        with TaskGroup() as tg:
            tg.spawn(int)
        with pytest.raises(RuntimeError):
            tg.spawn(int)
        with pytest.raises(RuntimeError):
            TaskGroup(limit=2).spawn(int)

    def test_no_spawn_slips_in_once_the_last_task_is_seen_gone(self) -> None:
        # The end of the block closes the group in the same hold of the mutex that
        # sees the last task gone: a spawn from another thread right after that
        # must fail, not start a task that nobody waits for.
        errors: list[BaseException] = []

        class Probe(TaskGroup):
            def _wait_all(self) -> None:
                super()._wait_all()

                def late() -> None:
                    try:
                        self.spawn(int)
                    except RuntimeError as exc:
                        errors.append(exc)

                other = threading.Thread(target=late)
                other.start()
                other.join(10)

        with Probe() as tg:
            tg.spawn(int)
        assert len(errors) == 1
        assert "closed" in str(errors[0])

    def test_a_spawn_that_fails_while_the_block_waits_lets_it_end(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A spawn from another thread while the block waits for its tasks; its
        # submit fails after the group's only task has ended, so the count it took
        # back was the last one. The block must notice and end.
        gate = threadkit.Event()
        errors: list[BaseException] = []
        ended = threading.Event()

        def body() -> None:
            with TaskGroup() as tg:
                first = tg.spawn(gate.wait)
                group.append(tg)
                tasks.append(first)
            ended.set()

        def failing_submit(job: Any) -> None:
            gate.set()
            tasks[0].result(timeout=10)
            raise RuntimeError("can't start new thread")

        group: list[TaskGroup] = []
        tasks: list[Task[Any]] = []
        closer = threading.Thread(target=body, daemon=True)
        closer.start()
        wait_until(lambda: bool(group))
        wait_until_parked(group[0])  # the block's end waits for the first task
        monkeypatch.setattr(_taskgroup, "submit", failing_submit)
        monkeypatch.setattr(_taskgroup, "withdraw", lambda job: True)
        try:
            group[0].spawn(int)
        except RuntimeError as exc:
            errors.append(exc)
        assert ended.wait(10), "the block did not end"
        closer.join(10)
        assert [str(e) for e in errors] == ["can't start new thread"]

    def test_entering_twice(self) -> None:
        tg = TaskGroup()
        with tg, pytest.raises(RuntimeError):
            tg.__enter__()
        with pytest.raises(RuntimeError), tg:
            pass  # pragma: no cover

    # -- contextvars ------------------------------------------------------------------
    def test_task_sees_the_spawners_context(self, ctx_var: contextvars.ContextVar[str]) -> None:
        with TaskGroup() as tg:
            ctx_var.set("body")
            task = tg.spawn(ctx_var.get)
        assert task.result() == "body"

    def test_context_is_copied_at_spawn(self, ctx_var: contextvars.ContextVar[str]) -> None:
        go = threadkit.Event()

        def late_read() -> str:
            go.wait()
            return ctx_var.get()

        with TaskGroup() as tg:
            ctx_var.set("at spawn")
            task = tg.spawn(late_read)
            ctx_var.set("after spawn")
            go.set()
        assert task.result() == "at spawn"

    def test_a_tasks_set_does_not_leak_back(self, ctx_var: contextvars.ContextVar[str]) -> None:
        def set_and_read(value: str) -> str:
            ctx_var.set(value)
            return ctx_var.get()

        with TaskGroup() as tg:
            ctx_var.set("body")
            first = tg.spawn(set_and_read, "task")
            assert first.result(timeout=5) == "task"
            assert ctx_var.get() == "body"
            second = tg.spawn(ctx_var.get)
        assert second.result() == "body"
        assert ctx_var.get() == "body"

    def test_a_task_spawns_with_its_own_context(self, ctx_var: contextvars.ContextVar[str]) -> None:
        def parent(tg: TaskGroup) -> Task[str]:
            ctx_var.set("parent task")
            return tg.spawn(ctx_var.get)

        with TaskGroup() as tg:
            ctx_var.set("body")
            outer = tg.spawn(parent, tg)
        assert outer.result().result() == "parent task"
        assert ctx_var.get() == "body"

    # -- inherited scopes ------------------------------------------------------------
    def test_fail_after_bounds_the_tasks(self) -> None:
        start = time.monotonic()
        with pytest.raises(TimeoutError), threadkit.fail_after(DEADLINE), TaskGroup() as tg:
            task = tg.spawn(threadkit.sleep, 10)
        assert time.monotonic() - start < PROMPT
        assert task.done()
        assert isinstance(task.exception(), Cancelled)

    def test_move_on_after_ends_the_block_quietly(self) -> None:
        reached = []
        with threadkit.move_on_after(DEADLINE) as scope:
            with TaskGroup() as tg:
                tasks = [tg.spawn(threadkit.Event().wait) for _ in range(3)]
            reached.append(True)  # pragma: no cover
        assert scope.cancelled_caught
        assert reached == []
        for task in tasks:
            exc = task.exception()
            assert isinstance(exc, Cancelled) and exc.scope is scope

    def test_task_sees_the_enclosing_deadline(self) -> None:
        with threadkit.move_on_after(30) as scope, TaskGroup() as tg:
            task = tg.spawn(threadkit.current_effective_deadline)
        assert task.result() == scope.deadline

    def test_task_inherits_an_enclosing_cancel(self) -> None:
        with CancelScope() as scope, TaskGroup() as tg:
            task = tg.spawn(threadkit.Event().wait)
            wait_parked(task)
            scope.cancel()
            threadkit.checkpoint()
        assert scope.cancelled_caught
        exc = task.exception()
        assert isinstance(exc, Cancelled) and exc.scope is scope


# == Exit semantics ======================================================================
class TestExit:
    def test_block_waits_for_a_running_task(self) -> None:
        release = threading.Event()  # stdlib: the task is busy, not parked in threadkit
        ended = threading.Event()
        observed: list[bool] = []
        finished: list[int] = []

        def work() -> None:
            release.wait(10)
            finished.append(1)

        with TaskGroup() as tg:
            task = tg.spawn(work)

            def watch() -> None:
                wait_until_parked(tg)  # the block's end waits for the task
                observed.append(ended.is_set())
                release.set()

            watcher = in_thread(watch)
        ended.set()
        watcher.join()
        assert observed == [False]
        assert finished == [1]
        assert task.done()

    def test_block_waits_for_every_task(self) -> None:
        gates = [threadkit.Event() for _ in range(5)]
        with TaskGroup() as tg:
            tasks = [tg.spawn(gate.wait) for gate in gates]
            wait_parked(*tasks)

            def open_in_turn() -> None:
                for task, gate in zip(tasks, gates, strict=True):
                    wait_until(lambda: main_parked_on(tg))  # the block's end waits
                    assert not task.done()
                    gate.set()

            opener = in_thread(open_in_turn)
        assert all(t.done() for t in tasks)
        opener.join()

    @pytest.mark.parametrize("kind", BLOCKERS)
    def test_a_task_failure_cancels_parked_siblings(self, kind: str) -> None:
        blocker = Blocker(kind)
        boom = ValueError("boom")
        try:
            with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
                waiter = tg.spawn(blocker.call)
                wait_parked(waiter)
                tg.spawn(fail, boom)
        finally:
            blocker.cleanup()
        assert info.value.exceptions == (boom,)
        exc = waiter.exception()
        assert isinstance(exc, Cancelled) and exc.scope is tg.cancel_scope

    @pytest.mark.parametrize("kind", ["Event.wait", "sleep", "Lock.acquire"])
    def test_a_body_failure_cancels_parked_tasks(self, kind: str) -> None:
        blocker = Blocker(kind)
        boom = KeyError("body")
        try:
            with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
                waiter = tg.spawn(blocker.call)
                wait_parked(waiter)
                raise boom
        finally:
            blocker.cleanup()
        assert info.value.exceptions == (boom,)
        assert isinstance(waiter.exception(), Cancelled)

    def test_body_is_cancelled_by_a_task_failure(self) -> None:
        boom = ValueError("boom")
        reached = []
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            tg.spawn(fail, boom)
            threadkit.Event().wait()  # woken by the group's cancellation
            reached.append(True)  # pragma: no cover
        assert info.value.exceptions == (boom,)
        assert reached == []

    def test_a_parked_task_is_cancelled_while_the_failure_is_awaited(self) -> None:
        # A task that waits on another task's result is cancelled too.
        boom = ValueError("boom")
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            slow = tg.spawn(threadkit.Event().wait)
            waiter = tg.spawn(slow.result)
            wait_parked(slow, waiter)
            tg.spawn(fail, boom)
        assert info.value.exceptions == (boom,)
        assert isinstance(slow.exception(), Cancelled)
        assert isinstance(waiter.exception(), Cancelled)

    def test_every_failure_is_raised(self) -> None:
        barrier = threading.Barrier(3)  # stdlib: all three fail, none is cancelled first
        errors = [ValueError(0), KeyError(1), ValueError(2)]

        def fail_together(exc: BaseException) -> NoReturn:
            barrier.wait(10)
            raise exc

        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            tasks = [tg.spawn(fail_together, exc) for exc in errors]
        assert isinstance(info.value, ExceptionGroup)
        got = info.value.exceptions
        assert len(got) == 3
        assert {id(e) for e in got} == {id(e) for e in errors}
        assert [t.exception() for t in tasks] == errors

    def test_except_star(self) -> None:
        barrier = threading.Barrier(3)

        def fail_together(exc: BaseException) -> NoReturn:
            barrier.wait(10)
            raise exc

        values: list[BaseException] = []
        keys: list[BaseException] = []
        try:
            with TaskGroup() as tg:
                for exc in (ValueError("a"), KeyError("b"), ValueError("c")):
                    tg.spawn(fail_together, exc)
        except* ValueError as group:
            values.extend(group.exceptions)
        except* KeyError as group:
            keys.extend(group.exceptions)
        assert sorted(str(e) for e in values) == ["a", "c"]
        assert [str(e) for e in keys] == ["'b'"]

    def test_cancelled_tasks_are_not_failures(self) -> None:
        boom = ValueError("boom")
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            waiters = [tg.spawn(threadkit.Event().wait) for _ in range(4)]
            wait_parked(*waiters)
            tg.spawn(fail, boom)
        assert info.value.exceptions == (boom,)
        assert all(isinstance(w.exception(), Cancelled) for w in waiters)

    def test_a_body_failure_is_included_with_task_failures(self) -> None:
        task_error = ValueError("task")
        body_error = KeyError("body")
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            failed = tg.spawn(fail, task_error)
            wait_until(failed.done)
            raise body_error
        got = info.value.exceptions
        assert len(got) == 2
        assert {id(e) for e in got} == {id(task_error), id(body_error)}

    # -- what passes through bare -----------------------------------------------------
    @pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
    def test_interrupt_in_body_passes_through_bare(self, kind: type[BaseException]) -> None:
        error = kind()
        with pytest.raises(kind) as info, TaskGroup() as tg:
            waiters = [tg.spawn(threadkit.Event().wait), tg.spawn(threadkit.sleep, 60)]
            wait_parked(*waiters)
            raise error
        assert info.value is error
        for w in waiters:
            assert w.done()
            assert isinstance(w.exception(), Cancelled)

    def test_system_exit_in_a_task_passes_through_bare(self) -> None:
        error = SystemExit(3)
        with pytest.raises(SystemExit) as info, TaskGroup() as tg:
            waiter = tg.spawn(threadkit.Event().wait)
            wait_parked(waiter)
            tg.spawn(fail, error)
        assert info.value is error
        assert info.value.code == 3
        assert isinstance(waiter.exception(), Cancelled)

    def test_outer_cancellation_passes_through_as_cancelled(self) -> None:
        outer = CancelScope()
        body = threadkit.Event()
        seen: list[BaseException] = []
        reached = []
        with outer:
            try:
                with TaskGroup() as tg:
                    waiter = tg.spawn(threadkit.Event().wait)
                    wait_parked(waiter)

                    def cancel_outer() -> None:
                        wait_until_parked(body)
                        outer.cancel()

                    canceller = in_thread(cancel_outer)
                    body.wait()
            except BaseException as exc:
                seen.append(exc)
                raise
            reached.append(True)  # pragma: no cover
        canceller.join()
        assert outer.cancelled_caught
        assert reached == []
        [exc] = seen
        assert type(exc) is Cancelled and exc.scope is outer
        assert not tg.cancel_scope.cancelled_caught
        task_exc = waiter.exception()
        assert isinstance(task_exc, Cancelled)

    def test_outer_cancellation_while_waiting_at_the_end(self) -> None:
        outer = CancelScope()
        with outer, TaskGroup() as tg:
            waiter = tg.spawn(threadkit.Event().wait)
            wait_parked(waiter)

            def cancel_outer() -> None:
                wait_until_parked(tg)  # the block's end waits for it
                outer.cancel()

            canceller = in_thread(cancel_outer)
        canceller.join()
        assert outer.cancelled_caught
        exc = waiter.exception()
        assert isinstance(exc, Cancelled) and exc.scope is outer

    # -- nesting ---------------------------------------------------------------------
    def test_nested_group_failure_surfaces_nested(self) -> None:
        inner_error = ValueError("inner")

        def child() -> None:
            with TaskGroup(name="inner") as inner:
                inner.spawn(fail, inner_error)

        with pytest.raises(ExceptionGroup) as info, TaskGroup(name="outer") as tg:
            sibling = tg.spawn(threadkit.Event().wait)
            wait_parked(sibling)
            tg.spawn(child)
        [nested] = info.value.exceptions
        assert isinstance(nested, ExceptionGroup)
        assert nested.exceptions == (inner_error,)
        assert isinstance(sibling.exception(), Cancelled)

    def test_nested_group_failure_matches_except_star(self) -> None:
        def child() -> None:
            with TaskGroup() as inner:
                inner.spawn(fail, ValueError("deep"))

        caught: list[BaseException] = []
        try:
            with TaskGroup() as tg:
                tg.spawn(child)
        except* ValueError as group:
            caught.extend(group.exceptions)
        [nested] = caught
        assert isinstance(nested, ExceptionGroup)
        assert [str(e) for e in nested.exceptions] == ["deep"]

    def test_outer_failure_cancels_inner_group_tasks(self) -> None:
        boom = ValueError("outer")
        inner_tasks: list[Task[Any]] = []

        def child() -> None:
            with TaskGroup() as inner:
                inner_tasks.append(inner.spawn(threadkit.Event().wait))

        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            parent = tg.spawn(child)
            wait_until(lambda: bool(inner_tasks))
            wait_parked(inner_tasks[0])
            tg.spawn(fail, boom)
        assert info.value.exceptions == (boom,)
        assert isinstance(inner_tasks[0].exception(), Cancelled)
        assert isinstance(parent.exception(), Cancelled)

    # -- late spawns -----------------------------------------------------------------
    def test_a_task_may_spawn_while_the_block_ends(self) -> None:
        go = threadkit.Event()
        release = threading.Event()
        ended = threading.Event()
        children: list[Task[Any]] = []
        observed: list[bool] = []

        def child() -> str:
            release.wait(10)
            return "child"

        def parent(tg: TaskGroup) -> None:
            go.wait()
            children.append(tg.spawn(child))

        with TaskGroup() as tg:
            first = tg.spawn(parent, tg)
            wait_parked(first)

            def drive() -> None:
                wait_until_parked(tg)  # the block is ending
                go.set()
                wait_until(lambda: bool(children) and first.done())
                wait_until_parked(tg)  # ... and awaits the late task
                observed.append(ended.is_set())
                release.set()

            driver = in_thread(drive)
        ended.set()
        driver.join()
        assert observed == [False]
        assert children[0].result() == "child"

    # -- cancelling ------------------------------------------------------------------
    def test_cancel_scope_ends_the_block_quietly(self) -> None:
        reached = []
        with TaskGroup() as tg:
            waiters = [tg.spawn(threadkit.Event().wait) for _ in range(3)]
            wait_parked(*waiters)
            tg.cancel_scope.cancel()
            threadkit.Event().wait()
            reached.append(True)  # pragma: no cover
        assert reached == []
        assert tg.cancel_scope.cancelled_caught
        for w in waiters:
            exc = w.exception()
            assert isinstance(exc, Cancelled) and exc.scope is tg.cancel_scope

    def test_cancel_scope_without_a_checkpoint_in_the_body(self) -> None:
        after = []
        with TaskGroup() as tg:
            waiter = tg.spawn(threadkit.Event().wait)
            tg.cancel_scope.cancel()
        after.append(True)
        assert after == [True]
        assert tg.cancel_scope.cancelled_caught
        assert isinstance(waiter.exception(), Cancelled)

    def test_cancel_scope_from_a_task(self) -> None:
        with TaskGroup() as tg:
            waiter = tg.spawn(threadkit.Event().wait)
            tg.spawn(tg.cancel_scope.cancel)
            threadkit.Event().wait()
        assert tg.cancel_scope.cancelled_caught
        assert isinstance(waiter.exception(), Cancelled)

    def test_task_cancel_cancels_only_that_task(self) -> None:
        release = threadkit.Event()

        def other_work() -> int:
            release.wait()
            return 42

        with TaskGroup() as tg:
            victim = tg.spawn(threadkit.Event().wait)
            other = tg.spawn(other_work)
            wait_parked(victim, other)
            victim.cancel()
            with pytest.raises(Cancelled) as info:
                victim.result(timeout=5)
            assert info.value.scope is not tg.cancel_scope
            assert victim.done()
            assert not other.done()
            assert not tg.cancel_scope.cancel_called
            release.set()
            assert other.result(timeout=5) == 42
        assert not tg.cancel_scope.cancel_called
        assert not tg.cancel_scope.cancelled_caught
        assert isinstance(victim.exception(), Cancelled)

    # -- excepthook ------------------------------------------------------------------
    def test_task_failure_not_reported_to_excepthook(self, hook_calls: list[Any]) -> None:
        with pytest.raises(ExceptionGroup), TaskGroup() as tg:
            waiter = tg.spawn(threadkit.Event().wait)
            wait_parked(waiter)
            tg.spawn(fail, ValueError("boom"))
        with TaskGroup() as tg:
            victim = tg.spawn(threadkit.Event().wait)
            wait_parked(victim)
            victim.cancel()
        assert hook_calls == []


# == Backpressure ========================================================================
class TestBackpressure:
    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_limit_bounds_running_tasks(self, limit: int) -> None:
        n = limit * 2 + 1
        guard = threading.Lock()
        running = [0]
        peak = [0]
        release = threadkit.Event()
        spawned: list[Task[Any]] = []
        observed: list[tuple[int, int]] = []

        def work() -> None:
            with guard:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                release.wait()
            finally:
                with guard:
                    running[0] -= 1

        with TaskGroup(limit=limit) as tg:

            def watch() -> None:
                wait_until_parked(tg._slots)  # the (limit+1)-th spawn waits
                wait_until(lambda: running[0] == limit)
                observed.append((len(spawned), running[0]))
                release.set()

            watcher = in_thread(watch)
            for _ in range(n):
                spawned.append(tg.spawn(work))
        watcher.join()
        assert observed == [(limit, limit)]
        assert peak[0] == limit
        assert len(spawned) == n
        assert all(t.done() and t.exception() is None for t in spawned)

    def test_spawn_wait_is_cancellable_and_leaks_no_slot(self) -> None:
        limit = 2
        hold = threadkit.Event()
        called: list[int] = []
        with TaskGroup(limit=limit) as tg:
            holders = [tg.spawn(hold.wait) for _ in range(limit)]
            scope = CancelScope()

            def cancel_spawner() -> None:
                wait_until_parked(tg._slots)
                scope.cancel()

            canceller = in_thread(cancel_spawner)
            reached = []
            with scope:
                tg.spawn(called.append, 1)
                reached.append(True)  # pragma: no cover
            canceller.join()
            assert scope.cancelled_caught
            assert reached == []
            assert not tg.cancel_scope.cancel_called
            hold.set()
            for h in holders:
                h.result(timeout=5)
            # Every slot is free again: `limit` tasks can run at once.
            gate = threadkit.Event()
            again = [tg.spawn(gate.wait) for _ in range(limit)]
            wait_parked(*again)
            gate.set()
        assert called == []
        assert all(t.exception() is None for t in again)
        assert tg._slots is not None
        for _ in range(limit):
            assert tg._slots.acquire(blocking=False)
        assert not tg._slots.acquire(blocking=False)

    def test_spawn_wait_is_cancelled_by_a_task_failure(self) -> None:
        go = threadkit.Event()
        boom = ValueError("boom")
        called: list[int] = []
        raised: list[BaseException] = []

        def fail_when_told() -> None:
            go.wait()
            raise boom

        with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=1) as tg:
            tg.spawn(fail_when_told)

            def release() -> None:
                wait_until_parked(tg._slots)
                go.set()

            releaser = in_thread(release)
            try:
                # The failure frees the slot and cancels the group: the waiting
                # spawn raises Cancelled, or, if the freed slot won the race, the
                # body's next cancellation point does.
                tg.spawn(called.append, 1)
                threadkit.checkpoint()
            except BaseException as exc:
                raised.append(exc)
                raise
        releaser.join()
        assert info.value.exceptions == (boom,)
        [exc] = raised
        assert isinstance(exc, Cancelled) and exc.scope is tg.cancel_scope
        assert tg._slots is not None and tg._slots.acquire(blocking=False)
        assert not tg._slots.acquire(blocking=False)

    # -- map -------------------------------------------------------------------------
    def test_map_keeps_input_order_with_limit_in_flight(self) -> None:
        limit = 3
        n = 12
        done = [threadkit.Event() for _ in range(n)]
        # map has each chunk of `limit` items in flight together: they meet here.
        meet = [threading.Barrier(limit) for _ in range(n // limit)]
        guard = threading.Lock()
        running = [0]
        peak = [0]

        def work(i: int) -> int:
            with guard:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                meet[i // limit].wait(10)
                # Within each chunk, the last item finishes first, the first last.
                if (i + 1) % limit:
                    done[i + 1].wait()
                return i * i
            finally:
                with guard:
                    running[0] -= 1
                done[i].set()

        with TaskGroup(limit=limit) as tg:
            results = list(tg.map(work, range(n)))
        assert results == [i * i for i in range(n)]
        assert peak[0] == limit

    def test_map_over_an_endless_iterable(self) -> None:
        limit = 4
        pulled = [0]
        bounds: list[tuple[int, int, int]] = []

        def source() -> Iterator[int]:
            for i in itertools.count():
                pulled[0] += 1
                yield i

        results = []
        with TaskGroup(limit=limit) as tg:
            for result in tg.map(lambda x: x + 1, source()):
                results.append(result)
                bounds.append((len(results), pulled[0], tg._running))
                if len(results) == 50:
                    break
        assert results == list(range(1, 51))
        for consumed, pulled_then, in_flight in bounds:
            assert pulled_then <= consumed + limit
            assert in_flight <= limit

    def test_map_needs_a_limit(self) -> None:
        with TaskGroup() as tg:
            with pytest.raises(ValueError):
                list(tg.map(abs, [1, 2]))
            assert not tg._running

    def test_map_raises_a_failing_items_exception(self) -> None:
        limit = 4
        boom = ValueError("item 3")
        seen: list[int] = []
        raised: list[BaseException] = []

        def work(x: int) -> int:
            if x == 3:
                raise boom
            return x

        with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=limit) as tg:

            def source() -> Iterator[int]:
                yield from range(limit)
                # Items 0-3 are in flight: let item 3 fail before map asks for
                # any result (a failure found already there, not a race).
                wait_until(lambda: bool(tg._failures))
                yield from range(limit, 10)

            try:
                for result in tg.map(work, source()):
                    seen.append(result)
            except BaseException as exc:
                raised.append(exc)
                raise
        assert info.value.exceptions == (boom,)
        assert seen == [0, 1, 2][: len(seen)]
        [exc] = raised
        assert exc is boom, f"map raised {exc!r}, not the failing item's exception"

    def test_map_failure_is_in_the_group_exactly_once(self) -> None:
        boom = ValueError("item 3")

        def work(x: int) -> int:
            if x == 3:
                raise boom
            return x

        for body_catches in (False, True):
            with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=2) as tg:
                try:
                    list(tg.map(work, range(10)))
                except BaseException:
                    if not body_catches:
                        raise
            assert info.value.exceptions == (boom,)


# == Ctrl-C ==============================================================================
@pytest.fixture
def sigints() -> Iterator[list[int]]:
    """In the main thread, count the SIGINTs handled; each raises KeyboardInterrupt."""
    assert _thread.get_ident() == _MAIN, "these tests interrupt the main thread"
    _core.current_record()  # the main thread's record exists from here on
    handled = [0]

    def handler(signum: int, frame: object) -> None:
        handled[0] += 1
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield handled
    finally:
        signal.signal(signal.SIGINT, old)


def ctrl_c(handled: list[int]) -> None:
    """Press Ctrl-C once: SIGINT the main thread until its handler has run once more.

    A SIGINT that lands just before the main thread blocks in its lock is only seen at
    the next signal (a CPython race; ``threading`` has it too), so one that no handler
    took is sent again. Signals sent before the handler runs make it run once, and it
    cannot run while this thread holds the GIL between the check and the resend.
    """
    target = handled[0] + 1
    for _ in range(50):
        signal.pthread_kill(_MAIN, signal.SIGINT)
        try:
            wait_until(lambda: handled[0] >= target, timeout=0.2)
            return
        except AssertionError:
            continue
    raise AssertionError("no SIGINT reached the main thread's handler")


class _Firer:
    """A stdlib thread that presses Ctrl-C once ``ready()`` holds."""

    def __init__(self, handled: list[int], ready: Callable[[], bool]) -> None:
        self.error: BaseException | None = None
        self.thread = in_thread(lambda: self._run(handled, ready))

    def _run(self, handled: list[int], ready: Callable[[], bool]) -> None:
        try:
            wait_until(ready)
        except BaseException as exc:  # still interrupt the main thread, then fail
            self.error = exc
        ctrl_c(handled)

    def join(self) -> None:
        self.thread.join()
        assert self.error is None, self.error


class _Stuck:
    """A task body that ignores cancellation until ``unstick`` is set."""

    def __init__(self) -> None:
        self.unstick = threading.Event()
        self.started = threading.Event()

    def run(self) -> None:
        # A task cancelled before it starts would not run: Ctrl-C only once it has.
        self.started.set()
        self.unstick.wait(10)  # stdlib wait: not cancellable


@contextmanager
def undo_scope_leak(tg: TaskGroup) -> Iterator[None]:
    """Take the group's scope off the main thread's stack if the group left it there.

    Otherwise a cancelled scope left behind would cancel every later test.
    """
    rec = _core.current_record()
    try:
        yield
    finally:
        if tg.cancel_scope in rec.scopes:
            tg.cancel_scope.__exit__(None, None, None)


class TestCtrlC:
    def test_ctrl_c_in_the_body_cancels_and_awaits_the_tasks(self, sigints: list[int]) -> None:
        body = threadkit.Event()
        hold = threading.Event()  # keeps one cancelled task busy for a while
        ended = threading.Event()
        observed: list[bool] = []

        def linger() -> None:
            try:
                threadkit.Event().wait()
            except Cancelled:
                hold.wait(10)
                raise

        with pytest.raises(KeyboardInterrupt), TaskGroup() as tg:
            tasks = [
                tg.spawn(threadkit.Event().wait),
                tg.spawn(threadkit.sleep, 60),
                tg.spawn(threadkit.Semaphore(0).acquire),
                tg.spawn(Blocker("Condition.wait").call),
            ]
            lingering = tg.spawn(linger)
            wait_parked(*tasks, lingering)

            def release() -> None:
                wait_until_parked(tg)  # the block waits for it (lingering)
                observed.append(ended.is_set())
                hold.set()

            firer = _Firer(sigints, lambda: main_parked_on(body))
            releaser = in_thread(release)
            body.wait()
        ended.set()
        firer.join()
        releaser.join()
        assert sigints == [1]
        assert observed == [False]
        for task in [*tasks, lingering]:
            assert task.done()
            exc = task.exception()
            assert isinstance(exc, Cancelled) and exc.scope is tg.cancel_scope

    def test_ctrl_c_at_the_end_of_the_block_cancels_the_tasks(self, sigints: list[int]) -> None:
        with pytest.raises(KeyboardInterrupt), TaskGroup() as tg:
            tasks = [tg.spawn(threadkit.Event().wait) for _ in range(3)]
            wait_parked(*tasks)
            firer = _Firer(sigints, lambda: main_parked_on(tg))
        firer.join()
        assert sigints == [1]
        assert tg.cancel_scope.cancel_called
        for task in tasks:
            assert isinstance(task.exception(), Cancelled)

    @staticmethod
    def _count_waits(tg: TaskGroup, monkeypatch: pytest.MonkeyPatch) -> list[None]:
        """Count the group's untimed waits for its tasks (one entry per wait started)."""
        entries: list[None] = []
        original = tg._wait_all

        def counting(deadline: float | None = None) -> bool:
            if deadline is None:
                entries.append(None)
            return original(deadline)

        monkeypatch.setattr(tg, "_wait_all", counting)
        return entries

    def test_second_ctrl_c_after_one_in_the_body_abandons_a_stuck_task(
        self, sigints: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Ctrl-C in the body cancels the tasks and the group waits for them; a task
        # that ignores its cancellation is abandoned at the next Ctrl-C.
        tg = TaskGroup()
        waits = self._count_waits(tg, monkeypatch)
        stuck_task = _Stuck()
        unstick, started, stick = stuck_task.unstick, stuck_task.started, stuck_task.run

        body = threadkit.Event()
        escaped = threading.Event()
        absorbed: list[bool] = []

        def drive() -> None:
            try:
                wait_until(lambda: main_parked_on(body) and started.is_set())
                ctrl_c(sigints)  # in the body
                wait_until(lambda: len(waits) == 1 and main_parked_on(tg))
                ctrl_c(sigints)  # while the group waits for the stuck task
                # Either it got through, or the group went back to waiting.
                wait_until(lambda: escaped.is_set() or (len(waits) == 2 and main_parked_on(tg)))
                absorbed.append(not escaped.is_set())
            finally:
                unstick.set()

        with undo_scope_leak(tg):
            with pytest.raises(KeyboardInterrupt), tg:
                stuck = tg.spawn(stick)
                driver = in_thread(drive)
                body.wait()
            escaped.set()
            driver.join()
        stuck.exception(timeout=10)
        assert sigints == [2]
        assert absorbed == [False], (
            "the second Ctrl-C was absorbed: the group waited for the stuck task again"
        )

    def test_ctrl_c_that_abandons_the_block_leaves_no_scope_behind(
        self, sigints: list[int], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tg = TaskGroup()
        waits = self._count_waits(tg, monkeypatch)
        stuck_task = _Stuck()
        unstick, started, stick = stuck_task.unstick, stuck_task.started, stuck_task.run

        rec = _core.current_record()

        def drive() -> None:
            wait_until(lambda: len(waits) == 1 and main_parked_on(tg) and started.is_set())
            ctrl_c(sigints)  # cancels the tasks; the group waits once more
            wait_until(lambda: len(waits) == 2 and main_parked_on(tg))
            ctrl_c(sigints)  # abandons the stuck task

        try:
            with undo_scope_leak(tg):
                with pytest.raises(KeyboardInterrupt), tg:
                    stuck = tg.spawn(stick)
                    driver = in_thread(drive)
                driver.join()
                leaked = tg.cancel_scope in rec.scopes
        finally:
            unstick.set()
        stuck.exception(timeout=10)
        assert sigints == [2]
        assert stuck.exception() is None
        assert not leaked, (
            "the group's cancelled scope stayed on the main thread's stack: every later "
            "blocking call there raises Cancelled"
        )

    def test_stuck_task_does_not_keep_the_interpreter_alive(self) -> None:
        code = """
            import _thread, signal, sys, threading, time
            import threadkit
            from threadkit import _core

            MAIN = _thread.get_ident()
            body = threadkit.Event()
            started = threading.Event()
            handled = [0]
            waits = []
            original = threadkit.TaskGroup._wait_all

            def counting(self, deadline=None):
                if deadline is None:
                    waits.append(None)
                return original(self, deadline)

            threadkit.TaskGroup._wait_all = counting

            def handler(signum, frame):
                handled[0] += 1
                raise KeyboardInterrupt

            signal.signal(signal.SIGINT, handler)

            def poll(predicate, timeout=10):
                deadline = time.monotonic() + timeout
                while not predicate():
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.0005)
                return True

            def main_parked_on(resource):
                rec = _core.record_for(MAIN)
                node = None if rec is None else rec.waiting
                return (node is not None and node.resource is resource
                        and node.state is _core.WAITING)

            def ctrl_c():
                target = handled[0] + 1
                while True:  # resent if it landed just before the main thread blocked
                    signal.pthread_kill(MAIN, signal.SIGINT)
                    if poll(lambda: handled[0] >= target, 0.2):
                        return

            def stuck():
                started.set()
                time.sleep(30)  # not a cancellation point

            def fire(task):
                started.wait(10)
                poll(lambda: main_parked_on(body))
                for n in range(1, 6):
                    print("Ctrl-C", n, flush=True)
                    ctrl_c()
                    # The group waits for the stuck task (again): Ctrl-C once more.
                    poll(lambda: len(waits) >= n and main_parked_on(tg))

            with threadkit.TaskGroup() as tg:
                task = tg.spawn(stuck)
                threading.Thread(target=fire, args=(task,), daemon=True).start()
                body.wait()
            print("block ended", flush=True)
        """
        start = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=10,
            env=dict(os.environ, PYTHONPATH=SRC),
        )
        elapsed = time.monotonic() - start
        presses = out.stdout.count("Ctrl-C")
        assert "block ended" not in out.stdout
        assert out.returncode != 0, out
        assert "KeyboardInterrupt" in out.stderr, out.stderr
        assert elapsed < 10, f"took {elapsed:.1f}s after {presses} Ctrl-C"
        assert 2 <= presses < 5, out.stdout
