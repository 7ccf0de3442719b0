"""The checks behind ``threadkit check`` and the pytest plugin.

A ``Checker`` turns every check on for a while (the run of a program, one test) and
collects what it finds as ``Problem``s, each with the text that explains it:

* a ``DeadlockError`` raised in any thread (seen through ``add_deadlock_listener``,
  so one the program caught counts too), with its report;
* a lock-order report (``check_lock_order`` is turned on), with both stacks;
* a thread failure nobody collected: a threadkit ``Thread`` whose exception went
  to ``excepthook`` (the checker puts its own hook in ``threadkit.excepthook``, which
  is ``threading.excepthook`` under the stand-in, and passes each failure on to the
  hook that would have had it). A program that sets its own ``excepthook`` (the
  package's, or ``threading``'s beside threadkit) handles its failures itself: they
  are not counted (pytest's hook, which only turns them into warnings, is not the
  program's). A failure whose ``result()``/``exception()`` was asked for afterwards
  is not counted either, nor a ``DeadlockError`` already reported (its section
  says which thread it ended). Futures are not looked at: ``threadkit.futures``
  executors report theirs with ``report_uncollected=True``, and the stdlib's
  futures, which a program under the stand-in uses, keep no such record;
* threads that still run: at the end of a program, the daemon threads left once
  the non-daemon ones were joined (``threads_left``); at the end of a test, the
  threads it started that did not end within a grace period (``leaked_threads``).
  The task-group cache's idle workers are threadkit's, not the program's: an idle
  ``_workers.Worker`` has no job (``_job is None``), and is never counted.

``threadkit check`` also passes the checks to the processes the program starts
(``THREADKIT_CHECK``, read by ``from_environment`` at their start-up): each reports
for itself at its exit, if it found anything.

Everything is read while other threads run: the problem list is guarded by a
``_thread`` lock, and the listeners run in whatever thread raised or reported.

Rejected: checking failures only at ``result()`` (a program written for
``threading`` never calls it); sampling thread stacks on a timer (the deadlock
detector and the wait records already say exactly what each thread waits on).
"""

from __future__ import annotations

import _thread
import atexit
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from . import _threads, _workers
from ._core import _deadlock, record_for
from ._lockorder import add_lock_order_listener, check_lock_order

__all__ = [
    "ENV",
    "Checker",
    "Problem",
    "describe_thread",
    "describe_threads",
    "export_to_children",
    "format_failure",
    "format_report",
    "from_environment",
    "hang_report",
    "leaked_threads",
    "live_threads",
    "threads_left",
]


#: The environment variable that gives the checks to the processes a checked program
#: starts: "1" (every check) or "no-lock-order".
ENV = "THREADKIT_CHECK"


@dataclass(frozen=True)
class Problem:
    """One thing a check found: ``kind`` (a short phrase), ``title`` (one line naming
    who) and ``detail`` (the report, traceback or stack)."""

    kind: str
    title: str
    detail: str

    def format(self, number: int) -> str:
        return f"-- {number}. {self.kind}: {self.title}\n{self.detail.rstrip()}\n"


def format_report(problems: Iterable[Problem], prefix: str = "threadkit check") -> str:
    """The report: ``"<prefix>: N problems"`` and a section per problem, or one line
    ``"<prefix>: no problems found"``."""
    found = list(problems)
    if not found:
        return f"{prefix}: no problems found\n"
    plural = "" if len(found) == 1 else "s"
    sections = "\n".join(p.format(i) for i, p in enumerate(found, 1))
    return f"{prefix}: {len(found)} problem{plural}\n\n{sections}"


def _is_threadkits_own(thread: object) -> bool:
    """True for a thread that is not the program's: an idle cache worker, the main
    thread, or a thread threadkit did not start (``_DummyThread``)."""
    if isinstance(thread, _workers.Worker):
        return thread._job is None and thread._handoff is None
    return isinstance(thread, _threads._MainThread | _threads._DummyThread)


def describe_thread(thread: Any) -> str:
    """What ``thread`` is doing: what it waits on (if it waits in threadkit) and its
    stack, most recent call last (without the dump's details: see ``describe_threads``)."""
    lines = []
    ident = getattr(thread, "ident", None)
    rec = record_for(ident) if ident is not None else None
    node = None if rec is None else rec.waiting
    if node is not None:
        waited = monotonic() - node.since if node.since else 0.0
        lines.append(
            f"  waits: {node.operation} on {_safe_repr(node.resource)} for {waited:.3f}s\n"
        )
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is not None:
        lines.append("  Stack (most recent call last):\n")
        for entry in traceback.format_stack(frame):
            lines.extend(f"  {part}\n" for part in entry.rstrip("\n").split("\n"))
    else:
        lines.append("  (no stack: it has not run yet, or it is ending)\n")
    return "".join(lines)


def describe_threads(threads: list[Any]) -> list[str]:
    """``thread``'s entry of the dump (its state, what it waits on and who holds it,
    what it holds, its stack) for each of ``threads``; ``describe_thread`` for a
    thread the dump does not show."""
    try:
        from ._dump import _format_thread, snapshot

        infos = {info.ident: info for info in snapshot()}
        names = {info.ident: info.name for info in infos.values()}
    except Exception:  # the report must come out even if the dump cannot
        infos, names = {}, {}
    texts = []
    for thread in threads:
        info = infos.get(getattr(thread, "ident", None) or 0)
        text = None
        if info is not None and info.stack is not None:
            try:
                text = "\n".join(_format_thread(info, names)) + "\n"
            except Exception:
                text = None
        texts.append(text if text is not None else describe_thread(thread))
    return texts


def hang_report() -> str:
    """Every live thread but the caller, with its stack and what it waits on and holds
    (the dump); if the dump itself fails, each threadkit thread's stack."""
    try:
        from ._dump import _format, snapshot

        return _format(snapshot(_exclude=_thread.get_ident()))
    except Exception as exc:  # the report of a hang must come out whatever happens
        parts = [f"(the dump failed: {exc!r}; the threads' stacks instead)\n"]
        for t in _threads.enumerate():
            parts.append(f"\n{_thread_label(t)}:\n{describe_thread(t)}")
        return "".join(parts)


def _safe_repr(obj: object) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # a repr must not stop the report
        return f"<{type(obj).__name__} (repr failed: {exc!r})>"


def _thread_label(thread: Any) -> str:
    name = getattr(thread, "name", "?")
    daemon = " (daemon)" if getattr(thread, "daemon", False) else ""
    return f"{name}{daemon}"


class Checker:
    """Every check, on from ``start()`` to ``stop()``; ``problems`` collects what it found.

    ``lock_order`` turns on lock-order checking (``check_lock_order``); deadlock
    detection is turned on in any case. ``failures`` replaces ``threadkit.excepthook``
    to collect the failures of threads. ``stop()`` puts every setting back.
    """

    def __init__(self, *, lock_order: bool = True, failures: bool = True) -> None:
        self._lock_order = lock_order
        self._failures = failures
        #: Guards ``_found`` and ``_failed``.
        self._mutex = _thread.allocate_lock()
        self._found: list[Problem] = []
        #: Each DeadlockError seen, and its problem's place in ``_found``: one that
        #: then ends its thread is named there rather than reported twice.
        self._deadlocks: list[tuple[BaseException, int]] = []
        #: (thread, problem) of each failure seen by the hook, in order; a failure
        #: whose result was asked for later is dropped when the list is read. The
        #: threads are held until then: one dropped after ``result()`` still counts
        #: as collected.
        self._failed: list[tuple[Any, Problem]] = []
        self._undo: list[Callable[[], object]] = []
        self._hook: Callable[[Any], object] | None = None
        #: The process it checks (a child made by ``fork()`` inherits the checker).
        self.pid = os.getpid()

    # -- turning the checks on and off ---------------------------------------------------
    def start(self) -> None:
        """Turn every check on."""
        previous = _deadlock.set_detection(True)
        self._undo.append(lambda: _deadlock.set_detection(previous))
        self._undo.append(_deadlock.add_deadlock_listener(self._on_deadlock))
        if self._lock_order:
            was = check_lock_order(True)
            self._undo.append(lambda: check_lock_order(was))
            self._undo.append(add_lock_order_listener(self._on_lock_order))
        if self._failures:
            # Set on the package, which ``threading`` is under the stand-in.
            package: Any = sys.modules[__package__ or "threadkit"]
            saved = package.excepthook
            self._hook = self._make_hook(saved)
            package.excepthook = self._hook

            def put_back() -> None:
                if package.excepthook is self._hook:
                    package.excepthook = saved

            self._undo.append(put_back)

    def stop(self) -> None:
        """Put every setting back as ``start()`` found it (idempotent)."""
        while self._undo:
            self._undo.pop()()

    # -- what the listeners see -----------------------------------------------------------
    def _add(self, problem: Problem) -> None:
        with self._mutex:
            self._found.append(problem)

    def _on_deadlock(self, error: Any) -> None:
        threads = getattr(error, "threads", None) or []
        title = " -> ".join(threads) if threads else "a cycle of waiting threads"
        with self._mutex:
            self._deadlocks.append((error, len(self._found)))
            self._found.append(
                Problem("deadlock", f"DeadlockError raised in {title}", error.report)
            )

    def _ended_by_deadlock(self, error: BaseException, name: str) -> bool:
        """If ``error`` is a DeadlockError already reported, note on its problem that
        it ended the thread ``name``, and return True."""
        with self._mutex:
            for seen, index in self._deadlocks:
                if seen is error:
                    problem = self._found[index]
                    title = f"{problem.title}; uncaught, it ended {name}"
                    self._found[index] = Problem(problem.kind, title, problem.detail)
                    return True
        return False

    def _on_lock_order(self, report: str) -> None:
        # The report's first line names the problem: it is the section's title.
        first, _, rest = report.strip("\n").partition("\n")
        title = first.removeprefix("lock order inversion: ") or "locks taken in both orders"
        self._add(Problem("lock order", title, rest.strip("\n") or report))

    def _make_hook(self, saved: Callable[[Any], object]) -> Callable[[Any], object]:
        package: Any = sys.modules[__package__ or "threadkit"]
        default = package.__excepthook__

        def check_excepthook(args: Any) -> None:
            # Pass it on to whoever would have had it: a hook set before the checks, or
            # ``threading``'s if it was replaced, or the default one.
            forward = _threads._or_threadings(saved)
            thread = args.thread
            name = getattr(thread, "name", None) or "a thread"
            if not _handled_by(forward, default) and not self._ended_by_deadlock(
                args.exc_value, name
            ):
                text = format_failure(args.exc_type, args.exc_value, args.exc_traceback)
                kind = "thread failure nobody collected"
                problem = Problem(kind, f"{name} raised {args.exc_type.__name__}", text)
                with self._mutex:
                    self._failed.append((thread, problem))
            forward(args)

        return check_excepthook

    # -- reading what was found -------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """What was found so far, in order: deadlocks and lock-order reports as they
        came, then the failures nobody collected."""
        with self._mutex:
            found = list(self._found)
            failed = list(self._failed)
        for thread, problem in failed:
            if thread is not None and getattr(thread, "_tk_collected", False):
                continue  # result() or exception() collected it after all
            found.append(problem)
        return found

    def take_problems(self) -> list[Problem]:
        """``problems()``, then forget them."""
        found = self.problems()
        with self._mutex:
            self._found.clear()
            self._deadlocks.clear()
            self._failed.clear()
        return found


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def format_failure(kind: type[BaseException], error: BaseException, tb: Any) -> str:
    """The traceback of a thread's failure, without threadkit's frames around the
    program's (the thread's start below them, a wait's way into the core above)."""
    te = traceback.TracebackException(kind, error, tb)
    frames = list(te.stack)

    def ours(frame: traceback.FrameSummary) -> bool:
        return os.path.abspath(frame.filename).startswith(_PACKAGE_DIR)

    start = 0
    while start < len(frames) and ours(frames[start]):
        start += 1
    end = len(frames)
    while end > start and ours(frames[end - 1]):
        end -= 1
    hidden = len(frames) - (end - start)
    if start == end or not hidden:
        return "".join(te.format())  # all of it is threadkit's: show it all
    te.stack = traceback.StackSummary.from_list(frames[start:end])
    plural = "s" if hidden != 1 else ""
    return "".join(te.format()) + f"({hidden} frame{plural} of threadkit not shown)\n"


def _handled_by(hook: Any, default: Any) -> bool:
    """True if ``hook`` is the program's own: it handles the failures it gets. The
    default hook only prints them, and pytest's only turns them into warnings."""
    if hook is default:
        return False
    target = getattr(hook, "func", hook)  # a functools.partial: pytest's is one
    module = getattr(target, "__module__", None) or ""
    return not module.startswith("_pytest.")


def live_threads() -> set[Any]:
    """Every live thread that threadkit or ``threading`` (if it is not threadkit) knows."""
    found: set[Any] = set(_threads.enumerate())
    package = sys.modules[__package__ or "threadkit"]
    std = sys.modules.get("threading")
    if std is not None and std is not package:
        found.update(t for t in std.enumerate() if not isinstance(t, std._DummyThread))
    return found


def threads_left() -> list[Problem]:
    """The program's threads still running now (at its exit: daemon threads, since the
    non-daemon ones were joined), other than the calling thread."""
    me = _thread.get_ident()
    left = [
        t
        for t in _threads.enumerate()
        if t.ident != me and t.is_alive() and not _is_threadkits_own(t)
    ]
    left.sort(key=lambda t: t.name)
    return [
        Problem("thread still running at exit", _thread_label(t), text)
        for t, text in zip(left, describe_threads(left), strict=True)
    ]


def leaked_threads(before: set[Any], grace: float) -> list[Problem]:
    """The threads started since ``before`` was taken (``live_threads()``) that are
    still running after a grace period: each is joined with what is left of ``grace``
    seconds (a busy cache worker, whose thread outlives its job, is looked at until
    its job ends or the grace period is over)."""
    deadline = monotonic() + grace
    new = [t for t in live_threads() - before if not _is_threadkits_own(t)]
    me = _thread.get_ident()
    left = []
    for t in new:
        if t.ident == me:
            continue
        if isinstance(t, _workers.Worker):
            # The worker thread lives on after its job: wait for the job, not the
            # thread. A bounded poll of real state (the job has no handle here).
            gate = _thread.allocate_lock()
            gate.acquire()
            while not _is_threadkits_own(t) and t.is_alive() and monotonic() < deadline:
                gate.acquire(timeout=0.001)
            if _is_threadkits_own(t) or not t.is_alive():
                continue
        else:
            t.join(max(deadline - monotonic(), 0.0))
            if not t.is_alive():
                continue
        left.append(t)
    return [
        Problem(
            "thread still running after the test",
            f"{_thread_label(t)}, after a grace period of {grace:g}s",
            text,
        )
        for t, text in zip(left, describe_threads(left), strict=True)
    ]


# -- child processes ------------------------------------------------------------------------
#: The checker ``from_environment`` started, if any.
_inherited: list[Checker] = []


def export_to_children(lock_order: bool) -> None:
    """Have the processes this one starts (with the same Python and the stand-in) check
    themselves: see ``from_environment``. Called by ``threadkit check``, which reports
    for this process itself: a checker this process got from its environment (it was
    started by a checked program) is stopped, so that nothing is reported twice."""
    while _inherited:
        atexit.unregister(_report_at_exit)
        _inherited.pop().stop()
    os.environ[ENV] = "1" if lock_order else "no-lock-order"


def from_environment() -> None:
    """Turn the checks on in this process if ``THREADKIT_CHECK`` says so (the stand-in's
    start-up calls it, after ``install()``).

    At exit, once the non-daemon threads were joined, the report goes to stderr, headed
    with the process id, if anything was found; the exit status stays the process's
    own. A process that ends with ``os._exit`` (a child that ``multiprocessing``
    forked) prints nothing.
    """
    value = os.environ.get(ENV, "")
    if value in ("", "0"):
        return
    checker = Checker(lock_order=value != "no-lock-order")
    checker.start()
    _inherited.append(checker)
    atexit.register(_report_at_exit, checker)


def _report_at_exit(checker: Checker) -> None:
    if os.getpid() != checker.pid:
        return  # a child that fork() made: what it inherited is the parent's
    _threads._shutdown()
    found = checker.problems() + threads_left()
    checker.stop()
    stderr = sys.stderr if sys.stderr is not None else sys.__stderr__
    if found and stderr is not None:
        try:
            stderr.write(format_report(found, prefix=f"threadkit check (process {os.getpid()})"))
            stderr.flush()
        except (OSError, ValueError):
            pass
