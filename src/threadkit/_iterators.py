"""Iterators that threads can share: ``serialize_iterator``, ``synchronized_iterator``
and ``concurrent_tee``, CPython 3.15's additions to ``threading``, on every Python.

The idea
--------
Most iterators may not be advanced by two threads at once: a generator raises
"already executing", and without the GIL an ``itertools`` iterator can hand out an
item twice or skip one. CPython 3.15 answers with three helpers in ``threading``;
threadkit offers them on 3.11 and later with 3.15's signatures, semantics, errors and
messages, built on threadkit's own ``Lock``, so a thread waiting for its turn waits
in the core (a cancellation point, open to Ctrl-C, seen by diagnostics).

* ``serialize_iterator`` holds one non-reentrant lock for the whole of each call
  into the wrapped iterator (``__next__``, and ``send``, ``throw`` and ``close``
  when it has them). An iterator that, while producing an item, advances its own
  wrapper in the same thread deadlocks, exactly as under 3.15.
* ``synchronized_iterator`` decorates a function that returns iterators (a
  generator function, ``itertools.count``) so that each call returns a
  ``serialize_iterator``.
* ``concurrent_tee`` makes ``n`` independent iterators over one source, like
  ``itertools.tee`` but safe when each copy is used by a different thread. The
  copies share one chain of *steps* and one lock; each copy holds the step it reads
  next. A step is filled once, under the lock, by whichever copy gets to it first,
  and a filled step is read without the lock, so copies that are behind never wait
  for the one pulling from the source. Steps that every copy has passed are freed:
  memory is bounded by the distance between the slowest and the fastest copy.

A step is filled with a single store: its ``filled`` field goes from None to the
pair ``(item, next step)``, built before it is stored, and never changes again. A
reader that sees the pair therefore sees all of it, also without the GIL, where
CPython's attribute stores publish with release and its loads read with acquire
ordering. Rejected: 3.15's own link, ``[item, next]`` written field by field (it is
correct only because the second store is seen after the first, one more ordering
fact to rely on); and a lock around every read (the copies reading buffered items
would contend with the one pulling from the source).

Ctrl-C and cancellation
-----------------------
Like all of threadkit's runtime, this module's code is protected from Ctrl-C (see
``_core/_interrupts.py``), so no ``with`` block here can be left with its lock held
and no step is half-filled. The calls into the program's code (``iter()``, the
source's ``__next__``, ``send``, ``throw`` and ``close``, the decorated function)
go through the small helpers below marked ``@interruptible``: a source that
computes or blocks for long is as interruptible as it would be anywhere else. One
window is left: a SIGINT that arrives after the source's own last signal check but
before its item is back in protected code is raised in the helper, at the check
CPython makes when the call returns, and that item is lost (for a tee, to every
copy, where ``itertools.tee``, written in C, would have kept it). Closing it would
take the core telling that check apart from the source's frames above it.

``__next__``, ``send``, ``throw`` and ``close`` are cancellation points, also when
they do not have to wait: ``serialize_iterator``'s through its lock, the tee's
through an explicit check on the path that reads a filled step. They take no
``timeout``; a scope's deadline raises ``Cancelled`` while waiting for the lock.
The program's iterator itself is not interrupted by cancellation, only by its own
threadkit calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, ParamSpec, TypeVar

from ._core import checkpoint, interruptible, on_armed
from ._sync import Lock

__all__ = ["concurrent_tee", "serialize_iterator", "synchronized_iterator"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

# True while some entered scope is cancelled or has a deadline: only then does the
# tee's lock-free path need to look (see _core.on_armed).
_ARMED = False


def _set_armed(flag: bool) -> None:
    global _ARMED
    _ARMED = flag


on_armed(_set_armed)


# -- calls into the program's code, open to Ctrl-C ---------------------------------------
@interruptible
def _iter(iterable: Iterable[_T]) -> Iterator[_T]:
    """``iter(iterable)``, which may run the program's ``__iter__``."""
    return iter(iterable)


@interruptible
def _next(iterator: Iterator[_T]) -> _T:
    """``next(iterator)``: one item from the program's iterator."""
    return next(iterator)


@interruptible
def _produce(
    func: Callable[_P, Iterable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
) -> Iterable[_T]:
    """``func(*args, **kwargs)``: the iterable a ``synchronized_iterator`` function wraps."""
    return func(*args, **kwargs)


@interruptible
def _call_method(iterator: Any, name: str, args: tuple[Any, ...]) -> Any:
    """``iterator.<name>(*args)``; AttributeError, as 3.15 gives, if it has no such method."""
    return getattr(iterator, name)(*args)


# -- serialize_iterator, synchronized_iterator -------------------------------------------
class serialize_iterator(Generic[_T]):
    """Wrap an iterator that is not thread-safe so that threads can share it.

    ``serialize_iterator(iterable)`` calls ``iter(iterable)`` once; then each call to
    ``__next__``, and to ``send()``, ``throw()`` and ``close()`` if the iterator has
    them, runs with a lock held, so calls from different threads run one after the
    other and every item is handed to exactly one caller. The lock is not reentrant:
    an iterator that advances its own wrapper while producing an item deadlocks.
    Example: ``counter = serialize_iterator(itertools.count())``.
    """

    __slots__ = ("_iterator", "_lock")

    def __init__(self, iterable: Iterable[_T]) -> None:
        #: The wrapped iterator; called into only with ``_lock`` held.
        self._iterator: Iterator[_T] = _iter(iterable)
        #: Held for the whole of each call into ``_iterator``.
        self._lock = Lock()

    def __iter__(self) -> serialize_iterator[_T]:
        return self

    def __next__(self) -> _T:
        """Return the wrapped iterator's next item, waiting for any call in progress.

        Raises what the wrapped iterator raises (StopIteration at its end). A
        cancellation point: ``Cancelled`` on entry in a cancelled scope, or when the
        scope is cancelled (or its deadline passes) while waiting for another
        thread's call. Interrupted while waiting (Ctrl-C, ``Cancelled``), it has not
        touched the iterator; the lock is never left held.
        """
        with self._lock:
            return _next(self._iterator)

    def send(self, value: Any, /) -> _T:
        """Call the wrapped generator's ``send(value)`` and return what it yields.

        AttributeError if the wrapped iterator has no ``send``. Waits, and may raise
        ``Cancelled``, exactly as ``__next__``.
        """
        with self._lock:
            result: _T = _call_method(self._iterator, "send", (value,))
            return result

    def throw(self, *args: Any) -> _T:
        """Call the wrapped generator's ``throw(*args)`` and return what it yields.

        AttributeError if the wrapped iterator has no ``throw``. Waits, and may raise
        ``Cancelled``, exactly as ``__next__``.
        """
        with self._lock:
            result: _T = _call_method(self._iterator, "throw", args)
            return result

    def close(self) -> Any:
        """Call the wrapped generator's ``close()`` and return what it returns.

        AttributeError if the wrapped iterator has no ``close``. Waits, and may raise
        ``Cancelled``, exactly as ``__next__``.
        """
        with self._lock:
            return _call_method(self._iterator, "close", ())


def synchronized_iterator(
    func: Callable[_P, Iterable[_T]],
) -> Callable[_P, serialize_iterator[_T]]:
    """Wrap a function that returns iterators so that it returns shareable ones.

    Returns a function with ``func``'s name, docstring and ``__wrapped__`` that
    calls ``func`` and wraps its result in a ``serialize_iterator``. Works on
    ``itertools`` constructors (``synchronized_iterator(itertools.count)``) and as
    a decorator of generator functions. Raises what ``func`` raises, and TypeError
    if its result is not iterable.
    """

    @functools.wraps(func)
    def inner(*args: _P.args, **kwargs: _P.kwargs) -> serialize_iterator[_T]:
        return serialize_iterator(_produce(func, *args, **kwargs))

    return inner


# -- concurrent_tee ----------------------------------------------------------------------
def concurrent_tee(iterable: Iterable[_T], n: int = 2) -> tuple[Iterator[_T], ...]:
    """Return ``n`` independent iterators over ``iterable``, for use by different threads.

    Like ``itertools.tee``, but each returned iterator may be consumed by its own
    thread while the others are consumed by theirs; each sees every item, in order,
    and the source is advanced once per item, by whichever copy needs it first (the
    source need not be thread-safe). One copy is not thread-safe by itself: to share
    it between threads, wrap it in ``serialize_iterator``. Passing a copy as
    ``iterable`` makes new copies that start where it stands.

    Returns ``()`` for ``n == 0`` without calling ``iter(iterable)``. ValueError if
    ``n`` is negative; TypeError if ``iterable`` is not iterable. The copies'
    ``__next__`` is a cancellation point (see ``serialize_iterator.__next__``); an
    error raised by the source goes to the copy that pulled it and is not kept: the
    next copy to need that item asks the source again.
    """
    if n < 0:
        raise ValueError("n must be a non-negative integer")
    if n == 0:
        return ()
    first: _concurrent_tee[_T] = _concurrent_tee(iterable)
    return (first, *[_concurrent_tee(first) for _ in range(n - 1)])


class _Step(Generic[_T]):
    """One position in a concurrent_tee's stream, shared by every copy that reaches it."""

    __slots__ = ("filled",)

    def __init__(self) -> None:
        #: None until the item at this position is known, then ``(item, next step)``.
        #: Written once, with the copies' shared lock held; read without it.
        self.filled: tuple[_T, _Step[_T]] | None = None


class _concurrent_tee(Generic[_T]):
    """One copy made by ``concurrent_tee``: an iterator over the shared stream."""

    # The names of 3.15's own copy (code and tests read ``lock``); ``link`` is a _Step.
    __slots__ = ("iterator", "link", "lock")

    def __init__(self, iterable: Iterable[_T]) -> None:
        if isinstance(iterable, _concurrent_tee):
            # A copy of a copy: the same source, lock and stream, from where it stands.
            self.iterator: Iterator[_T] = iterable.iterator
            #: The step this copy reads next; this copy's own, never shared.
            self.link: _Step[_T] = iterable.link
            #: Shared by all the copies of one source; guards filling a step.
            self.lock: Lock = iterable.lock
        else:
            self.iterator = _iter(iterable)
            self.link = _Step()
            self.lock = Lock()

    def __iter__(self) -> _concurrent_tee[_T]:
        return self

    def __next__(self) -> _T:
        """Return the next item of the stream, pulling it from the source if no copy has.

        Raises what the source raises (StopIteration at its end). A cancellation
        point even when the item is already known; interrupted, it has not moved.
        """
        if _ARMED:
            checkpoint()
        step = self.link
        filled = step.filled
        if filled is None:
            with self.lock:
                filled = step.filled
                if filled is None:
                    # The pair is complete before it is stored: readers see all of it.
                    filled = step.filled = (_next(self.iterator), _Step())
        self.link = filled[1]
        return filled[0]
