"""``threadkit check``: small programs with and without each problem, run in a
subprocess as ``python -m threadkit check ...``.

Each program is written to ``tmp_path``; what the check finds is read from its
stderr (the report is last there) and its exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import threadkit

pytestmark = pytest.mark.timeout(120)

ENV = {k: v for k, v in os.environ.items() if k != "THREADKIT_STANDIN"}
ENV["PYTHONDONTWRITEBYTECODE"] = "1"
ENV["PYTHONPATH"] = str(Path(threadkit.__file__).parent.parent)
NO_PROBLEMS = "threadkit check: no problems found\n"


def check(
    tmp_path: Path, source: str, *args: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "prog.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "threadkit", "check", *options, "prog.py", *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=90,
    )


def report(out: subprocess.CompletedProcess[str]) -> str:
    """The check's report: stderr from its first line on (it comes last)."""
    start = out.stderr.rfind("threadkit check: ")
    assert start >= 0, out.stderr
    return out.stderr[start:]


CLEAN = """\
    import sys, threading
    results = []
    def work(n):
        results.append(n * n)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sorted(results), sys.argv[1:], threading.__name__)
"""


def test_a_clean_program_passes_with_its_arguments(tmp_path: Path) -> None:
    out = check(tmp_path, CLEAN, "a", "--flag")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[0, 1, 4, 9] ['a', '--flag'] threadkit\n"
    assert out.stderr == NO_PROBLEMS


def test_a_module_runs_with_dash_m(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(textwrap.dedent(CLEAN))
    out = subprocess.run(
        [sys.executable, "-m", "threadkit", "check", "-m", "mod", "x"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[0, 1, 4, 9] ['x'] threadkit\n"
    assert out.stderr == NO_PROBLEMS


FAILING_THREAD = """\
    import threading
    def boom():
        raise ValueError("lost in a thread")
    t = threading.Thread(target=boom, name="boomer")
    t.start()
    t.join()
    print("main ends")
"""


def test_a_thread_failure_nobody_collected(tmp_path: Path) -> None:
    out = check(tmp_path, FAILING_THREAD)
    assert out.returncode == 1, out.stderr
    assert out.stdout == "main ends\n"
    text = report(out)
    assert text.startswith("threadkit check: 1 problem\n"), text
    assert "-- 1. thread failure nobody collected: boomer raised ValueError" in text
    assert 'prog.py", line 3, in boom' in text
    assert "ValueError: lost in a thread" in text
    assert "(2 frames of threadkit not shown)" in text
    assert "_threads.py" not in text
    # excepthook still printed it as threading does, before the report.
    assert out.stderr.index("Exception in thread boomer") < out.stderr.index(text)


def test_a_program_with_its_own_excepthook_handled_its_failures(tmp_path: Path) -> None:
    source = (
        "import threading\n"
        "threading.excepthook = lambda args: print('handled', args.exc_type.__name__)\n"
        + textwrap.dedent(FAILING_THREAD)
    )
    out = check(tmp_path, source)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "handled ValueError\nmain ends\n"
    assert out.stderr == NO_PROBLEMS


def test_a_failure_collected_with_result_is_not_a_problem(tmp_path: Path) -> None:
    # Needs Thread.result() to mark the failure collected (``_tk_retrieved``).
    out = check(
        tmp_path,
        """\
        import threading
        def boom():
            raise ValueError("collected")
        t = threading.Thread(target=boom)
        t.start()
        try:
            t.result()
        except ValueError as exc:
            print("caught", exc)
        """,
    )
    assert out.stdout == "caught collected\n"
    assert report(out) == NO_PROBLEMS
    assert out.returncode == 0


def test_a_daemon_thread_left_blocked_at_exit(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        """\
        import threading
        lock = threading.Lock()
        holding = threading.Event()
        def hold():
            with lock:
                holding.set()
                threading.Event().wait()
        threading.Thread(target=hold, name="holder", daemon=True).start()
        holding.wait()
        # A non-daemon thread is joined at exit, as always, and is no problem.
        threading.Thread(target=lambda: print("joined at exit")).start()
        """,
    )
    assert out.returncode == 1, out.stderr
    assert out.stdout == "joined at exit\n"
    text = report(out)
    assert text.startswith("threadkit check: 1 problem\n"), text
    assert "-- 1. thread still running at exit: holder (daemon)" in text
    assert 'prog.py", line 7, in hold' in text
    assert "threading.Event().wait()" in text


def test_idle_workers_of_the_cache_are_not_left_threads(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        """\
        import threadkit
        with threadkit.TaskGroup() as tg:
            tasks = [tg.spawn(pow, i, 2) for i in range(8)]
        print([t.result() for t in tasks])
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[0, 1, 4, 9, 16, 25, 36, 49]\n"
    assert out.stderr == NO_PROBLEMS


INVERSION = """\
    import threading
    a = threading.Lock()
    b = threading.Lock()
    with a:
        with b:
            pass
    def other():
        with b:
            with a:
                pass
    t = threading.Thread(target=other, name="other")
    t.start()
    t.join()
    print("no deadlock this time")
"""


def test_a_lock_order_inversion_without_deadlock(tmp_path: Path) -> None:
    # Needs lock-order checking (threadkit._lockorder).
    out = check(tmp_path, INVERSION)
    assert out.stdout == "no deadlock this time\n"
    text = report(out)
    assert text.startswith("threadkit check: 1 problem\n"), text
    assert "-- 1. lock order: " in text
    # Both acquisition stacks: the main thread's (line 5) and other's (line 9).
    assert "prog.py" in text
    assert ", line 5" in text
    assert ", line 9" in text
    assert out.returncode == 1


def test_no_lock_order_turns_that_check_off(tmp_path: Path) -> None:
    out = check(tmp_path, INVERSION, options=("--no-lock-order",))
    assert out.returncode == 0, out.stderr
    assert out.stderr == NO_PROBLEMS


@pytest.mark.parametrize("caught", [True, False])
def test_a_deadlock(tmp_path: Path, caught: bool) -> None:
    # Needs deadlock detection (threadkit._core._deadlock).
    catch = "threading.DeadlockError" if caught else "KeyError"
    out = check(
        tmp_path,
        f"""\
        import threading
        a = threading.Lock()
        b = threading.Lock()
        both = threading.Barrier(2)
        def take(first, second):
            with first:
                both.wait()
                try:
                    with second:
                        pass
                except {catch}:
                    print("caught", flush=True)
        t1 = threading.Thread(target=take, args=(a, b), name="ab")
        t2 = threading.Thread(target=take, args=(b, a), name="ba")
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        """,
        options=("--timeout", "60"),
    )
    assert out.stdout == ("caught\n" if caught else ""), out.stderr
    text = report(out)
    # Two problems: the deadlock, and the two locks taken in both orders that made it;
    # a DeadlockError that ended its thread is said so there, not reported again.
    assert text.startswith("threadkit check: 2 problems\n"), text
    deadlock = text[text.index(". deadlock: DeadlockError raised in ") :]
    title = deadlock.split("\n")[0]
    if caught:
        assert title.endswith(("ab -> ba", "ba -> ab")), title
    else:
        assert title.endswith(("; uncaught, it ended ab", "; uncaught, it ended ba")), title
    assert "prog.py:9" in deadlock
    assert ". lock order: " in text
    assert out.returncode == 1


@pytest.mark.parametrize(
    ("ending", "status", "stderr_has"),
    [
        ("sys.exit(3)", 3, None),
        ("sys.exit('fatal: no input')", 1, "fatal: no input\n"),
        ("raise KeyError('missing')", 1, "KeyError: 'missing'\n"),
    ],
)
def test_the_programs_own_failure_keeps_its_status(
    tmp_path: Path, ending: str, status: int, stderr_has: str | None
) -> None:
    out = check(tmp_path, f"import sys\n{textwrap.dedent(FAILING_THREAD)}{ending}\n")
    assert out.returncode == status, out.stderr
    text = report(out)
    assert text.startswith("threadkit check: 1 problem\n"), text
    if stderr_has is not None:
        # The program's own message (or traceback, from its own frame) comes first.
        assert out.stderr.index(stderr_has) < out.stderr.index(text)
        assert "_cli.py" not in out.stderr[: out.stderr.index(text)]


def test_the_report_comes_after_exit_joins_and_atexit(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        """\
        import atexit, sys, threading
        go = threading.Event()
        def late():
            go.wait()
            sys.stderr.write("late thread done\\n")
        threading.Thread(target=late).start()
        atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
        go.set()
        sys.exit(0)
        """,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.endswith("late thread done\natexit ran\n" + NO_PROBLEMS), out.stderr


def test_timeout_reports_a_hang(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        """\
        import threading
        never = threading.Event()
        threading.Thread(target=never.wait, name="stuck").start()
        never.wait()
        """,
        options=("--timeout", "0.5"),
    )
    assert out.returncode == 124, out.stderr
    assert "threadkit check: the program did not end within 0.5 seconds" in out.stderr
    assert '"stuck"' in out.stderr
    assert out.stderr.endswith(NO_PROBLEMS)


@pytest.mark.parametrize(
    ("args", "status", "text"),
    [
        (["--help"], 0, "usage: threadkit check"),
        (["--bogus", "prog.py"], 2, "unknown option --bogus"),
        (["--timeout", "soon", "prog.py"], 2, "--timeout needs seconds"),
        ([], 2, "usage: threadkit check"),
        (["missing.py"], 2, "can't open file"),
    ],
)
def test_usage(tmp_path: Path, args: list[str], status: int, text: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "threadkit", "check", *args],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == status, out.stderr
    assert text in out.stdout + out.stderr


CHILD = """\
    import threading
    def boom():
        raise ValueError("lost in a child")
    t = threading.Thread(target=boom, name="child-boomer")
    t.start()
    t.join()
"""


def test_a_child_process_reports_its_own_problems(tmp_path: Path) -> None:
    # Needs the stand-in's start-up to call _check.from_environment().
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD))
    out = check(
        tmp_path,
        """\
        import subprocess, sys
        status = subprocess.run([sys.executable, "child.py"]).returncode
        print("child exited", status)
        """,
    )
    assert out.stdout == "child exited 0\n", out.stderr
    assert "threadkit check (process " in out.stderr
    assert "): 1 problem\n" in out.stderr
    assert "-- 1. thread failure nobody collected: child-boomer raised ValueError" in out.stderr
    # The parent's own report is about the parent, and comes last.
    assert out.stderr.endswith(NO_PROBLEMS)
    assert out.returncode == 0


def test_checks_from_the_environment(tmp_path: Path) -> None:
    """What a process started by a checked program runs at start-up."""
    source = "import threadkit\nthreadkit.install()\n"
    source += "from threadkit._check import from_environment\nfrom_environment()\n"
    source += textwrap.dedent(CHILD)
    (tmp_path / "child.py").write_text(source)
    out = subprocess.run(
        [sys.executable, "child.py"],
        cwd=tmp_path,
        env={**ENV, "THREADKIT_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert "-- 1. thread failure nobody collected: child-boomer raised ValueError" in out.stderr
    assert out.stderr.startswith("Exception in thread child-boomer")
    assert "): 1 problem\n" in out.stderr
    # Without anything to report, nothing is printed.
    (tmp_path / "clean.py").write_text(source.split("import threading")[0])
    out = subprocess.run(
        [sys.executable, "clean.py"],
        cwd=tmp_path,
        env={**ENV, "THREADKIT_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
