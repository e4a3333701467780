"""The emulator's task behaviours, read by a stock boto3 client: seeded simulator runs that end
by themselves or are cancelled mid-run, failed runs, and Braket Direct reservation tasks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from quotaguard.testing import Emulator, FakeClock
from tests._support.braket import ACTION, FORTE, SV1


async def call(boto: Any, name: str, **kwargs: Any) -> Any:
    return await asyncio.to_thread(getattr(boto, name), **kwargs)


async def create(boto: Any, device: str, shots: int = 100, **kwargs: Any) -> str:
    created = await call(
        boto,
        "create_quantum_task",
        deviceArn=device,
        action=ACTION,
        shots=shots,
        outputS3Bucket="amzn-braket-bucket",
        outputS3KeyPrefix="tasks",
        **kwargs,
    )
    return str(created["quantumTaskArn"])


async def status(boto: Any, arn: str) -> dict[str, Any]:
    return dict(await call(boto, "get_quantum_task", quantumTaskArn=arn))


async def test_a_seeded_simulator_run_ends_by_itself_billed_for_its_duration(
    boto: Any, emulator: Emulator, clock: FakeClock
) -> None:
    emulator.braket.seed_run(timedelta(minutes=2))
    arn = await create(boto, SV1)
    assert (await status(boto, arn))["status"] == "RUNNING"
    clock.advance(minutes=5)  # nobody looked in between: it ended at 2 minutes
    got = await status(boto, arn)
    assert got["status"] == "COMPLETED"
    assert got["endedAt"] - got["createdAt"] == timedelta(minutes=2)
    assert emulator.braket.tasks[arn].cost == Decimal("0.15")  # 2 min x 0.075


async def test_a_running_simulator_task_cancelled_is_billed_for_what_ran(
    boto: Any, emulator: Emulator, clock: FakeClock
) -> None:
    emulator.braket.seed_run(timedelta(hours=1))
    arn = await create(boto, SV1)
    clock.advance(minutes=4)
    cancelled = await call(boto, "cancel_quantum_task", quantumTaskArn=arn, clientToken="c-1")
    assert cancelled["cancellationStatus"] == "CANCELLED"
    assert (await status(boto, arn))["status"] == "CANCELLED"
    assert emulator.braket.tasks[arn].cost == Decimal("0.30")  # 4 min x 0.075
    # A task still queued never ran: cancelling it bills nothing.
    emulator.braket.runs.clear()
    queued = await create(boto, SV1)
    emulator.braket.cancel_task(queued)
    assert emulator.braket.tasks[queued].cost == 0


async def test_a_seeded_run_can_fail(boto: Any, emulator: Emulator, clock: FakeClock) -> None:
    emulator.braket.seed_run(timedelta(seconds=30), device_arn=FORTE, fails="device calibration")
    limit = emulator.braket.add_spending_limit(FORTE, "100")
    arn = await create(boto, FORTE)
    assert emulator.braket.limits[limit].queued == Decimal("8.30")
    clock.advance(minutes=1)
    got = await status(boto, arn)
    assert (got["status"], got["failureReason"]) == ("FAILED", "device calibration")
    lim = emulator.braket.limits[limit]
    assert (lim.total, lim.queued) == (0, 0)  # a failed task costs nothing
    with pytest.raises(ClientError) as info:  # it has ended: nothing to cancel
        await call(boto, "cancel_quantum_task", quantumTaskArn=arn, clientToken="c-2")
    assert info.value.response["Error"]["Code"] == "ConflictException"


async def test_a_reservation_task_is_charged_to_no_spending_limit(
    boto: Any, emulator: Emulator
) -> None:
    limit = emulator.braket.add_spending_limit(FORTE, "10")
    reservation = emulator.braket.add_reservation(FORTE)
    association = {"arn": reservation, "type": "RESERVATION_TIME_WINDOW_ARN"}
    arn = await create(boto, FORTE, 1000, associations=[association])  # 80.30 on demand
    assert emulator.braket.limits[limit].queued == 0
    got = await status(boto, arn)
    assert got["associations"] == [association]  # botocore parsed it: the model's shape
    emulator.braket.complete_task(arn)
    assert (emulator.braket.limits[limit].total, emulator.braket.limits[limit].queued) == (0, 0)
    # A reservation of another device, or one Braket does not know, is refused.
    other = emulator.braket.add_reservation(SV1)
    for bad in (other, reservation.replace("reservation/", "reservation/x")):
        with pytest.raises(ClientError) as info:
            await create(boto, FORTE, associations=[{"arn": bad, "type": association["type"]}])
        assert info.value.response["Error"]["Code"] == "ValidationException"
