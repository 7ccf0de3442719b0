"""Time-based calls of the core: ``sleep``, ``checkpoint`` and the deadline clock."""

from __future__ import annotations

import _thread
import errno
import os
import sys
from operator import index
from time import monotonic
from typing import Any

from ._cancel import armed, check_cancelled, effective_deadline
from ._registry import current_record
from ._waitqueue import WaitQueue

__all__ = ["checkpoint", "current_effective_deadline", "current_time", "sleep"]

current_time = monotonic


def checkpoint() -> None:
    """A cancellation point that never blocks: raise ``Cancelled`` if cancelled."""
    if armed[0]:
        check_cancelled(current_record())


# What time.sleep accepts, and how it says no, is CPython's ``_PyTime_FromSecondsObject``
# (the duration in nanoseconds must fit a signed 64-bit integer), which changes from
# version to version: 3.11-3.13 take floats and integers (``__index__``), 3.14 words
# its TypeError differently, 3.15 also takes anything with ``__float__`` (Decimal,
# Fraction). Rather than copy each version's rules, ``_sleep_length`` hands whatever
# is not a plain float or int in range to that very function: a fresh lock's
# ``acquire(True, timeout)`` converts its timeout with it, then takes the free lock at
# once. Its only words of its own are for a negative timeout, checked here instead.
#: Plain floats and ints up to these need no conversion: ``seconds * 1e9`` (rounded
#: up, as time.sleep rounds) stays below 2**63.
_FLOAT_LIMIT_NS = 2.0**63
_INT_LIMIT = (2**63 - 1) // 10**9
#: On Linux time.sleep sleeps until an absolute deadline, the monotonic clock plus the
#: duration, in int64 nanoseconds; a sum past 2**63 - 1 wraps negative and
#: ``clock_nanosleep`` refuses it (OSError EINVAL), so a duration that close to the
#: limit (closer than the clock's value, the time since boot) is refused too. Not
#: mirrored on other systems, whose time.sleep waits differently.
_DEADLINE_LIMIT = (2**63 - 1) / 1e9 if sys.platform.startswith("linux") else float("inf")


def _sleep_length(seconds: Any) -> float:
    """``seconds`` (not a plain float or int in range) as a number of seconds if
    ``time.sleep`` would take it; otherwise raise what ``time.sleep`` raises for it
    (TypeError, ValueError, OverflowError)."""
    try:
        _thread.allocate_lock().acquire(True, seconds)
    except ValueError:
        try:
            negative = _number(seconds) < 0
        except ValueError:  # 3.15: Decimal('sNaN') refuses float() too
            negative = False
        if not negative:
            raise  # NaN, in time.sleep's words
        raise ValueError("sleep length must be non-negative") from None
    value = _number(seconds)
    if value < 0:  # -1 exactly, which the lock took for "no timeout"
        raise ValueError("sleep length must be non-negative")
    return value


def _number(seconds: Any) -> float:
    """A duration CPython's conversion took, read as it reads it: a float's or an
    int's own value (not a subclass's ``__float__``), else ``__index__``, else (3.15)
    ``__float__``. Such a method is called a second time here."""
    if isinstance(seconds, float):
        return float.__float__(seconds)
    if isinstance(seconds, int):
        return int.__index__(seconds)
    if hasattr(type(seconds), "__index__"):
        return index(seconds)
    return float(seconds)


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, like ``time.sleep`` but as a cancellation point.

    Raises ``Cancelled`` at once if the calling thread is cancelled, or as soon as it
    is cancelled (or a scope's deadline passes) during the sleep. Refuses, at the
    call, what ``time.sleep`` refuses on this Python, with the same exception:
    TypeError for what is not a number, ValueError for a negative or NaN duration,
    OverflowError for one too long to count in nanoseconds, and (Linux) OSError
    EINVAL for one whose deadline the monotonic clock cannot count.
    """
    kind = type(seconds)
    if not (
        (kind is float and seconds >= 0.0 and seconds * 1e9 < _FLOAT_LIMIT_NS)
        or (kind is int and 0 <= seconds <= _INT_LIMIT)
    ):
        seconds = _sleep_length(seconds)
    if seconds == 0:
        if armed[0]:
            check_cancelled(current_record())
        return
    deadline = monotonic() + seconds
    if deadline > _DEADLINE_LIMIT:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    rec = current_record()
    if armed[0]:
        check_cancelled(rec)
    queue = WaitQueue()
    try:
        node = queue.add(rec, queue, "sleep")
        queue.park(node, deadline)
    except BaseException:
        queue.cancel_wait(rec)
        raise


def current_effective_deadline() -> float:
    """The nearest deadline of the calling thread's scopes (``current_time()`` clock).

    ``-inf`` if the thread is cancelled already, ``+inf`` if no scope has a deadline.
    """
    return effective_deadline(current_record())
