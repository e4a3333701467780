"""Provider reports against the guard's own holds, end to end through the emulator (issue 12).

Braket's ``totalSpend + queuedSpend`` already holds every task whose CreateQuantumTask
completed before the read started: those holds must not count twice (item 11), and a task
that then fails must not take the floor below Braket's figure (item 12). IBM's usage lags and,
on a shared instance, carries other users' jobs: it must never lower ``used`` below the report
plus what this ledger spent after the report's effective time (item 8).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial

import pytest

from quotaguard import MemoryLedger
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import FORTE, KEY, TASK, Sends
from tests._support.ibm import emulated_ibm_client

BIG = BraketTask(FORTE, shots=500)  # $0.30 + 500 x $0.08 = $40.30
TOO_BIG = BraketTask(FORTE, shots=600)  # $48.30


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[BraketClient]:
    async with BraketClient("us-east-1", endpoint_url=emulator.url) as client:
        yield client


async def _state_of(guard: BudgetGuard, key: str) -> tuple[Decimal, Decimal]:
    (state,) = [s for s in await guard.status() if s.key == key]
    return state.used, state.remaining


async def test_a_queued_task_braket_reports_is_counted_once(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    emulator.braket.add_spending_limit(FORTE, "50")
    async with BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as guard:
        await guard.submit(TASK, Sends(braket))  # Braket: queuedSpend 8.30
        clock.advance(seconds=1)
        await guard.sync()  # read after the send completed: the task is inside the report
        used, remaining = await _state_of(guard, KEY)
        assert used == Decimal("8.30"), used
        assert remaining == Decimal("41.70")
        assert (await guard.check(BIG)).admitted  # Braket would take it: 41.70 left
        refused = await guard.check(TOO_BIG)
        assert refused.violations[0].remaining == remaining  # check and status agree


async def test_a_task_sent_during_the_read_counts_on_top(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    emulator.braket.add_spending_limit(FORTE, "50")
    async with BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as guard:
        await guard.submit(TASK, Sends(braket))
        # The report's read started at the very instant the send completed: not provably
        # inside it, so it counts twice rather than not at all.
        await guard.sync()
        used, _ = await _state_of(guard, KEY)
        assert used == Decimal("16.60")


async def test_a_failed_task_never_takes_used_below_braket_s_figure(
    emulator: Emulator, braket: BraketClient, clock: FakeClock
) -> None:
    emulator.braket.add_spending_limit(FORTE, "50", total="20", queued="21.70")  # others'
    async with BudgetGuard(MemoryLedger(), braket=braket, clock=clock) as guard:
        sub = await guard.submit(TASK, Sends(braket))  # Braket: queuedSpend 30.00
        assert sub.external_id is not None
        clock.advance(seconds=61)  # past the state TTL: the next check reads Braket again
        assert not (await guard.check(TASK)).admitted  # 20 + 30 = 50.00, our task inside it
        assert await _state_of(guard, KEY) == (Decimal(50), Decimal(0))
        emulator.braket.fail_task(sub.external_id)
        assert await guard.watch_once() == 1  # settled at 0, the hold released
        used, _ = await _state_of(guard, KEY)
        assert used >= Decimal(50), used  # never below Braket's last totalSpend + queuedSpend
        clock.advance(seconds=1)
        await guard.sync()  # the next report no longer has it: its 8.30 is free again
        assert await _state_of(guard, KEY) == (Decimal("41.70"), Decimal("8.30"))


# -- IBM: a shared instance ------------------------------------------------------------------

IBM_KEY = "qg-report-test-apikey-77a1"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-rep:inst-1::"
BACKEND = "ibm_emulated"


async def test_on_a_shared_instance_others_usage_is_never_dropped(
    emulator: Emulator, clock: FakeClock
) -> None:
    emulator.ibm.add_api_key(IBM_KEY, "acct-rep")
    emulator.ibm.add_instance(CRN, plan_id="open", backends=[BACKEND])  # 600 s
    ibm = emulated_ibm_client(emulator, clock, IBM_KEY, CRN)
    async with ibm, BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as guard:
        job = IBMJob(BACKEND, max_execution_time=120)
        send = partial(ibm.run_job, "sampler", BACKEND, {"pubs": []}, max_execution_time=120)
        sub = await guard.submit(job, send)
        assert sub.external_id is not None
        emulator.ibm.complete_job(sub.external_id, quantum_seconds=100)
        assert await guard.watch_once() == 1  # our 100 s committed
        # IBM's figure lags: it shows another user's 100 s, not ours yet. True usage 200 s.
        emulator.ibm.instances[CRN].consumed_seconds = Decimal(100)
        clock.advance(seconds=61)
        await guard.sync()
        state = await guard.ledger.state(f"ibm:{CRN}", now=clock())
        assert state.used >= Decimal(200), state.used
        refused = await guard.check(IBMJob(BACKEND, max_execution_time=450))
        assert not refused.admitted  # 400 s are left at most, not 500
