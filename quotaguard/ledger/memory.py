"""An in-process ledger. Atomic because no operation awaits between its check and its hold."""

from __future__ import annotations

import bisect
import heapq
from datetime import datetime, timedelta

import attrs

from quotaguard.engine.amounts import to_micro
from quotaguard.engine.model import Budget, Charge, Reservation
from quotaguard.engine.reservations import (
    Event,
    Step,
    keeps_key,
    misfit,
    owed,
    same_charges,
    step,
)
from quotaguard.engine.rules import check_charges, evaluate
from quotaguard.ledger.accounts import Account, BudgetView
from quotaguard.ledger.audit import Page, by_id
from quotaguard.ledger.base import LedgerBase, TimeSourceName
from quotaguard.ledger.checks import DEFAULT_MAX_SKEW, TimeSource, new_reservation_id
from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.outcomes import (
    NO_BUDGET,
    NO_RESERVATION,
    OUTSTANDING,
    ActualMismatch,
    Ahead,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.retention import Trimmed, commit_cutoff

__all__ = ["MemoryLedger"]


class MemoryLedger(LedgerBase):
    """Budgets and reservations in this process's memory; lost when it exits.

    One process, so its clock is the caller's by default (``time_source="caller"``); with
    ``"system"`` leases are judged by the machine's clock, and a caller ``now`` more than
    ``max_skew`` from it is refused with :class:`~quotaguard.errors.ClockSkew`.
    """

    def __init__(
        self,
        *,
        time_source: TimeSourceName = "caller",
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self._use_time(time_source, max_skew, (TimeSource.CALLER, TimeSource.SYSTEM))
        self._accounts: dict[str, Account] = {}
        self._budgets_view = BudgetView(self._accounts)
        self._reservations: dict[str, Reservation] = {}
        self._holds: dict[str, dict[str, int]] = {}
        self._by_key: dict[str, str] = {}
        self._by_external: dict[str, str] = {}
        self._leases: list[tuple[int, str]] = []  # heap; stale entries skipped on pop
        self._owed: dict[str, None] = {}  # expired, maybe sent: the work ran, cost unrecorded
        self._doubt: dict[str, None] = {}  # held and in doubt (insertion order: marking order)
        # Commits of removed budgets, restored if the key comes back (spend is never forgotten,
        # as in SQLite, whose commits table outlives the budget row).
        self._retired: dict[str, Account] = {}

    def __repr__(self) -> str:
        return (
            f"MemoryLedger(budgets={len(self._accounts)}, reservations={len(self._reservations)})"
        )

    # -- budgets ----------------------------------------------------------------------------

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        account = self._accounts.get(budget.key)
        if account is None:
            account = Account(budget)
            retired = self._retired.pop(budget.key, None)
            if retired is not None:
                account.commits, account.floors = retired.commits, retired.floors
            self._accounts[budget.key] = account
        elif account.budget.unit is not budget.unit and (account.reserved or account.commits.times):
            return UnitInUse(account.budget.unit)
        else:
            account.budget = budget
        return None

    async def _remove_budget(self, key: str) -> Refusal | None:
        account = self._accounts.get(key)
        if account is None:
            return NO_BUDGET
        if account.outstanding:
            return OUTSTANDING
        self._retired[key] = account
        del self._accounts[key]
        return None

    async def _get_budget(self, key: str) -> Budget | Refusal:
        account = self._accounts.get(key)
        return NO_BUDGET if account is None else account.budget

    async def _budgets(self) -> list[Budget]:
        return [a.budget for a in self._accounts.values()]

    # -- the atomic path: no await between the check and the hold ---------------------------

    async def _reserve(
        self,
        charges: tuple[Charge, ...],
        now: datetime,
        lease: timedelta,
        key: str | None,
        clock: datetime,
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        budgets = self._budgets_view
        requested = check_charges(charges, budgets)
        if self._leases and self._leases[0][0] <= epoch_us(clock):
            self._sweep(clock)  # before the key lookup: a lapsed lease frees its idempotency key
        if key is not None and key in self._by_key:
            existing = self._reservations[self._by_key[key]]
            if not same_charges(existing.charges, charges):
                return KeyConflict(existing.id)
            return Replayed(existing)
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
                    return Rejected(tuple(violations))
                break  # evaluate() checked every key
        rid = new_reservation_id()
        until = clock + lease
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
        return reservation

    def _end(
        self,
        reservation: Reservation,
        change: Step,
        now: datetime,
        actual: tuple[Charge, ...] | None = None,
    ) -> Reservation:
        assert change.to is not None
        if change.unhold:
            for k, amount in self._holds.pop(reservation.id, {}).items():
                account = self._accounts.get(k)
                if account is not None:
                    account.unhold(reservation.id, amount)
        ended = attrs.evolve(reservation, state=change.to, ended_at=now, actual=actual)
        self._doubt.pop(reservation.id, None)
        sent = reservation.external_id is not None or reservation.in_doubt_since is not None
        key = reservation.idempotency_key
        if key and not keeps_key(change.to, sent):
            # The record no longer claims the key (as in SQLite, where the key column is
            # cleared so a new reservation can take it).
            if self._by_key.get(key) == reservation.id:
                del self._by_key[key]
            ended = attrs.evolve(ended, idempotency_key=None)
        self._reservations[reservation.id] = ended
        if owed(change.to, sent):
            self._owed[ended.id] = None
        else:
            self._owed.pop(ended.id, None)
        return ended

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        reservation = self._reservations.get(rid)
        if reservation is None:
            return NO_RESERVATION
        if actual is not None and misfit(actual, reservation.charges) is not None:
            return ActualMismatch(reservation)
        change = step(reservation.state, Event.COMMIT)
        if change.to is None:
            return reservation
        charges = reservation.charges if actual is None else actual
        at = epoch_us(now)
        floor = at if reservation.sent_at is None else epoch_us(reservation.sent_at)
        for charge in charges:
            account = self._accounts.get(charge.budget) or self._retired.get(charge.budget)
            if account is not None:
                account.add_commit(at, floor, to_micro(charge.amount))
        return self._end(reservation, change, now, charges)

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        reservation = self._reservations.get(rid)
        if reservation is None:
            return NO_RESERVATION
        change = step(reservation.state, Event.RELEASE)
        return reservation if change.to is None else self._end(reservation, change, now)

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        self._sweep(clock)
        reservation = self._reservations.get(rid)
        if reservation is None:
            return NO_RESERVATION
        return self._move_lease(reservation, clock + lease)

    async def _renew_many(
        self, rids: list[str], lease: timedelta, now: datetime, clock: datetime
    ) -> list[Reservation]:
        self._sweep(clock)
        until, renewed = clock + lease, []
        for rid in rids:
            reservation = self._reservations.get(rid)
            if reservation is not None and step(reservation.state, Event.RENEW).to is not None:
                renewed.append(self._move_lease(reservation, until))
        return renewed

    def _move_lease(self, reservation: Reservation, until: datetime) -> Reservation:
        if step(reservation.state, Event.RENEW).to is None:
            return reservation
        renewed = attrs.evolve(reservation, lease_expires_at=until)
        self._reservations[reservation.id] = renewed
        heapq.heappush(self._leases, (epoch_us(until), reservation.id))
        return renewed

    def _sweep(self, now: datetime) -> int:
        """Expire every held reservation whose lease is due at ``now`` (the ledger's time)."""
        cutoff, count = epoch_us(now), 0
        while self._leases and self._leases[0][0] <= cutoff:
            due, rid = heapq.heappop(self._leases)
            reservation = self._reservations.get(rid)
            if reservation is None or epoch_us(reservation.lease_expires_at) != due:
                continue  # renewed since; a later heap entry covers it
            change = step(reservation.state, Event.EXPIRE)
            if change.to is not None:
                self._end(reservation, change, now)
                count += 1
        return count

    async def _expire(self, now: datetime, clock: datetime) -> int:
        return self._sweep(clock)

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        reservation = self._reservations.get(rid)
        if reservation is None:
            return NO_RESERVATION
        if self._by_external.get(str(reservation.external_id)) == rid:
            del self._by_external[str(reservation.external_id)]  # a rebind replaces the old id
        bound = attrs.evolve(
            reservation,
            external_id=external_id,
            in_doubt_since=None,  # the work is found
            sent_at=reservation.sent_at if sent_at is None else sent_at,
        )
        self._reservations[rid] = bound
        self._by_external[external_id] = rid
        holds = self._holds.get(rid)
        if holds is not None and bound.sent_at is not None:  # held: it may be inside a report
            sent_us = epoch_us(bound.sent_at)
            for k, amount in holds.items():
                account = self._accounts.get(k)
                if account is not None:
                    account.mark_sent(rid, sent_us, amount)
        self._doubt.pop(rid, None)
        if owed(bound.state, True):
            self._owed[rid] = None  # bound after its lease lapsed: still owed
        return bound

    async def _mark_in_doubt(self, rid: str, now: datetime) -> Reservation | Refusal:
        reservation = self._reservations.get(rid)
        if reservation is None:
            return NO_RESERVATION
        if (
            step(reservation.state, Event.DOUBT).to is None
            or reservation.in_doubt_since is not None
        ):
            return reservation
        marked = attrs.evolve(reservation, in_doubt_since=now)
        self._reservations[rid] = marked
        self._doubt[rid] = None
        return marked

    async def _get(self, rid: str) -> Reservation | Refusal:
        return self._reservations.get(rid, NO_RESERVATION)

    async def _find_external(self, external_id: str) -> Reservation | None:
        rid = self._by_external.get(external_id)
        return None if rid is None else self._reservations[rid]

    async def _outstanding(self) -> list[Reservation]:
        return [self._reservations[rid] for rid in self._holds]

    async def _in_doubt(self) -> list[Reservation]:
        return [self._reservations[rid] for rid in self._doubt]

    async def _lapsed(self) -> list[Reservation]:
        return [self._reservations[rid] for rid in self._owed]

    async def _reservation_page(self, after: str | None, limit: int) -> Page:
        ids = sorted(self._reservations)  # by id, as the SQL stores page
        start = 0 if after is None else bisect.bisect_right(ids, after)
        return by_id([self._reservations[rid] for rid in ids[start : start + limit]], limit)

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(
        self, key: str, micro: int, at: datetime, now: datetime | None, covers_sent: bool
    ) -> Refusal | Ahead | None:
        account = self._accounts.get(key)
        if account is None:
            return NO_BUDGET
        account.report(micro, at, covers_sent)
        return None

    async def _committed_between(self, key: str, start: int, end: int) -> int | Refusal:
        account = self._accounts.get(key)
        return NO_BUDGET if account is None else account.commits.between(start, end)

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        account = self._accounts.get(key)
        if account is None:
            return NO_BUDGET
        self._sweep(clock)
        doubt = sum(key in self._holds[rid] for rid in self._doubt)
        return Counters(account.budget, account.usage(now, doubt))

    # -- trimming (ledger/retention.py) -----------------------------------------------------

    async def _trim(self, now: datetime, cut: datetime, limit: int) -> tuple[Trimmed, bool]:
        # In-process: one step forgets everything due (nothing waits on it but this caller).
        cut_us, commits = epoch_us(cut), 0
        for account in self._accounts.values():
            reported = account.reported_at
            upto = commit_cutoff(
                account.budget.window, None if reported is None else epoch_us(reported), now, cut_us
            )
            commits += account.commits.fold_before(upto)
            account.floors.fold_before(upto)
        gone = [
            r
            for r in self._reservations.values()
            if r.ended_at is not None and r.ended_at < cut and r.id not in self._owed
        ]
        for r in gone:
            del self._reservations[r.id]
            if r.idempotency_key is not None and self._by_key.get(r.idempotency_key) == r.id:
                del self._by_key[r.idempotency_key]
            if r.external_id is not None and self._by_external.get(r.external_id) == r.id:
                del self._by_external[r.external_id]
        return Trimmed(commits, len(gone)), False
