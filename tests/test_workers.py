"""The worker cache: task groups run their tasks on reused threads.

One class per area:

* ``TestReuse``: sequential tasks run on one worker thread and the cache does not
  grow; ``Task.thread`` is the worker, and ``current_thread()`` inside the task; a
  worker survives a task that fails (even with SystemExit); an idle worker is parked
  in the core where diagnostics see it; a finished task's function, arguments and
  (once its handle is dropped) result are not kept alive by the idle worker.
* ``TestNames``: the worker wears its task's name while the task runs (also a name
  given to the task meanwhile) and its own ``threadkit-worker-N`` otherwise;
  renaming the current thread inside a task renames the task.
* ``TestIsolation``: nothing of one task reaches the next on the same worker:
  ``threadkit.local`` values (the worker that touched one ends instead of being
  reused), ``contextvars``, a trace or profile function, the scopes around the
  previous task's group or a scope it left entered; also for ``local`` subclasses
  whose ``__init__`` comes from a dataclass, a mixin, a later assignment or a base.
* ``TestLiveness``: a burst of tasks that all wait for each other each get a
  thread; a task waiting for one spawned after it completes, also when it blocks
  outside threadkit; the cache's bookkeeping survives spawners, idle timeouts and
  ``retire_idle`` racing each other.
* ``TestIdle``: an idle worker ends after ``IDLE_TIMEOUT`` (a busy one does not);
  ``retire_idle`` ends the idle workers only, and the next task gets a fresh one; a
  worker that cannot be started fails ``spawn`` cleanly.
* ``TestCancel``: a task cancelled (or in a cancelled group) before a worker picks
  it up never runs its function; ``Task.cancel`` and ``Worker.cancel`` end a running
  task only, and the worker lives on; a task waiting for itself gets RuntimeError.
* ``TestStates``: ``repr(task)`` and ``task.thread`` while pending, running, done.
* ``TestProcess`` (subprocesses): interpreter exit does not wait for idle workers,
  with threadkit imported or standing in for ``threading``, and a non-daemon
  thread still running tasks during exit gets its workers. A forked child starts
  with an empty cache that works, a task whose worker did not survive the fork ends
  with RuntimeError, and the parent's cache still works; a worker that forks ends
  in the child after its task; a child forked inside a ``TaskGroup`` or
  ``CancelScope`` block keeps its scopes and leaves the block.

"The same worker" needs the previous task's worker back in the cache first: the
tests wait for that (``wait_until(settled)``, a bounded poll of the cache's state).
Pending tasks are observed by holding spawned tasks back from the cache (``held``).
Nothing synchronises by sleeping; scaffolding that must not be cancelled uses the
stdlib ``threading``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import gc
import os
import re
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, NoReturn

import pytest

import threadkit
from helpers import wait_until, wait_until_parked
from threadkit import Cancelled, CancelScope, Task, TaskGroup, _core, _taskgroup, _threads, _workers
from threadkit._core import _cancel

pytestmark = pytest.mark.timeout(30)

SRC = str(Path(threadkit.__file__).parent.parent)
WORKER_NAME = re.compile(r"threadkit-worker-\d+")

var: contextvars.ContextVar[str] = contextvars.ContextVar("workers_test_var", default="unset")
other_var: contextvars.ContextVar[str] = contextvars.ContextVar("workers_test_other")


# -- helpers -----------------------------------------------------------------------------
def settled() -> bool:
    """True when every live worker is parked idle in the cache (none busy or ending)."""
    return _workers.idle_workers() == len(_workers.workers())


def me() -> threadkit.Thread:
    """A task body: the thread it runs on."""
    return threadkit.current_thread()


def after_checkpoint() -> threadkit.Thread:
    """A task body: a cancellation point, then the thread it runs on."""
    threadkit.checkpoint()
    return threadkit.current_thread()


def fail(exc: BaseException) -> NoReturn:
    """A task body that raises ``exc``."""
    raise exc


def run_python(code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports threadkit from this tree."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=SRC),
    )


@pytest.fixture(autouse=True)
def steady_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle workers that do not time out in the middle of a test (unless it says so).

    The leak fixture retires them after each test.
    """
    monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 3600.0)


class Held:
    """Spawned tasks held back from the worker cache, to be released one by one.

    As a context manager (inside the group's ``with``), it releases whatever is
    still held on the way out, so that a failing test cannot wedge the group.
    """

    def __init__(self) -> None:
        self.jobs: list[Task[Any]] = []

    def release(self, task: Task[Any]) -> None:
        self.jobs.remove(task)
        _workers.submit(task)

    def release_all(self) -> None:
        while self.jobs:
            self.release(self.jobs[0])

    def __enter__(self) -> Held:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release_all()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Held:
    """``tg.spawn`` queues its task here instead of handing it to the cache."""
    holder = Held()
    monkeypatch.setattr(_taskgroup, "submit", holder.jobs.append)
    return holder


# == Reuse ===============================================================================
class TestReuse:
    def test_sequential_tasks_run_on_one_worker(self) -> None:
        before = set(_workers.workers())
        threads = []
        idents = []
        with TaskGroup() as tg:
            for _ in range(20):
                task = tg.spawn(lambda: (threadkit.current_thread(), threadkit.get_ident()))
                thread, ident = task.result(timeout=10)
                threads.append(thread)
                idents.append(ident)
                assert task.thread is thread
                wait_until(settled)
                assert len(set(_workers.workers()) - before) == 1
        assert len(set(threads)) == 1
        assert len(set(idents)) == 1
        assert idents[0] == threads[0].ident
        assert threads[0].is_alive()  # idle in the cache, not ended
        assert threads[0] in _workers.workers()

    def test_task_thread_is_the_worker_it_ran_on(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(me)
        worker = task.result()
        assert isinstance(worker, threadkit.Thread)
        assert isinstance(worker, _workers.Worker)
        assert task.thread is worker
        assert worker is not threadkit.current_thread()
        assert worker.daemon
        assert worker in threadkit.enumerate()

    @pytest.mark.parametrize("error", [ValueError("boom"), SystemExit(3), KeyboardInterrupt()])
    def test_worker_survives_a_failing_task(self, error: BaseException) -> None:
        expected: type[BaseException] = (
            ExceptionGroup if isinstance(error, Exception) else type(error)
        )
        with pytest.raises(expected), TaskGroup() as tg:
            failed = tg.spawn(fail, error)
        assert failed.exception() is error
        worker = failed.thread
        assert worker is not None
        wait_until(settled)
        assert worker.is_alive()
        with TaskGroup() as tg:
            again = tg.spawn(me)
        assert again.result() is worker

    def test_an_idle_worker_is_parked_where_diagnostics_see_it(self) -> None:
        with TaskGroup() as tg:
            task = tg.spawn(me)
        worker = task.result()
        wait_until(settled)
        assert _workers.idle_workers() >= 1
        records = _core.waiting_on(_workers._idle)
        assert worker.ident in {rec.ident for rec in records}
        rec = _core.record_for(worker.ident or 0)
        assert rec is not None and rec.waiting is not None
        assert rec.waiting.operation == "idle"

    def test_a_finished_tasks_function_and_arguments_are_released(self) -> None:
        class Payload:
            def __call__(self, arg: object, *, kw: object) -> str:
                return "ran"

        fn, arg, kw = Payload(), Payload(), Payload()
        refs = [weakref.ref(fn), weakref.ref(arg), weakref.ref(kw)]
        with TaskGroup() as tg:
            task = tg.spawn(fn, arg, kw=kw)
        del fn, arg, kw
        wait_until(settled)
        gc.collect()
        assert task.result() == "ran"
        assert task.thread is not None and task.thread.is_alive()  # idle, still there
        assert [r() for r in refs] == [None, None, None]

    def test_a_finished_tasks_result_is_not_kept_by_its_worker(self) -> None:
        class Payload:
            pass

        with TaskGroup() as tg:
            task = tg.spawn(Payload)
        ref = weakref.ref(task.result())
        worker = task.thread
        del task
        wait_until(settled)
        gc.collect()
        assert ref() is None
        assert worker is not None and worker.is_alive()  # idle, still there


# == Names ===============================================================================
class TestNames:
    def test_worker_wears_the_task_name_only_while_it_runs(self) -> None:
        with TaskGroup(name="grp") as tg:
            named = tg.options(name="job-1").spawn(lambda: threadkit.current_thread().name)
            named.result(timeout=10)
            wait_until(settled)
            default = tg.spawn(lambda: threadkit.current_thread().name)
        assert named.result() == "job-1"
        assert default.result() == default.name
        assert default.name.startswith("grp.")
        for task in (named, default):
            assert task.thread is not None
            assert WORKER_NAME.fullmatch(task.thread.name), task.thread.name
        assert named.thread is default.thread  # the same worker, between two names

    def test_worker_names_are_distinct(self) -> None:
        barrier = threadkit.Barrier(3)
        with TaskGroup() as tg:
            tasks = [tg.spawn(barrier.wait, 10) for _ in range(3)]
        names = {t.thread.name for t in tasks if t.thread is not None}
        assert len(names) == 3
        assert all(WORKER_NAME.fullmatch(n) for n in names)

    def test_a_task_renamed_while_it_runs_renames_its_worker(self) -> None:
        gate = threadkit.Event()

        def body() -> str:
            gate.wait()
            return threadkit.current_thread().name

        with TaskGroup() as tg:
            task = tg.options(name="before").spawn(body)
            wait_until_parked(gate)
            assert task.thread is not None
            assert task.thread.name == "before"
            task.name = "after"
            assert task.thread.name == "after"
            assert task.thread in threadkit.enumerate()
            gate.set()
        assert task.result() == "after"
        assert task.thread is not None
        assert WORKER_NAME.fullmatch(task.thread.name)

    def test_renaming_the_current_thread_in_a_task_renames_the_task(self) -> None:
        def rename() -> str:
            thread = threadkit.current_thread()
            thread.name = "renamed-in-task"
            return thread.name

        with TaskGroup() as tg:
            task = tg.options(name="given").spawn(rename)
            task.result(timeout=10)
            wait_until(settled)
            after = tg.spawn(lambda: threadkit.current_thread().name)
        assert task.result() == "renamed-in-task"
        assert task.name == "renamed-in-task"
        assert after.result() == after.name  # the next task on the worker wears its own
        assert after.thread is task.thread
        assert task.thread is not None
        assert WORKER_NAME.fullmatch(task.thread.name)  # the worker kept its own name

    def test_renaming_an_idle_worker_keeps_the_name_between_tasks(self) -> None:
        with TaskGroup() as tg:
            first = tg.spawn(me)
            worker = first.result(timeout=10)
            wait_until(settled)
            worker.name = "my-worker"
            second = tg.spawn(lambda: threadkit.current_thread().name)
        assert second.result() == second.name
        assert second.thread is worker
        assert worker.name == "my-worker"


# == Isolation ===========================================================================
class Counter(threadkit.local):
    """A ``local`` subclass whose ``__init__`` takes an argument and skips super()."""

    inits: ClassVar[list[int]] = []

    def __init__(self, start: int) -> None:
        Counter.inits.append(threadkit.get_ident())
        self.value = start


@dataclasses.dataclass
class DataLocal(threadkit.local):
    """A dataclass ``local``: its ``__init__`` is set after the class was created."""

    value: int = 0


class _InitMixin:
    def __init__(self, value: int = 0) -> None:
        self.value = value


class MixinLocal(_InitMixin, threadkit.local):
    """A ``local`` whose ``__init__`` comes from a base ahead of ``local``."""


class LateInitLocal(threadkit.local):
    """A ``local`` whose ``__init__`` is assigned after the class statement."""


def _late_init(self: LateInitLocal, value: int = 0) -> None:
    self.value = value


LateInitLocal.__init__ = _late_init  # type: ignore[method-assign, assignment]


class SubCounter(Counter):
    """A subclass of a ``local`` subclass, inheriting its ``__init__``."""


def _tracer(frame: Any, event: str, arg: Any) -> None:
    """A trace/profile function that only counts as installed (traces nothing)."""
    return None


class TestIsolation:
    def test_local_values_do_not_reach_the_next_task(self) -> None:
        plain = threadkit.local()
        counter = Counter(5)
        Counter.inits.clear()

        def first() -> int:
            plain.x = "task 1"
            counter.value = 99
            return threadkit.get_ident()

        def second() -> tuple[bool, int, int]:
            return hasattr(plain, "x"), counter.value, threadkit.get_ident()

        with TaskGroup() as tg:
            one = tg.spawn(first)
            one_ident = one.result(timeout=10)
            worker = one.thread
            assert worker is not None
            # The worker touched a local: it ends instead of going back to the cache.
            worker.join(timeout=10)
            assert not worker.is_alive()
            assert worker not in _workers.workers()
            two = tg.spawn(second)
        seen_x, value, two_ident = two.result()
        assert seen_x is False
        assert value == 5  # re-initialised with the constructor's argument
        assert two.thread is not worker
        assert Counter.inits == [one_ident, two_ident]

    @pytest.mark.parametrize("touch", ["set", "get", "hasattr"])
    def test_a_worker_that_touched_a_local_is_not_reused(self, touch: str) -> None:
        loc = threadkit.local()

        def body() -> None:
            if touch == "set":
                loc.x = 1
            elif touch == "get":
                getattr(loc, "x", None)
            else:
                hasattr(loc, "x")

        with TaskGroup() as tg:
            task = tg.spawn(body)
            task.result(timeout=10)
            worker = task.thread
            assert worker is not None
            worker.join(timeout=10)
            assert not worker.is_alive()
            assert worker not in threadkit.enumerate()
            after = tg.spawn(me)
        assert after.result() is not worker

    def test_a_task_that_touches_no_local_keeps_its_worker(self) -> None:
        loc = threadkit.local()
        loc.x = "the spawner's"  # the spawner's own use does not matter
        with TaskGroup() as tg:
            first = tg.spawn(me)
            first.result(timeout=10)
            wait_until(settled)
            second = tg.spawn(me)
        assert second.result() is first.result()
        assert first.result().is_alive()
        assert loc.x == "the spawner's"

    @pytest.mark.parametrize("cls", [DataLocal, MixinLocal, LateInitLocal, SubCounter])
    def test_local_subclasses_whose_init_comes_from_elsewhere(self, cls: type[Any]) -> None:
        # The __init__ the C type calls is not one the class statement defined.
        loc = cls() if cls is not SubCounter else cls(0)

        def first() -> None:
            loc.value = 99

        def second() -> int:
            value: int = loc.value
            return value

        with TaskGroup() as tg:
            one = tg.spawn(first)
            one.result(timeout=10)
            wait_until(settled)
            two = tg.spawn(second)
        assert two.result() == 0

    def test_contextvars_do_not_reach_the_next_task(self) -> None:
        def first() -> threadkit.Thread:
            var.set("task 1")
            other_var.set("task 1")
            return threadkit.current_thread()

        def second() -> tuple[threadkit.Thread, str, str]:
            return threadkit.current_thread(), var.get(), other_var.get("missing")

        token = var.set("spawner")
        try:
            with TaskGroup() as tg:
                one = tg.spawn(first)
                one.result(timeout=10)
                wait_until(settled)
                two = tg.spawn(second)
            thread, value, other = two.result()
            assert thread is one.result()  # the same worker
            assert value == "spawner"
            assert other == "missing"
            assert var.get() == "spawner"  # the spawner's context is unchanged
            assert other_var.get("missing") == "missing"
        finally:
            var.reset(token)

    @pytest.mark.parametrize(
        ("install", "current", "expected"),
        [
            (sys.settrace, sys.gettrace, threadkit.gettrace),
            (sys.setprofile, sys.getprofile, threadkit.getprofile),
        ],
        ids=["trace", "profile"],
    )
    def test_a_hook_a_task_installs_is_removed_after_it(
        self,
        install: Callable[[Any], None],
        current: Callable[[], Any],
        expected: Callable[[], Any],
    ) -> None:
        def first() -> bool:
            install(_tracer)
            return current() is _tracer

        def second() -> tuple[threadkit.Thread, Any]:
            return threadkit.current_thread(), current()

        with TaskGroup() as tg:
            one = tg.spawn(first)
            assert one.result(timeout=10) is True
            wait_until(settled)
            two = tg.spawn(second)
        thread, seen = two.result()
        assert thread is one.thread
        assert seen is expected()
        assert seen is not _tracer

    def test_threadkits_own_trace_hook_is_put_back(self) -> None:
        def hook(frame: Any, event: str, arg: Any) -> None:
            return None

        def swap() -> Any:
            seen = sys.gettrace()
            sys.settrace(_tracer)
            return seen

        for worker in _workers.retire_idle():
            worker.join(10)
        previous = threadkit.gettrace()
        threadkit.settrace(hook)  # for threads started from now: the next worker
        try:
            with TaskGroup() as tg:
                one = tg.spawn(swap)
                one.result(timeout=10)
                wait_until(settled)
                two = tg.spawn(sys.gettrace)
                two.result(timeout=10)
        finally:
            threadkit.settrace(previous)
        assert one.result() is hook
        assert two.result() is hook
        assert two.thread is one.thread

    def test_a_scope_left_entered_does_not_reach_the_next_task(self) -> None:
        left: list[CancelScope] = []
        gate = threadkit.Event()

        def first() -> None:
            scope = CancelScope()
            scope.__enter__()  # and never exited
            left.append(scope)

        def second() -> tuple[threadkit.Thread, float, bool]:
            gate.wait()
            deadline = threadkit.current_effective_deadline()
            threadkit.checkpoint()  # Cancelled here if the left scope were still ours
            # Clean up (only the thread that entered it may): the scope is no longer on
            # this thread's stack, so exiting it is out of order.
            try:
                left[0].__exit__(None, None, None)
            except RuntimeError:
                out_of_order = True
            else:
                out_of_order = False
            return threadkit.current_thread(), deadline, out_of_order

        with TaskGroup() as tg:
            one = tg.spawn(first)
            one.result(timeout=10)
            wait_until(settled)
            two = tg.spawn(second)
            wait_until_parked(gate)
            armed = _core.armed[0]
            left[0].cancel()
            # Exited when its task ended: cancelling it arms nothing any more.
            assert _core.armed[0] == armed
            gate.set()
        thread, deadline, out_of_order = two.result()
        assert thread is one.thread
        assert deadline == float("inf")
        assert out_of_order

    def test_a_tasks_enclosing_scopes_do_not_reach_the_next_task(self) -> None:
        with threadkit.move_on_after(3600) as outer, TaskGroup() as first_group:
            one = first_group.spawn(threadkit.current_effective_deadline)
        assert one.result() == outer.deadline
        gate = threadkit.Event()

        def second() -> tuple[threadkit.Thread, float]:
            gate.wait()
            deadline = threadkit.current_effective_deadline()
            threadkit.checkpoint()  # Cancelled here if a scope of the first task stayed
            return threadkit.current_thread(), deadline

        wait_until(settled)
        with TaskGroup() as tg:
            two = tg.spawn(second)
            wait_until_parked(gate)
            outer.cancel()
            first_group.cancel_scope.cancel()
            gate.set()
        assert two.result() == (one.thread, float("inf"))


# == Liveness ============================================================================
class TestLiveness:
    N = 50

    def test_a_burst_that_waits_for_itself_gets_a_thread_per_task(self) -> None:
        barrier = threadkit.Barrier(self.N)
        with TaskGroup() as tg:
            tasks = [tg.spawn(barrier.wait, 10) for _ in range(self.N)]
        assert sorted(t.result() for t in tasks) == list(range(self.N))
        assert len({t.thread for t in tasks}) == self.N

    def test_a_burst_spawned_by_a_task(self) -> None:
        barrier = threading.Barrier(self.N)  # stdlib: the tasks block outside threadkit

        def parent(tg: TaskGroup) -> list[Task[int]]:
            return [tg.spawn(barrier.wait, 10) for _ in range(self.N)]

        with TaskGroup() as tg:
            outer = tg.spawn(parent, tg)
        children = outer.result()
        assert sorted(t.result() for t in children) == list(range(self.N))

    @pytest.mark.parametrize(
        "event", [threadkit.Event, threading.Event], ids=["threadkit", "stdlib"]
    )
    def test_a_task_waiting_for_a_later_task(self, event: Callable[[], Any]) -> None:
        ready = event()
        with TaskGroup() as tg:
            waiter = tg.spawn(ready.wait, 10)
            setter = tg.spawn(ready.set)
        assert waiter.result() is True
        assert setter.result() is None
        assert waiter.thread is not setter.thread

    def test_a_chain_of_tasks_each_waiting_for_the_next(self) -> None:
        # Blocking in the stdlib: the cache cannot see these waits at all.
        gates = [threading.Event() for _ in range(21)]

        def link(i: int) -> int:
            assert gates[i + 1].wait(10)
            gates[i].set()
            return i

        with TaskGroup() as tg:
            links = [tg.spawn(link, i) for i in range(20)]
            tg.spawn(gates[20].set)
        assert [t.result() for t in links] == list(range(20))

    def test_bookkeeping_survives_spawners_timeouts_and_retiring(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.0005)  # workers keep timing out
        stop = threading.Event()

        def retire() -> None:
            while not stop.is_set():
                _workers.retire_idle()

        retirer = threading.Thread(target=retire, daemon=True)
        retirer.start()
        tasks: dict[tuple[int, int], Task[int]] = {}
        try:
            with TaskGroup() as tg:

                def spawner(k: int) -> None:
                    for i in range(200):
                        task = tg.spawn(pow, i, 2)
                        if i % 3 == 0:
                            task.result(timeout=10)
                        tasks[k, i] = task

                spawners = [threading.Thread(target=spawner, args=(k,)) for k in range(4)]
                for t in spawners:
                    t.start()
                for t in spawners:
                    t.join(20)
                assert not any(t.is_alive() for t in spawners)
        finally:
            stop.set()
            retirer.join(10)
        assert len(tasks) == 800
        assert all(task.result() == i * i for (_, i), task in tasks.items())
        wait_until(settled)
        # A quiet cache counts no worker as searching: a submit must make one.
        assert _workers._searching == 0
        monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 3600.0)
        ready = threading.Event()
        with TaskGroup() as tg:
            waiter = tg.spawn(ready.wait, 10)
            tg.spawn(ready.set)
        assert waiter.result() is True


# == Idle workers ========================================================================
class TestIdle:
    def test_an_idle_worker_ends_after_the_idle_timeout(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.05)
        with TaskGroup() as tg:
            task = tg.spawn(me)
        worker = task.result()
        worker.join(timeout=10)
        assert not worker.is_alive()
        assert worker not in _workers.workers()
        assert worker not in threadkit.enumerate()
        # The cache starts another when needed.
        with TaskGroup() as tg:
            again = tg.spawn(me)
        assert again.result() is not worker

    def test_a_busy_worker_does_not_time_out(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 0.01)

        def busy() -> threadkit.Thread:
            threadkit.sleep(0.2)  # twenty idle timeouts, spent running
            return threadkit.current_thread()

        with TaskGroup() as tg:
            task = tg.spawn(busy)
        assert task.result() is task.thread

    def test_retire_idle_ends_the_idle_workers(self) -> None:
        with TaskGroup() as tg:
            first = tg.spawn(me)
        worker = first.result()
        wait_until(settled)
        retired = _workers.retire_idle()
        assert retired == [worker]
        for w in retired:
            w.join(timeout=10)
        assert not worker.is_alive()
        assert _workers.workers() == []
        assert _workers.idle_workers() == 0
        with TaskGroup() as tg:
            second = tg.spawn(lambda: (threadkit.current_thread(), 6 * 7))
        fresh, value = second.result()
        assert value == 42
        assert fresh is not worker
        assert fresh.is_alive()

    def test_a_worker_awake_when_retired_does_not_search_uncounted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A worker can be awake while it sits in the idle queue (between joining it
        # and parking, or woken by a stale permit). As soon as it sees its node
        # SIGNALLED it reads ``_retiring``, without the mutex. Were the flag set only
        # after the node was signalled, it would read False, search although nobody
        # counted it, and leave ``_searching`` at -1: no submit would make a searcher
        # again, and every later task would wait for ever.
        for w in _workers.retire_idle():
            w.join(timeout=10)
        with TaskGroup() as tg:
            worker = tg.spawn(me).result()
        wait_until(settled)
        assert _workers._idle.waiters[0].record.thread is worker

        seen: list[bool] = []
        read = threading.Event()

        class Watch:
            """``Worker._retiring``, noting what ``worker`` reads once armed."""

            armed = False

            def __get__(self, obj: Any, owner: Any = None) -> Any:
                if obj is None:
                    return self
                value = obj.__dict__["_retiring"]
                if Watch.armed and obj is worker:
                    seen.append(value)
                    read.set()
                return value

            def __set__(self, obj: Any, value: bool) -> None:
                obj.__dict__["_retiring"] = value

        take_all = _core.WaitQueue.take_all_locked

        def take_all_then_let_it_run(queue: _core.WaitQueue) -> list[_core.Waiter]:
            nodes = take_all(queue)
            if queue is _workers._idle and nodes:
                # The worker runs now, while retire_idle still holds the mutex.
                Watch.armed = True
                for node in nodes:
                    _core.wake_one(node)
                read.wait(10)
                Watch.armed = False
            return nodes

        monkeypatch.setattr(_workers.Worker, "_retiring", Watch(), raising=False)
        monkeypatch.setattr(_core.WaitQueue, "take_all_locked", take_all_then_let_it_run)
        retired = _workers.retire_idle()
        monkeypatch.undo()
        monkeypatch.setattr(_workers, "IDLE_TIMEOUT", 3600.0)
        assert retired == [worker]
        assert seen == [True]
        worker.join(timeout=10)
        assert not worker.is_alive()
        assert _workers._searching == 0
        with TaskGroup() as tg:
            again = tg.spawn(me)
        assert again.result(timeout=10) is not worker

    def test_retire_idle_leaves_busy_workers_alone(self) -> None:
        gate = threadkit.Event()

        def body() -> threadkit.Thread:
            gate.wait()
            return threadkit.current_thread()

        with TaskGroup() as tg:
            busy = tg.spawn(body)
            wait_until_parked(gate)
            assert _workers.retire_idle() == []
            gate.set()
            worker = busy.result(timeout=10)
            wait_until(settled)
            assert worker.is_alive()
            again = tg.spawn(me)
        assert again.result() is worker

    def test_a_worker_that_cannot_start_fails_spawn_cleanly(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: Any) -> NoReturn:
            raise RuntimeError("can't start new thread")

        for worker in _workers.retire_idle():
            worker.join(10)
        calls: list[int] = []
        with TaskGroup() as tg:
            with monkeypatch.context() as patch:
                patch.setattr(_threads, "_start_os_thread", refuse)
                with pytest.raises(RuntimeError, match="can't start new thread"):
                    tg.spawn(calls.append, 1)
            assert _workers.workers() == []
            assert _workers._searching == 0
            ok = tg.spawn(calls.append, 2)
        assert ok.result() is None
        assert calls == [2]  # the refused task never ran, and the block did not wait for it


# == Cancellation ========================================================================
class TestCancel:
    def test_a_task_spawned_into_a_cancelled_group_does_not_run(self) -> None:
        calls: list[int] = []
        with TaskGroup(limit=None) as tg:  # spawn into a limited group is a checkpoint
            tg.cancel_scope.cancel()
            task = tg.spawn(calls.append, 1)
        assert calls == []
        assert task.thread is None  # it never started
        exc = task.exception()
        assert isinstance(exc, Cancelled)
        assert exc.scope is tg.cancel_scope
        assert tg.cancel_scope.cancelled_caught

    def test_a_task_cancelled_while_pending_does_not_run(self, held: Held) -> None:
        calls: list[str] = []
        with TaskGroup() as tg, held:
            doomed = tg.spawn(calls.append, "doomed")
            kept = tg.spawn(calls.append, "kept")
            doomed.cancel()
            held.release_all()
            assert kept.result(timeout=10) is None
            exc = doomed.exception(timeout=10)
        assert calls == ["kept"]
        assert isinstance(exc, Cancelled)
        assert exc.scope is not tg.cancel_scope
        assert not tg.cancel_scope.cancel_called

    def test_a_failure_stops_tasks_still_queued(self, held: Held) -> None:
        calls: list[str] = []
        boom = ValueError("boom")
        with pytest.raises(ExceptionGroup) as info, TaskGroup(limit=None) as tg, held:
            queued = tg.spawn(calls.append, "queued")
            failing = tg.spawn(fail, boom)
            held.release(failing)
            wait_until(failing.done)  # not a cancellation point: the group is cancelled
            held.release(queued)
        assert info.value.exceptions == (boom,)
        assert calls == []
        assert isinstance(queued.exception(), Cancelled)

    def test_task_cancel_ends_a_running_task(self) -> None:
        gate = threadkit.Event()
        with TaskGroup() as tg:
            task = tg.spawn(gate.wait)
            wait_until_parked(gate)
            task.cancel()
            exc = task.exception(timeout=10)
        assert isinstance(exc, Cancelled)
        assert exc.scope is not tg.cancel_scope
        assert not tg.cancel_scope.cancel_called
        assert not gate.is_set()

    def test_a_cancel_during_the_walk_of_the_scopes_cannot_hide_a_shield(self) -> None:
        # A thread walks its own scopes without the lock (innermost first, up to a
        # shield), while Task.cancel() from another thread may insert the task's
        # scope into that list, below the scopes the task entered. The walk must
        # still stop at the shield. The cancel is made to land mid-walk by a
        # scope-like stand-in whose first inspection calls it.
        tasks: list[Task[Any]] = []
        ready = threadkit.Event()

        class CancelsMidWalk:
            _cancel_called = False
            _deadline = None

            def __init__(self) -> None:
                self.fired = False

            @property
            def _shield(self) -> bool:
                if not self.fired:
                    self.fired = True
                    tasks[0].cancel()
                return False

        def body() -> tuple[Any, Any]:
            ready.wait()
            rec = _core.current_record()
            with CancelScope(shield=True):
                stand_in = CancelsMidWalk()
                rec.scopes.append(stand_in)  # type: ignore[arg-type]
                try:
                    return _cancel.cancel_source(rec), _cancel.cancel_source(rec)
                finally:
                    rec.scopes.remove(stand_in)  # type: ignore[arg-type]

        with TaskGroup() as tg:
            tasks.append(tg.spawn(body))
            ready.set()
        assert tasks[0].result() == (None, None)

    @pytest.mark.parametrize("outer_shield", [False, True])
    def test_task_cancel_goes_below_the_scopes_the_task_entered(self, outer_shield: bool) -> None:
        # The task's own scope is made by cancel() while the task runs: it must land
        # between the scopes the task inherits (even a shielded one) and those it
        # entered itself, so a shield the task entered hides it, and a scope the
        # task entered does not catch it.
        in_shield = threadkit.Event()
        cancelled = threadkit.Event()
        seen: list[str] = []
        inner_scopes: list[CancelScope] = []

        def body() -> None:
            with CancelScope() as inner:
                inner_scopes.append(inner)
                with CancelScope(shield=True):
                    in_shield.set()
                    cancelled.wait()
                    threadkit.checkpoint()  # shielded: no Cancelled here
                    seen.append("shielded")
                threadkit.checkpoint()
                seen.append("not cancelled")

        with CancelScope(shield=outer_shield), TaskGroup() as tg:
            task = tg.spawn(body)
            assert in_shield.wait(10)
            task.cancel()
            cancelled.set()
            exc = task.exception(timeout=10)
        assert seen == ["shielded"]
        assert isinstance(exc, Cancelled)
        assert exc.scope not in (tg.cancel_scope, inner_scopes[0])
        assert not inner_scopes[0].cancelled_caught
        assert not tg.cancel_scope.cancel_called

    def test_cancel_after_the_task_ended_does_nothing(self) -> None:
        armed_before = _core.armed[0]
        with TaskGroup() as tg:
            task = tg.spawn(int, "7")
            assert task.result(timeout=10) == 7
            wait_until(settled)
            task.cancel()
            task.cancel()
            later = tg.spawn(after_checkpoint)
        assert task.result() == 7
        assert isinstance(later.result(), _workers.Worker)
        assert not tg.cancel_scope.cancel_called
        assert _core.armed[0] == armed_before

    def test_cancel_racing_the_start_of_each_task(self) -> None:
        # Each cancel lands while its task waits, starts, runs or has ended: the task
        # ends either way, and nothing stays armed or on a worker's scope stack.
        armed_before = _core.armed[0]
        with TaskGroup() as tg:
            tasks = []
            for i in range(300):
                task = tg.spawn(int, i)
                task.cancel()
                tasks.append(task)
        for i, task in enumerate(tasks):
            exc = task.exception()
            assert exc is None or isinstance(exc, Cancelled)
            if exc is None:
                assert task.result() == i
        assert not tg.cancel_scope.cancel_called
        wait_until(settled)
        assert _core.armed[0] == armed_before
        for worker in _workers.workers():
            assert worker.ident is not None
            rec = _core.record_for(worker.ident)
            assert rec is not None
            assert rec.scopes == []

    def test_worker_cancel_cancels_its_task_only(self) -> None:
        gate_a, gate_b = threadkit.Event(), threadkit.Event()
        with TaskGroup() as tg:
            a = tg.spawn(gate_a.wait)
            b = tg.spawn(gate_b.wait)
            wait_until_parked(gate_a)
            wait_until_parked(gate_b)
            worker = a.thread
            assert isinstance(worker, _workers.Worker)
            worker.cancel()
            exc = a.exception(timeout=10)
            assert isinstance(exc, Cancelled)
            assert not b.done()
            assert not tg.cancel_scope.cancel_called
            # The worker lives on, back in the cache, and its next task is not cancelled.
            wait_until(lambda: _workers.idle_workers() == 1)
            assert worker.is_alive()
            assert worker in _workers.workers()
            c = tg.spawn(after_checkpoint)
            assert c.result(timeout=10) is worker
            gate_b.set()
        assert b.result() is True

    def test_worker_cancel_between_tasks_does_nothing(self) -> None:
        with TaskGroup() as tg:
            first = tg.spawn(me)
            worker = first.result(timeout=10)
            wait_until(settled)
            worker.cancel()
            second = tg.spawn(after_checkpoint)
        assert second.result() is worker
        assert not tg.cancel_scope.cancel_called

    def test_a_task_cannot_wait_for_itself(self) -> None:
        mine: list[Task[Any]] = []
        published = threading.Event()

        def body() -> list[str]:
            published.wait(10)
            task = mine[0]
            errors = []
            for wait in (task.result, task.exception, lambda: task.result(timeout=0)):
                try:
                    wait()
                except RuntimeError as exc:
                    errors.append(str(exc))
            return errors

        with TaskGroup() as tg:
            mine.append(tg.spawn(body))
            published.set()
        errors = mine[0].result()
        assert len(errors) == 3
        assert all("itself" in e for e in errors)


# == States ==============================================================================
class TestStates:
    def test_pending_running_done(self, held: Held) -> None:
        gate = threadkit.Event()
        with TaskGroup(limit=None) as tg, held:
            task = tg.options(name="watched").spawn(gate.wait)
            assert held.jobs == [task]
            assert repr(task) == "<threadkit.Task watched pending>"
            assert task.thread is None
            assert not task.done()
            with pytest.raises(TimeoutError):
                task.result(timeout=0)
            held.release(task)
            wait_until_parked(gate)
            assert repr(task).startswith("<threadkit.Task watched running")
            assert isinstance(task.thread, _workers.Worker)
            assert not task.done()
            gate.set()
        assert repr(task) == "<threadkit.Task watched done>"
        assert task.done()
        assert task.result() is True


# == Exit and fork (subprocesses) ========================================================
EXIT_SCRIPT = """
    import sys
    if {stand_in}:
        import threadkit
        assert "threading" not in sys.modules
        sys.modules["threading"] = threadkit
    import threading, time
    import threadkit
    from threadkit import TaskGroup, _workers
    # Idle workers that would wait an hour: exit must not wait for them.
    _workers.IDLE_TIMEOUT = 3600.0

    def settled(timeout=10):
        deadline = time.monotonic() + timeout
        while _workers.idle_workers() != len(_workers.workers()):
            assert time.monotonic() < deadline, "workers did not settle"
            time.sleep(0.0005)

    if {stand_in}:
        # threading.local is threadkit's: a task's value does not reach the next task.
        # (Both workers end after their task, having touched a local.)
        loc = threading.local()
        with TaskGroup() as tg:
            first = tg.spawn(setattr, loc, "x", 1)
            first.result()
            second = tg.spawn(hasattr, loc, "x")
        print("local leaked", second.result(), flush=True)
    with TaskGroup() as tg:
        tasks = [tg.spawn(pow, i, 2) for i in range(5)]
    print("squares", [t.result() for t in tasks], flush=True)

    def late():
        # Runs while the interpreter waits for non-daemon threads at exit.
        threadkit.main_thread().join()
        with TaskGroup() as tg:
            cubes = [tg.spawn(pow, i, 3) for i in range(3)]
        print("late cubes", [t.result() for t in cubes], flush=True)

    threadkit.Thread(target=late).start()
    settled()
    print("idle workers left", _workers.idle_workers() > 0, flush=True)
"""

FORK_PRELUDE = """
    import faulthandler; faulthandler.dump_traceback_later(15, exit=True)  # a hang shows
    import os, sys, time, traceback, warnings
    import threadkit
    from threadkit import TaskGroup, _workers
    warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
    _workers.IDLE_TIMEOUT = 3600.0  # a forked worker that idled would hang the child

    def poll(predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached"
            time.sleep(0.0005)
"""

FORK_SCRIPT = """
    def on_a_worker(barrier):
        barrier.wait(10)
        return threadkit.current_thread()

    with TaskGroup() as tg:
        three = threadkit.Barrier(3)
        before = [tg.spawn(on_a_worker, three) for _ in range(3)]
    workers_before = {t.result() for t in before}

    # A worker busy at fork time, in a group another thread keeps open.
    gate = threadkit.Event()
    busy_box = []

    def hold_open():
        with TaskGroup() as group:
            busy_box.append(group.spawn(gate.wait))

    holder = threadkit.Thread(target=hold_open)
    holder.start()
    poll(lambda: busy_box and threadkit._core.waiting_on(gate))
    poll(lambda: _workers.idle_workers() == 2)  # and two idle ones
    busy = busy_box[0]
    pid = os.fork()
    if pid == 0:
        try:
            print("child cache", _workers.workers(), _workers.idle_workers(), flush=True)
            # The busy task's thread is gone: it ended, rather than hang its group.
            print("child lost task", busy.done() and type(busy.exception()).__name__,
                  flush=True)
            barrier = threadkit.Barrier(3)
            with TaskGroup() as tg:
                tasks = [tg.spawn(barrier.wait, 10) for _ in range(3)]
                named = tg.spawn(lambda: threadkit.current_thread().name, name="child")
            print("child tasks", sorted(t.result() for t in tasks), named.result(),
                  not ({t.thread for t in tasks} & workers_before), flush=True)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
    gate.set()
    holder.join()
    print("busy task", busy.result(), flush=True)
    with TaskGroup() as tg:
        again = tg.spawn(threadkit.current_thread)
    # The parent's idle workers survived the fork and are reused.
    print("parent reuses", again.result() in workers_before, flush=True)
"""

FORK_IN_TASK_SCRIPT = """
    def forker():
        pid = os.fork()
        if pid == 0:
            # In the child this worker is the only thread; its task goes on.
            print("child task", threadkit.current_thread().name, flush=True)
            return "child"
        _, status = os.waitpid(pid, 0)  # the child ends after the task
        return os.waitstatus_to_exitcode(status)

    with TaskGroup() as tg:
        task = tg.spawn(forker, name="forker")
    print("parent", task.result(), flush=True)
"""

#: A child forked inside a block leaves it: quietly after ``cancel()`` inside it, and
#: with the lost task's RuntimeError if a task was running on another worker.
FORK_IN_BLOCK_SCRIPTS = {
    "TaskGroup": """
        with TaskGroup() as tg:
            tg.spawn(pow, 2, 10).result()
            pid = os.fork()
    """,
    "CancelScope": """
        with threadkit.CancelScope() as scope:
            pid = os.fork()
            if pid == 0:
                scope.cancel()
                threadkit.checkpoint()  # Cancelled, caught by the scope
                print("not cancelled", flush=True)
    """,
    "TaskGroup with a busy task": """
        gate = threadkit.Event()
        with TaskGroup() as tg:
            tg.spawn(gate.wait)
            poll(lambda: threadkit._core.waiting_on(gate))
            pid = os.fork()
            if pid != 0:
                gate.set()
    """,
}
FORK_IN_BLOCK_RUN = """
    pid = None
    try:
{block}
        if pid == 0:
            print("child left the block", flush=True)
    except BaseException as exc:
        if pid != 0:
            raise
        inner = [type(e).__name__ for e in getattr(exc, "exceptions", ())]
        print("child:", type(exc).__name__, inner, flush=True)
    finally:
        if pid == 0:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("parent", os.waitstatus_to_exitcode(status), flush=True)
"""


class TestProcess:
    @pytest.mark.parametrize("stand_in", [False, True], ids=["imported", "stand-in"])
    def test_exit_does_not_wait_for_idle_workers(self, stand_in: bool) -> None:
        # With an hour's idle timeout, waiting for idle workers would be a hang.
        out = run_python(EXIT_SCRIPT.format(stand_in=stand_in), timeout=20)
        assert out.returncode == 0, out.stderr
        expected = ["local leaked False"] if stand_in else []
        expected += ["squares [0, 1, 4, 9, 16]", "idle workers left True", "late cubes [0, 1, 8]"]
        assert out.stdout.splitlines() == expected, out.stdout + out.stderr

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_a_forked_child_starts_with_a_working_empty_cache(self) -> None:
        out = run_python(textwrap.dedent(FORK_PRELUDE) + textwrap.dedent(FORK_SCRIPT))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "child cache [] 0",
            "child lost task RuntimeError",
            "child tasks [0, 1, 2] child True",
            "child exit 0",
            "busy task True",
            "parent reuses True",
        ], out.stdout + out.stderr

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_a_worker_that_forks_ends_in_the_child_after_its_task(self) -> None:
        # Were it to go idle in the child, the parent's waitpid would wait an hour.
        out = run_python(textwrap.dedent(FORK_PRELUDE) + textwrap.dedent(FORK_IN_TASK_SCRIPT))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["child task forker", "parent 0"], out.stderr

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    @pytest.mark.parametrize(
        ("block", "child"),
        [
            ("TaskGroup", "child left the block"),
            ("CancelScope", "child left the block"),
            ("TaskGroup with a busy task", "child: ExceptionGroup ['RuntimeError']"),
        ],
    )
    def test_a_child_forked_inside_a_block_leaves_it(self, block: str, child: str) -> None:
        body = textwrap.indent(textwrap.dedent(FORK_IN_BLOCK_SCRIPTS[block]), " " * 8)
        script = textwrap.dedent(FORK_PRELUDE) + textwrap.dedent(
            FORK_IN_BLOCK_RUN.replace("{block}", body)
        )
        out = run_python(script)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [child, "parent 0"], out.stdout + out.stderr
