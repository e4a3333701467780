"""The burn-down forecast: exact on a constant rate; more spend never makes it later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from quotaguard.engine.amounts import Unit, from_micro
from quotaguard.engine.forecast import BASIS, forecast, forecast_basis
from quotaguard.engine.model import Budget, BudgetState
from quotaguard.engine.windows import CalendarMonth, FixedWindow, NoWindow, RollingDays, Window

NOW = datetime(2026, 12, 10, tzinfo=UTC)


def _state(window: Window, limit: Decimal, committed: Decimal, reserved: Decimal) -> BudgetState:
    budget = Budget("team:q", Unit.USD, limit, window)
    start, end = window.bounds(NOW)
    used = committed + reserved
    return BudgetState(
        budget, NOW, committed, reserved, used, max(limit - used, Decimal(0)), start, end
    )


def test_constant_rate_is_exact_and_names_the_days_before_the_reset() -> None:
    # 10 USD/day since Dec 1 (9 days, all inside the 7-day basis at the same rate): 90 used,
    # 210 of 300 left → 21 days → Dec 31, one day before the Jan 1 reset.
    state = _state(CalendarMonth(), Decimal(300), Decimal(90), Decimal(0))
    assert forecast_basis(state) == NOW - BASIS
    f = forecast(state, Decimal(70))  # 7 days at 10/day
    assert f.rate_per_day == 10
    assert f.runs_out_at == datetime(2026, 12, 31, tzinfo=UTC)
    assert not f.on_track and f.days_before_reset == 1
    assert f.line() == (
        "team:q: runs out on 2026-12-31 at 10.00 USD/day, 1 days before the reset (2027-01-01)"
    )


def test_holds_count_in_used_but_not_in_the_rate() -> None:
    held = _state(CalendarMonth(), Decimal(300), Decimal(90), Decimal(40))
    f = forecast(held, Decimal(70))
    assert f.rate_per_day == 10
    assert f.runs_out_at == datetime(2026, 12, 27, tzinfo=UTC)  # 170 left at 10/day


def test_window_shorter_than_seven_days_is_the_basis() -> None:
    window = FixedWindow(NOW - timedelta(days=2), NOW + timedelta(days=30))
    state = _state(window, Decimal(100), Decimal(10), Decimal(0))
    assert forecast_basis(state) == NOW - timedelta(days=2)
    f = forecast(state, Decimal(10))
    assert f.rate_per_day == 5 and f.runs_out_at == NOW + timedelta(days=18)
    assert f.resets_at == NOW + timedelta(days=30) and not f.on_track


def test_on_track_no_spend_exhausted_and_no_reset() -> None:
    slow = forecast(_state(CalendarMonth(), Decimal(1000), Decimal(9), Decimal(0)), Decimal(7))
    assert slow.on_track and slow.line() == ("team:q: on track at 1.00 USD/day, resets 2027-01-01")
    idle = forecast(_state(NoWindow(), Decimal(10), Decimal(0), Decimal(0)), Decimal(0))
    assert idle.runs_out_at is None and idle.on_track and "no committed spend" in idle.line()
    full = forecast(_state(NoWindow(), Decimal(10), Decimal(10), Decimal(0)), Decimal(1))
    assert full.runs_out_at == NOW and not full.on_track and "exhausted" in full.line()
    rolling = forecast(_state(RollingDays(28), Decimal(100), Decimal(30), Decimal(0)), Decimal(7))
    # Rolling: no reset, spend ageing out ignored → runs out in 70 days, said plainly.
    assert rolling.resets_at is None and rolling.runs_out_at == NOW + timedelta(days=70)
    assert rolling.line().endswith("(no reset)")
    json = rolling.to_dict()
    assert json["runs_out_at"] == (NOW + timedelta(days=70)).isoformat()
    assert json["rate_per_day"] == "1" and json["on_track"] is False


_micro = st.integers(min_value=1, max_value=10**12)


@given(
    limit=_micro,
    committed=st.integers(min_value=0, max_value=10**12),
    older=st.integers(min_value=0, max_value=10**12),
    extra=_micro,
    window=st.sampled_from([NoWindow(), CalendarMonth(), RollingDays(3), RollingDays(30)]),
)
def test_more_spend_at_the_same_times_never_moves_the_eta_later(
    limit: int, committed: int, older: int, extra: int, window: Window
) -> None:
    # ``committed`` is spent inside the basis, ``older`` before it (in used, not in the rate);
    # ``extra`` more inside the basis raises both.
    def eta(inside: int) -> datetime:
        state = _state(window, from_micro(limit), from_micro(inside + older), Decimal(0))
        f = forecast(state, from_micro(inside))
        return f.runs_out_at or datetime.max.replace(tzinfo=UTC)

    assert eta(committed + extra) <= eta(committed)


@given(
    per_day=st.integers(min_value=1, max_value=10**9),
    days_left=st.integers(min_value=1, max_value=3650),
)
def test_exact_on_any_constant_rate(per_day: int, days_left: int) -> None:
    rate = from_micro(per_day)
    spent = rate * 7
    state = _state(NoWindow(), spent + rate * days_left, spent, Decimal(0))
    f = forecast(state, spent)
    assert f.rate_per_day == rate
    assert f.runs_out_at == NOW + timedelta(days=days_left)
