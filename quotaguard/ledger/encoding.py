"""How every ledger writes engine values down: instants, charge lists and alerts.

Instants are integer microseconds since the epoch (exact, sortable, and exact in Lua's
doubles); charge lists are JSON ``[[budget, amount, unit], ...]`` with the exact Decimal text;
the alerts a Lua or PL/pgSQL reserve reports, JSON ``[[budget, level, used micro, limit,
unit], ...]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from quotaguard.engine.amounts import Unit, from_micro
from quotaguard.engine.model import Alert, Charge
from quotaguard.engine.reservations import charges_key

__all__ = [
    "alerts_from",
    "charges_fingerprint",
    "charges_from",
    "charges_json",
    "epoch_us",
    "from_epoch_us",
]

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def epoch_us(when: datetime) -> int:
    """Microseconds since the epoch: how ledgers store instants (exact, sortable)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    """The aware UTC instant ``value`` microseconds after the epoch."""
    return _EPOCH + timedelta(microseconds=value)


def charges_json(charges: Sequence[Charge]) -> str:
    """A charge list as JSON text, amounts exact."""
    return json.dumps([[c.budget, str(c.amount), c.unit.value] for c in charges])


def charges_from(text: str | None) -> tuple[Charge, ...] | None:
    """The charges :func:`charges_json` wrote; ``None`` for none stored."""
    if text is None:
        return None
    return tuple(Charge(b, Decimal(a), Unit(u)) for b, a, u in json.loads(text))


def charges_fingerprint(charges: Sequence[Charge]) -> str:
    """One text for the same charges in any order, amounts in micro-units
    (:func:`~quotaguard.engine.reservations.charges_key`).

    What a store compares where it cannot call ``engine.reservations.same_charges`` (Lua).
    """
    return json.dumps(charges_key(charges), separators=(",", ":"))


def alerts_from(raw: str | bytes) -> tuple[Alert, ...]:
    """A store's crossed levels: JSON ``[[budget, level, used micro, limit, unit], ...]``."""
    return tuple(
        Alert(key, int(level), from_micro(int(used)), Decimal(limit), Unit(unit))
        for key, level, used, limit, unit in json.loads(raw)
    )
