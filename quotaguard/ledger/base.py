"""The ledger contract: what every backend keeps, the input checks, and the words of its errors.

A ledger stores budgets and reservations. ``reserve`` is one atomic check-and-hold across
every budget a charge set touches; the decision comes out of that atomic step. A
reservation ends exactly once (commit or release; a second call returns the first
outcome). The one exception is a commit after the lease *expired*: the work ran and its
cost is real, so it is recorded rather than lost. ``lapsed()`` lists the reservations still
owed that way: expired after their work may have been sent (bound to a job or task, or in
doubt), and not committed since. A hold is *in doubt* (``mark_in_doubt``) when the guard
cannot tell whether its work reached the provider: it stays held, is renewed and listed,
and keeps its idempotency key until it is bound, committed or released. The state table
itself is :mod:`quotaguard.engine.reservations`.

A backend subclasses :class:`LedgerBase` and writes its primitives (``_reserve``,
``_commit``, ...: one atomic step of the store each). The public methods here check the
input, call one primitive, and turn its answer into what the caller sees: a primitive
returns its value when it succeeds, or a tag of :mod:`quotaguard.ledger.outcomes` saying
why not, and every error is worded here, once, for memory, SQLite, Redis and any backend to
come. Primitives receive checked input only: aware instants, a valid lease, reservation ids
that are non-empty strings, charges that are :class:`Charge` values.

Time: lease expiry (``expire``, the sweep of due leases in ``reserve``, ``renew`` and
``state``, and the new end of a renewed lease) is judged by the ledger's ``time_source``
only: ``caller`` (the ``now`` each call passes), ``system`` (the machine's clock) or
``server`` (the store's, such as Redis ``TIME``, read inside the primitive). The caller's
``now`` still dates windows, reports, commits and releases. Where the ledger keeps its own
time, a caller ``now`` more than ``max_skew`` away from it is refused with
:class:`~quotaguard.errors.ClockSkew` before anything changes: one fast clock must not end
a fleet's leases. Primitives get the ledger's time as ``clock`` where they judge leases; a
store with a clock of its own reads it instead (and checks the skew in the same step).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard._aio import AsyncClosing
from quotaguard.engine.amounts import as_amount, from_micro, to_micro
from quotaguard.engine.model import Budget, BudgetState, Charge, Decision, Reservation, check_key
from quotaguard.engine.rules import state_of
from quotaguard.errors import (
    BudgetUnavailable,
    ClockSkew,
    InvalidInput,
    ReservationNotFound,
    UnknownBudget,
)
from quotaguard.ledger.audit import Page, audit_filter, check_page_size, read_pages
from quotaguard.ledger.checks import (
    DEFAULT_MAX_SKEW,
    MAX_RENEW_MANY,
    TimeSource,
    check_actual,
    check_given_actual,
    check_idempotency_key,
    check_lease,
    check_max_skew,
    check_now,
    check_reservation_id,
    check_reservation_ids,
    check_reserve,
    check_time_source,
    new_reservation_id,
)
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.outcomes import (
    OUTSTANDING,
    ActualMismatch,
    Ahead,
    Counters,
    KeyConflict,
    Refusal,
    Rejected,
    Replayed,
    UnitInUse,
)
from quotaguard.ledger.protocol import DEFAULT_LEASE, Ledger, TimeSourceName
from quotaguard.ledger.retention import DEFAULT_RETENTION, TRIM_BATCH, Trimmed, check_keep

# The checks, the encoding of instants and the protocol live in .checks, .encoding and
# .protocol; guard, CLI and tests import them from here, the contract's one address.
__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_SKEW",
    "MAX_RENEW_MANY",
    "Ledger",
    "LedgerBase",
    "TimeSource",
    "TimeSourceName",
    "check_actual",
    "check_idempotency_key",
    "check_lease",
    "check_now",
    "check_reserve",
    "epoch_us",
    "from_epoch_us",
    "new_reservation_id",
]


class LedgerBase(AsyncClosing):
    """The public methods of every backend: checks and wording here, storage in primitives.

    A primitive raises only what the engine words (``check_charges``, for charges against
    the budgets it read) or :class:`BudgetUnavailable`, for a store that failed (its
    :class:`ClockSkew`, from :meth:`_skewed`, for a store that reads its own clock).
    """

    #: Whose clock lease expiry reads (see the module's note on time).
    time_source: TimeSource = TimeSource.CALLER
    #: How far a caller's ``now`` may be from the ledger's own time.
    max_skew: timedelta = DEFAULT_MAX_SKEW
    #: The most records one step of :meth:`trim` forgets.
    trim_batch: int = TRIM_BATCH
    #: ``_reservation_page`` may give a record on two pages (Redis ``SCAN``).
    _pages_repeat = False

    def _use_time(
        self, time_source: object, max_skew: object, allowed: Sequence[TimeSource]
    ) -> None:
        """For constructors: check and keep the time source and the skew allowed."""
        self.time_source = check_time_source(time_source, allowed)
        self.max_skew = check_max_skew(max_skew)

    def _clock(self, now: datetime) -> datetime:
        """The ledger's time for a call dated ``now``: refused if too far from its own.

        A store that reads its own clock (``server``) gets ``now`` back, checks it itself.
        """
        if self.time_source is not TimeSource.SYSTEM:
            return now
        ledger_time = datetime.now(UTC)
        if abs(now - ledger_time) > self.max_skew:
            raise self._skewed(ledger_time, now)
        return ledger_time

    def _skewed(self, ledger_time: datetime, now: datetime) -> ClockSkew:
        return ClockSkew(ledger_time=ledger_time, caller_time=now, max_skew=self.max_skew)

    # -- budgets ----------------------------------------------------------------------------

    async def put_budget(self, budget: Budget) -> None:
        """Add a budget, or replace its limit and window (its unit only while unused)."""
        if not isinstance(budget, Budget):
            raise InvalidInput("budget", f"expected a Budget, got {type(budget).__name__}")
        refused = await self._put_budget(budget)
        if refused is not None:
            raise InvalidInput(
                "budget.unit",
                f"budget {budget.key!r} already counts {refused.unit.value}; "
                "use a new key for another unit",
            )

    async def remove_budget(self, key: str) -> None:
        """Remove a budget that holds nothing; its commits still count if the key returns."""
        check_key(key)
        refused = await self._remove_budget(key)
        if refused is OUTSTANDING:
            raise InvalidInput("key", f"budget {key!r} still has outstanding reservations")
        if refused is not None:
            raise UnknownBudget("key", key)

    async def get_budget(self, key: str) -> Budget:
        """The budget stored under ``key``."""
        check_key(key)
        found = await self._get_budget(key)
        if isinstance(found, Refusal):
            raise UnknownBudget("key", key)
        return found

    async def budgets(self) -> list[Budget]:
        """Every budget stored."""
        return await self._budgets()

    # -- reservations -----------------------------------------------------------------------

    async def reserve(
        self,
        charges: Sequence[Charge],
        *,
        now: datetime,
        lease: timedelta = DEFAULT_LEASE,
        idempotency_key: str | None = None,
    ) -> Decision:
        """Hold every charge, or none, in one atomic check; a known key replays its hold."""
        held, key = check_reserve(charges, now, lease, idempotency_key)
        outcome = await self._reserve(held, now, lease, key, self._clock(now))
        if type(outcome) is Reservation:  # the common case first
            return Decision(True, (), outcome, held)
        if isinstance(outcome, Rejected):
            return Decision.reject(outcome.violations, held)
        if isinstance(outcome, Replayed):
            existing = outcome.reservation
            return Decision(
                admitted=True, reservation=existing, charges=existing.charges, replayed=True
            )
        assert isinstance(outcome, KeyConflict)
        raise InvalidInput(
            "idempotency_key",
            f"key {key!r} was used for different charges (reservation {outcome.reservation_id})",
        )

    async def commit(
        self, reservation_id: str, actual: Sequence[Charge] | None = None, *, now: datetime
    ) -> Reservation:
        """End a reservation by recording what was spent (default: what it held)."""
        check_now(now)
        rid = check_reservation_id(reservation_id)
        given = check_given_actual(actual)
        if given is not None and not all(isinstance(c, Charge) for c in given):
            check_actual(given, await self.get(rid))  # type: ignore[arg-type]  # raises
        self._clock(now)
        outcome = await self._commit(rid, given, now)  # type: ignore[arg-type]  # all Charges
        if isinstance(outcome, ActualMismatch):
            check_actual(given, outcome.reservation)  # type: ignore[arg-type]  # raises
            raise BudgetUnavailable(
                f"{type(self).__name__} refused actual charges the engine accepts"
            )
        return _found(outcome, rid)

    async def release(self, reservation_id: str, *, now: datetime) -> Reservation:
        """End a held reservation without spending; an ended one is returned as it is."""
        check_now(now)
        rid = check_reservation_id(reservation_id)
        self._clock(now)
        return _found(await self._release(rid, now), rid)

    async def renew(self, reservation_id: str, *, lease: timedelta, now: datetime) -> Reservation:
        """Move a held reservation's lease to ``now + lease``; an ended one is returned as it is."""
        check_now(now)
        check_lease(lease)
        rid = check_reservation_id(reservation_id)
        return _found(await self._renew(rid, lease, now, self._clock(now)), rid)

    async def renew_many(
        self, reservation_ids: Sequence[str], *, lease: timedelta, now: datetime
    ) -> list[Reservation]:
        """Renew every listed reservation still held, in one atomic step; the renewed ones."""
        check_now(now)
        check_lease(lease)
        rids = check_reservation_ids(reservation_ids)
        return await self._renew_many(rids, lease, now, self._clock(now))

    async def expire(self, *, now: datetime) -> int:
        """End every held reservation whose lease ran out by ``now``; how many it ended."""
        check_now(now)
        return await self._expire(now, self._clock(now))

    async def bind(
        self, reservation_id: str, external_id: str, *, sent_at: datetime | None = None
    ) -> Reservation:
        """Record the job id or task ARN that a reservation's work got, and when it was sent."""
        if not isinstance(external_id, str) or not external_id:
            raise InvalidInput("external_id", "must be a non-empty str (a job id or task ARN)")
        if sent_at is not None:
            check_now(sent_at, "sent_at")
        rid = check_reservation_id(reservation_id)
        return _found(await self._bind(rid, external_id, sent_at), rid)

    async def mark_in_doubt(self, reservation_id: str, *, now: datetime) -> Reservation:
        """Mark a held reservation's work as maybe sent: its hold and its key stay."""
        check_now(now)
        rid = check_reservation_id(reservation_id)
        self._clock(now)
        return _found(await self._mark_in_doubt(rid, now), rid)

    async def get(self, reservation_id: str) -> Reservation:
        """The reservation with this id."""
        rid = check_reservation_id(reservation_id)
        return _found(await self._get(rid), rid)

    async def find_external(self, external_id: str) -> Reservation | None:
        """The reservation bound to this job id or task ARN, if any."""
        if not isinstance(external_id, str) or not external_id:
            return None  # nothing is ever bound to one
        return await self._find_external(external_id)

    async def outstanding(self) -> list[Reservation]:
        """Every reservation still held."""
        return await self._outstanding()

    async def in_doubt(self) -> list[Reservation]:
        """Every reservation still held whose work may have been sent."""
        return await self._in_doubt()

    async def lapsed(self) -> list[Reservation]:
        """Reservations that expired after their work may have been sent, not committed since."""
        return await self._lapsed()

    def reservations(
        self,
        *,
        budgets: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Reservation]:
        """Each reservation on any of ``budgets`` alive in ``[since, until)``, page by page."""
        # The audit read (ledger.audit): checked now, read as the caller iterates.
        wanted = audit_filter(budgets, since, until)
        size = check_page_size(page_size)
        return read_pages(self._reservation_page, wanted, size, repeats=self._pages_repeat)

    # -- provider reports and state ---------------------------------------------------------

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
        # ``used`` is the raw figure, ``at`` when its read started; an older report never
        # wins. ``covers_sent``: it holds all work whose send completed before ``at``
        # (Braket's totalSpend + queuedSpend), so holds bound with an earlier ``sent_at`` are
        # not counted again on top; without it (IBM's lagging usage) they all count on top.
        check_now(at, "at")
        micro = to_micro(as_amount(used, "used"))
        check_key(key)
        if type(covers_sent) is not bool:
            raise InvalidInput(
                "covers_sent",
                f"must be True or False (does the report hold work sent before it?), "
                f"got {type(covers_sent).__name__}",
            )
        # A report from the future would make every true report after it look older. A
        # store with its own clock checks ``at`` against it (and ``now``'s skew) itself.
        if now is not None:
            check_now(now)
            self._clock(now)
            if self.time_source is not TimeSource.SERVER and at - now > self.max_skew:
                raise _ahead(at, now, "the caller's now")
        if self.time_source is TimeSource.SYSTEM:
            ledger_time = datetime.now(UTC)
            if at - ledger_time > self.max_skew:
                raise _ahead(at, ledger_time, "the ledger's clock")
        refused = await self._record_report(key, micro, at, now, covers_sent)
        if isinstance(refused, Ahead):
            raise _ahead(at, refused.ledger_time, "the ledger's clock")
        if refused is not None:
            raise UnknownBudget("key", key)

    async def state(self, key: str, *, now: datetime) -> BudgetState:
        """Where a budget stands at ``now``: committed, held, reported and left."""
        check_now(now)
        check_key(key)
        found = await self._state(key, now, self._clock(now))
        if isinstance(found, Refusal):
            raise UnknownBudget("key", key)
        return state_of(found.budget, found.usage, now)

    async def committed_between(self, key: str, start: datetime, end: datetime) -> Decimal:
        """What was committed to ``key`` at commit instants in ``[start, end)``, any window."""
        # A read of the commits every backend already keeps sorted by time for its windows
        # (no write on the admission path): the burn-down forecast's rate (engine/forecast).
        # Holds are not commits and do not count; an unknown key is UnknownBudget.
        check_key(key)
        check_now(start, "start")
        check_now(end, "end")
        if end < start:
            raise InvalidInput("end", f"must not be before start ({start.isoformat()})")
        found = await self._committed_between(key, epoch_us(start), epoch_us(end))
        if isinstance(found, Refusal):
            raise UnknownBudget("key", key)
        return from_micro(found)

    async def trim(self, *, now: datetime, keep: timedelta = DEFAULT_RETENTION) -> Trimmed:
        """Forget ended reservations and commits no window counts, older than ``now - keep``."""
        # What goes and what stays, and why ``used`` never drops: ledger/retention.py. Steps
        # of at most ``trim_batch`` records each, so that no one step holds the store long.
        check_now(now)
        check_keep(keep)
        self._clock(now)
        try:
            cut = now - keep
        except OverflowError:
            return Trimmed()  # nothing is dated before year 1
        done = Trimmed()
        while True:
            step, more = await self._trim(now, cut, self.trim_batch)
            done += step
            if not more:
                return done

    async def aclose(self) -> None:  # pragma: no cover - overridden where there is I/O
        """Release the ledger's connections and threads; safe to call twice."""
        return None

    # -- the primitives: one atomic step of the store each ----------------------------------
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
    ) -> Reservation | Rejected | Replayed | KeyConflict:
        """Expire due leases (a lapsed one frees its key), replay the key, or check and hold.

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


def _ahead(at: datetime, reference: datetime, what: str) -> InvalidInput:
    return InvalidInput(
        "at",
        f"a report dated {at.isoformat()} is later than {what} ({reference.isoformat()}) "
        "by more than the skew allowed; date reports when they were read",
    )


def _found(outcome: Reservation | Refusal, rid: str) -> Reservation:
    if isinstance(outcome, Refusal):
        raise ReservationNotFound(rid)
    return outcome
