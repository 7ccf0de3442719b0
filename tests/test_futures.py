"""threadkit.futures: the thread pool as a drop-in, and what it adds.

One class per area:

* ``TestDropIn``: the executor and its futures are ``concurrent.futures``' own
  types; the stdlib's ``wait``/``as_completed`` (and asyncio) take our futures
  mixed with the stdlib's; the errors are the stdlib's, word for word; the default
  ``max_workers``, thread names, ``initializer`` (once per thread; a failing one
  breaks the pool, logged on ``concurrent.futures``), ``map`` with ``buffersize`` on
  every version, and ``max_workers`` bounding the calls at once.
* ``TestCancellationPoints``: ``result``/``exception`` and this module's ``wait``/
  ``as_completed`` wake at a scope's deadline or ``Thread.cancel()`` (the calls run
  on), also on the stdlib's futures; ``timeout=`` keeps its stdlib meaning.
* ``TestMaxPending``: ``submit`` waits for room, cancellably, and shutdown wakes it.
* ``TestCancelRunning``: ``cancel()`` reaches a running call with the option and
  not without it; ``shutdown(cancel_futures=True)``.
* ``TestInheritContext``: the submitter's ``contextvars`` and cancel scopes.
* ``TestReportUncollected``: failures nobody asked about are printed at shutdown.
* ``TestCtrlC``: one real SIGINT to a child whose main thread is in (or at the end
  of) a ``with ThreadPoolExecutor()`` block ends it at once, as a Ctrl-C.
* ``TestInterpreterExit``: the interpreter's exit waits for the queued and running
  calls, as the stdlib's does.
* ``TestStress``: many submitters, thousands of calls, racing ``cancel()``: every
  call runs at most once, every future ends exactly one way, nothing is stuck.
* ``TestStandIn``: under ``threadkit run``/``install()``, the stdlib's ``queue`` and
  ``ThreadPoolExecutor`` work, and so does ``threadkit.futures``.

Nothing synchronises by sleeping: a test learns that a thread is parked from the core
(``wait_until_parked``, ``parked_in``), or polls real state with a bound
(``wait_until``). Calls that must be held without being cancellable wait on a
*stdlib* ``threading.Event``, so that a threadkit bug shows up as a failed assertion,
not a wedged harness. A few calls wait in ``threadkit.sleep`` on purpose: that wait
is what is being cancelled, not a way to let time pass.

Some tests force a race with a trace function on one thread, so that it happens
every time.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures as cf
import contextvars
import itertools
import logging
import os
import queue
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadkit
import threadkit.futures as tf
from helpers import spawn, wait_until, wait_until_parked
from threadkit import Cancelled, CancelScope, _core

pytestmark = pytest.mark.timeout(60)

SRC = str(Path(threadkit.__file__).parent.parent)
#: How long a prompt reaction may take at most; far above what one needs (seconds).
PROMPT = 2.0
#: The scope deadline the cancellation tests use (seconds).
SCOPE = 0.2
#: A child that hangs dumps every thread's stack and exits, so the failure says where.
DUMP_ON_HANG = "import faulthandler; faulthandler.dump_traceback_later(40, exit=True)\n"
HAS_STDLIB_BUFFERSIZE = sys.version_info >= (3, 14)

var: contextvars.ContextVar[str] = contextvars.ContextVar("futures_test_var", default="unset")


# -- helpers -----------------------------------------------------------------------------
def parked_in(ident: int | None, operation: str | None = None) -> bool:
    """True if thread ``ident`` is parked in a threadkit call (``operation``) right now."""
    rec = None if ident is None else _core.record_for(ident)
    node = None if rec is None else rec.waiting
    return (
        node is not None
        and node.state is _core.WAITING
        and node.operation != "idle"
        and (operation is None or node.operation == operation)
    )


def raised(call: Callable[[], object]) -> BaseException:
    """The exception ``call()`` raises (fails the test if it returns)."""
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError(f"{call} did not raise")


def same_error(ours: BaseException, theirs: BaseException) -> None:
    assert type(ours) is type(theirs), (ours, theirs)
    assert str(ours) == str(theirs)


class Blocked:
    """A call that waits in a threadkit call (``sleep`` or ``Event.wait``) until it is
    cancelled, and tells what became of it."""

    def __init__(self, kind: str = "sleep", value: object = "done") -> None:
        self.kind = kind
        self.value = value
        self.idents: list[int] = []
        self.outcome: list[type[BaseException] | None] = []
        #: Set in the call's ``finally``: it has ended, one way or another.
        self.ended = threading.Event()
        self.release = threadkit.Event()

    def __call__(self) -> object:
        self.idents.append(_thread.get_ident())
        try:
            if self.kind == "sleep":
                threadkit.sleep(60)
            else:
                self.release.wait()
            self.outcome.append(None)
        except BaseException as exc:
            self.outcome.append(type(exc))
            raise
        finally:
            self.ended.set()
        return self.value

    def wait_parked(self, n: int = 1) -> None:
        """Wait until ``n`` calls of it run and are parked in their threadkit call."""
        operation = "sleep" if self.kind == "sleep" else "wait"
        wait_until(
            lambda: len(self.idents) >= n and all(parked_in(i, operation) for i in self.idents)
        )


def held(gate: threading.Event, value: object = "held") -> Callable[[], object]:
    """A call that waits on a stdlib Event (not a cancellation point)."""

    def call() -> object:
        assert gate.wait(30), "gate never opened"
        return value

    return call


def catching(fn: Callable[..., object], *args: Any) -> object:
    """``fn(*args)``, or the Exception it raised: a thread that runs it ends cleanly
    (nothing for excepthook), and ``Cancelled`` still comes out of ``exception()``."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


def in_thread(fn: Callable[[], object]) -> threading.Thread:
    """Run ``fn`` in a started stdlib thread (scaffolding outside threadkit)."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def run_child(
    code: str, *args: str, timeout: float = 50, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DUMP_ON_HANG + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=SRC) if env is None else env,
    )


@pytest.fixture
def ctx_var() -> Iterator[contextvars.ContextVar[str]]:
    """The test ContextVar, reset to its default after the test."""
    token = var.set("unset")
    try:
        yield var
    finally:
        var.reset(token)


# == Drop-in =============================================================================
class TestDropIn:
    def test_types_are_the_stdlibs(self) -> None:
        with tf.ThreadPoolExecutor(2) as ex:
            assert isinstance(ex, cf.ThreadPoolExecutor)
            assert isinstance(ex, cf.Executor)
            f = ex.submit(pow, 2, 10)
            assert isinstance(f, cf.Future)
            assert f.result(timeout=10) == 1024
            assert f.done() and not f.cancelled() and not f.running()
        assert tf.Future is cf.Future
        assert tf.CancelledError is cf.CancelledError
        assert tf.BrokenThreadPool is cf.thread.BrokenThreadPool
        assert issubclass(tf.BrokenThreadPool, cf.BrokenExecutor)
        assert (tf.FIRST_COMPLETED, tf.FIRST_EXCEPTION, tf.ALL_COMPLETED) == (
            cf.FIRST_COMPLETED,
            cf.FIRST_EXCEPTION,
            cf.ALL_COMPLETED,
        )

    def test_submit_passes_arguments_and_raises_the_calls_error(self) -> None:
        def add(a: int, b: int, *, c: int = 0) -> int:
            return a + b + c

        def boom() -> None:
            raise KeyError("boom")

        with tf.ThreadPoolExecutor(2) as ex:
            assert ex.submit(add, 1, 2, c=3).result(timeout=10) == 6
            assert ex.submit(lambda **kw: kw, fn=1).result(timeout=10) == {"fn": 1}
            f = ex.submit(boom)
            with pytest.raises(KeyError, match="boom"):
                f.result(timeout=10)
            assert isinstance(f.exception(), KeyError)
            done: list[cf.Future[Any]] = []
            f.add_done_callback(done.append)  # already done: called at once
            assert done == [f]

    def test_stdlib_wait_takes_our_futures_mixed_with_the_stdlibs(self) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(2) as ours, cf.ThreadPoolExecutor(2) as theirs:
            a = ours.submit(held(gate, "a"))
            b = theirs.submit(pow, 2, 5)
            bare: cf.Future[int] = cf.Future()
            b.result(timeout=10)
            done, not_done = cf.wait([a, b, bare], timeout=10, return_when=cf.FIRST_COMPLETED)
            assert done == {b} and not_done == {a, bare}

            # Our future finishing wakes the stdlib's waiter: open the gate only once
            # the stdlib's wait has put its waiter on our future.
            opener = in_thread(lambda: (wait_until(lambda: bool(a._waiters)), gate.set()))
            done, not_done = cf.wait([a, bare], timeout=10, return_when=cf.FIRST_COMPLETED)
            opener.join()
            assert done == {a} and not_done == {bare}
            assert a.result() == "a"
            assert a._waiters == [] and bare._waiters == []

            bare.set_result(7)
            done, not_done = cf.wait([a, b, bare], timeout=10)
            assert done == {a, b, bare} and not not_done

    def test_stdlib_as_completed_takes_our_futures_mixed_with_the_stdlibs(self) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(2) as ours, cf.ThreadPoolExecutor(2) as theirs:
            a = ours.submit(held(gate, "a"))
            b = theirs.submit(pow, 2, 5)
            c = ours.submit(pow, 3, 2)
            bare: cf.Future[int] = cf.Future()
            bare.set_running_or_notify_cancel()

            def finish() -> None:
                wait_until(lambda: bool(a._waiters) and bool(bare._waiters))
                gate.set()
                bare.set_result(7)

            finisher = in_thread(finish)
            seen = list(cf.as_completed([a, b, c, bare], timeout=10))
            finisher.join()
            assert Counter(seen) == Counter([a, b, c, bare])
            assert [f.result() for f in (a, b, c, bare)] == ["a", 32, 9, 7]

    @pytest.mark.parametrize("kind", ["wait", "as_completed"])
    def test_our_wait_and_as_completed_take_any_futures(self, kind: str) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(2) as ours, cf.ThreadPoolExecutor(2) as theirs:
            a = ours.submit(held(gate, "a"))
            b = theirs.submit(held(gate, "b"))
            c = ours.submit(pow, 3, 2)
            c.result(timeout=10)
            bare: cf.Future[int] = cf.Future()

            def finish() -> None:
                wait_until(lambda: bool(a._waiters) and bool(b._waiters) and bool(bare._waiters))
                gate.set()
                bare.set_result(7)

            finisher = in_thread(finish)
            if kind == "wait":
                done, not_done = tf.wait([a, b, c, bare], timeout=10)
                assert done == {a, b, c, bare} and not not_done
            else:
                seen = list(tf.as_completed([a, b, c, bare], timeout=10))
                assert Counter(seen) == Counter([a, b, c, bare])
                assert seen[0] is c  # the one done already comes first
            finisher.join()
            assert [f.result() for f in (a, b, c, bare)] == ["a", "b", 9, 7]
            for f in (a, b, c, bare):
                assert f._waiters == []

    def test_our_wait_return_when(self) -> None:
        gate = threading.Event()

        def boom() -> None:
            raise ValueError("boom")

        with tf.ThreadPoolExecutor(3) as ex:
            slow = ex.submit(held(gate))
            failed = ex.submit(boom)
            quick = ex.submit(int)
            cf.wait([failed, quick], timeout=10)
            done, not_done = tf.wait([slow, quick], return_when=tf.FIRST_COMPLETED)
            assert done == {quick} and not_done == {slow}
            done, not_done = tf.wait([slow, failed], return_when=tf.FIRST_EXCEPTION)
            assert done == {failed} and not_done == {slow}
            done, not_done = tf.wait([slow, quick], timeout=0.01)
            assert done == {quick} and not_done == {slow}
            gate.set()

    def test_asyncio_run_in_executor(self) -> None:
        async def main(ex: tf.ThreadPoolExecutor) -> list[object]:
            loop = asyncio.get_running_loop()
            got: list[object] = [await loop.run_in_executor(ex, pow, 2, 10)]
            got.append(await asyncio.wrap_future(ex.submit(pow, 5, 2)))
            return got

        with tf.ThreadPoolExecutor(2) as ex:
            assert asyncio.run(main(ex)) == [1024, 25]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_workers": 0},
            {"max_workers": -1},
            {"initializer": 1},
            {"initializer": "not callable"},
        ],
        ids=["max_workers=0", "max_workers=-1", "initializer=1", "initializer=str"],
    )
    def test_constructor_errors_are_the_stdlibs(self, kwargs: dict[str, Any]) -> None:
        theirs = raised(lambda: cf.ThreadPoolExecutor(**kwargs))
        ours = raised(lambda: tf.ThreadPoolExecutor(**kwargs))
        same_error(ours, theirs)
        if "max_workers" in kwargs:
            assert str(ours) == "max_workers must be greater than 0"
            assert isinstance(ours, ValueError)
        else:
            assert str(ours) == "initializer must be a callable"
            assert isinstance(ours, TypeError)

    @pytest.mark.parametrize("wait", [True, False])
    def test_submit_and_map_after_shutdown(self, wait: bool) -> None:
        theirs_ex = cf.ThreadPoolExecutor(1)
        theirs_ex.shutdown(wait=wait)
        ours_ex = tf.ThreadPoolExecutor(1)
        ours_ex.shutdown(wait=wait)
        theirs = raised(lambda: theirs_ex.submit(int))
        ours = raised(lambda: ours_ex.submit(int))
        same_error(ours, theirs)
        assert isinstance(ours, RuntimeError)
        assert str(ours) == "cannot schedule new futures after shutdown"
        same_error(raised(lambda: ours_ex.map(int, [1])), raised(lambda: theirs_ex.map(int, [1])))
        with ours_ex:  # entering and leaving a shut-down executor is allowed
            pass

    @pytest.mark.parametrize(
        ("buffersize", "error"),
        [
            (2.5, TypeError("buffersize must be an integer or None")),
            ("3", TypeError("buffersize must be an integer or None")),
            (0, ValueError("buffersize must be None or > 0")),
            (-1, ValueError("buffersize must be None or > 0")),
        ],
    )
    def test_map_buffersize_errors(self, buffersize: Any, error: BaseException) -> None:
        with tf.ThreadPoolExecutor(1) as ex:
            # Raised by the call to map, before anything is submitted, as the stdlib's.
            ours = raised(lambda: ex.map(int, itertools.count(), buffersize=buffersize))
        same_error(ours, error)
        if HAS_STDLIB_BUFFERSIZE:
            with cf.ThreadPoolExecutor(1) as theirs_ex:
                theirs = raised(
                    lambda: theirs_ex.map(int, itertools.count(), buffersize=buffersize)
                )
            same_error(ours, theirs)

    def test_map_buffersize_true_as_the_stdlib(self) -> None:
        with tf.ThreadPoolExecutor(1) as ex:
            assert list(ex.map(abs, [-1, -2, -3], buffersize=True)) == [1, 2, 3]

    def test_map_submits_at_most_buffersize_ahead(self) -> None:
        """On every version, 3.11 and 3.12 too, whose stdlib has no ``buffersize``."""
        consumed: list[int] = []

        def source() -> Iterator[int]:
            for i in itertools.count():
                consumed.append(i)
                yield i

        with tf.ThreadPoolExecutor(4) as ex:
            results = ex.map(lambda x: x * 10, source(), buffersize=3)
            assert consumed == [0, 1, 2]  # submitted at the call, as the stdlib's
            for k in range(20):
                assert next(results) == k * 10
                # One more submitted as each result is taken: 3 ahead, never more.
                assert len(consumed) == 3 + k + 1
            results.close()  # over an endless iterable: closing it ends the map
        assert len(consumed) == 23

    def test_map_without_buffersize_keeps_order_and_timeout(self) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(4) as ex:
            assert list(ex.map(pow, [2, 3, 4], [3, 2, 1])) == [8, 9, 4]
            assert list(ex.map(pow, [2, 3, 4], [3])) == [8]  # stops at the shortest
            results = ex.map(lambda x: held(gate, x)(), [1, 2])
            with pytest.raises(TimeoutError):
                list(ex.map(lambda x: held(gate, x)(), [3], timeout=0.05))
            gate.set()
            assert list(results) == [1, 2]

    def test_default_max_workers_is_the_stdlibs(self) -> None:
        count = getattr(os, "process_cpu_count", os.cpu_count)
        expected = min(32, (count() or 1) + 4)
        ex = tf.ThreadPoolExecutor()
        try:
            assert ex._max_workers == expected == cf.ThreadPoolExecutor()._max_workers
        finally:
            ex.shutdown()

    @pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
    def test_default_max_workers_follows_the_cpus_this_process_may_use(self) -> None:
        """With one CPU allowed, 3.13+ count 1 (os.process_cpu_count), older ones all."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            pytest.skip("needs at least two CPUs to leave one out")
        code = f"""
            import os, concurrent.futures as cf, threadkit.futures as tf
            os.sched_setaffinity(0, {{{cpus[0]}}})
            ours, theirs = tf.ThreadPoolExecutor(), cf.ThreadPoolExecutor()
            print(ours._max_workers, theirs._max_workers, os.cpu_count())
            ours.shutdown()
        """
        out = run_child(code)
        assert out.returncode == 0, out.stderr
        ours, theirs, cpu_count = map(int, out.stdout.split())
        if sys.version_info >= (3, 13):
            assert ours == theirs == 5
        else:
            assert ours == theirs == min(32, cpu_count + 4)

    def test_thread_names(self) -> None:
        both = threading.Barrier(2)

        def names() -> tuple[str, str]:
            both.wait(10)  # two calls at once: two threads
            return threadkit.current_thread().name, threading.current_thread().name

        with tf.ThreadPoolExecutor(2, thread_name_prefix="tkpool") as ex:
            got = [f.result(timeout=10) for f in [ex.submit(names), ex.submit(names)]]
        assert sorted(got) == [("tkpool_0", "tkpool_0"), ("tkpool_1", "tkpool_1")]
        with tf.ThreadPoolExecutor(1) as ex:
            name = ex.submit(lambda: threadkit.current_thread().name).result(timeout=10)
        assert re.fullmatch(r"ThreadPoolExecutor-\d+_0", name), name

    def test_initializer_runs_once_per_thread(self) -> None:
        inits: list[tuple[str, int]] = []
        both = threading.Barrier(2)

        def init(tag: str) -> None:
            inits.append((tag, _thread.get_ident()))

        def work(first: bool) -> int:
            if first:
                both.wait(10)  # two calls at once: two threads
            return _thread.get_ident()

        with tf.ThreadPoolExecutor(2, initializer=init, initargs=("tag",)) as ex:
            idents = [ex.submit(work, True), ex.submit(work, True)]
            idents += [ex.submit(work, False) for _ in range(30)]
            first = {f.result(timeout=10) for f in idents}
            # A second burst, once the first is done: the same threads, no new init.
            again = {ex.submit(work, False).result(timeout=10) for _ in range(10)}
        assert {tag for tag, _ in inits} == {"tag"}
        init_idents = [ident for _, ident in inits]
        assert len(init_idents) == 2 and len(set(init_idents)) == 2
        assert first == set(init_idents)
        assert again <= set(init_idents)

    def test_failing_initializer_breaks_the_pool(self, caplog: pytest.LogCaptureFixture) -> None:
        go = threading.Event()

        def init() -> None:
            assert go.wait(10)
            raise OSError("no database")

        caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
        ex = tf.ThreadPoolExecutor(2, initializer=init)
        try:
            futures = [ex.submit(pow, 2, i) for i in range(6)]  # two first, four queued
            go.set()
            for f in futures:
                exc = f.exception(timeout=10)
                assert isinstance(exc, cf.thread.BrokenThreadPool), exc
                assert str(exc) == (
                    "A thread initializer failed, the thread pool is not usable anymore"
                )
                assert isinstance(exc, cf.BrokenExecutor)
                with pytest.raises(cf.thread.BrokenThreadPool):
                    f.result()
            with pytest.raises(cf.thread.BrokenThreadPool):
                ex.submit(int)
        finally:
            ex.shutdown()
        records = [
            r for r in caplog.records if r.name == "concurrent.futures" and r.exc_info is not None
        ]
        assert records, caplog.records
        assert all(r.levelno == logging.CRITICAL for r in records)
        assert "Exception in initializer" in records[0].getMessage()
        assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], OSError)

    def test_a_cancel_while_the_pool_breaks_strands_nothing(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A schedule made with a trace function on the runner's thread: it stops as
        # the broken pool settles the second future, and a later one is cancelled.
        hook_calls: list[Any] = []
        monkeypatch.setattr(threadkit, "excepthook", hook_calls.append)
        go = threading.Event()
        paused = threading.Event()
        resume = threading.Event()
        futures: list[cf.Future[int]] = []

        def trace(frame: Any, event: str, arg: Any) -> None:
            if (
                event == "call"
                and frame.f_code.co_name == "set_exception"
                and frame.f_locals.get("self") is futures[1]
            ):
                paused.set()
                resume.wait(10)

        def init() -> None:
            assert go.wait(10)
            sys.settrace(trace)  # this runner's thread only
            raise OSError("no database")

        caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
        ex = tf.ThreadPoolExecutor(1, initializer=init)
        try:
            futures += [ex.submit(pow, 2, i) for i in range(5)]  # one first, four queued
            go.set()
            assert paused.wait(10)
            assert futures[3].cancel()
            resume.set()
            _, not_done = cf.wait(futures, timeout=PROMPT)
        finally:
            resume.set()
            ex.shutdown(wait=False)
        assert hook_calls == [], "the runner's thread died"
        assert not not_done, f"{len(not_done)} futures never settled"
        for i, f in enumerate(futures):
            if i == 3:
                assert f.cancelled()
            else:
                assert isinstance(f.exception(), cf.thread.BrokenThreadPool)

    def test_a_done_callback_raising_a_base_exception_strands_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Boom(BaseException):
            pass

        def callback(_: object) -> None:
            raise Boom("from a done callback")

        caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            first = ex.submit(held(gate))
            first.add_done_callback(callback)
            rest = [ex.submit(pow, 2, i) for i in range(5)]  # queued behind it
            gate.set()
            assert [f.result(timeout=10) for f in rest] == [1, 2, 4, 8, 16]
        assert first.result() == "held"
        logged = [r for r in caplog.records if r.name == "concurrent.futures"]
        assert any(
            r.levelno == logging.CRITICAL
            and r.exc_info is not None
            and isinstance(r.exc_info[1], Boom)
            for r in logged
        ), logged

    @pytest.mark.parametrize("max_workers", [1, 3])
    def test_max_workers_bounds_the_calls_at_once(self, max_workers: int) -> None:
        lock = threading.Lock()
        now = [0]
        most = [0]
        release = threading.Event()

        def call(i: int) -> int:
            with lock:
                now[0] += 1
                most[0] = max(most[0], now[0])
            try:
                assert release.wait(30)
            finally:
                with lock:
                    now[0] -= 1
            return i

        with tf.ThreadPoolExecutor(max_workers) as ex:
            futures = [ex.submit(call, i) for i in range(10)]
            wait_until(lambda: now[0] == max_workers)
            # Every submit has returned: the rest queue, none runs beside them.
            assert sum(f.running() for f in futures) == max_workers
            assert sum(not f.running() and not f.done() for f in futures) == 10 - max_workers
            assert most[0] == max_workers
            release.set()
            assert [f.result(timeout=10) for f in futures] == list(range(10))
        assert most[0] == max_workers


# == Cancellation points ===============================================================
WAITS: dict[str, Callable[[list[cf.Future[Any]]], object]] = {
    "result": lambda fs: fs[0].result(),
    "exception": lambda fs: fs[0].exception(),
    "wait": lambda fs: tf.wait(fs),
    "as_completed": lambda fs: list(tf.as_completed(fs)),
}


class TestCancellationPoints:
    @pytest.mark.parametrize("how", list(WAITS))
    def test_deadline_wakes_the_waiter_and_the_call_runs_on(self, how: str) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(held(gate, "late"))
            start = time.monotonic()
            with threadkit.move_on_after(SCOPE) as scope:
                WAITS[how]([f])
            elapsed = time.monotonic() - start
            assert scope.cancelled_caught
            assert elapsed < SCOPE + PROMPT
            assert not f.done()  # the call is unaffected
            assert not _core.waiting_on(f) and f._waiters == []  # nothing left behind
            gate.set()
            assert f.result(timeout=10) == "late"

    @pytest.mark.parametrize("how", ["wait", "as_completed"])
    def test_deadline_wakes_a_wait_on_stdlib_futures(self, how: str) -> None:
        gate = threading.Event()
        with cf.ThreadPoolExecutor(1) as theirs:
            f = theirs.submit(held(gate, "late"))
            bare: cf.Future[int] = cf.Future()
            start = time.monotonic()
            with threadkit.move_on_after(SCOPE) as scope:
                WAITS[how]([f, bare])
            assert scope.cancelled_caught
            assert time.monotonic() - start < SCOPE + PROMPT
            assert f._waiters == [] and bare._waiters == []
            gate.set()
            assert f.result(timeout=10) == "late"

    def test_as_completed_yields_what_is_done_before_the_deadline(self) -> None:
        gate = threading.Event()
        seen: list[cf.Future[Any]] = []
        with tf.ThreadPoolExecutor(2) as ex:
            quick = ex.submit(pow, 2, 3)
            slow = ex.submit(held(gate))
            quick.result(timeout=10)
            with threadkit.move_on_after(SCOPE) as scope:
                for f in tf.as_completed([quick, slow]):
                    seen.append(f)
            assert scope.cancelled_caught
            assert seen == [quick]
            gate.set()

    @pytest.mark.parametrize("how", list(WAITS))
    def test_thread_cancel_wakes_the_waiter(self, how: str) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(held(gate, "late"))
            t = spawn(WAITS[how], [f])
            wait_until(lambda: parked_in(t.ident))
            start = time.monotonic()
            t.cancel()
            t.join(PROMPT)
            assert not t.is_alive(), "the waiter was not woken"
            assert time.monotonic() - start < PROMPT
            assert isinstance(t.exception(), Cancelled)
            assert not f.done()
            gate.set()
            assert f.result(timeout=10) == "late"

    def test_thread_cancel_wakes_a_waiter_on_a_stdlib_future(self) -> None:
        bare: cf.Future[int] = cf.Future()
        t = spawn(WAITS["wait"], [bare])
        wait_until(lambda: parked_in(t.ident))
        t.cancel()
        t.join(PROMPT)
        assert not t.is_alive()
        assert isinstance(t.exception(), Cancelled)
        assert bare._waiters == []

    @pytest.mark.parametrize("how", ["result", "exception", "wait"])
    def test_a_cancelled_scope_cancels_on_entry_even_when_done(self, how: str) -> None:
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(int)
            f.result(timeout=10)
            with CancelScope() as scope:
                scope.cancel()
                WAITS[how]([f])
            assert scope.cancelled_caught

    @pytest.mark.parametrize("how", ["result", "exception", "as_completed"])
    def test_timeout_raises_timeout_error_also_in_a_scope(self, how: str) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(held(gate))
            with threadkit.move_on_after(30) as scope, pytest.raises(TimeoutError) as info:
                if how == "result":
                    f.result(timeout=0.05)
                elif how == "exception":
                    f.exception(timeout=0.05)
                else:
                    list(tf.as_completed([f], timeout=0.05))
            assert not scope.cancelled_caught
            assert isinstance(info.value, cf.TimeoutError)
            done, not_done = tf.wait([f], timeout=0.05)
            assert not done and not_done == {f}
            gate.set()

    def test_a_scope_shorter_than_the_timeout_cancels(self) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(held(gate))
            with threadkit.move_on_after(0.05) as scope:
                f.result(timeout=30)
            assert scope.cancelled_caught
            gate.set()

    def test_a_cancelled_future_wakes_its_waiters_with_cancelled_error(self) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1) as ex:
            running = ex.submit(held(gate))
            queued = ex.submit(int)
            t = spawn(catching, queued.result)
            wait_until_parked(queued)
            assert queued.cancel()
            t.join(PROMPT)
            assert not t.is_alive()
            assert isinstance(t.result(), cf.CancelledError)
            gate.set()
            assert running.result(timeout=10) == "held"


# == max_pending =======================================================================
class TestMaxPending:
    @staticmethod
    def _full(max_pending: int) -> tuple[tf.ThreadPoolExecutor, threading.Event, list[Any]]:
        """An executor with one running call held on a gate and its FIFO full."""
        gate = threading.Event()
        ex = tf.ThreadPoolExecutor(1, max_pending=max_pending)
        futures = [ex.submit(held(gate, "first"))]
        wait_until(futures[0].running)
        futures += [ex.submit(pow, 2, i) for i in range(max_pending)]
        return ex, gate, futures

    def test_submit_waits_for_room_until_a_call_starts(self) -> None:
        ex, gate, futures = self._full(2)
        try:
            submitter = spawn(ex.submit, pow, 3, 3)
            wait_until_parked(ex)  # parked in submit
            assert submitter.is_alive()
            assert sum(not f.running() and not f.done() for f in futures) == 2
            gate.set()  # the first call ends, the next one starts: room
            submitter.join(PROMPT)
            assert not submitter.is_alive()
            late = submitter.result()
            assert isinstance(late, cf.Future)
            assert late.result(timeout=10) == 27
            assert [f.result(timeout=10) for f in futures] == ["first", 1, 2]
        finally:
            gate.set()
            ex.shutdown()

    def test_cancelling_a_queued_call_makes_room(self) -> None:
        ex, gate, futures = self._full(1)
        try:
            submitter = spawn(ex.submit, pow, 3, 3)
            wait_until_parked(ex)
            assert futures[1].cancel()
            submitter.join(PROMPT)
            assert not submitter.is_alive()
            gate.set()
            assert submitter.result().result(timeout=10) == 27
        finally:
            gate.set()
            ex.shutdown()

    @pytest.mark.parametrize("how", ["move_on_after", "Thread.cancel"])
    def test_a_waiting_submit_is_cancellable_and_queues_nothing(self, how: str) -> None:
        ex, gate, futures = self._full(2)
        ran: list[str] = []
        try:
            if how == "move_on_after":
                with threadkit.move_on_after(SCOPE) as scope:
                    ex.submit(ran.append, "late")
                assert scope.cancelled_caught
            else:
                submitter = spawn(ex.submit, ran.append, "late")
                wait_until_parked(ex)
                submitter.cancel()
                submitter.join(PROMPT)
                assert not submitter.is_alive()
                assert isinstance(submitter.exception(), Cancelled)
            assert not _core.waiting_on(ex)
            assert sum(not f.running() and not f.done() for f in futures) == 2
            gate.set()
            ex.shutdown()
            assert [f.result() for f in futures] == ["first", 1, 2]
            assert ran == []  # the cancelled submit queued nothing
        finally:
            gate.set()
            ex.shutdown()

    def test_shutdown_wakes_a_waiting_submitter_with_runtime_error(self) -> None:
        ex, gate, futures = self._full(1)
        try:
            submitter = spawn(catching, ex.submit, int)
            wait_until_parked(ex)
            ex.shutdown(wait=False)
            submitter.join(PROMPT)
            assert not submitter.is_alive()
            exc = submitter.result()
            assert isinstance(exc, RuntimeError)
            assert str(exc) == "cannot schedule new futures after shutdown"
            gate.set()
            ex.shutdown()
            assert [f.result() for f in futures] == ["first", 1]  # queued ones still ran
        finally:
            gate.set()
            ex.shutdown()

    def test_max_pending_holds_when_a_submit_overtakes_a_woken_one(self) -> None:
        # A submitter woken for room may be slow to take it: a submit from another
        # thread that comes meanwhile gets the room first, and the woken one must wait
        # again, or the FIFO holds more than max_pending.
        ex, gate, futures = self._full(1)
        woken = threading.Event()
        resume = threading.Event()
        wait_for_room = ex._wait_for_room

        def slow_to_resume(*args: Any) -> None:
            wait_for_room(*args)
            woken.set()  # room was found; now the thread is slow to take it
            assert resume.wait(10)

        ex._wait_for_room = slow_to_resume  # type: ignore[method-assign]
        try:
            submitter = spawn(ex.submit, pow, 3, 3)
            wait_until_parked(ex)
            assert futures[1].cancel()  # room for one: the parked submitter's
            assert woken.wait(10)
            overtaker = spawn(ex.submit, pow, 4, 4)
            wait_until(lambda: not overtaker.is_alive() or parked_in(overtaker.ident))
            resume.set()
            wait_until(lambda: not submitter.is_alive() or parked_in(submitter.ident))
            late = [t.result() for t in (submitter, overtaker) if not t.is_alive()]
            queued = [f for f in [*futures, *late] if not f.running() and not f.done()]
            assert len(queued) == 1, f"{len(queued)} calls queued with max_pending=1"
            gate.set()  # room again, for whichever still waits
            assert submitter.result(timeout=10).result(timeout=10) == 27
            assert overtaker.result(timeout=10).result(timeout=10) == 256
        finally:
            resume.set()
            gate.set()
            ex.shutdown()

    @pytest.mark.parametrize(
        ("value", "error"),
        [
            (0, ValueError("max_pending must be None or > 0")),
            (-1, ValueError("max_pending must be None or > 0")),
            (True, TypeError("max_pending must be an integer or None")),
            (2.5, TypeError("max_pending must be an integer or None")),
        ],
    )
    def test_bad_values(self, value: Any, error: BaseException) -> None:
        same_error(raised(lambda: tf.ThreadPoolExecutor(2, max_pending=value)), error)

    def test_max_pending_one_keeps_every_call(self) -> None:
        with tf.ThreadPoolExecutor(2, max_pending=1) as ex:
            futures = [ex.submit(pow, 2, i) for i in range(200)]
        assert [f.result() for f in futures] == [2**i for i in range(200)]


# == cancel_running ====================================================================
class TestCancelRunning:
    @pytest.mark.parametrize("kind", ["sleep", "Event.wait"])
    def test_cancel_reaches_a_running_call(self, kind: str) -> None:
        call = Blocked(kind)
        with tf.ThreadPoolExecutor(2, cancel_running=True) as ex:
            f = ex.submit(call)
            call.wait_parked()
            start = time.monotonic()
            assert f.cancel() is True
            assert f.cancelled() and f.done()  # at once, not when the call ends
            assert call.ended.wait(PROMPT), "the call was not woken"
            assert time.monotonic() - start < PROMPT
            assert call.outcome == [Cancelled]
            with pytest.raises(cf.CancelledError):
                f.result(timeout=10)
            with pytest.raises(cf.CancelledError):
                f.exception(timeout=10)
            assert f.cancel() is True  # again: still cancelled

    def test_cancel_of_a_running_call_wakes_its_waiters(self) -> None:
        call = Blocked("Event.wait")
        callbacks: list[cf.Future[Any]] = []
        with tf.ThreadPoolExecutor(1, cancel_running=True) as ex:
            f = ex.submit(call)
            f.add_done_callback(callbacks.append)
            call.wait_parked()
            waiter = spawn(catching, f.result)
            stdlib_waiter = in_thread(lambda: cf.wait([f], timeout=30))
            wait_until_parked(f)
            wait_until(lambda: bool(f._waiters))
            assert f.cancel()
            waiter.join(PROMPT)
            stdlib_waiter.join(PROMPT)
            assert not waiter.is_alive() and not stdlib_waiter.is_alive()
            assert isinstance(waiter.result(), cf.CancelledError)
            assert callbacks == [f]
            assert call.ended.wait(PROMPT)

    def test_the_outcome_of_a_cancelled_call_is_dropped(self) -> None:
        ended = threading.Event()
        idents: list[int] = []

        def stubborn() -> str:
            idents.append(_thread.get_ident())
            try:
                threadkit.sleep(60)
            except Cancelled:
                return "ignored the cancellation"
            finally:
                ended.set()
            return "slept"

        with tf.ThreadPoolExecutor(1, cancel_running=True) as ex:
            f = ex.submit(stubborn)
            wait_until(lambda: bool(idents) and parked_in(idents[0], "sleep"))
            assert f.cancel()
            assert ended.wait(PROMPT)
            after = ex.submit(pow, 2, 2)  # the runner goes on with the next call
            assert after.result(timeout=10) == 4
        assert f.cancelled()
        with pytest.raises(cf.CancelledError):
            f.result()

    def test_without_the_option_a_running_call_is_not_cancelled(self) -> None:
        call = Blocked("Event.wait", value="finished")
        with tf.ThreadPoolExecutor(1) as ex:
            f = ex.submit(call)
            call.wait_parked()
            assert f.cancel() is False  # the stdlib's answer for a running call
            assert not f.cancelled() and f.running()
            call.release.set()
            assert f.result(timeout=10) == "finished"
        assert call.outcome == [None]

    @pytest.mark.parametrize("cancel_running", [False, True])
    def test_a_queued_call_is_cancelled_and_never_runs(self, cancel_running: bool) -> None:
        gate = threading.Event()
        ran: list[int] = []
        with tf.ThreadPoolExecutor(1, cancel_running=cancel_running) as ex:
            first = ex.submit(held(gate))
            queued = [ex.submit(ran.append, i) for i in range(5)]
            assert queued[2].cancel() is True
            assert queued[2].cancelled()
            gate.set()
        assert first.result() == "held"
        assert ran == [0, 1, 3, 4]

    def test_shutdown_cancel_futures_without_the_option(self) -> None:
        gate = threading.Event()
        ran: list[int] = []
        ex = tf.ThreadPoolExecutor(1)
        try:
            running = ex.submit(held(gate))
            wait_until(running.running)
            queued = [ex.submit(ran.append, i) for i in range(5)]
            ex.shutdown(wait=False, cancel_futures=True)
            assert all(f.cancelled() for f in queued)
            assert running.running()
            gate.set()
            ex.shutdown()
            assert running.result() == "held"
            assert ran == []
        finally:
            gate.set()
            ex.shutdown()

    def test_shutdown_cancel_futures_with_the_option(self) -> None:
        calls = [Blocked("sleep"), Blocked("Event.wait")]
        ran: list[int] = []
        ex = tf.ThreadPoolExecutor(2, cancel_running=True)
        running = [ex.submit(call) for call in calls]
        for call in calls:
            call.wait_parked()
        queued = [ex.submit(ran.append, i) for i in range(5)]
        start = time.monotonic()
        ex.shutdown(wait=True, cancel_futures=True)
        assert time.monotonic() - start < PROMPT
        assert all(f.cancelled() for f in running + queued)
        for call in calls:
            assert call.ended.is_set() and call.outcome == [Cancelled]
        assert ran == []

    def test_cancel_as_the_call_starts_still_reaches_it(self) -> None:
        # A schedule made with trace functions: the runner stops as it is about to
        # mark the future running; cancel() lets it go on just after its RUNNING check.
        gate = threading.Event()
        at_start = threading.Event()
        go_on = threading.Event()
        call = Blocked("Event.wait")
        target: list[cf.Future[Any]] = []

        def runner_trace(frame: Any, event: str, arg: Any) -> None:
            if (
                event == "call"
                and frame.f_code.co_name == "set_running_or_notify_cancel"
                and target
                and frame.f_locals.get("self") is target[0]
            ):
                at_start.set()
                go_on.wait(10)

        def first() -> None:
            sys.settrace(runner_trace)  # this runner's thread only
            assert gate.wait(10)

        def canceller_trace(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code.co_name == "_cancel_pending":
                go_on.set()
                wait_until(target[0].running)

        with tf.ThreadPoolExecutor(1, cancel_running=True) as ex:
            ex.submit(first)
            target.append(ex.submit(call))
            gate.set()
            assert at_start.wait(10)
            sys.settrace(canceller_trace)
            try:
                cancelled = target[0].cancel()
            finally:
                sys.settrace(None)
                go_on.set()
            if not cancelled:
                call.release.set()  # the call was not reached: let it end
        assert cancelled, "cancel() returned False for a call that had just started"
        assert target[0].cancelled()
        assert call.outcome in ([], [Cancelled])  # never ran, or was cancelled


# == inherit_context ===================================================================
class TestInheritContext:
    def test_the_call_sees_the_submitters_context(
        self, ctx_var: contextvars.ContextVar[str]
    ) -> None:
        gate = threading.Event()
        with tf.ThreadPoolExecutor(1, inherit_context=True) as ex:
            ex.submit(held(gate))  # the next two queue: each context taken at submit
            ctx_var.set("first")
            a = ex.submit(ctx_var.get)
            ctx_var.set("second")
            b = ex.submit(ctx_var.get)

            def sets() -> str:
                ctx_var.set("inside")
                return ctx_var.get()

            c = ex.submit(sets)
            gate.set()
            assert (a.result(timeout=10), b.result(timeout=10)) == ("first", "second")
            assert c.result(timeout=10) == "inside"
        assert ctx_var.get() == "second"  # the call's own set does not leak back

    def test_without_the_option_the_submitters_value_is_not_seen(
        self, ctx_var: contextvars.ContextVar[str]
    ) -> None:
        with tf.ThreadPoolExecutor(1) as ex:
            ex.submit(int).result(timeout=10)  # the runner exists before the set
            ctx_var.set("submitter")
            assert ex.submit(ctx_var.get).result(timeout=10) == "unset"

    @pytest.mark.parametrize("kind", ["sleep", "Event.wait"])
    def test_a_call_is_cancelled_by_the_submitters_deadline(self, kind: str) -> None:
        call = Blocked(kind)
        with tf.ThreadPoolExecutor(1, inherit_context=True) as ex:
            start = time.monotonic()
            with threadkit.move_on_after(SCOPE) as scope:
                f = ex.submit(call)
                # The submitter stays in the scope, waiting where it cannot be
                # cancelled (the stdlib's wait), until the deadline ends the call.
                done, _ = cf.wait([f], timeout=SCOPE + PROMPT)
            elapsed = time.monotonic() - start
            assert f in done, "the deadline did not reach the call"
            assert f.cancelled()
            assert elapsed < SCOPE + PROMPT
            assert not scope.cancelled_caught  # the submitter itself was not cancelled
            # Cancelled while it waited; or, on a machine so loaded that the call could
            # not start within the deadline, cancelled before it started.
            assert call.outcome in ([Cancelled], [])
            assert call.ended.is_set() == bool(call.outcome)

    def test_a_queued_call_whose_deadline_passed_never_runs(self) -> None:
        gate = threading.Event()
        ran: list[int] = []
        with tf.ThreadPoolExecutor(1, inherit_context=True) as ex:
            first = ex.submit(held(gate))  # outside any scope
            with threadkit.move_on_after(0.05) as scope:
                late = ex.submit(ran.append, 1)  # queued behind the held call
                wait_until(lambda: scope.cancel_called)  # the deadline has passed
                gate.set()
                done, _ = cf.wait([late], timeout=10)  # still inside the scope
            assert late in done and late.cancelled()
            assert first.result(timeout=10) == "held"
        assert ran == []

    def test_a_call_is_cancelled_with_the_submitters_scope(self) -> None:
        call = Blocked("Event.wait")
        with tf.ThreadPoolExecutor(1, inherit_context=True) as ex:
            with CancelScope() as scope:
                f = ex.submit(call)
                call.wait_parked()
                scope.cancel()
                assert call.ended.wait(PROMPT)
            assert call.outcome == [Cancelled]
            cf.wait([f], timeout=10)
            assert f.cancelled()

    @pytest.mark.parametrize("inherit", [False, True])
    def test_the_call_sees_the_deadline_only_with_the_option(self, inherit: bool) -> None:
        with tf.ThreadPoolExecutor(1, inherit_context=inherit) as ex:
            with threadkit.move_on_after(30):
                mine = threadkit.current_effective_deadline()
                seen = ex.submit(threadkit.current_effective_deadline).result(timeout=10)
            assert seen == (mine if inherit else float("inf"))

    def test_without_the_option_a_deadline_does_not_cancel_the_call(self) -> None:
        def naps() -> str:
            threadkit.sleep(0.3)  # outlives the scope's deadline below
            return "slept"

        with tf.ThreadPoolExecutor(1) as ex:
            with threadkit.move_on_after(0.05):
                f = ex.submit(naps)
                done = threading.Event()
                f.add_done_callback(lambda _: done.set())
                assert done.wait(10)  # stdlib Event: the submitter stays in the scope
            assert f.result() == "slept"


# == report_uncollected ================================================================
def _fail(message: str) -> None:
    raise ValueError(message)


class TestReportUncollected:
    def test_an_uncollected_failure_is_reported_at_shutdown(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with tf.ThreadPoolExecutor(
            2, thread_name_prefix="reporting", report_uncollected=True
        ) as ex:
            f = ex.submit(_fail, "nobody-looked-at-me")
            cf.wait([f], timeout=10)  # waits, does not look at the outcome
            assert capsys.readouterr().err == ""  # not before shutdown
        err = capsys.readouterr().err
        assert "ValueError: nobody-looked-at-me" in err
        assert "reporting" in err and "nobody collected" in err
        assert err.count("Traceback") == 1

    @pytest.mark.parametrize("how", ["result", "exception", "add_done_callback"])
    def test_a_collected_failure_is_not_reported(
        self, capsys: pytest.CaptureFixture[str], how: str
    ) -> None:
        with tf.ThreadPoolExecutor(2, report_uncollected=True) as ex:
            f = ex.submit(_fail, "collected")
            collected = ex.submit(_fail, "also-collected")
            if how == "add_done_callback":
                f.add_done_callback(lambda _: None)
            cf.wait([f, collected], timeout=10)
            if how == "result":
                with pytest.raises(ValueError):
                    f.result()
            elif how == "exception":
                assert isinstance(f.exception(), ValueError)
            collected.add_done_callback(lambda _: None)  # after it failed
            ok = ex.submit(int)
        assert capsys.readouterr().err == ""
        assert ok.result() == 0

    def test_nothing_is_reported_without_the_option(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with tf.ThreadPoolExecutor(2) as ex:
            f = ex.submit(_fail, "unreported")
            cf.wait([f], timeout=10)
        assert capsys.readouterr().err == ""

    @pytest.mark.parametrize("how", ["shutdown(wait=False)", "no shutdown"])
    def test_an_uncollected_failure_is_reported_by_the_exit(self, how: str) -> None:
        code = f"""
            from threadkit.futures import ThreadPoolExecutor

            def boom():
                raise ValueError("failed-after-shutdown")

            ex = ThreadPoolExecutor(2, report_uncollected=True)
            ex.submit(boom)
            if {how == "shutdown(wait=False)"}:
                ex.shutdown(wait=False)
        """
        out = run_child(code)
        assert out.returncode == 0, out.stderr
        assert "ValueError: failed-after-shutdown" in out.stderr, out.stderr

    def test_each_failure_is_reported_once(self, capsys: pytest.CaptureFixture[str]) -> None:
        ex = tf.ThreadPoolExecutor(2, report_uncollected=True)
        futures = [ex.submit(_fail, f"failure-{i}") for i in range(3)]
        cf.wait(futures, timeout=10)
        ex.shutdown()
        ex.shutdown()
        err = capsys.readouterr().err
        for i in range(3):
            assert err.count(f"ValueError: failure-{i}") == 1, err


# == Ctrl-C ============================================================================
#: A child whose main thread is in a ``with ThreadPoolExecutor(4)`` block: four calls
#: parked in ``threadkit.sleep(60)``, 100 queued. It prints "ready" once those are
#: parked and the main thread waits in threadkit's ``OPERATION``.
CTRL_C_CHILD = """
import _thread, os, sys, threading, time
import threadkit
import threadkit.futures as tf
from threadkit import _core

MAIN = _thread.get_ident()
OPERATION = sys.argv[1]
idents = []

def say(line):
    os.write(1, f"{line}\\n".encode())  # one write: lines from threads never mix

def block(i):
    idents.append(_thread.get_ident())
    try:
        threadkit.sleep(60)
    except threadkit.Cancelled:
        say(f"cancelled {i}")
        raise
    say(f"slept {i}")

def queued(i):
    say(f"queued call ran {i}")

def parked(ident, operation):
    rec = _core.record_for(ident)
    node = None if rec is None else rec.waiting
    return node is not None and node.state is _core.WAITING and node.operation == operation

def announce():
    while not (
        len(idents) == 4
        and all(parked(i, "sleep") for i in idents)
        and parked(MAIN, OPERATION)
    ):
        time.sleep(0.001)  # a poll of real state, in the child's scaffolding
    say("ready")

threading.Thread(target=announce, daemon=True).start()
with tf.ThreadPoolExecutor(4) as ex:
    for i in range(4):
        ex.submit(block, i)
    for i in range(100):
        ex.submit(queued, i)
    if OPERATION == "wait":
        threadkit.Event().wait()
say("block ended")
"""


class _Child:
    """A child process whose stdout lines are read, as they come, by a thread."""

    def __init__(self, code: str, *args: str) -> None:
        # A child still there after 20 s dumps its threads' stacks and exits.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DUMP_ON_HANG.replace("(40,", "(20,") + code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=SRC),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = in_thread(self._read)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, line: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while line not in self.seen:
            try:
                self.seen.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                return False
        return True

    def finish(self, timeout: float) -> tuple[str, str]:
        """Wait for the exit (kill it after ``timeout``); return stdout and stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert self.proc.stderr is not None
        return "".join(self.seen), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
class TestCtrlC:
    @pytest.mark.parametrize(
        "operation", ["wait", "shutdown"], ids=["in-the-block", "at-the-blocks-end"]
    )
    def test_one_ctrl_c_ends_the_program(self, operation: str) -> None:
        child = _Child(CTRL_C_CHILD, operation)
        try:
            if not child.wait_for("ready\n", 30):
                child.kill()
                out, err = child.finish(1)
                raise AssertionError(f"never ready: {out} {err}")
            start = time.monotonic()
            child.proc.send_signal(signal.SIGINT)  # once
            out, err = child.finish(10)
            elapsed = time.monotonic() - start
        finally:
            child.kill()
        assert elapsed < 5, f"took {elapsed:.1f}s after the Ctrl-C: {out} {err}"
        assert child.proc.returncode == -signal.SIGINT, (child.proc.returncode, out, err)
        assert err.count("Traceback") == 1, err
        assert err.rstrip().endswith("KeyboardInterrupt"), err
        assert "During handling" not in err, err
        assert "queued call ran" not in out, out
        assert "block ended" not in out and "slept" not in out, out
        cancelled = sorted(line for line in out.splitlines() if line.startswith("cancelled"))
        assert cancelled == [f"cancelled {i}" for i in range(4)], out


# == Interpreter exit ==================================================================
EXIT_CHILD = """
import os, sys
import threadkit
from threadkit import _executor
from threadkit.futures import ThreadPoolExecutor

gate = threadkit.Event()

def say(line):
    os.write(1, f"{line}\\n".encode())  # one write: lines from threads never mix

def late(i):
    gate.wait()
    say(f"late {i}")

def opener():
    threadkit.main_thread().join(10)  # the main thread has ended...
    say(f"opening, main alive: {threadkit.main_thread().is_alive()}")
    deadline = threadkit.current_time() + 10
    while not _executor._exiting and threadkit.current_time() < deadline:
        threadkit.sleep(0.001)  # ...and the exit has begun (a poll of real state)
    gate.set()

ex = ThreadPoolExecutor(4)
for i in range(3):
    ex.submit(late, i)      # running, waiting for the gate
ex.submit(opener)
for i in range(3, 8):
    ex.submit(late, i)      # queued
if sys.argv[1] == "shutdown":
    ex.shutdown(wait=False)
say("main done")
"""


class TestInterpreterExit:
    @pytest.mark.parametrize("shutdown", ["shutdown", "none"])
    def test_exit_waits_for_queued_and_running_calls(self, shutdown: str) -> None:
        out = run_child(EXIT_CHILD, shutdown)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[:2] == ["main done", "opening, main alive: False"], out.stdout
        assert sorted(lines[2:]) == [f"late {i}" for i in range(8)], out.stdout
        assert out.stderr == ""

    def test_idle_runners_do_not_hold_the_exit(self) -> None:
        """With an initializer, runners stay parked on their threads for a while
        (10 s); the exit must not wait for that."""
        code = """
            from threadkit.futures import ThreadPoolExecutor

            ex = ThreadPoolExecutor(2, initializer=lambda: None)
            print(ex.submit(pow, 2, 3).result(), ex.submit(pow, 2, 4).result(), flush=True)
        """
        start = time.monotonic()
        out = run_child(code)
        elapsed = time.monotonic() - start
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["8", "16"]
        assert elapsed < 5, f"the exit took {elapsed:.1f}s"

    def test_no_new_work_once_the_exit_began(self) -> None:
        code = """
            import atexit, threadkit
            from threadkit.futures import ThreadPoolExecutor

            ex = ThreadPoolExecutor(2)
            gate = threadkit.Event()

            def at_exit():
                # threadkit's exit hook has run (it runs before atexit's functions).
                try:
                    ex.submit(print, "should not run")
                except RuntimeError as exc:
                    print("refused:", exc, flush=True)

            def late():
                gate.wait()
                print("late ran", flush=True)

            atexit.register(at_exit)
            ex.submit(late)
            ex.submit(gate.set)
        """
        out = run_child(code)
        assert out.returncode == 0, out.stderr
        assert "late ran" in out.stdout, out.stdout
        assert "should not run" not in out.stdout
        assert "refused: cannot schedule new futures after interpreter shutdown" in out.stdout


# == Stress ============================================================================
SUBMITTERS = 8
PER_SUBMITTER = 400


class TestStress:
    @pytest.mark.parametrize("max_pending", [None, 8])
    def test_every_call_runs_once_and_every_result_is_collected_once(
        self, max_pending: int | None, fast_switch: None
    ) -> None:
        executed: list[tuple[int, int]] = []  # list.append is atomic

        def call(s: int, i: int) -> tuple[int, int, int]:
            executed.append((s, i))
            return s, i, s * 1000 + i

        def submitter(s: int) -> list[tuple[int, int, int]]:
            futures = [ex.submit(call, s, i) for i in range(PER_SUBMITTER)]
            return [f.result(timeout=30) for f in futures]

        with tf.ThreadPoolExecutor(4, max_pending=max_pending) as ex:
            threads = [spawn(submitter, s) for s in range(SUBMITTERS)]
            results = [t.result(timeout=30) for t in threads]
        for s, got in enumerate(results):
            assert got == [(s, i, s * 1000 + i) for i in range(PER_SUBMITTER)]
        counts = Counter(executed)
        assert len(counts) == SUBMITTERS * PER_SUBMITTER
        assert set(counts.values()) == {1}

    @pytest.mark.parametrize("cancel_running", [False, True])
    @pytest.mark.parametrize("max_pending", [None, 8])
    def test_racing_cancels_leave_each_future_one_way(
        self, max_pending: int | None, cancel_running: bool, fast_switch: None
    ) -> None:
        started: list[int] = []  # list.append is atomic
        interrupted: list[int] = []
        submitted: list[tuple[int, cf.Future[int]]] = []
        by_key: dict[int, cf.Future[int]] = {}
        answers: list[tuple[int, bool, bool]] = []  # key, what cancel() said, done after it
        stop = threading.Event()

        def call(key: int) -> int:
            started.append(key)
            try:
                # Where a cancel of the running call lands: a short wait now and then
                # (the subject here, not a way to let time pass), else checkpoints.
                if key % 8 == 0:
                    threadkit.sleep(0.001)
                for _ in range(key % 4):
                    threadkit.checkpoint()
            except Cancelled:
                interrupted.append(key)
                raise
            return key * 2

        def submitter(s: int) -> None:
            for i in range(PER_SUBMITTER):
                key = s * 10_000 + i
                f = ex.submit(call, key)
                submitted.append((key, f))
                by_key[key] = f

        def canceller(seed: int) -> None:
            # The newest futures (queued, or being taken by a runner) and the calls
            # started last (running, or just ended): where the races are.
            rng = random.Random(seed)
            while not stop.is_set():
                if rng.random() < 0.5:
                    n = len(submitted)
                    if not n:
                        continue
                    key, f = submitted[n - 1 - min(n - 1, int(rng.expovariate(0.2)))]
                else:
                    n = len(started)
                    if not n:
                        continue
                    key = started[n - 1 - min(n - 1, int(rng.expovariate(0.5)))]
                    found = by_key.get(key)
                    if found is None:
                        continue
                    f = found
                answer = f.cancel()
                answers.append((key, answer, f.done()))

        with tf.ThreadPoolExecutor(4, max_pending=max_pending, cancel_running=cancel_running) as ex:
            cancellers = [spawn(canceller, seed) for seed in range(2)]
            submitters = [spawn(submitter, s) for s in range(SUBMITTERS)]
            try:
                for t in submitters:
                    t.result(timeout=30)
                futures = dict(submitted)
                _, not_done = tf.wait(futures.values(), timeout=30)
            finally:
                stop.set()
                for t in cancellers:
                    t.result(timeout=30)
            assert not not_done, f"{len(not_done)} futures never ended"
        assert len(futures) == len(submitted) == SUBMITTERS * PER_SUBMITTER
        assert any(answer for _, answer, _ in answers), "no cancel() won: the test proved nothing"
        for _, answer, done_after in answers:
            # True: cancelled, so done at once. False: it had finished or, without
            # the option, it was running. (With the option, False for a call that
            # had only just started is the bug test_cancel_as_the_call_starts_still_
            # reaches_it shows; that race shows up here now and then, so it is not
            # asserted: the checks below still hold for such a future.)
            if answer:
                assert done_after
        said_cancelled = {key for key, answer, _ in answers if answer}
        runs = Counter(started)
        assert max(runs.values()) == 1, "a call ran twice"
        if cancel_running:
            assert interrupted, "no running call was cancelled: the test proved nothing"
        else:
            assert interrupted == []
        cancelled = set()
        for key, f in futures.items():
            assert f.done()
            if f.cancelled():
                cancelled.add(key)
                with pytest.raises(cf.CancelledError):
                    f.result()
                if not cancel_running:
                    assert key not in runs, "a call cancelled while queued still ran"
            else:
                assert f.result() == key * 2 and f.exception() is None
                assert runs[key] == 1
        # Cancelled exactly when a cancel() said so; a call cut short was cancelled.
        assert cancelled == said_cancelled
        assert set(interrupted) <= cancelled


# == Stand-in ==========================================================================
STANDIN_PROGRAM = """
import queue, threading
import concurrent.futures as cf
import threadkit
import threadkit.futures as tf

q = queue.Queue(maxsize=4)
got = []

def producer():
    for i in range(200):
        q.put(i)
    q.put(None)

def consumer():
    while (item := q.get()) is not None:
        got.append(item)
        q.task_done()
    q.task_done()

threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
for t in threads:
    t.start()
q.join()
for t in threads:
    t.join()
print("queue", len(got), sum(got))

for name, mod in [("stdlib", cf), ("threadkit", tf)]:
    with mod.ThreadPoolExecutor(4) as ex:
        squares = sum(ex.map(lambda x: x * x, range(100)))
        fs = [ex.submit(pow, 2, i) for i in range(10)]
        completed = sorted(f.result() for f in cf.as_completed(fs, timeout=30))
        done, _ = cf.wait(fs, timeout=30)
    print(name, squares, sum(completed), len(done))

print("on threadkit:", threading is threadkit, queue.threading is threadkit,
      cf.thread.threading is threadkit)
"""

STANDIN_EXPECTED = [
    "queue 200 19900",
    "stdlib 328350 1023 10",
    "threadkit 328350 1023 10",
    "on threadkit: True True True",
]


class TestStandIn:
    def test_under_install(self) -> None:
        out = run_child("import threadkit; threadkit.install()\n" + STANDIN_PROGRAM)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == STANDIN_EXPECTED, out.stdout
        assert out.stderr == ""

    def test_under_threadkit_run(self, tmp_path: Path) -> None:
        prog = tmp_path / "prog.py"
        prog.write_text(textwrap.dedent(STANDIN_PROGRAM))
        env = {k: v for k, v in os.environ.items() if k != "THREADKIT_STANDIN"}
        env["PYTHONPATH"] = SRC
        out = subprocess.run(
            [sys.executable, "-m", "threadkit", "run", str(prog)],
            capture_output=True,
            text=True,
            timeout=50,
            env=env,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == STANDIN_EXPECTED, out.stdout

    def test_the_same_program_on_threading(self) -> None:
        """The baseline: without the stand-in the program says the same, on threading."""
        env = {k: v for k, v in os.environ.items() if k != "THREADKIT_STANDIN"}
        env["PYTHONPATH"] = SRC
        out = run_child(STANDIN_PROGRAM, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            *STANDIN_EXPECTED[:-1],
            "on threadkit: False False False",
        ]
