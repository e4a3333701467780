"""The audit read: every reservation a ledger knows, page by page, filtered once, here.

A backend writes one primitive, ``_reservation_page(after, limit)``: about ``limit`` records
that come after the cursor ``after`` (``None``: from the start) in an order of the store's
own, with the cursor of the next page (``None``: that was the last). The SQL stores and
memory page by reservation id; Redis by ``SCAN`` cursor, which may give a record twice when
the keyspace rehashes mid-scan (``repeats``: the pages drop what they already gave).

The filter is applied here, the same on every backend: a reservation is in it when one of
its charges (held or actual) is on one of ``budgets``, and its life, from ``created_at`` to
``ended_at`` (still open while held), overlaps ``[since, until)``. A read only: nothing
expires, nothing is written, and rejections were never rows (they are events and metrics).
Pages are read one at a time, so a big ledger is never loaded at once; a record that
changes while the pages are read is seen as its page found it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime

import attrs

from quotaguard.engine.model import Reservation, check_key
from quotaguard.errors import InvalidInput
from quotaguard.ledger.checks import check_now

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "AuditFilter",
    "Page",
    "audit_filter",
    "by_id",
    "check_page_size",
    "read_pages",
]

DEFAULT_PAGE = 500
MAX_PAGE = 10_000

#: A primitive's answer: the page's records and the cursor of the next one.
Page = tuple[list[Reservation], str | None]


@attrs.frozen
class AuditFilter:
    """Which reservations an audit read yields (``None``: no bound on that side)."""

    budgets: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, reservation: Reservation) -> bool:
        if self.budgets is not None:
            charges = (*reservation.charges, *(reservation.actual or ()))
            if not any(c.budget in self.budgets for c in charges):
                return False
        if self.until is not None and reservation.created_at >= self.until:
            return False
        ended = reservation.ended_at
        return self.since is None or ended is None or ended >= self.since


def audit_filter(
    budgets: Sequence[str] | None, since: datetime | None, until: datetime | None
) -> AuditFilter:
    """The checked filter; bad input is :class:`InvalidInput` naming what to fix."""
    keys: frozenset[str] | None = None
    if budgets is not None:
        if isinstance(budgets, str) or not isinstance(budgets, Sequence):
            raise InvalidInput("budgets", "must be a list of budget keys, such as ['team:a']")
        keys = frozenset(check_key(k, "budgets") for k in budgets)
    if since is not None:
        check_now(since, "since")
    if until is not None:
        check_now(until, "until")
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            "until", f"must not be before since ({since.isoformat()}); swap or widen the span"
        )
    return AuditFilter(keys, since, until)


def check_page_size(page_size: object) -> int:
    if type(page_size) is not int or not 1 <= page_size <= MAX_PAGE:
        raise InvalidInput("page_size", f"must be an int in [1, {MAX_PAGE}], got {page_size!r}")
    return page_size


def by_id(page: list[Reservation], limit: int) -> Page:
    """A page read in id order after a cursor id: a full page may have one after it."""
    return page, page[-1].id if len(page) == limit else None


async def read_pages(
    fetch: Callable[[str | None, int], Awaitable[Page]],
    wanted: AuditFilter,
    page_size: int,
    *,
    repeats: bool = False,
) -> AsyncIterator[Reservation]:
    """Every record ``fetch`` pages through that ``wanted`` matches, each once."""
    seen: set[str] | None = set() if repeats else None
    cursor: str | None = None
    while True:
        page, cursor = await fetch(cursor, page_size)
        for reservation in page:
            if seen is not None:
                if reservation.id in seen:
                    continue
                seen.add(reservation.id)
            if wanted.matches(reservation):
                yield reservation
        if cursor is None:
            return
