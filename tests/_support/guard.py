"""A minimal provider adapter for the guard's provider-neutral tests.

It is a real implementation of the public ``Adapter`` protocol (the extension point for
custom providers), with state held in memory instead of behind HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import attrs

from quotaguard import Budget, Charge, Unit, Violation
from quotaguard.engine.model import Estimate
from quotaguard.errors import BudgetUnavailable, NotFound
from quotaguard.guard import BudgetGuard

__all__ = ["Job", "ToyAdapter", "Work", "add_toy_budget"]


@attrs.frozen
class Work:
    """Work the toy adapter guards: ``amount`` USD; ``bad`` work breaks the rule ``toy.bad``."""

    amount: Decimal
    bad: bool = False


@attrs.frozen
class Job:
    """What a toy send returns; an ``id`` starting ``toy-`` is one the adapter owns."""

    id: str


class ToyAdapter:
    """One USD budget (``key``), up or down (``available``); ``actuals`` by job id."""

    provider = "toy"
    unit = Unit.USD

    def __init__(self, key: str = "toy:device") -> None:
        self.key = key
        self.available = True
        self.actuals: dict[str, Decimal | None] = {}
        self.gone: set[str] = set()  # jobs the provider answers 404 for
        self.estimates = 0

    def handles(self, work: object) -> bool:
        return isinstance(work, Work)

    async def estimate(self, work: Work, *, now: datetime, fail_open: bool) -> Estimate:
        self.estimates += 1
        if not self.available and not fail_open:
            raise BudgetUnavailable("toy provider down", budget=self.key)
        violations = ()
        if work.bad:
            violations = (Violation("toy.bad", "work is bad; fix it", self.key),)
        charges = (Charge(self.key, work.amount, Unit.USD),) if self.available else ()
        return Estimate(charges, violations, work.amount, Unit.USD, True)

    def explain(self, work: Work, violations: Sequence[Violation]) -> tuple[Violation, ...]:
        return tuple(violations)

    def external_id(self, work: object, result: object) -> str | None:
        return result.id if isinstance(result, Job) else None

    def owns(self, external_id: str) -> bool:
        return external_id.startswith("toy-")

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        if external_id in self.gone:
            raise NotFound(f"no job {external_id}", provider="toy", status=404)
        return self.actuals.get(external_id)

    async def sync(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def add_toy_budget(guard: BudgetGuard, limit: str = "10") -> None:
    """The toy adapter's budget, ``limit`` USD."""
    await guard.add_budget(Budget("toy:device", Unit.USD, Decimal(limit)))
