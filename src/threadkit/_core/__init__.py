"""threadkit's core: parker, wait queue, cancel scopes and thread registry.

Everything in threadkit that blocks ends in ``WaitQueue.park``; everything above this
package uses only the names exported here. This package imports nothing above it.
"""

from __future__ import annotations

from . import _waitqueue
from ._cancel import (
    Cancelled,
    CancelScope,
    TaskScopes,
    armed,
    attach_scopes,
    cancel_task,
    check_cancelled,
    detach_scopes,
    enter_root,
    enter_task,
    exit_task,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    on_armed,
    scopes_of,
)
from ._cancel import reset_after_fork as _reset_cancel_after_fork
from ._deadlock import reset_after_fork as _reset_deadlock_after_fork
from ._deadlock import subscribe, wait_description
from ._interrupts import block as _block
from ._interrupts import install as install_interrupts
from ._interrupts import interruptible, is_main_module, set_main_thread
from ._interrupts import reset_after_fork as _reset_interrupts_after_fork
from ._interrupts import take_owed as take_owed_interrupt
from ._registry import (
    ThreadRecord,
    current_record,
    forked_before_reset,
    record_for,
    records,
    register_current,
    reset_after_fork,
    set_foreign_record_hook,
    set_namer,
    thread_label,
    unregister_current,
)
from ._timing import checkpoint, current_effective_deadline, current_time, sleep
from ._waitqueue import (
    ABANDONED,
    SIGNALLED,
    TIMED_OUT,
    WAITING,
    Waiter,
    WaitQueue,
    WaitState,
    deadline_after,
    wake,
    wake_one,
)

__all__ = [
    "CancelScope",
    "Cancelled",
    "TaskScopes",
    "armed",
    "attach_scopes",
    "cancel_task",
    "check_cancelled",
    "detach_scopes",
    "checkpoint",
    "current_effective_deadline",
    "current_time",
    "enter_root",
    "enter_task",
    "exit_task",
    "fail_after",
    "fail_at",
    "install_interrupts",
    "interruptible",
    "move_on_after",
    "take_owed_interrupt",
    "is_main_module",
    "move_on_at",
    "on_armed",
    "scopes_of",
    "set_foreign_record_hook",
    "sleep",
    "ABANDONED",
    "SIGNALLED",
    "TIMED_OUT",
    "WAITING",
    "ThreadRecord",
    "WaitQueue",
    "WaitState",
    "Waiter",
    "after_fork_in_child",
    "forked_before_reset",
    "current_record",
    "deadline_after",
    "record_for",
    "records",
    "register_current",
    "set_main_thread",
    "set_namer",
    "thread_label",
    "unregister_current",
    "waiting_on",
    "subscribe",
    "wait_description",
    "PARK_CODES",
    "wake",
    "wake_one",
]


#: The code of the frames a parked thread blocks in (for test helpers and benchmarks
#: that must tell "parked" from "about to park").
PARK_CODES = frozenset(
    {_block.__code__, _waitqueue._block_protected.__code__, WaitQueue.park.__code__}
)


def waiting_on(resource: object) -> list[ThreadRecord]:
    """Return the records of the threads waiting on ``resource`` right now: those
    whose node is in a wait queue, so that a wake-up sent now reaches them.

    A thread's record names its node a moment before the node is queued (so that
    an interruption in between can find it); that moment does not count, which is
    why each node is looked up in its queue, under the queue's mutex.
    """
    found = []
    for rec in records():
        node = rec.waiting
        if node is None:
            continue
        queue = node.queue
        # Everything again under the mutex: the thread may have reused its node
        # meanwhile (a notified Condition waiter taking the lock back).
        with queue.mutex:
            if (
                rec.waiting is node
                and node.queue is queue
                and node.resource is resource
                and node.state is WAITING
                and node in queue.waiters
            ):
                found.append(rec)
    return found


def after_fork_in_child() -> None:
    """Make the core consistent in a forked child.

    Only the forking thread survives a fork. Every other thread's record is dropped,
    and a node it left parked in a wait queue is taken out, so that a later wake-up is
    not spent on a thread that no longer exists. Such a queue's mutex may have been
    held by a vanished thread at the instant of the fork; it is replaced first.
    Held is what a non-blocking acquire says, not ``locked()``: that reads a flag
    which the C lock sets after taking, and clears before giving back, its
    semaphore, so a thread that vanished between the two left a lock that says
    unlocked and cannot be taken (children hung here, 3 in 3200 forks on a loaded
    3.11).
    """
    _reset_cancel_after_fork()
    _reset_interrupts_after_fork()
    _reset_deadlock_after_fork()
    for rec in reset_after_fork():
        node = rec.waiting
        if node is None:
            continue
        queue = node.queue
        mutex = queue.mutex
        if not mutex.acquire(False):
            mutex._at_fork_reinit()
            mutex.acquire()
        try:
            queue.forget_locked(node)
        finally:
            mutex.release()
