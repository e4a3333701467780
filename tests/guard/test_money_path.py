"""Fixed examples on the guard's money path that mutation testing (tools/mutate.py) found
unguarded: Braket's queued spend counts as spent, and the watcher renews the leases of bound
work before they lapse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import BudgetExceeded, MemoryLedger
from quotaguard.braket.client import BraketClient
from quotaguard.engine import ReservationState
from quotaguard.guard import BudgetGuard
from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import FORTE, KEY, TASK, Sends
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[BraketClient]:
    async with BraketClient("us-east-1", endpoint_url=emulator.url) as client:
        yield client


# -- Braket: remaining = spendingLimit - totalSpend - queuedSpend ----------------------------


async def test_queued_spend_counts_so_a_task_that_fits_only_without_it_is_refused(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    # $85 spent and $10 queued of $100: $5 remain, and the $8.30 task is refused unsent
    # (without the queued spend it would seem to fit in $15).
    emulator.braket.add_spending_limit(FORTE, "100", total="85", queued="10")
    ledger = MemoryLedger()
    send = Sends(braket)
    async with BudgetGuard(ledger, braket=braket, clock=clock) as guard:
        with pytest.raises(BudgetExceeded) as info:
            await guard.submit(TASK, send)
        state = await ledger.state(KEY, now=clock())
    assert send.count == 0
    assert info.value.source == "local"  # refused here, not by Braket after sending
    assert await ledger.outstanding() == []
    assert state.used == Decimal(95) and state.remaining == Decimal(5)


async def test_queued_spend_and_local_holds_leave_exactly_what_braket_would(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    # $80 spent and $3.40 queued of $100: $16.60 remain, two $8.30 tasks fit, a third does not.
    emulator.braket.add_spending_limit(FORTE, "100", total="80", queued="3.40")
    ledger = MemoryLedger()
    send = Sends(braket)
    async with BudgetGuard(ledger, braket=braket, clock=clock) as guard:
        await guard.submit(TASK, send)
        await guard.submit(TASK, send)
        with pytest.raises(BudgetExceeded):
            await guard.submit(TASK, send)
    assert send.count == 2


# -- the watcher renews the leases of work still running --------------------------------------


async def test_watch_once_renews_a_bound_hold_before_half_its_lease_is_left(
    toy: ToyAdapter, clock: FakeClock
) -> None:
    ledger = MemoryLedger(time_source="caller")
    lease = timedelta(hours=1)
    toy.actuals["toy-running"] = None  # still running: nothing to settle yet
    async with BudgetGuard(ledger, adapters=[toy], clock=clock, lease=lease) as guard:
        await add_toy_budget(guard, "100")
        job = await guard.submit(Work(Decimal(60)), lambda: Job("toy-running"))
        for _ in range(4):  # 4 x 40 min: past the first lease, held all along
            clock.advance(minutes=40)
            await guard.watch_once()
            held = await ledger.get(job.id)
            assert held.state is ReservationState.HELD
            assert held.lease_expires_at == clock() + lease
        # Its 60 of the 100 stay counted: a second 60 does not fit.
        with pytest.raises(BudgetExceeded):
            await guard.submit(Work(Decimal(60)), lambda: Job("toy-second"))
    assert await ledger.lapsed() == []


# -- an in-doubt hold is kept until its lease has ended by the guard's clock -----------------


async def test_a_report_dated_ahead_of_the_guard_does_not_release_in_doubt_work_early(
    toy: ToyAdapter, clock: FakeClock
) -> None:
    # The provider's clock runs ahead: its report is dated past the in-doubt lease while, by
    # the guard's clock, the lease has not ended and the work may still reach the report.
    ledger = MemoryLedger(time_source="caller")
    lease = timedelta(hours=1)

    async def send() -> Job:
        raise RuntimeError("lost after the provider may have accepted it")

    async with BudgetGuard(ledger, adapters=[toy], clock=clock, lease=lease) as guard:
        await add_toy_budget(guard, "100")
        with pytest.raises(RuntimeError):
            await guard.submit(Work(Decimal(60)), send)
        [held] = await guard.in_doubt()
        assert held.in_doubt_since is not None
        await ledger.record_report(toy.key, Decimal(0), at=held.in_doubt_since + 2 * lease)
        clock.advance(minutes=20)
        assert await guard.watch_once() == 0
        assert (await ledger.get(held.id)).state is ReservationState.HELD
        with pytest.raises(BudgetExceeded):  # its 60 of 100 still count
            await guard.submit(Work(Decimal(60)), lambda: Job("toy-again"))
