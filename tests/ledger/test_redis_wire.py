"""The Redis scripts' argument format: one JSON array per call, checked field by field and
refused when it cannot be parsed; holds written in the old packed format still let go; and
renew_many as one script call."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from quotaguard.engine import Budget, Unit
from quotaguard.ledger.redis import SCRIPTS, RedisLedger
from quotaguard.ledger.redis.scripts import sha1
from tests._support.ledger import usd
from tests._support.redis_ledger import raw_snapshot
from tests._support.times import T0

pytestmark = pytest.mark.redis


_GOOD_RESERVE = [
    1_773_576_000_000_000,  # now (T0)
    None,  # the ledger's time: the server's
    [24314, 1_772_323_200_000_000, 1_775_001_600_000_000],  # the month around now
    900_000_000,  # lease, us
    "rsv_x",
    "",
    "",
    '[["b", "1000", "USD"]]',
    [["b", "USD", 1_000_000_000]],
]


def _without(i: int) -> list[Any]:
    return [a for j, a in enumerate(_GOOD_RESERVE) if j != i]


def _with(i: int, value: Any) -> list[Any]:
    return [value if j == i else a for j, a in enumerate(_GOOD_RESERVE)]


MALFORMED: list[tuple[str, list[Any]]] = [
    # The space-packed arguments of old, a budget key ending in a newline: they parsed to no
    # budget at all, and the reserve was admitted holding 0.
    (
        "packed",
        [
            *(1_773_576_000_000_000, "24314 1 2", 1, "rsv_x", "", "", "[]"),
            *("b\n USD", "b\n 1000000000"),
        ],
    ),
    ("not-json", ["{not json"]),
    ("empty", [""]),
    ("object", ['{"now": 1}']),
    ("field-missing", [_without(4)]),
    ("field-extra", [[*_GOOD_RESERVE, 1]]),
    ("str-for-int", [_with(0, "1773576000000000")]),
    ("float-for-int", [_with(3, 1.5)]),
    ("null-for-str", [_with(4, None)]),
    ("holds-not-a-list", [_with(8, "b USD 1000000000")]),
    ("hold-short", [_with(8, [["b", "USD"]])]),
    ("hold-amount-str", [_with(8, [["b", "USD", "1000000000"]])]),
    ("hold-key-empty", [_with(8, [["", "USD", 1]])]),
    ("holds-empty", [_with(8, [])]),
]


@pytest.mark.parametrize("args", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
async def test_a_script_refuses_arguments_it_cannot_parse(
    rl: RedisLedger, client: aioredis.Redis, args: list[Any]
) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    before = await raw_snapshot(client, rl.namespace)
    prefix = f"{{{rl.namespace}}}:"
    wire = [a if isinstance(a, (str, int)) else json.dumps(a) for a in args]
    with pytest.raises(ResponseError, match="bad arguments"):
        await client.execute_command(
            "EVALSHA", sha1(SCRIPTS["reserve"]), 1, prefix + "leases", "reserve", prefix,
            30_000_000, *wire,
        )  # fmt: skip
    assert await raw_snapshot(client, rl.namespace) == before
    assert (await rl.state("b", now=T0)).reserved == 0


async def test_renew_many_is_one_script_call_for_any_number_of_ids(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))
    held = [await rl.reserve([usd("b", 1)], now=T0) for _ in range(50)]
    ids = [d.reservation.id for d in held if d.reservation is not None]

    async def evalsha_calls() -> int:
        stats = await client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = await evalsha_calls()
    renewed = await rl.renew_many(ids, lease=timedelta(hours=1), now=T0 + timedelta(minutes=1))
    assert await evalsha_calls() - before == 1
    assert [r.id for r in renewed] == ids


async def test_a_hold_recorded_in_the_old_packed_format_still_lets_go(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    # Holds written before the JSON format ("key unit micro ..."), still held after an upgrade.
    await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    d = await rl.reserve([usd("b", 4)], now=T0)
    assert d.reservation is not None
    rkey = f"{{{rl.namespace}}}:r:{d.reservation.id}"
    await client.hset(rkey, "holds", "b USD 4000000")
    assert (await rl.state("b", now=T0)).reserved == 4
    await rl.release(d.reservation.id, now=T0)
    state = await rl.state("b", now=T0)
    assert (state.reserved, state.outstanding) == (0, 0)
