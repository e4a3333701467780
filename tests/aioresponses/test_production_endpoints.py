"""What only aioresponses can show here: requests to the real production hosts (HTTPS, which
no loopback server can impersonate) and a DNS failure. Everything else uses the emulator.

Runs in its own nox session on aiohttp < 3.14 (pnuckowski/aioresponses#289).
"""

from __future__ import annotations

import json
import re
import time

import botocore.session
import pytest
from aiohttp import ClientConnectionError
from aioresponses import aioresponses
from yarl import URL

from quotaguard import ProviderUnavailable
from quotaguard._http import RetryPolicy
from quotaguard.braket import BraketClient
from quotaguard.ibm import IBMRuntimeClient

CRN = "crn:v1:bluemix:public:quantum-computing:eu-de:a/abc123::instance-1"
KEY = "prod-endpoint-test-api-key"


def _token() -> str:
    return json.dumps(
        {
            "access_token": "header.payload.sig",
            "token_type": "Bearer",
            "expires_in": 3600,
            "expiration": int(time.time()) + 3600,
        }
    )


async def test_ibm_eu_de_region_uses_the_production_hosts() -> None:
    with aioresponses() as mocked:
        mocked.post(
            "https://iam.cloud.ibm.com/identity/token",
            body=_token(),
            content_type="application/json",
        )
        mocked.get(
            "https://eu-de.quantum.cloud.ibm.com/api/v1/instances/usage",
            payload={
                "instance_id": CRN,
                "plan_id": "premium",
                "usage_consumed_seconds": 12,
                "usage_limit_seconds": 60,
            },
        )
        async with IBMRuntimeClient(KEY, CRN) as ibm:
            usage = await ibm.get_usage()
        assert usage.usage_consumed_seconds == 12
        (token_call,) = mocked.requests[("POST", URL("https://iam.cloud.ibm.com/identity/token"))]
        assert token_call.kwargs["data"]["apikey"] == KEY
        (call,) = mocked.requests[
            ("GET", URL("https://eu-de.quantum.cloud.ibm.com/api/v1/instances/usage"))
        ]
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == "Bearer header.payload.sig"
        assert headers["Service-CRN"] == CRN
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", headers["IBM-API-Version"])


async def test_braket_signs_for_the_regional_endpoint() -> None:
    creds = botocore.session.Session()
    creds.set_credentials("AKIDPROD", "prod-endpoint-secret")
    url = "https://braket.us-west-2.amazonaws.com/spending-limits"
    with aioresponses() as mocked:
        mocked.post(url, payload={"spendingLimits": []})
        async with BraketClient("us-west-2", botocore_session=creds) as braket:
            assert [lim async for lim in braket.search_spending_limits()] == []
        (call,) = mocked.requests[("POST", URL(url))]
        auth = call.kwargs["headers"]["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDPROD/")
        assert "/us-west-2/braket/aws4_request" in auth
        assert "prod-endpoint-secret" not in auth


async def test_dns_failure_is_provider_unavailable_after_bounded_retries() -> None:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    with aioresponses() as mocked:
        mocked.post(
            "https://iam.cloud.ibm.com/identity/token",
            exception=ClientConnectionError(
                "Cannot connect to host iam.cloud.ibm.com:443 [Name or service not known]"
            ),
            repeat=True,
        )
        async with IBMRuntimeClient(KEY, CRN, retry=RetryPolicy(attempts=3), sleep=sleep) as ibm:
            with pytest.raises(ProviderUnavailable) as info:
                await ibm.get_usage()
    assert KEY not in str(info.value)
    assert len(sleeps) <= 2
