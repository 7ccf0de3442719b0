"""The worker cache: threads kept alive between tasks.

The idea
--------
Starting an OS thread and ending it costs about 60 microseconds; handing a job to a
thread that already exists costs a few. Task groups therefore run their tasks on
worker threads from this process-wide cache, which grows on demand and shrinks
when workers sit idle.

Scheduling
----------
Jobs wait in one FIFO run queue. A worker is *running* a job, *searching* (awake
and about to look at the queue, running no user code), or *idle* (parked in the
cache's wait queue). One rule keeps every job live:

    whenever the run queue is not empty, at least one worker is searching.

1. ``submit`` appends the job. If no worker is searching, it makes one: it claims
   the most recently idle worker, or starts a new thread.
2. A worker that takes a job stops searching. If jobs remain and nobody is
   searching, it makes a searcher (as in 1) *before* it runs its job.
3. A worker that finds the queue empty parks idle.
4. A searcher that finds jobs queued but sees that some were taken since it last
   looked (others are draining the queue) stays the searcher and looks again a
   little later, with growing patience; it takes a job only once nothing was taken
   in between: then every running worker is busy or blocked.

So a job never waits behind a job that blocks for longer than the searcher's
patience (at most ``sys.getswitchinterval()``): whoever takes a job has first made
sure that someone else will look at the rest. And a burst of short jobs costs no
thread switch per job: the worker that holds the GIL drains the queue. Rule 4 is
what keeps such a burst from growing threads: a searcher gets the GIL whenever the
draining worker lets go of it, also when it was only pre-empted (a convoy on a
Python-level mutex does that often), and without rule 4 each such searcher would
take a job and recruit yet another thread.

Reuse never carries state from one job to the next
-----------------------------------------------------
* Each job runs in its own ``contextvars`` context (the job's business: task
  groups copy the spawner's).
* ``threadkit.local`` notes on the thread's record when a thread first touches an
  instance. A worker whose local storage is no longer empty ends after its job
  instead of going back to the cache. (``_thread._local`` storage cannot be
  cleared for one thread from Python; a fresh thread is the only clean slate.)
  The stdlib's own ``threading.local``, when the real ``threading`` is used next
  to threadkit, cannot be observed and behaves as under ``ThreadPoolExecutor``.
* A trace or profile function a job installed is put back to ``settrace``'s.
* The worker's ``name`` is the job's while the job runs, and its own otherwise.

Idle workers
------------
An idle worker parks in the core (so diagnostics see it) for at most
``IDLE_TIMEOUT`` seconds, then ends. Idle workers are claimed last in, first out,
so that under a light load the surplus ones age out. Workers are daemon threads:
an idle one never keeps the interpreter alive.

Rejected: a new thread per task (what 0.1 did, about 60 us a task); handing each
job to its own idle worker (every job then costs two thread switches, even in a
burst); a fixed number of workers, as ``ThreadPoolExecutor`` has (a task that waits
for a task queued behind it would deadlock).
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
from collections import deque
from time import monotonic
from typing import Any, Protocol

from . import _threads
from ._core import (
    TIMED_OUT,
    ThreadRecord,
    Waiter,
    WaitQueue,
    current_record,
    exit_task,
    interruptible,
    wake,
    wake_one,
)
from ._threads import Thread

__all__ = [
    "IDLE_TIMEOUT",
    "Job",
    "Worker",
    "idle_workers",
    "retire_idle",
    "start",
    "submit",
    "withdraw",
    "workers",
]

#: Seconds an idle worker waits for a job before it ends.
IDLE_TIMEOUT = 10.0


class Job(Protocol):
    """What the cache runs: a name for the worker to wear, and ``run``."""

    name: str

    def run_in(self, worker: Worker, rec: ThreadRecord) -> None:
        """Run the job in ``worker``'s thread, whose record is ``rec``. Never raises.

        Sets ``worker._job`` back to None before it makes the job's end known.
        """

    def lost(self, error: BaseException) -> None:
        """End the job with ``error``: its thread vanished in a fork. Never raises."""

    def cancel(self) -> None:
        """Cancel the job (``Worker.cancel`` while it runs)."""


# Guards _run_queue, _searching, _workers and the idle queue. Taken before the cancel
# scopes' mutex (``exit_task``) when both are needed, never after it.
_mutex = _thread.allocate_lock()
_run_queue: deque[Job] = deque()
#: Workers parked idle, newest last (the queue's resource, for diagnostics).
_idle = WaitQueue(_mutex)
#: Workers awake between jobs, about to look at the run queue (see the rule above).
_searching = 0
#: Jobs taken from the run queue so far: how a searcher tells that others progress.
_taken = 0
#: Where a searcher waits before it looks at the queue again (rule 4).
_watch = WaitQueue(_mutex)
#: A searcher's first and longest wait before it looks again (seconds).
_FIRST_LOOK = 50e-6
#: Every live worker.
_workers: set[Worker] = set()
_ids = itertools.count(1)
_gettrace = sys.gettrace
_getprofile = sys.getprofile


class Worker(Thread):
    """A cached worker thread: runs one job after another, parks idle in between."""

    def __init__(self) -> None:
        name = f"threadkit-worker-{next(_ids)}"
        super().__init__(name=name, daemon=True)
        self._own_name = name
        #: The job running now, or None (written by the worker only).
        self._job: Job | None = None
        #: Set under ``_mutex`` by ``retire_idle``, before the idle node is signalled
        #: (the worker reads it without the mutex once it sees SIGNALLED): end
        #: instead of searching.
        self._retiring = False
        #: ``_taken`` when this worker last looked at the queue, or was made a
        #: searcher (under ``_mutex``).
        self._seen = _taken
        #: A job given to this worker directly by ``start`` (set under ``_mutex``
        #: before the worker is woken or started): run before anything else, and
        #: not counted as searching.
        self._handoff: Job | None = None

    @property
    def name(self) -> str:
        """The running job's name, or the worker's own between jobs."""
        job = self._job
        return job.name if job is not None else self._own_name

    @name.setter
    def name(self, name: object) -> None:
        # Renaming the current thread inside a job renames the job, not the worker.
        job = self._job
        if job is not None:
            job.name = str(name)
        else:
            self._own_name = str(name)

    def _tk_scopes(self) -> list[Any]:
        # Between jobs a worker is inside no scope; each job brings its own.
        return []

    def cancel(self) -> None:
        """Cancel the job this worker is running, if any."""
        job = self._job
        if job is not None:
            job.cancel()

    @interruptible
    def run(self) -> None:
        _work(self)


def submit(job: Job) -> None:
    """Queue ``job``; a worker runs it soon, whatever the other jobs do.

    If a needed thread cannot be started, raises that error (RuntimeError from
    ``_thread``) with the job still queued: ``withdraw`` it unless it should wait
    for a busy worker to finish.
    """
    global _searching
    node: Waiter | None = None
    counted = False
    try:
        with _mutex:
            _run_queue.append(job)
            if _searching:
                return
            _searching += 1
            counted = True
            node = _claim_idle_locked()
        if node is not None:
            wake_one(node)
            node = None
        else:
            _start_worker()
        counted = False
    except BaseException:
        if node is not None:
            wake([node])  # claimed: that worker searches now, whatever happened here
        elif counted:
            _searcher_not_started()
        raise


def start(job: Job) -> None:
    """Run ``job`` at once on a thread of its own: the newest idle worker, else a new
    thread started now, never behind the run queue.

    For jobs that may block for long and must not wait for the searcher chain (an
    executor's runners), as ``Thread.start`` would: the thread exists when this
    returns, while the caller still runs (some Pythons refuse new threads once the
    interpreter's exit has begun). Raises what starting a thread raises; the job is
    then not queued anywhere.
    """
    with _mutex:
        node = None
        if _idle.waiters:
            # Handed over before the node is SIGNALLED (as retire_idle marks first):
            # the worker reads the field, without the mutex, once it sees that.
            _idle.waiters[-1].record.thread._handoff = job
            node = _idle.take_newest_locked()
    if node is not None:
        wake_one(node)
        return
    _start_worker(job)


def withdraw(job: Job) -> bool:
    """Take ``job`` out of the run queue; False if a worker has taken it already."""
    with _mutex:
        try:
            _run_queue.remove(job)
        except ValueError:
            return False
    return True


def _searcher_not_started() -> None:
    """Undo the count of a searcher whose thread did not start.

    Jobs other callers queued meanwhile counted on that searcher: try once more
    to make one (the failure may have been an interrupt, not a lack of threads);
    if that fails too, they wait for a busy worker to finish.
    """
    global _searching
    with _mutex:
        _searching -= 1
        again = bool(_run_queue) and not _searching
        if again:
            _searching += 1
    if again:
        _recruit()


def _claim_idle_locked() -> Waiter | None:
    """Claim the newest idle worker as a searcher (the caller counted it); under _mutex."""
    node = _idle.take_newest_locked()
    if node is not None:
        node.record.thread._seen = _taken
    return node


def _start_worker(handoff: Job | None = None) -> None:
    """Start a new worker: a searcher (counted by the caller), or with ``handoff``."""
    worker = Worker()
    worker._handoff = handoff
    with _mutex:
        _workers.add(worker)
    try:
        worker.start()
    except BaseException:
        with _mutex:
            _workers.discard(worker)
        raise


def _recruit() -> None:
    """Make a searcher for the jobs left in the queue (rule 2); ``_searching`` counts it."""
    with _mutex:
        node = _claim_idle_locked()
    _wake_or_start(node)


def _wake_or_start(node: Waiter | None) -> None:
    """Wake the claimed idle worker ``node`` or, if None, start a new worker."""
    global _searching
    if node is not None:
        wake_one(node)
        return
    try:
        _start_worker()
    except BaseException:
        # Out of threads: the jobs wait for a worker to finish instead.
        with _mutex:
            _searching -= 1


@interruptible  # it runs the jobs, and only a forked child's main thread gets Ctrl-C
def _work(worker: Worker) -> None:
    """A worker's life: search, run, and park idle until a timeout ends it."""
    global _searching, _taken
    rec = current_record()
    # Whoever started this worker counted it as searching, unless it came with a job.
    searching = worker._handoff is None
    patience = _FIRST_LOOK
    try:
        while True:
            handoff = worker._handoff
            if handoff is not None:
                searching = False
                # Held in _job before _handoff is cleared: a fork in between still
                # finds the job (``_after_fork``) and ends it.
                worker._job = handoff
                worker._handoff = None
                if _run_job(worker, rec, handoff):
                    return
                continue
            recruit = False
            claimed: Waiter | None = None
            job: Job | None = None
            watch: Waiter | None = None
            idle: Waiter | None = None
            with _mutex:
                if searching and _run_queue and _taken != worker._seen:
                    # Rule 4: others are draining the queue; look again later.
                    worker._seen = _taken
                    watch = _watch.add_locked(rec, _watch, "watch the run queue")
                elif _run_queue:
                    if searching:
                        _searching -= 1
                        searching = False
                    job = _run_queue.popleft()
                    _taken += 1
                    if _run_queue and not _searching:
                        _searching += 1
                        recruit = True
                        claimed = _claim_idle_locked()
                else:
                    if searching:
                        _searching -= 1
                        searching = False
                    # An idle worker is inside no scope: take the last job's off its
                    # stack (lock order: this mutex, then the cancel scopes').
                    exit_task(rec)
                    idle = _idle.add_locked(rec, _idle, "idle")
            if watch is not None:
                _watch.park(watch, monotonic() + patience, None, False)
                patience = min(patience * 2, sys.getswitchinterval())
                continue
            if idle is not None:
                if _idle.park(idle, monotonic() + IDLE_TIMEOUT, None, False) is TIMED_OUT:
                    return
                # Given a job by ``start`` (not counted as searching), claimed
                # (and counted) by a submitter, or retired: one of the three.
                if worker._handoff is not None:
                    searching = False
                    continue
                searching = not worker._retiring
                if not searching:
                    return
                continue
            assert job is not None
            patience = _FIRST_LOOK
            if recruit:
                _wake_or_start(claimed)
                claimed = None
            if _run_job(worker, rec, job):
                return
            del job
    finally:
        exit_task(rec)
        lost = False
        with _mutex:
            _workers.discard(worker)
            if searching:
                # Only if this thread dies of an internal error while searching.
                _searching -= 1
                lost = bool(_run_queue) and not _searching
                if lost:
                    _searching += 1
        if lost:
            _recruit()


def _run_job(worker: Worker, rec: ThreadRecord, job: Job) -> bool:
    """Run ``job`` in ``worker``; True if the worker must end after it."""
    # Each job starts with the trace and profile functions of settrace().
    trace, profile = _threads.trace_and_profile_hooks()
    if _gettrace() is not trace:
        sys.settrace(trace)
    if _getprofile() is not profile:
        sys.setprofile(profile)
    worker._job = job
    job.run_in(worker, rec)  # which sets worker._job back to None
    return bool(rec.used_local or worker._retiring)


def workers() -> list[Worker]:
    """Every live worker, busy or idle."""
    with _mutex:
        return list(_workers)


def idle_workers() -> int:
    """How many workers are parked idle right now."""
    return len(_idle)


def retire_idle() -> list[Worker]:
    """End every idle worker now; return them (to join). For tests and benchmarks."""
    with _mutex:
        # Marked before their nodes are signalled: a worker that is awake now (about to
        # park, or woken by a stale permit) reads the flag, without the mutex, as soon
        # as it sees SIGNALLED. Read as False, it would search uncounted.
        retired = [node.record.thread for node in _idle.waiters]
        for worker in retired:
            worker._retiring = True
        nodes = _idle.take_all_locked()
    wake(nodes)
    return retired


def _after_fork() -> None:
    """In a forked child only the forking thread exists.

    Every job that was queued, or running on another worker, will never end by
    itself: it ends with RuntimeError, so that whoever waits for it is not left
    waiting for ever. A worker that forked goes on with its job, then ends.
    """
    global _mutex, _idle, _watch, _searching
    _mutex = _thread.allocate_lock()
    _idle = WaitQueue(_mutex)
    _watch = WaitQueue(_mutex)
    me = _thread.get_ident()
    lost = list(_run_queue)
    for worker in _workers:
        if worker._ident == me:
            worker._retiring = True
        elif worker._job is not None:
            lost.append(worker._job)
        elif worker._handoff is not None:
            lost.append(worker._handoff)
    _run_queue.clear()
    _workers.clear()
    _searching = 0
    for job in lost:
        job.lost(RuntimeError("the task's thread did not survive fork()"))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
