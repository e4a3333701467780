"""Reliability fixtures: a fresh redis-server, and the emulator with real IBM and Braket clients.

Credentials come from :mod:`tests.secrets` so the session-wide secrets scan knows them.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import attrs
import botocore.session
import pytest

from quotaguard._http import RetryPolicy
from quotaguard.braket import BraketClient
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator
from tests.conftest import FakeClock
from tests.redis_server import MISSING as REDIS_MISSING
from tests.redis_server import RedisServer
from tests.secrets import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, IBM_API_KEY

CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/rel-acct:rel-inst::"
BACKEND = "ibm_reliable"
FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
#: Client timeout of the fault tests: an emulator delay longer than this is a timeout.
TIMEOUT = 0.25
ATTEMPTS = 3


class Sleeps:
    """Records backoff delays instead of sleeping (the IBM client takes ``sleep=``)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@attrs.define
class World:
    emu: Emulator
    ibm: IBMRuntimeClient
    braket: BraketClient
    clock: FakeClock
    sleeps: Sleeps
    #: A submission a test made earlier, for cases that refer to it.
    held: object = None


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own (no other test's keys), on a free loopback port."""
    if shutil.which("redis-server") is None:
        pytest.fail(f"redis-server is not on PATH; {REDIS_MISSING}", pytrace=False)
    with RedisServer() as server:
        yield server


def aws_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.set_credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
    return session


@pytest.fixture
async def world(emulator: Emulator, clock: FakeClock) -> AsyncIterator[World]:
    """An IBM premium instance (3,600 s limit) and a Braket QPU with a $100 spending limit."""
    emulator.ibm.add_api_key(IBM_API_KEY, "rel-acct")
    emulator.ibm.add_instance(CRN, plan_id="premium", limit_seconds=3600, backends=[BACKEND])
    emulator.braket.add_credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
    emulator.braket.add_spending_limit(FORTE, Decimal(100))
    sleeps = Sleeps()
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
            botocore_session=aws_session(),
            timeout=TIMEOUT,
            retry=braket_retry,
        ) as braket,
    ):
        yield World(emulator, ibm, braket, clock, sleeps)
