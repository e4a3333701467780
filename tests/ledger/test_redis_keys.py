"""Every key a Redis script touches is declared in KEYS (what Redis Cluster routes by).

The whole Redis suite runs with ``QUOTAGUARD_REDIS_CHECK_KEYS=1`` (tests/conftest.py): a
script that touches a key nobody declared fails there. These test the convention itself:
names only through ``K()``/``want()``, the ``need`` answer of a read phase that writes
nothing, and the extra round trip it costs only when a script finds a key by reading.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis.asyncio as aioredis

from quotaguard.engine import Budget, RollingDays, Unit
from quotaguard.ledger.encoding import epoch_us
from quotaguard.ledger.redis import SCRIPTS, RedisLedger
from quotaguard.ledger.redis.scripts import KEYS_OF, OPERATIONS, sha1
from quotaguard.ledger.redis.store import CHECK_KEYS_ENV
from tests._support.ledger import usd
from tests._support.redis_ledger import evalsha_calls, fresh_namespace, raw_snapshot
from tests.ledger.test_redis_scripts import lua_files

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def test_scripts_name_keys_only_through_the_declared_key_helpers() -> None:
    for name, text in lua_files().items():
        code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        if name != "base":  # base.lua defines K() and want(): the one place P .. is built
            assert "P .." not in code, name
            assert not re.search(r"KEYS\s*\[", code), name
    assert set(KEYS_OF) == set(OPERATIONS)


def test_the_suite_runs_with_the_key_check_on() -> None:
    import os

    assert os.environ.get(CHECK_KEYS_ENV) == "1"


@pytest.mark.redis
async def test_a_script_asks_for_keys_it_found_before_it_writes_anything(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    await rl.put_budget(Budget("a", Unit.USD, Decimal(10)))
    decision = await rl.reserve([usd("a", 3)], now=T0)
    assert decision.reservation is not None
    rid = decision.reservation.id
    prefix = f"{{{rl.namespace}}}:"
    before = await raw_snapshot(client, rl.namespace)
    # release, declaring the reservation's record only: its budget's keys are found by
    # reading it, so the script asks for them and changes nothing.
    keys = [prefix + k for k in KEYS_OF["release"]] + [f"{prefix}r:{rid}"]
    reply = await client.execute_command(
        "EVALSHA", sha1(SCRIPTS["release"]), len(keys), *keys, "release", prefix, 30_000_000,
        json.dumps([rid, epoch_us(T0), epoch_us(T0)]), "1",
    )  # fmt: skip
    assert reply[0] == b"need"
    assert {k.decode() for k in reply[1:]} == {f"{prefix}b:a", f"{prefix}s:a"}
    assert await raw_snapshot(client, rl.namespace) == before


@pytest.mark.redis
async def test_an_undeclared_key_is_an_error_with_the_check_and_unnoticed_without(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    prefix = f"{{{rl.namespace}}}:"
    call = ("EVALSHA", sha1(SCRIPTS["get_budget"]), 0, "get_budget", prefix, 0, '["a"]')
    with pytest.raises(aioredis.ResponseError, match=r"key not declared: \{rt-\w+\}:b:a"):
        await client.execute_command(*call, "1")
    assert await client.execute_command(*call) == [b"unknown"]  # a plain server: no check


@pytest.mark.redis
async def test_a_found_key_costs_one_more_round_trip_and_only_then(
    client: aioredis.Redis,
) -> None:
    namespace = fresh_namespace()
    async with (
        RedisLedger(client=client, namespace=namespace, time_source="caller") as one,
        RedisLedger(client=client, namespace=namespace, time_source="caller") as other,
    ):
        await one.put_budget(Budget("a", Unit.USD, Decimal(100)))
        await one.put_budget(Budget("b", Unit.USD, Decimal(100)))
        calls = await evalsha_calls(client)
        held = await one.reserve([usd("a", 1)], now=T0, lease=timedelta(seconds=30))
        assert held.reservation is not None
        assert await evalsha_calls(client) - calls == 1  # nothing due: every key known
        calls = await evalsha_calls(client)
        await one.release(held.reservation.id, now=T0)  # this ledger knows its budgets
        assert await evalsha_calls(client) - calls == 1
        due = await one.reserve([usd("a", 1)], now=T0, lease=timedelta(seconds=30))
        assert due.reservation is not None
        calls = await evalsha_calls(client)
        # On budget b, past a's lease: expiring it touches its record (asked for first),
        # then budget a's keys (read from the record).
        later = await one.reserve([usd("b", 1)], now=T0 + timedelta(minutes=1))
        assert later.admitted and await evalsha_calls(client) - calls == 3
        again = await one.reserve(
            [usd("a", 1)], now=T0 + timedelta(minutes=1), lease=timedelta(seconds=30)
        )
        assert again.reservation is not None
        calls = await evalsha_calls(client)
        # Due on a budget the call names: only its record is asked for.
        assert (await one.reserve([usd("a", 1)], now=T0 + timedelta(minutes=2))).admitted
        assert await evalsha_calls(client) - calls == 2
        third = await one.reserve([usd("a", 2)], now=T0 + timedelta(minutes=2))
        assert third.reservation is not None
        calls = await evalsha_calls(client)
        # Another process's ledger commits it: it asks the script which budgets it has.
        await other.commit(third.reservation.id, now=T0 + timedelta(minutes=2))
        assert await evalsha_calls(client) - calls == 2
        state = await one.state("a", now=T0 + timedelta(minutes=2))
        assert (state.committed, state.reserved) == (2, 1)  # "again" expired, the last held


@pytest.mark.redis
async def test_trim_asks_for_each_budgets_keys_then_the_ended_records_then_writes(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    from quotaguard.ledger.redis.codec import month_arg

    for key in ("a", "b"):
        await rl.put_budget(Budget(key, Unit.USD, Decimal(100), RollingDays(1)))
    ended = []
    for key in ("a", "b"):
        decision = await rl.reserve([usd(key, 1)], now=T0)
        assert decision.reservation is not None
        await rl.commit(decision.reservation.id, now=T0)
        ended.append(decision.reservation.id)
    prefix = f"{{{rl.namespace}}}:"
    now = T0 + timedelta(days=3)
    at, cut = epoch_us(now), epoch_us(now - timedelta(days=1))
    payload = json.dumps(
        [at, rl._clock_arg(now), cut, rl._month_of(now, at), month_arg(now)[2][0], 100]
    )
    keys = [prefix + k for k in KEYS_OF["trim"]]

    async def trim() -> list[bytes]:
        reply: list[bytes] = await client.execute_command(
            "EVALSHA", sha1(SCRIPTS["trim"]), len(keys), *keys, "trim", prefix, 30_000_000,
            payload, "1",
        )  # fmt: skip
        return reply

    state = await rl.state("a", now=now)
    before = await raw_snapshot(client, rl.namespace)
    # The budgets are found in 'budgets', the ended records in 'ended': all asked for at
    # once (a budget not yet declared counts as dropping nothing, so the ended records the
    # rest of the batch may reach are asked for too), and nothing is written.
    reply = await trim()
    assert reply[0] == b"need"
    assert {k.decode() for k in reply[1:]} == {
        prefix + kind + key for kind in ("b:", "c:", "f:", "m:") for key in ("a", "b")
    } | {f"{prefix}r:{rid}" for rid in ended}
    assert await raw_snapshot(client, rl.namespace) == before
    keys += [k.decode() for k in reply[1:]]
    assert await trim() == [b"ok", 2, 2, 0]  # 2 commits, 2 records, nothing more
    assert not await client.exists(*(f"{prefix}r:{rid}" for rid in ended))
    assert not await client.exists(f"{prefix}c:a", f"{prefix}c:b")
    assert await rl.state("a", now=now) == state
