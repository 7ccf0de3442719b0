"""The stand-in: unmodified programs under ``threadkit run``, ``install()`` and
``THREADKIT_STANDIN``; Thread subclasses as real code writes them; threadkit beside
the real ``threading``.

The programs are run twice, with ``python`` and under ``threadkit run``, and must
behave the same: same output, same exit status (what differs is only which module
``import threading`` gave, which each program reports on lines of its own).
"""

from __future__ import annotations

import logging
import os
import signal
import site
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import threadkit
from cpython_details import IMPLEMENTATION_DETAILS

pytestmark = pytest.mark.timeout(120)

#: The environment of the programs: the stand-in off unless a test turns it on.
ENV = {k: v for k, v in os.environ.items() if k != "THREADKIT_STANDIN"}
ENV["PYTHONDONTWRITEBYTECODE"] = "1"


def _pth_installed() -> bool:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return any(os.path.exists(os.path.join(d, "threadkit-standin.pth")) for d in dirs)


needs_pth = pytest.mark.skipif(
    not _pth_installed(),
    reason="threadkit is not installed with pip here (no threadkit-standin.pth), so "
    "new processes cannot get the stand-in",
)


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def both(
    tmp_path: Path,
    source: str,
    args: list[str] = (),
    name: str = "prog.py",  # type: ignore[assignment]
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Run the program with python, then under ``python -m threadkit run``."""
    prog = tmp_path / name
    prog.write_text(textwrap.dedent(source))
    plain = run([name, *args], tmp_path)
    standin = run(["-m", "threadkit", "run", name, *args], tmp_path)
    return plain, standin


def module_lines(text: str) -> tuple[list[str], list[str]]:
    """Split output into the lines that say which module ran (``module: ...``) and
    the rest."""
    lines = text.splitlines()
    return [x for x in lines if x.startswith("module: ")], [
        x for x in lines if not x.startswith("module: ")
    ]


# -- real programs ---------------------------------------------------------------------


@needs_pth
def test_multiprocessing_program(tmp_path: Path) -> None:
    plain, standin = both(
        tmp_path,
        """
        import multiprocessing as mp
        import threading
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
        from multiprocessing.pool import ThreadPool

        def square(x):
            import threading
            return x * x, threading.__name__

        def report(q):
            import threading
            q.put(threading.__name__)

        if __name__ == "__main__":
            print("module:", threading.__name__)
            for method in sorted(mp.get_all_start_methods()):
                ctx = mp.get_context(method)
                with ctx.Pool(2) as pool:
                    got = pool.map(square, range(5))
                with ProcessPoolExecutor(2, mp_context=ctx) as ex:
                    got2 = list(ex.map(square, range(3)))
                q = ctx.Queue()
                p = ctx.Process(target=report, args=(q,))
                p.start()
                child = q.get(timeout=60)
                p.join()
                print(method, [v for v, _ in got], [v for v, _ in got2], p.exitcode)
                print("module:", method, {m for _, m in got + got2}, child)
            with ThreadPool(3) as pool:
                print("threadpool", pool.map(abs, [-1, -2, -3]))
            with ThreadPoolExecutor(2) as ex:
                print("executor", list(ex.map(abs, [-4, -5])))
        """,
    )
    assert plain.returncode == standin.returncode == 0, standin.stderr
    assert plain.stderr == standin.stderr == ""
    plain_mods, plain_rest = module_lines(plain.stdout)
    mods, rest = module_lines(standin.stdout)
    assert rest == plain_rest
    assert "threadpool [1, 2, 3]" in rest
    assert mods[0] == "module: threadkit"
    assert all("threading" not in m for m in mods), mods
    assert all("threadkit" not in m for m in plain_mods), plain_mods
    assert (
        len(mods)
        == len(plain_mods)
        == 1 + len([x for x in rest if x.split()[0] in ("fork", "spawn", "forkserver")])
    )


LOGGING_PROGRAM = """
    import logging, sys
    {imports}

    logging.basicConfig(
        filename=sys.argv[1], filemode="w", level=logging.INFO,
        format="%(threadName)s: %(message)s",
    )

    def work(n):
        logging.info("working %d", n)

    def late():
        threading.main_thread().join()  # returns once the main thread has ended
        logging.info("after the main thread ended")

    workers = [threading.Thread(target=work, args=(i,), name=f"downloader-{{i}}") for i in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    threading.Thread(target=late, name="late-writer").start()
    logging.info("main thread done")
"""

LOGGING_EXPECTED = [
    "MainThread: main thread done",
    "downloader-0: working 0",
    "downloader-1: working 1",
    "downloader-2: working 2",
    "late-writer: after the main thread ended",
]


def test_logging_program_under_run(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent(LOGGING_PROGRAM).format(imports="import threading"))
    for how, args in (("plain", ["prog.py"]), ("standin", ["-m", "threadkit", "run", "prog.py"])):
        log = tmp_path / f"{how}.log"
        out = run([*args, str(log)], tmp_path)
        assert out.returncode == 0, out.stderr
        assert sorted(log.read_text().splitlines()) == LOGGING_EXPECTED, how


@pytest.mark.parametrize(
    "imports",
    [
        "import threadkit as threading",  # logging (imported first) loaded threading
        "import threading as _std\nimport threadkit as threading",
    ],
    ids=["logging-first", "threading-first"],
)
def test_logging_beside_threading_loses_nothing(tmp_path: Path, imports: str) -> None:
    # Without the stand-in: logging's %(threadName)s shows threadkit's names, and a
    # line logged after the main thread ended is written (threadkit's threads are
    # joined before logging shuts down at exit).
    source = textwrap.dedent(LOGGING_PROGRAM).format(imports=imports)
    prog = tmp_path / "prog.py"
    prog.write_text(source)
    log = tmp_path / "out.log"
    out = run(["prog.py", str(log)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(log.read_text().splitlines()) == LOGGING_EXPECTED


def test_threading_imported_after_threadkit_joins_before_atexit(tmp_path: Path) -> None:
    # threadkit first, then logging (and with it threading): the case where
    # logging's atexit handler would run before threadkit's.
    source = (
        textwrap.dedent(LOGGING_PROGRAM)
        .format(imports="import threadkit as threading")
        .replace("import logging, sys\n", "import sys\nimport threadkit\nimport logging\n", 1)
    )
    (tmp_path / "prog.py").write_text(source)
    log = tmp_path / "out.log"
    out = run(["prog.py", str(log)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert sorted(log.read_text().splitlines()) == LOGGING_EXPECTED


SUBCLASS_PROGRAM = """
    import threading

    class Returning(threading.Thread):
        # Keeps the target's return value, the common way.
        def run(self):
            self._return = None
            if self._target is not None:
                self._return = self._target(*self._args, **self._kwargs)

    class OwnResult(threading.Thread):
        def run(self):
            self._result = 42
            self._exception = None
            self._traceback = "mine"

    class OwnDone(threading.Thread):
        def __init__(self, n, *, label="x"):
            self._done = threading.Event()
            self._state = "RUN"  # as multiprocessing.pool's handler threads
            super().__init__(name=f"{label}-{n}")
            self.n = n

        def run(self):
            self._state = "TERMINATE"
            self._done.set()

    class Retargeted(threading.Thread):
        def __init__(self):
            super().__init__(target=print, args=("not this",))
            self._target = self.hello
            self._args = ("retargeted",)

        def hello(self, word):
            print(word, threading.current_thread().name == self.name)

    r = Returning(target=pow, args=(2, 10))
    r.start(); r.join()
    print("returning", r._return)
    o = OwnResult(); o.start(); o.join()
    print("own result", o._result, o._exception, o._traceback)
    d = OwnDone(7, label="job")
    print("before start", d._state, d._done.is_set(), d.name)
    d.start(); d.join()
    print("after", d._state, d._done.is_set(), d.is_alive(), d.n)
    t = Retargeted(); t.start(); t.join()
    print("started flag", t._started.is_set(), "alive", t.is_alive())

    import multiprocessing.dummy as dummy  # Thread subclassed as a Process look-alike
    p = dummy.Process(target=print, args=("dummy process",), name="dp")
    p.start(); p.join()
    print("dummy", p.exitcode, p.name, p.is_alive())
    with dummy.Pool(2) as pool:
        print("dummy pool", pool.map(len, ["a", "bb"]))
    print("module:", threading.__name__)
"""


def test_thread_subclass_program(tmp_path: Path) -> None:
    plain, standin = both(tmp_path, SUBCLASS_PROGRAM)
    assert plain.returncode == standin.returncode == 0, standin.stderr
    assert plain.stderr == standin.stderr == ""
    assert module_lines(standin.stdout)[1] == module_lines(plain.stdout)[1]
    assert module_lines(standin.stdout)[0] == ["module: threadkit"]
    assert "returning 1024" in standin.stdout
    assert "own result 42 None mine" in standin.stdout


# -- run behaves as python ---------------------------------------------------------------

PROBE = """
    import os, sys, threading
    print("argv", sys.argv)
    print("path0", sys.path[0] if not sys.flags.safe_path else None)
    main = sys.modules["__main__"]
    print("main", main.__name__, main.__spec__ is None, main.__file__ == __file__)
    print("file", os.path.basename(__file__), os.path.isabs(__file__))
    print("same module", main.__dict__ is globals())
    print("module:", threading.__name__)
"""


def same_as_python(
    plain: subprocess.CompletedProcess[str], standin: subprocess.CompletedProcess[str]
) -> None:
    """Both ran the probe and said the same, but that the stand-in's ran on threadkit."""
    assert plain.returncode == standin.returncode == 0, standin.stderr
    assert module_lines(standin.stdout)[1] == module_lines(plain.stdout)[1]
    assert module_lines(standin.stdout)[0] == ["module: threadkit"]


def test_run_script_like_python(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    plain, standin = both(sub.parent, PROBE, ["a", "--flag", "-m"], name="sub/probe.py")
    same_as_python(plain, standin)
    assert f"path0 {sub}" in standin.stdout
    assert "argv ['sub/probe.py', 'a', '--flag', '-m']" in standin.stdout


def test_console_script_runs_like_python(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("threadkit")
    if not script.exists():
        pytest.skip("threadkit is not installed as a command here")
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    plain = run(["probe.py", "x"], tmp_path)
    out = subprocess.run(
        [str(script), "run", "probe.py", "x"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    same_as_python(plain, out)


def test_run_module_like_python(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "probe.py").write_text(
        textwrap.dedent(PROBE).replace("__spec__ is None", "__spec__.name")
    )
    plain = run(["-m", "pkg.probe", "x", "y"], tmp_path)
    standin = run(["-m", "threadkit", "run", "-m", "pkg.probe", "x", "y"], tmp_path)
    same_as_python(plain, standin)


def test_run_directory_with_main(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(textwrap.dedent(PROBE))
    plain = run(["app", "z"], tmp_path)
    standin = run(["-m", "threadkit", "run", "app", "z"], tmp_path)
    same_as_python(plain, standin)


def _without_module_frames(report: str) -> str:
    """A report with the frames of threading's or threadkit's own code left out: a
    thread's traceback starts in the thread module that ran it."""
    kept: list[str] = []
    skipping = False
    for line in report.splitlines():
        if line.startswith('  File "'):
            path = line.split('"')[1]
            skipping = path.endswith(os.sep + "threading.py") or path.startswith(
                os.path.dirname(threadkit.__file__)
            )
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize(
    "body, status",
    [
        ("import sys\nsys.exit(3)\n", 3),
        ("raise SystemExit('bye')\n", 1),
        ("def f():\n    raise ValueError('boom')\nf()\n", 1),
        ("def (:\n", 1),
        ("import threading\nt = threading.Thread(target=lambda: 1/0)\nt.start()\nt.join()\n", 0),
    ],
    ids=["exit-3", "exit-message", "traceback", "syntax-error", "thread-failure"],
)
def test_exit_status_and_report_like_python(tmp_path: Path, body: str, status: int) -> None:
    plain, standin = both(tmp_path, body)
    assert plain.returncode == standin.returncode == status
    assert standin.stdout == plain.stdout
    # The same report: the program's frames, none of threadkit run's.
    assert "threadkit" not in plain.stderr
    assert _without_module_frames(standin.stderr) == _without_module_frames(plain.stderr)
    if "Exception in thread" not in plain.stderr:
        assert standin.stderr == plain.stderr


def test_ctrl_c_ends_like_python(tmp_path: Path) -> None:
    # An uncaught KeyboardInterrupt: the traceback, then death by SIGINT.
    plain, standin = both(tmp_path, "raise KeyboardInterrupt\n")
    assert plain.returncode == standin.returncode == -signal.SIGINT
    assert standin.stderr == plain.stderr


def test_run_missing_file_and_usage(tmp_path: Path) -> None:
    out = run(["-m", "threadkit", "run", "nope.py"], tmp_path)
    assert out.returncode == 2
    assert "can't open file" in out.stderr and "nope.py" in out.stderr
    out = run(["-m", "threadkit", "run"], tmp_path)
    assert out.returncode == 2 and "usage: threadkit run" in out.stderr
    out = run(["-m", "threadkit", "run", "--help"], tmp_path)
    assert out.returncode == 0 and "usage: threadkit run" in out.stdout
    out = run(["-m", "threadkit", "run", "-m"], tmp_path)
    assert out.returncode == 2 and "-m needs a module name" in out.stderr
    out = run(["-m", "threadkit", "run", "-c", "pass"], tmp_path)
    assert out.returncode == 2 and "unknown option -c" in out.stderr


def test_help_lists_every_command_with_an_example(tmp_path: Path) -> None:
    out = run(["-m", "threadkit", "--help"], tmp_path)
    assert out.returncode == 0
    for command in ("run", "demo"):
        assert f"  {command} " in out.stdout
        assert f"threadkit {command} " in out.stdout  # an example
    out = run(["-m", "threadkit", "--version"], tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"threadkit {threadkit.__version__}"


@needs_pth
def test_children_get_the_standin(tmp_path: Path) -> None:
    plain, standin = both(
        tmp_path,
        """
        import subprocess, sys, threading
        child = subprocess.run(
            [sys.executable, "-c", "import threading; print(threading.__name__)"],
            capture_output=True, text=True, check=True,
        )
        print("module:", threading.__name__, child.stdout.strip())
        """,
    )
    assert plain.stdout.strip() == "module: threading threading"
    assert standin.stdout.strip() == "module: threadkit threadkit", standin.stderr


# -- install(), is_installed(), THREADKIT_STANDIN -------------------------------------------


def test_install_first_thing(tmp_path: Path) -> None:
    out = run(
        [
            "-c",
            "import threadkit; before = threadkit.is_installed(); threadkit.install(); "
            "threadkit.install(); import threading, os, queue; "
            "print(before, threadkit.is_installed(), threading is threadkit, "
            "queue.threading is threadkit, os.environ['THREADKIT_STANDIN'])",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "True", "1"]


def test_install_after_threading_is_an_error(tmp_path: Path) -> None:
    out = run(
        [
            "-c",
            "import threading, threadkit\n"
            "try:\n    threadkit.install()\nexcept RuntimeError as e:\n    print('error', e)\n"
            "import sys\nprint(sys.modules['threading'] is threading, threadkit.is_installed())",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("error threading is already imported")
    assert out.stdout.splitlines()[-1] == "True False"


@needs_pth
def test_environment_variable(tmp_path: Path) -> None:
    code = "import threading, threadkit; print(threading.__name__, threadkit.is_installed())"
    on = run(["-c", code], tmp_path, env=dict(ENV, THREADKIT_STANDIN="1"))
    off = run(["-c", code], tmp_path, env=dict(ENV, THREADKIT_STANDIN="0"))
    unset = run(["-c", code], tmp_path)
    assert on.stdout.split() == ["threadkit", "True"], on.stderr
    assert off.stdout.split() == unset.stdout.split() == ["threading", "False"]


# -- Thread subclasses, in this process --------------------------------------------------


def _subclass_cases(mod: Any) -> dict[str, Callable[[], object]]:
    """The ways real code subclasses Thread; each returns what it observed."""

    def returning() -> object:
        class T(mod.Thread):
            def run(self) -> None:
                self._return = self._target(*self._args, **self._kwargs)

        t = T(target=divmod, args=(17, 5))
        t.start()
        t.join()
        return t._return

    def own_result() -> object:
        class T(mod.Thread):
            def run(self) -> None:
                self._result = 42
                self._exception = ValueError("kept")

        t = T()
        t.start()
        t.join()
        return t._result, repr(t._exception)

    def handler_pattern() -> object:
        # multiprocessing.pool: set _state before start(), read it after.
        seen = []
        t = mod.Thread(target=lambda: seen.append(t._state))
        t.daemon = True
        t._state = "RUN"
        t.start()
        t.join()
        t._state = "TERMINATE"
        return seen, t._state, t.daemon

    def own_done_event() -> object:
        class T(mod.Thread):
            def __init__(self, n: int, *, scale: int = 1) -> None:
                super().__init__()
                self._done = mod.Event()
                self.value = n * scale

            def run(self) -> None:
                self._done.set()

        t = T(3, scale=5)
        t.start()
        t._done.wait(10)
        t.join()
        return t._done.is_set(), t.value, t.is_alive()

    def override_target() -> object:
        got = []

        class T(mod.Thread):
            def __init__(self) -> None:
                super().__init__(target=got.append, args=("original",))
                self._target = got.append
                self._args = ("replaced",)
                self._kwargs = {}

        t = T()
        t.start()
        t.join()
        return got, hasattr(t, "_target")

    def private_flags() -> object:
        gate = mod.Event()
        t = mod.Thread(target=gate.wait, args=(10,))
        before = (t._started.is_set(), t.ident is None)
        t.start()
        during = (t._started.is_set(), t._ident == t.ident)
        gate.set()
        t.join()
        return before, during, t._started.is_set(), t.is_alive()

    def name_and_daemon_fields() -> object:
        t = mod.Thread(name="n1", daemon=True)
        return t._name, t._daemonic, t._ident, t._native_id, t._initialized

    return {f.__name__: f for f in (
        returning, own_result, handler_pattern, own_done_event, override_target,
        private_flags, name_and_daemon_fields,
    )}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_subclass_cases(threading)))
def test_subclass_behaves_as_under_threading(case: str) -> None:
    expected = _subclass_cases(threading)[case]()
    got = _subclass_cases(threadkit)[case]()
    assert got == expected


def test_private_surface() -> None:
    assert threadkit._HAVE_THREAD_NATIVE_ID is True
    main = threadkit.main_thread()
    assert threadkit._main_thread is main
    main._set_native_id()
    assert main.native_id == threading.get_native_id()
    with threadkit._active_limbo_lock:
        assert threadkit._active[threading.get_ident()] is main
    assert callable(threadkit._shutdown)
    assert callable(threadkit._register_atexit)
    assert callable(threadkit._after_fork)
    gate = threadkit.Event()
    t = threadkit.Thread(target=gate.wait, args=(10,))
    assert not t._is_stopped
    t.start()
    assert not t._is_stopped
    assert not t._os_thread_handle.is_done() and not t._handle.is_done()
    assert t._handle.ident == t.ident
    gate.set()
    t._handle.join(10)
    assert t._is_stopped and t._os_thread_handle.is_done()
    # What multiprocessing's queues call in a forked child.
    cond = threadkit.Condition(threadkit.Lock())
    cond.acquire()
    cond._at_fork_reinit()
    assert cond.acquire(blocking=False)
    cond.release()
    assert threadkit._newname("Dummy-%d").startswith("Dummy-")
    assert threadkit._allocate_lock().acquire(False)


def test_setting_main_thread_on_the_module() -> None:
    # gevent's monkey patching sets threading._main_thread; main_thread() follows.
    main = threadkit.main_thread()
    other = threadkit.Thread(name="stand-in main")
    try:
        threadkit._main_thread = other
        assert threadkit.main_thread() is other
        assert threadkit._main_thread is other
    finally:
        threadkit._main_thread = main
    assert threadkit.main_thread() is main


# -- beside the real threading -------------------------------------------------------------


def test_threading_sees_threadkit_names() -> None:
    seen: list[tuple[str, bool, bool]] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.threadName or "", False, False))

    logger = logging.getLogger("threadkit-test-names")
    logger.propagate = False
    handler = Grab()
    logger.addHandler(handler)
    try:

        def work() -> None:
            logger.warning("hi")
            me = threading.current_thread()
            seen.append((me.name, me.daemon, me in threading.enumerate()))

        t = threadkit.Thread(target=work, name="downloader-1")
        t.start()
        t.join()
        with threadkit.TaskGroup() as tg:
            tg.options(name="task-7").spawn(work)
    finally:
        logger.removeHandler(handler)
    assert seen == [
        ("downloader-1", False, False),
        ("downloader-1", False, True),
        ("task-7", False, False),
        ("task-7", True, True),  # a worker is a daemon thread
    ]
    # Gone from threading's table once it has ended.
    assert all(getattr(x, "_tk_thread", None) is not t for x in threading._active.values())


def test_table_lock_is_reentrant_and_threadkit_calls_work_under_it() -> None:
    # What debuggers and test helpers do: hold the table's lock while they look.
    out: list[object] = []
    with threadkit._active_limbo_lock, threadkit._active_limbo_lock:
        out.append(len(threadkit.enumerate()) == threadkit.active_count())
        gate = threadkit.Event()
        t = threadkit.Thread(target=gate.wait, args=(10,))
        out.append(t._started.is_set())
        threadkit.main_thread()._set_native_id()
        done = threadkit.Event()

        def foreign() -> None:
            with threadkit._active_limbo_lock:
                out.append(threadkit.current_thread().name)
            done.set()

        import _thread

        _thread.start_new_thread(foreign, ())
        # The foreign thread waits for the lock this thread holds; the table is
        # still while it is held.
        assert not done.wait(0.05)
    assert done.wait(10)
    t.start()
    gate.set()
    t.join()
    assert out[:2] == [True, False]
    assert str(out[2]).startswith("Dummy-")


def test_subclass_may_assign_cpython_derived_names() -> None:
    # _is_stopped and the handles are computed from threadkit's state, but a subclass
    # may still use the names for itself (threading uses only some of them on each
    # version; a subclass written for another version may use the others).
    class T(threadkit.Thread):
        def __init__(self) -> None:
            super().__init__()
            self._handle = "a file"
            self._os_thread_handle = "a socket"
            self._is_stopped = "mine"

        def run(self) -> None:
            pass

    t = T()
    t.start()
    t.join(10)
    assert (t._handle, t._os_thread_handle, t._is_stopped) == ("a file", "a socket", "mine")
    assert not t.is_alive()


def test_finished_thread_is_not_kept_for_the_exit() -> None:
    import gc
    import weakref

    class Big:
        pass

    t = threadkit.Thread(target=Big)
    t.start()
    t.join()
    result = weakref.ref(t.result())
    thread = weakref.ref(t)
    del t
    gc.collect()
    assert thread() is None and result() is None


def test_mirror_can_be_joined_and_ends() -> None:
    gate = threadkit.Event()
    seen: list[Any] = []

    def work() -> None:
        seen.append(threading.current_thread())
        gate.wait(10)

    t = threadkit.Thread(target=work, name="kit-1")
    t.start()
    wait = __import__("helpers").wait_until
    wait(lambda: seen)
    mirror = seen[0]
    assert mirror in threading.enumerate() and not mirror.daemon and mirror.is_alive()
    gate.set()
    mirror.join(10)  # the usual "join every non-daemon thread" loop
    assert not t.is_alive() and not mirror.is_alive()


@pytest.mark.parametrize("late", ["threadkit", "threading"])
def test_late_thread_started_by_a_threading_thread(tmp_path: Path, late: str) -> None:
    # threading's exit runs threadkit's first, then waits for its own threads; one of
    # them starts a non-daemon threadkit thread meanwhile: the exit waits for it, as
    # it does for a threading thread started there (3.12 refuses to start either).
    (tmp_path / "prog.py").write_text(
        textwrap.dedent(
            f"""
            import threading, threadkit
            def late():
                print("late thread finished")
            def std_worker():
                threading.main_thread().join()
                {late}.Thread(target=late).start()
            threading.Thread(target=std_worker).start()
            """
        )
    )
    out = run(["prog.py"], tmp_path)
    assert out.returncode == 0, out.stderr
    if sys.version_info[:2] == (3, 12):
        assert out.stdout == ""
        assert "can't create new thread at interpreter shutdown" in out.stderr
    else:
        assert out.stdout == "late thread finished\n", out.stderr


@pytest.mark.parametrize("which", ["threadkit", "threading"])
def test_process_forked_from_a_threadkit_thread(tmp_path: Path, which: str) -> None:
    # threading's exit in the child (multiprocessing calls it) finds the forking
    # thread, a threadkit one, as its main thread: the child still exits with 0.
    if "fork" not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no fork here")
    (tmp_path / "prog.py").write_text(
        textwrap.dedent(
            f"""
            import multiprocessing, threading, threadkit, warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            def child():
                pass
            def body():
                p = multiprocessing.get_context("fork").Process(target=child)
                p.start()
                p.join()
                print("exitcode", p.exitcode)
            t = {which}.Thread(target=body)
            t.start()
            t.join()
            """
        )
    )
    out = run(["prog.py"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "exitcode 0\n", out.stderr


def test_thread_started_and_read_while_the_table_lock_is_held() -> None:
    # As with threading: the new thread has its native id and _started before it
    # enters the table, so the starter may wait for them while holding its lock.
    with threadkit._active_limbo_lock:
        t = threadkit.Thread(target=int)
        t.start()
        assert t.native_id is not None
        assert t._started.wait(10)
    t.join(10)
    assert not t.is_alive()


def test_threading_settrace_reaches_threadkit_threads() -> None:
    # Coverage, profilers and debuggers set their hooks through threading.
    seen: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "traced_target":
            seen.append(threadkit.current_thread().name)

    def traced_target() -> int:
        return 1

    own = threadkit.gettrace()
    threadkit.settrace(None)  # where threadkit's own is unset
    threading.settrace(tracer)
    try:
        t = threadkit.Thread(target=traced_target, name="kit-traced")
        t.start()
        t.join()
        with threadkit.TaskGroup() as tg:
            tg.options(name="task-traced").spawn(traced_target)
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
        threadkit.settrace(own)
    assert seen == ["kit-traced", "task-traced"]


# -- CPython's own suites under the stand-in ------------------------------------------------


def _has_test_package(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(f"test.{name}") is not None
    except ImportError:
        return False


@needs_pth
@pytest.mark.timeout(600)
@pytest.mark.parametrize("suite", ["test_threading", "test_logging"])
def test_stdlib_suite_under_the_standin(tmp_path: Path, suite: str) -> None:
    # The whole interpreter on threadkit: the test runner, test.support, logging,
    # every child process. Skipped: the implementation details listed for the
    # in-process run.
    if not _has_test_package(suite):
        pytest.skip(f"this Python has no test.{suite}")
    skipped = list(IMPLEMENTATION_DETAILS)
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        # Sixteen threads fork at once. On free-threaded builds a child now and then
        # (about 1 run in 100, more under load) never gets past CPython's own
        # PyOS_AfterFork_Child: PyThreadState_Clear waits for a PyMutex that a thread
        # which did not survive the fork held. That is below every after-fork hook,
        # threadkit's included; the cause is not established, so it is left out here,
        # where one hung child costs the whole suite, rather than retried.
        skipped.append("ThreadTests.test_reinit_tls_after_fork")
    ignore = [arg for key in skipped for arg in ("-i", f"*.{key}")]
    out = run(
        ["-m", "test", suite, "--timeout", "300", *ignore],
        tmp_path,
        env=dict(ENV, THREADKIT_STANDIN="1"),
        timeout=500,
    )
    assert "Result: SUCCESS" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0
