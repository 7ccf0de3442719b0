"""CPython's own thread tests, run against threadkit.

``test.lock_tests``, ``test.test_threading`` and ``test.test_threading_local`` come with
the running interpreter (its ``test`` package); they are loaded here a second time with
threadkit in the place of ``threading``, the way ``test_threading`` binds the shared
``lock_tests`` to its own factories. Their subprocess tests start the child with
threadkit standing in for ``threading`` too, so those test threadkit as well.

A test that checks a CPython implementation detail a pure-Python module cannot have is
skipped with its reason (the list is also in ``docs/coming-from-threading.md``). Where
the interpreter has no ``test`` package, the whole module is skipped.
"""

from __future__ import annotations

import types
import unittest
from collections.abc import Iterator

import pytest

import threadkit
from cpython_details import IMPLEMENTATION_DETAILS
from cpython_details import load_test_module as _load

lock_tests = _load("lock_tests")
if lock_tests is None:
    pytest.skip("this interpreter has no test package", allow_module_level=True)
test_threading = _load("test_threading", lock_tests=lock_tests)
test_threading_local = _load("test_threading_local")


def _skip_details(case: type) -> None:
    for name in dir(case):
        reason = IMPLEMENTATION_DETAILS.get(f"{case.__name__}.{name}")
        if reason is not None:
            setattr(
                case,
                name,
                unittest.skip(f"CPython implementation detail: {reason}")(getattr(case, name)),
            )


@pytest.fixture(autouse=True)
def _stdlib_excepthook_is_default() -> Iterator[None]:
    """threadkit hands a thread's failure to ``threading.excepthook`` when the
    program replaced that one and not threadkit's (pytest does); these tests take
    threadkit for ``threading``, so the real one must not intercept."""
    import threading

    saved = threading.excepthook
    threading.excepthook = threading.__excepthook__
    try:
        yield
    finally:
        threading.excepthook = saved


@pytest.fixture(autouse=True)
def _trace_hooks_restored() -> Iterator[None]:
    """``test_frame_tstate_tracing`` sets a trace function with ``settrace`` and leaves
    it set; every later thread would start with it."""
    from threadkit import _threads

    saved = _threads._trace_hook, _threads._profile_hook
    try:
        yield
    finally:
        _threads._trace_hook, _threads._profile_hook = saved


def _cases(module: types.ModuleType | None, prefix: str) -> Iterator[tuple[str, type]]:
    if module is None:
        return
    for name, value in vars(module).items():
        if (
            isinstance(value, type)
            and issubclass(value, unittest.TestCase)
            and value.__module__ == module.__name__
        ):
            yield f"{prefix}_{name}", value


for _name, _case in _cases(test_threading, "Threading"):
    _skip_details(_case)
    globals()[_name] = _case
del _name, _case

if test_threading_local is not None:

    class Local_ThreadkitLocalTest(unittest.TestCase, test_threading_local.BaseLocalTest):
        _local = threadkit.local
