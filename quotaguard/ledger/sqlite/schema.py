"""The SQLite ledger's file format: the schema, its version, rows to engine values, and the
row operations several ledger operations share (window sums, expiry, un-holding).

Amounts are integer micro-units and instants epoch microseconds (see ``base.epoch_us``);
charge lists are JSON ``[[budget, amount, unit], ...]`` with the exact Decimal text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import platformdirs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Charge, Reservation, ReservationState
from quotaguard.engine.rules import Usage, report_counts
from quotaguard.engine.windows import window_from_dict
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.base import epoch_us, from_epoch_us

__all__ = [
    "SCHEMA_VERSION",
    "charges_from",
    "charges_json",
    "default_path",
    "expire_due",
    "init_schema",
    "row_to_budget",
    "row_to_reservation",
    "unhold",
    "usage_of",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budgets(
    key TEXT PRIMARY KEY, unit TEXT NOT NULL, limit_text TEXT NOT NULL, window TEXT NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0, outstanding INTEGER NOT NULL DEFAULT 0,
    reported INTEGER, reported_at INTEGER);
CREATE TABLE IF NOT EXISTS reservations(
    id TEXT PRIMARY KEY, idem TEXT UNIQUE, state TEXT NOT NULL, created_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL, ended_at INTEGER, external_id TEXT,
    charges TEXT NOT NULL, actual TEXT);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations(lease_expires_at)
    WHERE state = 'held';
CREATE INDEX IF NOT EXISTS reservations_external ON reservations(external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS reservations_lapsed ON reservations(ended_at)
    WHERE state = 'expired' AND external_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds(
    reservation_id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(reservation_id, budget)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits(
    budget TEXT NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, reservation_id TEXT);
CREATE INDEX IF NOT EXISTS commits_by_time ON commits(budget, at);
"""


def default_path() -> Path:
    """``ledger.sqlite3`` in the platform's user state dir (``~/.local/state/quotaguard``)."""
    return Path(platformdirs.user_state_dir("quotaguard")) / "ledger.sqlite3"


def init_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create what is missing (idempotent DDL, one transaction); refuse a newer schema."""
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
    elif int(row[0]) > SCHEMA_VERSION:
        conn.execute("ROLLBACK")
        raise BudgetUnavailable(
            f"{path} has ledger schema {row[0]}, newer than this quotaguard "
            f"({SCHEMA_VERSION}); upgrade quotaguard"
        )
    if conn.in_transaction:
        conn.execute("COMMIT")


def charges_json(charges: Sequence[Charge]) -> str:
    return json.dumps([[c.budget, str(c.amount), c.unit.value] for c in charges])


def charges_from(text: str | None) -> tuple[Charge, ...] | None:
    if text is None:
        return None
    return tuple(Charge(b, Decimal(a), Unit(u)) for b, a, u in json.loads(text))


def row_to_reservation(row: sqlite3.Row) -> Reservation:
    return Reservation(
        id=row["id"],
        charges=charges_from(row["charges"]) or (),
        created_at=from_epoch_us(row["created_at"]),
        lease_expires_at=from_epoch_us(row["lease_expires_at"]),
        state=ReservationState(row["state"]),
        idempotency_key=row["idem"],
        actual=charges_from(row["actual"]),
        ended_at=None if row["ended_at"] is None else from_epoch_us(row["ended_at"]),
        external_id=row["external_id"],
    )


def row_to_budget(row: sqlite3.Row) -> Budget:
    # Budgets are immutable values and rows rarely change: parse each distinct row once
    # (every reserve reads its budgets' rows; JSON and validation would dominate it).
    cache_key = (row["key"], row["unit"], row["limit_text"], row["window"])
    budget = _BUDGETS.get(cache_key)
    if budget is None:
        budget = Budget(
            row["key"],
            Unit(row["unit"]),
            Decimal(row["limit_text"]),
            window_from_dict(json.loads(row["window"])),
        )
        if len(_BUDGETS) >= 4096:
            _BUDGETS.clear()  # bounded; refilled from the rows in use
        _BUDGETS[cache_key] = budget
    return budget


_BUDGETS: dict[tuple[str, str, str, str], Budget] = {}


# -- row operations shared by several ledger operations ----------------------------------


def usage_of(conn: sqlite3.Connection, row: sqlite3.Row, now: datetime) -> Usage:
    budget = row_to_budget(row)
    start, end = budget.window.bounds(now)
    lo = -(2**62) if start is None else epoch_us(start)
    hi = 2**62 if end is None else epoch_us(end)
    committed = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM commits WHERE budget = ? AND at >= ? AND at < ?",
        (budget.key, lo, hi),
    ).fetchone()[0]
    reported_at = None if row["reported_at"] is None else from_epoch_us(row["reported_at"])
    if row["reported"] is None or not report_counts(budget, reported_at, now):
        return Usage(committed, row["reserved"], None, 0, row["outstanding"])
    since = conn.execute(
        "SELECT COALESCE(SUM(amount), 0) FROM commits WHERE budget = ? AND at >= ? AND at < ?",
        (budget.key, max(lo, row["reported_at"]), hi),
    ).fetchone()[0]
    return Usage(
        committed, row["reserved"], row["reported"], since, row["outstanding"], reported_at
    )


def expire_due(conn: sqlite3.Connection, now: datetime) -> int:
    cutoff = epoch_us(now)
    due = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM reservations WHERE state = 'held' AND lease_expires_at <= ?",
            (cutoff,),
        )
    ]
    for rid in due:
        unhold(conn, rid)
        conn.execute(
            "UPDATE reservations SET state = 'expired', ended_at = ?, "
            # a bound (sent) reservation keeps its key: a retry must not send it again
            "idem = CASE WHEN external_id IS NULL THEN NULL ELSE idem END WHERE id = ?",
            (cutoff, rid),
        )
    return len(due)


def unhold(conn: sqlite3.Connection, rid: str) -> None:
    for budget, amount in conn.execute(
        "SELECT budget, amount FROM holds WHERE reservation_id = ?", (rid,)
    ).fetchall():
        conn.execute(
            "UPDATE budgets SET reserved = reserved - ?, outstanding = outstanding - 1 "
            "WHERE key = ?",
            (amount, budget),
        )
    conn.execute("DELETE FROM holds WHERE reservation_id = ?", (rid,))
