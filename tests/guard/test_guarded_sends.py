"""Guarded sends (``guard.ibm.run_job``, ``guard.braket.create_quantum_task``) and the check of
``guard.submit(work, functools.partial(client.method, ...))``, against the emulator.

The guarded sends build the work from the very arguments they send, so what is held is what
the provider runs; they stamp the work with the reservation id, so a send whose reply is lost
is found by the watcher and settled.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import attrs
import boto3
import pytest

from quotaguard import BudgetExceeded, InvalidInput, ReservationState
from quotaguard.braket.client import BraketClient
from quotaguard.braket.work import BraketTask
from quotaguard.errors import ProviderUnavailable
from quotaguard.guard import BudgetGuard
from quotaguard.guard.stamps import BRAKET_TAG_KEY, client_token, ibm_tag
from quotaguard.ibm.client import IBMRuntimeClient
from quotaguard.ibm.work import IBMJob
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import ACCESS_KEY, SECRET_KEY, botocore_session
from tests._support.braket import ACTION, FORTE, KEY, SV1
from tests._support.ibm import API_KEY, CRN

BACKEND = "ibm_emulated"
BUCKET = "amazon-braket-test"
RESERVATION = "arn:aws:braket:us-east-1:123456789012:reservation/7c0e4cbe-2e5b-4e0e-9f8e"
DIRECT = [{"arn": RESERVATION, "type": "RESERVATION_TIME_WINDOW_ARN"}]
IBM_KEY = f"ibm:{CRN}"


@attrs.define
class World:
    emu: Emulator
    guard: BudgetGuard
    ibm: IBMRuntimeClient
    braket: BraketClient
    clock: FakeClock

    async def held(self, key: str) -> Decimal:
        return (await self.guard.ledger.state(key, now=self.clock())).reserved


@pytest.fixture
async def world(emulator: Emulator, clock: FakeClock) -> AsyncIterator[World]:
    emulator.ibm.add_api_key(API_KEY, "acct-1")
    emulator.ibm.add_instance(CRN, plan_id="premium", limit_seconds=10_000, backends=[BACKEND])
    emulator.braket.add_spending_limit(FORTE, "100")
    ibm = IBMRuntimeClient(
        API_KEY, CRN, base_url=f"{emulator.url}/api", iam_url=emulator.url, clock=clock
    )
    braket = BraketClient(
        "us-east-1", endpoint_url=emulator.url, botocore_session=botocore_session()
    )
    async with (
        ibm,
        braket,
        BudgetGuard(MemoryLedger(), ibm=ibm, braket=braket, clock=clock) as guard,
    ):
        yield World(emulator, guard, ibm, braket, clock)


# -- guard.submit with a partial of a client method: the mismatch is refused ----------------


async def test_ibm_max_execution_time_mismatch_is_refused_and_nothing_held(world: World) -> None:
    send = functools.partial(
        world.ibm.run_job, "sampler", BACKEND, {"pubs": []}, max_execution_time=5000
    )
    with pytest.raises(InvalidInput) as info:
        await world.guard.submit(IBMJob(BACKEND, max_execution_time=10), send)
    assert info.value.field == "max_execution_time"
    assert "max_execution_time=10" in str(info.value) and "5000" in str(info.value)
    assert "IBMRuntimeClient.run_job" in str(info.value)
    assert await world.guard.ledger.outstanding() == []
    assert world.emu.calls("ibm.create_job") == 0
    assert world.emu.calls("ibm.get_usage") == 0  # refused before the guard asked anything


async def test_braket_shots_mismatch_is_refused_and_nothing_held(world: World) -> None:
    send = functools.partial(world.braket.create_quantum_task, FORTE, ACTION, 500, BUCKET, "t/1")
    with pytest.raises(InvalidInput) as info:
        await world.guard.submit(BraketTask(FORTE, shots=1), send)
    assert info.value.field == "shots"
    assert "shots=1" in str(info.value) and "500" in str(info.value)
    assert await world.guard.ledger.outstanding() == []
    assert world.emu.calls("braket.CreateQuantumTask") == 0
    assert world.emu.braket.limit_for(FORTE).queued == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("work", "field"),
    [
        (IBMJob("ibm_other", max_execution_time=60), "backend"),
        (IBMJob(BACKEND, max_execution_time=60, session_id="s-1"), "session_id"),
        (BraketTask(FORTE, shots=7), "work"),
    ],
    ids=["backend", "session", "wrong-provider"],
)
async def test_every_ibm_field_that_decides_the_hold_is_compared(
    world: World, work: object, field: str
) -> None:
    send = functools.partial(world.ibm.run_job, "sampler", BACKEND, {}, max_execution_time=60)
    with pytest.raises(InvalidInput) as info:
        await world.guard.submit(work, send)
    assert info.value.field == field
    assert await world.guard.ledger.outstanding() == []


async def test_braket_device_and_reservation_are_compared(world: World) -> None:
    other = functools.partial(world.braket.create_quantum_task, SV1, ACTION, 10, BUCKET, "t")
    with pytest.raises(InvalidInput) as device:
        await world.guard.submit(BraketTask(FORTE, shots=10), other)
    assert device.value.field == "device_arn"
    direct = functools.partial(
        world.braket.create_quantum_task, FORTE, ACTION, 10, BUCKET, "t", associations=DIRECT
    )
    with pytest.raises(InvalidInput) as reservation:
        await world.guard.submit(BraketTask(FORTE, shots=10), direct)
    assert reservation.value.field == "reservation_arn"
    assert RESERVATION in str(reservation.value)
    assert world.emu.calls("braket.CreateQuantumTask") == 0


async def test_a_matching_partial_is_sent_and_bound(world: World) -> None:
    send = functools.partial(
        world.ibm.run_job, "sampler", BACKEND, {"pubs": []}, max_execution_time=120
    )
    sub = await world.guard.submit(IBMJob(BACKEND, max_execution_time=120), send)
    assert sub.external_id in world.emu.ibm.jobs
    assert await world.held(IBM_KEY) == 120


async def test_partial_arguments_that_do_not_fit_the_method_are_refused(world: World) -> None:
    send = functools.partial(world.ibm.run_job, "sampler", BACKEND, {}, max_time=5)
    with pytest.raises(InvalidInput) as info:
        await world.guard.submit(IBMJob(BACKEND, max_execution_time=5), send)
    assert info.value.field == "submit"


# -- guarded sends hold exactly what they send -------------------------------------------------


async def test_ibm_run_job_holds_its_max_execution_time_and_tags_the_job(world: World) -> None:
    sub = await world.guard.ibm.run_job(
        "sampler", BACKEND, {"pubs": [[1, 2]]}, max_execution_time=300, tags=["mine"]
    )
    job = world.emu.ibm.jobs[sub.external_id or ""]
    assert job.cost == 300 and job.backend == BACKEND
    assert job.tags == ["mine", ibm_tag(sub.id)]
    assert await world.held(IBM_KEY) == 300
    assert sub.work == IBMJob(
        BACKEND, max_execution_time=300, input_bytes=len(b'{"pubs": [[1, 2]]}')
    )
    bound = await world.guard.ledger.get(sub.id)
    assert bound.external_id == sub.external_id


async def test_ibm_run_job_in_a_session_holds_what_the_session_job_costs(world: World) -> None:
    world.emu.ibm.add_session("sess-1", CRN, backend=BACKEND, max_ttl=3600)
    described = IBMJob(BACKEND, max_execution_time=200, session_id="sess-1", input_bytes=2)
    expected = await world.guard.check(described)
    sub = await world.guard.ibm.run_job(
        "sampler", BACKEND, {}, max_execution_time=200, session_id="sess-1"
    )
    assert world.emu.ibm.jobs[sub.external_id or ""].session_id == "sess-1"
    assert sub.work == described
    assert sub.reservation.charges == expected.charges


async def test_ibm_run_job_unset_max_execution_time_is_refused_as_submit_would(
    world: World,
) -> None:
    world.emu.ibm.instances[CRN].limit_seconds = Decimal(1000)
    with pytest.raises(BudgetExceeded) as info:
        await world.guard.ibm.run_job("sampler", BACKEND, {})
    assert info.value.decision.violations[0].rule == "ibm.max_execution_time.unset"
    assert world.emu.calls("ibm.create_job") == 0


async def test_braket_task_holds_its_shots_and_is_tagged_with_a_derived_token(
    world: World,
) -> None:
    sub = await world.guard.braket.create_quantum_task(
        FORTE, ACTION, 500, BUCKET, "t/1", tags={"team": "research"}
    )
    arn = sub.external_id or ""
    task = world.emu.braket.tasks[arn]
    # 0.30 + 500 x 0.08 = 40.30: held by the guard and queued by the server alike.
    assert task.shots == 500
    assert await world.held(KEY) == Decimal("40.30") == task.cost
    assert world.emu.braket.limit_for(FORTE).queued == Decimal("40.30")  # type: ignore[union-attr]
    assert task.tags == {"team": "research", BRAKET_TAG_KEY: sub.id}
    assert world.emu.braket._tokens[("CreateQuantumTask", client_token(sub.id))] == arn


async def test_braket_reservation_association_is_sent_and_described(world: World) -> None:
    # The emulator, as Braket, takes only a reservation of the task's device.
    reservation = world.emu.braket.add_reservation(FORTE)
    direct = [{"arn": reservation, "type": "RESERVATION_TIME_WINDOW_ARN"}]
    described = BraketTask(FORTE, shots=100, reservation_arn=reservation)
    expected = await world.guard.check(described)
    sub = await world.guard.braket.create_quantum_task(
        FORTE, ACTION, 100, BUCKET, "t/2", associations=direct
    )
    task = world.emu.braket.tasks[sub.external_id or ""]
    assert task.associations == direct
    assert sub.work == described
    # Braket Direct charges nothing, and no user budget is named: nothing held, so no stamp.
    assert sub.reservation.charges == expected.charges == ()
    assert task.tags == {}


async def test_braket_over_budget_is_not_sent(world: World) -> None:
    with pytest.raises(BudgetExceeded) as info:
        await world.guard.braket.create_quantum_task(FORTE, ACTION, 2000, BUCKET, "t/3")
    assert info.value.decision.violations[0].requested == Decimal("160.30")
    assert world.emu.calls("braket.CreateQuantumTask") == 0
    assert await world.guard.ledger.outstanding() == []


async def test_bad_input_is_refused_before_anything_is_held(world: World) -> None:
    with pytest.raises(InvalidInput) as assoc:
        await world.guard.braket.create_quantum_task(
            FORTE, ACTION, 10, BUCKET, "t", associations=[{"arn": RESERVATION, "type": "X"}]
        )
    assert assoc.value.field == "associations[0].type"
    with pytest.raises(InvalidInput) as tags:
        await world.guard.ibm.run_job("sampler", BACKEND, {}, max_execution_time=5, tags="a")  # type: ignore[arg-type]
    assert tags.value.field == "tags"
    assert await world.guard.ledger.outstanding() == []


async def test_guarded_sends_need_their_client(emulator: Emulator, clock: FakeClock) -> None:
    async with BudgetGuard(MemoryLedger(), clock=clock) as guard:
        with pytest.raises(InvalidInput, match="IBMRuntimeClient"):
            await guard.ibm.run_job("sampler", BACKEND, {}, max_execution_time=5)
        with pytest.raises(InvalidInput, match="BraketClient"):
            await guard.braket.create_quantum_task(FORTE, ACTION, 10, BUCKET, "t")


# -- a lost reply: in doubt, found by its tag, settled -----------------------------------------


async def test_ibm_job_whose_reply_is_lost_is_found_by_its_tag_and_settled(world: World) -> None:
    world.emu.faults.add("ibm.create_job", status=502, after=True)
    with pytest.raises(ProviderUnavailable):
        await world.guard.ibm.run_job("sampler", BACKEND, {}, max_execution_time=300)
    [doubt] = await world.guard.in_doubt()
    [job] = world.emu.ibm.jobs.values()  # it was created; only the reply was lost
    assert job.tags == [ibm_tag(doubt.id)]
    assert await world.held(IBM_KEY) == 300
    assert await world.guard.watch_once() == 0  # found and bound; it is still running
    assert (await world.guard.ledger.get(doubt.id)).external_id == job.id
    world.emu.ibm.complete_job(job.id, quantum_seconds=42)
    assert await world.guard.watch_once() == 1
    done = await world.guard.ledger.get(doubt.id)
    assert done.state is ReservationState.COMMITTED
    state = await world.guard.ledger.state(IBM_KEY, now=world.clock())
    assert (state.committed, state.reserved) == (Decimal(42), Decimal(0))


async def test_braket_task_whose_reply_is_lost_is_found_by_its_tag_and_settled(
    world: World,
) -> None:
    # Every attempt (our client retries: the request carries a clientToken) loses its reply.
    world.emu.faults.add("braket.CreateQuantumTask", status=503, after=True, times=50)
    with pytest.raises(ProviderUnavailable):
        await world.guard.braket.create_quantum_task(FORTE, ACTION, 100, BUCKET, "t/4")
    world.emu.faults.clear()
    assert world.emu.calls("braket.CreateQuantumTask") > 1
    [task] = world.emu.braket.tasks.values()  # one task however many attempts: the token
    [doubt] = await world.guard.in_doubt()
    assert task.tags == {BRAKET_TAG_KEY: doubt.id}
    assert await world.guard.watch_once() == 0
    assert (await world.guard.ledger.get(doubt.id)).external_id == task.arn
    world.emu.braket.complete_task(task.arn)
    assert await world.guard.watch_once() == 1
    state = await world.guard.ledger.state(KEY, now=world.clock())
    assert (state.committed, state.reserved) == (Decimal("8.30"), Decimal(0))


async def test_a_retried_lost_reply_is_one_task_bound_at_once(world: World) -> None:
    world.emu.faults.add("braket.CreateQuantumTask", status=503, after=True)
    sub = await world.guard.braket.create_quantum_task(FORTE, ACTION, 100, BUCKET, "t/5")
    assert world.emu.calls("braket.CreateQuantumTask") == 2
    assert list(world.emu.braket.tasks) == [sub.external_id]
    assert await world.guard.in_doubt() == []


async def test_an_in_doubt_custom_send_is_not_mistaken_for_another_hold(world: World) -> None:
    """A tagged task of one hold is never bound to another: the tag names the reservation."""
    await world.guard.braket.create_quantum_task(FORTE, ACTION, 10, BUCKET, "t/6")

    async def lost() -> Any:
        raise ProviderUnavailable("reply lost", provider="braket", status=502)

    with pytest.raises(ProviderUnavailable):
        await world.guard.submit(BraketTask(FORTE, shots=10), lost)
    [doubt] = await world.guard.in_doubt()
    assert await world.guard.watch_once() == 0
    assert (await world.guard.ledger.get(doubt.id)).external_id is None


# -- the emulator serves the lookups as the services do ----------------------------------------


async def test_a_stock_boto3_client_searches_tasks_by_device_and_creation_time(
    world: World, clock: FakeClock
) -> None:
    sub = await world.guard.braket.create_quantum_task(FORTE, ACTION, 10, BUCKET, "t/7")
    client = boto3.client(
        "braket",
        region_name="us-east-1",
        endpoint_url=world.emu.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    since = clock().isoformat()

    async def search(*filters: dict[str, Any]) -> list[dict[str, Any]]:
        # On a thread: the emulator answers on this test's loop.
        page = await asyncio.to_thread(client.search_quantum_tasks, filters=list(filters))
        return list(page["quantumTasks"])

    def created(operator: str) -> dict[str, Any]:
        return {"name": "createdAt", "operator": operator, "values": [since]}

    on_forte = {"name": "deviceArn", "operator": "EQUAL", "values": [FORTE]}
    [summary] = await search(on_forte, created("GTE"))
    assert summary["quantumTaskArn"] == sub.external_id
    assert summary["tags"] == {BRAKET_TAG_KEY: sub.id}
    assert await search(on_forte, created("LT")) == []
    assert await search({"name": "deviceArn", "operator": "EQUAL", "values": [SV1]}) == []


async def test_ibm_jobs_are_listed_by_tag(world: World) -> None:
    first = await world.guard.ibm.run_job("sampler", BACKEND, {}, max_execution_time=5)
    await world.guard.ibm.run_job("sampler", BACKEND, {}, max_execution_time=5)
    assert await world.ibm.find_jobs(ibm_tag(first.id)) == [first.external_id]
    assert await world.ibm.find_jobs("quotaguard:nothing") == []


def test_a_lost_reply_needs_the_answer_that_replaces_it() -> None:
    with pytest.raises(ValueError, match="after=True"):
        Emulator().faults.add("ibm.create_job", after=True)
