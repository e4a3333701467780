"""The remaining-budget rule, pure: every ledger gathers :class:`Usage` atomically and asks here.

    used      = max(committed_in_window + reserved,
                    provider_reported + committed_since_report + reserved − inside_report)
    remaining = limit − used

The provider floor makes a stale local view safe: whatever the provider last reported stays
counted, plus everything this ledger held or committed since. A report that *covers sent
work* (Braket's ``totalSpend + queuedSpend``: every task whose send completed before the read
started) already holds the outstanding holds sent before it (``inside_report``, a part of
``reserved``), and the commits of work sent before it; those are not counted again, and
"since" means work sent (or, unsent, committed) at or after the report. A report that does
not (IBM's usage: finished jobs, with a lag) holds none of them: ``inside_report`` is 0 and
"since" means committed at or after it. Since ``inside_report <= reserved``, ``used`` is
never below the report. When unsure, count twice: a budget guard may overcount, never
undercount. The Redis ledger's Lua script implements the
same formula; the shared state-machine tests hold both to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from quotaguard.engine.amounts import from_micro, to_micro
from quotaguard.engine.model import Budget, BudgetState, Charge, Violation
from quotaguard.engine.registry import Source, register
from quotaguard.errors import InvalidInput, UnknownBudget

__all__ = [
    "RULE_REMAINING",
    "RULE_WINDOW_CLOSED",
    "Usage",
    "check_charge_types",
    "check_charges",
    "evaluate",
    "not_a_charge",
    "report_counts",
    "state_of",
    "used_micro",
]

RULE_REMAINING = register(
    "budget.remaining",
    "The work's charge does not fit what a budget has left: limit minus committed and reserved, "
    "never less than the provider's last report plus what was held since.",
    source=Source.QUOTAGUARD,
    reference="DESIGN.md, Provider-neutral engine; the provider floor from Braket "
    "totalSpend + queuedSpend and IBM usage_consumed_seconds",
    action="Ask for less (fewer shots, a lower max_execution_time), wait for holds to settle, "
    "or raise the budget's limit.",
    numbers="amounts in micro-units, rounded up",
)
RULE_WINDOW_CLOSED = register(
    "budget.window.closed",
    "The budget has a fixed window [start, end) and it is now outside it.",
    source=Source.QUOTAGUARD,
    reference="DESIGN.md, windows: none, fixed, calendar month (UTC), rolling N days",
    action="Submit inside the window, or give the budget a window that contains now.",
)


@attrs.frozen
class Usage:
    """One budget's counters at one instant, in micro-units, as a ledger read them."""

    committed: int = 0
    reserved: int = 0
    reported: int | None = None
    since_report: int = 0
    outstanding: int = 0
    reported_at: datetime | None = None
    #: Outstanding holds whose work may have been sent (read for ``state``, not ``reserve``).
    in_doubt: int = 0
    #: The part of ``reserved`` already inside a report that covers sent work: held amounts
    #: of holds sent before ``reported_at`` (0 for a report that does not cover sent work).
    inside: int = 0
    #: Whether the report covers work sent before it (Braket) or only finished work (IBM).
    covers_sent: bool = False


def used_micro(usage: Usage) -> int:
    local = usage.committed + usage.reserved
    if usage.reported is None:
        return local
    return max(local, usage.reported + usage.since_report + usage.reserved - usage.inside)


def report_counts(budget: Budget, reported_at: datetime | None, now: datetime) -> bool:
    """A provider report counts only if it was taken inside the current window."""
    if reported_at is None:
        return False
    start, _ = budget.window.bounds(now)
    return start is None or reported_at >= start


def check_charges(
    charges: Sequence[Charge], budgets: Mapping[str, Budget], field: str = "charges"
) -> dict[str, int]:
    """Validate a charge set against known budgets; the micro-unit total per budget key."""
    if not charges:
        raise _no_charges(field)
    totals: dict[str, int] = {}
    for i, charge in enumerate(charges):
        if not isinstance(charge, Charge):
            raise not_a_charge(f"{field}[{i}]", charge)
        budget = budgets.get(charge.budget)
        if budget is None:
            raise UnknownBudget(f"{field}[{i}].budget", charge.budget)
        if charge.unit is not budget.unit:
            raise InvalidInput(
                f"{field}[{i}].unit",
                f"charge is in {charge.unit.value} but budget {budget.key!r} counts "
                f"{budget.unit.value}; convert it with a price first",
            )
        totals[charge.budget] = totals.get(charge.budget, 0) + to_micro(charge.amount)
    return totals


def check_charge_types(charges: Sequence[object], field: str = "charges") -> None:
    """The checks of :func:`check_charges` that need no budget: some charges, all of them
    :class:`Charge` values."""
    if not charges:
        raise _no_charges(field)
    for i, charge in enumerate(charges):
        if not isinstance(charge, Charge):
            raise not_a_charge(f"{field}[{i}]", charge)


def not_a_charge(field: str, value: object) -> InvalidInput:
    """The error for an item that should have been a :class:`Charge`."""
    return InvalidInput(field, f"expected a Charge, got {type(value).__name__}")


def _no_charges(field: str) -> InvalidInput:
    return InvalidInput(field, "at least one charge is required")


def _describe_window(budget: Budget) -> str:
    window = budget.window
    if window.kind == "none":
        return ""
    if window.kind == "calendar_month":
        return " this calendar month (UTC)"
    if window.kind == "rolling_days":
        return f" in the last {getattr(window, 'days', '?')} days"
    start = getattr(window, "start", None)
    end = getattr(window, "end", None)
    return f" in [{start}, {end})"


def evaluate(
    requested: Mapping[str, int],
    budgets: Mapping[str, Budget],
    usage: Mapping[str, Usage],
    now: datetime,
) -> list[Violation]:
    """Every violation of the remaining-budget rule; empty means the whole set fits."""
    violations: list[Violation] = []
    for key, amount in requested.items():
        budget = budgets[key]
        if not budget.window.contains(now):
            need = from_micro(amount)
            start, end = budget.window.bounds(now)
            violations.append(
                Violation(
                    rule=RULE_WINDOW_CLOSED,
                    message=(
                        f"budget {key!r} only admits work in [{start}, {end}); it is now {now}. "
                        "Move the window or submit inside it."
                    ),
                    budget=key,
                    requested=need,
                    remaining=None,
                    unit=budget.unit,
                )
            )
            continue
        left = to_micro(budget.limit, round_up=False) - used_micro(usage.get(key, Usage()))
        if amount > left:
            need = from_micro(amount)
            remaining = from_micro(max(left, 0))
            unit = budget.unit.value
            violations.append(
                Violation(
                    rule=RULE_REMAINING,
                    message=(
                        f"budget {key!r} has {remaining} {unit} left of {budget.limit} {unit}"
                        f"{_describe_window(budget)}; this work needs {need} {unit}"
                    ),
                    budget=key,
                    requested=need,
                    remaining=remaining,
                    unit=budget.unit,
                )
            )
    return violations


def state_of(budget: Budget, usage: Usage, now: datetime) -> BudgetState:
    used = used_micro(usage)
    start, end = budget.window.bounds(now)
    limit = to_micro(budget.limit, round_up=False)
    return BudgetState(
        budget=budget,
        at=now,
        committed=from_micro(usage.committed),
        reserved=from_micro(usage.reserved),
        used=from_micro(used),
        remaining=from_micro(max(limit - used, 0)),
        window_start=start,
        window_end=end,
        reported=None if usage.reported is None else from_micro(usage.reported),
        reported_at=usage.reported_at,
        outstanding=usage.outstanding,
        in_doubt=usage.in_doubt,
        inside_report=from_micro(usage.inside if usage.reported is not None else 0),
        covers_sent=usage.reported is not None and usage.covers_sent,
    )
