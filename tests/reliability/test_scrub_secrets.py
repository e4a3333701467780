"""A provider's error text never carries our credentials into an exception or a log.

Braket's signature errors quote the canonical request (``x-amz-security-token:...``) and the
string to sign; an IBM or IAM error may quote the bearer token or the API key. The emulator
answers with such bodies (fault injection); the exception that reaches the caller (str,
repr, causes) and every log record (the watcher's included) must hold none of the secrets
the clients hold, and must still say what went wrong.
"""

from __future__ import annotations

import json
import logging

import pytest

from quotaguard import BudgetUnavailable, MemoryLedger, ProviderError
from quotaguard.braket.work import BraketTask
from quotaguard.guard import BudgetGuard
from quotaguard.ibm.work import IBMJob
from tests._support.braket import FORTE
from tests._support.reliability import BACKEND, World
from tests._support.secrets import (
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    IBM_API_KEY,
)
from tests._support.secrets_plugin import exception_texts

ACTION = (
    '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"}, '
    '"source": "OPENQASM 3;"}'
)
SIGNATURE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
# What AWS answers for a signature mismatch, quoting the request it expected.
CANONICAL = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method.\n\n"
    "The Canonical String for this request should have been\n"
    "'POST\n/spending-limits\n\n"
    "content-type:application/json\nhost:127.0.0.1:1\nx-amz-date:20261121T120000Z\n"
    f"x-amz-security-token:{AWS_SESSION_TOKEN}\n\n"
    "content-type;host;x-amz-date;x-amz-security-token\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'\n\n"
    "The String-to-Sign should have been\n"
    "'AWS4-HMAC-SHA256\n20261121T120000Z\n20261121/us-east-1/braket/aws4_request\n"
    f"{SIGNATURE}'\n"
)
# A proxy or gateway echoing the request headers, and a message naming the secret key.
ECHOED = (
    f"denied: Authorization: AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY_ID}/20261121/"
    f"us-east-1/braket/aws4_request, SignedHeaders=host;x-amz-date, Signature={SIGNATURE}\n"
    f"X-Amz-Security-Token: {AWS_SESSION_TOKEN}\nkey {AWS_SECRET_ACCESS_KEY} is not valid"
)
AWS_SECRETS = (AWS_SESSION_TOKEN, AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID, SIGNATURE)


def _braket_fault(world: World, route: str, message: str, times: int = 10) -> None:
    world.emu.faults.add(
        route,
        status=403,
        body=json.dumps({"message": message}),
        headers={"x-amzn-ErrorType": "InvalidSignatureException:http://internal.amazon.com/"},
        times=times,
    )


def _leaks(texts: list[str], secrets: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(s[:8], t[:160]) for t in texts for s in secrets if s in t]


def _logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    for record in caplog.records:
        if record.exc_info and record.exc_info[1] is not None:
            texts += exception_texts(record.exc_info[1])
    return texts


@pytest.mark.parametrize("message", [CANONICAL, ECHOED], ids=["canonical-request", "echoed"])
async def test_braket_403_quoting_the_request_is_scrubbed(
    world: World, caplog: pytest.LogCaptureFixture, message: str
) -> None:
    caplog.set_level(logging.DEBUG)
    _braket_fault(world, "braket.SearchSpendingLimits", message)
    sends: list[int] = []
    async with BudgetGuard(MemoryLedger(), braket=world.braket, clock=world.clock) as guard:
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(BraketTask(FORTE, shots=10), lambda: sends.append(1))
        with pytest.raises(ProviderError) as direct:
            await world.braket.spending_limit_for(FORTE)
    texts = exception_texts(info.value) + exception_texts(direct.value) + _logged(caplog)
    assert _leaks(texts, AWS_SECRETS) == []
    assert sends == []
    # Still worded: the kind of failure and Braket's own words survive the scrub.
    assert "InvalidSignatureException" in str(direct.value)
    assert "[redacted]" in str(direct.value)
    if message is CANONICAL:
        assert "does not match the signature you provided" in str(info.value)


async def test_the_watcher_logs_no_secret_from_a_failed_settlement(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ledger = MemoryLedger()
    async with BudgetGuard(ledger, braket=world.braket, clock=world.clock) as guard:
        sub = await guard.submit(
            BraketTask(FORTE, shots=10),
            lambda: world.braket.create_quantum_task(FORTE, ACTION, 10, "bucket-test", "p"),
        )
        assert sub.external_id is not None
        _braket_fault(world, "braket.GetQuantumTask", CANONICAL + ECHOED)
        assert await guard.watch_once() == 0
    warnings = [r for r in caplog.records if r.name == "quotaguard.guard"]
    assert warnings, "the watcher said nothing about the failed settlement"
    assert _leaks(_logged(caplog), AWS_SECRETS) == []


async def test_ibm_error_quoting_the_bearer_token_and_api_key_is_scrubbed(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with BudgetGuard(MemoryLedger(), ibm=world.ibm, clock=world.clock) as guard:
        await guard.sync()  # a token is issued
        tokens = tuple(world.emu.ibm.tokens)
        assert tokens
        body = {
            "errors": [
                {
                    "code": "forbidden",
                    "message": f"Authorization: Bearer {tokens[0]} refused for {IBM_API_KEY}",
                    "more_info": f"request headers: authorization=Bearer {tokens[0]}",
                }
            ],
            "trace": "trace-scrub-1",
        }
        world.emu.faults.add("ibm.get_usage", status=403, body=json.dumps(body), times=10)
        with pytest.raises(ProviderError) as direct:
            await guard.sync()
        world.clock.advance(hours=1)
        with pytest.raises(BudgetUnavailable) as info:
            await guard.submit(IBMJob(BACKEND, 60), lambda: None)
    texts = exception_texts(direct.value) + exception_texts(info.value) + _logged(caplog)
    texts += [json.dumps(item) for item in direct.value.errors]
    assert _leaks(texts, (*tokens, IBM_API_KEY)) == []
    assert "trace-scrub-1" in str(direct.value)
    assert "refused" in str(direct.value)


async def test_iam_refusal_quoting_the_api_key_is_scrubbed(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {
        "errorCode": "BXNIM0415E",
        "errorMessage": f"Provided API key could not be found: apikey={IBM_API_KEY}",
        "context": {"requestId": "iam-req-1"},
    }
    world.emu.faults.add("ibm.iam_token", status=400, body=json.dumps(body))
    with pytest.raises(ProviderError) as info:
        await world.ibm.get_usage()
    texts = exception_texts(info.value) + _logged(caplog)
    texts += [json.dumps(item) for item in info.value.errors]
    assert _leaks(texts, (IBM_API_KEY,)) == []
    assert "could not be found" in str(info.value)
