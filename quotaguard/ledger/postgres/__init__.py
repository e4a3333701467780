"""The fleet ledger on PostgreSQL: every reserve one statement (one PL/pgSQL function call)."""

try:
    import asyncpg  # noqa: F401  (the optional extra: fail here, in one line)
except ImportError as exc:
    from quotaguard._extras import missing

    raise missing("postgres", "PostgresLedger") from exc

from quotaguard.ledger.postgres.ledger import SCHEMA_VERSION, PostgresLedger

__all__ = ["SCHEMA_VERSION", "PostgresLedger"]
