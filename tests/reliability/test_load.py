"""Load: many OS processes on one budget, with a sampler watching the ledger the whole time.

8 processes x 1,000 submissions on one Redis budget, the same on one PostgreSQL budget, and
4 x 500 on one SQLite file; random sizes; each admitted hold is committed (actual <=
reserved), released or kept. The sampler asserts committed + reserved <= limit at every
sample; at the end the ledger holds exactly what the workers say they committed and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.ledger import Ledger, SQLiteLedger
from tests._support.ledger import drop_schema
from tests._support.postgres_server import PostgresServer
from tests._support.processes import run_processes
from tests._support.redis_server import RedisServer
from tests._support.times import T0
from tests._support.workers import KEY, load_worker, open_ledger

LIMIT = Decimal(4000)


class Sampler:
    """Polls the budget's state while the workers run; every sample must be within the limit."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.samples = 0
        self.peak = Decimal(0)
        self.over: list[tuple[Decimal, Decimal]] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            state = await self.ledger.state(KEY, now=T0)
            self.samples += 1
            self.peak = max(self.peak, state.committed + state.reserved)
            if state.committed + state.reserved > state.budget.limit:
                self.over.append((state.committed, state.reserved))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.01)


async def run_fleet(
    ledger: Ledger, worker_args: list[tuple[Any, ...]], target: Callable[..., Any]
) -> tuple[list[dict[str, Any]], Sampler, float]:
    sampler, stop = Sampler(ledger), asyncio.Event()
    sampling = asyncio.ensure_future(sampler.run(stop))
    started = time.perf_counter()
    try:
        tallies = await run_processes(target, worker_args, timeout=180)
    finally:
        stop.set()
        await sampling
    return tallies, sampler, time.perf_counter() - started


async def check_totals(
    ledger: Ledger, tallies: list[dict[str, Any]], sampler: Sampler, limit: Decimal
) -> None:
    assert sampler.over == []
    assert sampler.samples >= 10, "the sampler must have watched the run"
    assert sampler.peak <= limit
    state = await ledger.state(KEY, now=T0)
    committed = sum((Decimal(t["committed"]) for t in tallies), Decimal(0))
    held = sum((Decimal(t["held"]) for t in tallies), Decimal(0))
    assert state.committed == committed  # nothing lost, nothing counted twice
    assert state.reserved == held
    assert state.outstanding == sum(t["holds"] for t in tallies)
    assert len(await ledger.outstanding()) == state.outstanding
    # The limit really bound: some work was turned away, most was admitted.
    assert sum(t["rejected"] for t in tallies) > 0
    assert sum(t["admitted"] for t in tallies) > 0
    assert committed + held <= limit


@pytest.mark.slow
@pytest.mark.redis
async def test_eight_processes_share_one_redis_budget(fresh_redis: RedisServer) -> None:
    namespace = f"load-{uuid.uuid4().hex[:8]}"
    async with open_ledger("redis", fresh_redis.url, namespace) as ledger:
        await ledger.put_budget(Budget(KEY, Unit.USD, LIMIT))
        args = [("redis", fresh_redis.url, namespace, 1_000, seed) for seed in range(8)]
        tallies, sampler, seconds = await run_fleet(ledger, args, load_worker)
        assert len({t["pid"] for t in tallies}) == 8
        await check_totals(ledger, tallies, sampler, LIMIT)
    print(
        f"\nredis load: 8 x 1000 in {seconds:.1f}s, admitted "
        f"{sum(t['admitted'] for t in tallies)}, rejected {sum(t['rejected'] for t in tallies)}, "
        f"samples {sampler.samples}, peak {sampler.peak}/{LIMIT}"
    )


@pytest.mark.slow
@pytest.mark.postgres
async def test_eight_processes_share_one_postgres_budget(postgres_server: PostgresServer) -> None:
    schema = f"load_{uuid.uuid4().hex[:8]}"
    try:
        async with open_ledger("postgres", postgres_server.dsn, schema) as ledger:
            await ledger.put_budget(Budget(KEY, Unit.USD, LIMIT))
            args = [("postgres", postgres_server.dsn, schema, 1_000, seed) for seed in range(8)]
            tallies, sampler, seconds = await run_fleet(ledger, args, load_worker)
            assert len({t["pid"] for t in tallies}) == 8
            await check_totals(ledger, tallies, sampler, LIMIT)
    finally:
        await drop_schema(postgres_server.dsn, schema)
    print(
        f"\npostgres load: 8 x 1000 in {seconds:.1f}s, admitted "
        f"{sum(t['admitted'] for t in tallies)}, rejected {sum(t['rejected'] for t in tallies)}, "
        f"samples {sampler.samples}, peak {sampler.peak}/{LIMIT}"
    )


@pytest.mark.slow
async def test_four_processes_share_one_sqlite_budget(tmp_path: Path) -> None:
    path = str(tmp_path / "fleet.sqlite3")
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget(KEY, Unit.USD, LIMIT / 4))
        args = [("sqlite", path, "", 500, seed) for seed in range(4)]
        tallies, sampler, seconds = await run_fleet(ledger, args, load_worker)
        assert len({t["pid"] for t in tallies}) == 4
        assert await ledger.integrity_check() == "ok"
        await check_totals(ledger, tallies, sampler, LIMIT / 4)
    print(
        f"\nsqlite load: 4 x 500 in {seconds:.1f}s, admitted "
        f"{sum(t['admitted'] for t in tallies)}, rejected {sum(t['rejected'] for t in tallies)}, "
        f"samples {sampler.samples}, peak {sampler.peak}/{LIMIT / 4}"
    )
