"""Ledger fixtures: every contract test runs against every backend in :data:`FACTORIES`.

Every factory's ledger takes the caller's clock (``time_source="caller"``): the tests drive
time by hand, far from the machine's (``test_time_source.py`` tests the ledgers' own clocks).

Adding a backend (the Redis ledger does this): write a factory

    @contextlib.asynccontextmanager
    async def redis_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
        server = request.getfixturevalue("redis_server")   # any fixture you need
        async with RedisLedger(...) as ledger:
            yield ledger

and register it below, before the fixtures, with ``FACTORIES["redis"] = redis_ledger`` and,
if it needs marks, ``MARKS["redis"] = (pytest.mark.redis,)``. The ``ledger`` fixture, the
state machine (``test_state_machine.py``), the bad-input and lease tests then cover it.
A factory must open a *fresh, empty* ledger every time it is entered (the state machine
enters it once per example) and close everything it opened on exit.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

from quotaguard.engine import Budget, BudgetState, Charge, Reservation, Unit
from quotaguard.ledger import Ledger, MemoryLedger, SQLiteLedger

if TYPE_CHECKING:  # the redis package is optional: imported where a fixture needs it
    import redis.asyncio as aioredis

    from quotaguard.ledger.redis import RedisLedger
    from tests._support.redis_server import RedisServer

__all__ = [
    "FACTORIES",
    "MARKS",
    "T0",
    "LedgerFactory",
    "Snapshot",
    "ledger_params",
    "snapshot",
    "usd",
]

LedgerFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Ledger]]

#: A fixed instant in the middle of a month, so windows do not roll over by accident.
T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)

_fresh = itertools.count()


@contextlib.asynccontextmanager
async def memory_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with MemoryLedger(time_source="caller") as ledger:
        yield ledger


@contextlib.asynccontextmanager
async def sqlite_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    # A new file per entry: the state machine opens many ledgers inside one tmp_path.
    async with SQLiteLedger(
        tmp_path / f"ledger-{next(_fresh)}.sqlite3", time_source="caller"
    ) as ledger:
        yield ledger


@contextlib.asynccontextmanager
async def redis_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    # The session's redis-server; a namespace of its own per entry, its keys deleted on exit.
    from quotaguard.ledger.redis import RedisLedger

    server = request.getfixturevalue("redis_server")
    namespace = f"t{next(_fresh)}-{uuid.uuid4().hex[:8]}"
    async with RedisLedger(server.url, namespace=namespace, time_source="caller") as ledger:
        try:
            yield ledger
        finally:
            client = ledger._client
            keys = [k async for k in client.scan_iter(match=f"{{{namespace}}}:*", count=1000)]
            if keys:
                await client.delete(*keys)


FACTORIES: dict[str, LedgerFactory] = {
    "memory": memory_ledger,
    "sqlite": sqlite_ledger,
    "redis": redis_ledger,
}
MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {"redis": (pytest.mark.redis,)}


def ledger_params() -> list[object]:
    """One ``pytest.param`` per registered backend, carrying its marks."""
    return [pytest.param(name, marks=MARKS.get(name, ()), id=name) for name in FACTORIES]


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
    from tests.ledger._redis import fresh_namespace

    async with RedisLedger(
        client=client, namespace=fresh_namespace(), time_source="caller"
    ) as ledger:
        yield ledger


def usd(budget: str, amount: str | int) -> Charge:
    return Charge(budget, Decimal(amount), Unit.USD)


@attrs.frozen
class Snapshot:
    """Everything a caller can observe of a ledger at one instant."""

    budgets: tuple[Budget, ...]
    states: tuple[BudgetState, ...]
    outstanding: tuple[Reservation, ...]
    reservations: tuple[Reservation, ...]


async def snapshot(ledger: Ledger, now: datetime, ids: tuple[str, ...] = ()) -> Snapshot:
    """Budgets, their states at ``now``, outstanding reservations and the given reservations.

    ``state()`` expires due leases, so take both snapshots of a "nothing changed" assertion
    at the same ``now``: the first one settles whatever was due.
    """
    budgets = tuple(sorted(await ledger.budgets(), key=lambda b: b.key))
    states = tuple([await ledger.state(b.key, now=now) for b in budgets])
    outstanding = tuple(sorted(await ledger.outstanding(), key=lambda r: r.id))
    reservations = tuple([await ledger.get(rid) for rid in ids])
    return Snapshot(budgets, states, outstanding, reservations)
