"""Shared fixtures: a controllable clock and the emulator on a free loopback port."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from quotaguard._http import set_testing
from quotaguard.testing import Emulator, FakeClock
from tests.redis_server import MISSING as REDIS_MISSING
from tests.redis_server import RedisServer

# Session-wide scan: no secret from tests/secrets.py in any log record or escaped exception.
pytest_plugins = ["tests.reliability.secrets_plugin"]


@pytest.fixture(autouse=True)
def fast_retries() -> Iterator[None]:
    """Clients made without ``retry=`` wait zero seconds between their usual attempts; a test
    about attempts or delays passes its own RetryPolicy, which still wins."""
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[Emulator]:
    async with Emulator(clock=clock) as emu:
        yield emu


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free loopback port (never 6379).

    Fails, never skips, when redis-server is missing: the Redis ledger must be tested.
    """
    if shutil.which("redis-server") is None:
        pytest.fail(f"redis-server is not on PATH; {REDIS_MISSING}", pytrace=False)
    with RedisServer() as server:
        yield server
