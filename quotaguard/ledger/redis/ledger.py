"""A ledger in Redis, shared by every process of a fleet (extra ``quotaguard[redis]``).

Every operation is one EVALSHA of its own Lua script (:mod:`.scripts`; all of them are
loaded again on NOSCRIPT), so each check-and-hold is atomic on the server and costs one
round trip. The scripts return numbers and tags; the verdict's wording comes from the engine
(:func:`quotaguard.engine.rules.evaluate`) and the base, so every backend explains itself
the same way.

Committed spend is kept exactly: a sorted set of commits per budget scored by commit time,
plus a running total (no window) and per-UTC-month sums (calendar month) so the common
windows cost O(1); fixed and rolling windows sum the commits inside them.

All keys of a namespace start with ``{namespace}:``, one hash tag, so the scripts are valid
on Redis Cluster. Time is always passed in, with the calendar month around it (Lua knows no
calendar); the server's clock is never read.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError

from quotaguard.engine.amounts import Unit, to_micro
from quotaguard.engine.model import Budget, Charge, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.ledger.base import LedgerBase
from quotaguard.ledger.checks import new_reservation_id
from quotaguard.ledger.encoding import charges_fingerprint, charges_json, epoch_us
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
from quotaguard.ledger.redis.codec import (
    budget_from,
    month_arg,
    reservation_from,
    text,
    usage_from,
    window_args,
)
from quotaguard.ledger.redis.scripts import SCRIPTS, sha1

__all__ = ["RedisLedger"]

log = logging.getLogger("quotaguard.ledger")

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class RedisLedger(LedgerBase):
    """Budgets and reservations in Redis, shared by every process that uses ``namespace``.

    Pass a ``url`` (``redis://host:6379/0``; the ledger owns and closes that client) or a
    ready ``client`` (yours to close). ``socket_timeout`` bounds every call; a lost
    connection raises :class:`BudgetUnavailable`, and retrying with the same idempotency
    key is safe.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aioredis.Redis | None = None,
        namespace: str = "qg",
        socket_timeout: float = 5.0,
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise InvalidInput(
                "namespace", "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'"
            )
        if (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, (int, float))
            or not 0 < socket_timeout <= 3600
        ):
            raise InvalidInput("socket_timeout", "must be a number of seconds in (0, 3600]")
        if (url is None) == (client is None):
            raise InvalidInput("url", "pass either a redis:// URL or a client, not both or neither")
        self.namespace = namespace
        self._prefix = f"{{{namespace}}}:"
        self._owns_client = client is None
        self._pool: aioredis.BlockingConnectionPool | None = None
        if client is None:
            try:
                # A blocking pool: past its size, a call waits for a connection (up to the
                # socket timeout) rather than fail with "Too many connections".
                self._pool = aioredis.BlockingConnectionPool.from_url(
                    str(url),
                    max_connections=64,
                    timeout=socket_timeout,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                    # Safe to retry: reserve carries its own id, the rest are idempotent.
                    # (The asyncio Retry: redis.retry.Retry never awaits, so never retries.)
                    retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                )
            except (ValueError, RedisError) as exc:
                # Never echo the URL: it may carry a password.
                raise InvalidInput(
                    "url", f"not a usable Redis URL ({type(exc).__name__})"
                ) from None
            client = aioredis.Redis(connection_pool=self._pool)
        self._client = client
        self._leases = self._prefix + "leases"
        # The fixed arguments of each operation's call, encoded once (all ASCII: any client
        # encoding). The operation's name goes along too, for MONITOR and SLOWLOG.
        leases, prefix = self._leases.encode(), self._prefix.encode()
        self._heads = {
            op: ("EVALSHA", sha1(source).encode(), b"1", leases, op.encode(), prefix)
            for op, source in SCRIPTS.items()
        }
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        # Belt and braces over the socket timeouts: connect + retries, then give up.
        self._deadline = socket_timeout * 4 + 1.0
        self._socket_timeout = socket_timeout
        self._month = (0, 0, "")  # the last month_arg(): most calls fall in the same month
        self._undos: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisLedger(namespace={self.namespace!r})"

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(self, op: str, *args: str | int) -> list[Any]:
        if self._closed:
            raise BudgetUnavailable(f"redis ledger {self.namespace!r} is closed")
        # EVALSHA straight through execute_command: redis-py's Script wrapper adds a layer of
        # Python per call. NOSCRIPT (a flushed or restarted server): load them all, send again.
        command = (*self._heads[op], *args)
        try:
            async with asyncio.timeout(self._deadline):
                try:
                    reply = await self._execute(*command)
                except NoScriptError:
                    await self._load_scripts()
                    reply = await self._execute(*command)
        except TimeoutError:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r} did not answer within {self._deadline:g}s"
            ) from None
        except RedisError as exc:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc
        result: list[Any] = list(reply)
        result[0] = text(result[0])
        return result

    async def _load_scripts(self) -> None:
        # All of them at once: a flushed or restarted server lost every one.
        async with self._client.pipeline(transaction=False) as pipe:
            for source in SCRIPTS.values():
                pipe.script_load(source)
            await pipe.execute()

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._undos:  # let in-flight undos of failed reserves reach Redis (bounded)
            await asyncio.wait(set(self._undos), timeout=self._deadline)
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
            if self._pool is not None:
                await self._pool.aclose()

    async def _undo_reserve(self, rid: str, now: datetime) -> None:
        """Release or tombstone ``rid``; wait at most one socket timeout for it."""
        if self._closed:
            return
        undo = asyncio.ensure_future(self._call("cancel", rid, epoch_us(now)))
        self._undos.add(undo)
        undo.add_done_callback(lambda task: self._undone(task, rid))
        await asyncio.wait([undo], timeout=self._socket_timeout)

    def _undone(self, task: asyncio.Task[Any], rid: str) -> None:
        self._undos.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning(
                "redis ledger %r: could not undo reservation %s; it lapses at its lease: %s",
                self.namespace,
                rid,
                exc,
            )

    def _month_of(self, now: datetime, at: int) -> str:
        start, end, arg = self._month
        if not start <= at < end:
            self._month = month = month_arg(now)
            arg = month[2]
        return arg

    async def _one(self, op: str, rid: str, *args: str | int) -> Reservation | Refusal:
        reply = await self._call(op, rid, *args)
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
        )
        return UnitInUse(Unit(text(reply[1]))) if reply[0] == "unit" else None

    async def _remove_budget(self, key: str) -> Refusal | None:
        reply = await self._call("remove_budget", key)
        return {"unknown": NO_BUDGET, "outstanding": OUTSTANDING}.get(reply[0])

    async def _get_budget(self, key: str) -> Budget | Refusal:
        reply = await self._call("get_budget", key)
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
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        totals: dict[str, int] = {}
        for charge in charges:
            totals[charge.budget] = totals.get(charge.budget, 0) + to_micro(charge.amount)
        pairs = sorted({(c.budget, c.unit.value) for c in charges})
        rid = new_reservation_id()
        at = epoch_us(now)
        args: list[str | int] = [
            at,
            self._month_of(now, at),
            epoch_us(now + lease),
            rid,
            key or "",
            charges_fingerprint(charges) if key else "",  # only a key's replay check reads it
            charges_json(charges),
            # Two packed arguments, not two per budget: redis-py encodes each argument in
            # Python. Budget keys and units contain no spaces (check_key, Unit).
            " ".join(x for pair in pairs for x in pair),
            " ".join(f"{k} {micro}" for k, micro in totals.items()),
        ]
        # No shielded task on this path (it cost as much as the rest of reserve's Python).
        # If we are cancelled, or the outcome is unknown (a lost reply, a timeout), the script
        # may have run, or may still run (its command was sent): "cancel" releases the hold,
        # or leaves a released record under this id that turns a late arrival into a no-op.
        # So a BudgetUnavailable from reserve holds nothing, and a retry with the same key
        # reserves and sends afresh instead of replaying a hold nobody used.
        try:
            reply = await self._call("reserve", *args)
        except (asyncio.CancelledError, BudgetUnavailable):
            await self._undo_reserve(rid, now)
            raise
        if reply[0] == "new":  # held by this call (or by a retry of it): same fields
            return Reservation(
                id=rid,
                charges=charges,
                created_at=now,
                lease_expires_at=now + lease,
                idempotency_key=key,
            )
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
            self._month_of(now, at),
            "0" if actual is None else "1",
            charges_json(items),
            len(items),
            *(x for c in items for x in (c.budget, c.unit.value, to_micro(c.amount))),
        )
        if reply[0] == "notfound":
            return NO_RESERVATION
        reservation = reservation_from(reply[1])
        return ActualMismatch(reservation) if reply[0] == "bad" else reservation

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        return await self._one("release", rid, epoch_us(now))

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        return await self._one("renew", rid, epoch_us(now), epoch_us(now + lease))

    async def _expire(self, now: datetime, clock: datetime) -> int:
        reply = await self._call("expire", epoch_us(now))
        return int(reply[1])

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        return await self._one("bind", rid, external_id)

    async def _get(self, rid: str) -> Reservation | Refusal:
        return await self._one("get", rid)

    async def _find_external(self, external_id: str) -> Reservation | None:
        reply = await self._call("find_external", external_id)
        return None if reply[0] == "none" else reservation_from(reply[1])

    async def _outstanding(self) -> list[Reservation]:
        reply = await self._call("outstanding")
        return [reservation_from(flat) for flat in reply[1:]]

    async def _lapsed(self) -> list[Reservation]:
        reply = await self._call("lapsed")
        found = [reservation_from(flat) for flat in reply[1:]]
        return sorted(found, key=lambda r: (r.ended_at or r.created_at, r.id))

    # -- provider reports and state ---------------------------------------------------------

    async def _record_report(self, key: str, micro: int, at: datetime) -> Refusal | None:
        reply = await self._call("record_report", key, micro, epoch_us(at))
        return NO_BUDGET if reply[0] == "unknown" else None

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        at = epoch_us(now)
        reply = await self._call("state", key, at, self._month_of(now, at))
        budget = budget_from(reply[1]) if reply[0] == "ok" else None
        return NO_BUDGET if budget is None else Counters(budget, usage_from(reply[2]))
