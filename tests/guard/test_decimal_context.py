"""Prices and unit conversions ignore the caller's decimal context (issue 11 #8).

A caller's ``getcontext().prec = 3`` once priced a 99.02 USD Braket task at 99.0 and turned
1234 IBM seconds at 1.60 USD into 1.97E+3; an ``Inexact`` trap let a raw ``decimal.Inexact``
escape. Money arithmetic runs in the library's own context, exact or rounded up.
"""

from __future__ import annotations

import decimal
from datetime import timedelta
from decimal import Decimal

import pytest

from quotaguard import Budget, BudgetGuard, MemoryLedger, Unit
from quotaguard.braket.pricing import Price, PriceTable
from quotaguard.guard.units import UnitConverter
from tests._support.braket import FORTE


@pytest.fixture(params=["prec=3", "inexact-trapped"])
def callers_context(request: pytest.FixtureRequest) -> decimal.Context:
    context = decimal.Context(prec=28)
    if request.param == "prec=3":
        context.prec = 3
    else:
        context.traps[decimal.Inexact] = True
        context.traps[decimal.Rounded] = True
    return context


def test_a_price_is_exact_whatever_the_callers_context(callers_context: decimal.Context) -> None:
    qpu = Price(per_task=Decimal("0.30"), per_shot=Decimal("0.08"))
    simulator = Price(per_minute=Decimal("0.275"), min_seconds=3)
    ten_s = timedelta(seconds=10, milliseconds=1)
    expected = simulator.estimate(0, ten_s)  # in the library's own context
    with decimal.localcontext(callers_context):
        assert qpu.estimate(1234) == Decimal("99.02")
        assert simulator.estimate(0, ten_s) == expected  # an inexact quotient: no trap


def test_a_simulator_duration_rounds_up_to_the_millisecond() -> None:
    # Braket bills by the millisecond: a part of one is billed whole, never dropped.
    price = Price(per_minute=Decimal("0.075"), min_seconds=3)
    just_over = timedelta(seconds=10, microseconds=1)
    assert price.estimate(0, just_over) == Decimal("0.075") * Decimal("10.001") / 60


def test_seconds_convert_to_usd_exactly(callers_context: decimal.Context) -> None:
    converter = UnitConverter(Decimal("1.60"))
    with decimal.localcontext(callers_context):
        usd = converter.convert(Decimal(1234), Unit.SECONDS, Unit.USD, "budgets[0]", "team:a")
    assert usd == Decimal("1974.40")


async def test_the_guard_holds_the_exact_price(callers_context: decimal.Context) -> None:
    prices = PriceTable({FORTE: Price(per_task=Decimal("0.30"), per_shot=Decimal("0.08"))})
    from quotaguard import BraketTask

    async with BudgetGuard(MemoryLedger(), prices=prices) as guard:
        await guard.add_budget(Budget("team:a", Unit.USD, Decimal(1000)))
        with decimal.localcontext(callers_context):
            sub = await guard.submit(
                BraketTask(FORTE, shots=1234), lambda: None, budgets=["team:a"]
            )
        assert sub.reservation.amount_for("team:a") == Decimal("99.02")
