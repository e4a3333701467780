"""Alert levels on a budget: what is accepted, and the crossing every ledger computes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaguard.engine import Budget, CalendarMonth, NoWindow, RollingDays, Unit
from quotaguard.engine.alerts import advance, alert_epoch, crossing, thresholds
from quotaguard.errors import InvalidInput
from tests._support.times import T0, utc


def test_levels_are_sorted_and_deduplicated() -> None:
    budget = Budget("a", Unit.USD, Decimal(10), alert_levels=[95, 50, 80, 50])
    assert budget.alert_levels == (50, 80, 95)
    assert Budget("a", Unit.USD, Decimal(10)).alert_levels == ()
    assert Budget("a", Unit.USD, Decimal(10), alert_levels=(1, 100)).alert_levels == (1, 100)


@pytest.mark.parametrize(
    "bad", [(0,), (101,), (-5,), (50.0,), (True,), ("80",), "80", 80, None, (Decimal(50),)]
)
def test_a_level_that_is_not_a_whole_percent_in_1_to_100_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        Budget("a", Unit.USD, Decimal(10), alert_levels=bad)  # type: ignore[arg-type]
    assert info.value.field == "alert_levels"
    assert "percent" in info.value.reason


def test_thresholds_are_the_least_used_micro_units_that_meet_each_level() -> None:
    # 1/3 of 0.000010 is 3.33 micro-units: 4 meets 33 %, 3 does not (never early, never late).
    budget = Budget("a", Unit.USD, Decimal("0.00001"), alert_levels=(33, 100))
    assert thresholds(budget) == ((33, 4), (100, 10))
    assert crossing(budget, 0, 0, 3) == (0, ())
    assert crossing(budget, 0, 3, 4) == (33, (33,))


def test_the_window_instance_of_a_mark_is_the_calendar_month_and_0_otherwise() -> None:
    month = Budget("a", Unit.USD, Decimal(10), CalendarMonth(), (50,))
    assert alert_epoch(month, T0) == alert_epoch(month, utc(2026, 3, 1, 0, 0))
    assert alert_epoch(month, utc(2026, 4, 1, 0, 0)) != alert_epoch(month, T0)
    assert alert_epoch(Budget("a", Unit.USD, Decimal(10), RollingDays(3), (50,)), T0) == 0
    # A mark of last month counts as nothing: the level is reported again.
    epoch, mark, _ = advance(month, 0, 0, 0, 6_000_000, T0)
    assert (mark, advance(month, epoch, mark, 0, 6_000_000, T0)[2]) == (50, ())
    assert advance(month, epoch, mark, 0, 6_000_000, utc(2026, 4, 2, 0, 0))[2] == (50,)


_steps = st.lists(st.integers(-30_000_000, 30_000_000), max_size=30)


@given(steps=_steps, rolling=st.booleans())
def test_a_level_is_reported_once_per_window_instance_or_once_per_re_arming(
    steps: list[int], rolling: bool
) -> None:
    # The oracle: a level is armed at first; reporting it disarms it; a rolling window re-arms
    # it when the usage before a reserve is under it. An armed level the usage after a reserve
    # meets is reported by that reserve, and nothing else is.
    window = RollingDays(1) if rolling else NoWindow()
    budget = Budget("a", Unit.USD, Decimal(100), window, (25, 50, 90))
    armed = dict.fromkeys(budget.alert_levels, True)
    used, mark, peak = 0, 0, 0
    for step in steps:
        before, used = used, max(0, used + step)
        peak = max(peak, used)
        for level, micro in thresholds(budget):
            if rolling and before < micro:
                armed[level] = True
        expected = tuple(lvl for lvl, micro in thresholds(budget) if armed[lvl] and used >= micro)
        mark, crossed = crossing(budget, mark, before, used)
        assert crossed == expected
        for level in crossed:
            armed[level] = False
    if not rolling:  # once each: every level the usage ever reached, and no other
        assert [lvl for lvl, armed_now in armed.items() if not armed_now] == [
            lvl for lvl, micro in thresholds(budget) if peak >= micro
        ]


@given(steps=st.lists(st.integers(0, 20_000_000), max_size=30))
def test_usage_that_only_rises_reports_each_level_it_reaches_exactly_once(
    steps: list[int],
) -> None:
    budget = Budget("a", Unit.USD, Decimal(100), NoWindow(), (25, 50, 90))
    used, mark, reported = 0, 0, []
    for step in steps:
        before, used = used, used + step
        mark, crossed = crossing(budget, mark, before, used)
        reported.extend(crossed)
    assert reported == [level for level, micro in thresholds(budget) if used >= micro]


def test_a_rolling_window_re_arms_a_level_the_usage_before_a_reserve_is_under() -> None:
    budget = Budget("a", Unit.USD, Decimal(100), RollingDays(7), (50, 80))
    assert crossing(budget, 0, 0, 85_000_000) == (80, (50, 80))
    assert crossing(budget, 80, 60_000_000, 85_000_000) == (80, (80,))  # 80 re-armed
    assert crossing(budget, 80, 85_000_000, 86_000_000) == (80, ())
    # A calendar month never re-arms within the month.
    month = Budget("a", Unit.USD, Decimal(100), CalendarMonth(), (50, 80))
    assert crossing(month, 80, 10_000_000, 85_000_000) == (80, ())
