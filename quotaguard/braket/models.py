"""Braket wire models: frozen attrs classes structured from camelCase JSON by one cattrs converter.

Success bodies go straight from ``json.loads`` into these classes (botocore's parser is not on
the hot path). Amounts are ``Decimal`` (Braket sends them as strings); ``timePeriod`` bounds
arrive as epoch seconds and ``createdAt``/``updatedAt`` as ISO 8601, so the datetime hook takes
both. A body of the wrong shape raises :class:`MalformedPayload` naming the wire field, and so
does a negative amount or count (a negative ``queuedSpend`` is never a credit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from quotaguard._wire import negative_figure
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput, MalformedPayload

__all__ = [
    "CONVERTER",
    "RESERVATION_ASSOCIATION",
    "Association",
    "Device",
    "QuantumTask",
    "SpendingLimit",
    "TimePeriod",
    "camel",
    "structure",
]

T = TypeVar("T")


def camel(name: str) -> str:
    """``total_spend`` -> ``totalSpend`` (Braket's wire spelling)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _check_period(
    instance: TimePeriod, attribute: attrs.Attribute[datetime], end: datetime
) -> None:
    check_aware(end, "time_period.end_at")
    check_aware(instance.start_at, "time_period.start_at")
    if end <= instance.start_at:
        raise InvalidInput(
            "time_period.end_at",
            f"end {end.isoformat()} must be after start {instance.start_at.isoformat()}",
        )


@attrs.frozen
class TimePeriod:
    """A spending limit's window ``[start_at, end_at)``; outside it Braket rejects tasks."""

    start_at: datetime
    end_at: datetime = attrs.field(validator=_check_period)

    def contains(self, now: datetime) -> bool:
        return self.start_at <= now < self.end_at


#: The last second an AWS timestamp can name. A limit created without a time period still
#: reports one (botocore's model requires ``timePeriod`` in ``SpendingLimitSummary``); a period
#: that ends here never closes, so it is read as no window at all.
NEVER_ENDS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _open_period(value: TimePeriod | None) -> TimePeriod | None:
    return None if value is not None and value.end_at >= NEVER_ENDS else value


@attrs.frozen
class SpendingLimit:
    """One device's spending limit as Braket reports it (``SpendingLimitSummary``)."""

    spending_limit_arn: str
    device_arn: str
    spending_limit: Decimal
    total_spend: Decimal
    queued_spend: Decimal
    time_period: TimePeriod | None = attrs.field(default=None, converter=_open_period)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tags: Mapping[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def remaining(self) -> Decimal:
        """``spendingLimit − totalSpend − queuedSpend`` (may be negative: never clamp to zero)."""
        return self.spending_limit - self.total_spend - self.queued_spend

    @property
    def used(self) -> Decimal:
        return self.total_spend + self.queued_spend


@attrs.frozen
class Device:
    """``GetDevice`` output, with the shots range read from the capabilities when present."""

    device_arn: str
    device_name: str
    provider_name: str
    device_type: str  # "QPU" | "SIMULATOR"
    device_status: str  # "ONLINE" | "OFFLINE" | "RETIRED"
    device_capabilities: str = "{}"

    @property
    def is_qpu(self) -> bool:
        return self.device_type == "QPU"

    @property
    def shots_range(self) -> tuple[int, int] | None:
        """``service.shotsRange`` from the capabilities document, if it has one."""
        try:
            caps = json.loads(self.device_capabilities)
            low, high = caps["service"]["shotsRange"]
        except (ValueError, KeyError, TypeError):
            return None
        if isinstance(low, int) and isinstance(high, int):
            return (low, high)
        return None


#: The association type of a task run under a Braket Direct reservation.
RESERVATION_ASSOCIATION = "RESERVATION_TIME_WINDOW_ARN"


@attrs.frozen
class Association:
    """A Braket resource a task is associated with (today: its Braket Direct reservation)."""

    arn: str
    type: str


@attrs.frozen
class QuantumTask:
    """``GetQuantumTask`` output: what settlement needs (status, shots, device)."""

    quantum_task_arn: str
    status: str
    device_arn: str
    shots: int
    output_s3_bucket: str = ""
    output_s3_directory: str = ""
    created_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    job_arn: str | None = None
    num_successful_shots: int | None = None
    device_parameters: str | None = None
    associations: tuple[Association, ...] = ()

    @property
    def ended(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELLED")

    @property
    def reservation_arn(self) -> str | None:
        """The Braket Direct reservation the task ran under, if any."""
        return next((a.arn for a in self.associations if a.type == RESERVATION_ASSOCIATION), None)


def _decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    try:
        out = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not a decimal") from exc
    if not out.is_finite():
        raise ValueError(f"{value!r} is not finite")
    return out


def _datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)  # epoch seconds (timePeriod)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"expected a timestamp, got {type(value).__name__}")


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, _decimal)
    conv.register_structure_hook(datetime, _datetime)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_unstructure_hook(datetime, lambda d: int(d.timestamp()))
    for cls in (TimePeriod, SpendingLimit, Device, Association, QuantumTask):
        renames: dict[str, Any] = {
            a.name: override(rename=camel(a.name)) for a in attrs.fields(cls)
        }
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **renames))
    return conv


#: The one Braket converter (camelCase on the wire).
CONVERTER = _make_converter()


def _wire_path(message: str) -> tuple[str, str]:
    text, _, path = message.partition(" @ ")
    parts = re.split(r"(\.|\[\d+\])", path or "$")
    return "".join(camel(p) if p and p[0].isalpha() else p for p in parts), text


def structure(data: object, cls: type[T], *, path: str = "$") -> T:
    """Structure ``data`` into ``cls``; a wrong shape raises :class:`MalformedPayload`."""
    try:
        value = CONVERTER.structure(data, cls)
    except InvalidInput as exc:  # a model validator (e.g. end before start)
        raise MalformedPayload(
            f"{path}.{camel(exc.field)}", exc.reason, provider="braket"
        ) from None
    except Exception as exc:  # cattrs raises ExceptionGroups; name the first wire field
        messages = cattrs.transform_error(exc, path=path) if isinstance(exc, Exception) else []
        field, text = _wire_path(messages[0]) if messages else (path, str(exc))
        raise MalformedPayload(field, text, provider="braket") from None
    if (negative := negative_figure(value, path, camel)) is not None:
        field, number = negative
        raise MalformedPayload(
            field,
            f"Braket reported {number}; spend, limits and shots are never negative",
            provider="braket",
        )
    return value
