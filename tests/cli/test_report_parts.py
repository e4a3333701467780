"""The parts of ``quotaguard report`` in-process: the series from commits, the terminal chart
drawn from it, and the export's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard import Budget, Charge, MemoryLedger, Unit
from quotaguard.cli.chart import Series, series_of, spent_on, terminal_chart
from quotaguard.cli.export import csv_header, csv_row, json_record
from quotaguard.engine import Reservation, ReservationState
from quotaguard.guard.forecasts import forecasts

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def usd(key: str, amount: str | int) -> Charge:
    return Charge(key, Decimal(amount), Unit.USD)


async def _series(limit: int, spend: list[tuple[timedelta, int]], held: int = 0) -> Series:
    """A budget with no window: ``spend`` committed ``ago``, ``held`` still held, at NOW."""
    async with MemoryLedger() as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(limit)))
        for ago, amount in spend:
            r = (await ledger.reserve([usd("a", amount)], now=NOW - ago)).reservation
            assert r is not None
            await ledger.commit(r.id, now=NOW - ago)
        if held:
            assert (await ledger.reserve([usd("a", held)], now=NOW)).admitted
        state = await ledger.state("a", now=NOW)
        (f,) = await forecasts(ledger, [state])
        commits = [c async for r in ledger.reservations() if (c := spent_on(r, "a"))]
    return series_of(state, f, commits, before=Decimal(0))


async def test_the_series_adds_up_commits_in_order_from_its_start() -> None:
    s = await _series(100, [(DAY, 4), (3 * DAY, 2), (10 * DAY, 50)])
    assert (s.start, s.end) == (NOW - 7 * DAY, NOW + 7 * DAY)  # no window: 7 days each way
    # The commit 10 days back is before the series: used counts it, the step line does not.
    assert s.points == (
        (NOW - 7 * DAY, Decimal(0)),
        (NOW - 3 * DAY, Decimal(2)),
        (NOW - DAY, Decimal(6)),
    )
    assert s.committed_at(NOW - 2 * DAY) == 2 and s.committed_at(NOW) == 6
    assert s.state.used == 56


def _rows(lines: list[str]) -> list[str]:
    """The plot area's rows, top first (the lines before the x axis)."""
    return [line.split("┤", 1)[1] for line in lines if "┤" in line]


async def test_the_terminal_chart_draws_commits_the_limit_now_and_the_forecast() -> None:
    s = await _series(10, [(2 * DAY, 4)])
    lines = terminal_chart(s, columns=80, height=10)
    assert all(len(line) <= 80 for line in lines)
    rows = _rows(lines)
    assert len(rows) == 10
    limit_rows = [i for i, line in enumerate(lines) if line.endswith(" limit")]
    assert len(limit_rows) == 1 and lines[limit_rows[0]].lstrip().startswith("10.00 ┤──")
    bottom, four = rows[-1], rows[-1 - round(0.4 * 9)]
    now_col = next(line.index("│") for line in rows if "│" in line)
    assert bottom[:now_col].count("●") > 0 and "●" in four  # 0 before the commit, 4 after
    assert four.index("●") < now_col <= four.rindex("●") + 1
    # 4 USD in the last 7 days: 4/7 USD a day from 4 used; 7 days on it reaches 8 (row 7).
    forecast_rows = [i for i, line in enumerate(rows) if "·" in line]
    assert forecast_rows and min(forecast_rows) == 9 - round(0.8 * 9)
    assert all("·" not in line[:now_col] for line in rows)  # the forecast starts at now
    assert lines[-1].strip().startswith("● committed  · forecast  ─ limit  │ now (2026-03-15")


async def test_the_forecast_stops_at_the_limit_and_is_absent_once_it_is_reached() -> None:
    fast = await _series(10, [(DAY, 8)])  # 8/7 a day, 2 left: runs out ~1.75 days on
    rows = _rows(terminal_chart(fast, columns=70))  # 57 columns for 14 days: 4 a day
    now_col = next(line.index("│") for line in rows if "│" in line)
    dots = [c for line in rows for c, mark in enumerate(line) if mark == "·"]
    assert dots and all(now_col < c <= now_col + 7 for c in dots)  # 1.75 days: 7 columns
    spent = await _series(10, [(DAY, 6)], held=4)  # used 10 of 10
    assert not any("·" in line for line in _rows(terminal_chart(spent)))


def test_export_rows_say_what_was_held_and_what_was_spent_per_budget() -> None:
    budgets = [Budget("a", Unit.USD, Decimal(10)), Budget("b", Unit.USD, Decimal(10))]
    held = Reservation("rsv_1", (usd("a", 2), usd("b", 1)), NOW, NOW + DAY)
    committed = Reservation(
        "rsv_2",
        (usd("a", 2), usd("b", 1)),
        NOW,
        NOW + DAY,
        state=ReservationState.COMMITTED,
        actual=(usd("a", "1.5"),),  # nothing spent on b
        ended_at=NOW + DAY / 2,
        external_id="job-2",
        sent_at=NOW,
    )
    only_a = Reservation("rsv_3", (usd("a", 3),), NOW, NOW + DAY, state=ReservationState.RELEASED)
    header = csv_header(budgets)
    assert header[-4:] == [
        "a reserved (USD)",
        "a actual (USD)",
        "b reserved (USD)",
        "b actual (USD)",
    ]
    assert csv_row(held, budgets)[-4:] == ["2", "", "1", ""]
    assert csv_row(committed, budgets)[-4:] == ["2", "1.5", "1", "0"]
    assert csv_row(only_a, budgets)[-4:] == ["3", "", "", ""]
    row = dict(zip(header, csv_row(committed, budgets), strict=True))
    assert row["ended_at"] == "2026-03-16T00:00:00+00:00" and row["in_doubt_since"] == ""
    assert json_record(committed)["actual"] == [{"budget": "a", "amount": "1.5", "unit": "USD"}]
    assert json_record(held)["actual"] is None and json_record(held)["state"] == "held"
