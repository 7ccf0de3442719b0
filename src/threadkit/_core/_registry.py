"""The thread registry: one plain record per live thread.

The idea
--------
Every thread that ever waits in threadkit gets a ``ThreadRecord``. The record carries
the thread's *parker* (see below), the wait it is parked in, and a link to the
``Thread`` object that describes it. Diagnostics, test helpers and, later,
cancellation read these records; the hot paths only write one field when a thread
parks and clear it when the thread wakes.

The parker
----------
A parker is a binary permit with ``java.util.concurrent.locks.LockSupport`` rules,
built on one ``_thread`` lock per thread: the lock is *held* when there is no permit.

* ``unpark`` releases the lock, which leaves a permit. A second ``unpark`` finds the
  lock already released and does nothing (``_thread`` raises RuntimeError atomically,
  so two unparkers cannot both succeed).
* ``park`` acquires the lock, which consumes the permit or blocks until there is one.

A permit can outlive the wait it was meant for (a signal that lost the race against
a timeout leaves one behind), so a park may return spuriously: every caller loops on
its own condition. Blocking in ``lock.acquire`` keeps CPython's behaviour for signals:
Ctrl-C in the main thread interrupts it with KeyboardInterrupt.

Rejected: allocating a fresh lock per wait, as ``threading.Condition`` does. It costs
an allocation per wait and leaves nothing per thread for diagnostics to read.

Lookup
------
``current_record()`` reads a ``_thread._local`` slot: one C attribute lookup. A thread
that threadkit did not start gets its record on first use; the record is dropped
when that thread ends, through a weak reference to a sentinel that only the thread's
own local storage holds.
"""

from __future__ import annotations

import _thread
import os
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cancel import CancelScope, TaskScopes
    from ._waitqueue import Waiter

__all__ = [
    "ThreadRecord",
    "current_record",
    "record_for",
    "records",
    "register_current",
    "unregister_current",
    "reset_after_fork",
    "forked_before_reset",
    "set_foreign_record_hook",
    "set_namer",
    "thread_label",
]

_get_ident = _thread.get_ident
_allocate_lock = _thread.allocate_lock


class ThreadRecord:
    """What the registry knows about one live thread (plain data)."""

    __slots__ = (
        "ident",
        "parker",
        "thread",
        "waiting",
        "node",
        "scopes",
        "task",
        "used_local",
        "seq",
        "doomed",
        "reported",
        "__weakref__",
    )

    def __init__(self, ident: int) -> None:
        self.ident = ident
        #: Held when the thread has no permit; see the module docstring.
        self.parker = _allocate_lock()
        self.parker.acquire()
        #: The ``Thread`` object describing this thread, if any (set by ``_threads``).
        self.thread: Any = None
        #: The ``Waiter`` this thread is parked on, or None. Written only by the thread
        #: itself; read by others without a lock (a stale read is harmless: it is data
        #: for reports and test helpers, never a decision).
        self.waiting: Waiter | None = None
        #: The thread's one reusable ``Waiter`` (a thread waits on one thing at a
        #: time); created by the wait queue on first use.
        self.node: Waiter | None = None
        #: The cancel scopes this thread is inside, outermost first (under the cancel
        #: module's mutex; see ``_cancel``).
        self.scopes: list[CancelScope] = []
        #: The task (of a task group) whose scopes are on ``scopes``: the one this
        #: worker runs or ran last (under the cancel module's mutex; see ``enter_task``).
        self.task: TaskScopes | None = None
        #: Set (by the thread itself) once it has touched a ``threadkit.local``: its
        #: thread-local storage is no longer empty, so it must not be reused for an
        #: unrelated task (see ``_workers``).
        self.used_local = False
        #: The number of this thread's last published wait (``_deadlock``); written
        #: by the thread itself, under the mutex of the queue it waits in.
        self.seq = 0
        #: ``(seq, DeadlockError)`` when another thread found that this thread's wait
        #: number ``seq`` is in a cycle and that this one must raise it (``_deadlock``).
        self.doomed: tuple[int, BaseException] | None = None
        #: The number of this thread's last wait found in a reported cycle (under
        #: ``_deadlock``'s mutex): a cycle is reported once, however many find it.
        self.reported = 0

    def unpark(self) -> None:
        """Give this thread a permit; a no-op if it already has one."""
        try:
            self.parker.release()
        except RuntimeError:
            pass

    def __repr__(self) -> str:
        what = "running"
        node = self.waiting
        if node is not None:
            what = f"parked in {node.operation} on {node.resource!r}"
        return f"<ThreadRecord {self.ident} {what}>"


class _Sentinel:
    """Kept only in a thread's local storage; its death means the thread ended."""

    __slots__ = ("__weakref__",)


_tls = _thread._local()
# Guards ``_records``. Never held while blocking or while calling out.
_mutex = _allocate_lock()
_records: dict[int, ThreadRecord] = {}
# Weak references to the sentinels of threads threadkit did not start, kept alive here.
_sentinel_refs: dict[int, weakref.ref[_Sentinel]] = {}


#: The process these records belong to (see ``forked_before_reset``).
_pid = os.getpid()


def forked_before_reset() -> bool:
    """True in a child process before ``reset_after_fork`` has run.

    CPython (3.13+, free-threaded builds especially) deletes the states of the
    threads that did not survive a fork inside ``PyOS_AfterFork_Child``, before any
    ``os.register_at_fork`` hook; that runs the weak-reference callbacks which say a
    thread ended. A mutex held by another thread at the instant of the fork stays
    held for ever in the child, so such a callback must not take one then: the
    reset that follows throws the dead threads' records away anyway.
    """
    return os.getpid() != _pid


def _drop_foreign(ident: int, rec: ThreadRecord) -> Any:
    def callback(_ref: object) -> None:
        if forked_before_reset():
            return
        with _mutex:
            if _records.get(ident) is rec:
                del _records[ident]
            _sentinel_refs.pop(ident, None)

    return callback


def current_record() -> ThreadRecord:
    """Return the calling thread's record, creating it on first use."""
    try:
        rec: ThreadRecord = _tls.record
        return rec
    except AttributeError:
        pass
    ident = _get_ident()
    rec = ThreadRecord(ident)
    sentinel = _Sentinel()
    _tls.record = rec
    _tls.sentinel = sentinel
    with _mutex:
        _records[ident] = rec
        _sentinel_refs[ident] = weakref.ref(sentinel, _drop_foreign(ident, rec))
    if _on_foreign_record is not None:
        _on_foreign_record(rec)
    return rec


def register_current(thread: Any) -> ThreadRecord:
    """Create the record of a thread threadkit started, bound to its ``Thread``."""
    ident = _get_ident()
    rec = ThreadRecord(ident)
    rec.thread = thread
    _tls.record = rec
    with _mutex:
        _records[ident] = rec
    return rec


def unregister_current() -> None:
    """Drop the calling thread's record (the thread is about to end)."""
    ident = _get_ident()
    with _mutex:
        _records.pop(ident, None)
        _sentinel_refs.pop(ident, None)
    try:
        del _tls.record
    except AttributeError:
        pass


_namer: Any = None
#: Called with each new record of a thread threadkit did not start (set by _threads).
_on_foreign_record: Any = None


def set_foreign_record_hook(hook: Any) -> None:
    """Install ``hook(record)``, called when a foreign thread gets its record."""
    global _on_foreign_record
    _on_foreign_record = hook


def set_namer(namer: Any) -> None:
    """Install ``namer(ident) -> str | None``, which names threads for reports."""
    global _namer
    _namer = namer


def thread_label(ident: int | None) -> str:
    """Name the thread ``ident`` for a repr or a report."""
    if ident is None:
        return "?"
    rec = _records.get(ident)
    if rec is not None and rec.thread is not None:
        return str(rec.thread.name)
    name = _namer(ident) if _namer is not None else None
    return name if name is not None else f"thread {ident}"


def record_for(ident: int) -> ThreadRecord | None:
    """Return the record of the live thread ``ident``, or None."""
    return _records.get(ident)


def records() -> list[ThreadRecord]:
    """Return a snapshot of every live thread's record."""
    with _mutex:
        return list(_records.values())


def reset_after_fork() -> list[ThreadRecord]:
    """In a forked child: keep only the calling thread; return the records dropped.

    Only the thread that called ``fork()`` exists in the child. Its record stays (and
    gets a fresh parker, as its permit state is whatever the parent had); every other
    record is returned so the caller can take the dead threads out of wait queues.
    """
    global _mutex, _pid
    _mutex = _allocate_lock()
    _pid = os.getpid()
    ident = _get_ident()
    me = getattr(_tls, "record", None)
    dead = [rec for key, rec in _records.items() if rec is not me]
    _records.clear()
    _sentinel_refs.clear()
    if me is not None:
        me.ident = ident
        me.parker = _allocate_lock()
        me.parker.acquire()
        me.waiting = None
        me.node = None
        _records[ident] = me
    return dead
