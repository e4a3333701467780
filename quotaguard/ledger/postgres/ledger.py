"""A ledger in PostgreSQL, shared by every process of a fleet (extra ``quotaguard[postgres]``).

Every operation is one statement: a plain one where it reads or changes one row, else one
call of a PL/pgSQL function (``functions.sql``), so each check-and-hold is one transaction
and one round trip. The functions lock budget rows in key order and then reservation rows in
id order, so no two calls deadlock. They return tags and counters; the verdict's wording
comes from the engine (:func:`quotaguard.engine.rules.evaluate`) and the base, so every
backend explains itself the same way.

Leases are judged by the server's clock by default (``time_source="server"``: ``now()``,
read inside the function that judges them, which also refuses a caller ``now`` more than
``max_skew`` away); the caller's ``now`` and the calendar month around it are passed in to
date windows, commits and ends.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import attrs

from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget, Charge, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.errors import BudgetUnavailable, ClockSkew
from quotaguard.ledger.audit import Page, by_id
from quotaguard.ledger.base import LedgerBase, TimeSourceName
from quotaguard.ledger.checks import DEFAULT_MAX_SKEW, TimeSource, new_reservation_id
from quotaguard.ledger.encoding import (
    charges_fingerprint,
    charges_json,
    epoch_us,
    from_epoch_us,
    reservation_from_row,
)
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
from quotaguard.ledger.postgres.schema import (
    MONTH,
    SCHEMA_VERSION,
    budget_args,
    budget_of,
    usage_of,
)
from quotaguard.ledger.postgres.store import PostgresStore
from quotaguard.ledger.retention import FOLDED_AT, Trimmed

__all__ = ["SCHEMA_VERSION", "PostgresLedger"]

_RESERVE = "SELECT * FROM qg_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
_COMMIT = "SELECT * FROM qg_commit($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_SELECT = "SELECT * FROM reservations WHERE "


class PostgresLedger(PostgresStore, LedgerBase):
    """Budgets and reservations in PostgreSQL, shared by every process that uses ``schema``.

    ``dsn``: a ``postgresql://`` URL or libpq string (asyncpg's). The ledger owns its pool
    (``pool_size`` connections, opened on first use) and creates or migrates ``schema``.
    ``timeout`` bounds every call; a lost connection raises :class:`BudgetUnavailable`, and
    retrying with the same idempotency key is safe. ``time_source``: ``"server"`` (the
    server's ``now()`` judges leases; a caller ``now`` more than ``max_skew`` from it is
    refused with :class:`~quotaguard.errors.ClockSkew`), ``"system"`` (this machine's clock,
    checked the same way) or ``"caller"`` (each call's ``now``: tests that drive time).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "quotaguard",
        pool_size: int = 10,
        timeout: float = 10.0,
        time_source: TimeSourceName = "server",
        max_skew: timedelta = DEFAULT_MAX_SKEW,
    ) -> None:
        self._use_time(time_source, max_skew, tuple(TimeSource))
        super().__init__(
            dsn,
            schema,
            pool_size,
            timeout,
            max_skew=self.max_skew,
            server_time=self.time_source is TimeSource.SERVER,
        )
        self._month: tuple[int, int] = (0, 0)

    def __repr__(self) -> str:
        return f"PostgresLedger(schema={self.schema!r})"

    def _month_of(self, now: datetime) -> tuple[int, int]:
        """The UTC calendar month around ``now`` (SQL here knows no calendar); cached."""
        at = epoch_us(now)
        start, end = self._month
        if not start <= at < end:
            first, after = MONTH.bounds(now)
            assert first is not None
            assert after is not None
            self._month = start, end = epoch_us(first), epoch_us(after)
        return start, end

    async def _one(self, sql: str, *args: object, now: datetime | None = None) -> Any:
        text = await self._value(sql, *args, now=now)
        return NO_RESERVATION if text is None else reservation_from_row(json.loads(text))

    # -- budgets ----------------------------------------------------------------------------

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        unit = await self._value(
            "SELECT qg_put_budget($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            budget.key,
            *budget_args(budget),
        )
        return None if unit is None else UnitInUse(Unit(unit))

    async def _remove_budget(self, key: str) -> Refusal | None:
        refused = await self._value("SELECT qg_remove_budget($1)", key)
        return {"unknown": NO_BUDGET, "outstanding": OUTSTANDING}.get(refused)

    async def _get_budget(self, key: str) -> Budget | Refusal:
        row = await self._row(
            "SELECT key, unit, limit_text, window_json FROM budgets WHERE key = $1", key
        )
        return NO_BUDGET if row is None else budget_of(*row)

    async def _budgets(self) -> list[Budget]:
        rows = await self._rows(
            "SELECT key, unit, limit_text, window_json FROM budgets ORDER BY key"
        )
        return [budget_of(*row) for row in rows]

    # -- the atomic path --------------------------------------------------------------------

    async def _reserve(
        self,
        charges: tuple[Charge, ...],
        now: datetime,
        lease: timedelta,
        key: str | None,
        clock: datetime,
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        totals: dict[str, int] = {}
        units: dict[str, set[str]] = {}
        for charge in charges:
            totals[charge.budget] = totals.get(charge.budget, 0) + to_micro(charge.amount)
            units.setdefault(charge.budget, set()).add(charge.unit.value)
        keys = sorted(totals)
        # A budget charged in two units fails the function's unit check: pass one of them.
        unit_list = [min(units[k]) if len(units[k]) == 1 else "" for k in keys]
        rid = new_reservation_id()
        args = (
            epoch_us(now),
            self._clock_arg(clock),
            self._skew_us,
            *self._month_of(now),
            lease // timedelta(microseconds=1),
            rid,
            key,
            charges_fingerprint(charges) if key else None,
            charges_json(charges),
            keys,
            unit_list,
            [totals[k] for k in keys],
        )
        # If we are cancelled, or the outcome is unknown (a lost reply, a timeout), the
        # statement may have committed: qg_cancel releases the hold, or leaves a released
        # record under this id that turns a late arrival into a no-op. So a
        # BudgetUnavailable from reserve holds nothing.
        try:
            tag, value, detail = await self._row(_RESERVE, *args, now=now)
        except ClockSkew:
            raise  # refused before anything changed: nothing to undo
        except (asyncio.CancelledError, BudgetUnavailable):
            await self._undo_reserve(rid, now)
            raise
        if tag == "new":
            return Reservation(
                id=rid,
                charges=charges,
                created_at=now,
                lease_expires_at=from_epoch_us(value),
                idempotency_key=key,
            )
        return self._decide(tag, json.loads(detail), charges, totals, now)

    @staticmethod
    def _decide(
        tag: str, detail: Any, charges: tuple[Charge, ...], totals: dict[str, int], now: datetime
    ) -> Rejected | Replayed | KeyConflict:
        if tag == "check":
            check_charges(charges, {b.key: b for b in (budget_of(*flat) for flat in detail)})
            raise BudgetUnavailable("postgres ledger refused charges the engine accepts")
        if tag == "replay":
            return Replayed(reservation_from_row(detail))
        if tag == "conflict":
            return KeyConflict(reservation_from_row(detail).id)
        budgets: dict[str, Budget] = {}
        usage: dict[str, Usage] = {}
        for flat, raw in detail:
            budget = budget_of(*flat)
            budgets[budget.key], usage[budget.key] = budget, usage_of(raw)
        violations = evaluate(totals, budgets, usage, now)
        if not violations:  # the function and the engine disagree: fail closed, loudly
            raise BudgetUnavailable("postgres ledger rejected work the engine would admit")
        return Rejected(tuple(violations))

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        items = actual or ()
        tag, _, detail = await self._row(
            _COMMIT,
            rid,
            epoch_us(now),
            self._clock_arg(now),
            self._skew_us,
            actual is not None,
            charges_json(items),
            [c.budget for c in items],
            [c.unit.value for c in items],
            [to_micro(c.amount) for c in items],
            now=now,
        )
        if tag == "notfound":
            return NO_RESERVATION
        reservation = reservation_from_row(json.loads(detail))
        return ActualMismatch(reservation) if tag == "bad" else reservation

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        return await self._one(  # type: ignore[no-any-return]
            "SELECT qg_release($1, $2, $3, $4)",
            rid,
            epoch_us(now),
            self._clock_arg(now),
            self._skew_us,
            now=now,
        )

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        renewed = await self._renew_many([rid], lease, now, clock)
        return renewed[0] if renewed else await self._get(rid)

    async def _renew_many(
        self, rids: list[str], lease: timedelta, now: datetime, clock: datetime
    ) -> list[Reservation]:
        rows = await self._rows(
            "SELECT * FROM qg_renew($1, $2, $3, $4, $5)",
            rids,
            epoch_us(now),
            self._clock_arg(clock),
            self._skew_us,
            lease // timedelta(microseconds=1),
            now=now,
        )
        renewed = {r.id: r for r in (reservation_from_row(json.loads(row[0])) for row in rows)}
        return [renewed[rid] for rid in rids if rid in renewed]

    async def _expire(self, now: datetime, clock: datetime) -> int:
        n = await self._value(
            "SELECT qg_expire($1, $2, $3)",
            epoch_us(now),
            self._clock_arg(clock),
            self._skew_us,
            now=now,
        )
        return int(n)

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        return await self._one(  # type: ignore[no-any-return]
            "SELECT qg_bind($1, $2, $3)",
            rid,
            external_id,
            None if sent_at is None else epoch_us(sent_at),
        )

    async def _mark_in_doubt(self, rid: str, now: datetime) -> Reservation | Refusal:
        return await self._one(  # type: ignore[no-any-return]
            "SELECT qg_mark_in_doubt($1, $2, $3, $4)",
            rid,
            epoch_us(now),
            self._clock_arg(now),
            self._skew_us,
            now=now,
        )

    async def _get(self, rid: str) -> Reservation | Refusal:
        row = await self._row(_SELECT + "id = $1", rid)
        return NO_RESERVATION if row is None else reservation_from_row(row)

    async def _find_external(self, external_id: str) -> Reservation | None:
        row = await self._row(
            _SELECT + "external_id = $1 ORDER BY created_at DESC LIMIT 1", external_id
        )
        return None if row is None else reservation_from_row(row)

    async def _select(self, where: str, *args: object) -> list[Reservation]:
        """Reservations matching a fixed clause of this module (never caller input)."""
        return [reservation_from_row(row) for row in await self._rows(_SELECT + where, *args)]

    async def _reservation_page(self, after: str | None, limit: int) -> Page:
        # By id: the primary key's index pages it, and adds no index to write on reserve.
        page = await self._select("id > $1 ORDER BY id LIMIT $2", after or "", limit)
        return by_id(page, limit)

    async def _outstanding(self) -> list[Reservation]:
        return await self._select("state = 'held' ORDER BY lease_expires_at, id")

    async def _in_doubt(self) -> list[Reservation]:
        # The clause matches the partial index reservations_doubt.
        return await self._select(
            "state = 'held' AND in_doubt_since IS NOT NULL ORDER BY in_doubt_since, id"
        )

    async def _lapsed(self) -> list[Reservation]:
        # engine.reservations.owed() in SQL; the clause matches reservations_owed.
        return await self._select(
            "state = 'expired' AND (external_id IS NOT NULL OR in_doubt_since IS NOT NULL) "
            "ORDER BY ended_at, id"
        )

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(
        self, key: str, micro: int, at: datetime, now: datetime | None, covers_sent: bool
    ) -> Refusal | Ahead | None:
        refused = await self._value(
            "SELECT qg_record_report($1, $2, $3, $4, $5, $6, $7)",
            key,
            micro,
            epoch_us(at),
            None if now is None else epoch_us(now),
            self._server_time,
            self._skew_us,
            covers_sent,
            now=now,
        )
        if refused is None:
            return None
        if refused.startswith("ahead:"):
            return Ahead(from_epoch_us(int(refused[len("ahead:") :])))
        return NO_BUDGET

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        text = await self._value(
            "SELECT qg_state($1, $2, $3, $4, $5, $6)",
            key,
            epoch_us(now),
            self._clock_arg(clock),
            self._skew_us,
            *self._month_of(now),
            now=now,
        )
        if text is None:
            return NO_BUDGET
        flat, raw, doubt = json.loads(text)
        usage = attrs.evolve(usage_of(raw), in_doubt=int(doubt))
        return Counters(budget_of(*flat), usage)

    async def _committed_between(self, key: str, start: int, end: int) -> int | Refusal:
        found = await self._value("SELECT qg_committed_between($1, $2, $3)", key, start, end)
        return NO_BUDGET if found is None else int(found)

    async def _trim(self, now: datetime, cut: datetime, limit: int) -> tuple[Trimmed, bool]:
        commits, reservations, more = await self._value(
            "SELECT qg_trim($1, $2, $3, $4, $5, $6, $7)",
            epoch_us(now),
            self._clock_arg(now),
            self._skew_us,
            epoch_us(cut),
            self._month_of(now)[0],
            limit,
            FOLDED_AT,
            now=now,
        )
        return Trimmed(commits, reservations), more == 1
