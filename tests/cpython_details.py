"""The tests of CPython's own suites that check an implementation detail threadkit
cannot share, by ``Class.test``, with the reason: skipped where those suites run
against threadkit (in process, ``test_cpython_suites``; under the stand-in,
``test_standin``). Kept in step with docs/coming-from-threading.md."""

from __future__ import annotations

import sys

IMPLEMENTATION_DETAILS = {
    "ThreadTests.test_disallow_instantiation": (
        "before 3.13, threading.Lock is a factory of the C type _thread.lock, which "
        "cannot be instantiated itself; threadkit.Lock is a class"
    ),
    "ThreadTests.test_tstate_lock": "reads Thread._tstate_lock (3.11, 3.12)",
    "ThreadTests.test_shutdown_locks": "reads threading._shutdown_locks (3.11, 3.12)",
    "ThreadTests.test_ident_of_no_threading_threads": (
        "deletes the dummy of an ended foreign thread from threading._active, where "
        "CPython before 3.13 leaves it for ever; threadkit removes it when the thread "
        "ends, as 3.13 does"
    ),
    "EventTests.test_at_fork_reinit": (
        "reads Event._cond, the Condition inside CPython's Event; threadkit's Event has none"
    ),
    "MiscTestCase.test__all__": (
        "compares __all__ with the names whose __module__ is 'threading'; threadkit's "
        "live in its own modules (tests/test_conformance.py checks the API instead)"
    ),
    "ThreadingExceptionTests.test_print_exception_gh_102056": (
        "a Ctrl-C (interrupt_main) while the program recurses at the recursion limit: "
        "threadkit's SIGINT handler is a Python function, which sometimes cannot be "
        "called there, and then the program catches the RecursionError instead"
    ),
}

if sys.version_info < (3, 13):
    IMPLEMENTATION_DETAILS["ThreadTests.test_foreign_thread"] = (
        "expects the dummy of an ended foreign thread to stay in threading._active, "
        "where CPython before 3.13 leaves it; threadkit removes it when the thread ends"
    )

if sys.version_info[:2] == (3, 12):
    IMPLEMENTATION_DETAILS["ThreadJoinOnShutdown.test_3_join_in_forked_from_thread"] = (
        "3.12 refuses fork() once the main thread has begun to exit; the test's worker "
        "forks at once and wins that race because threading's start() waits until the "
        "new thread runs, which threadkit's does not"
    )
