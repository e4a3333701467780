"""The guard's contract with a provider (``Adapter``) and what it hands back (``Submission``).

Both are re-exported by ``quotaguard.guard``; they live here so the submission flow
(``guard``) and settlement (``_settlement``) can share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import attrs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Decision, Estimate, Reservation, Violation

__all__ = ["Adapter", "Submission"]


class Adapter(Protocol):
    """What the guard needs from a provider: estimates from cached state, job ids, actuals."""

    provider: str
    unit: Unit

    def handles(self, work: object) -> bool: ...
    async def estimate(self, work: Any, *, now: datetime, fail_open: bool) -> Estimate: ...
    def explain(self, work: Any, violations: Sequence[Violation]) -> tuple[Violation, ...]: ...
    def external_id(self, work: Any, result: object) -> str | None: ...
    def owns(self, external_id: str) -> bool: ...
    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None: ...
    async def sync(self) -> None: ...
    async def aclose(self) -> None: ...


@attrs.frozen
class Submission:
    """Admitted work: the reservation that holds its budget and what ``submit`` returned."""

    reservation: Reservation
    decision: Decision
    work: object
    result: object = None
    external_id: str | None = None
    #: True when an idempotency key matched earlier work: ``submit`` was not called again.
    replayed: bool = False

    @property
    def id(self) -> str:
        return self.reservation.id
