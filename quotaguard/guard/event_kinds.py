"""The kinds of event the guard emits: frozen attrs values, each with a stable ``kind``.

:class:`~quotaguard.guard.events.Events` builds, logs and hands them out; this module only
says what each carries and how it reads as a log line. They carry budget keys, reservation
ids, job ids and amounts, never credentials.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

import attrs

__all__ = [
    "Admitted",
    "AlertCrossed",
    "Bound",
    "Event",
    "FailOpen",
    "InDoubt",
    "Lapsed",
    "LeasesRenewed",
    "ProviderRefreshed",
    "Rejected",
    "Settled",
]


@attrs.frozen(kw_only=True)
class Event:
    """The base of every event: ``kind`` (stable), ``at`` (the guard's clock)."""

    kind: ClassVar[str] = "event"
    level: ClassVar[int] = logging.INFO
    at: datetime

    def message(self) -> str:
        return self.kind

    def fields(self) -> dict[str, object]:
        """The ``extra=`` fields, JSON-ready (instants ISO 8601, amounts strings)."""
        out: dict[str, object] = {"qg_kind": self.kind}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f"qg_{field.name}"] = value
        return out


@attrs.frozen(kw_only=True)
class Admitted(Event):
    """Work was admitted and its charges held (before its send)."""

    kind: ClassVar[str] = "admitted"
    level: ClassVar[int] = logging.DEBUG
    reservation_id: str
    provider: str
    #: Budget key → amount held, in the budget's unit.
    amounts: dict[str, str] = attrs.field(hash=False)  # hashable by the rest

    def message(self) -> str:
        return f"admitted {self.reservation_id} ({self.provider}): held {self.amounts}"


@attrs.frozen(kw_only=True)
class AlertCrossed(Event):
    """A budget's usage reached one of its alert levels: one event per level per window,
    fleet-wide (the ledger's reserve reported it to this guard alone)."""

    kind: ClassVar[str] = "alert_crossed"
    level: ClassVar[int] = logging.WARNING
    budget: str
    #: The level crossed, in whole percents of the limit.
    alert_level: int
    #: Committed in the window plus held (the remaining-budget rule's), after the hold.
    used: Decimal
    limit: Decimal
    unit: str
    provider: str
    reservation_id: str

    def message(self) -> str:
        return (
            f"budget {self.budget!r} reached {self.alert_level}% of its limit: "
            f"{self.used} of {self.limit} {self.unit} used"
        )


@attrs.frozen(kw_only=True)
class Rejected(Event):
    """Work was refused before its send; ``rules`` holds each violated rule code."""

    kind: ClassVar[str] = "rejected"
    provider: str
    rules: tuple[str, ...]
    budgets: tuple[str, ...]
    #: Budget key → amount asked, in the budget's unit.
    requested: dict[str, str] = attrs.field(hash=False)  # hashable by the rest

    def message(self) -> str:
        return f"rejected ({self.provider}): {', '.join(self.rules)} on {list(self.budgets)}"


@attrs.frozen(kw_only=True)
class FailOpen(Event):
    """Work admitted without fresh provider state for ``budget`` (``fail_mode="open"``).

    Every one reaches subscribers; the log keeps one record per budget per interval, whose
    ``suppressed`` counts those admitted since the last record.
    """

    kind: ClassVar[str] = "fail_open"
    level: ClassVar[int] = logging.WARNING
    budget: str
    provider: str
    suppressed: int = 0

    def message(self) -> str:
        more = f" ({self.suppressed} more since the last record)" if self.suppressed else ""
        return f"{self.budget}: provider state unavailable; admitted (fail_mode=open){more}"


@attrs.frozen(kw_only=True)
class InDoubt(Event):
    """A hold whose send the guard could not see end: it stays held until resolved."""

    kind: ClassVar[str] = "in_doubt"
    level: ClassVar[int] = logging.WARNING
    reservation_id: str
    reason: str

    def message(self) -> str:
        return f"reservation {self.reservation_id} is in doubt ({self.reason})"


@attrs.frozen(kw_only=True)
class Bound(Event):
    """A hold was tied to the job id or task ARN its send returned."""

    kind: ClassVar[str] = "bound"
    level: ClassVar[int] = logging.DEBUG
    reservation_id: str
    external_id: str

    def message(self) -> str:
        return f"reservation {self.reservation_id} bound to {self.external_id}"


@attrs.frozen(kw_only=True)
class Settled(Event):
    """A hold ended in a commit: what was reserved against what was spent, per budget."""

    kind: ClassVar[str] = "settled"
    reservation_id: str
    external_id: str | None
    reserved: dict[str, str] = attrs.field(hash=False)  # hashable by the rest
    actual: dict[str, str] = attrs.field(hash=False)  # hashable by the rest

    def message(self) -> str:
        return f"settled {self.reservation_id}: reserved {self.reserved}, actual {self.actual}"


@attrs.frozen(kw_only=True)
class LeasesRenewed(Event):
    """One watcher pass renewed the leases that were due (one ledger call per batch)."""

    kind: ClassVar[str] = "leases_renewed"
    level: ClassVar[int] = logging.DEBUG
    due: int
    renewed: int

    def message(self) -> str:
        return f"renewed {self.renewed} of {self.due} due leases"


@attrs.frozen(kw_only=True)
class Lapsed(Event):
    """A hold whose lease ran out after its work may have been sent: its cost is owed."""

    kind: ClassVar[str] = "lapsed"
    level: ClassVar[int] = logging.WARNING
    reservation_id: str
    external_id: str | None
    lease_expired_at: datetime

    def message(self) -> str:
        return f"reservation {self.reservation_id} lapsed at {self.lease_expired_at.isoformat()}"


@attrs.frozen(kw_only=True)
class ProviderRefreshed(Event):
    """Provider state was fetched; ``age_seconds``: how old the state it replaced was."""

    kind: ClassVar[str] = "provider_refreshed"
    level: ClassVar[int] = logging.DEBUG
    source: str
    age_seconds: float | None

    def message(self) -> str:
        age = "first fetch" if self.age_seconds is None else f"was {self.age_seconds:g} s old"
        return f"{self.source}: provider state refreshed ({age})"
