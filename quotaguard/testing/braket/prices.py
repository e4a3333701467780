"""The emulator's own Braket prices: what its server charges for a task.

Written from AWS's published on-demand pricing (https://aws.amazon.com/braket/pricing/, USD)
and deliberately not taken from ``quotaguard.braket.pricing``: the guard's estimate and this
emulator's charge are two readings of the same page, so a test comparing them catches a wrong
price in either. QPUs: one fee per task plus a price per shot, reserved as queued spend when
the task is created. Simulators: a price per minute of run time, billed in whole milliseconds
with a minimum duration per task, and never drawn from a spending limit. Prices are written
with the digits the emulator's answers show (``"queuedSpend": "1.10"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal

import attrs

__all__ = ["PRICES", "QPU_TASK_FEE", "SIMULATOR_MIN_BILLED", "DevicePrice"]

#: The per-task fee, the same on every QPU.
QPU_TASK_FEE = Decimal("0.30")
#: The shortest run a simulator task is billed for.
SIMULATOR_MIN_BILLED = timedelta(seconds=3)

_MS = timedelta(milliseconds=1)


def _usd(value: Decimal | str | int) -> Decimal:
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"a price must be a finite amount >= 0, got {value!r}")
    return amount


@attrs.frozen
class DevicePrice:
    """One device's on-demand price in USD."""

    per_task: Decimal = attrs.field(default=Decimal(0), converter=_usd)
    per_shot: Decimal = attrs.field(default=Decimal(0), converter=_usd)
    per_minute: Decimal = attrs.field(default=Decimal(0), converter=_usd)
    min_billed: timedelta = timedelta(0)

    def charge(self, shots: int, duration: timedelta | None = None) -> Decimal:
        """What one task of ``shots`` costs. A per-minute device bills ``duration`` (the run
        time; ``None`` bills the minimum) rounded up to whole milliseconds, and never less
        than ``min_billed``."""
        cost = self.per_task + self.per_shot * shots
        if self.per_minute:
            run = max(duration or timedelta(0), self.min_billed)
            whole_ms, part = divmod(run, _MS)
            cost += self.per_minute * (whole_ms + bool(part)) / 60_000
        return cost


def _qpu(per_shot: str) -> DevicePrice:
    return DevicePrice(per_task=QPU_TASK_FEE, per_shot=Decimal(per_shot))


def _simulator(per_minute: str) -> DevicePrice:
    return DevicePrice(per_minute=Decimal(per_minute), min_billed=SIMULATOR_MIN_BILLED)


#: Every device the emulator serves from the start, by ARN, in the order it lists them.
PRICES: Mapping[str, DevicePrice] = {
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1": _qpu("0.08"),
    "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-Enterprise-1": _qpu("0.08"),
    "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1": _qpu("0.03"),
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet": _qpu("0.00145"),
    "arn:aws:braket:eu-north-1::device/qpu/iqm/Emerald": _qpu("0.0016"),
    "arn:aws:braket:eu-north-1::device/qpu/aqt/Ibex-Q1": _qpu("0.0235"),
    "arn:aws:braket:us-east-1::device/qpu/quera/Aquila": _qpu("0.01"),
    "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3": _qpu("0.0009"),
    "arn:aws:braket:::device/quantum-simulator/amazon/sv1": _simulator("0.075"),
    "arn:aws:braket:::device/quantum-simulator/amazon/dm1": _simulator("0.075"),
    "arn:aws:braket:::device/quantum-simulator/amazon/tn1": _simulator("0.275"),
}
