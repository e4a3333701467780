"""The engine's value types: frozen, slotted, validated on construction."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

import attrs

from quotaguard.engine.amounts import Unit, as_amount, money_context
from quotaguard.engine.windows import NoWindow, Window, check_aware
from quotaguard.errors import InvalidInput

__all__ = [
    "Alert",
    "Budget",
    "BudgetState",
    "Charge",
    "Decision",
    "Estimate",
    "Reservation",
    "ReservationState",
    "Violation",
    "check_alert_levels",
    "check_key",
]

# Matched whole (fullmatch): `$` would also match before a trailing newline. The class
# leaves out spaces and every control character.
_KEY = re.compile(r"[\x21-\x7e]{1,512}")


def check_key(key: object, field: str = "key") -> str:
    """Budget keys are 1–512 printable ASCII characters without spaces (``braket:arn:…``)."""
    if type(key) is str and key in _KNOWN_KEYS:
        return key
    if not isinstance(key, str):
        raise InvalidInput(field, f"budget key must be a str, got {type(key).__name__}")
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            field,
            f"budget key {key!r} must be 1-512 printable ASCII characters without spaces "
            "(e.g. 'team:research')",
        )
    if type(key) is str:  # not a subclass, whose __eq__/__hash__ could lie
        if len(_KNOWN_KEYS) >= 4096:
            _KNOWN_KEYS.clear()  # bounded; the keys in use come back at once
        _KNOWN_KEYS.add(key)
    return key


# Keys already found valid: every charge names one, and the regex is the slow part.
_KNOWN_KEYS: set[str] = set()


def _limit(value: object) -> Decimal:
    return as_amount(value, "limit")


def _charge_budget(value: object) -> str:
    return check_key(value, "charge.budget")


def _charge_amount(value: object) -> Decimal:
    return as_amount(value, "charge.amount")


def _charge_unit(value: object) -> Unit:
    return Unit.parse(value, "charge.unit")


def _budget_key(value: object) -> str:
    return check_key(value, "key")


def _unit(value: object) -> Unit:
    return Unit.parse(value, "unit")


def _window(value: object) -> Window:
    from quotaguard.engine.windows import CalendarMonth, FixedWindow, RollingDays

    if not isinstance(value, (NoWindow, FixedWindow, CalendarMonth, RollingDays)):
        raise InvalidInput("window", f"unknown window {value!r}")
    return value


def check_alert_levels(value: object, field: str = "alert_levels") -> tuple[int, ...]:
    """Alert levels: whole percents of the limit in 1-100, sorted, each once."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidInput(
            field, f"must be a sequence of whole percents such as (80, 95), got {value!r}"
        )
    levels = tuple(value)
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 100:
            raise InvalidInput(
                field, f"each level must be a whole percent of the limit in 1-100, got {level!r}"
            )
    return tuple(sorted(set(levels)))


@attrs.frozen
class Budget:
    """A limit on one key, in one unit, over one window.

    ``alert_levels``: percents of the limit (1-100) whose crossing the ledger reports once
    per window (:class:`Alert`, docs/budgets.md); they never refuse anything.
    """

    key: str = attrs.field(converter=_budget_key)
    unit: Unit = attrs.field(converter=_unit)
    limit: Decimal = attrs.field(converter=_limit)
    window: Window = attrs.field(factory=NoWindow, converter=_window)
    alert_levels: tuple[int, ...] = attrs.field(default=(), converter=check_alert_levels)


@attrs.frozen
class Alert:
    """A budget's usage reached ``level`` percent of its limit: reported once per crossing.

    ``used`` is what the remaining-budget rule counts (committed in the window plus held,
    never below the provider's report plus what was held since), just after the reserve
    that crossed.
    """

    budget: str
    level: int
    used: Decimal
    limit: Decimal
    unit: Unit


@attrs.frozen
class Charge:
    """An amount that a piece of work draws on one budget."""

    budget: str = attrs.field(converter=_charge_budget)
    amount: Decimal = attrs.field(converter=_charge_amount)
    unit: Unit = attrs.field(converter=_charge_unit)


@attrs.frozen
class Violation:
    """One broken rule: a stable ``rule`` code and a message a person can act on."""

    rule: str
    message: str
    budget: str | None = None
    requested: Decimal | None = None
    remaining: Decimal | None = None
    unit: Unit | None = None


class ReservationState(enum.StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


@attrs.frozen
class Reservation:
    """Budget held for one piece of work until it is committed, released or its lease expires."""

    id: str
    charges: tuple[Charge, ...]
    created_at: datetime
    lease_expires_at: datetime
    state: ReservationState = ReservationState.HELD
    idempotency_key: str | None = None
    actual: tuple[Charge, ...] | None = None
    ended_at: datetime | None = None
    external_id: str | None = None
    #: When the send completed, as recorded at bind: a provider report read after it
    #: already contains this work.
    sent_at: datetime | None = None
    #: Set when the guard cannot know whether the work was sent (cancelled or timed out
    #: mid-send, a lost reply, sent but not bound): the hold stays and keeps its key.
    in_doubt_since: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.state is not ReservationState.HELD

    @property
    def in_doubt(self) -> bool:
        """Whether its work may have been sent, unbound, and its cost is not recorded yet."""
        return self.in_doubt_since is not None and self.state in _UNSETTLED

    def amount_for(self, budget: str) -> Decimal:
        with money_context():
            return sum((c.amount for c in self.charges if c.budget == budget), Decimal(0))


_UNSETTLED = (ReservationState.HELD, ReservationState.EXPIRED)


@attrs.frozen
class Decision:
    """The answer to "does this fit?". Admitted decisions from a ledger carry the reservation."""

    admitted: bool
    violations: tuple[Violation, ...] = ()
    reservation: Reservation | None = None
    charges: tuple[Charge, ...] = ()
    #: True when an idempotency key matched an earlier reservation: nothing new was held.
    replayed: bool = False
    #: Alert levels this reserve crossed, reported to this caller only (once per crossing),
    #: by budget key, then level.
    alerts: tuple[Alert, ...] = ()

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(v.rule for v in self.violations)

    @classmethod
    def reject(cls, violations: Iterable[Violation], charges: Iterable[Charge] = ()) -> Decision:
        return cls(admitted=False, violations=tuple(violations), charges=tuple(charges))


@attrs.frozen
class BudgetState:
    """Where a budget stands at ``at``: what is committed, held, reported and left."""

    budget: Budget
    at: datetime
    committed: Decimal
    reserved: Decimal
    used: Decimal
    remaining: Decimal
    window_start: datetime | None
    window_end: datetime | None
    reported: Decimal | None = None
    reported_at: datetime | None = None
    outstanding: int = 0
    #: How many of the outstanding holds are in doubt (their work may have been sent).
    in_doubt: int = 0
    #: Of ``reserved``, what the provider's last report already counts (holds sent before a
    #: report that covers sent work, such as Braket's queued spend): counted once, not twice.
    inside_report: Decimal = Decimal(0)
    #: Whether that report covers work sent before it (Braket) or finished work only (IBM).
    covers_sent: bool = False

    @property
    def key(self) -> str:
        return self.budget.key

    @property
    def limit(self) -> Decimal:
        return self.budget.limit

    @property
    def unit(self) -> Unit:
        return self.budget.unit


def sum_by_budget(charges: Iterable[Charge]) -> Mapping[str, Decimal]:
    """Total per budget key, in the order keys first appear."""
    totals: dict[str, Decimal] = {}
    with money_context():
        for charge in charges:
            totals[charge.budget] = totals.get(charge.budget, Decimal(0)) + charge.amount
    return totals


def check_now(now: object) -> datetime:
    return check_aware(now, "now")


@attrs.frozen
class Estimate:
    """What a provider rule made of one piece of work: the charges it would draw and the
    static violations (bad options, payload too big) found before any budget is consulted."""

    charges: tuple[Charge, ...] = ()
    violations: tuple[Violation, ...] = ()
    #: The provider amount (seconds for IBM, USD for Braket), for converting into user budgets.
    amount: Decimal = Decimal(0)
    unit: Unit = Unit.USD
    #: Whether the work draws on the provider's limits (QPU) or not (simulators).
    metered: bool = True
    #: Violations that apply only if the work draws on some budget (a simulator task with no
    #: declared run time: nothing bounds its cost, which matters only where it is charged).
    if_charged: tuple[Violation, ...] = ()
    #: Provider budgets admitted without fresh state (``fail_mode="open"``): an event each.
    fail_open: tuple[str, ...] = ()
