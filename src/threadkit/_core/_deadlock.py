"""Deadlock detection: a thread about to park follows the wait-for chain.

The idea
--------
Every threadkit wait goes through ``WaitQueue.park``, and every waiting thread's record
names its node, and the node names the resource and the operation. A resource that
knows who must act before its waiters can go on says so: ``resource._tk_holders(op)``
returns the idents of those threads (a held ``Lock``'s owner, the thread a ``join``
waits for, the worker running a task, the runners of a full limited group), or None
when it cannot tell (anyone may release it, or the answer is changing right now).
That is a wait-for graph: thread -> resource -> holders -> what each holder waits on.

Before it parks for good (no timeout, no deadline), a thread whose resource has
holders walks that graph. A wait with a timeout ends by itself, and ``threading``'s
contract (a False return, TimeoutError) stands: a timed wait that gives up and backs
off is how programs avoid deadlocks, so it is never told. Its wait is a deadlock if it
is *stuck*: every holder of what it waits on is stuck, where a thread
is stuck only if it is parked, for good (no timeout, no deadline), on a resource whose
holders are all stuck; and if the walk comes back to it. Anything else (a running
thread, a thread parked with a timeout, a thread threadkit knows nothing of, a holder
it cannot name) is live, and a live holder may still release. So a thread waiting
on threads that deadlocked among themselves is not reported (it is not in the cycle);
the dump shows it.

Why a reported cycle is real
----------------------------
The graph is read while it changes, one thread at a time, without stopping anyone.
The walk reads it twice, in the same order, and reports only if both reads agree. That
is enough, because of three facts:

1. A wait is published under its queue's mutex with a number (``Waiter.seq``) that
   its thread never reuses. A wait read as WAITING with the same number at two
   moments was WAITING all the time between: a node leaves WAITING only once per
   wait.
2. A thread parked in a wait cannot release anything, and the holders named here can
   only be released by themselves (an ``RLock``'s owner; a ``Lock`` taken by a
   ``with`` statement, which ends in the thread that took it; a thread's own end; a
   task's end, which only its running thread can reach; a runner freeing its slot,
   which only happens when its task ends). So a holder read at a moment when it was
   parked still held at every moment of that same wait.
3. Let t be the instant between the two reads. Every thread of the cycle was read
   parked in the same wait before t and after t, so it was parked at t; each holder
   was read holding after t (second read) while parked in a wait that spans t, so it
   held at t. At t every thread of the cycle waited, for good, for the next. None of
   them can move first, so none ever will: the cycle is real.

What it assumes: that a ``Lock`` held by a ``with`` block is released by the thread
that entered it. Another thread's ``release()`` would make the block's own exit fail;
the one legitimate exception is a ``with`` inside a generator (or an ``ExitStack``)
that another thread resumes and ends, and such code must take the lock with
``acquire()`` and ``release()`` or turn detection off. A ``Lock``
taken by ``acquire()`` may be a signal another thread releases, so a wait on it is
never called a deadlock. A cancel or a Ctrl-C from outside the cycle could still end
it; that is recovery from a deadlock, not the absence of one.

The thread that closes a cycle finds it: each thread names its wait on its record and
publishes it in a hold of the queue's mutex, then reads the holders' records (``park``
does that first read, then this module walks under the queues' mutexes). Taking and
dropping a ``_thread`` lock are full barriers (the GIL, or sequentially consistent
atomics on free-threaded builds), so the read cannot move before the write, and of
two threads closing a cycle at once at least one sees the other's wait; if both do,
the first to claim the cycle's waits raises, and the other parks until the first has
unwound. A wait that cannot raise (a ``Condition`` taking its lock back, which must
hold the lock again before it leaves) hands the error to another thread of the cycle
whose wait can (the *victim*), and parks; if there is none, the listeners still hear
of it.

Rejected: a global lock around every park (a stop-the-world snapshot) costs every
wait; lock-order graphs (lockdep, Abseil) report possible deadlocks, not real ones,
and are the opt-in ``_lockorder``.
"""

from __future__ import annotations

import _thread
import math
import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._cancel import armed, effective_deadline
from ._registry import ThreadRecord, record_for, thread_label

if TYPE_CHECKING:
    from ._waitqueue import Waiter, WaitQueue

__all__ = [
    "DeadlockError",
    "add_deadlock_listener",
    "detection_enabled",
    "set_detection",
    "check",
    "subscribe",
    "wait_description",
]


class DeadlockError(RuntimeError):
    """A wait that can never end: it would close a cycle of waiting threads.

    ``report`` is the text of the report (also the exception's message);
    ``threads`` names the threads of the cycle, starting with the one that raised.
    """

    def __init__(self, report: str, threads: list[str]) -> None:
        super().__init__(report)
        self.report = report
        self.threads = threads


#: [on]: one mutable cell, read by the wait queue before it parks.
enabled = [True]
_listeners: list[Callable[[DeadlockError], object]] = []

#: Guards every record's ``reported``.
_claim = _thread.allocate_lock()
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INF = math.inf


def set_detection(on: bool) -> bool:
    """Turn deadlock detection on or off; return the previous setting."""
    previous = enabled[0]
    enabled[0] = bool(on)
    return previous


def detection_enabled() -> bool:
    """True if a wait that would close a cycle raises ``DeadlockError``."""
    return enabled[0]


def add_deadlock_listener(listener: Callable[[DeadlockError], object]) -> Callable[[], None]:
    """Call ``listener(error)`` for every ``DeadlockError`` found from now on, in the
    thread that finds it, before it is raised; return a function that removes it.

    A listener runs inside the wait that found the cycle: an Exception it raises is
    ignored, and a Ctrl-C is held back until it returns (the wait may be one that
    must not be interrupted, a Condition taking its lock back), so keep it short.
    """
    return subscribe(_listeners, listener)


def subscribe(listeners: list[Any], listener: Any) -> Callable[[], None]:
    """Append ``listener`` to ``listeners``; return a function that removes it (once)."""
    listeners.append(listener)

    def remove() -> None:
        try:
            listeners.remove(listener)
        except ValueError:
            pass

    return remove


class _Edge:
    """One parked thread, as read: its wait and the threads its wait needs."""

    __slots__ = ("rec", "node", "seq", "resource", "operation", "cancellable", "holders")

    def __init__(
        self,
        rec: ThreadRecord,
        node: Waiter,
        seq: int,
        resource: object,
        operation: str,
        cancellable: bool,
        holders: list[int] | None,
    ) -> None:
        self.rec = rec
        self.node = node
        self.seq = seq
        self.resource = resource
        self.operation = operation
        self.cancellable = cancellable
        self.holders = holders

    def same(self, other: _Edge | None) -> bool:
        return (
            other is not None
            and other.node is self.node
            and other.seq == self.seq
            and other.holders == self.holders
        )


def _holders(resource: object, operation: str) -> list[int] | None:
    method = getattr(resource, "_tk_holders", None)
    if method is None:
        return None
    try:
        holders: list[int] | None = method(operation)
    except Exception:
        return None
    return holders


def _read(rec: ThreadRecord) -> _Edge | None:
    """``rec``'s wait if it is parked for good on a resource with holders, else None."""
    node = rec.waiting
    if node is None:
        return None
    queue = node.queue
    with queue.mutex:
        if rec.waiting is not node or node.queue is not queue or node.seq == 0:
            return None
        if node not in queue.waiters:  # proves every field was set for this wait
            return None
        if node.state.value != "waiting" or node.deadline is not None:
            return None
        seq = node.seq
        resource = node.resource
        operation = node.operation
        cancellable = node.cancellable
    if armed[0] and effective_deadline(rec) != _INF:
        return None  # a deadline (or a cancel) will end this wait
    return _Edge(rec, node, seq, resource, operation, cancellable, _holders(resource, operation))


def _stuck_cycle(me: _Edge) -> list[_Edge] | None:
    """The cycle through ``me`` of threads stuck for good, or None (see the module)."""
    edges: dict[int, _Edge | None] = {me.rec.ident: me}
    order = [me]
    i = 0
    while i < len(order):
        edge = order[i]
        i += 1
        for ident in edge.holders or ():
            if ident in edges:
                continue
            rec = record_for(ident)
            found = _read(rec) if rec is not None else None
            edges[ident] = found
            if found is not None and found.holders:
                order.append(found)
    # Greatest fixed point: a thread is live if it is not parked for good, or if any
    # holder of what it waits on is live.
    live = {ident for ident, edge in edges.items() if edge is None or not edge.holders}
    changed = True
    while changed:
        changed = False
        for edge in order:
            ident = edge.rec.ident
            if ident not in live and any(h in live or h not in edges for h in edge.holders or ()):
                live.add(ident)
                changed = True
    mine = me.rec.ident
    if mine in live:
        return None
    # Every stuck thread the wait leads to, breadth first; reported only if the walk
    # comes back to ``me`` (else it is stuck behind threads deadlocked without it).
    knot = [me]
    seen = {mine}
    back = False
    for edge in knot:
        for ident in edge.holders or ():
            if ident == mine:
                back = True
            elif ident not in seen:
                seen.add(ident)
                found = edges[ident]
                assert found is not None
                knot.append(found)
    return knot if back else None


def _through(knot: list[_Edge]) -> list[_Edge]:
    """The edges of ``knot`` from which the walk leads back to ``knot[0]``: the cycle
    proper. A stuck thread the walk only reaches (stuck in a cycle of its own) is
    neither claimed nor reported: that cycle is found by the wait that closes it."""
    back = {knot[0].rec.ident}
    changed = True
    while changed:
        changed = False
        for edge in knot:
            ident = edge.rec.ident
            if ident not in back and any(h in back for h in edge.holders or ()):
                back.add(ident)
                changed = True
    return [edge for edge in knot if edge.rec.ident in back]


def reset_after_fork() -> None:
    """In a forked child: a fresh claim mutex (a vanished thread may have held it)."""
    global _claim
    _claim = _thread.allocate_lock()


def check(queue: WaitQueue, node: Waiter, cancellable: bool, holders: list[int]) -> None:
    """Raise ``DeadlockError`` if ``node``'s wait closes a cycle.

    Called by ``WaitQueue.park`` before it parks for good (no timeout) on a resource
    whose ``holders`` (its ``_tk_holders``) are all parked: ``park`` has already
    taken the common way out, a holder that is running. The wait was published when
    it was queued (``_waitqueue._publish``). A wait with a timeout or a deadline never
    comes here: it ends by itself, and ``threading``'s contract (a False return,
    TimeoutError) stands, since a timed wait that gives up and backs off is how
    programs avoid deadlocks.
    """
    rec = node.record
    if cancellable and armed[0] and effective_deadline(rec) != _INF:
        return  # a scope's deadline (or a cancel) ends this wait
    me = _Edge(rec, node, node.seq, node.resource, node.operation, cancellable, holders)
    cycle = _stuck_cycle(me)
    if cycle is None:
        return
    # The second read (see the module docstring): every edge as it was.
    for edge in cycle:
        again = me if edge is me else _read(edge.rec)
        if again is not me and not edge.same(again):
            return
        if again is me and _holders(node.resource, node.operation) != holders:
            return
    with queue.mutex:
        if node.state.value != "waiting":
            return  # released meanwhile: this wait succeeds
    cycle = _through(cycle)
    with _claim:
        # Two threads closing the cycle at once may both find it: the first to get
        # here reports it, and the other, whose wait it counted, parks (the first's
        # unwinding frees it). A new wait on the same stuck threads is a new report.
        if rec.reported == me.seq:
            return
        for edge in cycle:
            edge.rec.reported = edge.seq
    error = DeadlockError(_report(cycle), [thread_label(e.rec.ident) for e in cycle])
    for listener in list(_listeners):
        try:
            listener(error)
        except Exception:
            pass
    if cancellable:
        raise error
    for edge in cycle[1:]:
        if edge.cancellable:
            edge.rec.doomed = (edge.seq, error)
            edge.rec.unpark()
            return


def _in_runtime(filename: str) -> bool:
    """True for threadkit's own code; the command line's demo counts as a program."""
    return filename.startswith(_PACKAGE) and not filename.endswith("_cli.py")


def _where(frame: FrameType | None) -> str:
    """``file:line in function`` of the innermost frame outside threadkit."""
    while frame is not None and _in_runtime(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "?"
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"


def _describe(resource: object) -> str:
    try:
        return repr(resource)
    except Exception:
        return f"<{type(resource).__name__} object>"


def _held_as(resource: object, operation: str, ident: int) -> str | None:
    """How thread ``ident`` holds up waiters on ``resource``: a resource may say
    (``_tk_held_as``); a lock is simply held."""
    method = getattr(resource, "_tk_held_as", None)
    if method is None:
        return f"holding {_describe(resource)}"
    try:
        text: str | None = method(operation, ident)
    except Exception:
        return None
    return text


def _label(resource: object) -> str:
    """A short, non-recursive name for ``resource`` (a thread's or a task's repr may
    itself describe a wait, and a join cycle would recurse)."""
    method = getattr(resource, "_tk_label", None)
    if method is not None:
        try:
            return str(method())
        except Exception:
            pass
    return _describe(resource)


def wait_description(ident: int | None) -> str | None:
    """``"waits to acquire <...>"``: what thread ``ident`` is parked on now, or None.

    For reprs and the dump: read without a lock, so it may be a moment stale.
    """
    rec = record_for(ident) if ident is not None else None
    node = rec.waiting if rec is not None else None
    if node is None or node.state.value != "waiting":
        return None
    resource, operation = node.resource, node.operation
    if resource is None:
        return None
    phrase = _PHRASES.get(operation, f"waits to {operation}")
    return f"{phrase} {_label(resource)}"


_PHRASES = {
    "acquire": "waits to acquire",
    "join": "waits for the end of",
    "result": "waits for the result of",
    "spawn": "waits for room to spawn into",
}


def _report(cycle: list[_Edge]) -> str:
    frames: dict[int, Any] = sys._current_frames()
    me = cycle[0].rec.ident
    count = len(cycle)
    how = f"{count} threads wait for each other" if count > 1 else "a thread waits for itself"
    lines = [f"deadlock: {how}"]
    for edge in cycle:
        ident = edge.rec.ident
        frame = sys._getframe(2) if ident == me else frames.get(ident)
        phrase = _PHRASES.get(edge.operation, f"waits to {edge.operation}")
        lines.append(f"  {thread_label(ident)} {phrase} {_label(edge.resource)}")
        lines.append(f"      at {_where(frame)}")
        holding: list[str] = []
        for other in cycle:
            if ident in (other.holders or ()):
                held = _held_as(other.resource, other.operation, ident)
                if held is not None and held not in holding:
                    holding.append(held)
        lines.extend(f"      {held}" for held in holding)
    del frames
    return "\n".join(lines)
