"""What the emulator's Braket half holds: devices, spending limits and quantum tasks."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from quotaguard.testing.braket.prices import DevicePrice

__all__ = ["ACCOUNT", "EmuDevice", "EmuLimit", "EmuTask", "SeededRun"]

#: The AWS account every emulated ARN belongs to.
ACCOUNT = "123456789012"


@attrs.define
class EmuDevice:
    arn: str
    name: str
    provider: str
    type: str
    status: str
    price: DevicePrice
    capabilities: str


@attrs.define
class EmuLimit:
    arn: str
    device_arn: str
    amount: Decimal
    total: Decimal
    queued: Decimal
    period: tuple[datetime, datetime] | None
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = attrs.Factory(dict)


@attrs.frozen
class SeededRun:
    """How tasks created later run: for ``duration``, then COMPLETED (or FAILED: ``fails``)."""

    duration: timedelta
    fails: str | None = None


@attrs.define
class EmuTask:
    """One task; ``cost`` is what it is charged (a QPU task's from creation on, a simulator
    task's once it ends). A task with a seeded ``run`` is RUNNING from creation and ends by
    itself ``run`` after it (FAILED with ``fails`` as its reason, if set). ``associations`` as
    sent (a Braket Direct reservation: the task is charged to no spending limit)."""

    arn: str
    device_arn: str
    shots: int
    cost: Decimal
    status: str
    bucket: str
    prefix: str
    created_at: datetime
    device_parameters: str = "{}"
    ended_at: datetime | None = None
    failure_reason: str | None = None
    limit_arn: str | None = None
    tags: dict[str, str] = attrs.Factory(dict)
    run: SeededRun | None = None
    associations: list[dict[str, str]] = attrs.Factory(list)
