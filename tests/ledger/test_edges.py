"""The ledger's edges where a budget could be overspent: budget keys, idempotency
fingerprints, the caller's decimal context, and reserves cancelled more than once."""

from __future__ import annotations

import asyncio
import decimal
import random
from decimal import Decimal
from typing import NoReturn

import pytest

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.engine.model import check_key
from quotaguard.errors import InvalidInput
from quotaguard.ledger import Ledger, SQLiteLedger
from quotaguard.ledger.sqlite.store import _Busy
from tests._support.ledger import snapshot, usd
from tests._support.times import T0

# -- budget keys ----------------------------------------------------------------------------

BAD_KEYS = ["a\n", "\na", "a\r", "a\x00", "a\tb", "a\x7f", "a\x85", "a b", "a\u2028"]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_a_key_with_a_line_end_or_control_character_is_refused(key: str) -> None:
    # `$` matches before a trailing newline: the key check must match the whole string.
    with pytest.raises(InvalidInput) as info:
        check_key(key)
    assert info.value.field == "key"
    with pytest.raises(InvalidInput) as info:
        Charge(key, Decimal(1), Unit.USD)
    assert info.value.field == "charge.budget"
    with pytest.raises(InvalidInput) as info:
        Budget(key, Unit.USD, Decimal(10))
    assert info.value.field == "key"


async def test_reserve_with_a_newline_key_is_invalid_input_and_holds_nothing(
    ledger: Ledger,
) -> None:
    # On Redis a key ending in "\n" once parsed to no budget at all: 5 x 1,000 USD admitted
    # on a 10 USD budget, holding 0. Now no such key gets as far as a ledger.
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
    before = await snapshot(ledger, T0)
    for key in ("a\n", "nope\n"):
        with pytest.raises(InvalidInput) as info:
            await ledger.put_budget(Budget(key, Unit.USD, Decimal(10)))
        assert info.value.field == "key"
        for _ in range(5):
            with pytest.raises(InvalidInput) as info:
                await ledger.reserve([Charge(key, Decimal(1000), Unit.USD)], now=T0)
            assert info.value.field == "charge.budget"
    assert await snapshot(ledger, T0) == before


# -- idempotency fingerprints ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "again"),
    [("1.0", "1.00"), ("1", "1.000000"), ("2.50", "2.5"), ("1E+1", "10")],
)
async def test_amounts_equal_in_micro_units_replay_under_one_key(
    ledger: Ledger, first: str, again: str
) -> None:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(100)))
    await ledger.put_budget(Budget("b", Unit.USD, Decimal(100)))
    held = await ledger.reserve([usd("a", first), usd("b", 3)], now=T0, idempotency_key="k")
    replay = await ledger.reserve([usd("b", 3), usd("a", again)], now=T0, idempotency_key="k")
    assert held.reservation is not None and replay.reservation is not None
    assert replay.replayed and replay.reservation.id == held.reservation.id
    with pytest.raises(InvalidInput) as info:  # a different amount is still a conflict
        await ledger.reserve([usd("a", "1.000001"), usd("b", 3)], now=T0, idempotency_key="k")
    assert info.value.field == "idempotency_key"
    assert (await ledger.state("a", now=T0)).outstanding == 1


# -- the caller's decimal context -----------------------------------------------------------


def _low_precision(ctx: decimal.Context) -> None:
    ctx.prec = 3


def _inexact_trapped(ctx: decimal.Context) -> None:
    ctx.prec = 3
    ctx.traps[decimal.Inexact] = True
    ctx.traps[decimal.Rounded] = True


async def _money_walk(ledger: Ledger) -> tuple[object, ...]:
    await ledger.put_budget(Budget("a", Unit.USD, Decimal("990.000001")))
    charges = [usd("a", "99.02"), usd("a", "0.0000011"), usd("a", "123456.7")]
    refused = await ledger.reserve(charges, now=T0)
    held = await ledger.reserve(charges[:2], now=T0)
    assert held.reservation is not None
    amount = held.reservation.amount_for("a")
    mid = await ledger.state("a", now=T0)
    done = await ledger.commit(held.reservation.id, [usd("a", "99.0234567")], now=T0)
    end = await ledger.state("a", now=T0)
    return (refused.violations, amount, mid, done.actual, end)


@pytest.mark.parametrize("setup", [_low_precision, _inexact_trapped], ids=["prec3", "inexact"])
async def test_the_callers_decimal_context_changes_no_amount(ledger: Ledger, setup: object) -> None:
    # A 99.02 USD charge once became 99.0 under prec=3, and an Inexact trap escaped raw.
    with decimal.localcontext() as ctx:
        assert callable(setup)
        setup(ctx)
        got = await _money_walk(ledger)
    assert got[1] == Decimal("99.0200011")
    assert got[3] == (usd("a", "99.0234567"),)
    mid, end = got[2], got[4]
    assert (mid.reserved, mid.remaining) == (Decimal("99.020002"), Decimal("890.979999"))  # type: ignore[attr-defined]
    assert (end.committed, end.remaining) == (Decimal("99.023457"), Decimal("890.976544"))  # type: ignore[attr-defined]


# -- cancellation ---------------------------------------------------------------------------


def _through_the_worker(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: every transaction on its worker thread, where a cancellation can land mid-way
    (as when another process holds the lock); the loop-thread path cannot be interrupted."""
    if isinstance(ledger, SQLiteLedger):

        def busy(*args: object) -> NoReturn:
            raise _Busy

        monkeypatch.setattr(ledger, "_tx_on_loop", busy)


async def _settle(task: asyncio.Task[object]) -> object:
    try:
        return await task
    except asyncio.CancelledError:
        return None


async def _outstanding_once_undone(ledger: Ledger, kept: list[str]) -> list[str]:
    """The outstanding ids once the undos have run. A cancelled caller does not wait for its
    undo to finish (Redis runs it in a task of its own), so a read straight after may still
    see the hold; give the undos a bounded moment, then read what is left."""
    held: list[str] = []
    for _ in range(200):
        held = sorted(r.id for r in await ledger.outstanding())
        if held == sorted(kept):
            break
        await asyncio.sleep(0.025)
    return held


async def test_a_reserve_cancelled_twice_leaves_no_orphan_hold(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite the second cancellation once interrupted the undo of the first: the hold
    # stayed until its lease (5 orphans after 40 double cancels).
    _through_the_worker(ledger, monkeypatch)
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(1000)))
    kept: list[str] = []
    for attempt in range(40):
        task = asyncio.ensure_future(
            ledger.reserve([usd("a", 1)], now=T0, idempotency_key=f"k{attempt}")
        )
        for _ in range(attempt % 4):
            await asyncio.sleep(0)
        task.cancel()
        for _ in range(1 + attempt % 3):
            await asyncio.sleep(0)
        task.cancel()  # again, while the first cancellation's undo may be running
        decision = await _settle(task)
        if decision is not None:
            assert decision.reservation is not None  # type: ignore[attr-defined]
            kept.append(decision.reservation.id)  # type: ignore[attr-defined]
    assert await _outstanding_once_undone(ledger, kept) == sorted(kept)
    assert (await ledger.state("a", now=T0)).reserved == len(kept)


async def test_a_cancellation_storm_leaves_no_orphan_hold(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 400 reserves, a third of them cancelled once, twice or three times at random points:
    # every hold left is one whose caller got its decision (41-42 orphans on SQLite before).
    _through_the_worker(ledger, monkeypatch)
    rng = random.Random(11)
    await ledger.put_budget(Budget("a", Unit.USD, Decimal(10_000)))

    async def cancel(task: asyncio.Task[object], waits: list[int]) -> None:
        for wait in waits:
            for _ in range(wait):
                await asyncio.sleep(0)
            task.cancel()

    tasks, cancellers = [], []
    for i in range(400):
        task = asyncio.ensure_future(ledger.reserve([usd("a", 1)], now=T0, idempotency_key=f"s{i}"))
        tasks.append(task)
        if rng.random() < 1 / 3:
            waits = [rng.randint(0, 6) for _ in range(rng.randint(1, 3))]
            if waits[0] == 0:
                task.cancel()  # before it ever ran
            cancellers.append(asyncio.ensure_future(cancel(task, waits)))
    decisions = await asyncio.gather(*(_settle(t) for t in tasks))
    await asyncio.gather(*cancellers)
    kept = sorted(d.reservation.id for d in decisions if d is not None)  # type: ignore[attr-defined]
    assert sum(d is None for d in decisions) > 0  # the storm did cancel some
    assert await _outstanding_once_undone(ledger, kept) == kept
    assert (await ledger.state("a", now=T0)).reserved == len(kept)
