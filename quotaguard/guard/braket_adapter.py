"""The guard's Braket side: spending limits cached per device, estimates, task settlement."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from quotaguard.braket import rules
from quotaguard.braket.pricing import Price, PriceTable, UnknownPrice
from quotaguard.braket.work import BraketTask
from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Estimate, Reservation, Violation
from quotaguard.errors import BudgetUnavailable, Conflict
from quotaguard.guard.cache import CachedState, check_not_future
from quotaguard.guard.stamps import BRAKET_TAG_KEY, first_found, may_have_sent
from quotaguard.ledger.base import Ledger

if TYPE_CHECKING:
    from collections.abc import Callable

    from quotaguard.braket.client import BraketClient
    from quotaguard.braket.models import QuantumTask, SpendingLimit

__all__ = ["BraketAdapter"]

log = logging.getLogger("quotaguard.guard")


#: How long before its hold a task may be dated: Braket's clock is not ours (AWS itself
#: accepts signatures 15 minutes off).
SEARCH_MARGIN = timedelta(minutes=15)
#: Braket budget keys: ``braket:<device ARN>`` (``rules.budget_key``).
PREFIX = rules.budget_key("")


def _region(arn: str) -> str | None:
    """The region a task ran in, from its ARN (``arn:aws:braket:<region>:...``)."""
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 3 else None


class BraketAdapter:
    provider = "braket"
    unit = Unit.USD

    def __init__(
        self,
        client: BraketClient | None,
        *,
        prices: PriceTable | None,
        ledger: Ledger,
        clock: Callable[[], datetime],
        ttl: timedelta,
        max_staleness: timedelta,
    ) -> None:
        self.client = client
        self.prices = prices or PriceTable.default()
        self.ledger = ledger
        self.clock = clock
        self.ttl = ttl
        self.max_staleness = max_staleness
        self._limits: dict[str, CachedState[SpendingLimit | None]] = {}
        self._warned_stale: set[str] = set()  # devices whose stale price was warned about

    def __repr__(self) -> str:
        return f"BraketAdapter(devices={sorted(self._limits)})"

    def _warn_if_stale(self, device_arn: str, now: datetime) -> None:
        """Once per device: its built-in price is old and no Price List was loaded."""
        if device_arn in self._warned_stale:
            return
        since = self.prices.stale_since(device_arn)
        if since is not None and now >= since:
            self._warned_stale.add(device_arn)
            log.warning("%s", self.prices.stale_message(device_arn))

    def handles(self, work: object) -> bool:
        return isinstance(work, BraketTask)

    def _cache(self, device_arn: str) -> CachedState[SpendingLimit | None]:
        cache = self._limits.get(device_arn)
        if cache is None:
            cache = CachedState(
                rules.budget_key(device_arn),
                lambda: self._fetch(device_arn),
                ttl=self.ttl,
                max_staleness=self.max_staleness,
                clock=self.clock,
            )
            self._limits[device_arn] = cache
        return cache

    async def _fetch(self, device_arn: str) -> SpendingLimit | None:
        assert self.client is not None
        at = self.clock()  # when the read started: tasks sent before it are in its figure
        limit = await self.client.spending_limit_for(device_arn)
        if limit is None:
            return None
        await self.record(limit, at=at)
        return limit

    async def record(self, limit: SpendingLimit, *, at: datetime) -> None:
        """Make the limit a budget and report Braket's spend to the ledger (a limit dated after
        ``at`` is refused first, as a provider error).

        The figure is stored raw, dated ``at`` (when the read started), as covering sent work:
        ``queuedSpend`` holds every task whose CreateQuantumTask completed before the read,
        so the ledger counts a hold bound before ``at`` once, inside the figure, and never
        lets ``used`` drop below it when such a task then fails and is released.
        """
        check_not_future(limit.created_at, at, "$.createdAt", self.provider)
        check_not_future(limit.updated_at, at, "$.updatedAt", self.provider)
        budget, reported = rules.limit_budget(limit), rules.reported_used(limit)
        await self.ledger.put_budget(budget)
        await self.ledger.record_report(budget.key, reported, at=at, covers_sent=True)

    async def estimate(self, work: BraketTask, *, now: datetime, fail_open: bool) -> Estimate:
        limit: SpendingLimit | None = None
        stale: tuple[str, ...] = ()
        if self.client is not None and rules.device_facts(work.device_arn)[1]:
            try:
                limit = await self._cache(work.device_arn).get()
            except BudgetUnavailable:
                if not fail_open:
                    raise
                # Admit, but keep charging the limit we last knew: the ledger still holds
                # its budget, so local reservations keep counting against it. The guard
                # emits a (rate-limited) fail_open event per admission.
                limit = self._cache(work.device_arn).last
                stale = (rules.budget_key(work.device_arn),)
        self._warn_if_stale(work.device_arn, now)
        region = self.client.region if self.client is not None else None
        estimate = rules.estimate(work, prices=self.prices, limit=limit, now=now, region=region)
        return attrs.evolve(estimate, fail_open=stale) if stale else estimate

    def explain(self, work: Any, violations: Sequence[Violation]) -> tuple[Violation, ...]:
        return tuple(violations)

    def external_id(self, work: object, result: object) -> str | None:
        if result is None:
            return None  # a send that returns nothing: skip the Mapping ABC check below
        if isinstance(result, str):
            return result if self.owns(result) else None
        if isinstance(result, Mapping):
            arn = result.get("quantumTaskArn")
            return arn if isinstance(arn, str) else None
        arn = getattr(result, "id", None)  # braket.aws.AwsQuantumTask
        return arn if isinstance(arn, str) and self.owns(arn) else None

    def owns(self, external_id: str) -> bool:
        return external_id.startswith("arn:aws:braket:") and ":quantum-task/" in external_id

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        if self.client is None:
            return None
        task = await self.client.get_quantum_task(external_id)
        if task.reservation_arn is not None:
            return Decimal(0) if task.ended else None  # Braket Direct bills the reservation
        price = self.prices.price_for(task.device_arn, region=_region(external_id))
        qpu = rules.device_facts(task.device_arn)[1]
        timed = bool(price.per_minute) if price is not None else not qpu
        if task.status == "COMPLETED" or (task.status == "CANCELLED" and timed):
            # Simulators bill the time they ran, cancelled ones too (the watcher cancels them
            # past their max_duration); the time since creation is never less than that.
            try:
                return self.prices.estimate(
                    task.device_arn,
                    task.shots,
                    duration=self._ran(task),
                    region=_region(external_id),
                )
            except UnknownPrice:
                return reserved  # priced by the caller's override when it was admitted
        if task.status in ("FAILED", "CANCELLED"):
            return Decimal(0)
        if price is not None and price.per_minute and task.status != "CANCELLING":
            await self._stop_overrun(task, price, reserved)
        return None

    async def find_sent(self, reservation: Reservation) -> str | None:
        """The task a guarded send made for ``reservation``: ``SearchQuantumTasks`` on its
        devices from its creation on, matching the tag ``quotaguard:reservation=<id>``."""
        if self.client is None or not may_have_sent(reservation, lambda k: k.startswith(PREFIX)):
            return None
        keys = sorted({c.budget for c in reservation.charges if c.budget.startswith(PREFIX)})
        lookup = self.client.find_quantum_tasks(
            (BRAKET_TAG_KEY, reservation.id),
            device_arns=[k.removeprefix(PREFIX) for k in keys][:10] or None,
            created_after=reservation.created_at - SEARCH_MARGIN,
        )
        return await first_found(lookup, reservation)

    def _ran(self, task: QuantumTask) -> timedelta | None:
        """How long the task has run (or ran): since it was created, on the guard's clock."""
        if task.created_at is None:
            return None
        return (task.ended_at or self.clock()) - task.created_at

    async def _stop_overrun(self, task: QuantumTask, price: Price, reserved: Decimal) -> None:
        """Cancel a per-minute task that has run as long as its hold pays for: Braket sets
        simulators no limit, so the guard enforces the ``max_duration`` it held."""
        assert self.client is not None
        allowed, ran = rules.allowed_run(price, task.shots, reserved), self._ran(task)
        if ran is None or ran < allowed:
            return
        log.warning(
            "%s has run %s, past the %s its hold pays for; cancelling it",
            task.quantum_task_arn,
            ran,
            allowed,
        )
        token = str(uuid.uuid5(uuid.NAMESPACE_URL, task.quantum_task_arn))  # one cancel, retried
        with contextlib.suppress(Conflict):  # it ended meanwhile: the next pass settles it
            await self.client.cancel_quantum_task(task.quantum_task_arn, client_token=token)

    async def sync(self) -> None:
        if self.client is None:
            return
        at = self.clock()
        async for limit in self.client.search_spending_limits():
            await self.record(limit, at=at)
            self._cache(limit.device_arn).set(limit)

    async def aclose(self) -> None:
        return None
