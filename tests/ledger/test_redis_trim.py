"""Redis trimming frees the server's memory, in steps of bounded work."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from quotaguard.engine import Budget, RollingDays, Unit
from quotaguard.ledger import Trimmed
from tests._support.ledger import usd
from tests._support.redis_ledger import raw_snapshot
from tests._support.times import T0

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from quotaguard.ledger.redis import RedisLedger

pytestmark = pytest.mark.redis

N = 300


async def _keys(client: aioredis.Redis, namespace: str) -> int:
    return len([k async for k in client.scan_iter(match=f"{{{namespace}}}:*", count=1000)])


async def test_keys_and_memory_drop_and_each_call_is_bounded(
    rl: RedisLedger, client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rl.put_budget(Budget("r", Unit.USD, Decimal(10_000), RollingDays(1)))
    for i in range(N):
        at = T0 + timedelta(minutes=i)
        decision = await rl.reserve([usd("r", "1.25")], now=at, idempotency_key=f"k{i}")
        assert decision.reservation is not None
        await rl.commit(decision.reservation.id, now=at)
    commits = f"{{{rl.namespace}}}:c:r"
    keys, memory = await _keys(client, rl.namespace), await client.memory_usage(commits)
    assert keys >= N
    now = T0 + timedelta(days=3)
    before = await rl.state("r", now=now)
    limits: list[int] = []
    call = rl._call

    async def counted(op: str, *args: object, **named: Any) -> list[object]:
        if op == "trim":
            limits.append(int(str(args[-1])))
        return await call(op, *args, **named)

    monkeypatch.setattr(rl, "_call", counted)
    rl.trim_batch = 100
    assert await rl.trim(now=now, keep=timedelta(days=1)) == Trimmed(N, N)
    # 300 commits twice (by commit and by floor time) and 300 records, 100 a call.
    assert limits == [100] * 10
    after_keys, after_memory = await _keys(client, rl.namespace), await client.memory_usage(commits)
    assert after_keys <= keys - N  # every r:<id> went; the zsets of commits are empty
    assert after_memory is None or after_memory < memory / 10
    assert await rl.state("r", now=now) == before
    # The idempotency keys and the index of ended records went with the records.
    snapshot = await raw_snapshot(client, rl.namespace)
    assert not snapshot.get(f"{{{rl.namespace}}}:idem".encode())
    assert not snapshot.get(f"{{{rl.namespace}}}:ended".encode())


async def test_records_that_ended_before_the_index_are_listed_once_and_trimmed(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    from quotaguard.ledger.redis import RedisLedger

    await rl.put_budget(Budget("a", Unit.USD, Decimal(100)))
    ids = []
    for i in range(5):
        decision = await rl.reserve([usd("a", 1)], now=T0, idempotency_key=f"old{i}")
        assert decision.reservation is not None
        ids.append(decision.reservation.id)
    await rl.commit(ids[0], now=T0)
    await rl.release(ids[1], now=T0)
    await rl.bind(ids[2], "job-2", sent_at=T0)
    await rl.expire(now=T0 + timedelta(days=1))  # 2 lapsed (bound), 3 and 4 expired unsent
    # As a ledger before trimming left them: no index of ended records, no mark.
    prefix = f"{{{rl.namespace}}}:"
    await client.delete(prefix + "ended", prefix + "ended_listed")
    async with RedisLedger(client=client, namespace=rl.namespace, time_source="caller") as fresh:
        fresh.trim_batch = 2  # the scan and the listing go in batches too
        now = T0 + timedelta(days=10)
        assert await fresh.trim(now=now, keep=timedelta(days=1)) == Trimmed(1, 4)
        assert [r.id for r in await fresh.lapsed()] == [ids[2]]
        assert await client.get(prefix + "ended_listed") == b"1"
        assert (await fresh.state("a", now=now)).committed == 1
