"""Every quotaguard error survives pickling: it crosses process boundaries whole.

A worker in a ``ProcessPoolExecutor`` or ``multiprocessing.Pool`` that raises one must hand its
parent the same error (type, message and data), not an unpickling failure that breaks the pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from quotaguard import errors
from quotaguard.braket.pricing import UnknownPrice
from quotaguard.engine import Budget, Charge, Unit
from quotaguard.integrations import BridgeTimeout, IntegrationError, WrongThread
from quotaguard.ledger import MemoryLedger
from tests._support.times import T0


async def _exceeded() -> errors.BudgetExceeded:
    async with MemoryLedger() as ledger:
        await ledger.put_budget(Budget("team", Unit.USD, Decimal(5)))
        decision = await ledger.reserve([Charge("team", Decimal(9), Unit.USD)], now=T0)
    assert not decision.admitted
    return errors.BudgetExceeded(decision, source="server")


def _every_error(exceeded: errors.BudgetExceeded) -> list[errors.QuotaGuardError]:
    provider = {"provider": "ibm", "status": 409, "code": "1234", "trace": "t-1"}
    made: list[errors.QuotaGuardError] = [
        errors.QuotaGuardError("plain"),
        errors.InvalidInput("shots", "must be a positive integer"),
        errors.UnknownBudget("charges[0].budget", "nope"),
        errors.ReservationNotFound("r-1"),
        exceeded,
        errors.BudgetUnavailable("ledger down", budget="team"),
        errors.ClockSkew(
            ledger_time=datetime(2026, 12, 1, tzinfo=UTC),
            caller_time=datetime(2026, 12, 1, 1, tzinfo=UTC),
            max_skew=timedelta(seconds=30),
        ),
        errors.SubmitTimeout("send overran", reservation_id="r-2"),
        errors.MalformedPayload("$.usage", "not a number", provider="ibm"),
        errors.MissingDependency("redis", "RedisLedger needs the optional 'redis' dependencies"),
    ]
    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, errors.ProviderError) and cls is not errors.MalformedPayload:
            made.append(cls(f"{name} happened", errors=({"code": "x"},), **provider))
    made += [
        IntegrationError("unsupported SDK"),
        WrongThread("called on the loop thread"),
        BridgeTimeout("no answer in 30 s"),  # an OSError-family mix-in: its own layout
        UnknownPrice("arn:aws:braket:::device/qpu/acme/X"),
    ]
    assert {type(e) for e in made} == _every_subclass(errors.QuotaGuardError)
    return made


def _every_subclass(cls: type) -> set[type]:
    found = {cls}
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("quotaguard."):
            found |= _every_subclass(sub)
    return found


async def test_every_error_round_trips_through_pickle() -> None:
    for exc in _every_error(await _exceeded()):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc)
        assert str(back) == str(exc)
        assert back.args == exc.args
        assert vars(back) == vars(exc), type(exc).__name__


async def test_budget_exceeded_keeps_its_decision() -> None:
    back = pickle.loads(pickle.dumps(await _exceeded()))
    assert back.source == "server"
    (violation,) = back.decision.violations
    assert (violation.budget, violation.requested, violation.remaining) == (
        "team",
        Decimal(9),
        Decimal(5),
    )


def _raise_invalid(field: str) -> None:
    raise errors.InvalidInput(field, "rejected in a worker process")


@pytest.mark.slow
async def test_an_error_raised_in_a_worker_process_reaches_the_parent_whole() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        future = asyncio.get_running_loop().run_in_executor(pool, _raise_invalid, "shots")
        with pytest.raises(errors.InvalidInput) as caught:
            await asyncio.wait_for(future, 60)
    assert caught.value.field == "shots"
    assert caught.value.reason == "rejected in a worker process"


def test_every_error_is_importable_from_the_package() -> None:
    import quotaguard

    missing = [name for name in errors.__all__ if name not in quotaguard.__all__]
    assert missing == []
    assert quotaguard.SubmitTimeout is errors.SubmitTimeout  # the docs tell users to catch it
