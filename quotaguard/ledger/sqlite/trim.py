"""The SQLite ledger's trimming: one transaction that forgets at most ``limit`` rows.

What may go is :mod:`quotaguard.ledger.retention`'s rule. A budget's dropped commits are
folded into one row of its own at :data:`FOLDED_AT` (an unwindowed budget sums every row),
so the sums every window reads are unchanged.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.retention import FOLDED_AT, Trimmed, commit_cutoff
from quotaguard.ledger.sqlite.schema import row_to_budget

__all__ = ["CHUNK", "trim_rows"]

CHUNK = 500  # ids per statement: below every SQLite build's limit on bound parameters

# Ended and not owed (engine.reservations.owed: expired after its work may have been sent).
_ENDED = (
    "SELECT id FROM reservations WHERE ended_at < ? AND state <> 'held' AND NOT "
    "(state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL)) LIMIT ?"
)


def trim_rows(
    conn: sqlite3.Connection, now: datetime, cut: datetime, limit: int
) -> tuple[Trimmed, bool]:
    cut_us, left, commits = epoch_us(cut), limit, 0
    for row in conn.execute("SELECT * FROM budgets ORDER BY key").fetchall():
        if left <= 0:
            break
        upto = commit_cutoff(row_to_budget(row).window, row["reported_at"], now, cut_us)
        found = conn.execute(
            "SELECT rowid, amount FROM commits WHERE budget = ? AND at < ? AND floor_at < ? "
            "AND at <> ? ORDER BY at LIMIT ?",
            (row["key"], upto, upto, FOLDED_AT, left),
        ).fetchall()
        if not found:
            continue
        _delete(conn, "commits", "rowid", [r[0] for r in found])
        folded = sum(r[1] for r in found)
        if not conn.execute(
            "UPDATE commits SET amount = amount + ? WHERE budget = ? AND at = ?",
            (folded, row["key"], FOLDED_AT),
        ).rowcount:
            conn.execute(
                "INSERT INTO commits(budget, at, amount, reservation_id, floor_at) "
                "VALUES(?, ?, ?, NULL, ?)",
                (row["key"], FOLDED_AT, folded, FOLDED_AT),
            )
        commits += len(found)
        left -= len(found)
    gone = [r[0] for r in conn.execute(_ENDED, (cut_us, max(left, 0))).fetchall()]
    _delete(conn, "reservations", "id", gone)
    left -= len(gone)
    return Trimmed(commits, len(gone)), left <= 0


def _delete(conn: sqlite3.Connection, table: str, column: str, ids: list[object]) -> None:
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
