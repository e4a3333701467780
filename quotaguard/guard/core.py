"""``BudgetGuard``: estimate → reserve (one atomic step) → submit → bind → settle.

The guard is the only place that wires clients, provider rules and the ledger together.
Provider specifics live in adapters (``ibm_adapter``, ``braket_adapter``); this module is
provider-neutral. It decides what is admitted; calling ``submit`` is the :class:`Sender`'s
work (``sending``), settling and watching the :class:`Settler`'s (``settlement``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from quotaguard._aio import AsyncClosing
from quotaguard.engine.amounts import Unit, money_context, to_micro
from quotaguard.engine.forecast import Forecast
from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Estimate, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard.checks import (
    check_adapters,
    check_budget_keys,
    check_clock,
    check_fail_mode,
    check_ledger,
    check_period,
    check_price_per_second,
    check_providers,
    check_seconds,
    check_watch,
)
from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.events import Event, Events, EventStream
from quotaguard.guard.forecasts import forecasts
from quotaguard.guard.sending import Sender
from quotaguard.guard.sends import BraketSends, IBMSends, check_send
from quotaguard.guard.settlement import Settler
from quotaguard.guard.stamps import Stamped
from quotaguard.guard.units import UnitConverter
from quotaguard.ledger.base import Ledger, check_idempotency_key, check_lease
from quotaguard.ledger.sqlite import SQLiteLedger

if TYPE_CHECKING:
    from quotaguard.braket.client import BraketClient
    from quotaguard.braket.pricing import PriceTable
    from quotaguard.engine.model import Violation
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.rules import IBMPolicy

__all__ = ["Adapter", "BudgetGuard", "Submission"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _static_violations(estimate: Estimate, charges: tuple[Charge, ...]) -> tuple[Violation, ...]:
    """The estimate's own violations, and those that apply once the work draws on a budget."""
    return estimate.violations + estimate.if_charged if charges else estimate.violations


class BudgetGuard(AsyncClosing):
    """Rejects over-budget work before it is sent.

    ``ledger=None`` opens the embedded SQLite ledger in the user state dir. The guard closes
    what it opened (that ledger, the watcher) and never what it was given. ``guard.ibm`` and
    ``guard.braket`` are its guarded sends (:mod:`quotaguard.guard.sends`).
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
        max_in_doubt: timedelta = timedelta(hours=24),
    ) -> None:
        fail_mode = check_fail_mode(fail_mode)
        ibm_price_per_second = check_price_per_second(ibm_price_per_second)
        check_period(state_ttl, "state_ttl")
        if check_period(max_staleness, "max_staleness") < state_ttl:
            raise InvalidInput("max_staleness", f"must be at least state_ttl ({state_ttl})")
        check_lease(lease)
        check_seconds(submit_timeout, "submit_timeout")
        check_clock(clock)
        if ledger is not None:
            check_ledger(ledger)
        adapters = check_adapters(adapters)
        check_providers(ibm, braket, prices, ibm_policy)
        if not isinstance(max_in_doubt, timedelta) or max_in_doubt < lease:
            raise InvalidInput("max_in_doubt", f"must be a timedelta >= lease ({lease})")
        self._owns_ledger = ledger is None
        self._ledger: Ledger = ledger if ledger is not None else SQLiteLedger()
        self._clock = clock
        self._lease = lease
        self._converter = UnitConverter(ibm_price_per_second)
        self._fail_mode: Literal["closed", "open"] = fail_mode
        self._budget_units: dict[str, Unit] = {}
        # The same work is priced into the same user budgets over and over: a Charge is
        # frozen, so one built (and validated) for an amount and unit serves every repeat.
        self._user_charges: dict[tuple[object, ...], Charge] = {}
        self._inflight: dict[str, tuple[object, tuple[str, ...], asyncio.Future[Submission]]] = {}
        # Extra adapters first: a custom provider (or a test double) can claim any work type.
        self._adapters: list[Adapter] = list(adapters)
        common = {
            "ledger": self._ledger,
            "clock": clock,
            "ttl": state_ttl,
            "max_staleness": max_staleness,
        }
        # Imported when used: a guard for one provider does not load the other's modules.
        if ibm is not None:
            from quotaguard.guard.ibm_adapter import IBMAdapter

            self._adapters.append(IBMAdapter(ibm, policy=ibm_policy, **common))  # type: ignore[arg-type]
        if braket is not None or prices is not None:
            from quotaguard.guard.braket_adapter import BraketAdapter

            self._adapters.append(BraketAdapter(braket, prices=prices, **common))  # type: ignore[arg-type]
        # The guard holds two parts: one calls ``submit``, one settles what was sent; and the
        # guarded sends of plain async code (``guard.ibm.run_job``, ``guard.braket.
        # create_quantum_task``), which describe the work from the very call they make.
        self.ibm = IBMSends(self)
        self.braket = BraketSends(self)
        self._sender = Sender(self._ledger, clock=clock, submit_timeout=submit_timeout)
        self._settler = Settler(
            self._ledger,
            self._adapters,
            clock=clock,
            lease=lease,
            converter=self._converter,
            max_in_doubt=max_in_doubt,
        )
        self._events = self._sender.events = self._settler.events = Events(clock)

    def __repr__(self) -> str:
        names = [a.provider for a in self._adapters]
        return (
            f"BudgetGuard(ledger={self._ledger!r}, providers={names}, fail_mode={self.fail_mode!r})"
        )

    # -- settings: assignable as plain attributes; a new value reaches the parts that use it --

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: Ledger) -> None:
        self._ledger = self._sender.ledger = self._settler.ledger = check_ledger(ledger)

    @property
    def adapters(self) -> list[Adapter]:
        return self._adapters

    @adapters.setter
    def adapters(self, adapters: list[Adapter]) -> None:
        self._adapters = self._settler.adapters = check_adapters(adapters)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self._clock = self._sender.clock = self._settler.clock = check_clock(clock)
        self._events.clock = clock

    @property
    def lease(self) -> timedelta:
        return self._lease

    @lease.setter
    def lease(self, lease: timedelta) -> None:
        self._lease = self._settler.lease = check_lease(lease)

    @property
    def max_in_doubt(self) -> timedelta:
        return self._settler.max_in_doubt

    @max_in_doubt.setter
    def max_in_doubt(self, longest: timedelta) -> None:
        self._settler.max_in_doubt = longest

    @property
    def submit_timeout(self) -> float:
        return self._sender.submit_timeout

    @submit_timeout.setter
    def submit_timeout(self, seconds: float) -> None:
        self._sender.submit_timeout = check_seconds(seconds, "submit_timeout")

    @property
    def ibm_price_per_second(self) -> Decimal | None:
        return self._converter.ibm_price_per_second

    @ibm_price_per_second.setter
    def ibm_price_per_second(self, price: Decimal | None) -> None:
        self._converter = self._settler.converter = UnitConverter(check_price_per_second(price))

    @property
    def fail_mode(self) -> Literal["closed", "open"]:
        """``"closed"``: refuse work when provider state is unavailable; ``"open"``: admit it."""
        return self._fail_mode

    @fail_mode.setter
    def fail_mode(self, mode: Literal["closed", "open"]) -> None:
        self._fail_mode = check_fail_mode(mode)

    # -- lifecycle ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._settler.aclose()
        await self._sender.aclose()
        for adapter in self._adapters:
            await adapter.aclose()
        if self._owns_ledger:
            await self._ledger.aclose()

    # -- budgets ------------------------------------------------------------------------------

    async def add_budget(self, budget: Budget) -> None:
        """Add or replace one of your own budgets (team, project, cross-provider USD)."""
        await self._ledger.put_budget(budget)
        self._budget_units[budget.key] = budget.unit

    async def _unit_of(self, key: str, field: str) -> Unit:
        if key not in self._budget_units:
            try:
                self._budget_units[key] = (await self._ledger.get_budget(key)).unit
            except InvalidInput as exc:
                raise InvalidInput(field, exc.reason) from None
        return self._budget_units[key]

    # -- the decision -------------------------------------------------------------------------

    def _adapter_for(self, work: object) -> Adapter:
        for adapter in self._adapters:
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
        serving = self._events.serving()  # a provider refresh reports to this guard
        try:
            with money_context():  # provider arithmetic (remaining, prices) in our context
                estimate = await adapter.estimate(
                    work, now=self._clock(), fail_open=self.fail_mode == "open"
                )
        finally:
            self._events.done_serving(serving)
        return adapter, estimate

    async def _charges(
        self, estimate: Estimate, budgets: tuple[str, ...], adapter: Adapter
    ) -> tuple[Charge, ...]:
        """Provider charges plus one per named user budget, converted where a price allows."""
        charges = list(estimate.charges)
        seen: set[str] = {c.budget for c in charges}
        converter = self._converter
        # Only finite Decimals are memo keys (a signalling NaN cannot even be hashed).
        memoable = type(estimate.amount) is Decimal and estimate.amount.is_finite()
        for i, key in enumerate(budgets):
            if key in seen:
                raise InvalidInput(f"budgets[{i}]", f"budget {key!r} is named twice")
            seen.add(key)
            unit = self._budget_units.get(key) or await self._unit_of(key, f"budgets[{i}]")
            memo = (key, estimate.amount, estimate.unit, unit, converter.ibm_price_per_second)
            charge = self._user_charges.get(memo) if memoable else None
            if charge is None:
                amount = converter.convert(
                    estimate.amount, estimate.unit, unit, f"budgets[{i}]", key
                )
                charge = Charge(key, amount, unit)
                if memoable:
                    if len(self._user_charges) >= 1024:
                        self._user_charges.clear()  # bounded; the amounts in use come back
                    self._user_charges[memo] = charge
            charges.append(charge)
        return tuple(charges)

    async def check(self, work: object, *, budgets: Iterable[str] = ()) -> Decision:
        """Would this work be admitted now? Reserves nothing, sends nothing."""
        named = check_budget_keys(budgets)
        adapter, estimate = await self._estimate(work)
        charges = await self._charges(estimate, named, adapter)
        if static := _static_violations(estimate, charges):
            return Decision.reject(adapter.explain(work, static), charges)
        now = self._clock()
        keys = {c.budget for c in charges}
        states = {k: await self._ledger.state(k, now=now) for k in keys}
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
        submit: Callable[[], Awaitable[Any]] | Callable[[], Any] | Stamped,
        *,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission:
        """Reserve, then call ``submit`` only if admitted; raises :class:`BudgetExceeded`.

        A ``functools.partial`` of ``IBMRuntimeClient.run_job`` or
        ``BraketClient.create_quantum_task`` is checked against ``work`` first: a mismatch
        (say ``max_execution_time`` 10 described, 5000 sent) is :class:`InvalidInput`, and
        nothing is held. A :class:`Stamped` send is called with the reservation id.
        """
        if not callable(submit) and not isinstance(submit, Stamped):
            raise InvalidInput("submit", "must be a callable that sends the work")
        check_send(work, submit)
        keys = check_budget_keys(budgets)  # read once: a generator is not read again below
        idempotency_key = check_idempotency_key(idempotency_key)
        if idempotency_key is None:
            return await self._submit(work, submit, keys, None)
        # One in-process flight per key: a concurrent duplicate waits for the first and gets
        # its result; if the first was cancelled, the duplicate takes over the flight.
        while (flight := self._inflight.get(idempotency_key)) is not None:
            first_work, first_budgets, future = flight
            if (first_work, first_budgets) != (work, keys):
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
        self._inflight[idempotency_key] = (work, keys, mine)
        try:
            submission = await self._submit(work, submit, keys, idempotency_key)
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
        submit: Callable[[], Any] | Stamped,
        budgets: tuple[str, ...],
        idempotency_key: str | None,
    ) -> Submission:
        adapter, estimate = await self._estimate(work)
        charges = await self._charges(estimate, budgets, adapter)
        if static := _static_violations(estimate, charges):
            refused = Decision.reject(adapter.explain(work, static), charges)
            self._events.rejected(refused, adapter.provider)
            raise BudgetExceeded(refused)
        if not charges:
            # Nothing metered and no user budget named: nothing to hold, nothing to check.
            unheld = submit.bind(None) if isinstance(submit, Stamped) else submit
            self._events.admitted(Decision(admitted=True), adapter.provider, estimate.fail_open)
            result = await self._sender.send_unheld(unheld)
            empty = Reservation(
                id="", charges=(), created_at=self._clock(), lease_expires_at=self._clock()
            )
            return Submission(
                empty, Decision(admitted=True), work, result, adapter.external_id(work, result)
            )
        decision = await self._ledger.reserve(
            charges, now=self._clock(), lease=self._lease, idempotency_key=idempotency_key
        )
        if not decision.admitted:
            explained = attrs.evolve(
                decision, violations=adapter.explain(work, decision.violations)
            )
            self._events.rejected(explained, adapter.provider)
            raise BudgetExceeded(explained)
        reservation = decision.reservation
        assert reservation is not None
        if decision.replayed:
            return Submission(reservation, decision, work, None, reservation.external_id, True)
        self._events.admitted(decision, adapter.provider, estimate.fail_open)
        if isinstance(submit, Stamped):
            submit = submit.bind(reservation.id)
        result = await self._sender.send_held(submit, reservation, work, adapter)
        reservation, external_id = await self._sender.bind_sent(reservation, work, adapter, result)
        return Submission(reservation, decision, work, result, external_id)

    # -- after the send -----------------------------------------------------------------------

    async def settle(
        self, target: Submission | Reservation | str, actual: Decimal | None = None
    ) -> Reservation:
        """Commit the actual cost and release the rest, exactly once.

        ``actual`` is in the provider's unit (IBM seconds, Braket USD); without it the
        provider is asked. Work that has not finished yet is returned still held.
        """
        return await self._settler.settle(target, actual)

    async def release(self, target: Submission | Reservation | str) -> Reservation:
        """Release a hold you know was not used (e.g. one in doubt after a SubmitTimeout)."""
        reservation = await self._settler.resolve(target)
        return await self._ledger.release(reservation.id, now=self._clock())

    def watch(self, *, interval: float = 5.0, max_interval: float = 60.0) -> asyncio.Task[None]:
        """Settle bound submissions as their jobs end and renew their leases meanwhile.

        A pass runs every ``interval`` seconds; after a failed pass the pause doubles, up to
        ``max_interval``. Both are positive, finite seconds, checked here: a bad value is
        refused at once rather than killing (or spinning) the loop later.
        """
        interval, max_interval = check_watch(interval, max_interval)
        return self._settler.watch(interval=interval, max_interval=max_interval)

    async def watch_once(self) -> int:
        """One pass of the watcher; returns how many reservations it settled.

        It settles held work that is bound to a job, and *lapsed* work: bound work whose
        lease expired while nobody watched (the process was down longer than the lease).
        That work ran; its cost is still owed to every budget it was charged to. Holds in
        doubt are renewed and resolved as :meth:`in_doubt` says.
        """
        return await self._settler.watch_once()

    async def in_doubt(self) -> list[Reservation]:
        """Held work whose send the guard could not see end (cancelled or timed out mid-send,
        a lost reply, no job id). Each keeps its hold, renewed by the watcher, until it is
        found and bound, released once a provider report dated after its in-doubt lease
        covers every budget it charges, or committed at what was reserved after
        ``max_in_doubt``; ``release()`` frees one you know was not sent."""
        return await self._ledger.in_doubt()

    # -- state --------------------------------------------------------------------------------

    async def sync(self) -> None:
        """Refresh every provider's state now (limits, usage, spend)."""
        serving = self._events.serving()
        try:
            for adapter in self._adapters:
                await adapter.sync()
        finally:
            self._events.done_serving(serving)

    async def forecast(self) -> list[Forecast]:
        """Every budget's burn-down forecast now (:mod:`quotaguard.engine.forecast`)."""
        return await forecasts(self._ledger, await self.status())

    # -- events (guard/events.py) -------------------------------------------------------------

    def on_event(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns the function that unsubscribes.

        A callback that raises is logged and skipped: it never breaks admission.
        """
        return self._events.on_event(callback)

    def events(self, *, maxsize: int = 1000) -> EventStream:
        """The events from now on as an async iterator (``async with`` or ``aclose()`` ends it)."""
        return self._events.stream(maxsize)

    async def status(self) -> list[BudgetState]:
        """Every budget the ledger knows: limit, used, reserved (``in_doubt`` of those
        holds), remaining, window."""
        now = self._clock()
        return [await self._ledger.state(b.key, now=now) for b in await self._ledger.budgets()]
