"""The ledger contract every backend keeps, and the input checks they share.

A ledger stores budgets and reservations. ``reserve`` is one atomic check-and-hold across
every budget a charge set touches; the decision comes out of that atomic step. A
reservation ends exactly once (commit or release; a second call returns the first
outcome). The one exception is a commit after the lease *expired*: the work ran and its
cost is real, so it is recorded rather than lost. ``lapsed()`` lists the reservations still
owed that way: expired while bound to a job or task, and not committed since.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from quotaguard._aio import AsyncClosing
from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Reservation
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput

__all__ = [
    "DEFAULT_LEASE",
    "Ledger",
    "LedgerBase",
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
_MAX_LEASE = timedelta(days=366)
_ZERO = timedelta(0)


@runtime_checkable
class Ledger(Protocol):
    """Reservation storage: :class:`MemoryLedger`, :class:`SQLiteLedger`, ``RedisLedger``."""

    async def put_budget(self, budget: Budget) -> None: ...
    async def remove_budget(self, key: str) -> None: ...
    async def get_budget(self, key: str) -> Budget: ...
    async def budgets(self) -> list[Budget]: ...
    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision: ...
    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation: ...
    async def release(self, reservation_id: str, *, now: datetime) -> Reservation: ...
    async def renew(
        self, reservation_id: str, *, lease: timedelta, now: datetime
    ) -> Reservation: ...
    async def expire(self, *, now: datetime) -> int: ...
    async def bind(self, reservation_id: str, external_id: str) -> Reservation: ...
    async def get(self, reservation_id: str) -> Reservation: ...
    async def find_external(self, external_id: str) -> Reservation | None: ...
    async def outstanding(self) -> list[Reservation]: ...
    async def lapsed(self) -> list[Reservation]: ...
    async def record_report(self, key: str, used: object, *, at: datetime) -> None: ...
    async def state(self, key: str, *, now: datetime) -> BudgetState: ...
    async def aclose(self) -> None: ...


class LedgerBase(AsyncClosing):
    """Async-context-manager plumbing shared by the backends."""

    async def aclose(self) -> None:  # pragma: no cover - overridden where there is I/O
        return None


def check_lease(lease: object) -> timedelta:
    if type(lease) is timedelta and _ZERO < lease <= _MAX_LEASE:
        return lease  # the common case, checked as below in one step
    if not isinstance(lease, timedelta):
        raise InvalidInput("lease", f"lease must be a timedelta, got {type(lease).__name__}")
    if lease <= _ZERO:
        raise InvalidInput("lease", f"lease must be positive, got {lease}")
    if lease > _MAX_LEASE:
        raise InvalidInput("lease", f"lease must be at most {_MAX_LEASE.days} days, got {lease}")
    return lease


def check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= 256 or not key.isprintable():
        raise InvalidInput("idempotency_key", "must be 1-256 printable characters, or None")
    return key


def check_actual(actual: Sequence[Charge] | None, reservation: Reservation) -> tuple[Charge, ...]:
    """Actual charges may only name budgets the reservation held, in the same units."""
    if actual is None:
        return reservation.charges
    held = {c.budget: c.unit for c in reservation.charges}
    out: list[Charge] = []
    for i, charge in enumerate(actual):
        if not isinstance(charge, Charge):
            raise InvalidInput(f"actual[{i}]", f"expected a Charge, got {type(charge).__name__}")
        if charge.budget not in held:
            raise InvalidInput(
                f"actual[{i}].budget",
                f"reservation {reservation.id} holds no budget {charge.budget!r}; "
                f"it holds {sorted(held)}",
            )
        if charge.unit is not held[charge.budget]:
            raise InvalidInput(
                f"actual[{i}].unit",
                f"expected {held[charge.budget].value} for {charge.budget!r}, "
                f"got {charge.unit.value}",
            )
        out.append(charge)
    return tuple(out)


def check_reserve(
    charges: Sequence[Charge], now: object, lease: object, idempotency_key: object
) -> tuple[tuple[Charge, ...], str | None]:
    """The checks every ledger's ``reserve`` starts with; the charges read once."""
    check_now(now)
    check_lease(lease)
    key = check_idempotency_key(idempotency_key)
    return tuple(charges), key


def check_now(now: object, field: str = "now") -> datetime:
    return check_aware(now, field)


def new_reservation_id() -> str:
    # 128 random bits, as uuid4 gives, at a third of its cost on the hot path.
    return f"rsv_{os.urandom(16).hex()}"


def epoch_us(when: datetime) -> int:
    """Microseconds since the epoch: how ledgers store instants (exact, sortable)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
