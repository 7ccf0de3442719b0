"""threadkit's diagnostics: deadlock detection.

* ``DeadlockError``: raised by a wait that would close a cycle of waiting threads
  (on by default; ``set_deadlock_detection(False)`` turns it off).
"""

from __future__ import annotations

from ._core._deadlock import DeadlockError, add_deadlock_listener, detection_enabled
from ._core._deadlock import set_detection as set_deadlock_detection

__all__ = [
    "DeadlockError",
    "add_deadlock_listener",
    "deadlock_detection_enabled",
    "set_deadlock_detection",
]

deadlock_detection_enabled = detection_enabled
