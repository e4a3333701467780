"""Payload models of the Qiskit Runtime instance API, and the one cattrs converter for them.

Every schema of the seed spec (plus job, job metrics and session details) is a frozen, slotted
attrs class. The converter is lenient where IBM is inconsistent and strict where it matters:

- unknown fields are ignored (the API grows; old clients must keep working);
- numbers arrive as JSON numbers or numeric strings (``instance_limit_seconds: "61"``) and
  become ``Decimal`` (JSON is parsed with ``parse_float=Decimal``, so ``60.7`` stays exact);
- date-times are ISO 8601 and become timezone-aware UTC (IBM omits the offset at times: UTC);
- a value of the wrong shape raises :class:`MalformedPayload` naming the wire field
  (``$.usage_consumed_seconds``), never a cattrs traceback; so does a negative number (every
  figure IBM sends is a count of seconds or a limit: a negative one is never a credit).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn

from quotaguard._wire import negative_figure
from quotaguard.errors import MalformedPayload

# The account route's and the Global Catalog's payloads, structured by the same converter.
from quotaguard.ibm.accounts import (
    CatalogEntry,
    CatalogMetadata,
    CatalogOverview,
    CatalogPricing,
    ExpandedAccountConfiguration,
    ExpandedPlanConfiguration,
    FunctionConfig,
    PlanConfiguration,
)

__all__ = [
    "CatalogEntry",
    "CatalogMetadata",
    "CatalogOverview",
    "CatalogPricing",
    "ExpandedAccountConfiguration",
    "ExpandedPlanConfiguration",
    "FunctionConfig",
    "GetUsageResponse",
    "IAMToken",
    "Instance",
    "InstanceConfiguration",
    "Job",
    "JobMetrics",
    "JobStatus",
    "JobTimestamps",
    "JobUsage",
    "PlanConfiguration",
    "Session",
    "UsagePeriod",
    "converter",
    "structure",
]

T = TypeVar("T")

#: IBM's ``state.reason_code`` for a job cancelled at its ceiling ("Cancelled - Ran too long").
RAN_TOO_LONG = 1305


class JobStatus(enum.StrEnum):
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@attrs.frozen
class Instance:
    backends: tuple[str, ...] = ()
    #: Deprecated by IBM in favour of ``instance_limit_seconds``; still read.
    instance_limit: Decimal | None = None
    instance_limit_seconds: Decimal | None = None
    plan_id: str | None = None
    usage_allocation_seconds: Decimal | None = None

    @property
    def limit_seconds(self) -> Decimal | None:
        """The instance limit, from the current field or else the deprecated one."""
        if self.instance_limit_seconds is not None:
            return self.instance_limit_seconds
        return self.instance_limit


@attrs.frozen
class InstanceConfiguration:
    instance_limit: Decimal | None = None


@attrs.frozen
class UsagePeriod:
    start_time: datetime | None = None
    end_time: datetime | None = None


@attrs.frozen
class GetUsageResponse:
    instance_id: str
    plan_id: str
    usage_consumed_seconds: Decimal
    usage_period: UsagePeriod | None = None
    usage_limit_seconds: Decimal | None = None
    usage_allocation_seconds: Decimal | None = None
    #: ``None`` when usage limits do not apply to this instance.
    usage_limit_reached: bool | None = None


#: ``usage.status`` while IBM's figure is not final (qiskit-ibm-runtime 0.51
#: ``RuntimeJobV2.usage``: ``usage.get("status", "pending") == "pending"`` reads as unfinished).
USAGE_PENDING = "pending"


@attrs.frozen
class JobUsage:
    qpu_charge_time_seconds: Decimal | None = None
    quantum_seconds: Decimal | None = None
    seconds: Decimal | None = None
    status: str | None = None

    @property
    def final(self) -> bool:
        """Whether IBM says these figures will not change.

        Any ``status`` but "pending" is final. An absent status is pending on the current API
        (qiskit-ibm-runtime's default), told by its ``qpu_charge_time_seconds`` or by no figure
        at all; the older API (the seeds: ``quantum_seconds`` / ``seconds``) has no status and
        reports its figures once the job ended.
        """
        if self.status is not None:
            return self.status.strip().lower() != USAGE_PENDING
        older = self.quantum_seconds is not None or self.seconds is not None
        return older and self.qpu_charge_time_seconds is None

    @property
    def billed_seconds(self) -> Decimal | None:
        """The larger of the figures present: IBM does not say which one bills (the seeds name
        ``quantum_seconds``, the FAQ's open-plan quota counts ``seconds``), so never the less."""
        present = [
            v
            for v in (self.qpu_charge_time_seconds, self.quantum_seconds, self.seconds)
            if v is not None
        ]
        return max(present) if present else None


@attrs.frozen
class JobTimestamps:
    created: datetime | None = None
    running: datetime | None = None
    finished: datetime | None = None


@attrs.frozen
class JobMetrics:
    usage: JobUsage = JobUsage()
    timestamps: JobTimestamps | None = None
    qiskit_version: str | None = None


@attrs.frozen
class Job:
    id: str
    status: JobStatus
    backend: str | None = None
    session_id: str | None = None
    created: datetime | None = None
    #: ``max_execution_time`` as the API names it in job payloads.
    cost: int | None = None
    reason: str | None = None
    #: ``state.reason_code``; 1305 is "Cancelled - Ran too long".
    reason_code: int | None = None

    @property
    def ran_too_long(self) -> bool:
        """Cancelled by IBM at its ceiling: it ran (qiskit-ibm-runtime 0.51 reads code 1305 in
        ``RuntimeJobV2._status_from_job_response``; IBM's FAQ shows the status text)."""
        return self.reason_code == RAN_TOO_LONG or "ran too long" in (self.reason or "").lower()


@attrs.frozen
class Session:
    id: str
    mode: str | None = None
    state: str | None = None
    backend_name: str | None = None
    max_ttl: int | None = None
    active_ttl: int | None = None
    interactive_ttl: int | None = None
    started_at: datetime | None = None
    activated_at: datetime | None = None
    closed_at: datetime | None = None
    elapsed_time: Decimal | None = None
    accepting_jobs: bool | None = None

    @property
    def ended(self) -> bool:
        return self.closed_at is not None or (self.state or "").lower() == "closed"

    def elapsed_seconds(self, now: datetime) -> Decimal:
        """Wall-clock seconds the session has run (what IBM bills for a session)."""
        if self.elapsed_time is not None:
            return self.elapsed_time
        if self.started_at is None:
            return Decimal(0)
        end = self.closed_at or now
        return max(Decimal(str((end - self.started_at).total_seconds())), Decimal(0))

    def remaining_seconds(self, now: datetime) -> Decimal:
        """Wall-clock seconds left before ``max_ttl`` ends the session (0 once closed).

        The timer starts with the session's first job (``started_at``); a session not yet
        started has its whole ``max_ttl`` left. An unknown ``max_ttl`` counts as nothing left:
        when unsure, never assume time that may not exist.
        """
        if self.closed_at is not None or (self.state or "").lower() == "closed":
            return Decimal(0)
        if self.max_ttl is None:
            return Decimal(0)
        if self.started_at is not None:
            # Never negative: a start after ``now`` must not leave more than max_ttl.
            elapsed = max(Decimal(str((now - self.started_at).total_seconds())), Decimal(0))
        else:
            elapsed = self.elapsed_time or Decimal(0)
        return max(Decimal(self.max_ttl) - elapsed, Decimal(0))


@attrs.frozen
class IAMToken:
    access_token: str = attrs.field(repr=False)
    expires_in: int | None = None
    expiration: int | None = None
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret


# -- the converter -----------------------------------------------------------------------


def _decimal(value: object, _: type) -> Decimal:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    if isinstance(value, Decimal | int):
        result = Decimal(value)
    elif isinstance(value, float):  # only if a caller parsed JSON without parse_float
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def _int(value: object, _: type) -> int:
    number = _decimal(value, Decimal)
    if number != number.to_integral_value():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(number)


def _str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _datetime(value: object, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 date-time string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date-time, got {value!r}") from None
    if parsed.tzinfo is None:  # IBM's timestamps are UTC even when they omit the offset
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _job_status(value: object, _: type) -> JobStatus:
    if not isinstance(value, str):
        raise TypeError(f"expected a job status string, got {type(value).__name__}")
    text = value.strip().lower()
    for status in JobStatus:
        # "Cancelled - Ran too long" and friends are cancellations too.
        if text == status.value.lower() or text.startswith(status.value.lower() + " "):
            return status
    if text in ("canceled", "done", "error"):
        return {"canceled": JobStatus.CANCELLED, "done": JobStatus.COMPLETED}.get(
            text, JobStatus.FAILED
        )
    raise ValueError(f"unknown job status {value!r}")


def _object_hook_factory(cls: type[Any], conv: cattrs.Converter) -> Any:
    """attrs classes structure only from JSON objects (a clear error, not a ``str`` index)."""
    inner = make_dict_structure_fn(cls, conv)

    def hook(value: object, _: type) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return inner(value, cls)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook_factory(attrs.has, lambda cls: _object_hook_factory(cls, conv))
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook(datetime, _datetime)
    conv.register_structure_hook(JobStatus, _job_status)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_unstructure_hook(datetime, lambda d: d.isoformat().replace("+00:00", "Z"))
    return conv


#: The one converter for IBM's snake_case wire format.
converter = _make_converter()


def _first_error(exc: BaseException, path: str) -> tuple[str, str]:
    """Walk cattrs' exception groups to the first leaf: (wire path, reason)."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            step = ""
            for note in getattr(sub, "__notes__", []):
                name = getattr(note, "name", None)
                index = getattr(note, "index", None)
                if name is not None:
                    step = f".{name}"
                elif index is not None:
                    step = f"[{index}]"
            return _first_error(sub, path + step)
    if isinstance(exc, KeyError):
        return path, "required field is missing"
    if isinstance(exc, ForbiddenExtraKeysError):  # pragma: no cover - extras are tolerated
        return path, str(exc)
    message = str(exc) or type(exc).__name__
    if "takes" in message and "argument" in message:  # cattrs calling a class with a bad shape
        message = "has the wrong shape"
    return path, message


def structure(data: Any, cls: type[T], *, path: str = "$") -> T:
    """Structure wire JSON into ``cls`` or raise :class:`MalformedPayload` naming the field."""
    if not isinstance(data, dict):
        raise MalformedPayload(
            path, f"expected a JSON object, got {type(data).__name__}", provider="ibm"
        )
    try:
        value = converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, ValueError, TypeError) as exc:
        field, reason = _first_error(exc, path)
        raise MalformedPayload(field, reason, provider="ibm") from None
    if (negative := negative_figure(value, path)) is not None:
        field, number = negative
        raise MalformedPayload(
            field, f"IBM reported {number}; seconds and limits are never negative", provider="ibm"
        )
    return value
