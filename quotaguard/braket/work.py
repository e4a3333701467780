"""The Braket work type and the input checks shared by the client, the rules and the emulator.

Every check raises :class:`InvalidInput` naming the field *before* anything is sent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import attrs

from quotaguard.errors import InvalidInput

if TYPE_CHECKING:
    from quotaguard.braket.pricing import Price

__all__ = [
    "DEFAULT_SHOTS_QPU",
    "DEFAULT_SHOTS_SIMULATOR",
    "MAX_SHOTS",
    "BraketTask",
    "DeviceRef",
    "check_amount",
    "check_shots",
    "check_spending_limit_arn",
    "check_task_arn",
    "parse_device_arn",
]

#: As the Braket SDK applies them when ``shots`` is not given.
DEFAULT_SHOTS_QPU = 1000
DEFAULT_SHOTS_SIMULATOR = 0
#: ``shots`` is a ``long`` in the Braket model.
MAX_SHOTS = 2**63 - 1

_DEVICE_ARN = re.compile(
    r"^arn:aws[a-z\-]*:braket:(?P<region>[a-z0-9\-]*)::device/"
    r"(?P<kind>qpu|quantum-simulator)/(?P<provider>[A-Za-z0-9_\-]+)/(?P<name>[A-Za-z0-9_.\-]+)$"
)
# The model's SpendingLimitArn pattern, anchored.
_LIMIT_ARN = re.compile(r"^arn:aws[a-z\-]*:braket:[a-z0-9\-]+:[0-9]{12}:spending-limit/[^\s]+$")
_TASK_ARN = re.compile(r"^arn:aws[a-z\-]*:braket:[a-z0-9\-]+:[0-9]{12}:quantum-task/[^\s]+$")
_AMOUNT = re.compile(r"^\d+(\.\d{1,2})?$")


@attrs.frozen
class DeviceRef:
    """A parsed device ARN: ``arn:aws:braket:<region>::device/<qpu|quantum-simulator>/<p>/<n>``."""

    arn: str
    region: str
    kind: str
    provider: str
    name: str

    @property
    def is_qpu(self) -> bool:
        return self.kind == "qpu"


def parse_device_arn(value: object, field: str = "device_arn") -> DeviceRef:
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            field,
            "a Braket device ARN is required, e.g. 'arn:aws:braket:us-east-1::device/qpu/ionq/"
            "Forte-1'",
        )
    match = _DEVICE_ARN.match(value)
    if match is None or len(value) > 256:
        raise InvalidInput(
            field,
            f"{value!r} is not a Braket device ARN; expected 'arn:aws:braket:<region>::device/"
            "qpu/<provider>/<name>' or '...::device/quantum-simulator/<provider>/<name>'",
        )
    return DeviceRef(value, match["region"], match["kind"], match["provider"], match["name"])


def check_spending_limit_arn(value: object, field: str = "spending_limit_arn") -> str:
    if not isinstance(value, str) or not _LIMIT_ARN.match(value) or len(value) > 256:
        raise InvalidInput(
            field,
            f"{value!r} is not a spending-limit ARN; expected "
            "'arn:aws:braket:<region>:<12-digit account>:spending-limit/<id>'",
        )
    return value


def check_task_arn(value: object, field: str = "quantum_task_arn") -> str:
    if not isinstance(value, str) or not _TASK_ARN.match(value) or len(value) > 256:
        raise InvalidInput(
            field,
            f"{value!r} is not a quantum-task ARN; expected "
            "'arn:aws:braket:<region>:<12-digit account>:quantum-task/<id>'",
        )
    return value


def check_amount(value: object, field: str = "amount") -> Decimal:
    """A USD amount as Braket accepts it: ``\\d+(\\.\\d{1,2})?`` (whole cents, not negative)."""
    if isinstance(value, Decimal):
        text = format(value, "f") if value.is_finite() else str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        hint = f"; pass Decimal({str(value)!r})" if isinstance(value, float) else ""
        raise InvalidInput(
            field, f"amount must be a Decimal or a string, got {type(value).__name__}{hint}"
        )
    if not _AMOUNT.match(text):
        raise InvalidInput(
            field,
            f"amount {text!r} must be a non-negative number of dollars with at most two "
            "decimal places, e.g. '100' or '99.50'",
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern guards this
        raise InvalidInput(field, f"amount {text!r} is not a number") from exc


def check_shots(
    value: object,
    *,
    qpu: bool,
    shots_range: tuple[int, int] | None = None,
    field: str = "shots",
) -> int:
    """Shots: an int, ≥ 1 on a QPU (0 allowed on simulators), < 2⁶³, within the device's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"shots must be an int, got {type(value).__name__}")
    low = 1 if qpu else 0
    if value < low:
        where = "a QPU" if qpu else "a simulator"
        raise InvalidInput(field, f"shots must be at least {low} on {where}, got {value}")
    if value > MAX_SHOTS:
        raise InvalidInput(field, f"shots must be below 2**63, got {value}")
    if shots_range is not None and not (shots_range[0] <= value <= shots_range[1]):
        raise InvalidInput(
            field,
            f"shots {value} is outside the device's range [{shots_range[0]}, {shots_range[1]}]",
        )
    return value


def _device(value: object) -> str:
    return parse_device_arn(value).arn


def _price(instance: object, attribute: object, value: Price | None) -> None:
    from quotaguard.braket.pricing import Price

    if value is not None and not isinstance(value, Price):
        raise InvalidInput(
            "price_override", f"expected a pricing.Price, got {type(value).__name__}"
        )


def _duration(value: object) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise InvalidInput("duration", "duration must be a non-negative timedelta")
    return value


@attrs.frozen
class BraketTask:
    """One Braket quantum task as the guard sees it, validated on construction.

    ``shots=None`` means the SDK's default (1000 on a QPU, 0 on a simulator). ``duration`` is
    the expected run time, used only to price simulators (billed per minute, 3 s minimum).
    ``price_override`` (a :class:`quotaguard.braket.pricing.Price`) prices a device the table
    does not know.
    """

    device_arn: str = attrs.field(converter=_device)
    shots: int | None = None
    price_override: Price | None = attrs.field(default=None, validator=_price)
    duration: timedelta | None = attrs.field(default=None, converter=_duration)

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
