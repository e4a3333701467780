"""The ledger protocol: what every backend offers, as callers type it.

:class:`~quotaguard.ledger.base.LedgerBase` implements each method once (its docstrings and
signatures are these, word for word); a backend writes only its primitives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Reservation
from quotaguard.ledger.retention import DEFAULT_RETENTION, Trimmed

__all__ = ["DEFAULT_LEASE", "Ledger", "TimeSourceName"]

DEFAULT_LEASE = timedelta(minutes=15)

#: What a ledger's constructor takes as ``time_source``.
TimeSourceName = Literal["caller", "system", "server"]


@runtime_checkable
class Ledger(Protocol):
    """Reservation storage: :class:`MemoryLedger`, :class:`SQLiteLedger`, ``RedisLedger``."""

    async def put_budget(self, budget: Budget) -> None:
        """Add a budget, or replace its limit and window (its unit only while unused)."""

    async def remove_budget(self, key: str) -> None:
        """Remove a budget that holds nothing; its commits still count if the key returns."""

    async def get_budget(self, key: str) -> Budget:
        """The budget stored under ``key``."""

    async def budgets(self) -> list[Budget]:
        """Every budget stored."""

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Hold every charge, or none, in one atomic check; a known key replays its hold."""

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        """End a reservation by recording what was spent (default: what it held)."""

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        """End a held reservation without spending; an ended one is returned as it is."""

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        """Move a held reservation's lease to ``now + lease``; an ended one is returned as it is."""

    async def renew_many(
        self, reservation_ids: Sequence[str], *, lease: timedelta, now: datetime
    ) -> list[Reservation]:
        """Renew every listed reservation still held, in one atomic step; the renewed ones."""

    async def expire(self, *, now: datetime) -> int:
        """End every held reservation whose lease ran out by ``now``; how many it ended."""

    async def bind(
        self, reservation_id: str, external_id: str, *, sent_at: datetime | None = None
    ) -> Reservation:
        """Record the job id or task ARN that a reservation's work got, and when it was sent."""

    async def mark_in_doubt(self, reservation_id: str, *, now: datetime) -> Reservation:
        """Mark a held reservation's work as maybe sent: its hold and its key stay."""

    async def get(self, reservation_id: str) -> Reservation:
        """The reservation with this id."""

    async def find_external(self, external_id: str) -> Reservation | None:
        """The reservation bound to this job id or task ARN, if any."""

    async def outstanding(self) -> list[Reservation]:
        """Every reservation still held."""

    async def in_doubt(self) -> list[Reservation]:
        """Every reservation still held whose work may have been sent."""

    async def lapsed(self) -> list[Reservation]:
        """Reservations that expired after their work may have been sent, not committed since."""

    def reservations(
        self,
        *,
        budgets: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Reservation]:
        """Each reservation on any of ``budgets`` alive in ``[since, until)``, page by page."""
        ...

    async def record_report(
        self,
        key: str,
        used: object,
        *,
        at: datetime,
        now: datetime | None = None,
        covers_sent: bool = False,
    ) -> None:
        """Store the provider's figure, read at ``at``; ``covers_sent``: it holds work sent."""

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        """Where a budget stands at ``now``: committed, held, reported and left."""

    async def committed_between(self, key: str, start: datetime, end: datetime) -> Decimal:
        """What was committed to ``key`` at commit instants in ``[start, end)``, any window."""

    async def trim(self, *, now: datetime, keep: timedelta = DEFAULT_RETENTION) -> Trimmed:
        """Forget ended reservations and commits no window counts, older than ``now - keep``."""

    async def aclose(self) -> None:
        """Release the ledger's connections and threads; safe to call twice."""
