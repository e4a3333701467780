"""Seeded state of the emulator's Braket half, and the methods tests use to seed and drive it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from quotaguard.braket.pricing import DEFAULT_PRICES, Price
from quotaguard.testing.braket.devices import capabilities
from quotaguard.testing.braket.wire import ApiError

__all__ = ["ACCOUNT", "BraketState", "EmuDevice", "EmuLimit", "EmuTask"]

ACCOUNT = "123456789012"


@attrs.define
class EmuDevice:
    arn: str
    name: str
    provider: str
    type: str
    status: str
    price: Price
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


@attrs.define
class EmuTask:
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


class BraketState:
    """Devices, spending limits and tasks; ``BraketService`` serves them. Every device in the
    default price table is pre-seeded."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.devices: dict[str, EmuDevice] = {}
        self.limits: dict[str, EmuLimit] = {}
        self.tasks: dict[str, EmuTask] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._secrets: dict[str, str] = {}  # access key id -> secret access key
        #: With credentials registered, refuse an ``X-Amz-Date`` this far from ``clock()`` (as
        #: AWS does at 15 minutes). Off by default: tests move ``clock`` while signers read the
        #: wall clock.
        self.max_clock_skew: timedelta | None = None
        for arn, price in DEFAULT_PRICES.items():
            self.add_device(arn, per_task=price.per_task, per_shot=price.per_shot)

    def add_credentials(self, access_key_id: str, secret_access_key: str) -> None:
        """Accept requests signed with this key. From the first call on, every request must
        carry a valid SigV4 signature by a registered key; before it, only the header's shape
        is checked."""
        if not access_key_id or not secret_access_key:
            raise ValueError("access_key_id and secret_access_key must be non-empty")
        self._secrets[access_key_id] = secret_access_key

    def add_device(
        self,
        arn: str,
        *,
        name: str | None = None,
        provider: str | None = None,
        status: str = "ONLINE",
        per_task: Decimal | str = Decimal("0.30"),
        per_shot: Decimal | str = Decimal(0),
        shots_range: tuple[int, int] = (1, 100_000),
        device_capabilities: str | None = None,
    ) -> EmuDevice:
        parts = arn.split("/")
        qpu = "device/qpu/" in arn
        device = EmuDevice(
            arn=arn,
            name=name or parts[-1],
            provider=provider or (parts[-2] if len(parts) >= 2 else "unknown"),
            type="QPU" if qpu else "SIMULATOR",
            status=status,
            price=Price(per_task=Decimal(per_task), per_shot=Decimal(per_shot)),
            capabilities=device_capabilities or capabilities(parts[-1], shots_range),
        )
        self.devices[arn] = device
        return device

    def add_spending_limit(
        self,
        device_arn: str,
        amount: Decimal | str,
        *,
        total: Decimal | str = Decimal(0),
        queued: Decimal | str = Decimal(0),
        time_period: tuple[datetime, datetime] | Any = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        if time_period is not None and not isinstance(time_period, tuple):
            time_period = (time_period.start_at, time_period.end_at)  # a models.TimePeriod
        region = device_arn.split(":")[3] or "us-east-1"
        arn = f"arn:aws:braket:{region}:{ACCOUNT}:spending-limit/{uuid.uuid4()}"
        now = self.clock()
        self.limits[arn] = EmuLimit(
            arn,
            device_arn,
            Decimal(amount),
            Decimal(total),
            Decimal(queued),
            time_period,
            now,
            now,
            dict(tags or {}),
        )
        return arn

    def limit_for(self, device_arn: str) -> EmuLimit | None:
        return next((lim for lim in self.limits.values() if lim.device_arn == device_arn), None)

    def _end(self, arn: str, status: str, reason: str | None = None) -> EmuTask:
        task = self.tasks[arn]
        if task.status in ("COMPLETED", "FAILED", "CANCELLED"):
            raise ApiError(409, "ConflictException", f"task is already {task.status}")
        task.status, task.ended_at, task.failure_reason = status, self.clock(), reason
        limit = self.limits.get(task.limit_arn or "")
        if limit is not None:
            limit.queued -= task.cost
            if status == "COMPLETED":
                limit.total += task.cost
        return task

    def complete_task(self, arn: str) -> EmuTask:
        """Queued spend moves to total spend."""
        return self._end(arn, "COMPLETED")

    def fail_task(self, arn: str, reason: str = "failed by the test") -> EmuTask:
        """Queued spend is released (failed tasks cost nothing)."""
        return self._end(arn, "FAILED", reason)

    def cancel_task(self, arn: str) -> EmuTask:
        """Queued spend is released."""
        return self._end(arn, "CANCELLED")
