"""Test helpers that synchronise on real state, never on sleeping."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import threadkit
from threadkit import _core


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds.

    This is a bounded poll of a real condition, not a sleep that hopes the other
    thread got somewhere.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s: {predicate}")
        time.sleep(0.0005)


def wait_until_parked(resource: object, n: int = 1, timeout: float = 10.0) -> None:
    """Wait until at least ``n`` threads are parked on ``resource`` in threadkit's core.

    Possible because every threadkit wait goes through the core's wait queue, which
    records in the thread registry what each thread is parked on.
    """
    wait_until(lambda: len(_core.waiting_on(resource)) >= n, timeout)


#: The innermost frame of a thread asleep in a park (``park`` itself is still awake).
_ASLEEP = _core.PARK_CODES - {_core.WaitQueue.park.__code__}


def wait_until_blocked(resource: object, n: int = 1, timeout: float = 10.0) -> None:
    """``wait_until_parked``, and each of those threads asleep in its park: past the
    deadlock check it makes before it sleeps, so the next wait to close a cycle is
    the one that finds it."""

    def ready() -> bool:
        recs = _core.waiting_on(resource)
        frames = sys._current_frames()
        return len(recs) >= n and all(
            (frame := frames.get(rec.ident)) is not None and frame.f_code in _ASLEEP for rec in recs
        )

    wait_until(ready, timeout)


def start_threads(
    mod: Any, n: int, target: Callable[..., object], *args: Any
) -> list[threading.Thread]:
    """Start ``n`` threads of module ``mod`` running ``target(i, *args)``."""
    threads = [mod.Thread(target=target, args=(i, *args)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def join_all(threads: list[Any], timeout: float = 10.0) -> None:
    """Join every thread and fail if one is still alive after ``timeout``."""
    for t in threads:
        t.join(timeout)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"threads still alive: {alive}"


def spawn(target: Callable[..., object], *args: Any) -> threadkit.Thread:
    """Start a daemon threadkit thread (daemon: a bug must not hang the interpreter)."""
    t = threadkit.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def finish(threads: list[threadkit.Thread]) -> None:
    """Join every thread, then re-raise the first failure raised inside one."""
    join_all(threads)
    for t in threads:
        t.result()


def parked(resource: object) -> int:
    """How many threads are parked on ``resource`` right now."""
    return len(_core.waiting_on(resource))


__all__ = [
    "finish",
    "join_all",
    "parked",
    "spawn",
    "start_threads",
    "threadkit",
    "wait_until",
    "wait_until_parked",
]


@contextmanager
def cancel_racing(victim: threadkit.Thread, round_no: int) -> Iterator[threadkit.Thread]:
    """Cancel ``victim`` from another thread at about the instant the ``with`` body
    runs (the body gives the wake-up the cancel races with).

    Both sides spin a little first, by amounts that ``round_no`` varies, so that over
    the rounds each order comes up. Yields the cancelling thread, to ``finish``.
    """
    go = threading.Barrier(2, timeout=5)

    def canceller() -> None:
        go.wait()
        for _ in range(round_no % 5 * 10):
            pass
        victim.cancel()

    thread = spawn(canceller)
    go.wait()
    for _ in range(round_no // 5 % 4 * 10):
        pass
    yield thread
