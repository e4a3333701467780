"""``BudgetGuard``: estimate → reserve (one atomic step) → submit → bind → settle.

The guard is the only place that wires clients, provider rules and the ledger together.
Provider specifics live in adapters (``ibm_adapter``, ``braket_adapter``); this module is
provider-neutral. It decides what is admitted through the :class:`Admission` it holds
(``admission``: estimate, charges, reserve); calling ``submit`` is the :class:`Sender`'s
work (``sending``), settling and watching the :class:`Settler`'s (``settlement``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from quotaguard import _otel
from quotaguard._aio import AsyncClosing
from quotaguard.engine.amounts import Unit
from quotaguard.engine.forecast import Forecast
from quotaguard.engine.model import Budget, BudgetState, Decision, Reservation
from quotaguard.errors import InvalidInput
from quotaguard.guard.admission import Admission
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
from quotaguard.guard.contract import Adapter, Submission, Work
from quotaguard.guard.events import Event, Events, EventStream
from quotaguard.guard.forecasts import forecasts
from quotaguard.guard.sending import Sender
from quotaguard.guard.sends import BraketSends, IBMSends
from quotaguard.guard.settlement import Settler, budget_states
from quotaguard.guard.stamps import Stamped
from quotaguard.guard.telemetry import Telemetry, resolve
from quotaguard.guard.units import UnitConverter
from quotaguard.ledger.base import Ledger, check_lease
from quotaguard.ledger.retention import DEFAULT_RETENTION, check_keep
from quotaguard.ledger.sqlite import SQLiteLedger

if TYPE_CHECKING:
    from quotaguard.braket.client import BraketClient
    from quotaguard.braket.pricing import PriceTable
    from quotaguard.ibm.client import IBMRuntimeClient
    from quotaguard.ibm.rules import IBMPolicy

__all__ = ["Adapter", "BudgetGuard", "Submission"]

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BudgetGuard(AsyncClosing):
    """Rejects over-budget work before it is sent.

    ``ledger=None`` opens the embedded SQLite ledger in the user state dir. The guard closes
    what it opened (that ledger, the watcher) and never what it was given. The watcher trims
    the ledger hourly, keeping ``retention`` (``Ledger.trim``; ``None``: never).
    ``guard.ibm`` and ``guard.braket`` are its guarded sends (:mod:`quotaguard.guard.sends`).

    ``telemetry``: OpenTelemetry metrics and spans (:mod:`quotaguard.guard.telemetry`, the
    ``otel`` extra). ``None`` records to the global providers the application set before
    the guard was made, if any (nothing is done otherwise); ``True`` to the global providers
    even if set later; ``False`` to none; a :class:`Telemetry` to the providers it names.
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
        retention: timedelta | None = DEFAULT_RETENTION,
        telemetry: Telemetry | bool | None = None,
    ) -> None:
        fail_mode = check_fail_mode(fail_mode)
        chosen = resolve(telemetry)
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
        if retention is not None:
            check_keep(retention)
        self._owns_ledger = ledger is None
        self._ledger: Ledger = ledger if ledger is not None else SQLiteLedger()
        self._clock = clock
        self._lease = lease
        self._converter = UnitConverter(ibm_price_per_second)
        self._fail_mode: Literal["closed", "open"] = fail_mode
        self._budget_units: dict[str, Unit] = {}
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
        self._settler.retention = retention
        self._events = self._sender.events = self._settler.events = Events(clock)
        self._events.telemetry = chosen.recorder(clock) if chosen is not None else None
        self._tracer = chosen.tracer() if chosen is not None else None
        self._admission = Admission(self)  # check and submit: where the guard decides

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
        if self._events.telemetry is not None:
            self._events.telemetry.clock = clock

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

    # -- the decision (guard/admission.py) ----------------------------------------------------

    async def check(self, work: Work, *, budgets: Iterable[str] = ()) -> Decision:
        """Would this work be admitted now? Reserves nothing, sends nothing."""
        return await self._admission.check(work, check_budget_keys(budgets))

    # The send's result type is the submission's: an async send's awaited value, a sync
    # send's return value; a Stamped send's is not tracked.
    @overload
    async def submit(
        self,
        work: Work,
        submit: Callable[[], Awaitable[T]],
        *,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission[T]: ...
    @overload
    async def submit(
        self,
        work: Work,
        submit: Callable[[], T],
        *,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission[T]: ...
    @overload
    async def submit(
        self,
        work: Work,
        submit: Stamped,
        *,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission[Any]: ...
    async def submit(
        self,
        work: Work,
        submit: Callable[[], Awaitable[Any]] | Callable[[], Any] | Stamped,
        *,
        budgets: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> Submission[Any]:
        """Reserve, then call ``submit`` only if admitted; raises :class:`BudgetExceeded`.

        A ``functools.partial`` of ``IBMRuntimeClient.run_job`` or
        ``BraketClient.create_quantum_task`` is checked against ``work`` first: a mismatch
        (say ``max_execution_time`` 10 described, 5000 sent) is :class:`InvalidInput`, and
        nothing is held. A :class:`Stamped` send is called with the reservation id.
        """
        return await self._admission.submit(work, submit, budgets, idempotency_key)

    # -- after the send -----------------------------------------------------------------------

    async def settle(
        self, target: Submission[Any] | Reservation | str, actual: Decimal | None = None
    ) -> Reservation:
        """Commit the actual cost and release the rest, exactly once.

        ``actual`` is in the provider's unit (IBM seconds, Braket USD); without it the
        provider is asked. Work that has not finished yet is returned still held.
        """
        with self._traced():
            return await self._settler.settle(target, actual)

    async def release(self, target: Submission[Any] | Reservation | str) -> Reservation:
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
        with self._traced():  # the watcher task inherits the tracer
            return self._settler.watch(interval=interval, max_interval=max_interval)

    async def watch_once(self) -> int:
        """One pass of the watcher; returns how many reservations it settled.

        It settles held work that is bound to a job, and *lapsed* work: bound work whose
        lease expired while nobody watched (the process was down longer than the lease).
        That work ran; its cost is still owed to every budget it was charged to. Holds in
        doubt are renewed and resolved as :meth:`in_doubt` says.
        """
        with self._traced():
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
            with self._traced():
                for adapter in self._adapters:
                    await adapter.sync()
        finally:
            self._events.done_serving(serving)
        if self._events.telemetry is not None:
            await self.status()  # the budget gauges, from the state just synced

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
        states = await budget_states(self._ledger, now)
        self._events.states(states, now)
        return states

    @contextlib.contextmanager
    def _traced(self) -> Iterator[None]:
        """Provider calls in this block trace to the guard's tracer (if it has one)."""
        if self._tracer is None:
            yield
            return
        token = _otel.using(self._tracer)
        try:
            yield
        finally:
            _otel.reset(token)
