"""Our SigV4 Authorization header is byte-for-byte what a stock boto3 client signs, through
botocore's public ``SigV4Auth.add_auth``, and nothing of it reaches botocore's DEBUG log."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse

from quotaguard.braket import signing
from quotaguard.braket.sansio import Request
from quotaguard.braket.signing import SignedRequest, sign
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


def signed_get_device() -> SignedRequest:
    creds = botocore_session(SESSION_TOKEN).get_credentials().get_frozen_credentials()
    return sign(
        Request("GetDevice", {"deviceArn": FORTE}),
        endpoint=ENDPOINT,
        region="us-east-1",
        credentials=creds,
    )


def test_signed_request_repr_hides_headers() -> None:
    ours = signed_get_device()
    assert SESSION_TOKEN not in repr(ours) and "Signature" not in repr(ours)


# -- quiet: botocore's DEBUG log of the canonical request holds the session token ------------
# Signing goes through the public SigV4Auth.add_auth; the quiet is scoped to our call, so
# botocore's own logging elsewhere is left as it was.

PLAIN_TOKEN = "token-botocore-logs"  # no real secret: botocore's own log shows it


def botocores_own() -> None:
    """botocore signing by itself (as a boto3 client does), on the calling thread."""
    creds = botocore_session(PLAIN_TOKEN).get_credentials().get_frozen_credentials()
    request = AWSRequest(method="GET", url=ENDPOINT + "/device/x", headers={}, data=b"")
    botocore.auth.SigV4Auth(creds, "braket", "us-east-1").add_auth(request)


def canonical(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "CanonicalRequest" in r.getMessage()]


def test_nothing_of_the_signature_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):  # the root logger: every logger botocore might use
        signed_get_device()
        assert SESSION_TOKEN not in caplog.text and canonical(caplog) == []
        # The capture works: botocore's own signing, outside our call, is logged as ever.
        botocores_own()
        assert PLAIN_TOKEN in caplog.text and len(canonical(caplog)) == 1


def test_quiet_survives_a_logging_reset(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("botocore.auth").filters.clear()  # e.g. an app reconfiguring logging
    with caplog.at_level(logging.DEBUG):
        signed_get_device()
    assert SESSION_TOKEN not in caplog.text and canonical(caplog) == []


def test_other_threads_keep_botocores_log(caplog: pytest.LogCaptureFixture) -> None:
    # While this thread is inside our call, another thread's signing still logs.
    signing._quiet.local.on = True
    try:
        with caplog.at_level(logging.DEBUG):
            thread = threading.Thread(target=botocores_own)
            thread.start()
            thread.join(10)
    finally:
        signing._quiet.local.on = False
    assert len(canonical(caplog)) == 1


def test_signing_needs_none_of_sigv4s_private_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A botocore release renaming ``SigV4Auth``'s private steps: ``add_auth`` still works
    (it calls them itself), so must our signer. Same signature as before the rename."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    before = signed_get_device().headers["Authorization"]
    cls = botocore.auth.SigV4Auth
    steps = {
        "_modify_request_before_signing": cls._modify_request_before_signing,
        "_inject_signature_to_request": cls._inject_signature_to_request,
    }
    public_add_auth = cls.add_auth
    for name in steps:
        monkeypatch.delattr(cls, name)

    def add_auth(self: Any, request: AWSRequest) -> None:
        # The renamed release: the steps exist only inside botocore's own add_auth.
        for name, step in steps.items():
            setattr(self, name, step.__get__(self))
        try:
            public_add_auth(self, request)
        finally:
            for name in steps:
                delattr(self, name)

    monkeypatch.setattr(cls, "add_auth", add_auth)
    assert signed_get_device().headers["Authorization"] == before
