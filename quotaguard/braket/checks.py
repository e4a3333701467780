"""The Braket input checks shared by the client, the rules, the prices and the work type.

Every check raises :class:`InvalidInput` naming the field *before* anything is sent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import attrs

from quotaguard.errors import InvalidInput

__all__ = [
    "MAX_SHOTS",
    "DeviceRef",
    "check_amount",
    "check_region",
    "check_reservation_arn",
    "check_shots",
    "check_spending_limit_arn",
    "check_task_arn",
    "parse_device_arn",
]

#: ``shots`` is a ``long`` in the Braket model.
MAX_SHOTS = 2**63 - 1

# Every pattern is used with fullmatch: "$" would also match before a trailing newline, and
# an ARN's id part is printable ASCII (no spaces, no control characters).
_DEVICE_ARN = re.compile(
    r"arn:aws[a-z\-]*:braket:(?P<region>[a-z0-9\-]*)::device/"
    r"(?P<kind>qpu|quantum-simulator)/(?P<provider>[A-Za-z0-9_\-]+)/(?P<name>[A-Za-z0-9_.\-]+)"
)
# The model's SpendingLimitArn pattern, anchored at both ends.
_LIMIT_ARN = re.compile(r"arn:aws[a-z\-]*:braket:[a-z0-9\-]+:[0-9]{12}:spending-limit/[\x21-\x7e]+")
_TASK_ARN = re.compile(r"arn:aws[a-z\-]*:braket:[a-z0-9\-]+:[0-9]{12}:quantum-task/[\x21-\x7e]+")
# A Braket Direct reservation (the model's BraketResourceArn, narrowed to reservations).
_RESERVATION_ARN = re.compile(
    r"arn:aws[a-z\-]*:braket:[a-z0-9\-]*:[0-9]{12}:reservation/[\x21-\x7e]+"
)
_AMOUNT = re.compile(r"\d+(\.\d{1,2})?")
# botocore's rule for a region name (a valid host label).
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?")


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
    match = _DEVICE_ARN.fullmatch(value)
    if match is None or len(value) > 256:
        raise InvalidInput(
            field,
            f"{value!r} is not a Braket device ARN; expected 'arn:aws:braket:<region>::device/"
            "qpu/<provider>/<name>' or '...::device/quantum-simulator/<provider>/<name>'",
        )
    return DeviceRef(value, match["region"], match["kind"], match["provider"], match["name"])


def check_region(value: object, field: str = "region") -> str:
    """An AWS region name such as ``us-east-1`` (a host label: it becomes part of the URL)."""
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise InvalidInput(
            field, f"{value!r} is not an AWS region name; expected one such as 'us-east-1'"
        )
    return value


def _account_arn(value: object, field: str, pattern: re.Pattern[str], kind: str, what: str) -> str:
    """An ARN of an account's resource (``...:<12-digit account>:<kind>/<id>``)."""
    if not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > 256:
        raise InvalidInput(
            field,
            f"{value!r} is not {what} ARN; expected "
            f"'arn:aws:braket:<region>:<12-digit account>:{kind}/<id>'",
        )
    return value


def check_spending_limit_arn(value: object, field: str = "spending_limit_arn") -> str:
    return _account_arn(value, field, _LIMIT_ARN, "spending-limit", "a spending-limit")


def check_task_arn(value: object, field: str = "quantum_task_arn") -> str:
    return _account_arn(value, field, _TASK_ARN, "quantum-task", "a quantum-task")


def check_reservation_arn(value: object, field: str = "reservation_arn") -> str:
    return _account_arn(
        value, field, _RESERVATION_ARN, "reservation", "a Braket Direct reservation"
    )


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
    if not _AMOUNT.fullmatch(text):
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
