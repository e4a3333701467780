"""How every ledger writes engine values down: instants and charge lists.

Instants are integer microseconds since the epoch (exact, sortable, and exact in Lua's
doubles); charge lists are JSON ``[[budget, amount, unit], ...]`` with the exact Decimal text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Charge, Reservation, ReservationState
from quotaguard.engine.reservations import charges_key

__all__ = [
    "charges_fingerprint",
    "charges_from",
    "charges_json",
    "epoch_us",
    "from_epoch_us",
    "reservation_from_row",
]

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def epoch_us(when: datetime) -> int:
    """Microseconds since the epoch: how ledgers store instants (exact, sortable)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    """The aware UTC instant ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def charges_json(charges: Sequence[Charge]) -> str:
    """A charge list as JSON text, amounts exact."""
    return json.dumps([[c.budget, str(c.amount), c.unit.value] for c in charges])


def charges_from(text: str | None) -> tuple[Charge, ...] | None:
    """The charges :func:`charges_json` wrote; ``None`` for none stored."""
    if text is None:
        return None
    return tuple(Charge(b, Decimal(a), Unit(u)) for b, a, u in json.loads(text))


def charges_fingerprint(charges: Sequence[Charge]) -> str:
    """One text for the same charges in any order, amounts in micro-units
    (:func:`~quotaguard.engine.reservations.charges_key`).

    What a store compares where it cannot call ``engine.reservations.same_charges`` (Lua).
    """
    return json.dumps(charges_key(charges), separators=(",", ":"))


class Row(Protocol):
    """A row read by column name: ``sqlite3.Row``, an asyncpg record, a decoded JSON object."""

    def __getitem__(self, column: str, /) -> Any: ...


def reservation_from_row(row: Row) -> Reservation:
    """A ``reservations`` row of the SQL ledgers (SQLite and PostgreSQL share its columns)."""
    return Reservation(
        id=row["id"],
        charges=charges_from(row["charges"]) or (),
        created_at=from_epoch_us(row["created_at"]),
        lease_expires_at=from_epoch_us(row["lease_expires_at"]),
        state=ReservationState(row["state"]),
        idempotency_key=row["idem"],
        actual=charges_from(row["actual"]),
        ended_at=_instant(row["ended_at"]),
        external_id=row["external_id"],
        sent_at=_instant(row["sent_at"]),
        in_doubt_since=_instant(row["in_doubt_since"]),
    )


def _instant(value: int | None) -> datetime | None:
    return None if value is None else from_epoch_us(value)
