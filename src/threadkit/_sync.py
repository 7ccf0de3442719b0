"""Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event and Barrier on the core.

Each primitive keeps its own small state and, when a thread must wait, parks it in a
``WaitQueue`` from ``_core``; nothing here blocks any other way. The uncontended paths
touch only C primitives: ``Lock`` and ``RLock`` keep their state in a ``_thread`` lock
and enter the wait queue only when a non-blocking attempt fails.

Fairness, stated per primitive:

* ``Lock``, ``RLock``: none, as in ``threading``. A release wakes the longest waiter,
  but a thread arriving meanwhile may take the lock first (barging); the woken waiter
  then parks again. Barging keeps contended throughput close to the C lock's.
* ``Condition``: ``notify`` wakes the waiters that have waited longest (FIFO).
* ``Semaphore``: strict FIFO. A release hands its permit straight to the longest
  waiter, so a stream of newcomers cannot starve a parked thread.
* ``Event``, ``Barrier``: wake everyone at once; no shared lock to fight over after.
"""

from __future__ import annotations

import _thread
import functools
import re
import sys
import warnings
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import Any, Protocol

from ._core import (
    SIGNALLED,
    TIMED_OUT,
    WaitQueue,
    checkpoint,
    current_record,
    deadline_after,
    interruptible,
    on_armed,
    thread_label,
    wake,
)

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Condition",
    "Event",
    "Lock",
    "RLock",
    "Semaphore",
]

_allocate_lock = _thread.allocate_lock
_get_ident = _thread.get_ident


#: Barrier(0)'s message: it changed in 3.14.
_PARTIES_MESSAGE = "parties must be >= 1" if sys.version_info >= (3, 14) else "parties must be > 0"


def _waiting_suffix(count: int) -> str:
    return f" waiting={count}" if count else ""


def _class_name(obj: object) -> str:
    """``threadkit.Lock`` for our own classes, ``module.Class`` for a subclass."""
    cls = type(obj)
    module = cls.__module__
    if module.startswith("threadkit."):
        module = "threadkit"
    return f"{module}.{cls.__qualname__}"


def _lock_repr(obj: object, locked: bool, details: str) -> str:
    """The ``threading`` layout of a lock's repr, which CPython's own tests match:
    ``<locked threadkit.Lock object owner=... at 0x...>``."""
    state = "locked" if locked else "unlocked"
    return f"<{state} {_class_name(obj)} object {details}at {id(obj):#x}>"


def _validate_acquire(blocking: bool, timeout: float) -> None:
    """Raise exactly what ``_thread.lock.acquire`` raises for these arguments.

    A fresh, unlocked C lock is asked to acquire with the caller's arguments: bad ones
    raise CPython's own error (type, message and all); good ones succeed at once
    without blocking, and the lock is thrown away.
    """
    _allocate_lock().acquire(blocking, timeout)


def _noop() -> None:
    pass


_NOT_RELEASED = object()  # Condition.wait: the lock's saved state, not taken yet


# True while some entered scope is cancelled or has a deadline: only then do the
# entry checks of the blocking calls below need to look (see _core.on_armed).
_ARMED = False


def _set_armed(flag: bool) -> None:
    global _ARMED
    _ARMED = flag


on_armed(_set_armed)


class _LockBase:
    """The contended path shared by Lock and RLock: park until the C lock is ours."""

    __slots__ = ("_lock", "_queue", "_waiters", "__weakref__")

    _lock: Any
    _queue: WaitQueue
    _waiters: Any

    def _acquire_slow(self, blocking: bool, timeout: float, cancellable: bool = True) -> bool:
        """The wait for the C lock; with ``cancellable`` false (Condition taking its
        lock back), neither a cancellation point nor open to Ctrl-C."""
        _validate_acquire(blocking, timeout)
        try_acquire = self._lock.acquire
        if try_acquire(False):
            return True
        if not blocking:
            return False
        deadline = None if timeout == -1 else monotonic() + timeout
        queue = self._queue
        rec = current_record()
        try:
            while True:
                # Enqueue first, then try: a release that lands between a failed try
                # and the enqueue would otherwise find nobody to wake (lost wake-up).
                node = queue.add(rec, self, "acquire", deadline, cancellable)
                if try_acquire(False):
                    with queue.mutex:
                        queue.withdraw_locked(node)
                    # A signal that reached the node meant "the lock is free"; taken.
                    return True
                if queue.park(node, deadline, None, cancellable, cancellable) is TIMED_OUT:
                    return bool(try_acquire(False))
                # Signalled: the lock was released. Another thread may have barged
                # in first, in which case the loop parks again.
        except BaseException:
            # Interrupted (Ctrl-C, Cancelled): leave no node behind, and hand on the
            # wake-up this thread may have been given; an extra one is harmless.
            queue.cancel_wait(rec)
            if queue.waiters:
                queue.unpark(1)
            raise

    def _wake_next(self) -> None:
        self._queue.unpark(1)


class Lock(_LockBase):
    """A primitive lock, as ``threading.Lock``; any thread may release it.

    Fairness: none (barging allowed), like ``threading.Lock``.
    """

    __slots__ = ("_owner",)

    def __init__(self) -> None:
        self._lock: Any = _allocate_lock()
        #: Ident of the thread holding the lock, for diagnostics: negated if it was
        #: taken by a ``with`` statement (so the thread that took it releases it:
        #: deadlock detection may count on it), as is if by ``acquire()`` (the lock
        #: may be a signal that another thread releases); None while unlocked. The
        #: negation is on ``__enter__``, which is cheaper than ``acquire`` to call,
        #: so that neither path costs more than it did before the distinction.
        self._owner: int | None = None
        self._queue = WaitQueue()
        self._waiters = self._queue.waiters

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; return True if acquired, False if not.

        Blocks until the lock is free unless ``blocking`` is false; with ``timeout``
        (seconds, -1 for none) returns False once it expires. Raises ValueError or
        OverflowError for bad arguments, exactly as ``threading.Lock`` does. If the
        wait is interrupted (KeyboardInterrupt), the lock is not held and the
        thread's place in the queue is given up.

        A blocking acquire is a cancellation point: it raises ``Cancelled`` on entry
        if the thread is cancelled, or when it is cancelled (or a scope's deadline
        passes) while waiting; the lock is then not held. ``timeout`` keeps its
        meaning (a False return); a scope's deadline raises instead.
        """
        if _ARMED and blocking:
            checkpoint()
        if timeout == -1 and self._lock.acquire(False):
            self._owner = _get_ident()
            return True
        if self._acquire_slow(blocking, timeout):
            self._owner = _get_ident()
            return True
        return False

    def __enter__(self) -> bool:
        """``acquire()``, for a ``with`` statement: the lock is then bound to this
        thread until the block ends, which deadlock detection relies on."""
        if _ARMED:
            checkpoint()
        if self._lock.acquire(False) or self._acquire_slow(True, -1):
            self._owner = -_get_ident()
            return True
        return False  # pragma: no cover - a blocking acquire returns True or raises

    def release(self) -> None:
        """Release the lock, which any thread may do; RuntimeError if it is unlocked."""
        self._owner = None
        self._lock.release()
        if self._waiters:
            self._queue.unpark(1)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner = None
        self._lock.release()
        if self._waiters:
            self._queue.unpark(1)

    def locked(self) -> bool:
        """Return True if the lock is held."""
        return bool(self._lock.locked())

    # The legacy names of the C lock's methods, which ``threading.Lock`` keeps.
    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    if sys.version_info >= (3, 13):

        def __init_subclass__(cls, **kwargs: object) -> None:
            # As ``threading.Lock`` from 3.13 on: a subclass would not be called
            # by code that takes the fast path through the C lock.
            raise TypeError("type 'threadkit.Lock' is not an acceptable base type")

    # The Condition protocol: a plain lock is "owned" whenever it is held.
    def _release_save(self) -> int | None:
        owner = self._owner
        self.release()
        return owner

    def _acquire_restore(self, state: object) -> None:
        # Not a cancellation point, nor open to Ctrl-C: Condition.wait must hold the
        # lock again even when it is leaving with Cancelled or KeyboardInterrupt.
        if not self._lock.acquire(False):
            self._acquire_slow(True, -1, False)
        ident = _get_ident()
        self._owner = -ident if isinstance(state, int) and state < 0 else ident  # as it was

    def _is_owned(self) -> bool:
        return bool(self._lock.locked())

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._owner = None
        self._queue.mutex._at_fork_reinit()
        self._waiters.clear()

    def _holder(self) -> int | None:
        """Ident of the holder, for diagnostics (None when unlocked)."""
        owner = self._owner
        return abs(owner) if owner is not None and self._lock.locked() else None

    def _tk_holders(self, operation: str) -> list[int] | None:
        """The thread a waiter needs to release the lock (deadlock detection): its
        holder if it took it with ``with``; None if any thread might release it."""
        owner = self._owner
        # Negative only while held by a with block (cleared before the C lock is
        # released), so no need to ask the C lock; a stale read is caught by the
        # detection's second read.
        if owner is not None and owner < 0:
            return [-owner]
        return None

    def __repr__(self) -> str:
        if self._lock.locked():
            details = f"owner={thread_label(self._holder())}{_waiting_suffix(len(self._waiters))} "
            return _lock_repr(self, True, details)
        return _lock_repr(self, False, "")


_RLOCK_REPR = re.compile(r"owner=(\d+) count=(\d+)")


class RLock(_LockBase):
    """A reentrant lock, as ``threading.RLock``; only its owner may release it.

    Fairness: none (barging allowed), like ``threading.RLock``.
    """

    __slots__ = ()

    def __init__(self, *args: object, **kwargs: object) -> None:
        if args or kwargs:
            if sys.version_info >= (3, 15):
                if args:
                    raise TypeError(
                        f"RLock() takes 0 positional arguments but {len(args)} "
                        f"{'was' if len(args) == 1 else 'were'} given"
                    )
                raise TypeError(
                    f"RLock() got an unexpected keyword argument {next(iter(kwargs))!r}"
                )
            if sys.version_info >= (3, 13):
                warnings.warn(
                    "Passing arguments to RLock is deprecated and will be removed in 3.15",
                    DeprecationWarning,
                    stacklevel=2,
                )
        # The C RLock keeps owner and count, so the uncontended path runs in C.
        self._lock = _thread.RLock()
        self._queue = WaitQueue()
        self._waiters = self._queue.waiters

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, or add one level if the caller owns it already.

        Returns True if acquired, False if ``blocking`` is false or ``timeout``
        (seconds, -1 for none) expired first. Bad arguments raise what
        ``threading.RLock`` raises. If the wait is interrupted (KeyboardInterrupt),
        the lock is not held and the recursion count is unchanged. A blocking
        acquire is a cancellation point, like ``Lock.acquire``.
        """
        if _ARMED and blocking:
            checkpoint()
        if timeout == -1 and self._lock.acquire(False):
            return True
        return self._acquire_slow(blocking, timeout)

    __enter__ = acquire

    def release(self) -> None:
        """Drop one level; RuntimeError if the caller does not own the lock."""
        self._lock.release()
        if self._waiters and not self._lock._is_owned():
            self._queue.unpark(1)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
        if self._waiters and not self._lock._is_owned():
            self._queue.unpark(1)

    def locked(self) -> bool:
        """Return True if the lock is held (by any thread)."""
        return self._parse()[1] > 0

    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())

    def _release_save(self) -> tuple[int, int]:
        state: tuple[int, int] = self._lock._release_save()
        if self._waiters:
            self._queue.unpark(1)
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        lock = self._lock
        if not lock.acquire(False):
            self._acquire_slow(True, -1, False)  # not a cancellation point
        count = state[0]
        while count > 1:
            lock.acquire(False)
            count -= 1

    def _recursion_count(self) -> int:
        """Return how many times the calling thread holds the lock (0 if it does not)."""
        if not self._lock._is_owned():
            return 0
        return self._parse()[1]

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._queue.mutex._at_fork_reinit()
        self._waiters.clear()

    def _parse(self) -> tuple[int | None, int]:
        match = _RLOCK_REPR.search(repr(self._lock))
        if match is None:  # pragma: no cover - CPython has used this repr since 3.2
            return None, 0
        owner, count = int(match.group(1)), int(match.group(2))
        return (owner or None), count

    def _holder(self) -> int | None:
        """Ident of the owner, for diagnostics (None when unlocked)."""
        owner, count = self._parse()
        return owner if count else None

    def _tk_holders(self, operation: str) -> list[int] | None:
        """The thread a waiter needs to release the lock: its owner (deadlock
        detection; only the owner may release an RLock)."""
        owner = self._holder()
        return None if owner is None else [owner]

    def __repr__(self) -> str:
        owner, count = self._parse()
        if count:
            details = (
                f"owner={thread_label(owner)} count={count}{_waiting_suffix(len(self._waiters))} "
            )
            return _lock_repr(self, True, details)
        return _lock_repr(self, False, "owner=None count=0 ")


class _LockLike(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


class Condition:
    """A condition variable over a lock (ours or the stdlib's), as ``threading.Condition``.

    Fairness: ``notify`` wakes the longest-waiting threads first (FIFO).
    """

    def __init__(self, lock: Any = None) -> None:
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire: Callable[..., bool] = lock.acquire
        self.release: Callable[[], None] = lock.release
        if hasattr(lock, "locked"):
            self.locked: Callable[[], bool] = lock.locked
        # Take the lock's own protocol when it has one (our locks and the stdlib's
        # RLock do); otherwise fall back to the plain-lock methods below.
        for name in ("_release_save", "_acquire_restore", "_is_owned"):
            method = getattr(lock, name, None)
            if method is not None:
                setattr(self, name, method)
        self._queue = WaitQueue()
        self._waiters = self._queue.waiters
        # A lock that is not threadkit's may wait outside the core: it is entered
        # from a frame open to Ctrl-C (as in ``threading``). threadkit's own are
        # entered from this protected frame, so that no Ctrl-C lands between their
        # acquire and the ``with`` block (CPython checks for signals after a call
        # returns when the call is not inlined: under a profiler, a debugger, or a
        # PEP 523 frame evaluator). Theirs is looked up at each entry, not bound
        # here, so that lock-order checking, which replaces the class's methods while
        # it is on, sees the ``with`` of a Condition made before it was turned on.
        self._enter: Callable[[], Any] | None = (
            None if isinstance(lock, Lock | RLock) else functools.partial(_enter_foreign, lock)
        )

    def __enter__(self) -> Any:
        enter = self._enter
        if enter is None:
            return self._lock.__enter__()
        return enter()

    def __exit__(self, *args: object) -> Any:
        return self._lock.__exit__(*args)

    def __repr__(self) -> str:
        return f"<{_class_name(self)}({self._lock!r}, {len(self._waiters)})>"

    def _at_fork_reinit(self) -> None:
        """In a forked child: the lock free and no waiters (``multiprocessing``'s queues
        call it), as ``threading.Condition._at_fork_reinit``."""
        self._lock._at_fork_reinit()
        self._queue.mutex._at_fork_reinit()
        self._waiters.clear()

    def _release_save(self) -> Any:
        self._lock.release()

    def _acquire_restore(self, _state: Any) -> None:
        self._lock.acquire()

    def _is_owned(self) -> bool:
        # A plain lock cannot say who holds it: "held at all" is the best answer.
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notify or ``timeout``, then take the lock back.

        Returns True if notified, False if ``timeout`` (seconds) expired. Raises
        RuntimeError if the caller does not hold the lock. Whatever ends the wait,
        including an exception, the lock is held again before ``wait`` returns or
        raises; a notify that reached a waiter interrupted by an exception is passed
        to the next waiter.

        A cancellation point: raises ``Cancelled`` on entry if the thread is
        cancelled, or when it is cancelled (or a scope's deadline passes) while
        waiting, always with the lock held again; a notify it had received goes to
        the next waiter.
        """
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        if _ARMED:
            checkpoint()
        rec = current_record()
        queue = self._queue
        saved: Any = _NOT_RELEASED
        state = None
        try:
            node = queue.add(rec, self, "wait")
            saved = self._release_save()
            state = queue.park(node, None if timeout is None else monotonic() + timeout)
            self._acquire_restore(saved)
            return state is SIGNALLED
        except BaseException:
            # One handler for every step, so that no gap between steps is left
            # unguarded: withdraw a node still queued (park() resolves its own), hand
            # on a notify received but not acted on, and hold the lock again.
            queue.cancel_wait(rec)
            if state is SIGNALLED:
                queue.unpark(1)
            if not self._holds_lock():
                self._reacquire(saved)
            raise

    def _holds_lock(self) -> bool:
        """Best knowledge of whether the calling thread holds the lock right now."""
        lock = self._lock
        if isinstance(lock, Lock):
            # Exactly the owner: another thread that has just taken the C lock and
            # not yet written ``_owner`` leaves it None, which must not read as ours.
            # (Between Lock.release clearing the owner and releasing the C lock no
            # Ctrl-C can land: that is protected code.)
            owner = lock._owner
            return lock.locked() and owner is not None and abs(owner) == _get_ident()
        if isinstance(lock, RLock) or hasattr(lock, "_recursion_count"):
            return bool(lock._is_owned())
        locked = getattr(lock, "locked", None)
        # A plain foreign lock cannot say who holds it: "held at all" is the best
        # available answer, and releasing it is this thread's last act before parking.
        return bool(locked()) if locked is not None else True

    def _reacquire(self, saved: Any) -> None:
        """Take the lock back while an exception is propagating out of ``wait``.

        ``wait`` promises that the lock is held when it raises, since the caller's
        ``with`` block will release it, so a further interruption here only makes it
        try again (the exception already on its way out is the one reported).
        """
        if saved is _NOT_RELEASED:
            # Interrupted inside _release_save, after the lock was released: the
            # saved state never came back, so restore one level.
            saved = (1, _get_ident())
        while True:
            try:
                if not self._holds_lock():
                    self._acquire_restore(saved)
                return
            except BaseException:
                continue

    @interruptible  # it runs the predicate
    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true; return its last value.

        With ``timeout``, gives up once it expires and returns the predicate's value
        (false). Same locking rules and interruption guarantees as ``wait``, and a
        cancellation point even when the predicate is true at once.
        """
        if _ARMED:
            checkpoint()
        deadline = None
        wait_time = timeout
        result = predicate()
        while not result:
            if wait_time is not None:
                if deadline is None:
                    deadline = monotonic() + wait_time
                else:
                    wait_time = deadline - monotonic()
                    if wait_time <= 0:
                        break
            self.wait(wait_time)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting threads; RuntimeError if the lock is not held."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        if self._waiters:
            self._queue.unpark(n)

    def notify_all(self) -> None:
        """Wake every waiting thread; RuntimeError if the lock is not held."""
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        if self._waiters:
            self._queue.unpark_all()

    def notifyAll(self) -> None:
        """Deprecated alias of ``notify_all``."""
        warnings.warn(
            "notifyAll() is deprecated, use notify_all() instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.notify_all()


@interruptible
def _enter_foreign(lock: Any) -> Any:
    """Enter a lock threadkit does not own, where Ctrl-C may interrupt its wait."""
    return lock.__enter__()


class Semaphore:
    """A counting semaphore, as ``threading.Semaphore``.

    Fairness: strict FIFO. A release hands its permit directly to the longest waiter.
    """

    __slots__ = ("_value", "_mutex", "_queue", "__weakref__")

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        #: Permits available; guarded by ``_mutex``. Never > 0 while threads wait.
        self._value = value
        self._mutex: Any = _allocate_lock()
        self._queue = WaitQueue(self._mutex)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a permit; return True, or False if none came in time.

        Without ``blocking`` returns at once; ``timeout`` (seconds) bounds the wait.
        A permit handed to a waiter interrupted by an exception is passed on.
        A blocking acquire is a cancellation point (``Cancelled`` on entry or while
        waiting; no permit is taken or lost).
        """
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if _ARMED and blocking:
            checkpoint()
        with self._mutex:
            if self._value > 0:
                self._value -= 1
                return True
            if not blocking:
                return False
        rec = current_record()
        queue = self._queue
        try:
            with self._mutex:
                if self._value > 0:
                    self._value -= 1
                    return True
                node = queue.add_locked(rec, self, "acquire")
            return queue.park(node, deadline_after(timeout), self._give_one) is SIGNALLED
        except BaseException:
            queue.cancel_wait(rec, self._give_one)
            raise

    __enter__ = acquire

    def _give(self, n: int) -> None:
        with self._mutex:
            if not self._queue.waiters:
                self._value += n
                return
        self._hand_over(n)

    def _hand_over(self, n: int, bound: int | None = None) -> None:
        """Give ``n`` permits to waiters first (FIFO), the rest to the count.

        With a ``bound``, ValueError if the count would pass it, checked in the same
        hold of the mutex as the hand-over (a waiter may have timed out since the
        caller's own check, and another release come in).
        """
        taken: list[Any] = []
        try:
            with self._mutex:
                if bound is not None and self._value + n > bound:
                    raise ValueError("Semaphore released too many times")
                taken = self._queue.take_locked(n)
                self._value += n - len(taken)
        finally:
            wake(taken)  # even if interrupted: the taken waiters own their permits

    def _give_one(self) -> None:
        self._give(1)

    def release(self, n: int = 1) -> None:
        """Return ``n`` permits, waking up to ``n`` waiters."""
        if n < 1:
            raise ValueError("n must be one or more")
        self._give(n)

    def __exit__(self, *args: object) -> None:
        with self._mutex:
            if not self._queue.waiters:
                self._value += 1
                return
        self._hand_over(1)

    def __repr__(self) -> str:
        return (
            f"<{_class_name(self)} at {id(self):#x}: value={self._value}"
            f"{_waiting_suffix(len(self._queue))}>"
        )


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released above its initial value."""

    __slots__ = ("_initial_value",)

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        """Return ``n`` permits; ValueError if that exceeds the initial value."""
        if n < 1:
            raise ValueError("n must be one or more")
        self._give_bounded(n)

    def __exit__(self, *args: object) -> None:
        self._give_bounded(1)

    def _give_bounded(self, n: int) -> None:
        with self._mutex:
            if self._value + n > self._initial_value:
                raise ValueError("Semaphore released too many times")
            if not self._queue.waiters:
                self._value += n
                return
        self._hand_over(n, self._initial_value)

    def __repr__(self) -> str:
        return (
            f"<{_class_name(self)} at {id(self):#x}: value={self._value}/{self._initial_value}"
            f"{_waiting_suffix(len(self._queue))}>"
        )


class Event:
    """A flag threads can wait for, as ``threading.Event``. ``set`` wakes all waiters."""

    __slots__ = ("_flag", "_mutex", "_queue", "__weakref__")

    def __init__(self) -> None:
        self._flag = False
        self._mutex: Any = _allocate_lock()
        self._queue = WaitQueue(self._mutex)

    def is_set(self) -> bool:
        """Return True if the flag is set."""
        return self._flag

    def isSet(self) -> bool:
        """Deprecated alias of ``is_set``."""
        warnings.warn(
            "isSet() is deprecated, use is_set() instead", DeprecationWarning, stacklevel=2
        )
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiting thread."""
        with self._mutex:
            self._flag = True
            taken = self._queue.take_all_locked()
        wake(taken)

    def clear(self) -> None:
        """Reset the flag to false."""
        with self._mutex:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set or ``timeout`` (seconds) expires.

        Returns True if the flag was set before or during the wait, otherwise the
        flag's value when the timeout expired (False unless set at that instant).
        A cancellation point, even when the flag is already set.
        """
        if _ARMED:
            checkpoint()
        if self._flag:
            return True
        rec = current_record()
        queue = self._queue
        try:
            with self._mutex:
                if self._flag:
                    return True
                node = queue.add_locked(rec, self, "wait")
            if queue.park(node, deadline_after(timeout), _noop) is SIGNALLED:
                return True
        except BaseException:
            queue.cancel_wait(rec, _noop)
            raise
        return self._flag

    def _at_fork_reinit(self) -> None:
        self._mutex._at_fork_reinit()
        self._queue.waiters.clear()

    def __repr__(self) -> str:
        state = "set" if self._flag else "unset"
        return f"<{_class_name(self)} at {id(self):#x}: {state}{_waiting_suffix(len(self._queue))}>"


class BrokenBarrierError(RuntimeError):
    """Raised by ``Barrier.wait`` when the barrier is broken or reset."""


class _Generation:
    """One use of a barrier: the threads that will be released together."""

    __slots__ = ("queue", "count", "broken", "done")

    def __init__(self, mutex: Any) -> None:
        self.queue = WaitQueue(mutex)
        self.count = 0  # threads that arrived in this generation
        self.broken = False  # its waiters get BrokenBarrierError
        self.done = False  # its waiters have been released


class Barrier:
    """A barrier for ``parties`` threads, as ``threading.Barrier``.

    The last thread to arrive runs ``action`` (if any), then all are released at
    once. A timeout, ``abort()``, a failing action or an interrupted waiter breaks it.
    """

    def __init__(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> None:
        if parties < 1:
            raise ValueError(_PARTIES_MESSAGE)
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._mutex = _allocate_lock()
        self._gen = _Generation(self._mutex)
        self._broken = False  # guarded by _mutex, like _gen

    def __repr__(self) -> str:
        if self._broken:
            return f"<{_class_name(self)} at {id(self):#x}: broken>"
        return f"<{_class_name(self)} at {id(self):#x}: waiters={self.n_waiting}/{self._parties}>"

    def wait(self, timeout: float | None = None) -> int:
        """Wait until all parties have arrived; return this thread's arrival index.

        The index is from 0 to ``parties - 1``. ``timeout`` (seconds; default the
        barrier's own) expiring breaks the barrier, and every waiter, this one
        included, raises BrokenBarrierError. An exception that interrupts the wait
        breaks the barrier the same way before it propagates; so does cancellation:
        ``wait`` is a cancellation point, and a cancelled waiter breaks the barrier
        for the others (BrokenBarrierError) and raises ``Cancelled`` itself.
        """
        if _ARMED:
            checkpoint()
        if timeout is None:
            timeout = self._timeout
        rec = current_record()
        mutex = self._mutex
        gen: _Generation | None = None
        index = -1
        tripping = False
        try:
            with mutex:
                if self._broken:
                    raise BrokenBarrierError
                gen = self._gen
                index = gen.count
                gen.count += 1
                if gen.count == self._parties:
                    # Later arrivals belong to the next generation from now on.
                    self._gen = _Generation(mutex)
                    tripping = True
                else:
                    node = gen.queue.add_locked(rec, self, "wait")
            if tripping:
                self._trip(gen)
                return index
            state = gen.queue.park(node, deadline_after(timeout), _noop)
            if state is TIMED_OUT:
                taken: list[Any] = []
                try:
                    with mutex:
                        if gen is self._gen and not gen.broken:
                            taken = self._break_locked()
                        elif not gen.done and not gen.broken:
                            # It tripped as we timed out and its action is running:
                            # the trip won, so wait for the release like the others.
                            node = gen.queue.add_locked(rec, self, "wait")
                finally:
                    wake(taken)
                if node.state is not TIMED_OUT:
                    gen.queue.park(node, None, _noop)
        except BrokenBarrierError:
            raise
        except BaseException:
            # Interrupted or cancelled: this arrival will not happen, so the barrier
            # breaks for the others, as a timeout does. If this thread was the last
            # arrival and stopped before its generation was released, that
            # generation is released now, broken.
            if gen is not None:
                gen.queue.cancel_wait(rec, _noop)
                taken = []
                try:
                    with mutex:
                        if gen is self._gen:
                            if not gen.broken:
                                taken = self._break_locked()
                        elif index == self._parties - 1 and not (gen.done or gen.broken):
                            gen.broken = True
                            taken = gen.queue.take_all_locked() + self._break_locked()
                finally:
                    wake(taken)
            raise
        if not (gen.done or gen.broken):
            # Released by _trip, which sets one of the two in the same hold of the
            # mutex: a waiter that was awake saw its release early, so it waits for
            # that hold to end before it reads them.
            with mutex:
                pass
        if gen.broken:
            raise BrokenBarrierError
        return index

    def _trip(self, gen: _Generation) -> None:
        """Run the action, then release ``gen``; a failing action breaks the barrier.

        The waiters of ``gen`` are marked while still queued and unparked one by
        one in a ``finally`` (not as a wake tree, whose baton an interrupted waker could
        drop), so an interruption during the release still releases them.
        """
        ok = False
        try:
            if self._action is not None:
                _run_action(self._action)
            ok = True
        finally:
            nodes: list[Any] = []
            others: list[Any] = []
            try:
                with self._mutex:
                    # Marked while still queued: if this is interrupted half-way,
                    # wait()'s handler finds the generation neither done nor broken
                    # and releases the whole queue itself.
                    nodes = list(gen.queue.waiters)
                    for node in nodes:
                        node.batch = None
                        node.state = SIGNALLED
                    gen.queue.waiters.clear()
                    if ok:
                        gen.done = True
                    else:
                        gen.broken = True
                        others = self._break_locked()
            finally:
                for node in nodes:
                    node.record.unpark()
                wake(others)

    def _break_locked(self) -> list[Any]:
        self._broken = True
        gen = self._gen
        gen.broken = True
        return gen.queue.take_all_locked()

    def reset(self) -> None:
        """Return the barrier to empty and unbroken; current waiters get BrokenBarrierError."""
        with self._mutex:
            gen = self._gen
            gen.broken = True
            taken = gen.queue.take_all_locked()
            self._gen = _Generation(self._mutex)
            self._broken = False
        wake(taken)

    def abort(self) -> None:
        """Break the barrier: current and future waiters get BrokenBarrierError."""
        with self._mutex:
            taken = self._break_locked()
        wake(taken)

    @property
    def parties(self) -> int:
        """The number of threads needed to pass the barrier."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """The number of threads waiting in the barrier now."""
        if self._broken:
            return 0
        return self._gen.count

    @property
    def broken(self) -> bool:
        """True if the barrier is broken."""
        return self._broken


@interruptible
def _run_action(action: Callable[[], object]) -> None:
    """Run a barrier's action, as open to Ctrl-C as the program's own code."""
    action()
