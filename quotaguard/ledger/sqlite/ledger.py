"""A ledger in one SQLite file, safe across the processes of one machine.

Each primitive is one transaction (:mod:`.store`); ``reserve`` takes the write lock up front
(``BEGIN IMMEDIATE``) so the check and the hold see the same state. WAL lets readers run
beside the writer. The schema and row conversions live in :mod:`.schema`.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget, Charge, Reservation, ReservationState
from quotaguard.engine.reservations import Event, misfit, same_charges, step
from quotaguard.engine.rules import check_charges, evaluate
from quotaguard.engine.windows import window_to_dict
from quotaguard.ledger.base import LedgerBase
from quotaguard.ledger.checks import new_reservation_id
from quotaguard.ledger.encoding import charges_json, epoch_us
from quotaguard.ledger.outcomes import (
    NO_BUDGET,
    NO_RESERVATION,
    OUTSTANDING,
    ActualMismatch,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.sqlite.schema import (
    SCHEMA_VERSION,
    default_path,
    end,
    expire_due,
    row_to_budget,
    row_to_reservation,
    usage_of,
)
from quotaguard.ledger.sqlite.store import SQLiteStore

__all__ = ["SCHEMA_VERSION", "SQLiteLedger", "default_path"]

_RELEASE = step(ReservationState.HELD, Event.RELEASE)


class SQLiteLedger(SQLiteStore, LedgerBase):
    """Budgets and reservations in a SQLite file (default: :func:`default_path`)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        super().__init__(Path(path) if path is not None else default_path(), busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteLedger(path={str(self.path)!r})"

    # -- budgets ----------------------------------------------------------------------------

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        def op(conn: sqlite3.Connection) -> UnitInUse | None:
            row = conn.execute(
                "SELECT unit, reserved, (SELECT COUNT(*) FROM commits WHERE budget = ?) AS n "
                "FROM budgets WHERE key = ?",
                (budget.key, budget.key),
            ).fetchone()
            if (
                row is not None
                and row["unit"] != budget.unit.value
                and (row["reserved"] or row["n"])
            ):
                return UnitInUse(Unit(row["unit"]))
            conn.execute(
                "INSERT INTO budgets(key, unit, limit_text, window) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET unit=excluded.unit, "
                "limit_text=excluded.limit_text, window=excluded.window",
                (
                    budget.key,
                    budget.unit.value,
                    str(budget.limit),
                    json.dumps(window_to_dict(budget.window)),
                ),
            )
            return None

        return await self._run(op)

    async def _remove_budget(self, key: str) -> Refusal | None:
        def op(conn: sqlite3.Connection) -> Refusal | None:
            row = conn.execute("SELECT outstanding FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                return NO_BUDGET
            if row["outstanding"]:
                return OUTSTANDING
            conn.execute("DELETE FROM budgets WHERE key = ?", (key,))  # the commits stay
            return None

        return await self._run(op)

    async def _get_budget(self, key: str) -> Budget | Refusal:
        def op(conn: sqlite3.Connection) -> Budget | Refusal:
            row = conn.execute("SELECT * FROM budgets WHERE key = ?", (key,)).fetchone()
            return NO_BUDGET if row is None else row_to_budget(row)

        return await self._run(op, write=False)

    async def _budgets(self) -> list[Budget]:
        def op(conn: sqlite3.Connection) -> list[Budget]:
            return [row_to_budget(r) for r in conn.execute("SELECT * FROM budgets ORDER BY key")]

        return await self._run(op, write=False)

    # -- the atomic path --------------------------------------------------------------------

    async def _reserve(
        self,
        charges: tuple[Charge, ...],
        now: datetime,
        lease: timedelta,
        key: str | None,
        clock: datetime,
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        keys = sorted({c.budget for c in charges})
        select = f"SELECT * FROM budgets WHERE key IN ({','.join('?' * len(keys))})"

        def op(conn: sqlite3.Connection) -> Reservation | Rejected | Replayed | KeyConflict:
            rows = {r["key"]: r for r in conn.execute(select, keys)}
            budgets = {k: row_to_budget(r) for k, r in rows.items()}
            requested = check_charges(charges, budgets)
            # Before the key lookup: a lapsed lease frees its idempotency key.
            if expire_due(conn, clock):
                rows = {r["key"]: r for r in conn.execute(select, keys)}
            if key is not None:
                row = conn.execute("SELECT * FROM reservations WHERE idem = ?", (key,)).fetchone()
                if row is not None:
                    existing = row_to_reservation(row)
                    if not same_charges(existing.charges, charges):
                        return KeyConflict(existing.id)
                    return Replayed(existing)
            usage = {k: usage_of(conn, rows[k], now) for k in requested}
            violations = evaluate(requested, budgets, usage, now)
            if violations:
                return Rejected(tuple(violations))
            reservation = Reservation(
                id=new_reservation_id(),
                charges=charges,
                created_at=now,
                lease_expires_at=clock + lease,
                idempotency_key=key,
            )
            conn.execute(
                "INSERT INTO reservations(id, idem, state, created_at, lease_expires_at, charges) "
                "VALUES(?, ?, 'held', ?, ?, ?)",
                (
                    reservation.id,
                    key,
                    epoch_us(now),
                    epoch_us(reservation.lease_expires_at),
                    charges_json(charges),
                ),
            )
            conn.executemany(
                "INSERT INTO holds(reservation_id, budget, amount) VALUES(?, ?, ?)",
                [(reservation.id, k, a) for k, a in requested.items()],
            )
            conn.executemany(
                "UPDATE budgets SET reserved = reserved + ?, outstanding = outstanding + 1 "
                "WHERE key = ?",
                [(a, k) for k, a in requested.items()],
            )
            return reservation

        def undo(conn: sqlite3.Connection, made: object) -> None:
            # Cancelled while the worker ran it: nobody will ever see this hold.
            if isinstance(made, Reservation):
                end(conn, made.id, False, _RELEASE, epoch_us(now))

        return await self._run(op, undo=undo)

    @staticmethod
    def _load(conn: sqlite3.Connection, rid: str) -> Reservation | Refusal:
        row = conn.execute("SELECT * FROM reservations WHERE id = ?", (rid,)).fetchone()
        return NO_RESERVATION if row is None else row_to_reservation(row)

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        def op(conn: sqlite3.Connection) -> Reservation | ActualMismatch | Refusal:
            reservation = self._load(conn, rid)
            if isinstance(reservation, Refusal):
                return reservation
            if actual is not None and misfit(actual, reservation.charges) is not None:
                return ActualMismatch(reservation)
            change = step(reservation.state, Event.COMMIT)
            if change.to is None:
                return reservation
            charges = reservation.charges if actual is None else actual
            at = epoch_us(now)
            conn.executemany(
                "INSERT INTO commits(budget, at, amount, reservation_id) VALUES(?, ?, ?, ?)",
                [(c.budget, at, to_micro(c.amount), rid) for c in charges],
            )
            bound = reservation.external_id is not None
            end(conn, rid, bound, change, at, charges_json(charges))
            return self._load(conn, rid)

        return await self._run(op)

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        def op(conn: sqlite3.Connection) -> Reservation | Refusal:
            reservation = self._load(conn, rid)
            if isinstance(reservation, Refusal):
                return reservation
            change = step(reservation.state, Event.RELEASE)
            if change.to is None:
                return reservation
            end(conn, rid, reservation.external_id is not None, change, epoch_us(now))
            return self._load(conn, rid)

        return await self._run(op)

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        def op(conn: sqlite3.Connection) -> Reservation | Refusal:
            expire_due(conn, clock)
            reservation = self._load(conn, rid)
            if isinstance(reservation, Refusal):
                return reservation
            if step(reservation.state, Event.RENEW).to is None:
                return reservation
            conn.execute(
                "UPDATE reservations SET lease_expires_at = ? WHERE id = ?",
                (epoch_us(clock + lease), rid),
            )
            return self._load(conn, rid)

        return await self._run(op)

    async def _expire(self, now: datetime, clock: datetime) -> int:
        return await self._run(lambda conn: expire_due(conn, clock))

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        def op(conn: sqlite3.Connection) -> Reservation | Refusal:
            # One statement: the update and the record it leaves. An expired reservation
            # bound now is owed: lapsed() selects expired rows with an external id.
            rows = conn.execute(
                "UPDATE reservations SET external_id = ? WHERE id = ? RETURNING *",
                (external_id, rid),
            ).fetchall()
            return row_to_reservation(rows[0]) if rows else NO_RESERVATION

        return await self._run(op)

    async def _get(self, rid: str) -> Reservation | Refusal:
        return await self._run(lambda conn: self._load(conn, rid), write=False)

    async def _find_external(self, external_id: str) -> Reservation | None:
        def op(conn: sqlite3.Connection) -> Reservation | None:
            row = conn.execute(
                "SELECT * FROM reservations WHERE external_id = ? ORDER BY created_at DESC LIMIT 1",
                (external_id,),
            ).fetchone()
            return None if row is None else row_to_reservation(row)

        return await self._run(op, write=False)

    async def _outstanding(self) -> list[Reservation]:
        return await self._select("state = 'held' ORDER BY lease_expires_at")

    async def _lapsed(self) -> list[Reservation]:
        # engine.reservations.owed() in SQL; the clause matches the partial index
        # reservations_lapsed.
        return await self._select("state = 'expired' AND external_id IS NOT NULL ORDER BY ended_at")

    async def _select(self, where: str) -> list[Reservation]:
        """Reservations matching a fixed clause of this module (never caller input)."""
        sql = f"SELECT * FROM reservations WHERE {where}"
        return await self._run(
            lambda conn: [row_to_reservation(r) for r in conn.execute(sql)], write=False
        )

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(self, key: str, micro: int, at: datetime) -> Refusal | None:
        def op(conn: sqlite3.Connection) -> Refusal | None:
            row = conn.execute("SELECT reported_at FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                return NO_BUDGET
            if row["reported_at"] is None or epoch_us(at) >= row["reported_at"]:
                conn.execute(  # an older report never replaces a newer one
                    "UPDATE budgets SET reported = ?, reported_at = ? WHERE key = ?",
                    (micro, epoch_us(at), key),
                )
            return None

        return await self._run(op)

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        def op(conn: sqlite3.Connection) -> Counters | Refusal:
            select = "SELECT * FROM budgets WHERE key = ?"
            row = conn.execute(select, (key,)).fetchone()
            if row is None:
                return NO_BUDGET
            if expire_due(conn, clock):  # its counters changed
                row = conn.execute(select, (key,)).fetchone()
            return Counters(row_to_budget(row), usage_of(conn, row, now))

        return await self._run(op)

    async def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check`` result (``"ok"`` when sound)."""

        def op(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        return await self._run(op, write=False)
