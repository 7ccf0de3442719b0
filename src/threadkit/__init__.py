"""threadkit: Python's ``threading``, rebuilt on one parking core.

``import threadkit as threading`` runs existing threaded code unchanged: every public
name of CPython's ``threading`` (3.11 to 3.15) is here with the same signature,
semantics and errors. On top of that, a thread keeps its outcome (``Thread.result()`` returns the
target's return value or raises its exception), and cancel scopes with deadlines
(``CancelScope``, ``move_on_after``, ``fail_after``, ``Thread.cancel()``) wake a thread
out of every threadkit blocking call, and a ``TaskGroup`` runs tasks in threads that
cannot outlive its ``with`` block, raising every failure together.
"""

from __future__ import annotations

import _thread
import sys
import types
from _thread import TIMEOUT_MAX
from _thread import error as ThreadError

from . import _threads
from ._core import (
    Cancelled,
    CancelScope,
    checkpoint,
    current_effective_deadline,
    current_time,
    fail_after,
    fail_at,
    move_on_after,
    move_on_at,
    sleep,
)
from ._core._deadlock import DeadlockError
from ._dump import dump, dump_on_signal
from ._iterators import concurrent_tee, serialize_iterator, synchronized_iterator
from ._standin import install, is_installed
from ._sync import (
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
)
from ._taskgroup import Spawner, Task, TaskGroup, as_completed
from ._threads import (
    ExceptHookArgs,
    Thread,
    Timer,
    active_count,
    current_thread,
    enumerate,
    excepthook,
    get_ident,
    get_native_id,
    getprofile,
    gettrace,
    local,
    main_thread,
    setprofile,
    setprofile_all_threads,
    settrace,
    settrace_all_threads,
    stack_size,
)

# Importable but outside __all__, as in threading: the deprecated camelCase aliases,
# what the interpreter's exit handling (_shutdown) and concurrent.futures
# (_register_atexit) call when threadkit stands in for threading in sys.modules, and
# the private names that libraries and CPython's own tests read (_active, _limbo,
# _dangling; _PyRLock, with _CRLock None: threadkit's RLock is written in Python).
from ._threads import __excepthook__ as __excepthook__
from ._threads import _active as _active
from ._threads import _after_fork as _after_fork
from ._threads import _DummyThread as _DummyThread
from ._threads import _limbo as _limbo
from ._threads import _MainThread as _MainThread
from ._threads import _newname as _newname
from ._threads import _register_atexit as _register_atexit
from ._threads import _shutdown as _shutdown
from ._threads import activeCount as activeCount
from ._threads import currentThread as currentThread

_PyRLock = RLock
_CRLock = None
_HAVE_THREAD_NATIVE_ID = True
_allocate_lock = _thread.allocate_lock
#: Held while the table of threads changes; whoever takes it sees ``_active`` and
#: ``_limbo`` still. Reentrant, as ``threading._active_limbo_lock`` is.
_active_limbo_lock = _threads._table_lock
_counter = _threads._counter
_start_new_thread = _threads._start_new
if _threads._start_joinable is not None:
    _start_joinable_thread = _threads._start_joinable


class _Module(types.ModuleType):
    """threadkit's module type: replacing one of the private hooks that ``threading``
    has and programs patch (the name counter, the function that starts OS threads,
    as CPython's own tests and some libraries do) reaches the code that uses it."""

    def __setattr__(self, name: str, value: object) -> None:
        target = _FORWARDED.get(name)
        if target is not None:
            setattr(_threads, target, value)
        if name == "_main_thread":
            # What main_thread() returns (gevent sets it); read back through
            # __getattr__, since a fork changes it too.
            _threads._main_thread = value  # type: ignore[assignment]
            return
        super().__setattr__(name, value)


_FORWARDED = {
    "_counter": "_counter",
    "_start_new_thread": "_start_new",
    "_start_joinable_thread": "_start_joinable",
}
sys.modules[__name__].__class__ = _Module


def __getattr__(name: str) -> object:
    if name == "_dangling":
        from ._threads import _dangling_threads

        return _dangling_threads()
    if name == "_main_thread":  # a fork makes the forking thread the main one
        return _threads._main_thread
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0.dev0"

# threading.__all__ of CPython 3.15 (3.13's plus the iterator helpers), in its order;
# the camelCase aliases are importable but, as in threading, not part of ``import *``.
__all__ = [
    "get_ident",
    "active_count",
    "Condition",
    "current_thread",
    "enumerate",
    "main_thread",
    "TIMEOUT_MAX",
    "Event",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Thread",
    "Barrier",
    "BrokenBarrierError",
    "Timer",
    "ThreadError",
    "ExceptHookArgs",
    "setprofile",
    "settrace",
    "local",
    "stack_size",
    "excepthook",
    "get_native_id",
    "getprofile",
    "gettrace",
    "serialize_iterator",
    "synchronized_iterator",
    "concurrent_tee",
    "setprofile_all_threads",
    "settrace_all_threads",
    # threadkit's own, beyond threading's:
    "CancelScope",
    "Cancelled",
    "checkpoint",
    "current_effective_deadline",
    "current_time",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "sleep",
    "Spawner",
    "Task",
    "TaskGroup",
    "as_completed",
    "install",
    "is_installed",
    "DeadlockError",
    "dump",
    "dump_on_signal",
]

# THREADKIT_DUMP_SIGNAL=USR1 prints the dump (threadkit.dump) on that signal.
from ._dump import _install_from_environment as _install_dump_signal  # noqa: E402

_install_dump_signal()
del _install_dump_signal
