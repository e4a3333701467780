"""An in-process ledger. Atomic because no operation awaits between its check and its hold."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from quotaguard.engine.amounts import as_amount, to_micro
from quotaguard.engine.model import (
    Budget,
    BudgetState,
    Charge,
    Decision,
    Reservation,
    ReservationState,
    check_key,
)
from quotaguard.engine.rules import Usage, check_charges, evaluate, report_counts, state_of
from quotaguard.errors import InvalidInput, ReservationNotFound, UnknownBudget
from quotaguard.ledger.base import (
    DEFAULT_LEASE,
    LedgerBase,
    check_actual,
    check_lease,
    check_now,
    check_reserve,
    epoch_us,
    new_reservation_id,
)

__all__ = ["MemoryLedger"]


@attrs.define
class _Account:
    """Counters for one budget. Commits are kept sorted by time with running totals, so a
    window sum is two bisects, not a scan."""

    budget: Budget
    reserved: int = 0
    outstanding: int = 0
    commit_times: list[int] = attrs.Factory(list)
    commit_totals: list[int] = attrs.Factory(list)  # running sum after each commit
    reported: int | None = None
    reported_at: datetime | None = None
    _limit_of: Budget | None = attrs.field(default=None, init=False, repr=False)
    _limit_micro: int = attrs.field(default=0, init=False, repr=False)

    def add_commit(self, at: int, amount: int) -> None:
        if not self.commit_times or at >= self.commit_times[-1]:
            self.commit_times.append(at)
            self.commit_totals.append(
                (self.commit_totals[-1] if self.commit_totals else 0) + amount
            )
            return
        # An out-of-order clock: insert and rebuild the running totals (rare).
        i = bisect.bisect_right(self.commit_times, at)
        amounts = [
            b - a for a, b in zip([0, *self.commit_totals], self.commit_totals, strict=False)
        ]
        self.commit_times.insert(i, at)
        amounts.insert(i, amount)
        total, self.commit_totals = 0, []
        for a in amounts:
            total += a
            self.commit_totals.append(total)

    def committed_between(self, start: int | None, end: int | None) -> int:
        totals = self.commit_totals
        if not totals:
            return 0
        if start is not None and end is not None and start >= end:
            return 0  # an empty span (a report dated after the window's end)
        # totals[i - 1] is the sum of the commits before index i.
        hi = len(totals) if end is None else bisect.bisect_left(self.commit_times, end)
        lo = 0 if start is None else bisect.bisect_left(self.commit_times, start)
        return (totals[hi - 1] if hi > 0 else 0) - (totals[lo - 1] if lo > 0 else 0)

    def limit_micro(self) -> int:
        budget = self.budget
        if self._limit_of is not budget:  # put_budget replaced it: convert once per budget
            self._limit_of, self._limit_micro = budget, to_micro(budget.limit, round_up=False)
        return self._limit_micro

    def used(self, now: datetime) -> int:
        """``used_micro(self.usage(now))`` without building the Usage (the reserve path)."""
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        local = self.committed_between(s, e) + self.reserved
        reported = self.reported
        if self.reported_at is None or reported is None:
            return local
        if start is not None and self.reported_at < start:
            return local  # the report predates the window (report_counts)
        after = epoch_us(self.reported_at)
        since = self.committed_between(after if s is None else max(after, s), e)
        return max(local, reported + since + self.reserved)

    def usage(self, now: datetime) -> Usage:
        start, end = self.budget.window.bounds(now)
        s = None if start is None else epoch_us(start)
        e = None if end is None else epoch_us(end)
        committed = self.committed_between(s, e)
        if report_counts(self.budget, self.reported_at, now) and self.reported_at is not None:
            after = epoch_us(self.reported_at)  # a window may start before the epoch
            since = self.committed_between(after if s is None else max(after, s), e)
            return Usage(
                committed, self.reserved, self.reported, since, self.outstanding, self.reported_at
            )
        return Usage(committed, self.reserved, None, 0, self.outstanding)


class _BudgetView(Mapping[str, Budget]):
    """The accounts' budgets as a mapping, without copying them on every reserve."""

    __slots__ = ("_accounts",)

    def __init__(self, accounts: dict[str, _Account]) -> None:
        self._accounts = accounts

    def __getitem__(self, key: str) -> Budget:
        return self._accounts[key].budget

    def get(self, key: str, default: Budget | None = None) -> Budget | None:  # type: ignore[override]
        account = self._accounts.get(key)
        return default if account is None else account.budget

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)


class MemoryLedger(LedgerBase):
    """Budgets and reservations in this process's memory; lost when it exits."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._budgets = _BudgetView(self._accounts)
        self._reservations: dict[str, Reservation] = {}
        self._holds: dict[str, dict[str, int]] = {}
        self._by_key: dict[str, str] = {}
        self._by_external: dict[str, str] = {}
        self._leases: list[tuple[int, str]] = []  # heap; stale entries skipped on pop
        self._lapsed: dict[str, None] = {}  # expired and bound: the work ran, cost unrecorded
        # Commits of removed budgets, restored if the key comes back (spend is never forgotten,
        # as in SQLite, whose commits table outlives the budget row).
        self._retired: dict[str, _Account] = {}

    def __repr__(self) -> str:
        return (
            f"MemoryLedger(budgets={len(self._accounts)}, reservations={len(self._reservations)})"
        )

    async def put_budget(self, budget: Budget) -> None:
        if not isinstance(budget, Budget):
            raise InvalidInput("budget", f"expected a Budget, got {type(budget).__name__}")
        account = self._accounts.get(budget.key)
        if account is None:
            account = _Account(budget)
            retired = self._retired.pop(budget.key, None)
            if retired is not None:
                account.commit_times = retired.commit_times
                account.commit_totals = retired.commit_totals
            self._accounts[budget.key] = account
        elif account.budget.unit is not budget.unit and (account.reserved or account.commit_times):
            raise InvalidInput(
                "budget.unit",
                f"budget {budget.key!r} already counts {account.budget.unit.value}; "
                "use a new key for another unit",
            )
        else:
            account.budget = budget

    async def remove_budget(self, key: str) -> None:
        account = self._account(key, "key")
        if account.outstanding:
            raise InvalidInput("key", f"budget {key!r} still has outstanding reservations")
        self._retired[key] = account
        del self._accounts[key]

    async def get_budget(self, key: str) -> Budget:
        return self._account(key, "key").budget

    async def budgets(self) -> list[Budget]:
        return [a.budget for a in self._accounts.values()]

    def _account(self, key: str, field: str) -> _Account:
        check_key(key, field)
        try:
            return self._accounts[key]
        except KeyError:
            raise UnknownBudget(field, key) from None

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        charges, key = check_reserve(charges, now, lease, idempotency_key)
        budgets = self._budgets
        requested = check_charges(charges, budgets)
        if self._leases and self._leases[0][0] <= epoch_us(now):
            self._expire(now)  # before the key lookup: a lapsed lease frees its idempotency key
        if key is not None and key in self._by_key:
            existing = self._reservations[self._by_key[key]]
            if sorted(existing.charges, key=repr) != sorted(charges, key=repr):
                raise InvalidInput(
                    "idempotency_key",
                    f"key {key!r} was used for different charges (reservation {existing.id})",
                )
            return Decision(
                admitted=True, reservation=existing, charges=existing.charges, replayed=True
            )
        accounts = self._accounts
        for k, amount in requested.items():
            # evaluate()'s rule, inline: the window admits now and the amount fits what is left.
            account = accounts[k]
            if not account.budget.window.contains(now) or (
                amount > account.limit_micro() - account.used(now)
            ):
                usage = {k: accounts[k].usage(now) for k in requested}
                violations = evaluate(requested, budgets, usage, now)  # every violation, worded
                if violations:
                    return Decision.reject(violations, charges)
                break  # evaluate() checked every key
        rid = new_reservation_id()
        until = now + lease
        reservation = Reservation(rid, charges, now, until, idempotency_key=key)
        for k, amount in requested.items():
            account = accounts[k]
            account.reserved += amount
            account.outstanding += 1
        self._reservations[rid] = reservation
        self._holds[rid] = requested
        if key is not None:
            self._by_key[key] = rid
        heapq.heappush(self._leases, (epoch_us(until), rid))
        return Decision(True, (), reservation, charges)

    def _unhold(self, reservation: Reservation) -> None:
        for k, amount in self._holds.pop(reservation.id, {}).items():
            account = self._accounts.get(k)
            if account is not None:
                account.reserved -= amount
                account.outstanding -= 1

    def _end(
        self,
        reservation: Reservation,
        state: ReservationState,
        now: datetime,
        actual: tuple[Charge, ...] | None = None,
    ) -> Reservation:
        if reservation.state is ReservationState.HELD:
            self._unhold(reservation)
        ended = attrs.evolve(reservation, state=state, ended_at=now, actual=actual)
        frees_key = state is ReservationState.RELEASED or (
            # An expired hold of work that was sent (bound) keeps its key: a retry must not
            # send the work again.
            state is ReservationState.EXPIRED and reservation.external_id is None
        )
        if frees_key and reservation.idempotency_key:
            # Released or expired frees the key, and the record no longer claims it (as in
            # SQLite, where the key column is cleared so a new reservation can take it).
            if self._by_key.get(reservation.idempotency_key) == reservation.id:
                del self._by_key[reservation.idempotency_key]
            ended = attrs.evolve(ended, idempotency_key=None)
        self._reservations[reservation.id] = ended
        if state is ReservationState.EXPIRED and ended.external_id is not None:
            self._lapsed[ended.id] = None
        else:
            self._lapsed.pop(ended.id, None)
        return ended

    def _get(self, reservation_id: str) -> Reservation:
        try:
            return self._reservations[reservation_id]
        except (KeyError, TypeError):
            raise ReservationNotFound(str(reservation_id)) from None

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        check_now(now)
        reservation = self._get(reservation_id)
        charges = check_actual(actual, reservation)
        if reservation.state in (ReservationState.COMMITTED, ReservationState.RELEASED):
            return reservation
        at = epoch_us(now)
        for charge in charges:
            account = self._accounts.get(charge.budget) or self._retired.get(charge.budget)
            if account is not None:
                account.add_commit(at, to_micro(charge.amount))
        return self._end(reservation, ReservationState.COMMITTED, now, charges)

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        check_now(now)
        reservation = self._get(reservation_id)
        if reservation.ended:
            return reservation
        return self._end(reservation, ReservationState.RELEASED, now)

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        check_now(now)
        check_lease(lease)
        self._expire(now)
        reservation = self._get(reservation_id)
        if reservation.ended:
            return reservation
        renewed = attrs.evolve(reservation, lease_expires_at=now + lease)
        self._reservations[reservation_id] = renewed
        heapq.heappush(self._leases, (epoch_us(renewed.lease_expires_at), reservation_id))
        return renewed

    def _expire(self, now: datetime) -> int:
        cutoff, count = epoch_us(now), 0
        while self._leases and self._leases[0][0] <= cutoff:
            due, rid = heapq.heappop(self._leases)
            reservation = self._reservations.get(rid)
            if reservation is None or reservation.ended:
                continue
            if epoch_us(reservation.lease_expires_at) != due:
                continue  # renewed since; a later heap entry covers it
            self._end(reservation, ReservationState.EXPIRED, now)
            count += 1
        return count

    async def expire(self, *, now: datetime) -> int:
        return self._expire(check_now(now))

    async def bind(self, reservation_id: str, external_id: str) -> Reservation:
        if not isinstance(external_id, str) or not external_id:
            raise InvalidInput("external_id", "must be a non-empty str (a job id or task ARN)")
        reservation = self._get(reservation_id)
        if self._by_external.get(str(reservation.external_id)) == reservation_id:
            del self._by_external[str(reservation.external_id)]  # a rebind replaces the old id
        bound = attrs.evolve(reservation, external_id=external_id)
        self._reservations[reservation_id] = bound
        self._by_external[external_id] = reservation_id
        if bound.state is ReservationState.EXPIRED:
            self._lapsed[reservation_id] = None  # bound after its lease lapsed: still owed
        return bound

    async def get(self, reservation_id: str) -> Reservation:
        return self._get(reservation_id)

    async def find_external(self, external_id: str) -> Reservation | None:
        rid = self._by_external.get(external_id)
        return None if rid is None else self._reservations[rid]

    async def outstanding(self) -> list[Reservation]:
        return [self._reservations[rid] for rid in self._holds]

    async def lapsed(self) -> list[Reservation]:
        return [self._reservations[rid] for rid in self._lapsed]

    async def record_report(self, key: str, used: object, *, at: datetime) -> None:
        check_now(at, "at")
        amount = as_amount(used, "used")
        account = self._account(key, "key")
        if account.reported_at is not None and at < account.reported_at:
            return  # an older report never replaces a newer one
        account.reported, account.reported_at = to_micro(Decimal(amount)), at

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        check_now(now)
        account = self._account(key, "key")
        self._expire(now)
        return state_of(account.budget, account.usage(now), now)
