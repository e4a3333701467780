"""Fixed examples of the remaining-budget rule on every backend, each one a mutant of the
money path (tools/mutate.py) that the rest of the suite let pass: limits round down to the
micro-unit, and a provider report from before the window does not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotaguard.engine import Budget, CalendarMonth, Unit
from quotaguard.ledger import Ledger
from tests._support.ledger import snapshot, usd
from tests._support.times import T0


async def test_a_limit_with_sub_micro_digits_rounds_down(ledger: Ledger) -> None:
    # 10.0000005 USD holds 10.000000 exactly: rounding it up would admit 10.000001.
    await ledger.put_budget(Budget("a", Unit.USD, Decimal("10.0000005")))
    before = await snapshot(ledger, T0)
    refused = await ledger.reserve([usd("a", "10.000001")], now=T0)
    assert not refused.admitted
    assert await snapshot(ledger, T0) == before
    assert (await ledger.reserve([usd("a", 10)], now=T0)).admitted
    assert (await ledger.state("a", now=T0)).remaining == 0


async def test_a_report_from_before_the_window_does_not_count(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), CalendarMonth()))
    await ledger.record_report("a", Decimal(90), at=T0 - timedelta(days=20))  # February
    state = await ledger.state("a", now=T0)
    assert state.used == 0 and state.remaining == 100
    assert (await ledger.reserve([usd("a", 50)], now=T0)).admitted


async def test_a_report_inside_the_window_counts(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), CalendarMonth()))
    await ledger.record_report("a", Decimal(90), at=T0 - timedelta(days=1))
    assert (await ledger.state("a", now=T0)).remaining == 10
    assert not (await ledger.reserve([usd("a", "10.000001")], now=T0)).admitted
    assert (await ledger.reserve([usd("a", 10)], now=T0)).admitted


async def test_a_commit_one_microsecond_before_the_month_is_last_months(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), CalendarMonth()))
    march = datetime(2026, 3, 1, tzinfo=UTC)
    for at, amount in ((march - timedelta(microseconds=1), 60), (march, 30)):
        held = await ledger.reserve([usd("a", amount)], now=at)
        assert held.reservation is not None
        await ledger.commit(held.reservation.id, None, now=at)
    state = await ledger.state("a", now=march)
    assert state.committed == 30 and state.remaining == 70
    assert (await ledger.state("a", now=march - timedelta(microseconds=1))).committed == 60
