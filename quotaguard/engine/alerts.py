"""Soft thresholds, pure: which alert levels a reserve crossed, and what the ledger keeps.

A budget's ``alert_levels`` are percents of its limit. A level is *met* when ``used`` (the
remaining-budget rule's, :func:`~quotaguard.engine.rules.used_micro`: committed in the
window plus held, with the provider floor) is at least that percent of the limit. Each
ledger keeps one *mark* per budget, changed in the same atomic step as the hold:

- ``epoch``: which window instance the mark belongs to (a calendar month's start, in epoch
  µs; 0 for the other windows, which have one instance);
- ``level``: the highest level reported in it (0: none).

An admitted reserve reports every level met after its hold and above the mark, then moves
the mark up, so across a fleet exactly one reserve reports each level. A new calendar month
starts from 0 again. A rolling window re-arms: a level above what the usage *before* the
reserve met comes down from the mark (spend aged out of the window), so it can be reported
again. Replacing a budget's limit, window or levels starts its mark from 0.

The memory and SQLite ledgers call :func:`crossing`; the Redis and PostgreSQL ledgers do the
same in Lua and PL/pgSQL, on the thresholds of :func:`thresholds` (exact integers).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from quotaguard.engine.amounts import from_micro, to_micro
from quotaguard.engine.model import Alert, Budget

__all__ = [
    "advance",
    "alert",
    "alert_epoch",
    "crossing",
    "levels_text",
    "parse_levels",
    "rearms",
    "thresholds",
]


@functools.lru_cache(maxsize=1024)
def thresholds(budget: Budget) -> tuple[tuple[int, int], ...]:
    """``(level, micro)`` per level: the least used micro-units that meet it (rounded up).

    Cached: every reserve on a budget with levels asks, and budgets rarely change.
    """
    limit = to_micro(budget.limit, round_up=False)
    return tuple((level, -(-level * limit // 100)) for level in budget.alert_levels)


def alert_epoch(budget: Budget, now: datetime) -> int:
    """The window instance a mark belongs to: a calendar month's start; 0 otherwise."""
    if budget.window.kind != "calendar_month":
        return 0
    start, _ = budget.window.bounds(now)
    assert start is not None
    return int(start.timestamp()) * 1_000_000  # 00:00 UTC on the 1st: whole seconds


def crossing(budget: Budget, mark: int, before: int, after: int) -> tuple[int, tuple[int, ...]]:
    """The new mark, and the levels crossed, for usage going from ``before`` to ``after``.

    ``mark`` is the stored level, already 0 if it belongs to another window instance.
    """
    levels = thresholds(budget)
    if budget.window.kind == "rolling_days":
        mark = min(mark, _met(levels, before))
    top = _met(levels, after)
    if top <= mark:
        return mark, ()
    return top, tuple(level for level, _ in levels if mark < level <= top)


def advance(
    budget: Budget, epoch: int, mark: int, before: int, after: int, now: datetime
) -> tuple[int, int, tuple[int, ...]]:
    """The stored ``(epoch, mark)`` after a reserve at ``now``, and the levels it crossed."""
    current = alert_epoch(budget, now)
    level, crossed = crossing(budget, mark if epoch == current else 0, before, after)
    return current, level, crossed


def rearms(old: Budget, new: Budget) -> bool:
    """Whether replacing ``old`` by ``new`` starts the mark from 0: another limit, window
    or set of levels."""
    return (old.limit, old.window, old.alert_levels) != (new.limit, new.window, new.alert_levels)


def _met(levels: Sequence[tuple[int, int]], used: int) -> int:
    met = 0
    for level, micro in levels:
        if used >= micro:
            met = level
    return met


def alert(budget: Budget, level: int, used: int) -> Alert:
    return Alert(budget.key, level, from_micro(used), budget.limit, budget.unit)


def levels_text(budget: Budget) -> str:
    """How the stores keep the levels: ``"50,80,95"`` (empty for none)."""
    return ",".join(str(level) for level in budget.alert_levels)


def parse_levels(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",")) if text else ()
