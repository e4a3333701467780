"""The exception tree. Every error quotaguard raises is a :class:`QuotaGuardError`.

Errors carry data (the decision, the wire field, the provider's trace id) so callers can act on
them without parsing messages. No error text ever contains a credential: messages are built
from fields we choose, never from request headers, and a provider's own words reach them only
after ``quotaguard._http`` scrubbed the answer of the client's credentials and of anything
shaped like one (a SigV4 canonical request, a security token, a bearer token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from quotaguard.engine.model import Decision, Violation

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "BudgetExceeded",
    "BudgetUnavailable",
    "ClockSkew",
    "Conflict",
    "DeviceUnavailable",
    "InvalidInput",
    "MalformedPayload",
    "MissingDependency",
    "NotFound",
    "PermissionDenied",
    "ProviderError",
    "ProviderUnavailable",
    "QuotaGuardError",
    "ReservationNotFound",
    "ServiceQuotaExceeded",
    "SubmitTimeout",
    "Throttled",
    "UnknownBudget",
    "UsageExceedsLimit",
]


def _rebuild(cls: type[QuotaGuardError], args: tuple[object, ...]) -> QuotaGuardError:
    # The builtin base that fixes the instance layout (OSError for a TimeoutError mix-in) must
    # allocate it: cls.__new__ may resolve to another builtin's and refuse.
    base: Any = cls
    while base.__flags__ & _HEAPTYPE:
        base = base.__base__
    exc = cast("QuotaGuardError", base.__new__(cls, *args))
    exc.args = args
    return exc


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python, not a builtin


class QuotaGuardError(Exception):
    """Root of every error quotaguard raises."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take keyword-only data that Exception's default pickling drops, so an
        # error raised in a worker process would not unpickle in its parent (a
        # multiprocessing.Pool then never delivers the result). Rebuild without __init__.
        return (_rebuild, (type(self), self.args), self.__dict__)


class InvalidInput(QuotaGuardError, ValueError):
    """Input that cannot be used; nothing was reserved, sent or written.

    ``field`` names what to fix (``"charges[0].amount"``, ``"shots"``, ``"$.deviceArn"``).
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class UnknownBudget(InvalidInput, KeyError):
    """A charge or query names a budget key the ledger does not have."""

    def __init__(self, field: str, key: str) -> None:
        self.key = key
        super().__init__(
            field,
            f"no budget with key {key!r}; add it first "
            "(BudgetGuard.add_budget or Ledger.put_budget)",
        )

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return f"{self.field}: {self.reason}"


class MissingDependency(QuotaGuardError, ImportError):
    """An optional dependency (an extra such as ``quotaguard[redis]``) is not installed.

    ``extra`` names the extra; the message says what to ``pip install``.
    """

    def __init__(self, extra: str, message: str) -> None:
        super().__init__(message)
        self.extra = extra


class ReservationNotFound(QuotaGuardError, LookupError):
    """No reservation with this id exists in the ledger."""

    def __init__(self, reservation_id: str) -> None:
        self.reservation_id = reservation_id
        super().__init__(f"no reservation with id {reservation_id!r}")


class BudgetExceeded(QuotaGuardError):
    """The work does not fit: ``decision.violations`` says which rule, budget and amounts.

    ``source`` is ``"local"`` when quotaguard decided before sending, ``"server"`` when the
    provider itself refused (Braket's own spending-limit rejection).
    """

    def __init__(self, decision: Decision, *, source: Literal["local", "server"] = "local") -> None:
        self.decision = decision
        self.source = source
        lines = "; ".join(v.message for v in decision.violations) or "rejected"
        super().__init__(lines)

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(self.decision.violations)


class BudgetUnavailable(QuotaGuardError):
    """The budget could not be checked (provider state stale, ledger unreachable).

    Retry later; reusing the same idempotency key is safe.
    """

    def __init__(self, message: str, *, budget: str | None = None) -> None:
        self.budget = budget
        super().__init__(message)


class ClockSkew(BudgetUnavailable):
    """The caller's clock is more than ``max_skew`` away from the ledger's; nothing changed.

    A ledger that keeps its own time (the machine's, or the store's) judges leases by it, and
    refuses a caller whose ``now`` would date windows, reports and commits far from it.
    """

    def __init__(
        self, *, ledger_time: datetime, caller_time: datetime, max_skew: timedelta
    ) -> None:
        self.ledger_time = ledger_time
        self.caller_time = caller_time
        self.max_skew = max_skew
        super().__init__(
            f"the caller's clock ({caller_time.isoformat()}) is {abs(caller_time - ledger_time)} "
            f"away from the ledger's ({ledger_time.isoformat()}), more than {max_skew}; "
            "fix the clock (NTP), or pass the ledger's time"
        )


class SubmitTimeout(QuotaGuardError, TimeoutError):
    """``submit`` did not return within the guard's ``submit_timeout``.

    The work may have reached the provider, so its reservation (``reservation_id``) is not
    released: it stays held *in doubt* (a send still running on its thread binds it when it
    returns a job) until the watcher resolves it. ``BudgetGuard.release()`` frees it when you
    know nothing was sent.
    """

    def __init__(self, message: str, *, reservation_id: str | None = None) -> None:
        self.reservation_id = reservation_id
        super().__init__(message)


class ProviderError(QuotaGuardError):
    """A provider (IBM, Braket) answered with an error, or could not be reached.

    ``request_sent`` says whether our client wrote the request: ``True`` when a reply (any
    status) came back, ``False`` when it failed before writing anything (DNS, connection
    refused), ``None`` when it cannot know (a timeout, a connection lost after writing). The
    guard releases a hold only for work that provably created nothing.
    """

    #: Unknown unless set: subclasses that skip ``__init__`` (MalformedPayload) say so too.
    request_sent: bool | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        trace: str | None = None,
        errors: tuple[dict[str, str], ...] = (),
        request_sent: bool | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.request_sent = True if request_sent is None and status is not None else request_sent
        self.code = code
        self.trace = trace
        self.errors = errors
        parts = [f"{provider}: {message}"]
        if status is not None:
            parts.append(f"(HTTP {status})")
        if trace:
            parts.append(f"[trace {trace}]")
        super().__init__(" ".join(parts))


class MalformedPayload(ProviderError, InvalidInput):
    """A payload of the wrong shape; ``field`` is the wire path (``$.usage_period.end_time``)."""

    def __init__(self, field: str, message: str, *, provider: str) -> None:
        InvalidInput.__init__(self, field, message)
        self.provider = provider
        self.status = None
        self.code = "malformed"
        self.trace = None
        self.errors = ()


class AuthenticationError(ProviderError):
    """Credentials were refused (HTTP 401, IAM rejection, bad signature)."""


class PermissionDenied(ProviderError):
    """Authenticated but not allowed (HTTP 403, AccessDeniedException)."""


class NotFound(ProviderError, LookupError):
    """The resource does not exist (HTTP 404, ResourceNotFoundException)."""


class BadRequest(ProviderError):
    """The provider refused the request as invalid (HTTP 400, ValidationException)."""


class Conflict(ProviderError):
    """The request conflicts with the resource's state (HTTP 409, ConflictException)."""


class UsageExceedsLimit(Conflict):
    """IBM's 409: the new instance limit is below the usage already consumed."""


class Throttled(ProviderError):
    """Too many requests (HTTP 429, ThrottlingException); retried for idempotent calls."""


class ServiceQuotaExceeded(ProviderError):
    """A service quota (not a budget) was exceeded."""


class DeviceUnavailable(ProviderError):
    """The device is offline or retired."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed (5xx, timeout, connection error)."""
