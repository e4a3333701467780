"""quotaguard: reject over-budget quantum work before it is sent.

The public surface is re-exported here; everything else is internal. Names that need aiohttp
(``RetryPolicy``, ``set_testing``) or the optional ``redis`` package (``RedisLedger``) load on
first use (PEP 562), so ``import quotaguard`` stays light.
"""

from typing import TYPE_CHECKING

from quotaguard.braket.work import BraketTask
from quotaguard.engine import (
    Alert,
    Budget,
    BudgetState,
    CalendarMonth,
    Charge,
    Decision,
    FixedWindow,
    NoWindow,
    Reservation,
    ReservationState,
    RollingDays,
    Unit,
    Violation,
)
from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    BudgetUnavailable,
    ClockSkew,
    Conflict,
    DeviceUnavailable,
    InvalidInput,
    MalformedPayload,
    MissingDependency,
    NotFound,
    PermissionDenied,
    ProviderError,
    ProviderUnavailable,
    QuotaGuardError,
    ReservationNotFound,
    ServiceQuotaExceeded,
    SubmitTimeout,
    Throttled,
    UnknownBudget,
    UsageExceedsLimit,
)
from quotaguard.guard import BudgetGuard, Submission
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.ledger import Ledger, MemoryLedger, SQLiteLedger

if TYPE_CHECKING:
    from quotaguard._http import RetryPolicy, set_testing
    from quotaguard.ledger.postgres import PostgresLedger
    from quotaguard.ledger.redis import RedisLedger

from quotaguard._version import __version__

__all__ = [
    "Alert",
    "AuthenticationError",
    "BadRequest",
    "BraketTask",
    "Budget",
    "BudgetExceeded",
    "BudgetGuard",
    "BudgetState",
    "BudgetUnavailable",
    "CalendarMonth",
    "Charge",
    "ClockSkew",
    "Conflict",
    "Decision",
    "DeviceUnavailable",
    "FixedWindow",
    "IBMJob",
    "IBMSession",
    "InvalidInput",
    "Ledger",
    "MalformedPayload",
    "MemoryLedger",
    "MissingDependency",
    "NoWindow",
    "NotFound",
    "PermissionDenied",
    "PostgresLedger",
    "ProviderError",
    "ProviderUnavailable",
    "QuotaGuardError",
    "RedisLedger",
    "Reservation",
    "ReservationNotFound",
    "ReservationState",
    "RetryPolicy",
    "RollingDays",
    "SQLiteLedger",
    "ServiceQuotaExceeded",
    "Submission",
    "SubmitTimeout",
    "Throttled",
    "Unit",
    "UnknownBudget",
    "UsageExceedsLimit",
    "Violation",
    "__version__",
    "set_testing",
]


def __getattr__(name: str) -> object:
    if name == "PostgresLedger":
        from quotaguard.ledger.postgres import PostgresLedger

        return PostgresLedger
    if name == "RedisLedger":
        from quotaguard.ledger.redis import RedisLedger

        return RedisLedger
    if name in ("RetryPolicy", "set_testing"):
        from quotaguard import _http

        return getattr(_http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
