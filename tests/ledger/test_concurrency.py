"""Atomic check-and-hold under concurrency: coroutines on one loop (memory, SQLite, PostgreSQL),
and OS processes on SQLite."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ledger import Ledger, SQLiteLedger
from tests._support.ledger import FACTORIES
from tests._support.processes import run_processes
from tests._support.times import T0
from tests._support.workers import reserve_many

# Redis has its own 2,000-coroutine test in test_redis.py. PostgreSQL's coroutines share a
# pool of 4 connections, so its reserves really run side by side on the server.
BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def local_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened


@pytest.mark.parametrize(("limit", "size"), [("1000", "3"), ("0.007", "0.000007")])
async def test_concurrent_equal_reserves_admit_exactly_what_fits(
    local_ledger: Ledger, limit: str, size: str
) -> None:
    await local_ledger.put_budget(Budget("shared", Unit.USD, Decimal(limit)))
    charge = Charge("shared", Decimal(size), Unit.USD)
    decisions = await asyncio.gather(
        *(local_ledger.reserve([charge], now=T0) for _ in range(2_000))
    )
    admitted = sum(d.admitted for d in decisions)
    assert admitted == min(2_000, int(Decimal(limit) // Decimal(size)))
    state = await local_ledger.state("shared", now=T0)
    assert state.reserved == admitted * Decimal(size)
    assert state.outstanding == admitted
    assert len({d.reservation.id for d in decisions if d.reservation}) == admitted


async def test_concurrent_random_reserves_never_exceed_the_limit(local_ledger: Ledger) -> None:
    rng = random.Random(20_261_121)
    limit = Decimal(500)
    await local_ledger.put_budget(Budget("shared", Unit.USD, limit))
    await local_ledger.put_budget(Budget("other", Unit.USD, Decimal(300)))
    charge_sets = [
        [Charge("shared", Decimal(rng.randint(1, 2_000_000)).scaleb(-4), Unit.USD)]
        + ([Charge("other", Decimal(rng.randint(1, 90)), Unit.USD)] if rng.random() < 0.3 else [])
        for _ in range(2_000)
    ]
    decisions = await asyncio.gather(
        *(local_ledger.reserve(charges, now=T0) for charges in charge_sets)
    )
    held = [c for c, d in zip(charge_sets, decisions, strict=True) if d.admitted]
    shared = sum(c[0].amount for c in held)
    other = sum(c[1].amount for c in held if len(c) > 1)
    assert 0 < shared <= limit
    assert other <= 300
    assert (await local_ledger.state("shared", now=T0)).reserved == shared
    assert (await local_ledger.state("other", now=T0)).reserved == other
    # Every rejection was a real one: the budget it names had less left than was asked.
    for decision in decisions:
        for violation in decision.violations:
            assert violation.remaining is not None and violation.requested is not None
            assert violation.requested > violation.remaining


@pytest.mark.slow
async def test_four_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("shared", Unit.USD, Decimal(1000)))
    per_process = await run_processes(reserve_many, [(str(path), 500, "3", T0)] * 4)
    assert sum(per_process) == 333  # floor(1000 / 3), across 2,000 attempts in 4 processes
    async with SQLiteLedger(path, time_source="caller") as ledger:
        assert await ledger.integrity_check() == "ok"
        state = await ledger.state("shared", now=T0)
        assert (state.reserved, state.outstanding) == (999, 333)
        assert len(await ledger.outstanding()) == 333
