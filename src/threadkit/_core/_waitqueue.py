"""The wait queue: the one place in threadkit where a thread blocks.

The idea
--------
This is trio's ``ParkingLot`` made thread-safe, with the waiter-status discipline of
Java's ``AbstractQueuedSynchronizer``. A ``WaitQueue`` is a FIFO of ``Waiter`` nodes
under a small mutex. A thread that must wait appends a node (under the mutex), drops
the mutex, and parks on its own parker until the node leaves ``WAITING``. Primitives
(Lock, Condition, Event, ...) keep their own state and decide *when* to wait and *whom*
to wake; the queue only guarantees the waiting is right.

One winner per wait
-------------------
A node's state moves exactly once, under the queue's mutex, from ``WAITING`` to one of
``SIGNALLED``, ``TIMED_OUT`` or ``ABANDONED`` (the waiter left because an exception,
such as KeyboardInterrupt, interrupted it). Whoever makes the move owns the outcome:

1. A waker pops the node and marks it ``SIGNALLED`` under the mutex, then unparks the
   waiter *after* dropping the mutex (so the woken thread never meets a held mutex).
2. A waiter whose deadline passes takes the mutex. If its node is still ``WAITING``
   it marks it ``TIMED_OUT`` and removes it: no waker can pick it any more. If the
   node is already ``SIGNALLED``, the signal won the race and the wait succeeded.
3. A waiter interrupted by an exception takes the mutex. If its node is still
   ``WAITING`` it becomes ``ABANDONED``. If it was already ``SIGNALLED``, the signal
   was meant for a thread that will not use it, so the primitive's ``pass_on``
   callback hands it to the next waiter: a notify, a release or a permit is never
   lost to a waiter that gave up.

Because a signal only ever picks a node that is still ``WAITING``, a signal cannot be
swallowed by a waiter that already timed out: that waiter removed itself first, so the
signal goes to the next one in line.

The mutex
---------
A queue owns a mutex, or shares the one its primitive already uses to guard its own
state (Semaphore, Event, Barrier): then "check the state, then enqueue" and "change
the state, then pick a waiter" are each one critical section, and no wake-up can fall
between them. The mutex is a ``_thread`` lock, held only for a few bytecodes and never
while blocking or calling user code, so taking it never parks.

Rejected alternatives: one ``_thread`` lock per waiter as ``threading.Condition`` uses
(an allocation per wait and no single place to observe waiters); lazy removal of
timed-out nodes (a loop of ``Event.wait(0.01)`` would grow the queue without bound).
"""

from __future__ import annotations

import _thread
import enum
import math
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from . import _interrupts
from ._cancel import Cancelled, armed, cancel_source, effective_deadline
from ._deadlock import check as _check_deadlock
from ._deadlock import enabled as _detect
from ._interrupts import block, decided, install
from ._registry import ThreadRecord, _records

__all__ = ["WaitQueue", "WaitState", "Waiter", "wake", "wake_one"]

TIMEOUT_MAX: float = _thread.TIMEOUT_MAX
#: The record of a live thread by ident (the registry's dict, never replaced).
_record_of = _records.get
_INF = math.inf


class WaitState(enum.Enum):
    """Where a ``Waiter`` is in its one-way life."""

    WAITING = "waiting"
    SIGNALLED = "signalled"
    TIMED_OUT = "timed out"
    ABANDONED = "abandoned"


WAITING = WaitState.WAITING
SIGNALLED = WaitState.SIGNALLED
TIMED_OUT = WaitState.TIMED_OUT
ABANDONED = WaitState.ABANDONED


class Waiter:
    """One thread's wait on one queue. ``state`` is written under the queue's mutex.

    Each thread reuses one node for all its waits. That is safe because a thread
    waits on one thing at a time and a node is reused only after its last wait
    ended: by then its state was set, under the mutex, by whoever won, and the node
    is in no queue. A waker that still holds it touches only ``record``.
    """

    __slots__ = (
        "record",
        "queue",
        "state",
        "resource",
        "operation",
        "batch",
        "index",
        "head",
        "outer",
        "seq",
        "since",
        "deadline",
        "cancellable",
    )

    def __init__(
        self, record: ThreadRecord, queue: WaitQueue, resource: object, operation: str
    ) -> None:
        self.record = record
        #: The queue this node is (or was) in.
        self.queue = queue
        self.state = WAITING
        #: What the thread waits on and how, for diagnostics ("acquire", "wait", ...).
        self.resource = resource
        self.operation = operation
        #: The batch signalled together with this node, while this node's thread
        #: still has to pass the wake-up on (see ``wake``); None otherwise.
        self.batch: _Batch | None = None
        #: This node's place in ``batch``.
        self.index = 0
        #: True for the first node of a batch signalled together: ``wake`` unparks it.
        self.head = False
        #: The wait this one interrupted, if any: a signal handler or a finaliser can
        #: block while its thread is between enqueueing and parking.
        self.outer: Waiter | None = None
        #: The number of this wait once published for deadlock detection (0 before;
        #: see ``_deadlock``), and how the wait was made: when it began (monotonic),
        #: the call's own deadline, whether it is a cancellation point. For
        #: diagnostics; ``seq`` and the rest are written under the mutex.
        self.seq = 0
        self.since = 0.0
        self.deadline: float | None = None
        self.cancellable = True

    def __repr__(self) -> str:
        return f"<Waiter {self.record.ident} {self.operation} {self.state.value}>"


def wake(nodes: list[Waiter]) -> None:
    """Start waking ``nodes``, which the caller marked SIGNALLED under the mutex.

    A batch signalled together (``take_locked``, ``take_all_locked``) is woken by its
    own threads: only its head is unparked here, and each woken thread passes the
    wake-up on as it leaves its wait (``_pass_baton``). Every node is already
    SIGNALLED, so the outcome of each wait is decided at once; only the moment each
    thread resumes is staggered.

    How it is passed on adapts to the machine. Each node is responsible for the
    part of the batch after it; it wakes the next node and hands it the rest, a
    chain, as long as its own hand-off was quick (under ``SLOW_HANDOFF``). A slow
    hand-off means the CPUs or the GIL are busy: that node splits its part in two
    and wakes the first node of each, so the batch fans out as a tree and resumes
    in about log2(n) slow hand-offs instead of n.

    Both pure shapes were measured and lost somewhere. Waking all at once makes
    thousands of threads fight for the CPUs (and the GIL), and the waker spends its
    time slice on syscalls for threads that cannot run yet. A chain keeps about one
    of them runnable at a time, the fastest while nothing else runs (5000 waiters
    in 0.4x ``threading``'s time), but beside two CPU-bound threads each hop waits
    for a CPU or the GIL: 200 waiters took 1.8 s to resume on 3.14 (``threading``:
    0.05 s). A binary tree took 0.2 s there, but 1.0-1.2x ``threading``'s time
    for 3000-5000 waiters on an idle machine. Adapting keeps the chain's 0.5x idle
    and the tree's 0.15 s under load.
    """
    for node in nodes:
        if node.head:
            wake_one(node)


def wake_one(node: Waiter) -> None:
    """Wake ``node``, taken alone (``take_newest_locked``), after dropping the mutex."""
    try:
        node.record.parker.release()
    except RuntimeError:
        pass  # it already had a permit


#: A hand-off slower than this means the CPUs (or the GIL) are busy: fan out.
SLOW_HANDOFF = 0.001


class _Batch:
    """The hand-off state of one batch, kept off the nodes: a node is reused by its
    thread as soon as it has left, while a slower member of its old batch may still
    be handing it a part. Written only under the mutex of the queue that linked it."""

    __slots__ = ("nodes", "end", "woken_at")

    def __init__(self, nodes: list[Waiter], now: float) -> None:
        count = len(nodes)
        self.nodes = nodes
        #: For each node, the end of the part of the batch it must wake.
        self.end = [count] * count
        #: For each node, when it was (last) unparked by the one before it.
        self.woken_at = [now] * count


def _link(nodes: list[Waiter]) -> None:
    """Link a batch of nodes signalled together into its wake tree (see ``wake``);
    the caller holds the mutex."""
    main = _interrupts._main_ident
    if any(node.record.ident == main for node in nodes):
        # The main thread is woken on its own, never made to pass a wake-up on: a
        # signal handler runs in it, and one that waits for the others (joins the
        # workers it just told to stop) would wait for ever for threads that only
        # its own leaving would wake.
        for node in nodes:
            if node.record.ident == main:
                node.head = True
                node.batch = None
        nodes = [node for node in nodes if node.record.ident != main]
    count = len(nodes)
    batch = _Batch(nodes, monotonic())
    for i, node in enumerate(nodes):
        node.head = i == 0
        # The last node has nobody to wake: it leaves without taking the mutex.
        node.batch = batch if i + 1 < count else None
        node.index = i


def _wake_successors(node: Waiter) -> None:
    """Pass the wake-up on from ``node`` (see ``wake``); the caller holds the mutex.

    ``node`` is responsible for waking the part of its batch after it, up to
    ``batch.end[node.index]``. It wakes the next node and hands it the rest; if its own
    hand-off was slow, it splits the rest in two and wakes the first node of each.
    """
    batch = node.batch
    if batch is None:
        return
    nodes, ends, woken_at = batch.nodes, batch.end, batch.woken_at
    index = node.index
    first = index + 1
    end = ends[index]
    if first < end:
        now = monotonic()
        if end - first > 1 and now - woken_at[index] > SLOW_HANDOFF:
            middle = (first + end + 1) // 2
            ends[middle] = end
            woken_at[middle] = now
            wake_one(nodes[middle])
            end = middle
        ends[first] = end
        woken_at[first] = now
        wake_one(nodes[first])
    node.batch = None


def _fresh_node(record: ThreadRecord, queue: WaitQueue, resource: object, operation: str) -> Waiter:
    """The thread's reusable node, reset; a new one if a wait is already under way."""
    node = record.node
    outer = record.waiting
    if node is None or outer is not None:
        node = Waiter(record, queue, resource, operation)
        node.outer = outer
        if record.node is None:
            record.node = node
        return node
    node.seq = 0
    node.state = WAITING
    node.queue = queue
    node.resource = resource
    node.operation = operation
    node.batch = None
    node.outer = None
    return node


def _publish(record: ThreadRecord, node: Waiter, deadline: float | None, cancellable: bool) -> None:
    """Number the wait and record how it was made, under the queue's mutex, in the
    hold that queues it: what another thread's deadlock check reads (``_deadlock``)."""
    node.deadline = deadline
    node.cancellable = cancellable
    seq = record.seq + 1
    record.seq = seq
    node.seq = seq


class WaitQueue:
    """A thread-safe FIFO of parked threads with exactly one outcome per wait."""

    __slots__ = ("mutex", "waiters", "__weakref__")

    def __init__(self, mutex: Any = None) -> None:
        #: Guards ``waiters`` and every node's ``state``. May be the primitive's own.
        self.mutex: Any = _thread.allocate_lock() if mutex is None else mutex
        #: Nodes in arrival order; only WAITING nodes are ever in it.
        self.waiters: deque[Waiter] = deque()

    def __len__(self) -> int:
        return len(self.waiters)

    # -- enqueueing ---------------------------------------------------------------------
    def add_locked(
        self,
        record: ThreadRecord,
        resource: object,
        operation: str,
        deadline: float | None = None,
        cancellable: bool = True,
    ) -> Waiter:
        """Append ``record``'s node, WAITING; the caller holds ``mutex``.

        ``deadline`` and ``cancellable`` are what the wait will pass to ``park``:
        they are published with the node, for deadlock detection (``_publish``).
        """
        node = _fresh_node(record, self, resource, operation)
        # Recorded before it is queued, so that an interruption right after the
        # append can find the node and withdraw it (see ``abandon``).
        record.waiting = node
        self.waiters.append(node)
        _publish(record, node, deadline, cancellable)
        return node

    def add(
        self,
        record: ThreadRecord,
        resource: object,
        operation: str,
        deadline: float | None = None,
        cancellable: bool = True,
    ) -> Waiter:
        """Append ``record``'s node, WAITING, taking ``mutex`` (see ``add_locked``)."""
        node = _fresh_node(record, self, resource, operation)
        record.waiting = node
        with self.mutex:
            self.waiters.append(node)
            _publish(record, node, deadline, cancellable)
        return node

    # -- waking -------------------------------------------------------------------------
    def take_locked(self, n: int = 1) -> list[Waiter]:
        """Mark up to ``n`` oldest waiters SIGNALLED and return them; caller holds mutex.

        The caller must pass the result to ``wake`` after dropping the mutex.
        """
        waiters = self.waiters
        taken = []
        while waiters and n > 0:
            taken.append(waiters.popleft())
            n -= 1
        # Link first, publish second: a waiter that leaves on its own (a timeout)
        # the instant it sees SIGNALLED must already find its successor.
        _link(taken)
        for node in taken:
            node.state = SIGNALLED
        return taken

    def take_all_locked(self) -> list[Waiter]:
        """Mark every waiter SIGNALLED and return them; the caller holds ``mutex``."""
        taken = list(self.waiters)
        self.waiters.clear()
        _link(taken)  # before SIGNALLED is visible, as in take_locked
        for node in taken:
            node.state = SIGNALLED
        return taken

    def take_newest_locked(self) -> Waiter | None:
        """Mark the most recent waiter SIGNALLED and return it, or None; caller holds mutex.

        Last in, first out: for a cache of idle threads, where reusing the thread that
        parked last keeps the others idle long enough to time out. Pass the node to
        ``wake`` after dropping the mutex.
        """
        if not self.waiters:
            return None
        node = self.waiters.pop()
        node.batch = None
        node.head = True
        node.state = SIGNALLED
        return node

    def unpark(self, n: int = 1) -> int:
        """Wake up to ``n`` waiters in FIFO order; return how many were woken."""
        if n == 1:
            # The common case (Lock release, notify()) without building a batch.
            with self.mutex:
                if not self.waiters:
                    return 0
                node = self.waiters.popleft()
                node.batch = None
                node.state = SIGNALLED
            wake_one(node)
            return 1
        with self.mutex:
            taken = self.take_locked(n)
        wake(taken)
        return len(taken)

    def unpark_all(self) -> int:
        """Wake every waiter; return how many were woken."""
        with self.mutex:
            taken = self.take_all_locked()
        wake(taken)
        return len(taken)

    # -- parking ------------------------------------------------------------------------
    def park(
        self,
        node: Waiter,
        deadline: float | None,
        pass_on: Callable[[], object] | None = None,
        cancellable: bool = True,
        interruptible: bool = True,
    ) -> WaitState:
        """Block until ``node`` is signalled or ``deadline`` (monotonic) passes.

        Returns the node's final state, SIGNALLED or TIMED_OUT. A cancellation point
        (unless ``cancellable`` is false): if the thread's cancel scopes are cancelled,
        or one's deadline passes, raises ``Cancelled`` instead. If an exception
        (``Cancelled``, KeyboardInterrupt) ends the wait, the node is resolved before
        it propagates: taken out of the queue if still waiting or, if a signal had
        already reached it, the signal is handed on through ``pass_on``.

        Ctrl-C interrupts the wait (the park is the one place threadkit's SIGINT
        handler lets it through at once, see ``_interrupts``) unless
        ``interruptible`` is false: then a Ctrl-C is held back until the wait ends
        and raised after the call that waited returns.
        """
        rec = node.record
        if not decided[0]:
            install()  # the main thread's first wait: take SIGINT (see _interrupts)
        sleep = block if interruptible else _block_protected
        try:
            node.since = monotonic()
            # For the dump; a wait that deadlock detection reads was published with
            # this same deadline when it was queued.
            node.deadline = deadline
            if _detect[0] and deadline is None:
                holders_of = getattr(type(node.resource), "_tk_holders", None)
                if holders_of is not None:
                    # The deadlock check's first step, here because it nearly always
                    # ends it: a holder is running, so this wait is not stuck now (and
                    # if that holder parks, its own check walks).
                    try:
                        holders = holders_of(node.resource, node.operation)
                    except Exception:
                        holders = None
                    if holders:
                        for ident in holders:
                            holder = _record_of(ident)
                            if holder is None or holder.waiting is None:
                                break
                        else:
                            _check_deadlock(self, node, cancellable, holders)
            parker = rec.parker
            while node.state is WAITING:
                if rec.doomed is not None:
                    self._doomed(node)
                if cancellable and armed[0]:
                    scope = cancel_source(rec)
                    if scope is not None:
                        raise Cancelled(scope)
                    wake_at = effective_deadline(rec)
                    if deadline is not None and deadline < wake_at:
                        wake_at = deadline
                elif deadline is None:
                    wake_at = _INF
                else:
                    wake_at = deadline
                if wake_at == _INF:
                    sleep(parker, None)
                    continue
                remaining = wake_at - monotonic()
                if remaining > 0:
                    sleep(parker, min(remaining, TIMEOUT_MAX))
                elif deadline is not None and deadline <= wake_at:
                    # The call's own timeout: threading's meaning, a False return.
                    with self.mutex:
                        if node.state is WAITING:
                            node.state = TIMED_OUT
                            self.waiters.remove(node)
                    break
                # Otherwise a scope's deadline passed: the next round raises Cancelled.
            # The exit path stays inside the try: an interruption anywhere before the
            # return still resolves the node (and passes on a signal it carried).
            state = node.state
            node.resource = None  # the node is reused: it must not keep that alive
            # Passed on before ``waiting`` is restored: until then a wait made by a
            # signal handler or a finaliser here gets a node of its own, instead of
            # reusing (and resetting) this one while it still holds the baton.
            if node.batch is not None:
                self._pass_baton(node)
            rec.waiting = node.outer
            return state
        except BaseException:
            self.abandon(node, pass_on)
            raise

    def wait_until(
        self,
        record: ThreadRecord,
        resource: object,
        operation: str,
        ready: Callable[[], object],
        deadline: float | None = None,
        cancellable: bool = True,
    ) -> bool:
        """Park until ``ready()`` is true; return False if ``deadline`` passed first.

        ``ready`` is checked under ``mutex``, and whoever makes it true wakes the
        queue's waiters after (``take_all_locked`` and ``wake``), so no wake-up can
        fall between the check and the park. For waits on a state that, once
        reached, stays (a thread or a task has ended): a signal that reaches a
        waiter leaving with an exception needs no handing on. A cancellation point
        unless ``cancellable`` is false.
        """
        try:
            while True:
                with self.mutex:
                    if ready():
                        return True
                    node = self.add_locked(record, resource, operation, deadline, cancellable)
                if self.park(node, deadline, _noop, cancellable) is TIMED_OUT:
                    with self.mutex:  # ready() may change state: as above, under it
                        return bool(ready())
        except BaseException:
            self.cancel_wait(record, _noop)
            raise

    def _doomed(self, node: Waiter) -> None:
        """Raise the ``DeadlockError`` another thread found for this wait, if it is
        this wait's (see ``_deadlock``: the victim of a cycle closed by a wait that
        cannot raise)."""
        rec = node.record
        doomed = rec.doomed
        rec.doomed = None
        if doomed is not None and doomed[0] == node.seq:
            raise doomed[1]

    def _pass_baton(self, node: Waiter) -> None:
        """Pass the wake-up on from ``node`` to the rest of its batch (see ``wake``).

        ``node.batch`` is cleared only after the unparks, so an interruption in
        between makes the caller's ``abandon`` pass it on again (spurious wake-ups,
        harmless) rather than never. A node that leaves before the one ahead of it
        has handed it its part (a timeout) passes on to the end of the batch: the
        later hand-over only wakes nodes twice.
        """
        with self.mutex:
            _wake_successors(node)

    def abandon(self, node: Waiter, pass_on: Callable[[], object] | None = None) -> bool:
        """Withdraw ``node`` from the queue; return True if it had been signalled.

        A signalled node's signal is handed on through ``pass_on`` (by default, to the
        next waiter) so that it is not lost.
        """
        with self.mutex:
            signalled = node.state is SIGNALLED
            # Whatever the state (an interruption may have come half-way through a
            # timeout or an enqueue), the node leaves the queue and its outcome is
            # settled: a second abandon() finds nothing to hand on.
            node.state = ABANDONED
            try:
                self.waiters.remove(node)
            except ValueError:
                pass
        if node.batch is not None:
            self._pass_baton(node)  # before ``waiting`` is restored, as in ``park``
        node.record.waiting = node.outer
        if signalled:
            if pass_on is None:
                self.unpark(1)
            else:
                pass_on()
        return signalled

    def cancel_wait(
        self, record: ThreadRecord, pass_on: Callable[[], object] | None = None
    ) -> None:
        """Resolve ``record``'s wait in this queue after an exception outside ``park``.

        For a primitive's ``except`` clause around "enqueue, then park": it withdraws
        the node if the exception came after the enqueue and before (or instead of)
        the park, and does nothing if there was no wait or ``park`` already resolved it.
        """
        node = record.waiting
        if node is not None and node.queue is self:
            self.abandon(node, pass_on)

    def withdraw_locked(self, node: Waiter) -> bool:
        """Take a WAITING ``node`` out; return False if it was already signalled.

        The caller holds ``mutex`` and owns whatever a signal carried.
        """
        if node.state is WAITING:
            self.waiters.remove(node)
            node.state = ABANDONED
            node.record.waiting = node.outer
            return True
        node.record.waiting = node.outer
        _wake_successors(node)
        return False

    def forget_locked(self, node: Waiter) -> None:
        """Remove a node of a thread that no longer exists (after fork); holds mutex."""
        try:
            self.waiters.remove(node)
        except ValueError:
            pass
        node.state = ABANDONED
        _wake_successors(node)


def _block_protected(parker: Any, timeout: float | None) -> bool:
    """``block``'s twin for a wait that Ctrl-C must not end (protected code)."""
    if timeout is None:
        return bool(parker.acquire())
    return bool(parker.acquire(True, timeout))


def _noop() -> None:
    """A ``pass_on`` for waits whose signal needs no handing on."""


def deadline_after(timeout: float | None) -> float | None:
    """Return the monotonic deadline ``timeout`` seconds from now (None: no deadline)."""
    if timeout is None:
        return None
    return monotonic() + timeout
