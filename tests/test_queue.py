"""``threadkit.queue``: the stdlib's semantics and errors, cancellation, and no item lost.

One class per area:

* ``TestErrors``: the exceptions and error messages are the stdlib's; a differential
  run of random non-blocking calls against ``queue`` (and the C ``SimpleQueue``).
* ``TestShutdown``: 3.13's ``shutdown()``/``ShutDown`` on every version: puts refused,
  gets drain then raise, ``immediate`` drains through ``_get`` and counts the drained
  items as done, blocked callers woken, ``join`` never raises, the order of checks.
* ``TestCancellation``: every blocking call (``get`` on empty, ``put`` on full, ``join``
  with unfinished tasks, ``SimpleQueue.get``) is woken at once by a deadline, a scope's
  ``cancel()`` or ``Thread.cancel()``, raises on entry in a cancelled scope, and leaves
  the queue as it was; the calls that never block never raise ``Cancelled``.
* ``TestPassOn``: a cancelled waiter never swallows the wake-up that came with an item
  (or a free slot): the next waiter gets it.
* ``TestTimeouts``: ``timeout=`` keeps the stdlib's meaning inside cancel scopes.
* ``TestCompat``: subclasses overriding the ``_init``/``_qsize``/``_put``/``_get`` hooks,
  ``LifoQueue``/``PriorityQueue`` order, ``maxsize`` changed later, and ``mutex`` and the
  conditions used from outside as code written for ``queue`` does.
* ``TestConservation``: producers and consumers, with consumers' gets (and producers'
  puts) cancelled at random: every item is got exactly once and ``join`` returns.
* ``TestReentrancy``: ``SimpleQueue.put`` made while the same thread is inside another
  ``put``/``get`` on that queue, as a finaliser, a gc callback or a signal handler makes
  it: with the queue's lock held, injected at every line of a call (a trace function),
  and from real gc callbacks, ``__del__`` methods and weakref finalisers.
* ``TestInterrupts``: a real SIGINT at a parked call; then ``test_keyboard_interrupt_at_
  every_line``: a KeyboardInterrupt at every line of each call, with the harness and
  invariant checks of ``tests/test_interrupts.py`` (its ``Scenario`` and ``explore``),
  plus the queue's own: no item lost or duplicated, ``unfinished_tasks`` right.

Nothing synchronises by sleeping: a test learns that a thread is parked from the core
(``wait_until_parked``), or polls real state with a bound (``wait_until``).
"""

from __future__ import annotations

import _queue
import functools
import gc
import math
import queue as std_queue
import random
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

import threadkit
import threadkit.queue as tkq
from helpers import (
    cancel_racing,
    finish,
    join_all,
    parked,
    spawn,
    wait_until,
    wait_until_parked,
)
from test_cancel import gated, outcome_of, raises_at_entry
from test_interrupts import (
    _MAIN,
    _PKG_DIR,
    RESULT,
    W_TIMEOUT,
    WAKEUP,
    Scenario,
    _interrupt,
    _main_parked_on,
    _Outcome,
    _Releasing,
    _then_other,
    explore,
)
from threadkit import Cancelled, CancelScope, _core
from threadkit._core import WaitQueue
from threadkit.queue import Empty, Full, LifoQueue, PriorityQueue, Queue, ShutDown, SimpleQueue

pytestmark = pytest.mark.timeout(60)

#: A scope deadline long enough for a thread to be parked when it expires (seconds).
DEADLINE = 0.05
#: How long a woken thread may take to finish; far above what a prompt wake-up needs.
PROMPT = 2.0
#: Rounds of each race loop.
RACE_ROUNDS = 150
#: The message of the stdlib's ValueError for a negative timeout.
TIMEOUT_MESSAGE = "'timeout' must be a non-negative number"
HAS_STD_SHUTDOWN = hasattr(std_queue.Queue, "shutdown")
MISSING: Any = object()


# -- helpers -----------------------------------------------------------------------------
@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace ``threadkit.excepthook`` with a recorder (for threads expected to end
    with an error, such as ShutDown); return what it records."""
    calls: list[Any] = []
    monkeypatch.setattr(threadkit, "excepthook", calls.append)
    return calls


def join_promptly(thread: threadkit.Thread, since: float | None = None) -> None:
    """Join ``thread``, failing if it does not end within ``PROMPT`` seconds."""
    thread.join(PROMPT)
    assert not thread.is_alive(), f"{thread} was not woken"
    if since is not None:
        assert time.monotonic() - since < PROMPT


def no_waiters(q: Any) -> None:
    """Nobody is queued on ``q``'s conditions or its mutex, and the mutex is free."""
    assert len(q.not_empty._waiters) == 0
    assert len(q.not_full._waiters) == 0
    assert len(q.all_tasks_done._waiters) == 0
    assert len(q.mutex._waiters) == 0
    assert not q.mutex.locked()


def parked_or_done(resource: object, thread: Any, n: int = 1) -> None:
    """Wait until ``n`` threads are parked on ``resource`` or ``thread`` has ended."""
    wait_until(lambda: parked(resource) >= n or not thread.is_alive(), timeout=5)


def release_all(q: Any, threads: list[threadkit.Thread] | None = None) -> None:
    """After a failure, let every thread still blocked on ``q`` go (getters and putters
    raise ShutDown, joiners return); nothing to do if ``threads`` have all ended."""
    if threads is not None and not any(t.is_alive() for t in threads):
        return
    q.shutdown(immediate=True)
    with q.mutex:
        q.unfinished_tasks = 0
        q.all_tasks_done.notify_all()


class Recording(Queue[Any]):
    """A queue over a plain list whose four hooks record that they ran, with the mutex."""

    def _init(self, maxsize: int) -> None:
        self.queue = []
        self.calls: list[str] = []

    def _note(self, name: str) -> None:
        assert self.mutex.locked(), f"{name} called without the mutex"
        self.calls.append(name)

    def _qsize(self) -> int:
        self._note("_qsize")
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self._note("_put")
        self.queue.append(item)

    def _get(self) -> Any:
        self._note("_get")
        return self.queue.pop(0)


class Doubling(Queue[Any]):
    """Only ``_put`` overridden: every item goes in twice."""

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self.queue.append(item)


class Labelled(Queue[Any]):
    """Only ``_get`` overridden: items come out labelled."""

    def _get(self) -> Any:
        return ("got", self.queue.popleft())


# =======================================================================================
class TestErrors:
    """Exceptions and messages exactly as the stdlib's."""

    def test_exception_classes(self) -> None:
        assert tkq.Empty is std_queue.Empty is _queue.Empty
        assert issubclass(Full, Exception) and issubclass(ShutDown, Exception)
        assert Full.__name__ == "Full" and ShutDown.__name__ == "ShutDown"
        assert not issubclass(Full, Empty) and not issubclass(ShutDown, (Empty, Full))
        assert sorted(tkq.__all__) == sorted(
            ["Empty", "Full", "LifoQueue", "PriorityQueue", "Queue", "ShutDown", "SimpleQueue"]
        )
        for name in tkq.__all__:
            assert getattr(tkq, name) is getattr(sys.modules["threadkit._queue"], name)

    def test_mutex_and_conditions_are_threadkits(self) -> None:
        q: Queue[int] = Queue()
        assert isinstance(q.mutex, threadkit.Lock)
        for cond in (q.not_empty, q.not_full, q.all_tasks_done):
            assert isinstance(cond, threadkit.Condition)
            assert cond._lock is q.mutex
        assert Queue[int] is not Queue  # subscriptable, as queue.Queue[int] is
        assert SimpleQueue[int] is not SimpleQueue

    @pytest.mark.parametrize("kind", [Queue, LifoQueue, PriorityQueue])
    def test_negative_timeout_as_stdlib(self, kind: type) -> None:
        std_kind = getattr(std_queue, kind.__name__)
        with pytest.raises(ValueError) as std_info:
            std_kind(1).put(1, timeout=-1)
        assert str(std_info.value) == TIMEOUT_MESSAGE
        # put: only when bounded and blocking, full or not.
        for items in ([], [1]):
            q = kind(1)
            for item in items:
                q.put(item)
            with pytest.raises(ValueError) as info:
                q.put(2, timeout=-1)
            assert str(info.value) == TIMEOUT_MESSAGE
            assert list(q.queue) == items and q.unfinished_tasks == len(items)
        unbounded = kind()
        unbounded.put(1, timeout=-1)
        assert list(unbounded.queue) == [1]
        q = kind(2)
        q.put(1, False, -1)
        q.put(2, block=False, timeout=-5)
        with pytest.raises(Full):
            q.put(3, False, -1)
        # get: whenever blocking, even with an item there (which stays).
        with pytest.raises(ValueError) as info:
            q.get(timeout=-1)
        assert str(info.value) == TIMEOUT_MESSAGE
        with pytest.raises(ValueError, match="non-negative"):
            kind().get(True, -0.5)
        assert q.qsize() == 2
        assert q.get(False, -1) in (1, 2)
        with pytest.raises(Empty):
            kind().get(False, -1)

    def test_task_done_too_many_times(self) -> None:
        q: Queue[int] = Queue()
        with pytest.raises(ValueError) as info:
            q.task_done()
        assert str(info.value) == "task_done() called too many times"
        q.put(1)
        q.task_done()  # allowed before the get, as in the stdlib
        with pytest.raises(ValueError, match=r"^task_done\(\) called too many times$"):
            q.task_done()
        assert q.unfinished_tasks == 0
        assert q.get() == 1
        q.join()

    def test_simple_queue_negative_timeout(self) -> None:
        with pytest.raises(ValueError) as std_info:
            std_queue.SimpleQueue().get(timeout=-1)
        sq: SimpleQueue[int] = SimpleQueue()
        with pytest.raises(ValueError) as info:
            sq.get(timeout=-1)
        assert str(info.value) == str(std_info.value) == TIMEOUT_MESSAGE
        sq.put(1)
        with pytest.raises(ValueError, match="non-negative"):
            sq.get(True, -0.001)
        assert sq.qsize() == 1  # not taken
        assert sq.get(False, -1) == 1  # ignored when not blocking
        with pytest.raises(Empty):
            sq.get(False, -1)
        with pytest.raises(Empty):
            sq.get_nowait()

    def test_simple_queue_nan_timeout(self) -> None:
        with pytest.raises(ValueError) as std_info:
            std_queue.SimpleQueue().get(timeout=math.nan)
        sq: SimpleQueue[int] = SimpleQueue()
        with pytest.raises(ValueError) as info:
            sq.get(timeout=math.nan)  # at once, without waiting
        assert str(info.value) == str(std_info.value)

    # -- differential runs against the stdlib ----------------------------------------------
    @staticmethod
    def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
        try:
            return ("ok", call())
        except Exception as exc:
            return (type(exc).__name__, str(exc))

    @staticmethod
    def _state(q: Any) -> tuple[Any, ...]:
        shut = getattr(q, "is_shutdown", False)
        return (list(q.queue), q.unfinished_tasks, shut, q.qsize(), q.empty(), q.full())

    @pytest.mark.parametrize("name", ["Queue", "LifoQueue", "PriorityQueue"])
    @pytest.mark.parametrize("maxsize", [0, 1, 3])
    def test_random_calls_match_the_stdlib(self, name: str, maxsize: int) -> None:
        """Random calls that cannot block give the stdlib's results, errors and state
        (``shutdown`` in the mix where the stdlib has it: 3.13 on)."""
        for seed in range(40):
            rng = random.Random(seed)
            std = getattr(std_queue, name)(maxsize)
            ours = getattr(tkq, name)(maxsize)
            log: list[str] = []
            for step in range(60):
                ops = [op for op in CALLS if op not in ("put", "get", "join", "shutdown")]
                if HAS_STD_SHUTDOWN and rng.random() < 0.1:
                    ops.append("shutdown")
                # A blocking put, get or join only where it cannot block.
                if std.qsize() or getattr(std, "is_shutdown", False):
                    ops.append("get")
                if not std.full() or getattr(std, "is_shutdown", False):
                    ops.append("put")
                if std.unfinished_tasks == 0:
                    ops.append("join")
                op = rng.choice(ops)
                item = rng.randrange(100)
                log.append(op)
                results = [
                    (self._outcome(functools.partial(CALLS[op], q, item)), self._state(q))
                    for q in (std, ours)
                ]
                assert results[0] == results[1], (seed, step, log)
            no_waiters(ours)

    def test_random_simple_queue_calls_match_the_c_one(self) -> None:
        for seed in range(40):
            rng = random.Random(seed)
            std: Any = std_queue.SimpleQueue()
            ours: SimpleQueue[int] = SimpleQueue()
            for _ in range(60):
                op = rng.choice(list(SIMPLE_CALLS))
                if op == "get" and std.empty():
                    op = "get_nowait"
                item = rng.randrange(100)
                results = [
                    (
                        self._outcome(functools.partial(SIMPLE_CALLS[op], q, item)),
                        q.qsize(),
                        q.empty(),
                    )
                    for q in (std, ours)
                ]
                assert results[0] == results[1], (seed, op)


#: The calls of the differential runs, on a queue and an item.
CALLS: dict[str, Callable[[Any, int], Any]] = {
    "put_nowait": lambda q, item: q.put_nowait(item),
    "put_false": lambda q, item: q.put(item, False),
    "put_neg": lambda q, item: q.put(item, timeout=-1),
    "put_false_neg": lambda q, item: q.put(item, False, -1),
    "put_zero": lambda q, item: q.put(item, timeout=0),
    "get_nowait": lambda q, item: q.get_nowait(),
    "get_neg": lambda q, item: q.get(timeout=-1),
    "get_zero": lambda q, item: q.get(True, 0),
    "get_false_neg": lambda q, item: q.get(False, -1),
    "task_done": lambda q, item: q.task_done(),
    "put": lambda q, item: q.put(item),
    "get": lambda q, item: q.get(),
    "join": lambda q, item: q.join(),
    "shutdown": lambda q, item: q.shutdown(immediate=item % 2 == 0),
}
SIMPLE_CALLS: dict[str, Callable[[Any, int], Any]] = {
    "put": lambda q, item: q.put(item),
    "put_args": lambda q, item: q.put(item, item % 2 == 0, 3),
    "put_nowait": lambda q, item: q.put_nowait(item),
    "get_nowait": lambda q, item: q.get_nowait(),
    "get_false": lambda q, item: q.get(False),
    "get_neg": lambda q, item: q.get(timeout=-1),
    "get_false_neg": lambda q, item: q.get(False, -1),
    "get_zero": lambda q, item: q.get(timeout=0),
    "get": lambda q, item: q.get(),
}


# =======================================================================================
class TestShutdown:
    """``shutdown()`` with the semantics ``queue`` has from 3.13 on, on every version."""

    def test_flag_and_repeated_calls(self) -> None:
        q: Queue[int] = Queue()
        assert q.is_shutdown is False
        q.shutdown()
        assert q.is_shutdown is True
        q.shutdown()
        q.shutdown(immediate=True)
        assert q.is_shutdown is True
        no_waiters(q)

    @pytest.mark.parametrize("maxsize", [0, 1, 3])
    def test_put_after_shutdown_raises(self, maxsize: int) -> None:
        q: Queue[int] = Queue(maxsize)
        q.put(1)
        q.shutdown()
        for put in (
            lambda: q.put(2),
            lambda: q.put_nowait(2),
            lambda: q.put(2, block=False),
            lambda: q.put(2, timeout=0.01),
            lambda: q.put(2, timeout=0),
            lambda: q.put(2, timeout=-1),  # ShutDown before ValueError
        ):
            with pytest.raises(ShutDown):
                put()
        assert list(q.queue) == [1] and q.unfinished_tasks == 1
        no_waiters(q)

    @pytest.mark.parametrize("kind", [Queue, LifoQueue, PriorityQueue, Recording])
    def test_get_returns_what_is_left_then_raises(self, kind: type) -> None:
        q = kind()
        for item in (2, 1, 3):
            q.put(item)
        q.shutdown()
        expected = {Queue: [2, 1, 3], LifoQueue: [3, 1, 2], PriorityQueue: [1, 2, 3]}
        got = [q.get(), q.get(timeout=5), q.get_nowait()]
        assert got == expected.get(kind, [2, 1, 3])
        for get in (
            q.get,
            q.get_nowait,
            lambda: q.get(block=False),
            lambda: q.get(timeout=0.01),
            lambda: q.get(timeout=0),
            lambda: q.get(timeout=-1),  # ShutDown before ValueError
            lambda: q.get(False, -1),
        ):
            with pytest.raises(ShutDown):
                get()
        assert q.unfinished_tasks == 3
        for _ in range(3):
            q.task_done()  # for items fetched after the shutdown
        q.join()
        with pytest.raises(ValueError, match="too many"):
            q.task_done()
        no_waiters(q)

    def test_check_order_on_a_full_shut_down_queue(self) -> None:
        q: Queue[int] = Queue(1)
        q.put(1)
        q.shutdown()
        for put in (
            lambda: q.put(2, timeout=-1),
            lambda: q.put_nowait(2),
            lambda: q.put(2, timeout=0),
        ):
            with pytest.raises(ShutDown):  # not ValueError, not Full
                put()
        with pytest.raises(ValueError, match="non-negative"):  # an item is left: get works
            q.get(timeout=-1)
        assert q.get(timeout=0) == 1
        with pytest.raises(ShutDown):  # not ValueError, not Empty
            q.get(timeout=-1)
        with pytest.raises(ShutDown):
            q.get_nowait()

    def test_immediate_drains_through_get_hook(self) -> None:
        q = Recording()
        for item in "abcd":
            q.put(item)
        assert q.get() == "a"  # fetched, not yet done
        q.calls.clear()
        q.shutdown(immediate=True)
        assert q.calls.count("_get") == 3  # the subclass's _get drained b, c, d
        assert q.queue == [] and q.qsize() == 0
        assert q.unfinished_tasks == 1  # four put, three drained
        with pytest.raises(ShutDown):
            q.get_nowait()
        with pytest.raises(ShutDown):
            q.put("e")
        q.task_done()  # the fetched one
        assert q.unfinished_tasks == 0
        q.join()
        no_waiters(q)

    def test_immediate_drain_is_seen_by_a_subclass_get(self) -> None:
        drained: list[int] = []

        class Watched(Queue[int]):
            def _get(self) -> int:
                item = super()._get()
                drained.append(item)
                return item

        q = Watched(5)
        for item in range(5):
            q.put(item)
        q.shutdown(immediate=True)
        assert drained == [0, 1, 2, 3, 4]
        assert q.unfinished_tasks == 0

    def test_immediate_does_not_lower_unfinished_below_zero(self) -> None:
        q: Queue[int] = Queue()
        for item in range(3):
            q.put(item)
        for _ in range(3):
            q.task_done()  # done before being fetched: unfinished 0, three in the queue
        q.shutdown(immediate=True)
        assert q.unfinished_tasks == 0 and q.qsize() == 0
        with pytest.raises(ValueError, match="too many"):
            q.task_done()
        q.join()

    def test_immediate_wakes_joiners(self) -> None:
        q: Queue[int] = Queue()
        q.put(1)
        q.put(2)
        joiners = [spawn(q.join) for _ in range(3)]
        wait_until_parked(q.all_tasks_done, 3)
        t0 = time.monotonic()
        q.shutdown(immediate=True)
        for t in joiners:
            join_promptly(t, since=t0)
            assert t.result() is None  # join never raises ShutDown
        assert q.unfinished_tasks == 0
        no_waiters(q)

    def test_immediate_joiner_still_waits_for_fetched_items(self) -> None:
        q: Queue[int] = Queue()
        q.put(1)
        q.put(2)
        assert q.get() == 1
        joiner = spawn(q.join)
        wait_until_parked(q.all_tasks_done, 1)
        q.shutdown(immediate=True)
        assert q.unfinished_tasks == 1
        # Woken by the shutdown, it must wait again for the fetched item.
        wait_until(lambda: parked(q.all_tasks_done) == 1 or not joiner.is_alive())
        assert joiner.is_alive(), "join returned with a task unfinished"
        q.task_done()
        join_promptly(joiner)
        assert joiner.result() is None
        no_waiters(q)

    def test_plain_shutdown_does_not_end_join(self) -> None:
        q: Queue[int] = Queue()
        q.put(1)
        joiner = spawn(q.join)
        wait_until_parked(q.all_tasks_done, 1)
        q.shutdown()
        assert parked(q.all_tasks_done) == 1 and joiner.is_alive()
        assert q.get() == 1
        q.task_done()
        join_promptly(joiner)
        assert joiner.result() is None

    def test_join_of_a_shut_down_queue_returns(self) -> None:
        q: Queue[int] = Queue()
        q.shutdown()
        q.join()
        q2: Queue[int] = Queue()
        q2.put(1)
        q2.shutdown(immediate=True)
        q2.join()

    @pytest.mark.parametrize("immediate", [False, True])
    @pytest.mark.parametrize("kind", [Queue, LifoQueue])
    def test_blocked_getters_raise_shutdown(
        self, kind: type, immediate: bool, hook_calls: list[Any]
    ) -> None:
        q = kind()
        getters = [spawn(q.get), spawn(lambda: q.get(timeout=60)), spawn(q.get)]
        try:
            wait_until_parked(q.not_empty, 3)
            t0 = time.monotonic()
            q.shutdown(immediate=immediate)
            for t in getters:
                join_promptly(t, since=t0)
                with pytest.raises(ShutDown):
                    t.result()
        finally:
            release_all(q, getters)
            join_all(getters)
        assert [type(args.exc_value) for args in hook_calls] == [ShutDown] * 3
        assert q.unfinished_tasks == 0
        no_waiters(q)

    @pytest.mark.parametrize("immediate", [False, True])
    def test_blocked_putters_raise_shutdown(self, immediate: bool, hook_calls: list[Any]) -> None:
        q: Queue[str] = Queue(1)
        q.put("a")
        putters = [spawn(q.put, "b"), spawn(lambda: q.put("c", timeout=60))]
        try:
            wait_until_parked(q.not_full, 2)
            t0 = time.monotonic()
            q.shutdown(immediate=immediate)
            for t in putters:
                join_promptly(t, since=t0)
                with pytest.raises(ShutDown):
                    t.result()
        finally:
            release_all(q, putters)
            join_all(putters)
        assert [type(args.exc_value) for args in hook_calls] == [ShutDown] * 2
        if not immediate:
            assert list(q.queue) == ["a"] and q.unfinished_tasks == 1
            assert q.get() == "a"
            with pytest.raises(ShutDown):
                q.get()
        assert q.unfinished_tasks == (0 if immediate else 1)
        no_waiters(q)

    def test_putter_woken_by_a_get_then_shut_down_raises(self, hook_calls: list[Any]) -> None:
        """A putter that had room made for it but saw the shutdown first raises ShutDown,
        as in the stdlib (it checks the flag after every wake-up)."""
        q: Queue[str] = Queue(1)
        q.put("a")
        t = spawn(q.put, "b")
        try:
            wait_until_parked(q.not_full, 1)
            with q.mutex:  # the putter cannot take the mutex before both are done
                q.queue.clear()
                q.is_shutdown = True
                q.not_full.notify_all()
            join_promptly(t)
            with pytest.raises(ShutDown):
                t.result()
        finally:
            release_all(q, [t])
            join_all([t])
        assert [type(args.exc_value) for args in hook_calls] == [ShutDown]
        assert list(q.queue) == []

    def test_task_done_after_shutdown(self) -> None:
        for immediate in (False, True):
            q: Queue[int] = Queue()
            q.put(1)
            q.put(2)
            q.put(3)
            assert q.get() == 1 and q.get() == 2
            q.shutdown(immediate=immediate)
            q.task_done()
            q.task_done()
            if not immediate:
                assert q.get() == 3
                q.task_done()
            assert q.unfinished_tasks == 0
            with pytest.raises(ValueError, match="too many"):
                q.task_done()
            q.join()


# =======================================================================================
class Blocked:
    """A queue call that blocks until interrupted, and what "left as it was" means.

    ``check()`` runs after the call was interrupted: nothing was taken or put and no
    waiter is left behind; ``close()`` then shows that the next wake-up still reaches
    a new waiter (no ghost of the interrupted one swallows it).
    """

    resource: object
    q: Any

    def call(self) -> object:
        raise NotImplementedError

    def check(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _next_waiter(self, call: Callable[[], object], wake: Callable[[], object]) -> Any:
        """Park a new thread in ``call``, ``wake()`` it, return what the call returned."""
        t = spawn(call)
        try:
            wait_until_parked(self.resource, 1, timeout=5)
            wake()
            join_promptly(t)
        finally:
            if t.is_alive():
                self.release()
            join_all([t])
        return t.result()

    def release(self) -> None:
        release_all(self.q)


class QueueGet(Blocked):
    def __init__(self, kind: type = Queue, timeout: float | None = None) -> None:
        self.q = kind()
        self.resource = self.q.not_empty
        self.timeout = timeout

    def call(self) -> object:
        return self.q.get(timeout=self.timeout)

    def check(self) -> None:
        assert self.q.qsize() == 0 and self.q.unfinished_tasks == 0
        no_waiters(self.q)

    def close(self) -> None:
        assert self._next_waiter(self.q.get, lambda: self.q.put("next")) == "next"
        assert self.q.unfinished_tasks == 1
        self.q.task_done()
        no_waiters(self.q)


class QueuePut(Blocked):
    def __init__(self, kind: type = Queue, timeout: float | None = None) -> None:
        self.q = kind(1)
        self.q.put("a")
        self.resource = self.q.not_full
        self.timeout = timeout

    def call(self) -> object:
        return self.q.put("b", timeout=self.timeout)

    def check(self) -> None:
        # The interrupted put left nothing: not the item, not its count.
        assert list(self.q.queue) == ["a"] and self.q.unfinished_tasks == 1
        no_waiters(self.q)

    def close(self) -> None:
        got: list[Any] = []
        assert self._next_waiter(lambda: self.q.put("c"), lambda: got.append(self.q.get())) is None
        assert got == ["a"]
        assert list(self.q.queue) == ["c"] and self.q.unfinished_tasks == 2
        no_waiters(self.q)


class QueueJoin(Blocked):
    def __init__(self) -> None:
        self.q = Queue()
        self.q.put("a")
        assert self.q.get() == "a"
        self.resource = self.q.all_tasks_done

    def call(self) -> object:
        return self.q.join()

    def check(self) -> None:
        assert self.q.unfinished_tasks == 1
        no_waiters(self.q)

    def close(self) -> None:
        assert self._next_waiter(self.q.join, self.q.task_done) is None
        assert self.q.unfinished_tasks == 0
        no_waiters(self.q)


class SimpleGet(Blocked):
    def __init__(self, timeout: float | None = None) -> None:
        self.q = self.resource = SimpleQueue()
        self.timeout = timeout

    def call(self) -> object:
        return self.q.get(timeout=self.timeout)

    def check(self) -> None:
        assert self.q.empty() and len(self.q._waiters) == 0
        assert parked(self.q) == 0

    def close(self) -> None:
        assert self._next_waiter(self.q.get, lambda: self.q.put("next")) == "next"
        assert self.q.empty() and len(self.q._waiters) == 0

    def release(self) -> None:
        self.q.put("release")


BLOCKED: dict[str, Callable[[], Blocked]] = {
    "Queue.get": QueueGet,
    "Queue.get(timeout)": lambda: QueueGet(timeout=60),
    "LifoQueue.get": lambda: QueueGet(LifoQueue),
    "PriorityQueue.get(timeout)": lambda: QueueGet(PriorityQueue, 60),
    "Queue.put": QueuePut,
    "Queue.put(timeout)": lambda: QueuePut(timeout=60),
    "LifoQueue.put(timeout)": lambda: QueuePut(LifoQueue, 60),
    "Queue.join": QueueJoin,
    "SimpleQueue.get": SimpleGet,
    "SimpleQueue.get(timeout)": lambda: SimpleGet(60),
}
blocked_param = pytest.mark.parametrize("make", list(BLOCKED.values()), ids=list(BLOCKED))


class TestCancellation:
    """Every blocking call is a cancellation point; the others never are."""

    @blocked_param
    def test_deadline_wakes_parked_call(self, make: Callable[[], Blocked]) -> None:
        case = make()
        t0 = time.monotonic()
        with threadkit.move_on_after(DEADLINE) as scope:
            case.call()
            pytest.fail("the call returned")
        assert scope.cancelled_caught
        assert DEADLINE <= time.monotonic() - t0 < PROMPT
        case.check()
        case.close()

    @blocked_param
    def test_fail_after_raises_timeout_error(self, make: Callable[[], Blocked]) -> None:
        case = make()
        with pytest.raises(TimeoutError), threadkit.fail_after(DEADLINE):
            case.call()
        case.check()
        case.close()

    @blocked_param
    def test_scope_cancel_from_another_thread(self, make: Callable[[], Blocked]) -> None:
        case = make()
        box: dict[str, Any] = {}
        entered = threading.Event()

        def run() -> None:
            with CancelScope() as scope:
                box["scope"] = scope
                entered.set()
                box["outcome"] = outcome_of(case.call)

        t = spawn(run)
        try:
            assert entered.wait(5)
            wait_until_parked(case.resource, 1, timeout=5)
            t0 = time.monotonic()
            box["scope"].cancel()
            join_promptly(t, since=t0)
            t.result()
            assert "outcome" not in box  # Cancelled left the call, caught by the scope
            assert box["scope"].cancelled_caught
            case.check()
        finally:
            if t.is_alive():
                case.release()
            join_all([t])
        case.close()

    @blocked_param
    def test_thread_cancel_wakes_with_cancelled(self, make: Callable[[], Blocked]) -> None:
        case = make()
        t = spawn(case.call)
        try:
            wait_until_parked(case.resource, 1, timeout=5)
            t0 = time.monotonic()
            t.cancel()
            join_promptly(t, since=t0)
            with pytest.raises(Cancelled) as info:
                t.result()
            assert isinstance(info.value.scope, CancelScope)
            case.check()
        finally:
            if t.is_alive():
                case.release()
            join_all([t])
        case.close()

    def test_blocking_calls_raise_on_entry_even_when_they_would_not_block(self) -> None:
        q: Queue[str] = Queue()
        q.put("a")
        raises_at_entry(q.get)
        raises_at_entry(lambda: q.get(timeout=5))
        raises_at_entry(lambda: q.get(True, 0))
        assert list(q.queue) == ["a"]
        raises_at_entry(lambda: q.put("b"))  # unbounded: it never waits, still a checkpoint
        raises_at_entry(lambda: q.put("b", timeout=5))
        assert list(q.queue) == ["a"] and q.unfinished_tasks == 1
        bounded: Queue[str] = Queue(2)
        raises_at_entry(lambda: bounded.put("b"))
        raises_at_entry(lambda: bounded.put("b", True, 1))
        assert bounded.qsize() == 0 and bounded.unfinished_tasks == 0
        lifo: LifoQueue[str] = LifoQueue()
        lifo.put("a")
        raises_at_entry(lifo.get)
        assert lifo.qsize() == 1
        assert q.get() == "a"
        q.task_done()
        raises_at_entry(q.join)  # nothing unfinished: it would return at once
        sq: SimpleQueue[str] = SimpleQueue()
        sq.put("a")
        raises_at_entry(sq.get)
        raises_at_entry(lambda: sq.get(timeout=5))
        assert sq.qsize() == 1
        # An expired deadline counts as a cancellation.
        with threadkit.move_on_after(0) as scope:
            sq.get()
            pytest.fail("get ignored the expired deadline")
        assert scope.cancelled_caught and sq.qsize() == 1
        no_waiters(q)

    def test_non_blocking_calls_never_raise_cancelled(self) -> None:
        q: Queue[str] = Queue(2)
        sq: SimpleQueue[str] = SimpleQueue()
        # A cancelled scope, then one whose deadline has passed.
        for scope in (CancelScope(), threadkit.move_on_after(0)):
            with scope:
                if scope.deadline is None:
                    scope.cancel()
                q.put_nowait("a")
                q.put("b", block=False)
                with pytest.raises(Full):
                    q.put_nowait("c")
                assert q.qsize() == 2 and q.full() and not q.empty()
                assert q.get_nowait() == "a"
                assert q.get(block=False) == "b"
                with pytest.raises(Empty):
                    q.get_nowait()
                q.task_done()
                q.task_done()
                sq.put("a")
                sq.put("b", True, 5)  # never blocks, whatever it is told
                sq.put_nowait("c")
                assert sq.qsize() == 3 and not sq.empty()
                assert [sq.get_nowait(), sq.get(False), sq.get(block=False)] == ["a", "b", "c"]
                with pytest.raises(Empty):
                    sq.get_nowait()
            assert not scope.cancelled_caught
        with CancelScope() as scope:
            scope.cancel()
            q.put_nowait("z")
            q.shutdown()
            q.shutdown(immediate=True)
            assert q.unfinished_tasks == 0
        assert not scope.cancelled_caught
        no_waiters(q)

    @pytest.mark.parametrize(
        "op",
        [
            "get_nowait",
            "get(block=False)",
            "put_nowait",
            "put(block=False)",
            "task_done",
            "qsize",
            "empty",
            "full",
            "shutdown",
        ],
    )
    def test_non_blocking_call_waiting_for_the_mutex_is_not_cancelled(self, op: str) -> None:
        """A call that never blocks stays so while another thread holds the mutex: it
        waits its turn for the mutex (microseconds, normally) and is not cancelled."""
        q: Queue[str] = Queue(5)
        q.put("a")
        calls: dict[str, Callable[[], Any]] = {
            "get_nowait": q.get_nowait,
            "put_nowait": lambda: q.put_nowait("b"),
            "get(block=False)": lambda: q.get(block=False),
            "put(block=False)": lambda: q.put("b", block=False),
            "task_done": q.task_done,
            "qsize": q.qsize,
            "empty": q.empty,
            "full": q.full,
            "shutdown": q.shutdown,
        }
        box: dict[str, Any] = {}

        def run() -> None:
            with CancelScope() as scope:
                scope.cancel()
                box["outcome"] = outcome_of(calls[op])
            box["caught"] = scope.cancelled_caught

        with q.mutex:
            t = spawn(run)
            parked_or_done(q.mutex, t)
        join_promptly(t)
        t.result()
        assert box.get("caught") is False, f"{op} raised Cancelled"
        assert box["outcome"][0] == "returned", box
        no_waiters(q)

    def test_cancelled_gets_lose_no_item(self) -> None:
        for kind in (Queue, LifoQueue, PriorityQueue):
            q = kind()
            cancelled = []
            for _ in range(3):
                with threadkit.move_on_after(0.001) as scope:
                    q.get()
                cancelled.append(scope.cancelled_caught)
            assert cancelled == [True, True, True]
            getters = [spawn(q.get) for _ in range(3)]
            wait_until_parked(q.not_empty, 3)
            for item in (1, 2, 3):
                q.put(item)
            finish(getters)
            assert sorted(t.result() for t in getters) == [1, 2, 3]
            assert q.qsize() == 0 and q.unfinished_tasks == 3
            no_waiters(q)
        sq: SimpleQueue[int] = SimpleQueue()
        for _ in range(3):
            with threadkit.move_on_after(0.001):
                sq.get()
        sq.put(7)
        assert sq.get(timeout=5) == 7

    def test_cancelled_put_on_full_queue_puts_nothing(self) -> None:
        q: Queue[str] = Queue(1)
        q.put("a")
        t = spawn(q.put, "b")
        wait_until_parked(q.not_full, 1)
        t.cancel()
        join_promptly(t)
        assert isinstance(t.exception(), Cancelled)
        with threadkit.move_on_after(DEADLINE) as scope:
            q.put("c")
        assert scope.cancelled_caught
        assert list(q.queue) == ["a"] and q.unfinished_tasks == 1
        assert q.get() == "a"
        q.task_done()
        assert q.empty() and q.unfinished_tasks == 0
        q.join()
        no_waiters(q)


# =======================================================================================
class TestPassOn:
    """A cancelled waiter that had been signalled hands the wake-up to the next one."""

    @staticmethod
    def _queued(cond: threadkit.Condition) -> list[int]:
        """The threads queued on ``cond``, oldest first."""
        return [node.record.ident for node in cond._waiters]

    @pytest.mark.parametrize("kind", [Queue, LifoQueue])
    def test_get_cancelled_as_an_item_arrives(self, kind: type) -> None:
        q = kind()
        box: dict[str, Any] = {}
        a = spawn(gated, q.get, box, "a")
        wait_until_parked(q.not_empty, 1)
        b = spawn(lambda: box.update(b=outcome_of(q.get)))
        wait_until_parked(q.not_empty, 2)

        def put() -> None:
            q.put("x")
            # The notify went to A (the oldest): only B is still queued.
            box["queued"] = self._queued(q.not_empty)

        try:
            box["scope"].cancel_between(a, put)
            join_promptly(a)
            join_promptly(b)  # B waits without a timeout: a swallowed notify strands it
            assert box["queued"] == [b.ident]
            assert box["a"] == "cancelled"
            assert box["b"] == ("returned", "x"), "the item's notify was swallowed"
            assert q.qsize() == 0 and q.unfinished_tasks == 1
            no_waiters(q)
        finally:
            release_all(q, [a, b])
            finish([a, b])

    def test_put_cancelled_as_room_is_made(self) -> None:
        q: Queue[str] = Queue(1)
        q.put("a")
        box: dict[str, Any] = {}
        a = spawn(gated, lambda: q.put("from a"), box, "a")
        wait_until_parked(q.not_full, 1)
        b = spawn(lambda: box.update(b=outcome_of(lambda: q.put("from b"))))
        wait_until_parked(q.not_full, 2)

        def get() -> None:
            box["got"] = q.get()
            box["queued"] = self._queued(q.not_full)

        try:
            box["scope"].cancel_between(a, get)
            join_promptly(a)
            join_promptly(b)
            assert box["queued"] == [b.ident]
            assert box["a"] == "cancelled" and box["got"] == "a"
            assert box["b"] == ("returned", None), "the free slot's notify was swallowed"
            assert list(q.queue) == ["from b"] and q.unfinished_tasks == 2
            no_waiters(q)
        finally:
            release_all(q, [a, b])
            finish([a, b])

    def test_simple_queue_get_cancelled_as_an_item_arrives(self) -> None:
        for with_next in (True, False):
            sq: SimpleQueue[str] = SimpleQueue()
            box: dict[str, Any] = {}
            a = spawn(gated, sq.get, box, "a")
            wait_until_parked(sq, 1)
            threads = [a]
            if with_next:
                threads.append(spawn(lambda sq=sq, box=box: box.update(b=outcome_of(sq.get))))
                wait_until_parked(sq, 2)

            def put(sq: SimpleQueue[str] = sq, box: dict[str, Any] = box) -> None:
                sq.put("x")
                box["queued"] = len(sq._waiters)

            try:
                box["scope"].cancel_between(a, put)
                for t in threads:
                    join_promptly(t)
                assert box["a"] == "cancelled"
                assert box["queued"] == (1 if with_next else 0)  # A was signalled
                if with_next:
                    assert box["b"] == ("returned", "x"), "the item's wake-up was swallowed"
                    assert sq.empty()
                else:
                    assert sq.get_nowait() == "x"
                assert len(sq._waiters) == 0
            finally:
                for t in threads:
                    if t.is_alive():
                        sq.put("release")
                finish(threads)

    @pytest.mark.parametrize("kind", ["Queue", "SimpleQueue"])
    def test_put_racing_cancel_loses_no_item(self, kind: str, fast_switch: None) -> None:
        outcomes = Counter[str]()
        for i in range(RACE_ROUNDS):
            q: Any = Queue() if kind == "Queue" else SimpleQueue()
            resource = q.not_empty if kind == "Queue" else q
            results: dict[str, object] = {}

            def getter(name: str, q: Any = q, results: dict[str, object] = results) -> None:
                try:
                    results[name] = q.get()
                except Cancelled:
                    results[name] = "cancelled"

            a = spawn(getter, "a")
            wait_until_parked(resource, 1, timeout=5)
            b = spawn(getter, "b")
            wait_until_parked(resource, 2, timeout=5)
            with cancel_racing(a, i) as c:
                q.put("x")
            finish([a, c])
            if results["a"] == "x":
                outcomes["a"] += 1
                assert q.qsize() == 0, (i, results)
                q.put("y")  # B is still waiting
                join_promptly(b)
                assert results["b"] == "y"
            else:
                # A was cancelled; whether the put's wake-up reached A first or not, B
                # gets the item (B waits without a timeout: a lost wake-up strands it).
                outcomes["b"] += 1
                assert results["a"] == "cancelled", (i, results)
                b.join(PROMPT)
                if b.is_alive():
                    q.put("release")
                    finish([b])
                    pytest.fail(f"round {i}: the item's wake-up was lost")
                assert results["b"] == "x"
            b.result()
            assert q.qsize() == 0 and parked(resource) == 0
        assert sum(outcomes.values()) == RACE_ROUNDS


# =======================================================================================
class TestTimeouts:
    """``timeout=`` keeps ``queue``'s meaning; a scope's deadline raises Cancelled."""

    @pytest.mark.parametrize("make", [Queue, LifoQueue, SimpleQueue])
    def test_timed_get_raises_empty(self, make: Callable[[], Any]) -> None:
        q = make()
        for timeout in (0, 0.02):
            t0 = time.monotonic()
            with pytest.raises(Empty):
                q.get(timeout=timeout)
            assert timeout <= time.monotonic() - t0 < timeout + PROMPT
        assert q.empty()

    @pytest.mark.parametrize("kind", [Queue, PriorityQueue])
    def test_timed_put_raises_full(self, kind: type) -> None:
        q = kind(1)
        q.put(1)
        for timeout in (0, 0.02):
            t0 = time.monotonic()
            with pytest.raises(Full):
                q.put(2, timeout=timeout)
            assert timeout <= time.monotonic() - t0 < timeout + PROMPT
        assert list(q.queue) == [1] and q.unfinished_tasks == 1
        no_waiters(q)

    def test_timeout_inside_a_later_deadline(self) -> None:
        q: Queue[int] = Queue(1)
        sq: SimpleQueue[int] = SimpleQueue()
        with threadkit.move_on_after(30) as scope:
            with pytest.raises(Empty):
                q.get(timeout=0.01)
            with pytest.raises(Empty):
                sq.get(timeout=0.01)
            q.put(1)
            with pytest.raises(Full):
                q.put(2, timeout=0.01)
            with pytest.raises(Full):
                q.put(2, True, 0)
        assert not scope.cancelled_caught
        with threadkit.fail_after(30), pytest.raises(Empty):  # Empty, not TimeoutError
            Queue().get(timeout=0.01)
        no_waiters(q)

    @pytest.mark.parametrize(
        "make",
        [lambda: QueueGet(timeout=30), lambda: QueuePut(timeout=30), lambda: SimpleGet(30)],
        ids=["Queue.get", "Queue.put", "SimpleQueue.get"],
    )
    def test_earlier_deadline_wins(self, make: Callable[[], Blocked]) -> None:
        case = make()
        t0 = time.monotonic()
        with threadkit.move_on_after(DEADLINE) as scope:
            case.call()
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < PROMPT
        case.check()
        case.close()

    def test_timed_calls_woken_before_their_timeout(self) -> None:
        q: Queue[str] = Queue(1)
        getter = spawn(lambda: q.get(timeout=30))
        wait_until_parked(q.not_empty, 1)
        q.put("x")
        join_promptly(getter)
        assert getter.result() == "x"
        q.put("y")
        putter = spawn(lambda: q.put("z", timeout=30))
        wait_until_parked(q.not_full, 1)
        assert q.get() == "y"
        join_promptly(putter)
        assert putter.result() is None and list(q.queue) == ["z"]
        sq: SimpleQueue[str] = SimpleQueue()
        getter = spawn(lambda: sq.get(timeout=30))
        wait_until_parked(sq, 1)
        sq.put("s")
        join_promptly(getter)
        assert getter.result() == "s"


# =======================================================================================
class TestCompat:
    """What code written for ``queue`` reaches into keeps working."""

    def test_hooks_are_called_under_the_mutex(self) -> None:
        q = Recording(2)
        q.put(1)
        q.put_nowait(2)
        assert q.calls.count("_put") == 2
        with pytest.raises(Full):
            q.put_nowait(3)
        assert q.qsize() == 2 and q.full() and not q.empty()
        assert q.get() == 1 and q.get_nowait() == 2  # FIFO through the list
        assert q.calls.count("_get") == 2
        with pytest.raises(Empty):
            q.get_nowait()
        # A blocked get, woken by a put, goes through the hooks too.
        t = spawn(q.get)
        wait_until_parked(q.not_empty, 1)
        q.put(3)
        join_promptly(t)
        assert t.result() == 3
        assert q.calls.count("_put") == 3 and q.calls.count("_get") == 3
        assert q.queue == []

    def test_unbounded_put_and_get_respect_single_overrides(self) -> None:
        d = Doubling()
        d.put("x")
        assert list(d.queue) == ["x", "x"] and d.qsize() == 2
        assert d.get() == "x" and d.get_nowait() == "x"
        lab = Labelled()
        lab.put("y")
        lab.put("z")
        assert lab.get() == ("got", "y")
        assert lab.get_nowait() == ("got", "z")
        lab.put("w")
        assert lab.get(timeout=1) == ("got", "w")

    def test_custom_init_container(self) -> None:
        class Bag(Queue[int]):
            def _init(self, maxsize: int) -> None:
                self.queue = set()
                self.seen_maxsize = maxsize

            def _put(self, item: int) -> None:
                self.queue.add(item)

            def _get(self) -> int:
                return self.queue.pop()

        q = Bag(3)
        assert q.seen_maxsize == 3
        for item in (1, 1, 2):
            q.put(item)
        assert q.qsize() == 2 and q.unfinished_tasks == 3
        assert {q.get(), q.get()} == {1, 2}
        with pytest.raises(Empty):
            q.get(timeout=0)

    def test_lifo_and_priority_order(self) -> None:
        lifo: LifoQueue[int] = LifoQueue()
        prio: PriorityQueue[tuple[int, str]] = PriorityQueue()
        for i in range(5):
            lifo.put(i)
        assert [lifo.get() for _ in range(5)] == [4, 3, 2, 1, 0]
        for item in [(3, "c"), (1, "a"), (4, "d"), (1, "A"), (2, "b")]:
            prio.put(item)
        assert [prio.get_nowait() for _ in range(5)] == [
            (1, "A"),
            (1, "a"),
            (2, "b"),
            (3, "c"),
            (4, "d"),
        ]
        # Bounded, with a putter blocked: the order still holds once it gets in.
        lb: LifoQueue[int] = LifoQueue(2)
        lb.put(1)
        lb.put(2)
        t = spawn(lb.put, 3)
        wait_until_parked(lb.not_full, 1)
        assert lb.get() == 2
        join_promptly(t)
        assert [lb.get(), lb.get()] == [3, 1]

    def test_maxsize_changed_after_construction(self) -> None:
        q: Queue[int] = Queue(1)
        q.put(1)
        assert q.full()
        with pytest.raises(Full):
            q.put_nowait(2)
        q.maxsize = 2
        assert not q.full()
        q.put_nowait(2)
        assert q.full()
        q.maxsize = 0  # unbounded from now on
        for item in range(3, 6):
            q.put_nowait(item)
        assert not q.full() and q.qsize() == 5
        q.maxsize = 3  # smaller than the queue: full, and puts are refused
        assert q.full()
        with pytest.raises(Full):
            q.put_nowait(6)
        with pytest.raises(Full):
            q.put(6, timeout=0)
        plain: Queue[int] = Queue()  # unbounded at first: the fast path must see the bound
        plain.maxsize = 1
        plain.put(1)
        with pytest.raises(Full):
            plain.put_nowait(2)

    def test_raised_maxsize_with_notify_lets_a_putter_in(self) -> None:
        q: Queue[int] = Queue(1)
        q.put(1)
        t = spawn(q.put, 2)
        wait_until_parked(q.not_full, 1)
        with q.mutex:
            q.maxsize = 2
            q.not_full.notify()
        join_promptly(t)
        assert list(q.queue) == [1, 2]

    def test_clear_under_mutex_unblocks_a_putter(self) -> None:
        """The idiom: ``with q.mutex: q.queue.clear(); ...; q.not_full.notify_all()``."""
        q: Queue[str] = Queue(2)
        q.put("a")
        q.put("b")
        putters = [spawn(q.put, "c"), spawn(lambda: q.put("d", timeout=30))]
        wait_until_parked(q.not_full, 2)
        with q.mutex:
            q.queue.clear()
            q.unfinished_tasks = 0
            q.not_full.notify_all()
        for t in putters:
            join_promptly(t)
            assert t.result() is None
        assert sorted(q.queue) == ["c", "d"] and q.unfinished_tasks == 2
        no_waiters(q)

    def test_conditions_usable_from_outside(self) -> None:
        q: Queue[int] = Queue()
        seen: list[int] = []

        def watch() -> None:
            with q.not_empty:
                q.not_empty.wait_for(lambda: q._qsize() > 0)
                seen.append(q._qsize())

        t = spawn(watch)
        wait_until_parked(q.not_empty, 1)
        q.put(1)  # notifies not_empty: the outside waiter wakes
        join_promptly(t)
        assert seen == [1]
        # And all_tasks_done, as code that waits for a count does.
        with q.all_tasks_done:
            assert q.unfinished_tasks == 1
        q.get()
        q.task_done()
        with q.all_tasks_done:
            assert q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, timeout=1)


# =======================================================================================
#: The deadlines of the cancelled gets and puts: expired already, or about as long as a
#: get or a put takes, so that some land as an item (or a free slot) arrives.
TINY = [0.0, 1e-6, 1e-5, 5e-5, 1e-4, 1e-3]
#: Producers, consumers, items per producer and rounds (with other seeds) per test.
PRODUCERS, CONSUMERS, PER_PRODUCER, ROUNDS = 4, 4, 3000, 3


class TestConservation:
    """Producers and consumers, with gets and puts cancelled at random: nothing lost."""

    @pytest.mark.parametrize(
        "kind,maxsize", [(Queue, 0), (Queue, 8), (PriorityQueue, 8), (LifoQueue, 3)]
    )
    def test_every_item_got_exactly_once(self, kind: type, maxsize: int, fast_switch: None) -> None:
        cancelled = sum(self._round(kind, maxsize, seed=round_ * 100) for round_ in range(ROUNDS))
        assert cancelled > 0  # the cancelling consumers were cancelled, some of the time

    def _round(self, kind: type, maxsize: int, seed: int) -> int:
        """One run; returns how many gets were cancelled."""
        q = kind(maxsize)
        stop = (1, -1, -1)  # sorts after every item, for the PriorityQueue
        got: list[list[Any]] = [[] for _ in range(CONSUMERS)]
        cancels = [0] * (PRODUCERS + CONSUMERS)

        def produce(i: int) -> None:
            rng = random.Random(seed + i)
            for k in range(PER_PRODUCER):
                item = (0, i, k)
                while True:
                    done = False
                    if maxsize and rng.random() < 0.2:
                        # A cancelled put must not have put the item: it is put again.
                        with threadkit.move_on_after(rng.choice(TINY)):
                            q.put(item)
                            done = True
                    else:
                        q.put(item)
                        done = True
                    if done:
                        break
                    cancels[i] += 1

        def consume(j: int) -> None:
            rng = random.Random(seed + 50 + j)
            cancelling = j % 2 == 0
            mine = got[j]
            while True:
                item = MISSING
                if cancelling:
                    with threadkit.move_on_after(rng.choice(TINY)):
                        item = q.get()
                    if item is MISSING:
                        cancels[PRODUCERS + j] += 1
                        continue
                else:
                    item = q.get()
                q.task_done()
                if item == stop:
                    return
                mine.append(item)

        ps = [spawn(produce, i) for i in range(PRODUCERS)]
        cs = [spawn(consume, j) for j in range(CONSUMERS)]
        try:
            finish(ps)
            with threadkit.fail_after(20):
                q.join()  # every item got and done (the stops go in after: LIFO)
            for _ in range(CONSUMERS):
                q.put(stop)
            with threadkit.fail_after(20):
                q.join()
            finish(cs)
        finally:
            release_all(q, ps + cs)
            join_all(ps + cs)
        everything = [item for mine in got for item in mine]
        expected = [(0, i, k) for i in range(PRODUCERS) for k in range(PER_PRODUCER)]
        assert len(everything) == len(expected)
        assert Counter(everything) == Counter(expected)
        assert q.unfinished_tasks == 0 and q.qsize() == 0
        no_waiters(q)
        return sum(cancels[PRODUCERS:])

    def test_simple_queue_every_item_got_exactly_once(self, fast_switch: None) -> None:
        cancelled = sum(self._simple_round(seed=round_ * 100) for round_ in range(ROUNDS))
        assert cancelled > 0

    def _simple_round(self, seed: int) -> int:
        """One run; returns how many gets were cancelled."""
        sq: SimpleQueue[Any] = SimpleQueue()
        got: list[list[Any]] = [[] for _ in range(CONSUMERS)]
        cancels = [0] * CONSUMERS

        def produce(i: int) -> None:
            for k in range(PER_PRODUCER):
                sq.put((i, k))

        def consume(j: int) -> None:
            rng = random.Random(seed + j)
            mine = got[j]
            while True:
                item = MISSING
                if j % 2 == 0:
                    with threadkit.move_on_after(rng.choice(TINY)):
                        item = sq.get()
                    if item is MISSING:
                        cancels[j] += 1
                        continue
                elif j == 1:
                    try:
                        item = sq.get(timeout=rng.choice(TINY))
                    except Empty:
                        continue
                else:
                    item = sq.get()
                if item is None:
                    return
                mine.append(item)

        ps = [spawn(produce, i) for i in range(PRODUCERS)]
        cs = [spawn(consume, j) for j in range(CONSUMERS)]
        try:
            finish(ps)
            for _ in range(CONSUMERS):
                sq.put(None)
            join_all(cs, timeout=20)
            finish(cs)
        finally:
            for t in cs:
                if t.is_alive():
                    sq.put(None)
            join_all(ps + cs)
        everything = [item for mine in got for item in mine]
        expected = [(i, k) for i in range(PRODUCERS) for k in range(PER_PRODUCER)]
        assert Counter(everything) == Counter(expected) and len(everything) == len(expected)
        assert sq.empty() and len(sq._waiters) == 0
        return sum(cancels)


# =======================================================================================
class _AtLine:
    """Trace function for the calling thread: at the ``target``-th 'line' event of
    threadkit's code, run ``action()`` there, as a finaliser, a gc callback or a signal
    handler would run at that point."""

    def __init__(self, target: int | None, action: Callable[[], object]) -> None:
        self.target = target
        self.action = action
        self.count = 0
        self.where: tuple[str, int] | None = None

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        return self._line if frame.f_code.co_filename.startswith(_PKG_DIR) else None

    def _line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.count += 1
            if self.count == self.target:
                self.where = (frame.f_code.co_qualname, frame.f_lineno)
                self.action()  # not traced itself: the interpreter is inside the tracer
        return self._line

    def run(self, call: Callable[[], Any]) -> Any:
        previous = sys.gettrace()
        sys.settrace(self.trace)
        try:
            return call()
        finally:
            sys.settrace(previous)


class TestReentrancy:
    """``SimpleQueue.put`` reentered from the same thread never deadlocks, nor strands a
    getter."""

    def test_put_with_the_mutex_held_by_the_same_thread(self) -> None:
        sq: SimpleQueue[str] = SimpleQueue()
        getter = spawn(lambda: [sq.get(timeout=10), sq.get(timeout=10)])
        wait_until_parked(sq, 1)
        with sq._mutex:
            sq.put("a")  # returns: no deadlock on the reentrant lock
            assert sq.qsize() == 1
            with sq._mutex:
                sq.put_nowait("b")
        sq.put("c")  # whatever the held mutex skipped, the getter gets its two
        join_promptly(getter)
        assert getter.result() == ["a", "b"]
        assert sq.get_nowait() == "c" and sq.empty()
        assert len(sq._waiters) == 0

    def test_put_while_a_getter_holds_the_mutex_then_leaves(self) -> None:
        """A put made while this thread withdraws from the wait queue (holding the mutex)
        is passed on to the next getter when it leaves."""
        sq: SimpleQueue[str] = SimpleQueue()
        other = spawn(lambda: sq.get(timeout=10))
        wait_until_parked(sq, 1)
        rec = _core.current_record()
        node = sq._waitq.add(rec, sq, "get")
        sq.put("x")  # wakes `other`, the oldest waiter
        join_promptly(other)
        assert other.result() == "x"
        other = spawn(lambda: sq.get(timeout=10))
        wait_until_parked(sq, 2)  # behind this thread's node
        with sq._mutex:
            sq.put("y")  # reentered: no wake-up
            sq._waitq.withdraw_locked(node)
        assert sq.get() == "y"  # this thread leaves with an item; `other` needs another
        sq.put("z")
        join_promptly(other)
        assert other.result() == "z"
        assert len(sq._waiters) == 0

    @staticmethod
    def _settle(sq: SimpleQueue[Any], getters: list[threadkit.Thread]) -> bool:
        """Join the getters; True if one was left parked with an item for it (a lost
        wake-up: its long timeout would hide it), which is then woken to finish."""
        stranded = False
        for t in getters:
            t.join(PROMPT)
            while t.is_alive():
                stranded = True
                sq._waitq.unpark_all()
                t.join(0.01)
        return stranded

    def test_put_injected_at_every_line_of_put(self) -> None:
        """Two getters wait; a put reentered at any line of another put (as a finaliser
        or a signal handler would make it): each getter gets one of the two items,
        without waiting for anything else."""

        def run(target: int | None) -> tuple[_AtLine, list[Any], bool]:
            sq: SimpleQueue[str] = SimpleQueue()
            getters = []
            for i in range(2):
                getters.append(spawn(lambda: sq.get(timeout=30)))
                wait_until_parked(sq, i + 1)
            inj = _AtLine(target, lambda: sq.put("injected"))
            inj.run(lambda: sq.put("x"))
            if inj.where is None:
                sq.put("injected")  # not injected: this run took a shorter path
            stranded = self._settle(sq, getters)
            assert sq.empty() and len(sq._waiters) == 0
            return inj, [t.result() for t in getters], stranded

        counted, received, stranded = run(None)
        assert counted.count > 0 and sorted(received) == ["injected", "x"] and not stranded
        for n in range(1, counted.count + 1):
            inj, received, stranded = run(n)
            assert not stranded, f"put injected at {inj.where}: a getter was left parked"
            assert sorted(received) == ["injected", "x"], (n, inj.where)

    def test_put_injected_at_every_line_of_a_parked_get(self) -> None:
        """This thread parks in get, a second getter queues behind it, an item arrives;
        a put reentered at any line of the get: each of the two gets one item, without
        waiting for anything else."""
        me = threading.get_ident()

        def run(target: int | None) -> tuple[_AtLine, list[Any], bool]:
            sq: SimpleQueue[str] = SimpleQueue()
            ended = threading.Event()
            second: list[threadkit.Thread] = []
            put_at = [math.inf]
            failed: list[BaseException] = []

            def waiting(ident: int) -> bool:
                return any(rec.ident == ident for rec in _core.waiting_on(sq))

            def feed() -> None:
                # Once this thread is queued (or its get is over): a second getter
                # behind it, then the item. (The second one may find the injected
                # item and leave at once: then the item is this thread's.)
                try:
                    wait_until(lambda: waiting(me) or ended.is_set())
                    second.append(spawn(lambda: sq.get(timeout=30)))
                    t = second[0]
                    wait_until(lambda: waiting(t.ident or 0) or not t.is_alive())
                except BaseException as exc:
                    failed.append(exc)
                finally:
                    put_at[0] = time.monotonic()
                    sq.put("x")

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            inj = _AtLine(target, lambda: sq.put("injected"))
            try:
                value = inj.run(lambda: sq.get(timeout=30))
            finally:
                ended.set()
                feeder.join(10)
            stranded = time.monotonic() - put_at[0] > PROMPT  # this thread was
            if inj.where is None:
                sq.put("injected")
            stranded |= self._settle(sq, second)
            assert not failed, failed
            assert sq.empty() and len(sq._waiters) == 0
            return inj, [value, second[0].result()], stranded

        counted, received, stranded = run(None)
        assert counted.count > 0 and sorted(received) == ["injected", "x"] and not stranded
        for n in range(1, counted.count + 1):
            inj, received, stranded = run(n)
            assert not stranded, f"put injected at {inj.where}: a getter was left parked"
            assert sorted(received) == ["injected", "x"], (n, inj.where)

    def test_puts_from_gc_callbacks_and_finalisers(self) -> None:
        """gc callbacks, ``__del__`` methods and weakref finalisers put into the queue
        wherever a collection happens, inside puts and gets on it too: no deadlock, and
        every item is got exactly once."""
        sq: SimpleQueue[Any] = SimpleQueue()
        sent: list[Any] = []
        active = [True]
        counter = iter(range(10**9))
        end = ("end", -1)

        def put_from(kind: str) -> None:
            if active[0]:
                item = (kind, next(counter))
                sent.append(item)
                sq.put(item)

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                put_from("gc")

        class Cyclic:
            def __init__(self) -> None:
                self.me = self

            def __del__(self) -> None:
                put_from("del")

        def garbage() -> None:
            obj = Cyclic()
            weakref.finalize(obj, put_from, "weakref")
            del obj

        def consume() -> list[Any]:
            mine = []
            while True:
                item = sq.get(timeout=10)
                if item == end:
                    return mine
                mine.append(item)
                if item[0] == "main":  # garbage for the main thread's items only: bounded
                    garbage()

        threshold = gc.get_threshold()
        gc.set_threshold(5)
        gc.callbacks.append(on_gc)
        consumers = [spawn(consume) for _ in range(2)]
        try:
            for i in range(3000):
                garbage()
                item = ("main", i)
                sent.append(item)
                sq.put(item)
        finally:
            gc.collect()
            active[0] = False
            gc.callbacks.remove(on_gc)
            gc.set_threshold(*threshold)
            sq.put(end)
            sq.put(end)
            finish(consumers)
        received = [item for t in consumers for item in t.result()]
        while not sq.empty():
            received.append(sq.get_nowait())
        assert Counter(received) == Counter(sent)
        # Collections happened (with the GIL, every kind of callback ran; without it,
        # when finalisers run is less certain).
        assert {kind for kind, _ in sent} & {"gc", "del", "weakref"}
        assert len(sq._waiters) == 0


# =======================================================================================
class TestInterrupts:
    """Ctrl-C at a parked queue call comes out promptly and leaves the queue consistent."""

    @pytest.fixture(autouse=True)
    def _in_main_thread(self) -> None:
        assert threading.get_ident() == _MAIN, "these tests interrupt the main thread"
        _core.current_record()

    @pytest.mark.parametrize("timeout", [None, 60.0])
    def test_real_sigint_at_get(self, timeout: float | None) -> None:
        q: Queue[str] = Queue()
        _interrupt(_main_parked_on(q.not_empty), lambda: q.get(timeout=timeout))
        assert q.qsize() == 0
        no_waiters(q)
        q.put("x")
        assert q.get_nowait() == "x"

    def test_real_sigint_at_put_and_join(self) -> None:
        q: Queue[str] = Queue(1)
        q.put("a")
        _interrupt(_main_parked_on(q.not_full), lambda: q.put("b"))
        assert list(q.queue) == ["a"] and q.unfinished_tasks == 1
        no_waiters(q)
        _interrupt(_main_parked_on(q.all_tasks_done), q.join)
        assert q.unfinished_tasks == 1
        no_waiters(q)

    def test_real_sigint_at_simple_queue_get(self) -> None:
        sq: SimpleQueue[str] = SimpleQueue()
        _interrupt(_main_parked_on(sq), sq.get)
        assert sq.empty() and len(sq._waiters) == 0

    def test_interrupted_getter_passes_its_turn(self) -> None:
        q: Queue[str] = Queue()
        ready, others = _then_other(q.not_empty, lambda: q.get(timeout=10))
        _interrupt(ready, q.get)
        assert len(q.not_empty._waiters) == 1  # only the other getter
        q.put("x")
        assert others[0].join() == "x"
        no_waiters(q)


# -- a KeyboardInterrupt at every line: tests/test_interrupts.py's harness ----------------
ITEMS = "items"  # an item lost, duplicated or counted wrongly (the first word of a problem)


class _OwnedBy:
    """The harness's view of a SimpleQueue's RLock: "held" is held by the main thread
    (where the checks run), the only thread an interrupt could make leave it held."""

    def __init__(self, rlock: Any) -> None:
        self.rlock = rlock

    def locked(self) -> bool:
        return bool(self.rlock._is_owned())

    def release(self) -> None:
        self.rlock.release()


class _QueueScenario(Scenario):
    q: Any

    def queues(self) -> dict[str, WaitQueue]:
        q = self.q
        return {
            "not_empty": q.not_empty._queue,
            "not_full": q.not_full._queue,
            "all_tasks_done": q.all_tasks_done._queue,
            "mutex": q.mutex._queue,
        }

    def mutexes(self) -> dict[str, Any]:
        q = self.q
        return {
            "q.mutex": q.mutex,
            "q.mutex's queue": q.mutex._queue.mutex,
            "not_empty's queue": q.not_empty._queue.mutex,
            "not_full's queue": q.not_full._queue.mutex,
            "all_tasks_done's queue": q.all_tasks_done._queue.mutex,
        }

    def other_succeeded(self) -> bool:
        return self.other is not None and self.other.exc is None


class _Getting(Scenario):
    """A get in the main thread: an item is there already, or a helper puts one once the
    main thread is parked; with ``two_waiters`` a second getter waits behind it, and
    must get the item whenever the main thread's get raised."""

    kwargs: ClassVar[dict[str, Any]] = {}
    preload: ClassVar[bool] = False
    counted: ClassVar[bool] = True  # unfinished_tasks must be the number of items put
    q: Any

    def make(self) -> Any:
        raise NotImplementedError

    def prepare(self) -> None:
        self.q = self.make()
        self.sent: list[str] = []
        if self.preload:
            self.send("a")

    def send(self, item: str) -> None:
        self.sent.append(item)
        self.q.put(item)

    def call(self) -> Any:
        return self.q.get(**self.kwargs)

    def resource(self) -> object:
        raise NotImplementedError

    def helper(self) -> None:
        if not self.preload and self.wait_blocked(self.resource()):
            if self.two_waiters:
                self.start_other(lambda: self.q.get(timeout=W_TIMEOUT), self.resource())
            self.send("x")
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        if out.returned and out.value not in self.sent:
            self.problem(RESULT, f"get() returned {out.value!r}")
        passed_on = self.did_act and out.raised is not None
        theirs = self.finish_other(passed_on, "the item's wake-up was lost", lambda: self.send("y"))
        got = [out.value] if out.returned else []
        if self.other is not None and self.other.exc is None:
            got.append(theirs)
        left = list(self.q.queue) if hasattr(self.q, "queue") else list(self.q._items)
        if Counter(got + left) != Counter(self.sent):
            self.problem(ITEMS, f"got {got} + left {left} != put {self.sent}")
        if self.counted and self.q.unfinished_tasks != len(self.sent):
            self.problem(ITEMS, f"unfinished_tasks {self.q.unfinished_tasks} != {len(self.sent)}")


class QueueGetScenario(_Getting, _QueueScenario):
    kind: ClassVar[Callable[[], Any]] = Queue

    def make(self) -> Any:
        return self.kind()

    def resource(self) -> object:
        return self.q.not_empty


class SimpleGetScenario(_Getting):
    counted = False

    def make(self) -> Any:
        return SimpleQueue()

    def resource(self) -> object:
        return self.q

    def queues(self) -> dict[str, WaitQueue]:
        return {"sq._waitq": self.q._waitq}

    def mutexes(self) -> dict[str, Any]:
        return {"sq._mutex": _OwnedBy(self.q._mutex)}


class QueuePutScenario(_QueueScenario):
    """put() on a full Queue(1); a helper gets an item once the main thread is parked.
    With ``two_waiters`` a second putter waits behind it and must get the free slot
    whenever the main thread's put raised."""

    kind: ClassVar[Callable[[int], Any]] = Queue
    kwargs: ClassVar[dict[str, Any]] = {}
    room: ClassVar[bool] = False  # not full: the put does not wait

    def prepare(self) -> None:
        self.q = self.kind(2 if self.room else 1)
        self.q.put("a")
        self.taken: list[str] = []

    def call(self) -> Any:
        return self.q.put("m", **self.kwargs)

    def helper(self) -> None:
        if not self.room and self.wait_blocked(self.q.not_full):
            if self.two_waiters:
                self.start_other(lambda: self.q.put("o", timeout=W_TIMEOUT), self.q.not_full)
            self.taken.append(self.q.get())
            self.did_act = True

    def _make_room(self) -> None:
        try:
            self.taken.append(self.q.get_nowait())
        except Empty:
            with self.q.not_full:
                self.q.not_full.notify()

    def check(self, out: _Outcome) -> None:
        if out.returned and out.value is not None:
            self.problem(RESULT, f"put() returned {out.value!r}")
        passed_on = self.did_act and out.raised is not None
        self.finish_other(passed_on, "the free slot's wake-up was lost", self._make_room)
        expected = (
            ["a"] + (["m"] if out.returned else []) + (["o"] if self.other_succeeded() else [])
        )
        actual = self.taken + list(self.q.queue)
        if Counter(actual) != Counter(expected):
            self.problem(ITEMS, f"taken {self.taken} + left {list(self.q.queue)} != {expected}")
        if self.q.unfinished_tasks != len(expected):
            self.problem(ITEMS, f"unfinished_tasks {self.q.unfinished_tasks} != {len(expected)}")


class QueueJoinScenario(_QueueScenario):
    """join() with a task unfinished; a helper says task_done() once it is parked."""

    done_already: ClassVar[bool] = False

    def prepare(self) -> None:
        self.q = Queue()
        if not self.done_already:
            self.q.put("a")
            self.q.get()

    def call(self) -> Any:
        return self.q.join()

    def helper(self) -> None:
        if not self.done_already and self.wait_blocked(self.q.all_tasks_done):
            if self.two_waiters:
                self.start_other(self.q.join, self.q.all_tasks_done)
            self.q.task_done()
            self.did_act = True

    def check(self, out: _Outcome) -> None:
        unfinished = self.q.unfinished_tasks
        if out.returned and (out.value is not None or unfinished):
            self.problem(RESULT, f"join() returned {out.value!r} with {unfinished} unfinished")
        self.finish_other(self.did_act, "task_done()'s wake-up was lost", self.q.task_done)
        want = 0 if self.did_act or self.done_already else 1
        if self.q.unfinished_tasks != want:
            self.problem(ITEMS, f"unfinished_tasks {self.q.unfinished_tasks} != {want}")


class _QueueReleasing(_Releasing, _QueueScenario):
    """A non-blocking queue call by the main thread that must wake a parked thread."""

    def other_result(self) -> Any:
        return None if self.other is None else self.other.result


class TaskDoneScenario(_QueueReleasing):
    name = "Queue.task_done() with a joiner"

    def prepare(self) -> None:
        self.q = Queue()
        self.q.put("a")
        self.q.get()
        self.resource = self.q.all_tasks_done
        self.park_other(self.q.join)

    def call(self) -> Any:
        return self.q.task_done()

    def undo(self) -> None:
        if self.q.unfinished_tasks:
            self.q.task_done()
        else:
            with self.q.all_tasks_done:
                self.q.all_tasks_done.notify_all()

    def check(self, out: _Outcome) -> None:
        n = self.q.unfinished_tasks
        if n != (0 if out.returned else 1):
            self.problem(ITEMS, f"task_done() {'returned' if out.returned else 'raised'}: {n} left")
        super().check(out)
        if self.q.unfinished_tasks != 0:
            self.problem(ITEMS, f"unfinished_tasks {self.q.unfinished_tasks} at the end")


class ShutdownScenario(_QueueReleasing):
    """shutdown() with a getter parked (which must raise ShutDown), or, ``immediate``,
    with two items queued and a joiner parked (which must return)."""

    immediate: ClassVar[bool] = False

    def prepare(self) -> None:
        self.q = Queue()
        if self.immediate:
            self.q.put("a")
            self.q.put("b")
            self.resource = self.q.all_tasks_done
            self.park_other(self.q.join)
        else:
            self.resource = self.q.not_empty
            self.park_other(self._get)

    def _get(self) -> str:
        try:
            return str(self.q.get(timeout=W_TIMEOUT))
        except ShutDown:
            return "shut down"

    def call(self) -> Any:
        return self.q.shutdown(immediate=self.immediate)

    def undo(self) -> None:
        self.q.shutdown(immediate=self.immediate)

    def check(self, out: _Outcome) -> None:
        q = self.q
        state = (q.is_shutdown, list(q.queue), q.unfinished_tasks)
        if out.returned:
            want = (True, [], 0)
        else:
            want = (False, ["a", "b"], 2) if self.immediate else (False, [], 0)
        if state != want:
            self.problem(ITEMS, f"shutdown() returned={out.returned}: state {state}, want {want}")
        super().check(out)
        result = self.other_result()
        if result != (None if self.immediate else "shut down"):
            self.problem(WAKEUP, f"the parked thread ended with {result!r}")


class PutWokenScenario(_QueueReleasing):
    """put() with a getter parked: it must get the item whenever put returned."""

    maxsize: ClassVar[int] = 0

    def prepare(self) -> None:
        self.q = Queue(self.maxsize)
        self.resource = self.q.not_empty
        self.park_other(lambda: self.q.get(timeout=W_TIMEOUT))

    def call(self) -> Any:
        return self.q.put("x")

    def undo(self) -> None:
        if self.q.qsize():
            with self.q.not_empty:
                self.q.not_empty.notify()
        else:
            self.q.put("x")

    def check(self, out: _Outcome) -> None:
        if out.raised is not None and (self.q.qsize() or self.q.unfinished_tasks):
            self.problem(ITEMS, "put() raised but the item went in")
        super().check(out)
        if self.other_result() != "x" or self.q.qsize() or self.q.unfinished_tasks != 1:
            self.problem(ITEMS, f"getter got {self.other_result()!r}, left {list(self.q.queue)}")


class GetWokenScenario(_QueueReleasing):
    """get() from a full Queue(1) with a putter parked: it must get the slot."""

    name = "Queue(1).get() with a putter"

    def prepare(self) -> None:
        self.q = Queue(1)
        self.q.put("a")
        self.resource = self.q.not_full
        self.park_other(lambda: self.q.put("b", timeout=W_TIMEOUT))
        self.taken: list[str] = []

    def call(self) -> Any:
        return self.q.get()

    def undo(self) -> None:
        try:
            self.taken.append(self.q.get_nowait())
        except Empty:
            with self.q.not_full:
                self.q.not_full.notify()

    def check(self, out: _Outcome) -> None:
        if out.returned and out.value != "a":
            self.problem(RESULT, f"get() returned {out.value!r}")
        if out.raised is not None and list(self.q.queue) != ["a"]:
            self.problem(ITEMS, f"get() raised, the queue holds {list(self.q.queue)}")
        super().check(out)
        got = ([out.value] if out.returned else []) + self.taken
        if Counter(got + list(self.q.queue)) != Counter(["a", "b"]) or not self.other_succeeded():
            self.problem(ITEMS, f"got {got}, left {list(self.q.queue)}")
        if self.q.unfinished_tasks != 2:
            self.problem(ITEMS, f"unfinished_tasks {self.q.unfinished_tasks} != 2")


class SimplePutWokenScenario(_Releasing):
    name = "SimpleQueue.put() with a getter"

    def prepare(self) -> None:
        self.q = self.resource = SimpleQueue()
        self.park_other(lambda: self.q.get(timeout=W_TIMEOUT))

    def call(self) -> Any:
        return self.q.put("x")

    def queues(self) -> dict[str, WaitQueue]:
        return {"sq._waitq": self.q._waitq}

    def mutexes(self) -> dict[str, Any]:
        return {"sq._mutex": _OwnedBy(self.q._mutex)}

    def undo(self) -> None:
        if self.q.empty():
            self.q.put("x")
        else:
            self.q._waitq.unpark(1)

    def check(self, out: _Outcome) -> None:
        if out.raised is not None and not self.q.empty():
            self.problem(ITEMS, "put() raised but the item went in")
        super().check(out)
        result = None if self.other is None else self.other.result
        if result != "x" or not self.q.empty():
            self.problem(ITEMS, f"getter got {result!r}, {self.q.qsize()} left")


def _variant(base: type[Scenario], name: str, **attrs: Any) -> type[Scenario]:
    return type(base.__name__, (base,), {"name": name, **attrs})


KI_SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in [
        _variant(QueueGetScenario, "Queue.get() item arrives"),
        _variant(QueueGetScenario, "Queue.get() item there", preload=True),
        _variant(
            QueueGetScenario, "Queue.get(timeout=5) item there", preload=True, kwargs={"timeout": 5}
        ),
        _variant(QueueGetScenario, "Queue.get(timeout=5) item arrives", kwargs={"timeout": 5}),
        _variant(QueueGetScenario, "Queue.get() item arrives, second getter", two_waiters=True),
        _variant(
            QueueGetScenario,
            "LifoQueue.get(timeout=5) item arrives, second getter",
            kind=LifoQueue,
            kwargs={"timeout": 5},
            two_waiters=True,
        ),
        _variant(SimpleGetScenario, "SimpleQueue.get() item arrives"),
        _variant(SimpleGetScenario, "SimpleQueue.get() item there", preload=True),
        _variant(
            SimpleGetScenario,
            "SimpleQueue.get(timeout=5) item arrives, second getter",
            kwargs={"timeout": 5},
            two_waiters=True,
        ),
        _variant(QueuePutScenario, "Queue(2).put() room", room=True),
        _variant(QueuePutScenario, "Queue(1).put() full, slot freed"),
        _variant(
            QueuePutScenario, "Queue(1).put(timeout=5) full, slot freed", kwargs={"timeout": 5}
        ),
        _variant(
            QueuePutScenario, "Queue(1).put() full, slot freed, second putter", two_waiters=True
        ),
        _variant(
            QueuePutScenario,
            "PriorityQueue(1).put(timeout=5) full, second putter",
            kind=PriorityQueue,
            kwargs={"timeout": 5},
            two_waiters=True,
        ),
        _variant(QueueJoinScenario, "Queue.join() nothing unfinished", done_already=True),
        _variant(QueueJoinScenario, "Queue.join() task done"),
        _variant(QueueJoinScenario, "Queue.join() task done, second joiner", two_waiters=True),
        TaskDoneScenario,
        _variant(ShutdownScenario, "Queue.shutdown() with a getter"),
        _variant(ShutdownScenario, "Queue.shutdown(immediate=True) with a joiner", immediate=True),
        _variant(PutWokenScenario, "Queue.put() with a getter"),
        _variant(PutWokenScenario, "Queue(3).put() with a getter", maxsize=3),
        GetWokenScenario,
        SimplePutWokenScenario,
    ]
}


@pytest.mark.parametrize("name", list(KI_SCENARIOS))
def test_keyboard_interrupt_at_every_line(name: str) -> None:
    """At every threadkit line of the call, a Ctrl-C loses, duplicates or miscounts no
    item, leaves no mutex held and no ghost waiter, and swallows no wake-up."""
    assert threading.get_ident() == _MAIN, "these tests interrupt the main thread"
    _core.current_record()
    report = explore(KI_SCENARIOS[name])
    assert report.count > 0
    assert not report.failures, "an interrupt at these lines broke something:\n" + report.text()
