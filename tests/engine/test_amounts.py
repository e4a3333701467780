"""Amounts: Decimal only, validated with the field named, stored as exact micro-units."""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaguard.engine import MICRO, Budget, Charge, Unit, as_amount, from_micro, to_micro
from quotaguard.engine.amounts import MAX_AMOUNT, money_context
from quotaguard.engine.model import sum_by_budget
from quotaguard.errors import InvalidInput

MAX_MICRO = 2**53


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0.1, r"Decimal\('0.1'\)"),
        (float("nan"), "got float"),
        (float("inf"), "got float"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("-Infinity"), "finite"),
        (Decimal("-0.01"), "negative"),
        (-1, "negative"),
        (True, "got bool"),
        ("1.5", "got str"),
        (None, "got NoneType"),
        (MAX_AMOUNT + MICRO, "larger than the maximum"),
    ],
)
def test_as_amount_refuses_with_the_field_named(value: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match) as info:
        as_amount(value, "charges[2].amount")
    assert info.value.field == "charges[2].amount"
    assert str(info.value).startswith("charges[2].amount: ")


def test_as_amount_accepts_exact_values() -> None:
    assert as_amount(3, "x") == Decimal(3)
    assert as_amount(Decimal("0.000001"), "x") == MICRO
    assert as_amount(Decimal(0), "x") == 0
    assert as_amount(MAX_AMOUNT, "x") == MAX_AMOUNT
    with pytest.raises(InvalidInput, match="greater than zero"):
        as_amount(Decimal(0), "limit", allow_zero=False)


def test_value_types_validate_their_amounts() -> None:
    with pytest.raises(InvalidInput) as info:
        Charge("team:a", 1.5, Unit.USD)  # type: ignore[arg-type]
    assert info.value.field == "charge.amount"
    with pytest.raises(InvalidInput) as info:
        Budget("team:a", Unit.USD, Decimal("-1"))
    assert info.value.field == "limit"
    with pytest.raises(InvalidInput) as info:
        Charge("team a", Decimal(1), Unit.USD)
    assert info.value.field == "charge.budget"
    with pytest.raises(InvalidInput) as info:
        Charge("team:a", Decimal(1), "EUR")  # type: ignore[arg-type]
    assert info.value.field == "charge.unit"
    assert "'USD'" in str(info.value)


def test_unit_parse() -> None:
    assert Unit.parse("usd") is Unit.USD
    assert Unit.parse("SECONDS") is Unit.SECONDS
    assert Unit.parse(Unit.SECONDS) is Unit.SECONDS
    with pytest.raises(InvalidInput) as info:
        Unit.parse(3, "budget.unit")
    assert info.value.field == "budget.unit"


@pytest.mark.parametrize(
    ("amount", "up", "down"),
    [
        (Decimal("1.5"), 1_500_000, 1_500_000),
        (Decimal("0.0000001"), 1, 0),
        (Decimal("1.0000001"), 1_000_001, 1_000_000),
        (Decimal("0.0000019"), 2, 1),
        (Decimal("1E-1000"), 1, 0),
        (Decimal("0E+200"), 0, 0),
        (Decimal("-0"), 0, 0),
        (Decimal("1E+3"), 1_000_000_000, 1_000_000_000),
        # More digits than the default 28-digit context: must still round only once.
        (Decimal("0.1000000000000000000000000000001"), 100_001, 100_000),
        (Decimal("0.9999999999999999999999999999999"), 1_000_000, 999_999),
    ],
)
def test_micro_rounding_directions(amount: Decimal, up: int, down: int) -> None:
    assert to_micro(amount) == up
    assert to_micro(amount, round_up=False) == down


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity"), Decimal("1E+200")])
def test_to_micro_refuses_what_it_cannot_represent(amount: Decimal) -> None:
    with pytest.raises(InvalidInput) as info:
        to_micro(amount)
    assert info.value.field == "amount"


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0"),
        (1, "0.000001"),
        (1_500_000, "1.5"),
        (10_000_000, "10"),
        (2**53, "9007199254.740992"),
    ],
)
def test_from_micro_is_normalised(micro: int, text: str) -> None:
    assert str(from_micro(micro)) == text


@given(st.integers(min_value=-MAX_MICRO, max_value=MAX_MICRO))
def test_micro_round_trip_is_exact(micro: int) -> None:
    value = from_micro(micro)
    assert to_micro(value) == micro
    assert to_micro(value, round_up=False) == micro
    assert value == Decimal(micro) / 1_000_000


@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=-45, max_value=3))
def test_rounding_brackets_the_exact_value(digits: int, exponent: int) -> None:
    amount = Decimal(f"{digits}E{exponent}")  # exact, however many digits
    up, down = to_micro(amount), to_micro(amount, round_up=False)
    assert from_micro(down) <= amount <= from_micro(up)
    assert up - down == (0 if amount == from_micro(down) else 1)


@given(
    st.decimals(
        min_value=0, max_value=MAX_AMOUNT, allow_nan=False, allow_infinity=False, places=None
    )
)
def test_valid_amounts_fit_the_ledger(amount: Decimal) -> None:
    checked = as_amount(amount, "x")
    assert 0 <= to_micro(checked) <= MAX_MICRO


def test_money_context_ignores_the_callers_context() -> None:
    # Under prec=3 a 99.02 USD charge became 99.0, 1234 s x 1.60 became 1.97E+3, and an
    # Inexact trap escaped raw.
    with decimal.localcontext() as caller:
        caller.prec = 3
        caller.traps[decimal.Inexact] = True
        caller.traps[decimal.Rounded] = True
        with money_context():
            assert Decimal(1234) * Decimal("1.60") == Decimal("1974.40")
            assert Decimal("99.02") + Decimal("0.0000011") == Decimal("99.0200011")
            third = Decimal(1) / Decimal(3)  # inexact: rounded up, never down
        assert decimal.getcontext() is caller  # the caller's context is back
        assert Fraction(third) > Fraction(1, 3)
        assert to_micro(third) == 333_334
        charges = (Charge("a", Decimal("99.02"), Unit.USD), Charge("a", Decimal("0.01"), Unit.USD))
        assert sum_by_budget(charges) == {"a": Decimal("99.03")}
    with decimal.localcontext() as caller:
        caller.traps[decimal.Inexact] = True
        with money_context():
            assert Decimal(2) / Decimal(3) > 0  # no Inexact escapes


def test_money_context_still_refuses_nonsense() -> None:
    with money_context(), pytest.raises(decimal.DivisionByZero):
        Decimal(1) / Decimal(0)
    with money_context(), pytest.raises(decimal.InvalidOperation):
        Decimal("Infinity") - Decimal("Infinity")
