"""Thread beyond the conformance suite: outcomes, foreign threads, exit, fork, Ctrl-C."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

import threadkit
from helpers import wait_until, wait_until_parked
from threadkit import _threads

pytestmark = pytest.mark.timeout(60)
SRC = str(Path(threadkit.__file__).parent.parent)


def run_python(code: str, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


@pytest.fixture
def hook_calls() -> Iterator[list[Any]]:
    """Replace threadkit.excepthook with one that records its arguments."""
    calls: list[Any] = []
    saved = threadkit.excepthook
    threadkit.excepthook = calls.append
    try:
        yield calls
    finally:
        threadkit.excepthook = saved


class TestOutcome:
    def test_result_returns_target_value(self) -> None:
        t = threadkit.Thread(target=lambda a, b=0: a + b, args=(40,), kwargs={"b": 2})
        t.start()
        assert t.result(timeout=10) == 42
        assert t.exception() is None

    def test_result_reraises_with_original_traceback(self, hook_calls: list[Any]) -> None:
        def inner() -> None:
            raise ValueError("boom")

        t = threadkit.Thread(target=inner)
        t.start()
        with pytest.raises(ValueError, match="boom") as info:
            t.result(timeout=10)
        frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "inner" in frames
        # Asking twice raises the same exception without piling up tracebacks.
        with pytest.raises(ValueError) as again:
            t.result()
        assert again.value is info.value
        assert len(traceback.extract_tb(again.value.__traceback__)) == len(frames)
        assert isinstance(t.exception(), ValueError)

    def test_failure_still_reaches_excepthook(self, hook_calls: list[Any]) -> None:
        def fail() -> None:
            raise KeyError("lost?")

        t = threadkit.Thread(target=fail, name="failing")
        t.start()
        t.join()
        assert len(hook_calls) == 1
        args = hook_calls[0]
        assert args.exc_type is KeyError
        assert args.thread is t
        assert args.exc_traceback is not None

    def test_excepthook_failure_goes_to_sys_excepthook(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seen: list[type[BaseException]] = []

        def bad_hook(args: Any) -> None:
            raise RuntimeError("hook broke")

        monkeypatch.setattr(threadkit, "excepthook", bad_hook)
        monkeypatch.setattr(sys, "excepthook", lambda tp, v, tb: seen.append(tp))
        t = threadkit.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()
        assert seen == [RuntimeError]

    def test_stdlib_hook_is_used_when_ours_is_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # pytest and others watch threading.excepthook; failures must reach them too.
        calls: list[Any] = []
        monkeypatch.setattr(threading, "excepthook", calls.append)
        t = threadkit.Thread(target=lambda: 1 / 0)
        t.start()
        t.join()
        assert [c.exc_type for c in calls] == [ZeroDivisionError]

    def test_result_timeout_raises_timeout_error(self) -> None:
        gate = threadkit.Event()
        t = threadkit.Thread(target=gate.wait)
        t.start()
        try:
            with pytest.raises(TimeoutError):
                t.result(timeout=0.01)
            with pytest.raises(TimeoutError):
                t.exception(timeout=0)
        finally:
            gate.set()
            t.join()
        assert t.result() is True

    def test_a_failed_start_releases_whoever_began_to_wait(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # join() and native_id can begin to wait as soon as start() has marked the
        # thread started. If the OS thread then cannot be made, they must learn that
        # the thread never started, not wait for ever.
        t = threadkit.Thread(target=int)
        outcome: dict[str, Any] = {}

        def wait_for(what: str) -> None:
            try:
                outcome[what] = t.result(10) if what == "result" else t.native_id
            except RuntimeError as exc:
                outcome[what] = str(exc)

        waiters = [
            threading.Thread(target=wait_for, args=(w,), daemon=True)
            for w in ("result", "native_id")
        ]

        def refuse(fn: Any, args: Any) -> NoReturn:
            for w in waiters:
                w.start()
            wait_until_parked(t, 2)
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(_threads, "_start_os_thread", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            t.start()
        for w in waiters:
            w.join(10)
        assert not any(w.is_alive() for w in waiters)
        assert outcome == {
            "result": "cannot get the result of thread before it is started",
            "native_id": None,
        }
        monkeypatch.undo()
        t.start()  # it can still be started
        assert t.result(10) == 0

    def test_result_before_start_and_of_self(self) -> None:
        t = threadkit.Thread(target=lambda: None)
        with pytest.raises(RuntimeError):
            t.result()
        out: list[BaseException] = []

        def me() -> None:
            try:
                threadkit.current_thread().result()
            except RuntimeError as exc:
                out.append(exc)

        t2 = threadkit.Thread(target=me)
        t2.start()
        t2.join()
        assert len(out) == 1

    def test_subclass_run_return_value_is_the_result(self) -> None:
        class Worker(threadkit.Thread):
            def run(self) -> str:
                return "from run"

        w = Worker()
        w.start()
        assert w.result() == "from run"

    def test_timer_result_and_cancel(self) -> None:
        t = threadkit.Timer(0.01, lambda x: x * 3, args=(5,))
        t.start()
        assert t.result(timeout=10) == 15
        c = threadkit.Timer(60, lambda: 1 / 0)
        c.start()
        c.cancel()
        assert c.result(timeout=10) is None


class TestForeignThreads:
    def test_stdlib_thread_is_a_dummy(self) -> None:
        got: list[threadkit.Thread] = []
        t = threading.Thread(target=lambda: got.append(threadkit.current_thread()))
        t.start()
        t.join()
        dummy = got[0]
        assert isinstance(dummy, threadkit._DummyThread)
        assert dummy.name == t.name  # the name threading gave it
        assert dummy.daemon is t.daemon is False  # and its daemon flag
        with pytest.raises(RuntimeError):
            dummy.join()
        # It leaves enumerate() once its thread has ended.
        wait_until(lambda: dummy not in threadkit.enumerate())

    def test_main_thread(self) -> None:
        main = threadkit.main_thread()
        assert main.name == "MainThread"
        assert main.ident == threading.main_thread().ident
        assert threadkit.current_thread() is main
        assert main in threadkit.enumerate()
        assert main.is_alive()

    def test_native_id_right_after_start(self) -> None:
        gate = threadkit.Event()
        t = threadkit.Thread(target=gate.wait)
        t.start()
        try:
            assert isinstance(t.native_id, int)
            assert t.ident is not None
        finally:
            gate.set()
            t.join()

    def test_our_locks_inside_stdlib_condition(self) -> None:
        for lock in (threadkit.Lock(), threadkit.RLock()):
            cond = threading.Condition(lock)
            ready: list[int] = []

            def producer(cond: threading.Condition = cond, ready: list[int] = ready) -> None:
                with cond:
                    ready.append(1)
                    cond.notify()

            with cond:
                t = threadkit.Thread(target=producer)
                t.start()
                assert cond.wait_for(lambda ready=ready: ready, timeout=10)
            t.join()


class TestInterrupt:
    """Ctrl-C while the main thread is parked: prompt, and nothing left behind."""

    def _interrupt_when_parked(self, resource: object) -> threading.Thread:
        main = _thread.get_ident()

        def fire() -> None:
            wait_until_parked(resource, 1)
            signal.pthread_kill(main, signal.SIGINT)

        t = threading.Thread(target=fire)
        t.start()
        return t

    def _check(self, resource: Any, call: Callable[[], object]) -> None:
        killer = self._interrupt_when_parked(resource)
        with pytest.raises(KeyboardInterrupt):
            call()
        killer.join()
        assert not threadkit._core.waiting_on(resource)

    def test_lock_acquire(self) -> None:
        lock = threadkit.Lock()
        lock.acquire()
        self._check(lock, lock.acquire)
        assert len(lock._queue) == 0
        lock.release()
        assert lock.acquire(False)
        lock.release()

    def test_rlock_acquire(self) -> None:
        lock = threadkit.RLock()
        holder_ready = threadkit.Event()
        done = threadkit.Event()

        def hold() -> None:
            with lock:
                holder_ready.set()
                done.wait()

        t = threadkit.Thread(target=hold)
        t.start()
        holder_ready.wait()
        try:
            self._check(lock, lock.acquire)
        finally:
            done.set()
            t.join()
        assert lock.acquire(timeout=5)
        lock.release()

    def test_condition_wait_holds_lock_again(self) -> None:
        cond = threadkit.Condition()
        with cond:
            self._check(cond, cond.wait)
            assert cond._is_owned()
        assert not cond._lock._is_owned()

    def test_semaphore_event_join(self) -> None:
        sem = threadkit.Semaphore(0)
        self._check(sem, sem.acquire)
        sem.release()
        assert sem._value == 1
        ev = threadkit.Event()
        self._check(ev, ev.wait)
        gate = threadkit.Event()
        t = threadkit.Thread(target=gate.wait)
        t.start()
        try:
            self._check(t, t.join)
        finally:
            gate.set()
            t.join()

    def test_barrier_wait_breaks_it(self) -> None:
        b = threadkit.Barrier(2)
        self._check(b, b.wait)
        assert b.broken


class TestInterpreter:
    @pytest.mark.parametrize("threading_first", [False, True])
    def test_main_native_id_when_imported_first_in_another_thread(
        self, threading_first: bool
    ) -> None:
        # threadkit imported first in a thread other than the main one does not know
        # the main thread's native id yet: reading it must not wait for ever, and
        # the main thread itself (or threading, if loaded) supplies it.
        # Before 3.13 (no _thread._get_main_thread_ident) nothing tells another
        # thread which one is the main one, and threading itself then takes the
        # importing thread for it: only "no hang, at exit either" is asked there.
        knows_main = threading_first or hasattr(_thread, "_get_main_thread_ident")
        out = run_python(
            f"""
            import _thread
            if {threading_first}:
                import threading
            box = {{}}
            imported = _thread.allocate_lock()
            imported.acquire()
            def load():
                import threadkit
                box["tk"] = threadkit
                imported.release()
            _thread.start_new_thread(load, ())
            assert imported.acquire(timeout=10)
            tk = box["tk"]
            read = _thread.allocate_lock()
            read.acquire()
            def other():
                box["other"] = tk.main_thread().native_id
                read.release()
            _thread.start_new_thread(other, ())
            print("other returned", read.acquire(timeout=10))
            print("own", tk.main_thread().native_id == _thread.get_native_id())
            print("other", box.get("other") in (None, _thread.get_native_id()))
            """
        )
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""
        lines = out.stdout.split()
        assert lines[:3] == ["other", "returned", "True"]
        if knows_main:
            assert lines[3:] == ["own", "True", "other", "True"]

        out = run_python(
            """
            import threadkit, time
            def work():
                time.sleep(0.2)
                print("worker done", flush=True)
            threadkit.Thread(target=work).start()
            print("main done", flush=True)
            """
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["main", "done", "worker", "done"]

    def test_exit_does_not_wait_for_daemon_threads(self) -> None:
        out = run_python(
            """
            import threadkit
            threadkit.Thread(target=threadkit.Event().wait, daemon=True).start()
            print("bye")
            """,
            timeout=20,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "bye"

    def test_stands_in_for_threading(self) -> None:
        # threadkit as sys.modules["threading"] under queue, concurrent.futures and
        # logging, with interpreter exit going through threadkit._shutdown.
        out = run_python(
            """
            import sys, threadkit
            assert "threading" not in sys.modules
            sys.modules["threading"] = threadkit
            import queue, logging, time
            from concurrent.futures import ThreadPoolExecutor
            assert queue.Queue().mutex.__class__ is threadkit.Lock
            with ThreadPoolExecutor(4) as pool:
                assert list(pool.map(lambda x: x * x, range(20))) == [x * x for x in range(20)]
            q = queue.Queue()
            def consume():
                while (item := q.get()) is not None:
                    logging.getLogger("t").warning("got %s", item)
            t = threadkit.Thread(target=consume)
            t.start()
            for i in range(3):
                q.put(i)
            q.put(None)
            def late():
                time.sleep(0.2)
                print("late worker done", flush=True)
            threadkit.Thread(target=late).start()
            print("main done", flush=True)
            """
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["main done", "late worker done"]
        assert out.stderr.count("got ") == 3

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_thread_being_started_during_a_fork_is_gone_in_the_child(self) -> None:
        # Another thread forks while this one is inside start(), after the thread
        # is marked started and before it has an ident: in the child that thread
        # does not exist, so it must not look alive, and join() must not wait.
        out = run_python(
            """
            import os, threading, warnings, threadkit
            from threadkit import _threads
            warnings.simplefilter("ignore", DeprecationWarning)
            t = threadkit.Thread(target=int)
            real = _threads._start_os_thread
            seen = {}
            def fork_meanwhile(fn, args):
                def forker():
                    r, w = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        alive = t.is_alive()
                        t.join(5)
                        os.write(w, f"{alive} {t.is_alive()}".encode())
                        os._exit(0)
                    os.close(w)
                    seen["child"] = os.read(r, 100).decode()
                    os.waitpid(pid, 0)
                f = threading.Thread(target=forker)
                f.start()
                f.join(30)
                return real(fn, args)
            _threads._start_os_thread = fork_meanwhile
            t.start()
            t.join(10)
            print(seen["child"], t.is_alive())
            """
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["False", "False", "False"]

    def test_forked_child_starts_consistent(self) -> None:
        out = run_python(
            """
            import os, sys, warnings, threadkit
            warnings.simplefilter("ignore", DeprecationWarning)
            lock = threadkit.Lock()
            ev = threadkit.Event()
            parked = threadkit.Event()
            held = threadkit.Lock()
            held.acquire()
            def waiter():
                parked.set()
                held.acquire()   # parked in held's queue at fork time
                held.release()
            t = threadkit.Thread(target=waiter)
            t.start()
            parked.wait()
            while not threadkit._core.waiting_on(held):
                pass
            pid = os.fork()
            if pid == 0:
                ok = (
                    threadkit.enumerate() == [threadkit.current_thread()]
                    and threadkit.current_thread() is threadkit.main_thread()
                    and not t.is_alive()
                    and len(held._queue) == 0
                )
                # The child can still use everything, threads included.
                held.release()
                r = threadkit.Thread(target=lambda: held.acquire(timeout=5))
                r.start()
                ok = ok and r.result(timeout=5) is True
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            held.release()
            t.join()
            print(os.waitstatus_to_exitcode(status))
            """
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "0"
