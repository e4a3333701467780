"""A child process for the multi-process SQLite test: its own event loop and ledger."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from quotaguard.engine import Charge, Unit
from quotaguard.ledger import SQLiteLedger

__all__ = ["reserve_many"]


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
