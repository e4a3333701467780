"""Failover: SIGKILL the primary, promote its replica, and count what the new primary holds.

A private primary and replica (:class:`tests._support.redis_replica.ReplicaPair`); the
replica's link runs through a proxy that can freeze it, so "the replica has not got these
writes yet" is exact rather than a race. ``replicas=1``: every reserve the ledger admitted
is on the promoted replica. ``replicas=0`` (the default): the admitted reserves the replica
had not got are gone, and the new primary admits their cost a second time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.redis import RedisLedger
from tests._support.ledger import usd
from tests._support.redis_ledger import fresh_namespace
from tests._support.redis_replica import ReplicaPair
from tests._support.times import T0

pytestmark = pytest.mark.redis

HOLDS = 50  # each 1 USD of a 50 USD budget: the budget is full when all are held
WAIT = 0.3  # wait_timeout in the tests that expect no acknowledgement


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[ReplicaPair]:
    async with ReplicaPair(tmp_path) as p:
        yield p


def ledger_on(url: str, namespace: str, **settings: object) -> RedisLedger:
    return RedisLedger(
        url,
        namespace=namespace,
        time_source="caller",
        durability="off",  # the pair runs AOF off on purpose: this is about replication
        socket_timeout=2.0,
        **settings,  # type: ignore[arg-type]
    )


async def fill(rl: RedisLedger) -> list[str]:
    """Put a 50 USD budget and reserve it full, one dollar at a time: the held ids."""
    await rl.put_budget(Budget("b", Unit.USD, Decimal(HOLDS)))
    ids = []
    for _ in range(HOLDS):
        decision = await rl.reserve([usd("b", 1)], now=T0)
        assert decision.admitted and decision.reservation is not None
        ids.append(decision.reservation.id)
    return ids


async def test_replicas_1_every_acknowledged_reserve_survives_failover(
    pair: ReplicaPair,
) -> None:
    namespace = fresh_namespace()
    started = time.perf_counter()
    async with ledger_on(pair.primary.url, namespace, replicas=1) as rl:
        ids = await fill(rl)
        # A commit and a release, acknowledged too: they survive as ended, not as holds.
        await rl.commit(ids[0], now=T0)
        await rl.release(ids[1], now=T0)
    reserved = time.perf_counter() - started
    pair.kill_primary()
    await pair.promote()
    assert pair.replica is not None
    async with ledger_on(pair.replica.url, namespace) as after:
        held = {r.id for r in await after.outstanding()}
        assert held == set(ids[2:])
        state = await after.state("b", now=T0)
        assert (state.reserved, state.committed, state.remaining) == (HOLDS - 2, 1, 1)
        # The new primary refuses what the lost one would have refused.
        assert (await after.reserve([usd("b", 1)], now=T0)).admitted
        assert not (await after.reserve([usd("b", 1)], now=T0)).admitted
    print(f"\nreplicas=1: {HOLDS} reserves acknowledged in {reserved:.3f}s, {len(held)} held")


async def test_replicas_0_loses_acknowledged_reserves_on_failover(pair: ReplicaPair) -> None:
    # The default setting: a reserve is acknowledged when the primary ran it. Writes the
    # replica has not got when the primary dies are gone after promotion.
    namespace = fresh_namespace()
    async with ledger_on(pair.primary.url, namespace) as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(HOLDS)))
        await pair.caught_up()  # the budget is on the replica: only the holds are at risk
        pair.link.freeze()
        started = time.perf_counter()
        ids = await fill(rl)
        reserved = time.perf_counter() - started
        assert len(await rl.outstanding()) == HOLDS  # the primary holds every one
    pair.kill_primary()
    await pair.promote()
    assert pair.replica is not None
    async with ledger_on(pair.replica.url, namespace) as after:
        assert await after.outstanding() == []  # every acknowledged hold is gone
        state = await after.state("b", now=T0)
        assert (state.reserved, state.remaining) == (0, HOLDS)
        # ... and their cost is admitted a second time: 2 x the budget, in all.
        again = [await after.reserve([usd("b", 1)], now=T0) for _ in range(HOLDS)]
        assert all(d.admitted for d in again)
    print(f"\nreplicas=0: {len(ids)} reserves acknowledged in {reserved:.3f}s, 0 held after")


async def test_replicas_1_an_unacknowledged_reserve_is_undone_and_unavailable(
    pair: ReplicaPair,
) -> None:
    namespace = fresh_namespace()
    async with ledger_on(pair.primary.url, namespace, replicas=1, wait_timeout=WAIT) as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
        pair.link.freeze()
        started = time.perf_counter()
        with pytest.raises(BudgetUnavailable, match="not acknowledged by 1 replica"):
            await rl.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        took = time.perf_counter() - started
        assert WAIT <= took < WAIT + 2.0
        # Undone on the primary: nothing held, the key free for a retry.
        state = await rl.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (0, 0)
        pair.link.thaw()
        await pair.wait_linked()
        retry = await rl.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        assert retry.admitted and not retry.replayed
        assert (await rl.state("b", now=T0)).reserved == 4


async def test_replicas_1_an_unacknowledged_commit_is_retried_then_unavailable(
    pair: ReplicaPair,
) -> None:
    namespace = fresh_namespace()
    async with ledger_on(pair.primary.url, namespace, replicas=1, wait_timeout=WAIT) as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
        held = await rl.reserve([usd("b", 4)], now=T0)
        assert held.reservation is not None
        pair.link.freeze()
        started = time.perf_counter()
        with pytest.raises(BudgetUnavailable, match=r"commit was not acknowledged.*0 did"):
            await rl.commit(held.reservation.id, actual=[usd("b", 3)], now=T0)
        took = time.perf_counter() - started
        assert 3 * WAIT <= took < 3 * WAIT + 2.0  # three waits, then it gave up
        pair.link.thaw()
        # The watcher's retry: the same commit again returns the first outcome, acknowledged.
        done = await rl.commit(held.reservation.id, actual=[usd("b", 3)], now=T0)
        assert done.id == held.reservation.id
        state = await rl.state("b", now=T0)
        assert (state.committed, state.reserved) == (3, 0)
    pair.kill_primary()
    await pair.promote()
    assert pair.replica is not None
    async with ledger_on(pair.replica.url, namespace) as after:
        state = await after.state("b", now=T0)
        assert (state.committed, state.reserved, state.outstanding) == (3, 0, 0)


async def test_replicas_1_sigkill_mid_run_keeps_every_acknowledged_reserve(
    pair: ReplicaPair,
) -> None:
    # Four coroutines reserve in a loop; the primary is SIGKILLed while they run. Every
    # reserve that returned admitted is held on the promoted replica. Those in flight fail
    # with BudgetUnavailable; the replica may hold some of them too (an overcount that
    # lapses at its lease), never fewer than were acknowledged.
    namespace = fresh_namespace()
    admitted: list[str] = []
    failed = 0
    async with ledger_on(pair.primary.url, namespace, replicas=1, wait_timeout=WAIT) as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(10_000)))

        async def worker() -> None:
            nonlocal failed
            while True:
                try:
                    decision = await rl.reserve([usd("b", 1)], now=T0)
                except BudgetUnavailable:
                    failed += 1
                    return
                assert decision.reservation is not None
                admitted.append(decision.reservation.id)

        workers = [asyncio.ensure_future(worker()) for _ in range(4)]
        while len(admitted) < 100:
            await asyncio.sleep(0.005)
        pair.kill_primary()
        await asyncio.wait_for(asyncio.gather(*workers), 30)
    await pair.promote()
    assert pair.replica is not None
    async with ledger_on(pair.replica.url, namespace) as after:
        held = {r.id for r in await after.outstanding()}
    assert failed == 4
    assert set(admitted) <= held, f"{len(set(admitted) - held)} acknowledged holds lost"
    print(f"\nSIGKILL mid-run: {len(admitted)} acknowledged, {len(held)} held after promotion")
