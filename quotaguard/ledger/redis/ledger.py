"""A ledger in Redis, shared by every process of a fleet (extra ``quotaguard[redis]``).

Every operation is one EVALSHA of its own Lua script (:mod:`.scripts`; all of them are
loaded again on NOSCRIPT), so each check-and-hold is atomic on the server and costs one
round trip. Its arguments travel as one JSON array that the script checks field by field
and refuses with an error when it cannot parse it, so no field can drop out silently. The
scripts return numbers and tags; the verdict's wording comes from the engine
(:func:`quotaguard.engine.rules.evaluate`) and the base, so every backend explains itself
the same way.

Committed spend is kept exactly: a sorted set of commits per budget scored by commit time
(and a second one scored by floor time, for "since" a report that covers sent work), plus
a running total (no window) and per-UTC-month sums (calendar month) so the common windows
cost O(1); fixed and rolling windows sum the commits inside them.

All keys of a namespace start with ``{namespace}:``, one hash tag, so a namespace lives in
one cluster slot, and each call declares every key its script touches (:mod:`.scripts`), so
it runs on Redis Cluster (a ``RedisCluster`` client) during slot migrations too. Leases
are judged by the server's clock by default (``time_source="server"``: ``TIME``, read
inside the script that judges them, which also refuses a caller ``now`` more than
``max_skew`` away); the caller's ``now`` and the calendar month around it (Lua knows no
calendar) are passed in to date windows, commits and ends.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import attrs
import redis.asyncio as aioredis

from quotaguard.engine.alerts import levels_text, thresholds
from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget, Charge, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.errors import BudgetUnavailable, ClockSkew
from quotaguard.ledger.base import LedgerBase, TimeSourceName
from quotaguard.ledger.checks import DEFAULT_MAX_SKEW, TimeSource, new_reservation_id
from quotaguard.ledger.encoding import (
    alerts_from,
    charges_fingerprint,
    charges_json,
    epoch_us,
    from_epoch_us,
)
from quotaguard.ledger.outcomes import (
    NO_BUDGET,
    NO_RESERVATION,
    OUTSTANDING,
    ActualMismatch,
    Ahead,
    Alerted,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.redis.codec import (
    budget_from,
    reservation_from,
    text,
    usage_from,
    window_args,
)
from quotaguard.ledger.redis.durability import DurabilityName
from quotaguard.ledger.redis.scanned import ScannedReads
from quotaguard.ledger.redis.scripts import BUDGET_KINDS, HOLD_KINDS

__all__ = ["RedisLedger"]

#: How many reservations' budget keys a ledger remembers (a hint, never the truth: a call
#: for a reservation it does not know asks the script which keys it needs).
_KNOWN = 4096


class RedisLedger(ScannedReads, LedgerBase):
    """Budgets and reservations in Redis, shared by every process that uses ``namespace``.

    Pass a ``url`` (``redis://host:6379/0``; the ledger owns and closes that client) or a
    ready ``client`` (yours to close): a ``redis.asyncio.RedisCluster`` runs the ledger on
    Redis Cluster (one namespace = one slot; ``replicas`` must be 0 there).
    ``socket_timeout`` bounds every call; a lost connection raises
    :class:`BudgetUnavailable`, and retrying with the same idempotency key is safe.
    ``time_source``: ``"server"`` (Redis ``TIME`` judges leases, and a caller ``now`` more
    than ``max_skew`` from it is refused with :class:`~quotaguard.errors.ClockSkew`),
    ``"system"`` (this machine's clock, checked the same way) or ``"caller"`` (each call's
    ``now``: tests that drive time).

    Durability (:mod:`.durability`, read at connect: ``async with`` or the first call):
    ``durability="ack"`` warns once when the server can lose an acknowledged write on a
    crash, ``"strict"`` refuses to start (:class:`BudgetUnavailable` naming the settings),
    ``"off"`` reads nothing. ``replicas=N`` follows every write with ``WAIT N`` (at most
    ``wait_timeout`` seconds): a reserve that too few replicas acknowledged is undone and
    raises :class:`BudgetUnavailable`, so nothing is admitted that a failover could forget.
    docs/budgets.md says what each setting survives.

    ``batching=True`` (the default) pipelines the calls this event loop makes at the same
    time on one connection kept from the pool, a few to a write, each still its own atomic
    script call (:mod:`.batching`; docs/performance.md). A RedisCluster client, a
    single-connection client, a pool of one connection, a RESP3 client, an install without
    hiredis and ``batching=False`` send each call on its own.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aioredis.Redis | aioredis.RedisCluster | None = None,
        namespace: str = "qg",
        socket_timeout: float = 5.0,
        time_source: TimeSourceName = "server",
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        durability: DurabilityName = "ack",
        replicas: int = 0,
        wait_timeout: float = 1.0,
        batching: bool = True,
    ) -> None:
        self._use_time(time_source, max_skew, tuple(TimeSource))
        super().__init__(
            url,
            client,
            namespace,
            socket_timeout,
            max_skew=self.max_skew,
            server_time=self.time_source is TimeSource.SERVER,
            durability=durability,
            replicas=replicas,
            wait_timeout=wait_timeout,
            batching=batching,
        )
        # Reservation id -> its budgets, for the calls that name it.
        self._known: dict[str, tuple[str, ...]] = {}

    def _keys_of(self, rid: str, kinds: tuple[str, ...] = ()) -> tuple[str, ...]:
        """``rid``'s record, and the ``kinds`` keys of its budgets where this ledger knows
        them (the script asks for those it does not), with the prefix."""
        return (self._record_key(rid), *self._budget_keys(self._known.get(rid, ()), kinds))

    def _remember(self, rid: str, budgets: Any) -> None:
        if len(self._known) >= _KNOWN:
            del self._known[next(iter(self._known))]  # the oldest
        self._known[rid] = tuple(budgets)

    def __repr__(self) -> str:
        return f"RedisLedger(namespace={self.namespace!r})"

    async def _one(
        self,
        op: str,
        rid: str,
        *args: object,
        now: datetime | None = None,
        kinds: tuple[str, ...] = (),
    ) -> Reservation | Refusal:
        reply = await self._call(op, rid, *args, now=now, keys=self._keys_of(rid, kinds))
        return NO_RESERVATION if reply[0] == "notfound" else reservation_from(reply[1])

    # -- budgets ----------------------------------------------------------------------------

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        reply = await self._call(
            "put_budget",
            budget.key,
            budget.unit.value,
            str(budget.limit),
            to_micro(budget.limit, round_up=False),
            *window_args(budget),
            levels_text(budget),
            json.dumps(thresholds(budget)),
            keys=self._budget_keys([budget.key], ("b:",)),
        )
        return UnitInUse(Unit(text(reply[1]))) if reply[0] == "unit" else None

    async def _remove_budget(self, key: str) -> Refusal | None:
        reply = await self._call("remove_budget", key, keys=self._budget_keys([key], ("b:",)))
        return {"unknown": NO_BUDGET, "outstanding": OUTSTANDING}.get(reply[0])

    async def _get_budget(self, key: str) -> Budget | Refusal:
        reply = await self._call("get_budget", key, keys=self._budget_keys([key], ("b:",)))
        budget = budget_from(reply[1]) if reply[0] == "ok" else None
        return NO_BUDGET if budget is None else budget

    async def _budgets(self) -> list[Budget]:
        reply = await self._call("budgets")
        found = [b for b in (budget_from(flat) for flat in reply[1:]) if b is not None]
        return sorted(found, key=lambda b: b.key)

    # -- the atomic path --------------------------------------------------------------------

    async def _reserve(
        self,
        charges: tuple[Charge, ...],
        now: datetime,
        lease: timedelta,
        key: str | None,
        clock: datetime,
    ) -> Reservation | Alerted | Rejected | Replayed | KeyConflict:
        totals: dict[str, int] = {}
        per_unit: dict[tuple[str, str], int] = {}
        for charge in charges:
            micro = to_micro(charge.amount)
            totals[charge.budget] = totals.get(charge.budget, 0) + micro
            pair = (charge.budget, charge.unit.value)
            per_unit[pair] = per_unit.get(pair, 0) + micro
        rid = new_reservation_id()
        at = epoch_us(now)
        args = (
            at,
            self._clock_arg(clock),
            self._month_of(now, at),
            lease // timedelta(microseconds=1),
            rid,
            key or "",
            charges_fingerprint(charges) if key else "",  # only a key's replay check reads it
            charges_json(charges),
            [[k, unit, micro] for (k, unit), micro in per_unit.items()],
        )
        # No shielded task on this path (it cost as much as the rest of reserve's Python).
        # If we are cancelled, or the outcome is unknown (a lost reply, a timeout), the script
        # may have run, or may still run (its command was sent): "cancel" releases the hold,
        # or leaves a released record under this id that turns a late arrival into a no-op.
        # So a BudgetUnavailable from reserve holds nothing, and a retry with the same key
        # reserves and sends afresh instead of replaying a hold nobody used.
        # All of the budgets' keys: a due lease on them is let go in the same call (and a
        # reserve waits out a slot migration whatever it declares: its record is new).
        keys = (self._record_key(rid), *self._budget_keys(totals))
        try:
            reply = await self._call("reserve", *args, now=now, keys=keys)
        except ClockSkew:
            raise  # refused before anything changed: nothing to undo
        except (asyncio.CancelledError, BudgetUnavailable):
            await self._undo_reserve(rid, now, (keys[0], *self._budget_keys(totals, HOLD_KINDS)))
            raise
        if reply[0] == "new":  # held by this call (or by a retry of it): same fields
            self._remember(rid, totals)
            held = Reservation(
                id=rid,
                charges=charges,
                created_at=now,
                lease_expires_at=from_epoch_us(int(reply[1])),
                idempotency_key=key,
            )
            return held if len(reply) == 2 else Alerted(held, alerts_from(reply[2]))
        return self._decide(reply, charges, totals, now)

    @staticmethod
    def _decide(
        reply: list[Any], charges: tuple[Charge, ...], totals: dict[str, int], now: datetime
    ) -> Rejected | Replayed | KeyConflict:
        tag = reply[0]
        if tag == "check":
            found = [b for b in (budget_from(flat) for flat in reply[1:]) if b is not None]
            check_charges(charges, {b.key: b for b in found})  # raises, naming the charge
            raise BudgetUnavailable("redis ledger refused charges the engine accepts")
        if tag == "replay":
            return Replayed(reservation_from(reply[1]))
        if tag == "conflict":
            return KeyConflict(reservation_from(reply[1]).id)
        budgets: dict[str, Budget] = {}
        usage: dict[str, Usage] = {}
        for flat, raw in zip(reply[1::2], reply[2::2], strict=True):
            budget = budget_from(flat)
            if budget is not None:
                budgets[budget.key], usage[budget.key] = budget, usage_from(raw)
        violations = evaluate(totals, budgets, usage, now)
        if not violations:  # the script and the engine disagree: fail closed, loudly
            raise BudgetUnavailable("redis ledger rejected work the engine would admit")
        return Rejected(tuple(violations))

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        items = actual or ()
        at = epoch_us(now)
        reply = await self._call(
            "commit",
            rid,
            at,
            self._clock_arg(now),
            self._month_of(now, at),
            0 if actual is None else 1,
            charges_json(items),
            [[c.budget, c.unit.value, to_micro(c.amount)] for c in items],
            now=now,
            keys=self._keys_of(rid, BUDGET_KINDS)
            + self._budget_keys({c.budget: None for c in items}),
        )
        self._known.pop(rid, None)
        if reply[0] == "notfound":
            return NO_RESERVATION
        reservation = reservation_from(reply[1])
        return ActualMismatch(reservation) if reply[0] == "bad" else reservation

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        reservation = await self._one(
            "release", rid, epoch_us(now), self._clock_arg(now), now=now, kinds=HOLD_KINDS
        )
        self._known.pop(rid, None)
        return reservation

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        us = lease // timedelta(microseconds=1)
        return await self._one("renew", rid, epoch_us(now), self._clock_arg(clock), us, now=now)

    async def _renew_many(
        self, rids: list[str], lease: timedelta, now: datetime, clock: datetime
    ) -> list[Reservation]:
        reply = await self._call(
            "renew_many",
            rids,
            epoch_us(now),
            self._clock_arg(clock),
            lease // timedelta(microseconds=1),
            now=now,
            keys=tuple(key for rid in rids for key in self._keys_of(rid)),
        )
        return [reservation_from(flat) for flat in reply[1:]]

    async def _expire(self, now: datetime, clock: datetime) -> int:
        reply = await self._call("expire", epoch_us(now), self._clock_arg(clock), now=now)
        return int(reply[1])

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        sent = None if sent_at is None else epoch_us(sent_at)
        return await self._one("bind", rid, external_id, sent, kinds=HOLD_KINDS)

    async def _mark_in_doubt(self, rid: str, now: datetime) -> Reservation | Refusal:
        return await self._one("mark_in_doubt", rid, epoch_us(now), self._clock_arg(now), now=now)

    async def _get(self, rid: str) -> Reservation | Refusal:
        return await self._one("get", rid)

    async def _find_external(self, external_id: str) -> Reservation | None:
        reply = await self._call("find_external", external_id)
        return None if reply[0] == "none" else reservation_from(reply[1])

    async def _outstanding(self) -> list[Reservation]:
        reply = await self._call("outstanding")
        return [reservation_from(flat) for flat in reply[1:]]

    async def _in_doubt(self) -> list[Reservation]:
        reply = await self._call("in_doubt")
        found = [reservation_from(flat) for flat in reply[1:]]
        return sorted(found, key=lambda r: (r.in_doubt_since or r.created_at, r.id))

    async def _lapsed(self) -> list[Reservation]:
        reply = await self._call("lapsed")
        found = [reservation_from(flat) for flat in reply[1:]]
        return sorted(found, key=lambda r: (r.ended_at or r.created_at, r.id))

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(
        self, key: str, micro: int, at: datetime, now: datetime | None, covers_sent: bool
    ) -> Refusal | Ahead | None:
        reply = await self._call(
            "record_report",
            key,
            micro,
            epoch_us(at),
            None if now is None else epoch_us(now),
            1 if self._server_time else 0,
            1 if covers_sent else 0,
            now=now,
            keys=self._budget_keys([key], HOLD_KINDS),
        )
        if reply[0] == "ahead":
            return Ahead(from_epoch_us(int(reply[1])))
        return NO_BUDGET if reply[0] == "unknown" else None

    async def _committed_between(self, key: str, start: int, end: int) -> int | Refusal:
        reply = await self._call(
            "committed_between", key, start, end, keys=self._budget_keys([key], ("b:", "c:"))
        )
        return NO_BUDGET if reply[0] == "unknown" else int(reply[1])

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        at = epoch_us(now)
        reply = await self._call(
            "state",
            key,
            at,
            self._clock_arg(clock),
            self._month_of(now, at),
            now=now,
            keys=self._budget_keys([key]),
        )
        budget = budget_from(reply[1]) if reply[0] == "ok" else None
        if budget is None:
            return NO_BUDGET
        usage = attrs.evolve(usage_from(reply[2]), in_doubt=int(reply[3]))
        return Counters(budget, usage)
