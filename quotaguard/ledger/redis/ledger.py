"""A ledger in Redis, shared by every process of a fleet (extra ``quotaguard[redis]``).

Every operation is one call of one Lua script (``redis.lua``, EVALSHA; redis-py's Script
reloads it on NOSCRIPT), so each check-and-hold is atomic on the server and costs one round
trip. The script returns numbers; the verdict's wording comes from the engine
(:func:`quotaguard.engine.rules.evaluate`) so every backend explains a rejection the same way.

Committed spend is kept exactly: a sorted set of commits per budget scored by commit time,
plus a running total (no window) and per-UTC-month sums (calendar month) so the common
windows cost O(1); fixed and rolling windows sum the commits inside them.

All keys of a namespace start with ``{namespace}:``, one hash tag, so the script is valid on
Redis Cluster. Time is always passed in; the server's clock is never read.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError

from quotaguard.engine.amounts import as_amount, to_micro
from quotaguard.engine.model import (
    Budget,
    BudgetState,
    Charge,
    Decision,
    Reservation,
    check_key,
)
from quotaguard.engine.rules import Usage, check_charges, evaluate, state_of
from quotaguard.errors import BudgetUnavailable, InvalidInput, ReservationNotFound, UnknownBudget
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
from quotaguard.ledger.redis.codec import (
    budget_from,
    charges_json,
    fingerprint,
    reservation_from,
    text,
    usage_from,
    window_args,
)

__all__ = ["LUA_SOURCE", "RedisLedger"]

log = logging.getLogger("quotaguard.ledger")

LUA_SOURCE = importlib.resources.files("quotaguard.ledger.redis").joinpath("redis.lua").read_text()
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
        self._script = client.register_script(LUA_SOURCE)  # for its sha
        self._leases = self._prefix + "leases"
        # The fixed arguments of every call, encoded once (all ASCII: any client encoding).
        self._head = ("EVALSHA", self._script.sha.encode(), b"1", self._leases.encode())
        self._prefix_b = self._prefix.encode()
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        # Belt and braces over the socket timeouts: connect + retries, then give up.
        self._deadline = socket_timeout * 4 + 1.0
        self._socket_timeout = socket_timeout
        self._undos: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisLedger(namespace={self.namespace!r})"

    # -- plumbing ---------------------------------------------------------------------------

    async def _call(self, op: str, *args: str | int) -> list[Any]:
        if self._closed:
            raise BudgetUnavailable(f"redis ledger {self.namespace!r} is closed")
        # EVALSHA straight through execute_command: redis-py's Script wrapper adds a layer of
        # Python per call. NOSCRIPT (a flushed or restarted server): load it, send once more.
        command = (*self._head, op, self._prefix_b, *args)
        try:
            async with asyncio.timeout(self._deadline):
                try:
                    reply = await self._execute(*command)
                except NoScriptError:
                    await self._client.script_load(LUA_SOURCE)
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

    @staticmethod
    def _rid(reservation_id: object) -> str:
        if not isinstance(reservation_id, str) or not reservation_id:
            raise ReservationNotFound(str(reservation_id))
        return reservation_id

    async def _one(self, op: str, reservation_id: str, *args: str | int) -> Reservation:
        reply = await self._call(op, reservation_id, *args)
        if reply[0] == "notfound":
            raise ReservationNotFound(reservation_id)
        return reservation_from(reply[1])

    # -- budgets ----------------------------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        if not isinstance(budget, Budget):
            raise InvalidInput("budget", f"expected a Budget, got {type(budget).__name__}")
        reply = await self._call(
            "put_budget",
            budget.key,
            budget.unit.value,
            str(budget.limit),
            to_micro(budget.limit, round_up=False),
            *window_args(budget),
        )
        if reply[0] == "unit":
            raise InvalidInput(
                "budget.unit",
                f"budget {budget.key!r} already counts {text(reply[1])}; use a new key for "
                "another unit",
            )

    async def remove_budget(self, key: str) -> None:
        check_key(key)
        reply = await self._call("remove_budget", key)
        if reply[0] == "unknown":
            raise UnknownBudget("key", key)
        if reply[0] == "outstanding":
            raise InvalidInput("key", f"budget {key!r} still has outstanding reservations")

    async def get_budget(self, key: str) -> Budget:
        check_key(key)
        reply = await self._call("get_budget", key)
        budget = budget_from(reply[1]) if reply[0] == "ok" else None
        if budget is None:
            raise UnknownBudget("key", key)
        return budget

    async def budgets(self) -> list[Budget]:
        reply = await self._call("budgets")
        found = [b for b in (budget_from(flat) for flat in reply[1:]) if b is not None]
        return sorted(found, key=lambda b: b.key)

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
        if not charges:
            check_charges(charges, {})  # raises: at least one charge
        for i, charge in enumerate(charges):
            if not isinstance(charge, Charge):
                raise InvalidInput(
                    f"charges[{i}]", f"expected a Charge, got {type(charge).__name__}"
                )
        totals: dict[str, int] = {}
        for charge in charges:
            totals[charge.budget] = totals.get(charge.budget, 0) + to_micro(charge.amount)
        pairs = sorted({(c.budget, c.unit.value) for c in charges})
        rid = new_reservation_id()
        args: list[str | int] = [
            epoch_us(now),
            epoch_us(now + lease),
            rid,
            key or "",
            fingerprint(charges) if key else "",  # only a key's replay check reads it
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
            return Decision(
                admitted=True,
                reservation=Reservation(
                    id=rid,
                    charges=charges,
                    created_at=now,
                    lease_expires_at=now + lease,
                    idempotency_key=key,
                ),
                charges=charges,
            )
        return self._decide(reply, charges, totals, key, now)

    @staticmethod
    def _decide(
        reply: list[Any],
        charges: tuple[Charge, ...],
        totals: dict[str, int],
        key: str | None,
        now: datetime,
    ) -> Decision:
        tag = reply[0]
        if tag == "check":
            found = [b for b in (budget_from(flat) for flat in reply[1:]) if b is not None]
            check_charges(charges, {b.key: b for b in found})  # raises, naming the charge
            raise BudgetUnavailable("redis ledger refused charges the engine accepts")
        if tag in ("replay", "conflict"):
            reservation = reservation_from(reply[1])
            if tag == "conflict":
                raise InvalidInput(
                    "idempotency_key",
                    f"key {key!r} was used for different charges (reservation {reservation.id})",
                )
            return Decision(
                admitted=True,
                reservation=reservation,
                charges=reservation.charges,
                replayed=tag == "replay",
            )
        budgets: dict[str, Budget] = {}
        usage: dict[str, Usage] = {}
        for flat, raw in zip(reply[1::2], reply[2::2], strict=True):
            budget = budget_from(flat)
            if budget is not None:
                budgets[budget.key], usage[budget.key] = budget, usage_from(raw)
        violations = evaluate(totals, budgets, usage, now)
        if not violations:  # the script and the engine disagree: fail closed, loudly
            raise BudgetUnavailable("redis ledger rejected work the engine would admit")
        return Decision.reject(violations, charges)

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        check_now(now)
        rid = self._rid(reservation_id)
        given = None if actual is None else tuple(actual)
        if given is not None and not all(isinstance(c, Charge) for c in given):
            check_actual(given, await self.get(rid))  # raises, naming the bad item
        items = given or ()
        reply = await self._call(
            "commit",
            rid,
            epoch_us(now),
            "0" if given is None else "1",
            charges_json(items),
            len(items),
            *(x for c in items for x in (c.budget, c.unit.value, to_micro(c.amount))),
        )
        if reply[0] == "notfound":
            raise ReservationNotFound(rid)
        reservation = reservation_from(reply[1])
        if reply[0] == "bad":
            check_actual(given, reservation)  # raises, naming the bad item
            raise BudgetUnavailable("redis ledger refused actual charges the engine accepts")
        return reservation

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        check_now(now)
        return await self._one("release", self._rid(reservation_id), epoch_us(now))

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        check_now(now)
        check_lease(lease)
        rid = self._rid(reservation_id)
        return await self._one("renew", rid, epoch_us(now), epoch_us(now + lease))

    async def expire(self, *, now: datetime) -> int:
        check_now(now)
        reply = await self._call("expire", epoch_us(now))
        return int(reply[1])

    async def bind(self, reservation_id: str, external_id: str) -> Reservation:
        if not isinstance(external_id, str) or not external_id:
            raise InvalidInput("external_id", "must be a non-empty str (a job id or task ARN)")
        return await self._one("bind", self._rid(reservation_id), external_id)

    async def get(self, reservation_id: str) -> Reservation:
        return await self._one("get", self._rid(reservation_id))

    async def find_external(self, external_id: str) -> Reservation | None:
        if not isinstance(external_id, str) or not external_id:
            return None
        reply = await self._call("find_external", external_id)
        return None if reply[0] == "none" else reservation_from(reply[1])

    async def outstanding(self) -> list[Reservation]:
        reply = await self._call("outstanding")
        return [reservation_from(flat) for flat in reply[1:]]

    async def lapsed(self) -> list[Reservation]:
        reply = await self._call("lapsed")
        found = [reservation_from(flat) for flat in reply[1:]]
        return sorted(found, key=lambda r: (r.ended_at or r.created_at, r.id))

    async def record_report(self, key: str, used: object, *, at: datetime) -> None:
        check_now(at, "at")
        micro = to_micro(as_amount(used, "used"))
        check_key(key)
        reply = await self._call("record_report", key, micro, epoch_us(at))
        if reply[0] == "unknown":
            raise UnknownBudget("key", key)

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        check_now(now)
        check_key(key)
        reply = await self._call("state", key, epoch_us(now))
        budget = budget_from(reply[1]) if reply[0] == "ok" else None
        if budget is None:
            raise UnknownBudget("key", key)
        return state_of(budget, usage_from(reply[2]), now)
