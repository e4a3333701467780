"""What the guard did, as events: one log record each, and a feed applications subscribe to.

Every event is a frozen attrs value with a stable ``kind``. The guard hands each to
:class:`Events`, which logs it on the ``quotaguard.events`` logger (fields in ``extra=``,
each named ``qg_<field>``; see docs/events.md) and calls the subscribers
(``guard.on_event(callback)``, ``guard.events()``). Nothing is built when nobody listens:
the call sites ask :meth:`Events.wants` (a subscriber, or the logger enabled for the kind's
level) first. Events carry budget keys, reservation ids, job ids and amounts, never
credentials. The same call sites feed the guard's OpenTelemetry metrics (``telemetry``, a
:class:`~quotaguard.guard.telemetry.Recorder`, when the guard has one) from the values at
hand, not from built events.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from quotaguard.engine.model import BudgetState, Charge, Decision, Reservation
from quotaguard.errors import InvalidInput

if TYPE_CHECKING:
    from quotaguard.guard.telemetry import Recorder

__all__ = [
    "LOG_ONLY",
    "Admitted",
    "Bound",
    "Event",
    "EventStream",
    "Events",
    "FailOpen",
    "InDoubt",
    "Lapsed",
    "LeasesRenewed",
    "ProviderRefreshed",
    "Rejected",
    "Settled",
    "current",
]

log = logging.getLogger("quotaguard.events")


def _amounts(charges: Sequence[Charge]) -> dict[str, str]:
    return {c.budget: str(c.amount) for c in charges}


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


Callback = Callable[[Event], object]


class Events:
    """The guard's event hub: the logger, the subscribers, the fail-open rate limit and the
    metrics recorder."""

    #: At most one fail-open log record per budget per this interval (the guard's clock).
    fail_open_interval: timedelta = timedelta(minutes=1)
    #: The guard's metrics (None: none recorded, and nothing is done for them).
    telemetry: Recorder | None = None

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._subscribers: list[Callback] = []
        self._fail_open_logged: dict[str, tuple[datetime, int]] = {}

    @property
    def subscribed(self) -> bool:
        return bool(self._subscribers)

    def serving(self) -> contextvars.Token[Events | None] | None:
        """Make this hub the one provider refreshes report to (``None``: no one listens)."""
        return _CURRENT.set(self) if self._subscribers or self.telemetry else None

    @staticmethod
    def done_serving(token: contextvars.Token[Events | None] | None) -> None:
        if token is not None:
            _CURRENT.reset(token)

    def wants(self, level: int) -> bool:
        """Whether an event at ``level`` reaches anyone: ask before building it."""
        return bool(self._subscribers) or log.isEnabledFor(level)

    def on_event(self, callback: object) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns the function that unsubscribes."""
        if not callable(callback):
            raise InvalidInput("callback", "must be callable with one Event")
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def stream(self, maxsize: int = 1000) -> EventStream:
        """An async iterator of events from now on (``aclose()`` or ``async with`` ends it)."""
        return EventStream(self, maxsize)

    def emit(self, event: Event) -> None:
        """Log ``event`` and hand it to each subscriber; a subscriber's error is logged only."""
        logged: Event | None = event
        if isinstance(event, FailOpen):
            logged = self._rate_limited(event)
        if logged is not None and log.isEnabledFor(logged.level):
            log.log(logged.level, logged.message(), extra=logged.fields())
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:  # an application's alerting must never break admission
                log.warning("event subscriber %r failed on %s", callback, event.kind, exc_info=True)

    def _rate_limited(self, event: FailOpen) -> FailOpen | None:
        last = self._fail_open_logged.get(event.budget)
        if last is not None and event.at - last[0] < self.fail_open_interval:
            self._fail_open_logged[event.budget] = (last[0], last[1] + 1)
            return None
        self._fail_open_logged[event.budget] = (event.at, 0)
        return attrs.evolve(event, suppressed=last[1]) if last else event

    # -- the guard's call sites: each asks ``wants`` before building anything ---------------

    def admitted(
        self, decision: Decision, provider: str, fail_open: Sequence[str] = (), started: float = 0.0
    ) -> None:
        """``started``: ``time.perf_counter()`` when the decision began (its latency metric)."""
        if self.telemetry is not None:
            self.telemetry.admitted(decision, provider, fail_open, started)
        for budget in fail_open:  # before the level check: every one counts
            if self.wants(logging.WARNING):
                self.emit(FailOpen(at=self.clock(), budget=budget, provider=provider))
        if self.wants(Admitted.level) and decision.reservation is not None:
            self.emit(
                Admitted(
                    at=self.clock(),
                    reservation_id=decision.reservation.id,
                    provider=provider,
                    amounts=_amounts(decision.charges),
                )
            )

    def rejected(self, decision: Decision, provider: str, started: float = 0.0) -> None:
        if self.telemetry is not None:
            self.telemetry.rejected(decision, provider, started)
        if not self.wants(Rejected.level):
            return
        violations = decision.violations
        self.emit(
            Rejected(
                at=self.clock(),
                provider=provider,
                rules=tuple(v.rule for v in violations),
                budgets=tuple(dict.fromkeys(v.budget for v in violations if v.budget)),
                requested=_amounts(decision.charges),
            )
        )

    def in_doubt(self, reservation: Reservation, reason: str) -> None:
        if self.telemetry is not None:
            self.telemetry.marked_in_doubt()
        if self.wants(InDoubt.level):
            self.emit(InDoubt(at=self.clock(), reservation_id=reservation.id, reason=reason))

    def bound(self, reservation: Reservation) -> None:
        if self.wants(Bound.level) and reservation.external_id is not None:
            self.emit(
                Bound(
                    at=self.clock(),
                    reservation_id=reservation.id,
                    external_id=reservation.external_id,
                )
            )

    def settled(self, before: Reservation, after: Reservation) -> None:
        if self.telemetry is not None:
            self.telemetry.settled(before, after)
        if not self.wants(Settled.level) or after.actual is None:
            return
        self.emit(
            Settled(
                at=self.clock(),
                reservation_id=after.id,
                external_id=after.external_id,
                reserved=_amounts(before.charges),
                actual=_amounts(after.actual),
            )
        )

    def renewed(self, due: int, renewed: int) -> None:
        if due and self.wants(LeasesRenewed.level):
            self.emit(LeasesRenewed(at=self.clock(), due=due, renewed=renewed))

    def lapsed(self, reservations: Sequence[Reservation]) -> None:
        if reservations and self.wants(Lapsed.level):
            for r in reservations:
                self.emit(
                    Lapsed(
                        at=self.clock(),
                        reservation_id=r.id,
                        external_id=r.external_id,
                        lease_expired_at=r.lease_expires_at,
                    )
                )

    def refreshed(self, source: str, previous: datetime | None, now: datetime) -> None:
        if self.telemetry is not None:
            self.telemetry.refreshed(source, now)
        if self.wants(ProviderRefreshed.level):
            age = None if previous is None else (now - previous).total_seconds()
            self.emit(ProviderRefreshed(at=now, source=source, age_seconds=age))

    def states(self, states: Sequence[BudgetState], now: datetime) -> None:
        """Budget states just read (``status``, a watcher pass): the metrics' gauges."""
        if self.telemetry is not None:
            self.telemetry.states(states, now)

    def states_due(self, now: datetime) -> bool:
        """Whether a watcher pass should read budget states for the gauges."""
        return self.telemetry is not None and self.telemetry.states_due(now)


class EventStream(AsyncIterator[Event]):
    """Events as an async iterator, subscribed from creation; a full queue drops the newest
    (with a warning), so a slow reader never slows admission."""

    def __init__(self, events: Events, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)
        self._maxsize = maxsize
        self._closed = False
        self._dropped = 0
        self._unsubscribe = events.on_event(self._put)

    def _put(self, event: Event) -> None:
        if self._queue.qsize() < self._maxsize:  # one slot stays free for the end marker
            self._queue.put_nowait(event)
        else:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("event stream full: %d events dropped so far", self._dropped)

    @property
    def dropped(self) -> int:
        return self._dropped

    async def __anext__(self) -> Event:
        # Waits for the next event by design; aclose() ends the wait.
        event = None if self._closed and self._queue.empty() else await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        self._unsubscribe()
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


# Provider state is cached per adapter, below the guard: a refresh reports to the guard whose
# call caused it (set around the guard's provider calls while it has subscribers), else to
# the log alone.
_CURRENT: contextvars.ContextVar[Events | None] = contextvars.ContextVar(
    "quotaguard_events", default=None
)
LOG_ONLY = Events(lambda: datetime.now(UTC))


def current() -> Events:
    """The events of the guard whose call is running, or the log-only hub."""
    return _CURRENT.get() or LOG_ONLY
