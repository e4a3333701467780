"""The guard's input checks: each raises :class:`InvalidInput` naming the field to fix.

``BudgetGuard`` runs them on construction, on every assignment to a setting and at the top of
the calls that take caller input (``submit``, ``check``, ``watch``), so a mistake is refused
before anything is held, sent or written, and never surfaces as a raw ``TypeError`` later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from quotaguard.engine.amounts import as_amount
from quotaguard.engine.windows import check_aware
from quotaguard.errors import InvalidInput

__all__ = [
    "check_adapters",
    "check_budget_keys",
    "check_clock",
    "check_fail_mode",
    "check_instance",
    "check_ledger",
    "check_period",
    "check_price_per_second",
    "check_providers",
    "check_seconds",
    "check_watch",
]

#: What an adapter must have: the methods the guard calls (see ``contract.Adapter``).
_ADAPTER_METHODS = ("handles", "estimate", "explain", "external_id", "owns", "actual", "sync")
_LEDGER_METHODS = ("reserve", "commit", "release", "state", "outstanding", "put_budget")


def check_fail_mode(value: object) -> Literal["closed", "open"]:
    if value == "closed" and isinstance(value, str):
        return "closed"
    if value == "open" and isinstance(value, str):
        return "open"
    raise InvalidInput("fail_mode", f"must be 'closed' or 'open', got {value!r}")


def check_period(value: object, field: str) -> timedelta:
    """A positive ``timedelta`` (a TTL, a staleness bound)."""
    if not isinstance(value, timedelta):
        raise InvalidInput(
            field, f"must be a timedelta, e.g. timedelta(seconds=60); got {type(value).__name__}"
        )
    if value <= timedelta(0):
        raise InvalidInput(field, f"must be positive, got {value}")
    return value


def check_seconds(value: object, field: str) -> float:
    """A positive, finite number of seconds (an ``int`` or ``float``, not a ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(
            field, f"must be a positive number of seconds, got {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(field, f"must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def check_watch(interval: object, max_interval: object) -> tuple[float, float]:
    """The watcher's pause between passes and the longest backoff after failed passes."""
    low = check_seconds(interval, "interval")
    high = check_seconds(max_interval, "max_interval")
    if high < low:
        raise InvalidInput("max_interval", f"must be at least interval ({low:g} s), got {high:g} s")
    return low, high


def check_price_per_second(value: object) -> Decimal | None:
    """``None`` (IBM seconds never count against USD budgets) or a price above zero: at 0,
    IBM work would be free on every USD budget."""
    if value is None:
        return None
    return as_amount(value, "ibm_price_per_second", allow_zero=False)


def check_clock(clock: object) -> Callable[[], datetime]:
    """A callable that returns an aware ``datetime`` (it is called once, here)."""
    if not callable(clock):
        raise InvalidInput(
            "clock", f"must be a callable returning an aware datetime, got {type(clock).__name__}"
        )
    check_aware(clock(), "clock()")
    return cast("Callable[[], datetime]", clock)


def _has(value: object, names: Iterable[str]) -> bool:
    return all(callable(getattr(value, name, None)) for name in names)


def check_ledger(ledger: object) -> Any:
    if not _has(ledger, _LEDGER_METHODS):
        raise InvalidInput(
            "ledger",
            "expected a ledger (MemoryLedger, SQLiteLedger, RedisLedger) or None for the "
            f"embedded SQLite ledger, got {type(ledger).__name__}",
        )
    return ledger


def check_adapters(adapters: object) -> list[Any]:
    if isinstance(adapters, (str, bytes, Mapping)) or not isinstance(adapters, Iterable):
        raise InvalidInput(
            "adapters", f"expected a sequence of adapters, got {type(adapters).__name__}"
        )
    out = list(adapters)
    for i, adapter in enumerate(out):
        if not _has(adapter, _ADAPTER_METHODS) or not hasattr(adapter, "unit"):
            raise InvalidInput(
                f"adapters[{i}]",
                f"{type(adapter).__name__} is not an adapter; it needs provider, unit and "
                f"the methods {', '.join(_ADAPTER_METHODS)}",
            )
    return out


def check_instance(value: object, cls: type, field: str, hint: str) -> None:
    """``value`` is ``None`` or a ``cls``; the message says what to pass (``hint``)."""
    if value is not None and not isinstance(value, cls):
        raise InvalidInput(field, f"expected {hint}, got {type(value).__name__}")


def check_budget_keys(budgets: object) -> tuple[str, ...]:
    """``budgets=`` read once, into a tuple: a generator is consumed here and nowhere else."""
    if isinstance(budgets, (str, bytes, Mapping)) or not isinstance(budgets, Iterable):
        raise InvalidInput(
            "budgets",
            f"pass a sequence of budget keys, e.g. budgets=('team:research',); got "
            f"{type(budgets).__name__}",
        )
    keys = tuple(budgets)
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise InvalidInput(f"budgets[{i}]", f"a budget key is a str, got {type(key).__name__}")
    return keys


def check_providers(ibm: object, braket: object, prices: object, ibm_policy: object) -> None:
    """The provider arguments of ``BudgetGuard``; each module is imported only when its
    argument is given (a guard for one provider does not load the other's modules)."""
    if ibm is not None:
        from quotaguard.ibm.client import IBMRuntimeClient

        check_instance(ibm, IBMRuntimeClient, "ibm", "an IBMRuntimeClient")
    if ibm_policy is not None:
        from quotaguard.ibm.rules import IBMPolicy

        check_instance(ibm_policy, IBMPolicy, "ibm_policy", "an IBMPolicy")
    if braket is not None:
        from quotaguard.braket.client import BraketClient

        check_instance(braket, BraketClient, "braket", "a BraketClient")
    if prices is not None:
        from quotaguard.braket.pricing import PriceTable

        check_instance(prices, PriceTable, "prices", "a PriceTable (e.g. PriceTable.default())")
