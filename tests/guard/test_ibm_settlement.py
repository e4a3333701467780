"""IBM job settlement, end to end: BudgetGuard + the emulator + the watcher's settle path.

What the provider will bill (DESIGN.md, "Settlement"): only a final usage figure is committed,
the larger of the figures present; a job that may have run and has no final figure keeps its
hold (renewed) until one comes, and past ``IBMPolicy.usage_pending_max_seconds`` after its end
commits its ceiling with a warning; only a job IBM shows never started settles at 0.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import MemoryLedger, Reservation, ReservationState
from quotaguard.guard import BudgetGuard, Submission
from quotaguard.ibm import IBMPolicy
from quotaguard.ibm.work import IBMJob
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import emulated_ibm_client

KEY = "qg-settle-test-apikey-71c3"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-settle:inst-1::"
BUDGET = f"ibm:{CRN}"
BACKEND = "ibm_emulated"
CEILING = 3600

GuardFactory = Callable[..., AbstractAsyncContextManager[BudgetGuard]]


@pytest.fixture
def make_guard(emulator: Emulator, clock: FakeClock) -> GuardFactory:
    """Guards on a fresh MemoryLedger over the emulated instance (10 h limit)."""
    emulator.ibm.add_api_key(KEY, "acct-settle")
    emulator.ibm.add_instance(CRN, limit_seconds=36_000, backends=[BACKEND])

    @asynccontextmanager
    async def make(
        policy: IBMPolicy | None = None, api_version: str | None = None
    ) -> AsyncIterator[BudgetGuard]:
        version = {} if api_version is None else {"api_version": api_version}
        ibm = emulated_ibm_client(emulator, clock, KEY, CRN, **version)
        async with ibm, BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock, ibm_policy=policy) as g:
            yield g

    return make


@pytest.fixture
async def guard(make_guard: GuardFactory) -> AsyncIterator[BudgetGuard]:
    async with make_guard() as g:
        yield g


async def submit(guard: BudgetGuard, ceiling: int = CEILING) -> tuple[Submission, str]:
    ibm = guard.adapters[0].client  # type: ignore[attr-defined]
    sub = await guard.submit(
        IBMJob(BACKEND, max_execution_time=ceiling),
        lambda: ibm.run_job("sampler", BACKEND, {}, max_execution_time=ceiling),
    )
    assert sub.external_id is not None
    return sub, sub.external_id


async def held(guard: BudgetGuard, sub: Submission) -> Reservation:
    reservation = await guard.ledger.get(sub.id)
    assert reservation.state is ReservationState.HELD, reservation.state
    return reservation


async def committed(guard: BudgetGuard, sub: Submission) -> Decimal:
    reservation = await guard.ledger.get(sub.id)
    assert reservation.state is ReservationState.COMMITTED, reservation.state
    assert reservation.actual is not None
    (charge,) = reservation.actual
    return charge.amount


async def pass_until(guard: BudgetGuard, clock: FakeClock, hours: float) -> int:
    """Watcher passes every 20 min of fake time (each renews due leases) for ``hours``."""
    ended = 0
    for _ in range(int(hours * 3)):
        clock.advance(minutes=20)
        ended += await guard.watch_once()
    return ended


# Item 1: usage that is not final.


async def test_pending_usage_keeps_the_hold_until_it_is_final(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.complete_job(job, 0, pending=True)  # usage: 0 s, status "pending"
    assert await guard.watch_once() == 0, "a pending usage figure was settled as final"
    await held(guard, sub)
    state = await guard.ledger.state(BUDGET, now=guard.clock())
    assert (state.reserved, state.committed) == (Decimal(CEILING), Decimal(0))
    emulator.ibm.finalize_usage(job, 1200)
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == 1200


async def test_a_pending_jobs_hold_is_renewed_not_expired(
    guard: BudgetGuard, emulator: Emulator, clock: FakeClock
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.complete_job(job, 40, pending=True)
    first = (await held(guard, sub)).lease_expires_at
    assert await pass_until(guard, clock, hours=5) == 0  # five leases long
    renewed = await held(guard, sub)
    assert renewed.lease_expires_at > first + timedelta(hours=4)
    assert await guard.ledger.lapsed() == []


async def test_usage_pending_past_the_bound_commits_the_ceiling_with_a_warning(
    guard: BudgetGuard, emulator: Emulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sub, job = await submit(guard)
    # Queued and ran for 2 h (watched all along): the bound counts from the job's end.
    assert await pass_until(guard, clock, hours=2) == 0
    emulator.ibm.complete_job(job, 0, pending=True)
    caplog.set_level(logging.WARNING, "quotaguard.guard")
    assert await pass_until(guard, clock, hours=23.67) == 0  # 23 h 40 min after the end
    await held(guard, sub)
    assert "no final usage" not in caplog.text
    assert await pass_until(guard, clock, hours=0.34) == 1  # 24 h after the end
    assert await committed(guard, sub) == CEILING
    assert f"no final usage for job {job}" in caplog.text


async def test_the_bound_is_configurable(
    make_guard: GuardFactory, emulator: Emulator, clock: FakeClock
) -> None:
    async with make_guard(IBMPolicy(usage_pending_max_seconds=1800)) as guard:
        sub, job = await submit(guard, ceiling=600)
        emulator.ibm.complete_job(job, 5, pending=True)
        clock.advance(minutes=29)
        assert await guard.watch_once() == 0
        clock.advance(minutes=1)
        assert await guard.watch_once() == 1
        assert await committed(guard, sub) == 600


# Item 2: failed and cancelled jobs.


async def test_cancelled_ran_too_long_waits_for_its_usage(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.set_job_status(job, "Running")
    emulator.ibm.cancel_job(job, ran_too_long=True, pending=True)
    assert await guard.watch_once() == 0, "a job cancelled for running too long settled at 0"
    await held(guard, sub)
    emulator.ibm.finalize_usage(job, CEILING)
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == CEILING


def _ran_too_long_without_timestamps(emulator: Emulator, job: str) -> None:
    emulator.ibm.cancel_job(job, ran_too_long=True)  # no usage figure
    emulator.ibm.jobs[job].running = None  # and the provider shows no running timestamp


def _failed_after_running(emulator: Emulator, job: str) -> None:
    emulator.ibm.set_job_status(job, "Running")
    emulator.ibm.fail_job(job)  # no usage figure ever comes


@pytest.mark.parametrize("end", [_ran_too_long_without_timestamps, _failed_after_running])
async def test_a_job_that_may_have_run_without_usage_commits_its_ceiling(
    guard: BudgetGuard,
    emulator: Emulator,
    clock: FakeClock,
    end: Callable[[Emulator, str], None],
) -> None:
    sub, job = await submit(guard)
    end(emulator, job)
    assert await guard.watch_once() == 0, "a job that may have run settled at 0"
    assert await pass_until(guard, clock, hours=24) == 1
    assert await committed(guard, sub) == CEILING


async def test_a_job_failed_after_running_settles_at_its_final_usage(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.set_job_status(job, "Running")
    emulator.ibm.fail_job(job, 95)
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == 95


async def test_cancelled_after_running_settles_at_its_usage(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.set_job_status(job, "Running")
    emulator.ibm.cancel_job(job, pending=True)
    assert await guard.watch_once() == 0
    emulator.ibm.finalize_usage(job, 30)
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == 30


async def test_cancelled_while_queued_settles_at_zero(
    guard: BudgetGuard, emulator: Emulator
) -> None:
    sub, job = await submit(guard)
    emulator.ibm.cancel_job(job)  # never ran: no running timestamp
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == 0
    state = await guard.ledger.state(BUDGET, now=guard.clock())
    assert (state.reserved, state.committed) == (Decimal(0), Decimal(0))


# Item 5: the older API's two figures.


async def test_older_api_commits_the_larger_of_seconds_and_quantum_seconds(
    make_guard: GuardFactory, emulator: Emulator
) -> None:
    async with make_guard(api_version="2025-01-01") as guard:
        sub, job = await submit(guard)
        emulator.ibm.complete_job(job, 7, seconds=9)  # {"quantum_seconds": 7, "seconds": 9}
        assert await guard.watch_once() == 1
        assert await committed(guard, sub) == 9, "the smaller figure was committed"


async def test_current_api_final_usage_is_committed(guard: BudgetGuard, emulator: Emulator) -> None:
    sub, job = await submit(guard)
    emulator.ibm.complete_job(job, 42)  # {"qpu_charge_time_seconds": 42, "status": "complete"}
    assert await guard.watch_once() == 1
    assert await committed(guard, sub) == 42
