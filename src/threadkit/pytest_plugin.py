"""threadkit's pytest plugin: fail a test that deadlocks, leaks a thread, or loses a
thread's failure.

Installing threadkit registers this module under pytest's ``pytest11`` entry point,
so every pytest session loads it (and with it the ``threadkit`` package, as any of
its modules does: it changes nothing by itself). The plugin does nothing, and loads
none of the checks, until a test has them on:

* ``pytest --threadkit-check``: for every test;
* ``threadkit_check = true`` in the ini file (``[tool.pytest.ini_options]``): the same;
* ``@pytest.mark.threadkit_check`` on a test, a class or a module (``pytestmark``):
  for those tests only; ``@pytest.mark.threadkit_check(False)`` turns it off for a
  test when the option or the ini setting turned it on for all.

While a test runs with the check on (from the start of its setup to the end of its
teardown), deadlock detection and lock-order checking are on, and the test fails if

* a ``DeadlockError`` was raised in any thread, even one the test caught: the report
  names the threads of the cycle, what each holds and waits on;
* lock-order checking reported two locks taken in both orders (both stacks);
* a threadkit thread failed and its exception went to ``excepthook`` with nobody
  asking for its ``result()``;
* a thread started during the test is still alive at its end: each is given what is
  left of a grace period (``threadkit_check_grace``, 1 second by default) to end,
  with ``join(timeout)``.

Problems seen during setup or the test itself make the test fail (its report
carries a "threadkit check" section); a thread still alive after teardown, or a
problem that came up during teardown, is an error at teardown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._check import Checker

__all__: list[str] = []

_MARKER = "threadkit_check"
_GRACE = 1.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("threadkit", "threadkit checks")
    group.addoption(
        "--threadkit-check",
        action="store_true",
        default=False,
        dest="threadkit_check",
        help=(
            "fail tests that deadlock, take locks in both orders, leave a thread "
            "running, or whose threads' failures nobody collected (threadkit)"
        ),
    )
    parser.addini(
        "threadkit_check",
        type="bool",
        default=False,
        help="turn the threadkit checks on for every test (as --threadkit-check)",
    )
    parser.addini(
        "threadkit_check_grace",
        default=str(_GRACE),
        help=(
            "seconds a test's threads get to end after it, before the threadkit check "
            f"calls them leaked (default {_GRACE:g})"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(enabled=True): fail the test if it deadlocks, takes locks in both "
        "orders, leaves a thread running, or a thread's failure goes uncollected "
        "(threadkit); threadkit_check(False) turns it off when --threadkit-check is on",
    )


def _enabled(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            return bool(marker.args[0])
        return bool(marker.kwargs.get("enabled", True))
    config = item.config
    return bool(config.getoption("threadkit_check") or config.getini("threadkit_check"))


class _Watch:
    """The check of one test: its checker and the threads alive when it began."""

    def __init__(self, checker: Checker, before: set[Any]) -> None:
        self.checker = checker
        self.before = before


_watches: dict[str, _Watch] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _enabled(item):
        return
    from ._check import Checker, live_threads

    checker = Checker(lock_order=True)
    before = live_threads()
    checker.start()
    _watches[item.nodeid] = _Watch(checker, before)


#: id(fixturedef) -> the threads a fixture of a wider scope than the function
#: started in its setup: they belong to the fixture, not to the test that set it up.
_fixture_threads: dict[int, set[Any]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Any:
    if not _watches or fixturedef.scope == "function":
        yield
        return
    from ._check import live_threads

    before = live_threads()
    yield
    _fixture_threads[id(fixturedef)] = live_threads() - before


def pytest_fixture_post_finalizer(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    _fixture_threads.pop(id(fixturedef), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    watch = _watches.get(item.nodeid)
    if watch is None:
        return
    report: pytest.TestReport = outcome.get_result()
    if call.when == "teardown":
        del _watches[item.nodeid]
        from ._check import leaked_threads

        try:
            grace = float(item.config.getini("threadkit_check_grace"))
        except ValueError:
            grace = _GRACE
        try:
            found = watch.checker.take_problems()
            before = watch.before.union(*_fixture_threads.values())
            found += leaked_threads(before, grace)
        finally:
            watch.checker.stop()
        _fail(report, found, "after the test")
    elif call.when == "call" or report.failed:
        # What setup and the test did; a setup that failed ends the test here.
        _fail(report, watch.checker.take_problems(), "")


def _fail(report: pytest.TestReport, found: list[Any], when: str) -> None:
    if not found:
        return
    from ._check import format_report

    text = format_report(found, prefix="threadkit check")
    if when:
        text = text.replace(":", f" ({when}):", 1)
    if report.passed:
        report.outcome = "failed"
        report.longrepr = text
    else:
        report.sections.append(("threadkit check", text))
