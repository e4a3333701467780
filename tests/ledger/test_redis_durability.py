"""RedisLedger's durability check at connect, its policy, and its settings' validation.

Every server here is a private redis-server: the session's one (AOF off), one with AOF and
``appendfsync always``, one with ``everysec``, and one where ``CONFIG`` is disabled as
managed services do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.ledger.redis import RedisLedger
from quotaguard.ledger.redis.durability import WRITES
from quotaguard.ledger.redis.scripts import OPERATIONS, SCRIPTS
from tests._support.ledger import usd
from tests._support.redis_ledger import fresh_namespace
from tests._support.redis_server import RedisServer
from tests._support.times import T0

pytestmark = pytest.mark.redis

LOSS = "CAN LOSE ACKNOWLEDGED HOLDS"
UNKNOWN = "durability unknown"


@pytest.fixture
def aof_always(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, dir=tmp_path) as server:
        yield server


@pytest.fixture
def everysec(tmp_path: Path) -> Iterator[RedisServer]:
    extra = ("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(tmp_path))
    with RedisServer(extra=extra) as server:
        yield server


@pytest.fixture
def no_config() -> Iterator[RedisServer]:
    with RedisServer(extra=("--rename-command", "CONFIG", "")) as server:
        yield server


def warnings_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "quotaguard.ledger" and r.levelno == logging.WARNING and text in r.getMessage()
    ]


def ledger(url: str, **settings: Any) -> RedisLedger:
    return RedisLedger(url, namespace=fresh_namespace(), time_source="caller", **settings)


async def test_ack_warns_once_loudly_when_aof_is_off_however_many_calls_race(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard.ledger")
    async with ledger(redis_server.url) as rl:  # durability="ack" by default
        assert rl.server_durability is not None
        assert (rl.server_durability.appendonly, rl.server_durability.crash_safe) == ("no", False)
        await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))
        await asyncio.gather(*(rl.reserve([usd("b", 1)], now=T0) for _ in range(20)))
    found = warnings_with(caplog, LOSS)
    assert len(found) == 1, found
    assert "appendonly=no" in found[0] and "appendfsync always" in found[0]


async def test_ack_checks_at_the_first_call_without_async_with(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard.ledger")
    rl = ledger(redis_server.url)
    try:
        assert rl.server_durability is None
        await asyncio.gather(*(rl.budgets() for _ in range(10)))
        assert rl.server_durability is not None
    finally:
        await rl.aclose()
    assert len(warnings_with(caplog, LOSS)) == 1


async def test_ack_is_silent_on_aof_always_and_off_reads_nothing(
    aof_always: RedisServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard.ledger")
    async with ledger(aof_always.url) as rl:
        assert rl.server_durability is not None and rl.server_durability.crash_safe
        await rl.put_budget(Budget("b", Unit.USD, Decimal(1)))
    async with ledger(redis_server.url, durability="off") as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(1)))
        assert rl.server_durability is None
    assert warnings_with(caplog, "redis ledger") == []


async def test_strict_starts_on_aof_always(aof_always: RedisServer) -> None:
    async with ledger(aof_always.url, durability="strict") as rl:
        await rl.put_budget(Budget("b", Unit.USD, Decimal(1)))
        assert (await rl.reserve([usd("b", 1)], now=T0)).admitted


@pytest.mark.parametrize("which", ["redis_server", "everysec"])
async def test_strict_refuses_to_start_naming_the_settings(
    which: str, request: pytest.FixtureRequest
) -> None:
    server: RedisServer = request.getfixturevalue(which)
    want = "appendonly=no" if which == "redis_server" else "appendfsync=everysec"
    rl = ledger(server.url, durability="strict")
    with pytest.raises(BudgetUnavailable, match="appendonly yes and appendfsync always") as err:
        async with rl:
            raise AssertionError("started")
    assert want in str(err.value)
    with pytest.raises(BudgetUnavailable, match="is closed"):  # it closed what it opened
        await rl.budgets()


async def test_a_refused_config_is_said_once_and_strict_refuses(
    no_config: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "quotaguard.ledger")
    async with ledger(no_config.url) as rl:
        assert rl.server_durability is not None and not rl.server_durability.known
        await rl.put_budget(Budget("b", Unit.USD, Decimal(1)))
        await rl.budgets()
    assert len(warnings_with(caplog, UNKNOWN)) == 1
    with pytest.raises(BudgetUnavailable, match="refused CONFIG GET"):
        async with ledger(no_config.url, durability="strict"):
            raise AssertionError("started")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"durability": "sometimes"}, "durability"),
        ({"durability": None}, "durability"),
        ({"replicas": -1}, "replicas"),
        ({"replicas": True}, "replicas"),
        ({"replicas": 1.0}, "replicas"),
        ({"replicas": "1"}, "replicas"),
        ({"wait_timeout": 0}, "wait_timeout"),
        ({"wait_timeout": -1.0}, "wait_timeout"),
        ({"wait_timeout": True}, "wait_timeout"),
        ({"wait_timeout": float("nan")}, "wait_timeout"),
    ],
)
def test_bad_settings_are_invalid_input_before_anything_connects(
    settings: dict[str, Any], field: str
) -> None:
    # Port 1 is never a Redis: a ledger that tried to connect would fail differently.
    with pytest.raises(InvalidInput) as err:
        ledger("redis://127.0.0.1:1/0", **settings)
    assert err.value.field == field


def test_every_script_that_writes_waits_for_replicas_but_state_and_cancel() -> None:
    # A script writes when its text (helpers included) calls a write command. state only
    # sweeps due leases (a sweep a failover forgets is swept again); cancel undoes a reserve
    # nobody was told of (if the replica got that hold anyway, it lapses at its lease).
    commands = ("'HSET'", "'HDEL'", "'DEL'", "'ZADD'", "'ZREM'", "'HINCRBY'", "'SET'")
    writes = {op for op in OPERATIONS if any(c in SCRIPTS[op] for c in commands)}
    assert {"state", "cancel"} <= writes
    assert writes - {"state", "cancel"} == WRITES


@pytest.mark.parametrize(
    ("aof", "kept"), [(("--appendonly", "no"), False), (("--appendfsync", "everysec"), True)]
)
async def test_what_a_server_crash_keeps_by_setting(
    aof: tuple[str, ...], kept: bool, tmp_path: Path
) -> None:
    # SIGKILL of redis-server, restarted on the same port and dir. AOF off: every hold is
    # gone. everysec: the AOF was written (not yet fsynced) before the reply, so a process
    # crash keeps it; a machine crash may not (up to ~1 s; not something a test can do).
    # appendfsync always: tests/reliability/test_crashes.py.
    extra = ("--appendonly", "yes", "--dir", str(tmp_path), *aof)
    namespace = fresh_namespace()
    with RedisServer(extra=extra) as server:
        async with RedisLedger(
            server.url, namespace=namespace, time_source="caller", durability="off"
        ) as rl:
            await rl.put_budget(Budget("b", Unit.USD, Decimal(20)))
            held = [await rl.reserve([usd("b", 1)], now=T0) for _ in range(20)]
            assert all(d.admitted for d in held)
            server.kill()
            server.start()
            outstanding = await rl.outstanding()
        assert len(outstanding) == (20 if kept else 0)
