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
The group owns a ``CancelScope``: the block runs inside it, and every task starts
inside it too, below the scopes that enclose the block (``attach_scopes``), so that
``with fail_after(5): with TaskGroup() as tg:`` bounds every task, and a failure
cancels the whole group with one ``cancel()``. Each task runs in its own thread, in a
copy of the spawner's ``contextvars`` context, and ends in one of three ways: a
value, ``Cancelled`` (not a failure), or a failure, which the group records and
which cancels the group. Waiting for the tasks at the end is not a cancellation
point: the block cannot end before its tasks, whatever happens.

A task's failure is the group's to report, so it does not also go to
``excepthook``. Task threads are daemon threads: if the block is abandoned with a
second Ctrl-C while a task ignores its cancellation, that task does not keep the
interpreter alive.
"""

from __future__ import annotations

import _thread
import contextvars
import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._core import Cancelled, CancelScope, checkpoint, current_record, scopes_of
from ._sync import Semaphore
from ._threads import Thread

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


class Task(Generic[T]):
    """A task spawned in a ``TaskGroup``: its outcome, and a way to cancel it."""

    __slots__ = ("_thread", "name")

    def __init__(self, thread: _TaskThread, name: str) -> None:
        self._thread = thread
        #: The task's name (its thread's name).
        self.name = name

    def __repr__(self) -> str:
        if not self._thread.is_alive() and self._thread.ident is not None:
            state = "done"
        else:
            state = "running"
        return f"<threadkit.Task {self.name} {state}>"

    @property
    def thread(self) -> Thread:
        """The thread the task runs on."""
        return self._thread

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task; return its value or raise its exception.

        A task that ended by cancellation raises its ``Cancelled``. TimeoutError if
        ``timeout`` (seconds) expires first. A cancellation point.
        """
        value: T = self._thread.result(timeout)
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task; return the exception it ended with, or None."""
        return self._thread.exception(timeout)

    def done(self) -> bool:
        """True once the task has ended, whichever way."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def cancel(self) -> None:
        """Cancel this task only; it gets ``Cancelled`` at its next cancellation point."""
        self._thread.cancel()


class _TaskThread(Thread):
    """The thread of one task: runs in the group's scopes and reports to the group."""

    def __init__(
        self,
        group: TaskGroup,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: contextvars.Context,
        name: str,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._group = group
        self._fn = fn
        self._fn_args = args
        self._fn_kwargs = kwargs
        self._context = context

    def _scopes(self) -> list[CancelScope]:
        # The group's enclosing scopes, then the group's own, then the task's.
        return [*self._group._scopes, self._root_scope]

    def run(self) -> Any:
        try:
            return self._context.run(self._fn, *self._fn_args, **self._fn_kwargs)
        except BaseException as exc:
            # Recorded before the slot is freed, so a spawner waiting for that slot
            # already finds the group cancelled.
            if not isinstance(exc, Cancelled):
                self._group._task_failed(exc)
            raise
        finally:
            del self._fn, self._fn_args, self._fn_kwargs, self._context
            self._group._task_ended()

    def _report(self, exc: BaseException) -> None:
        """A task's failure is the group's to raise, not excepthook's."""


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
        # Guards _tasks, _failures, _running and _state.
        self._mutex = _thread.allocate_lock()
        self._tasks: list[Task[Any]] = []
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
                self._wait_all()
            except BaseException as waiting_error:
                # Ctrl-C while waiting: cancel everything and wait once more, unless
                # this is already the wait after a Ctrl-C in the body. Then, or on a
                # further Ctrl-C, give up waiting: the tasks are daemon threads.
                self.cancel_scope.cancel()
                if interrupt is not None:
                    raise
                interrupt = waiting_error
                self._wait_all()
        except BaseException:
            # Abandoning the block: it must not leave its scope on this thread.
            with self._mutex:
                self._state = GroupState.CLOSED
            self.cancel_scope.__exit__(None, None, None)
            raise
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

    def _wait_all(self) -> None:
        """Wait, not cancellably, until every task (even ones spawned late) has ended."""
        while True:
            with self._mutex:
                pending = [t for t in self._tasks if not t.done()]
            if not pending:
                return
            for task in pending:
                task._thread._wait_stopped(None, cancellable=False)

    # -- tasks ----------------------------------------------------------------------------
    def spawn(
        self, fn: Callable[..., R], /, *args: Any, name: str | None = None, **kwargs: Any
    ) -> Task[R]:
        """Start ``fn(*args, **kwargs)`` as a task of this group; return its ``Task``.

        The task runs in a copy of the caller's ``contextvars`` context, inside the
        group's cancel scopes. With a ``limit``, waits for a free slot first (a
        cancellation point). RuntimeError if the group is not open.
        """
        self._check_open()
        if self._slots is not None:
            self._slots.acquire()
        try:
            if self._slots is not None:
                # The slot may have come from a task that just failed: do not start
                # another task in a group that is being cancelled.
                checkpoint()
            with self._mutex:
                self._check_open()
                task_name = name if name is not None else f"{self.name}.{next(self._task_counter)}"
                thread = _TaskThread(self, fn, args, kwargs, contextvars.copy_context(), task_name)
                task: Task[R] = Task(thread, task_name)
                self._tasks.append(task)
                self._running += 1
            try:
                thread.start()
            except BaseException:
                with self._mutex:
                    self._tasks.remove(task)
                    self._running -= 1
                raise
        except BaseException:
            if self._slots is not None:
                self._slots.release()
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
                task._thread._wait_stopped(None, cancellable=False)
                error = task._thread._exception
                if error is not None and not isinstance(error, Cancelled):
                    raise error.with_traceback(task._thread._traceback) from None
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

    def _task_ended(self) -> None:
        with self._mutex:
            self._running -= 1
        if self._slots is not None:
            self._slots.release()


def _unique(errors: Iterable[BaseException]) -> list[BaseException]:
    """Drop repeats of the same exception object (map re-raises a task's failure)."""
    seen: set[int] = set()
    out = []
    for error in errors:
        if id(error) not in seen:
            seen.add(id(error))
            out.append(error)
    return out
