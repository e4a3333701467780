"""The emulator's sessions and batches, read through the real client: timers that start with
the first job, queued jobs failed at max_ttl, running jobs that go on past it and the bill
that goes on with them, batches billed by their jobs' QPU time, the plan's max_ttl."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quotaguard.errors import BadRequest
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from quotaguard.testing.ibm.state import CATALOG_PLAN_IDS
from tests._support.ibm import ACCOUNT, CRN, ClientFactory


@pytest.fixture
def client(make_client: ClientFactory) -> IBMRuntimeClient:
    return make_client()


async def usage(client: IBMRuntimeClient) -> Decimal:
    return (await client.get_usage()).usage_consumed_seconds


async def test_a_running_job_carries_the_session_past_max_ttl(
    client: IBMRuntimeClient, emu: Emulator, clock: FakeClock
) -> None:
    before = await usage(client)
    sid = await client.create_session("ibm_emulated", max_ttl=100)
    assert (await client.get_session(sid)).state == "open"  # not started: no timer yet
    clock.advance(seconds=30)
    running = await client.run_job("sampler", "ibm_emulated", {}, session_id=sid)
    queued = await client.run_job("sampler", "ibm_emulated", {}, session_id=sid)
    emu.ibm.set_job_status(running, "Running")  # the timer starts with the first job
    clock.advance(seconds=100)
    session = await client.get_session(sid)
    assert (session.state, session.elapsed_time, session.accepting_jobs) == (
        "active", Decimal(100), False,
    )  # fmt: skip
    assert (await client.get_job(queued)).status == "Failed"  # queued at max_ttl: failed
    with pytest.raises(BadRequest):
        await client.run_job("sampler", "ibm_emulated", {}, session_id=sid)
    clock.advance(seconds=40)
    assert (await client.get_session(sid)).elapsed_time == Decimal(140)  # still billing
    emu.ibm.complete_job(running, quantum_seconds=90)
    clock.advance(seconds=60)
    session = await client.get_session(sid)
    assert (session.state, session.elapsed_time) == ("closed", Decimal(140))
    assert await usage(client) == before + 140  # wall-clock, billed once; not the job's 90


async def test_a_closed_session_runs_its_jobs_then_ends(
    client: IBMRuntimeClient, emu: Emulator, clock: FakeClock
) -> None:
    sid = await client.create_session("ibm_emulated", max_ttl=1000)
    job = await client.run_job("sampler", "ibm_emulated", {}, session_id=sid)
    emu.ibm.set_job_status(job, "Running")
    clock.advance(seconds=10)
    emu.ibm.close_session(sid)  # Session.close(): no new jobs, the ones it has still run
    assert (await client.get_session(sid)).state == "active"
    clock.advance(seconds=20)
    emu.ibm.complete_job(job, quantum_seconds=5)
    session = await client.get_session(sid)
    assert (session.state, session.elapsed_time) == ("closed", Decimal(30))


async def test_a_batch_bills_its_jobs_qpu_time(
    client: IBMRuntimeClient, emu: Emulator, clock: FakeClock
) -> None:
    before = await usage(client)
    sid = await client.create_session("ibm_emulated", mode="batch", max_ttl=600)
    jobs = [await client.run_job("sampler", "ibm_emulated", {}, session_id=sid) for _ in "ab"]
    for job in jobs:
        emu.ibm.set_job_status(job, "Running")  # in parallel
    clock.advance(seconds=50)
    for job, used in zip(jobs, (40, 45), strict=True):
        emu.ibm.complete_job(job, quantum_seconds=used)
    assert (await client.get_session(sid)).elapsed_time == Decimal(85)  # more than wall-clock
    assert await usage(client) == before + 85
    emu.ibm.close_session(sid)
    session = await client.get_session(sid)
    assert (session.state, session.elapsed_time) == ("closed", Decimal(85))
    assert await usage(client) == before + 85  # not billed again when it closes


async def test_a_session_opens_with_the_plans_max_ttl(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    assert (await client.get_session(await client.create_session("ibm_emulated"))).max_ttl == (
        28800
    )
    emu.ibm.add_account_plan(
        ACCOUNT,
        {"plan_id": "premium", "subscription_id": "s", "subscription_name": "S",
         "backends": [], "max_ttl": 7200},
    )  # fmt: skip
    # "premium" names the plan the instance serves under its catalog id; the configuration
    # added replaces the one add_instance registered for it.
    plan_id = emu.ibm.instances[CRN].plan_id
    assert plan_id == CATALOG_PLAN_IDS["premium"]
    (config,) = (await client.get_account(ACCOUNT, plan_id)).plans
    assert config.max_ttl == 7200
    sid = await client.create_session("ibm_emulated")
    assert (await client.get_session(sid)).max_ttl == 7200
