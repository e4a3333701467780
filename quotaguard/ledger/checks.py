"""The ledger contract's input checks, each worded once; the backends' primitives get only
what passed them."""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from datetime import datetime, timedelta

from quotaguard.engine.model import Charge, Reservation
from quotaguard.engine.reservations import Misfit, misfit
from quotaguard.engine.rules import check_charge_types, not_a_charge
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput, ReservationNotFound

__all__ = [
    "DEFAULT_MAX_SKEW",
    "MAX_RENEW_MANY",
    "TimeSource",
    "check_actual",
    "check_given_actual",
    "check_idempotency_key",
    "check_lease",
    "check_max_skew",
    "check_now",
    "check_reservation_id",
    "check_reservation_ids",
    "check_reserve",
    "check_time_source",
    "new_reservation_id",
]

MAX_LEASE = timedelta(days=366)
#: How far a caller's clock may be from a ledger's own before the ledger refuses it.
DEFAULT_MAX_SKEW = timedelta(seconds=30)
#: At most this many ids in one ``renew_many`` call (one transaction, one script).
MAX_RENEW_MANY = 10_000
_ZERO = timedelta(0)
_MAX_MAX_SKEW = timedelta(days=1)


class TimeSource(enum.StrEnum):
    """Whose clock a ledger's lease expiry reads."""

    CALLER = "caller"  # the ``now`` each call passes
    SYSTEM = "system"  # the machine's clock
    SERVER = "server"  # the store's clock


def check_time_source(value: object, allowed: Sequence[TimeSource]) -> TimeSource:
    """One of ``allowed``, given as a :class:`TimeSource` or its text."""
    for source in allowed:
        if value == source.value:  # a TimeSource equals its text too
            return source
    raise InvalidInput(
        "time_source",
        f"must be one of {[s.value for s in allowed]} for this ledger, got {value!r}",
    )


def check_max_skew(value: object) -> timedelta:
    """A positive ``timedelta`` of at most a day."""
    if not isinstance(value, timedelta) or not _ZERO < value <= _MAX_MAX_SKEW:
        raise InvalidInput(
            "max_skew",
            f"must be a timedelta in (0, 1 day], e.g. timedelta(seconds=30); got {value!r}",
        )
    return value


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


def _items(value: object, field: str, what: str) -> tuple[object, ...]:
    """A list or tuple (or another sequence) read once; a lone item or a ``str`` is refused."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, (str, bytes, Charge)) or not isinstance(value, Sequence):
        raise InvalidInput(field, f"expected a list of {what}, got {type(value).__name__}")
    return tuple(value)


def check_reserve(
    charges: Sequence[Charge], now: object, lease: object, idempotency_key: object
) -> tuple[tuple[Charge, ...], str | None]:
    """The checks ``reserve`` starts with; the charges read once."""
    check_now(now)
    check_lease(lease)
    key = check_idempotency_key(idempotency_key)
    held = _items(charges, "charges", "Charge values")
    check_charge_types(held)
    return held, key  # type: ignore[return-value]  # check_charge_types: all Charges


def check_given_actual(actual: object) -> tuple[object, ...] | None:
    """``commit``'s ``actual``: ``None`` (what was held) or a list, read once."""
    return None if actual is None else _items(actual, "actual", "Charge values")


def check_reservation_ids(ids: object) -> list[str]:
    """``renew_many``'s ids: a list of at most :data:`MAX_RENEW_MANY`, once each, in order."""
    given = _items(ids, "reservation_ids", "reservation ids")
    if len(given) > MAX_RENEW_MANY:
        raise InvalidInput(
            "reservation_ids", f"at most {MAX_RENEW_MANY} per call, got {len(given)}; split them"
        )
    for i, rid in enumerate(given):
        if not isinstance(rid, str) or not rid:
            raise InvalidInput(
                f"reservation_ids[{i}]", "must be a non-empty str (a reservation id)"
            )
    return list(dict.fromkeys(given))  # type: ignore[arg-type]  # all str, checked above


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
