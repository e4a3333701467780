"""Child processes of the load, crash and multi-process SQLite tests: each runs its own event
loop and ledger.

Workers return their own tallies (as strings: exact Decimals across the process boundary) so
the parent can check that the ledger holds exactly what the workers recorded.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from quotaguard.engine import Charge, Unit
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger import Ledger, SQLiteLedger
from tests._support.times import T0

__all__ = [
    "KEY",
    "LEASE",
    "RestartGate",
    "alert_worker",
    "crash_worker",
    "load_worker",
    "open_ledger",
    "reserve_many",
    "restart_worker",
]

#: Every worker passes the same ``now`` (:data:`T0`, so its ledgers take the caller's clock)
#: with this lease: none expires in a run.
LEASE = timedelta(days=1)
KEY = "fleet"


def open_ledger(kind: str, where: str, namespace: str = "qg") -> Ledger:
    """``where``: a SQLite path, a Redis URL or a PostgreSQL DSN; ``namespace``: Redis's
    namespace or PostgreSQL's schema."""
    if kind == "sqlite":
        return SQLiteLedger(where, time_source="caller")
    if kind == "postgres":
        from quotaguard.ledger.postgres import PostgresLedger

        return PostgresLedger(where, schema=namespace, pool_size=2, time_source="caller")
    from quotaguard.ledger.redis import RedisLedger

    return RedisLedger(where, namespace=namespace, socket_timeout=5.0, time_source="caller")


async def _load(kind: str, where: str, namespace: str, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    committed = held = Decimal(0)
    admitted = rejected = commits = releases = holds = 0
    async with open_ledger(kind, where, namespace) as ledger:
        for _ in range(count):
            size = Decimal(rng.randint(1, 500)).scaleb(-2)  # $0.01 .. $5.00
            decision = await ledger.reserve([Charge(KEY, size, Unit.USD)], now=T0, lease=LEASE)
            if not decision.admitted:
                rejected += 1
                continue
            admitted += 1
            assert decision.reservation is not None
            rid, roll = decision.reservation.id, rng.random()
            if roll < 0.6:
                # Actual cost at most what was reserved: then committed + reserved <= limit.
                actual = (size * Decimal(rng.randint(0, 100)) / 100).quantize(Decimal("0.01"))
                await ledger.commit(rid, [Charge(KEY, actual, Unit.USD)], now=T0)
                committed += actual
                commits += 1
            elif roll < 0.9:
                await ledger.release(rid, now=T0)
                releases += 1
            else:
                held += size  # left outstanding: it must still count at the end
                holds += 1
    return {
        "pid": os.getpid(),
        "committed": str(committed),
        "held": str(held),
        "admitted": admitted,
        "rejected": rejected,
        "commits": commits,
        "releases": releases,
        "holds": holds,
    }


def load_worker(kind: str, where: str, namespace: str, count: int, seed: int) -> dict[str, Any]:
    """``count`` random reserves on budget :data:`KEY`, each then committed, released or kept."""
    return asyncio.run(_load(kind, where, namespace, count, seed))


async def _crash(path: str, lease_s: int, out: Any, kind: str, namespace: str) -> None:
    rng = random.Random(7)
    async with open_ledger(kind, path, namespace) as ledger:
        committed = Decimal(0)
        for _ in range(20):
            size = Decimal(rng.randint(1, 300)).scaleb(-2)
            decision = await ledger.reserve([Charge(KEY, size, Unit.USD)], now=T0)
            assert decision.reservation is not None
            await ledger.commit(decision.reservation.id, now=T0)
            committed += size
        out.put(("committed", str(committed)))
        # Then hold, and hold, until the parent kills us mid-stream.
        while True:
            size = Decimal(rng.randint(1, 300)).scaleb(-2)
            decision = await ledger.reserve(
                [Charge(KEY, size, Unit.USD)], now=T0, lease=timedelta(seconds=lease_s)
            )
            if decision.reservation is not None:
                out.put(("held", decision.reservation.id, str(size)))


def crash_worker(
    path: str, lease_s: int, out: Any, kind: str = "sqlite", namespace: str = ""
) -> None:
    """Commits 20 reservations, reports the total, then reserves forever (to be SIGKILLed)."""
    asyncio.run(_crash(path, lease_s, out, kind, namespace))


async def _restart(
    url: str, namespace: str, count: int, seed: int, gate: RestartGate | None, kind: str
) -> list[tuple[str, str, str]]:
    """Reserve ``count`` times with idempotency keys, retrying a key until it gets an id.

    With a ``gate``, the worker says when a quarter is done and waits to be let go on.
    """
    rng = random.Random(seed)
    got: list[tuple[str, str, str]] = []
    async with open_ledger(kind, url, namespace) as ledger:
        for n in range(count):
            if gate is not None and n == count // 4:
                gate.reached.set()
                if not await asyncio.to_thread(gate.go.wait, 30):
                    raise TimeoutError("the test never let this worker go on")
            key = f"w{seed}-{n}"
            size = Decimal(rng.randint(1, 100)).scaleb(-2)
            deadline = time.monotonic() + 30
            while True:
                try:
                    decision = await ledger.reserve(
                        [Charge(KEY, size, Unit.USD)], now=T0, lease=LEASE, idempotency_key=key
                    )
                    break
                except BudgetUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)  # the server is restarting: same key again
            assert decision.reservation is not None
            got.append((key, decision.reservation.id, str(size)))
    return got


@attrs.frozen
class RestartGate:
    """Two thread events: the worker has done a quarter of its run; the test lets it go on."""

    reached: threading.Event = attrs.Factory(threading.Event)
    go: threading.Event = attrs.Factory(threading.Event)


def restart_worker(
    url: str,
    namespace: str,
    count: int,
    seed: int,
    gate: RestartGate | None = None,
    kind: str = "redis",
) -> list[tuple[str, str, str]]:
    return asyncio.run(_restart(url, namespace, count, seed, gate, kind))


async def _reserve_many(path: str, count: int, size: str, now: datetime) -> int:
    admitted = 0
    async with SQLiteLedger(path, time_source="caller") as ledger:
        for _ in range(count):
            decision = await ledger.reserve([Charge("shared", Decimal(size), Unit.USD)], now=now)
            admitted += decision.admitted
    return admitted


def reserve_many(path: str, count: int, size: str, now: datetime) -> int:
    """How many of ``count`` reserves of ``size`` on budget "shared" this process got."""
    return asyncio.run(_reserve_many(path, count, size, now))


async def _alerts(kind: str, where: str, namespace: str, count: int) -> list[int]:
    seen: list[int] = []
    async with open_ledger(kind, where, namespace) as ledger:
        for _ in range(count):
            decision = await ledger.reserve(
                [Charge(KEY, Decimal(1), Unit.USD)], now=T0, lease=LEASE
            )
            seen.extend(a.level for a in decision.alerts)
    return seen


def alert_worker(kind: str, where: str, namespace: str, count: int) -> list[int]:
    """``count`` reserves of 1 USD on :data:`KEY`, kept: the alert levels this worker saw."""
    return asyncio.run(_alerts(kind, where, namespace, count))
