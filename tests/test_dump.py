"""The dump: every live thread, what it waits on and holds; on a signal too."""

from __future__ import annotations

import _thread
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadkit
import threadkit.queue
from helpers import spawn, wait_until, wait_until_parked
from threadkit import _dump, _workers
from threadkit.diagnostics import dump, dump_on_signal, format_dump

pytestmark = pytest.mark.timeout(60)
SRC = str(Path(threadkit.__file__).parent.parent)
END = "(end of threadkit dump)"
OWN_FILE = os.path.join("threadkit", "_dump.py")
posix_only = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1"
)


def section(text: str, name: str) -> str:
    """The part of the dump about the thread called ``name``."""
    for part in text.split("\n\n"):
        if part.startswith(f'Thread "{name}" ('):
            return part
    raise AssertionError(f"no thread {name!r} in the dump:\n{text}")


def line_of(part: str, start: str) -> str:
    """The line of ``part`` that starts with ``start`` (after the indent)."""
    for line in part.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starting with {start!r} in:\n{part}")


@pytest.fixture
def release() -> Iterator[list[Callable[[], object]]]:
    """Calls that let the test's parked threads go, made at the end even on failure."""
    calls: list[Callable[[], object]] = []
    yield calls
    for call in reversed(calls):
        call()


def parked_in(name: str, resource: object, operation: str) -> str:
    """Dump, check that thread ``name`` is parked in ``operation`` on ``resource``,
    and return its part of the dump."""
    text = format_dump()
    assert text.endswith(END + "\n")
    part = section(text, name)
    assert part.splitlines()[0].endswith(": parked"), part
    waits = line_of(part, "waits:")
    assert waits.startswith(f"waits: {operation} on {resource!r}"), (waits, repr(resource))
    return part


class TestParkedIn:
    """A thread parked in each primitive shows its name, operation and resource."""

    def test_lock_and_its_holder(self, release: list[Callable[[], object]]) -> None:
        lock = threadkit.Lock()
        lock.acquire()

        def waiter() -> None:
            with lock:
                pass

        t = threadkit.Thread(target=waiter, name="lock-waiter", daemon=True)
        t.start()
        release.append(lambda: (lock.release(), t.join(10)))
        wait_until_parked(lock)
        part = parked_in("lock-waiter", lock, "acquire")
        assert line_of(part, "held by") == "held by MainThread"
        main = section(format_dump(), threadkit.main_thread().name)
        assert f"holding {lock!r} (wanted by lock-waiter)" in main
        # The waiter's stack is the program's: threadkit's frames around it are left out.
        assert part.rstrip().endswith("with lock:"), part
        assert "_waitqueue.py" not in part and "_bootstrap" not in part

    def test_rlock_held_by_another_thread(self, release: list[Callable[[], object]]) -> None:
        rlock = threadkit.RLock()
        taken = threadkit.Event()
        done = threadkit.Event()

        def holder() -> None:
            with rlock, rlock:
                taken.set()
                done.wait()

        h = spawn(holder)
        h.name = "rlock-holder"
        taken.wait()
        w = threadkit.Thread(target=lambda: rlock.acquire(timeout=30), name="rlock-waiter")
        w.start()
        release.append(lambda: (done.set(), h.join(10), w.join(10)))
        wait_until_parked(rlock)
        part = parked_in("rlock-waiter", rlock, "acquire")
        waits = line_of(part, "waits:")
        assert ", timeout in " in waits
        assert line_of(part, "held by") == "held by rlock-holder"
        holder_part = section(format_dump(), "rlock-holder")
        assert f"holding {rlock!r} (wanted by rlock-waiter)" in holder_part
        assert line_of(holder_part, "waits:").startswith(f"waits: wait on {done!r}")

    def test_condition_wait(self, release: list[Callable[[], object]]) -> None:
        cond = threadkit.Condition()

        def waiter() -> None:
            with cond:
                cond.wait()

        t = threadkit.Thread(target=waiter, name="cond-waiter", daemon=True)
        t.start()
        release.append(lambda: t.join(10))
        release.append(lambda: [cond.acquire(), cond.notify_all(), cond.release()])
        wait_until_parked(cond)
        parked_in("cond-waiter", cond, "wait")

    def test_semaphore(self, release: list[Callable[[], object]]) -> None:
        sem = threadkit.Semaphore(0)
        t = threadkit.Thread(target=sem.acquire, name="sem-waiter", daemon=True)
        t.start()
        release.append(lambda: (sem.release(), t.join(10)))
        wait_until_parked(sem)
        parked_in("sem-waiter", sem, "acquire")

    def test_event(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()
        t = threadkit.Thread(target=event.wait, name="event-waiter", daemon=True)
        t.start()
        release.append(lambda: (event.set(), t.join(10)))
        wait_until_parked(event)
        part = parked_in("event-waiter", event, "wait")
        # The thread is part of the program: no task, no armed scope.
        assert "task:" not in part and "cancel scope" not in part

    def test_barrier(self, release: list[Callable[[], object]]) -> None:
        barrier = threadkit.Barrier(3)

        def waiter() -> None:
            try:
                barrier.wait()
            except threadkit.BrokenBarrierError:
                pass  # the end of the test

        threads = [
            threadkit.Thread(target=waiter, name=f"barrier-{i}", daemon=True) for i in (1, 2)
        ]
        for t in threads:
            t.start()
        release.append(lambda: [barrier.abort(), *(t.join(10) for t in threads)])
        wait_until_parked(barrier, 2)
        parked_in("barrier-1", barrier, "wait")
        parked_in("barrier-2", barrier, "wait")

    def test_thread_join(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()
        sleeper = threadkit.Thread(target=event.wait, name="sleeper", daemon=True)
        sleeper.start()
        joiner = threadkit.Thread(target=sleeper.join, name="joiner", daemon=True)
        joiner.start()
        release.append(lambda: (event.set(), joiner.join(10)))
        wait_until_parked(sleeper)
        wait_until_parked(event)
        part = parked_in("joiner", sleeper, "join")
        assert line_of(part, "held by") == "held by sleeper"
        # A thread holds up its joiners by being itself: no "holding" line for that.
        assert "holding" not in section(format_dump(), "sleeper")

    def test_task_result(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()
        release.append(event.set)
        with threadkit.TaskGroup(name="results") as group:
            task = group.options(name="slow-task").spawn(event.wait)
            waiter = threadkit.Thread(target=task.result, name="result-waiter", daemon=True)
            waiter.start()
            wait_until_parked(task)
            wait_until_parked(event)
            part = parked_in("result-waiter", task, "result")
            assert line_of(part, "held by") == "held by slow-task"
            worker = section(format_dump(), "slow-task")
            assert line_of(worker, "task:") == f"task: slow-task in {group!r}"
            # How a task holds up its waiters is the task's to say (``_tk_held_as``).
            held = [line for line in worker.splitlines() if "(wanted by result-waiter)" in line]
            assert len(held) == 1 and "slow-task" in held[0], worker
            event.set()
        waiter.join(10)

    def test_queue_get(self, release: list[Callable[[], object]]) -> None:
        q: threadkit.queue.Queue[int] = threadkit.queue.Queue()
        t = threadkit.Thread(target=q.get, name="getter", daemon=True)
        t.start()
        release.append(lambda: (q.put(1), t.join(10)))
        wait_until_parked(q.not_empty)
        parked_in("getter", q.not_empty, "wait")

    def test_simple_queue_get(self, release: list[Callable[[], object]]) -> None:
        q: threadkit.queue.SimpleQueue[int] = threadkit.queue.SimpleQueue()
        t = threadkit.Thread(target=q.get, name="simple-getter", daemon=True)
        t.start()
        release.append(lambda: (q.put(1), t.join(10)))
        wait_until_parked(q)
        parked_in("simple-getter", q, "get")

    def test_spawn_into_a_full_group(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()
        release.append(event.set)
        with threadkit.TaskGroup(name="full", limit=1, max_pending=1) as group:
            group.options(name="full-running").spawn(event.wait)
            group.options(name="full-queued").spawn(event.wait)
            spawner = threadkit.Thread(
                target=group.spawn, args=(event.wait,), name="spawner", daemon=True
            )
            spawner.start()
            wait_until_parked(group)
            wait_until_parked(event)  # the running task has its thread
            part = parked_in("spawner", group, "spawn")
            assert line_of(part, "held by") == "held by full-running"
            event.set()
            spawner.join(10)


class TestWhatElseShows:
    def test_foreign_thread(self) -> None:
        hold = _thread.allocate_lock()
        hold.acquire()
        ended = _thread.allocate_lock()
        ended.acquire()
        started = _thread.allocate_lock()
        started.acquire()

        def foreign_body() -> None:
            started.release()
            hold.acquire()
            ended.release()

        ident = _thread.start_new_thread(foreign_body, ())
        try:
            assert started.acquire(True, 10)
            wait_until(lambda: "foreign_body" in section_by_ident(format_dump(), ident))
            part = section_by_ident(format_dump(), ident)
            assert part.startswith(f"Thread {ident} (not started by threadkit): running")
            assert "hold.acquire()" in part
        finally:
            hold.release()
            assert ended.acquire(True, 10)

    def test_stdlib_thread_by_its_name(self) -> None:
        event = threading.Event()
        t = threading.Thread(target=event.wait, name="std-thread", daemon=True)
        t.start()
        try:
            part = section(format_dump(), "std-thread")
            assert "not started by threadkit" in part.splitlines()[0]
            assert ", daemon," in part.splitlines()[0]
        finally:
            event.set()
            t.join(10)

    def test_calling_thread_shown_without_the_dumps_frames(self) -> None:
        part = section(format_dump(), threadkit.main_thread().name)
        assert part.splitlines()[0].endswith("this thread): running")
        assert "test_calling_thread_shown_without_the_dumps_frames" in part
        assert OWN_FILE not in part
        assert "format_dump()" in part.splitlines()[-1]

    def test_scopes_and_timeouts(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()

        def waiter() -> None:
            with threadkit.move_on_after(40), threadkit.CancelScope(shield=True):
                event.wait(timeout=30)

        t = threadkit.Thread(target=waiter, name="scoped", daemon=True)
        t.start()
        release.append(lambda: (event.set(), t.join(10)))
        wait_until_parked(event)
        part = parked_in("scoped", event, "wait")
        lines = [line.strip() for line in part.splitlines()]
        waits = line_of(part, "waits:")
        assert " for 0." in waits or " for 1" in waits
        timeout = float(waits.split(", timeout in ")[1].split()[0])
        assert 20 < timeout <= 30
        scopes = [line for line in lines if line.startswith("cancel scope:")]
        assert len(scopes) == 2, part
        assert scopes[0].startswith("cancel scope: deadline in ") and "shield" not in scopes[0]
        assert 30 < float(scopes[0].split()[4]) <= 40
        assert scopes[1] == "cancel scope: shield"
        data = next(info for info in _dump.snapshot() if info.name == "scoped")
        assert [s.shield for s in data.scopes if s.deadline or s.shield] == [False, True]

    def test_a_cancelled_scope(self, release: list[Callable[[], object]]) -> None:
        event = threadkit.Event()
        scope = threadkit.CancelScope()
        entered = threadkit.Event()

        def waiter() -> None:
            with scope, threadkit.CancelScope(shield=True):
                entered.set()
                event.wait()

        t = threadkit.Thread(target=waiter, name="shielded", daemon=True)
        t.start()
        release.append(lambda: (event.set(), t.join(10)))
        entered.wait()
        scope.cancel()
        wait_until_parked(event)
        part = section(format_dump(), "shielded")
        assert "cancel scope: cancelled" in part and "cancel scope: shield" in part

    def test_idle_workers_on_one_line(self) -> None:
        event = threadkit.Event()
        with threadkit.TaskGroup() as group:
            for _ in range(3):
                group.spawn(event.wait)
            wait_until_parked(event, 3)
            event.set()
        wait_until_parked(_workers._idle, 3)
        text = format_dump()
        line = next(line for line in text.splitlines() if "idle worker" in line)
        assert line.split()[0].isdigit() and int(line.split()[0]) >= 3
        idle = [info for info in _dump.snapshot() if info.state == "idle"]
        assert len(idle) >= 3
        for info in idle:
            assert info.stack is None
            assert f'Thread "{info.name}"' not in text

    def test_a_failing_repr_costs_one_line(self, release: list[Callable[[], object]]) -> None:
        class Odd(threadkit.Event):
            def __repr__(self) -> str:
                raise RuntimeError("no repr today")

        event = Odd()
        t = threadkit.Thread(target=event.wait, name="odd-waiter", daemon=True)
        t.start()
        release.append(lambda: (event.set(), t.join(10)))
        wait_until_parked(event)
        part = section(format_dump(), "odd-waiter")
        assert "waits: wait on <Odd object; repr() failed: RuntimeError>" in part

    def test_held_locks_provider(self) -> None:
        lock = threadkit.Lock()
        me = _thread.get_ident()
        saved = _dump._held_locks_provider
        _dump._held_locks_provider = lambda ident: [lock] if ident == me else None
        try:
            with lock:
                part = section(format_dump(), threadkit.main_thread().name)
        finally:
            _dump._held_locks_provider = saved
        assert f"holding <locked threadkit.Lock object owner=MainThread at {id(lock):#x}>" in part

    def test_dump_writes_to_the_file_or_stderr(self, capsys: pytest.CaptureFixture[str]) -> None:
        buffer = io.StringIO()
        dump(buffer)
        assert buffer.getvalue().startswith("threadkit dump: ")
        assert buffer.getvalue().endswith(END + "\n")
        dump()
        assert capsys.readouterr().err.endswith(END + "\n")
        assert "_threads.py" in format_dump(all_frames=True)


class TestWhileThreadsChange:
    def test_dumping_while_threads_park_wake_and_end(self) -> None:
        """Nodes reused, threads ending and starting between two reads: every dump
        is whole, and each parked thread it shows names a resource of the test."""
        lock = threadkit.Lock()
        cond = threadkit.Condition(lock)
        stop = threadkit.Event()
        q: threadkit.queue.Queue[int] = threadkit.queue.Queue()

        def churn(i: int) -> None:
            while not stop.is_set():
                with lock:
                    cond.notify()
                    cond.wait(0.0005)
                q.put(i)
                q.get(timeout=1)
                threadkit.Thread(target=stop.wait, args=(0.0001,)).start()

        threads = [threadkit.Thread(target=churn, args=(i,), name=f"churn-{i}") for i in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(150):
                infos = _dump.snapshot()
                text = _dump._format(infos)
                assert text.endswith(END + "\n")
                for info in infos:
                    if info.waiting is not None and info.name.startswith("churn-"):
                        assert info.waiting.resource in (lock, cond, q.not_empty, q.mutex, stop)
        finally:
            stop.set()
            for t in threads:
                t.join(10)


def section_by_ident(text: str, ident: int) -> str:
    for part in text.split("\n\n"):
        if part.startswith(f"Thread {ident} (") or f"(ident {ident}," in part.split("\n")[0]:
            return part
    raise AssertionError(f"no thread {ident} in the dump:\n{text}")


@posix_only
class TestDumpOnSignal:
    @pytest.fixture(autouse=True)
    def restore(self) -> Iterator[None]:
        saved = signal.getsignal(signal.SIGUSR1)
        yield
        dump_on_signal(None)
        signal.signal(signal.SIGUSR1, saved)

    def test_in_this_process(self) -> None:
        buffer = io.StringIO()
        previous = dump_on_signal(signal.SIGUSR1, buffer)
        assert previous == signal.SIG_DFL or callable(previous) or previous == signal.SIG_IGN
        signal.raise_signal(signal.SIGUSR1)
        wait_until(lambda: END in buffer.getvalue())
        text = buffer.getvalue()
        main = section(text, threadkit.main_thread().name)
        # The helper that wrote it is not in it, and the handler's frames are not.
        assert "this thread" not in text
        assert OWN_FILE not in main

    def test_signal_forms(self) -> None:
        handlers = []
        for form in (signal.SIGUSR1, int(signal.SIGUSR1), "SIGUSR1", "USR1", "usr1"):
            dump_on_signal(form)
            handlers.append(signal.getsignal(signal.SIGUSR1))
        assert all(isinstance(h, _dump._DumpHandler) for h in handlers)
        assert "SIGUSR1" in repr(handlers[0])
        # Installing again returns the previous handler, ours.
        assert dump_on_signal("USR1") is handlers[-1]

    def test_off_puts_back_what_it_replaced(self) -> None:
        def mine(signum: int, frame: object) -> None:
            pass

        signal.signal(signal.SIGUSR1, mine)
        assert dump_on_signal() is mine
        dump_on_signal(signal.SIGUSR1)
        assert dump_on_signal(None) is None
        assert signal.getsignal(signal.SIGUSR1) is mine

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            ("NOSUCHSIGNAL", ValueError),
            (10**6, ValueError),
            (-3, ValueError),
            (1.5, TypeError),
            (object(), TypeError),
            ("SIGINT", ValueError),
            (signal.SIGINT, ValueError),
            ("SIGKILL", (ValueError, OSError)),
        ],
    )
    def test_bad_signals_raise_at_the_call(self, bad: Any, error: Any) -> None:
        before = signal.getsignal(signal.SIGINT)
        with pytest.raises(error):
            dump_on_signal(bad)
        assert signal.getsignal(signal.SIGINT) is before

    def test_only_from_the_main_thread(self) -> None:
        errors: list[BaseException] = []

        def body() -> None:
            try:
                dump_on_signal("USR1")
            except BaseException as error:
                errors.append(error)

        t = threadkit.Thread(target=body)
        t.start()
        t.join(10)
        assert len(errors) == 1 and isinstance(errors[0], ValueError)


# A child whose every thread, the main one included, is parked in threadkit. It says
# "ready" on stdout once they all are, then waits for the signal.
BLOCKED_CHILD = """
    import os, sys, time
    import threadkit
    from threadkit import _core
    {install}
    lock = threadkit.Lock()
    lock.acquire()
    event = threadkit.Event()
    def inner():
        event.wait()
    sleeper = threadkit.Thread(target=inner, name="sleeper")
    sleeper.start()
    joiner = threadkit.Thread(target=sleeper.join, name="joiner", daemon=True)
    joiner.start()
    def announce():
        deadline = time.monotonic() + 30
        while not (_core.waiting_on(lock) and _core.waiting_on(sleeper)
                   and _core.waiting_on(event)):
            assert time.monotonic() < deadline
            time.sleep(0.001)
        print("ready", flush=True)
        event.wait()
    threadkit.Thread(target=announce, name="announcer", daemon=True).start()
    with threadkit.fail_after(120):
        lock.acquire()
"""


def run_blocked_child(tmp_path: Path, install: str, env: dict[str, str]) -> str:
    """Start BLOCKED_CHILD, wait until it is parked, send SIGUSR1, return its stderr
    once it holds a whole dump; the child is killed whatever happens."""
    out = tmp_path / "out.txt"
    err = tmp_path / "err.txt"
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(BLOCKED_CHILD).replace("{install}", install))
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=stdout,
            stderr=stderr,
            env=dict(os.environ, PYTHONPATH=SRC, **env),
        )
    try:
        wait_until(lambda: "ready" in out.read_text() or child.poll() is not None, 30)
        assert child.poll() is None, err.read_text()
        child.send_signal(signal.SIGUSR1)
        wait_until(lambda: END in err.read_text() or child.poll() is not None, 30)
        first = err.read_text()
        # A second signal dumps again: the handler stays.
        child.send_signal(signal.SIGUSR1)
        wait_until(lambda: err.read_text().count(END) == 2 or child.poll() is not None, 30)
        assert child.poll() is None, err.read_text()
        return first
    finally:
        child.kill()
        child.wait(30)


def check_blocked_dump(text: str) -> None:
    assert text.startswith("threadkit dump: "), text
    main = section(text, "MainThread")
    assert main.splitlines()[0].endswith(": parked"), main
    assert line_of(main, "waits:").startswith("waits: acquire on <locked threadkit.Lock")
    assert line_of(main, "cancel scope:").startswith("cancel scope: deadline in 1")
    assert main.rstrip().endswith("lock.acquire()"), main
    assert OWN_FILE not in main
    assert line_of(section(text, "sleeper"), "waits:").startswith("waits: wait on ")
    joiner = section(text, "joiner")
    assert line_of(joiner, "waits:").startswith("waits: join on <Thread(sleeper")
    assert line_of(joiner, "held by") == "held by sleeper"
    assert "this thread" not in text


@posix_only
@pytest.mark.skipif(sys.platform != "linux", reason="signal delivery checked on Linux")
@pytest.mark.timeout(120)
class TestSignalInAChild:
    def test_every_thread_blocked(self, tmp_path: Path) -> None:
        text = run_blocked_child(tmp_path, "threadkit.dump_on_signal('USR1')", {})
        check_blocked_dump(text)

    def test_through_the_environment(self, tmp_path: Path) -> None:
        text = run_blocked_child(tmp_path, "", {"THREADKIT_DUMP_SIGNAL": "USR1"})
        check_blocked_dump(text)

    def test_a_bad_environment_value_warns(self) -> None:
        done = subprocess.run(
            [sys.executable, "-c", "import threadkit; print('imported')"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=SRC, THREADKIT_DUMP_SIGNAL="NOSUCH"),
        )
        assert done.returncode == 0 and done.stdout == "imported\n", done.stderr
        assert "RuntimeWarning" in done.stderr and "THREADKIT_DUMP_SIGNAL" in done.stderr
