"""``committed_between``: the commits of one budget by commit time, on every backend."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.engine.windows import CalendarMonth
from quotaguard.errors import InvalidInput, UnknownBudget
from quotaguard.ledger import Ledger
from tests._support.ledger import usd
from tests._support.times import T0


async def _spend(ledger: Ledger, key: str, amount: str, hours: int) -> None:
    at = T0 + timedelta(hours=hours)
    decision = await ledger.reserve([usd(key, amount)], now=at)
    assert decision.reservation is not None
    await ledger.commit(decision.reservation.id, now=at)


async def test_sums_commits_by_commit_time_only(ledger: Ledger) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100), CalendarMonth()))
    await ledger.put_budget(Budget("b", Unit.USD, Decimal(100)))
    await _spend(ledger, "a", "1.5", 0)
    await _spend(ledger, "a", "2", 1)
    await _spend(ledger, "a", "4", 2)
    await _spend(ledger, "b", "8", 1)
    await ledger.reserve([usd("a", "16")], now=T0 + timedelta(hours=1))  # held, not spent
    between = ledger.committed_between
    assert await between("a", T0, T0 + timedelta(hours=3)) == Decimal("7.5")
    # [start, end): the commit at +1 h counts from +1 h on, not up to it.
    assert await between("a", T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == 2
    assert await between("a", T0 - timedelta(days=9), T0) == 0
    assert await between("a", T0, T0) == 0
    assert await between("b", T0, T0 + timedelta(days=1)) == 8


async def test_refuses_unknown_budgets_and_reversed_spans(ledger: Ledger) -> None:
    with pytest.raises(UnknownBudget):
        await ledger.committed_between("nope", T0, T0)
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
    with pytest.raises(InvalidInput) as info:
        await ledger.committed_between("a", T0, T0 - timedelta(seconds=1))
    assert info.value.field == "end"
    with pytest.raises(InvalidInput):
        await ledger.committed_between("a", T0.replace(tzinfo=None), T0)


async def test_matches_a_plain_sum_over_random_commits_and_spans(ledger: Ledger) -> None:
    import random

    rng = random.Random(15)
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(10**6)))
    spent: list[tuple[int, Decimal]] = []
    for _ in range(40):
        minute, amount = rng.randrange(0, 600), Decimal(rng.randrange(1, 10**6)) / 1000
        at = T0 + timedelta(minutes=minute)
        decision = await ledger.reserve([usd("a", str(amount))], now=at)
        assert decision.reservation is not None
        await ledger.commit(decision.reservation.id, now=at)
        spent.append((minute, amount))
    for _ in range(30):
        lo, hi = sorted(rng.randrange(-10, 620) for _ in range(2))
        expected = sum((a for m, a in spent if lo <= m < hi), Decimal(0))
        got = await ledger.committed_between(
            "a", T0 + timedelta(minutes=lo), T0 + timedelta(minutes=hi)
        )
        assert got == expected, (lo, hi)
