"""Task groups: structured concurrency for threads.

The idea
--------
trio's nurseries (and asyncio's ``TaskGroup``, Java's ``StructuredTaskScope``, Go's
``errgroup``) for threads. A ``TaskGroup`` is a ``with`` block that starts tasks in
threads, always waits for all of them at its end, and raises every failure together
as one ``ExceptionGroup``. A thread cannot leak out of the block and an error cannot
be lost in it. By default the first failure cancels the rest (``fail_fast``); a
collecting group lets the others run on and raises every failure at the end.

How it is built
---------------
The group owns a ``CancelScope``: the block runs inside it, and every task runs
inside it too, below the scopes that enclose the block (``enter_task``), so that
``with fail_after(5): with TaskGroup() as tg:`` bounds every task, and a failure
cancels the whole group with one ``cancel()``. A ``Task`` is not a thread: it is
run by a job of the worker cache (``_workers``), on a reused thread, in a copy of
the spawner's ``contextvars`` context. ``Task.cancel`` cancels the task's own
scope, which only that call makes (``cancel_task``): most tasks never need one. A
task ends in one of three ways: a value, ``Cancelled`` (not a failure), or a
failure, which the group records (and, failing fast, which cancels the group). A
task that is cancelled before it starts never runs its function.

Limits: runners and a queue
---------------------------
A group without a limit hands each task to the worker cache as a job of its own.
A group with ``limit=n`` has at most ``n`` *runners*: jobs of the cache that run
the group's tasks one after another, taking the next from the group's FIFO of
pending tasks, and that end when it is empty, as an executor's threads do. So a
burst of spawns costs an append each, not a thread switch each, and a task that
ends hands its slot to the next one without waking anybody. The FIFO is bounded
(``max_pending``): a spawner that finds it full waits (backpressure), and is woken
only once it has drained to half, so that a fast spawner is parked once per many
tasks rather than once per task. A spawn made by one of the group's own tasks (or
by a task of a group nested in one of them) never waits: those tasks hold the slots
the queue waits for, and waiting there could deadlock.

Rejected: a semaphore of slots taken by the spawner (what 0.1 did: the spawner was
parked and woken once per task, 3.5 times the cost of an executor in a burst); an
unbounded queue (an endless spawn loop would run out of memory instead of slowing
down).

The group's mutex guards its counters, its queue and the outcome of each of its
tasks; the wait queues of ``Task.result``, of spawners and of the block's end share
it, so "check, then wait" is one critical section. Waiting for the tasks at the
end is not a cancellation point: the block cannot end before its tasks, whatever
happens.

A task's failure is the group's to report, so it does not go to ``excepthook``.
Workers are daemon threads: if the block is abandoned with a second Ctrl-C while a
task ignores its cancellation, that task does not keep the interpreter alive.
"""

from __future__ import annotations

import _thread
import contextvars
import enum
import itertools
import operator
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from ._core import (
    Cancelled,
    CancelScope,
    ThreadRecord,
    Waiter,
    WaitQueue,
    armed,
    cancel_task,
    check_cancelled,
    checkpoint,
    current_record,
    enter_task,
    interruptible,
    scopes_of,
    wait_description,
    wake,
)
from ._threads import INTERRUPT_GRACE, Thread, say_still_running
from ._workers import Worker, submit, withdraw, workers

__all__ = ["DEFAULT_LIMIT", "DEFAULT_MAX_PENDING", "Task", "TaskGroup", "as_completed"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

#: Tasks of one group that run at once unless the group says otherwise. Enough for
#: the I/O fan-out threads are for (an HTTP client's connection pool is 10 to 100;
#: trio and anyio run 40 threads at most by default), and far from where threads
#: start to cost (each reserves a stack, and the OS schedules them all): 5000
#: blocking tasks no longer start 5000 threads. ``limit=None`` lifts it.
DEFAULT_LIMIT = 100
#: Tasks of a limited group that may wait for a slot before ``spawn`` waits too.
DEFAULT_MAX_PENDING = 1000
#: ``map``'s default window per slot: how far past a slow item it reads ahead.
_MAP_WINDOW_PER_SLOT = 16

_group_counter = itertools.count(1)


class GroupState(enum.Enum):
    """The life of a task group."""

    NEW = "new"
    OPEN = "open"  # inside the with block: tasks may be spawned
    CLOSING = "closing"  # the block ended; waiting for tasks (they may still spawn)
    CLOSED = "closed"  # every task has ended; no more spawning


OPEN = GroupState.OPEN
CLOSING = GroupState.CLOSING


class TaskState(enum.Enum):
    """The life of a task: it moves forward only."""

    PENDING = "pending"  # spawned; waiting for a worker
    RUNNING = "running"
    DONE = "done"


PENDING = TaskState.PENDING
RUNNING = TaskState.RUNNING
DONE = TaskState.DONE


def _positive_int(value: object, what: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``: TypeError or ValueError otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an integer, not bool")
    number = operator.index(value)  # type: ignore[arg-type]
    if number < minimum:
        raise ValueError(f"{what} must be at least {minimum}")
    return number


def _check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"'{type(fn).__name__}' object is not callable")


class Task(Generic[T]):
    """A task spawned in a ``TaskGroup``: its outcome, and a way to cancel it."""

    __slots__ = (
        "_name",
        "_number",
        "_group",
        "_fn",
        "_args",
        "_kwargs",
        "_context",
        "_scope",
        "_runner",
        "_depth",
        "_state",
        "_thread",
        "_result",
        "_exception",
        "_traceback",
        "_waiters",
        "_callbacks",
        "_to_caller",
        "_taken",
    )

    def __init__(
        self,
        group: TaskGroup,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        number: int,
    ) -> None:
        self._name = name
        self._number = number
        self._group = group
        self._fn: Callable[..., T] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._context: contextvars.Context | None = contextvars.copy_context()
        #: The task's own scope, inside the group's: what ``cancel()`` cancels. Made
        #: by the first ``cancel()``; this and the next two are ``TaskScopes`` fields.
        self._scope: CancelScope | None = None
        self._runner: ThreadRecord | None = None
        self._depth = 0
        # The fields below are guarded by the group's mutex once the task is queued.
        self._state = PENDING
        self._thread: Thread | None = None
        self._result: Any = None
        self._exception: BaseException | None = None
        self._traceback: TracebackType | None = None
        #: Threads waiting in ``result()``/``exception()``; created by the first one.
        self._waiters: WaitQueue | None = None
        #: Done callbacks not yet called; None when there are none.
        self._callbacks: list[Callable[[Task[T]], object]] | None = None
        #: ``map(return_exceptions=True)``: an Exception goes to map's caller, not
        #: to the group, unless map is closed before it yields it.
        self._to_caller = False
        #: Its failure was taken by the program (``result``, ``exception``, ``map``):
        #: a collecting group does not raise it again.
        self._taken = False

    def __repr__(self) -> str:
        state = self._state
        thread = self._thread
        if state is RUNNING and thread is not None:
            waits = wait_description(thread.ident)
            if waits is not None:
                return f"<threadkit.Task {self.name} running, {waits}>"
        return f"<threadkit.Task {self.name} {state.value}>"

    def _tk_label(self) -> str:
        return f"task {self.name} ({self._state.value})"

    @property
    def name(self) -> str:
        """The task's name (``<group name>.<n>`` unless given); its thread wears it
        while the task runs. Settable."""
        name = self._name
        if name is None:
            name = self._name = f"{self._group.name}.{self._number}"
        return name

    @name.setter
    def name(self, name: object) -> None:
        self._name = str(name)

    @property
    def thread(self) -> Thread | None:
        """The worker thread the task runs (or ran) on; None until it starts.

        Worker threads are reused: after the task, the thread may run others.
        """
        return self._thread

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task; return its value or raise its exception.

        The exception keeps its original traceback; a task that ended by
        cancellation raises its ``Cancelled``. TimeoutError if ``timeout`` (seconds)
        expires first. A cancellation point: ``Cancelled`` if the caller is
        cancelled, on entry or while waiting (the task is unaffected).
        """
        if not self._wait(timeout):
            raise TimeoutError(f"{self.name} did not finish within {timeout} seconds")
        error = self._exception
        if error is not None:
            self._group._taken(self)
            raise error.with_traceback(self._traceback)
        value: T = self._result
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task; return the exception it ended with, or None.

        TimeoutError if ``timeout`` (seconds) expires first. A cancellation point,
        like ``result``.
        """
        if not self._wait(timeout):
            raise TimeoutError(f"{self.name} did not finish within {timeout} seconds")
        error = self._exception
        if error is not None:
            self._group._taken(self)
        return error

    def done(self) -> bool:
        """True once the task has ended, whichever way."""
        return self._state is DONE

    def cancel(self) -> None:
        """Cancel this task only; it gets ``Cancelled`` at its next cancellation point.

        A task cancelled before it started does not run at all. Never blocks.
        """
        cancel_task(self)

    def add_done_callback(self, fn: Callable[[Task[T]], object]) -> None:
        """Call ``fn(task)`` once the task has ended.

        It runs in the task's thread, before the group counts the task as ended (so
        the block's end waits for it), and an exception it raises is a failure of
        the group, as the task's own would be. If the task has ended already, ``fn``
        runs at once in the caller, and its exception propagates. Never blocks.
        """
        _check_callable(fn)
        with self._group._mutex:
            if self._state is not DONE:
                callbacks = self._callbacks
                if callbacks is None:
                    self._callbacks = [fn]
                else:
                    callbacks.append(fn)
                return
        _call_back(fn, self)

    def _discard_callback(self, fn: Callable[[Task[T]], object]) -> None:
        with self._group._mutex:
            callbacks = self._callbacks
            if callbacks is not None:
                try:
                    callbacks.remove(fn)
                except ValueError:
                    pass

    # -- waiting --------------------------------------------------------------------------
    def _wait(self, timeout: float | None, cancellable: bool = True) -> bool:
        """Park until the task is done; return False if ``timeout`` expired."""
        if cancellable and armed[0]:
            checkpoint()
        if self._state is DONE:
            return True
        thread = self._thread
        if thread is not None and thread.ident == _thread.get_ident():
            raise RuntimeError(f"task {self.name} cannot wait for itself")
        deadline = None if timeout is None else monotonic() + max(timeout, 0)
        mutex = self._group._mutex
        with mutex:
            queue = self._waiters
            if queue is None:
                queue = self._waiters = WaitQueue(mutex)
        return queue.wait_until(current_record(), self, "result", self.done, deadline, cancellable)

    def _tk_holders(self, operation: str) -> list[int] | None:
        """Who a ``result()`` waits for (deadlock detection): the thread running the
        task; for a task queued in a full limited group, the threads running the
        group's tasks, one of which must end its task first. None while that is
        changing (a task between a runner and its thread)."""
        if operation != "result":
            return None
        group = self._group
        with group._mutex:
            state = self._state
            if state is RUNNING:
                thread = self._thread
                return None if thread is None or thread.ident is None else [thread.ident]
            if state is PENDING and group._limit is not None and self in group._pending:
                return group._runner_threads_locked()
        return None

    def _tk_held_as(self, operation: str, ident: int) -> str:
        thread = self._thread
        if self._state is RUNNING and thread is not None and thread.ident == ident:
            return f"running task {self.name}"
        return f"holding a slot of {self._group.name}, which queued tasks wait for"

    # -- running (in a worker) ------------------------------------------------------------
    def run_in(self, worker: Worker, rec: ThreadRecord) -> None:
        """Run the task as a job of its own in ``worker``'s thread (``rec``). Never
        raises. The task's scopes stay on the worker's stack until the worker takes
        its next job or parks (``exit_task``)."""
        try:
            self._execute(worker, rec)
        finally:
            # ``worker._job`` is cleared in the hold of the mutex that counts the task
            # ended: a fork meanwhile (during its done callbacks, say) still finds the
            # job to end, and whoever sees it ended no longer finds the worker named
            # after it.
            self._group._task_ended(self, None, worker)

    def _execute(self, worker: Worker, rec: ThreadRecord) -> None:
        """Run the task's function in ``worker`` and record how it ended; never raises."""
        group = self._group
        self._state = RUNNING
        enter_task(rec, group._scopes, self)
        try:
            if armed[0]:
                # A task cancelled while it was queued does not start at all.
                check_cancelled(rec)
            self._thread = worker
            self._result = self._call()
        except BaseException as exc:
            self._exception = exc
            self._traceback = exc.__traceback__
            # Recorded before the slot is freed, so a spawner waiting for that slot
            # already finds the group cancelled.
            if not isinstance(exc, Cancelled):
                group._task_failed(exc, self)
            del exc
        finally:
            self._fn = self._context = None
            self._args = ()
            self._kwargs = {}

    @interruptible  # the task's function: the only open part of running a task
    def _call(self) -> T:
        fn = self._fn
        assert fn is not None and self._context is not None
        return self._context.run(fn, *self._args, **self._kwargs)

    def lost(self, error: BaseException) -> None:
        """End the task with ``error``: in a forked child, its thread does not exist.

        A task that had ended, its done callbacks running, is only counted ended.
        """
        group = self._group
        group._renew_mutex_after_fork()
        if self._state is DONE:
            woken: list[Waiter] = []
            with group._mutex:
                group._release_locked(None, woken)
            wake(woken)
            return
        self._exception = error
        group._task_failed(error, self)
        group._task_ended(self, None)


class _Runner:
    """A job of the worker cache that runs a limited group's tasks one by one."""

    __slots__ = ("_group", "task", "_active")

    def __init__(self, group: TaskGroup, first: Task[Any]) -> None:
        self._group = group
        #: The task running (or about to run) now; the next one is put here under
        #: the group's mutex, in the same hold that takes it off the queue.
        self.task: Task[Any] | None = first
        #: Counted in the group's ``_runners`` (under the group's mutex).
        self._active = True

    @property
    def name(self) -> str:
        task = self.task
        return task.name if task is not None else f"{self._group.name}-runner"

    @name.setter
    def name(self, name: str) -> None:
        task = self.task
        if task is not None:
            task.name = name

    def cancel(self) -> None:
        task = self.task
        if task is not None:
            task.cancel()

    def run_in(self, worker: Worker, rec: ThreadRecord) -> None:
        group = self._group
        task = self.task
        try:
            while task is not None:
                try:
                    task._execute(worker, rec)
                finally:
                    task = group._task_ended(task, self)
                if task is None:
                    break
                if worker._retiring:
                    # This thread forked and goes on in the child, where the group's
                    # queued tasks are the parent's: they end, as the cache's do.
                    error = RuntimeError("the task's thread did not survive fork()")
                    group._runner_lost(self, error)
                    break
                if rec.used_local:
                    # The task touched a threadkit.local: this thread must not run
                    # another task (the cache ends it). The runner goes on elsewhere.
                    try:
                        submit(self)
                    except BaseException:
                        pass  # queued all the same; it runs when a worker is free
                    break
        finally:
            worker._job = None

    def lost(self, error: BaseException) -> None:
        """In a forked child: this runner's thread is gone, and its task with it."""
        self._group._runner_lost(self, error)


class TaskGroup:
    """A ``with`` block that runs tasks in threads and does not end before they do.

    ``spawn(fn, /, *args, **kwargs)`` starts ``fn(*args, **kwargs)`` in a new task
    (every keyword goes to ``fn``; ``options(name=...)`` names tasks). Leaving the
    block waits for every task. When all have ended, the group raises one
    ``ExceptionGroup`` of every failure; tasks that ended by ``Cancelled`` are not
    failures. KeyboardInterrupt and SystemExit pass through bare (after the tasks
    were cancelled and have ended), and a cancellation from an enclosing scope passes
    through as ``Cancelled``.

    * ``fail_fast=True`` (the default): the first failure, in a task or in the
      block, cancels the group (``cancel_scope``): the other tasks get ``Cancelled``
      at their next cancellation point. With ``fail_fast=False`` the group
      *collects*: the other tasks run on, and every failure is raised at the end,
      except those the program took from their task (``result()`` raised it,
      ``exception()`` returned it) before the block ended.
    * ``limit=n`` (default ``DEFAULT_LIMIT``, 100): at most ``n`` tasks run at once;
      ``limit=None`` for no limit. Tasks beyond it wait in the group's queue of at
      most ``max_pending`` (default ``DEFAULT_MAX_PENDING``, 1000) tasks; a spawn
      that finds the queue full waits (a cancellation point) until it has drained
      to half. A spawn from one of the group's own tasks never waits.
    """

    def __init__(
        self,
        *,
        limit: int | None = DEFAULT_LIMIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        fail_fast: bool = True,
        name: str | None = None,
    ) -> None:
        if limit is not None:
            limit = _positive_int(limit, "limit", 1)
        max_pending = _positive_int(max_pending, "max_pending", 0)
        self.name = name if name is not None else f"TaskGroup-{next(_group_counter)}"
        self._limit = limit
        self._max_pending = max_pending
        #: A spawner waiting for room is woken once the queue is down to this.
        self._low_water = max_pending // 2
        self._fail_fast = bool(fail_fast)
        #: The group's scope: the block and every task run inside it.
        self.cancel_scope = CancelScope()
        self._scopes: list[CancelScope] = []
        #: The task running the thread that entered the block, if any (see
        #: ``_spawned_from_inside``).
        self._parent: object = None
        self._state = GroupState.NEW
        # Guards the fields below and the outcome of every task of the group.
        self._mutex = _thread.allocate_lock()
        #: Where the block's end waits for the last task (shares _mutex).
        self._all_done = WaitQueue(self._mutex)
        #: Where spawners wait for room in ``_pending`` (shares _mutex).
        self._room = WaitQueue(self._mutex)
        #: Every failure, with the task it came from (None: the body, a callback).
        self._failures: list[tuple[Task[Any] | None, BaseException]] = []
        #: Tasks that have not ended (queued, pending or running).
        self._running = 0
        #: Limited groups: runners alive, and the tasks waiting for one.
        self._runners = 0
        self._pending: deque[Task[Any]] = deque()
        #: The runners counted in ``_runners``, for deadlock detection.
        self._active_runners: set[_Runner] = set()
        #: Failures of ``map(return_exceptions=True)`` items not yielded yet: the
        #: group's if the block ends (or the map is closed) before they are.
        self._quiet: dict[Task[Any], BaseException] = {}
        self._task_counter = itertools.count(1)

    def __repr__(self) -> str:
        return (
            f"<threadkit.TaskGroup {self.name} {self._state.value}, "
            f"{self._running - len(self._pending)} running, {len(self._pending)} pending, "
            f"{len(self._failures)} failed>"
        )

    @property
    def limit(self) -> int | None:
        """How many tasks may run at once (None: no limit)."""
        return self._limit

    # -- the block --------------------------------------------------------------------
    def __enter__(self) -> TaskGroup:
        if self._state is not GroupState.NEW:
            raise RuntimeError("each TaskGroup may only be used for a single 'with' block")
        self.cancel_scope.__enter__()
        rec = current_record()
        self._scopes = scopes_of(rec)
        self._parent = rec.task
        self._state = GroupState.OPEN
        return self

    if TYPE_CHECKING:
        # Typed as never swallowing, so that a ``return`` inside the block is the
        # function's last word for mypy. The one exception is deliberate and
        # documented: after ``tg.cancel_scope.cancel()`` the block ends quietly.
        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

    else:

        def __exit__(self, exc_type, exc, tb):
            return self._exit(exc_type, exc, tb)

    def _exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        body_error = exc
        if (
            exc is not None
            and not isinstance(exc, Cancelled)
            and (self._fail_fast or isinstance(exc, KeyboardInterrupt | SystemExit))
        ):
            # A failure in the body (or Ctrl-C) cancels the tasks, as a task's would.
            self.cancel_scope.cancel()
        with self._mutex:
            self._state = GroupState.CLOSING
        interrupt: BaseException | None = None
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            interrupt = exc
        try:
            try:
                if interrupt is not None:
                    self._wait_after_interrupt(interrupt)
                else:
                    self._wait_all()
            except BaseException as waiting_error:
                # Ctrl-C while waiting: cancel everything and wait once more, unless
                # this is already the wait after a Ctrl-C in the body. Then, or on a
                # further Ctrl-C, give up waiting: the tasks are daemon threads.
                self.cancel_scope.cancel()
                if interrupt is not None:
                    raise
                interrupt = waiting_error
                self._wait_after_interrupt(interrupt)
        except BaseException as abandoning:
            # Abandoning the block: it must not leave its scope on this thread.
            with self._mutex:
                self._state = GroupState.CLOSED
            self.cancel_scope.__exit__(None, None, None)
            if interrupt is None or not isinstance(abandoning, KeyboardInterrupt):
                raise
            # A second Ctrl-C: report the first one alone, not one inside the other.
            if interrupt is exc:
                return False
            raise interrupt from None
        with self._mutex:
            self._state = GroupState.CLOSED
            self._failures += self._quiet.items()
            self._quiet.clear()
            failures = [
                error
                for task, error in self._failures
                if task is None or self._fail_fast or not task._taken
            ]
        for error in failures:
            if isinstance(error, KeyboardInterrupt | SystemExit) and interrupt is None:
                interrupt = error
        if body_error is not None and not isinstance(
            body_error, Cancelled | KeyboardInterrupt | SystemExit
        ):
            failures.insert(0, body_error)
        failures = _unique(f for f in failures if not isinstance(f, KeyboardInterrupt | SystemExit))
        if interrupt is not None:
            self.cancel_scope.__exit__(None, None, None)
            if interrupt is exc:
                return False
            raise interrupt
        if failures:
            self.cancel_scope.__exit__(None, None, None)
            raise BaseExceptionGroup(
                f"{len(failures)} unhandled failure{'s' if len(failures) > 1 else ''} "
                f"in {self.name}",
                failures,
            )
        if exc is None:
            # The end of the block is a cancellation point, as in trio: a deadline
            # that cancelled the tasks is reported to its scope from here.
            try:
                checkpoint()
            except Cancelled as cancelled:
                if self.cancel_scope.__exit__(Cancelled, cancelled, cancelled.__traceback__):
                    return False
                raise
        return self.cancel_scope.__exit__(exc_type, exc, tb)

    def _wait_all(self, deadline: float | None = None) -> bool:
        """Wait, not cancellably, until every task (even ones spawned late) has ended.

        The group is CLOSED from then on. Returns False if ``deadline`` came first.
        """
        return self._all_done.wait_until(
            current_record(), self, "wait for tasks", self._close_if_done_locked, deadline, False
        )

    def _wait_after_interrupt(self, interrupt: BaseException) -> None:
        """The wait after a Ctrl-C (or SystemExit) cancelled the tasks: say what it
        waits for if they do not end at once (blocked outside threadkit, they cannot
        see the cancellation)."""
        if self._wait_all(monotonic() + INTERRUPT_GRACE):
            return
        running = [w for w in workers() if getattr(w._job, "_group", None) is self]
        say_still_running(
            f"in {self.name}",
            running,
            "task",
            "press Ctrl-C again to stop waiting for them",
            type(interrupt).__name__,
        )
        self._wait_all()

    def _close_if_done_locked(self) -> bool:
        """Close the group if no task runs; the caller holds ``_mutex``.

        Closed in the same hold of the mutex that saw the last task gone, so that a
        spawn from another thread cannot slip in between and start a task that
        nobody waits for.
        """
        if self._running:
            return False
        self._state = GroupState.CLOSED
        return True

    # -- tasks ----------------------------------------------------------------------------
    def spawn(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """Start ``fn(*args, **kwargs)`` as a task of this group; return its ``Task``.

        Every keyword goes to ``fn``; name a task with ``options(name=...)``. The
        task runs on a worker thread, in a copy of the caller's ``contextvars``
        context, inside the group's cancel scopes. In a limited group, a
        cancellation point: it waits while ``max_pending`` tasks are queued already
        (unless called from one of the group's own tasks). TypeError if ``fn`` is not
        callable, RuntimeError if the group is not open.
        """
        _check_callable(fn)
        name = None
        if "name" in kwargs and not _takes_name(fn):
            warnings.warn(
                "spawn(fn, ..., name=...) for the task's name is deprecated: every "
                "keyword goes to fn from the next release; name a task with "
                "tg.options(name=...).spawn(fn, ...)",
                DeprecationWarning,
                stacklevel=2,
            )
            name = str(kwargs.pop("name"))
        return self._spawn(fn, args, kwargs, name, False)

    def options(self, *, name: str | None = None) -> Spawner:
        """Options for the tasks spawned through the returned ``Spawner``.

        ``tg.options(name="fetch-1").spawn(fetch, url, name="bob")`` names the task
        ``fetch-1`` (its thread wears the name while it runs) and passes
        ``name="bob"`` to ``fetch``.
        """
        return Spawner(self, None if name is None else str(name))

    def _spawn(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        to_caller: bool,
    ) -> Task[R]:
        limit = self._limit
        if limit is not None and armed[0]:
            checkpoint()
        with self._mutex:
            state = self._state
            if state is not OPEN and state is not CLOSING:
                self._check_open()
            task: Task[R] = Task(self, fn, args, kwargs, name, next(self._task_counter))
            task._to_caller = to_caller
            if limit is None:
                self._running += 1
                job: _Runner | Task[R] | None = task
            else:
                job = self._place_locked(task, False)
        if job is None:
            job = self._place_waiting(task)
        if job is not _QUEUED:
            self._submit(job)
        return task

    def _place_locked(self, task: Task[Any], inside: bool) -> Any:
        """Put ``task`` to a new runner or the queue; None if it must wait for room.

        Returns the new runner to submit, or ``_QUEUED``. Under ``_mutex``.
        """
        assert self._limit is not None
        if self._runners < self._limit:
            self._runners += 1
            self._running += 1
            runner = _Runner(self, task)
            self._active_runners.add(runner)
            return runner
        if inside or len(self._pending) < self._max_pending:
            self._pending.append(task)
            self._running += 1
            return _QUEUED
        return None

    def _place_waiting(self, task: Task[Any]) -> _Runner:
        """The slow path of a spawn into a full queue: wait for room, unless the
        spawner is one of the group's own tasks (it holds a slot the queue waits for)."""
        inside = self._spawned_from_inside()
        placed: list[_Runner] = []

        def place() -> bool:
            state = self._state
            if state is not OPEN and state is not CLOSING:
                self._check_open()
            job = self._place_locked(task, inside)
            if job is None:
                return False
            placed.append(job)
            return True

        self._room.wait_until(current_record(), self, "spawn", place)
        return placed[0]

    def _spawned_from_inside(self) -> bool:
        """True if the calling thread runs one of this group's tasks, or a task of a
        group entered (at any depth) inside one of them."""
        task = current_record().task
        while task is not None:
            group = getattr(task, "_group", None)
            if group is None:
                return False
            if group is self:
                return True
            task = group._parent
        return False

    def _submit(self, job: _Runner | Task[Any]) -> None:
        """Hand ``job`` to the worker cache; if that fails, take it back and raise."""
        try:
            submit(job)
        except BaseException:
            # A job that is still queued never runs: take it back. One that a worker
            # took already (the error was an interrupt) is the group's.
            if not withdraw(job):
                raise
            requeue = None
            with self._mutex:
                self._running -= 1  # its task never runs
                if isinstance(job, _Runner):
                    if self._pending:
                        # Queued tasks counted on this runner: it takes the next.
                        job.task = self._pending.popleft()
                        requeue = job
                    else:
                        job._active = False
                        self._runners -= 1
                        self._active_runners.discard(job)
                woken = self._room.take_all_locked()
                if not self._running:
                    # The end of the block may be waiting for this very count.
                    woken += self._all_done.take_all_locked()
            if woken:
                wake(woken)
            if requeue is not None:
                try:
                    submit(requeue)
                except BaseException:
                    # It is queued (submit queues first) and runs when a worker is
                    # free; the error to report is the first one.
                    pass
            raise

    @overload
    def map(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        /,
        *,
        buffersize: int | None = None,
        return_exceptions: Literal[False] = False,
    ) -> Iterator[R]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], R],
        iterable: Iterable[T],
        /,
        *,
        buffersize: int | None = None,
        return_exceptions: Literal[True],
    ) -> Iterator[R | Exception]: ...

    @overload
    def map(
        self,
        fn: Callable[..., R],
        iterable: Iterable[Any],
        /,
        *iterables: Iterable[Any],
        buffersize: int | None = None,
        return_exceptions: bool = False,
    ) -> Iterator[Any]: ...

    def map(
        self,
        fn: Callable[..., R],
        /,
        *iterables: Iterable[Any],
        buffersize: int | None = None,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Yield ``fn(*items)`` for the items of ``iterables`` (zipped), in input order.

        The items run as tasks of the group, at most ``limit`` at once, and every
        slot is kept busy: while a slow item holds the head, later items run and
        their results wait, up to ``buffersize`` items between input and output
        (default 16 per slot; required in a group without a limit). So an endless
        iterable is consumed lazily, in bounded memory.

        A failing item's exception is raised here, at its place, and like any task
        failure it fails the group (a collecting group does not raise it again).
        With ``return_exceptions=True`` an item's Exception is yielded in its place
        instead and does not fail the group; other BaseExceptions still do.
        Waiting for an item is a cancellation point.
        """
        _check_callable(fn)
        if not iterables:
            raise TypeError("map() must have at least two arguments.")
        if buffersize is None:
            if self._limit is None:
                raise ValueError("TaskGroup.map in a group without a limit needs buffersize=")
            window = self._limit * _MAP_WINDOW_PER_SLOT
        else:
            window = _positive_int(buffersize, "buffersize", 1)
        # zip, in C, also for one iterable: a generator written here would be a
        # protected frame, holding Ctrl-C back while the program's iterable runs.
        items: Iterator[tuple[Any, ...]] = zip(*iterables, strict=False)
        return self._map(fn, items, window, bool(return_exceptions))

    @interruptible  # it pulls items from the program's iterable
    def _map(
        self,
        fn: Callable[..., R],
        items: Iterator[tuple[Any, ...]],
        window_size: int,
        to_caller: bool,
    ) -> Iterator[Any]:
        window: deque[Task[R]] = deque()
        try:
            while True:
                # Room in the window before the next item is taken from the input.
                while window and (len(window) >= window_size or window[0]._state is DONE):
                    # Taken off the window with its outcome, in a protected frame,
                    # and yielded on the same line: an item still in the window
                    # when the generator is closed is one whose outcome nobody saw.
                    yield self._take_outcome(window, to_caller)
                args = next(items, None)
                if args is None:
                    break
                window.append(self._spawn(fn, args, {}, None, to_caller))
            while window:
                yield self._take_outcome(window, to_caller)
        except Cancelled as cancelled:
            if cancelled.scope is not self.cancel_scope:
                raise
            # The group was cancelled because an item failed: report that failure
            # (the first in input order), not the cancellation it caused.
            for task in window:
                task._wait(None, cancellable=False)
                error = task._exception
                if (
                    error is not None
                    and not isinstance(error, Cancelled)
                    and not (to_caller and isinstance(error, Exception))
                ):
                    raise error.with_traceback(task._traceback) from None
            raise
        finally:
            if to_caller and window:
                # Closed early: the Exceptions nobody will see are the group's again.
                self._give_back(window)

    def _take_outcome(self, window: deque[Task[R]], to_caller: bool) -> Any:
        """Wait for the head of ``window``; take it off and return its outcome, or
        raise its failure (leaving it there)."""
        task = window[0]
        task._wait(None)
        error = task._exception
        if error is None:
            window.popleft()
            return task._result
        if to_caller and isinstance(error, Exception):
            with self._mutex:
                self._quiet.pop(task, None)
            window.popleft()
            return error
        self._taken(task)
        raise error.with_traceback(task._traceback)

    def _give_back(self, tasks: Iterable[Task[Any]]) -> None:
        """Make the failures of ``tasks`` the group's, now or when they fail."""
        failed = []
        with self._mutex:
            for task in tasks:
                task._to_caller = False
                error = self._quiet.pop(task, None)
                if error is not None:
                    self._failures.append((task, error))
                    failed.append(error)
        if failed and self._fail_fast:
            self.cancel_scope.cancel()

    def _check_open(self) -> None:
        if self._state is GroupState.NEW:
            raise RuntimeError("this TaskGroup has not been entered yet")
        if self._state is GroupState.CLOSED:
            raise RuntimeError(f"{self.name} is closed: its block has ended")

    def _taken(self, task: Task[Any]) -> None:
        """The program took ``task``'s failure: a collecting group will not raise it."""
        if not self._fail_fast:
            with self._mutex:
                task._taken = True

    def _task_failed(self, error: BaseException, task: Task[Any] | None) -> None:
        with self._mutex:
            if task is not None and task._to_caller and isinstance(error, Exception):
                self._quiet[task] = error
                return
            self._failures.append((task, error))
        if self._fail_fast or isinstance(error, KeyboardInterrupt | SystemExit):
            self.cancel_scope.cancel()

    def _task_ended(
        self, task: Task[Any], runner: _Runner | None, worker: Worker | None = None
    ) -> Task[Any] | None:
        """Publish ``task``'s outcome, run its callbacks, free its slot and wake whoever
        waits. For a runner, return the next task it runs (None: it ends). A task run
        as a job of its own clears ``worker._job`` when it is counted ended."""
        with self._mutex:
            task._state = DONE
            queue = task._waiters
            woken = queue.take_all_locked() if queue is not None else []
            callbacks = task._callbacks
            if callbacks is None:
                if worker is not None:
                    worker._job = None
                following = self._release_locked(runner, woken)
            else:
                task._callbacks = None
        if callbacks is not None:
            if woken:
                wake(woken)
            for callback in callbacks:
                try:
                    _call_back(callback, task)
                except BaseException as exc:
                    exc.add_note(f"in a done callback of {task.name}")
                    self._task_failed(exc, None)
                    del exc
            woken = []
            with self._mutex:
                if worker is not None:
                    worker._job = None
                following = self._release_locked(runner, woken)
        if woken:
            wake(woken)
        return following

    def _release_locked(self, runner: _Runner | None, woken: list[Waiter]) -> Task[Any] | None:
        """A task has ended: count it and find the runner its next task. Under
        ``_mutex``; adds who must be woken to ``woken``."""
        self._running -= 1
        if not self._running:
            woken += self._all_done.take_all_locked()
        if runner is None:
            return None
        pending = self._pending
        following: Task[Any] | None
        if pending:
            following = runner.task = pending.popleft()
            if len(pending) > self._low_water:
                return following
        else:
            following = runner.task = None
            runner._active = False
            self._runners -= 1
            self._active_runners.discard(runner)
        if self._room.waiters:
            woken += self._room.take_all_locked()
        return following

    def _runner_threads_locked(self) -> list[int] | None:
        """The threads running this limited group's tasks, one per runner; None if a
        runner is between tasks or threads (it may take a queued task at once).
        Under ``_mutex``."""
        idents = []
        for runner in self._active_runners:
            task = runner.task
            if task is None or task._state is not RUNNING:
                return None
            thread = task._thread
            ident = None if thread is None else thread.ident
            if ident is None:
                return None
            idents.append(ident)
        idents.sort()
        return idents

    def _tk_holders(self, operation: str) -> list[int] | None:
        """Who a spawner waiting for room waits for (deadlock detection): the
        threads running the group's tasks, one of which must end its task first."""
        if operation != "spawn":
            return None
        with self._mutex:
            if self._limit is None or self._runners < self._limit:
                return None
            return self._runner_threads_locked()

    def _tk_held_as(self, operation: str, ident: int) -> str:
        return f"holding a slot of {self.name}"

    def _tk_label(self) -> str:
        return f"task group {self.name}"

    def _runner_lost(self, runner: _Runner, error: BaseException) -> None:
        """In a forked child: ``runner``'s thread is gone. Its task ends with
        ``error``; so do the queued ones if no runner of the group is left."""
        self._renew_mutex_after_fork()
        lost: list[Task[Any]] = []
        with self._mutex:
            if not runner._active:
                return
            runner._active = False
            self._runners -= 1
            self._active_runners.discard(runner)
            current = runner.task
            if current is not None:
                lost.append(current)
                runner.task = None
            if not self._runners:
                lost.extend(self._pending)
                self._pending.clear()
        for task in lost:
            task._exception = error
            self._task_failed(error, task)
            self._task_ended(task, None)

    def _renew_mutex_after_fork(self) -> None:
        """Only the forking thread survives a fork, so the group's mutex, if held at
        that instant, was held by a thread that is gone: make it new."""
        # Asked by trying, not by locked(): see _core.after_fork_in_child.
        if self._mutex.acquire(False):
            self._mutex.release()
        else:
            self._mutex._at_fork_reinit()  # type: ignore[attr-defined]


#: ``_place_locked``'s answer for a task that went into the group's queue.
_QUEUED: Any = object()


class Spawner:
    """Spawns tasks into a group with options (``TaskGroup.options``)."""

    __slots__ = ("_group", "_name")

    def __init__(self, group: TaskGroup, name: str | None) -> None:
        self._group = group
        self._name = name

    def __repr__(self) -> str:
        return f"<threadkit.Spawner for {self._group.name}, name={self._name!r}>"

    def spawn(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Task[R]:
        """``TaskGroup.spawn`` with these options; every keyword goes to ``fn``."""
        _check_callable(fn)
        return self._group._spawn(fn, args, kwargs, self._name, False)


@interruptible  # the program's callback
def _call_back(fn: Callable[[Task[T]], object], task: Task[T]) -> None:
    fn(task)


def _takes_name(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a ``name`` keyword (unknown: assume it does)."""
    import inspect

    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    for parameter in parameters:
        if parameter.kind is parameter.VAR_KEYWORD:
            return True
        if parameter.name == "name" and parameter.kind is not parameter.POSITIONAL_ONLY:
            return True
    return False


def as_completed(tasks: Iterable[Task[T]], timeout: float | None = None) -> Iterator[Task[T]]:
    """Yield ``tasks`` as they end (those ended already first, in the given order).

    Each task once, whatever group it belongs to. Waiting for the next is a
    cancellation point; TimeoutError if ``timeout`` seconds pass (from the call)
    before all have ended. Taking the outcome of a yielded task never blocks.
    """
    ordered = list(dict.fromkeys(tasks))
    for task in ordered:
        if not isinstance(task, Task):
            raise TypeError(f"as_completed() takes Tasks, not {type(task).__name__!r}")
    deadline = None if timeout is None else monotonic() + timeout
    return _as_completed(ordered, deadline)


@interruptible  # the program runs while it is suspended at its yield
def _as_completed(tasks: list[Task[T]], deadline: float | None) -> Iterator[Task[T]]:
    mutex = _thread.allocate_lock()
    ended: deque[Task[T]] = deque()
    arrivals = WaitQueue(mutex)

    def arrived(task: Task[T]) -> None:
        with mutex:
            ended.append(task)
            woken = arrivals.take_all_locked()
        if woken:
            wake(woken)

    left = len(tasks)
    try:
        for task in tasks:
            task.add_done_callback(arrived)
        while left:
            with mutex:
                batch = list(ended)
                ended.clear()
            if not batch:
                rec = current_record()
                if not arrivals.wait_until(rec, arrivals, "as_completed", ended.__len__, deadline):
                    raise TimeoutError(f"{left} (of {len(tasks)}) tasks unfinished")
                continue
            for task in batch:
                left -= 1
                yield task
    finally:
        if left:
            for task in tasks:
                task._discard_callback(arrived)


def _unique(errors: Iterable[BaseException]) -> list[BaseException]:
    """Drop repeats of the same exception object (map re-raises a task's failure)."""
    seen: set[int] = set()
    out = []
    for error in errors:
        if id(error) not in seen:
            seen.add(id(error))
            out.append(error)
    return out
