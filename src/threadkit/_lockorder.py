"""Lock-order checking (opt-in): warn when locks are taken in both orders.

The idea
--------
A deadlock between locks needs two threads that take the same locks in opposite
orders; a run where they happened not to overlap hides it. Linux's lockdep and
Abseil's ``Mutex`` deadlock detection find such bugs on the runs that did not hang:
they record, for every acquisition, "B taken while holding A" as an edge A -> B of
a graph, and report the first acquisition whose new edge closes a cycle. threadkit
does the same for its ``Lock`` and ``RLock``.

The graph's nodes are *lock classes*, not lock objects: a class is where the lock
was made (the file, line and column of the program's ``Lock()``, ``RLock()``,
``Condition()`` or ``Queue()`` call; threadkit's own frames are skipped, and so are
the ``__init__`` frames of a lock subclass). Two threads that each make a pair of
locks with the same function and take them in opposite orders never share a lock,
yet the order they disagree on is the program's: that is found as well. The column
tells ``a, b = Lock(), Lock()`` apart; the type does not make a class (a call that
makes a Lock here and an RLock there, ``kind()``, is a generic factory, and its
locks are told apart per object, as below for two locks of one class).

How it is switched on
---------------------
``check_lock_order()`` replaces methods of ``Lock`` and ``RLock`` with recording
wrappers around the ones in the class ``__dict__`` at that moment (``__init__``,
``acquire``, ``__enter__``, ``release``, ``__exit__``, the legacy ``acquire_lock``
and ``release_lock``, and the Condition protocol ``_release_save`` /
``_acquire_restore``, so that ``Condition.wait`` drops the lock from the held set
and takes it back); ``check_lock_order(False)`` puts those exact objects back. Off,
it costs nothing. A bound method taken while it was on (a ``Condition`` made while it
was on keeps its lock's ``acquire`` and the wait protocol) tests one flag and calls
the original after it is turned off. A ``Condition`` looks its lock's ``__enter__``
and ``__exit__`` up at each use, so its ``with cond:`` is recorded whenever it was
made; one made *before* checking was turned on keeps the original ``acquire`` and
wait protocol, so its ``cond.acquire()`` is unrecorded and, during a ``wait``, its
lock still counts as held. Each
wrapper records once around its original, so the originals must not call one
another through the class; the one that does, ``Lock._release_save`` calling
``release``, is allowed for (``tests/test_lockorder.py`` checks the levels).

Locks made before it was turned on have no creation site: each is a class of its
own (lockdep's per-object key), so they find inversions between the same two
objects, never between objects that merely look alike. Classing them by the site of
their first acquisition was rejected: a helper that takes whatever lock it is given
would make unrelated locks one class and report orders that are not there.

What counts
-----------
* Each thread keeps a stack of the locks it holds (``_thread._local``; also
  registered by ident so that ``held_locks`` can read another thread's: while
  checking is on it is the dump's ``_held_locks_provider``, so ``dump()`` lists what
  each thread holds even when nobody waits for it). The stack holds each lock's
  side-table entry, a weak reference: a lock the program dropped while holding it
  (nobody can release it any more) dies and stops counting, instead of adding
  orders to every later acquisition of that thread.
  An acquisition that may wait (blocking, with or without a timeout) of B
  while holding A1..An adds the edges Ai -> B it does not have yet; only a *new*
  edge can close a cycle, so the graph is searched (breadth-first, from B back to
  Ai) only then, and the steady state costs one dictionary look-up per held lock.
  The edges are checked *before* the lock is taken, as lockdep does: the warning
  comes out even if this very acquisition deadlocks, and a ``warnings`` filter set to
  ``"error"`` raises ``LockOrderWarning`` out of ``acquire`` with the lock not held.
* A non-blocking ``acquire(False)`` adds no edge (a trylock cannot wait, so it
  cannot be part of a deadlock), but the lock counts as held afterwards. A timed
  acquire does add edges: it can wait for its whole timeout, and an inversion then
  turns into timeouts under load (Abseil checks timed locks too).
* Re-entering an ``RLock`` the thread holds adds no edge (it cannot wait), nor does
  a ``Lock`` acquired again by the thread that holds it (it waits for another
  thread's ``release``, a signal, not for a lock order; a real self-deadlock there
  is for deadlock detection to raise).
* Two locks of the same class held together (hand-over-hand along a list, or two
  accounts locked in ``id()`` order) are not an inversion by themselves: lockdep
  reports them unless annotated, but threadkit has no annotation, and both patterns
  are common and correct in Python. Instead such pairs are recorded between the two
  lock *objects*: the same two objects taken in both orders is reported.
* A ``Lock`` may be released by a thread other than the one that took it. The
  releasing thread does not hold it, so the lock is removed from the stack of the
  thread that does (found by a scan of every stack, only on that rare path).
* ``Condition.wait`` removes its lock (every level of an ``RLock``) from the stack
  and, taking it back, records edges from the locks still held (waiting on a
  condition while holding another lock is an order too) and puts back the levels it
  removed, no more: ``Queue``'s hot paths take their mutex's C lock directly, so
  those acquisitions (and an order through a queue's mutex) are not recorded, and a
  ``get`` that waited must not leave the mutex on the stack.
* Not recorded either: acquisitions through bound methods taken before checking was
  turned on (see above), and locks other than threadkit's. What is missed can hide an
  inversion; it never makes one up. ``RLock(*args)``'s DeprecationWarning (3.13,
  3.14) points at the ``__init__`` wrapper while checking is on.

Reports
-------
A cycle is reported once (per set of classes in it): the report names every class
(creation site and a repr), the stack of the acquisition that closed it and the
stack recorded with each older edge of the cycle (captured as (file, line, name)
tuples when the edge was first seen; source lines are read only to format). It is
kept (``lock_order_reports``), given to the listeners, then warned with
``warnings.warn(LockOrderWarning(report))`` pointing at the program's acquire.

Cost
----
Measured with ``benchmarks/bench_lockorder.py`` (uncontended, one thread): about
300 ns more per acquire-and-release than with checking off, on 3.11 and on 3.14t,
and about 400 ns per acquire in a nested pair (the look-ups of the held locks'
edges). Off, nothing. Recording a new edge's stack as (file, line, name) tuples
costs about 4 us for 24 frames, against 27-43 us for
``traceback.extract_stack``; source lines are read only when a report is made.

Threads and Ctrl-C
------------------
The graph is shared: it changes under ``_graph_lock``, a ``_thread`` lock, which is
never held while calling anything that could block or run the program's code (reprs,
listeners and the warning come after it is released). A lookup on the fast path
reads the dictionaries without it. A garbage-collector finaliser that takes a lock
while this thread holds ``_graph_lock`` finds the thread marked busy and is not
checked (rather than deadlock on it). All of this is threadkit's runtime, so a
Ctrl-C is held back until a wrapper returns (``_core/_interrupts.py``); only the
report's delivery (``_deliver``, which runs the listeners and the warning machinery)
is open to it, and it runs before the lock is taken, so an interrupt there leaves the
lock not held.
"""

from __future__ import annotations

import _thread
import functools
import opcode
import os
import sys
import warnings
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from . import _dump
from ._core import interruptible, subscribe, thread_label
from ._sync import Lock, RLock

__all__ = [
    "LockOrderWarning",
    "add_lock_order_listener",
    "check_lock_order",
    "held_locks",
    "lock_order_enabled",
    "lock_order_reports",
    "reset_lock_order",
]


class LockOrderWarning(RuntimeWarning):
    """Two locks were taken in both orders: a deadlock waiting to happen."""


_get_ident = _thread.get_ident
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Frames kept per recorded stack (innermost ones, as a traceback keeps them).
_STACK_LIMIT = 24
#: The methods replaced, per class, when they are in the class ``__dict__``.
_WRAPPED = (
    "__init__",
    "acquire",
    "acquire_lock",
    "__enter__",
    "release",
    "release_lock",
    "__exit__",
    "_release_save",
    "_acquire_restore",
)

#: The classes whose methods are replaced.
_CLASSES: tuple[type, ...] = (Lock, RLock)
#: Whether checking is on; the one test a wrapper makes first.
_on = False
#: Guards switching on and off (``_originals``).
_switch_lock = _thread.allocate_lock()
#: class -> {name: the object that was in its ``__dict__``}, while on.
_originals: dict[type, dict[str, Any]] = {}


class _LockClass:
    """A node of the order graph: a creation site, or one lock object."""

    __slots__ = ("kind", "site", "obj_id", "__weakref__")

    def __init__(
        self, kind: str, site: tuple[str, int, str, int | None] | None, obj_id: int | None
    ) -> None:
        self.kind = kind
        #: (file, line, function, column) of the creation, if known.
        self.site = site
        #: id() of the one lock this node stands for, if it is per object.
        self.obj_id = obj_id

    def describe(self) -> str:
        where = None
        if self.site is not None:
            file, line, func, column = self.site
            col = "" if column is None else f":{column + 1}"
            where = f"{file}:{line}{col} (in {func})"
        if self.obj_id is None:
            return f"the locks created at {where}"
        if where is None:
            return (
                f"{self.kind} object at {self.obj_id:#x} "
                "(created before lock-order checking was on)"
            )
        return f"{self.kind} object at {self.obj_id:#x}, one of those created at {where}"


class _Ref(weakref.ref):  # type: ignore[type-arg]
    """A lock's entry in a side table: its node, kept while the lock lives.

    The held stacks hold these, not the locks: a lock the program dropped while it
    was held (so nobody can ever release it) then dies, and stops counting as held,
    instead of being kept alive to add orders from every later acquisition."""

    __slots__ = ("key", "node")
    key: int
    node: _LockClass


class _Edge:
    """``dst`` was acquired while holding ``src``: the first time, and where."""

    __slots__ = ("src", "dst", "frames", "thread", "held_repr", "acquired_repr")

    def __init__(
        self,
        src: _LockClass,
        dst: _LockClass,
        frames: tuple[tuple[str, int, str], ...],
        thread: str,
        held_repr: str,
        acquired_repr: str,
    ) -> None:
        self.src = src
        self.dst = dst
        self.frames = frames
        self.thread = thread
        self.held_repr = held_repr
        self.acquired_repr = acquired_repr


#: One thread's stack of held locks (their ``_Ref`` entries, one per level), oldest
#: first; an exact list: the interpreter's fast paths are for ``list`` only.
_Held = list[_Ref]


class _Anchor:
    """Kept only in a thread's local storage: it dies with the thread, and its
    weakref callback then drops the thread's entry from ``_stacks``."""

    __slots__ = ("__weakref__",)


# Side tables, keyed by id(lock); an entry leaves with its lock (a weakref callback).
#: Lock -> its class (its creation site, or itself if made before checking was on).
_classes: dict[int, _Ref] = {}
#: Lock -> its own node, for pairs of the same class held together.
_instances: dict[int, _Ref] = {}
#: (file, line, column, function) -> the class of the locks made there. Not per
#: type: a call that makes a Lock or an RLock (``kind()``) is a generic factory,
#: whose locks are told apart per object, as two locks of one class are.
_sites: dict[tuple[object, int, int | None, str], _LockClass] = {}
#: (code, instruction offset) -> the same class: the cheap look-up per creation.
#: Keyed by id(code), not by the code: equal code objects (the same source at the
#: same line in two files; two dataclasses' generated ``__init__``) are not one site.
#: The value keeps the code alive, so that its id is not reused.
_by_call: dict[tuple[int, int], tuple[CodeType, _LockClass | None]] = {}
#: The opcodes of a call: the instruction a lock's creating frame must be running.
_CALL_OPCODES = frozenset(op for name, op in opcode.opmap.items() if name.startswith("CALL"))
#: Per-object nodes whose lock died: their edges are dropped under ``_graph_lock``.
_dead: list[_LockClass] = []

#: The graph, under ``_graph_lock`` for writes: src -> {dst: edge}, and dst -> {src}.
_out: dict[_LockClass, dict[_LockClass, _Edge]] = {}
_in: dict[_LockClass, set[_LockClass]] = {}
_graph_lock = _thread.allocate_lock()
#: Cycles already reported (the set of their nodes), under ``_graph_lock``.
_reported: set[frozenset[_LockClass]] = set()
#: Every report so far, in order (extended after formatting: atomic).
_reports: list[str] = []
_listeners: list[Callable[[str], object]] = []

#: Thread-local: ``held`` (the thread's stack), ``anchor`` (an ``_Anchor``),
#: ``busy`` (inside the graph), ``restore`` (see ``_restore_levels``).
_tls = _thread._local()
#: ident -> that thread's stack (for ``held_locks`` and foreign releases).
_stacks: dict[int, _Held] = {}
#: ident -> the weak reference to its thread's anchor.
_anchors: dict[int, weakref.ref[_Anchor]] = {}


# ----------------------------------------------------------------------------------
# Classes of locks


def _creation_frame(lock: object) -> FrameType | None:
    """The program's frame that made ``lock`` (threadkit's and the lock's own
    ``__init__`` frames skipped; threadkit's outermost if there is no other)."""
    frame: FrameType | None = sys._getframe(3)
    last = frame
    while frame is not None:
        code = frame.f_code
        if not code.co_filename.startswith(_PACKAGE_DIR) and not (
            code.co_name == "__init__"
            and code.co_varnames[:1] == ("self",)
            and frame.f_locals.get("self") is lock
        ):
            return frame
        last = frame
        frame = frame.f_back
    return last


def _site_of(frame: FrameType, kind: str) -> _LockClass | None:
    """The class of the locks made by the call ``frame`` is running; None if ``frame``
    is not making a call (C code made the lock: a ``defaultdict``'s factory run by a
    subscript), whose locks share a role, not a place: each is a class of its own."""
    code = frame.f_code
    lasti = frame.f_lasti
    key_call = (id(code), lasti)
    known = _by_call.get(key_call)
    if known is not None:
        return known[1]
    if code.co_code[lasti] not in _CALL_OPCODES:
        return _by_call.setdefault(key_call, (code, None))[1]
    # The column tells ``a, b = Lock(), Lock()`` apart; found once per call site.
    line = frame.f_lineno
    column: int | None = None
    for i, (start, _end, col, _end_col) in enumerate(code.co_positions()):
        if i == lasti // 2:
            line = start if start is not None else line
            column = col
            break
    # Code compiled from a string (a dataclass's generated ``__init__``) has no file:
    # two such code objects with a lock at the same place are not the same site.
    file_key: object = id(code) if code.co_filename.startswith("<") else code.co_filename
    key = (file_key, line, column, code.co_name)
    node = _sites.get(key)
    if node is None:
        site = (code.co_filename, line, code.co_name, column)
        node = _sites.setdefault(key, _LockClass(kind, site, None))
    return _by_call.setdefault(key_call, (code, node))[1]


def _drop_entry(
    ref: _Ref, table: dict[int, _Ref], per_object: bool, dead: list[_LockClass] = _dead
) -> None:
    # The lock is being freed: its id cannot be reused before this runs. (``dead``
    # is bound here: at the interpreter's exit the module's globals may be gone.)
    if table.get(ref.key) is ref:
        table.pop(ref.key, None)
    if per_object:
        dead.append(ref.node)


_drop_class = functools.partial(_drop_entry, table=_classes, per_object=False)
_drop_own_class = functools.partial(_drop_entry, table=_classes, per_object=True)
_drop_instance = functools.partial(_drop_entry, table=_instances, per_object=True)


def _register(lock: object) -> None:
    """Class a lock just made by where it was made."""
    frame = _creation_frame(lock)
    if frame is None:  # pragma: no cover - a lock is always made by some frame
        return
    kind = _kind(lock)
    node = _site_of(frame, kind)
    if node is None:  # made by C code: a class of its own, named by where it was
        code = frame.f_code
        site = (code.co_filename, frame.f_lineno, code.co_name, None)
        ref = _Ref(lock, _drop_own_class)
        ref.node = _LockClass(kind, site, id(lock))
    else:
        ref = _Ref(lock, _drop_class)
        ref.node = node
    ref.key = id(lock)
    _classes[ref.key] = ref


def _kind(lock: object) -> str:
    cls = type(lock)
    module = "threadkit" if cls.__module__.startswith("threadkit") else cls.__module__
    return f"{module}.{cls.__qualname__}"


def _entry_of(lock: object) -> _Ref:
    """The side-table entry of ``lock``, made if it has none."""
    ref = _classes.get(id(lock))
    if ref is not None:
        return ref
    # Made before checking was on (or while it was off): a class of its own.
    ref = _Ref(lock, _drop_own_class)
    ref.key = id(lock)
    ref.node = _LockClass(_kind(lock), None, id(lock))
    return _classes.setdefault(ref.key, ref)


def _class_of(lock: object) -> _LockClass:
    return _entry_of(lock).node


def _instance_of(lock: object, cls: _LockClass) -> _LockClass:
    ref = _instances.get(id(lock))
    if ref is not None:
        return ref.node
    if cls.obj_id is not None:
        return cls  # already a node of its own
    ref = _Ref(lock, _drop_instance)
    ref.key = id(lock)
    ref.node = _LockClass(cls.kind, cls.site, id(lock))
    return _instances.setdefault(ref.key, ref).node


# ----------------------------------------------------------------------------------
# Held stacks


def _drop_stack(
    ident: int,
    ref: weakref.ref[_Anchor],
    anchors: dict[int, weakref.ref[_Anchor]] = _anchors,
    stacks: dict[int, _Held] = _stacks,
) -> None:
    # The thread ended (its local storage went): a later thread may reuse the ident.
    if anchors.get(ident) is ref:
        anchors.pop(ident, None)
        stacks.pop(ident, None)


def _new_stack() -> _Held:
    held: _Held = []
    anchor = _Anchor()
    ident = _get_ident()
    _anchors[ident] = weakref.ref(anchor, functools.partial(_drop_stack, ident))
    _stacks[ident] = held
    _tls.anchor = anchor
    _tls.held = held
    return held


def _my_stack() -> _Held:
    try:
        held: _Held = _tls.held
    except AttributeError:
        held = _new_stack()
    return held


def _remove(held: _Held, entry: _Ref) -> bool:
    try:
        held.remove(entry)  # one level (entries compare by their locks' identity)
    except ValueError:  # removed meanwhile by another thread
        return False
    return True


def _restore_levels() -> dict[int, int]:
    """This thread's levels of the locks its ``Condition.wait`` released, by id."""
    try:
        levels: dict[int, int] = _tls.restore
    except AttributeError:
        levels = _tls.restore = {}
    return levels


def _holder_stack(lock: object, held: _Held) -> _Held | None:
    """The stack that records ``lock`` as held, read before it is released: this
    thread's if it is there, else (a Lock released by a thread that does not hold
    it) the one other stack that has it, or None (it was taken unrecorded)."""
    if held and held[-1]() is lock:
        return held
    for dead in [h for h in held if h() is None]:
        _remove(held, dead)  # locks dropped by the program while held
    if any(h() is lock for h in held):
        return held
    for other in list(_stacks.values()):
        if other is not held and any(h() is lock for h in list(other)):
            return other
    return None


def _pop_from(stack: _Held | None, lock: object, held: _Held) -> None:
    """Take the newest level of ``lock`` off ``stack`` (from ``_holder_stack``);
    ``held`` is this thread's: only there is the top known not to move."""
    if stack is None:
        return
    if stack is held and held and held[-1]() is lock:
        held.pop()
        return
    for h in reversed(list(stack)):
        if h() is lock:
            _remove(stack, h)
            return


def held_locks(ident: int) -> list[Any]:
    """The locks thread ``ident`` holds now, oldest first, as lock-order checking saw
    them taken (each once); [] when checking is off."""
    if not _on:
        return []
    held = _stacks.get(ident)
    if not held:
        return []
    out: list[Any] = []
    for entry in list(held):
        lock = entry()
        if lock is not None and not any(lock is seen for seen in out):
            out.append(lock)
    return out


# ----------------------------------------------------------------------------------
# The graph


def _before_wait(lock: object, entry: _Ref, held: _Held) -> None:
    """Record the edges held -> ``lock`` before an acquisition that may wait."""
    cls = entry.node
    out = _out
    missing: list[tuple[_LockClass, _LockClass, object]] | None = None
    for h in held:
        if h is entry:
            return  # re-entry, or a Lock waited on as a signal: no order
        src = h.node
        dst = cls
        if src is dst:
            other = h()
            if other is None:
                continue  # dropped by the program while held
            src, dst = _instance_of(other, src), _instance_of(lock, cls)
        targets = out.get(src)
        if targets is None or dst not in targets:
            other = h()
            if other is not None:
                if missing is None:
                    missing = []
                missing.append((src, dst, other))
    if missing is not None:
        _add_edges(lock, missing)


def _capture() -> tuple[tuple[str, int, str], ...]:
    """The acquiring stack, outermost first: the program's frames, from the innermost
    out to the first of threadkit's (or the stack's start)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    frames: list[tuple[str, int, str]] = []
    while frame is not None and len(frames) < _STACK_LIMIT:
        code = frame.f_code
        if code.co_filename.startswith(_PACKAGE_DIR):
            # What called the program's code: a thread's bootstrap, a task's
            # runner, ``threadkit run``'s (and with it the console script's).
            break
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # a subclass's repr: never let it break an acquire
        return f"<{type(obj).__qualname__} object at {id(obj):#x} (repr raised {exc!r})>"


def _prune() -> None:
    """Drop the nodes of dead per-object locks (under ``_graph_lock``)."""
    while _dead:
        node = _dead.pop()
        for src in _in.pop(node, ()):
            targets = _out.get(src)
            if targets is not None:
                targets.pop(node, None)
        for dst in _out.pop(node, {}):
            sources = _in.get(dst)
            if sources is not None:
                sources.discard(node)


def _path(start: _LockClass, goal: _LockClass) -> list[_Edge] | None:
    """The edges of a shortest path from ``start`` to ``goal`` (under ``_graph_lock``)."""
    came: dict[_LockClass, _Edge | None] = {start: None}
    frontier = [start]
    while frontier:
        following: list[_LockClass] = []
        for node in frontier:
            for nxt, edge in _out.get(node, {}).items():
                if nxt in came:
                    continue
                came[nxt] = edge
                if nxt is goal:
                    path: list[_Edge] = []
                    step: _Edge | None = edge
                    while step is not None:
                        path.append(step)
                        step = came[step.src]
                    path.reverse()
                    return path
                following.append(nxt)
        frontier = following
    return None


def _add_edges(lock: object, missing: list[tuple[_LockClass, _LockClass, object]]) -> None:
    if getattr(_tls, "busy", False):
        return  # a finaliser run while this thread is inside the graph
    frames = _capture()
    thread = f"{thread_label(_get_ident())!r}"
    acquired_repr = _safe_repr(lock)
    new = [(src, dst, _safe_repr(h)) for src, dst, h in missing]
    cycles: list[list[_Edge]] = []
    _tls.busy = True
    try:
        with _graph_lock:
            _prune()
            for src, dst, held_repr in new:
                targets = _out.get(src)
                if targets is None:
                    targets = _out[src] = {}
                if dst in targets:
                    continue
                edge = _Edge(src, dst, frames, thread, held_repr, acquired_repr)
                targets[dst] = edge
                sources = _in.get(dst)
                if sources is None:
                    sources = _in[dst] = set()
                sources.add(src)
                back = _path(dst, src)
                if back is None:
                    continue
                key = frozenset([src, *(e.dst for e in back)])
                if key in _reported:
                    continue
                _reported.add(key)
                cycles.append([edge, *back])
    finally:
        _tls.busy = False
    reports = [_format(cycle) for cycle in cycles]
    _reports.extend(reports)  # kept even if a delivery below raises
    for report in reports:
        _deliver(report)


def _format_frames(frames: tuple[tuple[str, int, str], ...]) -> list[str]:
    import linecache

    lines = []
    for file, line, name in frames:
        lines.append(f'    File "{file}", line {line}, in {name}')
        source = linecache.getline(file, line).strip()
        if source:
            lines.append(f"      {source}")
    return lines


def _format(cycle: list[_Edge]) -> str:
    """The report of a cycle; ``cycle[0]`` is the edge being added now."""
    names: dict[_LockClass, str] = {}
    reprs: dict[_LockClass, str] = {}
    for edge in cycle:
        for node, text in ((edge.src, edge.held_repr), (edge.dst, edge.acquired_repr)):
            if node not in names:
                names[node] = chr(ord("A") + len(names)) if len(names) < 26 else f"L{len(names)}"
                reprs[node] = text
    count = len(names)
    lines = [
        f"lock order inversion: {count} locks taken in a cycle of orders, "
        "a deadlock waiting to happen",
        "",
    ]
    for node, name in names.items():
        lines.append(f"  {name} = {node.describe()}")
        lines.append(f"      e.g. {reprs[node]}")
    now = cycle[0]
    lines.append("")
    lines.append(
        f"Thread {now.thread} acquires {names[now.dst]} while holding {names[now.src]}, at:"
    )
    lines += _format_frames(now.frames)
    for edge in cycle[1:]:
        lines.append(
            f"Earlier, thread {edge.thread} acquired {names[edge.dst]} "
            f"while holding {names[edge.src]}, at:"
        )
        lines += _format_frames(edge.frames)
    return "\n".join(lines)


@interruptible  # runs the listeners and the warning machinery: the program's code
def _deliver(report: str) -> None:
    for listener in list(_listeners):
        try:
            listener(report)
        except Exception:
            sys.excepthook(*sys.exc_info())
    frame: FrameType | None = sys._getframe(0)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(LockOrderWarning(report), stacklevel=level)


# ----------------------------------------------------------------------------------
# The wrappers


def _wrap_init(orig: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(orig)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        orig(self, *args, **kwargs)
        if _on:
            _register(self)

    return __init__


def _wrap_acquire(orig: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(orig)
    def acquire(self: Any, blocking: bool = True, timeout: float = -1) -> bool:
        if not _on:
            return orig(self, blocking, timeout)
        try:
            held: _Held = _tls.held
        except AttributeError:
            held = _new_stack()
        entry = _classes.get(id(self))
        if entry is None:
            entry = _entry_of(self)
        if held and blocking:
            _before_wait(self, entry, held)
        if orig(self, blocking, timeout):
            held.append(entry)
            return True
        return False

    return acquire


def _wrap_enter(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def __enter__(self: Any) -> Any:
        if not _on:
            return orig(self)
        try:
            held: _Held = _tls.held
        except AttributeError:
            held = _new_stack()
        entry = _classes.get(id(self))
        if entry is None:
            entry = _entry_of(self)
        if held:
            _before_wait(self, entry, held)
        result = orig(self)
        held.append(entry)
        return result

    return __enter__


def _wrap_release(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def release(self: Any) -> Any:
        if not _on:
            return orig(self)
        return _release_recorded(self, orig, ())

    return release


def _wrap_exit(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def __exit__(self: Any, exc_type: Any, exc: Any, tb: Any) -> Any:
        if not _on:
            return orig(self, exc_type, exc, tb)
        return _release_recorded(self, orig, (exc_type, exc, tb))

    return __exit__


def _release_recorded(lock: Any, orig: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Release ``lock`` through ``orig`` and take it off the held stack that records
    it: the calling thread's, or its holder's if another thread releases it."""
    try:
        held: _Held = _tls.held
    except AttributeError:
        held = _new_stack()
    if held and held[-1]() is lock:
        result = orig(lock, *args)
        held.pop()
        return result
    # Whose stack records it is read while it is still held: once released, another
    # thread may take it and push it, and a scan would find that one.
    owner = _holder_stack(lock, held)
    result = orig(lock, *args)
    _pop_from(owner, lock, held)
    return result


def _wrap_release_save(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def _release_save(self: Any) -> Any:
        if not _on:
            return orig(self)
        held = _my_stack()
        levels = sum(1 for h in held if h() is self)
        state = orig(self)
        # Every level is released, whether or not the original went through release.
        for entry in [h for h in held if h() is self]:
            _remove(held, entry)
        if levels:
            # For _acquire_restore: put back what was recorded, and no more. A lock
            # taken unrecorded (a queue's hot path takes its mutex's C lock) stays so.
            _restore_levels()[id(self)] = levels
        return state

    return _release_save


def _wrap_acquire_restore(orig: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(orig)
    def _acquire_restore(self: Any, state: Any) -> Any:
        if not _on:
            return orig(self, state)
        held = _my_stack()
        entry = _entry_of(self)
        if held:
            _before_wait(self, entry, held)
        result = orig(self, state)
        levels = _restore_levels().pop(id(self), 0)
        have = sum(1 for h in held if h is entry)
        held.extend([entry] * (levels - have))
        return result

    return _acquire_restore


_WRAPPERS: dict[str, Callable[[Any], Any]] = {
    "__init__": _wrap_init,
    "acquire": _wrap_acquire,
    "acquire_lock": _wrap_acquire,
    "__enter__": _wrap_enter,
    "release": _wrap_release,
    "release_lock": _wrap_release,
    "__exit__": _wrap_exit,
    "_release_save": _wrap_release_save,
    "_acquire_restore": _wrap_acquire_restore,
}


# ----------------------------------------------------------------------------------
# Public


def check_lock_order(on: bool = True) -> bool:
    """Turn lock-order checking on (or off, with ``on=False``) for the process.

    Returns the previous setting. On, every ``Lock`` and ``RLock`` acquisition is
    recorded, and the first one that takes locks in an order contradicting an
    earlier one warns ``LockOrderWarning``; off, the classes' original methods are
    back and it costs nothing. Locks made while it is on are classed by where they
    were made; older locks each form a class of their own.
    """
    global _on
    on = bool(on)
    with _switch_lock:
        was = _on
        if on == was:
            return was
        if on:
            # A thread that was inside a wrapper while it was off may have pushed a
            # lock it then released unrecorded: every stack starts afresh.
            for held in list(_stacks.values()):
                held.clear()
            for cls in _CLASSES:
                saved = {name: cls.__dict__[name] for name in _WRAPPED if name in cls.__dict__}
                _originals[cls] = saved
                _on = True
                for name, original in saved.items():
                    setattr(cls, name, _WRAPPERS[name](original))
            _register_fork_hook()
            _dump._held_locks_provider = held_locks  # the dump lists what each holds
        else:
            for cls, saved in _originals.items():
                for name, original in saved.items():
                    setattr(cls, name, original)
            _originals.clear()
            _on = False
            if _dump._held_locks_provider is held_locks:
                _dump._held_locks_provider = None
            # What was held is not known any more once releases go unrecorded.
            for held in list(_stacks.values()):
                held.clear()
        return was


def lock_order_enabled() -> bool:
    """Return True if lock-order checking is on."""
    return _on


def lock_order_reports() -> list[str]:
    """Every lock-order report made so far in this process (or since the last reset)."""
    return list(_reports)


def add_lock_order_listener(listener: Callable[[str], object]) -> Callable[[], None]:
    """Call ``listener(report)`` for every new lock-order report; return a function
    that removes it. A listener's exception goes to ``sys.excepthook``."""
    return subscribe(_listeners, listener)


def reset_lock_order() -> None:
    """Forget the order graph, the cycles already reported and the reports (for tests).

    Locks keep their classes, and threads the locks they hold.
    """
    _tls.busy = True
    try:
        with _graph_lock:
            _out.clear()
            _in.clear()
            _reported.clear()
            _reports.clear()
            _dead.clear()
    finally:
        _tls.busy = False


_fork_hook = [False]


def _register_fork_hook() -> None:
    if not _fork_hook[0] and hasattr(os, "register_at_fork"):
        _fork_hook[0] = True
        os.register_at_fork(after_in_child=_after_fork)


def _after_fork() -> None:
    """In a forked child: only the forking thread is left, and nobody holds the graph."""
    global _graph_lock
    _graph_lock = _thread.allocate_lock()
    _tls.busy = False
    me = _get_ident()
    for ident in list(_stacks):
        if ident != me:
            held = _stacks.pop(ident, None)
            _anchors.pop(ident, None)
            if held is not None:
                held.clear()
