"""The core: parker permits and the wait queue's one-winner rule."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from typing import Any

import pytest

from helpers import wait_until, wait_until_parked
from threadkit import _core
from threadkit._core import SIGNALLED, TIMED_OUT, WaitQueue

pytestmark = pytest.mark.timeout(30)


class Resource:
    """Something to wait on, for the registry."""


class TestParker:
    def test_unpark_before_park_is_kept(self) -> None:
        rec = _core.current_record()
        rec.unpark()
        rec.unpark()  # a second permit is not kept: it is a binary permit
        t0 = time.monotonic()
        assert rec.parker.acquire(True, 5)
        assert time.monotonic() - t0 < 1
        assert not rec.parker.acquire(True, 0.01)

    def test_record_is_per_thread_and_dropped_when_thread_ends(self) -> None:
        seen: list[_core.ThreadRecord] = []
        t = threading.Thread(target=lambda: seen.append(_core.current_record()))
        t.start()
        t.join()
        assert seen[0] is not _core.current_record()
        wait_until(lambda: _core.record_for(seen[0].ident) is not seen[0])


class TestWaitQueue:
    def _park_in_thread(
        self, q: WaitQueue, res: object, deadline: float | None, out: list[object]
    ) -> threading.Thread:
        def run() -> None:
            node = q.add(_core.current_record(), res, "wait")
            out.append(q.park(node, deadline))

        t = threading.Thread(target=run)
        t.start()
        return t

    def test_unpark_wakes_in_fifo_order(self) -> None:
        q = WaitQueue()
        res = Resource()
        order: list[int] = []
        threads = []
        for i in range(5):

            def run(i: int = i) -> None:
                node = q.add(_core.current_record(), res, "wait")
                q.park(node, None)
                order.append(i)

            t = threading.Thread(target=run)
            t.start()
            wait_until_parked(res, i + 1)
            threads.append(t)
        for i in range(5):
            assert q.unpark(1) == 1
            wait_until(lambda i=i: len(order) == i + 1)
        for t in threads:
            t.join()
        assert order == [0, 1, 2, 3, 4]
        assert len(q) == 0

    def test_timed_out_waiter_leaves_no_ghost(self) -> None:
        q = WaitQueue()
        node = q.add(_core.current_record(), Resource(), "wait")
        assert q.park(node, time.monotonic() + 0.01) is TIMED_OUT
        assert len(q) == 0
        assert q.unpark(1) == 0

    def test_signal_never_goes_to_a_timed_out_waiter(self) -> None:
        # The first waiter times out; a later unpark(1) must reach the second one.
        q = WaitQueue()
        res = Resource()
        out: list[object] = []
        first = q.add(_core.current_record(), res, "wait")
        assert q.park(first, time.monotonic()) is TIMED_OUT
        t = self._park_in_thread(q, res, None, out)
        wait_until_parked(res, 1)
        assert q.unpark(1) == 1
        t.join()
        assert out == [SIGNALLED]

    def test_signal_that_wins_the_race_is_reported_even_after_deadline(self) -> None:
        q = WaitQueue()
        node = q.add(_core.current_record(), Resource(), "wait")
        assert q.unpark(1) == 1
        # The deadline has passed, but the signal moved the node first: it wins.
        assert q.park(node, time.monotonic() - 1) is SIGNALLED

    def test_abandoned_signal_is_passed_on(self) -> None:
        q = WaitQueue()
        res = Resource()
        out: list[object] = []
        mine = q.add(_core.current_record(), res, "wait")
        t = self._park_in_thread(q, res, None, out)
        # Both nodes queued: `mine` counts as parked on `res` already, and the
        # registry shows a node a moment before it is in the queue.
        wait_until(lambda: len(q) == 2)
        assert q.unpark(1) == 1  # reaches `mine`, the oldest
        assert q.abandon(mine) is True  # ... which gives up: the signal moves on
        t.join()
        assert out == [SIGNALLED]

    def test_abandon_of_waiting_node_removes_it(self) -> None:
        q = WaitQueue()
        node = q.add(_core.current_record(), Resource(), "wait")
        assert q.abandon(node) is False
        assert len(q) == 0

    def test_exception_while_parked_resolves_node(self) -> None:
        # KeyboardInterrupt delivered to the main thread while it is parked.
        q = WaitQueue()
        res = Resource()
        main = _thread.get_ident()

        def interrupt() -> None:
            wait_until_parked(res, 1)
            # Queued is not yet parked: the signal must land inside the park itself,
            # not between add() and park() in this test's own frame.
            wait_until(lambda: _in_park(sys._current_frames().get(main)))
            import signal

            signal.pthread_kill(main, signal.SIGINT)

        t = threading.Thread(target=interrupt)
        t.start()
        node = q.add(_core.current_record(), res, "wait")
        with pytest.raises(KeyboardInterrupt):
            q.park(node, time.monotonic() + 20)
        t.join()
        assert len(q) == 0
        assert _core.current_record().waiting is None

    def test_unpark_all_wakes_everyone(self) -> None:
        q = WaitQueue()
        res = Resource()
        out: list[object] = []
        threads = [self._park_in_thread(q, res, None, out) for _ in range(20)]
        wait_until_parked(res, 20)
        assert q.unpark_all() == 20
        for t in threads:
            t.join()
        assert out == [SIGNALLED] * 20


class TestBatchReuse:
    """A node is reused by its thread as soon as it has left its batch, while a
    slower member of that batch may still hand it a part (review finding)."""

    @staticmethod
    def _passes(queue: WaitQueue, batch: list, start: int = 0) -> list:
        """Run ``batch``'s hand-offs as its threads would, each once it is woken."""
        done: list = []
        progressed = True
        while progressed:
            progressed = False
            for node in batch:
                if node in done or not node.record.parker.acquire(False):
                    continue
                done.append(node)
                progressed = True
                queue._pass_baton(node)
        return done

    def test_stale_hand_off_to_a_reused_node_loses_nobody(self, monkeypatch) -> None:
        from threadkit._core import _waitqueue as wq

        monkeypatch.setattr(wq, "SLOW_HANDOFF", 1e9)  # a chain: no split
        records = [_core.ThreadRecord(-1 - i) for i in range(8)]
        a, x, c = records[:3]
        q1, q2 = WaitQueue(), WaitQueue()
        for rec in (a, x, c):
            with q1.mutex:
                q1.add_locked(rec, Resource(), "wait")
        with q1.mutex:
            first = q1.take_all_locked()
        # x leaves on its own (a timeout that saw SIGNALLED) before a hands it its part
        x.waiting = None
        q1._pass_baton(first[1])
        # ... and waits again, third of six, on another queue that is signalled
        for rec in [*records[3:5], x, *records[5:]]:
            with q2.mutex:
                q2.add_locked(rec, Resource(), "wait")
        with q2.mutex:
            second = q2.take_all_locked()
        assert second[2] is first[1]  # the same node
        for rec in records:
            rec.parker.acquire(False)
        # the second batch runs up to x; then a, of the first batch, runs at last
        q2._pass_baton(second[0])
        assert second[1].record.parker.acquire(False)
        q2._pass_baton(second[1])
        q1._pass_baton(first[0])
        done = [second[0], second[1], *self._passes(q2, second)]
        assert [n for n in second if n not in done] == []


def _in_park(frame: Any) -> bool:
    """True if ``frame``'s stack is inside ``WaitQueue.park``."""
    while frame is not None:
        if frame.f_code is WaitQueue.park.__code__:
            return True
        frame = frame.f_back
    return False
