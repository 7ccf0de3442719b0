"""Queues on the core: ``Queue``, ``LifoQueue``, ``PriorityQueue`` and ``SimpleQueue``.

The idea
--------
The stdlib's ``queue`` with the same shape, so that code reaching into it keeps
working: ``mutex`` is a ``Lock``, and ``not_empty``, ``not_full`` and
``all_tasks_done`` are ``Condition``\\ s over it (code that clears a queue under
``with q.mutex:`` and notifies ``q.not_full`` is common), ``queue`` is the live
container and the ``_init``/``_qsize``/``_put``/``_get`` hooks are called under
the mutex, so subclasses that override them work as with ``queue``. What differs
is underneath: the waits are threadkit's ``Condition.wait``, so every blocking
``get``/``put``/``join`` is a cancellation point woken at once by ``cancel()`` or a
deadline, and, being threadkit's own code, each call is atomic under Ctrl-C (see
``_core._interrupts``): an interrupt comes before the call, out of its wait, or
after it, never between taking an item and counting it.

Shutdown (``shutdown(immediate=False)``, ``ShutDown``) follows the semantics
``queue`` has from 3.13 on, on every version.

Speed: the fast paths take the mutex's C lock directly and, for the stdlib's own
containers (a ``deque`` when no hook is overridden), skip the hook calls; only a
thread that must wait goes through ``Condition.wait``. Calls that never block
(``task_done``, ``qsize``, ``*_nowait``, ``shutdown``) are not cancellation points:
a cancelled consumer can still say ``task_done()``.

``SimpleQueue`` is separate, as in the stdlib: no task counting, no size limit, and
a ``put`` that is safe to call from a finaliser or a signal handler while the same
thread is inside ``get`` (``ThreadPoolExecutor``-style code relies on that). See its
docstring for how.
"""

from __future__ import annotations

import _thread
import sys
from _queue import Empty
from collections import deque
from heapq import heappop, heappush
from time import monotonic
from typing import Any, Generic, TypeVar

from ._core import TIMED_OUT as _TIMED_OUT
from ._core import WaitQueue, armed, checkpoint, current_record, deadline_after
from ._sync import Condition, Lock

__all__ = [
    "Empty",
    "Full",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "ShutDown",
    "SimpleQueue",
]

T = TypeVar("T")

_get_ident = _thread.get_ident
_TIMEOUT_MESSAGE = "'timeout' must be a non-negative number"


class Full(Exception):
    """Raised by ``Queue.put(block=False)`` / ``put_nowait()`` on a full queue, and by a
    timed ``put`` whose timeout expired."""


class ShutDown(Exception):
    """Raised by ``put`` on a shut-down queue, and by ``get`` on one that is also empty."""


#: Without the GIL, a queue's mutex is often held for a moment by a thread running
#: at the same time on another CPU: waiting for it a few microseconds in C beats
#: parking (a sleep and a cross-CPU wake-up). With the GIL the holder cannot run
#: while this thread does, so there is nothing to gain. (Asked of ``sys``, not of
#: ``sysconfig``, which imports ``threading`` from 3.13 on.)
_SPIN = 0.0 if getattr(sys, "_is_gil_enabled", lambda: True)() else 50e-6


def _take(mutex: Lock, cancellable: bool) -> None:
    """Acquire the queue's mutex (a threadkit ``Lock``): its C lock first, then the
    wait, which is a cancellation point only if ``cancellable``."""
    lock = mutex._lock
    if not lock.acquire(False) and not (_SPIN and lock.acquire(True, _SPIN)):
        mutex._acquire_slow(True, -1, cancellable)
    mutex._owner = _get_ident()


def _give(mutex: Lock) -> None:
    mutex._owner = None
    mutex._lock.release()
    if mutex._waiters:
        mutex._queue.unpark(1)


def _notify(cond: Condition) -> None:
    """``cond.notify()`` for a caller known to hold the lock."""
    if cond._waiters:
        cond._queue.unpark(1)


class Queue(Generic[T]):
    """A FIFO queue for threads, as ``queue.Queue``.

    ``maxsize <= 0`` means unbounded; it is read on every ``put``, so it may be
    changed later. Blocking calls are cancellation points (see ``get``).
    """

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._init(maxsize)
        #: Guards the container, ``unfinished_tasks`` and ``is_shutdown``; the three
        #: conditions below share it, as in ``queue``.
        self.mutex = Lock()
        self.not_empty = Condition(self.mutex)
        self.not_full = Condition(self.mutex)
        self.all_tasks_done = Condition(self.mutex)
        self.unfinished_tasks = 0
        self.is_shutdown = False
        cls = type(self)
        #: The container is the plain deque of ``Queue`` and no hook is overridden:
        #: the fast paths may use it directly.
        self._plain = (
            cls._init is Queue._init
            and cls._qsize is Queue._qsize
            and cls._put is Queue._put
            and cls._get is Queue._get
        )

    # -- waiting on the conditions ------------------------------------------------------
    def _wait_for_room(self, block: bool, timeout: float | None) -> None:
        """With the mutex held: return once there is room, or raise Full/ShutDown."""
        maxsize = self.maxsize
        if maxsize <= 0:
            return
        if not block:
            if self._qsize() >= maxsize:
                raise Full
            return
        if timeout is None:
            while self._qsize() >= self.maxsize > 0:
                self.not_full.wait()
                if self.is_shutdown:
                    raise ShutDown
            return
        if timeout < 0:
            raise ValueError(_TIMEOUT_MESSAGE)
        deadline = monotonic() + timeout
        while self._qsize() >= self.maxsize > 0:
            remaining = deadline - monotonic()
            if remaining <= 0.0:
                raise Full
            self.not_full.wait(remaining)
            if self.is_shutdown:
                raise ShutDown

    def _wait_for_item(self, block: bool, timeout: float | None) -> None:
        """With the mutex held: return once an item is there, or raise Empty/ShutDown."""
        if not block:
            if not self._qsize():
                raise Empty
            return
        if timeout is None:
            while not self._qsize():
                self.not_empty.wait()
                if self.is_shutdown and not self._qsize():
                    raise ShutDown
            return
        if timeout < 0:
            raise ValueError(_TIMEOUT_MESSAGE)
        deadline = monotonic() + timeout
        while not self._qsize():
            remaining = deadline - monotonic()
            if remaining <= 0.0:
                raise Empty
            self.not_empty.wait(remaining)
            if self.is_shutdown and not self._qsize():
                raise ShutDown

    # -- the public calls ---------------------------------------------------------------
    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` into the queue.

        If the queue is full: with ``block`` false raises ``Full`` at once; otherwise
        waits for room, up to ``timeout`` seconds (``Full`` when it expires;
        ValueError if negative). Raises ``ShutDown`` if the queue is shut down, also
        while waiting.

        A blocking ``put`` is a cancellation point: ``Cancelled`` on entry, or while
        it waits for room (a scope's deadline raises ``Cancelled``; ``timeout`` keeps
        its meaning). Whatever interrupts it, the item is either in the queue and
        counted, or not put at all.
        """
        if block and armed[0]:
            checkpoint()
        mutex = self.mutex
        lock = mutex._lock
        # _take and _give, written out: this is the hot path.
        if not lock.acquire(False) and not (_SPIN and lock.acquire(True, _SPIN)):
            mutex._acquire_slow(True, -1, block)  # a cancellation point only if blocking
        mutex._owner = _get_ident()
        try:
            if self.is_shutdown:
                raise ShutDown
            if self._plain:
                maxsize = self.maxsize
                if maxsize > 0 and (timeout is not None or len(self.queue) >= maxsize):
                    self._wait_for_room(block, timeout)
                self.queue.append(item)
            else:
                self._wait_for_room(block, timeout)
                self._put(item)
            self.unfinished_tasks += 1
            not_empty = self.not_empty
            if not_empty._waiters:
                not_empty._queue.unpark(1)
        finally:
            mutex._owner = None
            lock.release()
            if mutex._waiters:
                mutex._queue.unpark(1)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item from the queue.

        If it is empty: with ``block`` false raises ``Empty`` at once; otherwise
        waits for an item, up to ``timeout`` seconds (``Empty`` when it expires;
        ValueError if negative). Raises ``ShutDown`` if the queue is shut down and
        empty, also while waiting.

        A blocking ``get`` is a cancellation point: ``Cancelled`` on entry, or while
        it waits (a scope's deadline raises ``Cancelled``; ``timeout`` keeps its
        meaning). Whatever interrupts it, the item is either returned or still in
        the queue, never lost.
        """
        if block and armed[0]:
            checkpoint()
        mutex = self.mutex
        lock = mutex._lock
        if not lock.acquire(False) and not (_SPIN and lock.acquire(True, _SPIN)):
            mutex._acquire_slow(True, -1, block)  # a cancellation point only if blocking
        mutex._owner = _get_ident()
        try:
            if self._plain and self.queue and (timeout is None or not block):
                item: T = self.queue.popleft()
            else:
                if self.is_shutdown and not self._qsize():
                    raise ShutDown
                self._wait_for_item(block, timeout)
                item = self._get()
            not_full = self.not_full
            if not_full._waiters:
                not_full._queue.unpark(1)
            return item
        finally:
            mutex._owner = None
            lock.release()
            if mutex._waiters:
                mutex._queue.unpark(1)

    def put_nowait(self, item: T) -> None:
        """Put ``item`` without blocking; ``Full`` if there is no room. Not a
        cancellation point."""
        self.put(item, False)

    def get_nowait(self) -> T:
        """Remove and return an item without blocking; ``Empty`` if there is none.
        Not a cancellation point."""
        return self.get(False)

    def task_done(self) -> None:
        """Say that a task taken with ``get`` is complete.

        When every item put has been marked done, ``join`` returns. ValueError if
        called more times than there were items. Never blocks for long and is not a
        cancellation point: a cancelled consumer can still report its work.
        """
        mutex = self.mutex
        _take(mutex, False)
        try:
            unfinished = self.unfinished_tasks - 1
            if unfinished <= 0:
                if unfinished < 0:
                    raise ValueError("task_done() called too many times")
                all_done = self.all_tasks_done
                if all_done._waiters:
                    all_done._queue.unpark_all()
            self.unfinished_tasks = unfinished
        finally:
            _give(mutex)

    def join(self) -> None:
        """Wait until every item put has been got and marked done (``task_done``).

        Never raises ``ShutDown``. A cancellation point (on entry and while waiting).
        """
        if armed[0]:
            checkpoint()
        mutex = self.mutex
        _take(mutex, True)
        try:
            while self.unfinished_tasks:
                self.all_tasks_done.wait()
        finally:
            _give(mutex)

    def qsize(self) -> int:
        """Return the approximate size of the queue (it may change at once)."""
        mutex = self.mutex
        _take(mutex, False)
        try:
            return self._qsize()
        finally:
            _give(mutex)

    def empty(self) -> bool:
        """Return True if the queue is empty right now (approximate, as ``qsize``)."""
        return not self.qsize()

    def full(self) -> bool:
        """Return True if the queue is full right now (approximate, as ``qsize``)."""
        mutex = self.mutex
        _take(mutex, False)
        try:
            return 0 < self.maxsize <= self._qsize()
        finally:
            _give(mutex)

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down: ``put`` raises ``ShutDown`` from now on, and ``get``
        does once the queue is empty; blocked callers are woken to see it.

        With ``immediate``, the queue is emptied first (through ``_get``) and each
        item removed counts as done for ``join``. May be called more than once.
        Not a cancellation point.
        """
        mutex = self.mutex
        _take(mutex, False)
        try:
            self.is_shutdown = True
            if immediate:
                while self._qsize():
                    self._get()
                    if self.unfinished_tasks > 0:
                        self.unfinished_tasks -= 1
                self.all_tasks_done.notify_all()
            self.not_empty.notify_all()
            self.not_full.notify_all()
        finally:
            _give(mutex)

    # -- the container; override these four in a subclass -----------------------------
    # Each is called with the mutex held.
    def _init(self, maxsize: int) -> None:
        self.queue: Any = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        item: T = self.queue.popleft()
        return item


class _ListQueue(Queue[T]):
    """The container of the two queues below: a list."""

    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _qsize(self) -> int:
        return len(self.queue)


class PriorityQueue(_ListQueue[T]):
    """A queue that returns the lowest item first (``heapq`` order), as
    ``queue.PriorityQueue``; items are usually ``(priority, data)`` tuples."""

    def _put(self, item: T) -> None:
        heappush(self.queue, item)

    def _get(self) -> T:
        item: T = heappop(self.queue)
        return item


class LifoQueue(_ListQueue[T]):
    """A last-in, first-out queue (a stack), as ``queue.LifoQueue``."""

    def _put(self, item: T) -> None:
        self.queue.append(item)

    def _get(self) -> T:
        item: T = self.queue.pop()
        return item


class SimpleQueue(Generic[T]):
    """An unbounded FIFO queue without task tracking, as ``queue.SimpleQueue``.

    ``put`` never blocks and may be called from a finaliser, a weakref callback or
    a signal handler, even one that runs while the same thread is inside ``get``
    or ``put`` on this queue. How: the items are a ``deque``, whose ``append`` and
    ``popleft`` are atomic; getters park in a wait queue guarded by a reentrant
    lock, and a ``put`` that finds its own thread already holding that lock
    (re-entered) appends without waking anyone. That is safe because every getter
    leaving the slow path wakes the next one while items and waiters remain, and
    whoever holds the lock at that moment is a getter about to look at the items
    again, or a waker whose woken getter passes the wake-up on.
    """

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._mutex: Any = _thread.RLock()
        self._waitq = WaitQueue(self._mutex)
        self._waiters = self._waitq.waiters

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` into the queue. Never blocks; ``block`` and ``timeout`` are
        accepted for compatibility with ``Queue.put`` and ignored. Not a
        cancellation point."""
        self._items.append(item)
        if self._waiters and not self._mutex._is_owned():
            self._waitq.unpark(1)

    def put_nowait(self, item: T) -> None:
        """The same as ``put(item)``."""
        self.put(item)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item from the queue.

        If it is empty: with ``block`` false raises ``Empty`` at once; otherwise
        waits, up to ``timeout`` seconds (``Empty`` when it expires; ValueError if
        negative). A blocking ``get`` is a cancellation point, on entry and while it
        waits; an interrupted ``get`` takes no item.
        """
        if block:
            if armed[0]:
                checkpoint()
            if timeout is not None:
                if timeout < 0:
                    raise ValueError(_TIMEOUT_MESSAGE)
                if timeout != timeout:
                    raise ValueError("Invalid value NaN (not a number)")  # as the C queue
        try:
            return self._items.popleft()
        except IndexError:
            pass
        if not block:
            raise Empty
        return self._get_slow(deadline_after(timeout))

    def _get_slow(self, deadline: float | None) -> T:
        items = self._items
        waitq = self._waitq
        rec = current_record()
        try:
            while True:
                node = waitq.add(rec, self, "get")
                try:
                    item = items.popleft()
                except IndexError:
                    pass
                else:
                    with self._mutex:
                        waitq.withdraw_locked(node)
                    return item
                state = waitq.park(node, deadline, _noop)
                try:
                    return items.popleft()
                except IndexError:
                    if state is _TIMED_OUT:
                        raise Empty from None
        finally:
            waitq.cancel_wait(rec, _noop)
            # Items left and getters parked: wake one (see the class docstring).
            if items and self._waiters and not self._mutex._is_owned():
                waitq.unpark(1)

    def get_nowait(self) -> T:
        """Remove and return an item without blocking; ``Empty`` if there is none."""
        return self.get(False)

    def empty(self) -> bool:
        """Return True if the queue is empty right now."""
        return not self._items

    def qsize(self) -> int:
        """Return the approximate size of the queue."""
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} object at {id(self):#x}>"


def _noop() -> None:
    """A waiter that leaves with a signal needs to hand nothing on: the ``finally``
    of ``_get_slow`` wakes the next getter if items remain."""
