"""Amazon Braket: async client, wire models, prices, the work type and the budget rules."""

from quotaguard.braket.client import BraketClient
from quotaguard.braket.models import Device, QuantumTask, SpendingLimit, TimePeriod
from quotaguard.braket.pricing import Price, PriceTable, UnknownPrice, load_price_list
from quotaguard.braket.rules import budget_key, estimate, limit_budget
from quotaguard.braket.work import BraketTask

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
