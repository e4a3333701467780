"""Admission throughput and scaling: guard.submit with a send that returns a task ARN at once
(no HTTP), per ledger.

Every figure is measured in this run, side by side, so ratios hold on a noisy machine.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from quotaguard import Budget, BudgetGuard, Charge, MemoryLedger, SQLiteLedger, Unit
from quotaguard.braket.pricing import PriceTable
from quotaguard.braket.work import BraketTask
from quotaguard.ledger.base import Ledger

TASK_ARN = "arn:aws:braket:us-east-1:123456789012:quantum-task/bench-"
DEVICE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
BIG = Decimal(10) ** 9


def _now() -> datetime:
    return datetime.now(UTC)


async def _guard_rate(
    ledger: Ledger, n: int, concurrency: int = 1, span: list[float] | None = None
) -> float:
    """Submissions per second through the guard (prices only: no HTTP), one user budget."""
    async with BudgetGuard(ledger, prices=PriceTable.default()) as guard:
        await guard.add_budget(Budget("team:bench", Unit.USD, BIG))
        task = BraketTask(DEVICE, shots=10)

        arns = (f"{TASK_ARN}{i}" for i in itertools.count())

        async def send() -> str:  # no HTTP: a task ARN at once, which the guard binds
            return next(arns)

        async def worker(count: int) -> None:
            for _ in range(count):
                await guard.submit(task, send, budgets=("team:bench",))

        await guard.submit(task, send, budgets=("team:bench",))  # warm up: schema, caches
        start = time.perf_counter()
        wall = time.time()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        if span is not None:
            span += [wall, wall + elapsed]
        return n / elapsed


def memory_admission(n: int = 20_000) -> dict[str, Any]:
    rate = asyncio.run(_guard_rate(MemoryLedger(), n))
    return {"memory_admissions_per_s": round(rate), "target": 50_000}


def _sqlite_worker(path: str, n: int, queue: Any, go: Any) -> None:
    async def main() -> list[float]:
        ledger = SQLiteLedger(path)
        span: list[float] = []
        try:
            go.wait(60)  # every process starts measuring together, after its imports
            await _guard_rate(ledger, n, span=span)
            return span
        finally:
            await ledger.aclose()

    queue.put(asyncio.run(main()))


def sqlite_admission(processes: int = 4, n: int = 500) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.sqlite3")

        async def seed() -> None:
            async with SQLiteLedger(path) as ledger:
                await ledger.put_budget(Budget("team:bench", Unit.USD, BIG))

        asyncio.run(seed())
        ctx = multiprocessing.get_context("spawn")
        queue, go = ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(target=_sqlite_worker, args=(path, n, queue, go)) for _ in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(3)  # let every process import and open the ledger
        go.set()
        spans = [queue.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    elapsed = max(s[1] for s in spans) - min(s[0] for s in spans)
    return {
        "sqlite_processes": processes,
        "sqlite_admissions_per_s_total": round(processes * n / elapsed),
        "target": 2_000,
    }


async def _reserve_cost(ledger: Ledger, outstanding: int, probes: int = 2_000) -> float:
    """Seconds per reserve+release with `outstanding` reservations already held."""
    now = _now()
    await ledger.put_budget(Budget("scale", Unit.USD, BIG))
    charge = [Charge("scale", Decimal("0.01"), Unit.USD)]
    for _ in range(outstanding):
        await ledger.reserve(charge, now=now, lease=timedelta(days=1))
    start = time.perf_counter()
    for _ in range(probes):
        decision = await ledger.reserve(charge, now=now, lease=timedelta(days=1))
        assert decision.reservation is not None
        await ledger.release(decision.reservation.id, now=now)
    return (time.perf_counter() - start) / probes


def scaling(small: int = 100, large: int = 100_000) -> dict[str, Any]:
    from bench.redis_ledger import redis_server
    from quotaguard.ledger.redis import RedisLedger

    out: dict[str, Any] = {}
    factories: dict[str, Callable[[], Awaitable[float]]] = {}
    names = ("memory", "sqlite", "redis")
    with redis_server() as url:
        for name in names:
            for size in (small, large):

                async def run(name: str = name, size: int = size) -> float:
                    if name == "memory":
                        return await _reserve_cost(MemoryLedger(), size)
                    if name == "redis":
                        async with RedisLedger(url, namespace=f"scale-{size}") as redis_ledger:
                            return await _reserve_cost(redis_ledger, size)
                    with tempfile.TemporaryDirectory() as tmp:
                        async with SQLiteLedger(Path(tmp) / "s.sqlite3") as ledger:
                            return await _reserve_cost(ledger, size)

                factories[f"{name}_{size}"] = run
        for label, fn in factories.items():
            out[f"{label}_us_per_reserve_release"] = round(asyncio.run(fn()) * 1e6, 1)
    for name in names:
        out[f"{name}_ratio_{large}_vs_{small}"] = round(
            out[f"{name}_{large}_us_per_reserve_release"]
            / out[f"{name}_{small}_us_per_reserve_release"],
            2,
        )
    out["target_ratio_max"] = 2.0
    return out
