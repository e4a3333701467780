"""The guard over a RedisLedger whose connection loses replies: the user-facing contract.

``BudgetUnavailable`` from ``submit`` is safe to retry with the same idempotency key: the retry
sends the work (once), rather than replaying a hold the failed call may have left.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from quotaguard.errors import BudgetUnavailable
from quotaguard.guard import BudgetGuard
from quotaguard.ledger.redis import RedisLedger
from quotaguard.testing import FakeClock
from tests._support.guard import Job, ToyAdapter, Work, add_toy_budget
from tests._support.redis_ledger import Proxy

pytestmark = pytest.mark.redis


async def test_a_retry_after_an_unanswered_reserve_sends_the_work_once(
    proxy: Proxy, toy: ToyAdapter, clock: FakeClock
) -> None:
    sent: list[str] = []

    async def send() -> Job:
        sent.append("toy-1")
        return Job("toy-1")

    ledger = RedisLedger(
        proxy.url,
        namespace=f"g-{uuid.uuid4().hex[:8]}",
        socket_timeout=1.0,
        time_source="caller",  # the guard's FakeClock drives time
    )
    async with ledger, BudgetGuard(ledger, adapters=[toy], clock=clock) as guard:
        await add_toy_budget(guard)
        proxy.lose_reserve_replies = 3  # the reserve ran on the server; no reply came back
        with pytest.raises(BudgetUnavailable):
            await guard.submit(Work(Decimal(4)), send, idempotency_key="order-7")
        assert sent == []
        sub = await guard.submit(Work(Decimal(4)), send, idempotency_key="order-7")
        assert not sub.replayed
        assert sent == ["toy-1"]  # sent, once
        assert sub.external_id == "toy-1"
        state = await guard.ledger.state("toy:device", now=clock())
        assert (state.reserved, state.outstanding) == (Decimal(4), 1)
