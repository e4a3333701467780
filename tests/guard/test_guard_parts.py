"""Unit conversion (at submit and at settlement) and the guard's settings, which stay plain
assignable attributes: a new value reaches the parts the guard holds."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from quotaguard import Budget, Charge, InvalidInput, MemoryLedger, ReservationState, Unit
from quotaguard.engine.model import Estimate, Reservation
from quotaguard.errors import BadRequest
from quotaguard.guard import BudgetGuard
from quotaguard.guard.units import UnitConverter
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget


class SecondsAdapter(ToyAdapter):
    """A provider that bills in seconds, as IBM does."""

    unit = Unit.SECONDS

    def __init__(self) -> None:
        super().__init__("toy:seconds")

    async def estimate(self, work: Work, *, now: datetime, fail_open: bool) -> Estimate:
        charges = (Charge(self.key, work.amount, Unit.SECONDS),)
        return Estimate(charges, (), work.amount, Unit.SECONDS, True)


def test_the_converter_turns_seconds_into_dollars_only_at_a_price() -> None:
    priced = UnitConverter(Decimal("1.5"))
    assert priced.convert(Decimal(4), Unit.SECONDS, Unit.USD, "f", "k") == Decimal(6)
    assert priced.convert(Decimal(4), Unit.USD, Unit.USD, "f", "k") == Decimal(4)
    with pytest.raises(InvalidInput) as info:
        UnitConverter().convert(Decimal(4), Unit.SECONDS, Unit.USD, "budgets[0]", "team:a")
    assert info.value.field == "budgets[0]"
    assert "ibm_price_per_second" in str(info.value)
    with pytest.raises(InvalidInput):
        priced.convert(Decimal(4), Unit.USD, Unit.SECONDS, "f", "k")


async def test_seconds_are_priced_into_a_dollar_budget_at_submit_and_at_settle(clock) -> None:  # type: ignore[no-untyped-def]
    seconds = SecondsAdapter()
    async with BudgetGuard(
        MemoryLedger(), adapters=[seconds], clock=clock, ibm_price_per_second=Decimal("0.5")
    ) as guard:
        await guard.add_budget(Budget(seconds.key, Unit.SECONDS, Decimal(100)))
        await guard.add_budget(Budget("team:usd", Unit.USD, Decimal(100)))
        sub = await guard.submit(Work(Decimal(10)), lambda: Job("toy-1"), budgets=["team:usd"])
        held = {c.budget: c.amount for c in sub.reservation.charges}
        assert held == {seconds.key: Decimal(10), "team:usd": Decimal(5)}
        seconds.actuals["toy-1"] = Decimal(4)
        done = await guard.settle(sub)
        assert done.state is ReservationState.COMMITTED
        usd = await guard.ledger.state("team:usd", now=guard.clock())
        assert usd.committed == Decimal(2)


async def test_a_price_set_after_construction_is_used_at_submit_and_at_settle(clock) -> None:  # type: ignore[no-untyped-def]
    seconds = SecondsAdapter()
    async with BudgetGuard(MemoryLedger(), adapters=[seconds], clock=clock) as guard:
        await guard.add_budget(Budget(seconds.key, Unit.SECONDS, Decimal(100)))
        await guard.add_budget(Budget("team:usd", Unit.USD, Decimal(100)))
        with pytest.raises(InvalidInput) as info:
            await guard.check(Work(Decimal(10)), budgets=["team:usd"])
        assert info.value.field == "budgets[0]"
        guard.ibm_price_per_second = Decimal(2)
        assert guard.ibm_price_per_second == Decimal(2)
        sub = await guard.submit(Work(Decimal(10)), lambda: Job("toy-1"), budgets=["team:usd"])
        assert sub.reservation.amount_for("team:usd") == Decimal(20)
        guard.ibm_price_per_second = Decimal(3)
        await guard.settle(sub, actual=Decimal(1))
        assert (await guard.ledger.state("team:usd", now=guard.clock())).committed == Decimal(3)


async def test_settings_assigned_later_reach_sending_and_settlement(toy: ToyAdapter, clock) -> None:  # type: ignore[no-untyped-def]
    async with BudgetGuard(MemoryLedger(), adapters=[toy], clock=clock) as guard:
        # A new ledger: sends release into it, settlement reads it.
        guard.ledger = other = RecordingLedger()
        await add_toy_budget(guard)
        with pytest.raises(BadRequest):
            await guard.submit(Work(Decimal(1)), _raise)
        assert other.released_at == [clock()]
        assert (await other.state(toy.key, now=clock())).reserved == 0
        sub = await guard.submit(Work(Decimal(1)), lambda: Job("toy-1"))
        toy.actuals["toy-1"] = Decimal("0.5")
        assert (await guard.settle("toy-1")).state is ReservationState.COMMITTED

        # A new lease: reservations take it, and the watcher renews with it.
        guard.lease = timedelta(minutes=10)
        sub = await guard.submit(Work(Decimal(1)), lambda: Job("toy-2"))
        assert sub.reservation.lease_expires_at == clock() + timedelta(minutes=10)
        clock.advance(minutes=6)
        assert await guard.watch_once() == 0
        renewed = await guard.ledger.get(sub.id)
        assert renewed.lease_expires_at == clock() + timedelta(minutes=10)

        # A new clock: settlement dates what it commits by it, the release a failed send by it.
        later = clock() + timedelta(days=1)
        guard.clock = lambda: later
        toy.actuals["toy-2"] = Decimal("0.5")
        assert (await guard.settle(sub)).ended_at == later
        with pytest.raises(BadRequest):
            await guard.submit(Work(Decimal(1)), _raise)
        assert other.released_at[-1] == later

        # A new adapter list: settlement looks jobs up in it.
        unsettled = await guard.submit(Work(Decimal(1)), lambda: Job("toy-3"))
        guard.adapters = []
        assert guard.adapters == []
        with pytest.raises(InvalidInput, match="no configured provider knows job"):
            await guard.settle(unsettled)
        # The guarded sends find their client in it too, when called.
        with pytest.raises(InvalidInput, match="no ibm client"):
            await guard.ibm.run_job("sampler", "ibm_x", {}, max_execution_time=5)


class RecordingLedger(MemoryLedger):
    """Remembers when each release was dated."""

    def __init__(self) -> None:
        super().__init__()
        self.released_at: list[datetime] = []

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        self.released_at.append(now)
        return await super().release(reservation_id, now=now)


def _raise() -> None:
    raise BadRequest("the provider refused", provider="toy", status=400)  # nothing was sent
