"""Ctrl-C in the main thread while it waits in threadkit: prompt, and nothing broken.

Part A sends a real SIGINT (``signal.pthread_kill``) to the main thread once it is
blocked in each blocking call and checks that KeyboardInterrupt comes out within
``PROMPT`` seconds and that the primitive is consistent afterwards
(tests/test_threads.py::TestInterrupt covers the untimed Lock, RLock,
Condition-over-RLock, Semaphore, Event, join and Barrier cases; this file the rest).

Part B delivers SIGINT at every point of each call. A ``sys.settrace`` function,
active in the main thread only (helper threads are never traced), counts the 'line'
events of threadkit's own code and at the N-th one calls the installed SIGINT
handler with that frame, as CPython does when a signal arrives there (lines of
``finally`` and ``except`` blocks included). threadkit's handler raises at once in a
park and otherwise owes the KeyboardInterrupt until the next safe point; exactly one
must come out, from the call or right after it returned. Each scenario is run to
count its lines, then once per N with fresh primitives; after every run, whether
the call returned or raised, the invariants are checked: no lock held that should
not be (or not held that should), no permit or notify lost, no ghost waiter in a
queue, no internal mutex left held, the thread's record clean, any other waiter
still woken, no thread running that its ``Thread`` says never started. Helper
threads are stdlib threads coordinated with stdlib Events; one that waits for the
main thread to park also gives up once the main thread's call has ended, since with
an interrupt it may never park. ``python tests/test_interrupts.py`` prints the table.
"""

from __future__ import annotations

import _thread
import dataclasses
import functools
import linecache
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

import threadkit
from helpers import wait_until, wait_until_parked
from threadkit import _core, _workers
from threadkit._core import SIGNALLED, WAITING, WaitQueue, _interrupts
from threadkit._taskgroup import GroupState as _GroupState

pytestmark = pytest.mark.timeout(120)

_MAIN = threading.main_thread().ident or 0
#: The longest a KeyboardInterrupt may take to come out after SIGINT was sent.
PROMPT = 2.0


def _main_record() -> _core.ThreadRecord:
    rec = _core.record_for(_MAIN)
    assert rec is not None
    return rec


def _parked(rec: _core.ThreadRecord | None, resource: object) -> bool:
    node = None if rec is None else rec.waiting
    return node is not None and node.resource is resource and node.state is WAITING


_PKG_DIR = os.path.dirname(os.path.abspath(threadkit.__file__)) + os.sep
_PARK_CODE = WaitQueue.park.__code__


def _parked_anywhere(rec: _core.ThreadRecord | None) -> bool:
    node = None if rec is None else rec.waiting
    return node is not None and node.state is WAITING and _in_park_acquire(rec.ident)


def _in_park_acquire(ident: int) -> bool:
    """True if thread ``ident`` is blocked in (or just back from) the parker's acquire."""
    frame = sys._current_frames().get(ident)
    if frame is not None and frame.f_code in _core.PARK_CODES and frame.f_code is not _PARK_CODE:
        return True
    return (
        frame is not None
        and frame.f_code is _PARK_CODE
        and ".acquire(" in linecache.getline(_PARK_CODE.co_filename, frame.f_lineno)
    )


def _blocked(rec: _core.ThreadRecord | None, resource: object) -> bool:
    """True if ``rec``'s thread is parked on ``resource``, inside the parker's acquire."""
    return rec is not None and _parked(rec, resource) and _in_park_acquire(rec.ident)


@pytest.fixture(autouse=True)
def _in_main_thread() -> None:
    assert _thread.get_ident() == _MAIN, "these tests interrupt the main thread"
    _core.current_record()  # the main thread's record exists from here on


# == Part A: real SIGINT while parked ====================================================
class _Firer:
    """Sends SIGINT to the main thread once ``ready()`` holds (a real Ctrl-C), unless
    the main thread's call is over (``done``) by then."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.sent_at = 0.0
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,))
        self.thread.start()

    def _run(self, ready: Callable[[], bool]) -> None:
        try:
            wait_until(lambda: self.done.is_set() or ready())
        except BaseException as exc:  # still interrupt the main thread, then fail
            self.error = exc
        rec = _core.record_for(_MAIN)
        node = None if rec is None else rec.waiting
        while not self.done.is_set():
            self.sent_at = time.monotonic()
            signal.pthread_kill(_MAIN, signal.SIGINT)
            # CPython acts on a signal between bytecodes or when it interrupts a
            # blocking call: one that lands in the instant before the main thread
            # blocks waits for the block to end. If the main thread still sits in
            # the same wait a while later, that is what happened: send another.
            if self.done.wait(0.5) or rec is None or node is None:
                break
            if rec.waiting is not node or node.state is not WAITING:
                break


def _interrupt(ready: Callable[[], bool], call: Callable[[], object]) -> float:
    """Run ``call`` in the main thread, SIGINT it once ``ready()``; return the delay."""
    assert _interrupts.installed(), "threadkit's SIGINT handler is not installed"
    firer = _Firer(ready)
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
        delay = time.monotonic() - firer.sent_at
    finally:
        firer.done.set()
        try:  # a signal sent just as the call ended must not reach pytest
            firer.thread.join()
            for _ in range(10):
                time.sleep(0)
        except KeyboardInterrupt:
            pass
    assert firer.error is None, firer.error
    assert delay < PROMPT, f"KeyboardInterrupt came {delay:.3f}s after SIGINT"
    assert _main_record().waiting is None
    return delay


def _main_parked_on(resource: object) -> Callable[[], bool]:
    return lambda: _blocked(_core.record_for(_MAIN), resource)


class _Holder:
    """A stdlib thread that runs ``enter()``, then ``leave()`` once told to."""

    def __init__(self, enter: Callable[[], object], leave: Callable[[], object]) -> None:
        self._entered = threading.Event()
        self._go = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(enter, leave))
        self.thread.start()
        assert self._entered.wait(10)

    def _run(self, enter: Callable[[], object], leave: Callable[[], object]) -> None:
        enter()
        self._entered.set()
        self._go.wait()
        leave()

    def finish(self) -> None:
        self._go.set()
        self.thread.join()


class _Background:
    """A stdlib thread running ``fn()`` and keeping its outcome."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.exc: BaseException | None = None
        self.rec: _core.ThreadRecord | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()
        assert self._started.wait(10)

    def _run(self, fn: Callable[[], Any]) -> None:
        self.rec = _core.current_record()
        self._started.set()
        try:
            self.result = fn()
        except BaseException as exc:
            self.exc = exc

    def parked_on(self, resource: object) -> Callable[[], bool]:
        return lambda: _parked(self.rec, resource)

    def join(self, timeout: float = 10.0) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background thread did not finish"
        if self.exc is not None:
            raise self.exc
        return self.result


def _then_other(resource: object, fn: Callable[[], Any]) -> tuple[Callable[[], bool], list[Any]]:
    """A ``ready()`` for ``_interrupt``: once the main thread is parked on ``resource``,
    start ``fn`` in another thread, and be ready once that one is parked behind it."""
    others: list[_Background] = []

    def ready() -> bool:
        if not others:
            if not _parked(_core.record_for(_MAIN), resource):
                return False
            others.append(_Background(fn))
        return _blocked(others[0].rec, resource) and _blocked(_core.record_for(_MAIN), resource)

    return ready, others


class TestRealSignal:
    """A real SIGINT to the parked main thread, for the calls TestInterrupt lacks."""

    def test_lock_acquire_with_timeout(self) -> None:
        lock = threadkit.Lock()
        holder = _Holder(lock.acquire, lock.release)
        try:
            _interrupt(_main_parked_on(lock), lambda: lock.acquire(timeout=60))
        finally:
            holder.finish()
        assert len(lock._queue) == 0
        assert not lock.locked()
        assert lock.acquire(False)
        lock.release()

    def test_rlock_acquire_with_timeout(self) -> None:
        lock = threadkit.RLock()
        holder = _Holder(lock.acquire, lock.release)
        try:
            _interrupt(_main_parked_on(lock), lambda: lock.acquire(timeout=60))
            assert not lock._is_owned()
        finally:
            holder.finish()
        assert len(lock._queue) == 0
        assert lock.acquire(False)
        assert lock._recursion_count() == 1
        lock.release()

    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_condition_wait_over_lock(self, timeout: float | None) -> None:
        lock = threadkit.Lock()
        cond = threadkit.Condition(lock)
        with cond:
            _interrupt(_main_parked_on(cond), lambda: cond.wait(timeout))
            assert lock.locked(), "wait() raised without taking the lock back"
            assert len(cond._waiters) == 0
        assert not lock.locked()
        assert lock.acquire(False)
        lock.release()

    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_condition_wait_over_rlock_keeps_recursion(self, timeout: float | None) -> None:
        lock = threadkit.RLock()
        cond = threadkit.Condition(lock)
        with cond, cond:
            _interrupt(_main_parked_on(cond), lambda: cond.wait(timeout))
            assert lock._recursion_count() == 2
            assert len(cond._waiters) == 0
        assert not lock._is_owned()
        assert lock.acquire(False)
        lock.release()

    def test_condition_wait_for(self) -> None:
        cond = threadkit.Condition(threadkit.Lock())
        with cond:
            _interrupt(_main_parked_on(cond), lambda: cond.wait_for(lambda: False))
            assert cond._is_owned()
            assert len(cond._waiters) == 0

    def test_condition_entering_a_foreign_lock(self) -> None:
        # Waiting for a lock that is not threadkit's happens outside the core: Ctrl-C
        # must still interrupt it, as it does with threading.
        lock = threading.Lock()
        cond = threadkit.Condition(lock)
        enter = sys.modules["threadkit._sync"]._enter_foreign.__code__

        def in_enter() -> bool:
            frame = sys._current_frames().get(_MAIN)
            return frame is not None and frame.f_code is enter

        done = threading.Event()

        def fire() -> None:
            wait_until(in_enter)
            # Again if it landed just before the acquire blocked (CPython's race).
            while not done.is_set():
                signal.pthread_kill(_MAIN, signal.SIGINT)
                done.wait(0.5)

        with lock:
            firer = threading.Thread(target=fire)
            firer.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    cond.__enter__()
            finally:
                done.set()
                firer.join()
        assert not lock.locked()

    def test_interrupted_condition_waiter_passes_its_turn(self) -> None:
        cond = threadkit.Condition(threadkit.Lock())

        def other_wait() -> bool:
            with cond:
                return cond.wait(10)

        ready, others = _then_other(cond, other_wait)
        with cond:
            _interrupt(ready, cond.wait)
            assert len(cond._waiters) == 1  # only the other waiter
            cond.notify()
        assert others[0].join() is True
        assert len(cond._waiters) == 0

    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_semaphore_permit_goes_to_the_next_waiter(self, timeout: float | None) -> None:
        sem = threadkit.Semaphore(0)
        ready, others = _then_other(sem, lambda: sem.acquire(timeout=10))
        _interrupt(ready, lambda: sem.acquire(timeout=timeout))
        sem.release()
        assert others[0].join() is True
        assert sem._value == 0
        assert len(sem._queue) == 0

    def test_bounded_semaphore_acquire_with_timeout(self) -> None:
        sem = threadkit.BoundedSemaphore(1)
        sem.acquire()
        _interrupt(_main_parked_on(sem), lambda: sem.acquire(timeout=60))
        sem.release()
        assert sem._value == 1
        assert len(sem._queue) == 0

    def test_event_wait_with_timeout(self) -> None:
        ev = threadkit.Event()
        ready, others = _then_other(ev, lambda: ev.wait(10))
        _interrupt(ready, lambda: ev.wait(60))
        assert len(ev._queue) == 1  # only the other waiter
        ev.set()
        assert others[0].join() is True
        assert len(ev._queue) == 0

    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_barrier_wait_breaks_it_for_the_others(self, timeout: float | None) -> None:
        barrier = threadkit.Barrier(3)
        ready, others = _then_other(barrier, lambda: barrier.wait(10))
        _interrupt(ready, lambda: barrier.wait(timeout))
        assert barrier.broken
        with pytest.raises(threadkit.BrokenBarrierError):
            others[0].join()
        assert len(barrier._gen.queue) == 0
        with pytest.raises(threadkit.BrokenBarrierError):
            barrier.wait()

    @pytest.mark.parametrize("method", ["join", "result", "exception"])
    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_thread_wait(self, method: str, timeout: float | None) -> None:
        if method == "join" and timeout is None:
            pytest.skip("covered by test_threads.py::TestInterrupt")
        go = threading.Event()
        t = threadkit.Thread(target=lambda: go.wait() and 42)
        t.start()
        try:
            _interrupt(_main_parked_on(t), lambda: getattr(t, method)(timeout))
        finally:
            go.set()
        assert t.result(10) == 42
        assert not t.is_alive()
        assert len(t._tk_done) == 0

    def test_sleep(self) -> None:
        def sleeping() -> bool:
            # The sleep parks on a queue of its own: find it through the registry.
            for rec in _core.records():
                node = rec.waiting
                if rec.ident == _MAIN and node is not None and node.operation == "sleep":
                    wait_until_parked(node.resource)
                    return _in_park_acquire(_MAIN)
            return False

        started = time.monotonic()
        _interrupt(sleeping, lambda: threadkit.sleep(60))
        assert time.monotonic() - started < 30
        assert not [r for r in _core.records() if r.waiting and r.waiting.operation == "sleep"]


# == Part B: KeyboardInterrupt injected at every line ====================================
#: Safety-net timeout of the other threads' own waits (never reached when all is well).
W_TIMEOUT = 5.0
#: How long the main thread may stay parked after the helper's part before a run
#: declares it deadlocked and rescues it.
STUCK_AFTER = 0.5

# What an injected interrupt broke (the first word of each problem reported).
LOCK = "lock"  # a lock held that should not be, or not held (or at the wrong depth)
MUTEX = "mutex"  # an internal mutex left held: every later call deadlocks
GHOST = "ghost"  # the main thread's node left in a wait queue
RECORD = "record"  # current_record().waiting left set after the call
WAKEUP = "wake-up"  # a release / notify / permit / set / baton never reached a waiter
PERMITS = "permits"  # Semaphore: value + permits held != permits given
BARRIER = "barrier"  # an arrival counted without the barrier broken, or the like
DEADLOCK = "deadlock"  # the main thread never came back
EXCEPTION = "exception"  # the call raised something else, or swallowed the interrupt
RESULT = "result"  # the call returned a wrong value
HARNESS = "harness"  # the scenario itself misbehaved (never a known bug)


_ours: dict[Any, bool] = {}


class _Injector:
    """Trace function of the main thread: counts the 'line' events of threadkit's code
    and, at the ``target``-th one (never, if None), delivers SIGINT there: it calls
    the installed SIGINT handler with that frame, which is what CPython does when a
    signal arrives at that point. threadkit's handler raises KeyboardInterrupt at
    once where the code is open to it (a park) and otherwise owes it, to be raised
    at the next safe point; either way exactly one must come out."""

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.count = 0
        self.where: tuple[Any, int] | None = None

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        ours = _ours.get(code)
        if ours is None:
            ours = _ours[code] = code.co_filename.startswith(_PKG_DIR)
        return self._line if ours else None

    def _line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.count += 1
            if self.count == self.target:
                self.where = (frame.f_code, frame.f_lineno)
                signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
        return self._line


def _land() -> None:
    """Let an owed KeyboardInterrupt come out here (it is raised by the nudge that
    interrupts this sleep); AssertionError if it never does."""
    deadline = time.monotonic() + 2.0
    while _interrupts.owed():
        if time.monotonic() > deadline:
            raise AssertionError("an owed KeyboardInterrupt was never raised")
        time.sleep(0.0005)


def _site(where: tuple[Any, int]) -> str:
    """``Qualname: source line``: where an interrupt landed, independent of line numbers."""
    code, lineno = where
    text = linecache.getline(code.co_filename, lineno).split("  #")[0].strip()
    return f"{code.co_qualname}: {text}"


def _location(where: tuple[Any, int]) -> str:
    code, lineno = where
    return f"{os.path.relpath(code.co_filename, os.path.dirname(_PKG_DIR))}:{lineno}"


def _busy_in_threadkit() -> bool:
    """True if a thread other than the main one runs threadkit code (so may hold one of
    its mutexes for a moment), other than blocked in a park, which holds none."""
    for ident, frame in sys._current_frames().items():
        if ident == _MAIN or _in_park_acquire(ident):
            continue
        f = frame
        while f is not None:
            if f.f_code.co_filename.startswith(_PKG_DIR):
                return True
            f = f.f_back
    return False


def _left_held(mutex: Any) -> bool:
    """True if ``mutex`` is held and nobody is going to release it.

    Internal mutexes are held for microseconds: one seen held at every look over
    0.3 s while no other thread runs threadkit code is left held. (Without the GIL
    another thread can take it between two looks: any look that finds it free, or
    finds another thread in threadkit, clears it.)
    """
    start = time.monotonic()
    deadline = start + 0.3
    while time.monotonic() < deadline:
        if not mutex.locked():
            return False
        if _busy_in_threadkit():
            deadline = min(max(deadline, time.monotonic() + 0.05), start + 2)
        time.sleep(0.0005)
    return bool(mutex.locked())


def _release_left(mutex: Any) -> None:
    try:
        mutex.release()
    except RuntimeError:
        pass  # its holder let go after all


def _resume(bg: _Background, limit: float = 3.0) -> str | None:
    """Wait for ``bg``'s thread to end; None if it did, else why not: still 'parked'
    (its node WAITING), 'signalled but never unparked', or 'stuck'."""
    rec = bg.rec
    assert rec is not None
    deadline = time.monotonic() + limit
    since = parked_since = None
    polls = 0
    while bg.thread.is_alive():
        node = rec.waiting
        now = time.monotonic()
        # Parked with its node WAITING for a while, not just for an instant: a
        # woken waiter that lost the lock to a barger, or is about to take it,
        # queues a fresh node for a moment (seen without the GIL).
        if node is not None and node.state is WAITING and _blocked(rec, node.resource):
            parked_since = now if parked_since is None else parked_since
            if now - parked_since > 0.3:
                return "parked"
        else:
            parked_since = None
        if (
            node is not None
            and node.state is not WAITING
            and rec.parker.locked()
            and _in_park_acquire(rec.ident)
        ):
            # Blocked without a permit although signalled. Right after an unpark it
            # looks the same until it has the GIL back, hence the short grace.
            since = now if since is None else since
            polls += 1
            if now - since > 0.05 and polls > 40:
                return "signalled but never unparked"
        else:
            since = None
            polls = 0
        if now > deadline:
            return "stuck"
        time.sleep(0.0005)
    return None


def _force_wake(rec: _core.ThreadRecord | None) -> None:
    """Rescue a thread a broken run left parked for ever: signal its node, unpark it."""
    if rec is None:
        return
    node = rec.waiting or rec.node
    if node is not None and node.state is WAITING:
        queue = node.queue
        if queue.mutex.acquire(timeout=1):
            try:
                if node.state is WAITING:
                    if node in queue.waiters:
                        queue.waiters.remove(node)
                    node.state = SIGNALLED
            finally:
                queue.mutex.release()
    rec.unpark()


def _module_mutexes() -> dict[str, Any]:
    return {
        "_threads._mutex": sys.modules["threadkit._threads"]._mutex,
        "_registry._mutex": sys.modules["threadkit._core._registry"]._mutex,
        "_cancel._mutex": sys.modules["threadkit._core._cancel"]._mutex,
    }


class _Outcome:
    def __init__(self) -> None:
        self.returned = False
        self.value: Any = None
        self.raised: BaseException | None = None  # the KeyboardInterrupt, out of the call
        self.late: BaseException | None = None  # the KeyboardInterrupt, after it returned
        self.error: BaseException | None = None  # anything else the call raised


class Scenario:
    """One run of one blocking call in the main thread, with fresh primitives.

    A subclass defines ``prepare`` (untraced), ``call`` (the traced blocking call),
    ``helper`` (runs in a stdlib thread: typically waits until the main thread is
    blocked, or its call ended, then acts) and ``check`` (after the call, untraced:
    reports problems, then lets every other thread go). ``queues`` and ``mutexes``
    name what must hold no ghost and be free once the call is over.
    """

    name: ClassVar[str]
    #: A second waiter parks behind the main thread before the helper acts; whatever
    #: happens to the main thread, what the helper sends must not be lost to it.
    two_waiters: ClassVar[bool] = False

    def __init__(self) -> None:
        self.rec = _main_record()
        self.problems: list[tuple[str, str]] = []
        self.ended = threading.Event()  # the main thread's call returned or raised
        self.acted = threading.Event()  # the helper did its part, or gave up
        self.did_act = False
        self.other: _Background | None = None
        # A permit a previous run left on the main thread's parker would make the
        # first park return at once and change the line count: consume it.
        self.rec.parker.acquire(False)
        self.prepare()
        self.helper_thread = threading.Thread(target=self._helper_main, daemon=True)
        self.helper_thread.start()

    # -- for subclasses --------------------------------------------------------------------
    def prepare(self) -> None:
        pass

    def call(self) -> Any:
        raise NotImplementedError

    def helper(self) -> None:
        pass

    def check(self, out: _Outcome) -> None:
        pass

    def queues(self) -> dict[str, WaitQueue]:
        return {}

    def mutexes(self) -> dict[str, Any]:
        return {}

    def problem(self, kind: str, text: str) -> None:
        self.problems.append((kind, text))

    # -- helper-side tools -----------------------------------------------------------------
    def wait_blocked(self, resource: object) -> bool:
        """Wait until the main thread is parked on ``resource`` (True) or its call ended."""
        deadline = time.monotonic() + 10
        while not self.ended.is_set():
            if _blocked(self.rec, resource):
                return True
            if time.monotonic() > deadline:
                self.problem(HARNESS, f"main thread neither parked on {resource!r} nor done")
                return False
            time.sleep(0.0002)
        return False

    def start_other(self, fn: Callable[[], Any], resource: object) -> None:
        """Start the second waiter and wait until it is parked on ``resource``."""
        self.other = other = _Background(fn)
        deadline = time.monotonic() + 10
        while not _blocked(other.rec, resource):
            alive = other.thread.is_alive()  # once: it may end between two reads
            if not alive and isinstance(other.exc, threadkit.BrokenBarrierError):
                return  # the main thread's Ctrl-C broke the barrier first
            if self.ended.is_set() and _parked_anywhere(other.rec):
                return  # the main thread's call ended first: it waits behind that
            if not alive or time.monotonic() > deadline:
                self.problem(HARNESS, f"second waiter did not park: {other.exc!r}")
                return
            time.sleep(0.0002)

    def finish_other(self, expect_woken: bool, what: str, wake: Callable[[], object]) -> Any:
        """Join the second waiter and return its result (or exception).

        If ``expect_woken``, what happened so far must already have woken it: if it is
        stranded, say so (``what`` names what was lost) and rescue it with ``wake()``.
        Otherwise ``wake()`` is how the run lets it go.
        """
        other = self.other
        if other is None:
            return None
        if not expect_woken:
            wake()
        why = _resume(other)
        if why is not None:
            self.problem(WAKEUP, f"{what}: the second waiter is {why}")
            wake()
            _force_wake(other.rec)
            other.thread.join(W_TIMEOUT)
        if other.exc is not None and not isinstance(other.exc, threadkit.BrokenBarrierError):
            self.problem(HARNESS, f"second waiter failed: {other.exc!r}")
        return other.exc if other.exc is not None else other.result

    def _helper_main(self) -> None:
        try:
            try:
                self.helper()
            finally:
                self.acted.set()
            if self.ended.wait(STUCK_AFTER):
                return
            self.problem(DEADLOCK, f"main thread never came back: {self.rec!r}")
            while not self.ended.wait(0.2):
                node = self.rec.waiting
                resource = None if node is None else node.resource
                if isinstance(resource, threadkit.Lock) and resource.locked():
                    resource.release()  # it waits for a lock it holds itself
                else:
                    _force_wake(self.rec)
        except BaseException as exc:
            self.problem(HARNESS, f"helper thread failed: {exc!r}")

    # -- main-side -------------------------------------------------------------------------
    def finish(self, out: _Outcome) -> list[tuple[str, str]]:
        """Check the invariants after the call, repair what broke, let everyone go."""
        if not self.acted.wait(15):
            self.problem(HARNESS, "helper never finished its part")
        if out.error is not None:
            self.problem(EXCEPTION, f"call raised {out.error!r}")
        for mname, mutex in {**self.mutexes(), **_module_mutexes()}.items():
            if _left_held(mutex):
                self.problem(MUTEX, f"{mname} left held")
                _release_left(mutex)
        rec = self.rec
        if rec.waiting is not None:
            self.problem(RECORD, f"current_record().waiting is {rec.waiting!r}")
            rec.waiting = None
        node = rec.node
        if node is not None and node.batch is not None:
            rest = node.batch.nodes[node.index + 1 : node.batch.end[node.index]]
            if rest:
                self.problem(WAKEUP, f"baton lost: {rest!r} are never unparked")
            for later in rest:
                later.record.unpark()
            node.batch = None
        for qname, queue in self.queues().items():
            with queue.mutex:
                ghosts = [n for n in queue.waiters if n.record is rec]
            for ghost in ghosts:
                self.problem(GHOST, f"main thread's node left in {qname}: {ghost!r}")
                with queue.mutex:
                    queue.waiters.remove(ghost)
        self.check(out)
        self.helper_thread.join(10)
        if self.other is not None:
            self.other.thread.join(10)
        for qname, queue in self.queues().items():
            with queue.mutex:
                left = list(queue.waiters)
                queue.waiters.clear()
            if left:
                self.problem(GHOST, f"{qname} not empty at the end: {left}")
        return self.problems


def _call_and_store(sc: Scenario, out: _Outcome) -> None:
    """Make the call and note that it returned, and what.

    Registered below as protected code, like threadkit's own: an interrupt owed when
    the call returns comes out after this frame, never between the return and the
    notes (where it would pass for one raised by the call). Without the GIL the
    nudge is there at once, and an instrumented call checks for signals on return.
    """
    out.value = sc.call()
    out.returned = True


_interrupts._verdicts[_call_and_store.__code__] = True


def _run(cls: type[Scenario], target: int | None) -> tuple[_Injector, list[tuple[str, str]]]:
    """Run ``cls`` once, injecting at the ``target``-th threadkit line (None: count)."""
    sc = cls()
    inj = _Injector(target)
    out = _Outcome()
    previous = sys.gettrace()
    twice = None
    try:
        try:
            sys.settrace(inj.trace)
            try:
                _call_and_store(sc, out)
            finally:
                sys.settrace(previous)
            _land()
        except KeyboardInterrupt as exc:
            if out.returned:
                out.late = exc
            else:
                out.raised = exc
        except Exception as exc:
            out.error = exc
        try:
            _land()
        except KeyboardInterrupt as exc:
            twice = exc
    finally:
        sys.settrace(previous)
        sc.ended.set()
    problems = sc.finish(out)
    if inj.where is not None and out.raised is None and out.late is None:
        got = f"returned {out.value!r}" if out.returned else f"raised {out.error!r}"
        problems.append((EXCEPTION, f"the KeyboardInterrupt did not come out: the call {got}"))
    if twice is not None:
        problems.append((EXCEPTION, "one Ctrl-C raised KeyboardInterrupt twice"))
    return inj, problems


@dataclasses.dataclass
class Failure:
    n: int
    site: str  # "Qualname: source line" where the interrupt was injected
    location: str  # file:line
    problems: list[tuple[str, str]]

    def text(self) -> str:
        lines = [f"  N={self.n} at {self.location} ({self.site}):"]
        lines.extend(f"      {kind}: {text}" for kind, text in self.problems)
        return "\n".join(lines)


@dataclasses.dataclass
class Report:
    name: str
    count: int  # injection points: threadkit line events of the call
    failures: list[Failure]

    def text(self, failures: list[Failure] | None = None) -> str:
        shown = self.failures if failures is None else failures
        head = f"{self.name}: {self.count} injection points, {len(self.failures)} broke"
        return "\n".join([head, *(f.text() for f in shown)])


def explore(cls: type[Scenario]) -> Report:
    """Count ``cls``'s threadkit lines, then inject at each of them in turn."""
    for _ in range(3):  # warm up first-use paths (records, nodes); the last one counts
        counted, problems = _run(cls, None)
        assert not problems, f"{cls.name}, with no interrupt: {problems}"
    report = Report(cls.name, counted.count, [])
    for n in range(1, counted.count + 1):
        inj, problems = _run(cls, n)
        if problems:
            where = inj.where
            site = _site(where) if where else "(not injected: the call took a shorter path)"
            loc = _location(where) if where else "?"
            report.failures.append(Failure(n, site, loc, problems))
    return report


# -- scenarios ------------------------------------------------------------------------------
_SCENARIOS: dict[str, type[Scenario]] = {}


def scenario(cls: type[Scenario]) -> type[Scenario]:
    _SCENARIOS[cls.name] = cls
    return cls


class _LockScenario(Scenario):
    kind: ClassVar[Callable[[], Any]] = threadkit.Lock
    kwargs: ClassVar[dict[str, Any]] = {}
    lock: Any

    def call(self) -> Any:
        return self.lock.acquire(**self.kwargs)

    def queues(self) -> dict[str, WaitQueue]:
        return {"lock._queue": self.lock._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"lock._queue.mutex": self.lock._queue.mutex}

    def release_main(self) -> None:
        if isinstance(self.lock, threadkit.RLock):
            while self.lock._is_owned():
                self.lock.release()
        else:
            self.lock.release()

    def check_free(self) -> None:
        if self.lock.acquire(False):
            self.lock.release()
        else:
            self.problem(LOCK, "lock not free at the end")


class LockFree(_LockScenario):
    """acquire() of a free lock: the uncontended path."""

    #: How many times the main thread holds the lock already (an RLock re-entered).
    depth: ClassVar[int] = 0

    def prepare(self) -> None:
        self.lock = self.kind()
        for _ in range(self.depth):
            self.lock.acquire()

    def check(self, out: _Outcome) -> None:
        lock = self.lock
        if isinstance(lock, threadkit.RLock):
            held = bool(lock._is_owned())
            count = lock._recursion_count()
            want = self.depth + (1 if out.returned else 0)
            if count != want:
                self.problem(LOCK, f"recursion count {count} after acquire(), expected {want}")
        else:
            held = lock.locked()
        if out.returned and not (out.value is True and held):
            self.problem(RESULT, f"acquire() returned {out.value!r}, lock held: {held}")
        if out.raised is not None and held and self.depth == 0:
            self.problem(LOCK, "acquire() raised but left the lock held")
        if held:
            self.release_main()
        self.check_free()


@scenario
class LockFreeUntimed(LockFree):
    name = "Lock.acquire() free"


@scenario
class LockFreeTimed(LockFree):
    name = "Lock.acquire(timeout=5) free"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}


@scenario
class RLockFree(LockFree):
    name = "RLock.acquire() free"
    kind = threadkit.RLock


@scenario
class RLockFreeTimed(LockFree):
    name = "RLock.acquire(timeout=5) free"
    kind = threadkit.RLock
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}


@scenario
class RLockReentered(LockFree):
    name = "RLock.acquire(timeout=5) re-entered"
    kind = threadkit.RLock
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}
    depth = 1


class LockContended(_LockScenario):
    """acquire() while another thread holds the lock; it lets go once we park.

    With ``two_waiters`` a second thread queues behind the main thread before the
    release: whatever happens to the main thread, the release must reach someone.
    """

    def prepare(self) -> None:
        self.lock = self.kind()
        self.holding = threading.Event()
        self.let_go = threading.Event()
        self.holder = threading.Thread(target=self._hold, daemon=True)
        self.holder.start()
        assert self.holding.wait(10)

    def _hold(self) -> None:
        self.lock.acquire()
        self.holding.set()
        self.let_go.wait()
        self.lock.release()

    def _other(self) -> bool:
        ok = bool(self.lock.acquire(timeout=W_TIMEOUT))
        if ok and isinstance(self.lock, threadkit.RLock):
            self.lock.release()  # an RLock only its owner may release
        return ok

    def helper(self) -> None:
        if self.wait_blocked(self.lock):
            if self.two_waiters:
                self.start_other(self._other, self.lock)
            self.let_go.set()
            self.holder.join(W_TIMEOUT)
            self.did_act = True
        # Otherwise the holder lets go only after the checks (a ghost node left by the
        # main thread would take that release's wake-up and hide).

    def check(self, out: _Outcome) -> None:
        self.let_go.set()
        self.holder.join(W_TIMEOUT)
        lock = self.lock
        rlock = isinstance(lock, threadkit.RLock)
        other = self.other
        other_holds = False
        if other is not None and not rlock:
            # A plain lock has no owner: let the second waiter settle, done (holding
            # the lock it took) or parked (holding nothing), to tell who holds it.
            wait_until(lambda: not other.thread.is_alive() or _blocked(other.rec, lock))
            other_holds = not other.thread.is_alive() and other.result is True
        if rlock:
            main_held = bool(lock._is_owned())
        else:
            main_held = lock.locked() and not other_holds
        if out.returned and not (out.value is True and main_held):
            self.problem(RESULT, f"acquire() returned {out.value!r}, held: {main_held}")
        if out.raised is not None and main_held:
            self.problem(LOCK, "acquire() raised but left the lock held")
        if main_held:
            self.release_main()  # wakes the second waiter, if any
        self.finish_other(True, "release lost", lambda: lock._queue.unpark(1))
        if other is not None and other.result is True and not rlock:
            lock.release()  # the plain lock the second waiter took
        self.check_free()


@scenario
class LockContendedUntimed(LockContended):
    name = "Lock.acquire() contended"


@scenario
class LockContendedTimed(LockContended):
    name = "Lock.acquire(timeout=5) contended"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}


@scenario
class LockContendedTwo(LockContended):
    name = "Lock.acquire() contended, second waiter"
    two_waiters = True


@scenario
class RLockContendedUntimed(LockContended):
    name = "RLock.acquire() contended"
    kind = threadkit.RLock


@scenario
class RLockContendedTwo(LockContended):
    name = "RLock.acquire(timeout=5) contended, second waiter"
    kind = threadkit.RLock
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}
    two_waiters = True


class CondWait(Scenario):
    """Condition.wait(), notified by a helper once the main thread parks (or timing out).

    With ``two_waiters`` a second thread waits behind the main thread and the helper
    sends one notify: unless the main thread's wait() returns True, that notify must
    reach the second waiter.
    """

    kind: ClassVar[Callable[[], Any]] = threadkit.Lock
    depth: ClassVar[int] = 1
    kwargs: ClassVar[dict[str, Any]] = {}
    timed_out: ClassVar[bool] = False  # nobody notifies: the wait times out

    def prepare(self) -> None:
        self.lock = self.kind()
        self.cond = threadkit.Condition(self.lock)
        for _ in range(self.depth):
            self.lock.acquire()

    def call(self) -> Any:
        return self.cond.wait(**self.kwargs)

    def queues(self) -> dict[str, WaitQueue]:
        return {"cond._queue": self.cond._queue, "lock._queue": self.lock._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"cond._queue.mutex": self.cond._queue.mutex, "lock mutex": self.lock._queue.mutex}

    def _other(self) -> bool:
        with self.cond:
            return bool(self.cond.wait(W_TIMEOUT))

    def _other_settled(self) -> bool:
        """The second waiter is done, or parked: either way it holds no lock."""
        other = self.other
        return (
            other is None
            or not other.thread.is_alive()
            or _blocked(other.rec, self.cond)
            or _blocked(other.rec, self.lock)
        )

    def helper(self) -> None:
        if not self.timed_out and self.wait_blocked(self.cond):
            if self.two_waiters:
                self.start_other(self._other, self.cond)
            # The main thread parked, but an owed Ctrl-C may take it out again and
            # have it hold the lock until the checks: then there is nobody to notify.
            while not self.cond.acquire(timeout=0.01):
                if self.ended.is_set():
                    return
            try:
                self.cond.notify()
            finally:
                self.cond.release()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        lock = self.lock
        if isinstance(lock, threadkit.RLock):
            held = bool(lock._is_owned())
            count = lock._recursion_count()
            if held and count != self.depth:
                self.problem(LOCK, f"recursion count {count} after wait(), expected {self.depth}")
        else:
            # A plain lock has no owner: once the second waiter holds none, a held
            # lock is the main thread's.
            wait_until(self._other_settled)
            held = lock.locked()
        if not held:
            what = "returned" if out.returned else "raised"
            self.problem(LOCK, f"wait() {what} without the lock held again")
        if out.returned and out.value is not (not self.timed_out):
            self.problem(RESULT, f"wait() returned {out.value!r}")
        if held:
            self.release_main()

        def notify() -> None:
            other = self.other
            if other is not None:
                # It may still be on its way into wait(): a notify before it queued
                # would be lost by design.
                wait_until(lambda: not other.thread.is_alive() or _blocked(other.rec, self.cond))
            with self.cond:
                self.cond.notify()

        passed_on = self.did_act and out.raised is not None
        self.finish_other(passed_on, "notify swallowed", notify)
        if lock.acquire(False):
            lock.release()
        else:
            self.problem(LOCK, "lock not free at the end")

    def release_main(self) -> None:
        if isinstance(self.lock, threadkit.RLock):
            while self.lock._is_owned():
                self.lock.release()
        else:
            self.lock.release()


@scenario
class CondLock(CondWait):
    name = "Condition(Lock).wait() notified"


@scenario
class CondLockTimeout(CondWait):
    name = "Condition(Lock).wait(0.0005) times out"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 0.0005}
    timed_out = True


@scenario
class CondLockTwo(CondWait):
    name = "Condition(Lock).wait() notified, second waiter"
    two_waiters = True


@scenario
class CondRLock(CondWait):
    name = "Condition(RLock held twice).wait(timeout=5) notified"
    kind = threadkit.RLock
    depth = 2
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}


@scenario
class CondRLockTwo(CondWait):
    name = "Condition(RLock).wait() notified, second waiter"
    kind = threadkit.RLock
    two_waiters = True


class SemAcquire(Scenario):
    """Semaphore.acquire(): a free permit, or one a helper releases once we park."""

    initial: ClassVar[int] = 0
    kwargs: ClassVar[dict[str, Any]] = {}

    def prepare(self) -> None:
        self.sem = threadkit.Semaphore(self.initial)
        self.given = self.initial

    def call(self) -> Any:
        return self.sem.acquire(**self.kwargs)

    def queues(self) -> dict[str, WaitQueue]:
        return {"sem._queue": self.sem._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"sem._mutex": self.sem._mutex}

    def helper(self) -> None:
        if self.initial == 0 and self.wait_blocked(self.sem):
            if self.two_waiters:
                self.start_other(lambda: self.sem.acquire(timeout=W_TIMEOUT), self.sem)
            self.given += 1
            self.sem.release()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        sem = self.sem
        mine = 1 if out.returned and out.value is True else 0
        if out.returned and out.value is not True:
            self.problem(RESULT, f"acquire() returned {out.value!r}")

        def give() -> None:
            self.given += 1
            sem.release()

        passed_on = self.did_act and out.raised is not None
        theirs = 1 if self.finish_other(passed_on, "permit lost", give) is True else 0
        if sem._value + mine + theirs != self.given:
            self.problem(
                PERMITS,
                f"value {sem._value} + main's {mine} + second waiter's {theirs}"
                f" != {self.given} given",
            )


@scenario
class SemFree(SemAcquire):
    name = "Semaphore(1).acquire() free"
    initial = 1


@scenario
class SemContended(SemAcquire):
    name = "Semaphore(0).acquire() released"


@scenario
class SemContendedTwo(SemAcquire):
    name = "Semaphore(0).acquire(timeout=5) released, second waiter"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}
    two_waiters = True


class EventWait(Scenario):
    """Event.wait(): set before, set by a helper once the main thread parks, or timing out."""

    preset: ClassVar[bool] = False
    kwargs: ClassVar[dict[str, Any]] = {}
    timed_out: ClassVar[bool] = False

    def prepare(self) -> None:
        self.ev = threadkit.Event()
        if self.preset:
            self.ev.set()

    def call(self) -> Any:
        return self.ev.wait(**self.kwargs)

    def queues(self) -> dict[str, WaitQueue]:
        return {"ev._queue": self.ev._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"ev._mutex": self.ev._mutex}

    def helper(self) -> None:
        if not self.preset and not self.timed_out and self.wait_blocked(self.ev):
            if self.two_waiters:
                self.start_other(lambda: self.ev.wait(W_TIMEOUT), self.ev)
            self.ev.set()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        if out.returned and out.value is not (not self.timed_out):
            self.problem(RESULT, f"wait() returned {out.value!r}")
        result = self.finish_other(self.did_act, "set() lost", self.ev.set)
        if self.other is not None and result is not True:
            self.problem(WAKEUP, f"second waiter's wait() returned {result!r}")


@scenario
class EventPreset(EventWait):
    name = "Event.wait() already set"
    preset = True


@scenario
class EventSet(EventWait):
    name = "Event.wait() set"


@scenario
class EventSetTwo(EventWait):
    name = "Event.wait(timeout=5) set, second waiter"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 5}
    two_waiters = True


@scenario
class EventTimeout(EventWait):
    name = "Event.wait(0.0005) times out"
    kwargs: ClassVar[dict[str, Any]] = {"timeout": 0.0005}
    timed_out = True


class BarrierWait(Scenario):
    """Barrier.wait() by the main thread, arriving last or parked until the last comes."""

    parties: ClassVar[int] = 2
    main_last: ClassVar[bool] = False

    def prepare(self) -> None:
        self.barrier = threadkit.Barrier(self.parties)
        self.first: _Background | None = None
        self.last: _Background | None = None
        if self.main_last:
            first = self.first = _Background(lambda: self.barrier.wait(W_TIMEOUT))
            wait_until(lambda: _blocked(first.rec, self.barrier))

    def call(self) -> Any:
        return self.barrier.wait()

    def queues(self) -> dict[str, WaitQueue]:
        return {"barrier._gen.queue": self.barrier._gen.queue}

    def mutexes(self) -> dict[str, Any]:
        return {"barrier._mutex": self.barrier._mutex}

    def helper(self) -> None:
        if self.main_last or not self.wait_blocked(self.barrier):
            return
        if self.two_waiters:
            self.start_other(lambda: self.barrier.wait(W_TIMEOUT), self.barrier)
        self.last = _Background(lambda: self.barrier.wait(W_TIMEOUT))
        self.did_act = True

    def _settle(self, bg: _Background, who: str) -> Any:
        """Join another party; it may legitimately still wait only if the main
        thread's arrival was never counted (then the barrier is aborted to free it)."""
        if _parked(bg.rec, self.barrier):
            node = bg.rec.waiting if bg.rec is not None else None
            gen = self.barrier._gen
            if node is not None and node.queue is gen.queue and not gen.broken:
                if gen.count != 1:
                    self.problem(BARRIER, f"{who} waits, and {gen.count} arrivals are counted")
                self.barrier.abort()
        why = _resume(bg)
        if why is not None:
            self.problem(WAKEUP, f"{who} is {why}")
            _force_wake(bg.rec)
            bg.thread.join(W_TIMEOUT)
        return bg.exc if bg.exc is not None else bg.result

    def check(self, out: _Outcome) -> None:
        barrier = self.barrier
        broken = barrier.broken
        counted = barrier._gen.count
        parties = {"first waiter": self.first, "second waiter": self.other, "last": self.last}
        ends = {who: self._settle(bg, who) for who, bg in parties.items() if bg is not None}
        for who, end in ends.items():
            if not isinstance(end, (int, threadkit.BrokenBarrierError)):
                self.problem(HARNESS, f"{who} ended with {end!r}")
        tripped = bool(ends) and all(isinstance(e, int) for e in ends.values())
        if out.returned and not (tripped and not broken):
            self.problem(RESULT, f"wait() returned {out.value!r}; broken: {broken}; {ends}")
        if out.raised is not None and not ends and not broken and counted:
            # Alone at the barrier: the interrupted arrival must not stay counted.
            self.problem(BARRIER, f"interrupted, not broken, and {counted} arrival counted")
        if tripped and broken:
            self.problem(BARRIER, f"every party passed, yet the barrier is broken: {ends}")


@scenario
class BarrierLast(BarrierWait):
    name = "Barrier(2).wait() arriving last"
    main_last = True


@scenario
class BarrierParked(BarrierWait):
    name = "Barrier(2).wait() parked, then tripped"


@scenario
class BarrierParkedTwo(BarrierWait):
    name = "Barrier(3).wait() parked, second waiter, then tripped"
    parties = 3
    two_waiters = True


class ThreadWait(Scenario):
    """Thread.join() / result() on a thread that has ended, or ends once we park."""

    method: ClassVar[str] = "join"
    done: ClassVar[bool] = False

    def prepare(self) -> None:
        self.go = threading.Event()
        self.t = threadkit.Thread(target=lambda: self.go.wait(10) and 42)
        self.t.start()
        # A starting thread wakes whoever waits on it (native_id readers): let that
        # happen before the main thread joins, or its count of lines would vary.
        assert self.t.native_id is not None
        if self.done:
            self.go.set()
            self.t.join()

    def call(self) -> Any:
        return getattr(self.t, self.method)()

    def queues(self) -> dict[str, WaitQueue]:
        return {"thread._done": self.t._tk_done}

    def helper(self) -> None:
        if not self.done and self.wait_blocked(self.t):
            if self.two_waiters:
                self.start_other(lambda: self.t.join(W_TIMEOUT), self.t)
            self.go.set()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        self.go.set()
        self.t.join(10)
        if self.t.is_alive():
            self.problem(HARNESS, "thread did not end")
        # 3.11, 3.12: join() waits for the OS thread by taking and giving back the
        # lock the interpreter releases when the thread is gone; left taken, every
        # later wait for the thread (the exit's) would hang.
        handle = self.t._tk_os_handle
        if handle is not None and hasattr(handle, "locked"):
            try:
                wait_until(lambda: not handle.locked(), 5)
            except AssertionError:
                self.problem(LOCK, "the lock that says the OS thread has exited left taken")
        want = 42 if self.method == "result" else None
        if out.returned and out.value != want:
            self.problem(RESULT, f"{self.method}() returned {out.value!r}")
        self.finish_other(self.did_act, "end of the thread lost", lambda: None)


@scenario
class LockClosingACycle(Scenario):
    """``with theirs:`` that closes a two-lock cycle: DeadlockError (or the Ctrl-C),
    with nothing left queued or held, and the other thread goes on."""

    name = "Lock.__enter__() closing a cycle (DeadlockError)"

    def prepare(self) -> None:
        self.mine, self.theirs = threadkit.Lock(), threadkit.Lock()
        self.mine.__enter__()
        holding = threading.Event()

        def other() -> str:
            with self.theirs:
                holding.set()
                with self.mine:
                    return "went on"

        self.other = background = _Background(other)
        assert holding.wait(10)
        wait_until(lambda: _blocked(background.rec, self.mine), 10)

    def call(self) -> Any:
        try:
            self.theirs.__enter__()
        except threadkit.DeadlockError:
            return "deadlock"
        self.theirs.__exit__(None, None, None)
        return "acquired"

    def queues(self) -> dict[str, WaitQueue]:
        return {"theirs._queue": self.theirs._queue}

    def check(self, out: _Outcome) -> None:
        if out.returned and out.value != "deadlock":
            self.problem(RESULT, f"the closing acquire gave {out.value!r}")
        if self.theirs._holder() == _MAIN:
            self.problem(LOCK, "the closing acquire left its lock held")
        self.mine.__exit__(None, None, None)
        other = self.other
        assert other is not None
        other.thread.join(W_TIMEOUT)
        if other.thread.is_alive() or other.result != "went on":
            self.problem(WAKEUP, f"the other thread did not go on: {other.exc!r}")
            _force_wake(other.rec)
        self.other = None


@scenario
class JoinDone(ThreadWait):
    name = "Thread.join() ended"
    done = True


@scenario
class JoinParked(ThreadWait):
    name = "Thread.join() parked"


@scenario
class JoinParkedTwo(ThreadWait):
    name = "Thread.join() parked, second waiter"
    two_waiters = True


@scenario
class ResultParked(ThreadWait):
    name = "Thread.result() parked"
    method = "result"


@scenario
class Sleep(Scenario):
    name = "threadkit.sleep(0.0005)"

    def call(self) -> Any:
        return threadkit.sleep(0.0005)


# -- the calls that never block: a Ctrl-C must not lose the wake-up they give ------------
class _Releasing(Scenario):
    """A non-blocking call by the main thread that must wake a thread parked before it.

    ``prepare`` parks a second waiter (``other``, a stdlib thread) on ``resource``;
    ``call`` makes the release; ``check`` requires the second waiter to be woken by
    it whenever the call returned (or its interrupt came after it returned), and
    lets it go otherwise.
    """

    resource: Any

    def park_other(self, fn: Callable[[], Any]) -> None:
        self.other = _Background(fn)
        wait_until(lambda: _blocked(self.other.rec, self.resource))  # type: ignore[union-attr]

    def undo(self) -> None:
        """What the check does to let the second waiter go if the call never acted."""

    def check(self, out: _Outcome) -> None:
        self.finish_other(out.returned, f"{self.name}: wake-up lost", self.undo)


class LockRelease(_Releasing):
    kind: ClassVar[Callable[[], Any]] = threadkit.Lock
    by_exit: ClassVar[bool] = False

    def prepare(self) -> None:
        self.lock = self.resource = self.kind()
        self.lock.acquire()

        def other() -> bool:
            ok = bool(self.lock.acquire(timeout=W_TIMEOUT))
            if ok:
                self.lock.release()
            return ok

        self.park_other(other)

    def call(self) -> Any:
        if self.by_exit:
            return self.lock.__exit__(None, None, None)
        return self.lock.release()

    def queues(self) -> dict[str, WaitQueue]:
        return {"lock._queue": self.lock._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"lock._queue.mutex": self.lock._queue.mutex}

    def undo(self) -> None:
        if self.lock._is_owned() if isinstance(self.lock, threadkit.RLock) else self.lock.locked():
            self.lock.release()
        else:  # released, but its wake-up went nowhere
            self.lock._queue.unpark(1)

    def check(self, out: _Outcome) -> None:
        super().check(out)
        if self.other is not None and self.other.result is not True:
            self.problem(WAKEUP, f"the second waiter's acquire gave {self.other.result!r}")
        if self.lock.acquire(False):
            self.lock.release()
        else:
            self.problem(LOCK, "lock not free at the end")


@scenario
class LockReleaseWoken(LockRelease):
    name = "Lock.release() with a waiter"


@scenario
class LockExitWoken(LockRelease):
    name = "Lock.__exit__() with a waiter"
    by_exit = True


@scenario
class RLockReleaseWoken(LockRelease):
    name = "RLock.release() with a waiter"
    kind = threadkit.RLock


@scenario
class CondNotify(_Releasing):
    name = "Condition.notify() with a waiter"

    def prepare(self) -> None:
        self.cond = self.resource = threadkit.Condition(threadkit.Lock())

        def other() -> bool:
            with self.cond:
                return bool(self.cond.wait(W_TIMEOUT))

        self.park_other(other)
        self.cond.acquire()

    def call(self) -> Any:
        return self.cond.notify()

    def queues(self) -> dict[str, WaitQueue]:
        return {"cond._queue": self.cond._queue}

    def undo(self) -> None:
        self.cond.notify()

    def check(self, out: _Outcome) -> None:
        self.cond.release()  # the second waiter needs the lock to return
        super().check(out)
        if self.other is not None and self.other.result is not True:
            self.problem(WAKEUP, f"the second waiter's wait gave {self.other.result!r}")


@scenario
class EventSetWoken(_Releasing):
    name = "Event.set() with a waiter"

    def prepare(self) -> None:
        self.ev = self.resource = threadkit.Event()
        self.park_other(lambda: self.ev.wait(W_TIMEOUT))

    def call(self) -> Any:
        return self.ev.set()

    def queues(self) -> dict[str, WaitQueue]:
        return {"ev._queue": self.ev._queue}

    def mutexes(self) -> dict[str, Any]:
        return {"ev._mutex": self.ev._mutex}

    def undo(self) -> None:
        self.ev.set()

    def check(self, out: _Outcome) -> None:
        super().check(out)
        if self.other is not None and self.other.result is not True:
            self.problem(WAKEUP, f"the second waiter's wait gave {self.other.result!r}")


class BarrierBreak(_Releasing):
    method: ClassVar[str] = "abort"

    def prepare(self) -> None:
        self.barrier = self.resource = threadkit.Barrier(2)
        self.park_other(lambda: self.barrier.wait(W_TIMEOUT))

    def call(self) -> Any:
        return getattr(self.barrier, self.method)()

    def mutexes(self) -> dict[str, Any]:
        return {"barrier._mutex": self.barrier._mutex}

    def undo(self) -> None:
        self.barrier.abort()

    def check(self, out: _Outcome) -> None:
        super().check(out)
        if self.other is not None and not isinstance(self.other.exc, threadkit.BrokenBarrierError):
            self.problem(WAKEUP, f"the waiter ended with {self.other.exc!r}")
        self.other = None  # its BrokenBarrierError is the expected outcome, not a failure
        broken = self.barrier.broken
        if out.returned and broken != (self.method == "abort"):
            self.problem(BARRIER, f"{self.method}() returned, broken: {broken}")


@scenario
class BarrierAbort(BarrierBreak):
    name = "Barrier.abort() with a waiter"


@scenario
class BarrierReset(BarrierBreak):
    name = "Barrier.reset() with a waiter"
    method = "reset"


# -- starting threads and tasks --------------------------------------------------------------
@scenario
class ThreadStart(Scenario):
    """Thread.start(): after it, the Thread says exactly what its OS thread does."""

    name = "Thread.start()"

    def prepare(self) -> None:
        self.runs = 0
        self.ran = threading.Event()
        self.go = threading.Event()
        self.t = threadkit.Thread(target=self._body, daemon=True)

    def _body(self) -> int:
        self.runs += 1
        self.ran.set()
        self.go.wait(10)
        return 7

    def call(self) -> Any:
        return self.t.start()

    def check(self, out: _Outcome) -> None:
        t = self.t
        if out.returned and not t.is_alive():
            self.problem(RESULT, "start() returned but the thread is not alive")
        if out.raised is not None:
            # Not started: it must be startable, and run, exactly once more.
            if t.is_alive() or self.ran.wait(0.05):
                self.problem(EXCEPTION, "start() raised but the thread runs")
            else:
                t.start()
        self.go.set()
        try:
            if t.result(10) != 7:
                self.problem(RESULT, "the thread's result is wrong")
        except (TimeoutError, RuntimeError) as exc:
            self.problem(RESULT, f"result() raised {exc!r}")
        if self.runs != 1:
            self.problem(RESULT, f"the body ran {self.runs} times")
        try:
            t.start()
        except RuntimeError:
            pass
        else:
            self.problem(RESULT, "a second start() was accepted")


class _InGroup(Scenario):
    """Calls on a TaskGroup whose block the main thread entered in ``prepare``."""

    def prepare(self) -> None:
        self.depth = len(_core.scopes_of(self.rec))
        self.tg = threadkit.TaskGroup()
        self.tg.__enter__()
        self.runs = 0
        self.go = threading.Event()

    def body(self) -> int:
        self.runs += 1
        self.go.wait(10)
        return 5

    def close(self) -> BaseException | None:
        """End the block (if the call did not) and return what it raised."""
        self.go.set()
        if self.tg._state is not _GroupState.CLOSED:
            try:
                self.tg.__exit__(None, None, None)
            except BaseException as exc:
                return exc
        return None

    def check_cache(self) -> None:
        """The worker cache still runs tasks, and the main thread's scopes are back."""
        if len(_core.scopes_of(self.rec)) != self.depth:
            self.problem(RECORD, "the group's cancel scope was left on the main thread")
        wait_until(lambda: _workers._searching == 0)
        with threadkit.TaskGroup() as tg:
            task = tg.spawn(lambda: 11)
        if task.result() != 11:
            self.problem(RESULT, "the worker cache no longer runs tasks")


@scenario
class Spawn(_InGroup):
    name = "TaskGroup.spawn()"

    def call(self) -> Any:
        return self.tg.spawn(self.body)

    def check(self, out: _Outcome) -> None:
        failed = self.close()
        if failed is not None:
            self.problem(EXCEPTION, f"the block's end raised {failed!r}")
        if out.returned and (self.runs != 1 or out.value.result() != 5):
            self.problem(RESULT, f"spawn() returned; the task ran {self.runs} times")
        if out.raised is not None and self.runs > 1:
            self.problem(RESULT, f"spawn() raised; the task ran {self.runs} times")
        self.check_cache()


@scenario
class GroupExit(_InGroup):
    """The end of a TaskGroup block, waiting for a task that ends once it parks."""

    name = "TaskGroup.__exit__() waiting for a task"

    def prepare(self) -> None:
        super().prepare()
        self.task = self.tg.spawn(self.body)
        wait_until(lambda: self.runs == 1)

    def call(self) -> Any:
        return self.tg.__exit__(None, None, None)

    def helper(self) -> None:
        if self.wait_blocked(self.tg):
            self.go.set()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        failed = self.close()
        if failed is not None:
            self.problem(EXCEPTION, f"the block's end raised {failed!r} afterwards")
        if not self.task.done():
            self.problem(RESULT, "the block ended before its task")
        if out.returned and self.task.result() != 5:
            self.problem(RESULT, "the task's result is wrong")
        self.check_cache()


# -- the tests ------------------------------------------------------------------------------
@functools.cache
def _report(name: str) -> Report:
    return explore(_SCENARIOS[name])


@pytest.mark.parametrize("name", list(_SCENARIOS))
def test_interrupt_at_every_line(name: str) -> None:
    """At every threadkit line of the call, a Ctrl-C keeps every invariant."""
    report = _report(name)
    assert report.count > 0
    assert not report.failures, "an interrupt at these lines broke something:\n" + report.text()


if __name__ == "__main__":  # pragma: no cover - the full table, for humans
    _core.current_record()
    for scenario_name in _SCENARIOS:
        print(_report(scenario_name).text())
