"""The IBM instance limit as the service reports it, end to end through BudgetGuard and the
emulator (issue 12 items 3, 4, 9): the allocation when no limit is reported, the plan told
from what the service says (catalog-style plan ids), and the instance a job names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from quotaguard import BudgetExceeded, BudgetUnavailable, MemoryLedger
from quotaguard.errors import InvalidInput
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.rules import IBMPolicy
from quotaguard.ibm.work import IBMJob, IBMSession
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import emulated_ibm_client

KEY = "qg-plan-test-apikey-5d1e"
ACCOUNT = "acct-plan"
CRN = f"crn:v1:bluemix:public:quantum-computing:us-east:a/{ACCOUNT}:inst-1::"
CRN_2 = f"crn:v1:bluemix:public:quantum-computing:us-east:a/{ACCOUNT}:inst-2::"
FOREIGN = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-else:inst-9::"
BACKEND = "ibm_emulated"
#: A plan id as IBM's Global Catalog spells them: nothing in it names the plan.
OPAQUE = "7c4e1a52-90b3-4f0e-8a61-2d9e5b3c0f17"


@pytest.fixture
async def make_guard(emulator: Emulator, clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    emulator.ibm.add_api_key(KEY, ACCOUNT)
    opened: list[IBMRuntimeClient] = []

    def make(*, policy: IBMPolicy | None = None, **instance: Any) -> BudgetGuard:
        instance.setdefault("plan_id", "premium")
        emulator.ibm.add_instance(CRN, backends=[BACKEND], **instance)
        ibm = emulated_ibm_client(emulator, clock, KEY, CRN)
        opened.append(ibm)
        return BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock, ibm_policy=policy)

    yield make
    for client in opened:
        await client.aclose()


async def noop() -> dict[str, str]:
    return {"id": "job-1"}


# -- item 3: the allocation is the limit when the usage reply has none --------------------------


async def test_the_allocation_is_the_limit_when_no_limit_is_reported(
    make_guard: Callable[..., BudgetGuard],
) -> None:
    async with make_guard(allocation_seconds=120, consumed_seconds=100) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=30), noop)
        (violation,) = info.value.decision.violations
        assert (violation.rule, violation.budget) == ("budget.remaining", f"ibm:{CRN}")
        assert (violation.requested, violation.remaining) == (Decimal(30), Decimal(20))
        admitted = await g.submit(IBMJob(BACKEND, max_execution_time=20), noop)
        assert admitted.reservation.amount_for(f"ibm:{CRN}") == Decimal(20)


# -- item 4: the plan, from what the service says ------------------------------------------------


async def test_an_unknown_plan_with_no_limit_fails_closed_naming_the_setting(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(plan_id=OPAQUE) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=10), noop)
        (violation,) = info.value.decision.violations
        assert violation.rule == "ibm.plan.unknown"
        assert violation.budget == f"ibm:{CRN}"
        assert "IBMPolicy(plan=...)" in violation.message
        assert '[ibm] plan = "open" | "pay-as-you-go" | "flex" | "premium"' in violation.message
        assert OPAQUE in violation.message
        assert await g.ledger.outstanding() == []
    assert emulator.calls("ibm.create_job") == 0


async def test_the_plan_comes_from_the_account_endpoint(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.ibm.add_account_plan(
        ACCOUNT,
        {
            "plan_id": OPAQUE,
            "subscription_id": "sub-1",
            "subscription_name": "Open Plan",
            "backends": [BACKEND],
        },
    )
    async with make_guard(plan_id=OPAQUE, consumed_seconds=500) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=200), noop)
        (violation,) = info.value.decision.violations
        assert (violation.rule, violation.remaining) == ("budget.remaining", Decimal(100))
    assert emulator.calls("ibm.get_account") == 1


@pytest.mark.parametrize(
    ("plan", "admitted"), [("open", False), ("premium", True), ("pay-as-you-go", True)]
)
async def test_a_declared_plan_decides_when_the_service_cannot(
    make_guard: Callable[..., BudgetGuard], plan: str, admitted: bool
) -> None:
    async with make_guard(plan_id=OPAQUE, policy=IBMPolicy(plan=plan)) as g:  # type: ignore[arg-type]
        decision = await g.check(IBMJob(BACKEND, max_execution_time=1000))
        assert decision.admitted is admitted
        if not admitted:
            assert decision.violations[0].remaining == Decimal(600)  # the open plan's 600 s


async def test_the_emulator_serves_catalog_plan_ids_the_guard_reads(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(plan_id="open") as g:  # the emulator serves the catalog's id
        await g.sync()
        usage = await g.adapters[0].client.get_usage()  # type: ignore[attr-defined]
        assert usage.plan_id not in ("open", "lite", "open-plan")
        decision = await g.check(IBMJob(BACKEND, max_execution_time=601))
        assert not decision.admitted
        assert decision.violations[0].remaining == Decimal(600)


@pytest.mark.parametrize("plan", ["lite", "Open", "", None, 3])
def test_a_bad_plan_name_is_refused_naming_the_allowed_values(plan: object) -> None:
    if plan is None:
        assert IBMPolicy(plan=None).plan is None
        return
    with pytest.raises(InvalidInput) as info:
        IBMPolicy(plan=plan)  # type: ignore[arg-type]
    assert info.value.field == "plan"
    assert "'open', 'pay-as-you-go', 'flex', 'premium'" in str(info.value)


# -- item 9: the instance the job names ----------------------------------------------------------


async def test_a_job_naming_another_instance_is_charged_to_that_instance(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.ibm.add_instance(
        CRN_2, plan_id="premium", limit_seconds=50, consumed_seconds=10, backends=[BACKEND]
    )
    async with make_guard(limit_seconds=10_000) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=100, instance=CRN_2), noop)
        (violation,) = info.value.decision.violations
        assert (violation.budget, violation.remaining) == (f"ibm:{CRN_2}", Decimal(40))
        sub = await g.submit(IBMJob(BACKEND, max_execution_time=40, instance=CRN_2), noop)
        assert sub.reservation.amount_for(f"ibm:{CRN_2}") == Decimal(40)
        assert {c.budget for c in sub.reservation.charges} == {f"ibm:{CRN_2}"}
        # and the own instance is untouched
        own = await g.submit(IBMJob(BACKEND, max_execution_time=100), noop)
        assert own.reservation.amount_for(f"ibm:{CRN}") == Decimal(100)


async def test_a_job_naming_an_instance_the_client_cannot_read_is_refused(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.ibm.add_instance(FOREIGN, plan_id="premium", limit_seconds=50)
    async with make_guard(limit_seconds=10_000) as g:
        with pytest.raises(BudgetExceeded) as info:
            await g.submit(IBMJob(BACKEND, max_execution_time=10, instance=FOREIGN), noop)
        (violation,) = info.value.decision.violations
        assert violation.rule == "ibm.instance.unreadable"
        assert violation.budget == f"ibm:{FOREIGN}"
        assert FOREIGN in violation.message
        assert await g.ledger.outstanding() == []


async def test_a_job_on_another_instance_settles_from_that_instance(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.ibm.add_instance(CRN_2, plan_id="premium", limit_seconds=500, backends=[BACKEND])
    async with make_guard(limit_seconds=10_000) as g:

        async def send() -> dict[str, str]:
            emulator.ibm.add_job("job-on-2", CRN_2, cost=100)  # as IBM creates it there
            return {"id": "job-on-2"}

        sub = await g.submit(IBMJob(BACKEND, max_execution_time=100, instance=CRN_2), send)
        emulator.ibm.complete_job("job-on-2", quantum_seconds=25)
        await g.settle(sub)
        state = await g.ledger.state(f"ibm:{CRN_2}", now=emulator.clock())
        assert (state.committed, state.reserved) == (Decimal(25), 0)  # its metrics, on CRN_2


async def test_the_account_route_down_fails_closed_only_when_the_limit_hangs_on_it(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.faults.add("ibm.get_account", status=503, times=100)
    async with make_guard(plan_id=OPAQUE) as g:
        with pytest.raises(BudgetUnavailable):
            await g.submit(IBMJob(BACKEND, max_execution_time=10), noop)
        assert emulator.calls("ibm.create_job") == 0


async def test_the_account_route_down_does_not_fail_a_reported_limit(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    emulator.faults.add("ibm.get_account", status=503, times=100)
    async with make_guard(plan_id=OPAQUE, limit_seconds=100) as g:
        sub = await g.submit(IBMJob(BACKEND, max_execution_time=10), noop)
        assert sub.reservation.amount_for(f"ibm:{CRN}") == Decimal(10)


async def test_a_dedicated_session_on_an_open_plan_told_by_the_account_is_refused(
    make_guard: Callable[..., BudgetGuard],
) -> None:
    async with make_guard(plan_id="open") as g:  # served as a catalog id
        decision = await g.check(IBMSession(BACKEND, max_time=300))
        assert "ibm.open_plan.no_sessions" in decision.rules


async def test_a_cleared_open_plan_limit_still_binds_by_its_allocation(
    emulator: Emulator, make_guard: Callable[..., BudgetGuard]
) -> None:
    async with make_guard(plan_id="open", consumed_seconds=300) as g:
        ibm = g.adapters[0].client  # type: ignore[attr-defined]
        await ibm.update_instance_configuration(None)  # what `ibm-limit clear` sends
        decision = await g.check(IBMJob(BACKEND, max_execution_time=400))
        (violation,) = decision.violations
        assert (violation.requested, violation.remaining) == (Decimal(400), Decimal(300))
        reading = g.adapters[0].readings[CRN]  # type: ignore[attr-defined]
        assert (reading.limit.seconds, reading.limit.source) == (
            Decimal(600),
            "usage_allocation_seconds",
        )


@pytest.mark.parametrize("instance", ["inst-2", "crn:v1 with spaces", "crn:" + "x" * 600])
def test_an_instance_that_is_no_crn_is_refused_when_the_job_is_built(instance: str) -> None:
    with pytest.raises(InvalidInput) as info:
        IBMJob(BACKEND, max_execution_time=10, instance=instance)
    assert info.value.field == "instance"
    with pytest.raises(InvalidInput):
        IBMSession(BACKEND, max_time=60, instance=instance)


async def test_the_plan_comes_from_the_global_catalog_where_available(
    emulator: Emulator, clock: FakeClock
) -> None:
    emulator.ibm.add_api_key(KEY, ACCOUNT)
    emulator.ibm.add_instance(CRN, plan_id=OPAQUE, consumed_seconds=550, backends=[BACKEND])
    emulator.ibm.add_catalog_entry(OPAQUE, display_name="Open", pricing_type="free")
    catalog = f"{emulator.url}/globalcatalog/api/v1"
    async with (
        IBMRuntimeClient(
            KEY, CRN, base_url=f"{emulator.url}/api", iam_url=emulator.url, catalog_url=catalog
        ) as ibm,
        BudgetGuard(MemoryLedger(), ibm=ibm, clock=clock) as g,
    ):
        decision = await g.check(IBMJob(BACKEND, max_execution_time=60))
        (violation,) = decision.violations
        assert (violation.rule, violation.remaining) == ("budget.remaining", Decimal(50))
        reading = g.adapters[0].readings[CRN]  # type: ignore[attr-defined]
        assert (reading.limit.plan, reading.limit.plan_source) == ("open", "catalog")
        await g.sync()
    assert emulator.calls("ibm.get_catalog_entry") == 1  # once per plan id
    # Once a refresh: the plan's configuration (its session max_ttl) may change, its plan not.
    assert emulator.calls("ibm.get_account") == 2


def test_the_catalog_is_ibms_own_only_with_ibms_regions() -> None:
    assert IBMRuntimeClient(KEY, CRN).catalog_url == "https://globalcatalog.cloud.ibm.com/api/v1"
    assert IBMRuntimeClient(KEY, CRN, base_url="http://127.0.0.1:1/api").catalog_url is None
