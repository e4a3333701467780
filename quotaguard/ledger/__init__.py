"""Reservation storage: memory (one process), SQLite (one machine), Redis or PostgreSQL (a
fleet)."""

from typing import TYPE_CHECKING

from quotaguard.ledger.base import DEFAULT_LEASE, Ledger
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.ledger.retention import DEFAULT_RETENTION, Trimmed
from quotaguard.ledger.sqlite import SQLiteLedger

if TYPE_CHECKING:
    from quotaguard.ledger.postgres import PostgresLedger
    from quotaguard.ledger.redis import RedisLedger

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "Ledger",
    "MemoryLedger",
    "PostgresLedger",
    "RedisLedger",
    "SQLiteLedger",
    "Trimmed",
]


def __getattr__(name: str) -> object:
    # RedisLedger and PostgresLedger need optional packages: import them only when asked for.
    if name == "PostgresLedger":
        from quotaguard.ledger.postgres import PostgresLedger

        return PostgresLedger
    if name == "RedisLedger":
        from quotaguard.ledger.redis import RedisLedger

        return RedisLedger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
