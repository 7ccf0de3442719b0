"""Task groups: structured concurrency for threads.

The idea
--------
trio's nurseries (and asyncio's ``TaskGroup``, Java's ``StructuredTaskScope``, Go's
``errgroup``) for threads. A ``TaskGroup`` is a ``with`` block that starts tasks in
threads, always waits for all of them at its end, cancels the rest when one fails,
and raises every failure together as one ``ExceptionGroup``. A thread cannot leak out
of the block and an error cannot be lost in it.

How it is built
---------------
The group owns a ``CancelScope``: the block runs inside it, and every task runs
inside it too, below the scopes that enclose the block (``enter_task``), so that
``with fail_after(5): with TaskGroup() as tg:`` bounds every task, and a failure
cancels the whole group with one ``cancel()``. A ``Task`` is not a thread: it is a
job for the worker cache (``_workers``), which runs it on a reused thread, in a copy
of the spawner's ``contextvars`` context. ``Task.cancel`` cancels the task's own
scope, which only that call makes (``cancel_task``): most tasks never need one. A
task ends in one of three ways: a value, ``Cancelled`` (not a failure), or a
failure, which the group records and which cancels the group. A task that is
cancelled before a worker picks it up never runs its function.

The group's mutex guards its counters and the outcome of each of its tasks; the
wait queues of ``Task.result`` and of the block's end share it, so "check, then
wait" is one critical section. Waiting for the tasks at the end is not a
cancellation point: the block cannot end before its tasks, whatever happens.

A task's failure is the group's to report, so it does not go to ``excepthook``.
Workers are daemon threads: if the block is abandoned with a second Ctrl-C while a
task ignores its cancellation, that task does not keep the interpreter alive.
"""

from __future__ import annotations

import _thread
import contextvars
import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from time import monotonic
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._core import (
    Cancelled,
    CancelScope,
    ThreadRecord,
    WaitQueue,
    armed,
    cancel_task,
    check_cancelled,
    checkpoint,
    current_record,
    enter_task,
    interruptible,
    scopes_of,
    wake,
)
from ._sync import Semaphore
from ._threads import INTERRUPT_GRACE, Thread, say_still_running
from ._workers import Worker, submit, withdraw, workers

__all__ = ["Task", "TaskGroup"]

T = TypeVar("T")
R = TypeVar("R")

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

    def __repr__(self) -> str:
        return f"<threadkit.Task {self.name} {self._state.value}>"

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
        if self._exception is not None:
            raise self._exception.with_traceback(self._traceback)
        value: T = self._result
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task; return the exception it ended with, or None.

        TimeoutError if ``timeout`` (seconds) expires first. A cancellation point,
        like ``result``.
        """
        if not self._wait(timeout):
            raise TimeoutError(f"{self.name} did not finish within {timeout} seconds")
        return self._exception

    def done(self) -> bool:
        """True once the task has ended, whichever way."""
        return self._state is DONE

    def cancel(self) -> None:
        """Cancel this task only; it gets ``Cancelled`` at its next cancellation point.

        A task cancelled before it started does not run at all. Never blocks.
        """
        cancel_task(self)

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

    # -- running (in a worker) ------------------------------------------------------------
    @interruptible  # it runs the task's function
    def run_in(self, worker: Worker, rec: ThreadRecord) -> None:
        """Run the task in ``worker``'s thread (``rec``) and record how it ended.

        Never raises. The task's scopes stay on the worker's stack until the worker
        takes its next task or parks (``exit_task``).
        """
        group = self._group
        self._state = RUNNING
        enter_task(rec, group._scopes, self)
        try:
            try:
                if armed[0]:
                    # A task cancelled while it was queued does not start at all.
                    check_cancelled(rec)
                self._thread = worker
                fn = self._fn
                assert fn is not None and self._context is not None
                self._result = self._context.run(fn, *self._args, **self._kwargs)
            except BaseException as exc:
                self._exception = exc
                self._traceback = exc.__traceback__
                # Recorded before the slot is freed, so a spawner waiting for that
                # slot already finds the group cancelled.
                if not isinstance(exc, Cancelled):
                    group._task_failed(exc)
                del exc
        finally:
            self._fn = self._context = None
            self._args = ()
            self._kwargs = {}
            # The worker wears the task's name only while the task runs: whoever
            # sees it ended must not find the worker still named after it.
            worker._job = None
            group._task_ended(self)

    def lost(self, error: BaseException) -> None:
        """End the task with ``error``: in a forked child, its thread does not exist.

        Only the forking thread survives a fork, so the group's mutex, if held at
        that instant, was held by a thread that is gone: it is made new first.
        """
        group = self._group
        # Asked by trying, not by locked(): see _core.after_fork_in_child.
        if group._mutex.acquire(False):
            group._mutex.release()
        else:
            group._mutex._at_fork_reinit()  # type: ignore[attr-defined]
        self._exception = error
        group._task_failed(error)
        group._task_ended(self)


class TaskGroup:
    """A ``with`` block that runs tasks in threads and does not end before they do.

    ``spawn(fn, /, *args, name=None, **kwargs)`` starts ``fn`` in a new task. Leaving
    the block waits for every task. The first failure, in a task or in the block,
    cancels the group (``cancel_scope``): the other tasks get ``Cancelled`` at their
    next cancellation point. When all have ended, the group raises one
    ``ExceptionGroup`` of every failure; tasks that ended by ``Cancelled`` are not
    failures. KeyboardInterrupt and SystemExit pass through bare (after the tasks
    were cancelled and have ended), and a cancellation from an enclosing scope
    passes through as ``Cancelled``.

    With ``limit=n``, at most ``n`` tasks run at once and ``spawn`` waits (a
    cancellation point) for a free slot.
    """

    def __init__(self, *, limit: int | None = None, name: str | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self.name = name if name is not None else f"TaskGroup-{next(_group_counter)}"
        self._limit = limit
        self._slots = Semaphore(limit) if limit is not None else None
        #: The group's scope: the block and every task run inside it.
        self.cancel_scope = CancelScope()
        self._scopes: list[CancelScope] = []
        self._state = GroupState.NEW
        # Guards _failures, _running, _state and the outcome of every task of the group.
        self._mutex = _thread.allocate_lock()
        #: Where the block's end waits for the last task (shares _mutex).
        self._all_done = WaitQueue(self._mutex)
        self._failures: list[BaseException] = []
        self._running = 0
        self._task_counter = itertools.count(1)

    def __repr__(self) -> str:
        return (
            f"<threadkit.TaskGroup {self.name} {self._state.value}, "
            f"{self._running} running, {len(self._failures)} failed>"
        )

    # -- the block --------------------------------------------------------------------
    def __enter__(self) -> TaskGroup:
        if self._state is not GroupState.NEW:
            raise RuntimeError("each TaskGroup may only be used for a single 'with' block")
        self.cancel_scope.__enter__()
        self._scopes = scopes_of(current_record())
        self._state = GroupState.OPEN
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        body_error = exc
        if exc is not None and not isinstance(exc, Cancelled):
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
            failures = list(self._failures)
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
    def spawn(
        self, fn: Callable[..., R], /, *args: Any, name: str | None = None, **kwargs: Any
    ) -> Task[R]:
        """Start ``fn(*args, **kwargs)`` as a task of this group; return its ``Task``.

        The task runs on a worker thread, in a copy of the caller's ``contextvars``
        context, inside the group's cancel scopes. With a ``limit``, waits for a
        free slot first (a cancellation point). RuntimeError if the group is not
        open.
        """
        slots = self._slots
        if slots is not None:
            self._check_open()
            slots.acquire()
        try:
            if slots is not None:
                # The slot may have come from a task that just failed: do not start
                # another task in a group that is being cancelled.
                checkpoint()
            with self._mutex:
                if self._state is not OPEN and self._state is not CLOSING:
                    self._check_open()
                task: Task[R] = Task(self, fn, args, kwargs, name, next(self._task_counter))
                self._running += 1
            try:
                submit(task)
            except BaseException:
                # A task that is still queued never runs: take it back. One that a
                # worker took already (the error was an interrupt) is the group's.
                if not withdraw(task):
                    raise
                with self._mutex:
                    self._running -= 1
                    # The end of the block may be waiting for this very count.
                    done = None if self._running else self._all_done.take_all_locked()
                if done:
                    wake(done)
                raise
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        return task

    def map(self, fn: Callable[[T], R], iterable: Iterable[T]) -> Iterator[R]:
        """Yield ``fn(item)`` for each item, in input order, computed by tasks.

        At most ``limit`` tasks are in flight (``limit`` is required), so an endless
        iterable is consumed lazily in bounded memory. A failing item's exception is
        raised here, and, like any task failure, fails the group.
        """
        if self._limit is None:
            raise ValueError("TaskGroup.map needs a TaskGroup with a limit")
        return self._map(fn, iterable, self._limit)

    @interruptible  # it pulls items from the program's iterable
    def _map(self, fn: Callable[[T], R], iterable: Iterable[T], limit: int) -> Iterator[R]:
        window: deque[Task[R]] = deque()
        try:
            for item in iterable:
                if len(window) >= limit:
                    yield window[0].result()
                    window.popleft()
                window.append(self.spawn(fn, item))
            while window:
                yield window[0].result()
                window.popleft()
        except Cancelled as cancelled:
            if cancelled.scope is not self.cancel_scope:
                raise
            # The group was cancelled because an item failed: report that failure
            # (the first in input order), not the cancellation it caused.
            for task in window:
                task._wait(None, cancellable=False)
                error = task._exception
                if error is not None and not isinstance(error, Cancelled):
                    raise error.with_traceback(task._traceback) from None
            raise

    def _check_open(self) -> None:
        if self._state is GroupState.NEW:
            raise RuntimeError("this TaskGroup has not been entered yet")
        if self._state is GroupState.CLOSED:
            raise RuntimeError(f"{self.name} is closed: its block has ended")

    def _task_failed(self, error: BaseException) -> None:
        with self._mutex:
            self._failures.append(error)
        self.cancel_scope.cancel()

    def _task_ended(self, task: Task[Any]) -> None:
        """Publish ``task``'s outcome, free its slot, wake whoever waits for it."""
        with self._mutex:
            task._state = DONE
            queue = task._waiters
            woken = queue.take_all_locked() if queue is not None else None
            self._running -= 1
            if not self._running:
                last = self._all_done.take_all_locked()
                woken = woken + last if woken else last
        # The slot first: a waiter woken here often spawns next (map does), and
        # must not find the slot still taken and park a second time.
        if self._slots is not None:
            self._slots.release()
        if woken:
            wake(woken)


def _unique(errors: Iterable[BaseException]) -> list[BaseException]:
    """Drop repeats of the same exception object (map re-raises a task's failure)."""
    seen: set[int] = set()
    out = []
    for error in errors:
        if id(error) not in seen:
            seen.add(id(error))
            out.append(error)
    return out
