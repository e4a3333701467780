"""The guard: where work is estimated, reserved, sent, bound and settled.

``core`` holds :class:`BudgetGuard` (where the guard decides); ``sending`` calls the caller's
send; ``settlement`` commits actual costs and runs the watcher; ``cache`` keeps provider state;
``ibm_adapter`` and ``braket_adapter`` turn provider work into charges.
"""

from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.core import BudgetGuard

__all__ = ["Adapter", "BudgetGuard", "Submission"]
