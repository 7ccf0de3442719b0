"""The dump: every live thread, what it waits on and what it holds.

The idea
--------
A hung program is easiest to understand from one picture of all its threads: where
each one is, what it is parked on, and who holds that. ``threading`` cannot draw it:
a thread blocked in a lock is just a C frame. In threadkit every wait goes through
the core's wait queue, which writes on the waiting thread's record the node it
parked on (resource and operation, since when, until when), so the picture can be
read off the registry. ``dump()`` prints it, ``snapshot()`` returns it as data, and
``dump_on_signal()`` prints it when the process gets a signal.

What it reads
-------------
* ``sys._current_frames()``: every live thread of the interpreter, threadkit's or
  not, and its stack. Stacks leave out threadkit's frames around the program's own
  (a thread's bootstrap below, the way into the park above: the "waits" line says
  it better), and always the dump's own.
* The thread registry: for each thread threadkit has seen, the node it is parked
  on, its cancel scopes and its task. A thread counts as parked only if its node is
  still ``WAITING`` in its queue, checked under the queue's mutex as
  ``_core.waiting_on`` does: a record names its node a moment before the node is
  queued, and a thread reuses its node for its next wait.
* Who holds what a parked thread needs: its resource says
  (``resource._tk_holders(operation)``, which deadlock detection reads too; for a
  Lock taken without ``with``, which any thread may release, the dump names its
  last taker). The resource is then listed under each holder, in the deadlock
  report's words (``resource._tk_held_as``: "holding <lock>", "running <task>"),
  with the threads that want it. A lock nobody waits for is not found this way;
  lock-order checking, when on, can add each thread's held locks through
  ``_held_locks_provider``.
* Names: the threadkit ``Thread``'s, else the stdlib ``threading`` table's if it is
  loaded, else none (the ident). Idle workers of the task groups' cache, parked on
  the cache's idle queue, share one line: their stacks say nothing.

No lock is held while formatting
--------------------------------
Everything is read while it changes: a thread may end, wake or start another wait
between two reads, so each entry is true of some instant during the dump. A queue's
mutex is held only to copy a node's plain fields; ``repr()`` of the program's
objects, which may take locks of their own or even block, runs with no lock held,
and each thread's part is guarded on its own, so that a failing ``repr`` costs one
line, not the dump. Mutexes are taken with a short timeout, never for ever: the
dump may run in a thread that a signal handler interrupted while it held one (the
fields are then read without it, as a best effort).

On a signal
-----------
``dump_on_signal`` installs a Python-level handler. CPython runs it in the main
thread, also while that thread is parked: a ``_thread`` lock wait is interrupted by
the signal, runs the handler and resumes (checked on 3.11 to 3.15, free-threaded
builds too). The handler does not dump in place: it starts a helper thread that
dumps, and returns at once. So the main thread goes back to its wait and is shown
parked where it was, and the dump never waits for a mutex the interrupted main
thread holds. Only if no thread can be started (at interpreter exit) does it dump
in place, reading no resource's ``_tk_holders`` (which may take a mutex).

Limits: the handler runs only when the main thread next checks for signals, so a
main thread stuck in a C call that does not (a C extension's loop, a wait that
retries without checking) delays the dump until it returns. SIGINT is threadkit's
(see "Ctrl-C at any line" in docs/design.md) and is refused, as is the nudge
signal that delivers a deferred Ctrl-C.

Rejected: ``signal.set_wakeup_fd`` with a resident reader thread (there is one fd
per process, and asyncio owns it); ``faulthandler.register`` (C-level, so it works
in any state, but shows only stacks, none of what threadkit knows).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
from collections.abc import Callable
from time import monotonic
from types import FrameType
from typing import Any, TextIO

from . import _threads
from ._core import WAITING, ThreadRecord, _interrupts, _registry, thread_label

__all__ = [
    "HeldInfo",
    "ScopeInfo",
    "ThreadInfo",
    "WaitInfo",
    "dump",
    "dump_on_signal",
    "format_dump",
    "snapshot",
]

#: The variable read at import (``_install_from_environment``): a signal name or number.
ENV = "THREADKIT_DUMP_SIGNAL"

#: Set by lock-order checking while it is on: ``provider(ident)`` returns the locks the
#: thread ``ident`` holds (any objects; shown by ``repr``), or None if it does not know.
_held_locks_provider: Callable[[int], list[object] | None] | None = None

# How long the dump waits for a queue's mutex before it reads without it (seconds).
_MUTEX_PATIENCE = 0.1
# How long a repr may be in the dump.
_REPR_MAX = 240
# How many of a thread's innermost frames are shown.
_STACK_LIMIT = 64
_HERE = __file__
_CORE_DIR = os.path.dirname(_registry.__file__) + os.sep
_PACKAGE_DIR = os.path.dirname(_threads.__file__) + os.sep


# -- the data ---------------------------------------------------------------------------
# Plain classes, not dataclasses: ``import threadkit`` imports this module, and
# ``dataclasses`` (with ``inspect``) would add about 10 ms to it.
class _Info:
    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class WaitInfo(_Info):
    """What a parked thread waits for.

    ``resource``: the object it waits on (a Lock, an Event, a Thread, a Task, ...);
    ``operation``: how ("acquire", "wait", "join", "result", "get", "spawn", ...);
    ``waited``: seconds it has been parked, if known; ``deadline``: seconds left until
    its call's own deadline (negative: passed; None: none); ``holders``: idents of the
    threads holding what it needs (empty: nobody, or not known).
    """

    __slots__ = ("resource", "operation", "waited", "deadline", "holders")

    def __init__(
        self,
        resource: object,
        operation: str,
        waited: float | None,
        deadline: float | None,
        holders: tuple[int, ...] = (),
    ) -> None:
        self.resource = resource
        self.operation = operation
        self.waited = waited
        self.deadline = deadline
        self.holders = holders


class HeldInfo(_Info):
    """Something a thread holds: ``resource``, ``how`` it holds it in the deadlock
    report's words ("holding <repr>", "running <task>", ...), and ``wanted_by``, the
    idents of the threads parked waiting for it."""

    __slots__ = ("resource", "how", "wanted_by")

    def __init__(self, resource: object, how: str, wanted_by: tuple[int, ...] = ()) -> None:
        self.resource = resource
        self.how = how
        self.wanted_by = wanted_by


class ScopeInfo(_Info):
    """One cancel scope on a thread's stack: ``deadline`` in seconds from now (negative:
    passed; None: none), whether it was ``cancelled``, whether it is a ``shield``."""

    __slots__ = ("scope", "deadline", "cancelled", "shield")

    def __init__(
        self, scope: object, deadline: float | None, cancelled: bool, shield: bool
    ) -> None:
        self.scope = scope
        self.deadline = deadline
        self.cancelled = cancelled
        self.shield = shield


class ThreadInfo(_Info):
    """One live thread, as ``snapshot()`` saw it.

    ``ident``, ``name``; ``daemon`` (None if no ``Thread`` object describes it);
    ``state``: "running", "parked" or "idle" (a cached worker waiting for a job);
    ``is_main``; ``is_current`` (the thread that took the snapshot); ``foreign``
    (threadkit did not start it); ``waiting`` (a ``WaitInfo`` or None); ``holds``
    (``HeldInfo``s); ``scopes`` (``ScopeInfo``s, outermost first); ``task`` and its
    ``group``; ``stack`` (a ``traceback.StackSummary``, outermost first; None for an
    idle worker) and ``hidden_frames`` (threadkit's frames left out of it); ``thread``
    (its ``Thread`` object, if any).
    """

    __slots__ = (
        "ident",
        "name",
        "daemon",
        "state",
        "is_main",
        "is_current",
        "foreign",
        "waiting",
        "holds",
        "scopes",
        "task",
        "group",
        "stack",
        "hidden_frames",
        "thread",
    )

    def __init__(
        self,
        ident: int,
        name: str,
        daemon: bool | None,
        state: str,
        *,
        is_main: bool = False,
        is_current: bool = False,
        foreign: bool = False,
        waiting: WaitInfo | None = None,
        holds: tuple[HeldInfo, ...] = (),
        scopes: tuple[ScopeInfo, ...] = (),
        task: object | None = None,
        group: object | None = None,
        stack: Any = None,
        hidden_frames: int = 0,
        thread: object | None = None,
    ) -> None:
        self.ident = ident
        self.name = name
        self.daemon = daemon
        self.state = state
        self.is_main = is_main
        self.is_current = is_current
        self.foreign = foreign
        self.waiting = waiting
        self.holds = holds
        self.scopes = scopes
        self.task = task
        self.group = group
        self.stack = stack
        self.hidden_frames = hidden_frames
        self.thread = thread

    def __repr__(self) -> str:
        return f"<ThreadInfo {self.name!r} {self.ident} {self.state}>"


# -- reading ----------------------------------------------------------------------------
def _acquire(mutex: Any) -> bool:
    """Take ``mutex`` if that is possible soon; False means read without it."""
    try:
        return bool(mutex.acquire(True, _MUTEX_PATIENCE))
    except Exception:
        return False


def _registry_snapshot() -> dict[int, ThreadRecord]:
    mutex = _registry._mutex
    locked = _acquire(mutex)
    try:
        for _attempt in range(10):
            try:
                return dict(_registry._records)
            except RuntimeError:  # changed while copied (read without the mutex)
                continue
        return {}
    finally:
        if locked:
            mutex.release()


def _parked_on(rec: ThreadRecord) -> tuple[object, str, float | None, float | None] | None:
    """The plain fields of the node ``rec`` is parked on, or None if it is not parked
    (see the module docstring: only a WAITING node that is in its queue counts)."""
    node = rec.waiting
    if node is None:
        return None
    queue = node.queue
    mutex = queue.mutex
    locked = _acquire(mutex)
    try:
        try:
            queued = node in queue.waiters
        except RuntimeError:  # changed while searched (read without the mutex)
            queued = True
        if not (rec.waiting is node and node.queue is queue and node.state is WAITING):
            return None
        if not queued:
            return None
        return (
            node.resource,
            node.operation,
            getattr(node, "since", None),
            getattr(node, "deadline", None),
        )
    finally:
        if locked:
            mutex.release()


def _holders_of(resource: object, operation: str, careful: bool) -> tuple[int, ...]:
    """Idents of the threads that hold what a waiter in ``operation`` on ``resource``
    needs, as the resource says (``_tk_holders``), else a lock's last taker."""
    ask = None if careful else getattr(resource, "_tk_holders", None)
    if ask is not None:
        found = ask(operation)
        if found:
            return tuple(found)
    # A Lock taken without ``with`` may be released by any thread, so it names no
    # holder for deadlock detection; for the reader, its last taker still holds it.
    if operation == "acquire":
        holder = getattr(resource, "_holder", None)
        if holder is not None:
            ident = holder()
            return () if ident is None else (ident,)
    return ()


def _scopes_of(rec: ThreadRecord, now: float) -> tuple[ScopeInfo, ...]:
    found = []
    for scope in list(rec.scopes):
        deadline = getattr(scope, "_deadline", None)
        found.append(
            ScopeInfo(
                scope,
                None if deadline is None else deadline - now,
                bool(getattr(scope, "_cancel_called", False)),
                bool(getattr(scope, "_shield", False)),
            )
        )
    return tuple(found)


def _std_threads() -> dict[int, Any]:
    """The stdlib's table of threads, if ``threading`` is loaded and is not us."""
    std = sys.modules.get("threading")
    if std is None or std is sys.modules.get(__package__ or "threadkit"):
        return {}
    try:
        return dict(getattr(std, "_active", {}))
    except Exception:
        return {}


def _thread_object(ident: int, rec: ThreadRecord | None, std: dict[int, Any]) -> Any:
    if rec is not None and rec.thread is not None:
        return rec.thread
    thread = _threads._active.get(ident)
    if thread is not None and not isinstance(thread, _threads._DummyThread):
        return thread
    return std.get(ident, thread)


def _name_of(ident: int, thread: Any) -> str:
    label = thread_label(ident)
    if label == f"thread {ident}" and thread is not None:
        try:
            return str(thread.name)
        except Exception:
            pass
    return label


def _is_foreign(thread: Any) -> bool:
    return not (
        isinstance(thread, _threads.Thread)
        and not isinstance(thread, (_threads._DummyThread, _threads._MainThread))
    )


def _is_worker(thread: object) -> bool:
    workers = sys.modules.get(f"{__package__ or 'threadkit'}._workers")
    return workers is not None and isinstance(thread, workers.Worker)


def _idle_queue() -> object | None:
    """The cache's queue of idle workers, if the cache was ever loaded."""
    workers = sys.modules.get(f"{__package__ or 'threadkit'}._workers")
    return None if workers is None else getattr(workers, "_idle", None)


def _stack(frame: FrameType | None, parked: bool, all_frames: bool) -> tuple[Any, int]:
    """The stack of ``frame``, outermost first, and how many frames were left out.

    The dump's own frames never appear. Unless ``all_frames``, threadkit's frames
    below the program's code (a thread's bootstrap, a worker's loop) are left out, and
    so are those above it in a parked thread (how the wait parks: the ``waits`` line
    says what it is); a stack made only of threadkit's frames keeps those from the
    program's call into threadkit (a ``Thread``'s target, a task's function) on.
    """
    import traceback

    frames: list[FrameType] = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()  # outermost first
    while frames and frames[-1].f_code.co_filename == _HERE:
        frames.pop()
    total = len(frames)
    if not all_frames:
        ours = [f.f_code.co_filename.startswith(_PACKAGE_DIR) for f in frames]
        if not all(ours):
            first = ours.index(False)
            last = len(ours) - 1
            if parked:
                last = len(ours) - 1 - ours[::-1].index(False)
            frames = frames[first : last + 1]
        else:
            # The program called threadkit directly (``Thread(target=lock.acquire)``):
            # show from that call, the one below the innermost frame that calls the
            # program's code (``Thread.run``, a task's call; see ``interruptible``).
            while len(frames) > 1 and frames[-1].f_code.co_filename.startswith(_CORE_DIR):
                frames.pop()
            calls_program = getattr(_interrupts, "_open", ())
            start = 0
            for i, f in enumerate(frames):
                if f.f_code in calls_program:
                    start = i + 1
            frames = frames[min(start, len(frames) - 1) :]
    hidden = total - len(frames)
    if len(frames) > _STACK_LIMIT:
        frames = frames[-_STACK_LIMIT:]
    summary = traceback.StackSummary.extract(
        ((f, f.f_lineno) for f in frames), limit=None, lookup_lines=False
    )
    return summary, hidden


def _thread_info(
    ident: int,
    frame: FrameType | None,
    rec: ThreadRecord | None,
    std: dict[int, Any],
    now: float,
    me: int,
    main: int | None,
    idle_queue: object | None,
    all_frames: bool,
) -> ThreadInfo:
    thread = _thread_object(ident, rec, std)
    name = _name_of(ident, thread)
    daemon: bool | None = None
    if thread is not None:
        try:
            daemon = bool(thread.daemon)
        except Exception:
            pass
    waiting = None
    state = "running"
    scopes: tuple[ScopeInfo, ...] = ()
    task = group = None
    if rec is not None:
        parked = _parked_on(rec)
        if parked is not None:
            resource, operation, since, deadline = parked
            state = "parked"
            # A worker waiting for its next job: the cache's, or an executor's
            # runner kept for its initializer.
            if operation == "idle" and (resource is idle_queue or _is_worker(rec.thread)):
                state = "idle"
            waiting = WaitInfo(
                resource,
                operation,
                None if not since else max(0.0, now - since),  # 0.0: not parked yet
                None if deadline is None else deadline - now,
            )
        scopes = _scopes_of(rec, now)
        task = rec.task
        if task is not None:
            group = getattr(task, "_group", None)
    stack = None
    hidden = 0
    if state != "idle":
        stack, hidden = _stack(frame, state == "parked", all_frames)
    return ThreadInfo(
        ident=ident,
        name=name,
        daemon=daemon,
        state=state,
        is_main=ident == main,
        is_current=ident == me,
        foreign=_is_foreign(thread),
        waiting=waiting,
        scopes=scopes,
        task=task,
        group=group,
        stack=stack,
        hidden_frames=hidden,
        thread=thread,
    )


def snapshot(
    *, all_frames: bool = False, _exclude: int | None = None, _careful: bool = False
) -> list[ThreadInfo]:
    """Return every live thread as a ``ThreadInfo``: the main thread first, then in
    the order threadkit started them, then the threads it did not start.

    Read while the threads run: each entry is true of some instant during the call,
    not all of them of the same instant. ``all_frames`` keeps threadkit's own frames
    in the stacks (see ``format_dump``). Raises nothing of its own.
    """
    me = _thread.get_ident()
    now = monotonic()
    frames = sys._current_frames()
    recs = _registry_snapshot()
    std = _std_threads()
    main = _interrupts._main_ident
    idle_queue = _idle_queue()
    order = {ident: i for i, ident in enumerate(list(_threads._active))}
    idents = sorted(
        (ident for ident in frames if ident != _exclude),
        key=lambda ident: (ident != main, order.get(ident, len(order)), ident),
    )
    infos: list[ThreadInfo] = []
    for ident in idents:
        try:
            infos.append(
                _thread_info(
                    ident,
                    frames.get(ident),
                    recs.get(ident),
                    std,
                    now,
                    me,
                    main,
                    idle_queue,
                    all_frames,
                )
            )
        except Exception as error:  # one thread's part, not the dump
            infos.append(ThreadInfo(ident, f"thread {ident} (unreadable: {error!r})", None, "?"))
    del frames
    _with_holders(infos, _careful)
    return infos


def _with_holders(infos: list[ThreadInfo], careful: bool) -> None:
    """Fill in each parked thread's ``waiting.holders``, and each thread's ``holds``.

    ``careful``: in a signal handler that interrupted this thread, which may hold any
    of threadkit's mutexes; a resource's ``_tk_holders`` may take one, so only the
    locks' own owner fields are read.
    """
    # holder ident -> id(resource) -> (resource, operation, [waiter idents])
    held: dict[int, dict[int, tuple[object, str, list[int]]]] = {}
    for info in infos:
        wait = info.waiting
        if wait is None or info.state == "idle":
            continue
        try:
            wait.holders = _holders_of(wait.resource, wait.operation, careful)
        except Exception:
            continue
        for holder in wait.holders:
            mine = held.setdefault(holder, {})
            entry = mine.setdefault(id(wait.resource), (wait.resource, wait.operation, []))
            entry[2].append(info.ident)
    provider = _held_locks_provider
    for info in infos:
        mine = held.get(info.ident, {})
        holds = []
        for resource, operation, wanted in mine.values():
            how = _held_as(resource, operation, info.ident)
            if how is not None:
                holds.append(HeldInfo(resource, how, tuple(wanted)))
        if provider is not None:
            try:
                for lock in provider(info.ident) or ():
                    if id(lock) not in mine:
                        holds.append(HeldInfo(lock, f"holding {_repr(lock)}"))
            except Exception:
                pass
        info.holds = tuple(holds)


def _held_as(resource: object, operation: str, ident: int) -> str | None:
    """How thread ``ident`` holds up the waiters in ``operation`` on ``resource``, in
    the words of the deadlock report: ``resource._tk_held_as`` if it has one (None:
    nothing to say, as for a thread its joiners wait for), else "holding <repr>"."""
    method = getattr(resource, "_tk_held_as", None)
    if method is None:
        return f"holding {_repr(resource)}"
    try:
        how: str | None = method(operation, ident)
    except Exception:
        return f"holding {_repr(resource)}"
    return how


# -- formatting -------------------------------------------------------------------------
def _repr(obj: object) -> str:
    try:
        text = repr(obj)
    except Exception as error:
        return f"<{type(obj).__name__} object; repr() failed: {type(error).__name__}>"
    if len(text) > _REPR_MAX:
        text = text[: _REPR_MAX - 5] + "...>"
    return text


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if abs(value) < 10 else f"{value:.1f} s"


def _until(value: float) -> str:
    return f"in {_seconds(value)}" if value >= 0 else f"passed {_seconds(-value)} ago"


def _names(idents: tuple[int, ...], names: dict[int, str], most: int = 8) -> str:
    shown = ", ".join(names.get(ident) or thread_label(ident) for ident in idents[:most])
    return shown + (f" and {len(idents) - most} more" if len(idents) > most else "")


def _headline(info: ThreadInfo) -> str:
    facts = []
    if info.name != f"thread {info.ident}":
        facts.append(f"ident {info.ident}")
    if info.is_main:
        facts.append("main thread")
    if info.daemon is not None:
        facts.append("daemon" if info.daemon else "not daemon")
    if info.foreign and not info.is_main:
        facts.append("not started by threadkit")
    if info.is_current:
        facts.append("this thread")
    name = f'"{info.name}"' if info.name != f"thread {info.ident}" else str(info.ident)
    return f"Thread {name} ({', '.join(facts)}): {info.state}"


def _scope_line(scope: ScopeInfo) -> str | None:
    facts = []
    if scope.deadline is not None:
        facts.append(f"deadline {_until(scope.deadline)}")
    if scope.cancelled:
        facts.append("cancelled")
    if scope.shield:
        facts.append("shield")
    return f"  cancel scope: {', '.join(facts)}" if facts else None


def _format_thread(info: ThreadInfo, names: dict[int, str]) -> list[str]:
    lines = [_headline(info)]
    wait = info.waiting
    if wait is not None:
        line = f"  waits: {wait.operation} on {_repr(wait.resource)}"
        if wait.waited is not None:
            line += f" for {_seconds(wait.waited)}"
        if wait.deadline is not None:
            line += f", timeout {_until(wait.deadline)}"
        lines.append(line)
        if wait.holders:
            lines.append(f"    held by {_names(wait.holders, names)}")
    for held in info.holds:
        line = f"  {held.how}"
        if held.wanted_by:
            line += f" (wanted by {_names(held.wanted_by, names)})"
        lines.append(line)
    if info.task is not None:
        if info.group is not None:
            # A task's repr repeats what the lines above say; its name is enough.
            name = getattr(info.task, "name", None)
            what = str(name) if isinstance(name, str) else _repr(info.task)
            lines.append(f"  task: {what} in {_repr(info.group)}")
        else:
            lines.append(f"  task: {_repr(info.task)}")
    # Scopes with nothing armed (each thread's root scope, a group's own) say nothing.
    lines.extend(line for line in map(_scope_line, info.scopes) if line is not None)
    if info.stack is not None:
        lines.append("  Stack (most recent call last):")
        for entry in info.stack.format():
            lines.extend("  " + part for part in entry.rstrip("\n").split("\n"))
    return lines


def _format(infos: list[ThreadInfo]) -> str:
    names = {info.ident: info.name for info in infos}
    gil = getattr(sys, "_is_gil_enabled", None)
    build = ", free-threaded" if gil is not None and not gil() else ""
    version = ".".join(map(str, sys.version_info[:3]))
    out = [
        f"threadkit dump: {len(infos)} threads in process {os.getpid()} (Python {version}{build})",
        "",
    ]
    # id(where they wait) -> (where, idle workers)
    idle: dict[int, tuple[object, list[ThreadInfo]]] = {}
    for info in infos:
        if info.state == "idle" and info.waiting is not None:
            where = info.waiting.resource
            idle.setdefault(id(where), (where, []))[1].append(info)
            continue
        try:
            out.extend(_format_thread(info, names))
        except Exception as error:
            out.append(f'Thread "{info.name}" (ident {info.ident}): unreadable: {error!r}')
        out.append("")
    cache = _idle_queue()
    for where, workers in idle.values():
        shown = ", ".join(info.name for info in workers[:8])
        more = f", and {len(workers) - 8} more" if len(workers) > 8 else ""
        plural = "s" if len(workers) != 1 else ""
        owner = "the task-group cache" if where is cache else _repr(where)
        out.append(f"{len(workers)} idle worker{plural} of {owner}: {shown}{more}")
        out.append("")
    # A last line, so that a reader of a log (or of a pipe) knows the dump is whole.
    out.append("(end of threadkit dump)")
    out.append("")
    return "\n".join(out)


def format_dump(*, all_frames: bool = False) -> str:
    """Return the text ``dump()`` prints: every live thread, threadkit's or not.

    For each thread: its name, ident, whether it is the main thread or a daemon, and
    its state (``running``, ``parked`` in a threadkit wait); what it waits on
    (operation, resource, for how long, its call's timeout) and who holds that; what
    it holds that parked threads want; its task and task group; its cancel scopes
    that have a deadline, are cancelled or shield; and its stack, most recent call
    last. Idle workers of the task-group cache share one line.

    The stacks leave out threadkit's frames around the program's own (a thread's
    bootstrap below it, a parked thread's way into the park above it) unless
    ``all_frames`` is true. Raises nothing of its own; a ``repr`` that fails is
    shown as failed.
    """
    return _format(snapshot(all_frames=all_frames))


def dump(file: TextIO | None = None, *, all_frames: bool = False) -> None:
    """Print ``format_dump(all_frames=all_frames)`` to ``file`` (default: ``sys.stderr``
    at the time of the call) and flush it.

    Returns None; raises what writing to ``file`` raises. Not a cancellation point:
    it never parks (each mutex it reads under is waited for at most a moment).
    """
    text = format_dump(all_frames=all_frames)
    if file is None:
        file = sys.stderr
    file.write(text)
    file.flush()


# -- on a signal ------------------------------------------------------------------------
class _DumpHandler:
    """The handler ``dump_on_signal`` installs (a class, so that it has a repr)."""

    def __init__(self, signum: int, file: TextIO | None) -> None:
        self.signum = signum
        self.file = file

    def __repr__(self) -> str:
        try:
            name = signal.Signals(self.signum).name
        except ValueError:  # a real-time signal past SIGRTMIN has no name
            name = f"signal {self.signum}"
        return f"<threadkit dump handler for {name}>"

    def __call__(self, signum: int, frame: object) -> None:
        try:
            _thread.start_new_thread(self._dump_in_helper, ())
        except Exception:
            # No thread to be had (interpreter exit): dump here, best effort.
            self._write(_format(snapshot(_careful=True)))

    def _dump_in_helper(self) -> None:
        try:
            text = _format(snapshot(_exclude=_thread.get_ident()))
        except BaseException as error:
            text = f"threadkit dump failed: {error!r}\n"
        self._write(text)

    def _write(self, text: str) -> None:
        file = self.file if self.file is not None else sys.stderr
        try:
            file.write(text)
            file.flush()
        except Exception:
            pass


# The default signal; its name where it does not exist (Windows), which then fails.
_SIGUSR1: object = getattr(signal, "SIGUSR1", "SIGUSR1")

# signum -> (our handler, the handler it replaced when first installed); main thread only
_installed: dict[int, tuple[_DumpHandler, Any]] = {}


def _signal_number(signum: object) -> int:
    """``signum`` as a number: an int, a ``signal.Signals``, or a name ("SIGUSR1",
    "USR1", any case). Raises ValueError for an unknown name, TypeError otherwise."""
    if isinstance(signum, str):
        name = signum.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if not isinstance(member, signal.Signals):
            if signum.strip().isdigit():
                return int(signum.strip())
            raise ValueError(f"unknown signal name: {signum!r}")
        return int(member)
    if isinstance(signum, bool) or not isinstance(signum, int):
        raise TypeError(f"signal must be an int, a signal.Signals or a name, not {signum!r}")
    return int(signum)


def dump_on_signal(signum: object = _SIGUSR1, file: TextIO | None = None) -> Any:
    """Print the dump (``format_dump()``) each time the process receives ``signum``.

    ``signum`` is an int, a ``signal.Signals`` or a name ("SIGUSR1", "USR1");
    default SIGUSR1 (``kill -USR1 <pid>``). The dump goes to ``file``, or to
    ``sys.stderr`` as it is when the signal comes. It works while every thread,
    the main one included, is parked in threadkit: the handler starts a helper
    thread that writes the dump, so the main thread returns to its wait at once.

    Returns the handler that was installed for ``signum`` before (as
    ``signal.signal`` does). ``dump_on_signal(None)`` turns every such handler off,
    putting back the handler each one replaced if it is still installed, and returns
    None. Must be called from the main thread. Raises what ``signal.signal`` raises
    for a bad signal (ValueError, TypeError, OSError), ValueError for an unknown name,
    and ValueError for SIGINT (threadkit's Ctrl-C handling owns it) and for the
    signal threadkit uses to deliver a deferred Ctrl-C. SIGUSR1 does not exist on
    Windows: pass another signal there (``signal.SIGBREAK``).
    """
    if signum is None:
        for number, (handler, previous) in list(_installed.items()):
            if signal.getsignal(number) is handler:
                signal.signal(number, previous if previous is not None else signal.SIG_DFL)
            del _installed[number]
        return None
    number = _signal_number(signum)
    if number == signal.SIGINT:
        raise ValueError("SIGINT belongs to threadkit's Ctrl-C handling; pick another signal")
    if number > 0 and number == getattr(_interrupts, "_nudge_signal", 0):
        raise ValueError(f"signal {number} delivers threadkit's deferred Ctrl-C; pick another")
    handler = _DumpHandler(number, file)
    previous = signal.signal(number, handler)
    if number in _installed:
        _installed[number] = (handler, _installed[number][1])
    else:
        _installed[number] = (handler, previous)
    return previous


def _install_from_environment() -> None:
    """Install ``dump_on_signal`` for the signal named in ``THREADKIT_DUMP_SIGNAL``
    (say ``USR1``), if it is set and not empty; called once, at ``import threadkit``.

    A bad value, or an import outside the main thread, warns (RuntimeWarning)
    instead of failing the import.
    """
    value = os.environ.get(ENV, "").strip()
    if not value or value == "0":
        return
    try:
        dump_on_signal(value)
    except (ValueError, TypeError, OSError) as error:
        import warnings

        warnings.warn(f"{ENV}={value!r} ignored: {error}", RuntimeWarning, stacklevel=2)
