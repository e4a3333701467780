"""RedisLedger against a real redis-server: operations, atomicity, idempotency, the formula,
script reloading, hash tags and bad input. Faults and cancellation: test_redis_faults.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from quotaguard.engine import (
    Budget,
    CalendarMonth,
    Charge,
    FixedWindow,
    NoWindow,
    ReservationState,
    RollingDays,
    Unit,
    Usage,
    used_micro,
)
from quotaguard.errors import BudgetUnavailable, InvalidInput, ReservationNotFound, UnknownBudget
from quotaguard.ledger import MemoryLedger
from quotaguard.ledger.redis import SCRIPTS, RedisLedger
from quotaguard.ledger.redis.scripts import sha1
from tests._support.redis_ledger import fresh_namespace, raw_snapshot
from tests._support.scenario import scenario
from tests._support.secrets import REDIS_URL_PASSWORD

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def usd(budget: str, amount: str | int) -> Charge:
    return Charge(budget, Decimal(amount), Unit.USD)


# -- every operation, side by side with MemoryLedger ---------------------------------------


async def test_every_operation_matches_memory_ledger(rl: RedisLedger) -> None:
    expected = await scenario(MemoryLedger())
    got = await scenario(rl)
    assert got == expected
    assert got[4][0] is False  # the scenario really rejects something
    assert got[5][0] is True


async def test_removed_budget_keeps_its_commits(rl: RedisLedger) -> None:
    await rl.put_budget(Budget("x", Unit.USD, Decimal(10)))
    d = await rl.reserve([usd("x", 4)], now=T0)
    await rl.commit(d.reservation.id, now=T0)
    await rl.remove_budget("x")
    with pytest.raises(UnknownBudget):
        await rl.state("x", now=T0)
    await rl.put_budget(Budget("x", Unit.USD, Decimal(10)))
    assert (await rl.state("x", now=T0)).committed == Decimal(4)


# -- atomicity and idempotency under concurrency -------------------------------------------


@pytest.mark.parametrize(("limit", "size"), [("100", "0.07"), ("37", "1")])
async def test_concurrent_reserves_admit_exactly_what_fits(
    client: aioredis.Redis, limit: str, size: str
) -> None:
    namespace = fresh_namespace()
    # Four ledgers on one namespace: four "workers" racing for one budget.
    ledgers = [
        RedisLedger(client=client, namespace=namespace, time_source="caller") for _ in range(4)
    ]
    await ledgers[0].put_budget(Budget("shared", Unit.USD, Decimal(limit)))
    decisions = await asyncio.gather(
        *(ledgers[i % 4].reserve([usd("shared", size)], now=T0) for i in range(2000))
    )
    admitted = sum(d.admitted for d in decisions)
    assert admitted == int(Decimal(limit) // Decimal(size))
    state = await ledgers[1].state("shared", now=T0)
    assert state.reserved == admitted * Decimal(size)
    assert state.outstanding == admitted
    assert state.remaining < Decimal(size)
    for ledger in ledgers:
        await ledger.aclose()


async def test_same_key_fifty_times_concurrently_holds_once(rl: RedisLedger) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))
    decisions = await asyncio.gather(
        *(rl.reserve([usd("b", 3)], now=T0, idempotency_key="same") for _ in range(50))
    )
    assert all(d.admitted for d in decisions)
    assert len({d.reservation.id for d in decisions if d.reservation}) == 1
    assert sum(not d.replayed for d in decisions) == 1
    state = await rl.state("b", now=T0)
    assert (state.reserved, state.outstanding) == (Decimal(3), 1)


async def test_idempotency_key_with_other_charges_is_refused(rl: RedisLedger) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(100)))
    first = await rl.reserve([usd("b", 3)], now=T0, idempotency_key="k")
    with pytest.raises(InvalidInput) as info:
        await rl.reserve([usd("b", "3.5")], now=T0, idempotency_key="k")
    assert info.value.field == "idempotency_key"
    assert first.reservation is not None and first.reservation.id in str(info.value)


# -- the formula: Lua and the engine agree ------------------------------------------------

_micro = st.integers(min_value=0, max_value=2**50)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    committed=_micro,
    reserved=_micro,
    reported=st.none() | _micro,
    since=_micro,
    limit=_micro,
    inside=st.floats(0, 1),
    covers=st.booleans(),
)
async def test_lua_formula_agrees_with_engine(
    rl: RedisLedger,
    committed: int,
    reserved: int,
    reported: int | None,
    since: int,
    limit: int,
    inside: float,
    covers: bool,
) -> None:
    held_inside = int(reserved * inside) if reported is not None and covers else 0  # <= reserved
    counts = reported is not None
    reply = await rl._call(
        "formula", committed, reserved, int(counts), reported or 0, since, 0, 0, held_inside,
        int(covers), limit,
    )  # fmt: skip
    usage = Usage(
        committed,
        reserved,
        reported,
        since if counts else 0,
        inside=held_inside,
        covers_sent=covers,
    )
    used = used_micro(usage)
    assert (int(reply[1]), int(reply[2])) == (used, limit - used)


_times = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)
_windows = st.sampled_from(["none", "month", "rolling", "fixed"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commits=st.lists(
        st.tuples(_times, st.integers(0, 10**9), st.none() | st.integers(0, 10**8)),
        min_size=1,
        max_size=8,
    ),
    report=st.none() | st.tuples(_times, st.integers(0, 10**9), st.booleans()),
    now=_times,
    kind=_windows,
    days=st.integers(1, 400),
)
async def test_windowed_usage_agrees_with_memory_ledger(
    client: aioredis.Redis,
    commits: list[tuple[datetime, int, int | None]],
    report: tuple[datetime, int, bool] | None,
    now: datetime,
    kind: str,
    days: int,
) -> None:
    # A report from after the window's end makes MemoryLedger's since-report sum negative
    # (an undercount, reported to its owner); reports come from the past, so keep them there.
    assume(report is None or report[0] <= now)
    window: Any = {
        "none": NoWindow(),
        "month": CalendarMonth(),
        "rolling": RollingDays(days),
        "fixed": FixedWindow(now - timedelta(days=days), now + timedelta(days=days // 2 + 1)),
    }[kind]
    budget = Budget("w", Unit.USD, Decimal(10**6), window)
    async with RedisLedger(
        client=client, namespace=fresh_namespace(), time_source="caller"
    ) as redis_ledger:
        states = []
        for ledger in (MemoryLedger(), redis_ledger):
            # Commit under no window (a fixed one would refuse some times), then switch.
            await ledger.put_budget(Budget("w", Unit.USD, Decimal(10**6)))
            for at, micro, sent_back in commits:  # sent_back: seconds before, or unsent
                d = await ledger.reserve([usd("w", 0)], now=at)
                assert d.reservation is not None
                if sent_back is not None:  # a covering report sums it by its floor time
                    sent_at = at - timedelta(seconds=sent_back)
                    await ledger.bind(d.reservation.id, "task", sent_at=sent_at)
                await ledger.commit(d.reservation.id, [Charge("w", Decimal(micro) / 10**6, "USD")],
                                    now=at)  # fmt: skip
            await ledger.put_budget(budget)
            if report is not None:
                await ledger.record_report(
                    "w", Decimal(report[1]) / 10**6, at=report[0], covers_sent=report[2]
                )
            states.append(await ledger.state("w", now=now))
        assert states[0] == states[1]


# -- scripts, keys, bad input ---------------------------------------------------------------


async def test_script_is_reloaded_after_script_flush(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    shas = [sha1(source) for source in SCRIPTS.values()]
    await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    assert await client.script_exists(*shas) == [True] * len(shas)  # every one, at once
    await client.script_flush()
    decision = await rl.reserve([usd("b", 1)], now=T0)
    assert decision.admitted
    assert await client.script_exists(*shas) == [True] * len(shas)


async def test_every_key_shares_the_namespace_hash_tag(
    rl: RedisLedger, client: aioredis.Redis
) -> None:
    for key in ("team:{x}", "braket:arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1", "}{"):
        await rl.put_budget(Budget(key, Unit.USD, Decimal(10), CalendarMonth()))
        d = await rl.reserve([usd(key, 1)], now=T0, idempotency_key=f"idem-{key}")
        assert d.reservation is not None
        await rl.bind(d.reservation.id, f"job-{key}")
        await rl.commit(d.reservation.id, now=T0)
    await rl.reserve([usd("}{", 1)], now=T0)
    keys = [k async for k in client.scan_iter(match=f"{{{rl.namespace}}}:*")]
    kinds = {k.decode().split(":")[1] for k in keys}
    assert {"leases", "idem", "ext", "budgets", "b", "c", "m", "r"} <= kinds
    assert {key_slot(k) for k in keys} == {key_slot(f"{{{rl.namespace}}}".encode())}
    # Nothing of this namespace lives outside the tag.
    everything = [k async for k in client.scan_iter(match=f"*{rl.namespace}*")]
    assert sorted(everything) == sorted(keys)


async def test_bad_input_changes_nothing(rl: RedisLedger, client: aioredis.Redis) -> None:
    await rl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    await rl.put_budget(Budget("s", Unit.SECONDS, Decimal(10)))
    held = await rl.reserve([usd("b", 2)], now=T0, idempotency_key="k")
    done = await rl.reserve([usd("b", 1)], now=T0)
    assert held.reservation is not None and done.reservation is not None
    await rl.commit(done.reservation.id, now=T0)
    rid = held.reservation.id
    before = await raw_snapshot(client, rl.namespace)
    naive = datetime(2026, 3, 15, 12, 0)
    bad: list[tuple[type[Exception], Any]] = [
        (InvalidInput, rl.reserve([], now=T0)),
        (InvalidInput, rl.reserve(["b"], now=T0)),  # type: ignore[list-item]
        (UnknownBudget, rl.reserve([usd("b", 1), usd("nope", 1)], now=T0)),
        (InvalidInput, rl.reserve([Charge("b", Decimal(1), Unit.SECONDS)], now=T0)),
        (InvalidInput, rl.reserve([usd("b", 1)], now=naive)),
        (InvalidInput, rl.reserve([usd("b", 1)], now=T0, lease=timedelta(0))),
        (InvalidInput, rl.reserve([usd("b", 1)], now=T0, idempotency_key="")),
        (InvalidInput, rl.reserve([usd("b", 1)], now=T0, idempotency_key="k")),
        (InvalidInput, rl.commit(rid, [usd("s", 1)], now=T0)),
        (InvalidInput, rl.commit(rid, [Charge("b", Decimal(1), Unit.SECONDS)], now=T0)),
        (InvalidInput, rl.commit(rid, ["x"], now=T0)),  # type: ignore[list-item]
        (ReservationNotFound, rl.commit("rsv_nope", now=T0)),
        (ReservationNotFound, rl.release(42, now=T0)),  # type: ignore[arg-type]
        (InvalidInput, rl.renew(rid, lease=timedelta(days=400), now=T0)),
        (ReservationNotFound, rl.renew("rsv_nope", lease=timedelta(1), now=T0 + timedelta(1))),
        (InvalidInput, rl.bind(rid, "")),
        (InvalidInput, rl.record_report("b", Decimal(-1), at=T0)),
        (InvalidInput, rl.record_report("b", 0.5, at=T0)),
        (UnknownBudget, rl.record_report("nope", Decimal(1), at=T0)),
        (InvalidInput, rl.put_budget(Budget("b", Unit.SECONDS, Decimal(10)))),
        (InvalidInput, rl.put_budget("b")),  # type: ignore[arg-type]
        (InvalidInput, rl.remove_budget("b")),
        (UnknownBudget, rl.remove_budget("nope")),
        (InvalidInput, rl.state("bad key", now=T0)),
        (UnknownBudget, rl.get_budget("nope")),
    ]
    for error, call in bad:
        with pytest.raises(error):
            await call
    assert await raw_snapshot(client, rl.namespace) == before


def test_constructor_refuses_bad_arguments() -> None:
    for bad in ("{qg}", "qg\n", "", "q g"):
        with pytest.raises(InvalidInput, match="namespace"):
            RedisLedger("redis://127.0.0.1:1/0", namespace=bad)
    with pytest.raises(InvalidInput, match="time_source"):
        RedisLedger("redis://127.0.0.1:1/0", time_source="lua")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_skew"):
        RedisLedger("redis://127.0.0.1:1/0", max_skew=30)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="url"):
        RedisLedger()
    with pytest.raises(InvalidInput, match="socket_timeout"):
        RedisLedger("redis://127.0.0.1:1/0", socket_timeout=0)
    with pytest.raises(InvalidInput) as info:
        RedisLedger(f"http://user:{REDIS_URL_PASSWORD}@127.0.0.1:1/0")
    assert REDIS_URL_PASSWORD not in str(info.value)


async def test_closed_ledger_is_unavailable_and_leaves_a_given_client_open(
    client: aioredis.Redis,
) -> None:
    ledger = RedisLedger(client=client, namespace=fresh_namespace(), time_source="caller")
    await ledger.aclose()
    with pytest.raises(BudgetUnavailable):
        await ledger.budgets()
    assert await client.ping()


async def test_reservation_state_survives_a_new_ledger_instance(client: aioredis.Redis) -> None:
    namespace = fresh_namespace()
    async with RedisLedger(client=client, namespace=namespace, time_source="caller") as one:
        await one.put_budget(Budget("b", Unit.USD, Decimal(5)))
        d = await one.reserve([usd("b", 5)], now=T0)
    async with RedisLedger(client=client, namespace=namespace, time_source="caller") as two:
        assert d.reservation is not None
        assert (await two.get(d.reservation.id)).state is ReservationState.HELD
        assert not (await two.reserve([usd("b", "0.000001")], now=T0)).admitted
