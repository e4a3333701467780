"""The SDK integrations stamp the SDK's own requests with the reservation id, as the guarded
sends do: the real qiskit-ibm-runtime and Braket SDK code sends them to the emulator, and a
submission whose reply is lost is found by its tag and settled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from braket.aws import AwsDevice, AwsSession
from braket.circuits import Circuit
from qiskit_ibm_runtime import SamplerV2

from quotaguard import ReservationState
from quotaguard.guard import BudgetGuard
from quotaguard.guard.stamps import BRAKET_TAG_KEY, client_token, ibm_tag
from quotaguard.integrations import GuardBridge, braket_sdk
from quotaguard.integrations.braket_sdk import guarded_braket, stamp_request, task_from_request
from quotaguard.testing import Emulator
from tests._support.braket import FORTE
from tests._support.integrations import CRN, S3, bell

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning"),
]

RESERVATION = "arn:aws:braket:us-east-1:123456789012:reservation/0b6c5a7e-1111"


@pytest.fixture(autouse=True)
def _unhook() -> Iterator[None]:
    yield None
    braket_sdk.uninstall()


def sample(backend: Any, circuit: Any, tags: list[str] | None = None) -> Any:
    sampler = SamplerV2(mode=backend)
    sampler.options.max_execution_time = 60
    if tags:
        sampler.options.environment.job_tags = tags
    return sampler.run([circuit], shots=100)


async def test_qiskit_jobs_carry_the_reservation_tag_beside_the_users(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    job = await asyncio.to_thread(sample, backend, circuit, ["experiment-7"])
    [held] = await guard.ledger.outstanding()
    assert held.external_id == job.job_id()
    assert emu.ibm.jobs[job.job_id()].tags == ["experiment-7", ibm_tag(held.id)]


async def test_qiskit_job_whose_reply_is_lost_is_found_and_settled(
    emu: Emulator, guard: BudgetGuard, backend: Any
) -> None:
    circuit = await asyncio.to_thread(bell, backend)
    # Not a 5xx qiskit-ibm-runtime retries (it retries POST /jobs on 500/502/503/504/52x,
    # which IBM says it guarantees are safe, api/session.py PostForcelistRetry): one job.
    emu.faults.add("ibm.create_job", status=507, after=True)
    with pytest.raises(Exception, match="Failed to run program"):
        await asyncio.to_thread(sample, backend, circuit)
    [doubt] = await guard.in_doubt()
    [job] = emu.ibm.jobs.values()
    assert job.tags == [ibm_tag(doubt.id)]
    await guard.watch_once()
    emu.ibm.complete_job(job.id, quantum_seconds=7)
    assert await guard.watch_once() == 1
    done = await guard.ledger.get(doubt.id)
    assert (done.state, done.external_id) == (ReservationState.COMMITTED, job.id)
    assert (await guard.ledger.state(f"ibm:{CRN}", now=guard.clock())).committed == 7


def _run(device: AwsDevice, shots: int = 100) -> Any:
    return device.run(Circuit().h(0).cnot(0, 1), shots=shots, s3_destination_folder=S3)


async def _forte() -> AwsDevice:
    aws = AwsSession(boto_session=boto3.Session(region_name="us-east-1"))
    return await asyncio.to_thread(AwsDevice, FORTE, aws)


async def test_braket_sdk_tasks_carry_the_tag_and_a_token_from_the_reservation(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    forte = await _forte()
    with guarded_braket(GuardBridge.current(braket_guard)):
        task = await asyncio.to_thread(_run, forte)
    [held] = await braket_guard.ledger.outstanding()
    assert emulator.braket.tasks[task.id].tags == {BRAKET_TAG_KEY: held.id}
    assert emulator.braket._tokens[("CreateQuantumTask", client_token(held.id))] == task.id


async def test_braket_sdk_task_whose_reply_is_lost_is_found_and_settled(
    emulator: Emulator, braket_guard: BudgetGuard
) -> None:
    emulator.braket.add_spending_limit(FORTE, "100")
    forte = await _forte()
    # boto3 retries the 503s with the same clientToken: one task, every reply lost.
    emulator.faults.add("braket.CreateQuantumTask", status=503, after=True, times=50)
    with guarded_braket(GuardBridge.current(braket_guard)), pytest.raises(ClientError):
        await asyncio.to_thread(_run, forte)
    emulator.faults.clear()
    [task] = emulator.braket.tasks.values()
    [doubt] = await braket_guard.in_doubt()
    assert task.tags == {BRAKET_TAG_KEY: doubt.id}
    await braket_guard.watch_once()
    emulator.braket.complete_task(task.arn)
    assert await braket_guard.watch_once() == 1
    state = await braket_guard.ledger.state(f"braket:{FORTE}", now=braket_guard.clock())
    assert (state.committed, state.reserved) == (Decimal("8.30"), Decimal(0))


def test_the_sdk_request_is_described_and_stamped_as_sent() -> None:
    request = {
        "deviceArn": FORTE,
        "shots": 10,
        "tags": {"team": "a"},
        "associations": [{"arn": RESERVATION, "type": "RESERVATION_TIME_WINDOW_ARN"}],
    }
    assert task_from_request(request).reservation_arn == RESERVATION
    stamped = stamp_request(request, "r-1")
    assert stamped["tags"] == {"team": "a", BRAKET_TAG_KEY: "r-1"}
    assert stamped["clientToken"] == client_token("r-1") != client_token("r-2")
    assert request["tags"] == {"team": "a"}  # the SDK's own request is not changed
    assert stamp_request(request, None) == request
