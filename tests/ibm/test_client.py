"""IBMRuntimeClient against the emulator over real loopback HTTP: every operation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard.ibm import IBMRuntimeClient, JobStatus
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.ibm.state import CATALOG_PLAN_IDS
from tests._support.ibm import ACCOUNT, CRN, OPEN_CRN, ClientFactory


async def test_get_instance(client: IBMRuntimeClient) -> None:
    instance = await client.get_instance()
    assert instance.backends == ("ibm_emulated",)
    assert instance.plan_id == CATALOG_PLAN_IDS["premium"]  # a catalog id, as IBM serves
    assert instance.instance_limit_seconds == Decimal(3600)  # sent as the string "3600"
    assert instance.limit_seconds == Decimal(3600)


async def test_get_instance_configuration(client: IBMRuntimeClient) -> None:
    config = await client.get_instance_configuration()
    assert config.instance_limit == Decimal(3600)


async def test_update_instance_configuration_sets_and_resets(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    await client.update_instance_configuration(1800)
    assert (await client.get_usage()).usage_limit_seconds == Decimal(1800)
    assert emu.ibm.instances[CRN].limit_seconds == Decimal(1800)
    await client.update_instance_configuration(None)  # None removes the limit
    usage = await client.get_usage()
    assert usage.usage_limit_seconds is None
    assert usage.usage_limit_reached is None


async def test_get_usage(client: IBMRuntimeClient, emu: Emulator) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    emu.ibm.instances[CRN].usage_period = (start, datetime(2026, 12, 1, tzinfo=UTC))
    usage = await client.get_usage()
    assert usage.instance_id == CRN
    assert usage.plan_id == CATALOG_PLAN_IDS["premium"]
    assert usage.usage_consumed_seconds == Decimal("120.5")  # exact, never a float
    assert usage.usage_limit_seconds == Decimal(3600)
    assert usage.usage_limit_reached is False
    assert usage.usage_period is not None
    assert usage.usage_period.start_time == start


async def test_open_plan_usage_defaults_to_600_seconds(make_client: ClientFactory) -> None:
    usage = await make_client(service_crn=OPEN_CRN).get_usage()
    assert usage.plan_id == CATALOG_PLAN_IDS["open"]
    assert usage.usage_limit_seconds == Decimal(600)
    assert usage.usage_allocation_seconds == Decimal(600)
    assert usage.usage_consumed_seconds == Decimal(100)


async def test_get_account_default_and_seeded(client: IBMRuntimeClient, emu: Emulator) -> None:
    # The account's instances list their plans under their catalog ids and names.
    seeded = await client.get_account(ACCOUNT)
    names = {p.plan_id: p.subscription_name for p in seeded.plans}
    assert names == {
        CATALOG_PLAN_IDS["premium"]: "Premium Plan",
        CATALOG_PLAN_IDS["open"]: "Open Plan",
    }
    default = await client.get_account("acct-without-instances")
    assert [p.plan_id for p in default.plans] == [CATALOG_PLAN_IDS["open"]]
    emu.ibm.add_account_plan(
        ACCOUNT,
        {
            "plan_id": "flex",
            "subscription_id": "sub-1",
            "subscription_name": "Flex",
            "backends": ["ibm_emulated"],
            "usage_allocation_seconds": 7200,
            "max_ttl": 28800,
            "start_time": "2026-01-01T00:00:00Z",
            "functions": [
                {
                    "provider": "ibm",
                    "name": "circuit-function",
                    "business_model": "trial",
                    "permissions": ["function.run"],
                }
            ],
            "unallocated_usage_seconds": 3600,
        },
    )
    account = await client.get_account(ACCOUNT, plan_id=CATALOG_PLAN_IDS["flex"])
    (plan,) = account.plans
    assert plan.usage_allocation_seconds == 7200
    assert plan.unallocated_usage_seconds == 3600
    assert plan.start_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert plan.functions[0].permissions == ("function.run",)


async def test_get_job_and_metrics(client: IBMRuntimeClient, emu: Emulator) -> None:
    emu.ibm.add_job("job-1", CRN, backend="ibm_emulated", cost=300)
    job = await client.get_job("job-1")
    assert job.status is JobStatus.QUEUED
    assert job.backend == "ibm_emulated"
    assert job.cost == 300
    assert (await client.get_job_metrics("job-1")).usage.billed_seconds is None
    emu.ibm.complete_job("job-1", quantum_seconds=Decimal("42.25"))
    assert (await client.get_job("job-1")).status is JobStatus.COMPLETED
    metrics = await client.get_job_metrics("job-1")
    assert metrics.usage.qpu_charge_time_seconds == Decimal("42.25")
    assert metrics.usage.billed_seconds == Decimal("42.25")
    assert (metrics.usage.status, metrics.usage.final) == ("complete", True)
    # completing a job counts its seconds into the instance's usage
    assert (await client.get_usage()).usage_consumed_seconds == Decimal("162.75")


async def test_job_metrics_older_api_version_reads_quantum_seconds(
    make_client: ClientFactory, emu: Emulator
) -> None:
    emu.ibm.add_job("job-2", CRN)
    emu.ibm.complete_job("job-2", quantum_seconds=7, seconds=9)
    metrics = await make_client(api_version="2025-01-01").get_job_metrics("job-2")
    assert metrics.usage.qpu_charge_time_seconds is None
    assert (metrics.usage.quantum_seconds, metrics.usage.seconds) == (7, 9)
    assert metrics.usage.billed_seconds == Decimal(9)  # the larger
    assert metrics.usage.final  # the older API has no status: its figures are final


async def test_get_session_remaining(
    client: IBMRuntimeClient, emu: Emulator, clock: FakeClock
) -> None:
    emu.ibm.add_session(
        "sess-1", CRN, max_ttl=600, interactive_ttl=60, started_at=clock() - timedelta(seconds=500)
    )
    session = await client.get_session("sess-1")
    assert session.mode == "dedicated"
    assert session.max_ttl == 600
    assert session.state == "active"
    assert session.remaining_seconds(clock()) == Decimal(100)
    clock.advance(seconds=200)
    after = await client.get_session("sess-1")
    assert after.state == "closed"
    assert after.remaining_seconds(clock()) == Decimal(0)


async def test_experimental_prefix_as_qiskit_uses_it(
    make_client: ClientFactory, emu: Emulator
) -> None:
    client = make_client(base_url=emu.url + "/experimental/api")
    assert (await client.get_usage()).instance_id == CRN
    assert emu.requests[-1].path == "/experimental/api/v1/instances/usage"
    assert emu.requests[-1].route == "ibm.get_usage"


async def test_region_and_repr() -> None:
    eu = "crn:v1:bluemix:public:quantum-computing:eu-de:a/acct-1:inst-1::"
    async with IBMRuntimeClient("k", eu) as client:
        assert client.base_url == "https://eu-de.quantum.cloud.ibm.com/api"
    async with IBMRuntimeClient("k", CRN, region="eu-de") as client:
        assert client.base_url == "https://eu-de.quantum.cloud.ibm.com/api"
    async with IBMRuntimeClient("k", CRN) as client:
        assert client.base_url == "https://quantum.cloud.ibm.com/api"
        assert client.iam_url == "https://iam.cloud.ibm.com"
        assert CRN in repr(client)
