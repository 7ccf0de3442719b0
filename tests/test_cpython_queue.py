"""CPython's own ``test_queue``, run against ``threadkit.queue``.

The suite binds each of its test mixins to a module through a class attribute
(``queue = py_queue`` or ``c_queue``); here a third binding, ``queue =
threadkit.queue``, runs the same tests, with threadkit standing in for the suite's
``threading`` (its helper threads and events are threadkit's). The suite that comes
with the running interpreter is used: 3.11 and 3.12 have no shutdown tests, which
``tests/test_queue.py`` covers on every version.
"""

from __future__ import annotations

import unittest

import pytest

import threadkit.queue
from cpython_details import load_test_module

pytestmark = pytest.mark.timeout(120)

suite = load_test_module("test_queue")
if suite is None:
    pytest.skip("this interpreter has no test package", allow_module_level=True)


class TkQueueTest(suite.QueueTest, unittest.TestCase):  # type: ignore[name-defined]
    queue = threadkit.queue


class TkLifoQueueTest(suite.LifoQueueTest, unittest.TestCase):  # type: ignore[name-defined]
    queue = threadkit.queue


class TkPriorityQueueTest(suite.PriorityQueueTest, unittest.TestCase):  # type: ignore[name-defined]
    queue = threadkit.queue


class TkFailingQueueTest(suite.FailingQueueTest, unittest.TestCase):  # type: ignore[name-defined]
    queue = threadkit.queue


class TkSimpleQueueTest(suite.BaseSimpleQueueTest, unittest.TestCase):  # type: ignore[name-defined]
    queue = threadkit.queue

    def setUp(self) -> None:
        self.type2test = threadkit.queue.SimpleQueue
        super().setUp()

    # The C SimpleQueue's reentrancy test: threadkit's put is reentrant too.
    test_reentrancy = suite.CSimpleQueueTest.test_reentrancy
