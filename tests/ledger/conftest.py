"""Ledger fixtures: ``ledger`` is each backend of :data:`tests._support.ledger.FACTORIES` in
turn; ``client`` and ``rl`` reach the session's redis-server straight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from quotaguard.ledger import Ledger
from tests._support.ledger import FACTORIES, ledger_params
from tests._support.redis_ledger import fresh_namespace

if TYPE_CHECKING:  # the redis package is optional: imported where a fixture needs it
    import redis.asyncio as aioredis

    from quotaguard.ledger.redis import RedisLedger
    from tests._support.redis_server import RedisServer


@pytest.fixture(params=ledger_params())
def ledger_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def ledger(
    ledger_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Ledger]:
    async with FACTORIES[ledger_name](request, tmp_path) as opened:
        yield opened


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of the session's redis-server, straight to it."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        redis_server.url, max_connections=32, timeout=10, socket_timeout=5
    )
    async with aioredis.Redis(connection_pool=pool) as c:
        yield c
    await pool.aclose()


@pytest.fixture
async def rl(client: aioredis.Redis) -> AsyncIterator[RedisLedger]:
    """A Redis ledger on the caller's clock, in a namespace of its own."""
    from quotaguard.ledger.redis import RedisLedger

    async with RedisLedger(
        client=client, namespace=fresh_namespace(), time_source="caller"
    ) as ledger:
        yield ledger
