"""threadkit's diagnostics: deadlock detection and the dump.

* ``DeadlockError``: raised by a wait that would close a cycle of waiting threads
  (on by default; ``set_deadlock_detection(False)`` turns it off).
* ``dump(file)`` prints every live thread, what it waits on and what it holds;
  ``dump_on_signal(signal.SIGUSR1)`` prints it when the process gets that signal.
"""

from __future__ import annotations

from ._core._deadlock import DeadlockError, add_deadlock_listener, detection_enabled
from ._core._deadlock import set_detection as set_deadlock_detection
from ._dump import dump, dump_on_signal, format_dump, snapshot

__all__ = [
    "DeadlockError",
    "add_deadlock_listener",
    "deadlock_detection_enabled",
    "dump",
    "dump_on_signal",
    "format_dump",
    "set_deadlock_detection",
    "snapshot",
]

deadlock_detection_enabled = detection_enabled
