"""Real SIGINTs at random instants while the main thread uses threadkit (run by
tests/test_ctrl_c.py in a child process, for a bounded time).

An interval timer delivers one SIGINT to the main thread at a random instant of each
round, while the main thread repeats one threadkit call; then the round's invariants
are checked, among them that exactly one KeyboardInterrupt came out. Each scenario
is one of the defects a Ctrl-C used to cause:

* ``start``: a running thread put back to "not started" (so a second ``start()``
  ran the body twice), or a thread that runs while its ``Thread`` says it does not;
* ``spawn``: the worker cache's searcher count left off by one, after which no task
  of any later group ran;
* ``set``, ``release``, ``notify``: a wake-up lost to a thread in an untimed wait.

Usage: ``python ctrl_c_stress.py SECONDS_PER_SCENARIO [--raw] [--only NAME...]``;
prints one line per scenario and exits 1 on the first broken invariant. ``--raw`` puts Python's own
SIGINT handler back, to show what the same run breaks without threadkit's.
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
from collections.abc import Callable

import threadkit
from threadkit import _workers
from threadkit._core import _interrupts

MAIN = threading.get_ident()


class Firer:
    """Delivers one SIGINT to the main thread at a random instant of each round.

    An interval timer (SIGALRM, from the kernel, whatever the main thread is doing)
    picks the instant; its handler hands the main thread's current frame to the
    installed SIGINT handler, which is what CPython does when a Ctrl-C arrives
    there. (A thread sending SIGINT would only get to do so when the main thread
    lets go of the GIL, which is mostly while it is parked.) One Ctrl-C per round,
    so that "exactly one KeyboardInterrupt came out" can be checked.
    """

    def __init__(self, seed: int, within: float) -> None:
        self.rnd = random.Random(seed)
        self.within = within
        self.sent = 0
        self.firing = False
        self.fired = False
        signal.signal(signal.SIGALRM, self._alarm)

    def _alarm(self, signum: int, frame: object) -> None:
        if not self.firing:
            return
        self.firing = False
        self.fired = True
        self.sent += 1
        signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)

    def start(self) -> None:
        self.fired = False
        self.firing = True
        signal.setitimer(signal.ITIMER_REAL, self.rnd.uniform(10e-6, self.within))

    def pause(self, caught: bool) -> bool:
        """Stop firing, then let an interrupt still owed come out; return whether one
        came out, here or before (``caught``), and check that it came out once."""
        self.firing = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        deadline = time.monotonic() + 2
        while _interrupts.owed():
            if time.monotonic() > deadline:
                fail("pause", "an owed KeyboardInterrupt never came out")
            try:
                time.sleep(0.0005)
            except KeyboardInterrupt:
                # Owed since the round's last threadkit call, which returned before
                # the watchdog got the GIL to send the nudge.
                if caught:
                    fail("pause", "one Ctrl-C raised KeyboardInterrupt twice")
                caught = True
        if caught != self.fired:
            fail("pause", f"Ctrl-C delivered: {self.fired}; KeyboardInterrupt: {caught}")
        return caught


#: Interrupted rounds a scenario needs (tests/test_ctrl_c.py checks for them).
ENOUGH = 12


def fail(scenario: str, what: str) -> None:
    print(f"FAIL {scenario}: {what}", flush=True)
    sys.exit(1)


def run(firer: Firer, name: str, seconds: float, round_: Callable[[], None]) -> None:
    end = time.monotonic() + seconds
    # On a loaded machine a round takes longer: go on (up to ten times as long) until
    # enough rounds were interrupted for the scenario to have proved something.
    last = end + 10 * seconds
    rounds = interrupted = 0
    while (now := time.monotonic()) < end or (interrupted < ENOUGH and now < last):
        rounds += 1
        got = False
        try:
            firer.start()
            round_()
            firer.firing = False
        except KeyboardInterrupt:
            got = True
        while True:
            # Without the GIL an owed interrupt can come out as soon as this frame
            # checks for signals again: at the latest, on entering pause().
            try:
                got = firer.pause(got)
                break
            except KeyboardInterrupt:
                if got:
                    fail(name, "one Ctrl-C raised KeyboardInterrupt twice")
                got = True
        interrupted += got
        try:
            check(name)
        except Exception as exc:
            fail(name, f"the check raised {exc!r}")
    print(f"ok {name}: {rounds} rounds, {interrupted} interrupted", flush=True)


# -- the scenarios: a round repeats a call; what each call left is checked after --------
#: Calls per round: enough that a SIGINT sent at a random instant of the round lands
#: inside one of them more often than in between.
PER_ROUND = 20
items: list[dict[str, object]] = []


def start_round() -> None:
    for _ in range(PER_ROUND * 5):
        runs = [0]
        go = threading.Event()

        def body(runs: list[int] = runs, go: threading.Event = go) -> None:
            runs[0] += 1
            go.wait(10)

        t = threadkit.Thread(target=body, daemon=True)
        items.append({"thread": t, "runs": runs, "go": go})
        t.start()


def spawn_round() -> None:
    with threadkit.TaskGroup() as tg:
        for _ in range(PER_ROUND * 10):
            tg.spawn(int)


def _park_waiter(resource: object, body: Callable[[], object], **item: object) -> None:
    # A threadkit thread: the stdlib's own start() is Python code that a Ctrl-C at
    # the wrong instant breaks (its Condition), which is not what is tested here.
    waiter = threadkit.Thread(target=body, daemon=True)
    items.append({"waiter": waiter, "resource": resource, **item})
    waiter.start()
    while not threadkit._core.waiting_on(resource):
        time.sleep(0.0001)


def set_round() -> None:
    for _ in range(PER_ROUND // 4):
        ev = threadkit.Event()
        _park_waiter(ev, ev.wait, acted=ev.is_set, undo=ev.set)
        ev.set()


def release_round() -> None:
    for _ in range(PER_ROUND // 4):
        lock = threadkit.Lock()
        lock.acquire()

        def body(lock: threadkit.Lock = lock) -> None:
            with lock:
                pass

        def released(lock: threadkit.Lock = lock) -> bool:
            # Not "unlocked": the waiter may hold it by now.
            return not lock.locked() or lock._holder() != MAIN

        _park_waiter(lock, body, acted=released, undo=lock.release)
        lock.release()


def notify_round() -> None:
    for _ in range(PER_ROUND // 4):
        cond = threadkit.Condition(threadkit.Lock())
        notified = [False]

        def body(cond: threadkit.Condition = cond) -> None:
            with cond:
                cond.wait()

        def undo(cond: threadkit.Condition = cond) -> None:
            with cond:
                cond.notify()

        _park_waiter(cond, body, acted=lambda n=notified: n[0], undo=undo)
        with cond:
            cond.notify()
            notified[0] = True


def check(name: str) -> None:
    while items:
        item = items.pop()
        t = item.get("thread")
        if isinstance(t, threadkit.Thread):
            runs, go = item["runs"], item["go"]
            assert isinstance(go, threading.Event) and isinstance(runs, list)
            if t.ident is None and runs[0]:
                fail(name, "the body runs but the Thread says it never started")
            if t.ident is None:
                t.start()
            go.set()
            t.join(5)
            if t.is_alive() or runs[0] != 1:
                fail(name, f"the body ran {runs[0]} times; alive: {t.is_alive()}")
            continue
        waiter = item["waiter"]
        assert isinstance(waiter, threadkit.Thread)
        if waiter.ident is None:  # interrupted before it started
            continue
        acted, undo = item["acted"], item["undo"]
        assert callable(acted) and callable(undo)
        if acted():
            waiter.join(2)
            if waiter.is_alive():
                fail(name, "the wake-up was lost: the waiter sleeps on")
        else:  # the call never happened: let the waiter go once it waits
            resource = item["resource"]
            deadline = time.monotonic() + 5
            while waiter.is_alive() and not threadkit._core.waiting_on(resource):
                if time.monotonic() > deadline:
                    fail(name, "the waiter never started waiting")
                time.sleep(0.0001)
            undo()
            waiter.join(5)
            if waiter.is_alive():
                fail(name, "the waiter never woke")
    if name == "spawn":
        deadline = time.monotonic() + 5
        while _workers._searching != 0:
            if time.monotonic() > deadline:
                fail(name, f"the cache's searcher count is {_workers._searching}")
            time.sleep(0.001)
        try:
            with threadkit.fail_after(5), threadkit.TaskGroup() as tg:
                task = tg.spawn(lambda: 7)
        except TimeoutError:
            fail(name, "a later group's task never ran: the worker cache is stuck")
        if task.result() != 7:
            fail(name, "a later group's task did not run")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    threadkit.Thread(target=lambda: None).start()  # threadkit takes SIGINT from here
    if "--raw" in sys.argv:  # for comparison: Python's own handler, nothing deferred
        signal.signal(signal.SIGINT, signal.default_int_handler)
    elif not _interrupts.installed():
        fail("setup", "threadkit's SIGINT handler is not installed")
    firer = Firer(seed=int(time.time()), within=0.004)
    for name, round_ in [
        ("start", start_round),
        ("spawn", spawn_round),
        ("set", set_round),
        ("release", release_round),
        ("notify", notify_round),
    ]:
        if "--only" not in sys.argv or name in sys.argv:
            run(firer, name, seconds, round_)
    print(f"OK, {firer.sent} SIGINTs", flush=True)


if __name__ == "__main__":
    main()
