"""What a backend's primitives answer: the value when they succeed, else one of these tags.

The base (:mod:`quotaguard.ledger.base`) turns each tag into the error or the value the
caller sees, worded once for every backend. Tags name what the store found, never how it
stores it, so a new backend answers with the same few.
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Alert, Budget, Reservation, Violation
from quotaguard.engine.rules import Usage

__all__ = [
    "NO_BUDGET",
    "NO_RESERVATION",
    "OUTSTANDING",
    "ActualMismatch",
    "Ahead",
    "Alerted",
    "Counters",
    "KeyConflict",
    "Refusal",
    "Rejected",
    "Replayed",
    "UnitInUse",
]


class Refusal(enum.Enum):
    """The store has no such thing, or may not do this to it."""

    NO_RESERVATION = "no such reservation"
    NO_BUDGET = "no such budget"
    OUTSTANDING = "the budget still has outstanding reservations"


NO_RESERVATION = Refusal.NO_RESERVATION
NO_BUDGET = Refusal.NO_BUDGET
OUTSTANDING = Refusal.OUTSTANDING


@attrs.frozen
class Replayed:
    """``reserve``: the idempotency key's reservation, for the same charges; nothing new held."""

    reservation: Reservation


@attrs.frozen
class Alerted:
    """``reserve``: held, and the hold crossed alert levels (the mark moved in the same step).

    A plain :class:`Reservation` is the answer when nothing was crossed (the common case).
    """

    reservation: Reservation
    alerts: tuple[Alert, ...]


@attrs.frozen
class KeyConflict:
    """``reserve``: the idempotency key belongs to a reservation of other charges."""

    reservation_id: str


@attrs.frozen
class Rejected:
    """``reserve``: the charges do not fit; one violation per broken rule, nothing held."""

    violations: tuple[Violation, ...]


@attrs.frozen
class ActualMismatch:
    """``commit``: an actual charge names a budget or unit the reservation did not hold."""

    reservation: Reservation


@attrs.frozen
class Ahead:
    """``record_report``: the report is dated after the store's own clock (plus the skew)."""

    ledger_time: datetime


@attrs.frozen
class UnitInUse:
    """``put_budget``: the key counts ``unit`` and has spend or holds in it."""

    unit: Unit


@attrs.frozen
class Counters:
    """``state``: a budget and its counters, read in one atomic step."""

    budget: Budget
    usage: Usage
