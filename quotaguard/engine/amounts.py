"""Money and time amounts: ``Decimal`` only, validated at the edge, stored as integer micro-units.

Every ledger stores amounts as integers of 10⁻⁶ units so that sums are exact in SQLite and in
Redis Lua (whose numbers are doubles: exact up to 2⁵³ micro-units, about 9 billion units).
A charge is rounded *up* to the micro-unit and a limit *down*: rounding never undercounts.
"""

from __future__ import annotations

import enum
from contextlib import AbstractContextManager
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

from quotaguard.errors import InvalidInput

__all__ = ["MAX_AMOUNT", "MICRO", "Unit", "as_amount", "from_micro", "money_context", "to_micro"]

MICRO = Decimal("0.000001")
#: The largest amount a ledger can hold exactly (2⁵³ micro-units).
MAX_AMOUNT = Decimal(2**53) * MICRO
# Unbounded precision: shifting by 10⁶ and rounding to an integer must never round in between
# (the default 28 digits would turn 0.1000…0001 into 100000 micro-units: an undercount).
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
# What money arithmetic runs in, whatever context the caller set: 200 digits, far past any
# amount, price or product of two of them (so +, -, * are exact), and anything inexact
# (a quotient) rounds up, never down. Only nonsense traps: no Inexact or Rounded signal escapes.
_MONEY = Context(
    prec=200,
    rounding=ROUND_CEILING,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


def money_context() -> AbstractContextManager[Context]:
    """The library's own decimal context for money arithmetic, as a ``with`` block.

    Exact for sums and products of amounts and prices; a quotient rounds up (toward +inf).
    The caller's context (``getcontext().prec = 3``, an ``Inexact`` trap) never applies::

        with money_context():
            usd = seconds * price_per_second
    """
    return localcontext(_MONEY)


class Unit(enum.StrEnum):
    """What a budget counts: US dollars, or IBM execution seconds."""

    USD = "USD"
    SECONDS = "seconds"

    @classmethod
    def parse(cls, value: object, field: str = "unit") -> Unit:
        if isinstance(value, Unit):
            return value
        if isinstance(value, str):
            for unit in cls:
                if value == unit.value or value.lower() == unit.value.lower():
                    return unit
        raise InvalidInput(field, f"unknown unit {value!r}; use one of {[u.value for u in cls]}")


def as_amount(value: object, field: str, *, allow_zero: bool = True) -> Decimal:
    """Validate an amount: a finite, non-negative ``Decimal`` (or ``int``) within range.

    Floats are refused: ``0.1`` is not one tenth, and money must be exact. Pass
    ``Decimal("0.1")`` instead.
    """
    if type(value) is Decimal and value.is_finite() and 0 < value <= MAX_AMOUNT:
        return value  # the common case, checked as below in one step (Decimals are immutable)
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        hint = f"Decimal({str(value)!r})" if isinstance(value, float) else "a Decimal"
        raise InvalidInput(
            field, f"amount must be a Decimal, got {type(value).__name__}; pass {hint}"
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidInput(field, f"amount must be finite, got {value}")
    if amount < 0:
        raise InvalidInput(field, f"amount must not be negative, got {value}")
    if not allow_zero and amount == 0:
        raise InvalidInput(field, "amount must be greater than zero")
    if amount > MAX_AMOUNT:
        raise InvalidInput(field, f"amount {value} is larger than the maximum {MAX_AMOUNT}")
    return amount


def to_micro(amount: Decimal, *, round_up: bool = True) -> int:
    """Integer micro-units; charges round up, limits round down (``round_up=False``).

    Exact for any number of digits: the rounding happens once, to the micro-unit.
    """
    cache = _UP if round_up else _DOWN
    if type(amount) is Decimal and amount.is_finite():  # hashable, and the cache's key type
        micro = cache.get(amount)
        if micro is not None:
            return micro
    if not amount.is_finite() or (amount and amount.adjusted() > 100):
        raise InvalidInput("amount", f"cannot represent {amount} in micro-units")
    scaled = amount.scaleb(6, _EXACT)
    micro = int(scaled.to_integral_value(ROUND_CEILING if round_up else ROUND_FLOOR, _EXACT))
    if len(cache) >= 4096:
        cache.clear()  # bounded; the amounts in use come back at once
    cache[amount] = micro  # equal Decimals (1.0, 1.00) have one micro value: a safe key
    return micro


# The same few prices and limits are converted on every reserve; exact Decimal arithmetic at
# unbounded precision is the slow part, so each distinct value is converted once.
_UP: dict[Decimal, int] = {}
_DOWN: dict[Decimal, int] = {}


def from_micro(micro: int) -> Decimal:
    """The exact ``Decimal`` for a number of micro-units, normalised (``1.5``, not ``1.500000``)."""
    value = Decimal(micro).scaleb(-6, _EXACT)
    if value == value.to_integral_value(context=_EXACT):
        return value.quantize(Decimal(1), context=_EXACT)
    return value.normalize(_EXACT)
