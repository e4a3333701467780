"""The Braket work type, ``BraketTask`` (its input checks: :mod:`quotaguard.braket.checks`)."""

from __future__ import annotations

from datetime import timedelta

import attrs

from quotaguard.braket.checks import (
    DeviceRef,
    check_reservation_arn,
    check_shots,
    parse_device_arn,
)
from quotaguard.braket.pricing import Price
from quotaguard.errors import InvalidInput

__all__ = ["DEFAULT_SHOTS_QPU", "DEFAULT_SHOTS_SIMULATOR", "BraketTask"]

#: As the Braket SDK applies them when ``shots`` is not given.
DEFAULT_SHOTS_QPU = 1000
DEFAULT_SHOTS_SIMULATOR = 0


def _device(value: object) -> str:
    return parse_device_arn(value).arn


def _price(instance: object, attribute: object, value: Price | None) -> None:
    if value is not None and not isinstance(value, Price):
        raise InvalidInput(
            "price_override", f"expected a pricing.Price, got {type(value).__name__}"
        )


def _max_duration(value: object) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidInput(
            "max_duration",
            "max_duration must be a non-negative timedelta, e.g. timedelta(minutes=10)",
        )
    return value


def _reservation(value: object) -> str | None:
    return None if value is None else check_reservation_arn(value)


@attrs.frozen
class BraketTask:
    """One Braket quantum task as the guard sees it, validated on construction.

    ``shots=None`` means the SDK's default (1000 on a QPU, 0 on a simulator). ``max_duration``
    is the longest a simulator task may run: simulators bill per minute of run time (3 s
    minimum) and Braket sets them no limit, so a simulator task that draws on a budget must
    declare one; the guard holds it, and its watcher cancels the task once it runs past it.
    ``reservation_arn`` is the Braket Direct reservation the task runs under (its
    ``RESERVATION_TIME_WINDOW_ARN`` association): such a task is charged nothing, the
    reservation is paid for on its own. ``price_override`` (a
    :class:`quotaguard.braket.pricing.Price`) prices a device the table does not know.
    """

    device_arn: str = attrs.field(converter=_device)
    shots: int | None = None
    price_override: Price | None = attrs.field(default=None, validator=_price)
    max_duration: timedelta | None = attrs.field(default=None, converter=_max_duration)
    reservation_arn: str | None = attrs.field(default=None, converter=_reservation)

    def __attrs_post_init__(self) -> None:
        check_shots(self.effective_shots, qpu=self.device.is_qpu)

    @property
    def device(self) -> DeviceRef:
        return parse_device_arn(self.device_arn)

    @property
    def is_qpu(self) -> bool:
        return self.device.is_qpu

    @property
    def effective_shots(self) -> int:
        if self.shots is not None:
            return self.shots
        return DEFAULT_SHOTS_QPU if self.device.is_qpu else DEFAULT_SHOTS_SIMULATOR
