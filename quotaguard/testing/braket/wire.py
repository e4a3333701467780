"""How the emulator's Braket half speaks: request fields, JSON documents, pagination and
filters (errors live in ``errors``, SigV4 in ``sigv4``)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quotaguard.testing.braket.errors import validation
from quotaguard.testing.braket.models import EmuDevice, EmuLimit, EmuTask

__all__ = [
    "amount",
    "device_json",
    "filtered",
    "iso",
    "limit_json",
    "page",
    "period",
    "task_json",
]

_AMOUNT = re.compile(r"^\d+(\.\d{1,2})?$")


# -- request fields --------------------------------------------------------------------------


def _when(value: object, field: str) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise validation(f"{field} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise validation(f"{field} is not a timestamp")


def period(raw: object) -> tuple[datetime, datetime] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise validation("timePeriod must be an object")
    start = _when(raw.get("startAt", raw.get("start")), "timePeriod.startAt")
    end = _when(raw.get("endAt", raw.get("end")), "timePeriod.endAt")
    if end <= start:
        raise validation("timePeriod.endAt must be after timePeriod.startAt")
    return (start, end)


def amount(raw: object, field: str = "spendingLimit") -> Decimal:
    if not isinstance(raw, str) or not _AMOUNT.match(raw):
        raise validation(f"{field} must match \\d+(\\.\\d{{1,2}})?")
    return Decimal(raw)


def page(body: dict[str, Any], items: list[Any]) -> tuple[list[Any], str | None]:
    size = body.get("maxResults", 100)
    if not isinstance(size, int) or not 1 <= size <= 100:
        raise validation("maxResults must be between 1 and 100")
    token = body.get("nextToken")
    try:
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
    except (ValueError, TypeError):
        raise validation("invalid nextToken") from None
    chunk = items[start : start + size]
    more = start + size < len(items)
    return chunk, base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None


def filtered(body: dict[str, Any], items: list[Any], fields: Mapping[str, str]) -> list[Any]:
    filters = body.get("filters") or []
    if not isinstance(filters, list):
        raise validation("filters must be a list")
    for flt in filters:
        name = flt.get("name") if isinstance(flt, dict) else None
        if not isinstance(name, str) or name not in fields:
            raise validation(f"unsupported filter {name!r}")
        attr, values = fields[name], set(flt.get("values") or [])
        items = [item for item in items if getattr(item, attr) in values]
    return items


# -- response documents ----------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def limit_json(lim: EmuLimit) -> dict[str, Any]:
    out: dict[str, Any] = {
        "spendingLimitArn": lim.arn,
        "deviceArn": lim.device_arn,
        "spendingLimit": str(lim.amount),
        "totalSpend": str(lim.total),
        "queuedSpend": str(lim.queued),
        "createdAt": iso(lim.created_at),
        "updatedAt": iso(lim.updated_at),
    }
    if lim.period is not None:
        start, end = lim.period
        out["timePeriod"] = {"startAt": int(start.timestamp()), "endAt": int(end.timestamp())}
    if lim.tags:
        out["tags"] = lim.tags
    return out


def device_json(dev: EmuDevice, *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "deviceArn": dev.arn,
        "deviceName": dev.name,
        "providerName": dev.provider,
        "deviceType": dev.type,
        "deviceStatus": dev.status,
    }
    if full:
        out["deviceCapabilities"] = dev.capabilities
        out["deviceQueueInfo"] = []
    return out


def task_json(task: EmuTask) -> dict[str, Any]:
    out: dict[str, Any] = {
        "quantumTaskArn": task.arn,
        "status": task.status,
        "deviceArn": task.device_arn,
        "deviceParameters": task.device_parameters,
        "shots": task.shots,
        "outputS3Bucket": task.bucket,
        "outputS3Directory": f"{task.prefix}/{task.arn.rsplit('/', 1)[-1]}",
        "createdAt": iso(task.created_at),
    }
    if task.ended_at is not None:
        out["endedAt"] = iso(task.ended_at)
    if task.failure_reason:
        out["failureReason"] = task.failure_reason
    if task.tags:
        out["tags"] = task.tags
    if task.associations:
        out["associations"] = task.associations
    return out
