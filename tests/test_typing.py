"""The public types, as a user's ``mypy --strict`` sees them.

Each test writes a small program and runs ``python -m mypy --strict`` on it, once,
with the running interpreter (so it checks the threadkit that the tests import). A
line that must be an error ends with ``# E: <code>``; the test passes when mypy's
errors are exactly those lines with those codes, so a program without such a
comment must pass. The mypy cache is shared by the tests of this module (in a
temporary directory): the first run checks the standard library's stubs and
threadkit, the others take them from the cache.

Skipped where mypy cannot be imported (it is in the ``[test]`` extra).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("mypy") is None, reason="mypy is not installed here"
    ),
    # Each run takes about a second without a cache (mypy 2.4, 3.11 to 3.15t), less
    # with one; the whole module two to three seconds.
    pytest.mark.timeout(60),
]


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the programs are written to; ``.mypy_cache`` is in it."""
    return tmp_path_factory.mktemp("typing")


def check(directory: Path, name: str, source: str) -> None:
    """Write ``source`` to ``<name>.py`` and run mypy on it: its errors must be the
    lines marked ``# E: <code>``, with those codes, and nothing else."""
    path = directory / f"{name}.py"
    text = textwrap.dedent(source).lstrip()
    path.write_text(text)
    expected = {
        (number, marker.group(1))
        for number, line in enumerate(text.splitlines(), 1)
        if (marker := re.search(r"# E: ([\w-]+)$", line))
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",  # none: not the project's, which checks src/
            "--python-version=3.11",  # the oldest supported, as the project's config
            f"--cache-dir={directory / '.mypy_cache'}",
            "--show-error-codes",
            "--no-error-summary",
            "--no-pretty",
            "--no-color-output",
            path.name,
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=50,
    )
    report = f"mypy exited {out.returncode}:\n{out.stdout}{out.stderr}"
    assert out.returncode in (0, 1), report  # 2: mypy itself failed
    errors = set()
    for line in out.stdout.splitlines():
        if ": error: " not in line:
            continue  # a note
        found = re.match(rf"{re.escape(path.name)}:(\d+): error: .*  \[([\w-]+)\]$", line)
        assert found, f"unexpected output line {line!r}\n{report}"
        errors.add((int(found.group(1)), found.group(2)))
    assert errors == expected, report


def test_thread_results_and_scopes_that_must_pass(programs: Path) -> None:
    check(
        programs,
        "threads_ok",
        """
        from typing import Any, assert_type

        import threadkit


        def count() -> int:
            return 1


        def fetch(url: str) -> bytes:
            return url.encode()


        def result_has_the_target_type() -> int:
            thread = threadkit.Thread(target=count)
            assert_type(thread, threadkit.Thread[int])
            thread.start()
            assert_type(thread.result(), int)
            return thread.result()


        def with_arguments() -> bytes:
            thread = threadkit.Thread(target=fetch, args=("x",), daemon=True)
            return thread.result()


        class Worker(threadkit.Thread):
            def run(self) -> str:
                return "done"


        def without_a_target_it_is_any() -> None:
            plain = threadkit.Thread()  # no "Need type annotation"
            assert_type(plain.result(), Any)
            assert_type(Worker().result(), Any)
            assert_type(threadkit.Timer(1, count).result(), Any)
            threads: list[threadkit.Thread] = [plain, Worker(), threadkit.Thread(target=count)]
            del threads


        def return_inside_fail_after() -> int:
            with threadkit.fail_after(1):
                return 1


        def return_inside_fail_at() -> int:
            with threadkit.fail_at(threadkit.current_time() + 1) as scope:
                assert_type(scope, threadkit.CancelScope)
                return 1


        def fail_after_gives_a_cancel_scope() -> threadkit.CancelScope:
            return threadkit.fail_after(1)
        """,
    )


def test_thread_results_and_scopes_that_must_fail(programs: Path) -> None:
    check(
        programs,
        "threads_bad",
        """
        import threadkit


        def count() -> int:
            return 1


        def wrong_result_type() -> None:
            text: str = threadkit.Thread(target=count).result()  # E: assignment


        # These scopes swallow their own Cancelled: the block may end without returning.
        def return_inside_move_on_after() -> int:  # E: return
            with threadkit.move_on_after(1):
                return 1


        def return_inside_cancel_scope() -> int:  # E: return
            with threadkit.CancelScope():
                return 1
        """,
    )


def test_task_groups(programs: Path) -> None:
    check(
        programs,
        "taskgroups_ok",
        """
        from typing import assert_type

        import threadkit


        def fetch(url: str) -> bytes:
            return url.encode()


        def result_has_the_function_type() -> bytes:
            with threadkit.TaskGroup() as tg:
                task = tg.spawn(fetch, "x")
            assert_type(task.result(), bytes)
            return task.result()


        def return_inside_the_group() -> int:
            with threadkit.TaskGroup() as tg:
                tg.spawn(fetch, "x")
                return 1
        """,
    )
    check(
        programs,
        "taskgroups_bad",
        """
        import threadkit


        def fetch(url: str) -> bytes:
            return url.encode()


        def wrong_argument() -> None:
            with threadkit.TaskGroup() as tg:
                tg.spawn(fetch, 42)  # E: arg-type


        def wrong_result_type() -> None:
            with threadkit.TaskGroup() as tg:
                text: str = tg.spawn(fetch, "x").result()  # E: assignment
        """,
    )
