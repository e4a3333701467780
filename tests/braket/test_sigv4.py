"""Our SigV4 Authorization header is byte-for-byte what a stock boto3 client signs."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSResponse

from quotaguard.braket.sansio import Request
from quotaguard.braket.signing import sign
from tests._support.aws import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, botocore_session
from tests._support.braket import FORTE

FROZEN = dt.datetime(2026, 11, 21, 12, 0, 0)  # botocore signs with a naive UTC datetime
ENDPOINT = "http://127.0.0.1:8080"


def boto3_request(name: str, params: dict[str, Any], token: str | None) -> Any:
    """What boto3 would send, captured just before it hits the network."""
    client = boto3.client(
        "braket",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
    )
    captured: dict[str, Any] = {}

    def before_send(request: Any, **_: Any) -> AWSResponse:
        captured["request"] = request
        response = AWSResponse(request.url, 599, {}, None)  # short-circuit: nothing is sent
        response._content = b"{}"
        return response

    client.meta.events.register("before-send.braket", before_send)
    with contextlib.suppress(Exception):
        getattr(client, name)(**params)
    return captured["request"]


CASES = [
    (
        "create_spending_limit",
        "CreateSpendingLimit",
        {
            "deviceArn": FORTE,
            "spendingLimit": "100.50",
            "clientToken": "tok-1",
            "timePeriod": {
                "startAt": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                "endAt": dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            },
        },
    ),
    (
        "update_spending_limit",
        "UpdateSpendingLimit",
        {
            "spendingLimitArn": "arn:aws:braket:us-east-1:123456789012:spending-limit/abc",
            "spendingLimit": "5",
            "clientToken": "tok-2",
        },
    ),
    (
        "search_spending_limits",
        "SearchSpendingLimits",
        {
            "maxResults": 100,
            "filters": [{"name": "deviceArn", "operator": "EQUAL", "values": [FORTE]}],
        },
    ),
    ("get_device", "GetDevice", {"deviceArn": FORTE}),
    (
        "create_quantum_task",
        "CreateQuantumTask",
        {
            "deviceArn": FORTE,
            "action": "{}",
            "shots": 100,
            "outputS3Bucket": "bucket",
            "outputS3KeyPrefix": "p",
            "clientToken": "tok-3",
        },
    ),
]


@pytest.mark.parametrize("token", [None, SESSION_TOKEN])
@pytest.mark.parametrize(("py_name", "op", "params"), CASES)
def test_authorization_header_matches_boto3(
    monkeypatch: pytest.MonkeyPatch,
    py_name: str,
    op: str,
    params: dict[str, Any],
    token: str | None,
) -> None:
    # Freeze botocore's clock for both signers (the one place SigV4 reads the time).
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    theirs = boto3_request(py_name, params, token)
    creds = botocore_session(token).get_credentials().get_frozen_credentials()
    ours = sign(Request(op, params), endpoint=ENDPOINT, region="us-east-1", credentials=creds)
    their_auth = theirs.headers["Authorization"]
    their_auth = their_auth.decode() if isinstance(their_auth, bytes) else their_auth
    assert ours.headers["Authorization"] == their_auth
    assert ours.headers["X-Amz-Date"] == "20261121T120000Z"
    assert ours.url == theirs.url and ours.method == theirs.method
    assert ours.body == (theirs.body or b"")


def test_signed_request_repr_hides_headers() -> None:
    creds = botocore_session(SESSION_TOKEN).get_credentials().get_frozen_credentials()
    ours = sign(
        Request("GetDevice", {"deviceArn": FORTE}),
        endpoint=ENDPOINT,
        region="us-east-1",
        credentials=creds,
    )
    assert SESSION_TOKEN not in repr(ours) and "Signature" not in repr(ours)
