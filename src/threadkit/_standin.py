"""The stand-in: threadkit as ``threading`` under an unmodified program.

Once installed, ``import threading`` (the program's, and ``logging``'s, ``queue``'s,
``multiprocessing``'s, ``concurrent.futures``'s) gives threadkit, and the interpreter's
exit calls threadkit's ``_shutdown``. A finder first in ``sys.meta_path`` answers that
import (``_StandIn``), so ``"threading" in sys.modules`` stays False until something
imports it, as programs and tests that check it expect. It must be installed before
anything imports the real ``threading``: a module that did keeps it, and two thread
modules would each keep their own table of threads. So there are three ways in, each
as early as it can be:

- ``threadkit run prog.py`` / ``threadkit run -m module`` (``_cli``): installs the stand-in,
  then runs the program as ``python prog.py`` / ``python -m module`` would
  (``run_path``, ``run_module``: the same ``sys.argv``, ``sys.path[0]``, ``__main__``,
  exit status and traceback).
- The environment variable ``THREADKIT_STANDIN=1``, read by ``threadkit-standin.pth``,
  which installing threadkit puts in site-packages: Python runs it at start-up, before
  any program code, in every process of that environment; it does nothing (one
  environment lookup) unless the variable is set. This is how the processes a program
  starts (``multiprocessing``'s spawn and forkserver children, ``subprocess`` running
  ``sys.executable``) get the stand-in: ``run`` and ``install`` set the variable.
- ``threadkit.install()`` as the program's first line.

``is_installed()`` says whether it is in place.
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import types
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from . import _beside

__all__ = ["ENV", "NoProgram", "install", "is_installed", "run_module", "run_path"]

#: The environment variable that turns the stand-in on at interpreter start-up.
ENV = "THREADKIT_STANDIN"
_PACKAGE = __package__ or "threadkit"


class NoProgram(Exception):
    """The program to run cannot be read."""


class _StandIn:
    """The ``sys.meta_path`` finder that answers ``import threading`` with threadkit.

    It answers only when ``threading`` is imported, not at ``install()``: until then
    ``"threading" in sys.modules`` stays False, as programs and tests that check
    whether something imported threading expect.
    """

    @classmethod
    def find_spec(
        cls, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> Any:
        if name != "threading":
            return None
        from importlib.util import spec_from_loader

        return spec_from_loader(name, cls)  # type: ignore[arg-type]

    @staticmethod
    def create_module(spec: Any) -> types.ModuleType:
        return sys.modules[_PACKAGE]

    @staticmethod
    def exec_module(module: types.ModuleType) -> None:
        # The import system gave the package the spec of "threading": threadkit's
        # own is the true one (importlib.reload and pickle by reference read it).
        module.__spec__ = _SPEC


_SPEC = sys.modules[_PACKAGE].__spec__


def is_installed() -> bool:
    """Return True if threadkit stands in for ``threading`` in this process:
    ``import threading`` gives (or has given) threadkit."""
    loaded = sys.modules.get("threading")
    if loaded is not None:
        return loaded is sys.modules[_PACKAGE]
    return _StandIn in sys.meta_path


def install() -> None:
    """Make threadkit stand in for ``threading``, in this process and the processes it
    starts with the same Python (``multiprocessing``, ``subprocess``).

    From now on ``import threading`` gives threadkit. Call it before anything imports
    ``threading``: as the first line of the program, before other imports. Does
    nothing if threadkit already stands in. Raises RuntimeError, and changes nothing,
    if the real ``threading`` is already imported: the modules that imported it would
    keep it, so the program would run on two thread modules at once. ``threadkit run``
    and ``THREADKIT_STANDIN=1`` install it before any code of the program runs.
    """
    if not is_installed():
        if sys.modules.get("threading") is not None:
            raise RuntimeError(
                "threading is already imported, so threadkit cannot stand in for it: "
                "call threadkit.install() before anything imports threading, or start "
                "the program with `threadkit run` (or THREADKIT_STANDIN=1)"
            )
        _beside.forget()
        sys.meta_path = [_StandIn, *sys.meta_path]  # a new list: see _beside.watch
    os.environ[ENV] = "1"


def _from_environment() -> None:
    """What ``threadkit-standin.pth`` runs when ``THREADKIT_STANDIN`` is set."""
    if os.environ.get(ENV, "") in ("", "0"):
        return
    try:
        install()
        if os.environ.get("THREADKIT_CHECK", "") not in ("", "0"):
            # A child of ``threadkit check``: it checks itself and reports at exit.
            from ._check import from_environment

            from_environment()
    except RuntimeError:
        # A .pth file processed before threadkit's imported threading.
        if sys.stderr is not None:
            sys.stderr.write(
                f"threadkit: {ENV} is set, but threading was imported while Python "
                "started (by a .pth file), before threadkit could stand in for it; "
                "the program runs on threading\n"
            )


# -- running a program as python would ---------------------------------------------------
def _fresh_main() -> types.ModuleType:
    """A new, empty ``__main__`` module, as the interpreter makes it, in ``sys.modules``."""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    if sys.version_info < (3, 14):
        main.__annotations__ = {}
    sys.modules["__main__"] = main
    return main


def _set_path0(entry: str | None) -> None:
    """Put the program's directory where the interpreter puts its own start's (the
    ``threadkit`` script's directory, or the current one for ``python -m threadkit``)."""
    if getattr(sys.flags, "safe_path", False):
        return  # python -P: no directory goes first, neither ours nor the program's
    if entry is not None and sys.path:
        sys.path[0] = entry


def run_path(path: str, args: Sequence[str]) -> None:
    """Run the script ``path`` (a file, or a directory or zip file with ``__main__.py``)
    as ``python path args...`` does, in this process."""
    sys.argv = [path, *args]
    if os.path.isdir(path) or (not path.endswith((".py", ".pyw")) and _is_zip(path)):
        _set_path0(os.path.abspath(path))
        import runpy

        main = _fresh_main()
        _run_reporting(lambda: runpy._run_module_as_main("__main__", False), main)  # type: ignore[attr-defined]
        return
    filename = os.path.abspath(path)
    try:
        with io.open_code(path) as file:
            source = file.read()
    except OSError as exc:
        raise NoProgram(
            f"can't open file {filename!r}: [Errno {exc.errno}] {exc.strerror}"
        ) from None
    try:
        if filename.endswith(".pyc"):
            from importlib.machinery import SourcelessFileLoader

            code = SourcelessFileLoader("__main__", filename).get_code("__main__")
            assert code is not None
        else:
            code = compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        _report_from(exc, None)  # as python: where it is, without a traceback
        raise
    _set_path0(os.path.dirname(os.path.realpath(path)))
    from importlib.machinery import SourceFileLoader, SourcelessFileLoader

    main = _fresh_main()
    main.__file__ = filename
    loader = SourcelessFileLoader if filename.endswith(".pyc") else SourceFileLoader
    main.__loader__ = loader("__main__", filename)
    main.__spec__ = None
    if sys.version_info < (3, 15):
        main.__cached__ = None  # type: ignore[attr-defined]
    _run_reporting(lambda: exec(code, main.__dict__), main)


def _is_zip(path: str) -> bool:
    import zipfile

    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def run_module(name: str, args: Sequence[str]) -> None:
    """Run the module ``name`` as ``python -m name args...`` does, in this process."""
    import runpy

    sys.argv = ["-m", *args]  # until runpy has found the module's file, as with -m
    _set_path0(os.getcwd())
    main = _fresh_main()
    _run_reporting(lambda: runpy._run_module_as_main(name), main)  # type: ignore[attr-defined]


def _run_reporting(run: Callable[[], object], main: types.ModuleType) -> None:
    """Run the program; let what ends it leave as from ``python prog.py``.

    An uncaught exception (KeyboardInterrupt included: the interpreter then ends the
    process by SIGINT, as for ``python``) propagates to the interpreter, whose report
    would start with threadkit's own frames: the report starts at the program's.
    """
    try:
        run()
    except SystemExit:
        raise
    except BaseException as exc:
        _report_from_program(exc, main.__dict__)
        raise


def _report_from_program(exc: BaseException, program: dict[str, Any]) -> None:
    """Have the interpreter's report of ``exc`` leave out the frames above the program."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals is not program:
        tb = tb.tb_next
    if tb is not None:
        _report_from(exc, tb)
    # else it did not come from the program's code: report it whole


def _report_from(exc: BaseException, start: TracebackType | None) -> None:
    """Have the interpreter report ``exc`` (which is about to end the process) with
    the traceback ``start``."""
    hook = sys.excepthook

    def report(kind: type[BaseException], value: BaseException, trace: Any) -> None:
        if sys.excepthook is report:
            sys.excepthook = hook
        if value is exc:
            # Printed from the exception's own traceback, whatever the argument says.
            trace = value.__traceback__ = start
        hook(kind, value, trace)

    sys.excepthook = report
