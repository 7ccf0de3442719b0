"""Thread, Timer and the module-level functions of ``threading``.

A ``Thread`` starts its OS thread with ``_thread.start_new_thread`` and keeps its
lifecycle (INITIAL -> STARTED -> STOPPED) under one module mutex, together with the
table of live threads. ``join``, ``result`` and ``native_id`` park in the thread's
wait queue, which shares that mutex, so "check the state, then wait" is one critical
section and the end of a thread cannot slip between them.

Unlike ``threading``, ``start()`` does not wait for the new thread to run:
``start_new_thread`` already returns the ident, and ``native_id`` waits for the new
thread on first read. That saves one thread hand-off per start.

What is added: a thread keeps what ``run()`` returned or raised, and
``result()``/``exception()`` hand it to whoever waits. A failure is still reported
to ``excepthook`` when the thread ends, exactly as ``threading`` does, so nothing is
lost when nobody asks.
"""

from __future__ import annotations

import _thread
import atexit
import builtins
import collections
import contextvars
import enum
import functools
import itertools
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

from . import _beside
from ._core import (
    Cancelled,
    CancelScope,
    ThreadRecord,
    WaitQueue,
    after_fork_in_child,
    armed,
    attach_scopes,
    checkpoint,
    current_record,
    detach_scopes,
    enter_root,
    forked_before_reset,
    install_interrupts,
    interruptible,
    is_main_module,
    record_for,
    register_current,
    set_foreign_record_hook,
    set_main_thread,
    set_namer,
    take_owed_interrupt,
    unregister_current,
    wait_description,
    wake,
)
from ._sync import Event

if TYPE_CHECKING:
    # typing's own TypeVar takes a default only from 3.13 on; mypy reads the one of
    # typing_extensions (in its typeshed), and nothing imports that at run time.
    from typing_extensions import TypeVar
else:
    from typing import TypeVar

__all__ = [
    "ExceptHookArgs",
    "Thread",
    "Timer",
    "__excepthook__",
    "active_count",
    "activeCount",
    "currentThread",
    "current_thread",
    "enumerate",
    "excepthook",
    "get_ident",
    "get_native_id",
    "getprofile",
    "gettrace",
    "local",
    "main_thread",
    "setprofile",
    "setprofile_all_threads",
    "settrace",
    "settrace_all_threads",
    "stack_size",
]

#: 3.13+: starts a thread and returns a handle whose ``join`` returns once the OS
#: thread has exited (its thread state, ``threading.local`` values included, gone).
#: These two are what ``threading._start_joinable_thread`` and
#: ``threading._start_new_thread`` name; replacing those on the package replaces
#: these (see ``threadkit.__init__``).
_start_joinable: Any = getattr(_thread, "start_joinable_thread", None)
_start_new: Any = _thread.start_new_thread
#: How many forks this process descends through (``_after_fork``).
_forks = 0


def _start_os_thread(bootstrap: Callable[[], object], args: tuple[()]) -> tuple[int, Any]:
    """Start an OS thread running ``bootstrap()``; return its ident, and the handle
    that tells when it has exited (3.13+; None before, see ``_set_sentinel``)."""
    if _start_joinable is not None:
        # Daemon for the runtime: waiting for threads at exit is _shutdown's (where
        # the interpreter allows daemon threads: not in an isolated subinterpreter).
        handle = _start_joinable(bootstrap, daemon=_daemon_threads_allowed())
        return handle.ident, handle
    return _start_new(bootstrap, args), None


#: 3.11, 3.12: a lock, taken for the calling thread, that the interpreter releases
#: once that thread's state is deleted.
_set_sentinel: Any = getattr(_thread, "_set_sentinel", None)
#: 3.14+: joining a running thread once the interpreter is finalizing raises this.
_FinalizationError: type[Exception] | None = getattr(builtins, "PythonFinalizationError", None)
_JOIN_REFUSED_AT_FINALIZATION = sys.version_info >= (3, 14)
_set_os_thread_name: Callable[[str], None] | None = getattr(_thread, "set_name", None)
#: ``sys.flags.thread_inherit_context`` (3.14+): new threads run in a copy of the
#: starter's context instead of an empty one.
_INHERIT_CONTEXT = bool(getattr(sys.flags, "thread_inherit_context", False))
get_ident = _thread.get_ident
get_native_id = _thread.get_native_id
stack_size = _thread.stack_size
excepthook = _thread._excepthook
__excepthook__ = _thread._excepthook
ExceptHookArgs = _thread._ExceptHookArgs
_daemon_threads_allowed: Callable[[], bool] = getattr(
    _thread, "daemon_threads_allowed", lambda: True
)


def _note_local_use() -> None:
    current_record().used_local = True


def _noting_use(init: Any) -> Any:
    """Wrap a ``local`` subclass's ``__init__`` so that it also notes the use."""
    if getattr(init, "_threadkit_notes_use", False):
        return init

    @functools.wraps(init)
    @interruptible  # it runs the program's __init__
    def __init__(self: local, /, *args: Any, **kwargs: Any) -> Any:
        _note_local_use()
        # Through the descriptor protocol: __init__ may be any callable attribute.
        return init.__get__(self, type(self))(*args, **kwargs)

    __init__._threadkit_notes_use = True  # type: ignore[attr-defined]
    return __init__


class _LocalType(type):
    """Keeps the ``__init__`` of every ``local`` subclass noting the use.

    The C type calls ``__init__`` in each thread at its first touch of an
    instance: that is where a thread notes that its local storage is in use.
    A subclass's own ``__init__`` (or a mixin's, or one that ``@dataclass`` or an
    assignment puts there later) is wrapped to note it too.
    """

    def __init__(cls, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> None:
        super().__init__(name, bases, ns)
        init = cls.__init__  # type: ignore[misc]
        if not getattr(init, "_threadkit_notes_use", False):
            type.__setattr__(cls, "__init__", _noting_use(init))

    def __setattr__(cls, name: str, value: Any) -> None:
        if name == "__init__":
            value = _noting_use(value)
        super().__setattr__(name, value)


class local(_thread._local, metaclass=_LocalType):
    """Thread-local data, as ``threading.local``: each thread sees its own attributes.

    The storage is the C ``_thread._local``; what is added is that a thread notes,
    the first time it touches an instance, that its local storage is no longer
    empty (see ``_LocalType``). A task group's worker thread that has touched one is
    not reused for another task, so a task never sees the ``local`` values of the
    task that ran before it.
    """

    def __init__(self, /, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError("Initialization arguments are not supported")
        _note_local_use()


local.__init__._threadkit_notes_use = True  # type: ignore[attr-defined]


class ThreadState(enum.Enum):
    """The life of a thread: it moves forward only."""

    INITIAL = "initial"
    STARTED = "started"
    STOPPED = "stopped"


INITIAL = ThreadState.INITIAL
STARTED = ThreadState.STARTED
STOPPED = ThreadState.STOPPED

# Guards ``_active``, every thread's ``_tk_state``, ``_ident`` and ``_native_id``, and
# the wait queues of all threads (they share it). Never held while blocking.
_mutex: Any = _thread.allocate_lock()
#: ``threading._active_limbo_lock``: held, outside ``_mutex``, wherever ``_active`` or
#: ``_limbo`` change, so that code holding it (debuggers, test helpers) sees the table
#: still. Reentrant, as ``threading``'s is: such code calls ``enumerate()`` or
#: ``current_thread()`` under it. Lock order: this one, then ``_mutex``.
_table_lock: Any = _thread.RLock()
#: Live threads by ident: threadkit's own, the main thread, and dummies for the rest.
_active: dict[int, Thread] = {}
#: Threads inside ``start()`` that are not in ``_active`` yet (no ident): a fork or
#: the exit must not miss them. (A dict, as ``threading._limbo`` is.)
_limbo: dict[Thread, Thread] = {}

#: Numbers default names, as ``threading._counter`` (which it is, in the package).
_counter: Callable[[], int] = itertools.count(1).__next__
_trace_hook: Any = None
_profile_hook: Any = None
_shutting_down = False
_atexit_calls: list[Callable[[], object]] = []


#: CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR
_SUSPENDABLE = 0x20 | 0x80 | 0x200


def _clear_frames(tb: TracebackType | None) -> None:
    """Drop the local variables of the finished frames in ``tb``.

    The traceback kept for ``result()`` would otherwise keep alive everything the
    thread's code used, often through a cycle back to the Thread (its target is a
    method of an object that holds the Thread); ``threading`` keeps no exception, and
    drops its target and arguments, so that nothing outlives the thread. The
    traceback still shows every line.
    """
    while tb is not None:
        frame = tb.tb_frame
        # Not a suspended generator's or coroutine's frame: before 3.13 clearing it
        # closes the generator, which the program may still use.
        if not frame.f_code.co_flags & _SUSPENDABLE:
            try:
                frame.clear()
            except RuntimeError:
                pass  # a frame still running (the one that caught the exception)
        tb = tb.tb_next


#: The OS-thread handles of non-daemon threads that have ended ``run()`` and may not
#: have exited yet (under ``_mutex``): the exit waits for those too. Handles, not the
#: threads: a Thread (and its result) must not outlive its last user.
_exiting: collections.deque[Any] = collections.deque()


def _note_exiting(thread: Thread) -> None:
    """Under ``_mutex``: add ``thread``'s handle, and forget those whose OS threads
    have exited (they end in about the order they stopped, so look from the oldest;
    and all of them, now and then, should one be slow)."""
    while _exiting and _os_thread_exited(_exiting[0]):
        _exiting.popleft()
    if len(_exiting) >= 64:
        kept = [handle for handle in _exiting if not _os_thread_exited(handle)]
        _exiting.clear()
        _exiting.extend(kept)
    _exiting.append(thread._tk_os_handle)


@interruptible  # a wait in C, with nothing of threadkit's to protect
def _wait_os_exit(handle: Any, deadline: float | None) -> None:
    """Wait (until ``deadline``) until the OS thread of ``handle`` has exited. Only the
    thread's own teardown is left to wait for, so this short last wait is made in C."""
    if handle is None or sys.is_finalizing():
        return
    timeout = -1.0 if deadline is None else max(deadline - monotonic(), 0.0)
    if _start_joinable is not None:
        if not handle.is_done():
            handle.join(None if deadline is None else timeout)
        return
    try:
        if handle.acquire(True, timeout):
            handle.release()
    except BaseException:
        # A Ctrl-C between taking the lock and giving it back would leave it
        # taken, and every later wait for this thread (the exit's) would hang:
        # give it back. (Interrupted during the wait, the lock is still the
        # exiting thread's; giving it back then only ends later waits early.)
        if handle.locked():
            try:
                handle.release()
            except RuntimeError:
                pass  # the interpreter released it meanwhile
        raise


def _os_thread_exited(handle: Any) -> bool:
    if _start_joinable is not None:
        return bool(handle.is_done())
    return not handle.locked()


def _newname(template: str = "Thread-%d") -> str:
    return template % _counter()


def _label(ident: int) -> str | None:
    thread = _active.get(ident)
    return None if thread is None else thread.name


set_namer(_label)


def _current_excepthook() -> Callable[[Any], object]:
    """The hook a failing thread reports to.

    ``threadkit.excepthook`` if the user replaced it; otherwise, if ``threading`` is
    loaded and *its* hook was replaced (pytest does this), that one, so that a
    failure in a threadkit thread reaches whoever listens for thread failures.
    """
    package = sys.modules.get(__package__ or "threadkit")
    return _or_threadings(getattr(package, "excepthook", excepthook))


def _or_threadings(hook: Callable[[Any], object]) -> Callable[[Any], object]:
    """``hook``, or, if it is the default and ``threading``'s hook was replaced, that
    one (also what ``threadkit check`` forwards to)."""
    if hook is __excepthook__:
        package = sys.modules.get(__package__ or "threadkit")
        std = sys.modules.get("threading")
        if std is not None and std is not package:
            std_hook: Callable[[Any], object] = getattr(std, "excepthook", hook)
            if std_hook is not __excepthook__:
                return std_hook
    return hook


class _StartedEvent:
    """``Thread._started``: the ``Event`` that ``threading``'s Thread sets once the
    thread has started, which code written against ``threading`` reads (and CPython's
    tests clear, to fake a thread that has not started).

    Made on first read, since hardly anyone reads it; from then on it is an ordinary
    attribute of the instance (this descriptor defines no ``__set__``), which
    ``start()`` sets. Set at once for a thread already started.
    """

    def __get__(self, thread: Thread | None, owner: type | None = None) -> Any:
        if thread is None:
            return self
        with _mutex:
            event = thread.__dict__.get("_started")
            if event is None:
                event = Event()
                if thread._tk_state is not INITIAL and thread._ident is not None:
                    event.set()
                thread.__dict__["_started"] = event
        return event


class _Derived:
    """A read-only attribute of CPython's ``Thread`` computed from threadkit's state.
    No ``__set__``: a subclass that assigns the name for its own use (``self._handle =
    open(...)``) gets an ordinary attribute of its own, as it does on ``threading``."""

    def __init__(self, get: Callable[[Any], Any]) -> None:
        self._get = get

    def __get__(self, thread: Thread | None, owner: type | None = None) -> Any:
        return self if thread is None else self._get(thread)


class _Handle:
    """The part of ``_thread._ThreadHandle`` that code outside ``threading`` uses."""

    __slots__ = ("_thread",)

    def __init__(self, thread: Thread) -> None:
        self._thread = thread

    @property
    def ident(self) -> int | None:
        return self._thread._ident

    def is_done(self) -> bool:
        """True once the thread has ended."""
        return self._thread._tk_state is STOPPED

    def _set_done(self) -> None:
        """What threading._shutdown() calls on its main thread's handle."""

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end, at most ``timeout`` seconds."""
        thread = self._thread
        if thread._tk_state is STARTED and thread is not current_thread():
            thread.join(timeout)


#: What ``Thread.result()`` returns: the target's return type. Any for a thread
#: made without a target (a subclass overriding ``run``), so that neither
#: ``Thread()`` nor ``class T(Thread)`` needs a type argument.
if TYPE_CHECKING:
    _R = TypeVar("_R", default=Any)
else:
    _R = TypeVar("_R")


class Thread(Generic[_R]):
    """A thread of control, as ``threading.Thread``, that keeps its outcome.

    ``result()`` returns what ``run()`` returned (the target's return value) or
    raises what it raised; ``join()`` keeps ``threading``'s contract.

    Generic in the target's return type, for type checkers only:
    ``Thread(target=f).result()`` has ``f``'s return type, ``Thread()`` and
    subclasses give Any. ``Generic`` adds nothing to an instance (no ``__new__``,
    no ``__init__``, empty ``__slots__``) and makes ``Thread[int]`` valid.
    """

    _initialized = False
    #: Not started by threadkit (the main thread, dummies): a missing native id
    #: will not arrive later, so ``native_id`` must not wait for it.
    _tk_foreign = False

    def __init__(
        self,
        group: None = None,
        target: Callable[..., _R] | None = None,
        name: object = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        """As ``threading.Thread``. ``context``: the ``contextvars.Context`` that
        ``run()`` runs in; by default a copy of the starter's if
        ``sys.flags.thread_inherit_context`` is set (3.14+, on by default on the
        free-threaded builds), otherwise an empty one, as ``threading`` does."""
        # CPython's asserts, spelled out here and in the properties: pytest rewrites
        # the asserts of every module of a package that has a pytest plugin, and a
        # rewritten assert adds to the message that CPython's tests compare.
        if __debug__ and group is not None:
            raise AssertionError("group argument must be None for now")
        if kwargs is None:
            kwargs = {}
        if name:
            name = str(name)
        else:
            name = _newname("Thread-%d")
            if target is not None:
                try:
                    name += f" ({target.__name__})"
                except AttributeError:
                    pass
        self._target = target
        self._name: str = name
        self._args = args
        self._kwargs = kwargs
        if daemon is not None:
            if daemon and not _daemon_threads_allowed():
                raise RuntimeError("daemon threads are disabled in this (sub)interpreter")
            self._daemonic = daemon
        else:
            self._daemonic = current_thread().daemon
        self._ident: int | None = None
        self._native_id: int | None = None
        self._tk_state = INITIAL
        self._tk_done = WaitQueue(_mutex)
        #: What run() returned; read only once the thread has stopped.
        self._tk_result: _R = None  # type: ignore[assignment]
        self._tk_exception: BaseException | None = None
        self._tk_traceback: TracebackType | None = None
        self._stderr = sys.stderr
        #: The outermost cancel scope of the thread: what ``cancel()`` cancels.
        self._tk_root_scope = CancelScope()
        self._context = context
        #: What says the OS thread has exited (a ``_thread`` handle, or a lock the
        #: interpreter releases), or None: ``join`` waits for it after ``run()``.
        self._tk_os_handle: Any = None
        self._tk_forks = _forks
        self._initialized = True

    def __repr__(self) -> str:
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() was not called")
        status = self._tk_state.value
        if self._daemonic:
            status += " daemon"
        if self._ident is not None:
            status += f" {self._ident}"
            if self._tk_state is STARTED:
                waits = wait_description(self._ident)
                if waits is not None:
                    status += f", {waits}"
        return f"<{type(self).__name__}({self.name}, {status})>"

    def _tk_label(self) -> str:
        """How a report names this thread as a thing waited for (not its repr, which
        may itself name a wait)."""
        return f"thread {self.name}"

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread; RuntimeError if it was started before.

        Returns at once: the new thread is alive (``is_alive()``) and has an
        ``ident`` when ``start`` returns.
        """
        if not self._initialized:
            raise RuntimeError("thread.__init__() not called")
        # From the first thread on, Ctrl-C must not split threadkit's bookkeeping
        # (here: a thread running while its Thread says it was never started).
        install_interrupts()
        with _table_lock, _mutex:
            if self._tk_state is not INITIAL:
                raise RuntimeError("threads can only be started once")
            if _shutting_down and not self._daemonic and sys.is_finalizing():
                raise RuntimeError("can't create new thread at interpreter shutdown")
            self._tk_state = STARTED
            _limbo[self] = self
            if self._context is None and _INHERIT_CONTEXT:
                self._context = contextvars.copy_context()
        try:
            ident, handle = _start_os_thread(self._bootstrap, ())
        except BaseException:
            with _table_lock, _mutex:
                _limbo.pop(self, None)
                self._tk_state = INITIAL
                # Whoever began to wait for the thread meanwhile (join, native_id)
                # learns that it never started.
                woken = self._tk_done.take_all_locked()
            wake(woken)
            raise
        with _table_lock, _mutex:
            _limbo.pop(self, None)
            self._ident = ident
            if handle is not None:
                self._tk_os_handle = handle
            if self._tk_state is STARTED:
                _active[ident] = self
            elif handle is not None and not self._daemonic:
                _note_exiting(self)  # it ended before it had its handle
            started = self.__dict__.get("_started")
        if started is not None:
            started.set()

    @interruptible
    def run(self) -> Any:
        """The thread's activity: call the target and return what it returns.

        Override in a subclass; what ``run()`` returns is what ``result()`` gives.
        """
        try:
            if self._target is not None:
                return self._target(*self._args, **self._kwargs)
            return None
        finally:
            # Break the reference cycle thread -> target -> (often) thread.
            del self._target, self._args, self._kwargs

    # The two frames under run(): open to Ctrl-C, which reaches them only in a child
    # forked from this thread, where this thread is the main one.
    @interruptible
    def _bootstrap(self) -> None:
        try:
            self._bootstrap_inner()
        except BaseException:
            # A daemon thread may outlive the interpreter's modules at exit.
            if self._daemonic and sys is None:  # pragma: no cover
                return
            raise

    @interruptible
    def _bootstrap_inner(self) -> None:
        if _set_sentinel is not None:
            sentinel = _set_sentinel()
            sentinel.acquire()  # the interpreter releases it once the thread is gone
            self._tk_os_handle = sentinel
        rec = register_current(self)
        scopes = self._tk_scopes()
        attach_scopes(rec, scopes)
        ident = get_ident()
        with _mutex:
            self._ident = ident
            self._native_id = get_native_id()
            # Wake readers of native_id, who wait for the thread to run.
            woken = self._tk_done.take_all_locked()
            started = self.__dict__.get("_started")
        wake(woken)
        if started is not None:
            started.set()  # before run(), as in threading
        # Not before the above: whoever holds _active_limbo_lock may wait for those.
        with _table_lock, _mutex:
            _limbo.pop(self, None)
            _active[ident] = self
        self._set_os_name()
        mirror = _beside.mirror(self)
        try:
            trace, profile = trace_and_profile_hooks()
            if trace is not None:
                sys.settrace(trace)
            if profile is not None:
                sys.setprofile(profile)
            try:
                context = self._context
                if context is None:
                    self._tk_result = self.run()
                else:
                    self._context = None  # the thread's own from now on
                    self._tk_result = context.run(self.run)
            except BaseException as exc:
                self._tk_exception = exc
                self._tk_traceback = exc.__traceback__
                # Ending because someone called cancel() is not a failure.
                if not (isinstance(exc, Cancelled) and exc.scope is self._tk_root_scope):
                    self._tk_report(exc)
                _clear_frames(self._tk_traceback)
                del exc
        finally:
            if mirror is not None:
                _beside.unmirror(mirror)
            detach_scopes(rec, scopes)
            with _table_lock, _mutex:
                if _active.get(ident) is self:
                    del _active[ident]
                self._tk_state = STOPPED
                if not self._daemonic and self._tk_os_handle is not None:
                    _note_exiting(self)
                woken = self._tk_done.take_all_locked()
            wake(woken)
            unregister_current()

    def _set_os_name(self) -> None:
        """Name the OS thread after ``name`` (3.14+, where ``_thread`` can)."""
        if _set_os_thread_name is not None and self._name:
            try:
                _set_os_thread_name(self._name)
            except OSError:
                pass

    def _tk_scopes(self) -> list[CancelScope]:
        """The cancel scopes the new thread starts inside, outermost first."""
        return [self._tk_root_scope]

    @interruptible  # it runs excepthook
    def _tk_report(self, exc: BaseException) -> None:
        """Hand an uncaught exception to ``excepthook``, as ``threading`` does."""
        args = ExceptHookArgs([type(exc), exc, exc.__traceback__, self])
        try:
            _current_excepthook()(args)
        except BaseException as hook_exc:
            hook_exc.__suppress_context__ = True
            del hook_exc
            stderr = sys.stderr if sys.stderr is not None else self._stderr
            if stderr is not None:
                print("Exception in threading.excepthook:", file=stderr, flush=True)
            sys.excepthook(*sys.exc_info())
        finally:
            del args

    def _tk_wait_stopped(
        self, timeout: float | None, cancellable: bool = True, what: str = "join"
    ) -> bool:
        """Park until the thread has stopped; return False if ``timeout`` expired.

        RuntimeError (as for a thread never started) if its ``start()`` failed
        meanwhile.
        """
        if cancellable and armed[0]:
            checkpoint()
        if self._tk_state is STOPPED:
            return True
        if _JOIN_REFUSED_AT_FINALIZATION and sys.is_finalizing():
            # The interpreter no longer runs other threads' Python code: the
            # thread cannot end, and the wait would never return (as 3.14+).
            assert _FinalizationError is not None
            raise _FinalizationError(f"cannot {what} thread at interpreter shutdown")
        deadline = None if timeout is None else monotonic() + max(timeout, 0)
        stopped = self._tk_done.wait_until(
            current_record(), self, "join", self._tk_not_running, deadline, cancellable
        )
        if self._tk_state is INITIAL:
            raise RuntimeError(f"cannot {what} thread before it is started")
        return stopped

    def _tk_not_running(self) -> bool:
        return self._tk_state is not STARTED

    def _tk_holders(self, operation: str) -> list[int] | None:
        """Who a ``join`` or ``result()`` waits for (deadlock detection): the thread
        itself, while it runs; only it can end itself."""
        ident = self._ident
        if operation != "join" or self._tk_state is not STARTED:
            return None
        return None if ident is None else [ident]

    def _tk_held_as(self, operation: str, ident: int) -> str | None:
        return None  # a thread holds up its joiners by being itself: nothing to add

    def _tk_check_waitable(self, what: str) -> None:
        if not self._initialized:
            raise RuntimeError("Thread.__init__() not called")
        if self._tk_state is INITIAL:
            raise RuntimeError(f"cannot {what} thread before it is started")
        if self is current_thread():
            raise RuntimeError(f"cannot {what} current thread")

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread ends or ``timeout`` (seconds) expires; return None.

        Check ``is_alive()`` afterwards to tell which. RuntimeError for a thread
        not yet started or for the calling thread itself. Never raises the
        thread's own exception: use ``result()`` for that. A cancellation point:
        ``Cancelled`` on entry or while waiting (the thread itself is unaffected).
        """
        self._tk_check_waitable("join")
        deadline = None if timeout is None else monotonic() + max(timeout, 0)
        if self._tk_wait_stopped(timeout):
            self._tk_wait_exited(deadline)

    def _tk_wait_exited(self, deadline: float | None) -> None:
        """After ``run()`` has ended: wait (until ``deadline``) for the OS thread to
        exit, as ``threading``'s ``join`` does, so that its ``threading.local``
        values are gone when ``join`` returns."""
        if self._tk_forks == _forks:  # else it ended in the process this one forked from
            _wait_os_exit(self._tk_os_handle, deadline)

    def result(self, timeout: float | None = None) -> _R:
        """Wait for the thread to end; return what ``run()`` returned, or raise what it raised.

        The exception is raised with its original traceback; a thread ended by
        ``cancel()`` raises its ``Cancelled``. Raises TimeoutError if ``timeout``
        (seconds) expires first, RuntimeError for a thread not yet started or for
        the calling thread itself. A cancellation point, like ``join``.
        """
        self._tk_check_waitable("get the result of")
        self._tk_collected = True
        if not self._tk_wait_stopped(timeout, what="get the result of"):
            raise TimeoutError(f"{self._name} did not finish within {timeout} seconds")
        if self._tk_exception is not None:
            raise self._tk_exception.with_traceback(self._tk_traceback)
        return self._tk_result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the thread to end; return the exception ``run()`` raised, or None.

        Raises TimeoutError if ``timeout`` (seconds) expires first.
        """
        self._tk_check_waitable("get the exception of")
        self._tk_collected = True
        if not self._tk_wait_stopped(timeout, what="get the exception of"):
            raise TimeoutError(f"{self._name} did not finish within {timeout} seconds")
        return self._tk_exception

    def cancel(self) -> None:
        """Cancel what this thread is doing and will do.

        The thread gets ``Cancelled`` at its current or next cancellation point
        (any blocking threadkit call, ``checkpoint()``, ``sleep()``); code blocked
        outside threadkit sees it at its next threadkit call. Callable from any
        thread, before or after ``start()``; never blocks. A thread that ends with
        this ``Cancelled`` is not reported to ``excepthook``.
        """
        self._tk_root_scope.cancel()

    @property
    def cancel_called(self) -> bool:
        """True once ``cancel()`` was called on this thread."""
        return self._tk_root_scope.cancel_called

    def is_alive(self) -> bool:
        """Return True from ``start()`` until ``run()`` has ended."""
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        return self._tk_state is STARTED

    #: Set once ``result()`` or ``exception()`` was called: a failure reported to
    #: ``excepthook`` was collected after all (``threadkit check`` and the pytest
    #: plugin read it).
    _tk_collected = False

    # -- CPython's private surface -------------------------------------------------------
    # What code written against threading.Thread reads or calls (multiprocessing, test
    # helpers, subclasses); threadkit's own state is all under ``_tk_`` names.
    _started = _StartedEvent()

    #: True once ``run()`` has ended (``threading``'s attribute before 3.13).
    _is_stopped = _Derived(lambda thread: thread._tk_state is STOPPED)
    #: What says whether the thread has ended (``threading``'s ``_os_thread_handle``
    #: from 3.14, ``_handle`` on 3.13; debuggers read them).
    _os_thread_handle = _handle = _Derived(lambda thread: _Handle(thread))

    def _set_ident(self) -> None:
        """Note the calling thread's ident as this thread's."""
        with _mutex:
            self._ident = get_ident()

    def _set_native_id(self) -> None:
        """Note the calling thread's OS id as this thread's (``multiprocessing`` calls
        it on the main thread of each process it starts)."""
        with _mutex:
            self._native_id = get_native_id()

    # -- attributes ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The thread's name, for identification only."""
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        return self._name

    @name.setter
    def name(self, name: object) -> None:
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        self._name = str(name)
        if self._ident == get_ident():
            self._set_os_name()

    @property
    def ident(self) -> int | None:
        """The thread's identifier, or None before it is started."""
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        return self._ident

    @property
    def native_id(self) -> int | None:
        """The OS thread id, or None before it is started.

        Right after ``start()`` this may wait (briefly) for the new thread to run.
        """
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        if self._native_id is None and self._ident == get_ident():
            # The main thread, when threadkit was first imported in another thread.
            with _mutex:
                self._native_id = get_native_id()
        if self._native_id is None and self._tk_state is STARTED and not self._tk_foreign:
            self._tk_done.wait_until(
                current_record(),
                self,
                "native_id",
                lambda: self._native_id is not None or self._tk_state is not STARTED,
                None,
                False,
            )
        return self._native_id

    @property
    def daemon(self) -> bool:
        """Whether this is a daemon thread; settable only before ``start()``."""
        if __debug__ and not self._initialized:
            raise AssertionError("Thread.__init__() not called")
        return self._daemonic

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        if not self._initialized:
            raise RuntimeError("Thread.__init__() not called")
        if daemonic and not _daemon_threads_allowed():
            raise RuntimeError("daemon threads are disabled in this interpreter")
        if self._tk_state is not INITIAL:
            raise RuntimeError("cannot set daemon status of active thread")
        self._daemonic = daemonic

    def isDaemon(self) -> bool:
        """Deprecated getter of ``daemon``."""
        warnings.warn(
            "isDaemon() is deprecated, get the daemon attribute instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.daemon

    def setDaemon(self, daemonic: bool) -> None:
        """Deprecated setter of ``daemon``."""
        warnings.warn(
            "setDaemon() is deprecated, set the daemon attribute instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.daemon = daemonic

    def getName(self) -> str:
        """Deprecated getter of ``name``."""
        warnings.warn(
            "getName() is deprecated, get the name attribute instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.name

    def setName(self, name: object) -> None:
        """Deprecated setter of ``name``."""
        warnings.warn(
            "setName() is deprecated, set the name attribute instead",
            DeprecationWarning,
            stacklevel=2,
        )
        self.name = name


class Timer(Thread):
    """Call ``function(*args, **kwargs)`` after ``interval`` seconds unless cancelled.

    ``result()`` gives the function's return value (None if cancelled).
    """

    def __init__(
        self,
        interval: float,
        function: Callable[..., object],
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        Thread.__init__(self)
        self.interval = interval
        self.function = function
        self.args = args if args is not None else []
        self.kwargs = kwargs if kwargs is not None else {}
        self.finished = Event()

    def cancel(self) -> None:
        """Stop the timer if it has not fired yet."""
        self.finished.set()

    @interruptible
    def run(self) -> Any:
        """Wait ``interval`` seconds, then call the function unless cancelled."""
        try:
            self.finished.wait(self.interval)
            if not self.finished.is_set():
                return self.function(*self.args, **self.kwargs)
            return None
        finally:
            self.finished.set()


class _MainThread(Thread):
    """The thread the interpreter started in."""

    _tk_foreign = True

    def __init__(self, ident: int, native_id: int | None) -> None:
        Thread.__init__(self, name="MainThread", daemon=False)
        self._tk_state = STARTED
        self._ident = ident
        self._native_id = native_id


class _DummyThread(Thread):
    """A thread threadkit did not start (C code, ``threading``, ``_thread``).

    Named ``Dummy-N`` and daemonic, as in ``threading``; it leaves ``enumerate()``
    when its thread ends.
    """

    _tk_foreign = True

    def __init__(self) -> None:
        ident = get_ident()
        # A thread threading started is known by the name threading gave it, and
        # keeps its daemon flag (which threads started from it inherit).
        known = _beside.known_as(ident)
        if known is None:
            Thread.__init__(self, name=_newname("Dummy-%d"), daemon=True)
        else:
            Thread.__init__(self, name=known[0], daemon=known[1])
        self._tk_state = STARTED
        self._ident = ident
        self._native_id = get_native_id()
        sentinel = _DummySentinel()
        _dummy_tls.sentinel = sentinel
        with _table_lock, _mutex:
            _active[ident] = self
            _dummy_refs[ident] = weakref.ref(sentinel, functools.partial(_dummy_ended, self))
        rec = record_for(ident)
        if rec is not None:
            _bind_foreign(rec)

    def is_alive(self) -> bool:
        started = self.__dict__.get("_started")
        if self._tk_state is STARTED and (started is None or started.is_set()):
            return True
        raise RuntimeError("thread is not alive")

    def join(self, timeout: float | None = None) -> None:
        raise RuntimeError("cannot join a dummy thread")

    def result(self, timeout: float | None = None) -> Any:
        raise RuntimeError("cannot get the result of a dummy thread")

    def exception(self, timeout: float | None = None) -> BaseException | None:
        raise RuntimeError("cannot get the exception of a dummy thread")


class _DummySentinel:
    __slots__ = ("__weakref__",)


_dummy_tls = _thread._local()
_dummy_refs: dict[int, weakref.ref[_DummySentinel]] = {}


def _dummy_ended(thread: _DummyThread, _ref: object) -> None:
    if _mutex is None:
        return  # the interpreter is tearing this module down: nobody is left to tell
    if forked_before_reset():
        return  # a thread that did not survive a fork: _after_fork forgets it
    ident = thread._ident
    with _table_lock, _mutex:
        if ident is not None and _active.get(ident) is thread:
            del _active[ident]
            _dummy_refs.pop(ident, None)
        thread._tk_state = STOPPED
        woken = thread._tk_done.take_all_locked()
    wake(woken)


def _main_ident() -> tuple[int, int | None]:
    """The main thread's ident, and its native id if known (we are on it, or
    ``threading`` knows it); None otherwise, filled in once the main thread asks."""
    std_main = getattr(sys.modules.get("threading"), "_main_thread", None)
    getter = getattr(_thread, "_get_main_thread_ident", None)
    if getter is not None:
        ident = getter()
    else:
        ident = getattr(std_main, "ident", None) or get_ident()
    if ident == get_ident():
        return ident, get_native_id()
    if getattr(std_main, "ident", None) == ident:
        return ident, getattr(std_main, "native_id", None)
    return ident, None


_main_thread: Thread = _MainThread(*_main_ident())
_active[_main_ident()[0]] = _main_thread
set_main_thread(_main_ident()[0])


def _bind_foreign(rec: ThreadRecord) -> None:
    """Give a thread threadkit did not start its root scope, so ``cancel()`` reaches it."""
    thread = _active.get(rec.ident)
    if thread is not None and rec.thread is None:
        rec.thread = thread
        enter_root(rec, thread._tk_root_scope)


set_foreign_record_hook(_bind_foreign)
_main_record = record_for(_main_thread._ident or 0)
if _main_record is not None:
    _bind_foreign(_main_record)


# -- module functions -------------------------------------------------------------------
def current_thread() -> Thread:
    """Return the ``Thread`` object of the calling thread.

    For a thread threadkit did not start, a dummy object named ``Dummy-N``.
    """
    try:
        return _active[get_ident()]
    except KeyError:
        return _DummyThread()


def currentThread() -> Thread:
    """Deprecated alias of ``current_thread``."""
    warnings.warn(
        "currentThread() is deprecated, use current_thread() instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return current_thread()


def main_thread() -> Thread:
    """Return the main thread's ``Thread`` object."""
    return _main_thread


def enumerate() -> list[Thread]:
    """Return every live ``Thread``: started and not ended, main and dummies included."""
    with _mutex:
        return list(_active.values())


def _dangling_threads() -> weakref.WeakSet[Thread]:
    """What ``threading._dangling`` holds, for the test helpers that read it (CPython's
    among them): here the live and starting threads, taken when asked.

    ``threading`` keeps a WeakSet of every Thread ever created; its entries leave
    through a weak-reference callback, which runs wherever a Thread happens to be
    collected, and would swallow a Ctrl-C that lands inside it.
    """
    with _mutex:
        return weakref.WeakSet([*_active.values(), *_limbo])


def active_count() -> int:
    """Return the number of live threads, ``len(enumerate())``."""
    with _mutex:
        return len(_active)


def activeCount() -> int:
    """Deprecated alias of ``active_count``."""
    warnings.warn(
        "activeCount() is deprecated, use active_count() instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return active_count()


def settrace(func: Any) -> None:
    """Set a trace function for threads started from now on (see ``sys.settrace``)."""
    global _trace_hook
    _trace_hook = func


def settrace_all_threads(func: Any) -> None:
    """Set a trace function for new threads and every running Python thread.

    On 3.11, which cannot reach into running threads, only the calling thread's and
    future threads' trace functions are set.
    """
    settrace(func)
    set_all = getattr(sys, "_settraceallthreads", None)
    if set_all is not None:
        set_all(func)
    else:
        sys.settrace(func)


def trace_and_profile_hooks() -> tuple[Any, Any]:
    """The trace and profile functions a new thread (or a worker's next task) starts
    with: ``settrace``'s and ``setprofile``'s, or, where those are unset, the ones set
    through the stdlib's ``threading`` (coverage, profilers and debuggers use it)."""
    trace, profile = _trace_hook, _profile_hook
    if trace is None or profile is None:
        std_trace, std_profile = _beside.std_hooks()
        trace = std_trace if trace is None else trace
        profile = std_profile if profile is None else profile
    return trace, profile


def gettrace() -> Any:
    """Return the trace function set by ``settrace``."""
    return _trace_hook


def setprofile(func: Any) -> None:
    """Set a profile function for threads started from now on (see ``sys.setprofile``)."""
    global _profile_hook
    _profile_hook = func


def setprofile_all_threads(func: Any) -> None:
    """Set a profile function for new threads and every running Python thread.

    On 3.11, only the calling thread's and future threads' profile functions are set.
    """
    setprofile(func)
    set_all = getattr(sys, "_setprofileallthreads", None)
    if set_all is not None:
        set_all(func)
    else:
        sys.setprofile(func)


def getprofile() -> Any:
    """Return the profile function set by ``setprofile``."""
    return _profile_hook


# -- interpreter exit and fork ------------------------------------------------------------
def _register_atexit(func: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call ``func`` at exit before non-daemon threads are joined (as ``threading``'s)."""
    if _shutting_down:
        raise RuntimeError("can't register atexit after shutdown")
    _atexit_calls.append(functools.partial(func, *args, **kwargs))


def _shutdown() -> None:
    """Wait for every non-daemon threadkit thread, as the interpreter does at exit.

    Called by the interpreter itself when threadkit stands in for ``threading`` in
    ``sys.modules``; otherwise from ``threading``'s exit (``_register_atexit``) and
    through ``atexit``. A later call only waits for threads started since (by
    ``threading``'s threads, which its exit waits for after the first call). After a
    first Ctrl-C (one that ended the main thread, or one while it waits here), it
    cancels those threads; if they do not end at once (blocked outside threadkit),
    one line on stderr says which, and a further Ctrl-C stops the wait: the process
    then exits without them.
    """
    global _shutting_down, _shutdown_started, _exit_mode
    if _shutdown_started:
        if _exit_mode == "join":
            try:
                _join_non_daemon(None)
            except KeyboardInterrupt:
                _exit_mode = "cancel"
        if _exit_mode == "cancel":
            _after_ctrl_c_at_exit()
        return
    _shutdown_started = _shutting_down = True
    # A Ctrl-C that came during the program's last threadkit call and is still owed
    # (nothing after this would raise it) ended the program as much as one raised.
    owed = take_owed_interrupt()
    if owed and sys.stderr is not None:
        try:
            print("KeyboardInterrupt", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass
    # The main thread is ending. Also when the thread found to be the main one at
    # import was not (before 3.13, threadkit first imported in another thread): it
    # was not started by threadkit, and exit must not wait for it.
    # It stays in ``_active``, as in ``threading``: code that runs during the exit
    # (``__del__`` methods, a trace function) still finds it as ``current_thread()``.
    with _mutex:
        _main_thread._tk_state = STOPPED
        woken = _main_thread._tk_done.take_all_locked()
    wake(woken)
    try:
        # threading's exit runs these where a Ctrl-C ends its wait: so here.
        _run_atexit_calls()
        if owed or _ended_by_ctrl_c():
            # The first Ctrl-C ended the main thread, and non-daemon threads are
            # still to be waited for: that Ctrl-C could not end the program at once.
            _exit_mode = "cancel"
        else:
            _join_non_daemon(None)
    except KeyboardInterrupt:
        _exit_mode = "cancel"
    if _exit_mode == "cancel":
        _after_ctrl_c_at_exit()


def _ended_by_ctrl_c() -> bool:
    """True if the main thread ended with an uncaught KeyboardInterrupt.

    The interpreter keeps the exception that ended ``__main__`` as ``sys.last_exc``
    (``last_value`` before 3.12); one a REPL or a test runner showed and handled
    earlier is kept there too, so it must also have come out of ``__main__``'s
    module code, and an interactive session never counts.
    """
    if sys.flags.interactive:
        return False
    last = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(last, KeyboardInterrupt):
        return False
    tb = last.__traceback__
    while tb is not None:
        if is_main_module(tb.tb_frame):
            return True
        tb = tb.tb_next
    return False


def _after_ctrl_c_at_exit() -> None:
    """Cancel the non-daemon threads; if they do not end at once, say which are left
    and wait on until they end or a (further) Ctrl-C gives up on them."""
    global _exit_mode
    try:
        if _join_non_daemon(monotonic() + INTERRUPT_GRACE, cancel=True):
            return
        say_still_running(
            "at exit", _non_daemon(), "thread", "press Ctrl-C again to exit without them"
        )
        _join_non_daemon(None, cancel=True)
    except KeyboardInterrupt:
        _exit_mode = "gave up"


#: How long a first Ctrl-C waits for what it cancelled before saying what it waits for.
INTERRUPT_GRACE = 0.25
_shutdown_started = False
#: What the exit does with non-daemon threads: "join" them, "cancel" them (after a
#: Ctrl-C), or nothing more ("gave up": a further Ctrl-C).
_exit_mode = "join"


@interruptible
def _run_atexit_calls() -> None:
    """The functions given to ``_register_atexit``, last first (the program's code)."""
    while _atexit_calls:
        _atexit_calls.pop()()


def _non_daemon() -> list[Thread]:
    me = get_ident()
    with _mutex:
        return [
            t
            for t in [*_active.values(), *_limbo]
            if not t._daemonic and t._ident != me and not isinstance(t, _DummyThread | _MainThread)
        ]


def _join_non_daemon(deadline: float | None, cancel: bool = False) -> bool:
    """Wait for the non-daemon threads until ``deadline``; True if none is left.

    With ``cancel``, each is cancelled first, also one started meanwhile.
    """
    while True:
        pending = _non_daemon()
        if not pending:
            # And for their OS threads to exit, as threading's exit does: until then
            # a thread's state lives (its threading.local values, whose __del__
            # methods still run), and a subinterpreter that ends with a thread still
            # in it is a fatal error.
            with _mutex:
                exiting = list(_exiting)
            for handle in exiting:
                _wait_os_exit(handle, deadline)
            return True
        if cancel:
            for thread in pending:
                thread.cancel()
        for thread in pending:
            timeout = None if deadline is None else max(deadline - monotonic(), 0)
            try:
                if not thread._tk_wait_stopped(timeout, cancellable=False):
                    return False
            except RuntimeError:
                pass  # its start() failed: there is nothing to wait for


def describe_running(threads: Iterable[Thread]) -> str:
    """``name (what it is doing), ...`` for a line about threads that still run."""
    parts = []
    for thread in threads:
        rec = record_for(thread._ident) if thread._ident is not None else None
        node = None if rec is None else rec.waiting
        doing = "blocked outside threadkit" if node is None else f"waiting in {node.operation}"
        parts.append(f"{thread.name} ({doing})")
    return ", ".join(parts)


def say_still_running(
    when: str,
    threads: Sequence[Thread],
    noun: str,
    then: str,
    what: str = "KeyboardInterrupt",
) -> None:
    """The one line a first Ctrl-C (or ``what``) prints when what it cancelled does
    not end at once."""
    stderr = sys.stderr
    if stderr is None or not threads:
        return
    plural = "s" if len(threads) > 1 else ""
    try:
        print(
            f"threadkit: {what} {when}: waiting for {len(threads)} cancelled "
            f"{noun}{plural} to end: {describe_running(threads)}; {then}",
            file=stderr,
            flush=True,
        )
    except (OSError, ValueError):
        pass  # stderr closed: nobody to tell


atexit.register(_shutdown)
_beside.watch(_shutdown)


def _after_fork() -> None:
    """In a forked child: the forking thread is the only one, and it is the main one."""
    global _main_thread, _shutting_down, _shutdown_started, _forks, _exit_mode
    _forks += 1  # OS-thread handles of the parent's threads mean nothing here
    after_fork_in_child()
    set_main_thread(get_ident())
    _mutex._at_fork_reinit()
    if not _table_lock._is_owned():  # held by the forking thread: it releases it
        _table_lock._at_fork_reinit()
    _shutting_down = _shutdown_started = False
    _exit_mode = "join"
    ident = get_ident()
    current: Thread | None = _active.get(ident)
    for thread in [*_active.values(), *_limbo]:
        if thread is not current:
            thread._tk_state = STOPPED
            # Its OS thread does not exist here (and a sentinel lock it held would
            # stay held for ever).
            thread._tk_os_handle = None
        thread._tk_done.waiters.clear()
        started = thread.__dict__.get("_started")
        if started is not None:
            started._at_fork_reinit()
    _active.clear()
    _limbo.clear()
    _exiting.clear()
    _dummy_refs.clear()
    if current is None:
        current = _MainThread(ident, get_native_id())
    else:
        current._native_id = get_native_id()
    if type(current) is _DummyThread:
        current.__class__ = _MainThread  # type: ignore[assignment]
        current._name = "MainThread"
        current._daemonic = False
    _main_thread = current
    _active[ident] = current
    # The forking thread keeps its record (the registry gave it a fresh parker):
    # its cancel scopes, and the blocks that entered them, carry on in the child.
    rec = record_for(ident)
    if rec is None:
        rec = register_current(current)
    rec.thread = current


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
