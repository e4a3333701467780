"""The ledger contract: what every backend keeps, the input checks, and the words of its errors.

A ledger stores budgets and reservations. ``reserve`` is one atomic check-and-hold across
every budget a charge set touches; the decision comes out of that atomic step. A
reservation ends exactly once (commit or release; a second call returns the first
outcome). The one exception is a commit after the lease *expired*: the work ran and its
cost is real, so it is recorded rather than lost. ``lapsed()`` lists the reservations still
owed that way: expired while bound to a job or task, and not committed since. The state
table itself is :mod:`quotaguard.engine.reservations`.

A backend subclasses :class:`LedgerBase` and writes its primitives (``_reserve``,
``_commit``, ...: one atomic step of the store each). The public methods here check the
input, call one primitive, and turn its answer into what the caller sees: a primitive
returns its value when it succeeds, or a tag of :mod:`quotaguard.ledger.outcomes` saying
why not, and every error is worded here, once, for memory, SQLite, Redis and any backend to
come. Primitives receive checked input only: aware instants, a valid lease, reservation ids
that are non-empty strings, charges that are :class:`Charge` values.

Time: lease expiry is judged by the ledger's ``time_source``. Today every backend's is
``caller``: the ``now`` each call passes. Primitives take the lease as a duration, not an
end time, so a backend that keeps its own time (``system``: the machine's clock; ``server``:
the store's, such as Redis ``TIME``) can date expiry by it inside the primitive, while the
caller's ``now`` keeps dating windows, reports and commits.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from quotaguard._aio import AsyncClosing
from quotaguard.engine.amounts import as_amount, to_micro
from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Reservation, check_key
from quotaguard.engine.rules import state_of
from quotaguard.errors import BudgetUnavailable, InvalidInput, ReservationNotFound, UnknownBudget
from quotaguard.ledger.checks import (
    check_actual,
    check_idempotency_key,
    check_lease,
    check_now,
    check_reservation_id,
    check_reserve,
    new_reservation_id,
)
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.outcomes import (
    OUTSTANDING,
    ActualMismatch,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)

# The checks and the encoding of instants live in .checks and .encoding; guard, CLI and
# tests import them from here, the contract's one address.
__all__ = [
    "DEFAULT_LEASE",
    "Ledger",
    "LedgerBase",
    "TimeSource",
    "check_actual",
    "check_idempotency_key",
    "check_lease",
    "check_now",
    "check_reserve",
    "epoch_us",
    "from_epoch_us",
    "new_reservation_id",
]

DEFAULT_LEASE = timedelta(minutes=15)


class TimeSource(enum.StrEnum):
    """Whose clock a ledger's lease expiry reads."""

    CALLER = "caller"  # the ``now`` each call passes
    SYSTEM = "system"  # the machine's clock
    SERVER = "server"  # the store's clock


@runtime_checkable
class Ledger(Protocol):
    """Reservation storage: :class:`MemoryLedger`, :class:`SQLiteLedger`, ``RedisLedger``."""

    async def put_budget(self, budget: Budget) -> None:
        """Add a budget, or replace its limit and window (its unit only while unused)."""

    async def remove_budget(self, key: str) -> None:
        """Remove a budget that holds nothing; its commits still count if the key returns."""

    async def get_budget(self, key: str) -> Budget:
        """The budget stored under ``key``."""

    async def budgets(self) -> list[Budget]:
        """Every budget stored."""

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Hold every charge, or none, in one atomic check; a known key replays its hold."""

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        """End a reservation by recording what was spent (default: what it held)."""

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        """End a held reservation without spending; an ended one is returned as it is."""

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        """Move a held reservation's lease to ``now + lease``; an ended one is returned as it is."""

    async def expire(self, *, now: datetime) -> int:
        """End every held reservation whose lease ran out by ``now``; how many it ended."""

    async def bind(self, reservation_id: str, external_id: str) -> Reservation:
        """Record the job id or task ARN that a reservation's work got."""

    async def get(self, reservation_id: str) -> Reservation:
        """The reservation with this id."""

    async def find_external(self, external_id: str) -> Reservation | None:
        """The reservation bound to this job id or task ARN, if any."""

    async def outstanding(self) -> list[Reservation]:
        """Every reservation still held."""

    async def lapsed(self) -> list[Reservation]:
        """Reservations that expired while bound to sent work and are not committed since."""

    async def record_report(self, key: str, used: object, *, at: datetime) -> None:
        """Store what the provider reported as used at ``at``; an older report never wins."""

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        """Where a budget stands at ``now``: committed, held, reported and left."""

    async def aclose(self) -> None:
        """Release the ledger's connections and threads; safe to call twice."""


class LedgerBase(AsyncClosing):
    """The public methods of every backend: checks and wording here, storage in primitives.

    A primitive raises only what the engine words (``check_charges``, for charges against
    the budgets it read) or :class:`BudgetUnavailable`, for a store that failed.
    """

    #: Whose clock lease expiry reads (see the module's note on time).
    time_source: TimeSource = TimeSource.CALLER

    # -- budgets ----------------------------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        """Add a budget, or replace its limit and window (its unit only while unused)."""
        if not isinstance(budget, Budget):
            raise InvalidInput("budget", f"expected a Budget, got {type(budget).__name__}")
        refused = await self._put_budget(budget)
        if refused is not None:
            raise InvalidInput(
                "budget.unit",
                f"budget {budget.key!r} already counts {refused.unit.value}; "
                "use a new key for another unit",
            )

    async def remove_budget(self, key: str) -> None:
        """Remove a budget that holds nothing; its commits still count if the key returns."""
        check_key(key)
        refused = await self._remove_budget(key)
        if refused is OUTSTANDING:
            raise InvalidInput("key", f"budget {key!r} still has outstanding reservations")
        if refused is not None:
            raise UnknownBudget("key", key)

    async def get_budget(self, key: str) -> Budget:
        """The budget stored under ``key``."""
        check_key(key)
        found = await self._get_budget(key)
        if isinstance(found, Refusal):
            raise UnknownBudget("key", key)
        return found

    async def budgets(self) -> list[Budget]:
        """Every budget stored."""
        return await self._budgets()

    # -- reservations -----------------------------------------------------------------------

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Hold every charge, or none, in one atomic check; a known key replays its hold."""
        held, key = check_reserve(charges, now, lease, idempotency_key)
        outcome = await self._reserve(held, now, lease, key)
        if type(outcome) is Reservation:  # the common case first
            return Decision(True, (), outcome, held)
        if isinstance(outcome, Rejected):
            return Decision.reject(outcome.violations, held)
        if isinstance(outcome, Replayed):
            existing = outcome.reservation
            return Decision(
                admitted=True, reservation=existing, charges=existing.charges, replayed=True
            )
        assert isinstance(outcome, KeyConflict)
        raise InvalidInput(
            "idempotency_key",
            f"key {key!r} was used for different charges (reservation {outcome.reservation_id})",
        )

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        """End a reservation by recording what was spent (default: what it held)."""
        check_now(now)
        rid = check_reservation_id(reservation_id)
        given = None if actual is None else tuple(actual)
        if given is not None and not all(isinstance(c, Charge) for c in given):
            check_actual(given, await self.get(rid))  # raises, naming the first bad item
        outcome = await self._commit(rid, given, now)
        if isinstance(outcome, ActualMismatch):
            check_actual(given, outcome.reservation)  # raises, naming the first bad item
            raise BudgetUnavailable(
                f"{type(self).__name__} refused actual charges the engine accepts"
            )
        return _found(outcome, rid)

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        """End a held reservation without spending; an ended one is returned as it is."""
        check_now(now)
        rid = check_reservation_id(reservation_id)
        return _found(await self._release(rid, now), rid)

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        """Move a held reservation's lease to ``now + lease``; an ended one is returned as it is."""
        check_now(now)
        check_lease(lease)
        rid = check_reservation_id(reservation_id)
        return _found(await self._renew(rid, lease, now), rid)

    async def expire(self, *, now: datetime) -> int:
        """End every held reservation whose lease ran out by ``now``; how many it ended."""
        return await self._expire(check_now(now))

    async def bind(self, reservation_id: str, external_id: str) -> Reservation:
        """Record the job id or task ARN that a reservation's work got."""
        if not isinstance(external_id, str) or not external_id:
            raise InvalidInput("external_id", "must be a non-empty str (a job id or task ARN)")
        rid = check_reservation_id(reservation_id)
        return _found(await self._bind(rid, external_id), rid)

    async def get(self, reservation_id: str) -> Reservation:
        """The reservation with this id."""
        rid = check_reservation_id(reservation_id)
        return _found(await self._get(rid), rid)

    async def find_external(self, external_id: str) -> Reservation | None:
        """The reservation bound to this job id or task ARN, if any."""
        if not isinstance(external_id, str) or not external_id:
            return None  # nothing is ever bound to one
        return await self._find_external(external_id)

    async def outstanding(self) -> list[Reservation]:
        """Every reservation still held."""
        return await self._outstanding()

    async def lapsed(self) -> list[Reservation]:
        """Reservations that expired while bound to sent work and are not committed since."""
        return await self._lapsed()

    # -- provider reports and state ---------------------------------------------------------

    async def record_report(self, key: str, used: object, *, at: datetime) -> None:
        """Store what the provider reported as used at ``at``; an older report never wins."""
        check_now(at, "at")
        micro = to_micro(as_amount(used, "used"))
        check_key(key)
        if await self._record_report(key, micro, at) is not None:
            raise UnknownBudget("key", key)

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        """Where a budget stands at ``now``: committed, held, reported and left."""
        check_now(now)
        check_key(key)
        found = await self._state(key, now)
        if isinstance(found, Refusal):
            raise UnknownBudget("key", key)
        return state_of(found.budget, found.usage, now)

    async def aclose(self) -> None:  # pragma: no cover - overridden where there is I/O
        """Release the ledger's connections and threads; safe to call twice."""
        return None

    # -- the primitives: one atomic step of the store each ----------------------------------

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        raise NotImplementedError

    async def _remove_budget(self, key: str) -> Refusal | None:
        """``NO_BUDGET`` or ``OUTSTANDING`` when it was not removed."""
        raise NotImplementedError

    async def _get_budget(self, key: str) -> Budget | Refusal:
        raise NotImplementedError

    async def _budgets(self) -> list[Budget]:
        raise NotImplementedError

    async def _reserve(
        self, charges: tuple[Charge, ...], now: datetime, lease: timedelta, key: str | None
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        """Expire due leases (a lapsed one frees its key), replay the key, or check and hold.

        ``charges`` passed :func:`check_charge_types`; checking them against the budgets
        (:func:`~quotaguard.engine.rules.check_charges`) is part of the atomic step.
        """
        raise NotImplementedError

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        """Record ``actual`` (``None``: the charges held), unless the reservation has ended."""
        raise NotImplementedError

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        raise NotImplementedError

    async def _renew(self, rid: str, lease: timedelta, now: datetime) -> Reservation | Refusal:
        """Expire due leases first: a lapsed lease is not renewed."""
        raise NotImplementedError

    async def _expire(self, now: datetime) -> int:
        raise NotImplementedError

    async def _bind(self, rid: str, external_id: str) -> Reservation | Refusal:
        """Rebinding replaces the old external id; binding an expired one makes it owed."""
        raise NotImplementedError

    async def _get(self, rid: str) -> Reservation | Refusal:
        raise NotImplementedError

    async def _find_external(self, external_id: str) -> Reservation | None:
        raise NotImplementedError

    async def _outstanding(self) -> list[Reservation]:
        raise NotImplementedError

    async def _lapsed(self) -> list[Reservation]:
        raise NotImplementedError

    async def _record_report(self, key: str, micro: int, at: datetime) -> Refusal | None:
        """Keep the report unless a newer one is stored; ``NO_BUDGET`` for an unknown key."""
        raise NotImplementedError

    async def _state(self, key: str, now: datetime) -> Counters | Refusal:
        """Expire due leases, then read the budget's counters in its window at ``now``."""
        raise NotImplementedError


def _found(outcome: Reservation | Refusal, rid: str) -> Reservation:
    if isinstance(outcome, Refusal):
        raise ReservationNotFound(rid)
    return outcome
