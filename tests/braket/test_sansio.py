"""The Braket sans-I/O module alone: build_* make Requests, decipher_* read Responses."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

import quotaguard.braket
import quotaguard.ibm
from quotaguard._wire import Response
from quotaguard.braket import Device, sansio
from quotaguard.errors import (
    AuthenticationError,
    BudgetExceeded,
    InvalidInput,
    MalformedPayload,
    Throttled,
)
from tests._support.braket import FORTE

ACTION = '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}}'


def answer(status: int, body: object, **headers: str) -> Response:
    """A Response as quotaguard._http makes one: header keys already lower-case."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, {k.lower(): v for k, v in headers.items()}, raw, "https://braket")


def task_request() -> sansio.Request:
    return sansio.build_create_quantum_task(
        FORTE, ACTION, 100, "amazon-braket-x", "p", client_token="t", estimate=Decimal("8.30")
    )


def test_a_built_request_carries_the_checked_params() -> None:
    request = task_request()
    assert request.operation == "CreateQuantumTask"
    assert request.params["deviceArn"] == FORTE and request.params["shots"] == 100
    assert (request.device_arn, request.requested) == (FORTE, Decimal("8.30"))
    with pytest.raises(InvalidInput) as info:
        sansio.build_create_spending_limit(FORTE, "1.234")
    assert info.value.field == "amount"


def test_an_association_must_name_a_reservation() -> None:
    # The one association type is a reservation's time window: another resource's ARN (here a
    # task's) is refused before sending, naming the item.
    assert "associations" not in task_request().params
    task = "arn:aws:braket:us-east-1:123456789012:quantum-task/t-1"
    with pytest.raises(InvalidInput) as info:
        sansio.build_create_quantum_task(
            FORTE,
            ACTION,
            100,
            "amazon-braket-x",
            "p",
            associations=[{"arn": task, "type": "RESERVATION_TIME_WINDOW_ARN"}],
        )
    assert info.value.field == "associations[0].arn"


def test_search_groups_split_device_filters_by_ten() -> None:
    arns = [f"arn:aws:braket:us-east-1::device/qpu/ionq/D{i}" for i in range(23)]
    assert [len(g or ()) for g in sansio.search_groups(arns, 50)] == [10, 10, 3]
    assert sansio.search_groups(None, 100) == [None]
    with pytest.raises(InvalidInput):
        sansio.search_groups(None, 101)


def test_the_error_code_and_trace_come_from_lower_case_headers() -> None:
    request = sansio.build_get_device(FORTE)
    response = answer(
        429,
        {"message": "slow down"},
        **{"X-Amzn-ErrorType": "ThrottlingException:http://x", "X-Amzn-RequestId": "req-1"},
    )
    error = sansio.decipher_error(request, response)
    assert isinstance(error, Throttled)
    assert (error.code, error.trace) == ("ThrottlingException", "req-1")
    with pytest.raises(Throttled):
        sansio.decipher_as(request, response, Device)


def test_braket_over_limit_refusal_is_a_server_budget_exceeded() -> None:
    message = sansio.OVER_LIMIT_PREFIX + " for this device."
    body = {"__type": "ValidationException", "message": message}
    with pytest.raises(BudgetExceeded) as info:
        sansio.decipher_field(task_request(), answer(400, body), "quantumTaskArn")
    assert info.value.source == "server"
    (violation,) = info.value.decision.violations
    assert violation.budget == f"braket:{FORTE}" and violation.requested == Decimal("8.30")


def test_a_signature_complaint_is_an_authentication_error() -> None:
    body = {"message": "The request signature we calculated does not match"}
    error = sansio.decipher_error(sansio.build_get_device(FORTE), answer(403, body))
    assert isinstance(error, AuthenticationError)


def test_success_bodies_are_structured_or_name_the_wire_field() -> None:
    request = sansio.build_search_spending_limits(None, 100)
    page = {
        "spendingLimits": [
            {
                "spendingLimitArn": "arn:l",
                "deviceArn": FORTE,
                "spendingLimit": "10",
                "totalSpend": "1",
                "queuedSpend": "2",
            }
        ],
        "nextToken": "n2",
    }
    limits, token = sansio.decipher_spending_limits(request, answer(200, page))
    assert [limit.remaining for limit in limits] == [Decimal(7)] and token == "n2"
    assert sansio.decipher_spending_limits(request, answer(200, {"spendingLimits": []}))[1] is None
    with pytest.raises(MalformedPayload) as info:
        sansio.decipher(request, answer(200, b"<html>"))
    assert info.value.field == "$"
    with pytest.raises(MalformedPayload) as info:
        sansio.decipher_field(task_request(), answer(201, {"quantumTaskArn": 7}), "quantumTaskArn")
    assert info.value.field == "$.quantumTaskArn"


@pytest.mark.parametrize("package", [quotaguard.braket, quotaguard.ibm])
def test_every_public_name_resolves_and_unknown_names_do_not(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert all(getattr(package, name) is not None for name in names)
    with pytest.raises(AttributeError):
        _ = package.NoSuchName  # type: ignore[attr-defined]
