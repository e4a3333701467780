"""The RedisLedger's wire format: script arguments out, script replies in.

The script (``redis.lua``) answers flat arrays of bytes; these helpers turn them into engine
values, and engine values into the string arguments the script reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Charge, Reservation, ReservationState
from quotaguard.engine.rules import Usage
from quotaguard.engine.windows import (
    CalendarMonth,
    FixedWindow,
    RollingDays,
    window_from_dict,
    window_to_dict,
)
from quotaguard.ledger.base import epoch_us, from_epoch_us

__all__ = [
    "budget_from",
    "charges_from",
    "charges_json",
    "fingerprint",
    "reservation_from",
    "text",
    "usage_from",
    "window_args",
]


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Sequence[Any]) -> dict[str, str]:
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}


def charges_json(charges: Sequence[Charge]) -> str:
    return json.dumps([[c.budget, str(c.amount), c.unit.value] for c in charges])


def charges_from(raw: str | None) -> tuple[Charge, ...] | None:
    if raw is None:
        return None
    return tuple(Charge(b, Decimal(a), Unit(u)) for b, a, u in json.loads(raw))


def reservation_from(flat: Sequence[Any]) -> Reservation:
    f = _fields(flat)
    return Reservation(
        id=f["id"],
        charges=charges_from(f["charges"]) or (),
        created_at=from_epoch_us(int(f["created"])),
        lease_expires_at=from_epoch_us(int(f["lease"])),
        state=ReservationState(f["state"]),
        idempotency_key=f.get("idem") or None,
        actual=charges_from(f.get("actual")),
        ended_at=from_epoch_us(int(f["ended"])) if "ended" in f else None,
        external_id=f.get("ext") or None,
    )


def budget_from(flat: Sequence[Any]) -> Budget | None:
    f = _fields(flat)
    if "unit" not in f:
        return None
    return Budget(
        f["key"], Unit(f["unit"]), Decimal(f["limit"]), window_from_dict(json.loads(f["window"]))
    )


def usage_from(raw: Sequence[Any]) -> Usage:
    committed, reserved, counts, reported, since, outstanding, at = (int(x) for x in raw)
    if not counts:
        return Usage(committed, reserved, None, 0, outstanding)
    return Usage(committed, reserved, reported, since, outstanding, from_epoch_us(at))


def window_args(budget: Budget) -> list[str]:
    window = budget.window
    start = end = days = ""
    if isinstance(window, FixedWindow):
        start, end = str(epoch_us(window.start)), str(epoch_us(window.end))
    elif isinstance(window, RollingDays):
        days = str(window.days)
    kind = "calendar_month" if isinstance(window, CalendarMonth) else window.kind
    return [json.dumps(window_to_dict(window)), kind, start, end, days]


def fingerprint(charges: Sequence[Charge]) -> str:
    # Equal iff the charge multisets are equal (what MemoryLedger compares by sorted repr).
    return json.dumps(sorted([c.budget, str(c.amount), c.unit.value] for c in charges))
