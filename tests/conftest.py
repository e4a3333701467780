"""Shared fixtures: a controllable clock and the emulator on a free loopback port."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from quotaguard.testing import Emulator
from tests.redis_server import MISSING as REDIS_MISSING
from tests.redis_server import RedisServer

# Session-wide scan: no secret from tests/secrets.py in any log record or escaped exception.
pytest_plugins = ["tests.reliability.secrets_plugin"]


class FakeClock:
    """A clock tests move by hand; every component takes it as ``clock=``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


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
