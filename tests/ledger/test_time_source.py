"""Whose clock judges leases: the ledger's own (SQLite: the machine's, Redis: the server's
``TIME``) by default, and a caller whose clock is more than ``max_skew`` away is refused with
:class:`ClockSkew` before anything changes. Memory (one process) keeps the caller's."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quotaguard.engine import Budget, ReservationState, Unit
from quotaguard.errors import BudgetUnavailable, ClockSkew, InvalidInput
from quotaguard.ledger import Ledger, MemoryLedger, SQLiteLedger
from quotaguard.ledger.base import TimeSource
from tests._support.ledger import usd

HOUR = timedelta(hours=1)
AHEAD = timedelta(minutes=61)


def wall() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def two_sqlite(tmp_path: Path, **kw: Any) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two processes' ledgers on one file, each with its default time source."""
    path = tmp_path / "fleet.sqlite3"
    async with SQLiteLedger(path, **kw) as one, SQLiteLedger(path, **kw) as two:
        yield one, two


@contextlib.asynccontextmanager
async def two_redis(
    request: pytest.FixtureRequest, **kw: Any
) -> AsyncIterator[tuple[Ledger, Ledger]]:
    from quotaguard.ledger.redis import RedisLedger

    server = request.getfixturevalue("redis_server")
    namespace = f"ts-{uuid.uuid4().hex[:10]}"
    async with (
        RedisLedger(server.url, namespace=namespace, **kw) as one,
        RedisLedger(server.url, namespace=namespace, **kw) as two,
    ):
        yield one, two


@contextlib.asynccontextmanager
async def two_postgres(
    request: pytest.FixtureRequest, **kw: Any
) -> AsyncIterator[tuple[Ledger, Ledger]]:
    from quotaguard.ledger.postgres import PostgresLedger
    from tests._support.ledger import drop_schema

    server = request.getfixturevalue("postgres_server")
    schema = f"ts_{uuid.uuid4().hex[:10]}"
    try:
        async with (
            PostgresLedger(server.dsn, schema=schema, **kw) as one,
            PostgresLedger(server.dsn, schema=schema, **kw) as two,
        ):
            yield one, two
    finally:
        await drop_schema(server.dsn, schema)


def fleet(request: pytest.FixtureRequest, tmp_path: Path, name: str, **kw: Any) -> Any:
    if name == "postgres":
        return two_postgres(request, **kw)
    return two_sqlite(tmp_path, **kw) if name == "sqlite" else two_redis(request, **kw)


OWN_TIME = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def test_default_time_sources(tmp_path: Path) -> None:
    assert MemoryLedger().time_source is TimeSource.CALLER
    assert MemoryLedger(time_source="system").time_source is TimeSource.SYSTEM
    sqlite = SQLiteLedger(tmp_path / "l.sqlite3")
    assert (sqlite.time_source, sqlite.max_skew) == (TimeSource.SYSTEM, timedelta(seconds=30))
    sqlite._executor.shutdown()
    from quotaguard.ledger.redis import RedisLedger

    assert RedisLedger("redis://127.0.0.1:1/0").time_source is TimeSource.SERVER
    from quotaguard.ledger.postgres import PostgresLedger

    assert PostgresLedger("postgresql://127.0.0.1:1/x").time_source is TimeSource.SERVER


@pytest.mark.parametrize("name", OWN_TIME)
async def test_one_fast_clock_cannot_expire_a_fleets_holds(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    # Each ledger once expired leases by the caller's now: one process 61 minutes ahead
    # ended everyone's 1 h leases, and 2 x 80.3 USD were sent on a 100 USD budget.
    async with fleet(request, tmp_path, name) as (worker, fast):
        await worker.put_budget(Budget("a", Unit.USD, Decimal(100)))
        held = await worker.reserve([usd("a", "80.3")], now=wall(), lease=HOUR)
        assert held.reservation is not None
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: fast.reserve([usd("a", "80.3")], now=wall() + AHEAD),
            lambda: fast.expire(now=wall() + AHEAD),
            lambda: fast.state("a", now=wall() + AHEAD),
            lambda: fast.renew_many([], lease=HOUR, now=wall() + AHEAD),
            lambda: fast.trim(now=wall() + AHEAD, keep=timedelta(0)),  # windows would move
        ]
        for call in calls:
            with pytest.raises(ClockSkew) as info:
                await call()
            assert isinstance(info.value, BudgetUnavailable)
            assert info.value.max_skew == timedelta(seconds=30)
            assert info.value.caller_time - info.value.ledger_time > AHEAD - timedelta(seconds=5)
        assert (await worker.get(held.reservation.id)).state is ReservationState.HELD
        again = await fast.reserve([usd("a", "80.3")], now=wall())
        assert not again.admitted  # the first hold still counts
        state = await fast.state("a", now=wall())
        assert (state.reserved, state.outstanding) == (Decimal("80.3"), 1)


@pytest.mark.parametrize("name", OWN_TIME)
async def test_leases_are_dated_by_the_ledgers_clock_within_the_skew(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    async with fleet(request, tmp_path, name) as (one, two):
        await one.put_budget(Budget("a", Unit.USD, Decimal(100)))
        behind = wall() - timedelta(seconds=20)  # a slow caller, inside max_skew
        before = wall()
        held = await one.reserve([usd("a", 1)], now=behind, lease=HOUR)
        after = wall()
        r = held.reservation
        assert r is not None and r.created_at == behind  # the caller's now dates the work
        assert before + HOUR <= r.lease_expires_at <= after + HOUR  # the ledger's the lease
        assert await two.get(r.id) == r
        renewed = await two.renew_many([r.id], lease=2 * HOUR, now=wall())
        assert [x.id for x in renewed] == [r.id]
        assert renewed[0].lease_expires_at >= after + 2 * HOUR
        # A caller behind by most of the lease cannot date an expiry early either.
        assert await one.expire(now=wall() + timedelta(seconds=25)) == 0


async def sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [
            row
            for table in ("budgets", "reservations", "holds", "commits")
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1")
        ]


SKEWED: list[tuple[str, Callable[[Ledger, str, datetime], Awaitable[Any]]]] = [
    ("reserve", lambda lg, rid, t: lg.reserve([usd("a", 1)], now=t)),
    ("commit", lambda lg, rid, t: lg.commit(rid, now=t)),
    ("release", lambda lg, rid, t: lg.release(rid, now=t)),
    ("renew", lambda lg, rid, t: lg.renew(rid, lease=HOUR, now=t)),
    ("renew_many", lambda lg, rid, t: lg.renew_many([rid], lease=HOUR, now=t)),
    ("expire", lambda lg, rid, t: lg.expire(now=t)),
    ("mark_in_doubt", lambda lg, rid, t: lg.mark_in_doubt(rid, now=t)),
    ("state", lambda lg, rid, t: lg.state("a", now=t)),
    ("record_report", lambda lg, rid, t: lg.record_report("a", Decimal(1), at=wall(), now=t)),
]


@pytest.mark.parametrize("name", OWN_TIME)
@pytest.mark.parametrize(
    "skew", [AHEAD, -AHEAD, timedelta(seconds=31)], ids=["ahead", "behind", "31s"]
)
@pytest.mark.parametrize(("op", "call"), SKEWED, ids=[s[0] for s in SKEWED])
async def test_a_skewed_caller_is_refused_before_anything_changes(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    name: str,
    skew: timedelta,
    op: str,
    call: Callable[[Ledger, str, datetime], Awaitable[Any]],
) -> None:
    async with fleet(request, tmp_path, name) as (ledger, _):
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(100)))
        held = await ledger.reserve([usd("a", 2)], now=wall(), lease=timedelta(seconds=40))
        assert held.reservation is not None
        rid = held.reservation.id
        before = await raw(ledger, tmp_path)
        with pytest.raises(ClockSkew) as info:
            await call(ledger, rid, wall() + skew)
        assert abs(info.value.ledger_time - wall()) < timedelta(seconds=5)
        assert str(info.value).startswith("the caller's clock")
        assert await raw(ledger, tmp_path) == before
        # Within the skew the same call goes through.
        await call(ledger, rid, wall() + timedelta(seconds=10))


async def raw(ledger: Ledger, tmp_path: Path) -> Any:
    if isinstance(ledger, SQLiteLedger):
        return await sqlite_rows(ledger.path)
    if type(ledger).__name__ == "PostgresLedger":
        from tests._support.ledger import postgres_rows

        return await postgres_rows(ledger)
    from tests._support.redis_ledger import raw_snapshot

    return await raw_snapshot(ledger._client, ledger.namespace)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", OWN_TIME)
async def test_a_report_from_the_future_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, name: str
) -> None:
    # Dated ten years ahead, a report once made every later (true) report look older.
    async with fleet(request, tmp_path, name) as (ledger, _):
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(100)))
        before = await raw(ledger, tmp_path)
        for ahead in (timedelta(days=3650), timedelta(minutes=5)):
            with pytest.raises(InvalidInput) as info:
                await ledger.record_report("a", Decimal(1), at=wall() + ahead)
            assert info.value.field == "at"
        assert await raw(ledger, tmp_path) == before
        await ledger.record_report("a", Decimal(7), at=wall() + timedelta(seconds=5))
        await ledger.record_report("a", Decimal(8), at=wall() - timedelta(days=1))  # older
        assert (await ledger.state("a", now=wall())).reported == 7


async def test_memory_and_sqlite_have_no_server_clock(tmp_path: Path) -> None:
    for make in (
        lambda: MemoryLedger(time_source="server"),  # type: ignore[arg-type]
        lambda: SQLiteLedger(tmp_path / "x.sqlite3", time_source="server"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput) as info:
            make()
        assert info.value.field == "time_source"
    assert not (tmp_path / "x.sqlite3").exists()


async def test_a_system_clock_memory_ledger_refuses_skew_too() -> None:
    async with MemoryLedger(time_source="system", max_skew=timedelta(seconds=5)) as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        with pytest.raises(ClockSkew):
            await ledger.reserve([usd("a", 1)], now=wall() + timedelta(seconds=6))
        assert (await ledger.reserve([usd("a", 1)], now=wall())).admitted
