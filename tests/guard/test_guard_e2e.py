"""The guard end to end: real IBM and Braket clients against the emulator over loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import botocore.session
import pytest

from quotaguard import (
    Budget,
    BudgetExceeded,
    BudgetUnavailable,
    ReservationState,
    SQLiteLedger,
    Unit,
)
from quotaguard.braket.client import BraketClient
from quotaguard.braket.pricing import Price
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.seed import DemoSeed, seed_demo
from tests._support.secrets import GUARD_AWS_SECRET_KEY

ACTION = (
    '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}, '
    '"source": "OPENQASM 3;"}'
)


@attrs.define
class World:
    emu: Emulator
    seed: DemoSeed
    ibm: IBMRuntimeClient
    braket: BraketClient
    clock: FakeClock
    ledger: SQLiteLedger

    def guard(self, **kwargs: object) -> BudgetGuard:
        return BudgetGuard(
            self.ledger, ibm=self.ibm, braket=self.braket, clock=self.clock, **kwargs
        )  # type: ignore[arg-type]

    def ibm_client(self, crn: str) -> IBMRuntimeClient:
        """A client for another instance of the same emulated account."""
        return IBMRuntimeClient(self.seed.api_key, crn, base_url=f"{self.emu.url}/api",
                                iam_url=self.emu.url, clock=self.clock)  # fmt: skip

    def run_ibm(self, job: IBMJob):  # type: ignore[no-untyped-def]
        return lambda: self.ibm.run_job(
            "sampler",
            job.backend,
            {"pubs": []},
            max_execution_time=job.max_execution_time,
            session_id=job.session_id,
        )

    def run_braket(self, task: BraketTask, n: int = 0):  # type: ignore[no-untyped-def]
        return lambda: self.braket.create_quantum_task(
            task.device_arn, ACTION, task.effective_shots, "amazon-braket-test", f"t/{n}"
        )


@pytest.fixture
async def world(emulator: Emulator, clock: FakeClock, tmp_path: Path) -> AsyncIterator[World]:
    seed = seed_demo(emulator)
    creds = botocore.session.Session()
    creds.set_credentials("AKIDTEST", GUARD_AWS_SECRET_KEY)
    emulator.braket.add_credentials("AKIDTEST", GUARD_AWS_SECRET_KEY)
    async with (
        IBMRuntimeClient(
            seed.api_key,
            seed.service_crn,
            base_url=f"{emulator.url}/api",
            iam_url=emulator.url,
            clock=clock,
            timeout=2,
        ) as ibm,
        BraketClient(
            seed.region, endpoint_url=emulator.url, botocore_session=creds, timeout=2
        ) as braket,
        SQLiteLedger(tmp_path / "ledger.sqlite3", time_source="caller") as ledger,
    ):
        yield World(emulator, seed, ibm, braket, clock, ledger)


async def test_200_concurrent_mixed_submissions_never_overspend(world: World) -> None:
    async with world.guard() as guard:
        work: list[tuple[object, object]] = []
        for n in range(100):
            job = IBMJob(world.seed.backend, max_execution_time=30)
            work.append((job, world.run_ibm(job)))
            task = BraketTask(world.seed.device_arn, shots=100)  # $0.30 + 100 x $0.08
            work.append((task, world.run_braket(task, n)))
        results = await asyncio.gather(
            *(guard.submit(w, send) for w, send in work), return_exceptions=True
        )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    rejected = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, BudgetExceeded) and r.source == "local" for r in rejected)
    assert {v.rule for r in rejected for v in r.decision.violations} == {"budget.remaining"}
    assert all(
        v.budget and v.remaining is not None for r in rejected for v in r.decision.violations
    )
    ibm_sent = sum(isinstance(s.work, IBMJob) for s in admitted)
    braket_sent = len(admitted) - ibm_sent
    assert ibm_sent == 20  # 600 s open plan / 30 s each
    assert braket_sent == 6  # $50 limit / $8.30 each
    # The server saw exactly the admitted work and refused none of it.
    assert world.emu.calls("ibm.create_job") == ibm_sent
    assert world.emu.calls("braket.CreateQuantumTask") == braket_sent
    limit = world.emu.braket.limit_for(world.seed.device_arn)
    assert limit is not None
    assert limit.total + limit.queued == Decimal("49.80") <= limit.amount


async def test_steady_state_makes_no_provider_reads_per_submission(world: World) -> None:
    async with world.guard() as guard:
        for n in range(5):
            job = IBMJob(world.seed.backend, max_execution_time=10)
            await guard.submit(job, world.run_ibm(job))
            task = BraketTask(world.seed.device_arn, shots=10)
            await guard.submit(task, world.run_braket(task, n))
        assert world.emu.calls("ibm.get_usage") == 1
        assert world.emu.calls("braket.SearchSpendingLimits") == 1
        world.clock.advance(seconds=61)  # past state_ttl: one refresh each
        job = IBMJob(world.seed.backend, max_execution_time=10)
        await guard.submit(job, world.run_ibm(job))
        assert world.emu.calls("ibm.get_usage") == 2


async def test_provider_down_fails_closed(world: World) -> None:
    world.emu.faults.add("ibm.get_usage", status=503, times=50)
    async with world.guard() as guard:
        job = IBMJob(world.seed.backend, max_execution_time=10)
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(job, world.run_ibm(job))
    assert "none newer than 600 s is cached" in str(info.value)  # seconds, not "0:10:00"
    assert world.emu.calls("ibm.create_job") == 0
    assert await world.ledger.outstanding() == []


async def test_provider_down_fails_open_with_one_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.emu.faults.add("braket.SearchSpendingLimits", status=500, times=50)
    caplog.set_level(logging.WARNING, "quotaguard")
    async with world.guard(fail_mode="open") as guard:
        for n in range(3):
            task = BraketTask(world.seed.device_arn, shots=10)
            sub = await guard.submit(task, world.run_braket(task, n))
            assert sub.external_id is not None
    warnings = [r for r in caplog.records if "fail_mode=open" in r.getMessage()]
    assert len(warnings) == 1
    assert world.emu.calls("braket.CreateQuantumTask") == 3


async def test_cached_state_is_served_until_max_staleness(world: World) -> None:
    async with world.guard(
        state_ttl=timedelta(seconds=60), max_staleness=timedelta(seconds=300)
    ) as guard:
        job = IBMJob(world.seed.backend, max_execution_time=10)
        await guard.submit(job, world.run_ibm(job))
        world.emu.faults.add("ibm.get_usage", status=503, times=1000)
        world.clock.advance(seconds=120)  # stale, but within max_staleness
        await guard.submit(job, world.run_ibm(job))
        world.clock.advance(seconds=300)  # beyond it
        with pytest.raises(BudgetUnavailable):
            await guard.submit(job, world.run_ibm(job))
    assert world.emu.calls("ibm.create_job") == 2


async def test_server_rejection_releases_and_names_the_server(world: World) -> None:
    async with world.guard() as guard:
        task = BraketTask(world.seed.device_arn, shots=100)
        await guard.submit(task, world.run_braket(task, 1))  # caches the $50 limit
        # Someone else spends on the device meanwhile; our cached view is now behind.
        limit = world.emu.braket.limit_for(world.seed.device_arn)
        assert limit is not None
        limit.total += Decimal("40")
        with pytest.raises(BudgetExceeded) as info:
            await guard.submit(task, world.run_braket(task, 2))
        assert info.value.source == "server"
        assert [v.rule for v in info.value.decision.violations] == ["braket.spending_limit.server"]
        held = await world.ledger.outstanding()
        assert len(held) == 1  # only the first task's reservation


async def test_settlement_commits_actual_costs(world: World) -> None:
    async with world.guard() as guard:
        await guard.add_budget(Budget("team:q", Unit.USD, Decimal("100")))
        task = BraketTask(world.seed.device_arn, shots=100)
        done = await guard.submit(task, world.run_braket(task, 1), budgets=["team:q"])
        failed = await guard.submit(task, world.run_braket(task, 2), budgets=["team:q"])
        job = IBMJob(world.seed.backend, max_execution_time=300)
        ibm_job = await guard.submit(job, world.run_ibm(job))
        assert await guard.watch_once() == 0  # nothing has ended yet
        assert done.external_id and failed.external_id and ibm_job.external_id
        world.emu.braket.complete_task(done.external_id)
        world.emu.braket.fail_task(failed.external_id)
        world.emu.ibm.complete_job(ibm_job.external_id, quantum_seconds=42)
        assert await guard.watch_once() == 3
        now = world.clock()
        team = await world.ledger.state("team:q", now=now)
        assert (team.committed, team.reserved) == (Decimal("8.3"), 0)
        ibm_state = await world.ledger.state(f"ibm:{world.seed.service_crn}", now=now)
        assert (ibm_state.committed, ibm_state.reserved) == (Decimal(42), 0)
        settled = await world.ledger.get(ibm_job.id)
        assert settled.state is ReservationState.COMMITTED
        assert await guard.settle(ibm_job) == settled  # exactly once


async def test_job_into_a_session_must_fit_its_remaining_time(world: World) -> None:
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/demo::premium"
    world.emu.ibm.add_instance(
        crn, plan_id="premium", limit_seconds=100_000, backends=[world.seed.backend]
    )
    started = world.clock() - timedelta(seconds=3500)
    world.emu.ibm.add_session(
        "sess-1", crn, backend=world.seed.backend, max_ttl=3600, started_at=started
    )
    async with (
        world.ibm_client(crn) as ibm,
        BudgetGuard(world.ledger, ibm=ibm, clock=world.clock) as guard,
    ):
        job = IBMJob(world.seed.backend, max_execution_time=300, session_id="sess-1")
        with pytest.raises(BudgetExceeded) as info:
            await guard.submit(job, lambda: pytest.fail("sent"))
        (violation,) = info.value.decision.violations
        assert violation.rule == "ibm.session.remaining"
        assert violation.remaining == Decimal(100)
        session = IBMSession(world.seed.backend, max_time="1h")
        sub = await guard.submit(
            session, lambda: ibm.create_session(world.seed.backend, max_ttl=3600)
        )
        assert sub.external_id is not None
        assert sub.external_id.startswith("ibm-session:")
        assert sub.reservation.amount_for(f"ibm:{crn}") == Decimal(3600)


async def test_open_plan_cannot_open_a_session(world: World) -> None:
    async with world.guard() as guard:
        with pytest.raises(BudgetExceeded) as info:
            await guard.submit(
                IBMSession(world.seed.backend, max_time=60), lambda: pytest.fail("sent")
            )
    assert "ibm.open_plan.no_sessions" in info.value.decision.rules


async def test_fail_open_keeps_charging_the_last_known_limit(world: World) -> None:
    key = f"braket:{world.seed.device_arn}"
    async with world.guard(fail_mode="open") as guard:
        task = BraketTask(world.seed.device_arn, shots=100)
        await guard.submit(task, world.run_braket(task, 1))
        world.emu.faults.add("braket.SearchSpendingLimits", status=503, times=1000)
        world.clock.advance(minutes=30)  # beyond max_staleness: the provider is "down"
        sub = await guard.submit(task, world.run_braket(task, 2))
        assert sub.reservation.amount_for(key) == Decimal("8.30")
        state = await world.ledger.state(key, now=world.clock())
        assert state.reserved == Decimal("16.6")


async def test_a_caller_priced_task_settles_at_its_reserved_price(world: World) -> None:
    device = "arn:aws:braket:us-east-1::device/qpu/acme/Prototype-1"
    world.emu.braket.add_device(device, per_task="0.50", per_shot="0.01")
    async with world.guard() as guard:
        await guard.add_budget(Budget("team:p", Unit.USD, Decimal("100")))
        task = BraketTask(
            device,
            shots=10,
            price_override=Price(per_task=Decimal("0.50"), per_shot=Decimal("0.01")),
        )
        sub = await guard.submit(task, world.run_braket(task, 1), budgets=["team:p"])
        assert sub.external_id is not None
        world.emu.braket.complete_task(sub.external_id)
        assert await guard.watch_once() == 1
        team = await world.ledger.state("team:p", now=world.clock())
        assert team.committed == Decimal("0.6")


async def test_completed_job_without_a_usage_figure_waits_for_it(world: World) -> None:
    async with world.guard() as guard:
        job = IBMJob(world.seed.backend, max_execution_time=60)
        sub = await guard.submit(job, world.run_ibm(job))
        assert sub.external_id is not None
        world.emu.ibm.set_job_status(sub.external_id, "Completed")  # metrics carry no usage yet
        assert await guard.watch_once() == 0
        assert (await world.ledger.get(sub.id)).state is ReservationState.HELD
        world.emu.ibm.jobs[sub.external_id].quantum_seconds = Decimal(7)
        assert await guard.watch_once() == 1
        state = await world.ledger.state(f"ibm:{world.seed.service_crn}", now=world.clock())
        assert state.committed == Decimal(7)


async def test_a_job_in_a_session_nobody_reserved_is_charged_in_full(world: World) -> None:
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/demo::premium2"
    world.emu.ibm.add_instance(
        crn, plan_id="premium", limit_seconds=500, backends=[world.seed.backend]
    )
    world.emu.ibm.add_session("outside", crn, backend=world.seed.backend, max_ttl=28800)
    async with (
        world.ibm_client(crn) as ibm,
        BudgetGuard(world.ledger, ibm=ibm, clock=world.clock) as guard,
    ):
        job = IBMJob(world.seed.backend, max_execution_time=300, session_id="outside")
        sub = await guard.submit(
            job,
            lambda: ibm.run_job(
                "sampler", job.backend, {}, max_execution_time=300, session_id="outside"
            ),
        )
        assert sub.reservation.amount_for(f"ibm:{crn}") == Decimal(300)
        with pytest.raises(BudgetExceeded):
            await guard.submit(job, lambda: pytest.fail("sent"))
        # Inside a session the guard opened, jobs draw only what raises the session's hold.
        opened = await guard.submit(
            IBMSession(world.seed.backend, max_time=100),
            lambda: ibm.create_session(world.seed.backend, max_ttl=100),
        )
        assert opened.external_id is not None
        sid = opened.external_id.removeprefix("ibm-session:")
        inner = IBMJob(world.seed.backend, max_execution_time=60, session_id=sid)
        sub2 = await guard.submit(
            inner,
            lambda: ibm.run_job(
                "sampler", inner.backend, {}, max_execution_time=60, session_id=sid
            ),
        )
        # It raises the session's hold to max_time + its ceiling: it may run past max_time.
        assert sub2.reservation.amount_for(f"ibm:{crn}") == Decimal(60)
        assert sub2.external_id is not None
        world.emu.ibm.set_job_status(sub2.external_id, "Running")
        world.clock.advance(seconds=40)
        world.emu.ibm.complete_job(sub2.external_id, quantum_seconds=35)
        # Its part of the hold lasts as long as the session can bill.
        assert (await guard.settle(sub2)).state is ReservationState.HELD
        world.emu.ibm.close_session(sid)
        session = await guard.settle(opened)
        assert session.actual is not None
        assert [c.amount for c in session.actual] == [40]  # the session bills wall-clock
        settled = await guard.settle(sub2)
        assert settled.actual is not None
        assert [c.amount for c in settled.actual] == [0]  # inside the session's time


async def test_simulator_tasks_settle_by_their_duration(world: World) -> None:
    sv1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
    async with world.guard() as guard:
        await guard.add_budget(Budget("team:sim", Unit.USD, Decimal("100")))
        task = BraketTask(sv1, shots=100, max_duration=timedelta(minutes=15))
        sub = await guard.submit(task, world.run_braket(task, 1), budgets=["team:sim"])
        assert sub.external_id is not None
        world.clock.advance(minutes=10)
        world.emu.braket.complete_task(sub.external_id)
        assert await guard.watch_once() == 1
        team = await world.ledger.state("team:sim", now=world.clock())
        assert team.committed == Decimal("0.75")  # 10 min x $0.075


async def test_a_lagging_usage_report_does_not_erase_local_spend(world: World) -> None:
    crn = world.seed.service_crn
    world.emu.ibm.instances[crn].consumed_seconds = Decimal(50)  # spent elsewhere
    key = f"ibm:{crn}"
    async with world.guard() as guard:
        job = IBMJob(world.seed.backend, max_execution_time=60)
        sub = await guard.submit(job, world.run_ibm(job))
        await guard.settle(sub, actual=Decimal(40))  # finished; IBM has not counted it yet
        world.clock.advance(seconds=61)
        await guard.sync()  # IBM still reports 50: the 40 must not disappear
        state = await world.ledger.state(key, now=world.clock())
        assert state.used == Decimal(90)


async def test_work_whose_lease_lapsed_unwatched_is_still_charged(world: World) -> None:
    # The process was down longer than the lease: the hold lapsed, but the task ran.
    async with world.guard(lease=timedelta(minutes=10)) as guard:
        await guard.add_budget(Budget("team:l", Unit.USD, Decimal("100")))
        task = BraketTask(world.seed.device_arn, shots=100)
        sub = await guard.submit(task, world.run_braket(task, 1), budgets=["team:l"])
        assert sub.external_id is not None
        now = world.clock.advance(minutes=30)
        assert await world.ledger.expire(now=now) == 1
        lapsed = await world.ledger.state("team:l", now=now)
        assert (lapsed.committed, lapsed.reserved) == (0, 0)  # nothing counts it any more
        assert await guard.watch_once() == 0  # still running: owed, not yet known
        world.emu.braket.complete_task(sub.external_id)
        assert await guard.watch_once() == 1
        team = await world.ledger.state("team:l", now=now)
        assert team.committed == Decimal("8.3")
        assert await world.ledger.lapsed() == []
        assert await guard.watch_once() == 0  # charged exactly once
        assert (await world.ledger.state("team:l", now=now)).committed == Decimal("8.3")
