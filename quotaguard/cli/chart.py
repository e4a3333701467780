"""What ``quotaguard report`` draws for a budget, and its terminal chart (no extra needed).

A :class:`Series` is one budget over its window (or the ``--since``/``--until`` span): the
committed spend added up at each commit instant (read from the audit rows, so nothing new
is stored), ``used`` now (commits, holds and the provider's figure, as ``status`` counts
it), the limit, and the forecast line from ``used`` now at the committed rate
(:mod:`quotaguard.engine.forecast`). The PNG/SVG (:mod:`.plot`) draws the same series.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from quotaguard.engine.amounts import money_context
from quotaguard.engine.forecast import BASIS, Forecast
from quotaguard.engine.model import BudgetState, Reservation, ReservationState

__all__ = ["Series", "forecast_at", "series_of", "series_start", "spent_on", "terminal_chart"]

_DAY = timedelta(days=1)


@attrs.frozen
class Series:
    """One budget's used-vs-limit picture from ``start`` to ``end`` (now is ``state.at``)."""

    state: BudgetState
    forecast: Forecast
    start: datetime
    end: datetime
    #: (commit instant, committed so far in the window), from ``start`` to now, in order.
    points: tuple[tuple[datetime, Decimal], ...]

    @property
    def key(self) -> str:
        return self.state.key

    @property
    def unit(self) -> str:
        return self.state.unit.value

    def committed_at(self, when: datetime) -> Decimal:
        """What the step line shows at ``when`` (up to now)."""
        value = Decimal(0)
        for at, total in self.points:
            if at > when:
                break
            value = total
        return value


def forecast_at(f: Forecast, when: datetime) -> Decimal:
    """The forecast line at ``when`` after its start: ``used`` now plus the rate since."""
    with money_context():
        days = Decimal((when - f.at) // timedelta(microseconds=1)) / Decimal(86_400 * 10**6)
        return f.used + f.rate_per_day * days


def spent_on(r: Reservation, key: str) -> tuple[datetime, Decimal] | None:
    """When and how much a committed reservation spent on budget ``key`` (``None``: nothing)."""
    if r.state is not ReservationState.COMMITTED or r.ended_at is None:
        return None
    with money_context():
        spent = sum((c.amount for c in r.actual or () if c.budget == key), Decimal(0))
    return (r.ended_at, spent) if spent else None


def series_of(
    state: BudgetState,
    forecast: Forecast,
    commits: Sequence[tuple[datetime, Decimal]],
    *,
    before: Decimal,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Series:
    """The series of ``state``'s budget from its ``commits`` (instant, amount; any order).

    ``before``: what the budget committed in its window before the series starts.
    """
    now = state.at
    start = series_start(state, since)
    end = until or state.window_end or now + max(now - start, _DAY)
    total, points = before, [(start, before)]
    with money_context():
        for at, spent in sorted(c for c in commits if start <= c[0] <= now):
            total += spent
            points.append((at, total))
    return Series(state, forecast, start, end, tuple(points))


def series_start(state: BudgetState, since: datetime | None) -> datetime:
    """Where a series starts: ``since``, else the window's start, else 7 days back."""
    return since or state.window_start or state.at - BASIS


def terminal_chart(s: Series, *, columns: int = 80, height: int = 10) -> list[str]:
    """The series in plain text, ``columns`` wide: ``●`` committed, ``·`` forecast (drawn up
    to the limit, where the budget runs out at that rate), ``─`` limit, ``│`` now."""
    now, limit, used = s.state.at, s.state.limit, s.state.used
    span = s.end - s.start
    top = max(limit, used) or Decimal(1)  # the forecast stops at the limit: never above
    label = max(len(_num(top)), len(_num(limit)))
    width = max(10, columns - label - len(" ┤") - len(" limit"))
    now_col = round((now - s.start) / span * (width - 1)) if s.start <= now <= s.end else None
    marks: list[tuple[int, Decimal, str]] = []
    for c in range(width):
        t = now if c == now_col else s.start + span * c / (width - 1)
        if t <= now:
            marks.append((c, s.committed_at(t), "●"))
        elif used < limit and (value := forecast_at(s.forecast, t)) <= limit:
            marks.append((c, value, "·"))

    def row(value: Decimal) -> int:
        return min(height - 1, max(0, round(float(value / top) * (height - 1))))

    grid = [[" "] * width for _ in range(height)]
    if now_col is not None:
        for line in grid:
            line[now_col] = "│"
    grid[row(limit)] = ["─"] * width
    for c, value, mark in marks:
        grid[row(value)][c] = mark
    ticks = {height - 1: _num(top), row(limit): _num(limit), 0: _num(Decimal(0))}
    lines = []
    for r in range(height - 1, -1, -1):
        suffix = " limit" if r == row(limit) else ""
        lines.append(f"{ticks.get(r, ''):>{label}} ┤{''.join(grid[r])}{suffix}")
    lines.append(" " * label + " └" + "─" * width)
    first, last = f"{s.start:%Y-%m-%d %H:%M}", f"{s.end:%Y-%m-%d %H:%M}"
    lines.append(" " * (label + 2) + first + last.rjust(width - len(first)))
    legend = f"● committed  · forecast  ─ limit  │ now ({now:%Y-%m-%d %H:%M} UTC)"
    lines.append(" " * (label + 2) + legend)
    return lines


def _num(value: Decimal) -> str:
    return f"{value:.2f}"
