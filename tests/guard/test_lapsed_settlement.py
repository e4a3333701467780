"""Settling work whose hold lapsed, and work the provider no longer knows.

Provider-neutral: the toy adapter (tests/_support/guard.py) on memory and SQLite ledgers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard import Budget, CalendarMonth, MemoryLedger, ReservationState, SQLiteLedger, Unit
from quotaguard.guard import BudgetGuard
from quotaguard.ledger import Ledger
from quotaguard.testing import FakeClock
from tests._support.guard import Job, ToyAdapter, Work

OCT_31_2340 = datetime(2026, 10, 31, 23, 40, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
async def guard(
    request: pytest.FixtureRequest, toy: ToyAdapter, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[BudgetGuard]:
    clock.now = OCT_31_2340  # lapses and settlements straddle a month boundary
    ledger: Ledger = (
        MemoryLedger()
        if request.param == "memory"
        else SQLiteLedger(tmp_path / "l", time_source="caller")
    )
    # The guard closes only what it opened: the ledger it is given is closed here.
    async with (
        ledger,
        BudgetGuard(ledger, adapters=[toy], clock=clock, lease=timedelta(minutes=10)) as g,
    ):
        await g.add_budget(Budget("toy:device", Unit.USD, Decimal(100)))
        await g.add_budget(Budget("team:monthly", Unit.USD, Decimal(10), CalendarMonth()))
        yield g


async def monthly(g: BudgetGuard, at: datetime) -> Decimal:
    return (await g.ledger.state("team:monthly", now=at)).committed


async def test_work_lapsed_in_october_is_octobers_spend_when_settled_in_november(
    guard: BudgetGuard, toy: ToyAdapter, clock: FakeClock
) -> None:
    sub = await guard.submit(Work(Decimal(9)), lambda: Job("toy-1"), budgets=["team:monthly"])
    # Its lease ends at 23:50 on 31 October; nobody watches until 01:00 on 1 November.
    november = clock.advance(hours=1, minutes=20)
    assert await guard.ledger.expire(now=november) == 1
    toy.actuals["toy-1"] = Decimal(9)
    assert await guard.watch_once() == 1
    done = await guard.ledger.get(sub.id)
    assert done.state is ReservationState.COMMITTED
    assert await monthly(guard, november) == 0  # the new month starts clean
    assert await monthly(guard, OCT_31_2340 + timedelta(minutes=15)) == Decimal(9)


async def test_work_lapsed_in_november_is_novembers_spend(
    guard: BudgetGuard, toy: ToyAdapter, clock: FakeClock
) -> None:
    clock.advance(minutes=15)  # 23:55: the lease runs to 00:05 on 1 November
    sub = await guard.submit(Work(Decimal(6)), lambda: Job("toy-1"), budgets=["team:monthly"])
    later = clock.advance(hours=2)
    assert await guard.ledger.expire(now=later) == 1
    toy.actuals["toy-1"] = Decimal(6)
    assert await guard.watch_once() == 1
    assert (await guard.ledger.get(sub.id)).state is ReservationState.COMMITTED
    assert await monthly(guard, later) == Decimal(6)


async def test_a_job_the_provider_no_longer_knows_is_charged_what_was_held(
    guard: BudgetGuard, toy: ToyAdapter, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    lapsed = await guard.submit(Work(Decimal(5)), lambda: Job("toy-lapsed"))  # lease to 23:50
    clock.advance(minutes=9)
    held = await guard.submit(Work(Decimal(4)), lambda: Job("toy-held"))  # lease to 23:59
    assert await guard.ledger.expire(now=clock.advance(minutes=2)) == 1
    toy.gone |= {"toy-held", "toy-lapsed"}
    with caplog.at_level(logging.WARNING, logger="quotaguard.guard"):
        assert await guard.watch_once() == 2
    assert "does not know toy-lapsed" in caplog.text
    for sub, amount in ((held, 4), (lapsed, 5)):
        done = await guard.ledger.get(sub.id)
        assert done.state is ReservationState.COMMITTED
        assert done.actual is not None
        assert [c.amount for c in done.actual] == [Decimal(amount)]
    assert await guard.ledger.lapsed() == []
    assert await guard.ledger.outstanding() == []
    assert await guard.watch_once() == 0  # settled once; nothing retried
