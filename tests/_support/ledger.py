"""The ledger backends every contract test runs against (:data:`FACTORIES`), and what the
ledger tests compare.

Every factory's ledger takes the caller's clock (``time_source="caller"``): the tests drive
time by hand, far from the machine's (``test_time_source.py`` tests the ledgers' own clocks).

Adding a backend (the Redis ledger does this): write a factory

    @contextlib.asynccontextmanager
    async def redis_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
        server = request.getfixturevalue("redis_server")   # any fixture you need
        async with RedisLedger(...) as ledger:
            yield ledger

and register it below with ``FACTORIES["redis"] = redis_ledger`` and, if it needs marks,
``MARKS["redis"] = (pytest.mark.redis,)``. The ``ledger`` fixture (tests/ledger/conftest.py),
the state machine (``test_state_machine.py``), the bad-input and lease tests then cover it.
A factory must open a *fresh, empty* ledger every time it is entered (the state machine
enters it once per example) and close everything it opened on exit.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from quotaguard.engine import Budget, BudgetState, Charge, Reservation, Unit
from quotaguard.ledger import Ledger, MemoryLedger, SQLiteLedger

__all__ = [
    "FACTORIES",
    "MARKS",
    "LedgerFactory",
    "Snapshot",
    "ledger_params",
    "snapshot",
    "usd",
]

LedgerFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Ledger]]

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


@contextlib.asynccontextmanager
async def redis_cluster_ledger(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Ledger]:
    # The session's 3-master cluster, through redis-py's RedisCluster client; a namespace
    # (so a slot) of its own per entry, its keys deleted on exit.
    from redis.asyncio.cluster import RedisCluster

    from quotaguard.ledger.redis import RedisLedger

    cluster = request.getfixturevalue("redis_cluster")
    namespace = f"c{next(_fresh)}-{uuid.uuid4().hex[:8]}"
    client = RedisCluster.from_url(cluster.url, socket_timeout=5)
    try:
        async with RedisLedger(client=client, namespace=namespace, time_source="caller") as ledger:
            try:
                yield ledger
            finally:
                keys = [k async for k in client.scan_iter(match=f"{{{namespace}}}:*", count=1000)]
                for key in keys:
                    await client.delete(key)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def postgres_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    # The session's cluster; a schema of its own per entry. An emptied schema is used again
    # (TRUNCATE is ~20x cheaper than making the schema and its functions anew).
    from quotaguard.ledger.postgres import PostgresLedger

    server = request.getfixturevalue("postgres_server")
    spare = _SPARE_SCHEMAS.setdefault(server.dsn, [])
    schema = spare.pop() if spare else f"t{next(_fresh)}_{uuid.uuid4().hex[:8]}"
    async with PostgresLedger(
        server.dsn, schema=schema, pool_size=4, time_source="caller"
    ) as ledger:
        try:
            yield ledger
        finally:
            await ledger._run(lambda pool: pool.execute(_EMPTY), None)
            spare.append(schema)


async def drop_schema(dsn: str, schema: str) -> None:
    """Drop a PostgresLedger's schema and everything in it."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def postgres_rows(ledger: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of a PostgresLedger's tables, sorted: what 'nothing changed' compares."""
    tables = ("budgets", "reservations", "holds", "commits")
    return {t: sorted(tuple(r) for r in await ledger._rows(f"SELECT * FROM {t}")) for t in tables}


_SPARE_SCHEMAS: dict[str, list[str]] = {}
_EMPTY = "TRUNCATE budgets, reservations, holds, commits RESTART IDENTITY"


FACTORIES: dict[str, LedgerFactory] = {
    "memory": memory_ledger,
    "sqlite": sqlite_ledger,
    "redis": redis_ledger,
    "redis-cluster": redis_cluster_ledger,
    "postgres": postgres_ledger,
}
MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "redis": (pytest.mark.redis,),
    "redis-cluster": (pytest.mark.redis,),
    "postgres": (pytest.mark.postgres,),
}


def ledger_params() -> list[object]:
    """One ``pytest.param`` per registered backend, carrying its marks."""
    return [pytest.param(name, marks=MARKS.get(name, ()), id=name) for name in FACTORIES]


def usd(budget: str, amount: str | int) -> Charge:
    """A charge of ``amount`` USD on ``budget``."""
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
