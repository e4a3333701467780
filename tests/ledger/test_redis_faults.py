"""RedisLedger when the connection fails: lost replies, a dead server, a restart, cancellation.

A small TCP proxy between the ledger and a real redis-server loses replies on demand: the
command runs on the server, the client never hears back, exactly the case a retry with the
same idempotency key must survive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis.asyncio

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.redis import RedisLedger
from tests._support.ledger import usd
from tests._support.redis_ledger import Proxy, evalsha_calls, fresh_namespace
from tests._support.redis_server import RedisServer, free_port
from tests._support.secrets import REDIS_FAULTS_PASSWORD
from tests._support.times import T0

pytestmark = pytest.mark.redis


@pytest.fixture
async def direct(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client on the server itself, past the proxy: to read what really ran there."""
    async with redis.asyncio.Redis.from_url(redis_server.url) as client:
        yield client


async def test_a_lost_reply_is_retried_by_the_client_and_holds_once(
    proxy: Proxy, direct: redis.asyncio.Redis
) -> None:
    # redis-py resends the same script call (same reservation id) after a lost reply; the
    # script recognises the id and the ledger counts one hold.
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=1.0, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        before = await evalsha_calls(direct)
        proxy.lose_reserve_replies = 1
        decision = await ledger.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        assert decision.admitted and not decision.replayed
        assert await evalsha_calls(direct) - before == 2  # sent twice
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (Decimal(4), 1)


async def test_a_reserve_that_fails_unanswered_is_undone_so_a_retry_sends_afresh(
    proxy: Proxy, direct: redis.asyncio.Redis
) -> None:
    # Every attempt ran on the server but no reply came back: BudgetUnavailable. The ledger
    # undoes the hold it may have made, so a guard retrying with the same key reserves and
    # sends the work, instead of replaying a hold nobody used.
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=1.0, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        before = await evalsha_calls(direct)
        proxy.lose_reserve_replies = 3  # the first try and both of redis-py's retries
        with pytest.raises(BudgetUnavailable):
            await ledger.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        assert await evalsha_calls(direct) - before == 4  # 3 reserves, 1 undo
        assert (await ledger.state("b", now=T0)).reserved == 0
        retry = await ledger.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        assert retry.admitted and not retry.replayed
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (Decimal(4), 1)


async def test_when_the_undo_cannot_reach_redis_the_hold_replays_until_its_lease(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=1.0, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        proxy.drop = True  # every reply lost, the undo's too
        with pytest.raises(BudgetUnavailable):
            await ledger.reserve(
                [usd("b", 4)], now=T0, idempotency_key="job-1", lease=timedelta(minutes=1)
            )
        proxy.drop = False
        assert "could not undo reservation rsv_" in caplog.text
        retry = await ledger.reserve([usd("b", 4)], now=T0, idempotency_key="job-1")
        assert retry.admitted and retry.replayed  # the hold the lost call made
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (Decimal(4), 1)
        assert (await ledger.state("b", now=T0 + timedelta(minutes=1))).reserved == 0


async def test_cancelled_reserve_leaves_nothing_held(proxy: Proxy) -> None:
    async with RedisLedger(proxy.url, namespace=fresh_namespace(), time_source="caller") as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        proxy.delay = 0.2
        task = asyncio.ensure_future(ledger.reserve([usd("b", 4)], now=T0))
        await asyncio.sleep(0.05)  # the script has run on the server; its reply is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proxy.delay = 0
        assert await ledger.outstanding() == []
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (0, 0)
        # The script did hold before the cancellation landed: the undo released that hold.
        records = [k async for k in ledger._client.scan_iter(match=f"{{{ledger.namespace}}}:r:*")]
        assert len(records) == 1
        assert await ledger._client.hget(records[0], "state") == b"released"


@pytest.mark.parametrize("batching", [False, True], ids=["alone", "batched"])
async def test_a_reserve_arriving_after_its_cancellation_holds_nothing(
    proxy: Proxy, direct: redis.asyncio.Redis, batching: bool
) -> None:
    # The reserve command is sent, then its caller is cancelled before Redis has run it.
    # Alone, the ledger's undo goes on another connection and reaches Redis first, the
    # reserve after it. Batched, the undo waits behind the reserve on the one pipelined
    # connection, until that connection stalls past the socket timeout and the undo goes
    # again on a new one (then it too runs first). Either way nothing stays held.
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), time_source="caller", batching=batching
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        before = await evalsha_calls(direct)
        release = proxy.hold_next = asyncio.Event()
        task = asyncio.ensure_future(ledger.reserve([usd("b", 4)], now=T0))
        await asyncio.wait_for(proxy.holding.wait(), 10)  # sent, held, not yet run
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if not batching:
            async with asyncio.timeout(10):
                while await evalsha_calls(direct) < before + 1:
                    await asyncio.sleep(0.01)
        ran = await evalsha_calls(direct) - before
        # Alone: only the undo has run so far. Batched: at most the resent undo.
        assert ran == 1 if not batching else ran <= 1
        release.set()  # the held reserve reaches Redis and runs
        async with asyncio.timeout(10):
            while await evalsha_calls(direct) < before + 2:
                await asyncio.sleep(0.01)
        if batching:  # the first undo, held behind the reserve, may still be on its way
            async with asyncio.timeout(10):
                while (await ledger.state("b", now=T0)).reserved:
                    await asyncio.sleep(0.01)
        else:
            assert await evalsha_calls(direct) == before + 2
        assert await ledger.outstanding() == []
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (0, 0)
        assert (await ledger.reserve([usd("b", 10)], now=T0)).admitted  # all 10 still free


async def test_a_ledger_from_a_url_queues_calls_past_its_pool_size(
    redis_server: RedisServer,
) -> None:
    # 500 concurrent calls on a 64-connection pool: each waits its turn (up to the socket
    # timeout) rather than fail with "Too many connections".
    async with RedisLedger(
        redis_server.url, namespace=fresh_namespace(), time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(1000)))
        decisions = await asyncio.gather(
            *(ledger.reserve([usd("b", 1)], now=T0) for _ in range(500))
        )
        assert all(d.admitted for d in decisions)
        assert (await ledger.state("b", now=T0)).outstanding == 500


async def test_closed_port_is_budget_unavailable_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = REDIS_FAULTS_PASSWORD
    url = f"redis://:{secret}@127.0.0.1:{free_port()}/0"
    async with RedisLedger(
        url, namespace=fresh_namespace(), socket_timeout=0.5, time_source="caller"
    ) as ledger:
        with pytest.raises(BudgetUnavailable) as info:
            await ledger.reserve([usd("b", 1)], now=T0, idempotency_key="k")
        assert secret not in repr(ledger)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert secret not in caplog.text
    cause = info.value.__cause__
    assert cause is not None and secret not in str(cause)


@pytest.mark.slow
async def test_restart_with_aof_keeps_holds_and_idempotency(tmp_path: Path) -> None:
    with RedisServer(appendonly=True, dir=tmp_path) as server:
        async with RedisLedger(
            server.url, namespace=fresh_namespace(), socket_timeout=1.0, time_source="caller"
        ) as ledger:
            await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
            first = await ledger.reserve([usd("b", 6)], now=T0, idempotency_key="job-1")
            assert first.reservation is not None
            server.kill()  # SIGKILL: no shutdown save, only the AOF survives
            with pytest.raises(BudgetUnavailable):
                await ledger.reserve([usd("b", 6)], now=T0, idempotency_key="job-1")
            server.start()
            again = await ledger.reserve([usd("b", 6)], now=T0, idempotency_key="job-1")
            assert again.replayed
            assert again.reservation is not None
            assert again.reservation.id == first.reservation.id
            assert not (await ledger.reserve([usd("b", 6)], now=T0)).admitted
            state = await ledger.state("b", now=T0)
            assert (state.reserved, state.outstanding) == (Decimal(6), 1)
