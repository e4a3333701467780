"""Settling admitted work at its actual cost, and the watcher that does it as jobs end.

:class:`Settler` is the part of ``BudgetGuard`` that runs after ``submit`` returned: it finds
a hold again (by submission, reservation id or job id), asks the provider what the work cost,
commits that to every budget the hold charged, keeps the leases of running and in-doubt work
renewed, and resolves holds in doubt (sends whose outcome the guard could not see).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from quotaguard.engine.amounts import Unit, as_amount, money_context
from quotaguard.engine.model import BudgetState, Charge, Reservation, ReservationState
from quotaguard.errors import (
    BudgetUnavailable,
    InvalidInput,
    NotFound,
    QuotaGuardError,
    ReservationNotFound,
)
from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.events import LOG_ONLY, Events
from quotaguard.guard.units import UnitConverter
from quotaguard.ledger.base import Ledger

__all__ = ["FindsSent", "Settler", "budget_states"]

log = logging.getLogger("quotaguard.guard")

#: The most reservation ids one ``Ledger.renew_many`` call takes.
RENEW_BATCH = 10_000
#: How often the watcher trims the ledger (``Ledger.trim``), when the guard has a retention.
TRIM_EVERY = timedelta(hours=1)


async def budget_states(ledger: Ledger, now: datetime) -> list[BudgetState]:
    """Every budget the ledger knows, as of ``now`` (``guard.status``; the budget gauges)."""
    return [await ledger.state(b.key, now=now) for b in await ledger.budgets()]


@runtime_checkable
class FindsSent(Protocol):
    """An adapter that can look up work sent for a reservation (by the tag a guarded send
    stamps on it). Optional: the watcher asks every adapter that has ``find_sent``."""

    async def find_sent(self, reservation: Reservation) -> str | None:
        """The job id or task ARN of the work sent for ``reservation``; None if none is known."""
        ...


class Settler:
    """``settle``, ``watch`` and ``watch_once`` over a ledger and the providers' adapters.

    ``adapters`` is the guard's own list (adapters added to it later are seen here too); the
    watcher task is this object's, and ``aclose`` stops it.
    """

    #: Bounds of one watcher pass: renewals in one ledger call each (seconds), settlements of
    #: at most this many at once, each within ``settle_timeout`` seconds.
    renew_timeout: float = 30.0
    #: Where the guard's events go (the guard hands its own over).
    events: Events = LOG_ONLY
    concurrency: int = 8
    settle_timeout: float = 60.0
    #: What the watcher's trims keep (``Ledger.trim``'s ``keep``); ``None``: it never trims.
    retention: timedelta | None = None

    def __init__(
        self,
        ledger: Ledger,
        adapters: Sequence[Adapter],
        *,
        clock: Callable[[], datetime],
        lease: timedelta,
        converter: UnitConverter,
        max_in_doubt: timedelta = timedelta(hours=24),
    ) -> None:
        self.ledger = ledger
        self.adapters = adapters
        self.clock = clock
        self.lease = lease
        self.converter = converter
        self.max_in_doubt = max_in_doubt
        self._watcher: asyncio.Task[None] | None = None
        self._trimmed_at: datetime | None = None

    async def aclose(self) -> None:
        """Stop the watcher, if one runs."""
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            # The loop also checks that it is still the watcher: a cancellation swallowed
            # below it (seen with redis-py 8.1, about 1 in 40 cancels of a command in
            # flight) must not keep it running, nor keep aclose waiting.
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def resolve(self, target: Submission[Any] | Reservation | str) -> Reservation:
        """The hold behind a submission, a reservation, a reservation id or a job id/ARN."""
        if isinstance(target, Submission) and not target.id:
            return target.reservation  # unmetered work: nothing was held
        if isinstance(target, (Submission, Reservation)):
            rid = target.id
            return await self.ledger.get(rid)
        if not isinstance(target, str) or not target:
            raise InvalidInput("submission", "pass a Submission, a reservation id or a job id/ARN")
        try:
            return await self.ledger.get(target)
        except ReservationNotFound:
            found = await self.ledger.find_external(target)
            if found is None:
                raise
            return found

    async def settle(
        self, target: Submission[Any] | Reservation | str, actual: Decimal | None = None
    ) -> Reservation:
        """Commit the actual cost and release the rest, once; unfinished work stays held."""
        reservation = await self.resolve(target)
        if not reservation.id or reservation.state in (
            ReservationState.COMMITTED,
            ReservationState.RELEASED,
        ):
            return reservation
        # HELD, or EXPIRED: a lapsed lease freed the hold, but the work ran; record its cost.
        provider_unit: Unit | None = None
        if actual is None:
            if reservation.external_id is None:
                raise InvalidInput(
                    "actual", "this submission has no job id; pass actual= to settle it"
                )
            adapter = self._adapter_by_external(reservation.external_id)
            # Every charge in the provider's unit carries the same estimate (the provider
            # budget and any user budget in that unit).
            reserved = max(
                (c.amount for c in reservation.charges if c.unit is adapter.unit),
                default=Decimal(0),
            )
            try:
                with money_context():
                    actual = await adapter.actual(reservation.external_id, reserved)
            except NotFound:
                # The provider no longer knows the job (deleted, or never created where we
                # look). It may have run: charge what was held, the most it could have cost,
                # rather than retry forever or count nothing.
                log.warning(
                    "settle: the provider does not know %s; charging what was reserved",
                    reservation.external_id,
                )
                actual = reserved
            if actual is None:
                return reservation
            provider_unit = adapter.unit
        else:
            actual = as_amount(actual, "actual")
            if reservation.external_id is not None:
                with contextlib.suppress(InvalidInput):
                    provider_unit = self._adapter_by_external(reservation.external_id).unit
        charges = self._actual_charges(reservation, actual, provider_unit)
        # Spend is dated when it is committed; work whose hold lapsed is dated at the lapse, the
        # last moment its budgets counted it, so a late settlement does not land in a later
        # window (a backlog settled on the 1st must not eat the new month).
        lapsed = reservation.state is ReservationState.EXPIRED
        at = reservation.lease_expires_at if lapsed else self.clock()
        committed = await self.ledger.commit(reservation.id, charges, now=at)
        self.events.settled(reservation, committed)
        return committed

    def _adapter_by_external(self, external_id: str) -> Adapter:
        for adapter in self.adapters:
            if adapter.owns(external_id):
                return adapter
        raise InvalidInput("external_id", f"no configured provider knows job {external_id!r}")

    def _actual_charges(
        self, reservation: Reservation, actual: Decimal, provider_unit: Unit | None
    ) -> list[Charge]:
        unit = provider_unit or reservation.charges[0].unit
        out = []
        for charge in reservation.charges:
            amount = self.converter.convert(actual, unit, charge.unit, "actual", charge.budget)
            out.append(Charge(charge.budget, amount, charge.unit))
        return out

    def watch(self, *, interval: float = 5.0, max_interval: float = 60.0) -> asyncio.Task[None]:
        """Start the watcher loop, unless one runs already; either way return its task."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(interval, max_interval))
        return self._watcher

    async def watch_once(self) -> int:
        """One pass: renew every due lease first, then settle and resolve concurrently.

        Renewal comes first, in one bounded ledger call, before any provider is asked: an
        outage that stalls settlement cannot let the hold of running work lapse. Settlement
        then runs ``concurrency`` at a time, each bounded by ``settle_timeout``, the whole
        phase by a quarter of the lease (the next pass renews well before half a lease
        passes). Returns how many reservations ended: committed, or released in-doubt holds.
        """
        held = await self._renew_due()
        await self._trim_due()
        todo = [r for r in held if r.external_id is not None or r.in_doubt_since is not None]
        lapsed = await self.ledger.lapsed()
        self.events.lapsed(lapsed)
        if self.events.states_due(now := self.clock()):  # the budget gauges, now and then
            self.events.states(await budget_states(self.ledger, now), now)
        todo += lapsed
        if not todo:
            return 0
        queue, ended = iter(todo), [0]
        try:
            async with asyncio.timeout(self.lease.total_seconds() / 4):
                workers = min(self.concurrency, len(todo))
                await asyncio.gather(*(self._settle_from(queue, ended) for _ in range(workers)))
        except TimeoutError:
            log.warning("watch: settlement pass cut short; the rest waits for the next pass")
        return ended[0]

    async def _renew_due(self) -> list[Reservation]:
        """Every held reservation; the leases of bound and in-doubt ones renewed if due."""
        now = self.clock()
        async with asyncio.timeout(self.renew_timeout):
            held = await self.ledger.outstanding()
            due = [
                r.id
                for r in held
                if (r.external_id is not None or r.in_doubt_since is not None)
                and r.lease_expires_at - now < self.lease / 2
            ]
            renewed = 0
            for i in range(0, len(due), RENEW_BATCH):
                batch = due[i : i + RENEW_BATCH]
                renewed += len(await self.ledger.renew_many(batch, lease=self.lease, now=now))
        self.events.renewed(len(due), renewed)
        return held

    async def _trim_due(self) -> None:
        """Trim the ledger once every :data:`TRIM_EVERY`, bounded; a failure waits an hour."""
        now = self.clock()
        if self.retention is None or (
            self._trimmed_at is not None and now - self._trimmed_at < TRIM_EVERY
        ):
            return
        self._trimmed_at = now
        try:
            async with asyncio.timeout(self.renew_timeout):
                trimmed = await self.ledger.trim(now=now, keep=self.retention)
        except (BudgetUnavailable, TimeoutError) as exc:
            why = str(exc) or "timed out"
            log.warning("watch: trim cut short (%s); the rest goes next hour", why)
            return
        log.info(
            "watch: trimmed %d commits, %d reservations", trimmed.commits, trimmed.reservations
        )

    async def _settle_from(self, queue: Iterator[Reservation], ended: list[int]) -> None:
        for reservation in queue:  # shared by the workers: each reservation is taken once
            done = await self._try_settle(reservation)
            ended[0] += done  # after the await: `ended[0] += await ...` would lose counts

    async def _try_settle(self, reservation: Reservation) -> int:
        try:
            async with asyncio.timeout(self.settle_timeout):
                if reservation.external_id is None:
                    done = await self.resolve_in_doubt(reservation)
                else:
                    done = await self.settle(reservation)
        except (QuotaGuardError, TimeoutError) as exc:
            # One job we cannot settle now must not stop the others.
            name = reservation.external_id or reservation.id
            log.warning("watch: cannot settle %s yet: %s", name, str(exc) or type(exc).__name__)
            return 0
        return 1 if done.state in (ReservationState.COMMITTED, ReservationState.RELEASED) else 0

    async def resolve_in_doubt(self, reservation: Reservation) -> Reservation:
        """Settle a hold whose send the guard could not see, if the evidence allows yet.

        Found by an adapter's ``find_sent``: bound and settled as usual. Otherwise it is
        released once every budget it charges has a provider report dated after its in-doubt
        lease ended (``in_doubt_since + lease``): such a report carries the work if it
        exists. A budget no provider reports on (your own) never gives that evidence. Past
        ``max_in_doubt`` it is committed at what was reserved, with a warning.
        """
        since = reservation.in_doubt_since
        if since is None or reservation.external_id is not None:
            return reservation
        found = await self._find_sent(reservation)
        if found is not None:
            return await self.settle(await self.ledger.bind(reservation.id, found))
        now = self.clock()
        if now >= since + self.lease and await self._reported_since(
            reservation, since + self.lease
        ):
            if reservation.state is ReservationState.HELD:
                return await self.ledger.release(reservation.id, now=now)
            # Its lease lapsed while in doubt, so its hold is gone already; nothing is owed
            # beyond what the report carries.
            none = [Charge(c.budget, Decimal(0), c.unit) for c in reservation.charges]
            return await self.ledger.commit(reservation.id, none, now=reservation.lease_expires_at)
        if now - since >= self.max_in_doubt:
            log.warning(
                "reservation %s was in doubt for %s, longer than max_in_doubt; committing what "
                "was reserved, the most its work could have cost",
                reservation.id,
                now - since,
            )
            lapsed = reservation.state is ReservationState.EXPIRED
            at = reservation.lease_expires_at if lapsed else now
            committed = await self.ledger.commit(reservation.id, None, now=at)
            self.events.settled(reservation, committed)
            return committed
        return reservation

    async def _find_sent(self, reservation: Reservation) -> str | None:
        for adapter in self.adapters:
            if isinstance(adapter, FindsSent):
                found = await adapter.find_sent(reservation)
                if found is not None:
                    return found
        return None

    async def _reported_since(self, reservation: Reservation, after: datetime) -> bool:
        now = self.clock()
        for key in {c.budget for c in reservation.charges}:
            try:
                reported_at = (await self.ledger.state(key, now=now)).reported_at
            except InvalidInput:  # the budget is gone: no report will come
                return False
            if reported_at is None or reported_at < after:
                return False
        return True

    async def _watch(self, interval: float, max_interval: float) -> None:
        delay = interval
        while self._watcher is asyncio.current_task():
            try:
                await self.watch_once()
                delay = interval
            except (BudgetUnavailable, InvalidInput) as exc:
                log.warning("watch: %s; retrying in %.0fs", exc, delay)
                delay = min(delay * 2, max_interval)
            except Exception as exc:  # keep watching; the next pass may succeed
                log.warning("watch: %s: %s", type(exc).__name__, exc)
                delay = min(delay * 2, max_interval)
            await asyncio.sleep(delay)
