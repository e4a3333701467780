"""IBM sessions and batches end to end: BudgetGuard, a real IBMRuntimeClient, the emulator.

What is held is the worst case IBM can bill (docs/ibm.md, "Session formulas"):
- a dedicated session: ``max_time`` at open, raised to ``max_time`` + the largest ceiling of
  a job admitted into it (a running job continues past ``max_time``);
- a batch: the sum of its jobs' ceilings (batch usage is its jobs' QPU time; they may run in
  parallel, so no wall-clock bound applies);
- the plan's session maximum is the account endpoint's ``max_ttl`` for the instance's plan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal

import pytest

from quotaguard import BudgetExceeded, MemoryLedger, ReservationState
from quotaguard.guard import BudgetGuard, Submission
from quotaguard.ibm import IBMJob, IBMRuntimeClient, IBMSession
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.ibm.state import CATALOG_PLAN_IDS
from tests._support.ibm import ACCOUNT, API_KEY, CRN, emulated_ibm_client

KEY = f"ibm:{CRN}"
BACKEND = "ibm_emulated"


@asynccontextmanager
async def guarded(
    emulator: Emulator, clock: FakeClock, limit: int
) -> AsyncIterator[tuple[BudgetGuard, IBMRuntimeClient, MemoryLedger]]:
    emulator.ibm.add_api_key(API_KEY, ACCOUNT)
    emulator.ibm.add_instance(CRN, plan_id="premium", limit_seconds=limit, backends=[BACKEND])
    async with (
        emulated_ibm_client(emulator, clock, API_KEY, CRN) as ibm,
        MemoryLedger() as ledger,
        BudgetGuard(ledger, ibm=ibm, clock=clock) as guard,
    ):
        yield guard, ibm, ledger


def open_session(ibm: IBMRuntimeClient, work: IBMSession) -> Callable[[], Awaitable[str]]:
    return lambda: ibm.create_session(work.backend, mode=work.mode, max_ttl=work.max_time)


def run(ibm: IBMRuntimeClient, job: IBMJob) -> Callable[[], Awaitable[str]]:
    return lambda: ibm.run_job(
        "sampler", job.backend, {}, max_execution_time=job.max_execution_time,
        session_id=job.session_id,
    )  # fmt: skip


async def held(ledger: MemoryLedger, clock: FakeClock) -> Decimal:
    return (await ledger.state(KEY, now=clock())).reserved


async def submit_session(guard: BudgetGuard, ibm: IBMRuntimeClient, work: IBMSession) -> str:
    sub = await guard.submit(work, open_session(ibm, work))
    assert sub.external_id is not None
    return sub.external_id.removeprefix("ibm-session:")


async def submit_job(
    guard: BudgetGuard, ibm: IBMRuntimeClient, sid: str | None, ceiling: int
) -> Submission:
    job = IBMJob(BACKEND, max_execution_time=ceiling, session_id=sid)
    return await guard.submit(job, run(ibm, job))


# -- dedicated sessions: max_time + the largest ceiling -------------------------------------


async def test_two_jobs_at_max_ttl_need_max_time_plus_one_ceiling(
    emulator: Emulator, clock: FakeClock
) -> None:
    # The session has not started, so IBM says its whole max_ttl (100 s) is left: both jobs
    # "fit". The first can still be running when the session ends: 100 + 100 can be billed.
    async with guarded(emulator, clock, limit=199) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=100))
        with pytest.raises(BudgetExceeded) as info:
            await submit_job(guard, ibm, sid, 100)
        (violation,) = info.value.decision.violations
        assert (violation.rule, violation.requested, violation.remaining) == (
            "budget.remaining", Decimal(100), Decimal(99),
        )  # fmt: skip
        assert emulator.calls("ibm.create_job") == 0
        assert await held(ledger, clock) == 100


async def test_two_jobs_at_max_ttl_exactly_fit(emulator: Emulator, clock: FakeClock) -> None:
    async with guarded(emulator, clock, limit=200) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=100))
        first = await submit_job(guard, ibm, sid, 100)
        second = await submit_job(guard, ibm, sid, 100)
        assert first.reservation.amount_for(KEY) == 100  # raises the hold to 100 + 100
        assert second.reservation.amount_for(KEY) == 0  # the largest ceiling is held already
        assert await held(ledger, clock) == 200


async def test_max_time_plus_the_largest_ceiling_is_held(
    emulator: Emulator, clock: FakeClock
) -> None:
    async with guarded(emulator, clock, limit=1300) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=1000))
        assert await held(ledger, clock) == 1000
        await submit_job(guard, ibm, sid, 200)
        assert await held(ledger, clock) == 1200
        await submit_job(guard, ibm, sid, 300)  # raises by 100: the largest is now 300
        await submit_job(guard, ibm, sid, 300)
        await submit_job(guard, ibm, sid, 50)
        assert await held(ledger, clock) == 1300  # exactly fits
        with pytest.raises(BudgetExceeded) as info:
            await submit_job(guard, ibm, sid, 301)  # one second over
        (violation,) = info.value.decision.violations
        assert (violation.requested, violation.remaining) == (Decimal(1), Decimal(0))


async def test_a_job_running_past_max_time_is_billed_and_committed(
    emulator: Emulator, clock: FakeClock
) -> None:
    async with guarded(emulator, clock, limit=10_000) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=300))
        first, second, queued = [await submit_job(guard, ibm, sid, c) for c in (300, 300, 10)]
        assert await held(ledger, clock) == 600
        ids = [s.external_id for s in (first, second, queued)]
        assert None not in ids
        a, b, c = (str(i) for i in ids)
        emulator.ibm.set_job_status(a, "Running")  # starts the session's timer
        clock.advance(seconds=280)
        emulator.ibm.complete_job(a, quantum_seconds=270)
        emulator.ibm.set_job_status(b, "Running")  # jobs run one at a time
        clock.advance(seconds=20)  # max_time: the queued job fails, the running one goes on
        assert await guard.watch_once() == 0  # every job's hold waits for the session's end
        assert emulator.ibm.jobs[c].status == "Failed"
        assert (await ledger.state(KEY, now=clock())).reserved == 600  # b may still run
        clock.advance(seconds=200)
        emulator.ibm.complete_job(b, quantum_seconds=190)
        session = await ibm.get_session(sid)
        assert (session.state, session.elapsed_time) == ("closed", Decimal(500))
        while await guard.watch_once():
            pass
        state = await ledger.state(KEY, now=clock())
        assert (state.committed, state.reserved) == (Decimal(500), 0)  # 300 + 200 past it
        assert (await ledger.get(second.id)).state is ReservationState.COMMITTED


async def test_a_job_that_outlives_a_closed_session_commits_what_it_ran_past_it(
    emulator: Emulator, clock: FakeClock
) -> None:
    # Should IBM report a session closed while one of its jobs still runs, the job's part of
    # the hold stays, and it commits what the job ran past the session's closed_at.
    async with guarded(emulator, clock, limit=10_000) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=100))
        job = await submit_job(guard, ibm, sid, 100)
        assert job.external_id is not None
        emulator.ibm.set_job_status(job.external_id, "Running")
        clock.advance(seconds=100)
        emulator.ibm.sessions[sid].closed_at = clock()  # closed at max_time, job running
        assert await guard.watch_once() == 1  # the session: 100 s
        assert (await ledger.state(KEY, now=clock())).reserved == 100  # the job's part stays
        clock.advance(seconds=30)
        emulator.ibm.complete_job(job.external_id, quantum_seconds=120)
        assert await guard.watch_once() == 1
        state = await ledger.state(KEY, now=clock())
        assert (state.committed, state.reserved) == (Decimal(130), 0)


# -- batches: the sum of the jobs' ceilings -------------------------------------------------


async def test_a_batch_holds_the_sum_of_its_jobs_ceilings(
    emulator: Emulator, clock: FakeClock
) -> None:
    async with guarded(emulator, clock, limit=900) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=600, mode="batch"))
        assert await held(ledger, clock) == 0  # a batch bills its jobs' QPU time only
        for _ in range(3):  # may all run at once: each can bill its whole ceiling
            sub = await submit_job(guard, ibm, sid, 300)
            assert sub.reservation.amount_for(KEY) == 300
        assert await held(ledger, clock) == 900  # exactly fits
        with pytest.raises(BudgetExceeded) as info:
            await submit_job(guard, ibm, sid, 1)  # one second over
        assert info.value.decision.rules == ("budget.remaining",)


async def test_batch_jobs_settle_at_their_usage_and_the_batch_at_zero(
    emulator: Emulator, clock: FakeClock
) -> None:
    async with guarded(emulator, clock, limit=10_000) as (guard, ibm, ledger):
        sid = await submit_session(guard, ibm, IBMSession(BACKEND, max_time=600, mode="batch"))
        jobs = [await submit_job(guard, ibm, sid, 300) for _ in range(2)]
        for sub in jobs:
            assert sub.external_id is not None
            emulator.ibm.set_job_status(sub.external_id, "Running")
        clock.advance(seconds=10)
        for sub, used in zip(jobs, (40, 70), strict=True):
            assert sub.external_id is not None
            emulator.ibm.complete_job(sub.external_id, quantum_seconds=used)
        assert (await ibm.get_session(sid)).elapsed_time == Decimal(110)  # the jobs' QPU time
        emulator.ibm.close_session(sid)
        while await guard.watch_once():
            pass
        state = await ledger.state(KEY, now=clock())
        assert (state.committed, state.reserved) == (Decimal(110), 0)


# -- the plan's session maximum from GET /v1/accounts/{id} ----------------------------------


def seed_plan(emulator: Emulator, max_ttl: int) -> None:
    # Under the catalog id the instance serves (before add_instance, which then adds none).
    emulator.ibm.add_account_plan(
        ACCOUNT,
        {
            "plan_id": CATALOG_PLAN_IDS["premium"],
            "subscription_id": "sub-1",
            "subscription_name": "Premium",
            "backends": [BACKEND],
            "max_ttl": max_ttl,
        },
    )


async def test_the_plan_max_ttl_comes_from_the_account_endpoint(
    emulator: Emulator, clock: FakeClock
) -> None:
    seed_plan(emulator, 3600)
    async with guarded(emulator, clock, limit=100_000) as (guard, ibm, _):
        sub = await guard.submit(IBMSession(BACKEND), open_session(ibm, IBMSession(BACKEND)))
        assert sub.reservation.amount_for(KEY) == 3600  # the plan's default, not 8 h
        assert (await ibm.get_session(sub.external_id.removeprefix("ibm-session:"))).max_ttl == (
            3600
        )  # the emulator opens it with the plan's max_ttl too
        await guard.submit(IBMSession(BACKEND, "1h"), open_session(ibm, IBMSession(BACKEND, "1h")))
        with pytest.raises(BudgetExceeded) as info:
            await guard.submit(IBMSession(BACKEND, 3601), lambda: pytest.fail("sent"))
        (violation,) = info.value.decision.violations
        assert violation.rule == "ibm.session.ttl_order"
        assert "the plan's max_ttl (3600 s)" in violation.message


async def test_the_plan_max_ttl_falls_back_to_the_policy(
    emulator: Emulator, clock: FakeClock
) -> None:
    # The account's configuration of this instance's plan has no max_ttl: the policy's 8 h.
    async with guarded(emulator, clock, limit=100_000) as (guard, ibm, _):
        for plan in emulator.ibm.account_plans[ACCOUNT]:
            plan.pop("max_ttl", None)
        sub = await guard.submit(IBMSession(BACKEND), open_session(ibm, IBMSession(BACKEND)))
        assert sub.reservation.amount_for(KEY) == 28_800
        reads = emulator.calls("ibm.get_account")
        await guard.submit(IBMSession(BACKEND), open_session(ibm, IBMSession(BACKEND)))
        assert emulator.calls("ibm.get_account") == reads  # cached, not read per submission


async def test_the_plans_max_ttl_stands_through_an_account_route_outage(
    emulator: Emulator, clock: FakeClock
) -> None:
    # One read a refresh serves both the plan and its max_ttl; when the route is down on a
    # later refresh (and the limit does not hang on it), the last configuration read stands.
    seed_plan(emulator, 3600)
    async with guarded(emulator, clock, limit=100_000) as (guard, ibm, _):
        await guard.sync()
        emulator.faults.add("ibm.get_account", status=503, times=100)
        await guard.sync()
        sub = await guard.submit(IBMSession(BACKEND), open_session(ibm, IBMSession(BACKEND)))
        assert sub.reservation.amount_for(KEY) == 3600
    assert emulator.calls("ibm.get_usage") == emulator.calls("ibm.get_account") == 2


async def test_an_unreadable_account_endpoint_falls_back_to_the_policy(
    emulator: Emulator, clock: FakeClock
) -> None:
    seed_plan(emulator, 3600)
    emulator.faults.add("ibm.get_account", status=403, times=100)
    async with guarded(emulator, clock, limit=100_000) as (guard, ibm, _):
        sub = await guard.submit(IBMSession(BACKEND), open_session(ibm, IBMSession(BACKEND)))
        assert sub.reservation.amount_for(KEY) == 28_800
