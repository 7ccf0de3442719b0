"""threadkit beside the stdlib's ``threading``: what keeps a program whole when both run.

Without the stand-in (``import threadkit`` in a program that also, directly or through
``logging``, ``concurrent.futures`` and the like, imports the real ``threading``), two
things would go wrong, and this module fixes both:

1. **Names.** ``threading.current_thread()`` in a thread that ``threading`` did not start
   makes a ``_DummyThread`` named ``Dummy-N``; ``logging``'s ``%(threadName)s`` would print
   that for every threadkit thread. So a threadkit thread, when it starts, enters itself in
   ``threading``'s table of threads as a *mirror*: a ``threading._DummyThread`` subclass
   whose name and daemon flag are read from the threadkit thread (a worker shows the name
   of the task it runs). It leaves the table when the thread ends. Threads started before
   ``threading`` was first imported are not mirrored: a mirror can only be made by its own
   thread, at its start.
2. **Exit order.** The interpreter's exit calls ``threading._shutdown()``, which runs the
   functions given to ``threading._register_atexit`` and joins ``threading``'s threads,
   before any ``atexit`` handler. threadkit's own ``_shutdown`` is an ``atexit`` handler, so
   a module imported after threadkit (``logging`` is the common one) would shut down
   before threadkit's non-daemon threads are joined, and a line they log late would be
   lost. So threadkit's ``_shutdown`` is registered with ``threading._register_atexit``
   too: at import if ``threading`` is loaded, otherwise as soon as it is, by a finder
   that watches for that one import and leaves ``sys.meta_path`` once it has seen it.

When threadkit *is* ``threading`` (the stand-in), neither applies and nothing here runs.

The runtime never imports ``threading``; this module only looks in ``sys.modules``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["forget", "known_as", "mirror", "std_hooks", "unmirror", "watch"]

_PACKAGE = __package__ or "threadkit"
#: ``threading`` module -> its mirror class (one per module object: tests reload it).
_classes: dict[int, tuple[ModuleType, type]] = {}
_hook: Callable[[], object] | None = None
#: ``id(threading)`` of the modules registered with (no lock: one taken here could be
#: held at a fork by a thread the child does not have; ``setdefault`` is atomic).
_registered: dict[int, object] = {}


def _stdlib() -> ModuleType | None:
    """The real ``threading`` if it is loaded and threadkit does not stand in for it."""
    std = sys.modules.get("threading")
    if std is None or std is sys.modules.get(_PACKAGE) or std.__name__ != "threading":
        return None
    return std


def _mirror_class(std: ModuleType) -> Any:
    entry = _classes.get(id(std))
    if entry is not None and entry[0] is std:
        return entry[1]
    return _classes.setdefault(id(std), (std, _make_mirror_class(std)))[1]


def _ignore(self: Any, value: object) -> None:
    pass


def _handle_of(thread: Any) -> Any:
    from ._threads import _Handle

    return _Handle(thread)


def std_hooks() -> tuple[Any, Any]:
    """The trace and profile functions set through the real ``threading``, if loaded."""
    std = _stdlib()
    if std is None:
        return None, None
    return getattr(std, "_trace_hook", None), getattr(std, "_profile_hook", None)


def _view(field: str) -> Any:
    """A property of the mirror that reads ``field`` of the threadkit thread; what
    ``threading`` would write there is dropped (the threadkit thread keeps its own)."""

    def get(self: Any) -> Any:
        return getattr(self._tk_thread, field)

    def ignore(self: Any, value: object) -> None:
        pass

    return property(get, ignore)


def _make_mirror_class(std: ModuleType) -> type:
    base: Any = std._DummyThread
    started = std.Event()
    started.set()

    class ThreadkitThread(base):  # type: ignore[misc]
        """A threadkit thread as ``threading`` sees it: a ``_DummyThread`` (a thread
        ``threading`` did not start) whose name, ident, daemon flag, liveness and
        ``join`` are the threadkit thread's.

        Made without ``Thread.__init__`` (see ``mirror``): every attribute that
        ``threading``'s methods read of a started thread is here, read from the
        threadkit thread, for the versions 3.11 to 3.15.
        """

        _tk_thread: Any = None
        _initialized = True
        _started = started  # set: it has started
        _tstate_lock = None  # 3.11, 3.12
        _target = None
        _args: tuple[Any, ...] = ()
        _kwargs: dict[str, Any] = {}  # noqa: RUF012 - never written
        _stderr = None
        _ident = _view("_ident")
        _native_id = _view("_native_id")
        _daemonic = _view("daemon")
        # Computed here, not read from the threadkit thread: a subclass of it may
        # use those names for itself.
        _is_stopped = property(lambda self: not self._tk_thread.is_alive(), _ignore)
        _handle = _os_thread_handle = property(lambda self: _handle_of(self._tk_thread), _ignore)

        @property
        def _name(self) -> str:
            return str(self._tk_thread.name)

        @_name.setter
        def _name(self, name: str) -> None:
            self._tk_thread.name = name  # a rename through threading renames it

        # Unlike a dummy, it can be joined and it ends: code that joins every
        # non-daemon thread of threading.enumerate() at exit joins it too.
        def is_alive(self) -> bool:
            return bool(self._tk_thread.is_alive())

        def join(self, timeout: float | None = None) -> None:
            self._tk_thread.join(timeout)

        # What threading's fork handling calls on each thread: threadkit's own fork
        # handling keeps the thread (in a child forked from it, it stays the thread
        # it was, where threading would make a dummy the main thread).
        def _after_fork(self, new_ident: int | None = None) -> None:
            pass

        def _reset_internal_locks(self, is_alive: bool) -> None:
            if is_alive:
                # 3.11/3.12: the fork's child made this threading's main thread;
                # threading._shutdown() (multiprocessing calls it) releases this.
                lock = std._allocate_lock()
                lock.acquire()
                self.__dict__["_tstate_lock"] = lock

        def _stop(self) -> None:
            pass

    ThreadkitThread.__module__ = _PACKAGE
    return ThreadkitThread


def mirror(thread: Any) -> Any:
    """In a threadkit thread that has just started: enter it in ``threading``'s table
    (if ``threading`` is loaded) and return the mirror, for ``unmirror`` at its end."""
    std = _stdlib()
    if std is None:
        return None
    # Not through _DummyThread.__init__, which is slow for every thread start (an
    # Event, a WeakSet entry, a thread handle) and, from 3.12, attaches a thread-local
    # object whose __del__ takes threading._active_limbo_lock when the thread's state
    # is deleted: in a child forked from another thread CPython deletes the other
    # threads' states before any fork hook has reset that lock, which one of them may
    # have held at the fork, and the child hung (several per hundred, 16 threads
    # forking at once, 3.15t). unmirror() removes the mirror instead.
    try:
        cls = _mirror_class(std)
        made = cls.__new__(cls)
        made._tk_thread = thread
        with std._active_limbo_lock:
            std._active[thread._ident] = made
    except Exception:
        return None  # a threading we do not know the insides of: Dummy-N it is
    return made


def known_as(ident: int) -> tuple[str, bool] | None:
    """The name and daemon flag ``threading`` knows the thread ``ident`` by, if it
    started it."""
    std = _stdlib()
    thread = None if std is None else getattr(std, "_active", {}).get(ident)
    # Not a dummy (a mirror is one): before 3.12 threading keeps those of ended
    # threads, whose idents new threads reuse.
    if thread is None or isinstance(thread, getattr(std, "_DummyThread", ())):
        return None
    try:
        return str(thread.name), bool(thread.daemon)
    except Exception:
        return None


def unmirror(mirror: Any) -> None:
    """In the ending thread: take its mirror out of ``threading``'s table."""
    std = sys.modules.get("threading")
    ident = mirror._ident
    table = getattr(std, "_active", None)
    lock = getattr(std, "_active_limbo_lock", None)
    if table is None or lock is None:
        return
    with lock:
        if table.get(ident) is mirror:
            del table[ident]


def _register(std: ModuleType) -> None:
    """Have ``threading``'s exit call threadkit's ``_shutdown`` before ``atexit`` runs."""
    hook = _hook
    register = getattr(std, "_register_atexit", None)
    if hook is None or register is None:
        return
    token = object()
    if _registered.setdefault(id(std), token) is not token:
        return
    try:
        register(hook)
    except RuntimeError:
        pass  # threading is already shutting down: threadkit's atexit handler will do


class _Watch:
    """A ``sys.meta_path`` finder that finds nothing: it sees ``threading`` being
    imported, lets the other finders find it, and registers threadkit's exit with it
    once its code has run."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if name != "threading":
            return None
        forget()
        from importlib.util import find_spec

        spec = find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Registering(spec.loader)  # type: ignore[assignment]
        return spec


class _Registering:
    """The real loader of ``threading``, which afterwards registers threadkit's exit."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        _register(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_watch = _Watch()


def watch(shutdown: Callable[[], object]) -> None:
    """At import: make ``threading``'s exit call ``shutdown`` first, now if it is
    loaded, or when it is."""
    global _hook
    _hook = shutdown
    std = _stdlib()
    if std is not None:
        _register(std)
    elif sys.modules.get("threading") is None and _watch not in sys.meta_path:
        # A new list, not a change to the one an import in another thread may be
        # going through (3.11 to 3.13 walk the list itself).
        sys.meta_path = [_watch, *sys.meta_path]


def forget() -> None:
    """Stop watching for ``threading`` (it was imported, or threadkit stands in for it)."""
    if _watch in sys.meta_path:
        sys.meta_path = [finder for finder in sys.meta_path if finder is not _watch]
