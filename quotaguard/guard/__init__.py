"""The guard: where work is estimated, reserved, sent, bound and settled.

``core`` holds :class:`BudgetGuard`; the objects it holds are in ``admission`` (where the
guard decides: ``check`` and ``submit``), ``sending`` (calls the caller's send),
``settlement`` (commits actual costs, runs the watcher) and ``units`` (converts IBM seconds
to USD for budgets in dollars); ``cache`` keeps provider state; ``ibm_adapter`` and
``braket_adapter`` turn provider work into charges; ``contract`` is what an adapter must
provide; ``events`` reports what happened and ``telemetry`` records it to OpenTelemetry.
"""

from quotaguard.guard.contract import Adapter, Submission, Work
from quotaguard.guard.core import BudgetGuard
from quotaguard.guard.telemetry import Telemetry

__all__ = ["Adapter", "BudgetGuard", "Submission", "Telemetry", "Work"]
