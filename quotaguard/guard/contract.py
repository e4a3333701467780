"""The guard's contract with a provider (``Adapter``) and what it hands back (``Submission``).

Both are re-exported by ``quotaguard.guard``; they live here so the submission flow
(``core``), sending (``sending``) and settlement (``settlement``) can share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar

import attrs

from quotaguard.engine.amounts import Unit
from quotaguard.engine.model import Decision, Estimate, Reservation, Violation

__all__ = ["Adapter", "Submission", "Work"]

#: What the send returned (``Submission[T].result``).
T = TypeVar("T")


class Work(Protocol):
    """Anything an adapter prices: the built-in ``IBMJob``/``IBMSession``/``BraketTask`` or a
    custom adapter's own type. The guard only compares it (a retried idempotency key must
    name equal work) and never looks inside, so any hashable value with equality will do."""

    def __eq__(self, other: object, /) -> bool: ...

    def __hash__(self) -> int: ...


class Adapter(Protocol):
    """What the guard needs from a provider: estimates from cached state, job ids, actuals."""

    #: A short name for messages and ``repr`` ("ibm", "braket").
    provider: str
    #: The unit the provider bills in; ``actual`` answers in it.
    unit: Unit

    def handles(self, work: object) -> bool:
        """Whether this adapter prices and settles ``work`` (the first that says yes does)."""
        ...

    async def estimate(self, work: Any, *, now: datetime, fail_open: bool) -> Estimate:
        """Charges and provider-side violations for ``work``, from cached provider state."""
        ...

    def explain(self, work: Any, violations: Sequence[Violation]) -> tuple[Violation, ...]:
        """The violations as the caller should read them, reworded to name a provider fix."""
        ...

    def external_id(self, work: Any, result: object) -> str | None:
        """The provider's job id in what ``submit`` returned, or None if there is none."""
        ...

    def owns(self, external_id: str) -> bool:
        """Whether ``external_id`` names a job of this provider."""
        ...

    async def actual(self, external_id: str, reserved: Decimal) -> Decimal | None:
        """What the job cost in ``unit``; None while it has not finished."""
        ...

    async def sync(self) -> None:
        """Refresh the cached provider state now."""
        ...

    async def aclose(self) -> None:
        """Let go of what the adapter holds (it never closes the client it was given)."""
        ...


@attrs.frozen
class Submission(Generic[T]):
    """Admitted work: the reservation that holds its budget and what ``submit`` returned
    (``result``: ``None`` only when ``replayed``, the send not called again)."""

    reservation: Reservation
    decision: Decision
    work: Work
    result: T | None = None
    external_id: str | None = None
    #: True when an idempotency key matched earlier work: ``submit`` was not called again.
    replayed: bool = False

    @property
    def id(self) -> str:
        return self.reservation.id
