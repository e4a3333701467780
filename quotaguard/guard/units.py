"""How an amount in the work's unit counts against a budget kept in another unit.

One home for the conversion the guard applies twice: when it prices a user budget at submit
time, and when it commits the actual cost at settlement.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from quotaguard.engine.amounts import Unit, money_context
from quotaguard.errors import InvalidInput

__all__ = ["UnitConverter"]


@attrs.frozen
class UnitConverter:
    """Converts amounts between units; IBM seconds become USD only at a price the user set."""

    ibm_price_per_second: Decimal | None = None

    def convert(self, amount: Decimal, have: Unit, want: Unit, field: str, key: str) -> Decimal:
        """``amount`` in ``have`` as ``want``, for budget ``key``; :class:`InvalidInput` if
        there is no way to convert (reported against ``field``)."""
        if have is want:
            return amount
        if have is Unit.SECONDS and want is Unit.USD and self.ibm_price_per_second is not None:
            with money_context():
                return amount * self.ibm_price_per_second
        raise InvalidInput(
            field,
            f"budget {key!r} counts {want.value} but this work is measured in {have.value}; "
            "pass ibm_price_per_second=Decimal(...) to BudgetGuard to convert IBM seconds to USD",
        )
