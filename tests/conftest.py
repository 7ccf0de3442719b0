"""Shared fixtures: every test must leave no thread behind."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import threadkit
from threadkit import _workers
from threadkit._core import _interrupts


def _live() -> set[object]:
    std = {t for t in threading.enumerate() if not isinstance(t, threading._DummyThread)}
    ours = {t for t in threadkit.enumerate() if type(t).__name__ != "_DummyThread"}
    return std | ours


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves a thread running (after giving it a moment to end)."""
    before = _live()
    yield
    # Idle workers of the task groups' cache are not leaks; end them so that every
    # test starts from an empty cache. A worker still busy after a while is a leak.
    deadline = time.monotonic() + 5.0
    while len(_workers.workers()) > _workers.idle_workers() and time.monotonic() < deadline:
        time.sleep(0.001)  # a bounded poll of real state: workers settling into idle
    for worker in _workers.retire_idle():
        worker.join(5.0)
    leaked = _live() - before
    for t in leaked:
        t.join(5.0)  # type: ignore[attr-defined]
    still = [t for t in leaked if t.is_alive()]  # type: ignore[attr-defined]
    assert not still, f"test leaked threads: {still}"


@pytest.fixture
def fast_switch() -> Iterator[None]:
    """Make the interpreter switch threads very often, to interleave finely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture(autouse=True, scope="session")
def sigint_raises_keyboard_interrupt() -> Iterator[None]:
    """Tests deliver SIGINT to the main thread; a shell started without job control
    hands the process SIGINT ignored, so put Python's default handler back."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # threadkit takes SIGINT (to defer Ctrl-C out of its bookkeeping) at the main
    # thread's first start or wait; take it now, whatever ran first.
    _interrupts._installed = None
    _interrupts.install()
    assert _interrupts.installed()
    yield
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)
