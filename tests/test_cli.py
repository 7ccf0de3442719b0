"""The command line: ``threadkit demo`` and the benchmark script stay runnable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import threadkit

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(Path(threadkit.__file__).parent.parent))


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def test_demo_runs_the_documentation_example_then_results() -> None:
    out = run("-m", "threadkit", "demo", "-n", "4", "--min-sleep", "0.01", "--max-sleep", "0.05")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    done = [line for line in lines if re.fullmatch(r"Thread \d done!", line)]
    assert sorted(done) == [f"Thread {i} done!" for i in range(1, 5)]
    assert lines.index("All threads are done") > max(lines.index(d) for d in done)
    assert "Main flow of application" in lines
    # What threadkit adds: every result collected, the failure raised in the caller.
    assert len([line for line in lines if re.search(r": slept \d+\.\d\ds$", line)]) == 4
    assert any("raised in the caller: ConnectionError" in line for line in lines)
    assert any("excepthook saw fetch-2 fail" in line for line in lines)
    # A deadline: every download either finished or was cancelled, none left behind.
    assert any(line.startswith("== Deadlines") for line in lines)
    outcomes = [line for line in lines if re.match(r"  download-\d -> ", line)]
    assert len(outcomes) == 4
    assert all(re.search(r"-> (download \d: |cancelled$)", line) for line in outcomes)
    assert any(line.startswith("  all done after") for line in lines)
    # The same with a task group: results in order, the failure caught, a deadline.
    assert any(line.startswith("== The same with a task group") for line in lines)
    assert any(
        re.match(r"  results, in spawn order: \[('\d+\.\d\ds',? ?){4}\]$", line) for line in lines
    )
    assert any("caught ConnectionError('page 3 could not be fetched')" in line for line in lines)
    assert any(
        re.match(r"  deadline passed: (True|False); \d finished, \d cancelled$", line)
        for line in lines
    )
    # Two transfers in opposite lock order: one raises DeadlockError, the other goes on.
    assert any(line.startswith("== A deadlock raises instead of hanging") for line in lines)
    outcomes = [line.split(": ", 1)[1] for line in lines if re.match(r"  \w+->\w+: ", line)]
    assert sorted(outcomes) == [
        "DeadlockError, with this report:",
        "transferred, once the other let go",
    ]
    assert "    deadlock: 2 threads wait for each other" in lines


def test_demo_deadline_cancels_slow_threads() -> None:
    # With seed 3, three downloads sleep 1.28 s to 2 s against a 1 s deadline: they
    # must be cancelled, and the demo must not wait for them.
    out = run(
        "-m",
        "threadkit",
        "demo",
        "-n",
        "6",
        "--min-sleep",
        "0",
        "--max-sleep",
        "2",
        "--seed",
        "3",
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert "cancelling them" in out.stdout
    cancelled = set(re.findall(r"download-(\d) -> cancelled", out.stdout))
    # 3 and 5 sleep 0.94 s and 0.95 s: on a loaded machine they may start late enough
    # to be cancelled too; 1 (0.47 s) never is.
    assert {"2", "4", "6"} <= cancelled <= {"2", "3", "4", "5", "6"}, out.stdout


def test_demo_help_and_bad_arguments() -> None:
    out = run("-m", "threadkit", "demo", "--help")
    assert out.returncode == 0
    for option in ("--threads", "--min-sleep", "--max-sleep", "--seed"):
        assert option in out.stdout
    bad = run("-m", "threadkit", "demo", "--min-sleep", "2", "--max-sleep", "1")
    assert bad.returncode == 2
    assert "--min-sleep" in bad.stderr
    assert run("-m", "threadkit", "demo", "--threads", "0").returncode == 2
    assert run("-m", "threadkit").returncode == 2


def test_benchmark_script_smoke() -> None:
    # Not a timing test: it only proves every case still runs on both modules.
    out = run(
        str(ROOT / "benchmarks" / "bench_primitives.py"),
        "--quick",
        "--rounds",
        "1",
        "--waiters",
        "50",
        timeout=110,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ERROR" not in out.stdout


def test_taskgroup_benchmark_smoke() -> None:
    # Not a timing test: every part runs (map checks its results) and is reported,
    # the floor of part 2 too, and every goal gets a verdict.
    out = run(str(ROOT / "benchmarks" / "bench_taskgroup.py"), "--quick", timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    for part in ("Part 1:", "Part 1b:", "Part 1c:", "Part 1d:", "Part 2:", "Part 3:"):
        assert part in out.stdout
    assert re.search(r"^floor +chain_floor\.py --pool --threads 200 ", out.stdout, re.M)
    assert re.search(r"^map: taskgroup / tpe .* goal <= 1\.1 +(yes|no)", out.stdout, re.M)
    assert re.search(r"^goals met: \d+/7$", out.stdout, re.M)


def test_cancel_benchmark_smoke() -> None:
    out = run(str(ROOT / "benchmarks" / "bench_cancel.py"), "--quick", timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("mode", [(), ("--pool",), ("--pool", "--yield")])
def test_chain_floor_smoke(mode: tuple[str, ...]) -> None:
    # Not a timing test: every mode runs its rounds and reports one line per round.
    script = str(ROOT / "benchmarks" / "chain_floor.py")
    out = run(script, "--threads", "20", "--rounds", "2", *mode, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    rounds = [line.split() for line in out.stdout.splitlines()[2:]]
    assert [row[0] for row in rounds] == ["0", "1"]
    assert all(float(row[3]) >= 0 for row in rounds)  # first to last start, in ms


def test_chain_floor_rejects_yield_without_pool() -> None:
    out = run(str(ROOT / "benchmarks" / "chain_floor.py"), "--yield", timeout=60)
    assert out.returncode == 2
    assert "--yield needs --pool" in out.stderr


def test_interrupts_benchmark_smoke() -> None:
    # Its baseline comes from git history: against HEAD here, to prove it runs.
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    script = str(ROOT / "benchmarks" / "bench_interrupts.py")
    out = run(script, "--quick", "--baseline-rev", "HEAD", timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Event ping-pong" in out.stdout


def test_freethreaded_benchmark_smoke() -> None:
    # Not a timing test: every way runs, checks its results against the serial run,
    # and the GIL state is reported.
    out = run(str(ROOT / "benchmarks" / "bench_freethreaded.py"), "--quick", timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "tg_map" in out.stdout and "sys._is_gil_enabled()" in out.stdout


@pytest.mark.parametrize("script", ["bench_queue.py", "bench_futures.py"])
def test_queue_and_futures_benchmarks_smoke(script: str) -> None:
    # Not a timing test: every case runs on both sides and checks its own results.
    out = run(str(ROOT / "benchmarks" / script), "--quick", timeout=110)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "targets met" in out.stdout and "ERROR" not in out.stdout
