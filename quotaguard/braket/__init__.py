"""Amazon Braket: async client, wire models, prices, the work type and the budget rules.

``BraketClient`` and ``load_price_list`` (the HTTP half) are loaded on first use (PEP 562),
so importing the work type, rules, prices or models loads neither aiohttp nor botocore.
"""

from typing import TYPE_CHECKING

from quotaguard.braket.models import Device, QuantumTask, SpendingLimit, TimePeriod
from quotaguard.braket.pricing import Price, PriceTable, UnknownPrice
from quotaguard.braket.rules import budget_key, estimate, limit_budget
from quotaguard.braket.work import BraketTask

if TYPE_CHECKING:
    from quotaguard.braket.client import BraketClient, load_price_list

__all__ = [
    "BraketClient",
    "BraketTask",
    "Device",
    "Price",
    "PriceTable",
    "QuantumTask",
    "SpendingLimit",
    "TimePeriod",
    "UnknownPrice",
    "budget_key",
    "estimate",
    "limit_budget",
    "load_price_list",
]

_CLIENT_NAMES = frozenset({"BraketClient", "load_price_list"})


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from quotaguard.braket import client

        value = getattr(client, name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
