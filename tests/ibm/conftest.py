"""IBM fixtures: a seeded emulator, a client pointed at it, and a sleep that only records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from quotaguard import RetryPolicy
from quotaguard.ibm import IBMRuntimeClient
from quotaguard.testing import Emulator, FakeClock
from tests._support.ibm import ACCOUNT, API_KEY, CRN, OPEN_CRN, OTHER_CRN, ClientFactory
from tests._support.sleeps import Sleeps


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def emu(emulator: Emulator) -> Emulator:
    emulator.ibm.add_api_key(API_KEY, ACCOUNT)
    emulator.ibm.add_api_key("other-key", "acct-2")
    emulator.ibm.add_instance(
        CRN, plan_id="premium", limit_seconds=3600, consumed_seconds=Decimal("120.5")
    )
    emulator.ibm.add_instance(OPEN_CRN, plan_id="open", consumed_seconds=100)
    emulator.ibm.add_instance(OTHER_CRN, plan_id="premium")
    return emulator


@pytest.fixture
async def make_client(
    emu: Emulator, clock: FakeClock, sleeps: Sleeps
) -> AsyncIterator[ClientFactory]:
    made: list[IBMRuntimeClient] = []

    def make(**kwargs: object) -> IBMRuntimeClient:
        options: dict[str, object] = {
            "base_url": emu.url + "/api",
            "iam_url": emu.url,
            "clock": clock,
            "sleep": sleeps,
            "retry": RetryPolicy(attempts=3),
        }
        options.update(kwargs)
        api_key = options.pop("api_key", API_KEY)
        crn = options.pop("service_crn", CRN)
        client = IBMRuntimeClient(api_key, crn, **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> IBMRuntimeClient:
    return make_client()
