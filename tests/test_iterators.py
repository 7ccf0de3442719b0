"""serialize_iterator, synchronized_iterator and concurrent_tee: 3.15's helpers, everywhere.

One class per helper, then two more:

* ``TestInterrupts``: the program's iterator runs in frames open to Ctrl-C; a real
  SIGINT wakes a thread waiting for its turn and leaves nothing behind; SIGINT
  delivered at every line of threadkit's code in a call (the injector of
  tests/test_interrupts.py, in small) comes out exactly once, never leaves the lock
  held, and never lets two copies of a tee disagree.
* ``TestAgainstStdlib``: where ``threading`` has the helpers (3.15+), the same
  operations run on both, compared result by result, errors' types and messages
  included, and so are the signatures and the objects' shape.

Nothing synchronises by sleeping: threads start together on a barrier, a thread
blocked in a source waits on an Event, and a test learns that a thread waits for the
lock from the core (``wait_until_parked``). Scaffolding uses the *stdlib* ``threading``,
so that a threadkit bug shows up as a failed assertion, not as a wedged harness.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import os
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit
from helpers import finish, spawn, wait_until, wait_until_parked
from threadkit import Cancelled, CancelScope, _core
from threadkit._core import _interrupts
from threadkit._iterators import concurrent_tee, serialize_iterator, synchronized_iterator

pytestmark = pytest.mark.timeout(60)

#: Items each concurrency test pushes through one shared iterator.
LIMIT = 10_000
#: Threads sharing it.
THREADS = 8
#: Threadkit's helpers, shaped like a module so the stdlib comparison runs both alike.
OURS = types.SimpleNamespace(
    serialize_iterator=serialize_iterator,
    synchronized_iterator=synchronized_iterator,
    concurrent_tee=concurrent_tee,
)


def counting(limit: int, pulls: list[int] | None = None) -> Iterator[int]:
    """A bare generator: raises "already executing" if two threads advance it at once."""
    for i in range(limit):
        if pulls is not None:
            pulls.append(i)
        yield i


def gated(first: list[int], entered: threading.Event, gate: threading.Event) -> Iterator[int]:
    """Yield ``first``, then block inside the source until ``gate`` is set, then 100, 101."""
    yield from first
    entered.set()
    assert gate.wait(30)
    yield 100
    yield 101


def run_together(n: int, work: Callable[[int], object], mod: Any = threadkit) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads of ``mod`` released together; return the results."""
    start = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def body(i: int) -> None:
        start.wait(30)
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [mod.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    return results


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """``("ok", value)`` or ``("raised", type, message, StopIteration's value)``."""
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raised", type(exc), str(exc), getattr(exc, "value", None))


class Exclusive:
    """An iterator over ``range(limit)`` that fails if two threads are inside its
    ``__next__`` at once, and lingers there to make that likely when unserialized."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.value = 0
        self.inside = 0

    def __iter__(self) -> Exclusive:
        return self

    def __next__(self) -> int:
        self.inside += 1
        try:
            assert self.inside == 1, "two threads inside __next__ at once"
            value = self.value
            for _ in range(20):
                pass
            if value >= self.limit:
                raise StopIteration
            self.value = value + 1
            return value
        finally:
            self.inside -= 1


class Flaky:
    """A source that is not a well-behaved iterator: its script of outcomes is played
    in order, one per ``__next__`` (an exception class is raised), then it ends."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls = 0

    def __iter__(self) -> Flaky:
        return self

    def __next__(self) -> Any:
        self.calls += 1
        if not self.script:
            raise StopIteration
        step = self.script.pop(0)
        if isinstance(step, type) and issubclass(step, BaseException):
            raise step(f"flaky at call {self.calls}")
        return step


# -- serialize_iterator ------------------------------------------------------------------
class TestSerializeIterator:
    @pytest.mark.parametrize("mod", [threadkit, threading], ids=["threadkit", "threading"])
    @pytest.mark.parametrize("source", [counting, Exclusive])
    def test_threads_sharing_it_get_every_item_exactly_once(
        self, mod: Any, source: Callable[[int], Iterator[int]], fast_switch: None
    ) -> None:
        it = serialize_iterator(source(LIMIT))
        got = run_together(THREADS, lambda i: list(it), mod)
        assert sorted(itertools.chain.from_iterable(got)) == list(range(LIMIT))
        for items in got:
            assert items == sorted(items)  # each caller sees the stream's order

    def test_a_caller_waits_for_the_call_in_progress_in_the_core(self) -> None:
        entered, gate = threading.Event(), threading.Event()
        it = serialize_iterator(gated([0], entered, gate))
        assert isinstance(it._lock, threadkit.Lock)
        assert next(it) == 0
        results: dict[str, int] = {}
        first = spawn(lambda: results.__setitem__("first", next(it)))
        assert entered.wait(30)  # the first call is inside the source, holding the lock
        second = spawn(lambda: results.__setitem__("second", next(it)))
        wait_until_parked(it._lock)
        assert it._lock.locked() and "second" not in results
        gate.set()
        finish([first, second])
        assert results == {"first": 100, "second": 101}
        assert not it._lock.locked()

    def test_generator_methods_pass_through(self) -> None:
        def echo() -> Any:
            try:
                while True:
                    received = yield "ready"
                    yield f"received {received}"
            except ValueError:
                yield "caught"

        it = serialize_iterator(echo())
        assert next(it) == "ready"
        assert it.send("hello") == "received hello"
        assert next(it) == "ready"
        assert it.throw(ValueError) == "caught"
        assert it.close() is None
        with pytest.raises(StopIteration):
            next(it)
        assert not it._lock.locked()

    def test_every_call_holds_the_lock(self) -> None:
        it: serialize_iterator[Any] = serialize_iterator([])
        seen: list[tuple[str, bool]] = []

        class Spy:
            def __next__(self) -> int:
                seen.append(("next", it._lock.locked()))
                return 1

            def send(self, value: object) -> object:
                seen.append(("send", it._lock.locked()))
                return value

            def throw(self, *args: object) -> tuple[object, ...]:
                seen.append(("throw", it._lock.locked()))
                return args

            def close(self) -> str:
                seen.append(("close", it._lock.locked()))
                return "closed"

        it._iterator = Spy()  # type: ignore[assignment]
        assert (next(it), it.send(2), it.throw(ValueError, 3), it.close()) == (
            1,
            2,
            (ValueError, 3),
            "closed",
        )
        assert seen == [("next", True), ("send", True), ("throw", True), ("close", True)]
        assert not it._lock.locked()

    @pytest.mark.parametrize(
        "method, args", [("send", ("x",)), ("throw", (ValueError,)), ("close", ())]
    )
    def test_missing_generator_methods_raise_attribute_error(
        self, method: str, args: tuple[Any, ...]
    ) -> None:
        it = serialize_iterator([1, 2, 3])
        message = f"'list_iterator' object has no attribute '{method}'"
        with pytest.raises(AttributeError, match=message):
            getattr(it, method)(*args)
        assert not it._lock.locked()
        assert next(it) == 1  # nothing was consumed

    def test_errors_pass_through_and_free_the_lock(self) -> None:
        def failing() -> Iterator[int]:
            yield 1
            raise RuntimeError("source failed")

        it = serialize_iterator(failing())
        assert next(it) == 1
        with pytest.raises(RuntimeError, match="source failed"):
            next(it)
        assert not it._lock.locked()
        with pytest.raises(StopIteration):
            next(it)

    def test_stop_iteration_keeps_the_generator_return_value(self) -> None:
        def returning() -> Iterator[int]:
            yield 1
            return 42

        it = serialize_iterator(returning())
        assert next(it) == 1
        with pytest.raises(StopIteration) as info:
            next(it)
        assert info.value.value == 42

    def test_construction(self) -> None:
        calls: list[str] = []

        class Iterable:
            def __iter__(self) -> Iterator[int]:
                calls.append("iter")
                return iter([7, 8])

        it = serialize_iterator(iterable=Iterable())
        assert iter(it) is it
        assert list(it) == [7, 8]
        assert calls == ["iter"]  # iter() once, at construction
        assert not hasattr(it, "__dict__")
        with pytest.raises(TypeError, match="'int' object is not iterable"):
            serialize_iterator(5)  # type: ignore[arg-type]

    def test_cancelled_scope_raises_before_touching_the_iterator(self) -> None:
        pulls: list[int] = []
        it = serialize_iterator(counting(3, pulls))
        with CancelScope() as scope:
            scope.cancel()
            with pytest.raises(Cancelled):
                next(it)
            with pytest.raises(Cancelled):
                it.send(None)
        assert pulls == []
        assert next(it) == 0
        assert not it._lock.locked()

    def test_cancel_wakes_a_caller_waiting_for_its_turn(self) -> None:
        entered, gate = threading.Event(), threading.Event()
        it = serialize_iterator(gated([], entered, gate))
        holder = spawn(next, it)
        assert entered.wait(30)
        scopes: list[CancelScope] = []
        got: list[int] = []

        def waiter() -> None:
            with CancelScope() as scope:
                scopes.append(scope)
                got.append(next(it))

        cancelled = spawn(waiter)
        wait_until_parked(it._lock)
        scopes[0].cancel()
        finish([cancelled])
        assert scopes[0].cancelled_caught and got == []
        gate.set()
        finish([holder])
        assert holder.result() == 100
        assert next(it) == 101  # the cancelled call took nothing


# -- synchronized_iterator ---------------------------------------------------------------
class TestSynchronizedIterator:
    def test_wrapper_keeps_the_function_metadata(self) -> None:
        def numbers(stop: int, *, step: int = 1) -> Iterator[int]:
            """Count up."""
            yield from range(0, stop, step)

        wrapped = synchronized_iterator(numbers)
        assert wrapped.__wrapped__ is numbers  # type: ignore[attr-defined]
        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            assert getattr(wrapped, attr) == getattr(numbers, attr)
        first, second = wrapped(6, step=2), wrapped(3)
        assert isinstance(first, serialize_iterator)
        assert first._lock is not second._lock
        assert (list(first), list(second)) == ([0, 2, 4], [0, 1, 2])

    def test_any_arguments_pass_through(self) -> None:
        def echo(func: int, /, *args: int, **kwargs: int) -> Iterator[Any]:
            yield func
            yield args
            yield kwargs

        wrapped = synchronized_iterator(echo)
        assert list(wrapped(1, 2, func=3, args=4)) == [1, (2,), {"func": 3, "args": 4}]

    def test_each_instance_is_serialized(self, fast_switch: None) -> None:
        @synchronized_iterator
        def counter() -> Iterator[int]:
            yield from itertools.count()

        shared = [counter(), counter()]
        got = run_together(THREADS, lambda i: [next(shared[i % 2]) for _ in range(500)])
        per_counter = [sorted(itertools.chain(*got[k::2])) for k in range(2)]
        assert per_counter == [list(range(500 * THREADS // 2))] * 2

    def test_itertools_constructors(self, fast_switch: None) -> None:
        count = synchronized_iterator(itertools.count)
        assert count.__name__ == "count"
        counter = count(10)
        got = run_together(THREADS, lambda i: [next(counter) for _ in range(1000)])
        assert sorted(itertools.chain.from_iterable(got)) == list(range(10, 10 + 1000 * THREADS))

    def test_errors_of_the_function_and_of_its_result(self) -> None:
        def failing() -> Iterator[int]:
            raise LookupError("no source")

        with pytest.raises(LookupError, match="no source"):
            synchronized_iterator(failing)()
        with pytest.raises(TypeError, match="'int' object is not iterable"):
            synchronized_iterator(lambda: 5)()  # type: ignore[arg-type, return-value]


# -- concurrent_tee ----------------------------------------------------------------------
class TestConcurrentTee:
    def test_n(self) -> None:
        assert concurrent_tee(range(3), n=0) == ()
        assert concurrent_tee(5, 0) == ()  # type: ignore[arg-type]  # iter() is never called
        (only,) = concurrent_tee(range(3), 1)
        assert list(only) == [0, 1, 2]
        assert [list(t) for t in concurrent_tee("ab")] == [["a", "b"], ["a", "b"]]
        with pytest.raises(ValueError, match=r"^n must be a non-negative integer$"):
            concurrent_tee(range(3), n=-1)
        with pytest.raises(TypeError, match="'int' object is not iterable"):
            concurrent_tee(5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
            concurrent_tee(range(3), 2.0)  # type: ignore[arg-type]

    def test_every_copy_sees_the_whole_stream_and_the_source_runs_once_per_item(
        self, fast_switch: None
    ) -> None:
        pulls: list[int] = []
        copies = concurrent_tee(counting(LIMIT // 2, pulls), n=3 * THREADS)
        got = run_together(len(copies), lambda i: list(copies[i]))
        assert got == [list(range(LIMIT // 2))] * len(copies)
        assert pulls == list(range(LIMIT // 2))
        assert len({id(c.lock) for c in copies}) == 1  # type: ignore[attr-defined]
        assert isinstance(copies[0].lock, threadkit.Lock)  # type: ignore[attr-defined]

    def test_copies_are_independent(self) -> None:
        a, b, c = concurrent_tee(iter(range(6)), 3)
        assert [next(a), next(a), next(a)] == [0, 1, 2]
        assert next(b) == 0
        assert list(c) == [0, 1, 2, 3, 4, 5]
        assert list(b) == [1, 2, 3, 4, 5]
        assert list(a) == [3, 4, 5]
        assert iter(a) is a and not hasattr(a, "__dict__")

    def test_copies_of_a_copy_start_where_it_stands(self) -> None:
        a, b = concurrent_tee(range(5))
        assert [next(a), next(a)] == [0, 1]
        c, d = concurrent_tee(a)
        assert c.lock is a.lock  # type: ignore[attr-defined]
        assert [list(x) for x in (c, d, a)] == [[2, 3, 4]] * 3
        assert list(b) == [0, 1, 2, 3, 4]

    def test_known_items_are_read_while_the_source_is_busy(self) -> None:
        entered, gate = threading.Event(), threading.Event()
        a, b = concurrent_tee(gated([0, 1], entered, gate))
        lock = a.lock  # type: ignore[attr-defined]
        assert [next(a), next(a)] == [0, 1]
        puller = spawn(next, a)
        assert entered.wait(30)  # a is inside the source, holding the lock
        assert lock.locked()
        assert [next(b), next(b)] == [0, 1]  # known items: no wait for the lock
        waiter = spawn(next, b)
        wait_until_parked(lock)
        gate.set()
        finish([puller, waiter])
        assert (puller.result(), waiter.result()) == (100, 100)
        assert (list(a), list(b)) == ([101], [101])

    def test_a_source_error_goes_to_one_copy_and_is_not_kept(self) -> None:
        source = Flaky([0, ValueError, 1, 2])
        a, b = concurrent_tee(source)
        assert next(a) == 0
        with pytest.raises(ValueError, match="flaky at call 2"):
            next(a)
        assert not a.lock.locked()  # type: ignore[attr-defined]
        assert [next(b), next(b)] == [0, 1]  # b asks the source again
        # Nor is the end: each copy that reaches it asks the source once more.
        assert (list(a), list(b), source.calls) == ([1, 2], [2], 6)

    def test_items_every_copy_has_passed_are_freed(self) -> None:
        class Item:
            __slots__ = ("__weakref__",)

        refs: list[weakref.ref[Item]] = []

        def make() -> Item:
            item = Item()
            refs.append(weakref.ref(item))
            return item

        def source() -> Iterator[Item]:
            while True:
                yield make()

        a, b = concurrent_tee(source())
        next(a)
        next(a)
        gc.collect()
        assert [r() is not None for r in refs] == [True, True]  # b has not read them
        next(b)
        gc.collect()
        assert [r() is not None for r in refs] == [False, True]

    def test_cancellation_point_even_for_a_known_item(self) -> None:
        a, b = concurrent_tee(iter(range(3)))
        assert next(a) == 0
        with CancelScope() as scope:
            scope.cancel()
            with pytest.raises(Cancelled):
                next(b)  # its item is known: no lock needed, still a cancellation point
            with pytest.raises(Cancelled):
                next(a)
        assert (list(a), list(b)) == ([1, 2], [0, 1, 2])

    def test_cancel_wakes_a_copy_waiting_for_the_source(self) -> None:
        entered, gate = threading.Event(), threading.Event()
        a, b = concurrent_tee(gated([], entered, gate))
        puller = spawn(next, a)
        assert entered.wait(30)
        scopes: list[CancelScope] = []

        def waiter() -> None:
            with CancelScope() as scope:
                scopes.append(scope)
                next(b)

        cancelled = spawn(waiter)
        wait_until_parked(a.lock)  # type: ignore[attr-defined]
        scopes[0].cancel()
        finish([cancelled])
        assert scopes[0].cancelled_caught
        gate.set()
        finish([puller])
        assert (puller.result(), list(a), list(b)) == (100, [101], [100, 101])

    def test_one_copy_shared_through_serialize_iterator(self, fast_switch: None) -> None:
        shared, alone = concurrent_tee(counting(LIMIT))
        serialized = serialize_iterator(shared)
        got = run_together(THREADS + 1, lambda i: list(alone if i == 0 else serialized))
        assert got[0] == list(range(LIMIT))
        assert sorted(itertools.chain.from_iterable(got[1:])) == list(range(LIMIT))


# -- Ctrl-C ------------------------------------------------------------------------------
_PKG_DIR = os.path.dirname(os.path.abspath(threadkit.__file__)) + os.sep
_MAIN = threading.main_thread().ident


class _Firer:
    """A stdlib thread that sends SIGINT to the main thread (a real Ctrl-C) once it
    is parked on ``resource``, again every 0.5 s while it stays parked there.

    CPython acts on a signal between bytecodes or when the signal interrupts a
    blocking call; one that lands in the instant before the main thread blocks waits
    for the block to end (as under ``threading``), so it is sent again, as in
    tests/test_interrupts.py.
    """

    def __init__(self, resource: object) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(resource,))
        self.thread.start()

    @staticmethod
    def _main_parked(resource: object) -> bool:
        return any(rec.ident == _MAIN for rec in _core.waiting_on(resource))

    def _run(self, resource: object) -> None:
        wait_until(lambda: self.done.is_set() or self._main_parked(resource))
        while not self.done.is_set() and self._main_parked(resource):
            signal.pthread_kill(_MAIN, signal.SIGINT)  # type: ignore[arg-type]
            self.done.wait(0.5)

    def stop(self) -> None:
        """End the thread; a SIGINT it sent just as the call ended must not escape."""
        self.done.set()
        try:
            self.thread.join(30)
            for _ in range(10):
                time.sleep(0)
        except KeyboardInterrupt:
            pass
        assert not self.thread.is_alive()


class _Injector:
    """Trace function of the main thread: at the ``target``-th 'line' event of
    threadkit's code, call the installed SIGINT handler with that frame, which is what
    CPython does when SIGINT arrives there (see tests/test_interrupts.py)."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.count = 0
        self.fired = False

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        return self._line if frame.f_code.co_filename.startswith(_PKG_DIR) else None

    def _line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.count += 1
            if self.count == self.target:
                self.fired = True
                signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
        return self._line


def _land() -> None:
    """Let an owed KeyboardInterrupt come out here; AssertionError if it never does."""
    deadline = time.monotonic() + 5.0
    while _interrupts.owed():
        if time.monotonic() > deadline:
            raise AssertionError("an owed KeyboardInterrupt was never raised")
        time.sleep(0.0005)  # the nudge that raises it interrupts this sleep


def _call_and_store(call: Callable[[], Any], out: dict[str, Any]) -> None:
    """Make the call and note what it returned. Protected like threadkit's own code
    (registered below), so an owed interrupt comes out after the note, not before."""
    out["value"] = call()


_interrupts._verdicts[_call_and_store.__code__] = True


def _inject(target: int | None, call: Callable[[], Any]) -> tuple[_Injector, dict[str, Any], int]:
    """Run ``call`` with SIGINT at threadkit's ``target``-th line (None: only count).

    Returns the injector, what the call returned (``out["value"]``, absent if it
    raised) and how many KeyboardInterrupts came out, from the call or right after.
    """
    inj = _Injector(target)
    out: dict[str, Any] = {}
    interrupts = 0
    previous = sys.gettrace()
    try:
        try:
            sys.settrace(inj.trace)
            try:
                _call_and_store(call, out)
            finally:
                sys.settrace(previous)
            _land()
        except KeyboardInterrupt:
            interrupts += 1
        try:
            _land()
        except KeyboardInterrupt:
            interrupts += 1
    finally:
        sys.settrace(previous)
    return inj, out, interrupts


def _every_line(prepare: Callable[[], Any], check: Callable[[Any, dict[str, Any]], None]) -> None:
    """Deliver SIGINT at each line of threadkit's code that ``prepare()``'s call runs."""
    state = prepare()
    inj, _out, interrupts = _inject(None, state.call)
    assert interrupts == 0 and inj.count > 3
    check(state, _out)
    for target in range(1, inj.count + 1):
        state = prepare()
        inj, out, interrupts = _inject(target, state.call)
        assert inj.fired
        assert interrupts == 1, f"SIGINT at line {target}: {interrupts} KeyboardInterrupts"
        check(state, out)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="SIGINT goes to main"
)
class TestInterrupts:
    def test_the_programs_code_runs_open_to_ctrl_c(self) -> None:
        verdicts: list[bool] = []

        def source() -> Iterator[int]:
            while True:
                verdicts.append(_interrupts._protected(sys._getframe()))
                yield 0

        class Iterable:
            def __iter__(self) -> Iterator[int]:
                verdicts.append(_interrupts._protected(sys._getframe()))
                return source()

        it = serialize_iterator(Iterable())
        next(it)
        it.send(None)
        a, _ = concurrent_tee(Iterable())
        next(a)

        def make() -> Iterator[int]:
            verdicts.append(_interrupts._protected(sys._getframe()))
            return source()

        next(synchronized_iterator(make)())
        assert verdicts == [False] * 7
        # ...while what they are called from is protected.
        assert _interrupts._verdict(serialize_iterator.__next__.__code__) is True
        assert _interrupts._verdict(type(a).__next__.__code__) is True

    @pytest.mark.parametrize("kind", ["serialize", "tee"])
    def test_sigint_wakes_a_caller_waiting_for_its_turn(self, kind: str) -> None:
        entered, gate = threading.Event(), threading.Event()
        source = gated([], entered, gate)
        if kind == "serialize":
            it: Any = serialize_iterator(source)
            holder, lock = spawn(next, it), it._lock
        else:
            other, it = concurrent_tee(source)
            holder, lock = spawn(next, other), other.lock
        assert entered.wait(30)

        firer = _Firer(lock)
        try:
            with pytest.raises(KeyboardInterrupt):
                next(it)
        finally:
            firer.stop()
        assert lock.locked()  # still the holder's
        gate.set()
        finish([holder])
        assert holder.result() == 100
        assert list(it) == ([101] if kind == "serialize" else [100, 101])
        assert not lock.locked()

    def test_sigint_at_every_line_of_serialize_next(self) -> None:
        full = list(range(5))

        def prepare() -> Any:
            it = serialize_iterator(iter(full))
            next(it)
            return types.SimpleNamespace(it=it, call=lambda: next(it))

        def check(state: Any, out: dict[str, Any]) -> None:
            assert not state.it._lock.locked()
            rest = list(state.it)
            if "value" in out:
                assert [out["value"], *rest] == full[1:]
            else:
                # Interrupted before taking an item, or (the documented window) just
                # after the source gave it, which is as if it came after the return.
                assert rest in (full[1:], full[2:])

        _every_line(prepare, check)

    @pytest.mark.parametrize("known", [False, True], ids=["pulls", "known"])
    def test_sigint_at_every_line_of_tee_next(self, known: bool) -> None:
        full = list(range(5))

        def prepare() -> Any:
            a, b = concurrent_tee(iter(full))
            next(a)
            if known:
                next(b)
                next(b)  # b has filled the step a reads next
            return types.SimpleNamespace(a=a, b=b, call=lambda: next(a))

        def check(state: Any, out: dict[str, Any]) -> None:
            assert not state.a.lock.locked()
            seen_by_a = [0, *([out["value"]] if "value" in out else []), *state.a]
            seen_by_b = [*full[:2], *state.b] if known else list(state.b)
            # The copies never disagree: an item is either in the stream for all of
            # them or (the documented window, only when pulling) for none.
            assert seen_by_a == seen_by_b
            assert seen_by_b in ((full,) if known else (full, [0, *full[2:]]))

        _every_line(prepare, check)


# -- the same as threading's own ---------------------------------------------------------
@pytest.mark.skipif(
    not hasattr(threading, "concurrent_tee"), reason="threading has no iterator helpers (< 3.15)"
)
class TestAgainstStdlib:
    @staticmethod
    def both(scenario: Callable[[Any], Any]) -> None:
        assert scenario(OURS) == scenario(threading)

    def test_signatures(self) -> None:
        def shape(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
            params = inspect.signature(fn).parameters.values()
            return [(p.name, p.kind, p.default) for p in params]

        for mod in (OURS, threading):
            assert isinstance(mod.serialize_iterator, type)
        for name in ("serialize_iterator", "synchronized_iterator", "concurrent_tee"):
            assert shape(getattr(OURS, name)) == shape(getattr(threading, name)), name
        for method in ("__init__", "__iter__", "__next__", "send", "throw", "close"):
            ours = getattr(serialize_iterator, method)
            theirs = getattr(threading.serialize_iterator, method)
            assert shape(ours) == shape(theirs), method

    def test_object_shapes(self) -> None:
        def scenario(mod: Any) -> list[Any]:
            it = mod.serialize_iterator([1])
            tees = mod.concurrent_tee([1], 3)
            out: list[Any] = [type(tees).__name__, type(tees[0]).__name__]
            for obj in (it, tees[0]):
                out.append(hasattr(obj, "__dict__"))
                out.append(outcome(lambda obj=obj: weakref.ref(obj) and None)[:2])
                out.append(iter(obj) is obj)
            out.append(len({id(t.lock) for t in tees}))
            out.append(tees[0].lock.locked())
            out.append(sorted(slot for slot in type(it).__slots__))
            return out

        self.both(scenario)

    def test_serialize_iterator_operations(self) -> None:
        def gen() -> Any:
            try:
                received = yield 1
                yield f"got {received}"
                yield 3
            except KeyError:
                yield "caught"
            return "done"

        def scenario(mod: Any) -> list[Any]:
            out = []
            it = mod.serialize_iterator(gen())
            for step in (
                lambda: next(it),
                lambda: it.send("x"),
                lambda: it.throw(KeyError("k")),
                lambda: next(it),
                lambda: next(it),
                lambda: it.close(),
                lambda: it.throw(ValueError("after")),
            ):
                out.append(outcome(step))
            plain = mod.serialize_iterator(iterable=(1, 2))
            out += [outcome(lambda: plain.send(1)), outcome(lambda: plain.throw(ValueError))]
            out += [outcome(plain.close), outcome(lambda: list(plain))]
            out.append(outcome(lambda: next(plain)))
            out.append(outcome(lambda: mod.serialize_iterator(5)))
            out.append(outcome(lambda: mod.serialize_iterator()))
            return out

        self.both(scenario)

    def test_synchronized_iterator_operations(self) -> None:
        def numbers(stop: int) -> Iterator[int]:
            """Doc."""
            yield from range(stop)

        numbers.extra = "kept"  # type: ignore[attr-defined]

        def scenario(mod: Any) -> list[Any]:
            wrapped = mod.synchronized_iterator(numbers)
            out = [
                {k: v for k, v in vars(wrapped).items()},
                [getattr(wrapped, a) for a in ("__name__", "__qualname__", "__doc__")],
                type(wrapped(2)).__name__,
                outcome(lambda: list(wrapped(3))),
                outcome(lambda: wrapped()),
                outcome(lambda: mod.synchronized_iterator(lambda: 5)()),
                outcome(lambda: list(mod.synchronized_iterator(itertools.repeat)("z", 2))),
            ]
            return out

        self.both(scenario)

    def test_concurrent_tee_operations(self) -> None:
        def scenario(mod: Any) -> list[Any]:
            out: list[Any] = []
            for n in (-1, 0, 1, 2, 3, True, False, 2.0, "2", None):
                out.append(outcome(lambda n=n: [list(t) for t in mod.concurrent_tee(range(3), n)]))
            out.append(outcome(lambda: mod.concurrent_tee(5)))
            out.append(outcome(lambda: mod.concurrent_tee(5, 0)))
            out.append(outcome(lambda: mod.concurrent_tee(iterable=[1], n=1)[0].__next__()))
            a, b = mod.concurrent_tee(iter("abcd"))
            out += [next(a), next(a)]
            c, d, e = mod.concurrent_tee(a, 3)
            out.append([list(x) for x in (c, d, e, a, b)])
            # A misbehaving source: errors are not kept, a StopIteration is not final.
            flaky = Flaky([0, ValueError, StopIteration, 1, KeyError, 2])
            f, g = mod.concurrent_tee(flaky)
            for copy in (f, f, g, f, g, g, f, g, f, g, f, g, g):
                out.append(outcome(lambda copy=copy: next(copy)))
            out.append(flaky.calls)

            def returning() -> Iterator[int]:
                yield 1
                return 7

            h, i = mod.concurrent_tee(returning())
            out += [outcome(lambda: next(h)) for _ in range(3)]
            out += [outcome(lambda: next(i)) for _ in range(3)]
            return out

        self.both(scenario)
