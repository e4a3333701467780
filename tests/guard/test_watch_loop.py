"""``guard.watch()`` really started: the loop settles bound work as it ends, renews the leases of
work still running, keeps going through a provider failure, and stops with the guard.

Event-driven: the provider's state is changed on the emulator (on a :class:`FakeClock`), and
the test waits, bounded, for the ledger to show the outcome; nothing asserts after a fixed
sleep. The loop runs at small real intervals.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import MemoryLedger, Reservation, ReservationState
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from tests._support.secrets import IBM_TEST_API_KEY

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/watch-acct:watch-inst::"
BACKEND = "ibm_watch"
FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
ACTION = (
    '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}, '
    '"source": "OPENQASM 3;"}'
)
INTERVAL = 0.01
WITHIN = 10.0  # seconds of real time before a wait gives up


async def wait_for(
    read: Callable[[], Awaitable[Reservation]], done: Callable[[Reservation], bool]
) -> Reservation:
    """Read the ledger until ``done`` holds; fail after :data:`WITHIN` seconds."""
    async with asyncio.timeout(WITHIN):
        while not done(current := await read()):
            await asyncio.sleep(INTERVAL)
    return current


@pytest.fixture
async def guard(emulator: Emulator, clock: FakeClock) -> AsyncIterator[BudgetGuard]:
    emulator.ibm.add_api_key(IBM_TEST_API_KEY, "watch-acct")
    emulator.ibm.add_instance(CRN, limit_seconds=3600, backends=[BACKEND])
    emulator.braket.add_spending_limit(FORTE, "100")
    async with (
        IBMRuntimeClient(
            IBM_TEST_API_KEY,
            CRN,
            base_url=f"{emulator.url}/api",
            iam_url=emulator.url,
            clock=clock,
        ) as ibm,
        BraketClient("us-east-1", endpoint_url=emulator.url) as braket,
        BudgetGuard(MemoryLedger(), ibm=ibm, braket=braket, clock=clock) as guarded,
    ):
        yield guarded


def _ibm_send(guard: BudgetGuard) -> Callable[[], Awaitable[str]]:
    ibm = guard.adapters[0].client  # type: ignore[attr-defined]
    return lambda: ibm.run_job("sampler", BACKEND, {}, max_execution_time=60)


def _braket_send(guard: BudgetGuard) -> Callable[[], Awaitable[str]]:
    braket = guard.adapters[1].client  # type: ignore[attr-defined]
    return lambda: braket.create_quantum_task(FORTE, ACTION, 100, "amazon-braket-test", "w")


def _committed(r: Reservation) -> bool:
    return r.state is ReservationState.COMMITTED


def _actual(r: Reservation) -> Decimal:
    assert r.actual is not None
    return r.actual[0].amount


async def test_the_watcher_settles_bound_work_as_it_ends(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    job = await guard.submit(IBMJob(BACKEND, 60), _ibm_send(guard))
    task = await guard.submit(BraketTask(FORTE, shots=100), _braket_send(guard))
    assert job.external_id is not None and task.external_id is not None
    watcher = guard.watch(interval=INTERVAL, max_interval=0.05)
    assert guard.watch(interval=INTERVAL) is watcher  # one loop per guard
    emulator.ibm.complete_job(job.external_id, 12)
    settled = await wait_for(lambda: guard.ledger.get(job.id), _committed)
    assert _actual(settled) == Decimal(12)
    # The Braket task is still queued: held, not settled, until Braket says it ended.
    assert (await guard.ledger.get(task.id)).state is ReservationState.HELD
    emulator.braket.complete_task(task.external_id)
    settled = await wait_for(lambda: guard.ledger.get(task.id), _committed)
    assert _actual(settled) == Decimal("8.30")
    assert not watcher.done()
    await guard.aclose()
    assert watcher.done()


async def test_the_watcher_renews_the_lease_of_running_work(
    guard: BudgetGuard, emulator: Emulator, clock: FakeClock
) -> None:
    job = await guard.submit(IBMJob(BACKEND, 60), _ibm_send(guard))
    first = job.reservation.lease_expires_at
    clock.advance(minutes=40)  # past half the 1 h lease: due for renewal
    watcher = guard.watch(interval=INTERVAL, max_interval=0.05)
    renewed = await wait_for(lambda: guard.ledger.get(job.id), lambda r: r.lease_expires_at > first)
    assert renewed.state is ReservationState.HELD
    assert renewed.lease_expires_at >= clock() + guard.lease - timedelta(seconds=1)
    watcher.cancel()


async def test_the_watcher_keeps_going_after_a_provider_failure(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    job = await guard.submit(IBMJob(BACKEND, 60), _ibm_send(guard))
    assert job.external_id is not None
    emulator.ibm.complete_job(job.external_id, 7)
    emulator.faults.add("ibm.get_job", status=503, times=6)  # more than one pass's retries
    watcher = guard.watch(interval=INTERVAL, max_interval=0.02)
    settled = await wait_for(lambda: guard.ledger.get(job.id), _committed)
    assert _actual(settled) == Decimal(7)
    assert not watcher.done()
