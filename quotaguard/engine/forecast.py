"""Burn-down forecast: when a budget runs out at the rate it has been spending.

Pure: the caller passes the budget's state at ``now`` and what was committed over the basis
span (:func:`forecast_basis`), read from the ledger (``Ledger.committed_between``).

- rate = spend *committed* over the last 7 days, or the window so far when shorter, ÷ that
  span. Outstanding holds count in ``used`` now but not in the rate (they are not spend yet).
- ETA = now + (limit − used) ÷ rate, compared with the window's reset: on track when the
  window resets first (or nothing was spent), else "runs out on DATE, N days before the reset".
- Rolling windows (and no window) have no reset. Spend ageing out of a rolling window would
  free budget again; the forecast ignores that, so its ETA is never later than the true one
  at the same rate (conservative).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import attrs

from quotaguard.engine.amounts import Unit, money_context
from quotaguard.engine.model import BudgetState

__all__ = ["BASIS", "Forecast", "forecast", "forecast_basis"]

#: The longest span the rate is measured over.
BASIS = timedelta(days=7)
_DAY_US = 86_400 * 10**6
# An ETA past this is "never" (and past what a datetime can hold soon after).
_HORIZON = timedelta(days=36_500)


def forecast_basis(state: BudgetState) -> datetime:
    """Where the rate's span starts: 7 days before ``state.at``, or the window's start if later."""
    start = state.at - BASIS
    if state.window_start is not None and state.window_start > start:
        return min(state.window_start, state.at)
    return start


@attrs.frozen
class Forecast:
    """One budget's burn-down at ``at``; ``runs_out_at`` ``None``: not at this rate."""

    key: str
    unit: Unit
    at: datetime
    limit: Decimal
    used: Decimal
    #: Committed spend over ``[basis_start, at]`` and its rate per day.
    committed: Decimal
    basis_start: datetime
    rate_per_day: Decimal
    runs_out_at: datetime | None
    resets_at: datetime | None

    @property
    def on_track(self) -> bool:
        """The budget lasts until its reset (or for ever at this rate)."""
        if self.runs_out_at is None:
            return True
        return self.resets_at is not None and self.runs_out_at >= self.resets_at

    @property
    def days_before_reset(self) -> int | None:
        """Whole days between running out and the reset, when it runs out first."""
        if self.on_track or self.resets_at is None or self.runs_out_at is None:
            return None
        return (self.resets_at - self.runs_out_at).days

    def line(self, label: str | None = None) -> str:
        """One line a person reads: ``<key>: on track …`` or ``<key>: runs out on …``.

        ``label`` names the budget instead of its key (a shortened ARN, say).
        """
        key = self.key if label is None else label
        rate = f"{_fmt(self.rate_per_day)} {self.unit.value}/day"
        reset = f", resets {self.resets_at.date().isoformat()}" if self.resets_at else ""
        if self.used >= self.limit:
            return f"{key}: exhausted ({_fmt(self.used)} of {_fmt(self.limit)} used{reset})"
        if self.runs_out_at is None:
            return f"{key}: on track (no committed spend since {_day(self.basis_start)})"
        if self.on_track:
            return f"{key}: on track at {rate}{reset}"
        when = f"{key}: runs out on {_day(self.runs_out_at)} at {rate}"
        if self.days_before_reset is None:
            return f"{when} (no reset)"
        return f"{when}, {self.days_before_reset} days before the reset ({_day(self.resets_at)})"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: amounts as strings, instants as ISO 8601."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "rate_per_day": str(self.rate_per_day),
            "committed": str(self.committed),
            "basis_start": iso(self.basis_start),
            "runs_out_at": iso(self.runs_out_at),
            "resets_at": iso(self.resets_at),
            "on_track": self.on_track,
            "days_before_reset": self.days_before_reset,
            "line": self.line(),
        }


def forecast(state: BudgetState, committed: Decimal) -> Forecast:
    """The forecast for ``state``, given the spend committed since :func:`forecast_basis`."""
    start = forecast_basis(state)
    span_us = _us(state.at - start)
    limit, used = state.budget.limit, state.used
    window = state.budget.window
    resets_at = state.window_end if window.kind in ("fixed", "calendar_month") else None
    with money_context():
        rate = committed * _DAY_US / span_us if span_us > 0 else Decimal(0)
        runs_out: datetime | None
        if used >= limit:
            runs_out = state.at
        elif committed <= 0 or span_us <= 0:
            runs_out = None
        else:
            # One division, floored to the microsecond: never later than the exact ETA.
            eta = ((limit - used) * span_us / committed).to_integral_value(ROUND_FLOOR)
            ahead = timedelta(microseconds=min(int(eta), _us(_HORIZON) + 1))
            runs_out = None if ahead > _HORIZON else state.at + ahead
    return Forecast(
        key=state.key,
        unit=state.budget.unit,
        at=state.at,
        limit=limit,
        used=used,
        committed=committed,
        basis_start=start,
        rate_per_day=rate,
        runs_out_at=runs_out,
        resets_at=resets_at,
    )


def _us(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 10**6 + span.microseconds


def _day(value: datetime | None) -> str:
    return "" if value is None else value.date().isoformat()


def _fmt(amount: Decimal) -> str:
    with money_context():
        return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_FLOOR):f}"
