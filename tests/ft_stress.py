"""Conservation stress for free-threaded builds: threads that really run at once.

Each scenario hammers one primitive from several threads, mixing plain waits with
timeouts and cancel scopes whose deadlines expire mid-wait, and then checks what must
be conserved: mutual exclusion and the lock free at the end (Lock, RLock, Condition
over either), permits (Semaphore), items (Condition producer/consumer), arrivals
(Barrier), set/clear hand-offs (Event), and results (TaskGroup). On a GIL build it
runs too, with less real overlap.

    python tests/ft_stress.py [seconds per scenario]    # prints "OK" or "FAIL ..."

CI runs it for longer on the free-threaded builds (.ci/run); tests/test_sync.py runs a
short round of it on every interpreter.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable

import threadkit

THREADS = 6


def fail(name: str, what: str) -> None:
    print(f"FAIL {name}: {what}", flush=True)
    sys.exit(1)


def hammer(name: str, seconds: float, body: Callable[[int, float], None]) -> int:
    """Run ``body(i, end)`` in THREADS threads until ``end``; return rounds done."""
    end = time.monotonic() + seconds
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            body(i, end)
        except BaseException as exc:
            errors.append(exc)

    threads = [threadkit.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
        if t.is_alive():
            fail(name, f"{t.name} still running (a lost wake-up?)")
    if errors:
        fail(name, f"a thread raised {errors[0]!r}")
    return 0


def scope(rng: random.Random) -> threadkit.CancelScope:
    """No deadline, or one that may expire while the thread waits."""
    if rng.random() < 0.5:
        return threadkit.CancelScope()
    return threadkit.move_on_after(rng.choice((0.0, 1e-5, 1e-4, 5e-4)))


def locks(name: str, make: Callable[[], threadkit.Lock | threadkit.RLock], seconds: float) -> None:
    lock = make()
    cond = threadkit.Condition(lock)
    inside = [0]
    violations = [0]
    entries = [0] * THREADS

    def body(i: int, end: float) -> None:
        rng = random.Random(i)
        while time.monotonic() < end:
            kind = rng.random()
            with scope(rng):
                if kind < 0.4:
                    with lock:
                        inside[0] += 1
                        if inside[0] != 1:
                            violations[0] += 1
                        inside[0] -= 1
                        entries[i] += 1
                elif kind < 0.7:
                    if lock.acquire(timeout=rng.choice((0, 1e-5, 1e-4))):
                        try:
                            inside[0] += 1
                            if inside[0] != 1:
                                violations[0] += 1
                            inside[0] -= 1
                            entries[i] += 1
                        finally:
                            lock.release()
                else:
                    # The issue-11 pattern: a waiter that leaves by cancellation
                    # must hold the lock again, and release only its own.
                    with cond:
                        inside[0] += 1
                        if inside[0] != 1:
                            violations[0] += 1
                        inside[0] -= 1
                        cond.wait(rng.choice((0, 1e-5, 1e-4)))
                        inside[0] += 1
                        if inside[0] != 1:
                            violations[0] += 1
                        inside[0] -= 1
                        cond.notify()
                        entries[i] += 1

    hammer(name, seconds, body)
    if violations[0]:
        fail(name, f"{violations[0]} mutual-exclusion violations")
    if lock.locked():
        fail(name, "the lock is still held")
    print(f"ok {name}: {sum(entries)} entries", flush=True)


def semaphore(seconds: float) -> None:
    value = 3
    sem = threadkit.BoundedSemaphore(value)
    held = [0]
    guard = threadkit.Lock()
    over = [0]
    taken = [0]

    def body(i: int, end: float) -> None:
        rng = random.Random(i)
        while time.monotonic() < end:
            got = False
            # The wait may be cancelled; what follows a permit must not be.
            with scope(rng):
                got = sem.acquire(timeout=rng.choice((None, 1e-5, 1e-4)))
            if got:
                try:
                    with guard:
                        held[0] += 1
                        over[0] += held[0] > value
                        taken[0] += 1
                    with guard:
                        held[0] -= 1
                finally:
                    sem.release()

    hammer("BoundedSemaphore", seconds, body)
    if over[0]:
        fail("BoundedSemaphore", f"{over[0]} times more than {value} holders")
    got = 0
    while sem.acquire(blocking=False):
        got += 1
    if got != value:
        fail("BoundedSemaphore", f"{got} permits left, not {value}")
    print(f"ok BoundedSemaphore: {taken[0]} acquisitions", flush=True)


def producer_consumer(seconds: float) -> None:
    cond = threadkit.Condition(threadkit.Lock())
    items: list[int] = []
    produced = [0] * THREADS
    consumed: list[list[int]] = [[] for _ in range(THREADS)]
    stop = [False]

    def body(i: int, end: float) -> None:
        rng = random.Random(i)
        if i % 2 == 0:
            n = 0
            while time.monotonic() < end:
                with cond:
                    items.append(i * 10**9 + n)
                    n += 1
                    cond.notify()
            produced[i] = n
            with cond:
                stop[0] = True
                cond.notify_all()
        else:
            while True:
                with scope(rng), cond:
                    while not items and not stop[0]:
                        cond.wait(rng.choice((None, 1e-4)))
                    if items:
                        consumed[i].append(items.pop())
                    elif stop[0]:
                        return

    hammer("Condition producer/consumer", seconds, body)
    got = sorted(x for c in consumed for x in c) + sorted(items)
    want = sorted(i * 10**9 + n for i in range(0, THREADS, 2) for n in range(produced[i]))
    if sorted(got) != want:
        fail("Condition producer/consumer", "items lost or duplicated")
    print(f"ok Condition producer/consumer: {len(want)} items", flush=True)


def barrier(seconds: float) -> None:
    rounds = [0]
    bar = threadkit.Barrier(THREADS, action=lambda: rounds.__setitem__(0, rounds[0] + 1))
    passes = [0] * THREADS

    def body(i: int, end: float) -> None:
        while True:
            index = bar.wait(30)
            passes[i] += 1
            # Everyone leaves in the same round: the first to see the end says so.
            if index == 0 and time.monotonic() >= end:
                bar.abort()
            try:
                bar.wait(30)
            except threadkit.BrokenBarrierError:
                return

    hammer("Barrier", seconds, body)
    if len(set(passes)) != 1:
        fail("Barrier", f"unequal passes {passes}")
    if rounds[0] != passes[0] * 2 - 1:
        fail("Barrier", f"{rounds[0]} actions for {passes[0]} passes")
    print(f"ok Barrier: {rounds[0]} rounds", flush=True)


def event(seconds: float) -> None:
    # Ping-pong between pairs: each hand-off must reach its waiter.
    pings = [threadkit.Event() for _ in range(THREADS)]
    counts = [0] * THREADS

    def body(i: int, end: float) -> None:
        mine, other = pings[i], pings[i ^ 1]
        if i % 2 == 0:
            other.set()
        while time.monotonic() < end:
            if mine.wait(5):
                mine.clear()
                counts[i] += 1
                other.set()
            else:
                fail("Event", "a set() was lost")
        other.set()

    hammer("Event", seconds, body)
    print(f"ok Event: {sum(counts)} hand-offs", flush=True)


def taskgroup(seconds: float) -> None:
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        with threadkit.TaskGroup(limit=4) as tg:
            tasks = [tg.spawn(pow, n, 2) for n in range(200)]
        if [t.result() for t in tasks] != [n * n for n in range(200)]:
            fail("TaskGroup", "a wrong or missing result")
        total += len(tasks)
    print(f"ok TaskGroup: {total} tasks", flush=True)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}, GIL {'on' if gil else 'off'}", flush=True)
    locks("Lock", threadkit.Lock, seconds)
    locks("RLock", threadkit.RLock, seconds)
    semaphore(seconds)
    producer_consumer(seconds)
    barrier(seconds)
    event(seconds)
    taskgroup(seconds)
    if getattr(sys, "_is_gil_enabled", lambda: True)() != gil:
        fail("GIL", "threadkit turned the GIL back on")
    print("OK", flush=True)


if __name__ == "__main__":
    main()
