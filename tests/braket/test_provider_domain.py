"""Braket figures outside their domain are a provider error, never a credit.

A negative ``totalSpend``, ``queuedSpend`` or ``spendingLimit``, or a limit updated in the
future, makes the client raise :class:`MalformedPayload` (a ``ProviderError``) naming the
wire field; the guard treats it as any provider failure (the fail mode decides) and never
takes the figure at face value. End to end, against the emulator's Braket half.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import BudgetExceeded, BudgetUnavailable, MemoryLedger, ProviderError
from quotaguard.braket.client import BraketClient
from quotaguard.errors import MalformedPayload
from quotaguard.guard import BudgetGuard
from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import FORTE, KEY, TASK, Sends


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[BraketClient]:
    async with BraketClient("us-east-1", endpoint_url=emulator.url) as client:
        yield client


@pytest.mark.parametrize(
    ("field", "amount", "total", "queued"),
    [
        ("$.spendingLimits[0].queuedSpend", "100", "95", "-90"),
        ("$.spendingLimits[0].totalSpend", "100", "-50", "0"),
        ("$.spendingLimits[0].spendingLimit", "-1", "0", "0"),
    ],
)
async def test_negative_figures_are_malformed(
    emulator: Emulator, braket: BraketClient, field: str, amount: str, total: str, queued: str
) -> None:
    emulator.braket.add_spending_limit(FORTE, amount, total=total, queued=queued)
    with pytest.raises(MalformedPayload) as info:
        await braket.spending_limit_for(FORTE)
    assert isinstance(info.value, ProviderError)
    assert info.value.field == field


async def test_negative_queued_spend_fails_closed_and_sends_nothing(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    # totalSpend 95 of 100 and queuedSpend -90: at face value $5 are used and $95 remain.
    emulator.braket.add_spending_limit(FORTE, "100", total="95", queued="-90")
    ledger = MemoryLedger()
    send = Sends(braket)
    async with BudgetGuard(ledger, braket=braket, clock=clock) as guard:
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(TASK, send)
    assert send.count == 0
    assert await ledger.outstanding() == []
    assert isinstance(info.value.__cause__, MalformedPayload)
    assert "queuedSpend" in str(info.value)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_a_negative_report_after_a_good_one_is_never_a_credit(
    emulator: Emulator, braket: BraketClient, clock: FakeClock, fail_mode: str
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100", total="95")
    ledger = MemoryLedger()
    send = Sends(braket)
    async with BudgetGuard(ledger, braket=braket, clock=clock, fail_mode=fail_mode) as guard:
        await guard.sync()
        limit = emulator.braket.limit_for(FORTE)
        assert limit is not None
        limit.queued = Decimal(-90)
        for minutes in (2, 11):  # stale but served; then past max_staleness
            clock.advance(minutes=minutes)
            with pytest.raises((BudgetExceeded, BudgetUnavailable)):
                await guard.submit(TASK, send)
        state = await ledger.state(KEY, now=clock())
    assert send.count == 0
    assert await ledger.outstanding() == []
    assert state.used == Decimal(95)


async def test_a_limit_updated_in_the_future_is_a_provider_error(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    limit = emulator.braket.limit_for(FORTE)
    assert limit is not None
    limit.updated_at = clock() + timedelta(days=3650)
    ledger = MemoryLedger()
    send = Sends(braket)
    async with BudgetGuard(ledger, braket=braket, clock=clock) as guard:
        with pytest.raises(MalformedPayload) as info:
            await guard.sync()
        with pytest.raises(BudgetUnavailable):
            await guard.submit(TASK, send)
    assert info.value.field.endswith("updatedAt")
    assert send.count == 0
    assert await ledger.budgets() == []


async def test_a_small_clock_difference_is_tolerated(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100", total="10")
    limit = emulator.braket.limit_for(FORTE)
    assert limit is not None
    limit.updated_at = clock() + timedelta(seconds=30)  # Braket's clock a little ahead of ours
    async with BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as guard:
        sub = await guard.submit(TASK, Sends(braket))
    assert sub.external_id is not None
