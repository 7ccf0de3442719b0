"""The pytest plugin (``threadkit.pytest_plugin``), run on inner test files through
pytest's ``pytester`` in a subprocess, so that the entry point and the options are
the installed ones."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

# Leaked threads are daemons, so that the inner session can end; a short grace
# period keeps the leaking tests quick.
GRACE = ("-o", "threadkit_check_grace=0.2", "-p", "no:cacheprovider")

INNER = """
import sys
import pytest
import threadkit


@pytest.fixture
def server():
    stop = threadkit.Event()
    t = threadkit.Thread(target=stop.wait, name="server")
    t.start()
    yield
    stop.set()  # ended by the fixture's teardown: no leak


def test_clean(server):
    t = threadkit.Thread(target=lambda: None)
    t.start()
    t.join()


def test_leak():
    threadkit.Thread(target=threadkit.Event().wait, name="leaker", daemon=True).start()


def test_uncollected():
    def boom():
        raise ValueError("lost in a thread")
    t = threadkit.Thread(target=boom, name="boomer")
    t.start()
    t.join()


def test_collected_with_result():
    def boom():
        raise ValueError("collected")
    t = threadkit.Thread(target=boom)
    t.start()
    with pytest.raises(ValueError):
        t.result()


def test_inversion():
    a = threadkit.Lock()
    b = threadkit.Lock()
    with a:
        with b:
            pass
    with b:
        with a:
            pass


def test_deadlock_caught():
    a = threadkit.Lock()
    b = threadkit.Lock()
    both = threadkit.Barrier(2)
    def take(first, second):
        with first:
            both.wait()
            try:
                with second:
                    pass
            except threadkit.DeadlockError:
                pass
    threads = [threadkit.Thread(target=take, args=p) for p in ((a, b), (b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_fails_and_leaks():
    threadkit.Thread(target=threadkit.Event().wait, name="leaker2", daemon=True).start()
    assert 1 == 2
"""


def test_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner=INNER
        + textwrap.dedent(
            """
            def test_plugin_loaded_but_idle(request):
                assert request.config.pluginmanager.has_plugin("threadkit")
                assert "threadkit._check" not in sys.modules
            """
        )
    )
    result = pytester.runpytest_subprocess(*GRACE)
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.no_fnmatch_line("*threadkit check*")


def test_option_fails_each_problem(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("--threadkit-check", *GRACE)
    result.stdout.fnmatch_lines_random(
        [
            "ERROR test_inner.py::test_leak - threadkit check (after the test): 1 problem",
            "FAILED test_inner.py::test_uncollected - threadkit check: 1 problem",
            "FAILED test_inner.py::test_inversion - threadkit check: 1 problem",
            "FAILED test_inner.py::test_deadlock_caught - threadkit check: 2 problems",
            "FAILED test_inner.py::test_fails_and_leaks - assert 1 == 2",
            "ERROR test_inner.py::test_fails_and_leaks - threadkit check*",
            "*-- 1. thread still running after the test: leaker (daemon)*",
            "*-- 1. thread failure nobody collected: boomer raised ValueError",
            "ValueError: lost in a thread",
            "*-- 1. lock order: *",
            "*. deadlock: DeadlockError raised in Thread-*",
        ]
    )
    # test_clean passed (its fixture's thread ended in teardown), and so did
    # test_leak itself (its leak is an error at teardown) and test_collected_with_result
    # (which needs Thread.result() to mark the failure collected).
    result.assert_outcomes(passed=3, failed=4, errors=2)


def test_marker_enables_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        import pytest
        import threadkit

        def test_leak_unchecked():
            threadkit.Thread(target=threadkit.Event().wait, daemon=True).start()

        @pytest.mark.threadkit_check
        def test_leak_checked():
            threadkit.Thread(target=threadkit.Event().wait, name="leaker", daemon=True).start()

        @pytest.fixture(scope="session")
        def service():
            stop = threadkit.Event()
            threadkit.Thread(target=stop.wait, name="service", daemon=True).start()
            yield
            stop.set()

        @pytest.mark.threadkit_check
        def test_a_session_fixtures_thread_is_not_a_leak(service):
            pass
        """,
    )
    result = pytester.runpytest_subprocess(*GRACE)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_inner.py::test_leak_checked - threadkit check*"])


def test_ini_option_and_opting_out(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nthreadkit_check = true\n")
    pytester.makepyfile(
        test_inner="""
        import pytest
        import threadkit

        def test_leak_checked():
            threadkit.Thread(target=threadkit.Event().wait, name="leaker", daemon=True).start()

        @pytest.mark.threadkit_check(False)
        def test_leak_opted_out():
            threadkit.Thread(target=threadkit.Event().wait, daemon=True).start()
        """,
    )
    result = pytester.runpytest_subprocess(*GRACE)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_inner.py::test_leak_checked - threadkit check*"])


def test_marker_and_option_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines_random(["*--threadkit-check*", "*threadkit_check (bool)*"])
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.threadkit_check(enabled=True): *"])
