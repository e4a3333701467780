"""A reserve across several budgets holds every charge or none, on every backend: fixed
examples (the random state machine finds this too, but only by chance)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.ledger import Ledger
from tests._support.ledger import snapshot, usd
from tests._support.times import T0


async def put(ledger: Ledger, **limits: int) -> None:
    for key, limit in limits.items():
        await ledger.put_budget(Budget(key, Unit.USD, Decimal(limit)))


@pytest.mark.parametrize("order", ["fits-first", "fits-last"])
async def test_a_reserve_whose_second_budget_does_not_fit_holds_nothing_on_either(
    ledger: Ledger, order: str
) -> None:
    await put(ledger, a=100, b=10)
    charges = [usd("a", 5), usd("b", 11)]
    if order == "fits-last":
        charges.reverse()
    before = await snapshot(ledger, T0)
    decision = await ledger.reserve(charges, now=T0)
    assert not decision.admitted and decision.reservation is None
    assert [v.budget for v in decision.violations] == ["b"]
    assert await snapshot(ledger, T0) == before  # nothing held on a, nothing on b


async def test_one_micro_unit_over_on_the_second_budget_is_refused_and_holds_nothing(
    ledger: Ledger,
) -> None:
    await put(ledger, a=100, b=10)
    held = await ledger.reserve([usd("b", 4)], now=T0)
    assert held.admitted
    before = await snapshot(ledger, T0)
    decision = await ledger.reserve([usd("a", 1), usd("b", "6.000001")], now=T0)
    assert not decision.admitted
    assert await snapshot(ledger, T0) == before
    exact = await ledger.reserve([usd("a", 1), usd("b", 6)], now=T0)  # the exact rest fits
    assert exact.admitted
    assert (await ledger.state("a", now=T0)).reserved == 1
    assert (await ledger.state("b", now=T0)).remaining == 0


async def test_a_refused_multi_budget_reserve_does_not_take_its_idempotency_key(
    ledger: Ledger,
) -> None:
    await put(ledger, a=100, b=10)
    refused = await ledger.reserve([usd("a", 5), usd("b", 11)], now=T0, idempotency_key="k")
    assert not refused.admitted
    admitted = await ledger.reserve([usd("a", 5), usd("b", 10)], now=T0, idempotency_key="k")
    assert admitted.admitted and not admitted.replayed
    assert (await ledger.state("a", now=T0)).reserved == 5
    assert (await ledger.state("b", now=T0)).reserved == 10


async def test_two_charges_on_one_budget_are_summed_before_the_check(ledger: Ledger) -> None:
    await put(ledger, a=100, b=10)
    before = await snapshot(ledger, T0)
    decision = await ledger.reserve([usd("a", 1), usd("b", 6), usd("b", 5)], now=T0)
    assert not decision.admitted
    assert await snapshot(ledger, T0) == before
