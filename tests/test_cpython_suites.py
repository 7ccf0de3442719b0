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

import importlib.util
import sys
import textwrap
import types
import unittest
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit
from cpython_details import IMPLEMENTATION_DETAILS

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


def _load(name: str, **bound: types.ModuleType) -> types.ModuleType | None:
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
