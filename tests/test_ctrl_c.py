"""Ctrl-C as a user meets it: real signals, in child processes.

What ``tests/test_interrupts.py`` proves line by line (a SIGINT at any line of a call
leaves every object consistent), this file checks from the outside: random real
interrupts (``ctrl_c_stress.py``), an interrupt owed by threadkit's code that must
still come out promptly and exactly once, the line a first Ctrl-C prints when what
it cancelled cannot end, and that threadkit leaves other SIGINT handlers alone.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import threadkit

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX signals"),
]

SRC = str(Path(threadkit.__file__).parent.parent)
HERE = Path(__file__).parent

#: A child's helper: run ``call()`` and, at its first line of threadkit code, hand
#: SIGINT to the installed handler with that frame, as CPython does when a Ctrl-C
#: arrives there. threadkit's handler owes it (the frame is threadkit's bookkeeping).
INJECT = """
import os, signal, sys
import threadkit
PKG = os.path.dirname(threadkit.__file__) + os.sep

def ctrl_c_inside(call):
    done = []

    def local(frame, event, arg):
        if event == "line" and not done:
            done.append(1)
            signal.getsignal(signal.SIGINT)(signal.SIGINT, frame)
        return local

    def trace(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PKG) else None

    sys.settrace(trace)
    try:
        return call()
    finally:
        sys.settrace(None)

threadkit.Thread(target=int).start()  # threadkit takes SIGINT from here
"""


#: A child that hangs dumps every thread's stack and exits, so the failure says where.
DUMP_ON_HANG = "import faulthandler; faulthandler.dump_traceback_later(40, exit=True)\n"


def run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DUMP_ON_HANG + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=SRC),
    )


def test_random_real_interrupts_break_nothing() -> None:
    """Random SIGINTs: no lost wake-up, no half-started thread, no stuck cache."""
    out = subprocess.run(
        [sys.executable, str(HERE / "ctrl_c_stress.py"), "0.8"],
        capture_output=True,
        text=True,
        timeout=100,
        env=dict(os.environ, PYTHONPATH=SRC),
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr
    # Without threadkit's handler the same run breaks (see ctrl_c_stress.py --raw);
    # here every scenario must have been interrupted many times, or it proved nothing.
    for line in out.stdout.splitlines():
        if line.startswith("ok "):
            interrupted = int(line.split(", ")[1].split()[0])
            assert interrupted >= 10, line


def test_owed_interrupt_comes_out_promptly_and_once() -> None:
    """Owed by Event.set, it comes out soon after, also if the program then blocks in
    a C call (the nudge is a real signal, so it interrupts the sleep)."""
    code = (
        INJECT
        + """
import time
ev = threadkit.Event()
start = time.monotonic()
try:
    ctrl_c_inside(ev.set)
    time.sleep(20)
    print("slept through it")
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - start:.3f}s")
print("set" if ev.is_set() else "not set")
try:
    time.sleep(0.3)  # a second KeyboardInterrupt would come out here
    print("once")
except KeyboardInterrupt:
    print("twice")
"""
    )
    out = run_child(code)
    assert "interrupted after" in out.stdout and "once" in out.stdout, out
    assert "set" in out.stdout.split(), out  # the call was not cut short: it completed
    delay = float(out.stdout.split("interrupted after ")[1].split("s")[0])
    assert delay < 1.0, out.stdout


def test_owed_interrupt_goes_to_a_handler_installed_meanwhile() -> None:
    """The program changed SIGINT's handler after the Ctrl-C: the new one gets it, or
    nobody if it now ignores SIGINT."""
    code = (
        INJECT
        + """
import time
got = []

def mine(signum, frame):
    got.append(int(signum))

ev = threadkit.Event()
ctrl_c_inside(lambda: (ev.set(), signal.signal(signal.SIGINT, mine)))
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.001)
print("handled", got)
threadkit._core._interrupts._installed = None
signal.signal(signal.SIGINT, signal.default_int_handler)
threadkit._core.install_interrupts()
ctrl_c_inside(lambda: (ev.set(), signal.signal(signal.SIGINT, signal.SIG_IGN)))
time.sleep(0.2)
print("ignored", threadkit._core._interrupts.owed())
"""
    )
    out = run_child(code)
    assert "handled [2]" in out.stdout and "ignored False" in out.stdout, out


@pytest.mark.parametrize("exit_function", [False, True])
def test_interrupt_still_owed_at_exit_ends_the_program_as_a_ctrl_c(exit_function: bool) -> None:
    """Owed by the program's last call: not lost at exit, and, like a Ctrl-C that
    ended the main thread, it cancels the non-daemon threads instead of waiting.

    Also when the program registered an exit function of its own: it runs before
    threadkit's exit handler, and the interrupt must not be raised (and swallowed)
    in it. That race is lost only now and then, so that case runs a few times.
    """
    code = (
        INJECT
        + ("import atexit\natexit.register(lambda: None)\n" if exit_function else "")
        + """
def worker():
    try:
        threadkit.Event().wait()
    except threadkit.Cancelled:
        print("worker cancelled", flush=True)
        raise

threadkit.Thread(target=worker).start()
ev = threadkit.Event()
ctrl_c_inside(ev.set)  # the program's last call; the interrupt is owed
"""
    )
    for _ in range(4 if exit_function else 1):
        out = run_child(code)
        assert "KeyboardInterrupt" in out.stderr, out
        assert "worker cancelled" in out.stdout, out


def test_a_ctrl_c_handled_earlier_does_not_cancel_threads_at_a_normal_exit() -> None:
    """sys.last_exc keeps a KeyboardInterrupt a REPL or a runner showed and handled."""
    code = """
        import code, sys, threadkit
        code.InteractiveInterpreter().runsource("raise KeyboardInterrupt")  # shown, kept
        assert isinstance(getattr(sys, "last_exc", sys.last_value), KeyboardInterrupt)

        def writer():
            threadkit.sleep(0.2)
            print("writer done", flush=True)

        threadkit.Thread(target=writer).start()
    """
    out = run_child(code)
    assert "writer done" in out.stdout and out.returncode == 0, out


def test_threadkit_leaves_a_programs_own_handler_alone() -> None:
    code = """
        import signal, threadkit
        mine = lambda signum, frame: None
        signal.signal(signal.SIGINT, mine)
        t = threadkit.Thread(target=int)
        t.start()
        t.join()
        threadkit.Event().wait(0.01)
        print(signal.getsignal(signal.SIGINT) is mine)
    """
    out = run_child(code)
    assert out.stdout.strip() == "True", out


def test_importing_threadkit_leaves_asyncio_its_handler() -> None:
    """asyncio.run installs its own SIGINT handler only over Python's default one."""
    code = """
        import asyncio, signal, threadkit
        from threadkit._core import _interrupts
        local = threadkit.local()
        local.x = 1
        with threadkit.Lock():
            pass

        async def main():
            handler = signal.getsignal(signal.SIGINT)
            ours = _interrupts._on_sigint
            return handler is not signal.default_int_handler and handler is not ours

        print(asyncio.run(main()))
    """
    out = run_child(code)
    assert out.stdout.strip() == "True", out


class _Lines:
    """The lines a child writes to one pipe, read by a thread as they come."""

    def __init__(self, pipe: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> str | None:
        """The first line containing ``text`` within ``timeout`` s, else None."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                return None
            self.seen.append(line)
            if text in line:
                return line


#: For a child: ``announce_when(started, operation, word)`` prints ``word`` once
#: ``started`` is passed and the main thread waits in threadkit's ``operation``.
ANNOUNCE = """
import _thread, threading
from threadkit import _core

MAIN = _thread.get_ident()

def _announce(started, operation, word):
    started.wait()
    while True:
        node = getattr(_core.record_for(MAIN), "waiting", None)
        if node is not None and node.operation == operation:
            print(word, flush=True)
            return
        threading.Event().wait(0.001)

def announce_when(started, operation, word):
    threading.Thread(target=_announce, args=(started, operation, word), daemon=True).start()
"""


def _two_ctrl_c(code: str, ready: str) -> tuple[str, str, float]:
    """Start ``code``; once it prints ``ready``, Ctrl-C; once it says what it waits
    for, Ctrl-C again. Return the line, the rest of stderr, and the second's delay.

    A SIGINT that arrives just before the main thread's blocking acquire reaches
    the kernel is only acted on at the next signal (CPython's, and threading's, own
    race; seen without the GIL, where the child's announcer runs at the same time as
    the main thread): if nothing comes of the first, it is sent again, as a user
    would press again.
    """
    # A child still there after 20 s dumps its threads' stacks (to the stderr that
    # the failure message shows) and exits.
    proc = subprocess.Popen(
        [sys.executable, "-c", DUMP_ON_HANG.replace("(40,", "(20,") + code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=SRC),
    )
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        assert out.wait_for(ready, 30), f"never ready: {out.seen} {err.seen}"
        for _ in range(5):
            proc.send_signal(signal.SIGINT)
            line = err.wait_for("threadkit: KeyboardInterrupt", 3)
            if line is not None:
                break
        else:
            raise AssertionError(f"no line after a Ctrl-C: {err.seen}")
        second = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            err.thread.join(5)
            left = [*err.seen]
            while not err.lines.empty():
                left.append(err.lines.get())
            raise AssertionError(f"no exit after a second Ctrl-C: {''.join(left)}") from None
        delay = time.monotonic() - second
        err.thread.join(10)
        rest = "".join(err.seen[err.seen.index(line) + 1 :])
        while not err.lines.empty():
            rest += err.lines.get()
        return line, rest, delay
    finally:
        proc.kill()
        proc.wait()


def test_first_ctrl_c_in_a_task_group_says_what_it_waits_for() -> None:
    code = ANNOUNCE + textwrap.dedent(
        """
        import socket, threading, threadkit
        pairs = [socket.socketpair() for _ in range(2)]
        started = threading.Barrier(3)

        def fetch(sock):
            started.wait()
            return sock.recv(10)  # blocked outside threadkit: cannot see a cancel

        announce_when(started, "wait", "ready")
        with threadkit.TaskGroup(name="crawl") as tg:
            for i, (a, b) in enumerate(pairs):
                tg.options(name=f"fetch-{i}").spawn(fetch, a)
            threadkit.Event().wait()
    """
    )
    line, rest, delay = _two_ctrl_c(code, "ready")
    assert "in crawl" in line and "2 cancelled tasks" in line, line
    assert "fetch-0 (blocked outside threadkit)" in line, line
    assert "fetch-1 (blocked outside threadkit)" in line, line
    assert "Ctrl-C again" in line, line
    assert delay < 5, f"the second Ctrl-C took {delay:.1f}s"
    assert rest.count("Traceback") == 1, rest
    assert "During handling" not in rest and "KeyboardInterrupt" in rest, rest


def test_first_ctrl_c_at_exit_says_which_threads_it_waits_for() -> None:
    code = ANNOUNCE + textwrap.dedent(
        """
        import socket, threading, threadkit
        a, b = socket.socketpair()
        started = threading.Event()

        def serve():
            started.set()
            a.recv(10)  # blocked outside threadkit: cannot see a cancel

        announce_when(started, "join", "exiting")
        threadkit.Thread(target=serve, name="server").start()
    """
    )
    line, rest, delay = _two_ctrl_c(code, "exiting")
    assert "at exit" in line and "1 cancelled thread " in line, line
    assert "server (blocked outside threadkit)" in line, line
    assert delay < 5, f"the second Ctrl-C took {delay:.1f}s"
    assert "During handling" not in rest, rest


def test_ctrl_c_that_ends_the_main_thread_says_which_threads_exit_waits_for() -> None:
    """The first Ctrl-C ends the main thread, but exit must wait for a non-daemon
    thread blocked outside threadkit: say so at once, and let the second one exit."""
    code = ANNOUNCE + textwrap.dedent(
        """
        import socket, threading, threadkit
        a, b = socket.socketpair()
        started = threading.Event()

        def serve():
            started.set()
            a.recv(10)

        announce_when(started, "wait", "ready")
        threadkit.Thread(target=serve, name="server").start()
        threadkit.Event().wait()
    """
    )
    line, _, delay = _two_ctrl_c(code, "ready")
    assert "at exit" in line and "server (blocked outside threadkit)" in line, line
    assert delay < 5, f"the second Ctrl-C took {delay:.1f}s"
