"""threadkit's diagnostics: deadlock detection, the dump, lock-order checking.

* ``DeadlockError``: raised by a wait that would close a cycle of waiting threads
  (on by default; ``set_deadlock_detection(False)`` turns it off).
* ``dump(file)`` prints every live thread, what it waits on and what it holds;
  ``dump_on_signal(signal.SIGUSR1)`` prints it when the process gets that signal.
* ``check_lock_order()`` (opt-in) warns with ``LockOrderWarning`` the first time two
  locks are taken in both orders, even if this run did not deadlock.
* ``threadkit check prog.py`` and the pytest plugin (``--threadkit-check``) run a
  program or a test with every check on and report what they found.
"""

from __future__ import annotations

from ._core._deadlock import DeadlockError, add_deadlock_listener, detection_enabled
from ._core._deadlock import set_detection as set_deadlock_detection
from ._dump import dump, dump_on_signal, format_dump, snapshot
from ._lockorder import (
    LockOrderWarning,
    add_lock_order_listener,
    check_lock_order,
    held_locks,
    lock_order_enabled,
    lock_order_reports,
    reset_lock_order,
)

__all__ = [
    "DeadlockError",
    "LockOrderWarning",
    "add_deadlock_listener",
    "add_lock_order_listener",
    "check_lock_order",
    "deadlock_detection_enabled",
    "dump",
    "dump_on_signal",
    "format_dump",
    "held_locks",
    "lock_order_enabled",
    "lock_order_reports",
    "reset_lock_order",
    "set_deadlock_detection",
    "snapshot",
]

deadlock_detection_enabled = detection_enabled
