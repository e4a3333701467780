"""Our BraketClient against the emulator: every operation, pagination, errors, bad input."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from quotaguard._http import HTTPClient
from quotaguard.braket import BraketClient, TimePeriod
from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    BudgetExceeded,
    DeviceUnavailable,
    InvalidInput,
    MalformedPayload,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
    Throttled,
)
from quotaguard.testing import Emulator
from tests._support.aws import SECRET_KEY, SESSION_TOKEN, botocore_session
from tests._support.braket import FORTE, SV1

ACTION = {
    "braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"},
    "source": "OPENQASM 3;",
}
LIMIT_ARN = "arn:aws:braket:us-east-1:123456789012:spending-limit/abc"


async def test_spending_limit_lifecycle(braket: BraketClient, emulator: Emulator) -> None:
    period = TimePeriod(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    arn = await braket.create_spending_limit(FORTE, "100.25", period, tags={"team": "qa"})
    limit = await braket.spending_limit_for(FORTE)
    assert limit is not None and limit.spending_limit_arn == arn
    assert limit.spending_limit == Decimal("100.25") and limit.remaining == Decimal("100.25")
    assert limit.time_period == period and limit.tags == {"team": "qa"}
    assert limit.created_at is not None and limit.created_at.tzinfo is not None

    await braket.update_spending_limit(arn, Decimal("150"), current=limit)
    limit = await braket.spending_limit_for(FORTE)
    assert limit is not None and limit.spending_limit == 150

    await braket.delete_spending_limit(arn)
    assert await braket.spending_limit_for(FORTE) is None
    with pytest.raises(NotFound) as info:
        await braket.delete_spending_limit(arn)
    assert info.value.code == "ResourceNotFoundException" and info.value.status == 404


async def test_create_refuses_a_device_that_already_has_a_limit(
    braket: BraketClient, emulator: Emulator
) -> None:
    emulator.braket.add_spending_limit(FORTE, "10")
    with pytest.raises(InvalidInput) as info:
        await braket.create_spending_limit(FORTE, "20")
    assert info.value.field == "device_arn"
    assert emulator.calls("braket.CreateSpendingLimit") == 0


async def test_search_follows_next_token_over_many_pages(
    braket: BraketClient, emulator: Emulator
) -> None:
    arns = {
        emulator.braket.add_spending_limit(
            f"arn:aws:braket:us-east-1::device/qpu/acme/Q{i}", str(i)
        )
        for i in range(250)
    }
    seen = [limit.spending_limit_arn async for limit in braket.search_spending_limits()]
    assert len(seen) == 250 and set(seen) == arns
    assert emulator.calls("braket.SearchSpendingLimits") == 3  # 100 + 100 + 50


async def test_search_filters_by_device_in_groups_of_ten(
    braket: BraketClient, emulator: Emulator
) -> None:
    devices = [f"arn:aws:braket:us-east-1::device/qpu/acme/Q{i}" for i in range(25)]
    for device in devices:
        emulator.braket.add_spending_limit(device, "1")
    wanted = devices[:12]
    found = [limit.device_arn async for limit in braket.search_spending_limits(wanted)]
    assert sorted(found) == sorted(wanted)
    assert emulator.calls("braket.SearchSpendingLimits") == 2


async def test_device_task_lifecycle_and_server_rejection(
    braket: BraketClient, emulator: Emulator
) -> None:
    device = await braket.get_device(FORTE)
    assert (device.device_type, device.device_status, device.is_qpu) == ("QPU", "ONLINE", True)
    assert device.shots_range == (1, 100_000)
    limit_arn = emulator.braket.add_spending_limit(FORTE, "10")
    token = "retry-safe-token"
    task_arn = await braket.create_quantum_task(
        FORTE, ACTION, 100, "bucket", "prefix", client_token=token
    )
    again = await braket.create_quantum_task(
        FORTE, ACTION, 100, "bucket", "prefix", client_token=token
    )
    assert again == task_arn  # same clientToken: the same task, reserved once
    assert emulator.braket.limits[limit_arn].queued == Decimal("8.30")

    task = await braket.get_quantum_task(task_arn)
    assert (task.status, task.shots, task.device_arn, task.ended) == ("QUEUED", 100, FORTE, False)

    with pytest.raises(BudgetExceeded) as info:
        await braket.create_quantum_task(
            FORTE, ACTION, 100, "bucket", "prefix", estimate=Decimal("8.30")
        )
    assert info.value.source == "server"
    (violation,) = info.value.decision.violations
    assert violation.rule == "braket.spending_limit.server"
    assert violation.budget == f"braket:{FORTE}" and violation.requested == Decimal("8.30")

    assert await braket.cancel_quantum_task(task_arn) == "CANCELLED"
    assert emulator.braket.limits[limit_arn].queued == 0
    assert (await braket.get_quantum_task(task_arn)).ended


async def test_limit_time_window_is_enforced_by_the_emulator(
    braket: BraketClient, emulator: Emulator
) -> None:
    emulator.braket.add_spending_limit(
        FORTE,
        "1000",
        time_period=(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)),
    )
    with pytest.raises(BudgetExceeded):
        await braket.create_quantum_task(FORTE, ACTION, 1, "bucket", "prefix")


async def test_simulators_are_never_limited(braket: BraketClient, emulator: Emulator) -> None:
    arn = await braket.create_quantum_task(SV1, ACTION, 0, "bucket", "prefix")
    assert (await braket.get_quantum_task(arn)).shots == 0


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "AccessDeniedException", PermissionDenied),
        (404, "ResourceNotFoundException", NotFound),
        (400, "ValidationException", BadRequest),
        (410, "DeviceRetiredException", DeviceUnavailable),
        (424, "DeviceOfflineException", DeviceUnavailable),
        (403, "InvalidSignatureException", AuthenticationError),
        (500, "InternalServiceException", ProviderUnavailable),
        (429, "ThrottlingException", Throttled),
    ],
)
async def test_error_mapping(
    braket: BraketClient, emulator: Emulator, status: int, code: str, error: type[Exception]
) -> None:
    emulator.faults.add(
        "braket.GetDevice",
        status=status,
        body=f'{{"message": "{code} says no"}}',
        headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"},
        times=10,
    )
    with pytest.raises(error) as info:
        await braket.get_device(FORTE)
    assert getattr(info.value, "code", None) == code


async def test_throttling_is_retried(braket: BraketClient, emulator: Emulator) -> None:
    emulator.faults.add(
        "braket.SearchSpendingLimits",
        status=429,
        times=2,
        body='{"__type": "ThrottlingException", "message": "slow down"}',
    )
    assert [limit async for limit in braket.search_spending_limits()] == []
    assert emulator.calls("braket.SearchSpendingLimits") == 3


async def test_create_quantum_task_is_retried_with_the_same_client_token(
    braket: BraketClient, emulator: Emulator
) -> None:
    emulator.faults.add("braket.CreateQuantumTask", status=503, body="{}")
    arn = await braket.create_quantum_task(FORTE, ACTION, 10, "bucket", "prefix")
    assert arn in emulator.braket.tasks and emulator.calls("braket.CreateQuantumTask") == 2


async def test_malformed_success_body_names_the_wire_field(
    braket: BraketClient, emulator: Emulator
) -> None:
    emulator.faults.add(
        "braket.SearchSpendingLimits",
        status=200,
        body=(
            '{"spendingLimits": [{"spendingLimitArn": "x", "deviceArn": "y", "spendingLimit": "1",'
            ' "totalSpend": "lots", "queuedSpend": "0"}]}'
        ),
    )
    with pytest.raises(MalformedPayload) as info:
        await braket.spending_limit_for(FORTE)
    assert info.value.field == "$.spendingLimits[0].totalSpend"


async def test_missing_signature_is_refused_by_the_emulator(emulator: Emulator) -> None:
    async with HTTPClient(provider="test") as http:
        resp = await http.request(
            "POST", emulator.url + "/spending-limits", data=b"{}", idempotent=False
        )
    assert resp.status == 403
    assert resp.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"


BAD_INPUT = [
    ("create_spending_limit", (FORTE, "1.234"), {}, "amount"),
    ("create_spending_limit", (FORTE, "-1"), {}, "amount"),
    ("create_spending_limit", (FORTE, ""), {}, "amount"),
    ("create_spending_limit", (FORTE, "abc"), {}, "amount"),
    ("create_spending_limit", (FORTE, 1.5), {}, "amount"),
    ("create_spending_limit", ("", "10"), {}, "device_arn"),
    (
        "create_spending_limit",
        ("arn:aws:braket:us-east-1::device/qpu/ionq", "10"),
        {},
        "device_arn",
    ),
    ("create_spending_limit", ("not-an-arn", "10"), {}, "device_arn"),
    ("create_spending_limit", (SV1, "10"), {}, "device_arn"),
    ("create_spending_limit", (FORTE, "10", ("2026-01-01", "2026-02-01")), {}, "time_period"),
    ("update_spending_limit", ("", "10"), {}, "arn"),
    ("update_spending_limit", ("arn:aws:braket:us-east-1:1:spending-limit/x", "10"), {}, "arn"),
    ("update_spending_limit", (LIMIT_ARN, "1.234"), {}, "amount"),
    ("update_spending_limit", (LIMIT_ARN,), {}, "amount"),
    ("delete_spending_limit", ("garbage",), {}, "arn"),
    ("get_device", ("",), {}, "arn"),
    ("get_quantum_task", ("arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1",), {}, "arn"),
    ("create_quantum_task", (FORTE, ACTION, 0, "bucket", "prefix"), {}, "shots"),
    ("create_quantum_task", (FORTE, ACTION, -1, "bucket", "prefix"), {}, "shots"),
    ("create_quantum_task", (FORTE, ACTION, 2**63, "bucket", "prefix"), {}, "shots"),
    ("create_quantum_task", (FORTE, ACTION, True, "bucket", "prefix"), {}, "shots"),
    ("create_quantum_task", (SV1, ACTION, -1, "bucket", "prefix"), {}, "shots"),
    ("create_quantum_task", ("", ACTION, 10, "bucket", "prefix"), {}, "device_arn"),
    ("create_quantum_task", (FORTE, "{not json", 10, "bucket", "prefix"), {}, "action"),
    ("create_quantum_task", (FORTE, ACTION, 10, "b", "prefix"), {}, "output_s3_bucket"),
    (
        "create_quantum_task",
        (FORTE, ACTION, 10, "bucket", "prefix"),
        {"client_token": ""},
        "client_token",
    ),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "field"), BAD_INPUT)
async def test_bad_input_names_the_field_and_sends_nothing(
    braket: BraketClient,
    emulator: Emulator,
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    field: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        await getattr(braket, method)(*args, **kwargs)
    assert info.value.field == field
    assert emulator.requests == []


def test_time_period_end_before_start_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        TimePeriod(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.field == "time_period.end_at"
    with pytest.raises(InvalidInput):
        TimePeriod(datetime(2026, 1, 1), datetime(2026, 2, 1))  # naive: ambiguous


async def test_update_below_spent_plus_queued_is_refused_locally(
    braket: BraketClient, emulator: Emulator
) -> None:
    arn = emulator.braket.add_spending_limit(FORTE, "50", total="20", queued="10")
    current = await braket.spending_limit_for(FORTE)
    emulator.requests.clear()
    with pytest.raises(InvalidInput) as info:
        await braket.update_spending_limit(arn, "29.99", current=current)
    assert info.value.field == "amount" and "30" in str(info.value)
    assert emulator.requests == []


async def test_secrets_never_in_repr_logs_or_errors(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.faults.add(
        "braket.GetDevice",
        status=403,
        body='{"message": "denied"}',
        headers={"x-amzn-ErrorType": "AccessDeniedException"},
    )
    async with BraketClient(
        "us-east-1", endpoint_url=emulator.url, botocore_session=botocore_session(SESSION_TOKEN)
    ) as client:
        with pytest.raises(PermissionDenied) as info:
            await client.get_device(FORTE)
        texts = [repr(client), str(info.value), repr(info.value), caplog.text]
    for text in texts:
        assert SECRET_KEY not in text and SESSION_TOKEN not in text


async def test_credentials_come_from_the_standard_chain(emulator: Emulator) -> None:
    # conftest put AKIDEXAMPLE in the environment; no botocore_session passed.
    async with BraketClient("us-east-1", endpoint_url=emulator.url) as client:
        assert [x async for x in client.search_spending_limits()] == []


async def test_endpoint_from_the_service_specific_variable(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", emulator.url)
    async with BraketClient("us-east-1") as client:
        assert client.endpoint == emulator.url
        assert (await client.get_device(FORTE)).device_name == "Forte-1"
    assert BraketClient("eu-north-1", endpoint_url=None).endpoint == emulator.url
    monkeypatch.delenv("AWS_ENDPOINT_URL_BRAKET")
    assert BraketClient("eu-north-1").endpoint == "https://braket.eu-north-1.amazonaws.com"
    with pytest.raises(InvalidInput):
        BraketClient("us-east-1", endpoint_url="http://braket.example.com")  # not loopback
