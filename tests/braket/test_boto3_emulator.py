"""A stock boto3 ``braket`` client (code we did not write) against the emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from quotaguard.testing import Emulator
from quotaguard.testing.braket import OVER_LIMIT_MESSAGE
from tests._support.braket import FORTE, signed_request

ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}, "source": "OPENQASM 3;"}'  # noqa: E501


async def call(boto: Any, name: str, **kwargs: Any) -> Any:
    # boto3 is synchronous and the emulator runs on this loop: call it from a thread.
    return await asyncio.to_thread(getattr(boto, name), **kwargs)


async def test_every_spending_limit_operation(boto: Any, emulator: Emulator) -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    created = await call(
        boto,
        "create_spending_limit",
        deviceArn=FORTE,
        spendingLimit="100.50",
        timePeriod={"startAt": start, "endAt": end},
        tags={"team": "research"},
    )
    arn = created["spendingLimitArn"]
    assert arn.startswith("arn:aws:braket:us-east-1:123456789012:spending-limit/")

    found = await call(
        boto,
        "search_spending_limits",
        filters=[{"name": "deviceArn", "operator": "EQUAL", "values": [FORTE]}],
    )
    (limit,) = found["spendingLimits"]
    assert limit["spendingLimit"] == "100.50"
    assert limit["totalSpend"] == "0" and limit["queuedSpend"] == "0"
    assert limit["timePeriod"] == {"startAt": start, "endAt": end}  # botocore parsed epoch secs
    assert limit["tags"] == {"team": "research"}

    await call(boto, "update_spending_limit", spendingLimitArn=arn, spendingLimit="200")
    found = await call(boto, "search_spending_limits")
    assert found["spendingLimits"][0]["spendingLimit"] == "200"

    await call(boto, "delete_spending_limit", spendingLimitArn=arn)
    assert (await call(boto, "search_spending_limits"))["spendingLimits"] == []
    assert [r.route for r in emulator.requests] == [
        "braket.CreateSpendingLimit",
        "braket.SearchSpendingLimits",
        "braket.UpdateSpendingLimit",
        "braket.SearchSpendingLimits",
        "braket.DeleteSpendingLimit",
        "braket.SearchSpendingLimits",
    ]


async def test_create_quantum_task_reserves_and_is_refused_over_the_limit(
    boto: Any, emulator: Emulator
) -> None:
    arn = emulator.braket.add_spending_limit(FORTE, "10")
    task = await call(
        boto,
        "create_quantum_task",
        deviceArn=FORTE,
        action=ACTION,
        shots=100,
        outputS3Bucket="amzn-braket-bucket",
        outputS3KeyPrefix="tasks",
    )
    # 0.30 per task + 100 x 0.08 per shot = 8.30, reserved as queued spend.
    assert emulator.braket.limits[arn].queued == Decimal("8.30")
    got = await call(boto, "get_quantum_task", quantumTaskArn=task["quantumTaskArn"])
    assert got["status"] == "QUEUED" and got["shots"] == 100

    with pytest.raises(ClientError) as info:
        await call(
            boto,
            "create_quantum_task",
            deviceArn=FORTE,
            action=ACTION,
            shots=100,
            outputS3Bucket="amzn-braket-bucket",
            outputS3KeyPrefix="tasks",
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert info.value.response["Error"]["Message"] == OVER_LIMIT_MESSAGE
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    emulator.braket.complete_task(task["quantumTaskArn"])
    limit = (await call(boto, "search_spending_limits"))["spendingLimits"][0]
    assert (limit["totalSpend"], limit["queuedSpend"]) == ("8.30", "0.00")


@pytest.mark.parametrize(
    ("name", "kwargs", "code"),
    [
        (
            "delete_spending_limit",
            {"spendingLimitArn": "arn:aws:braket:us-east-1:123456789012:spending-limit/nope"},
            "ResourceNotFoundException",
        ),
        (
            "get_device",
            {"deviceArn": "arn:aws:braket:us-east-1::device/qpu/acme/Nope"},
            "ResourceNotFoundException",
        ),
        (
            "create_spending_limit",
            {"deviceArn": FORTE, "spendingLimit": "1.234"},
            "ValidationException",
        ),
    ],
)
async def test_errors_are_the_ones_botocore_expects(
    boto: Any, name: str, kwargs: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError) as info:
        await call(boto, name, **kwargs)
    assert info.value.response["Error"]["Code"] == code
    # botocore maps modelled errors to the client's own exception classes.
    assert type(info.value).__name__ == code


async def test_update_below_spent_plus_queued_is_refused(boto: Any, emulator: Emulator) -> None:
    arn = emulator.braket.add_spending_limit(FORTE, "50", total="20", queued="10")
    with pytest.raises(boto.exceptions.ValidationException):
        await call(boto, "update_spending_limit", spendingLimitArn=arn, spendingLimit="29.99")
    assert emulator.braket.limits[arn].amount == 50


async def test_seed_spellings_of_update_and_delete(emulator: Emulator) -> None:
    arn = emulator.braket.add_spending_limit(FORTE, "50")
    status, _ = await signed_request(
        emulator, "PUT", f"/spending-limit/{arn}", b'{"spendingLimit": "75"}'
    )
    assert status == 200 and emulator.braket.limits[arn].amount == 75
    status, _ = await signed_request(emulator, "DELETE", f"/spending-limit/{arn}", b"")
    assert status == 200 and arn not in emulator.braket.limits
