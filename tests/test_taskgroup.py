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

    def test_every_keyword_goes_to_the_function(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(lambda **kw: kw, fn=1, args=2, name="bob", limit=3)
        assert task.result() == {"fn": 1, "args": 2, "name": "bob", "limit": 3}
        assert task.name != "bob"

    def test_a_name_parameter_is_the_functions(self) -> None:
        def greet(name: str) -> str:
            return f"hello {name}"

        with TaskGroup() as tg:
            task = tg.spawn(greet, name="bob")
        assert task.result() == "hello bob"
        assert task.name != "bob"

    def test_name_for_a_function_without_one_is_deprecated(self) -> None:
        with TaskGroup() as tg, pytest.warns(DeprecationWarning, match="options"):
            task = tg.spawn(lambda: threadkit.current_thread().name, name="old")
        assert task.name == "old"
        assert task.result() == "old"

    def test_options_name_the_task(self) -> None:
        def greet(name: str) -> str:
            return f"{threadkit.current_thread().name} greets {name}"

        with TaskGroup(name="workers") as tg:
            spawner = tg.options(name="fetch-1")
            assert isinstance(spawner, threadkit.Spawner)
            task = spawner.spawn(greet, name="bob")
            other = spawner.spawn(greet, "ann")
        assert task.name == "fetch-1" and other.name == "fetch-1"
        assert task.result() == "fetch-1 greets bob"
        assert other.result() == "fetch-1 greets ann"

    @pytest.mark.parametrize("fn", [42, None, "print"])
    def test_spawn_of_a_non_callable_fails_at_the_call(self, fn: Any) -> None:
        with TaskGroup() as tg:
            with pytest.raises(TypeError, match="not callable"):
                tg.spawn(fn)
            with pytest.raises(TypeError, match="not callable"):
                tg.options(name="x").spawn(fn)
            with pytest.raises(TypeError, match="not callable"):
                tg.map(fn, [1])
            assert not tg._running

    def test_names(self) -> None:
        with TaskGroup(name="workers") as tg:
            assert tg.name == "workers"
            named = tg.options(name="fetch-1").spawn(lambda: threadkit.current_thread().name)
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
        with pytest.raises(ValueError, match="limit must be at least 1"):
            TaskGroup(limit=limit)

    @pytest.mark.parametrize("limit", [2.5, True, "3", 3.0])
    def test_limit_must_be_an_int(self, limit: Any) -> None:
        with pytest.raises(TypeError):
            TaskGroup(limit=limit)

    @pytest.mark.parametrize(
        ("value", "error"), [(-1, ValueError), (False, TypeError), (1.5, TypeError)]
    )
    def test_max_pending_must_be_a_non_negative_int(
        self, value: Any, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            TaskGroup(max_pending=value)

    def test_limit_defaults_to_the_default_limit(self) -> None:
        assert TaskGroup().limit == _taskgroup.DEFAULT_LIMIT == 100
        assert TaskGroup(limit=None).limit is None
        assert TaskGroup(limit=7).limit == 7

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
def runners_and_pending(tg: TaskGroup) -> tuple[int, int]:
    with tg._mutex:
        return tg._runners, len(tg._pending)


class TestBackpressure:
    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_limit_bounds_running_tasks_and_the_rest_wait_queued(self, limit: int) -> None:
        n = limit * 3 + 1
        guard = threading.Lock()
        running = [0]
        peak = [0]
        release = threadkit.Event()

        def work(i: int) -> int:
            with guard:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                release.wait()
                return i
            finally:
                with guard:
                    running[0] -= 1

        with TaskGroup(limit=limit) as tg:
            # No spawn waits: the tasks beyond the limit wait in the group's queue.
            tasks = [tg.spawn(work, i) for i in range(n)]
            wait_until(lambda: running[0] == limit)
            assert runners_and_pending(tg) == (limit, n - limit)
            assert sum(not t.done() for t in tasks) == n
            release.set()
        assert peak[0] == limit
        assert [t.result() for t in tasks] == list(range(n))
        assert runners_and_pending(tg) == (0, 0)

    def test_default_limit_bounds_running_tasks(self) -> None:
        limit = _taskgroup.DEFAULT_LIMIT
        release = threadkit.Event()
        with TaskGroup() as tg:
            tasks = [tg.spawn(release.wait) for _ in range(limit + 5)]
            wait_parked(*tasks[:limit])
            assert runners_and_pending(tg) == (limit, 5)
            assert all(t.thread is None for t in tasks[limit:])
            release.set()
        assert all(t.result() for t in tasks)

    def test_spawn_waits_when_the_queue_is_full_until_it_drained_to_half(self) -> None:
        gates = [threadkit.Event() for _ in range(6)]
        started: list[int] = []

        def work(i: int) -> None:
            started.append(i)
            gates[i].wait()

        with TaskGroup(limit=1, max_pending=4) as tg:
            for i in range(5):
                tg.spawn(work, i)  # one running, four queued: the queue is full
            assert runners_and_pending(tg) == (1, 4)
            spawned: list[Task[None]] = []
            spawner = threadkit.Thread(target=lambda: spawned.append(tg.spawn(work, 5)))
            spawner.start()
            wait_until_parked(tg)
            gates[0].set()
            wait_until(lambda: started == [0, 1])
            # Three queued: more than half of max_pending, so the spawner sleeps on.
            assert len(tg._room) == 1 and not spawned
            gates[1].set()
            spawner.join(timeout=5)
            assert not spawner.is_alive() and len(spawned) == 1
            for gate in gates:
                gate.set()
        assert started == list(range(6))

    def test_max_pending_zero_waits_for_a_free_slot(self) -> None:
        release = threadkit.Event()
        with TaskGroup(limit=2, max_pending=0) as tg:
            first = [tg.spawn(release.wait) for _ in range(2)]
            wait_parked(*first)
            waiter = in_thread(lambda: (wait_until_parked(tg), release.set()))
            third = tg.spawn(release.wait)
            waiter.join()
            assert runners_and_pending(tg)[1] == 0
        assert third.result() is True

    def test_spawn_wait_is_cancellable_and_leaks_nothing(self) -> None:
        limit = 2
        hold = threadkit.Event()
        called: list[int] = []
        with TaskGroup(limit=limit, max_pending=0) as tg:
            holders = [tg.spawn(hold.wait) for _ in range(limit)]
            scope = CancelScope()

            def cancel_spawner() -> None:
                wait_until_parked(tg)
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
            assert len(tg._room) == 0
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
        assert runners_and_pending(tg) == (0, 0)
        assert tg._running == 0

    def test_spawn_wait_is_cancelled_by_a_task_failure(self) -> None:
        go = threadkit.Event()
        boom = ValueError("boom")
        called: list[int] = []
        raised: list[BaseException] = []

        def fail_when_told() -> None:
            go.wait()
            raise boom

        with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=1, max_pending=0) as tg:
            tg.spawn(fail_when_told)

            def release() -> None:
                wait_until_parked(tg)
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
        assert called == []
        assert runners_and_pending(tg) == (0, 0)

    @pytest.mark.parametrize("max_pending", [0, 1])
    def test_a_task_spawning_into_its_own_full_group_never_waits(self, max_pending: int) -> None:
        # Every slot is held by a task that spawns more: had they waited for room,
        # nothing could ever free it.
        ran: list[int] = []

        def parent(i: int) -> None:
            for j in range(5):
                tg.spawn(ran.append, i * 10 + j)

        with TaskGroup(limit=2, max_pending=max_pending) as tg:
            for i in range(2):
                tg.spawn(parent, i)
        assert sorted(ran) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]

    def test_a_task_of_a_nested_group_spawning_into_the_outer_one_never_waits(self) -> None:
        ran: list[str] = []

        def inner(tag: str) -> None:
            outer.spawn(ran.append, tag)

        def parent() -> None:
            with TaskGroup(limit=1) as nested:
                nested.spawn(inner, "a")
                nested.spawn(inner, "b")

        with TaskGroup(limit=1, max_pending=0) as outer:
            outer.spawn(parent)
        assert sorted(ran) == ["a", "b"]

    def test_a_burst_into_a_limited_group(self) -> None:
        with TaskGroup(limit=4, max_pending=64) as tg:
            tasks = [tg.spawn(abs, -i) for i in range(2000)]
        assert [t.result() for t in tasks] == list(range(2000))
        assert runners_and_pending(tg) == (0, 0)

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

    def test_map_keeps_every_slot_busy_behind_a_slow_item(self) -> None:
        # Item 0 finishes only once 30 later items have: with a window of `limit`
        # items, as before, this could never happen.
        limit = 3
        later_done = threading.Semaphore(0)

        def work(i: int) -> int:
            if i == 0:
                for _ in range(30):
                    assert later_done.acquire(timeout=10)
            else:
                later_done.release()
            return i

        with TaskGroup(limit=limit) as tg:
            assert list(tg.map(work, range(40))) == list(range(40))

    def test_map_window_is_bounded_over_an_endless_iterable(self) -> None:
        limit = 4
        window = 10
        pulled = [0]
        bounds: list[tuple[int, int, int]] = []

        def source() -> Iterator[int]:
            for i in itertools.count():
                pulled[0] += 1
                yield i

        results = []
        with TaskGroup(limit=limit) as tg:
            for result in tg.map(lambda x: x + 1, source(), buffersize=window):
                results.append(result)
                bounds.append((len(results), pulled[0], tg._running - len(tg._pending)))
                if len(results) == 50:
                    break
        assert results == list(range(1, 51))
        for consumed, pulled_then, running in bounds:
            assert pulled_then <= consumed + window
            assert running <= limit

    def test_map_default_window_is_16_per_slot(self) -> None:
        pulled = [0]

        def source() -> Iterator[int]:
            for i in itertools.count():
                pulled[0] += 1
                yield i

        gate = threadkit.Event()
        with TaskGroup(limit=2) as tg:
            results = tg.map(lambda x: gate.wait() and x, source())
            in_thread(lambda: (wait_until(lambda: pulled[0] >= 32), gate.set()))
            assert next(results) == 0
            assert pulled[0] == 32
            results.close()

    def test_map_of_several_iterables_zips_them(self) -> None:
        with TaskGroup(limit=2) as tg:
            assert list(tg.map(pow, [2, 3, 4], [2, 2])) == [4, 9]

    def test_map_needs_a_limit_or_a_buffersize(self) -> None:
        with TaskGroup(limit=None) as tg:
            with pytest.raises(ValueError, match="buffersize"):
                tg.map(abs, [1, 2])
            assert not tg._running
            assert list(tg.map(abs, [-1, -2], buffersize=1)) == [1, 2]

    @pytest.mark.parametrize(
        ("value", "error"), [(0, ValueError), (True, TypeError), (2.0, TypeError)]
    )
    def test_map_buffersize_must_be_a_positive_int(
        self, value: Any, error: type[Exception]
    ) -> None:
        with TaskGroup(limit=2) as tg, pytest.raises(error):
            tg.map(abs, [1], buffersize=value)

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

    @pytest.mark.parametrize("fail_fast", [True, False])
    def test_map_return_exceptions_yields_them_in_place(self, fail_fast: bool) -> None:
        def work(x: int) -> int:
            if x % 3 == 0:
                raise ValueError(x)
            return x

        with TaskGroup(limit=3, fail_fast=fail_fast) as tg:
            out = list(tg.map(work, range(7), return_exceptions=True))
            assert not tg.cancel_scope.cancel_called
        assert [type(x) for x in out] == [ValueError, int, int, ValueError, int, int, ValueError]
        assert [x.args[0] if isinstance(x, ValueError) else x for x in out] == list(range(7))

    def test_map_return_exceptions_does_not_swallow_base_exceptions(self) -> None:
        def work(x: int) -> int:
            if x == 1:
                raise SystemExit(3)
            return x

        with pytest.raises(SystemExit), TaskGroup(limit=2) as tg:
            list(tg.map(work, range(4), return_exceptions=True))

    @pytest.mark.parametrize("fail_fast", [True, False])
    @pytest.mark.parametrize("how", ["closed early", "left open at the end"])
    def test_map_gives_unseen_failures_back_to_the_group(self, fail_fast: bool, how: str) -> None:
        boom = ValueError("never yielded")
        started = threadkit.Event()

        def work(x: int) -> int:
            if x == 0:
                started.wait()  # map reads on past item 0 until item 2 runs
            if x == 2:
                started.set()
                raise boom
            return x

        with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=3, fail_fast=fail_fast) as tg:
            results = tg.map(work, range(4), return_exceptions=True)
            assert next(results) == 0
            if how == "closed early":
                results.close()
            else:
                wait_until(lambda: tg._running == 0)
        assert info.value.exceptions == (boom,)
        results.close()

    def test_a_limited_groups_tasks_do_not_share_a_local(self) -> None:
        loc = threadkit.local()
        seen: list[object] = []

        def task(i: int) -> None:
            seen.append(getattr(loc, "user", None))
            loc.user = i

        with TaskGroup(limit=1) as tg:
            for i in range(5):
                tg.spawn(task, i)
        assert seen == [None] * 5


# == Error policy ========================================================================
class TestCollecting:
    def test_failures_do_not_cancel_the_others_and_are_raised_together(self) -> None:
        release = threadkit.Event()
        first, second = ValueError("one"), KeyError("two")
        with pytest.raises(ExceptionGroup) as info, TaskGroup(fail_fast=False) as tg:
            a = tg.spawn(fail, first)
            b = tg.spawn(fail, second)
            survivor = tg.spawn(lambda: release.wait() and "done")
            wait_until(lambda: a.done() and b.done())
            assert not tg.cancel_scope.cancel_called
            threadkit.checkpoint()  # the body is not cancelled either
            release.set()
        assert set(info.value.exceptions) == {first, second}
        assert survivor.result() == "done"

    def test_a_body_failure_does_not_cancel_the_tasks(self) -> None:
        release = threadkit.Event()
        boom = RuntimeError("body")
        with pytest.raises(ExceptionGroup) as info, TaskGroup(fail_fast=False) as tg:
            survivor = tg.spawn(lambda: release.wait() and "done")
            wait_parked(survivor)
            in_thread(lambda: (wait_until(lambda: tg._state is _taskgroup.CLOSING), release.set()))
            raise boom
        assert info.value.exceptions == (boom,)
        assert survivor.result() == "done"

    @pytest.mark.parametrize("how", ["result", "exception", "as_completed"])
    def test_a_failure_the_program_took_is_not_raised_again(self, how: str) -> None:
        taken, left = ValueError("taken"), ValueError("left")
        with pytest.raises(ExceptionGroup) as info, TaskGroup(fail_fast=False) as tg:
            a = tg.spawn(fail, taken)
            tg.spawn(fail, left)
            if how == "result":
                with pytest.raises(ValueError):
                    a.result()
            elif how == "exception":
                assert a.exception() is taken
            else:
                for task in threadkit.as_completed([a]):
                    assert task.exception() is taken
        assert info.value.exceptions == (left,)

    def test_no_failure_left_ends_quietly(self) -> None:
        with TaskGroup(fail_fast=False) as tg:
            tasks = [tg.spawn(fail, ValueError(i)) for i in range(3)]
            errors = [t.exception() for t in tasks]
        assert [e.args for e in errors if e is not None] == [(0,), (1,), (2,)]

    def test_a_failure_taken_fails_a_failing_fast_group_all_the_same(self) -> None:
        boom = ValueError("boom")
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            task = tg.spawn(fail, boom)
            assert task.exception(timeout=5) is boom
        assert info.value.exceptions == (boom,)

    def test_interrupts_still_cancel_a_collecting_group(self) -> None:
        with pytest.raises(SystemExit), TaskGroup(fail_fast=False) as tg:
            blocked = tg.spawn(threadkit.Event().wait)
            tg.spawn(fail, SystemExit(2))
        assert isinstance(blocked.exception(), Cancelled)


# == Completion ==========================================================================
class TestCompletion:
    def test_as_completed_yields_in_the_order_tasks_end(self) -> None:
        gates = [threadkit.Event() for _ in range(3)]
        with TaskGroup() as tg:
            tasks = [tg.spawn(lambda i=i: gates[i].wait() and i) for i in range(3)]
            order = []
            gates[2].set()
            for task in threadkit.as_completed(tasks):
                order.append(task.result())
                if len(order) < 3:
                    gates[1 - len(order) + 1].set()
        assert order == [2, 1, 0]

    def test_as_completed_yields_ended_tasks_first_and_each_once(self) -> None:
        gate = threadkit.Event()
        with TaskGroup() as tg:
            done = tg.spawn(int)
            done.result()
            later = tg.spawn(gate.wait)
            it = threadkit.as_completed([later, done, done])
            assert next(it) is done
            gate.set()
            assert next(it) is later
            assert list(it) == []

    def test_as_completed_timeout(self) -> None:
        gate = threadkit.Event()
        with TaskGroup() as tg:
            task = tg.spawn(gate.wait)
            with pytest.raises(TimeoutError, match=r"1 \(of 1\) tasks unfinished"):
                list(threadkit.as_completed([task], timeout=0.01))
            assert not task._callbacks  # the generator took its callback back
            gate.set()

    def test_as_completed_is_a_cancellation_point(self) -> None:
        gate = threadkit.Event()
        with TaskGroup() as tg:
            task = tg.spawn(gate.wait)
            with CancelScope() as scope:
                in_thread(lambda: (wait_until(lambda: main_parked_on_any()), scope.cancel()))
                list(threadkit.as_completed([task]))
            assert scope.cancelled_caught
            gate.set()

    def test_as_completed_refuses_what_is_not_a_task(self) -> None:
        with pytest.raises(TypeError):
            threadkit.as_completed([1])  # type: ignore[list-item]

    def test_done_callback_runs_once_in_the_tasks_thread(self) -> None:
        calls: list[tuple[Task[Any], str]] = []
        gate = threadkit.Event()
        with TaskGroup() as tg:
            task = tg.spawn(lambda: gate.wait() and threadkit.current_thread().name)
            task.add_done_callback(lambda t: calls.append((t, threadkit.current_thread().name)))
            gate.set()
        # The block's end waited for the callback too.
        assert calls == [(task, task.result())]
        task.add_done_callback(lambda t: calls.append((t, "now")))
        assert calls[-1] == (task, "now")

    def test_a_failing_done_callback_fails_the_group(self) -> None:
        boom = ValueError("callback")
        with pytest.raises(ExceptionGroup) as info, TaskGroup() as tg:
            gate = threadkit.Event()
            task = tg.spawn(gate.wait)
            task.add_done_callback(lambda t: fail(boom))
            gate.set()
        assert info.value.exceptions == (boom,)
        assert any(task.name in note for note in boom.__notes__)

    def test_done_callback_must_be_callable(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(int)
            with pytest.raises(TypeError):
                task.add_done_callback(42)  # type: ignore[arg-type]


def main_parked_on_any() -> bool:
    rec = _core.record_for(_MAIN)
    node = None if rec is None else rec.waiting
    return node is not None and node.state is _core.WAITING


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
