"""Cancel scopes: cooperative cancellation and deadlines for threads.

The idea
--------
trio's cancel scopes, adapted to real threads. A ``CancelScope`` is a ``with`` block
with an optional deadline; ``cancel()`` may be called from any thread. Each thread
has a stack of the scopes it is inside (``ThreadRecord.scopes``); a scope knows the
records of every thread whose stack holds it (``_records``: the thread that entered
it, and, later, threads started inside it by a task group).

A thread is *cancelled* when, walking its stack from the innermost scope outwards,
a scope is found that was cancelled or whose deadline has passed before a shielded
scope stops the walk. That innermost cancelled scope is the *source*: the
``Cancelled`` raised carries it, and only that scope catches it on the way out.

Delivery
--------
Every call that can block checks on entry (``check_cancelled``), and a thread parked
in the core re-checks each time it wakes. ``cancel()`` and the deadline setter wake
every thread attached to the scope: a parked thread resolves its own wait node
under the queue's mutex, exactly like a timeout, so the one-winner rule holds: a
signal that got there first wins and the cancellation is seen at the next
cancellation point. A thread parks until the nearest of its call's timeout and its
scopes' deadlines.

Cost when unused
----------------
``armed[0]`` counts the entered scopes that are cancelled or have a deadline. While
it is zero, which is always the case in a program that never uses cancellation or
deadlines, a blocking call pays one list lookup for cancellation and a parked
thread never computes a deadline. An entered scope with neither costs nothing.

Rejected: asynchronous exceptions (``PyThreadState_SetAsyncExc``) cannot wake a
thread blocked in C and can fire in the middle of a ``finally`` block; polling a
flag with short timeouts costs latency or CPU.
"""

from __future__ import annotations

import _thread
import math
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ._registry import ThreadRecord

__all__ = [
    "CancelScope",
    "Cancelled",
    "TaskScopes",
    "armed",
    "cancel_source",
    "cancel_task",
    "check_cancelled",
    "effective_deadline",
    "attach_scopes",
    "detach_scopes",
    "enter_root",
    "enter_task",
    "exit_task",
    "fail_after",
    "fail_at",
    "move_on_after",
    "move_on_at",
    "on_armed",
    "scopes_of",
]

#: Number of entered scopes that are cancelled or have a deadline (see above).
armed = [0]
# Called with True when ``armed`` leaves zero and False when it returns to it, so the
# hottest paths can test a module global of their own instead (see ``on_armed``).
_armed_listeners: list[Callable[[bool], None]] = []
# Guards every scope's state and every record's ``scopes`` list. Never held while
# blocking or calling out.
_mutex = _thread.allocate_lock()


class Cancelled(BaseException):
    """Raised at a cancellation point in a cancelled scope.

    A ``BaseException``, so ``except Exception`` does not swallow it. The scope that
    was cancelled catches it when the exception leaves that scope's ``with`` block.
    """

    def __init__(self, scope: CancelScope | None = None) -> None:
        super().__init__(f"cancelled by {scope!r}" if scope is not None else "cancelled")
        #: The scope whose cancellation this is.
        self.scope = scope


class CancelScope:
    """A ``with`` block that can be cancelled, from any thread, or given a deadline.

    ``deadline`` is on the ``current_time()`` clock (None: none). ``shield=True`` hides
    the cancellation of enclosing scopes from the code inside. Each scope may be
    entered once, and must be exited in the thread that entered it.
    """

    __slots__ = (
        "_deadline",
        "_shield",
        "_cancel_called",
        "_cancelled_caught",
        "_records",
        "_owner",
        "_state",
        "_armed",
    )

    def __init__(self, *, deadline: float | None = None, shield: bool = False) -> None:
        _check_deadline(deadline)
        self._deadline = deadline
        self._shield = shield
        self._cancel_called = False
        self._cancelled_caught = False
        #: Records of the threads whose scope stack holds this scope, as an ordered
        #: set (under _mutex): a group's scope holds every worker running its tasks.
        self._records: dict[ThreadRecord, None] = {}
        self._owner: ThreadRecord | None = None
        self._state = "new"  # new -> entered -> exited
        self._armed = False  # counted in ``armed``

    def __repr__(self) -> str:
        parts = [self._state]
        if self._cancel_called:
            parts.append("cancelled")
        if self._deadline is not None:
            parts.append(f"deadline in {self._deadline - monotonic():.3f}s")
        if self._shield:
            parts.append("shielded")
        return f"<threadkit.CancelScope {', '.join(parts)}>"

    # -- the with block -------------------------------------------------------------------
    def __enter__(self) -> CancelScope:
        from ._registry import current_record

        rec = current_record()
        with _mutex:
            if self._state != "new":
                raise RuntimeError("each CancelScope may only be used for a single 'with' block")
            self._state = "entered"
            self._owner = rec
            rec.scopes.append(self)
            self._records[rec] = None
            self._rearm_locked()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        from ._registry import current_record

        rec = current_record()
        with _mutex:
            if rec is not self._owner:
                raise RuntimeError(
                    "a CancelScope must be exited in the thread that entered it "
                    f"(entered in thread {self._owner.ident if self._owner else '?'}, "
                    f"exited in thread {rec.ident})"
                )
            out_of_order = not rec.scopes or rec.scopes[-1] is not self
            if self in rec.scopes:
                rec.scopes.remove(self)
            self._detach_all_locked()
            self._state = "exited"
        if out_of_order:
            raise RuntimeError("cancel scopes must be exited in the reverse order of entry")
        if isinstance(exc, Cancelled) and exc.scope is self:
            self._cancelled_caught = True
            return True
        return False

    # -- state ----------------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel this scope: code inside it gets ``Cancelled`` at its next (or current)
        cancellation point. Callable from any thread, any number of times; never blocks.
        """
        with _mutex:
            if self._cancel_called:
                return
            self._cancel_called = True
            self._rearm_locked()
            records = list(self._records)
        _wake(records)

    @property
    def cancel_called(self) -> bool:
        """True once ``cancel()`` was called or the deadline was found to have passed."""
        deadline = self._deadline
        if (
            not self._cancel_called
            and deadline is not None
            and self._state != "exited"
            and monotonic() >= deadline
        ):
            self._cancel_called = True
        return self._cancel_called

    @property
    def cancelled_caught(self) -> bool:
        """True if this scope caught its own ``Cancelled`` when its block ended."""
        return self._cancelled_caught

    @property
    def deadline(self) -> float | None:
        """The deadline on the ``current_time()`` clock, or None. Settable."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        _check_deadline(value)
        with _mutex:
            self._deadline = value
            self._rearm_locked()
            records = list(self._records)
        _wake(records)  # they re-compute how long to park

    @property
    def shield(self) -> bool:
        """Whether cancellation of enclosing scopes is hidden inside. Settable."""
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        with _mutex:
            self._shield = bool(value)
            records = list(self._records)
        _wake(records)

    # -- bookkeeping (under _mutex) ---------------------------------------------------------
    def _rearm_locked(self) -> None:
        want = self._state == "entered" and (self._cancel_called or self._deadline is not None)
        if want != self._armed:
            self._armed = want
            _count_armed_locked(1 if want else -1)

    def _detach_all_locked(self) -> None:
        self._records.clear()
        if self._armed:
            self._armed = False
            _count_armed_locked(-1)

    def _attach_locked(self, rec: ThreadRecord) -> None:
        """Put this (already entered) scope on another thread's stack (task groups)."""
        self._records[rec] = None
        rec.scopes.append(self)


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and math.isnan(deadline):
        raise ValueError("deadline must not be NaN")


def _check_seconds(seconds: float) -> None:
    if math.isnan(seconds):
        raise ValueError("seconds must not be NaN")
    if seconds < 0:
        raise ValueError("seconds must be non-negative")


class _FailScope(CancelScope):
    """A scope that turns its own expiry into ``TimeoutError``.

    Its ``__exit__`` never swallows an exception, and says so in its type
    (``Literal[False]``, not ``bool``): a type checker then knows that code after a
    ``with fail_after(...)`` block runs only if the block ended normally (no
    "Missing return statement" for a ``return`` inside it).
    """

    __slots__ = ()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if super().__exit__(exc_type, exc, tb):
            raise TimeoutError("deadline exceeded") from None
        return False


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A scope cancelled at ``deadline`` (``current_time()`` clock); the block just ends."""
    return CancelScope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScope:
    """A scope cancelled ``seconds`` from now; the block just ends. ValueError if negative."""
    _check_seconds(seconds)
    return CancelScope(deadline=monotonic() + seconds, shield=shield)


def fail_at(deadline: float, *, shield: bool = False) -> _FailScope:
    """Like ``move_on_at``, but raise ``TimeoutError`` if the deadline cancels the block."""
    return _FailScope(deadline=deadline, shield=shield)


def fail_after(seconds: float, *, shield: bool = False) -> _FailScope:
    """Like ``move_on_after``, but raise ``TimeoutError`` if the deadline cancels the block."""
    _check_seconds(seconds)
    return _FailScope(deadline=monotonic() + seconds, shield=shield)


def enter_root(rec: ThreadRecord, scope: CancelScope) -> None:
    """Make ``scope`` the outermost scope of ``rec``'s thread (``Thread.cancel``)."""
    with _mutex:
        if scope._state == "new":
            scope._state = "entered"
            scope._owner = rec
        rec.scopes.insert(0, scope)
        scope._records[rec] = None
        scope._rearm_locked()


def _count_armed_locked(delta: int) -> None:
    before = armed[0]
    armed[0] = before + delta
    if (before == 0) != (armed[0] == 0):
        for listener in _armed_listeners:
            listener(armed[0] != 0)


def on_armed(listener: Callable[[bool], None]) -> None:
    """Call ``listener(flag)`` whenever cancellation becomes armed or idle.

    A module whose fast path must not pay even a list lookup keeps its own global
    flag this way. A stale read of that flag is harmless: a call that misses an
    entry check just linearises before the cancel, and a thread that goes on to
    park re-checks ``armed`` there and is woken by the ``cancel()`` that armed it.
    """
    with _mutex:
        _armed_listeners.append(listener)
        listener(armed[0] != 0)


def scopes_of(rec: ThreadRecord) -> list[CancelScope]:
    """A snapshot of ``rec``'s scope stack, outermost first (for task groups)."""
    with _mutex:
        return list(rec.scopes)


def attach_scopes(rec: ThreadRecord, scopes: list[CancelScope]) -> None:
    """Push ``scopes`` (outermost first) on the stack of ``rec``'s new thread.

    A task inherits its group's scopes this way: the scopes stay owned by the thread
    that entered them, and a cancel or a deadline reaches the task too. A scope not
    entered yet becomes the thread's own (its root scope); one already exited is
    skipped.
    """
    with _mutex:
        for scope in scopes:
            if scope._state == "new":
                scope._state = "entered"
                scope._owner = rec
            elif scope._state == "exited":
                continue
            rec.scopes.append(scope)
            scope._records[rec] = None
            scope._rearm_locked()


def detach_scopes(rec: ThreadRecord, scopes: list[CancelScope]) -> None:
    """Undo ``attach_scopes`` when the thread ends; its own scopes become exited."""
    with _mutex:
        for scope in scopes:
            if scope in rec.scopes:
                rec.scopes.remove(scope)
            scope._records.pop(rec, None)
            if scope._owner is rec:
                scope._detach_all_locked()
                scope._state = "exited"


class TaskScopes(Protocol):
    """What ``enter_task``, ``exit_task`` and ``cancel_task`` keep on a task.

    A task runs on a borrowed thread, and most tasks are never cancelled on their
    own, so a task's own scope is made only by the first ``cancel_task``. All three
    fields are guarded by ``_mutex``.
    """

    #: The task's own scope, innermost of those it inherits; None until cancelled.
    _scope: CancelScope | None
    #: The record of the thread running the task, while it runs; else None.
    _runner: ThreadRecord | None
    #: Where the task's own scope goes in that thread's stack: below the scopes the
    #: task itself entered, above the inherited ones.
    _depth: int


def enter_task(rec: ThreadRecord, outer: list[CancelScope], task: TaskScopes) -> None:
    """Put a task's scopes on the stack of the worker ``rec`` that is about to run it.

    ``outer`` are the group's scopes, entered by the spawner (exited ones are
    skipped). The scopes of the task the worker ran before are still there (see
    ``exit_task``): they come off first, under the same lock. ``attach_scopes`` for
    this hot case.
    """
    with _mutex:
        _leave_task_locked(rec)
        stack = rec.scopes
        for scope in outer:
            if scope._state == "entered":
                stack.append(scope)
                scope._records[rec] = None
        rec.task = task
        task._runner = rec
        task._depth = len(stack)
        own = task._scope
        if own is not None:
            # Cancelled while it waited for a worker.
            _enter_own_locked(rec, own, len(stack))


def exit_task(rec: ThreadRecord) -> None:
    """Take the scopes of the last task the worker ``rec`` ran off its stack.

    A worker calls this before it parks idle or ends, not after each task: between
    two tasks, ``enter_task`` does it for the price of one lock. Meanwhile the
    worker runs no code of the task's, so the stale scopes can only wake it
    spuriously, which every wait allows.
    """
    with _mutex:
        _leave_task_locked(rec)


def _leave_task_locked(rec: ThreadRecord) -> None:
    task = rec.task
    if task is not None:
        task._runner = None
        rec.task = None
    for scope in rec.scopes:
        if scope._owner is rec:
            # The task's own scope, or one the task entered and never exited: it must
            # not stay armed.
            scope._detach_all_locked()
            scope._state = "exited"
        else:
            scope._records.pop(rec, None)
    rec.scopes.clear()


def cancel_task(task: TaskScopes) -> None:
    """Cancel ``task`` alone, whether it waits for a worker, runs, or has ended.

    The first call makes the task's own scope. If the task runs (or has just
    ended, and its scopes are still on its worker's stack), the scope goes into
    that stack at once, at the task's depth, so that the worker is woken; if it has
    not started, ``enter_task`` puts it there; if its worker has moved on, the scope
    is never entered and nothing happens. Never blocks.
    """
    with _mutex:
        own = task._scope
        if own is None:
            own = task._scope = CancelScope()
            rec = task._runner
            if rec is not None:
                _enter_own_locked(rec, own, task._depth)
    own.cancel()


def _enter_own_locked(rec: ThreadRecord, own: CancelScope, depth: int) -> None:
    own._state = "entered"
    own._owner = rec
    rec.scopes.insert(depth, own)
    own._records[rec] = None
    own._rearm_locked()


def _wake(records: list[ThreadRecord]) -> None:
    for rec in records:
        rec.unpark()


def cancel_source(rec: ThreadRecord) -> CancelScope | None:
    """Return the innermost cancelled scope visible to ``rec``'s thread, or None."""
    now = None
    # A snapshot: ``cancel_task`` may insert into the list from another thread, and a
    # live iterator would then skip a scope (a shield) as the rest shift up.
    for scope in reversed(rec.scopes.copy()):
        if scope._cancel_called:
            return scope
        deadline = scope._deadline
        if deadline is not None:
            if now is None:
                now = monotonic()
            if now >= deadline:
                scope._cancel_called = True
                return scope
        if scope._shield:
            return None
    return None


def effective_deadline(rec: ThreadRecord) -> float:
    """The nearest deadline visible to ``rec``'s thread: -inf if it is cancelled
    already, +inf if there is none."""
    best = math.inf
    for scope in reversed(rec.scopes.copy()):  # a snapshot, as in cancel_source
        if scope._cancel_called:
            return -math.inf
        deadline = scope._deadline
        if deadline is not None and deadline < best:
            best = deadline
        if scope._shield:
            break
    return best


def check_cancelled(rec: ThreadRecord) -> None:
    """Raise ``Cancelled`` if ``rec``'s thread is cancelled (a cancellation point)."""
    scope = cancel_source(rec)
    if scope is not None:
        raise Cancelled(scope)


def reset_after_fork() -> None:
    """In a forked child: a fresh mutex (a vanished thread may have held it)."""
    global _mutex
    _mutex = _thread.allocate_lock()
