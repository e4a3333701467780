"""Settling admitted work at its actual cost, and the watcher that does it as jobs end.

:class:`Settler` is the part of ``BudgetGuard`` that runs after ``submit`` returned: it finds
a hold again (by submission, reservation id or job id), asks the provider what the work cost,
commits that to every budget the hold charged, and keeps leases of running work renewed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quotaguard.engine.amounts import Unit, as_amount
from quotaguard.engine.model import Charge, Reservation, ReservationState
from quotaguard.errors import (
    BudgetUnavailable,
    InvalidInput,
    NotFound,
    QuotaGuardError,
    ReservationNotFound,
)
from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.units import UnitConverter
from quotaguard.ledger.base import Ledger

__all__ = ["Settler"]

log = logging.getLogger("quotaguard.guard")


class Settler:
    """``settle``, ``watch`` and ``watch_once`` over a ledger and the providers' adapters.

    ``adapters`` is the guard's own list (adapters added to it later are seen here too); the
    watcher task is this object's, and ``aclose`` stops it.
    """

    def __init__(
        self,
        ledger: Ledger,
        adapters: Sequence[Adapter],
        *,
        clock: Callable[[], datetime],
        lease: timedelta,
        converter: UnitConverter,
    ) -> None:
        self.ledger = ledger
        self.adapters = adapters
        self.clock = clock
        self.lease = lease
        self.converter = converter
        self._watcher: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        """Stop the watcher, if one runs."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def resolve(self, target: Submission | Reservation | str) -> Reservation:
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
        self, target: Submission | Reservation | str, actual: Decimal | None = None
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
        return await self.ledger.commit(reservation.id, charges, now=at)

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
        """Renew and settle bound held work, then settle lapsed work; how many were settled."""
        settled = 0
        for reservation in await self.ledger.outstanding():
            if reservation.external_id is None:
                continue
            # Renew first: a provider outage that stops settlement must not let the hold of
            # work that is still running lapse.
            if reservation.lease_expires_at - self.clock() < self.lease / 2:
                await self.ledger.renew(reservation.id, lease=self.lease, now=self.clock())
            settled += await self._try_settle(reservation)
        for reservation in await self.ledger.lapsed():
            settled += await self._try_settle(reservation)
        return settled

    async def _try_settle(self, reservation: Reservation) -> int:
        try:
            ended = await self.settle(reservation)
        except (QuotaGuardError, TimeoutError) as exc:
            # One job we cannot settle now must not stop the others.
            log.warning("watch: cannot settle %s yet: %s", reservation.external_id, exc)
            return 0
        return 1 if ended.state is ReservationState.COMMITTED else 0

    async def _watch(self, interval: float, max_interval: float) -> None:
        delay = interval
        while True:
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
