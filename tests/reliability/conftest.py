"""Reliability fixtures: the emulator with real IBM and Braket clients (:class:`World`).

Credentials come from :mod:`tests._support.secrets` so the session-wide secrets scan knows them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from quotaguard import RetryPolicy
from quotaguard.braket import BraketClient
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.aws import botocore_session
from tests._support.braket import FORTE
from tests._support.reliability import ATTEMPTS, BACKEND, CRN, TIMEOUT, World
from tests._support.secrets import (
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    IBM_API_KEY,
)
from tests._support.sleeps import Sleeps


@pytest.fixture
async def world(emulator: Emulator, clock: FakeClock) -> AsyncIterator[World]:
    """An IBM premium instance (3,600 s limit) and a Braket QPU with a $100 spending limit."""
    emulator.ibm.add_api_key(IBM_API_KEY, "rel-acct")
    emulator.ibm.add_instance(CRN, plan_id="premium", limit_seconds=3600, backends=[BACKEND])
    emulator.braket.add_credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    emulator.braket.add_spending_limit(FORTE, Decimal(100))
    sleeps = Sleeps()
    aws = botocore_session(AWS_SESSION_TOKEN, key=AWS_ACCESS_KEY_ID, secret=AWS_SECRET_ACCESS_KEY)
    # Explicit policies: these tests count attempts. IBM's sleeps are recorded, not slept;
    # Braket sleeps for real, so its waits (and a Retry-After: 7) are capped small.
    braket_retry = RetryPolicy(attempts=ATTEMPTS, base=0.001, cap=0.005, max_retry_after=0.05)
    async with (
        IBMRuntimeClient(
            IBM_API_KEY,
            CRN,
            base_url=f"{emulator.url}/api",
            iam_url=emulator.url,
            timeout=TIMEOUT,
            retry=RetryPolicy(attempts=ATTEMPTS),
            sleep=sleeps,
            clock=clock,
        ) as ibm,
        BraketClient(
            "us-east-1",
            endpoint_url=emulator.url,
            botocore_session=aws,
            timeout=TIMEOUT,
            retry=braket_retry,
        ) as braket,
    ):
        yield World(emulator, ibm, braket, clock, sleeps)
