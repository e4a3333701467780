"""Every ledger against a plain model: random reserve/bind/commit/release/renew/expire/report
runs.

The model is written from the rules (``quotaguard.engine.rules``), not from the ledgers:
integers of micro-units, charges rounded up with integer arithmetic, commits dated at commit
time, reports newer-wins and counted only inside the current window. A report that covers
sent work holds the holds bound with an earlier ``sent_at`` and the commits of work sent
before it (by floor time: ``sent_at``, else the commit time); one that does not holds none.
Each ledger is driven from sync hypothesis rules through its own event loop.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from quotaguard.engine import (
    RULE_REMAINING,
    RULE_WINDOW_CLOSED,
    Budget,
    CalendarMonth,
    Charge,
    FixedWindow,
    NoWindow,
    Reservation,
    ReservationState,
    RollingDays,
    Unit,
)
from quotaguard.errors import InvalidInput
from tests._support.ledger import FACTORIES, LedgerFactory, ledger_params
from tests._support.times import T0

T = TypeVar("T")

BUDGETS = (
    Budget("a", Unit.USD, Decimal(100), NoWindow()),
    Budget("b", Unit.USD, Decimal("50.0000009"), CalendarMonth()),  # limit rounds down
    Budget("c", Unit.USD, Decimal(30), RollingDays(2)),
    Budget("d", Unit.USD, Decimal(20), FixedWindow(T0 - timedelta(days=1), T0 + timedelta(days=9))),
)
LIMIT = {"a": 100_000_000, "b": 50_000_000, "c": 30_000_000, "d": 20_000_000}
KEYS = ("k1", "k2", "k3")
STEPS = [
    timedelta(minutes=1),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=20),
]

# Amounts in tenths of a micro-unit, so charges exercise rounding up.
tenths = st.one_of(
    st.integers(0, 250_000_000), st.sampled_from([1, 9, 10, 11, 100_000_000, 150_000_000])
)
charge_sets = st.lists(st.tuples(st.sampled_from("abcd"), tenths), min_size=1, max_size=3)


# Preconditions are named functions, not lambdas: hypothesis describes every precondition on
# every step, and at its floor (6.100) describing a lambda re-parses this file's source each
# time; the floors session spent 49 of a memory run's 56 s in compile().
def has_keys(machine: LedgerMachine) -> bool:
    return bool(machine.keys)


def has_reservations(machine: LedgerMachine) -> bool:
    return bool(machine.res)


def has_a_hold(machine: LedgerMachine) -> bool:
    return any(h.state is ReservationState.HELD for h in machine.res.values())


def to_charge(budget: str, n: int) -> Charge:
    return Charge(budget, Decimal(n).scaleb(-7), Unit.USD)


def micro_key(charges: tuple[Charge, ...]) -> list[tuple[str, int]]:
    """What a key compares: each charge rounded up to micro-units (0.3 and 1 micro-unit are
    one charge of 1), in any order."""
    return sorted((c.budget, -(-int(c.amount.scaleb(7)) // 10)) for c in charges)


def micro_up(amount: Decimal) -> int:
    return math.ceil(Fraction(amount) * 1_000_000)


@attrs.define
class Held:
    id: str
    charges: tuple[Charge, ...]
    holds: dict[str, int]
    lease_expires_at: datetime
    key: str | None
    state: ReservationState = ReservationState.HELD
    sent_at: datetime | None = None
    bound: bool = False


class LedgerMachine(RuleBasedStateMachine):
    factory: LedgerFactory
    request: pytest.FixtureRequest
    tmp_path: Path

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.cm = self.factory(self.request, self.tmp_path)
        self.ledger = self.run(self.cm.__aenter__())
        self.now = T0
        self.res: dict[str, Held] = {}
        self.first_end: dict[str, Reservation] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> reservation id (held or committed)
        self.commits: list[tuple[str, datetime, datetime, int]] = []  # key, at, floor, micro
        self.reports: dict[str, tuple[int, datetime, bool]] = {}  # micro, at, covers_sent
        self.overspent: set[str] = set()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.cm.__aexit__(None, None, None))
        finally:
            self.loop.close()

    # -- the model --------------------------------------------------------------------------

    def expire_model(self) -> int:
        count = 0
        for held in self.res.values():
            if held.state is ReservationState.HELD and held.lease_expires_at <= self.now:
                held.state = ReservationState.EXPIRED
                if held.key is not None and not held.bound:
                    del self.keys[held.key]  # a lapsed lease of unsent work frees its key
                    held.key = None
                count += 1
        return count

    def reserved(self, key: str) -> int:
        return sum(
            h.holds.get(key, 0) for h in self.res.values() if h.state is ReservationState.HELD
        )

    def committed(self, key: str, since: datetime | None = None, by_floor: bool = False) -> int:
        budget = next(b for b in BUDGETS if b.key == key)
        start, end = budget.window.bounds(self.now)
        lo = max(t for t in (start, since) if t is not None) if start or since else None
        return sum(
            amount
            for k, at, floor, amount in self.commits
            if k == key
            and (lo is None or (floor if by_floor else at) >= lo)
            and (end is None or (floor if by_floor else at) < end)
        )

    def inside(self, key: str) -> int:
        """The held amount inside a covering report: holds sent before it."""
        report = self.reports.get(key)
        if report is None or not report[2]:
            return 0
        return sum(
            h.holds.get(key, 0)
            for h in self.res.values()
            if h.state is ReservationState.HELD and h.sent_at is not None and h.sent_at < report[1]
        )

    def used(self, key: str) -> tuple[int, int | None]:
        local = self.committed(key) + self.reserved(key)
        report = self.reports.get(key)
        budget = next(b for b in BUDGETS if b.key == key)
        start, _ = budget.window.bounds(self.now)
        if report is None or (start is not None and report[1] < start):
            return local, None
        reported, at, covers = report
        since = self.committed(key, since=at, by_floor=covers)
        return max(local, reported + since + self.reserved(key) - self.inside(key)), reported

    # -- rules ------------------------------------------------------------------------------

    @initialize()
    def budgets(self) -> None:
        for budget in BUDGETS:
            self.run(self.ledger.put_budget(budget))

    @rule(
        pairs=charge_sets,
        key=st.none() | st.sampled_from(KEYS),
        minutes=st.integers(1, 3 * 24 * 60),
    )
    def reserve(self, pairs: list[tuple[str, int]], key: str | None, minutes: int) -> None:
        charges = tuple(to_charge(b, n) for b, n in pairs)
        lease = timedelta(minutes=minutes)
        self.expire_model()
        if key is not None and key in self.keys:
            existing = self.res[self.keys[key]]
            if micro_key(existing.charges) != micro_key(charges):
                with pytest.raises(InvalidInput) as info:
                    self.run(
                        self.ledger.reserve(charges, now=self.now, lease=lease, idempotency_key=key)
                    )
                assert info.value.field == "idempotency_key"
                return
        self.submit(charges, key, lease)

    @precondition(has_keys)
    @rule(data=st.data())
    def reserve_again(self, data: st.DataObject) -> None:
        """A retried submit: the same key and charges (reordered) replay the reservation."""
        key = data.draw(st.sampled_from(sorted(self.keys)))
        held = self.res[self.keys[key]]
        charges = tuple(data.draw(st.permutations(held.charges)))
        self.submit(charges, key, timedelta(minutes=5))

    @rule(budget=st.sampled_from("abcd"), extra=st.sampled_from([-1, 0, 0, 1]))
    def reserve_the_rest(self, budget: str, extra: int) -> None:
        """Ask for exactly what is left, one micro-unit less, or one more: the edge."""
        self.expire_model()
        left = LIMIT[budget] - self.used(budget)[0] + extra
        if left >= 0:
            self.submit((Charge(budget, Decimal(left).scaleb(-6), Unit.USD),), None, STEPS[2])

    def submit(self, charges: tuple[Charge, ...], key: str | None, lease: timedelta) -> None:
        self.expire_model()
        decision = self.run(
            self.ledger.reserve(charges, now=self.now, lease=lease, idempotency_key=key)
        )
        if key is not None and key in self.keys:
            assert decision.admitted and decision.replayed
            assert decision.reservation is not None
            assert decision.reservation.id == self.keys[key]
            assert decision.reservation.state is self.res[self.keys[key]].state
            return
        holds: dict[str, int] = {}
        for charge in charges:
            holds[charge.budget] = holds.get(charge.budget, 0) + micro_up(charge.amount)
        closed = {
            k for k in holds if not next(b for b in BUDGETS if b.key == k).window.contains(self.now)
        }
        short = {k for k in holds if k not in closed and holds[k] > LIMIT[k] - self.used(k)[0]}
        assert decision.admitted == (not closed and not short), (decision, holds)
        assert not decision.replayed
        if not decision.admitted:
            assert decision.reservation is None
            assert {v.budget for v in decision.violations} == closed | short
            for violation in decision.violations:
                rule_code = RULE_WINDOW_CLOSED if violation.budget in closed else RULE_REMAINING
                assert violation.rule == rule_code
            return
        reservation = decision.reservation
        assert reservation is not None and reservation.state is ReservationState.HELD
        assert reservation.id not in self.res
        assert reservation.lease_expires_at == self.now + lease
        self.res[reservation.id] = Held(reservation.id, charges, holds, self.now + lease, key)
        if key is not None:
            self.keys[key] = reservation.id

    def pick(self, data: st.DataObject) -> Held:
        return self.res[data.draw(st.sampled_from(list(self.res)))]

    @precondition(has_reservations)
    @rule(data=st.data(), factor=st.sampled_from(["0", "0.5", "1", "1", "1.5", "2", "none"]))
    def commit(self, data: st.DataObject, factor: str) -> None:
        held = self.pick(data)
        if factor == "none":
            actual = None
            spent = list(held.charges)
        else:
            kept = data.draw(st.lists(st.sampled_from(held.charges), unique=True))
            spent = [Charge(c.budget, c.amount * Decimal(factor), c.unit) for c in kept]
            actual = spent
        result = self.run(self.ledger.commit(held.id, actual, now=self.now))
        if held.state in (ReservationState.COMMITTED, ReservationState.RELEASED):
            assert result == self.first_end[held.id]  # ends once; the first outcome stands
            return
        assert result.state is ReservationState.COMMITTED
        assert result.ended_at == self.now
        assert result.actual == tuple(spent)
        totals: dict[str, int] = {}
        floor = self.now if held.sent_at is None else held.sent_at
        for charge in spent:
            amount = micro_up(charge.amount)
            self.commits.append((charge.budget, self.now, floor, amount))
            totals[charge.budget] = totals.get(charge.budget, 0) + amount
        for key, total in totals.items():
            if total > held.holds[key] or held.state is ReservationState.EXPIRED:
                self.overspent.add(key)  # more than held, or after the hold lapsed
        held.state = ReservationState.COMMITTED
        self.first_end[held.id] = result

    @precondition(has_reservations)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        held = self.pick(data)
        result = self.run(self.ledger.release(held.id, now=self.now))
        if held.id in self.first_end:
            assert result == self.first_end[held.id]
            return
        if held.state is ReservationState.EXPIRED:
            assert result.state is ReservationState.EXPIRED
            return
        assert result.state is ReservationState.RELEASED
        held.state = ReservationState.RELEASED
        if held.key is not None:
            del self.keys[held.key]
            held.key = None
        self.first_end[held.id] = result

    @precondition(has_reservations)
    @rule(data=st.data(), minutes=st.integers(1, 3 * 24 * 60))
    def renew(self, data: st.DataObject, minutes: int) -> None:
        held = self.pick(data)
        self.expire_model()
        result = self.run(
            self.ledger.renew(held.id, lease=timedelta(minutes=minutes), now=self.now)
        )
        assert result.state is held.state
        if held.state is ReservationState.HELD:
            held.lease_expires_at = self.now + timedelta(minutes=minutes)
        assert result.lease_expires_at == held.lease_expires_at

    @precondition(has_reservations)
    @rule(data=st.data(), back=st.none() | st.sampled_from([*STEPS[:3], timedelta(0)]))
    def bind(self, data: st.DataObject, back: timedelta | None) -> None:
        """The work got a job id, sent ``back`` ago (``None``: keep the send time recorded).
        Mostly a held one (an ended one's record takes the id too): reports hold those."""
        live = [r for r, h in self.res.items() if h.state is ReservationState.HELD]
        held = self.res[data.draw(st.sampled_from(live or list(self.res)))]
        sent_at = None if back is None else self.now - back
        result = self.run(self.ledger.bind(held.id, f"job-{held.id}", sent_at=sent_at))
        held.bound = True
        if sent_at is not None:
            held.sent_at = sent_at
        assert result.sent_at == held.sent_at and result.external_id == f"job-{held.id}"
        if held.id in self.first_end:
            self.first_end[held.id] = result  # the record of an ended one gets the job id too

    @precondition(has_a_hold)
    @rule(key=st.sampled_from("abcd"), amount=st.integers(0, 60_000_000))
    def send_then_report(self, key: str, amount: int) -> None:
        """The common Braket path: the newest hold's task is sent, then a covering report
        is read a minute later (the hold is inside it)."""
        newest = [h for h in self.res.values() if h.state is ReservationState.HELD][-1]
        self.run(self.ledger.bind(newest.id, f"task-{newest.id}", sent_at=self.now))
        newest.bound, newest.sent_at = True, self.now
        self.now += STEPS[0]
        self.report(key, amount, timedelta(0), True)

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: timedelta) -> None:
        self.now += step

    @rule()
    def expire(self) -> None:
        assert self.run(self.ledger.expire(now=self.now)) == self.expire_model()

    @rule(
        key=st.sampled_from("abcd"),
        amount=st.integers(0, 120_000_000),
        age=st.sampled_from(
            [timedelta(0), timedelta(minutes=5), timedelta(hours=1), timedelta(days=2),
             timedelta(days=40)]
        ),
        covers=st.booleans(),
    )  # fmt: skip
    def report(self, key: str, amount: int, age: timedelta, covers: bool) -> None:
        at = self.now - age
        micro = Decimal(amount).scaleb(-6)
        self.run(self.ledger.record_report(key, micro, at=at, covers_sent=covers))
        current = self.reports.get(key)
        if current is None or at >= current[1]:  # an older report never replaces a newer one
            self.reports[key] = (amount, at, covers)

    @precondition(has_reservations)
    @rule()
    def every_reservation_matches(self) -> None:
        for held in self.res.values():
            got = self.run(self.ledger.get(held.id))
            assert got.state is held.state, (got, held)
            assert got.id == held.id and got.idempotency_key == held.key
            if held.id in self.first_end:
                assert got == self.first_end[held.id]

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def budgets_match_the_model(self) -> None:
        self.expire_model()  # state() settles due leases; the model does the same
        for budget in BUDGETS:
            state = self.run(self.ledger.state(budget.key, now=self.now))
            committed, reserved = self.committed(budget.key), self.reserved(budget.key)
            used, reported = self.used(budget.key)
            assert state.committed == Decimal(committed).scaleb(-6)
            assert state.reserved == Decimal(reserved).scaleb(-6)
            assert state.used == Decimal(used).scaleb(-6)
            assert state.remaining == Decimal(max(LIMIT[budget.key] - used, 0)).scaleb(-6)
            assert state.reported == (None if reported is None else Decimal(reported).scaleb(-6))
            inside = 0 if reported is None else self.inside(budget.key)
            assert state.inside_report == Decimal(inside).scaleb(-6)
            if reported is not None:  # the provider's last report counts while it counts
                assert state.used >= state.reported
            assert state.outstanding == sum(
                1
                for h in self.res.values()
                if h.state is ReservationState.HELD and budget.key in h.holds
            )
            if budget.key not in self.overspent:
                # Through the ledger's own operations, a budget never holds more than its limit.
                assert committed + reserved <= LIMIT[budget.key]

    @invariant()
    def outstanding_matches_the_model(self) -> None:
        outstanding = self.run(self.ledger.outstanding())
        held = {h.id for h in self.res.values() if h.state is ReservationState.HELD}
        assert {r.id for r in outstanding} == held
        assert all(r.state is ReservationState.HELD for r in outstanding)


# 40 programs each on a fresh ledger: PostgreSQL on the dependency floors took ~280 s of the
# default 300 s per test (a fresh schema per program); the bound is for hangs, not for this.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ledger_params())
def test_ledger_state_machine(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    machine = type(
        f"{name.title()}LedgerMachine",
        (LedgerMachine,),
        {"factory": staticmethod(FACTORIES[name]), "request": request, "tmp_path": tmp_path},
    )
    run_state_machine_as_test(
        machine, settings=settings(max_examples=40, stateful_step_count=30, deadline=None)
    )
