"""RedisLedger's batching: the concurrent calls of one event loop share one write and one
connection, each still its own EVALSHA, and fail or succeed one by one as they would alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.ledger.redis import RedisLedger
from quotaguard.ledger.redis.batching import FLUSH_AT, Batcher, Evalsha
from quotaguard.ledger.redis.lane import Call
from quotaguard.ledger.redis.store import CHECK_KEYS_ENV, NEED_ROUNDS
from tests._support.extras import python, without
from tests._support.ledger import usd
from tests._support.redis_ledger import Proxy, evalsha_calls, fresh_namespace
from tests._support.redis_server import RedisServer
from tests._support.scenario import scenario
from tests._support.times import T0

pytestmark = pytest.mark.redis


@pytest.fixture
async def direct(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on the server itself (past any proxy): what really ran there."""
    async with aioredis.Redis.from_url(redis_server.url) as client:
        yield client


async def _stats(client: aioredis.Redis) -> tuple[int, int]:
    """(EVALSHA calls, connections received) so far."""
    commands = await client.info("commandstats")
    stats = await client.info("stats")
    calls = int(commands.get("cmdstat_evalsha", {}).get("calls", 0))
    return calls, int(stats["total_connections_received"])


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "alone"])
async def test_concurrent_reserves_share_one_connection_each_its_own_evalsha(
    redis_server: RedisServer, direct: aioredis.Redis, batching: bool
) -> None:
    async with RedisLedger(
        redis_server.url, namespace=fresh_namespace(), time_source="caller", batching=batching
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(100)))
        calls, connections = await _stats(direct)
        decisions = await asyncio.gather(
            *(ledger.reserve([usd("b", 1)], now=T0) for _ in range(150))
        )
        after_calls, after_connections = await _stats(direct)
        assert [d.admitted for d in decisions] == [True] * 100 + [False] * 50
        assert after_calls - calls == 150  # one script call per reserve, batched or not
        # One write per loop turn on one connection (the one put_budget opened), against one
        # connection per call in flight without batching.
        opened = after_connections - connections
        assert opened == 0 if batching else opened > 10
        assert (await ledger.state("b", now=T0)).outstanding == 100


@pytest.mark.parametrize("check", [True, False], ids=["keys-checked", "unchecked"])
def test_a_packed_call_is_what_redis_py_would_write(
    monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    if not check:
        monkeypatch.delenv(CHECK_KEYS_ENV)
    ledger = RedisLedger(client=aioredis.Redis(port=1), namespace="n", durability="off")
    assert ledger._check == ((b"1",) if check else ())  # the flag after the payload, or none
    encode = aioredis.Connection().pack_command
    for op, keys in [
        ("reserve", ("{n}:r:rsv_1", "{n}:b:a", "{n}:s:a")),
        ("get_budget", ("{n}:b:a",)),
        ("budgets", ()),
        ("get", ("{n}:r:\u00e9t\u00e9",)),  # never a real key (ids are ASCII): packed one by one
    ]:
        payload = b'["a",1]'
        expected = b"".join(encode(*ledger._command(op, keys, payload)))
        assert ledger._packers[op](keys, payload) == expected, op


async def test_an_error_reply_fails_its_own_call_only(rl: RedisLedger) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    results = await asyncio.gather(
        rl.reserve([usd("b", 1)], now=T0),
        rl._call("reserve", "not the reserve arguments"),
        rl.reserve([usd("b", 2)], now=T0),
        return_exceptions=True,
    )
    assert isinstance(results[1], BudgetUnavailable)
    assert "bad arguments" in str(results[1])
    assert [getattr(r, "admitted", None) for r in (results[0], results[2])] == [True, True]
    assert (await rl.state("b", now=T0)).reserved == 3


async def test_noscript_in_a_batch_loads_the_scripts_and_sends_those_calls_again(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))
    await client.script_flush()
    decisions = await asyncio.gather(*(rl.reserve([usd("b", 1)], now=T0) for _ in range(20)))
    assert all(d.admitted for d in decisions)
    state = await rl.state("b", now=T0)
    assert (state.reserved, state.outstanding) == (20, 20)


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "alone"])
async def test_calls_answered_need_go_again_with_the_keys_asked_for(
    client: aioredis.Redis, direct: aioredis.Redis, batching: bool
) -> None:
    namespace = fresh_namespace()
    async with (
        RedisLedger(client=client, namespace=namespace, time_source="caller") as one,
        RedisLedger(
            client=client, namespace=namespace, time_source="caller", batching=batching
        ) as other,
    ):
        await one.put_budget(Budget("b", Unit.USD, Decimal(100)))
        held = await asyncio.gather(*(one.reserve([usd("b", 1)], now=T0) for _ in range(40)))
        rids = [d.reservation.id for d in held if d.reservation is not None]
        sent: list[bytes] = []
        if other._batcher is not None:
            call = other._batcher.call

            def spy(packed: bytes) -> Any:
                sent.append(packed)
                return call(packed)

            other._batcher.call = spy  # type: ignore[method-assign]
        calls, connections = await _stats(direct)
        # other knows none of these reservations: each commit asks for its budget's keys.
        done = await asyncio.gather(*(other.commit(rid, now=T0) for rid in rids))
        after_calls, after_connections = await _stats(direct)
        assert all(r.state.value == "committed" for r in done)
        assert after_calls - calls == 2 * 40  # each its own EVALSHA: need, then the commit
        if batching:  # both rounds in batches, on the connections already open and one more
            assert len(sent) == 2 * 40
            assert b"{%s}:b:b" % namespace.encode() in sent[-1]
            assert after_connections - connections <= 2
        else:
            assert after_connections - connections > 10
        state = await one.state("b", now=T0)
        assert (state.committed, state.reserved) == (40, 0)


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "alone"])
async def test_a_script_that_keeps_asking_is_unavailable_after_the_bound(
    client: aioredis.Redis, direct: aioredis.Redis, batching: bool
) -> None:
    # A stand-in script that asks for one more key each round, however many it is given.
    sha = (await client.script_load("return {'need', 'k' .. #KEYS}")).encode()
    async with RedisLedger(
        client=client, namespace=fresh_namespace(), durability="off", batching=batching
    ) as ledger:
        ledger._shas["get"] = sha
        if ledger._packers:
            static, tails = ledger._static["get"], ledger._tails["get"]
            ledger._packers["get"] = Evalsha(sha, static, tails, ledger._check)
        calls, _ = await _stats(direct)
        with pytest.raises(BudgetUnavailable, match=f"after {NEED_ROUNDS} rounds"):
            await ledger.get("rsv_x")
        assert (await _stats(direct))[0] - calls == NEED_ROUNDS


async def test_a_caller_cancelled_after_the_write_is_undone_and_the_others_answered(
    proxy: Proxy,
) -> None:
    async with RedisLedger(proxy.url, namespace=fresh_namespace(), time_source="caller") as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        proxy.delay = 0.2
        tasks = [asyncio.ensure_future(ledger.reserve([usd("b", 1)], now=T0)) for _ in range(5)]
        await asyncio.sleep(0.05)  # written together; the replies are in flight
        tasks[2].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        proxy.delay = 0
        assert isinstance(results[2], asyncio.CancelledError)
        assert all(getattr(r, "admitted", False) for i, r in enumerate(results) if i != 2)
        # The in-doubt reply was read and dropped (the connection is still in step); the
        # ledger's undo released what the cancelled reserve held.
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (4, 4)


async def test_a_lost_connection_fails_every_waiting_call_and_holds_nothing(
    proxy: Proxy,
) -> None:
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=0.5, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        proxy.lose_reserve_replies = 3  # this write and both of the client's retries
        results = await asyncio.gather(
            *(ledger.reserve([usd("b", 1)], now=T0) for _ in range(4)), return_exceptions=True
        )
        assert all(isinstance(r, BudgetUnavailable) for r in results)
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (0, 0)  # each one undone


async def test_a_server_that_never_answers_is_unavailable_within_the_deadline(
    proxy: Proxy,
) -> None:
    # A given client without socket timeouts: only the batcher's deadline ends the wait.
    pool = aioredis.BlockingConnectionPool.from_url(proxy.url, max_connections=4)
    async with aioredis.Redis(connection_pool=pool) as client:
        ledger = RedisLedger(
            client=client, namespace=fresh_namespace(), socket_timeout=0.2, durability="off"
        )
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        proxy.delay = 30  # the replies are held, the connection stays open
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(ledger.budgets() for _ in range(3)), return_exceptions=True
        )
        waited = asyncio.get_running_loop().time() - started
        assert all("did not answer within 1.8s" in str(r) for r in results)
        assert waited < 5
        proxy.delay = 0
        await ledger.aclose()


async def test_calls_past_the_bound_wait_for_room(
    proxy: Proxy, direct: aioredis.Redis, redis_server: RedisServer
) -> None:
    async with aioredis.Redis.from_url(proxy.url) as client:
        ledger = RedisLedger(client=client, namespace=fresh_namespace(), durability="off")
        assert ledger._batcher is not None
        ledger._batcher = Batcher(client.connection_pool, [], deadline=10, limit=2)
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))  # its connection opens
        calls, _ = await _stats(direct)
        proxy.delay = 0.3
        pending = asyncio.gather(*(ledger.get_budget("b") for _ in range(5)))
        await asyncio.sleep(0.15)
        assert (await _stats(direct))[0] - calls == 2  # the other three wait for room
        assert [budget.key for budget in await pending] == ["b"] * 5
        assert (await _stats(direct))[0] - calls == 5
        proxy.delay = 0
        await ledger.aclose()


async def test_aclose_waits_for_calls_in_flight(proxy: Proxy) -> None:
    ledger = RedisLedger(proxy.url, namespace=fresh_namespace(), durability="off")
    await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
    proxy.delay = 0.2
    # budgets asks for each budget's keys (need): aclose waits for that second round too.
    tasks = [asyncio.ensure_future(ledger.budgets()) for _ in range(3)]
    await asyncio.sleep(0.05)
    await ledger.aclose()
    assert all(t.done() and len(t.result()) == 1 for t in tasks)


async def test_which_clients_batch() -> None:
    cluster = aioredis.RedisCluster(host="127.0.0.1", port=1)  # never connected
    single = aioredis.Redis(port=1, single_connection_client=True)
    one = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool(port=1, max_connections=1))
    try:
        for client, batches in (
            (aioredis.Redis(port=1), True),
            (single, False),
            (one, False),  # the batcher would keep the pool's only connection
            (aioredis.Redis(port=1, protocol=3), False),  # push frames answer no call
            (cluster, False),
        ):
            ledger = RedisLedger(client=client, durability="off")  # type: ignore[arg-type]
            assert (ledger._batcher is not None) is batches, client
        off = RedisLedger(client=aioredis.Redis(port=1), durability="off", batching=False)
        assert off._batcher is None
        with pytest.raises(InvalidInput, match="batching"):
            RedisLedger("redis://127.0.0.1:1/0", batching="yes")  # type: ignore[arg-type]
    finally:
        await single.aclose()
        await cluster.aclose()


async def test_every_operation_sent_alone_matches_memory_ledger(client: aioredis.Redis) -> None:
    async with RedisLedger(
        client=client, namespace=fresh_namespace(), time_source="caller", batching=False
    ) as ledger:
        assert await scenario(ledger) == await scenario(MemoryLedger())


async def test_calls_go_out_a_few_to_a_write_without_waiting_for_the_turn(
    rl: RedisLedger,
) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))  # the lane opens
    assert rl._batcher is not None and rl._batcher._lane is not None
    lane = rl._batcher._lane
    writes: list[int] = []
    send = lane.send

    def spy(calls: Iterable[Call]) -> None:
        calls = list(calls)
        writes.append(len(calls))
        send(calls)

    lane.send = spy  # type: ignore[method-assign]
    decisions = await asyncio.gather(*(rl.reserve([usd("b", 1)], now=T0) for _ in range(7)))
    assert all(d.admitted for d in decisions)
    # Every FLUSH_AT calls go at once; the one left over at the end of the loop turn.
    assert FLUSH_AT == 2 and writes == [2, 2, 2, 1]


async def test_replies_in_pieces_reach_their_own_callers(proxy: Proxy) -> None:
    async with RedisLedger(proxy.url, namespace=fresh_namespace(), time_source="caller") as ledger:
        for i in range(12):
            await ledger.put_budget(Budget(f"b{i}", Unit.USD, Decimal(i + 1)))
        proxy.split = 3  # every reply cut into 3-byte pieces, a loop turn apart
        found = await asyncio.gather(*(ledger.get_budget(f"b{i}") for i in range(12)))
        held = await asyncio.gather(*(ledger.reserve([usd(f"b{i}", 1)], now=T0) for i in range(12)))
        proxy.split = 0
        assert [(b.key, b.limit) for b in found] == [(f"b{i}", Decimal(i + 1)) for i in range(12)]
        assert all(d.admitted for d in held)
        assert len({d.reservation.id for d in held if d.reservation is not None}) == 12


async def test_calls_left_by_a_lost_connection_go_again_and_hold_once(
    proxy: Proxy, direct: aioredis.Redis
) -> None:
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=0.5, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        before = await evalsha_calls(direct)
        proxy.lose_reserve_replies = 2  # the first write and its first resend: both ran
        decisions = await asyncio.gather(*(ledger.reserve([usd("b", 1)], now=T0) for _ in range(4)))
        assert all(d.admitted for d in decisions)
        assert await evalsha_calls(direct) - before >= 4 + 2  # some ran more than once...
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (4, 4)  # ...and each holds once


async def test_a_malformed_reply_drops_the_connection_and_the_calls_go_again(
    proxy: Proxy,
) -> None:
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=0.5, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        lane = ledger._batcher._lane if ledger._batcher is not None else None
        proxy.corrupt_reserve_replies = 1
        decisions = await asyncio.gather(*(ledger.reserve([usd("b", 2)], now=T0) for _ in range(3)))
        assert all(d.admitted for d in decisions)
        assert lane is not None and not lane.open  # the garbled connection was dropped
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (6, 3)


async def test_aclose_gives_the_lane_connection_back_to_the_pool(
    redis_server: RedisServer,
) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(redis_server.url, max_connections=2, timeout=1)
    async with aioredis.Redis(connection_pool=pool) as client:
        ledger = RedisLedger(client=client, namespace=fresh_namespace(), durability="off")
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        assert ledger._batcher is not None and ledger._batcher._lane is not None
        await ledger.aclose()
        # Both of the pool's connections can be had at once: the lane's came back.
        taken = [await pool.get_connection(), await pool.get_connection()]
        for conn in taken:
            await conn.send_command("PING")
            assert await conn.read_response() == b"PONG"
            await pool.release(conn)
    await pool.disconnect()  # a given pool is the caller's to close


async def test_a_stalled_connection_is_given_up_and_its_calls_go_again(
    proxy: Proxy, direct: aioredis.Redis
) -> None:
    async with RedisLedger(
        proxy.url, namespace=fresh_namespace(), socket_timeout=0.3, time_source="caller"
    ) as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        first = ledger._batcher._lane if ledger._batcher is not None else None
        release = proxy.hold_next = asyncio.Event()
        pending = asyncio.ensure_future(ledger.reserve([usd("b", 3)], now=T0))
        await asyncio.wait_for(proxy.holding.wait(), 10)  # written, held: no reply comes
        decision = await asyncio.wait_for(pending, 10)  # the resend, on a new connection
        assert decision.admitted and first is not None and not first.open
        before = await evalsha_calls(direct)
        release.set()  # the first send reaches Redis now: the same id, a retry
        async with asyncio.timeout(10):
            while await evalsha_calls(direct) == before:
                await asyncio.sleep(0.01)
        state = await ledger.state("b", now=T0)
        assert (state.reserved, state.outstanding) == (3, 1)  # held once


async def test_after_aclose_no_call_goes_out_and_no_connection_is_kept(
    proxy: Proxy, redis_server: RedisServer
) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(proxy.url, max_connections=2, timeout=1)
    async with aioredis.Redis(connection_pool=pool) as client:
        ledger = RedisLedger(client=client, namespace=fresh_namespace(), durability="off")
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(10)))
        batcher = ledger._batcher
        assert batcher is not None
        batcher._deadline = 0.3  # aclose gives up on the call below before it is answered
        proxy.delay = 1.0
        late = asyncio.ensure_future(ledger.get_budget("b"))
        await asyncio.sleep(0.05)
        await ledger.aclose()
        with pytest.raises(BudgetUnavailable):
            await late
        with pytest.raises(ConnectionError):
            await batcher.call(b"*1\r\n$4\r\nPING\r\n")
        assert batcher._lane is None and batcher._opening is None
        proxy.delay = 0
        taken = [await pool.get_connection(), await pool.get_connection()]  # none kept
        for conn in taken:
            await pool.release(conn)
    await pool.disconnect()


async def test_without_hiredis_each_call_goes_alone_and_works(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    code = f"""
import asyncio
from decimal import Decimal
from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ledger.redis import RedisLedger
from tests._support.times import T0

async def main():
    async with RedisLedger({redis_server.url!r}, namespace="no-hiredis", durability="off",
                           time_source="caller") as ledger:
        await ledger.put_budget(Budget("b", Unit.USD, Decimal(5)))
        decision = await ledger.reserve([Charge("b", Decimal(2), Unit.USD)], now=T0)
        print("batcher", ledger._batcher is not None, "admitted", decision.admitted)

asyncio.run(main())
"""
    status, out = await python(code, without("hiredis", tmp_path))
    assert status == 0, out
    assert "batcher False admitted True" in out
