"""A ledger in one SQLite file, safe across the processes of one machine.

Each operation is one transaction (``_sqlite_store``); ``reserve`` takes the write lock up
front (``BEGIN IMMEDIATE``) so the check and the hold see the same state. WAL lets readers
run beside the writer. The schema and row conversions live in ``_sqlite_schema``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from quotaguard.engine.amounts import as_amount, to_micro
from quotaguard.engine.model import (
    Budget,
    BudgetState,
    Charge,
    Decision,
    Reservation,
    ReservationState,
    check_key,
)
from quotaguard.engine.rules import check_charges, evaluate, state_of
from quotaguard.engine.windows import window_to_dict
from quotaguard.errors import InvalidInput, ReservationNotFound, UnknownBudget
from quotaguard.ledger.base import (
    DEFAULT_LEASE,
    LedgerBase,
    check_actual,
    check_lease,
    check_now,
    check_reserve,
    epoch_us,
    new_reservation_id,
)
from quotaguard.ledger.sqlite.schema import (
    SCHEMA_VERSION,
    charges_json,
    default_path,
    expire_due,
    row_to_budget,
    row_to_reservation,
    unhold,
    usage_of,
)
from quotaguard.ledger.sqlite.store import SQLiteStore

__all__ = ["SCHEMA_VERSION", "SQLiteLedger", "default_path"]


class SQLiteLedger(SQLiteStore, LedgerBase):
    """Budgets and reservations in a SQLite file (default: :func:`default_path`)."""

    def __init__(self, path: str | Path | None = None, *, busy_timeout: float = 10.0) -> None:
        super().__init__(Path(path) if path is not None else default_path(), busy_timeout)

    def __repr__(self) -> str:
        return f"SQLiteLedger(path={str(self.path)!r})"

    # -- budgets ----------------------------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        if not isinstance(budget, Budget):
            raise InvalidInput("budget", f"expected a Budget, got {type(budget).__name__}")

        def op(conn: sqlite3.Connection) -> None:
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
                raise InvalidInput(
                    "budget.unit",
                    f"budget {budget.key!r} already counts {row['unit']}; use a new key for "
                    "another unit",
                )
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

        await self._run(op)

    async def remove_budget(self, key: str) -> None:
        check_key(key)

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT outstanding FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownBudget("key", key)
            if row["outstanding"]:
                raise InvalidInput("key", f"budget {key!r} still has outstanding reservations")
            conn.execute("DELETE FROM budgets WHERE key = ?", (key,))

        await self._run(op)

    async def get_budget(self, key: str) -> Budget:
        check_key(key)

        def op(conn: sqlite3.Connection) -> Budget:
            row = conn.execute("SELECT * FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownBudget("key", key)
            return row_to_budget(row)

        return await self._run(op, write=False)

    async def budgets(self) -> list[Budget]:
        def op(conn: sqlite3.Connection) -> list[Budget]:
            return [row_to_budget(r) for r in conn.execute("SELECT * FROM budgets ORDER BY key")]

        return await self._run(op, write=False)

    # -- the atomic path --------------------------------------------------------------------

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        charges, key = check_reserve(charges, now, lease, idempotency_key)
        for i, charge in enumerate(charges):
            if not isinstance(charge, Charge):
                raise InvalidInput(
                    f"charges[{i}]", f"expected a Charge, got {type(charge).__name__}"
                )

        def op(conn: sqlite3.Connection) -> tuple[Decision, bool]:
            keys = sorted({c.budget for c in charges})
            rows = {
                r["key"]: r
                for r in conn.execute(
                    f"SELECT * FROM budgets WHERE key IN ({','.join('?' * len(keys))})", keys
                )
            }
            budgets = {k: row_to_budget(r) for k, r in rows.items()}
            requested = check_charges(list(charges), budgets)
            # Before the key lookup: a lapsed lease frees its idempotency key.
            if expire_due(conn, now):
                rows = {
                    r["key"]: r
                    for r in conn.execute(
                        f"SELECT * FROM budgets WHERE key IN ({','.join('?' * len(keys))})", keys
                    )
                }
            if key is not None:
                row = conn.execute("SELECT * FROM reservations WHERE idem = ?", (key,)).fetchone()
                if row is not None:
                    existing = row_to_reservation(row)
                    if sorted(existing.charges, key=repr) != sorted(charges, key=repr):
                        raise InvalidInput(
                            "idempotency_key",
                            f"key {key!r} was used for different charges "
                            f"(reservation {existing.id})",
                        )
                    return Decision(
                        admitted=True, reservation=existing, charges=existing.charges, replayed=True
                    ), False
            usage = {k: usage_of(conn, rows[k], now) for k in requested}
            violations = evaluate(requested, budgets, usage, now)
            if violations:
                return Decision.reject(violations, charges), False
            reservation = Reservation(
                id=new_reservation_id(),
                charges=charges,
                created_at=now,
                lease_expires_at=now + lease,
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
            return Decision(admitted=True, reservation=reservation, charges=charges), True

        def undo(conn: sqlite3.Connection, result: tuple[Decision, bool]) -> None:
            decision, created = result
            if created and decision.reservation is not None:
                unhold(conn, decision.reservation.id)
                conn.execute(
                    "UPDATE reservations SET state = 'released', ended_at = ?, idem = NULL "
                    "WHERE id = ?",
                    (epoch_us(now), decision.reservation.id),
                )

        decision, _ = await self._run(op, undo=undo)
        return decision

    def _load(self, conn: sqlite3.Connection, rid: str) -> Reservation:
        if not isinstance(rid, str):
            raise ReservationNotFound(str(rid))
        row = conn.execute("SELECT * FROM reservations WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise ReservationNotFound(rid)
        return row_to_reservation(row)

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        check_now(now)

        def op(conn: sqlite3.Connection) -> Reservation:
            reservation = self._load(conn, reservation_id)
            charges = check_actual(actual, reservation)
            if reservation.state in (ReservationState.COMMITTED, ReservationState.RELEASED):
                return reservation
            if reservation.state is ReservationState.HELD:
                unhold(conn, reservation_id)
            at = epoch_us(now)
            conn.executemany(
                "INSERT INTO commits(budget, at, amount, reservation_id) VALUES(?, ?, ?, ?)",
                [(c.budget, at, to_micro(c.amount), reservation_id) for c in charges],
            )
            conn.execute(
                "UPDATE reservations SET state = 'committed', ended_at = ?, actual = ? "
                "WHERE id = ?",
                (at, charges_json(charges), reservation_id),
            )
            return self._load(conn, reservation_id)

        return await self._run(op)

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        check_now(now)

        def op(conn: sqlite3.Connection) -> Reservation:
            reservation = self._load(conn, reservation_id)
            if reservation.ended:
                return reservation
            unhold(conn, reservation_id)
            conn.execute(
                "UPDATE reservations SET state = 'released', ended_at = ?, idem = NULL "
                "WHERE id = ?",
                (epoch_us(now), reservation_id),
            )
            return self._load(conn, reservation_id)

        return await self._run(op)

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        check_now(now)
        check_lease(lease)

        def op(conn: sqlite3.Connection) -> Reservation:
            expire_due(conn, now)
            reservation = self._load(conn, reservation_id)
            if not reservation.ended:
                conn.execute(
                    "UPDATE reservations SET lease_expires_at = ? WHERE id = ?",
                    (epoch_us(now + lease), reservation_id),
                )
            return self._load(conn, reservation_id)

        return await self._run(op)

    async def expire(self, *, now: datetime) -> int:
        check_now(now)
        return await self._run(lambda conn: expire_due(conn, now))

    async def bind(self, reservation_id: str, external_id: str) -> Reservation:
        if not isinstance(external_id, str) or not external_id:
            raise InvalidInput("external_id", "must be a non-empty str (a job id or task ARN)")

        if not isinstance(reservation_id, str):
            raise ReservationNotFound(str(reservation_id))

        def op(conn: sqlite3.Connection) -> Reservation:
            # One statement: the update and the record it leaves.
            rows = conn.execute(
                "UPDATE reservations SET external_id = ? WHERE id = ? RETURNING *",
                (external_id, reservation_id),
            ).fetchall()
            if not rows:
                raise ReservationNotFound(reservation_id)
            return row_to_reservation(rows[0])

        return await self._run(op)

    async def get(self, reservation_id: str) -> Reservation:
        return await self._run(lambda conn: self._load(conn, reservation_id), write=False)

    async def find_external(self, external_id: str) -> Reservation | None:
        def op(conn: sqlite3.Connection) -> Reservation | None:
            row = conn.execute(
                "SELECT * FROM reservations WHERE external_id = ? ORDER BY created_at DESC LIMIT 1",
                (external_id,),
            ).fetchone()
            return None if row is None else row_to_reservation(row)

        return await self._run(op, write=False)

    async def outstanding(self) -> list[Reservation]:
        return await self._select("state = 'held' ORDER BY lease_expires_at")

    async def lapsed(self) -> list[Reservation]:
        # The WHERE clause matches the partial index reservations_lapsed.
        return await self._select("state = 'expired' AND external_id IS NOT NULL ORDER BY ended_at")

    async def _select(self, where: str) -> list[Reservation]:
        """Reservations matching a fixed clause of this module (never caller input)."""
        sql = f"SELECT * FROM reservations WHERE {where}"
        return await self._run(
            lambda conn: [row_to_reservation(r) for r in conn.execute(sql)], write=False
        )

    async def record_report(self, key: str, used: object, *, at: datetime) -> None:
        check_now(at, "at")
        check_key(key)
        micro = to_micro(as_amount(used, "used"))

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT reported_at FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownBudget("key", key)
            if row["reported_at"] is not None and epoch_us(at) < row["reported_at"]:
                return  # an older report never replaces a newer one
            conn.execute(
                "UPDATE budgets SET reported = ?, reported_at = ? WHERE key = ?",
                (micro, epoch_us(at), key),
            )

        await self._run(op)

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        check_now(now)
        check_key(key)

        def op(conn: sqlite3.Connection) -> BudgetState:
            expire_due(conn, now)
            row = conn.execute("SELECT * FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                raise UnknownBudget("key", key)
            return state_of(row_to_budget(row), usage_of(conn, row, now), now)

        return await self._run(op)

    async def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check`` result (``"ok"`` when sound)."""

        def op(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        return await self._run(op, write=False)
