"""How CPython's own suites are loaded against threadkit (``load_test_module``), and
the tests of them that check an implementation detail threadkit cannot share, by
``Class.test``, with the reason: skipped where those suites run against threadkit (in
process, ``test_cpython_suites``; under the stand-in, ``test_standin``).
Kept in step with docs/coming-from-threading.md."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from collections.abc import Callable
from typing import Any

import threadkit

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


# The start of every child program: threadkit stands in for `threading` from its first
# import (and only then: the child's own "is threading imported yet?" checks hold).
STAND_IN = "__import__('threadkit').install()\n"


def _child_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Arguments for a child interpreter, with the stand-in before its `-c` program."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "-c":
            # 3.14+ dedents a -c program itself; do it first so the two can be joined.
            out[i + 1] = STAND_IN + textwrap.dedent(out[i + 1])
            break
    return tuple(out)


def _with_stand_in(run: Callable[..., Any]) -> Callable[..., Any]:
    def child(*args: Any, **kwargs: Any) -> Any:
        return run(*_child_args(args), **kwargs)

    return child


def load_test_module(name: str, **bound: types.ModuleType) -> types.ModuleType | None:
    """A fresh copy of ``test.<name>``, with threadkit as its ``threading``."""
    try:
        spec = importlib.util.find_spec(f"test.{name}")
    except ImportError:
        return None
    if spec is None or spec.origin is None:
        return None
    spec = importlib.util.spec_from_file_location(f"threadkit_cpython_{name}", spec.origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import test

    swapped = {"threading": threadkit, **{f"test.{k}": v for k, v in bound.items()}}
    saved = {key: sys.modules.get(key) for key in swapped}
    saved_attrs = {k: getattr(test, k, None) for k in bound}
    sys.modules.update(swapped)
    for k, v in bound.items():
        setattr(test, k, v)
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
        for k, v in saved_attrs.items():
            if v is None:
                delattr(test, k)
            else:
                setattr(test, k, v)
    for helper in ("assert_python_ok", "assert_python_failure", "spawn_python"):
        if hasattr(module, helper):
            setattr(module, helper, _with_stand_in(getattr(module, helper)))
    return module
