"""``BudgetGuard``: estimate → reserve (one atomic step) → submit → bind → settle.

The guard is the only place that wires clients, provider rules and the ledger together.
Provider specifics live in adapters (``_ibm_adapter``, ``_braket_adapter``); this module is
provider-neutral. It holds the submission flow; settling and watching are in ``_settlement``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from quotaguard._aio import AsyncClosing
from quotaguard.engine.amounts import Unit, as_amount, to_micro
from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Estimate, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.engine.windows import check_aware
from quotaguard.errors import BudgetExceeded, InvalidInput, QuotaGuardError
from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.sending import Sending
from quotaguard.guard.settlement import Settlement
from quotaguard.ledger.base import Ledger, check_lease
from quotaguard.ledger.sqlite import SQLiteLedger

if TYPE_CHECKING:
    from quotaguard.braket.client import BraketClient
    from quotaguard.braket.pricing import PriceTable
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.rules import IBMPolicy

__all__ = ["Adapter", "BudgetGuard", "Submission"]

log = logging.getLogger("quotaguard.guard")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BudgetGuard(Sending, Settlement, AsyncClosing):
    """Rejects over-budget work before it is sent.

    ``ledger=None`` opens the embedded SQLite ledger in the user state dir. The guard closes
    what it opened (that ledger, the watcher) and never what it was given.
    """

    def __init__(
        self,
        ledger: Ledger | None = None,
        *,
        ibm: IBMRuntimeClient | None = None,
        braket: BraketClient | None = None,
        prices: PriceTable | None = None,
        ibm_policy: IBMPolicy | None = None,
        ibm_price_per_second: Decimal | None = None,
        fail_mode: Literal["closed", "open"] = "closed",
        state_ttl: timedelta = timedelta(seconds=60),
        max_staleness: timedelta = timedelta(minutes=10),
        lease: timedelta = timedelta(hours=1),
        submit_timeout: float = 300.0,
        clock: Callable[[], datetime] = _utcnow,
        adapters: Sequence[Adapter] = (),
    ) -> None:
        if fail_mode not in ("closed", "open"):
            raise InvalidInput("fail_mode", f"must be 'closed' or 'open', got {fail_mode!r}")
        if ibm_price_per_second is not None:
            ibm_price_per_second = as_amount(ibm_price_per_second, "ibm_price_per_second")
        if state_ttl <= timedelta(0) or max_staleness < state_ttl:
            raise InvalidInput("state_ttl", "state_ttl must be > 0 and <= max_staleness")
        check_lease(lease)
        if (
            isinstance(submit_timeout, bool)
            or not isinstance(submit_timeout, (int, float))
            or not math.isfinite(submit_timeout)
            or submit_timeout <= 0
        ):
            raise InvalidInput(
                "submit_timeout", f"must be a positive number of seconds, got {submit_timeout!r}"
            )
        check_aware(clock(), "clock()")
        self._owns_ledger = ledger is None
        self.ledger: Ledger = ledger if ledger is not None else SQLiteLedger()
        self.fail_mode = fail_mode
        self.lease = lease
        self.submit_timeout = submit_timeout
        self.ibm_price_per_second = ibm_price_per_second
        self.clock = clock
        self._budget_units: dict[str, Unit] = {}
        # The same work is priced into the same user budgets over and over: a Charge is
        # frozen, so one built (and validated) for an amount and unit serves every repeat.
        self._user_charges: dict[tuple[object, ...], Charge] = {}
        self._inflight: dict[str, tuple[object, tuple[str, ...], asyncio.Future[Submission]]] = {}
        self._warned_open: set[str] = set()
        self._watcher: asyncio.Task[None] | None = None
        # Sync sends (SDK calls) run on threads of our own: callers waiting on the guard from
        # the loop's default executor (asyncio.to_thread) can never starve them.
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="quotaguard-send")
        self._followups: set[asyncio.Task[Any]] = set()
        # Extra adapters first: a custom provider (or a test double) can claim any work type.
        self.adapters: list[Adapter] = list(adapters)
        common = {
            "ledger": self.ledger,
            "clock": clock,
            "ttl": state_ttl,
            "max_staleness": max_staleness,
        }
        if ibm is not None:
            from quotaguard.guard.ibm_adapter import IBMAdapter

            self.adapters.append(IBMAdapter(ibm, policy=ibm_policy, **common))  # type: ignore[arg-type]
        if braket is not None or prices is not None:
            from quotaguard.guard.braket_adapter import BraketAdapter

            self.adapters.append(BraketAdapter(braket, prices=prices, **common))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        names = [a.provider for a in self.adapters]
        return (
            f"BudgetGuard(ledger={self.ledger!r}, providers={names}, fail_mode={self.fail_mode!r})"
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._followups:
            await asyncio.wait(self._followups, timeout=30)
        self._executor.shutdown(wait=False)
        for adapter in self.adapters:
            await adapter.aclose()
        if self._owns_ledger:
            await self.ledger.aclose()

    # -- budgets ------------------------------------------------------------------------------

    async def add_budget(self, budget: Budget) -> None:
        """Add or replace one of your own budgets (team, project, cross-provider USD)."""
        await self.ledger.put_budget(budget)
        self._budget_units[budget.key] = budget.unit

    async def _unit_of(self, key: str, field: str) -> Unit:
        if key not in self._budget_units:
            try:
                self._budget_units[key] = (await self.ledger.get_budget(key)).unit
            except InvalidInput as exc:
                raise InvalidInput(field, exc.reason) from None
        return self._budget_units[key]

    # -- the flow -----------------------------------------------------------------------------

    def _adapter_for(self, work: object) -> Adapter:
        for adapter in self.adapters:
            if adapter.handles(work):
                return adapter
        kind = type(work).__name__
        raise InvalidInput(
            "work",
            f"no provider is configured for {kind}; pass ibm=IBMRuntimeClient(...) for IBMJob/"
            "IBMSession or braket=BraketClient(...) / prices=PriceTable(...) for BraketTask",
        )

    async def _estimate(self, work: object) -> tuple[Adapter, Estimate]:
        adapter = self._adapter_for(work)
        estimate = await adapter.estimate(
            work, now=self.clock(), fail_open=self.fail_mode == "open"
        )
        return adapter, estimate

    async def _charges(
        self, estimate: Estimate, budgets: Iterable[str], adapter: Adapter
    ) -> tuple[Charge, ...]:
        """Provider charges plus one per named user budget, converted where a price allows."""
        if isinstance(budgets, str):
            raise InvalidInput("budgets", "pass a sequence of budget keys, e.g. ('team:a',)")
        charges = list(estimate.charges)
        seen: set[str] = {c.budget for c in charges}
        # Only finite Decimals are memo keys (a signalling NaN cannot even be hashed).
        memoable = type(estimate.amount) is Decimal and estimate.amount.is_finite()
        for i, key in enumerate(budgets):
            if key in seen:
                raise InvalidInput(f"budgets[{i}]", f"budget {key!r} is named twice")
            seen.add(key)
            unit = self._budget_units.get(key) or await self._unit_of(key, f"budgets[{i}]")
            memo = (key, estimate.amount, estimate.unit, unit, self.ibm_price_per_second)
            charge = self._user_charges.get(memo) if memoable else None
            if charge is None:
                amount = self._convert(estimate.amount, estimate.unit, unit, f"budgets[{i}]", key)
                charge = Charge(key, amount, unit)
                if memoable:
                    if len(self._user_charges) >= 1024:
                        self._user_charges.clear()  # bounded; the amounts in use come back
                    self._user_charges[memo] = charge
            charges.append(charge)
        return tuple(charges)

    async def check(self, work: object, *, budgets: Sequence[str] = ()) -> Decision:
        """Would this work be admitted now? Reserves nothing, sends nothing."""
        adapter, estimate = await self._estimate(work)
        charges = await self._charges(estimate, budgets, adapter)
        if estimate.violations:
            return Decision.reject(adapter.explain(work, estimate.violations), charges)
        now = self.clock()
        keys = {c.budget for c in charges}
        states = {k: await self.ledger.state(k, now=now) for k in keys}
        known = {k: s.budget for k, s in states.items()}
        requested = check_charges(list(charges), known) if charges else {}
        usage = {k: Usage(committed=to_micro(s.used), reserved=0) for k, s in states.items()}
        violations = evaluate(requested, known, usage, now)
        if violations:
            return Decision.reject(adapter.explain(work, violations), charges)
        return Decision(admitted=True, charges=charges)

    async def submit(
        self,
        work: object,
        submit: Callable[[], Awaitable[Any]] | Callable[[], Any],
        *,
        budgets: Sequence[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission:
        """Reserve, then call ``submit`` only if admitted; raises :class:`BudgetExceeded`."""
        if not callable(submit):
            raise InvalidInput("submit", "must be a callable that sends the work")
        if idempotency_key is None:
            return await self._submit(work, submit, budgets, None)
        # One in-process flight per key: a concurrent duplicate waits for the first and gets
        # its result; if the first was cancelled, the duplicate takes over the flight.
        while (flight := self._inflight.get(idempotency_key)) is not None:
            first_work, first_budgets, future = flight
            if (first_work, first_budgets) != (work, tuple(budgets)):
                raise InvalidInput(
                    "idempotency_key",
                    f"key {idempotency_key!r} is in use for different work or budgets",
                )
            try:
                first = await asyncio.shield(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if future.cancelled() and not (task is not None and task.cancelling()):
                    continue  # the first caller was cancelled, not us: try ourselves
                raise
            return attrs.evolve(first, replayed=True)
        mine: asyncio.Future[Submission] = asyncio.get_running_loop().create_future()
        mine.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight[idempotency_key] = (work, tuple(budgets), mine)
        try:
            submission = await self._submit(work, submit, budgets, idempotency_key)
            mine.set_result(submission)
            return submission
        except asyncio.CancelledError:
            mine.cancel()
            raise
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        finally:
            del self._inflight[idempotency_key]

    async def _submit(
        self,
        work: object,
        submit: Callable[[], Any],
        budgets: Sequence[str],
        idempotency_key: str | None,
    ) -> Submission:
        adapter, estimate = await self._estimate(work)
        charges = await self._charges(estimate, budgets, adapter)
        if estimate.violations:
            raise BudgetExceeded(
                Decision.reject(adapter.explain(work, estimate.violations), charges)
            )
        if not charges:
            # Nothing metered and no user budget named: nothing to hold, nothing to check.
            result = await self._send_unheld(submit)
            empty = Reservation(
                id="", charges=(), created_at=self.clock(), lease_expires_at=self.clock()
            )
            return Submission(
                empty, Decision(admitted=True), work, result, adapter.external_id(work, result)
            )
        decision = await self.ledger.reserve(
            charges, now=self.clock(), lease=self.lease, idempotency_key=idempotency_key
        )
        if not decision.admitted:
            explained = attrs.evolve(
                decision, violations=adapter.explain(work, decision.violations)
            )
            raise BudgetExceeded(explained)
        reservation = decision.reservation
        assert reservation is not None
        if decision.replayed:
            return Submission(reservation, decision, work, None, reservation.external_id, True)
        result = await self._send_held(submit, reservation, work, adapter)
        external_id = adapter.external_id(work, result)
        if external_id is not None:
            reservation = await self._bind(reservation, external_id)
        return Submission(reservation, decision, work, result, external_id)

    async def _bind(self, reservation: Reservation, external_id: str) -> Reservation:
        """Tie the hold to the provider's job. The work was sent: never fail the caller here."""
        for attempt in range(3):
            task = asyncio.ensure_future(self.ledger.bind(reservation.id, external_id))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                await asyncio.wait([task], timeout=30)
                raise
            except QuotaGuardError as exc:
                log.warning(
                    "bind %s to %s failed (attempt %d): %s",
                    reservation.id,
                    external_id,
                    attempt + 1,
                    exc,
                )
                await asyncio.sleep(0.05 * 2**attempt)
        log.error(
            "reservation %s stays unbound; %s was sent; settle it with settle(%r, actual=...)",
            reservation.id,
            external_id,
            reservation.id,
        )
        return reservation

    async def release(self, target: Submission | Reservation | str) -> Reservation:
        """Release a hold you know was not used (e.g. after a SubmitTimeout)."""
        reservation = await self._resolve(target)
        return await self.ledger.release(reservation.id, now=self.clock())

    # -- state --------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Refresh every provider's state now (limits, usage, spend)."""
        for adapter in self.adapters:
            await adapter.sync()

    async def status(self) -> list[BudgetState]:
        """Every budget the ledger knows: limit, used, reserved, remaining, window."""
        now = self.clock()
        return [await self.ledger.state(b.key, now=now) for b in await self.ledger.budgets()]
