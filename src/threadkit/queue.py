"""Queues for threads: a drop-in for the stdlib's ``queue`` whose waits threadkit can cancel.

``Queue``, ``LifoQueue``, ``PriorityQueue`` and ``SimpleQueue`` have the stdlib's
signatures, semantics and errors, with ``Queue.shutdown()`` and ``ShutDown`` (the
semantics ``queue`` has from 3.13 on) on every Python version. Every blocking
``get``, ``put`` and ``join`` is a threadkit cancellation point: ``Thread.cancel()``,
a cancel scope or a deadline wakes it at once, and it is atomic under Ctrl-C.

``Empty`` is the stdlib's own ``queue.Empty``; ``Full`` and ``ShutDown`` are this
module's (``queue``'s would load the stdlib's ``threading``): catch these.
"""

from ._queue import Empty, Full, LifoQueue, PriorityQueue, Queue, ShutDown, SimpleQueue

__all__ = [
    "Empty",
    "Full",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "ShutDown",
    "SimpleQueue",
]
