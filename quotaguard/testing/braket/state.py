"""Seeded state of the emulator's Braket half, and the methods tests use to seed and drive it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from quotaguard.testing.braket.devices import RETIRED, capabilities
from quotaguard.testing.braket.errors import ApiError
from quotaguard.testing.braket.models import ACCOUNT, EmuDevice, EmuLimit, EmuTask, SeededRun
from quotaguard.testing.braket.prices import (
    PRICES,
    QPU_TASK_FEE,
    SIMULATOR_MIN_BILLED,
    DevicePrice,
)

__all__ = ["BraketState"]


class BraketState:
    """Devices, spending limits and tasks; ``BraketService`` serves them. Every device of the
    emulator's price table (:data:`~quotaguard.testing.braket.prices.PRICES`) is pre-seeded,
    those in :data:`~quotaguard.testing.braket.devices.RETIRED` as retired. Devices with no
    published price (Rigetti Cepheus-1-108Q) are not: a test serves them with ``add_device``
    at the price it chooses."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.devices: dict[str, EmuDevice] = {}
        self.limits: dict[str, EmuLimit] = {}
        self.tasks: dict[str, EmuTask] = {}
        #: Braket Direct reservations: reservation ARN -> the device it reserves.
        self.reservations: dict[str, str] = {}
        #: How tasks created from now on run, by device ARN (``None``: every simulator).
        self.runs: dict[str | None, SeededRun] = {}
        self._running: set[str] = set()  # tasks with a seeded run, not ended yet
        self._tokens: dict[tuple[str, str], str] = {}
        self._secrets: dict[str, str] = {}  # access key id -> secret access key
        #: With credentials registered, refuse an ``X-Amz-Date`` this far from ``clock()`` (as
        #: AWS does at 15 minutes). Off by default: tests move ``clock`` while signers read the
        #: wall clock.
        self.max_clock_skew: timedelta | None = None
        for arn, price in PRICES.items():
            self._put_device(arn, price, status="RETIRED" if arn in RETIRED else "ONLINE")

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
        per_task: Decimal | str | None = None,
        per_shot: Decimal | str = Decimal(0),
        per_minute: Decimal | str = Decimal(0),
        shots_range: tuple[int, int] = (1, 100_000),
        device_capabilities: str | None = None,
    ) -> EmuDevice:
        """Serve (or replace) a device at this price. ``per_task`` defaults to the QPU task fee
        on a QPU and to nothing on a simulator; a ``per_minute`` price is billed as the
        simulators are, with their minimum duration."""
        if per_task is None:
            per_task = QPU_TASK_FEE if "device/qpu/" in arn else Decimal(0)
        billed = SIMULATOR_MIN_BILLED if Decimal(per_minute) else timedelta(0)
        price = DevicePrice(per_task, per_shot, per_minute, billed)
        return self._put_device(
            arn,
            price,
            name=name,
            provider=provider,
            status=status,
            shots_range=shots_range,
            device_capabilities=device_capabilities,
        )

    def _put_device(
        self,
        arn: str,
        price: DevicePrice,
        *,
        name: str | None = None,
        provider: str | None = None,
        status: str = "ONLINE",
        shots_range: tuple[int, int] = (1, 100_000),
        device_capabilities: str | None = None,
    ) -> EmuDevice:
        parts = arn.split("/")
        device = EmuDevice(
            arn=arn,
            name=name or parts[-1],
            provider=provider or (parts[-2] if len(parts) >= 2 else "unknown"),
            type="QPU" if "device/qpu/" in arn else "SIMULATOR",
            status=status,
            price=price,
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

    def add_reservation(self, device_arn: str) -> str:
        """A Braket Direct reservation of ``device_arn``; returns its ARN. Tasks sent with it as
        their ``RESERVATION_TIME_WINDOW_ARN`` association are charged to no spending limit."""
        region = device_arn.split(":")[3] or "us-east-1"
        arn = f"arn:aws:braket:{region}:{ACCOUNT}:reservation/{uuid.uuid4()}"
        self.reservations[arn] = device_arn
        return arn

    def seed_run(
        self, duration: timedelta, *, device_arn: str | None = None, fails: str | None = None
    ) -> None:
        """Tasks created from now on, on ``device_arn`` (default: every simulator), are RUNNING
        from creation and end by themselves ``duration`` later on ``clock``: COMPLETED and
        billed for ``duration``, or, with ``fails``, FAILED with that reason and billed nothing.
        Cancelled before that, a simulator task is billed for the time it ran."""
        if not isinstance(duration, timedelta) or duration < timedelta(0):
            raise ValueError("duration must be a timedelta >= 0")
        self.runs[device_arn] = SeededRun(duration, fails)

    def seeded_run(self, device: EmuDevice) -> SeededRun | None:
        run = self.runs.get(device.arn)
        if run is None and device.type == "SIMULATOR":
            run = self.runs.get(None)
        return run

    def start(self, task: EmuTask) -> None:
        """Run ``task`` as its seeded run says (called when it is created)."""
        if task.run is not None:
            task.status = "RUNNING"
            self._running.add(task.arn)

    def run_due(self) -> None:
        """End every seeded run that is over by ``clock`` (the service calls this first on
        every request, so an answer never shows a task running past its run)."""
        now = self.clock()
        for arn in list(self._running):
            task = self.tasks[arn]
            assert task.run is not None
            at = task.created_at + task.run.duration
            if at > now:
                continue
            if task.run.fails is not None:
                self._end(arn, "FAILED", task.run.fails, at=at)
            else:
                self._complete(arn, task.run.duration, at)

    def _end(
        self, arn: str, status: str, reason: str | None = None, *, at: datetime | None = None
    ) -> EmuTask:
        task = self.tasks[arn]
        if task.status in ("COMPLETED", "FAILED", "CANCELLED"):
            raise ApiError(409, "ConflictException", f"task is already {task.status}")
        self._running.discard(arn)
        task.status, task.failure_reason = status, reason
        task.ended_at = at or self.clock()
        limit = self.limits.get(task.limit_arn or "")
        if limit is not None:
            limit.queued -= task.cost
            if status == "COMPLETED":
                limit.total += task.cost
        return task

    def _bill_run(self, task: EmuTask, run: timedelta) -> None:
        device = self.devices.get(task.device_arn)
        if device is not None and device.type == "SIMULATOR":
            task.cost = device.price.charge(task.shots, run)

    def _complete(self, arn: str, duration: timedelta | None, at: datetime | None) -> EmuTask:
        task = self._end(arn, "COMPLETED", at=at)
        assert task.ended_at is not None
        self._bill_run(task, duration if duration is not None else task.ended_at - task.created_at)
        return task

    def complete_task(self, arn: str, *, duration: timedelta | None = None) -> EmuTask:
        """Queued spend moves to total spend. A simulator task is billed for ``duration`` (by
        default the time since it was created, on ``clock``)."""
        return self._complete(arn, duration, None)

    def fail_task(self, arn: str, reason: str = "failed by the test") -> EmuTask:
        """Queued spend is released (failed tasks cost nothing)."""
        return self._end(arn, "FAILED", reason)

    def cancel_task(self, arn: str) -> EmuTask:
        """Queued spend is released; a simulator task that was running is billed for the time
        it ran (one still queued never ran: nothing)."""
        running = self.tasks[arn].status == "RUNNING"
        task = self._end(arn, "CANCELLED")
        if running:
            assert task.ended_at is not None
            self._bill_run(task, task.ended_at - task.created_at)
        return task
