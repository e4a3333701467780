"""The decide-and-send path of :class:`~quotaguard.guard.core.BudgetGuard`.

``check`` and ``submit`` estimate the work (the adapter that claims it), add one charge per
named user budget, refuse what is statically over, and ``submit`` reserves, sends (through the
guard's :class:`Sender`) and binds. :class:`Admission` holds the guard and reads its settings
at each call, so an assignment to ``guard.ledger``, ``guard.clock`` (...) reaches it at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from quotaguard import _otel
from quotaguard.engine.amounts import Unit, money_context, to_micro
from quotaguard.engine.model import Charge, Decision, Estimate, Reservation
from quotaguard.engine.rules import Usage, check_charges, evaluate
from quotaguard.errors import BudgetExceeded, InvalidInput
from quotaguard.guard.checks import check_budget_keys
from quotaguard.guard.contract import Adapter, Submission
from quotaguard.guard.sends import check_send
from quotaguard.guard.stamps import Stamped
from quotaguard.guard.telemetry import NO_SPANS, Spans
from quotaguard.ledger.base import check_idempotency_key

if TYPE_CHECKING:
    from quotaguard.engine.model import Violation
    from quotaguard.guard.core import BudgetGuard

__all__ = ["Admission"]


def _static_violations(estimate: Estimate, charges: tuple[Charge, ...]) -> tuple[Violation, ...]:
    """The estimate's own violations, and those that apply once the work draws on a budget."""
    return estimate.violations + estimate.if_charged if charges else estimate.violations


class Admission:
    """What ``guard.check`` and ``guard.submit`` run: the guard decides here."""

    def __init__(self, guard: BudgetGuard) -> None:
        self._guard = guard
        # The same work is priced into the same user budgets over and over: a Charge is
        # frozen, so one built (and validated) for an amount and unit serves every repeat.
        self._user_charges: dict[tuple[object, ...], Charge] = {}
        self._inflight: dict[
            str, tuple[object, tuple[str, ...], asyncio.Future[Submission[Any]]]
        ] = {}

    async def _unit_of(self, key: str, field: str) -> Unit:
        units = self._guard._budget_units
        if key not in units:
            try:
                units[key] = (await self._guard._ledger.get_budget(key)).unit
            except InvalidInput as exc:
                raise InvalidInput(field, exc.reason) from None
        return units[key]

    def _adapter_for(self, work: object) -> Adapter:
        for adapter in self._guard._adapters:
            if adapter.handles(work):
                return adapter
        kind = type(work).__name__
        raise InvalidInput(
            "work",
            f"no provider is configured for {kind}; pass ibm=IBMRuntimeClient(...) for IBMJob/"
            "IBMSession or braket=BraketClient(...) / prices=PriceTable(...) for BraketTask",
        )

    async def _estimate(self, work: object) -> tuple[Adapter, Estimate]:
        guard = self._guard
        adapter = self._adapter_for(work)
        serving = guard._events.serving()  # a provider refresh reports to this guard
        try:
            with money_context():  # provider arithmetic (remaining, prices) in our context
                estimate = await adapter.estimate(
                    work, now=guard._clock(), fail_open=guard.fail_mode == "open"
                )
        finally:
            guard._events.done_serving(serving)
        return adapter, estimate

    async def _charges(
        self, estimate: Estimate, budgets: tuple[str, ...], adapter: Adapter
    ) -> tuple[Charge, ...]:
        """Provider charges plus one per named user budget, converted where a price allows."""
        charges = list(estimate.charges)
        seen: set[str] = {c.budget for c in charges}
        converter = self._guard._converter
        # Only finite Decimals are memo keys (a signalling NaN cannot even be hashed).
        memoable = type(estimate.amount) is Decimal and estimate.amount.is_finite()
        for i, key in enumerate(budgets):
            if key in seen:
                raise InvalidInput(f"budgets[{i}]", f"budget {key!r} is named twice")
            seen.add(key)
            unit = self._guard._budget_units.get(key) or await self._unit_of(key, f"budgets[{i}]")
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

    async def check(self, work: object, named: tuple[str, ...]) -> Decision:
        """``guard.check`` once the budget keys are read: reserves nothing, sends nothing."""
        adapter, estimate = await self._estimate(work)
        charges = await self._charges(estimate, named, adapter)
        if static := _static_violations(estimate, charges):
            return Decision.reject(adapter.explain(work, static), charges)
        ledger = self._guard._ledger
        now = self._guard._clock()
        keys = {c.budget for c in charges}
        states = {k: await ledger.state(k, now=now) for k in keys}
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
        submit: Callable[[], Any] | Stamped,
        budgets: Iterable[str],
        idempotency_key: str | None,
    ) -> Submission[Any]:
        """``guard.submit``: its input checks, then one in-process flight per key."""
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
        mine: asyncio.Future[Submission[Any]] = asyncio.get_running_loop().create_future()
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
    ) -> Submission[Any]:
        tracer = self._guard._tracer
        if tracer is None:
            return await self._decide_and_send(work, submit, budgets, idempotency_key, NO_SPANS)
        token = _otel.using(tracer)  # the provider calls below trace to the guard's tracer
        try:
            with tracer.start_as_current_span("quotaguard.submit") as span:
                spans = Spans(tracer, span)
                return await self._decide_and_send(work, submit, budgets, idempotency_key, spans)
        finally:
            _otel.reset(token)

    async def _decide_and_send(
        self,
        work: object,
        submit: Callable[[], Any] | Stamped,
        budgets: tuple[str, ...],
        idempotency_key: str | None,
        spans: Spans,
    ) -> Submission[Any]:
        guard = self._guard
        events = guard._events
        started = time.perf_counter()
        with spans.step("estimate"):
            adapter, estimate = await self._estimate(work)
            charges = await self._charges(estimate, budgets, adapter)
        spans.set("provider", adapter.provider)
        if static := _static_violations(estimate, charges):
            refused = Decision.reject(adapter.explain(work, static), charges)
            spans.set("rules", [v.rule for v in refused.violations])
            events.rejected(refused, adapter.provider, started)
            raise BudgetExceeded(refused)
        if not charges:
            # Nothing metered and no user budget named: nothing to hold, nothing to check.
            unheld = submit.bind(None) if isinstance(submit, Stamped) else submit
            events.admitted(Decision(admitted=True), adapter.provider, estimate.fail_open, started)
            with spans.step("send"):
                result = await guard._sender.send_unheld(unheld)
            empty = Reservation(
                id="", charges=(), created_at=guard._clock(), lease_expires_at=guard._clock()
            )
            return Submission(
                empty, Decision(admitted=True), work, result, adapter.external_id(work, result)
            )
        with spans.step("reserve"):
            decision = await guard._ledger.reserve(
                charges, now=guard._clock(), lease=guard._lease, idempotency_key=idempotency_key
            )
        if not decision.admitted:
            explained = attrs.evolve(
                decision, violations=adapter.explain(work, decision.violations)
            )
            spans.set("rules", [v.rule for v in explained.violations])
            events.rejected(explained, adapter.provider, started)
            raise BudgetExceeded(explained)
        reservation = decision.reservation
        assert reservation is not None
        spans.set("reservation_id", reservation.id)
        if decision.replayed:
            return Submission(reservation, decision, work, None, reservation.external_id, True)
        events.admitted(decision, adapter.provider, estimate.fail_open, started)
        if isinstance(submit, Stamped):
            submit = submit.bind(reservation.id)
        with spans.step("send"):
            result = await guard._sender.send_held(submit, reservation, work, adapter)
        with spans.step("bind"):
            reservation, external_id = await guard._sender.bind_sent(
                reservation, work, adapter, result
            )
        return Submission(reservation, decision, work, result, external_id)
