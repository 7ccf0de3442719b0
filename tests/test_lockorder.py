"""Lock-order checking: inversions are reported once, with both stacks; orders that
agree, re-entry, trylocks, Condition.wait and foreign releases are not inversions."""

from __future__ import annotations

import contextlib
import gc
import itertools
import random
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit
import threadkit.diagnostics
import threadkit.queue
from helpers import finish, spawn, wait_until, wait_until_parked
from threadkit import _lockorder
from threadkit._core import _interrupts
from threadkit._lockorder import (
    LockOrderWarning,
    add_lock_order_listener,
    check_lock_order,
    held_locks,
    lock_order_enabled,
    lock_order_reports,
    reset_lock_order,
)

_NAMES = (
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


@pytest.fixture
def checking() -> Iterator[list[str]]:
    """Lock-order checking on, from an empty graph; yields the reports as they come."""
    assert not lock_order_enabled()
    reset_lock_order()
    got: list[str] = []
    remove = add_lock_order_listener(got.append)
    assert check_lock_order() is False
    try:
        yield got
    finally:
        assert check_lock_order(False) is True
        remove()
        reset_lock_order()


def in_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` in a threadkit thread to its end (re-raising what it raised)."""
    finish([spawn(fn)])


@contextlib.contextmanager
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def order_warnings(seen: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in seen if issubclass(w.category, LockOrderWarning)]


def make_pair() -> tuple[threadkit.Lock, threadkit.Lock]:
    first = threadkit.Lock()
    second = threadkit.Lock()
    return first, second


class TestInversions:
    def test_ab_ba_across_two_threads_warns_once_with_both_stacks(
        self, checking: list[str]
    ) -> None:
        a = threadkit.Lock()
        b = threadkit.Lock()

        def a_then_b() -> None:
            with a, b:
                pass

        def b_then_a() -> None:
            with b, a:  # the inverting acquisition
                pass

        in_thread(a_then_b)
        with caught() as seen:
            b_then_a()
            b_then_a()  # the same cycle again: not reported twice
        found = order_warnings(seen)
        assert len(found) == 1
        assert found[0].filename == __file__
        assert checking == lock_order_reports()
        assert len(checking) == 1
        report = checking[0]
        assert str(found[0].message) == report
        # Both classes by creation site, and both acquisition stacks.
        assert report.count(f"created at {__file__}:") == 2
        assert "in b_then_a" in report and "in a_then_b" in report
        assert "with b, a:  # the inverting acquisition" in report
        assert "Earlier, thread 'Thread-" in report
        # The warning came before the lock was taken; the lock was taken after it.
        assert not a.locked() and not b.locked()

    def test_three_lock_cycle(self, checking: list[str]) -> None:
        a = threadkit.Lock()
        b = threadkit.RLock()
        c = threadkit.Lock()

        def nest(outer: Any, inner: Any) -> Callable[[], None]:
            def run() -> None:
                with outer, inner:
                    pass

            return run

        in_thread(nest(a, b))
        in_thread(nest(b, c))
        assert checking == []
        with caught() as seen:
            nest(c, a)()
        assert len(order_warnings(seen)) == 1
        (report,) = checking
        assert "3 locks" in report
        assert report.count("Earlier, thread") == 2
        assert "threadkit.RLock object" in report  # the example repr

    def test_different_objects_from_the_same_sites(self, checking: list[str]) -> None:
        x1, y1 = make_pair()
        x2, y2 = make_pair()

        def forward() -> None:
            with x1, y1:
                pass

        in_thread(forward)
        with caught() as seen, y2, x2:  # never shares a lock with forward()
            pass
        assert len(order_warnings(seen)) == 1
        assert "in make_pair" in checking[0]

    def test_two_locks_made_on_one_line_are_two_classes(self, checking: list[str]) -> None:
        def pair() -> tuple[threadkit.Lock, threadkit.Lock]:
            return threadkit.Lock(), threadkit.Lock()

        p1, q1 = pair()
        p2, q2 = pair()
        with p1, q1:
            pass
        with caught() as seen, q2, p2:
            pass
        assert len(order_warnings(seen)) == 1

    def test_inversion_through_a_timed_acquire(self, checking: list[str]) -> None:
        a, b = make_pair()
        with a:
            assert b.acquire(timeout=5)
            b.release()
        with caught() as seen, b:
            assert a.acquire(True, 5)
            a.release()
        assert len(order_warnings(seen)) == 1

    def test_warnings_filter_turns_it_into_an_error(self, checking: list[str]) -> None:
        a, b = make_pair()
        with a, b:
            pass
        with warnings.catch_warnings():
            warnings.simplefilter("error", LockOrderWarning)
            with b:
                with pytest.raises(LockOrderWarning, match="lock order inversion"):
                    a.acquire()
                # Raised before the lock was taken: nothing to undo.
                assert not a.locked()
                assert held_locks(threadkit.get_ident()) == [b]
        assert len(checking) == 1

    def test_warn_points_at_the_programs_acquire_and_listeners_hear_first(
        self, checking: list[str]
    ) -> None:
        a, b = make_pair()
        heard: list[bool] = []
        remove = add_lock_order_listener(lambda report: heard.append(a.locked()))
        try:
            with a, b:
                pass
            with caught() as seen, b:
                line = sys._getframe().f_lineno + 1
                a.acquire()
                a.release()
        finally:
            remove()
        (w,) = order_warnings(seen)
        assert (w.filename, w.lineno) == (__file__, line)
        assert heard == [False]  # before the lock was taken
        remove()  # twice: harmless

    def test_a_failing_listener_does_not_break_the_acquire(
        self, checking: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hooked: list[type[BaseException] | None] = []
        monkeypatch.setattr("sys.excepthook", lambda t, v, tb: hooked.append(t))
        remove = add_lock_order_listener(lambda report: 1 / 0)
        try:
            a, b = make_pair()
            with a, b:
                pass
            with caught(), b, a:
                pass
        finally:
            remove()
        assert hooked == [ZeroDivisionError]
        assert len(checking) == 1


class TestNotInversions:
    def test_consistent_order_never_warns(self, checking: list[str]) -> None:
        a, b = make_pair()
        c = threadkit.RLock()
        for _ in range(3):
            with a, b, c:
                pass
            with a, c:
                pass
            with b, c:
                pass
        assert checking == []

    @pytest.mark.timeout(60)
    def test_many_threads_random_but_consistent_orders(self, checking: list[str]) -> None:
        # Distinct creation sites (class-level edges) and one site for many locks
        # (object-level edges), always taken in the index order of their list.
        sited = [
            threadkit.Lock(),
            threadkit.RLock(),
            threadkit.Lock(),
            threadkit.Lock(),
            threadkit.RLock(),
            threadkit.Lock(),
        ]
        same = [threadkit.Lock() for _ in range(6)]
        cond = threadkit.Condition()
        locks: list[Any] = [*sited, *same, cond]
        start = threadkit.Event()

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            start.wait()
            for _ in range(300):
                chosen = sorted(rng.sample(range(len(locks)), rng.randint(1, 5)))
                with contextlib.ExitStack() as stack:
                    for i in chosen:
                        stack.enter_context(locks[i])
                    if chosen[-1] == len(locks) - 1:
                        cond.wait(0)  # releases and re-takes the innermost lock

        threads = [spawn(worker, seed) for seed in range(8)]
        start.set()
        finish(threads)
        assert checking == []

    def test_rlock_reentry_adds_no_edge(self, checking: list[str]) -> None:
        r = threadkit.RLock()
        a = threadkit.Lock()
        with caught() as seen:
            with r, a, r:  # re-entering r while holding a: r cannot wait
                assert held_locks(threadkit.get_ident()) == [r, a]
                assert [h() for h in _lockorder._tls.held] == [r, a, r]  # one entry per level
                assert r.acquire(False)
                r.release()
            assert list(_lockorder._tls.held) == []
        assert order_warnings(seen) == []
        assert checking == []

    def test_trylock_adds_no_edge_but_counts_as_held(self, checking: list[str]) -> None:
        a, b = make_pair()
        c = threadkit.Lock()
        with a:
            assert b.acquire(False)  # cannot wait: no a -> b
            with c:  # b is held: b -> c
                pass
            b.release()
        with caught() as seen:
            with b, a:  # b -> a closes nothing
                pass
            with c, b:  # c -> b closes b -> c
                pass
        assert len(order_warnings(seen)) == 1
        assert len(checking) == 1

    def test_same_class_nesting_is_checked_per_object(self, checking: list[str]) -> None:
        nodes = [threadkit.Lock() for _ in range(5)]
        # Hand over hand, the same direction twice: no report.
        for _ in range(2):
            nodes[0].acquire()
            for prev, nxt in itertools.pairwise(nodes):
                nxt.acquire()
                prev.release()
            nodes[-1].release()
        assert checking == []
        # The same two objects in both orders: reported.
        with caught() as seen, nodes[3], nodes[2]:
            pass
        assert len(order_warnings(seen)) == 1
        assert "one of those created at" in checking[0]

    def test_lock_released_by_another_thread(self, checking: list[str]) -> None:
        signal = threadkit.Lock()
        b = threadkit.Lock()
        me = threadkit.get_ident()
        signal.acquire()
        assert held_locks(me) == [signal]
        in_thread(signal.release)  # allowed for a Lock: it is a signal here
        assert held_locks(me) == []
        assert not signal.locked()
        with b:  # signal is not held: no signal -> b
            pass
        with caught() as seen, b, signal:
            pass
        assert order_warnings(seen) == []

    def test_lock_waited_on_as_a_signal_by_its_holder(self, checking: list[str]) -> None:
        done = threadkit.Lock()
        other = threadkit.Lock()
        done.acquire()
        helper = spawn(lambda: (wait_until_parked(done), done.release()))
        with other:
            done.acquire()  # waits for helper's release: no order
        done.release()
        finish([helper])
        assert checking == []

    def test_condition_wait_drops_and_retakes_the_lock(self, checking: list[str]) -> None:
        cond = threadkit.Condition(threadkit.RLock())
        flag: list[bool] = []
        seen: dict[str, list[Any]] = {}

        def waiter() -> None:
            with cond, cond:  # two levels of the RLock
                seen["before"] = held_locks(threadkit.get_ident())
                cond.wait_for(lambda: flag)
                seen["after"] = held_locks(threadkit.get_ident())
                seen["levels"] = [h() for h in _lockorder._tls.held]

        t = spawn(waiter)
        wait_until_parked(cond)
        assert t.ident is not None
        assert held_locks(t.ident) == []
        with cond:
            flag.append(True)
            cond.notify()
        finish([t])
        assert seen["before"] == [cond._lock] == seen["after"]
        assert seen["levels"] == [cond._lock, cond._lock]
        assert checking == []

    def test_a_queue_wait_leaves_nothing_held(self, checking: list[str]) -> None:
        # Queue.get takes its mutex's C lock directly (unrecorded) and waits in a
        # Condition over it: taking the mutex back must not record it as held.
        q: threadkit.queue.Queue[int] = threadkit.queue.Queue()
        me = threadkit.get_ident()
        t = spawn(lambda: (wait_until_parked(q.not_empty), q.put(1)))
        assert q.get(timeout=10) == 1
        finish([t])
        with pytest.raises(threadkit.queue.Empty):
            q.get(timeout=0.001)
        assert held_locks(me) == []
        a, b = make_pair()
        with a, b:
            pass
        with caught() as seen, b, a:
            pass
        assert len(order_warnings(seen)) == 1  # only a and b: no queue mutex in it
        assert checking[0].startswith("lock order inversion: 2 locks")

    def test_waiting_on_a_condition_while_holding_another_lock(self, checking: list[str]) -> None:
        cond = threadkit.Condition(threadkit.Lock())
        other = threadkit.Lock()
        with caught() as seen, cond:
            with other:  # cond -> other
                # Taking cond back while holding other: other -> cond, the inversion
                # that deadlocks against a notifier doing `with cond, other:`.
                assert cond.wait(0) is False
            assert cond._is_owned()
        assert len(order_warnings(seen)) == 1
        assert "_acquire_restore" not in checking[0]

    def test_condition_wait_error_filter_still_retakes_the_lock(self, checking: list[str]) -> None:
        cond = threadkit.Condition(threadkit.Lock())
        other = threadkit.Lock()
        with warnings.catch_warnings():
            warnings.simplefilter("error", LockOrderWarning)
            with cond, other:
                with pytest.raises(LockOrderWarning):
                    cond.wait(0)
                assert cond._is_owned()
                # Taken back after the warning: now above `other` on the stack.
                assert held_locks(threadkit.get_ident()) == [other, cond._lock]
        assert held_locks(threadkit.get_ident()) == []


class TestClasses:
    def test_a_lock_dropped_while_held_stops_counting(self, checking: list[str]) -> None:
        def leak() -> None:
            lost = threadkit.Lock()
            lost.acquire()  # never released, and dropped: nobody can release it now

        leak()
        gc.collect()
        me = threadkit.get_ident()
        assert held_locks(me) == []
        a, b = make_pair()
        with a, b:
            pass
        assert all(node.site is None or node.site[2] != "leak" for node in _lockorder._out)
        assert held_locks(me) == []

    def test_a_generic_factory_is_one_class_told_apart_per_object(
        self, checking: list[str]
    ) -> None:
        def make(kind: Any) -> Any:
            return kind()

        lock1, rlock1 = make(threadkit.Lock), make(threadkit.RLock)
        lock2, rlock2 = make(threadkit.Lock), make(threadkit.RLock)
        with lock1, rlock1:
            pass
        with caught() as seen:
            with rlock2, lock2:  # other objects: fine
                pass
            assert order_warnings(seen) == []
            with rlock1, lock1:  # the same two objects: reported
                pass
        assert len(order_warnings(seen)) == 1

    def test_internal_locks_are_classed_at_the_programs_call(self, checking: list[str]) -> None:
        cond = threadkit.Condition()
        q: threadkit.queue.Queue[int] = threadkit.queue.Queue()
        for lock in (cond._lock, q.mutex):
            node = _lockorder._class_of(lock)
            assert node.site is not None and node.site[0] == __file__
            assert node.site[2] == "test_internal_locks_are_classed_at_the_programs_call"

    def test_subclass_init_frames_are_skipped(self, checking: list[str]) -> None:
        class Named(threadkit.RLock):
            def __init__(self) -> None:
                super().__init__()

        def make() -> Named:
            return Named()

        node = _lockorder._class_of(make())
        assert node.site is not None and node.site[2] == "make"
        assert node.kind.endswith("Named")

    def test_locks_made_before_are_a_class_each(self) -> None:
        a1, b1 = make_pair()
        a2, b2 = make_pair()
        reset_lock_order()
        check_lock_order()
        try:
            with a1, b1:
                pass
            with caught() as seen:
                with b2, a2:  # other objects: not the same classes
                    pass
                assert order_warnings(seen) == []
                with b1, a1:  # the same objects: reported
                    pass
            assert len(order_warnings(seen)) == 1
            assert "created before lock-order checking was on" in lock_order_reports()[0]
        finally:
            check_lock_order(False)
            reset_lock_order()


class TestReviewFindings:
    def test_equal_code_in_two_files_is_two_sites(self, checking: list[str], tmp_path: Any) -> None:
        # Two modules whose functions are the same code, line for line: equal code
        # objects, different creation sites. A strict hierarchy first -> middle ->
        # second is no inversion.
        source = "import threadkit\n\ndef make():\n    return threadkit.Lock()\n"
        namespaces: list[dict[str, Any]] = []
        for name in ("first_site.py", "second_site.py"):
            namespace: dict[str, Any] = {}
            exec(compile(source, str(tmp_path / name), "exec"), namespace)
            namespaces.append(namespace)
        assert namespaces[0]["make"].__code__ == namespaces[1]["make"].__code__
        first, second = namespaces[0]["make"](), namespaces[1]["make"]()
        middle = threadkit.Lock()
        with first, middle, second:
            pass
        with first, second:
            pass
        assert checking == []

    def test_locks_made_by_c_code_are_a_class_each(self, checking: list[str]) -> None:
        # Lock striping: defaultdict calls Lock() from C, at whichever subscript
        # first asked for the key; keys are always taken in sorted order.
        import collections

        locks: collections.defaultdict[int, threadkit.Lock] = collections.defaultdict(
            threadkit.Lock
        )

        def transfer(a: int, b: int) -> None:
            low, high = sorted((a, b))
            with locks[low], locks[high]:
                pass

        transfer(1, 2)
        transfer(5, 6)
        transfer(2, 5)
        assert checking == []

    def test_a_condition_made_before_checking_is_seen(self) -> None:
        reset_lock_order()
        cond, other = threadkit.Condition(threadkit.Lock()), threadkit.Lock()
        check_lock_order()
        try:
            with caught() as seen:
                with cond, other:
                    pass
                with other, cond:  # the inversion, through the Condition's with
                    pass
            assert len(order_warnings(seen)) == 1
        finally:
            check_lock_order(False)
            reset_lock_order()

    def test_turning_it_off_and_on_forgets_what_was_held(self) -> None:
        reset_lock_order()
        gate, other = threadkit.Lock(), threadkit.Lock()
        released, again, done = threadkit.Event(), threadkit.Event(), threadkit.Event()
        check_lock_order()
        try:
            gate.acquire()

            def waiter() -> None:
                with gate:  # gets it while checking is off: released unrecorded
                    pass
                released.set()
                again.wait()
                with other:  # holds nothing: no order with gate
                    pass
                done.set()

            t = spawn(waiter)
            wait_until_parked(gate)
            check_lock_order(False)  # the end of one checked test...
            gate.release()
            released.wait()
            check_lock_order()  # ...and the start of the next
            assert held_locks(t.ident) == []
            again.set()
            done.wait()
            with other, gate:  # the only order ever used
                pass
            t.join(10)
            assert lock_order_reports() == []
        finally:
            check_lock_order(False)
            reset_lock_order()


class TestSwitch:
    def test_off_restores_the_original_methods_exactly(self) -> None:
        before = {
            cls: {n: cls.__dict__[n] for n in _NAMES if n in cls.__dict__}
            for cls in (threadkit.Lock, threadkit.RLock)
        }
        original_acquire = threadkit.Lock.acquire
        assert check_lock_order(True) is False
        try:
            assert lock_order_enabled()
            assert check_lock_order(True) is True  # already on: no double wrapping
            assert threadkit.Lock.acquire is not original_acquire
            for cls, saved in before.items():
                for name, original in saved.items():
                    assert cls.__dict__[name] is not original, name
                    assert cls.__dict__[name].__wrapped__ is original, name
        finally:
            assert check_lock_order(False) is True
        assert not lock_order_enabled()
        assert check_lock_order(False) is False
        assert threadkit.Lock.acquire is original_acquire
        for cls, saved in before.items():
            assert {n: cls.__dict__[n] for n in _NAMES if n in cls.__dict__} == saved
            for name, original in saved.items():
                assert cls.__dict__[name] is original

    def test_off_records_nothing_and_stale_bound_wrappers_pass_through(self) -> None:
        reset_lock_order()
        check_lock_order()
        try:
            cond = threadkit.Condition(threadkit.Lock())  # keeps wrapped bound methods
            a = threadkit.Lock()
            with cond:
                assert held_locks(threadkit.get_ident()) == [cond._lock]
        finally:
            check_lock_order(False)
        assert held_locks(threadkit.get_ident()) == []
        with caught() as seen:
            with a, cond:
                pass
            with cond, a:
                cond.wait(0)
        assert order_warnings(seen) == []
        assert lock_order_reports() == []

    def test_reports_survive_off_and_reset_clears_them(self, checking: list[str]) -> None:
        a, b = make_pair()
        with a, b:
            pass
        with caught(), b, a:
            pass
        assert len(lock_order_reports()) == 1
        reset_lock_order()
        assert lock_order_reports() == []
        with caught() as seen, b, a:  # the graph is empty again
            pass
        assert order_warnings(seen) == []


class TestPlumbing:
    def test_wrappers_are_protected_from_ctrl_c_and_delivery_is_open(
        self, checking: list[str]
    ) -> None:
        for cls in (threadkit.Lock, threadkit.RLock):
            for name in _NAMES:
                fn = cls.__dict__.get(name)
                if fn is not None:
                    assert _interrupts._verdict(fn.__code__) is True, name
        assert _interrupts._verdict(_lockorder._before_wait.__code__) is True
        assert _interrupts._verdict(_lockorder._deliver.__code__) is False

    def test_a_finished_threads_stack_is_dropped(self, checking: list[str]) -> None:
        a = threadkit.Lock()
        t = spawn(lambda: a.acquire())  # ends holding it
        finish([t])
        assert t.ident is not None
        wait_until(lambda: t.ident not in _lockorder._stacks)
        assert held_locks(t.ident) == []
        a.release()  # a foreign release of a lock no stack holds: nothing to do
        assert not a.locked()

    def test_held_locks_of_another_thread(self, checking: list[str]) -> None:
        a = threadkit.Lock()
        r = threadkit.RLock()
        go = threadkit.Event()

        def holder() -> None:
            with a, r, r:
                go.wait()

        t = spawn(holder)
        wait_until_parked(go)
        assert t.ident is not None
        assert held_locks(t.ident) == [a, r]
        # The dump lists them, though nobody waits for them.
        text = threadkit.diagnostics.format_dump()
        assert f"holding {a!r}" in text and f"holding {r!r}" in text
        check_lock_order(False)
        try:
            assert held_locks(t.ident) == []  # off: nothing known
        finally:
            check_lock_order(True)
            go.set()
            finish([t])
