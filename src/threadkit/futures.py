"""A thread pool that threadkit can cancel: a drop-in for ``concurrent.futures``' thread side.

``ThreadPoolExecutor`` has the stdlib's signature and behaviour (and is an instance
of ``concurrent.futures.ThreadPoolExecutor``), runs its calls on threadkit's worker
threads, and adds opt-in options: ``max_pending`` (a bounded queue: ``submit``
waits), ``cancel_running`` (``Future.cancel()`` reaches a running call),
``inherit_context`` (calls run in the submitter's context and cancel scopes) and
``report_uncollected`` (failures nobody looked at are reported). A Ctrl-C inside
its ``with`` block cancels everything and leaves with one press.

``Future`` and the exceptions are ``concurrent.futures``' own. ``wait`` and
``as_completed`` are the stdlib's, made cancellation points; they accept any
futures. Waiting on a future made by this executor (``result``, ``exception``) is
a cancellation point too.

Importing this module imports ``concurrent.futures``, and so the stdlib's
``threading`` unless threadkit stands in for it.
"""

from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    InvalidStateError,
    TimeoutError,
)

from ._executor import BrokenThreadPool, ThreadPoolExecutor, as_completed, wait

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "BrokenExecutor",
    "BrokenThreadPool",
    "CancelledError",
    "Executor",
    "Future",
    "InvalidStateError",
    "ThreadPoolExecutor",
    "TimeoutError",
    "as_completed",
    "wait",
]
