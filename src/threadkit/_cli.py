"""The ``threadkit`` command line: ``threadkit run``, ``threadkit check`` and ``threadkit demo``."""

from __future__ import annotations

import _thread
import argparse
import atexit
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import threadkit

from . import _standin, _threads

if TYPE_CHECKING:
    from ._check import Checker

__all__ = ["main"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


_EXAMPLES = """\
examples:
  threadkit run prog.py --its-own-option     run prog.py on threadkit, as python would
  threadkit run -m http.server 8000          run a module on threadkit, as python -m would
  python -m threadkit run prog.py            the same, with a chosen interpreter
  threadkit check prog.py --its-own-option   run it with every check on, report at the end
  threadkit demo -n 3 --max-sleep 2          a short demo of what threadkit adds
"""

_RUN_HELP = """\
usage: threadkit run prog.py [args ...]
       threadkit run -m module [args ...]

Run an unmodified program with threadkit standing in for threading: from its first
import on, `import threading` gives threadkit, in the program and in the processes it
starts with the same Python (multiprocessing, subprocess). sys.argv, __main__, sys.path,
the exit status, tracebacks and signals are what `python prog.py` / `python -m module`
give. A module that imported the real threading before threadkit (a .pth file that
imports it at start-up) keeps it.

examples:
  threadkit run crawler.py --jobs 8
  threadkit run -m pytest tests/
"""

#: The exit status of ``threadkit check`` when the program did not end in time.
TIMEOUT_STATUS = 124

_CHECK_HELP = f"""\
usage: threadkit check [--no-lock-order] [--timeout SECONDS] prog.py [args ...]
       threadkit check [--no-lock-order] [--timeout SECONDS] -m module [args ...]

Run an unmodified program as `threadkit run` does, with every check on, and say at
the end, on stderr, what the checks found:

  deadlock       every DeadlockError raised in any thread (also one the program
                 caught), with its report
  lock order     two locks taken in both orders, with both stacks, even if this
                 run did not deadlock
  failures       a thread whose exception went to threading.excepthook, and whose
                 result() nobody asked for (a program that sets its own excepthook
                 handles its threads' failures itself)
  threads left   daemon threads still running when the program ends, once the
                 non-daemon ones were joined (threadkit's idle workers do not
                 count), with their stacks and what they wait on

The report comes last: after the program's output and its traceback if it failed,
after the non-daemon threads were joined and the atexit functions ran. It is one
line, "threadkit check: no problems found", or "threadkit check: N problems" and a
section per problem. Options go before the program; what follows it is the
program's.

options:
  --no-lock-order     do not check lock order (it costs a little on every acquire)
  --timeout SECONDS   if the program has not ended after SECONDS, print every
                      thread (its stack, what it waits on and holds) and what was
                      found so far, and end the process with status {TIMEOUT_STATUS}
  -h, --help          show this help

exit status:
  the program's own if it failed (an uncaught exception: 1, as python);
  1 if the program succeeded but a check found a problem;
  {TIMEOUT_STATUS} if --timeout expired; 2 for a usage error;
  0 if the program succeeded and nothing was found.

Processes the program starts with the same Python get the stand-in and the checks
(through THREADKIT_STANDIN and THREADKIT_CHECK): each prints its own report, headed
with its process id, if it found anything; their exit statuses stay their own.
Children that multiprocessing forks end without a report (os._exit).

examples:
  threadkit check crawler.py --jobs 8
  threadkit check --timeout 60 -m mypackage.worker
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadkit",
        description="threadkit: Python's threading, rebuilt on one core.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"threadkit {threadkit.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "run",
        help="run a program (prog.py or -m module) with threadkit standing in for threading",
        add_help=False,
    )
    commands.add_parser(
        "check",
        help="run a program like `run`, with every check on; report what they found",
        add_help=False,
    )
    demo = commands.add_parser(
        "demo",
        help="run the threading documentation's example, then what threadkit adds",
        description=(
            "Run the example from the threading documentation with threadkit: N threads "
            "each sleep a random time and report when done; then collect each thread's "
            "result with result(), re-raise a failure in the caller, cancel the "
            "threads still running when a deadline passes, and do it all again with a "
            "task group."
        ),
    )
    demo.add_argument(
        "-n", "--threads", type=_positive_int, default=5, help="number of threads (default 5)"
    )
    demo.add_argument(
        "--min-sleep", type=_seconds, default=1.0, help="shortest sleep in seconds (default 1)"
    )
    demo.add_argument(
        "--max-sleep", type=_seconds, default=10.0, help="longest sleep in seconds (default 10)"
    )
    demo.add_argument("--seed", type=int, default=None, help="seed the random sleeps")
    return parser


def _crawl(n: int, seconds: float) -> float:
    """Stand-in for I/O-bound work: sleep, report, and return how long it took."""
    time.sleep(seconds)
    # One write per line: print() writes the text and the newline separately, and
    # two threads finishing together could interleave them.
    sys.stdout.write(f"Thread {n} done!\n")
    sys.stdout.flush()
    return seconds


def _fetch(n: int, seconds: float) -> str:
    time.sleep(seconds)
    if n == 2:
        raise ConnectionError(f"page {n} could not be fetched")
    return f"page {n}: {seconds:.2f}s"


def _slow_download(n: int, seconds: float) -> str:
    """Stand-in for slow I/O that honours cancellation: threadkit.sleep wakes on it."""
    threadkit.sleep(seconds)
    return f"download {n}: {seconds:.2f}s"


def _deadline_demo(threads: int, low: float, high: float, rng: random.Random) -> None:
    deadline = (low + high) / 2
    print()
    print(f"== Deadlines: stop waiting after {deadline:.2f}s and cancel the slow threads ==")
    workers = [
        threadkit.Thread(
            target=_slow_download, args=(i, rng.uniform(low, high)), name=f"download-{i}"
        )
        for i in range(1, threads + 1)
    ]
    for t in workers:
        t.start()
    started = threadkit.current_time()
    with threadkit.move_on_after(deadline) as scope:
        for t in workers:
            t.join()  # a cancellation point: the deadline wakes it
    if scope.cancelled_caught:
        late = [t for t in workers if t.is_alive()]
        print(f"  deadline passed with {len(late)} still running; cancelling them")
        for t in late:
            t.cancel()  # wakes each out of threadkit.sleep at once
    for t in workers:
        try:
            print(f"  {t.name} -> {t.result()}")
        except threadkit.Cancelled:
            print(f"  {t.name} -> cancelled")
    print(f"  all done after {threadkit.current_time() - started:.2f}s")


def _work(seconds: float) -> float:
    threadkit.sleep(seconds)
    return seconds


def _fetch_page(n: int, seconds: float) -> str:
    threadkit.sleep(seconds)  # a cancellation point, unlike time.sleep
    if n == 3:
        raise ConnectionError(f"page {n} could not be fetched")
    return f"page {n}"


def _taskgroup_demo(threads: int, low: float, high: float, rng: random.Random) -> None:
    print()
    print("== The same with a task group: results in order, errors reach the caller ==")
    tasks = []
    with threadkit.TaskGroup(name="crawl") as tg:
        for _ in range(threads):
            tasks.append(tg.spawn(_work, rng.uniform(low, high) / 10))
    print("  results, in spawn order:", [f"{t.result():.2f}s" for t in tasks])

    print("  a failing task cancels the others, and its error reaches the caller:")
    started = threadkit.current_time()
    try:
        with threadkit.TaskGroup(name="fetch") as tg:
            for i in range(1, threads + 1):
                # Page 3 fails quickly; the others would take much longer.
                seconds = low / 10 if i == 3 else high
                tg.options(name=f"fetch-{i}").spawn(_fetch_page, i, seconds)
    except* ConnectionError as group:
        print(f"  caught {group.exceptions[0]!r} after {threadkit.current_time() - started:.2f}s")

    deadline = (low + high) / 20
    print(f"  a deadline of {deadline:.2f}s bounds every task of a group:")
    slow = []
    with threadkit.move_on_after(deadline) as scope, threadkit.TaskGroup(name="slow") as tg:
        for _ in range(threads):
            slow.append(tg.spawn(threadkit.sleep, rng.uniform(low, high) / 5))
    finished = sum(1 for t in slow if t.exception() is None)
    print(
        f"  deadline passed: {scope.cancelled_caught}; {finished} finished, "
        f"{len(slow) - finished} cancelled"
    )


def _transfer(first: threadkit.Lock, second: threadkit.Lock, both: threadkit.Barrier) -> str:
    try:
        with first:
            both.wait()  # each transfer holds its first lock...
            with second:  # ...and waits for the other's
                return "transferred"
    except threadkit.DeadlockError as exc:
        return exc.report


def _deadlock_demo() -> None:
    print()
    print("== A deadlock raises instead of hanging ==")
    alice, bob = threadkit.Lock(), threadkit.Lock()
    both = threadkit.Barrier(2)
    transfers = [
        threadkit.Thread(target=_transfer, args=(alice, bob, both), name="alice->bob"),
        threadkit.Thread(target=_transfer, args=(bob, alice, both), name="bob->alice"),
    ]
    for t in transfers:
        t.start()
    for t in transfers:
        outcome = t.result()
        if outcome == "transferred":
            print(f"  {t.name}: transferred, once the other let go")
        else:
            print(f"  {t.name}: DeadlockError, with this report:")
            for line in outcome.splitlines():
                print(f"    {line}")


def demo(threads: int, low: float, high: float, rng: random.Random) -> int:
    """Run the demo; return the process exit status."""
    print("== The threading documentation's example, with import threadkit as threading ==")
    workers = [
        threadkit.Thread(target=_crawl, args=(i, rng.uniform(low, high)))
        for i in range(1, threads + 1)
    ]
    for t in workers:
        t.start()
    print("Main flow of application", flush=True)
    for t in workers:
        t.join()
    print("All threads are done")

    print()
    print("== What threadkit adds: results and errors reach the caller ==")
    print("Each worker's return value, collected with result():")
    for t in workers:
        print(f"  {t.name}: slept {t.result():.2f}s")

    # A failure is still reported to excepthook when the thread ends, as threading
    # does; the demo shows it in one line instead of a full traceback.
    def hook(args: threadkit.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        print(f"  excepthook saw {name} fail: {args.exc_value!r}", flush=True)

    saved = threadkit.excepthook
    threadkit.excepthook = hook
    try:
        fetchers = [
            threadkit.Thread(
                target=_fetch, args=(i, rng.uniform(low, high) / 10), name=f"fetch-{i}"
            )
            for i in range(1, 4)
        ]
        for fetcher in fetchers:
            fetcher.start()
        for fetcher in fetchers:
            try:
                print(f"  {fetcher.name} -> {fetcher.result()}")
            except ConnectionError as exc:
                print(f"  {fetcher.name} raised in the caller: {exc!r}")
    finally:
        threadkit.excepthook = saved

    _deadline_demo(threads, low, high, rng)
    _taskgroup_demo(threads, low, high, rng)
    _deadlock_demo()
    return 0


def _run_program(argv: list[str], command: str, usage: str) -> int | None:
    """Install the stand-in and run the program ``argv`` names (``prog.py args...`` or
    ``-m module args...``) as python would; None once it has run, or the exit status
    of a usage error (printed). What the program raises, SystemExit included,
    propagates as from ``python prog.py``."""
    threadkit.install()
    if argv[0] == "-m" or (argv[0].startswith("-m") and len(argv[0]) > 2):
        name = argv[0][2:] or (argv[1] if len(argv) > 1 else "")
        if not name:
            print(f"threadkit {command}: -m needs a module name", file=sys.stderr)
            return 2
        rest = argv[1:] if argv[0] != "-m" else argv[2:]
        _standin.run_module(name, rest)
        return None
    if argv[0].startswith("-"):
        print(f"threadkit {command}: unknown option {argv[0]}\n\n{usage}", end="", file=sys.stderr)
        return 2
    try:
        _standin.run_path(argv[0], argv[1:])
    except _standin.NoProgram as exc:
        print(f"threadkit {command}: {exc}", file=sys.stderr)
        return 2
    return None


def run(argv: Sequence[str]) -> int:
    """``threadkit run``: run a program on threadkit; return its exit status (what it
    raises, SystemExit included, propagates as from ``python prog.py``)."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_RUN_HELP, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    status = _run_program(argv, "run", _RUN_HELP)
    return 0 if status is None else status


def check(argv: Sequence[str]) -> int:
    """``threadkit check``: run a program like ``run`` with every check on, print the
    report on stderr, and return the exit status (see ``_CHECK_HELP``)."""
    argv = list(argv)
    lock_order = True
    timeout: float | None = None
    while argv and argv[0].startswith("-") and not argv[0].startswith("-m"):
        option = argv.pop(0)
        if option in ("-h", "--help"):
            print(_CHECK_HELP, end="")
            return 0
        if option == "--":
            break
        if option == "--no-lock-order":
            lock_order = False
            continue
        if option == "--timeout" or option.startswith("--timeout="):
            text = option.partition("=")[2] if "=" in option else (argv.pop(0) if argv else "")
            try:
                timeout = _seconds(text)
            except (ValueError, argparse.ArgumentTypeError):
                print(f"threadkit check: --timeout needs seconds, not {text!r}", file=sys.stderr)
                return 2
            continue
        print(f"threadkit check: unknown option {option}\n\n{_CHECK_HELP}", end="", file=sys.stderr)
        return 2
    if not argv:
        print(_CHECK_HELP, end="", file=sys.stderr)
        return 2

    from ._check import Checker, export_to_children

    threadkit.install()
    export_to_children(lock_order)
    checker = Checker(lock_order=lock_order)
    checker.start()
    watchdog = None if timeout is None else _Watchdog(timeout, checker)
    status = 0
    try:
        usage = _run_program(argv, "check", _CHECK_HELP)
        if usage is not None:
            checker.stop()
            if watchdog is not None:
                watchdog.stop()
            return usage
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except KeyboardInterrupt:
        # As under python, the interpreter reports it and ends the process by SIGINT
        # (after cancelling the non-daemon threads): the report follows at exit.
        atexit.register(_finish, checker, watchdog, True)
        raise
    except BaseException as exc:
        # Reported here, as the interpreter would (from the program's first frame:
        # see _standin._run_reporting), so that the check's report comes after it.
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
        if sys.version_info >= (3, 12):
            sys.last_exc = exc
        sys.excepthook(type(exc), exc, exc.__traceback__)
        del exc
        status = 1
    found = _finish(checker, watchdog)
    return status if status else (1 if found else 0)


def _exit_status(code: object) -> int:
    """The exit status ``SystemExit(code)`` gives (printing a message, as python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _flush()
    print(code, file=sys.stderr)
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _finish(checker: Checker, watchdog: _Watchdog | None, at_exit: bool = False) -> int:
    """What the interpreter does at exit (join the non-daemon threads, run the atexit
    functions, unless this runs as one), then print the report; return how many
    problems it names. A process forked from the program's prints nothing."""
    from ._check import format_report, threads_left

    _flush()
    if watchdog is not None:
        watchdog.exiting = True
    _threads._shutdown()
    if not at_exit:
        atexit._run_exitfuncs()
    found = checker.problems() + threads_left()
    checker.stop()
    if watchdog is not None:
        watchdog.stop()
    if os.getpid() != checker.pid:
        return len(found)  # a child that fork() made: the report is the parent's
    _flush()
    stderr = sys.stderr if sys.stderr is not None else sys.__stderr__
    if stderr is not None:
        try:
            stderr.write(format_report(found))
            stderr.flush()
        except (OSError, ValueError):
            pass
    return len(found)


class _Watchdog:
    """``--timeout``: a thread of its own (a bare ``_thread`` one, which the program
    cannot see among its threads) that prints the hang report and ends the process if
    the program has not ended in time."""

    def __init__(self, seconds: float, checker: Checker) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._seconds = seconds
        self._checker = checker
        #: Set once the program's main thread has ended (``_finish``).
        self.exiting = False
        _thread.start_new_thread(self._watch, ())

    def stop(self) -> None:
        if self._done.locked():
            self._done.release()

    def _watch(self) -> None:
        if self._done.acquire(timeout=min(self._seconds, _thread.TIMEOUT_MAX)):
            return
        from ._check import format_report, hang_report

        unit = "second" if self._seconds == 1 else "seconds"
        where = (
            "its main thread ended, and the exit still waits for its non-daemon threads"
            if self.exiting
            else "it still runs"
        )
        text = (
            f"threadkit check: the program did not end within {self._seconds:g} {unit} "
            f"({where}); ending it with status {TIMEOUT_STATUS}\n\n"
            f"{hang_report()}\n{format_report(self._checker.problems())}"
        )
        stderr = sys.stderr if sys.stderr is not None else sys.__stderr__
        try:
            if stderr is not None:
                stderr.write(text)
                stderr.flush()
        finally:
            os._exit(TIMEOUT_STATUS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``threadkit`` command."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "run":
        return run(argv[1:])
    if argv and argv[0] == "check":
        return check(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "demo":
        if args.min_sleep > args.max_sleep:
            print("threadkit demo: --min-sleep must not exceed --max-sleep", file=sys.stderr)
            return 2
        return demo(args.threads, args.min_sleep, args.max_sleep, random.Random(args.seed))
    return 2  # pragma: no cover - argparse rejects unknown commands
