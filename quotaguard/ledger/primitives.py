"""The primitives a ledger backend writes: one atomic step of its store each.

:class:`~quotaguard.ledger.base.LedgerBase` checks the input, calls one of these, and turns
its answer (a value, or a tag of :mod:`quotaguard.ledger.outcomes` saying why not) into what
the caller sees. Primitives receive checked input only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from quotaguard.engine.model import Budget, Charge, Reservation
from quotaguard.ledger.audit import Page
from quotaguard.ledger.outcomes import (
    ActualMismatch,
    Ahead,
    Alerted,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.retention import Trimmed

__all__ = ["Primitives"]


class Primitives:
    """What each backend overrides; every one here raises ``NotImplementedError``."""

    # ``now`` is the caller's (it dates windows, commits and ends); ``clock`` the ledger's
    # time for leases (``now`` itself for a store that reads its own clock).

    async def _put_budget(self, budget: Budget) -> UnitInUse | None:
        raise NotImplementedError

    async def _remove_budget(self, key: str) -> Refusal | None:
        """``NO_BUDGET`` or ``OUTSTANDING`` when it was not removed."""
        raise NotImplementedError

    async def _get_budget(self, key: str) -> Budget | Refusal:
        raise NotImplementedError

    async def _budgets(self) -> list[Budget]:
        raise NotImplementedError

    async def _reserve(
        self,
        charges: tuple[Charge, ...],
        now: datetime,
        lease: timedelta,
        key: str | None,
        clock: datetime,
    ) -> Reservation | Alerted | Rejected | Replayed | KeyConflict:
        """Expire due leases (a lapsed one frees its key), replay the key, or check and hold.

        A hold that crosses alert levels moves each budget's mark in the same step and
        answers :class:`Alerted` (:mod:`quotaguard.engine.alerts`).

        ``charges`` passed :func:`check_charge_types`; checking them against the budgets
        (:func:`~quotaguard.engine.rules.check_charges`) is part of the atomic step. The
        reservation is created at ``now``; its lease ends at ``clock + lease``.
        """
        raise NotImplementedError

    async def _commit(
        self, rid: str, actual: tuple[Charge, ...] | None, now: datetime
    ) -> Reservation | ActualMismatch | Refusal:
        """Record ``actual`` (``None``: the charges held), unless the reservation has ended."""
        raise NotImplementedError

    async def _release(self, rid: str, now: datetime) -> Reservation | Refusal:
        raise NotImplementedError

    async def _renew(
        self, rid: str, lease: timedelta, now: datetime, clock: datetime
    ) -> Reservation | Refusal:
        """Expire due leases first: a lapsed lease is not renewed."""
        raise NotImplementedError

    async def _renew_many(
        self, rids: list[str], lease: timedelta, now: datetime, clock: datetime
    ) -> list[Reservation]:
        """Expire due leases, then renew the listed ones still held (unknown ids skipped)."""
        raise NotImplementedError

    async def _expire(self, now: datetime, clock: datetime) -> int:
        raise NotImplementedError

    async def _bind(
        self, rid: str, external_id: str, sent_at: datetime | None
    ) -> Reservation | Refusal:
        """Rebinding replaces the old external id; binding an expired one makes it owed.

        Binding clears the doubt; ``sent_at`` ``None`` keeps the one recorded.
        """
        raise NotImplementedError

    async def _mark_in_doubt(self, rid: str, now: datetime) -> Reservation | Refusal:
        """A held reservation is in doubt since ``now`` (an earlier mark stays)."""
        raise NotImplementedError

    async def _get(self, rid: str) -> Reservation | Refusal:
        raise NotImplementedError

    async def _find_external(self, external_id: str) -> Reservation | None:
        raise NotImplementedError

    async def _outstanding(self) -> list[Reservation]:
        raise NotImplementedError

    async def _in_doubt(self) -> list[Reservation]:
        raise NotImplementedError

    async def _lapsed(self) -> list[Reservation]:
        raise NotImplementedError

    async def _record_report(
        self, key: str, micro: int, at: datetime, now: datetime | None, covers_sent: bool
    ) -> Refusal | Ahead | None:
        """Keep the report unless a newer one is stored; ``NO_BUDGET`` for an unknown key.

        Keeping a covering report recomputes the budget's ``inside`` (the held amounts of
        holds sent before ``at``) in the same atomic step; bind and the end of a hold keep it.

        A store that reads its own clock answers ``Ahead`` for a report dated past it (and
        checks the skew of ``now``, when given).
        """
        raise NotImplementedError

    async def _state(self, key: str, now: datetime, clock: datetime) -> Counters | Refusal:
        """Expire due leases, then read the budget's counters in its window at ``now``."""
        raise NotImplementedError

    async def _committed_between(self, key: str, start: int, end: int) -> int | Refusal:
        """Micro-units committed to ``key`` at epoch-µs instants in ``[start, end)``.

        ``NO_BUDGET`` for an unknown key. A read only: it expires nothing.
        """
        raise NotImplementedError

    async def _trim(self, now: datetime, cut: datetime, limit: int) -> tuple[Trimmed, bool]:
        """Forget at most ``limit`` records that :mod:`.retention` lets go before ``cut``.

        Whether more may be left (the base then calls again). Commits are folded into their
        budget's running total in the same atomic step that drops them.
        """
        raise NotImplementedError

    async def _reservation_page(self, after: str | None, limit: int) -> Page:
        """About ``limit`` records after the cursor ``after``, and the next page's cursor.

        ``after`` ``None``: the first page; a next cursor ``None``: no page after this one.
        The store's own stable order; no filter (the base applies it). A read only.
        """
        raise NotImplementedError
