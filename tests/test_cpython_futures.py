"""CPython's own ``test_concurrent_futures`` thread-pool tests, run against
``threadkit.futures``.

The suite picks its executor through a mixin's class attribute (``ThreadPoolMixin.
executor_type``); here each thread-pool test class is subclassed with a mixin that
names ``threadkit.futures.ThreadPoolExecutor`` instead, the way the suite binds the
process pool's variants. The suite comes with the interpreter (3.13 and later on
this machine; where it is missing, the module is skipped). Tests that read the
stdlib executor's private state, or that run the stdlib's executor whatever the
binding, are skipped with their reason.
"""

from __future__ import annotations

import importlib
import types
import unittest
from typing import Any

import pytest

import threadkit.futures
from threadkit import _workers

pytestmark = pytest.mark.timeout(300)


def _import(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(f"test.test_concurrent_futures.{name}")
    except ImportError:
        return None


_modules = [
    _import(name)
    for name in ("test_thread_pool", "test_shutdown", "test_wait", "test_as_completed", "test_init")
]
if any(m is None for m in _modules):
    pytest.skip("this interpreter has no test.test_concurrent_futures", allow_module_level=True)

#: Test -> why it does not apply to threadkit's executor.
NOT_APPLICABLE = {
    "test_saturation": "reads the stdlib executor's private _threads",
    "test_idle_thread_reuse": "reads the stdlib executor's private _threads",
    "test_threads_terminate": "reads and joins the stdlib executor's private _threads",
    "test_context_manager_shutdown": "joins the stdlib executor's private _threads",
    "test_del_shutdown": "joins the stdlib executor's private _threads",
    "test_shutdown_no_wait": "joins the stdlib executor's private _threads",
    "test_thread_names_assigned": "makes the stdlib's executor and reads its _threads",
    "test_thread_names_default": "makes the stdlib's executor and reads its _threads",
    "test_hang_global_shutdown_lock": "runs the stdlib's executor in a child",
    "test_process_fork_from_a_threadpool": "runs the stdlib's executor",
}


class _Threadkit:
    """Binds a thread-pool test class to threadkit's executor."""

    executor_type = threadkit.futures.ThreadPoolExecutor

    def tearDown(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.shutdown(wait=True)
        # The suite checks that the thread count is back where it was: end the
        # cache's idle workers now instead of after their idle timeout.
        for worker in _workers.retire_idle():
            worker.join()
        super().tearDown()  # type: ignore[misc]


def _bind(case: type) -> type:
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": f"Tk{case.__name__}"}
    for name in dir(case):
        reason = NOT_APPLICABLE.get(name)
        if reason is not None and name.startswith("test"):
            namespace[name] = unittest.skip(reason)(getattr(case, name))
    return type(f"Tk{case.__name__}", (_Threadkit, case), namespace)


for _module in _modules:
    for _name, _value in vars(_module).items():
        if (
            isinstance(_value, type)
            and issubclass(_value, unittest.TestCase)
            and _name.startswith("ThreadPool")
        ):
            globals()[f"Tk{_name}"] = _bind(_value)
del _module, _name, _value
