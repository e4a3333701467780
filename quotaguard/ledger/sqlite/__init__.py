"""The embedded SQLite ledger: one machine, many processes (``BEGIN IMMEDIATE``, WAL)."""

from quotaguard.ledger.sqlite.ledger import SCHEMA_VERSION, SQLiteLedger, default_path

__all__ = ["SCHEMA_VERSION", "SQLiteLedger", "default_path"]
