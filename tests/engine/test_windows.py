"""Window arithmetic, and that only spend inside the current window counts (through a ledger)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.engine import (
    RULE_REMAINING,
    RULE_WINDOW_CLOSED,
    Budget,
    CalendarMonth,
    FixedWindow,
    NoWindow,
    RollingDays,
    Unit,
    Window,
    window_from_dict,
    window_to_dict,
)
from quotaguard.errors import InvalidInput
from quotaguard.ledger import Ledger
from tests._support.ledger import FACTORIES, ledger_params, usd
from tests._support.times import utc

# -- calendar months ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2026, 1, 31, 23, 59, 59, 999999), utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 2, 1), utc(2026, 2, 1), utc(2026, 3, 1)),
        (utc(2026, 2, 28, 23, 59), utc(2026, 2, 1), utc(2026, 3, 1)),
        (utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 1), utc(2027, 1, 1)),
        (utc(2027, 1, 1), utc(2027, 1, 1), utc(2027, 2, 1)),
        (utc(2028, 2, 29, 12), utc(2028, 2, 1), utc(2028, 3, 1)),  # leap day
        (utc(2026, 4, 30, 23), utc(2026, 4, 1), utc(2026, 5, 1)),
    ],
)
def test_calendar_month_bounds(now: datetime, start: datetime, end: datetime) -> None:
    assert CalendarMonth().bounds(now) == (start, end)
    assert CalendarMonth().contains(now)


def test_calendar_month_is_utc_whatever_the_callers_zone() -> None:
    # 00:30 on Feb 1 in UTC+1 is still January in UTC.
    plus_one = timezone(timedelta(hours=1))
    assert CalendarMonth().bounds(datetime(2026, 2, 1, 0, 30, tzinfo=plus_one)) == (
        utc(2026, 1, 1),
        utc(2026, 2, 1),
    )
    # 20:00 on Dec 31 in UTC-5 is already the new year in UTC.
    minus_five = timezone(timedelta(hours=-5))
    assert CalendarMonth().bounds(datetime(2026, 12, 31, 20, tzinfo=minus_five)) == (
        utc(2027, 1, 1),
        utc(2027, 2, 1),
    )


# -- rolling and fixed windows --------------------------------------------------------------


def test_rolling_days_reaches_back_exactly_n_days_across_a_leap_day() -> None:
    now = utc(2028, 3, 1, 6)
    assert RollingDays(1).bounds(now) == (utc(2028, 2, 29, 6), None)
    assert RollingDays(28).bounds(now) == (utc(2028, 2, 2, 6), None)
    assert RollingDays(366).bounds(now) == (utc(2027, 3, 1, 6), None)
    assert RollingDays(28).contains(now)


def test_fixed_window_is_half_open() -> None:
    window = FixedWindow(utc(2026, 1, 1), utc(2026, 2, 1))
    assert window.bounds(utc(2030, 1, 1)) == (utc(2026, 1, 1), utc(2026, 2, 1))
    assert window.contains(utc(2026, 1, 1))
    assert window.contains(utc(2026, 1, 31, 23, 59, 59, 999999))
    assert not window.contains(utc(2026, 2, 1))
    assert not window.contains(utc(2025, 12, 31, 23, 59, 59, 999999))


def test_no_window_is_open_on_both_sides() -> None:
    assert NoWindow().bounds(utc(2026, 1, 1)) == (None, None)
    assert NoWindow().contains(utc(1999, 1, 1))


# -- bad windows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (datetime(2026, 1, 1), utc(2026, 2, 1), "window.start"),
        (utc(2026, 1, 1), datetime(2026, 2, 1), "window.end"),
        ("2026-01-01", utc(2026, 2, 1), "window.start"),
        (utc(2026, 1, 1), utc(2026, 1, 1), "window.end"),  # empty
        (utc(2026, 2, 1), utc(2026, 1, 1), "window.end"),  # reversed
    ],
)
def test_bad_fixed_windows_name_the_field(start: object, end: object, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        FixedWindow(start, end)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_naive_datetimes_say_how_to_fix_them() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        FixedWindow(datetime(2026, 1, 1), utc(2026, 2, 1))


@pytest.mark.parametrize(
    ("days", "match"), [(0, "empty"), (-3, "empty"), (36_501, "36500"), (True, "int"), (1.5, "int")]
)
def test_bad_rolling_windows_name_the_field(days: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        RollingDays(days)  # type: ignore[arg-type]
    assert info.value.field == "window.days"


def test_budget_refuses_something_that_is_not_a_window() -> None:
    with pytest.raises(InvalidInput) as info:
        Budget("team:a", Unit.USD, Decimal(1), "monthly")  # type: ignore[arg-type]
    assert info.value.field == "window"


# -- serialisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window",
    [
        NoWindow(),
        CalendarMonth(),
        RollingDays(28),
        FixedWindow(utc(2026, 1, 1), utc(2026, 2, 1, 12, 30)),
    ],
)
def test_window_dict_round_trip(window: Window) -> None:
    assert window_from_dict(window_to_dict(window)) == window


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "weekly"}, "window.kind"),
        ({}, "window.kind"),
        ({"kind": "rolling_days", "days": "28"}, "window.days"),
        ({"kind": "rolling_days", "days": 0}, "window.days"),
        ({"kind": "fixed", "start": "2026-01-01T00:00:00+00:00"}, "window"),
        ({"kind": "fixed", "start": "yesterday", "end": "today"}, "window"),
        ({"kind": "fixed", "start": "2026-01-01", "end": "2026-02-01"}, "window.start"),
    ],
)
def test_window_from_bad_dicts(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        window_from_dict(data)
    assert info.value.field == field


# -- only spend inside the current window counts --------------------------------------------


@pytest.fixture(params=ledger_params())
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    async with FACTORIES[request.param](request, tmp_path) as opened:
        yield opened


async def spend(ledger: Ledger, key: str, amount: str, at: datetime) -> None:
    decision = await ledger.reserve([usd(key, amount)], now=at)
    assert decision.reservation is not None, decision.violations
    await ledger.commit(decision.reservation.id, now=at)


async def test_calendar_month_forgets_last_month(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("m", Unit.USD, Decimal(10), CalendarMonth()))
    await spend(ledger, "m", "7", utc(2026, 1, 31, 23, 59, 59))
    assert (await ledger.state("m", now=utc(2026, 1, 31, 23, 59, 59, 999999))).committed == 7
    feb = await ledger.state("m", now=utc(2026, 2, 1))
    assert (feb.committed, feb.used, feb.remaining) == (0, 0, 10)
    assert (feb.window_start, feb.window_end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    # A full month's worth fits again in February, and December rolls into January.
    await spend(ledger, "m", "10", utc(2026, 2, 1))
    await spend(ledger, "m", "10", utc(2026, 12, 31, 23))
    assert (await ledger.state("m", now=utc(2027, 1, 1))).committed == 0


async def test_outstanding_reservations_count_across_the_month_boundary(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("m", Unit.USD, Decimal(10), CalendarMonth()))
    held = await ledger.reserve([usd("m", "6")], now=utc(2026, 1, 31, 23), lease=timedelta(days=2))
    assert held.admitted
    feb = await ledger.state("m", now=utc(2026, 2, 1, 1))
    assert (feb.committed, feb.reserved, feb.remaining) == (0, 6, 4)
    rejected = await ledger.reserve([usd("m", "5")], now=utc(2026, 2, 1, 1))
    assert rejected.rules == (RULE_REMAINING,)
    assert rejected.violations[0].remaining == 4
    assert "this calendar month" in rejected.violations[0].message


async def test_commit_is_dated_at_commit_time(ledger: Ledger) -> None:
    # Reserved in January, committed in February: it is February's spend.
    await ledger.put_budget(Budget("m", Unit.USD, Decimal(10), CalendarMonth()))
    held = await ledger.reserve([usd("m", "4")], now=utc(2026, 1, 31, 23), lease=timedelta(days=2))
    assert held.reservation is not None
    await ledger.commit(held.reservation.id, now=utc(2026, 2, 1, 1))
    assert (await ledger.state("m", now=utc(2026, 1, 31, 23, 30))).committed == 0
    assert (await ledger.state("m", now=utc(2026, 2, 1, 2))).committed == 4


async def test_rolling_window_drops_old_commits(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("r", Unit.USD, Decimal(10), RollingDays(30)))
    day0 = utc(2026, 1, 10)
    await spend(ledger, "r", "3", day0)
    await spend(ledger, "r", "2", day0 + timedelta(days=20))
    assert (await ledger.state("r", now=day0 + timedelta(days=30))).committed == 5
    assert (await ledger.state("r", now=day0 + timedelta(days=30, microseconds=1))).committed == 2
    later = await ledger.state("r", now=day0 + timedelta(days=51))
    assert (later.committed, later.remaining) == (0, 10)
    assert "in the last 30 days" in (
        (await ledger.reserve([usd("r", "11")], now=day0)).violations[0].message
    )


async def test_fixed_window_admits_only_inside_and_counts_only_inside(ledger: Ledger) -> None:
    window = FixedWindow(utc(2026, 1, 1), utc(2026, 2, 1))
    await ledger.put_budget(Budget("f", Unit.USD, Decimal(10), window))
    for outside in (utc(2025, 12, 31, 23, 59), utc(2026, 2, 1), utc(2026, 3, 1)):
        decision = await ledger.reserve([usd("f", "1")], now=outside)
        assert decision.rules == (RULE_WINDOW_CLOSED,)
        assert decision.violations[0].budget == "f"
        assert decision.violations[0].remaining is None
        assert "only admits work in" in decision.violations[0].message
    await spend(ledger, "f", "3", utc(2026, 1, 1))
    held = await ledger.reserve([usd("f", "4")], now=utc(2026, 1, 31, 23), lease=timedelta(days=1))
    assert held.reservation is not None
    # Committed after the end: outside [start, end), so the window's spend stays 3.
    await ledger.commit(held.reservation.id, now=utc(2026, 2, 1, 1))
    state = await ledger.state("f", now=utc(2026, 2, 1, 2))
    assert (state.committed, state.reserved) == (3, 0)
    assert (state.window_start, state.window_end) == (utc(2026, 1, 1), utc(2026, 2, 1))
    rejected = await ledger.reserve([usd("f", "8")], now=utc(2026, 1, 15))
    assert "in [2026-01-01" in rejected.violations[0].message


async def test_no_window_counts_everything(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("n", Unit.USD, Decimal(10)))
    await spend(ledger, "n", "4", utc(2020, 1, 1))
    await spend(ledger, "n", "5", utc(2026, 6, 1))
    state = await ledger.state("n", now=utc(2030, 1, 1))
    assert (state.committed, state.remaining, state.window_start) == (9, 1, None)
    message = (await ledger.reserve([usd("n", "2")], now=utc(2030, 1, 1))).violations[0].message
    assert message == "budget 'n' has 1 USD left of 10 USD; this work needs 2 USD"
