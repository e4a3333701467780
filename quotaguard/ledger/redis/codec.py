"""The RedisLedger's wire format: script arguments out, script replies in.

A script takes its arguments as one JSON array (``lua/base.lua``'s ``args()`` checks it
and refuses anything else) and answers a flat array of bytes; these helpers turn engine
values into those arguments and the replies back into engine values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from quotaguard.engine.alerts import parse_levels
from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Reservation, ReservationState
from quotaguard.engine.rules import Usage
from quotaguard.engine.windows import (
    CalendarMonth,
    FixedWindow,
    RollingDays,
    window_from_dict,
    window_to_dict,
)
from quotaguard.ledger.encoding import charges_from, epoch_us, from_epoch_us

__all__ = [
    "budget_from",
    "encode_args",
    "month_arg",
    "reservation_from",
    "text",
    "usage_from",
    "window_args",
]


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps with options builds one a call


def encode_args(args: Sequence[object]) -> bytes:
    """A script's arguments: one compact JSON array (ASCII, so any client encoding)."""
    return _COMPACT.encode(args).encode()


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(flat: Sequence[Any]) -> dict[str, str]:
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat), 2)}


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
        ended_at=_instant(f.get("ended")),
        external_id=f.get("ext") or None,
        sent_at=_instant(f.get("sent")),
        in_doubt_since=_instant(f.get("doubt")),
    )


def _instant(value: str | None) -> datetime | None:
    return from_epoch_us(int(value)) if value else None


def budget_from(flat: Sequence[Any]) -> Budget | None:
    f = _fields(flat)
    if "unit" not in f:
        return None
    return Budget(
        f["key"],
        Unit(f["unit"]),
        Decimal(f["limit"]),
        window_from_dict(json.loads(f["window"])),
        parse_levels(f.get("levels")),
    )


def usage_from(raw: Sequence[Any]) -> Usage:
    committed, reserved, counts, reported, since, outstanding, at, inside, covers = (
        int(x) for x in raw
    )
    if not counts:
        return Usage(committed, reserved, None, 0, outstanding)
    return Usage(
        committed,
        reserved,
        reported,
        since,
        outstanding,
        from_epoch_us(at),
        inside=inside,
        covers_sent=bool(covers),
    )


def window_args(budget: Budget) -> list[object]:
    """``window_json, kind, start, end, days`` (``None`` where the window has none)."""
    window = budget.window
    start = end = days = None
    if isinstance(window, FixedWindow):
        start, end = epoch_us(window.start), epoch_us(window.end)
    elif isinstance(window, RollingDays):
        days = window.days
    kind = "calendar_month" if isinstance(window, CalendarMonth) else window.kind
    return [json.dumps(window_to_dict(window)), kind, start, end, days]


def month_arg(now: datetime) -> tuple[int, int, list[int]]:
    """The UTC calendar month around ``now`` as the scripts read it (Lua has no calendar).

    Its bounds in epoch microseconds and ``[index, start, end]``, where the index
    (``year * 12 + month - 1``) keys a budget's monthly sums.
    """
    first, after = _CALENDAR_MONTH.bounds(now)
    assert first is not None  # a calendar month is closed on both sides
    assert after is not None
    start, end = epoch_us(first), epoch_us(after)
    return start, end, [first.year * 12 + first.month - 1, start, end]


_CALENDAR_MONTH = CalendarMonth()
