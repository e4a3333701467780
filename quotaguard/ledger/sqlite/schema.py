"""The SQLite ledger's file format: the schema, its version, rows to engine values, and the
row operations several ledger operations share (window sums, ending, expiry, un-holding).

Amounts are integer micro-units; instants and charge lists are written as every ledger
writes them (:mod:`quotaguard.ledger.encoding`).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import platformdirs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Budget, Reservation, ReservationState
from quotaguard.engine.reservations import Event, Step, keeps_key, step
from quotaguard.engine.rules import Usage, report_counts
from quotaguard.engine.windows import window_from_dict
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.encoding import epoch_us, from_epoch_us

__all__ = [
    "SCHEMA_VERSION",
    "committed_in",
    "default_path",
    "end",
    "expire_due",
    "init_schema",
    "inside_of",
    "mark_sent",
    "row_to_budget",
    "sent",
    "unhold",
    "usage_of",
]

SCHEMA_VERSION = 3

_META = "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets(
    key TEXT PRIMARY KEY, unit TEXT NOT NULL, limit_text TEXT NOT NULL, window TEXT NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0, outstanding INTEGER NOT NULL DEFAULT 0,
    reported INTEGER, reported_at INTEGER,
    covers INTEGER NOT NULL DEFAULT 0, inside INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS reservations(
    id TEXT PRIMARY KEY, idem TEXT UNIQUE, state TEXT NOT NULL, created_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL, ended_at INTEGER, external_id TEXT,
    charges TEXT NOT NULL, actual TEXT, sent_at INTEGER, in_doubt_since INTEGER);
CREATE INDEX IF NOT EXISTS reservations_due ON reservations(lease_expires_at)
    WHERE state = 'held';
CREATE INDEX IF NOT EXISTS reservations_external ON reservations(external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS reservations_owed ON reservations(ended_at)
    WHERE state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL);
CREATE INDEX IF NOT EXISTS reservations_doubt ON reservations(in_doubt_since)
    WHERE state = 'held' AND in_doubt_since IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds(
    reservation_id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(reservation_id, budget)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits(
    budget TEXT NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, reservation_id TEXT,
    floor_at INTEGER);
CREATE INDEX IF NOT EXISTS commits_by_time ON commits(budget, at);
CREATE INDEX IF NOT EXISTS commits_by_floor ON commits(budget, floor_at);
"""

#: What turns a file of schema version ``n`` into ``n + 1``, at index ``n - 1``.
_MIGRATIONS = (
    # 1 -> 2: when a send completed, and since when its work is in doubt; what is owed
    # (lapsed) now includes expired in-doubt holds, under a new index name.
    """
    ALTER TABLE reservations ADD COLUMN sent_at INTEGER;
    ALTER TABLE reservations ADD COLUMN in_doubt_since INTEGER;
    DROP INDEX IF EXISTS reservations_lapsed;
    """,
    # 2 -> 3: whether the stored report covers sent work (Braket) and the held amount inside
    # it; each commit's floor time (when its work was sent, else the commit time), by which
    # a covering report's "since" is summed. Reports stored before cover nothing (as then).
    """
    ALTER TABLE budgets ADD COLUMN covers INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE budgets ADD COLUMN inside INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE commits ADD COLUMN floor_at INTEGER;
    UPDATE commits SET floor_at = COALESCE(
        (SELECT sent_at FROM reservations WHERE id = commits.reservation_id), at);
    """,
)
assert len(_MIGRATIONS) == SCHEMA_VERSION - 1


def default_path() -> Path:
    """``ledger.sqlite3`` in the platform's user state dir (``~/.local/state/quotaguard``)."""
    return Path(platformdirs.user_state_dir("quotaguard")) / "ledger.sqlite3"


def init_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Migrate an older file, create what is missing (idempotent DDL), all in one
    transaction; refuse a newer schema."""
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_META)
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = SCHEMA_VERSION if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise BudgetUnavailable(
                f"{path} has ledger schema {version}, newer than this quotaguard "
                f"({SCHEMA_VERSION}); upgrade quotaguard"
            )
        for migration in _MIGRATIONS[version - 1 :]:
            _script(conn, migration)
        _script(conn, _SCHEMA)
        conn.execute(
            "INSERT INTO meta VALUES('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _script(conn: sqlite3.Connection, statements: str) -> None:
    # One statement at a time: executescript() would commit the open transaction first.
    for statement in statements.split(";"):
        if statement.strip():
            conn.execute(statement)


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
    committed = conn.execute(_SINCE, (budget.key, lo, hi)).fetchone()[0]
    reported_at = None if row["reported_at"] is None else from_epoch_us(row["reported_at"])
    if row["reported"] is None or not report_counts(budget, reported_at, now):
        return Usage(committed, row["reserved"], None, 0, row["outstanding"])
    covers = bool(row["covers"])
    since = conn.execute(
        _SINCE_FLOOR if covers else _SINCE, (budget.key, max(lo, row["reported_at"]), hi)
    ).fetchone()[0]
    return Usage(
        committed,
        row["reserved"],
        row["reported"],
        since,
        row["outstanding"],
        reported_at,
        inside=row["inside"],
        covers_sent=covers,
    )


def committed_in(conn: sqlite3.Connection, key: str, lo: int, hi: int) -> int:
    """Micro-units committed to ``key`` at commit instants in ``[lo, hi)``."""
    return int(conn.execute(_SINCE, (key, lo, hi)).fetchone()[0])


# "Since" a report: by commit time, or for a report that covers sent work, by floor time.
_SINCE = "SELECT COALESCE(SUM(amount), 0) FROM commits WHERE budget = ? AND at >= ? AND at < ?"
_SINCE_FLOOR = (
    "SELECT COALESCE(SUM(amount), 0) FROM commits "
    "WHERE budget = ? AND floor_at >= ? AND floor_at < ?"
)


def end(
    conn: sqlite3.Connection,
    rid: str,
    sent: bool,
    change: Step,
    at: int,
    actual: str | None = None,
) -> None:
    """Move one reservation row along ``change`` (:mod:`quotaguard.engine.reservations`).

    ``sent``: its work may have been sent (bound, or in doubt).
    """
    assert change.to is not None
    if change.unhold:
        unhold(conn, rid)
    # Giving up the key clears its column, so that a new reservation can take it.
    sql = _END_KEEPING_KEY if keeps_key(change.to, sent) else _END_FREEING_KEY
    conn.execute(sql, (change.to.value, at, actual, rid))


_END_KEEPING_KEY = "UPDATE reservations SET state = ?, ended_at = ?, actual = ? WHERE id = ?"
_END_FREEING_KEY = (
    "UPDATE reservations SET state = ?, ended_at = ?, actual = ?, idem = NULL WHERE id = ?"
)
_LAPSE = step(ReservationState.HELD, Event.EXPIRE)


def expire_due(conn: sqlite3.Connection, now: datetime) -> int:
    """Expire every held reservation whose lease is due at ``now`` (the ledger's time)."""
    cutoff = epoch_us(now)
    due = conn.execute(
        "SELECT id, external_id IS NOT NULL OR in_doubt_since IS NOT NULL FROM reservations "
        "WHERE state = 'held' AND lease_expires_at <= ?",
        (cutoff,),
    ).fetchall()
    for rid, sent in due:
        end(conn, rid, bool(sent), _LAPSE, cutoff)
    return len(due)


def sent(reservation: Reservation) -> bool:
    """Its work may have been sent: bound, or in doubt."""
    return reservation.external_id is not None or reservation.in_doubt_since is not None


def unhold(conn: sqlite3.Connection, rid: str) -> None:
    """Take a reservation's holds off its budgets (and off ``inside``, where a covering
    report holds them)."""
    for budget, amount, sent_at in conn.execute(
        "SELECT budget, amount, sent_at FROM holds JOIN reservations ON id = reservation_id "
        "WHERE reservation_id = ?",
        (rid,),
    ).fetchall():
        conn.execute(
            "UPDATE budgets SET reserved = reserved - ?1, outstanding = outstanding - 1, "
            f"inside = inside - CASE WHEN {_INSIDE} THEN ?1 ELSE 0 END WHERE key = ?3",
            (amount, sent_at, budget),
        )
    conn.execute("DELETE FROM holds WHERE reservation_id = ?", (rid,))


# A hold sent at ?2 is inside the budget row's report (engine.rules: a covering report holds
# the work sent before it).
_INSIDE = "covers AND ?2 IS NOT NULL AND ?2 < reported_at"


def mark_sent(conn: sqlite3.Connection, rid: str, old: int | None, new: int | None) -> None:
    """A held reservation's send time moved from ``old`` to ``new``: move its holds into or
    out of the reports that cover them."""
    for budget, amount in conn.execute(
        "SELECT budget, amount FROM holds WHERE reservation_id = ?", (rid,)
    ).fetchall():
        conn.execute(
            f"UPDATE budgets SET inside = inside + CASE WHEN {_INSIDE} THEN ?1 ELSE 0 END "
            f"- CASE WHEN {_INSIDE.replace('?2', '?4')} THEN ?1 ELSE 0 END WHERE key = ?3",
            (amount, new, budget, old),
        )


def inside_of(conn: sqlite3.Connection, key: str, reported_at: int) -> int:
    """One scan of a budget's holds: the held amount sent before ``reported_at``."""
    return int(
        conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM holds JOIN reservations ON id = reservation_id "
            "WHERE budget = ? AND sent_at < ?",
            (key, reported_at),
        ).fetchone()[0]
    )
