"""Ctrl-C that never lands in the middle of threadkit's own bookkeeping.

The idea
--------
KeyboardInterrupt is raised by SIGINT's Python-level handler, which CPython runs in
the main thread at the next point where it checks for signals: a function's entry,
a loop's back edge, the return of a C call. In pure Python code that can be between
any two steps of a release, a hand-over or a ``start()``. threadkit's C counterparts
cannot be split, so threadkit makes its own code unsplittable the way trio does for
its core: it installs a SIGINT handler that behaves exactly like Python's default
(raise KeyboardInterrupt) *except* while the main thread is inside threadkit, where
it notes the interrupt as owed and returns. The owed interrupt is raised at the next
safe point: the wait itself (``block``, the one place a wait parks, is open to
interrupts, so Ctrl-C still wakes a blocked main thread at once) or the first
signal check after the outermost threadkit call has returned. To the program, a
threadkit call is as atomic under Ctrl-C as a C call: the interrupt comes before it
starts, out of its wait, or after it returns.

Which code is protected
-----------------------
The handler is given the interrupted frame and walks outward to the innermost frame
of threadkit's runtime: that frame's code decides. All of the runtime is protected
by default (new code is safe without thinking about it), except the functions marked
``@interruptible``: the park itself, and every frame that calls the program's code
(``Thread.run``, a worker running a task, ``wait_for``'s predicate, a barrier's
action, ``excepthook``, ...), so that a callback is as interruptible as it would be
anywhere else. Frames of the program called from protected code (a finaliser, a
foreign lock's ``acquire``) are protected with it until it returns. The walk costs a
few microseconds per Ctrl-C and nothing at all on any other path: no flag is
checked on the way into or out of a call.

Delivering what is owed
-----------------------
CPython runs a handler once per burst of signals, and a signal a handler sends to
its own thread is handled, and used up, before the handler returns. So an owed
interrupt is delivered by a second, private signal (a *nudge*, SIGURG where the
platform has it and the program does not use it), sent from outside: a watchdog
thread, woken by the deferral, sends it to the main thread (then again after
200 us, backing off to 2 ms) until the debt is paid. The nudge's handler raises
KeyboardInterrupt once the main thread is outside protected code (or, if the program
has replaced SIGINT's handler meanwhile, hands the Ctrl-C to that handler). Being a
real signal, it also interrupts a blocking C call the program entered right after
the threadkit call (``time.sleep``, a socket read), which a flag tested at the next
bytecode could not do. A nudge that lands in protected code again is spent, and the
next one waits its turn: so an owed interrupt usually comes out within a few
milliseconds, but in a program that spends nearly all its time inside threadkit calls
it can take tens of milliseconds (each nudge must hit the program's own code); with
the GIL each nudge also waits for the watchdog to get it (up to one switch interval,
5 ms). Only SIGINT's
handler ever raises for a fresh Ctrl-C and only the nudge's for an owed one, so an
interrupt is delivered exactly once; both run in the main thread, so the debt needs
no lock. Where there is no nudge signal, the watchdog asks CPython to run SIGINT's
handler again (``_thread.interrupt_main``) instead. An interrupt still owed when the
program ends is taken by threadkit's exit handler as a Ctrl-C that ended the program.

When it is installed
--------------------
Not at import: ``asyncio.run`` and trio install a SIGINT handler of their own only if
the current one is Python's default, and importing threadkit must not change that.
``install()`` runs when the main thread starts a threadkit thread or worker, or first
waits in threadkit; it takes SIGINT only if its handler is still Python's default,
and never replaces a handler the program installed. A program that installs its own
later takes over: its handler runs wherever CPython runs it, as with ``threading``.

Rejected: a pending flag tested when each call returns (a cost on every uncontended
``with lock:``); a ``try``/``except`` repair at every window (the repair itself can be
interrupted, and each new line needs its own); masking SIGINT with
``pthread_sigmask`` (a system call per call, and POSIX only).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

__all__ = [
    "block",
    "decided",
    "install",
    "installed",
    "interruptible",
    "owed",
    "take_owed",
    "reset_after_fork",
    "set_main_thread",
]

F = TypeVar("F", bound=Callable[..., Any])

_default_handler = signal.default_int_handler
_RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: Modules of the package that run the program's own code rather than bookkeeping.
_NOT_RUNTIME = frozenset({"_cli.py", "__main__.py"})

#: Code objects of the runtime open to interrupts (see ``interruptible``).
_open: set[CodeType] = set()
#: code -> True (protected), False (open) or None (not threadkit's runtime).
_verdicts: dict[CodeType, bool | None] = {}

#: Interrupts owed to the main thread (0 or 1: a burst during one protected stretch
#: is one Ctrl-C, as the kernel merges a burst of one signal). Written only by the
#: handlers, which run in the main thread; the watchdog only reads it.
_owed = 0
#: None until ``install()`` decided; then True if our SIGINT handler went in.
_installed: bool | None = None
#: ``[True]`` once ``install()`` decided: the one test the hot callers make.
decided = [False]
_main_ident: int | None = None
#: Held by the live watchdog thread, if any (so there is at most one).
_watching = _thread.allocate_lock()
#: Released to wake the watchdog at once when an interrupt is deferred.
_kick = _thread.allocate_lock()
_kick.acquire()
#: Set by the watchdog when, lacking a nudge signal, it re-runs SIGINT's handler.
_retripped = False
#: The signal that delivers an owed interrupt, once set up (0: none, -1: not tried).
_nudge_signal = -1
_FIRST_NUDGE = 200e-6
_LAST_NUDGE = 0.002


def interruptible(fn: F) -> F:
    """Mark ``fn`` as a frame where Ctrl-C is raised at once (see the module essay)."""
    _open.add(fn.__code__)
    _verdicts.pop(fn.__code__, None)
    return fn


_UNKNOWN = object()


def _verdict(code: CodeType) -> bool | None:
    found = _verdicts.get(code, _UNKNOWN)
    if found is not _UNKNOWN:
        return found  # type: ignore[return-value]
    name = code.co_filename
    result: bool | None = None
    if name.startswith(_RUNTIME_DIR) and os.path.basename(name) not in _NOT_RUNTIME:
        result = code not in _open
    _verdicts[code] = result
    return result


def _protected(frame: FrameType | None) -> bool:
    """True if the innermost threadkit frame at or above ``frame`` is protected."""
    while frame is not None:
        verdict = _verdict(frame.f_code)
        if verdict is not None:
            return verdict
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGINT's handler: Python's default, deferred while threadkit's code runs."""
    global _owed, _retripped
    try:
        protected = _protected(frame)
    except RecursionError:
        # The program recurses at the limit (threadkit's own code never runs that
        # deep): this Ctrl-C is the program's, and it must not turn into a
        # RecursionError the program may catch.
        protected = False
    if protected:
        _owed = 1
        _start_watchdog()
        return
    if _retripped and not _owed:
        # Only without a nudge signal: a re-run the watchdog asked for just after
        # the owed interrupt was raised, not a new Ctrl-C.
        _retripped = False
        return
    # A fresh Ctrl-C outside threadkit. One still owed from a moment ago is the
    # same burst: raise once.
    _owed = 0
    _retripped = False
    _default_handler(signum, frame)


def is_main_module(frame: FrameType) -> bool:
    """True if ``frame`` runs the module code of ``__main__`` (the program itself)."""
    return frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"


def _in_program(frame: FrameType | None) -> bool:
    """True if ``frame`` runs inside the program (its ``__main__`` is on the stack).

    Once ``__main__`` has ended, the main thread runs no Python code, or the exit's
    ``atexit`` functions, which would swallow a KeyboardInterrupt raised there: an
    interrupt still owed then is left for threadkit's exit handler (``take_owed``),
    which ends the program as a Ctrl-C. Interactive sessions always count as the
    program.
    """
    if _exiting or sys.flags.interactive or hasattr(sys, "ps1"):
        return True
    outermost = None
    while frame is not None:
        if is_main_module(frame):
            return True
        outermost = frame
        frame = frame.f_back
    # In a child forked from a threadkit thread, that thread is the main one and its
    # stack starts in threadkit's thread bootstrap, not in __main__.
    return outermost is not None and _verdict(outermost.f_code) is not None


def _on_nudge(signum: int, frame: FrameType | None) -> None:
    """The nudge's handler: raise the owed KeyboardInterrupt once it is safe."""
    global _owed
    if not _owed or _protected(frame) or not _in_program(frame):
        return
    handler = signal.getsignal(signal.SIGINT)
    # Nothing that checks for signals between clearing the debt and raising: a
    # SIGINT handled in between (inside this handler, so deferred) would owe a
    # second interrupt for the same burst.
    _owed = 0
    if handler is _on_sigint:
        raise KeyboardInterrupt
    # The program changed SIGINT's handler since the Ctrl-C arrived: the Ctrl-C is
    # its new handler's now, as if it had arrived at this instant.
    if callable(handler):
        handler(signal.SIGINT, frame)


def _setup_nudge() -> None:
    """Take a signal for nudges (in the main thread, from the SIGINT handler)."""
    global _nudge_signal
    _nudge_signal = 0
    sig = getattr(signal, "SIGURG", None)
    if sig is None or not hasattr(signal, "pthread_kill"):
        return
    try:
        if signal.getsignal(sig) is not signal.SIG_DFL:
            return  # the program (or a C extension) uses it
        signal.signal(sig, _on_nudge)
    except (ValueError, OSError):
        return
    _nudge_signal = sig


def _start_watchdog() -> None:
    """Make sure a watchdog delivers what is owed. Never raises: it runs in the
    SIGINT handler, which must raise KeyboardInterrupt or nothing."""
    try:
        if _nudge_signal == -1:
            _setup_nudge()
        if _watching.acquire(False):
            try:
                _thread.start_new_thread(_watch, ())
            except BaseException:
                # Out of threads: the debt is paid by the next Ctrl-C, or at exit.
                _watching.release()
        else:
            try:
                _kick.release()
            except RuntimeError:
                pass  # already kicked
    except Exception:  # pragma: no cover - the signal module refused
        pass


def _nudge() -> bool:
    """Send the main thread one nudge; False if nothing can deliver the debt."""
    global _retripped
    sig = _nudge_signal
    main = _main_ident
    if sig and main is not None and signal.getsignal(sig) is _on_nudge:
        signal.pthread_kill(main, sig)
        return True
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        _retripped = True
        _thread.interrupt_main(signal.SIGINT)
        return True
    return False


def _watch() -> None:
    """Nudge the main thread until the interrupt it owes has been raised."""
    delay = _FIRST_NUDGE
    while True:
        try:
            while _owed and _nudge():
                _kick.acquire(True, delay)
                delay = min(delay * 2, _LAST_NUDGE)
        except BaseException:  # pragma: no cover - the main thread is gone (teardown)
            pass
        finally:
            _watching.release()
        # A deferral that came after the check above found the watchdog still
        # held: carry on for it rather than leave it undelivered.
        if not _owed or not _watching.acquire(False):
            return


def install() -> None:
    """Take SIGINT if its handler is Python's default; called from the main thread.

    Once per process: later calls return at once. A call from another thread does
    nothing (only the main thread may set a signal handler).
    """
    global _installed
    if _installed is not None or _thread.get_ident() != _main_ident:
        return
    decided[0] = True
    try:
        if signal.getsignal(signal.SIGINT) is _default_handler:
            signal.signal(signal.SIGINT, _on_sigint)
            _installed = True
        else:
            _installed = False
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        _installed = False


def installed() -> bool:
    """True if threadkit's SIGINT handler is the current one."""
    return signal.getsignal(signal.SIGINT) is _on_sigint


def owed() -> bool:
    """True while a deferred KeyboardInterrupt waits to be raised."""
    return bool(_owed)


def take_owed() -> bool:
    """Clear an owed KeyboardInterrupt and return True if there was one (at exit,
    where no later signal check comes to raise it). From then on the exit handler
    that called this is the program: a Ctrl-C is raised in its waits."""
    global _owed, _exiting
    _exiting = True
    if _owed and installed():
        _owed = 0
        return True
    return False


def set_main_thread(ident: int) -> None:
    """Tell which thread is the main one (at import, and after a fork)."""
    global _main_ident
    _main_ident = ident


def reset_after_fork() -> None:
    """In a forked child: no watchdog exists, and nothing is owed."""
    global _owed, _watching, _kick, _exiting
    _owed = 0
    _exiting = False
    _watching = _thread.allocate_lock()
    _kick = _thread.allocate_lock()
    _kick.acquire()


#: Set once threadkit's exit handler runs (``take_owed``).
_exiting = False
#: The longest the main thread sleeps in one go (see ``block``).
MAIN_SLICE = 0.05


@interruptible
def block(parker: Any, timeout: float | None) -> bool:
    """Park on ``parker``: the one wait of threadkit that Ctrl-C may interrupt.

    The main thread sleeps at most ``MAIN_SLICE`` at a time (its caller loops on
    its own condition, as after any spurious return). A signal that arrives after
    the interpreter last looked for one but before the thread is asleep in the C
    lock does not wake it: CPython acts on it only when the thread next runs
    Python code. Waking up now and then bounds how late such a Ctrl-C comes out.
    """
    if _thread.get_ident() == _main_ident and (timeout is None or timeout > MAIN_SLICE):
        got = bool(parker.acquire(True, MAIN_SLICE))
        if _owed:
            # An interrupt owed meanwhile: raise it here if it is due, without the
            # watchdog (which cannot start once the exit has begun, on 3.12).
            _on_nudge(0, sys._getframe())
        return got
    if timeout is None:
        return bool(parker.acquire())
    return bool(parker.acquire(True, timeout))
