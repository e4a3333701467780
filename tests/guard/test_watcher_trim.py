"""The watcher trims the guard's ledger once an hour, keeping the guard's ``retention``."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable, InvalidInput, ReservationNotFound
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import MemoryLedger, Trimmed
from quotaguard.testing import FakeClock
from tests._support.ledger import usd

KEEP = timedelta(days=2)


async def _spent(ledger: MemoryLedger, at: datetime) -> str:
    decision = await ledger.reserve([usd("team", 2)], now=at)
    assert decision.reservation is not None
    await ledger.commit(decision.reservation.id, now=at)
    return decision.reservation.id


async def _kept(ledger: MemoryLedger, rid: str) -> bool:
    try:
        await ledger.get(rid)
    except ReservationNotFound:
        return False
    return True


async def test_the_watcher_trims_once_an_hour_and_used_stays() -> None:
    clock = FakeClock()
    async with MemoryLedger() as ledger, BudgetGuard(ledger, clock=clock, retention=KEEP) as guard:
        await guard.add_budget(Budget("team", Unit.USD, Decimal(100)))
        first = await _spent(ledger, clock())
        clock.advance(days=3)
        await guard.watch_once()  # the first pass trims
        assert not await _kept(ledger, first)
        old = await _spent(ledger, clock() - KEEP - timedelta(minutes=1))
        clock.advance(minutes=59)
        await guard.watch_once()  # within the hour: no trim
        assert await _kept(ledger, old)
        clock.advance(minutes=1)
        await guard.watch_once()
        assert not await _kept(ledger, old)
        assert (await ledger.state("team", now=clock())).used == Decimal(4)


async def test_without_a_retention_the_watcher_never_trims() -> None:
    clock = FakeClock()
    async with MemoryLedger() as ledger, BudgetGuard(ledger, clock=clock, retention=None) as guard:
        await guard.add_budget(Budget("team", Unit.USD, Decimal(100)))
        rid = await _spent(ledger, clock())
        clock.advance(days=1000)
        await guard.watch_once()
        assert await _kept(ledger, rid)


async def test_a_negative_retention_is_refused() -> None:
    with pytest.raises(InvalidInput, match="keep must not be negative"):
        BudgetGuard(MemoryLedger(), retention=timedelta(days=-1))


async def test_a_failing_trim_is_logged_and_the_pass_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unreachable(MemoryLedger):
        async def trim(self, *, now: datetime, keep: timedelta = KEEP) -> Trimmed:
            raise BudgetUnavailable("the store is down")

    clock = FakeClock()
    async with Unreachable() as ledger, BudgetGuard(ledger, clock=clock) as guard:
        with caplog.at_level("WARNING", logger="quotaguard.guard"):
            assert await guard.watch_once() == 0
        assert "trim cut short (the store is down)" in caplog.text
