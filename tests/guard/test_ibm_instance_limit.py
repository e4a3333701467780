"""The IBM instance limit when the usage endpoint omits it: ``/v1/instance`` supplies it.

DESIGN ("IBM rules"): the limit is ``usage_limit_seconds``, or else ``/v1/instance``'s
``instance_limit_seconds``. An instance whose usage reply carries no limit must not be treated
as unlimited when ``/v1/instance`` says otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from quotaguard import BudgetExceeded, BudgetUnavailable, MemoryLedger
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import emulated_ibm_client

KEY = "qg-limit-test-apikey-71c3"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-lim:inst-1::"
BACKEND = "ibm_emulated"


@pytest.fixture
async def make_guard(emulator: Emulator, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    emulator.ibm.add_api_key(KEY, "acct-lim")
    opened: list[IBMRuntimeClient] = []

    def make(**instance: Any) -> BudgetGuard:
        emulator.ibm.add_instance(CRN, plan_id="premium", backends=[BACKEND], **instance)
        ibm = emulated_ibm_client(emulator, clock, KEY, CRN)
        opened.append(ibm)
        return BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock)

    yield make
    for client in opened:
        await client.aclose()


async def noop() -> dict[str, str]:
    return {"id": "job-1"}


async def test_a_limit_only_on_v1_instance_still_binds(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(limit_seconds=100, consumed_seconds=30, usage_reports_limit=False) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=80), noop)
        (violation,) = info.value.decision.violations
        assert violation.rule == "budget.remaining"
        assert violation.budget == f"ibm:{CRN}"
        assert (violation.requested, violation.remaining) == (Decimal(80), Decimal(70))
        admitted = await g.submit(IBMJob(BACKEND, max_execution_time=70), noop)
        assert admitted.reservation.amount_for(f"ibm:{CRN}") == Decimal(70)
        (state,) = [s for s in await g.status() if s.budget.key == f"ibm:{CRN}"]
        assert state.budget.limit == Decimal(100)
    assert emulator.calls("ibm.get_usage") == 1
    assert emulator.calls("ibm.get_instance") == 1  # once per refresh, not per submission


async def test_no_extra_request_when_the_usage_reply_has_the_limit(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(limit_seconds=100) as g:
        with pytest.raises(BudgetExceeded):
            await g.submit(IBMJob(BACKEND, max_execution_time=120), noop)
    assert emulator.calls("ibm.get_instance") == 0


async def test_no_limit_anywhere_is_unlimited(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(limit_seconds=None, usage_reports_limit=False) as g:
        sub = await g.submit(IBMJob(BACKEND, max_execution_time=10_000), noop)
        assert sub.reservation.amount_for(f"ibm:{CRN}") == Decimal(10_000)
    assert emulator.calls("ibm.get_instance") == 1


async def test_v1_instance_down_fails_closed_and_sends_nothing(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.faults.add("ibm.get_instance", status=503, times=5)
    async with make_guard(limit_seconds=100, usage_reports_limit=False) as g:
        sent: list[int] = []

        async def send() -> dict[str, str]:
            sent.append(1)
            return {"id": "job-2"}

        with pytest.raises(BudgetUnavailable):
            await g.submit(IBMJob(BACKEND, max_execution_time=10), send)
        assert sent == []
        assert await g.ledger.outstanding() == []
