"""The burn-down forecast of each budget: the engine's pure rule fed by the ledger's commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from quotaguard.engine.forecast import Forecast, forecast, forecast_basis
from quotaguard.engine.model import BudgetState
from quotaguard.ledger.base import Ledger

__all__ = ["forecasts"]

# The ledger's spans are [start, end); the forecast's basis ends at ``at`` inclusive.
_THROUGH = timedelta(microseconds=1)


async def forecasts(ledger: Ledger, states: Sequence[BudgetState]) -> list[Forecast]:
    """One forecast per state, from what each budget committed over its basis span."""
    out = []
    for state in states:
        spent = await ledger.committed_between(
            state.key, forecast_basis(state), state.at + _THROUGH
        )
        out.append(forecast(state, spent))
    return out
