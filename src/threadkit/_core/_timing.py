"""Time-based calls of the core: ``sleep``, ``checkpoint`` and the deadline clock."""

from __future__ import annotations

import math
from time import monotonic

from ._cancel import armed, check_cancelled, effective_deadline
from ._registry import current_record
from ._waitqueue import WaitQueue

__all__ = ["checkpoint", "current_effective_deadline", "current_time", "sleep"]

current_time = monotonic


def checkpoint() -> None:
    """A cancellation point that never blocks: raise ``Cancelled`` if cancelled."""
    if armed[0]:
        check_cancelled(current_record())


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, like ``time.sleep`` but as a cancellation point.

    Raises ``Cancelled`` at once if the calling thread is cancelled, or as soon as it
    is cancelled (or a scope's deadline passes) during the sleep. ValueError for a
    negative or NaN duration, as ``time.sleep`` gives.
    """
    if math.isnan(seconds):
        raise ValueError("Invalid value NaN (not a number)")
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    rec = current_record()
    if armed[0]:
        check_cancelled(rec)
    if seconds == 0:
        return
    queue = WaitQueue()
    try:
        node = queue.add(rec, queue, "sleep")
        queue.park(node, monotonic() + seconds)
    except BaseException:
        queue.cancel_wait(rec)
        raise


def current_effective_deadline() -> float:
    """The nearest deadline of the calling thread's scopes (``current_time()`` clock).

    ``-inf`` if the thread is cancelled already, ``+inf`` if no scope has a deadline.
    """
    return effective_deadline(current_record())
