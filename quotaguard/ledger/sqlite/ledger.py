"""A ledger in one SQLite file, safe across the processes of one machine.

Each primitive is one transaction (:mod:`.store`); ``reserve`` takes the write lock up front
(``BEGIN IMMEDIATE``) so the check and the hold see the same state. WAL lets readers run
beside the writer. The schema and row conversions live in :mod:`.schema`.

Leases are judged by the machine's clock by default (``time_source="system"``): every
process on the machine shares it, so one caller's fast clock cannot end the others' leases.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import attrs

from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget, Charge, Reservation, ReservationState
from quotaguard.engine.reservations import Event, misfit, same_charges, step
from quotaguard.engine.rules import check_charges, evaluate
from quotaguard.engine.windows import window_to_dict
from quotaguard.errors import InvalidInput
from quotaguard.ledger.audit import Page, by_id
from quotaguard.ledger.base import LedgerBase, TimeSourceName
from quotaguard.ledger.checks import DEFAULT_MAX_SKEW, TimeSource, new_reservation_id
from quotaguard.ledger.encoding import charges_json, epoch_us, reservation_from_row
from quotaguard.ledger.outcomes import (
    NO_BUDGET,
    NO_RESERVATION,
    OUTSTANDING,
    ActualMismatch,
    Ahead,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.retention import Trimmed
from quotaguard.ledger.sqlite.schema import (
    SCHEMA_VERSION,
    committed_in,
    default_path,
    end,
    expire_due,
    inside_of,
    mark_sent,
    row_to_budget,
    sent,
    usage_of,
)
from quotaguard.ledger.sqlite.store import SQLiteStore
from quotaguard.ledger.sqlite.trim import CHUNK as _CHUNK
from quotaguard.ledger.sqlite.trim import trim_rows

__all__ = ["SCHEMA_VERSION", "SQLiteLedger", "default_path"]

_RELEASE = step(ReservationState.HELD, Event.RELEASE)


class SQLiteLedger(SQLiteStore, LedgerBase):
    """Budgets and reservations in a SQLite file (default: :func:`default_path`).

    ``busy_timeout``: seconds to wait for another process's lock before the ledger is
    unavailable. ``time_source``: ``"system"`` (the machine's clock judges leases; a caller
    ``now`` more than ``max_skew`` away is refused with :class:`~quotaguard.errors.ClockSkew`)
    or ``"caller"`` (each call's ``now``: tests and single-process tools that drive time).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 10.0,
        time_source: TimeSourceName = "system",
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        if path is not None and not (isinstance(path, (str, os.PathLike)) and str(path)):
            raise InvalidInput("path", f"must be a file path (str or Path), got {path!r}")
        if isinstance(path, os.PathLike) and not isinstance(os.fspath(path), str):
            raise InvalidInput("path", "must be a str path, not bytes")
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or not 0 <= busy_timeout <= 3600
            or math.isnan(busy_timeout)
        ):
            raise InvalidInput(
                "busy_timeout", f"must be seconds in [0, 3600], got {busy_timeout!r}"
            )
        self._use_time(time_source, max_skew, (TimeSource.CALLER, TimeSource.SYSTEM))
        super().__init__(Path(path) if path is not None else default_path(), float(busy_timeout))

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
                    existing = reservation_from_row(row)
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
        return NO_RESERVATION if row is None else reservation_from_row(row)

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
            floor = at if reservation.sent_at is None else epoch_us(reservation.sent_at)
            conn.executemany(
                "INSERT INTO commits(budget, at, amount, reservation_id, floor_at) "
                "VALUES(?, ?, ?, ?, ?)",
                [(c.budget, at, to_micro(c.amount), rid, floor) for c in charges],
            )
            end(conn, rid, sent(reservation), change, at, charges_json(charges))
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
            end(conn, rid, sent(reservation), change, epoch_us(now))
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

    async def _renew_many(
        self, rids: list[str], lease: timedelta, now: datetime, clock: datetime
    ) -> list[Reservation]:
        def op(conn: sqlite3.Connection) -> list[Reservation]:
            expire_due(conn, clock)
            until, renewed = epoch_us(clock + lease), {}
            for i in range(0, len(rids), _CHUNK):
                chunk = rids[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(
                    "UPDATE reservations SET lease_expires_at = ? "
                    f"WHERE state = 'held' AND id IN ({marks}) RETURNING *",
                    (until, *chunk),
                ):
                    renewed[row["id"]] = reservation_from_row(row)
            return [renewed[rid] for rid in rids if rid in renewed]

        return await self._run(op)

    async def _expire(self, now: datetime, clock: datetime) -> int:
        return await self._run(lambda conn: expire_due(conn, clock))

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        sent_us = None if sent_at is None else epoch_us(sent_at)

        def op(conn: sqlite3.Connection) -> Reservation | Refusal:
            # One statement: the update and the record it leaves. The work is found: no
            # longer in doubt. An expired reservation bound now is owed: lapsed() selects
            # expired rows with an external id.
            old = conn.execute(
                "SELECT sent_at FROM reservations WHERE id = ? AND state = 'held'", (rid,)
            ).fetchone()
            if old is not None and sent_us is not None and sent_us != old[0]:
                mark_sent(conn, rid, old[0], sent_us)  # held: it may be inside a report
            rows = conn.execute(
                "UPDATE reservations SET external_id = ?, in_doubt_since = NULL, "
                "sent_at = COALESCE(?, sent_at) WHERE id = ? RETURNING *",
                (external_id, sent_us, rid),
            ).fetchall()
            return reservation_from_row(rows[0]) if rows else NO_RESERVATION

        return await self._run(op)

    async def _mark_in_doubt(self, rid: str, now: datetime) -> Reservation | Refusal:
        def op(conn: sqlite3.Connection) -> Reservation | Refusal:
            conn.execute(  # engine.reservations: only a held one is marked; a mark stays
                "UPDATE reservations SET in_doubt_since = ? "
                "WHERE id = ? AND state = 'held' AND in_doubt_since IS NULL",
                (epoch_us(now), rid),
            )
            return self._load(conn, rid)

        return await self._run(op)

    async def _get(self, rid: str) -> Reservation | Refusal:
        return await self._run(lambda conn: self._load(conn, rid), write=False)

    async def _find_external(self, external_id: str) -> Reservation | None:
        def op(conn: sqlite3.Connection) -> Reservation | None:
            row = conn.execute(
                "SELECT * FROM reservations WHERE external_id = ? ORDER BY created_at DESC LIMIT 1",
                (external_id,),
            ).fetchone()
            return None if row is None else reservation_from_row(row)

        return await self._run(op, write=False)

    async def _outstanding(self) -> list[Reservation]:
        return await self._select("state = 'held' ORDER BY lease_expires_at")

    async def _in_doubt(self) -> list[Reservation]:
        # The clause matches the partial index reservations_doubt.
        return await self._select(
            "state = 'held' AND in_doubt_since IS NOT NULL ORDER BY in_doubt_since"
        )

    async def _lapsed(self) -> list[Reservation]:
        # engine.reservations.owed() in SQL; the clause matches the partial index
        # reservations_owed.
        return await self._select(
            "state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL) "
            "ORDER BY ended_at, id"
        )

    async def _select(self, where: str, *args: object) -> list[Reservation]:
        """Reservations matching a fixed clause of this module (never caller input)."""
        sql = f"SELECT * FROM reservations WHERE {where}"
        return await self._run(
            lambda conn: [reservation_from_row(r) for r in conn.execute(sql, args)], write=False
        )

    async def _reservation_page(self, after: str | None, limit: int) -> Page:
        # By id: the primary key's index pages it, and adds no index to write on reserve.
        page = await self._select("id > ? ORDER BY id LIMIT ?", after or "", limit)
        return by_id(page, limit)

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(
        self, key: str, micro: int, at: datetime, now: datetime | None, covers_sent: bool
    ) -> Refusal | Ahead | None:
        def op(conn: sqlite3.Connection) -> Refusal | None:
            row = conn.execute("SELECT reported_at FROM budgets WHERE key = ?", (key,)).fetchone()
            if row is None:
                return NO_BUDGET
            us = epoch_us(at)
            if row["reported_at"] is None or us >= row["reported_at"]:
                inside = inside_of(conn, key, us) if covers_sent else 0
                conn.execute(  # an older report never replaces a newer one
                    "UPDATE budgets SET reported = ?, reported_at = ?, covers = ?, inside = ? "
                    "WHERE key = ?",
                    (micro, us, int(covers_sent), inside, key),
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
            doubt = conn.execute(
                "SELECT COUNT(*) FROM holds JOIN reservations ON reservations.id = reservation_id "
                "WHERE budget = ? AND state = 'held' AND in_doubt_since IS NOT NULL",
                (key,),
            ).fetchone()[0]
            usage = attrs.evolve(usage_of(conn, row, now), in_doubt=doubt)
            return Counters(row_to_budget(row), usage)

        return await self._run(op)

    async def _committed_between(self, key: str, start: int, end: int) -> int | Refusal:
        def op(conn: sqlite3.Connection) -> int | Refusal:
            if conn.execute("SELECT 1 FROM budgets WHERE key = ?", (key,)).fetchone() is None:
                return NO_BUDGET
            return committed_in(conn, key, start, end)

        return await self._run(op, write=False)

    async def _trim(self, now: datetime, cut: datetime, limit: int) -> tuple[Trimmed, bool]:
        return await self._run(lambda conn: trim_rows(conn, now, cut, limit))

    async def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check`` result (``"ok"`` when sound)."""

        def op(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        return await self._run(op, write=False)
