"""Error codes, token expiry, retries, malformed payloads and bad input, over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from quotaguard.errors import (
    AuthenticationError,
    BadRequest,
    InvalidInput,
    MalformedPayload,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
    Throttled,
    UsageExceedsLimit,
)
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import API_KEY, CRN, OTHER_CRN, ClientFactory
from tests._support.sleeps import Sleeps

ERROR_BODY = json.dumps(
    {
        "trace": "trace-123",
        "errors": [{"code": "bad_request", "message": "nope", "more_info": "https://x"}],
    }
)


async def test_unknown_api_key_is_authentication_error(
    make_client: ClientFactory, emu: Emulator
) -> None:
    client = make_client(api_key="not-a-key")
    with pytest.raises(AuthenticationError) as info:
        await client.get_usage()
    assert info.value.status == 400  # IAM answers 400 for an unknown key
    assert info.value.code == "BXNIM0415E"
    assert info.value.trace  # IAM's requestId
    assert emu.calls("ibm.get_usage") == 0


async def test_403_for_an_instance_of_another_account(make_client: ClientFactory) -> None:
    with pytest.raises(PermissionDenied) as info:
        await make_client(service_crn=OTHER_CRN).get_instance()
    assert info.value.status == 403
    assert info.value.code == "forbidden"
    assert info.value.trace


async def test_404_for_unknown_instance_and_job(make_client: ClientFactory) -> None:
    unknown = "crn:v1:bluemix:public:quantum-computing:us-east:a/acct-1:nope::"
    with pytest.raises(NotFound) as info:
        await make_client(service_crn=unknown).get_instance_configuration()
    assert info.value.code == "instance_not_found"
    with pytest.raises(NotFound) as job:
        await make_client().get_job("missing-job")
    assert job.value.code == "job_not_found"
    with pytest.raises(NotFound):
        await make_client().get_session("missing-session")
    with pytest.raises(NotFound):
        await make_client().get_account("acct-1", plan_id="no-such-plan")


async def test_400_carries_trace_and_every_error(client: IBMRuntimeClient, emu: Emulator) -> None:
    emu.faults.add("ibm.get_instance", status=400, body=ERROR_BODY)
    with pytest.raises(BadRequest) as info:
        await client.get_instance()
    err = info.value
    assert (err.status, err.code, err.trace) == (400, "bad_request", "trace-123")
    assert err.errors == ({"code": "bad_request", "message": "nope", "more_info": "https://x"},)
    assert "nope" in str(err)
    assert "trace-123" in str(err)


@pytest.mark.parametrize("header", ["X-Global-Transaction-Id", "X-Request-Id"])
async def test_a_body_without_trace_takes_it_from_the_headers(
    client: IBMRuntimeClient, emu: Emulator, header: str
) -> None:
    # Sent in the server's casing; the HTTP layer lower-cases keys, read in one spelling.
    emu.faults.add("ibm.get_instance", status=404, body=b"", headers={header: "hdr-trace-1"})
    with pytest.raises(NotFound) as info:
        await client.get_instance()
    assert info.value.trace == "hdr-trace-1"


async def test_usage_route_generic_error_dto(client: IBMRuntimeClient, emu: Emulator) -> None:
    body = {
        "errors": [{"code": 1000, "message": "m", "solution": "s", "more_info": "u"}],
        "trace": "fdda765f",
    }
    emu.faults.add("ibm.get_usage", status=403, body=json.dumps(body))
    with pytest.raises(PermissionDenied) as info:
        await client.get_usage()
    assert info.value.code == "1000"
    assert info.value.trace == "fdda765f"
    assert info.value.errors[0]["solution"] == "s"


async def test_409_limit_below_usage(client: IBMRuntimeClient, emu: Emulator) -> None:
    with pytest.raises(UsageExceedsLimit) as info:
        await client.update_instance_configuration(100)  # 120.5 s are already used
    assert info.value.status == 409
    assert info.value.code == "usage_exceeds_limit"
    assert info.value.trace
    assert emu.ibm.instances[CRN].limit_seconds == 3600  # unchanged


async def test_5xx_retried_then_provider_unavailable(
    client: IBMRuntimeClient, emu: Emulator, sleeps: Sleeps
) -> None:
    emu.faults.add("ibm.get_usage", status=503, times=3)
    with pytest.raises(ProviderUnavailable) as info:
        await client.get_usage()
    assert info.value.status == 503
    assert emu.calls("ibm.get_usage") == 3  # RetryPolicy(attempts=3)
    assert len(sleeps.delays) == 2


async def test_retry_after_honoured_on_429_and_503(
    client: IBMRuntimeClient, emu: Emulator, sleeps: Sleeps
) -> None:
    emu.faults.add("ibm.get_usage", status=429, headers={"Retry-After": "7"})
    emu.faults.add("ibm.get_usage", status=503, headers={"Retry-After": "2"})
    usage = await client.get_usage()
    assert usage.instance_id == CRN
    assert sleeps.delays == [7.0, 2.0]
    assert emu.calls("ibm.get_usage") == 3


async def test_429_exhausted_is_throttled(
    client: IBMRuntimeClient, emu: Emulator, sleeps: Sleeps
) -> None:
    emu.faults.add("ibm.get_instance", status=429, times=3, headers={"Retry-After": "1"})
    with pytest.raises(Throttled):
        await client.get_instance()
    assert sleeps.delays == [1.0, 1.0]


async def test_put_not_retried_on_503(
    client: IBMRuntimeClient, emu: Emulator, sleeps: Sleeps
) -> None:
    emu.faults.add("ibm.update_instance_configuration", status=503)
    with pytest.raises(ProviderUnavailable):
        await client.update_instance_configuration(2000)
    assert emu.calls("ibm.update_instance_configuration") == 1
    assert sleeps.delays == []


async def test_put_retried_on_429_which_is_safe(
    client: IBMRuntimeClient, emu: Emulator, sleeps: Sleeps
) -> None:
    emu.faults.add("ibm.update_instance_configuration", status=429, headers={"Retry-After": "3"})
    await client.update_instance_configuration(2000)
    assert emu.calls("ibm.update_instance_configuration") == 2
    assert sleeps.delays == [3.0]
    assert emu.ibm.instances[CRN].limit_seconds == 2000


async def test_revoked_token_one_refresh_one_retry(client: IBMRuntimeClient, emu: Emulator) -> None:
    await client.get_usage()
    emu.ibm.revoke_tokens()
    await client.get_usage()
    assert emu.calls("ibm.iam_token") == 2
    assert emu.calls("ibm.get_usage") == 3  # ok, 401, retried ok


async def test_persistent_401_refreshes_once_then_fails(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    await client.get_instance()
    emu.faults.add("ibm.get_instance", status=401, times=5)
    with pytest.raises(AuthenticationError) as info:
        await client.get_instance()
    assert info.value.status == 401
    assert emu.calls("ibm.iam_token") == 2  # exactly one refresh
    assert emu.calls("ibm.get_instance") == 3  # first ok, then 401 + one retry


async def test_token_cached_until_shortly_before_expiry(
    client: IBMRuntimeClient, emu: Emulator, clock: FakeClock
) -> None:
    emu.ibm.token_lifetime = 600
    await client.get_usage()
    clock.advance(seconds=400)
    await client.get_usage()
    assert emu.calls("ibm.iam_token") == 1
    clock.advance(seconds=150)  # inside the refresh margin (min(60 s, 20 %)): refresh early
    await client.get_usage()
    assert emu.calls("ibm.iam_token") == 2
    assert emu.calls("ibm.get_usage") == 3  # never a 401


async def test_50_concurrent_calls_with_a_cold_token_make_one_token_request(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    results = await asyncio.gather(*(client.get_usage() for _ in range(50)))
    assert {r.instance_id for r in results} == {CRN}
    assert emu.calls("ibm.iam_token") == 1
    assert client.token_exchanges == 1
    assert emu.calls("ibm.get_usage") == 50


async def test_concurrent_401s_cause_one_refresh(client: IBMRuntimeClient, emu: Emulator) -> None:
    await client.get_usage()
    emu.ibm.revoke_tokens()
    await asyncio.gather(*(client.get_usage() for _ in range(20)))
    assert emu.calls("ibm.iam_token") == 2


async def test_token_failure_reaches_every_waiter(
    make_client: ClientFactory, emu: Emulator
) -> None:
    client = make_client(api_key="wrong")
    results = await asyncio.gather(*(client.get_usage() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert emu.calls("ibm.iam_token") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"instance_id": "i", "plan_id": "p"}', "$.usage_consumed_seconds"),
        (
            '{"instance_id": "i", "plan_id": "p", "usage_consumed_seconds": "lots"}',
            "$.usage_consumed_seconds",
        ),
        (
            '{"instance_id": "i", "plan_id": "p", "usage_consumed_seconds": 1, '
            '"usage_period": {"start_time": "yesterday"}}',
            "$.usage_period.start_time",
        ),
        ('{"instance_id": "i", "plan_id": 5, "usage_consumed_seconds": 1}', "$.plan_id"),
        (
            '{"instance_id": "i", "plan_id": "p", "usage_consumed_seconds": 1, '
            '"usage_limit_reached": "no"}',
            "$.usage_limit_reached",
        ),
        ("[1, 2]", "$"),
        ("<html>oops</html>", "$"),
    ],
)
async def test_malformed_usage_names_the_wire_field(
    client: IBMRuntimeClient, emu: Emulator, body: str, field: str
) -> None:
    emu.faults.add("ibm.get_usage", status=200, body=body)
    with pytest.raises(MalformedPayload) as info:
        await client.get_usage()
    assert info.value.field == field
    assert field in str(info.value)


async def test_unknown_fields_tolerated_and_deprecated_limit_read(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    emu.faults.add(
        "ibm.get_instance",
        status=200,
        body='{"backends": ["b"], "instance_limit": 60.7, "new_field": {"x": 1}}',
    )
    instance = await client.get_instance()
    assert instance.instance_limit_seconds is None
    assert str(instance.limit_seconds) == "60.7"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.update_instance_configuration(0), "instance_limit"),
        (lambda c: c.update_instance_configuration(2**31), "instance_limit"),
        (lambda c: c.update_instance_configuration(True), "instance_limit"),
        (lambda c: c.update_instance_configuration("60"), "instance_limit"),
        (lambda c: c.get_account("a/acct-1"), "account_id"),
        (lambda c: c.get_account("x" * 65), "account_id"),
        (lambda c: c.get_account(""), "account_id"),
        (lambda c: c.get_account("acct-1", plan_id=""), "plan_id"),
        (lambda c: c.get_account("acct-1", plan_id="p" * 65), "plan_id"),
        (lambda c: c.get_job("../instances/usage"), "job_id"),
        (lambda c: c.get_job_metrics(""), "job_id"),
        (lambda c: c.get_session("a b"), "session_id"),
    ],
)
async def test_bad_input_rejected_before_sending(
    client: IBMRuntimeClient,
    emu: Emulator,
    call,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(InvalidInput) as info:
        await call(client)
    assert info.value.field == field
    assert emu.requests == []  # not even a token request


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"service_crn": "not-a-crn"}, "service_crn"),
        ({"api_version": "v2"}, "api_version"),
        ({"base_url": "http://example.com/api"}, "base_url"),
        ({"iam_url": "http://iam.example.com"}, "iam_url"),
        ({"region": "mars", "base_url": None}, "region"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_client_settings(kwargs: dict[str, object], field: str) -> None:
    args = {"service_crn": CRN, **kwargs}
    crn = args.pop("service_crn")
    with pytest.raises(InvalidInput) as info:
        IBMRuntimeClient(API_KEY, crn, **args)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_secrets_never_in_repr_logs_or_errors(
    make_client: ClientFactory, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    await client.get_usage()
    emu.faults.add("ibm.get_instance", status=401, times=2)
    errors: list[BaseException] = []
    with pytest.raises(AuthenticationError) as auth:
        await client.get_instance()
    errors.append(auth.value)
    with pytest.raises(AuthenticationError) as iam:
        await make_client(api_key=API_KEY + "-revoked").get_usage()
    errors.append(iam.value)
    emu.faults.add("ibm.get_usage", status=503, times=3)
    with pytest.raises(ProviderUnavailable) as down:
        await client.get_usage()
    errors.append(down.value)
    texts = [repr(client), str(client), caplog.text]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(client._auth), repr(client._http)]
    assert caplog.records  # DEBUG logging happened
    tokens = list(emu.ibm.tokens)
    assert len(tokens) == 2
    for text in texts:
        assert API_KEY not in text
        for token in tokens:
            assert token not in text


async def test_a_caller_between_the_refresh_and_its_callbacks_uses_the_new_token(
    client: IBMRuntimeClient, emu: Emulator
) -> None:
    # A refresh task that has finished, its done-callbacks not yet run (they run a loop turn
    # later): a caller in that window must find the new token, not start another exchange.
    # Under load the concurrent-401 test above saw 3 exchanges for this reason.
    auth = client._auth
    await client.get_usage()
    emu.ibm.revoke_tokens()
    auth.invalidate(await auth.token())
    first = asyncio.ensure_future(auth.token())
    await asyncio.sleep(0)
    task = auth._inflight
    assert task is not None
    task.remove_done_callback(auth._done)  # hold its bookkeeping callback back
    token = await first
    assert task.done()
    before = emu.calls("ibm.iam_token")
    assert await auth.token() == token  # the finished refresh's token, no new exchange
    assert emu.calls("ibm.iam_token") == before
    auth._done(task)
