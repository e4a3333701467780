"""The ledger contract's input checks, each worded once; the backends' primitives get only
what passed them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta

from quotaguard.engine.model import Charge, Reservation
from quotaguard.engine.reservations import Misfit, misfit
from quotaguard.engine.rules import check_charge_types, not_a_charge
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput, ReservationNotFound

__all__ = [
    "check_actual",
    "check_idempotency_key",
    "check_lease",
    "check_now",
    "check_reservation_id",
    "check_reserve",
    "new_reservation_id",
]

MAX_LEASE = timedelta(days=366)
_ZERO = timedelta(0)


def check_lease(lease: object) -> timedelta:
    """A positive ``timedelta`` of at most 366 days."""
    if type(lease) is timedelta and _ZERO < lease <= MAX_LEASE:
        return lease  # the common case, checked as below in one step
    if not isinstance(lease, timedelta):
        raise InvalidInput("lease", f"lease must be a timedelta, got {type(lease).__name__}")
    if lease <= _ZERO:
        raise InvalidInput("lease", f"lease must be positive, got {lease}")
    if lease > MAX_LEASE:
        raise InvalidInput("lease", f"lease must be at most {MAX_LEASE.days} days, got {lease}")
    return lease


def check_idempotency_key(key: object) -> str | None:
    """1-256 printable characters, or ``None``."""
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= 256 or not key.isprintable():
        raise InvalidInput("idempotency_key", "must be 1-256 printable characters, or None")
    return key


def check_actual(actual: Sequence[Charge] | None, reservation: Reservation) -> tuple[Charge, ...]:
    """Actual charges may only name budgets the reservation held, in the same units."""
    if actual is None:
        return reservation.charges
    found = misfit(actual, reservation.charges)
    if found is None:
        return tuple(actual)
    i, why = found
    charge = actual[i]
    if why is Misfit.TYPE:
        raise not_a_charge(f"actual[{i}]", charge)
    held = {c.budget: c.unit for c in reservation.charges}
    if why is Misfit.BUDGET:
        raise InvalidInput(
            f"actual[{i}].budget",
            f"reservation {reservation.id} holds no budget {charge.budget!r}; "
            f"it holds {sorted(held)}",
        )
    raise InvalidInput(
        f"actual[{i}].unit",
        f"expected {held[charge.budget].value} for {charge.budget!r}, got {charge.unit.value}",
    )


def check_reserve(
    charges: Sequence[Charge], now: object, lease: object, idempotency_key: object
) -> tuple[tuple[Charge, ...], str | None]:
    """The checks ``reserve`` starts with; the charges read once."""
    check_now(now)
    check_lease(lease)
    key = check_idempotency_key(idempotency_key)
    held = tuple(charges)
    check_charge_types(held)
    return held, key


def check_now(now: object, field: str = "now") -> datetime:
    """A timezone-aware instant (``field`` names it in the error)."""
    return check_aware(now, field)


def new_reservation_id() -> str:
    """A fresh reservation id: ``rsv_`` and 128 random bits."""
    # As uuid4 gives, at a third of its cost on the hot path.
    return f"rsv_{os.urandom(16).hex()}"


def check_reservation_id(reservation_id: object) -> str:
    """A non-empty ``str``; anything else names no reservation."""
    if not isinstance(reservation_id, str) or not reservation_id:
        raise ReservationNotFound(str(reservation_id))
    return reservation_id
