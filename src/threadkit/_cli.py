"""The ``threadkit`` command line: ``threadkit run`` and ``threadkit demo``."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence

import threadkit

from . import _standin

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
    return 0


def run(argv: Sequence[str]) -> int:
    """``threadkit run``: run a program on threadkit; return its exit status (what it
    raises, SystemExit included, propagates as from ``python prog.py``)."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_RUN_HELP, end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    threadkit.install()
    if argv[0] == "-m" or (argv[0].startswith("-m") and len(argv[0]) > 2):
        name = argv[0][2:] or (argv[1] if len(argv) > 1 else "")
        if not name:
            print("threadkit run: -m needs a module name", file=sys.stderr)
            return 2
        rest = argv[1:] if argv[0] != "-m" else argv[2:]
        _standin.run_module(name, rest)
        return 0
    if argv[0].startswith("-"):
        print(f"threadkit run: unknown option {argv[0]}\n\n{_RUN_HELP}", end="", file=sys.stderr)
        return 2
    try:
        _standin.run_path(argv[0], argv[1:])
    except _standin.NoProgram as exc:
        print(f"threadkit run: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``threadkit`` command."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "run":
        return run(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "demo":
        if args.min_sleep > args.max_sleep:
            print("threadkit demo: --min-sleep must not exceed --max-sleep", file=sys.stderr)
            return 2
        return demo(args.threads, args.min_sleep, args.max_sleep, random.Random(args.seed))
    return 2  # pragma: no cover - argparse rejects unknown commands
