"""The emulator verifies SigV4 signatures once credentials are registered: our client and stock
boto3 pass, a wrong secret, an unknown key or any tampered part of a signed request do not."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import botocore.auth
import botocore.credentials
import botocore.session
import pytest
import yarl
from botocore.awsrequest import AWSRequest

from quotaguard._wire import Response
from quotaguard.braket import BraketClient
from quotaguard.braket.sansio import Request as BraketRequest
from quotaguard.braket.sansio import decipher_error
from quotaguard.braket.signing import sign
from quotaguard.errors import AuthenticationError
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, botocore_session
from tests._support.braket import FORTE
from tests._support.secrets import AWS_WRONG_SECRET_KEY

MISMATCH = "The request signature we calculated does not match the signature you provided."
TIMEOUT = aiohttp.ClientTimeout(total=10)
ACTION: dict[str, Any] = {
    "braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"},
    "source": "OPENQASM 3;",
}


def client(emu: Emulator, session: botocore.session.Session) -> BraketClient:
    return BraketClient("us-east-1", endpoint_url=emu.url, botocore_session=session)


def session_with(key: str, secret: str, token: str | None = None) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.set_credentials(key, secret, token)
    return session


@pytest.mark.parametrize("token", [SESSION_TOKEN, None], ids=["session-token", "no-token"])
async def test_our_client_verifies_on_every_route(emulator: Emulator, token: str | None) -> None:
    async with client(emulator, botocore_session(token)) as braket:
        arn = await braket.create_spending_limit(FORTE, "100")
        await braket.update_spending_limit(arn, "120")  # ARN in the path: %3A and %2F
        assert (await braket.get_device(FORTE)).device_arn == FORTE
        task = await braket.create_quantum_task(FORTE, ACTION, 10, "amzn-braket-x", "p")
        assert (await braket.get_quantum_task(task)).status == "QUEUED"
        assert await braket.cancel_quantum_task(task) == "CANCELLED"
        await braket.delete_spending_limit(arn)
    assert emulator.braket.limits == {} and emulator.braket.tasks[task].status == "CANCELLED"


async def test_stock_boto3_verifies(boto: Any, emulator: Emulator) -> None:
    def calls() -> None:
        arn = boto.create_spending_limit(deviceArn=FORTE, spendingLimit="10", clientToken="t")[
            "spendingLimitArn"
        ]
        boto.update_spending_limit(spendingLimitArn=arn, spendingLimit="20", clientToken="u")
        boto.get_device(deviceArn=FORTE)
        boto.delete_spending_limit(spendingLimitArn=arn)

    await asyncio.wait_for(asyncio.to_thread(calls), 30)
    assert emulator.calls("braket.DeleteSpendingLimit") == 1 and emulator.braket.limits == {}


async def test_wrong_secret_is_a_typed_refusal_and_creates_nothing(emulator: Emulator) -> None:
    async with client(emulator, session_with(ACCESS_KEY, AWS_WRONG_SECRET_KEY)) as braket:
        with pytest.raises(AuthenticationError) as info:
            await braket.create_spending_limit(FORTE, "10", check_existing=False)
    err = info.value
    assert (err.status, err.code) == (403, "InvalidSignatureException")
    assert MISMATCH in str(err)
    assert emulator.braket.limits == {}
    assert emulator.calls("braket.CreateSpendingLimit") == 1  # refused, not retried
    for secret in (AWS_WRONG_SECRET_KEY, SECRET_KEY):
        assert secret not in str(err) and secret not in repr(err)


async def test_unknown_key_is_unrecognized(emulator: Emulator) -> None:
    async with client(emulator, session_with("AKIDNOBODY", SECRET_KEY, SESSION_TOKEN)) as braket:
        with pytest.raises(AuthenticationError) as info:
            await braket.get_device(FORTE)
    assert (info.value.status, info.value.code) == (403, "UnrecognizedClientException")
    for secret in (SECRET_KEY, SESSION_TOKEN):
        assert secret not in str(info.value) and secret not in repr(info.value)


# -- a signed request sent by hand, then changed ------------------------------------------------

Request = tuple[str, str, dict[str, str], bytes]


def signed(name: str, params: dict[str, Any], emu: Emulator, token: str | None) -> Request:
    creds = botocore.credentials.ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, token)
    req = sign(BraketRequest(name, params), endpoint=emu.url, region="us-east-1", credentials=creds)
    return req.method, req.url, dict(req.headers), req.body


async def send(req: Request) -> tuple[int, dict[str, str], str]:
    method, url, headers, body = req
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.request(method, yarl.URL(url, encoded=True), headers=headers, data=body) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


def with_header(name: str, value: str) -> Callable[[Request], Request]:
    def change(req: Request) -> Request:
        headers = {k: v for k, v in req[2].items() if k.lower() != name.lower()}
        return req[0], req[1], {**headers, name: value}, req[3]

    return change


def _body(req: Request) -> Request:
    body = bytearray(req[3])
    body[body.index(b"100")] = ord("9")  # "100" -> "900": one byte
    return req[0], req[1], req[2], bytes(body)


TAMPERS: dict[str, Callable[[Request], Request]] = {
    "body": _body,
    "path": lambda r: (r[0], r[1] + "s", *r[2:]),
    "query": lambda r: (r[0], r[1] + "?maxResults=1", *r[2:]),
    "signed-header": with_header("Content-Type", "application/x-amz-json-1.1"),
    "security-token": with_header("X-Amz-Security-Token", SESSION_TOKEN + "x"),
    "date": with_header("X-Amz-Date", "20261121T120001Z"),
}


def create_limit(emu: Emulator) -> Request:
    params = {"clientToken": "tamper", "deviceArn": FORTE, "spendingLimit": "100"}
    return signed("CreateSpendingLimit", params, emu, SESSION_TOKEN)


async def test_the_untampered_request_verifies(emulator: Emulator) -> None:
    status, _, _ = await send(create_limit(emulator))
    assert status == 201 and len(emulator.braket.limits) == 1


@pytest.mark.parametrize("part", list(TAMPERS))
async def test_any_changed_part_is_an_invalid_signature(emulator: Emulator, part: str) -> None:
    status, headers, text = await send(TAMPERS[part](create_limit(emulator)))
    assert status == 403, text
    assert headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert "x-amzn-RequestId" in headers
    message = json.loads(text)["message"]
    assert message.startswith(MISMATCH) or message.startswith("Date in Credential scope")
    assert emulator.braket.limits == {}
    assert SECRET_KEY not in text and SESSION_TOKEN not in text
    lower = {key.lower(): value for key, value in headers.items()}
    request = BraketRequest("CreateSpendingLimit", {})
    decoded = decipher_error(request, Response(status, lower, text.encode(), emulator.url))
    assert isinstance(decoded, AuthenticationError)


async def test_a_content_hash_that_is_not_the_body_is_refused(emulator: Emulator) -> None:
    method, url, _, body = create_limit(emulator)
    # Signed over X-Amz-Content-SHA256 (as botocore does for S3), then the body changes.
    aws = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
        },
    )
    creds = botocore.credentials.ReadOnlyCredentials(ACCESS_KEY, SECRET_KEY, None)
    botocore.auth.SigV4Auth(creds, "braket", "us-east-1").add_auth(aws)
    good: Request = (method, url, dict(aws.headers.items()), body)
    assert (await send(good))[0] == 201
    emulator.braket.limits.clear()
    status, headers, _ = await send(_body(good))
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert emulator.braket.limits == {}


async def test_a_changed_method_is_an_invalid_signature(emulator: Emulator) -> None:
    arn = emulator.braket.add_spending_limit(FORTE, "50")
    params = {"spendingLimitArn": arn, "spendingLimit": "60", "clientToken": "m"}
    method, url, headers, body = signed("UpdateSpendingLimit", params, emulator, None)
    assert method == "PATCH"
    # PUT /spending-limit/{arn} is a route too (the seed's spelling): only the method differs.
    status, resp_headers, _ = await send(("PUT", url, headers, body))
    assert (status, resp_headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert emulator.braket.limits[arn].amount == 50
    assert (await send((method, url, headers, body)))[0] == 200


async def test_clock_skew_is_refused_when_switched_on(emulator: Emulator, clock: FakeClock) -> None:
    emulator.braket.max_clock_skew = timedelta(minutes=15)
    clock.now = datetime.now(UTC)  # signers read the wall clock
    assert (await send(create_limit(emulator)))[0] == 201
    clock.advance(minutes=30)
    status, headers, text = await send(create_limit(emulator))
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert json.loads(text)["message"].startswith("Signature expired: ")


async def test_without_credentials_only_the_shape_is_checked(clock: FakeClock) -> None:
    async with Emulator(clock=clock) as emu:
        async with client(emu, session_with("AKIDANY", AWS_WRONG_SECRET_KEY)) as braket:
            await braket.create_spending_limit(FORTE, "10", check_existing=False)
        assert len(emu.braket.limits) == 1
        emu.braket.add_credentials(ACCESS_KEY, SECRET_KEY)
        async with client(emu, session_with("AKIDANY", AWS_WRONG_SECRET_KEY)) as braket:
            with pytest.raises(AuthenticationError):
                await braket.get_device(FORTE)
