"""Guard fixtures: the toy adapter of :mod:`tests._support.guard`, and a Braket client of the
emulator's demo seed (a module may define its own ``braket`` instead)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import botocore.session
import pytest

from quotaguard.braket import BraketClient
from quotaguard.testing import Emulator
from quotaguard.testing.seed import DemoSeed, seed_demo
from tests._support.guard import ToyAdapter
from tests._support.secrets import GUARD_AWS_SECRET_KEY


@pytest.fixture
def toy() -> ToyAdapter:
    return ToyAdapter()


@pytest.fixture
async def braket(emulator: Emulator) -> AsyncIterator[tuple[BraketClient, DemoSeed]]:
    seed = seed_demo(emulator)
    creds = botocore.session.Session()
    creds.set_credentials("AKIDTEST", GUARD_AWS_SECRET_KEY)
    emulator.braket.add_credentials("AKIDTEST", GUARD_AWS_SECRET_KEY)
    async with BraketClient(
        seed.region, endpoint_url=emulator.url, botocore_session=creds, timeout=2
    ) as client:
        yield client, seed
