"""Conformance suite: the same tests run over stdlib ``threading`` and ``threadkit``.

Every test takes the ``mod`` fixture, which is either the running interpreter's
``threading`` module or ``threadkit``.  The stdlib run proves that each test
pins real stdlib behaviour; the threadkit run proves threadkit matches it.

Conventions
-----------
* Where the stdlib's exception messages or warnings differ between Python
  versions, tests do not hard-code text: they compare threadkit's message with
  the one the stdlib gives *in the same run* (see ``assert_raises_like_stdlib``).
* Test scaffolding (handshake events, etc.) uses stdlib primitives (``std``) so
  that a broken threadkit primitive fails only the test that exercises it.
  Threads under test are always ``mod.Thread``.
* No test synchronises with ``time.sleep``.  Ordering is established with
  Events/handshakes; "thread is parked" is established through public state
  (``Barrier.n_waiting``, a counter updated while holding a Condition's lock)
  polled with the bounded ``wait_until`` helper.
* Every started thread is joined; the autouse ``no_leaked_threads`` fixture
  checks this through ``_thread._count()``.
* Test and class names never contain the words "threading"/"threadkit", so
  ``-k threading`` / ``-k threadkit`` select exactly one implementation.
"""

from __future__ import annotations

import _thread
import functools
import gc
import importlib
import math
import re
import sys
import threading as std
import time
import types
import warnings
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(30)

JOIN_TIMEOUT = 5.0
# Scheduling slack for "took at least <timeout>" assertions.
TIMING_SLACK = 0.8


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["threading", "threadkit"], ids=["threading", "threadkit"])
def mod(request):
    """The implementation under test: stdlib threading or threadkit."""
    if request.param == "threading":
        return std
    return importlib.import_module("threadkit")


def wait_until(pred, timeout=JOIN_TIMEOUT):
    """Poll ``pred`` until it is true or ``timeout`` expires; return its last truth value.

    A bounded poll of a real condition, not a sleep-based synchronisation.
    """
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return bool(pred())
        time.sleep(0.001)


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail any test that leaves a thread running after it finishes."""
    before = _thread._count()
    yield
    assert wait_until(lambda: _thread._count() <= before), (
        f"test leaked {_thread._count() - before} running thread(s)"
    )


class Worker:
    """Runs ``fn(*args, **kwargs)`` in a ``mod.Thread`` and records its outcome."""

    def __init__(self, mod, fn, *args, daemon=True, **kwargs):
        self.value = None
        self.error = None
        self.done = std.Event()

        def body():
            try:
                self.value = fn(*args, **kwargs)
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        self.thread = mod.Thread(target=body, daemon=daemon)

    def result(self, timeout=JOIN_TIMEOUT):
        """Join the thread and return fn's value, re-raising fn's exception."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker thread did not finish in time"
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout=JOIN_TIMEOUT):
        """Join the thread and return the exception fn raised (None if it returned)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker thread did not finish in time"
        return self.error


@pytest.fixture
def spawn(mod):
    """Start helper threads; all of them are joined (and checked) at teardown."""
    workers = []

    def _spawn(fn, *args, **kwargs):
        worker = Worker(mod, fn, *args, **kwargs)
        workers.append(worker)
        worker.thread.start()
        return worker

    yield _spawn
    for worker in workers:
        worker.thread.join(JOIN_TIMEOUT)
    stuck = [w.thread for w in workers if w.thread.is_alive()]
    assert not stuck, f"helper threads still running: {stuck}"


def error_of(fn):
    """Call ``fn()`` and return the exception it raises; fail if it returns."""
    try:
        result = fn()
    except BaseException as exc:
        return exc
    pytest.fail(f"expected an exception, got return value {result!r}")


def assert_raises_like_stdlib(exc_type, std_call, mod_call, *, same_message=True):
    """Both calls must raise ``exc_type``; mod's error must match the stdlib's.

    The stdlib call is checked against ``exc_type`` first, so the expectation in
    the test itself is validated on every run.  Messages are compared against
    what the stdlib says in this very run, never against a literal.
    """
    std_err = error_of(std_call)
    assert isinstance(std_err, exc_type), f"stdlib raised {std_err!r}"
    mod_err = error_of(mod_call)
    assert isinstance(mod_err, exc_type), f"expected {exc_type.__name__}, got {mod_err!r}"
    assert type(mod_err).__name__ == type(std_err).__name__
    if same_message:
        assert str(mod_err) == str(std_err)
    return mod_err


def same_error(mod, exc_type, op, **kw):
    """``op(m)`` must raise ``exc_type`` for the stdlib and the same error for ``mod``."""
    return assert_raises_like_stdlib(exc_type, lambda: op(std), lambda: op(mod), **kw)


def outcome(fn):
    """Normalised outcome of ``fn()``: ("ok", value) or ("raise", type name, message)."""
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raise", type(exc).__name__, str(exc))


def deprecations(fn):
    """Call ``fn()``; return (result, [DeprecationWarning records])."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        result = fn()
    return result, [w for w in rec if issubclass(w.category, DeprecationWarning)]


def assert_deprecated_like_stdlib(mod, op):
    """``op(m)`` emits exactly one DeprecationWarning, blamed on the caller, same text as stdlib."""
    messages = []
    for m in (std, mod):
        _, dep = deprecations(lambda m=m: op(m))
        assert len(dep) == 1, f"{m.__name__}: expected one DeprecationWarning, got {dep}"
        # stacklevel=2: the warning points at the code that called the deprecated API.
        assert dep[0].filename == __file__
        messages.append(str(dep[0].message))
    assert messages[1] == messages[0]


def elapsed(fn):
    """Return (fn(), seconds taken)."""
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def make_condition(mod, lock_kind):
    if lock_kind == "default":
        return mod.Condition()
    return mod.Condition(getattr(mod, lock_kind)())


def holds(cond, pred):
    """Evaluate ``pred()`` while holding ``cond``'s lock (bounded acquire)."""
    if not cond.acquire(timeout=0.05):
        return False
    try:
        return pred()
    finally:
        cond.release()


# ---------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------


class TestLock:
    def test_acquire_release_and_locked(self, mod):
        """acquire() returns True, locked() tracks state, release() unlocks."""
        lock = mod.Lock()
        assert lock.locked() is False
        assert lock.acquire() is True
        assert lock.locked() is True
        assert lock.release() is None
        assert lock.locked() is False

    def test_not_reentrant(self, mod):
        """A Lock held by this thread cannot be acquired again by it."""
        lock = mod.Lock()
        lock.acquire()
        try:
            assert lock.acquire(False) is False
            assert lock.acquire(blocking=False) is False
        finally:
            lock.release()

    def test_nonblocking_acquire_on_held_lock_returns_false(self, mod, spawn):
        """acquire(False) by another thread fails while held, succeeds once released."""
        lock = mod.Lock()
        lock.acquire()
        assert spawn(lock.acquire, False).result() is False
        lock.release()
        assert spawn(lambda: (lock.acquire(False), lock.release())[0]).result() is True

    def test_timed_acquire_on_held_lock_times_out(self, mod):
        """acquire(timeout=0.01) on a held lock returns False after about the timeout."""
        lock = mod.Lock()
        lock.acquire()
        try:
            result, took = elapsed(lambda: lock.acquire(timeout=0.01))
            assert result is False
            assert took >= 0.01 * TIMING_SLACK
            assert lock.acquire(True, 0.01) is False
            assert lock.acquire(timeout=0) is False
        finally:
            lock.release()

    def test_timed_acquire_on_free_lock_succeeds(self, mod):
        """acquire(timeout=...) on a free lock returns True at once."""
        lock = mod.Lock()
        assert lock.acquire(timeout=1) is True
        lock.release()
        assert lock.acquire(True, 0) is True
        lock.release()

    def test_nonblocking_with_default_timeout_is_allowed(self, mod):
        """acquire(blocking=False, timeout=-1) is legal (-1 means 'no timeout')."""
        lock = mod.Lock()
        assert lock.acquire(blocking=False, timeout=-1) is True
        assert lock.acquire(False, -1) is False
        lock.release()

    def test_timeout_with_nonblocking_is_value_error(self, mod):
        """acquire(False, timeout=1) raises ValueError (same message as stdlib)."""
        same_error(mod, ValueError, lambda m: m.Lock().acquire(False, timeout=1))

    @pytest.mark.parametrize("timeout", [-2, -0.5, math.nan], ids=["minus2", "minus_half", "nan"])
    def test_invalid_timeout_is_value_error(self, mod, timeout):
        """Negative timeouts other than -1, and NaN, raise ValueError like stdlib."""
        same_error(mod, ValueError, lambda m: m.Lock().acquire(timeout=timeout))

    @pytest.mark.parametrize("excess", ["plus_one", "inf"])
    def test_timeout_above_max_is_overflow_error(self, mod, excess):
        """A timeout larger than TIMEOUT_MAX raises OverflowError."""
        timeout = mod.TIMEOUT_MAX + 1 if excess == "plus_one" else math.inf
        same_error(
            mod, OverflowError, lambda m: m.Lock().acquire(timeout=timeout), same_message=False
        )

    def test_release_unlocked_is_runtime_error(self, mod):
        """Releasing an unlocked Lock raises RuntimeError (same message as stdlib)."""
        err = same_error(mod, RuntimeError, lambda m: m.Lock().release())
        assert isinstance(err, mod.ThreadError)

    def test_release_by_other_thread(self, mod, spawn):
        """A Lock has no owner: a different thread may release it."""
        lock = mod.Lock()
        lock.acquire()
        spawn(lock.release).result()
        assert lock.locked() is False
        assert lock.acquire(False) is True
        lock.release()

    def test_blocked_acquirer_wakes_on_release(self, mod, spawn):
        """A thread blocked in acquire() gets the lock when the holder releases."""
        lock = mod.Lock()
        lock.acquire()
        about_to_block = std.Event()

        def contender():
            about_to_block.set()
            got = lock.acquire(timeout=JOIN_TIMEOUT)
            if got:
                lock.release()
            return got

        worker = spawn(contender)
        assert about_to_block.wait(JOIN_TIMEOUT)
        lock.release()
        assert worker.result() is True

    def test_context_manager(self, mod):
        """`with lock` holds the lock inside the block; __enter__ returns True."""
        lock = mod.Lock()
        with lock as entered:
            assert entered is True
            assert lock.locked()
        assert not lock.locked()
        assert lock.__enter__() is True
        assert not lock.__exit__(None, None, None)
        assert not lock.locked()

    def test_exception_inside_with_releases_and_propagates(self, mod):
        """An exception raised inside `with lock` releases it and is not swallowed."""
        lock = mod.Lock()
        with pytest.raises(KeyError), lock:
            raise KeyError("boom")
        assert not lock.locked()

    def test_mutual_exclusion(self, mod, spawn):
        """Increments guarded by a Lock from several threads are never lost."""
        lock = mod.Lock()
        counter = [0]
        start = std.Barrier(4)

        def bump():
            start.wait(JOIN_TIMEOUT)
            for _ in range(2000):
                with lock:
                    value = counter[0]
                    counter[0] = value + 1

        workers = [spawn(bump) for _ in range(4)]
        for w in workers:
            w.result()
        assert counter[0] == 8000

    def test_repr_shows_state(self, mod):
        """repr() says 'unlocked' or 'locked' (the layout is each module's own)."""
        lock = mod.Lock()
        assert re.match(r"^<[^>]*\bunlocked\b", repr(lock))
        with lock:
            assert re.match(r"^<[^>]*\blocked\b", repr(lock))


# ---------------------------------------------------------------------------
# RLock
# ---------------------------------------------------------------------------


class TestRLock:
    def test_reentrant_acquire(self, mod):
        """The owner can acquire repeatedly; every acquire returns True."""
        rlock = mod.RLock()
        assert rlock.acquire() is True
        assert rlock.acquire() is True
        assert rlock.acquire(False) is True
        assert rlock.acquire(timeout=0.01) is True
        for _ in range(4):
            rlock.release()
        with pytest.raises(RuntimeError):
            rlock.release()

    def test_held_until_released_as_often_as_acquired(self, mod, spawn):
        """Other threads cannot acquire until the recursion count drops to zero."""
        rlock = mod.RLock()
        rlock.acquire()
        rlock.acquire()

        def try_other():
            return spawn(lambda: rlock.acquire(False) and (rlock.release() or True)).result()

        assert try_other() is False
        rlock.release()
        assert try_other() is False
        rlock.release()
        assert try_other() is True

    def test_timed_acquire_by_non_owner_times_out(self, mod, spawn):
        """acquire(timeout=0.01) by a non-owner returns False after about the timeout."""
        rlock = mod.RLock()
        with rlock:
            result, took = spawn(lambda: elapsed(lambda: rlock.acquire(timeout=0.01))).result()
        assert result is False
        assert took >= 0.01 * TIMING_SLACK

    def test_release_by_non_owner_is_runtime_error(self, mod, spawn):
        """A thread that does not own the RLock cannot release it."""
        rlock = mod.RLock()
        std_rlock = std.RLock()
        with rlock, std_rlock:
            mod_err = spawn(rlock.release).exception()
            std_err = spawn(std_rlock.release).exception()
            # Still owned by this thread: nothing was released.
            assert spawn(rlock.acquire, False).result() is False
        assert isinstance(std_err, RuntimeError)
        assert type(mod_err) is type(std_err)
        assert str(mod_err) == str(std_err)

    def test_release_unheld_is_runtime_error(self, mod):
        """Releasing an RLock nobody holds raises RuntimeError (same message as stdlib)."""
        same_error(mod, RuntimeError, lambda m: m.RLock().release())

    def test_over_release_is_runtime_error(self, mod):
        """One release too many raises RuntimeError and leaves the lock free."""

        def op(m):
            rlock = m.RLock()
            rlock.acquire()
            rlock.acquire()
            rlock.release()
            rlock.release()
            rlock.release()

        same_error(mod, RuntimeError, op)

    def test_timeout_with_nonblocking_is_value_error(self, mod):
        """acquire(False, timeout=1) raises ValueError, as for Lock."""
        same_error(mod, ValueError, lambda m: m.RLock().acquire(False, timeout=1))

    def test_negative_timeout_is_value_error(self, mod):
        """acquire(timeout=-2) raises ValueError."""
        same_error(mod, ValueError, lambda m: m.RLock().acquire(timeout=-2))

    def test_arguments_validated_even_when_reentering(self, mod):
        """The stdlib RLock validates acquire() arguments even for its owner."""

        def op(m):
            rlock = m.RLock()
            with rlock:
                rlock.acquire(timeout=-2)

        same_error(mod, ValueError, op)

    def test_timeout_above_max_is_overflow_error(self, mod):
        """A timeout larger than TIMEOUT_MAX raises OverflowError."""
        same_error(
            mod,
            OverflowError,
            lambda m: m.RLock().acquire(timeout=m.TIMEOUT_MAX + 1),
            same_message=False,
        )

    def test_context_manager_nests(self, mod, spawn):
        """Nested `with rlock` blocks work; the lock is free after the outer one."""
        rlock = mod.RLock()
        with rlock as entered:
            assert entered is True
            with rlock, rlock:
                pass
            assert spawn(rlock.acquire, False).result() is False
        assert spawn(lambda: rlock.acquire(False) and (rlock.release() or True)).result() is True

    def test_exception_inside_with_releases(self, mod):
        """An exception raised inside nested `with` blocks releases every level."""
        rlock = mod.RLock()
        with pytest.raises(KeyError), rlock, rlock:
            raise KeyError("boom")
        with pytest.raises(RuntimeError):
            rlock.release()

    def test_condition_wait_restores_recursion_count(self, mod, spawn):
        """Condition.wait fully releases a recursively held RLock and restores the count."""
        rlock = mod.RLock()
        cond = mod.Condition(rlock)
        state = {"parked": False}

        def waiter():
            for _ in range(3):
                rlock.acquire()
            state["parked"] = True
            notified = cond.wait(JOIN_TIMEOUT)
            releases = 0
            for _ in range(3):
                rlock.release()
                releases += 1
            extra = error_of(rlock.release)
            return notified, releases, type(extra)

        worker = spawn(waiter)

        def notify_if_parked():
            # Acquiring at all proves the waiter released all three levels.
            if state["parked"]:
                cond.notify()
                return True
            return False

        assert wait_until(lambda: holds(cond, notify_if_parked))
        assert worker.result() == (True, 3, RuntimeError)

    def test_repr_shows_state_and_count(self, mod):
        """repr() reports locked/unlocked and the recursion count."""
        rlock = mod.RLock()
        assert "unlocked" in repr(rlock)
        with rlock, rlock:
            assert re.search(r"\blocked\b", repr(rlock))
            assert re.search(r"\bcount[= ]2\b", repr(rlock))

    def test_constructor_arguments_warn_like_stdlib(self, mod):
        """RLock(*args) warns exactly when the running stdlib warns (3.13+: deprecated)."""
        std_out, std_dep = deprecations(lambda: outcome(lambda: type(std.RLock(1)).__name__)[0])
        mod_out, mod_dep = deprecations(lambda: outcome(lambda: type(mod.RLock(1)).__name__)[0])
        assert mod_out == std_out
        assert len(mod_dep) == len(std_dep)
        assert [str(w.message) for w in mod_dep] == [str(w.message) for w in std_dep]


# ---------------------------------------------------------------------------
# Condition
# ---------------------------------------------------------------------------

LOCK_KINDS = ["Lock", "RLock", "default"]


@pytest.mark.parametrize("lock_kind", LOCK_KINDS)
class TestCondition:
    def test_acquire_release_delegate_to_lock(self, mod, lock_kind, spawn):
        """acquire()/release() and `with` operate on the underlying lock."""
        cond = make_condition(mod, lock_kind)
        assert cond.acquire() is True
        assert spawn(cond.acquire, False).result() is False
        cond.release()
        with cond as entered:
            assert entered is True
            assert spawn(cond.acquire, False).result() is False
        assert spawn(lambda: cond.acquire(False) and (cond.release() or True)).result() is True

    def test_default_and_rlock_conditions_are_reentrant(self, mod, lock_kind):
        """A Condition is reentrant exactly when its lock is (default lock: RLock)."""
        cond = make_condition(mod, lock_kind)
        with cond:
            again = cond.acquire(False)
            if again:
                cond.release()
        assert bool(again) is (lock_kind != "Lock")

    def test_wait_without_lock_is_runtime_error(self, mod, lock_kind):
        """wait() on an un-acquired Condition raises RuntimeError."""
        same_error(mod, RuntimeError, lambda m: make_condition(m, lock_kind).wait(0))

    def test_notify_without_lock_is_runtime_error(self, mod, lock_kind):
        """notify()/notify_all() on an un-acquired Condition raise RuntimeError."""
        same_error(mod, RuntimeError, lambda m: make_condition(m, lock_kind).notify())
        same_error(mod, RuntimeError, lambda m: make_condition(m, lock_kind).notify_all())

    def test_wait_timeout_returns_false_and_reacquires(self, mod, lock_kind):
        """wait(timeout) returns False on timeout, with the lock held again."""
        cond = make_condition(mod, lock_kind)
        with cond:
            result, took = elapsed(lambda: cond.wait(0.02))
            assert result is False
            assert took >= 0.02 * TIMING_SLACK
            cond.notify()  # would raise RuntimeError if the lock were not held
        with cond:
            assert cond.wait(0) is False
            assert cond.wait(-1) is False

    def test_wait_releases_lock_and_returns_true_when_notified(self, mod, lock_kind, spawn):
        """wait() gives up the lock while blocked and returns True when notified."""
        cond = make_condition(mod, lock_kind)
        state = {"parked": 0}

        def waiter():
            with cond:
                state["parked"] += 1
                return cond.wait(JOIN_TIMEOUT)

        worker = spawn(waiter)
        assert wait_until(lambda: holds(cond, lambda: state["parked"] == 1))
        with cond:
            cond.notify()
        assert worker.result() is True

    def test_notify_without_waiters_is_noop(self, mod, lock_kind):
        """notify(), notify(n) and notify_all() with nobody waiting do nothing."""
        cond = make_condition(mod, lock_kind)
        with cond:
            assert cond.notify() is None
            assert cond.notify(5) is None
            assert cond.notify(0) is None
            assert cond.notify_all() is None

    def test_notify_n_wakes_exactly_n(self, mod, lock_kind, spawn):
        """notify(2) with five waiters wakes two; notify_all() wakes the rest."""
        cond = make_condition(mod, lock_kind)
        state = {"parked": 0, "woken": 0}

        def waiter():
            with cond:
                state["parked"] += 1
                notified = cond.wait(JOIN_TIMEOUT)
                state["woken"] += 1
                return notified

        workers = [spawn(waiter) for _ in range(5)]
        # Waiters bump "parked" while holding the lock and only release it by
        # waiting, so seeing 5 under the lock means all five are waiting.
        assert wait_until(lambda: holds(cond, lambda: state["parked"] == 5))
        with cond:
            cond.notify(2)
        assert wait_until(lambda: holds(cond, lambda: state["woken"] >= 2))
        # Nobody else may wake up (bounded negative check).
        assert not wait_until(lambda: holds(cond, lambda: state["woken"] > 2), timeout=0.05)
        with cond:
            cond.notify_all()
        assert [w.result() for w in workers] == [True] * 5
        assert state["woken"] == 5

    def test_notify_all_wakes_everyone(self, mod, lock_kind, spawn):
        """notify_all() wakes every waiting thread."""
        cond = make_condition(mod, lock_kind)
        state = {"parked": 0}

        def waiter():
            with cond:
                state["parked"] += 1
                return cond.wait(JOIN_TIMEOUT)

        workers = [spawn(waiter) for _ in range(4)]
        assert wait_until(lambda: holds(cond, lambda: state["parked"] == 4))
        with cond:
            cond.notify_all()
        assert [w.result() for w in workers] == [True] * 4

    def test_notify_all_alias_is_deprecated(self, mod, lock_kind):
        """notifyAll() works but emits the stdlib's DeprecationWarning."""

        def op(m):
            cond = make_condition(m, lock_kind)
            with cond:
                cond.notifyAll()

        assert_deprecated_like_stdlib(mod, op)

    def test_wait_for_true_predicate_returns_its_value(self, mod, lock_kind):
        """wait_for() returns the predicate's own (truthy) value without waiting."""
        cond = make_condition(mod, lock_kind)
        token = ("ready",)
        with cond:
            assert cond.wait_for(lambda: token) is token
            assert cond.wait_for(lambda: token, timeout=0) is token

    def test_wait_for_true_predicate_does_not_need_lock(self, mod, lock_kind):
        """The predicate is tested first: a true predicate never reaches wait()."""
        cond = make_condition(mod, lock_kind)
        assert cond.wait_for(lambda: 7) == 7
        same_error(mod, RuntimeError, lambda m: make_condition(m, lock_kind).wait_for(lambda: 0))

    def test_wait_for_timeout_returns_last_predicate_value(self, mod, lock_kind):
        """On timeout wait_for() returns the last (falsy) predicate result itself."""
        cond = make_condition(mod, lock_kind)
        falsy = []
        calls = [0]

        def pred():
            calls[0] += 1
            return falsy

        with cond:
            result, took = elapsed(lambda: cond.wait_for(pred, timeout=0.02))
            assert result is falsy
            assert took >= 0.02 * TIMING_SLACK
            assert calls[0] >= 2  # checked before waiting and again after
            cond.notify()  # lock held again
            assert cond.wait_for(lambda: 0, timeout=0) == 0

    def test_wait_for_wakes_when_predicate_becomes_true(self, mod, lock_kind, spawn):
        """wait_for() re-checks after each notify and returns once the predicate holds."""
        cond = make_condition(mod, lock_kind)
        state = {"parked": False, "value": None, "checks": 0}

        def pred():
            state["checks"] += 1
            state["parked"] = True
            return state["value"]

        def waiter():
            with cond:
                return cond.wait_for(pred, timeout=JOIN_TIMEOUT)

        worker = spawn(waiter)
        assert wait_until(lambda: holds(cond, lambda: state["parked"]))
        with cond:
            checks = state["checks"]
            cond.notify()  # spurious from the predicate's point of view
        assert wait_until(lambda: holds(cond, lambda: state["checks"] > checks))
        with cond:
            state["value"] = "go"
            cond.notify()
        assert worker.result() == "go"

    def test_exception_inside_with_releases(self, mod, lock_kind, spawn):
        """An exception inside `with cond` releases the lock and propagates."""
        cond = make_condition(mod, lock_kind)
        with pytest.raises(KeyError), cond:
            raise KeyError("boom")
        assert spawn(lambda: cond.acquire(False) and (cond.release() or True)).result() is True

    def test_repr_shape(self, mod, lock_kind):
        """repr() names the Condition and shows its lock's repr."""
        cond = make_condition(mod, lock_kind)
        assert re.match(r"^<[\w.]*Condition\(<.*>", repr(cond))
        assert repr(cond._lock) in repr(cond)


@pytest.mark.parametrize("lock_kind", ["Lock", "RLock"])
@pytest.mark.parametrize("direction", ["cond_of_mod-lock_of_stdlib", "cond_of_stdlib-lock_of_mod"])
class TestConditionOverForeignLock:
    """A Condition of one implementation built on the other's Lock/RLock.

    With ``mod`` = stdlib both directions degenerate to stdlib-over-stdlib, which
    validates the test itself.
    """

    @staticmethod
    def build(mod, direction, lock_kind):
        cond_mod, lock_mod = (mod, std) if direction.startswith("cond_of_mod") else (std, mod)
        lock = getattr(lock_mod, lock_kind)()
        return lock, cond_mod.Condition(lock)

    def test_ownership_checks(self, mod, direction, lock_kind):
        """wait()/notify() without holding the foreign lock raise RuntimeError."""
        _, cond = self.build(mod, direction, lock_kind)
        with pytest.raises(RuntimeError):
            cond.wait(0)
        with pytest.raises(RuntimeError):
            cond.notify()
        with cond:
            assert cond.wait(0) is False
            cond.notify()

    def test_wait_notify_round_trip(self, mod, direction, lock_kind, spawn):
        """wait() fully releases the (possibly recursively held) lock and restores it."""
        lock, cond = self.build(mod, direction, lock_kind)
        depth = 3 if lock_kind == "RLock" else 1
        state = {"parked": False}

        def waiter():
            for _ in range(depth):
                lock.acquire()
            state["parked"] = True
            notified = cond.wait(JOIN_TIMEOUT)
            for _ in range(depth):
                lock.release()
            extra = error_of(lock.release)
            return notified, type(extra)

        worker = spawn(waiter)

        def notify_if_parked():
            if state["parked"]:
                cond.notify()
                return True
            return False

        assert wait_until(lambda: holds(cond, notify_if_parked))
        assert worker.result() == (True, RuntimeError)


# ---------------------------------------------------------------------------
# Semaphore / BoundedSemaphore
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
class TestSemaphore:
    def test_default_initial_value_is_one(self, mod, kind):
        """With no argument the counter starts at 1."""
        sem = getattr(mod, kind)()
        assert sem.acquire(False) is True
        assert sem.acquire(False) is False
        sem.release()

    def test_initial_value(self, mod, kind):
        """Semaphore(3) admits exactly three non-blocking acquires."""
        sem = getattr(mod, kind)(3)
        assert [sem.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]
        sem.release(3)

    def test_zero_is_a_valid_initial_value(self, mod, kind):
        """Semaphore(0) starts exhausted."""
        assert getattr(mod, kind)(0).acquire(False) is False

    def test_negative_initial_value_is_value_error(self, mod, kind):
        """A negative initial value raises ValueError (same message as stdlib)."""
        same_error(mod, ValueError, lambda m: getattr(m, kind)(-1))

    def test_timeout_with_nonblocking_is_value_error(self, mod, kind):
        """acquire(False, timeout) raises "can't specify timeout for non-blocking acquire"."""
        same_error(mod, ValueError, lambda m: getattr(m, kind)(1).acquire(False, 1))
        same_error(
            mod, ValueError, lambda m: getattr(m, kind)(0).acquire(blocking=False, timeout=0)
        )

    def test_timed_acquire_times_out(self, mod, kind):
        """acquire(timeout=0.02) on an exhausted semaphore returns False after the timeout."""
        sem = getattr(mod, kind)(0)
        result, took = elapsed(lambda: sem.acquire(timeout=0.02))
        assert result is False
        assert took >= 0.02 * TIMING_SLACK
        assert sem.acquire(timeout=0) is False
        assert sem.acquire(timeout=-1) is False

    def test_timed_acquire_succeeds_when_available(self, mod, kind):
        """acquire(timeout=...) returns True at once when the counter is positive."""
        sem = getattr(mod, kind)(1)
        assert sem.acquire(timeout=1) is True
        sem.release()

    def test_release_zero_or_negative_is_value_error(self, mod, kind):
        """release(0) and release(-1) raise ValueError (same message as stdlib)."""
        same_error(mod, ValueError, lambda m: getattr(m, kind)(0).release(0))
        same_error(mod, ValueError, lambda m: getattr(m, kind)(0).release(-1))

    def test_release_n_admits_n_acquirers(self, mod, kind, spawn):
        """release(n) lets n blocked acquirers through and no more."""
        sem = getattr(mod, kind)(3)
        for _ in range(3):
            sem.acquire()
        workers = [spawn(sem.acquire, timeout=JOIN_TIMEOUT) for _ in range(3)]
        sem.release(2)
        assert wait_until(lambda: sum(w.done.is_set() for w in workers) == 2)
        sem.release(1)
        assert [w.result() for w in workers] == [True, True, True]
        assert sem.acquire(False) is False
        sem.release(3)

    def test_blocked_acquirer_wakes_on_release(self, mod, kind, spawn):
        """A thread blocked in acquire() proceeds when another thread releases."""
        sem = getattr(mod, kind)(1)
        sem.acquire()
        worker = spawn(sem.acquire)
        spawn(sem.release).result()
        assert worker.result() is True

    def test_context_manager(self, mod, kind, spawn):
        """`with sem` acquires (returning True) and releases, also on exceptions."""
        sem = getattr(mod, kind)(1)
        with sem as entered:
            assert entered is True
            assert sem.acquire(False) is False
        with pytest.raises(KeyError), sem:
            raise KeyError("boom")
        assert sem.acquire(False) is True
        sem.release()

    def test_repr_shape(self, mod, kind):
        """repr() reports the counter (and bound for BoundedSemaphore) like stdlib."""
        for value in (0, 2):
            mod_sem, std_sem = getattr(mod, kind)(value), getattr(std, kind)(value)
            for sem in (mod_sem, std_sem):
                assert re.match(rf"^<[\w.]+\.{kind}\b.*\bvalue={value}\b", repr(sem))
                if kind == "BoundedSemaphore":
                    assert f"value={value}/{value}" in repr(sem)


class TestSemaphoreBounds:
    def test_plain_semaphore_may_exceed_initial_value(self, mod):
        """An ordinary Semaphore has no upper bound."""
        sem = mod.Semaphore(1)
        sem.release(2)
        assert [sem.acquire(False) for _ in range(4)] == [True, True, True, False]

    def test_bounded_over_release_is_value_error(self, mod):
        """Releasing a BoundedSemaphore above its initial value raises ValueError."""
        same_error(mod, ValueError, lambda m: m.BoundedSemaphore(2).release())

    def test_bounded_failed_release_changes_nothing(self, mod):
        """A rejected release(n) leaves the counter untouched."""

        def op(m):
            sem = m.BoundedSemaphore(2)
            sem.acquire()
            sem.release(2)

        same_error(mod, ValueError, op)
        sem = mod.BoundedSemaphore(2)
        sem.acquire()
        sem.acquire()
        with pytest.raises(ValueError):
            sem.release(3)
        assert sem.acquire(False) is False
        sem.release(2)
        with pytest.raises(ValueError):
            sem.release()
        assert [sem.acquire(False) for _ in range(3)] == [True, True, False]

    def test_bounded_is_a_semaphore(self, mod):
        """BoundedSemaphore subclasses Semaphore."""
        assert issubclass(mod.BoundedSemaphore, mod.Semaphore)
        assert isinstance(mod.BoundedSemaphore(), mod.Semaphore)


# ---------------------------------------------------------------------------
# Event
# ---------------------------------------------------------------------------


class TestEvent:
    def test_initially_clear(self, mod):
        """A new Event is not set."""
        assert mod.Event().is_set() is False

    def test_set_and_clear(self, mod):
        """set() makes is_set() True, clear() makes it False again; both idempotent."""
        event = mod.Event()
        assert event.set() is None
        event.set()
        assert event.is_set() is True
        assert event.clear() is None
        event.clear()
        assert event.is_set() is False

    def test_wait_on_set_event_returns_true_immediately(self, mod):
        """wait() and wait(0) return True at once when the flag is set."""
        event = mod.Event()
        event.set()
        assert event.wait() is True
        assert event.wait(0) is True
        assert event.wait(timeout=JOIN_TIMEOUT) is True

    def test_wait_timeout_returns_false(self, mod):
        """wait(timeout) on a clear event returns False after about the timeout."""
        event = mod.Event()
        result, took = elapsed(lambda: event.wait(0.02))
        assert result is False
        assert took >= 0.02 * TIMING_SLACK
        assert event.wait(0) is False
        assert event.wait(-1) is False

    def test_wait_after_clear_blocks_again(self, mod):
        """After clear(), wait(timeout) times out again."""
        event = mod.Event()
        event.set()
        event.clear()
        assert event.wait(0.01) is False

    def test_set_wakes_all_waiters(self, mod, spawn):
        """set() from another thread releases every waiter with True."""
        event = mod.Event()
        workers = [spawn(event.wait, JOIN_TIMEOUT) for _ in range(4)]
        spawn(event.set).result()
        assert [w.result() for w in workers] == [True] * 4

    def test_untimed_wait_wakes_on_set(self, mod, spawn):
        """wait() with no timeout returns True once the event is set."""
        event = mod.Event()
        worker = spawn(event.wait)
        event.set()
        assert worker.result() is True

    def test_is_set_alias_is_deprecated(self, mod):
        """isSet() returns the flag but emits the stdlib's DeprecationWarning."""
        assert_deprecated_like_stdlib(mod, lambda m: m.Event().isSet())
        event = mod.Event()
        event.set()
        result, _ = deprecations(event.isSet)
        assert result is True

    def test_repr_shape(self, mod):
        """repr() reports 'set'/'unset' like stdlib."""
        event = mod.Event()
        assert re.match(r"^<[\w.]+\.Event\b.*\bunset\b", repr(event))
        event.set()
        assert re.match(r"^<[\w.]+\.Event\b.*\bset\b", repr(event))
        assert "unset" not in repr(event)


# ---------------------------------------------------------------------------
# Barrier
# ---------------------------------------------------------------------------


class TestBarrier:
    def test_properties(self, mod):
        """parties, n_waiting and broken of a fresh barrier."""
        barrier = mod.Barrier(3)
        assert barrier.parties == 3
        assert barrier.n_waiting == 0
        assert barrier.broken is False

    def test_broken_barrier_error_is_runtime_error(self, mod):
        """BrokenBarrierError subclasses RuntimeError."""
        assert issubclass(mod.BrokenBarrierError, RuntimeError)

    @pytest.mark.parametrize("parties", [0, -1])
    def test_non_positive_parties_raise(self, mod, parties):
        """Barrier(parties<=0) raises ValueError, as 3.13 (the reference) does.

        Older stdlibs accept it and build a barrier that can never trip; threadkit
        follows 3.13 on every version.
        """
        if mod is std and sys.version_info < (3, 13):
            pytest.skip("the stdlib checks parties only from 3.13 on")
        message = "parties must be >= 1" if sys.version_info >= (3, 14) else "parties must be > 0"
        with pytest.raises(ValueError, match=message):
            mod.Barrier(parties)

    def test_single_party_passes_immediately(self, mod):
        """Barrier(1).wait() returns index 0 and runs the action in the caller."""
        ran = []
        barrier = mod.Barrier(1, action=lambda: ran.append(mod.get_ident()))
        assert barrier.wait() == 0
        assert barrier.wait() == 0
        assert ran == [mod.get_ident()] * 2

    def test_wait_returns_distinct_indices(self, mod, spawn):
        """Each of the parties gets a distinct index in range(parties)."""
        barrier = mod.Barrier(4)
        workers = [spawn(barrier.wait, JOIN_TIMEOUT) for _ in range(4)]
        assert sorted(w.result() for w in workers) == [0, 1, 2, 3]
        assert barrier.broken is False
        assert barrier.n_waiting == 0

    def test_n_waiting_counts_blocked_threads(self, mod, spawn):
        """n_waiting reflects how many threads are blocked in wait()."""
        barrier = mod.Barrier(3)
        first = spawn(barrier.wait, JOIN_TIMEOUT)
        assert wait_until(lambda: barrier.n_waiting == 1)
        second = spawn(barrier.wait, JOIN_TIMEOUT)
        assert wait_until(lambda: barrier.n_waiting == 2)
        third = spawn(barrier.wait, JOIN_TIMEOUT)
        assert sorted([first.result(), second.result(), third.result()]) == [0, 1, 2]
        assert barrier.n_waiting == 0

    def test_reuse_over_several_cycles_with_action(self, mod, spawn):
        """The barrier is cyclic; the action runs once per cycle in a participant."""
        cycles, parties = 4, 3
        action_threads = []
        barrier = mod.Barrier(parties, action=lambda: action_threads.append(mod.get_ident()))

        def participant():
            return mod.get_ident(), [barrier.wait(JOIN_TIMEOUT) for _ in range(cycles)]

        results = [w.result() for w in [spawn(participant) for _ in range(parties)]]
        idents = {ident for ident, _ in results}
        for cycle in range(cycles):
            assert sorted(indices[cycle] for _, indices in results) == list(range(parties))
        assert len(action_threads) == cycles
        assert set(action_threads) <= idents
        assert barrier.broken is False

    def test_default_timeout_breaks_barrier(self, mod, spawn):
        """With too few parties the constructor timeout breaks the barrier for everyone."""
        barrier = mod.Barrier(3, timeout=0.05)
        workers = [spawn(barrier.wait) for _ in range(2)]
        errors = [w.exception() for w in workers]
        assert all(isinstance(e, mod.BrokenBarrierError) for e in errors), errors
        assert barrier.broken is True
        assert barrier.n_waiting == 0
        with pytest.raises(mod.BrokenBarrierError):
            barrier.wait(1)

    def test_wait_timeout_argument_overrides_default(self, mod):
        """wait(timeout) takes precedence over the constructor's timeout."""
        barrier = mod.Barrier(2, timeout=JOIN_TIMEOUT)
        err, took = elapsed(lambda: error_of(lambda: barrier.wait(0.02)))
        assert isinstance(err, mod.BrokenBarrierError)
        assert took < JOIN_TIMEOUT / 2
        assert barrier.broken is True

    def test_abort_breaks_waiters_and_future_waits(self, mod, spawn):
        """abort() raises BrokenBarrierError in current and future waiters."""
        barrier = mod.Barrier(3)
        workers = [spawn(barrier.wait, JOIN_TIMEOUT) for _ in range(2)]
        assert wait_until(lambda: barrier.n_waiting == 2)
        barrier.abort()
        assert all(isinstance(w.exception(), mod.BrokenBarrierError) for w in workers)
        assert barrier.broken is True
        assert barrier.n_waiting == 0
        with pytest.raises(mod.BrokenBarrierError):
            barrier.wait(1)

    def test_reset_breaks_current_waiters_then_barrier_is_usable(self, mod, spawn):
        """reset() sends BrokenBarrierError to waiters and leaves the barrier usable."""
        barrier = mod.Barrier(3)
        waiting = [spawn(barrier.wait, JOIN_TIMEOUT) for _ in range(2)]
        assert wait_until(lambda: barrier.n_waiting == 2)
        barrier.reset()
        assert all(isinstance(w.exception(), mod.BrokenBarrierError) for w in waiting)
        assert barrier.broken is False
        again = [spawn(barrier.wait, JOIN_TIMEOUT) for _ in range(3)]
        assert sorted(w.result() for w in again) == [0, 1, 2]

    def test_reset_repairs_broken_barrier(self, mod, spawn):
        """reset() on an aborted barrier clears the broken state."""
        barrier = mod.Barrier(2)
        barrier.abort()
        assert barrier.broken is True
        barrier.reset()
        assert barrier.broken is False
        workers = [spawn(barrier.wait, JOIN_TIMEOUT) for _ in range(2)]
        assert sorted(w.result() for w in workers) == [0, 1]

    def test_failing_action_breaks_barrier(self, mod, spawn):
        """A raising action: its thread gets the error, the others BrokenBarrierError."""
        ran_in = []

        def action():
            ran_in.append(mod.get_ident())
            raise ZeroDivisionError("action failed")

        barrier = mod.Barrier(3, action=action)

        def participant():
            try:
                barrier.wait(JOIN_TIMEOUT)
            except BaseException as exc:
                return mod.get_ident(), type(exc)
            return mod.get_ident(), None

        results = [w.result() for w in [spawn(participant) for _ in range(3)]]
        assert len(ran_in) == 1
        assert sorted(kind.__name__ for _, kind in results) == [
            "BrokenBarrierError",
            "BrokenBarrierError",
            "ZeroDivisionError",
        ]
        assert dict(results)[ran_in[0]] is ZeroDivisionError
        assert barrier.broken is True

    def test_repr_shape(self, mod, spawn):
        """repr() reports waiters/parties, or 'broken', like stdlib."""
        barrier = mod.Barrier(2)
        assert re.match(r"^<[\w.]+\.Barrier\b.*\bwaiters=0/2>$", repr(barrier))
        worker = spawn(barrier.wait, JOIN_TIMEOUT)
        assert wait_until(lambda: barrier.n_waiting == 1)
        assert repr(barrier).endswith("waiters=1/2>")
        barrier.abort()
        assert isinstance(worker.exception(), mod.BrokenBarrierError)
        assert re.match(r"^<[\w.]+\.Barrier\b.*\bbroken>$", repr(barrier))


# ---------------------------------------------------------------------------
# Thread
# ---------------------------------------------------------------------------


def thread_number(name, suffix=""):
    match = re.fullmatch(r"Thread-(\d+)" + re.escape(suffix), name)
    assert match, f"unexpected default name {name!r}"
    return int(match.group(1))


def run_to_completion(thread):
    thread.start()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()


class TestThread:
    def test_target_args_kwargs(self, mod):
        """The target is called in the new thread with args and kwargs."""
        seen = []

        def target(*args, **kwargs):
            seen.append((args, kwargs, mod.current_thread()))

        thread = mod.Thread(target=target, args=(1, 2), kwargs={"k": 3})
        run_to_completion(thread)
        assert seen == [((1, 2), {"k": 3}, thread)]

    def test_args_may_be_a_list_and_kwargs_none(self, mod):
        """args accepts any sequence; kwargs=None means no keyword arguments."""
        seen = []
        thread = mod.Thread(target=lambda *a, **k: seen.append((a, k)), args=[4, 5], kwargs=None)
        run_to_completion(thread)
        assert seen == [((4, 5), {})]

    def test_no_target_runs_nothing(self, mod):
        """A Thread without target starts and finishes cleanly."""
        run_to_completion(mod.Thread())

    def test_default_names(self, mod):
        """Default names are 'Thread-N (target)' / 'Thread-N' with N increasing."""

        def my_target():
            pass

        first = mod.Thread(target=my_target)
        second = mod.Thread()
        third = mod.Thread(target=functools.partial(my_target))  # no __name__
        n1 = thread_number(first.name, " (my_target)")
        n2 = thread_number(second.name)
        n3 = thread_number(third.name)
        assert n1 < n2 < n3
        assert thread_number(mod.Thread(target=lambda: None).name, " (<lambda>)") > n3

    def test_explicit_names(self, mod):
        """name is converted with str(); an empty name falls back to the default."""
        assert mod.Thread(name="worker").name == "worker"
        assert mod.Thread(name=5).name == "5"
        thread_number(mod.Thread(name="").name)
        thread = mod.Thread(name="a")
        thread.name = 42
        assert thread.name == "42"

    def test_name_visible_inside_thread(self, mod):
        """current_thread().name inside run() is the Thread's name."""
        seen = []
        thread = mod.Thread(target=lambda: seen.append(mod.current_thread().name), name="inside")
        run_to_completion(thread)
        assert seen == ["inside"]

    def test_group_must_be_none_like_stdlib(self, mod):
        """A non-None group is rejected the same way as by stdlib."""
        std_out = outcome(lambda: std.Thread(group=object()).name)
        mod_out = outcome(lambda: mod.Thread(group=object()).name)
        assert mod_out[0] == std_out[0]
        if std_out[0] == "raise":
            assert mod_out == std_out

    def test_daemon_default_from_main_thread(self, mod):
        """Threads created by the (non-daemon) main thread default to daemon=False."""
        assert mod.Thread().daemon is False
        assert mod.Thread(daemon=True).daemon is True

    @pytest.mark.parametrize("parent_daemon", [True, False])
    def test_daemon_inherited_from_creating_thread(self, mod, parent_daemon):
        """A new Thread inherits daemon from the thread creating it; explicit values win."""
        seen = []

        def create_children():
            seen.append(
                (
                    mod.current_thread().daemon,
                    mod.Thread().daemon,
                    mod.Thread(daemon=False).daemon,
                    mod.Thread(daemon=True).daemon,
                )
            )

        run_to_completion(mod.Thread(target=create_children, daemon=parent_daemon))
        assert seen == [(parent_daemon, parent_daemon, False, True)]

    def test_daemon_setter_before_start(self, mod):
        """daemon can be changed before start()."""
        thread = mod.Thread()
        thread.daemon = True
        assert thread.daemon is True
        thread.daemon = False
        assert thread.daemon is False

    def test_set_daemon_after_start_is_runtime_error(self, mod):
        """Changing daemon on a started thread raises RuntimeError."""

        def op(m):
            thread = m.Thread()
            run_to_completion(thread)
            thread.daemon = True

        same_error(mod, RuntimeError, op)

    def test_start_twice_is_runtime_error(self, mod):
        """start() may be called only once."""

        def op(m):
            thread = m.Thread()
            run_to_completion(thread)
            thread.start()

        same_error(mod, RuntimeError, op)

    def test_join_before_start_is_runtime_error(self, mod):
        """join() on a thread that was never started raises RuntimeError."""
        same_error(mod, RuntimeError, lambda m: m.Thread().join())
        same_error(mod, RuntimeError, lambda m: m.Thread().join(0))

    def test_join_current_thread_is_runtime_error(self, mod, spawn):
        """A thread cannot join itself (main thread or worker)."""
        same_error(mod, RuntimeError, lambda m: m.current_thread().join())
        std_err = error_of(lambda: std.current_thread().join())
        mod_err = spawn(lambda: mod.current_thread().join()).exception()
        assert isinstance(mod_err, RuntimeError)
        assert str(mod_err) == str(std_err)

    def test_join_timeout_returns_none_while_alive(self, mod):
        """join(timeout) returns None; is_alive() tells whether it timed out."""
        release = std.Event()
        thread = mod.Thread(target=release.wait, args=(JOIN_TIMEOUT,))
        thread.start()
        try:
            assert thread.join(0.01) is None
            assert thread.is_alive() is True
            result, took = elapsed(lambda: thread.join(-1))  # negative acts like 0
            assert result is None
            assert took < JOIN_TIMEOUT / 2
            assert thread.is_alive() is True
        finally:
            release.set()
            assert thread.join(JOIN_TIMEOUT) is None
        assert thread.is_alive() is False
        assert thread.join() is None  # joining again is fine

    def test_is_alive_lifecycle(self, mod):
        """is_alive(): False before start, True while running (also in run), False after."""
        release = std.Event()
        inside = []
        thread = mod.Thread(
            target=lambda: (inside.append(mod.current_thread().is_alive()), release.wait(5))
        )
        assert thread.is_alive() is False
        thread.start()
        try:
            assert thread.is_alive() is True
        finally:
            release.set()
            thread.join(JOIN_TIMEOUT)
        assert thread.is_alive() is False
        assert inside == [True]

    def test_ident_and_native_id(self, mod):
        """ident/native_id are None before start, set when start() returns, kept after exit."""
        release = std.Event()
        seen = []
        thread = mod.Thread(
            target=lambda: (seen.append((mod.get_ident(), mod.get_native_id())), release.wait(5))
        )
        assert thread.ident is None
        assert thread.native_id is None
        thread.start()
        try:
            # start() waits until the thread has started, so both are already set.
            assert isinstance(thread.ident, int)
            assert isinstance(thread.native_id, int)
        finally:
            release.set()
            thread.join(JOIN_TIMEOUT)
        assert seen == [(thread.ident, thread.native_id)]
        assert thread.ident != mod.get_ident()

    def test_subclass_overriding_run(self, mod):
        """run() overridden in a subclass is what start() executes."""
        seen = []

        class Custom(mod.Thread):
            def __init__(self, value):
                super().__init__(name="custom")
                self.value = value

            def run(self):
                seen.append((self.value, mod.current_thread() is self))

        thread = Custom(11)
        run_to_completion(thread)
        assert seen == [(11, True)]

    def test_run_called_directly_runs_in_caller(self, mod):
        """Calling run() directly invokes the target synchronously in this thread."""
        seen = []
        mod.Thread(target=lambda x: seen.append((x, mod.get_ident())), args=(1,)).run()
        assert seen == [(1, mod.get_ident())]

    def test_init_not_called_is_runtime_error(self, mod):
        """A Thread subclass whose __init__ skipped Thread.__init__ cannot start/join."""

        def no_init(m):
            class NoInit(m.Thread):
                def __init__(self):
                    pass

            return NoInit()

        same_error(mod, RuntimeError, lambda m: no_init(m).start())
        same_error(mod, RuntimeError, lambda m: no_init(m).join())
        same_error(mod, RuntimeError, lambda m: setattr(no_init(m), "daemon", True))

    def test_repr_lifecycle(self, mod):
        """repr() is '<Class(name, status[ daemon][ ident])>' at each stage."""
        release = std.Event()
        thread = mod.Thread(target=release.wait, args=(JOIN_TIMEOUT,), name="worker")
        assert repr(thread) == "<Thread(worker, initial)>"
        thread.daemon = True
        assert repr(thread) == "<Thread(worker, initial daemon)>"
        thread.start()
        try:
            assert repr(thread) == f"<Thread(worker, started daemon {thread.ident})>"
        finally:
            release.set()
            thread.join(JOIN_TIMEOUT)
        assert repr(thread) == f"<Thread(worker, stopped daemon {thread.ident})>"

        class Named(mod.Thread):
            pass

        plain = Named(name="n")
        run_to_completion(plain)
        assert repr(plain) == f"<Named(n, stopped {plain.ident})>"

    def test_exception_in_run_ends_thread(self, mod, hook_calls):
        """An uncaught exception in run() ends the thread without affecting the caller."""
        thread = mod.Thread(target=lambda: 1 / 0)
        run_to_completion(thread)
        assert len(hook_calls) == 1

    @pytest.mark.parametrize(
        ("alias", "call"),
        [
            ("isDaemon", lambda t: t.isDaemon()),
            ("setDaemon", lambda t: t.setDaemon(True)),
            ("getName", lambda t: t.getName()),
            ("setName", lambda t: t.setName("renamed")),
        ],
    )
    def test_camel_case_aliases_are_deprecated(self, mod, alias, call):
        """isDaemon/setDaemon/getName/setName emit the stdlib's DeprecationWarning."""
        assert_deprecated_like_stdlib(mod, lambda m: call(m.Thread(name="t")))

    def test_camel_case_aliases_still_work(self, mod):
        """The deprecated aliases behave like the properties."""
        thread = mod.Thread(name="old")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert thread.getName() == "old"
            thread.setName("new")
            assert thread.name == "new"
            assert thread.isDaemon() is False
            thread.setDaemon(True)
            assert thread.daemon is True
            assert thread.isDaemon() is True


# ---------------------------------------------------------------------------
# Timer
# ---------------------------------------------------------------------------


class TestTimer:
    def test_runs_after_interval_with_arguments(self, mod):
        """The function runs once, after at least `interval`, with args/kwargs."""
        seen = []
        fired = std.Event()

        def function(*args, **kwargs):
            seen.append((args, kwargs))
            fired.set()

        start = time.monotonic()
        timer = mod.Timer(0.05, function, args=[1], kwargs={"k": 2})
        timer.start()
        try:
            assert fired.wait(JOIN_TIMEOUT)
            took = time.monotonic() - start
        finally:
            timer.join(JOIN_TIMEOUT)
        assert seen == [((1,), {"k": 2})]
        assert took >= 0.05 * TIMING_SLACK
        assert timer.finished.is_set()

    def test_cancel_prevents_run(self, mod):
        """cancel() while waiting stops the timer promptly; the function never runs."""
        seen = []
        timer = mod.Timer(JOIN_TIMEOUT * 2, seen.append, args=["ran"])
        timer.start()
        try:
            timer.cancel()
        finally:
            timer.join(JOIN_TIMEOUT)
        assert not timer.is_alive()
        assert timer.finished.is_set()
        assert seen == []

    def test_cancel_before_start(self, mod):
        """A timer cancelled before start() exits without calling the function."""
        seen = []
        timer = mod.Timer(0, seen.append, args=["ran"])
        timer.cancel()
        run_to_completion(timer)
        assert seen == []

    def test_attributes_and_defaults(self, mod):
        """interval/function/args/kwargs/finished attributes; args/kwargs default to []/{}."""
        timer = mod.Timer(1.5, print)
        assert timer.interval == 1.5
        assert timer.function is print
        assert timer.args == []
        assert timer.kwargs == {}
        assert isinstance(timer.finished, mod.Event)
        assert not timer.finished.is_set()

    def test_timer_is_a_thread(self, mod):
        """Timer subclasses Thread and gets a plain 'Thread-N' default name."""
        assert issubclass(mod.Timer, mod.Thread)
        thread_number(mod.Timer(1, print).name)


# ---------------------------------------------------------------------------
# local
# ---------------------------------------------------------------------------


class TestLocal:
    def test_attributes_are_per_thread(self, mod, spawn):
        """Attributes set in one thread are invisible in another."""
        data = mod.local()
        data.x = "main"

        def other():
            before = hasattr(data, "x")
            data.x = "other"
            return before, data.x, sorted(vars(data))

        assert spawn(other).result() == (False, "other", ["x"])
        assert data.x == "main"

    def test_subclass_init_runs_per_thread(self, mod, spawn):
        """A local subclass's __init__ runs again, with the same args, in each thread."""
        inits = []

        class Ctx(mod.local):
            def __init__(self, value):
                inits.append(mod.get_ident())
                self.value = value

        data = Ctx(7)

        def other():
            seen = data.value
            data.value = 8
            return seen

        assert spawn(other).result() == 7
        assert data.value == 7
        assert len(inits) == 2
        assert len(set(inits)) == 2

    def test_init_arguments_without_init_is_type_error(self, mod):
        """local(*args) without an overridden __init__ raises TypeError."""
        same_error(mod, TypeError, lambda m: m.local(1))
        same_error(mod, TypeError, lambda m: m.local(x=1))

    def test_per_thread_values_are_released_when_thread_ends(self, mod):
        """Objects stored in a thread's local storage are freed after that thread exits."""

        class Payload:
            pass

        data = mod.local()
        refs = []

        def store():
            payload = Payload()
            data.payload = payload
            refs.append(weakref.ref(payload))

        run_to_completion(mod.Thread(target=store))
        assert wait_until(lambda: (gc.collect(), refs[0]() is None)[1])


# ---------------------------------------------------------------------------
# Module-level functions and constants
# ---------------------------------------------------------------------------


class TestModuleFunctions:
    def test_main_thread(self, mod):
        """main_thread() is the current thread here, named MainThread, non-daemon, alive."""
        main = mod.main_thread()
        assert mod.current_thread() is main
        assert main.name == "MainThread"
        assert main.daemon is False
        assert main.is_alive() is True
        assert main.ident == mod.get_ident()
        assert main.native_id == mod.get_native_id()
        assert re.match(rf"^<\w+\(MainThread, started {main.ident}\)>$", repr(main))

    def test_current_thread_in_worker(self, mod):
        """Inside a Thread, current_thread() is that Thread and main_thread() is unchanged."""
        seen = []
        thread = mod.Thread(target=lambda: seen.append((mod.current_thread(), mod.main_thread())))
        run_to_completion(thread)
        assert seen == [(thread, mod.main_thread())]

    def test_current_thread_in_foreign_thread_is_dummy(self, mod):
        """A thread not started by this module gets a daemon, alive 'Dummy-N' Thread."""
        seen = {}
        done = std.Event()
        before = _thread._count()

        def body():
            try:
                current = mod.current_thread()
                seen.update(
                    name=current.name,
                    daemon=current.daemon,
                    alive=current.is_alive(),
                    ident_ok=current.ident == mod.get_ident(),
                    stable=mod.current_thread() is current,
                    listed=current in mod.enumerate(),
                    is_thread=isinstance(current, mod.Thread),
                )
            except BaseException as exc:
                seen["error"] = exc
            finally:
                done.set()

        _thread.start_new_thread(body, ())
        assert done.wait(JOIN_TIMEOUT)
        assert wait_until(lambda: _thread._count() <= before)  # i.e. join it
        assert "error" not in seen, seen
        assert re.fullmatch(r"Dummy-\d+", seen.pop("name"))
        assert seen == dict(
            daemon=True, alive=True, ident_ok=True, stable=True, listed=True, is_thread=True
        )

    def test_enumerate_and_active_count(self, mod):
        """enumerate() lists the main thread and running threads only; active_count matches."""
        release = std.Event()
        thread = mod.Thread(target=release.wait, args=(JOIN_TIMEOUT,))
        assert thread not in mod.enumerate()
        thread.start()
        try:
            listed = mod.enumerate()
            assert isinstance(listed, list)
            assert thread in listed
            assert mod.main_thread() in listed
            assert mod.active_count() == len(listed)
        finally:
            release.set()
            thread.join(JOIN_TIMEOUT)
        assert thread not in mod.enumerate()
        assert mod.active_count() == len(mod.enumerate())

    def test_get_ident_and_native_id_differ_between_threads(self, mod, spawn):
        """get_ident()/get_native_id() are ints, distinct for concurrent threads."""
        main_ids = (mod.get_ident(), mod.get_native_id())
        assert all(isinstance(i, int) for i in main_ids)
        assert mod.get_ident() == _thread.get_ident()
        other = spawn(lambda: (mod.get_ident(), mod.get_native_id())).result()
        assert other[0] != main_ids[0]
        assert other[1] != main_ids[1]

    def test_timeout_max_and_thread_error(self, mod):
        """TIMEOUT_MAX equals stdlib's; ThreadError is the stdlib's (RuntimeError)."""
        assert mod.TIMEOUT_MAX == std.TIMEOUT_MAX
        assert mod.ThreadError is std.ThreadError

    def test_stack_size(self, mod):
        """stack_size(n) returns the previous size; new threads run with the new size."""
        old = mod.stack_size()
        assert isinstance(old, int)
        try:
            assert mod.stack_size(1 << 20) == old
            assert mod.stack_size() == 1 << 20
            run_to_completion(mod.Thread())
        finally:
            mod.stack_size(old)
        assert mod.stack_size() == old

    @pytest.mark.parametrize("size", [1000, -1])
    def test_invalid_stack_size_is_value_error(self, mod, size):
        """stack_size() rejects sizes that are too small or negative (stdlib message)."""
        old = std.stack_size()
        try:
            same_error(mod, ValueError, lambda m: m.stack_size(size))
        finally:
            std.stack_size(old)

    @pytest.mark.parametrize(
        "name", ["currentThread", "activeCount"], ids=["currentThread", "activeCount"]
    )
    def test_camel_case_functions_are_deprecated(self, mod, name):
        """currentThread()/activeCount() emit the stdlib's DeprecationWarning and work."""
        assert_deprecated_like_stdlib(mod, lambda m: getattr(m, name)())
        result, _ = deprecations(getattr(mod, name))
        expected = mod.current_thread() if name == "currentThread" else mod.active_count()
        assert result == expected


# ---------------------------------------------------------------------------
# excepthook
# ---------------------------------------------------------------------------


@pytest.fixture
def hook_calls(mod, monkeypatch):
    """Install a recording excepthook on the module under test (restored afterwards)."""
    calls = []

    def hook(args):
        calls.append(
            types.SimpleNamespace(
                args=args,
                exc_type=args.exc_type,
                exc_value=args.exc_value,
                exc_traceback=args.exc_traceback,
                thread=args.thread,
                called_in=std.get_ident(),
            )
        )

    monkeypatch.setattr(mod, "excepthook", hook)
    return calls


def use_default_excepthooks(mod, monkeypatch):
    """Restore the default hooks on both modules, as in a program run outside pytest.

    (pytest replaces ``threading.excepthook``; an implementation may legitimately
    forward to it, so the "default output" tests reset it too.)
    """
    monkeypatch.setattr(std, "excepthook", std.__excepthook__)
    monkeypatch.setattr(mod, "excepthook", mod.__excepthook__)


class TestExcepthook:
    def test_hook_receives_exception_details(self, mod, hook_calls):
        """The hook gets ExceptHookArgs(exc_type, exc_value, exc_traceback, thread)."""
        error = ZeroDivisionError("nope")

        def failing_target():
            raise error

        thread = mod.Thread(target=failing_target)
        run_to_completion(thread)
        assert len(hook_calls) == 1
        call = hook_calls[0]
        assert call.exc_type is ZeroDivisionError
        assert call.exc_value is error
        assert isinstance(call.exc_traceback, types.TracebackType)
        tb = call.exc_traceback
        while tb.tb_next is not None:
            tb = tb.tb_next
        assert tb.tb_frame.f_code.co_name == "failing_target"
        assert call.thread is thread
        assert call.called_in == thread.ident  # runs in the failing thread
        assert tuple(call.args) == (ZeroDivisionError, error, call.exc_traceback, thread)
        if isinstance(std.ExceptHookArgs, type):
            assert isinstance(call.args, mod.ExceptHookArgs)

    def test_hook_looked_up_when_exception_happens(self, mod, monkeypatch):
        """A hook installed after the thread started is still the one used."""
        release = std.Event()
        calls = []

        def target():
            release.wait(JOIN_TIMEOUT)
            raise KeyError("late")

        thread = mod.Thread(target=target)
        thread.start()
        try:
            monkeypatch.setattr(mod, "excepthook", lambda args: calls.append(args.exc_type))
        finally:
            release.set()
            thread.join(JOIN_TIMEOUT)
        assert calls == [KeyError]

    def test_system_exit_reaches_hook(self, mod, hook_calls):
        """SystemExit in a thread is passed to the hook too."""
        run_to_completion(mod.Thread(target=sys.exit, args=(3,)))
        assert [c.exc_type for c in hook_calls] == [SystemExit]

    def test_default_hook_prints_traceback(self, mod, monkeypatch, capsys):
        """The default hook prints 'Exception in thread NAME:' and the traceback to stderr."""
        assert callable(mod.__excepthook__)
        use_default_excepthooks(mod, monkeypatch)
        run_to_completion(mod.Thread(target=lambda: 1 / 0, name="boomer"))
        err = capsys.readouterr().err
        assert "Exception in thread boomer:" in err
        assert "Traceback (most recent call last):" in err
        assert "ZeroDivisionError" in err

    def test_default_hook_ignores_system_exit(self, mod, monkeypatch, capsys):
        """The default hook prints nothing for SystemExit."""
        use_default_excepthooks(mod, monkeypatch)
        run_to_completion(mod.Thread(target=sys.exit, args=(1,)))
        assert capsys.readouterr().err == ""

    def test_failing_hook_falls_back_to_sys_excepthook(self, mod, monkeypatch, capsys):
        """If the hook itself raises, a note is printed and sys.excepthook gets that error."""
        sys_calls = []

        def broken_hook(args):
            raise ValueError("hook failed")

        monkeypatch.setattr(mod, "excepthook", broken_hook)
        monkeypatch.setattr(sys, "excepthook", lambda *exc_info: sys_calls.append(exc_info[0]))
        run_to_completion(mod.Thread(target=lambda: 1 / 0))
        assert sys_calls == [ValueError]
        assert "Exception in threading.excepthook:" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# settrace / setprofile
# ---------------------------------------------------------------------------


class TestTraceAndProfile:
    @pytest.mark.parametrize("kind", ["trace", "profile"])
    def test_hook_installed_in_new_threads(self, mod, kind):
        """settrace/setprofile hooks are installed in threads started afterwards only."""
        setter, getter = getattr(mod, f"set{kind}"), getattr(mod, f"get{kind}")
        sys_getter = getattr(sys, f"get{kind}")
        called = []

        def hook(frame, event, arg):
            if event == "call":
                called.append(frame.f_code.co_name)

        def traced_target():
            return 1

        previous = getter()
        main_before = sys_getter()
        setter(hook)
        try:
            assert getter() is hook
            run_to_completion(mod.Thread(target=traced_target))
            assert sys_getter() is main_before  # the calling thread is not affected
        finally:
            setter(previous)
        assert getter() is previous
        assert "traced_target" in called

    @pytest.mark.parametrize("kind", ["trace", "profile"])
    def test_all_threads_variant(self, mod, kind, spawn):
        """set*_all_threads (3.12+) also hooks the caller and already-running threads."""
        if not hasattr(std, f"set{kind}_all_threads"):
            pytest.skip("stdlib has no set*_all_threads on this Python")
        sys_getter = getattr(sys, f"get{kind}")
        if sys_getter() is not None:
            pytest.skip(f"a {kind} function is already active")
        set_all, getter = getattr(mod, f"set{kind}_all_threads"), getattr(mod, f"get{kind}")
        proceed = std.Event()
        worker = spawn(lambda: (proceed.wait(JOIN_TIMEOUT), sys_getter())[1])

        def hook(frame, event, arg):
            return None

        set_all(hook)
        try:
            assert getter() is hook
            assert sys_getter() is hook
            proceed.set()
            assert worker.result() is hook
        finally:
            set_all(None)
        assert getter() is None
        assert sys_getter() is None


# ---------------------------------------------------------------------------
# Public API surface
# ---------------------------------------------------------------------------


class TestPublicAPI:
    def test_all_covers_stdlib_all(self, mod):
        """__all__ contains every name of the running stdlib's __all__, all defined."""
        missing = sorted(set(std.__all__) - set(mod.__all__))
        assert not missing
        undefined = [name for name in std.__all__ if not hasattr(mod, name)]
        assert not undefined

    def test_star_import(self, mod):
        """`from mod import *` provides every stdlib public name."""
        namespace = {}
        exec(f"from {mod.__name__} import *", namespace)
        assert set(std.__all__) <= set(namespace)


# ---------------------------------------------------------------------------
# Differential, single-threaded operation sequences (hypothesis)
# ---------------------------------------------------------------------------

DIFF_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def run_ops(obj, ops):
    """Apply ``ops`` (name, arg) to ``obj``; return the list of normalised outcomes."""
    results = []
    for name, arg in ops:
        if name == "attr":
            results.append(outcome(lambda arg=arg: getattr(obj, arg)))
            continue
        method = getattr(obj, name)
        results.append(outcome(lambda method=method, arg=arg: method(*arg)))
    return results


def ops_strategy(choices):
    return st.lists(st.sampled_from(choices), max_size=25)


class TestDifferentialSequences:
    """Random non-blocking operation sequences give identical outcomes on both modules.

    reprs are deliberately left out here; they are pinned by the test_repr_* tests.
    """

    @DIFF_SETTINGS
    @given(
        kind=st.sampled_from(["Semaphore", "BoundedSemaphore"]),
        initial=st.integers(0, 3),
        ops=ops_strategy(
            [
                ("acquire", (False,)),
                ("acquire", (True, 0)),
                ("acquire", (False, 0)),
                ("release", ()),
                ("release", (2,)),
                ("release", (0,)),
            ]
        ),
    )
    def test_semaphores(self, mod, kind, initial, ops):
        assert run_ops(getattr(mod, kind)(initial), ops) == run_ops(
            getattr(std, kind)(initial), ops
        )

    @DIFF_SETTINGS
    @given(
        kind=st.sampled_from(["Lock", "RLock"]),
        ops=ops_strategy(
            [
                ("acquire", (False,)),
                ("acquire", (True, 0)),
                ("acquire", (False, 1)),
                ("acquire", (True, -3)),
                ("release", ()),
                ("__exit__", (None, None, None)),
            ]
        ),
    )
    def test_locks(self, mod, kind, ops):
        assert run_ops(getattr(mod, kind)(), ops) == run_ops(getattr(std, kind)(), ops)

    @DIFF_SETTINGS
    @given(ops=ops_strategy([("set", ()), ("clear", ()), ("is_set", ()), ("wait", (0,))]))
    def test_events(self, mod, ops):
        assert run_ops(mod.Event(), ops) == run_ops(std.Event(), ops)

    @DIFF_SETTINGS
    @given(
        lock_kind=st.sampled_from(LOCK_KINDS),
        ops=ops_strategy(
            [
                ("acquire", (False,)),
                ("release", ()),
                ("wait", (0,)),
                ("wait_for", (lambda: 0, 0)),
                ("notify", ()),
                ("notify", (3,)),
                ("notify_all", ()),
            ]
        ),
    )
    def test_conditions(self, mod, lock_kind, ops):
        assert run_ops(make_condition(mod, lock_kind), ops) == run_ops(
            make_condition(std, lock_kind), ops
        )

    @DIFF_SETTINGS
    @given(
        ops=ops_strategy(
            [
                ("wait", ()),
                ("abort", ()),
                ("reset", ()),
                ("attr", "broken"),
                ("attr", "n_waiting"),
                ("attr", "parties"),
            ]
        )
    )
    def test_single_party_barriers(self, mod, ops):
        assert run_ops(mod.Barrier(1), ops) == run_ops(std.Barrier(1), ops)
