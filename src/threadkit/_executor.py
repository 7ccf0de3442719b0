"""A ``ThreadPoolExecutor`` on the worker cache, with futures threadkit can wait on.

The idea
--------
``concurrent.futures``' thread pool, drop-in (same signature, same futures, same
errors), but run on the worker cache that task groups use: one pool of threads in
the process. An executor does not own threads; it owns up to ``max_workers``
*runners*, jobs of the cache that take work items from the executor's own FIFO one
after another, so a burst of ``submit`` calls costs an append each and the
runners drain them without a thread switch per item. A runner that finds the
FIFO empty ends and gives its thread back to the cache; with an ``initializer``
(which sets up state of its thread) it stays on its thread instead, parked in the
executor, for up to the cache's idle timeout, and that thread is not reused by
anything else afterwards.

Futures are ``concurrent.futures.Future``: a subclass whose lock is a C ``RLock``
(taking it is never a cancellation point, so the stdlib's ``wait`` and
``as_completed``, which take several at once, cannot be interrupted half-way) and
whose ``result()``/``exception()`` wait in the core: a cancellation point. This
module's ``wait`` and ``as_completed`` are the stdlib's protocol (a waiter in each
future's ``_waiters``) with a threadkit ``Event``, so they work on any mix of
futures and are cancellation points too.

Beyond the stdlib, each opt-in: ``max_pending`` bounds the FIFO (``submit`` waits,
cancellably, for room); ``cancel_running`` lets ``Future.cancel()`` and
``shutdown(cancel_futures=True)`` cancel a running task at its next cancellation
point; ``inherit_context`` runs each task in the submitter's ``contextvars`` context
and inside its cancel scopes; ``report_uncollected`` prints the failures nobody
collected when the executor shuts down. And always: a Ctrl-C inside ``with
ThreadPoolExecutor()`` (or in the wait at its end) drops the queued work, cancels
the running tasks, and leaves with one press.

Interpreter exit waits for every executor's work, as the stdlib's does (its
threads are not daemons): the cache's workers are, so an exit hook waits instead.

Rejected: the stdlib's executor with a threadkit queue inside (its threads are its
own, its ``cancel()`` cannot reach a running call); a thread per executor worker
(what the cache exists to avoid).
"""

from __future__ import annotations

import _thread
import contextvars
import itertools
import os
import sys
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import _base
from concurrent.futures import thread as _stdlib_thread
from time import monotonic
from types import TracebackType
from typing import Any, TypeVar

from . import _threads
from ._core import (
    SIGNALLED,
    Cancelled,
    CancelScope,
    ThreadRecord,
    WaitQueue,
    armed,
    cancel_task,
    checkpoint,
    current_record,
    enter_task,
    interruptible,
    scopes_of,
    wake,
)
from ._sync import Event
from ._threads import INTERRUPT_GRACE, say_still_running
from ._workers import IDLE_TIMEOUT, Worker, start, submit, withdraw

__all__ = ["ThreadPoolExecutor", "TkFuture", "as_completed", "wait"]

T = TypeVar("T")

PENDING = _base.PENDING
RUNNING = _base.RUNNING
CANCELLED = _base.CANCELLED
CANCELLED_AND_NOTIFIED = _base.CANCELLED_AND_NOTIFIED
FINISHED = _base.FINISHED
_DONE_STATES = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
_LOGGER = _base.LOGGER
BrokenThreadPool = _stdlib_thread.BrokenThreadPool

_cpu_count: Callable[[], int | None] = getattr(os, "process_cpu_count", os.cpu_count)


class TkFuture(_base.Future):  # type: ignore[type-arg]
    """A ``concurrent.futures.Future`` whose waits are threadkit cancellation points.

    Made by ``ThreadPoolExecutor.submit``; it is a real ``concurrent.futures.Future``
    (``isinstance`` holds, the stdlib's ``wait`` and ``as_completed`` accept it).
    """

    def __init__(self) -> None:
        # Not the stdlib's __init__: its lock is a C RLock, taken without a
        # cancellation point, and the wait queue is made by the first waiter.
        self._condition: Any = _thread.RLock()
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Callable[[Any], object]] = []
        #: Threads parked in ``result``/``exception``; guarded by ``_condition``.
        self._tk_queue: WaitQueue | None = None
        #: The work item while it is the executor's, for ``cancel``.
        self._tk_item: _WorkItem | None = None
        #: Someone looked at the outcome (``result``, ``exception``, a callback).
        self._tk_collected = False

    # -- waiting ------------------------------------------------------------------------
    def _tk_wait(self, timeout: float | None) -> None:
        if armed[0]:
            checkpoint()
        if self._state in _DONE_STATES:
            return
        deadline = None if timeout is None else monotonic() + timeout
        lock = self._condition
        with lock:
            queue = self._tk_queue
            if queue is None:
                queue = self._tk_queue = WaitQueue(lock)
        queue.wait_until(current_record(), self, "result", self._tk_done, deadline)

    def _tk_done(self) -> bool:
        return self._state in _DONE_STATES

    def _tk_wake_locked(self) -> list[Any]:
        queue = self._tk_queue
        return queue.take_all_locked() if queue is not None and queue.waiters else []

    def result(self, timeout: float | None = None) -> Any:
        """Return the call's value, waiting up to ``timeout`` seconds for it.

        Raises the call's exception if it raised, ``CancelledError`` if the future
        was cancelled, ``TimeoutError`` if ``timeout`` expired first. A cancellation
        point: ``Cancelled`` on entry or while waiting (the call is unaffected).
        """
        self._tk_collected = True
        self._tk_wait(timeout)
        state = self._state
        if state is FINISHED:
            if self._exception is not None:
                try:
                    raise self._exception
                finally:
                    self = None  # type: ignore[assignment]  # no cycle through the frame
            return self._result
        if state is CANCELLED or state is CANCELLED_AND_NOTIFIED:
            raise _base.CancelledError()
        raise TimeoutError()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Return the call's exception (None if it returned), waiting up to
        ``timeout`` seconds. ``CancelledError``/``TimeoutError`` and cancellation as
        ``result``."""
        self._tk_collected = True
        self._tk_wait(timeout)
        state = self._state
        if state is FINISHED:
            return self._exception
        if state is CANCELLED or state is CANCELLED_AND_NOTIFIED:
            raise _base.CancelledError()
        raise TimeoutError()

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        """As the stdlib's; a callback counts as collecting the outcome."""
        self._tk_collected = True
        super().add_done_callback(fn)

    # -- settling -----------------------------------------------------------------------
    def cancel(self) -> bool:
        """Cancel the future; return True if it is cancelled.

        A pending future is cancelled and leaves the executor's queue at once. A
        running one is cancelled only if its executor has ``cancel_running``: the
        future is cancelled now and its task gets ``Cancelled`` at its next
        cancellation point (its outcome is then dropped). Never blocks.
        """
        item = self._tk_item
        if item is not None:
            executor = item.executor
            if executor._withdraw(item):
                self._tk_item = None
                _cancel_pending(self)
                self.set_running_or_notify_cancel()
                return True
            # Not running yet is tried first: states only move forward (PENDING,
            # RUNNING, FINISHED), so a call that starts in between is then caught
            # running, and one that ends in between is not cancelled.
            if _cancel_pending(self):
                return True
            return executor._cancel_running and item.cancel_running()
        return _cancel_pending(self)

    def set_running_or_notify_cancel(self) -> bool:
        """As the stdlib's (for executors): PENDING becomes RUNNING (True), a
        cancelled future is made known to its waiters (False)."""
        # acquire/release rather than ``with``: this and set_result run once per
        # call, and are protected from Ctrl-C as all of threadkit's code is.
        lock = self._condition
        lock.acquire()
        try:
            state = self._state
            if state is PENDING:
                self._state = RUNNING
                return True
            if state is CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for waiter in self._waiters:
                    waiter.add_cancelled(self)
                return False
        finally:
            lock.release()
        _LOGGER.critical("Future %s in unexpected state: %s", id(self), self._state)
        raise RuntimeError("Future in unexpected state")

    def set_result(self, result: Any) -> None:
        """Finish the future with ``result``; InvalidStateError if it is done."""
        lock = self._condition
        lock.acquire()
        try:
            if self._state in _DONE_STATES:
                raise _base.InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
            nodes = self._tk_wake_locked() if self._tk_queue is not None else None
        finally:
            lock.release()
        if nodes:
            wake(nodes)
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def set_exception(self, exception: BaseException | None) -> None:
        """Finish the future with ``exception``; InvalidStateError if it is done."""
        with self._condition:
            if self._state in _DONE_STATES:
                raise _base.InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_exception(self)
            nodes = self._tk_wake_locked()
        wake(nodes)
        if self._done_callbacks:
            self._invoke_callbacks()  # type: ignore[attr-defined]

    def _tk_cancel_now(self) -> bool:
        """Cancel a running future and tell its waiters at once (``cancel_running``)."""
        with self._condition:
            if self._state is not RUNNING:
                return self._state in (CANCELLED, CANCELLED_AND_NOTIFIED)
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            nodes = self._tk_wake_locked()
        wake(nodes)
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True


def _cancel_pending(future: TkFuture) -> bool:
    """``Future.cancel`` as the stdlib's does it (a future that is not running), for
    a lock with no ``notify_all``: False if it runs or has finished."""
    with future._condition:
        if future._state in (RUNNING, FINISHED):
            return False
        if future._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
            return True
        future._state = CANCELLED
        nodes = future._tk_wake_locked()
    wake(nodes)
    future._invoke_callbacks()  # type: ignore[attr-defined]
    return True


class _WorkItem:
    """A call submitted to an executor; the ``TaskScopes`` of ``_core`` for it."""

    __slots__ = (
        "executor",
        "future",
        "fn",
        "args",
        "kwargs",
        "context",
        "outer",
        "_scope",
        "_runner",
        "_depth",
    )

    def __init__(
        self,
        executor: ThreadPoolExecutor,
        future: TkFuture,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.executor = executor
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.context: contextvars.Context | None = None
        self.outer: list[CancelScope] | None = None
        self._scope: CancelScope | None = None
        self._runner: ThreadRecord | None = None
        self._depth = 0

    def cancel_running(self) -> bool:
        """Cancel the running call; False if it is not running (any more)."""
        if self.future._tk_cancel_now():
            cancel_task(self)
            return True
        return False


class _Runner:
    """A job of the worker cache that runs an executor's work items one by one."""

    __slots__ = ("executor", "name", "first", "_scope", "_runner", "_depth", "_worker")

    def __init__(self, executor: ThreadPoolExecutor, number: int, first: _WorkItem) -> None:
        self.executor = executor
        #: The item whose ``submit`` started this runner: it is this runner's from
        #: the start (in the executor's ``_running``), as the stdlib's new thread
        #: takes the item that made it, so ``shutdown(cancel_futures=True)`` right
        #: after a burst still lets the first calls run.
        self.first: _WorkItem | None = first
        self.name = f"{executor._thread_name_prefix}_{number}"
        self._scope: CancelScope | None = None
        self._runner: ThreadRecord | None = None
        self._depth = 0
        self._worker: Worker | None = None

    def cancel(self) -> None:
        cancel_task(self)

    def lost(self, error: BaseException) -> None:
        """In a forked child: this runner's thread is gone."""
        self.executor._runner_lost(self)

    @interruptible  # it runs the program's calls
    def run_in(self, worker: Worker, rec: ThreadRecord) -> None:
        executor = self.executor
        self._worker = worker
        try:
            enter_task(rec, [], self)
            if executor._initializer is not None and not self._initialize():
                return
            executor._run_items(self, worker, rec)
        finally:
            self._worker = None
            worker._job = None

    def _initialize(self) -> bool:
        executor = self.executor
        try:
            executor._initializer(*executor._initargs)  # type: ignore[misc]
        except BaseException:
            _LOGGER.critical("Exception in initializer:", exc_info=True)
            executor._initializer_failed(self)
            return False
        return True


#: 3.12.0 to 3.12.2 refuse to start a thread once the interpreter's exit has begun
#: (CPython gh-113964, fixed in 3.12.3), and a runner queued in the cache may need a
#: new thread after the main thread has ended: there each runner gets its thread when
#: it is submitted (``_workers.start``), as the stdlib's executor does. Elsewhere the
#: cache's chain of searchers hands threads on, which is cheaper for a large pool
#: (1000 blocking calls: about 10 ms less in all).
_START_EAGERLY = (3, 12) <= sys.version_info[:3] < (3, 12, 3)

_live: weakref.WeakSet[ThreadPoolExecutor] = weakref.WeakSet()
_live_lock = _thread.allocate_lock()
#: Set once the interpreter's exit began: no new work is accepted.
_exiting = False


class ThreadPoolExecutor(_stdlib_thread.ThreadPoolExecutor):
    """An executor that runs calls on threadkit's worker threads, as
    ``concurrent.futures.ThreadPoolExecutor`` (and an instance of it).

    ``max_workers`` calls run at once at most (default ``min(32, cpus + 4)``).
    ``submit`` returns a ``concurrent.futures.Future``. Options beyond the stdlib,
    keyword-only and off by default:

    * ``max_pending=n``: at most ``n`` calls wait for a worker; ``submit`` waits for
      room (a cancellation point) when they do.
    * ``cancel_running=True``: ``Future.cancel()`` and ``shutdown(cancel_futures=
      True)`` also cancel calls that are running: their futures are cancelled at
      once, the calls get ``Cancelled`` at their next cancellation point.
    * ``inherit_context=True``: each call runs in a copy of the submitter's
      ``contextvars`` context and inside its cancel scopes, as a task group's do.
    * ``report_uncollected=True``: a call that failed and whose future nobody asked
      (``result``, ``exception``, a done callback) is reported on stderr when the
      executor shuts down.

    A KeyboardInterrupt in the ``with`` block, or in the wait at its end, cancels
    the queued calls and the running ones and leaves at once.
    """

    _tk_counter = itertools.count().__next__
    BROKEN = BrokenThreadPool

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_pending: int | None = None,
        cancel_running: bool = False,
        inherit_context: bool = False,
        report_uncollected: bool = False,
    ) -> None:
        if max_workers is None:
            max_workers = min(32, (_cpu_count() or 1) + 4)
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_pending is not None:
            if isinstance(max_pending, bool) or not isinstance(max_pending, int):
                raise TypeError("max_pending must be an integer or None")
            if max_pending < 1:
                raise ValueError("max_pending must be None or > 0")
        self._max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix or f"ThreadPoolExecutor-{self._tk_counter()}"
        self._initializer = initializer  # type: ignore[assignment]
        self._initargs = initargs
        self._max_pending = max_pending
        self._cancel_running = cancel_running
        self._inherit_context = inherit_context
        self._report_uncollected = report_uncollected
        #: Guards everything below, and the wait queues' nodes.
        self._mutex = _thread.allocate_lock()
        self._pending: deque[_WorkItem] = deque()
        #: Items a runner has taken and not finished.
        self._running: set[_WorkItem] = set()
        #: Runners alive (at most ``max_workers``).
        self._runners: set[_Runner] = set()
        self._runner_numbers = itertools.count()
        #: Runners with an initializer, parked until work comes.
        self._idle = WaitQueue(self._mutex)
        #: Submitters waiting for room (``max_pending``).
        self._room = WaitQueue(self._mutex)
        #: Threads waiting in ``shutdown`` for the runners to end.
        self._ended = WaitQueue(self._mutex)
        self._broken: str | bool = False  # type: ignore[assignment]
        self._shutdown = False
        #: Abandoned after a Ctrl-C: the interpreter's exit does not wait for it.
        self._abandoned = False
        self._failed: list[TkFuture] = []
        with _live_lock:
            _live.add(self)

    def __repr__(self) -> str:
        return (
            f"<threadkit.futures.ThreadPoolExecutor {self._thread_name_prefix} "
            f"max_workers={self._max_workers} running={len(self._running)} "
            f"pending={len(self._pending)}>"
        )

    # -- submitting ---------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> _base.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; return its future.

        RuntimeError after ``shutdown`` or once the interpreter exits;
        ``BrokenThreadPool`` if an initializer failed. With ``max_pending``, waits
        for room first: a cancellation point.
        """
        future = TkFuture()
        item = _WorkItem(self, future, fn, args, kwargs)
        future._tk_item = item
        if self._inherit_context:
            item.context = contextvars.copy_context()
            item.outer = scopes_of(current_record())
        start: _Runner | None = None
        idle: list[Any] = []
        mutex = self._mutex
        with mutex:
            self._check_open_locked()
            max_pending = self._max_pending
            # Re-checked after each wait: another submitter may take the room first.
            while max_pending is not None and len(self._pending) >= max_pending:
                mutex.release()
                try:
                    self._wait_for_room(max_pending)
                finally:
                    mutex.acquire()
                self._check_open_locked()
            if self._idle.waiters:
                self._pending.append(item)
                idle = self._idle.take_locked(1)
            elif len(self._runners) < self._max_workers:
                start = _Runner(self, next(self._runner_numbers), item)
                self._runners.add(start)
                self._running.add(item)
            else:
                self._pending.append(item)
        if idle:
            wake(idle)
        elif start is not None:
            self._start(start)
        return future

    def _check_open_locked(self) -> None:
        if self._broken:
            raise self.BROKEN(self._broken)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _wait_for_room(self, max_pending: int) -> None:
        """Park until the FIFO has room (``max_pending``); a cancellation point.

        Room can be used up again, so whoever frees a slot wakes every waiting
        submitter (``_room.take_all_locked``) and each checks again: a wake-up cannot
        be lost to a submitter that took another way (a new runner) or left with an
        exception.
        """
        self._room.wait_until(
            current_record(),
            self,
            "submit",
            lambda: len(self._pending) < max_pending or self._shutdown or bool(self._broken),
        )

    def _start(self, runner: _Runner) -> None:
        try:
            if _START_EAGERLY:
                start(runner)
            else:
                submit(runner)
        except BaseException:
            # No thread for it. Unless a worker took it meanwhile (from the cache's
            # queue, which keeps a job whose thread did not start), its call waits for
            # a runner that is busy, if any (the caller sees the error; the future
            # stays valid).
            if not _START_EAGERLY and not withdraw(runner):
                raise
            with self._mutex:
                self._runners.discard(runner)
                self._running.discard(runner.first)
                self._pending.appendleft(runner.first)  # type: ignore[arg-type]
                runner.first = None
                nodes = self._ended_locked()
            wake(nodes)
            raise

    def _withdraw(self, item: _WorkItem) -> bool:
        """Take a pending ``item`` out of the FIFO; False if it is not there."""
        with self._mutex:
            try:
                self._pending.remove(item)
            except ValueError:
                return False
            nodes = self._room.take_all_locked() if self._room.waiters else []
        wake(nodes)
        return True

    # -- running (in a runner) ----------------------------------------------------------
    def _run_items(self, runner: _Runner, worker: Worker, rec: ThreadRecord) -> None:
        mutex = self._mutex
        pending = self._pending
        running = self._running
        per_item = self._cancel_running or self._inherit_context
        dedicated = self._initializer is not None
        last: _WorkItem | None = None
        first = runner.first
        runner.first = None
        if first is not None:
            try:
                self._run_one(first, per_item, rec)
            except BaseException:
                _LOGGER.critical("Exception in worker", exc_info=True)
            last = first
        while True:
            nodes: list[Any] = []
            idle = None
            with mutex:
                if last is not None:
                    running.discard(last)  # in the same hold as taking the next
                    last = None
                if pending:
                    item = pending.popleft()
                    running.add(item)
                    if self._room.waiters:
                        nodes = self._room.take_all_locked()
                elif dedicated and not self._shutdown and not self._broken and not _exiting:
                    idle = self._idle.add_locked(rec, self, "idle")
                else:
                    self._runners.discard(runner)
                    nodes = self._ended_locked()
                    item = None
            if idle is not None:
                if self._idle.park(idle, monotonic() + IDLE_TIMEOUT, None, False) is SIGNALLED:
                    continue
                with mutex:
                    if pending:
                        continue  # work came as the wait ended: take it
                    self._runners.discard(runner)
                    nodes = self._ended_locked()
                item = None
            if nodes:
                wake(nodes)
            if item is None:
                if dedicated:
                    worker._retiring = True  # its thread holds the initializer's state
                return
            try:
                self._run_one(item, per_item, rec)
            except BaseException:
                # Only a done callback that raised a BaseException gets here (the
                # call's own errors go to its future). The runner carries on, so
                # nothing queued is stranded; the stdlib's worker logs it the same way.
                _LOGGER.critical("Exception in worker", exc_info=True)
            last = item

    def _run_one(self, item: _WorkItem, per_item: bool, rec: ThreadRecord) -> None:
        future = item.future
        if not future.set_running_or_notify_cancel():
            return
        fn, args, kwargs, context = item.fn, item.args, item.kwargs, item.context
        item.fn = item.args = item.kwargs = None  # type: ignore[assignment]
        if per_item:
            # The item's own scopes replace the last item's (or the runner's).
            enter_task(rec, item.outer or [], item)
        try:
            if armed[0]:
                checkpoint()
            if context is None:
                result = fn(*args, **kwargs)
            else:
                result = context.run(fn, *args, **kwargs)
        except BaseException as exc:
            if isinstance(exc, Cancelled):
                future._tk_cancel_now()
            else:
                try:
                    future.set_exception(exc)
                except _base.InvalidStateError:
                    pass  # cancelled while it ran (cancel_running)
                else:
                    if self._report_uncollected:
                        with self._mutex:
                            self._failed.append(future)
            del exc
        else:
            try:
                future.set_result(result)
            except _base.InvalidStateError:
                pass
        finally:
            future._tk_item = None

    def _initializer_failed(self, runner: _Runner) -> None:  # type: ignore[override]
        with self._mutex:
            self._broken = "A thread initializer failed, the thread pool is not usable anymore"
            dropped = list(self._pending)
            self._pending.clear()
            if runner.first is not None:
                dropped.append(runner.first)
                self._running.discard(runner.first)
                runner.first = None
            self._runners.discard(runner)
            nodes = self._ended_locked() + self._idle.take_all_locked()
            nodes += self._room.take_all_locked()
        wake(nodes)
        for item in dropped:
            future = item.future
            future._tk_item = None
            # A future cancelled meanwhile is only made known as cancelled.
            if future.set_running_or_notify_cancel():
                future.set_exception(self.BROKEN(self._broken))

    def _runner_lost(self, runner: _Runner) -> None:
        """In a forked child: ``runner``'s thread is gone, and with it the calls it ran.

        Only the forking thread survives a fork, so the mutex, if held at that
        instant, was held by a thread that is gone: it is made new first (asked by
        trying, as ``Task.lost`` does)."""
        if self._mutex.acquire(False):
            self._mutex.release()
        else:
            self._mutex._at_fork_reinit()  # type: ignore[attr-defined]
        with self._mutex:
            self._runners.discard(runner)
            lost = list(self._running)
            self._running.clear()
        for item in lost:
            try:
                item.future.set_exception(RuntimeError("the call's thread did not survive fork()"))
            except _base.InvalidStateError:
                pass

    def _ended_locked(self) -> list[Any]:
        """The threads to wake (after the mutex) once the last runner has ended."""
        if not self._runners and self._ended.waiters:
            return self._ended.take_all_locked()
        return []

    # -- shutting down ------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls are accepted; with ``wait``, return once every call queued
        or running has ended.

        With ``cancel_futures``, the calls not started yet are cancelled (and, with
        ``cancel_running``, the running ones too). The wait is not a cancellation
        point (the calls cannot outlive it); a KeyboardInterrupt during it cancels
        every call and leaves at once.
        """
        with self._mutex:
            dropped, nodes = self._close_locked(cancel_futures)
            running = list(self._running) if cancel_futures and self._cancel_running else []
        wake(nodes)
        _cancel_queued(dropped)
        for item in running:
            item.cancel_running()
        if not wait:
            return
        try:
            self._wait_ended(None)
        except KeyboardInterrupt:
            self._abandon("in ThreadPoolExecutor.shutdown")
            raise
        self._report_failures()

    def _close_locked(self, drop_queued: bool) -> tuple[list[_WorkItem], list[Any]]:
        """Accept no more calls (the caller holds the mutex). Return the queued calls
        taken out, if ``drop_queued``, and the parked threads to wake after."""
        self._shutdown = True
        dropped: list[_WorkItem] = []
        if drop_queued:
            dropped = list(self._pending)
            self._pending.clear()
        return dropped, self._idle.take_all_locked() + self._room.take_all_locked()

    def _wait_ended(self, deadline: float | None) -> bool:
        return self._ended.wait_until(
            current_record(), self, "shutdown", lambda: not self._runners, deadline, False
        )

    def _abandon(self, when: str) -> None:
        """After a Ctrl-C: cancel everything, wait a moment, then stop waiting."""
        with self._mutex:
            self._abandoned = True
            dropped, nodes = self._close_locked(True)
            running = list(self._running)
            runners = list(self._runners)
        wake(nodes)
        _cancel_queued(dropped)
        for item in running:
            # Taken by a runner but not started yet: cancelled like a queued one
            # (the runner then skips it); else the running call is cancelled.
            if not _cancel_pending(item.future):
                item.cancel_running()
        for runner in runners:
            cancel_task(runner)
        try:
            if self._wait_ended(monotonic() + INTERRUPT_GRACE):
                return
            threads = [r._worker for r in runners if r._worker is not None]
            say_still_running(when, threads, "call", "not waiting for them")
        except KeyboardInterrupt:
            pass

    def _report_failures(self) -> None:
        if not self._report_uncollected:
            return
        with self._mutex:
            failed = [f for f in self._failed if not f._tk_collected]
            self._failed.clear()
        stderr = sys.stderr
        if stderr is None:
            return
        for future in failed:
            error = future._exception
            assert error is not None
            try:
                print(
                    f"threadkit: a call in {self._thread_name_prefix} failed and nobody "
                    "collected its future:",
                    file=stderr,
                )
                traceback.print_exception(type(error), error, error.__traceback__, file=stderr)
            except (OSError, ValueError):
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, KeyboardInterrupt):
            self._abandon("in a ThreadPoolExecutor block")
            return
        self.shutdown(wait=True)

    # -- map ----------------------------------------------------------------------------
    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` with the calls run in the pool; results in order.

        As the stdlib's: every call is submitted at once, unless ``buffersize`` is
        given (as 3.14 has it, on every version): then at most that many calls are
        submitted ahead of the result being read. TimeoutError if a result is not
        ready ``timeout`` seconds after the call to ``map``; the calls still queued
        when the iterator is closed are cancelled. Waiting for a result is a
        cancellation point.
        """
        if buffersize is not None:
            if not isinstance(buffersize, int):  # bool included, as the stdlib's
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        deadline = None if timeout is None else monotonic() + timeout
        args_iter = zip(*iterables)  # noqa: B905 - map stops at the shortest, as the stdlib's
        if buffersize is None:
            futures: deque[_base.Future[T]] = deque(self.submit(fn, *args) for args in args_iter)
        else:
            futures = deque(
                self.submit(fn, *args) for args in itertools.islice(args_iter, buffersize)
            )
        return _map_results(
            futures, deadline, fn, args_iter if buffersize is not None else None, weakref.ref(self)
        )


def _cancel_queued(items: list[_WorkItem]) -> None:
    """Cancel calls taken out of the queue, and make it known to their waiters."""
    for item in items:
        future = item.future
        future._tk_item = None
        if _cancel_pending(future):
            future.set_running_or_notify_cancel()


def _map_results(
    futures: deque[_base.Future[T]],
    deadline: float | None,
    fn: Callable[..., T],
    more: Iterator[tuple[Any, ...]] | None,
    executor_ref: weakref.ref[ThreadPoolExecutor],
) -> Iterator[T]:
    # No local names a future or a result across a yield: the caller may drop a
    # result and expect it freed.
    try:
        while futures:
            if more is not None:
                executor = executor_ref()
                args = next(more, None) if executor is not None else None
                if args is not None and executor is not None:
                    futures.append(executor.submit(fn, *args))
                del executor, args
            if deadline is None:
                yield _result_or_cancel(futures.popleft(), None)
            else:
                yield _result_or_cancel(futures.popleft(), deadline - monotonic())
    finally:
        for future in futures:
            future.cancel()


def _result_or_cancel(future: _base.Future[T], timeout: float | None) -> T:
    if type(future) is TkFuture and future._state is FINISHED:
        # Already done: what result() would return, without its wait and the cancel.
        if armed[0]:
            checkpoint()
        future._tk_collected = True
        error = future._exception
        if error is not None:
            try:
                raise error
            finally:
                del future, error
        value: T = future._result
        del future
        return value
    try:
        return future.result(timeout)
    finally:
        future.cancel()
        del future


# -- wait and as_completed --------------------------------------------------------------
def _install_waiter(fs: set[Any], return_when: str) -> Any:
    """The stdlib's waiter for ``fs``, with a threadkit Event; caller holds every lock."""
    waiter = _base._create_and_install_waiters(fs, return_when)  # type: ignore[attr-defined]
    waiter.event = Event()
    return waiter


def _remove_waiter(fs: set[Any], waiter: Any) -> None:
    for f in fs:
        with f._condition:
            f._waiters.remove(waiter)


def wait(
    fs: Iterable[_base.Future[Any]],
    timeout: float | None = None,
    return_when: str = _base.ALL_COMPLETED,
) -> _base.DoneAndNotDoneFutures[Any]:
    """``concurrent.futures.wait``, as a cancellation point.

    Waits until ``return_when`` (``FIRST_COMPLETED``, ``FIRST_EXCEPTION``,
    ``ALL_COMPLETED``) holds or ``timeout`` seconds pass; returns the named pair
    ``(done, not_done)``. Works on any futures, threadkit's or the stdlib's.
    ``Cancelled`` on entry or while waiting; the futures are unaffected.
    """
    if armed[0]:
        checkpoint()
    fs = set(fs)
    with _base._AcquireFutures(fs):
        done = {f for f in fs if f._state in (CANCELLED_AND_NOTIFIED, FINISHED)}
        not_done = fs - done
        if done and return_when == _base.FIRST_COMPLETED:
            return _base.DoneAndNotDoneFutures(done, not_done)
        if (
            done
            and return_when == _base.FIRST_EXCEPTION
            and any(not f.cancelled() and f.exception() is not None for f in done)
        ):
            return _base.DoneAndNotDoneFutures(done, not_done)
        if len(done) == len(fs):
            return _base.DoneAndNotDoneFutures(done, not_done)
        waiter = _install_waiter(fs, return_when)
    try:
        waiter.event.wait(timeout)
    finally:
        _remove_waiter(fs, waiter)
    done.update(waiter.finished_futures)
    return _base.DoneAndNotDoneFutures(done, fs - done)


def as_completed(
    fs: Iterable[_base.Future[T]], timeout: float | None = None
) -> Iterator[_base.Future[T]]:
    """``concurrent.futures.as_completed``, whose waits are cancellation points.

    Yields each future as it finishes or is cancelled (those already done first);
    TimeoutError if they have not all done so ``timeout`` seconds after the call.
    """
    deadline = None if timeout is None else monotonic() + timeout
    futures = set(fs)
    total = len(futures)
    with _base._AcquireFutures(futures):
        finished = [f for f in futures if f._state in (CANCELLED_AND_NOTIFIED, FINISHED)]
        pending = futures - set(finished)
        waiter = _install_waiter(futures, _base._AS_COMPLETED)  # type: ignore[attr-defined]
    try:
        while True:
            for f in finished:
                pending.discard(f)
                yield f
            if not pending:
                return
            if deadline is None:
                waiter.event.wait()
            else:
                remaining = deadline - monotonic()
                if remaining < 0:
                    raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
                waiter.event.wait(remaining)
            with waiter.lock:
                finished = waiter.finished_futures
                waiter.finished_futures = []
                waiter.event.clear()
            finished.reverse()
    finally:
        _remove_waiter(futures, waiter)


# -- interpreter exit -------------------------------------------------------------------
def _wait_at_exit() -> None:
    """Before the interpreter's exit: no new work, and wait for what is queued or
    running in every executor (the stdlib's threads are non-daemon; the cache's are
    daemons). An interrupt owed, or a Ctrl-C during the wait, stops waiting."""
    global _exiting
    _exiting = True
    with _live_lock:
        executors = list(_live)
    for executor in executors:
        with executor._mutex:
            nodes = executor._idle.take_all_locked()
        wake(nodes)
    if _threads._ended_by_ctrl_c():
        return  # one Ctrl-C ends the program: the calls were cancelled with it
    for executor in executors:
        if executor._abandoned:
            continue
        try:
            executor._wait_ended(None)
        except KeyboardInterrupt:
            executor._abandon("at exit")
            raise
        executor._report_failures()  # after shutdown(wait=False), or none at all


_threads._register_atexit(_wait_at_exit)
