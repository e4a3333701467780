"""Reservation state transitions: the one statement every ledger follows. Pure, no I/O.

    HELD ──commit──▶ COMMITTED        its hold let go, the spend recorded
    HELD ──release──▶ RELEASED        its hold let go
    HELD ──lease lapses──▶ EXPIRED    its hold let go
    EXPIRED ──commit──▶ COMMITTED     the work ran: its cost is recorded, not lost
    HELD ──doubt──▶ HELD              its work may have been sent: marked in doubt

A reservation ends exactly once. Any other event leaves it as it is and the ledger answers
with it unchanged, so a second commit or release returns the first outcome. Renewing a held
reservation moves its lease; renewing an ended one changes nothing.

Work *may have been sent* when the reservation is bound to a job or task, or is in doubt (the
guard could not tell whether its send reached the provider). An idempotency key stays claimed
while a retry must replay the reservation: held, committed, or expired after its work may have
been sent, since a retry must not send that work again. Such an expired reservation is *owed*:
its cost is unknown until it is committed (``lapsed()`` lists it). Binding clears the doubt:
the work is found. The Redis ledger's Lua scripts enforce the same table on the server.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from quotaguard.engine.amounts import to_micro
from quotaguard.engine.model import Charge, ReservationState

__all__ = [
    "STAY",
    "Event",
    "Misfit",
    "Step",
    "charges_key",
    "keeps_key",
    "misfit",
    "owed",
    "same_charges",
    "step",
]

_HELD = ReservationState.HELD
_COMMITTED = ReservationState.COMMITTED
_RELEASED = ReservationState.RELEASED
_EXPIRED = ReservationState.EXPIRED


class Event(enum.StrEnum):
    """What can happen to a reservation after ``reserve``."""

    COMMIT = "commit"
    RELEASE = "release"
    EXPIRE = "expire"  # its lease lapsed
    RENEW = "renew"
    DOUBT = "doubt"  # the guard cannot tell whether the work was sent


@attrs.frozen
class Step:
    """What one event does to a reservation in one state."""

    #: The state it moves to; ``None``: nothing changes, the reservation answers as it is.
    to: ReservationState | None
    #: Its hold still counts against its budgets and must be let go.
    unhold: bool = False


#: The answer for every pair the table below does not name.
STAY = Step(None)

_STEPS: dict[tuple[ReservationState, Event], Step] = {
    (_HELD, Event.COMMIT): Step(_COMMITTED, unhold=True),
    (_EXPIRED, Event.COMMIT): Step(_COMMITTED),  # the hold went at expiry
    (_HELD, Event.RELEASE): Step(_RELEASED, unhold=True),
    (_HELD, Event.EXPIRE): Step(_EXPIRED, unhold=True),
    (_HELD, Event.RENEW): Step(_HELD),  # the lease moves, the hold stays
    (_HELD, Event.DOUBT): Step(_HELD),  # the hold stays, marked in doubt
}


def step(state: ReservationState, event: Event) -> Step:
    """What ``event`` does to a reservation in ``state``."""
    return _STEPS.get((state, event), STAY)


def keeps_key(state: ReservationState, sent: bool) -> bool:
    """Whether a reservation in ``state`` still claims its idempotency key (a retry replays it).

    ``sent``: its work may have been sent (bound, or in doubt).
    """
    if state is _RELEASED:
        return False
    if state is _EXPIRED:
        return sent  # sent work must not be sent again; unsent work may be
    return True


def owed(state: ReservationState, sent: bool) -> bool:
    """Expired after its work may have been sent (bound, or in doubt): its cost is still owed
    (what ``lapsed()`` lists)."""
    return state is _EXPIRED and sent


def charges_key(charges: Sequence[Charge]) -> list[tuple[str, str, int]]:
    """The charges as an idempotency key compares them: in any order, each amount in
    micro-units (``Decimal('1.0')`` and ``Decimal('1.00')`` are one charge)."""
    return sorted((c.budget, c.unit.value, to_micro(c.amount)) for c in charges)


def same_charges(a: Sequence[Charge], b: Sequence[Charge]) -> bool:
    """An idempotency key replays only for the same charges (:func:`charges_key`)."""
    return len(a) == len(b) and charges_key(a) == charges_key(b)


class Misfit(enum.StrEnum):
    """Why an actual charge cannot be committed to a reservation."""

    TYPE = "type"  # not a Charge
    BUDGET = "budget"  # names a budget the reservation did not hold
    UNIT = "unit"  # another unit than the one held


def misfit(actual: Sequence[object], held: Sequence[Charge]) -> tuple[int, Misfit] | None:
    """The first actual charge a commit may not record, and why; ``None`` when all fit.

    Actual charges may be less or more than what was held, but only on the budgets held and
    in their units: a commit cannot draw on a budget that was never checked.
    """
    units = {c.budget: c.unit for c in held}
    for i, charge in enumerate(actual):
        if not isinstance(charge, Charge):
            return i, Misfit.TYPE
        unit = units.get(charge.budget)
        if unit is None:
            return i, Misfit.BUDGET
        if charge.unit is not unit:
            return i, Misfit.UNIT
    return None
