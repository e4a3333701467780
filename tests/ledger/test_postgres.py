"""What only the PostgreSQL ledger has: its SQL formula and windows against the engine, its
versioned schema, one statement per reserve, no deadlocks, indexes, and its failures."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quotaguard.engine import (
    Budget,
    CalendarMonth,
    Charge,
    FixedWindow,
    NoWindow,
    RollingDays,
    Unit,
)
from quotaguard.engine.rules import Usage, used_micro
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger import MemoryLedger
from quotaguard.ledger.encoding import epoch_us
from tests._support.ledger import drop_schema, usd
from tests._support.times import T0

if TYPE_CHECKING:
    from quotaguard.ledger.postgres import PostgresLedger
    from tests._support.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture
async def schema(postgres_server: PostgresServer) -> AsyncIterator[str]:
    name = f"pt_{uuid.uuid4().hex[:10]}"
    yield name
    await drop_schema(postgres_server.dsn, name)


@pytest.fixture
async def pl(postgres_server: PostgresServer, schema: str) -> AsyncIterator[PostgresLedger]:
    from quotaguard.ledger.postgres import PostgresLedger

    async with PostgresLedger(
        postgres_server.dsn, schema=schema, pool_size=8, time_source="caller"
    ) as ledger:
        yield ledger


# -- the formula and the windows: SQL and the engine agree ---------------------------------

_micro = st.integers(min_value=0, max_value=2**50)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    committed=_micro,
    reserved=_micro,
    reported=st.none() | _micro,
    since=_micro,
    inside=st.floats(0, 1),
)
async def test_sql_formula_agrees_with_engine(
    pl: PostgresLedger,
    committed: int,
    reserved: int,
    reported: int | None,
    since: int,
    inside: float,
) -> None:
    # qg_usage's layout: [committed, reserved, reported, since, outstanding, at, inside,
    # covers]; the part of `reserved` inside a covering report comes off the report's side.
    since = since if reported is not None else 0
    held_inside = int(reserved * inside) if reported is not None else 0
    shown = "null" if reported is None else reported
    counters = f"[{committed}, {reserved}, {shown}, {since}, 0, null, {held_inside}, true]"
    used = await pl._value("SELECT qg_used($1::jsonb)", counters)
    expected = Usage(committed, reserved, reported, since, inside=held_inside, covers_sent=True)
    assert used == used_micro(expected)


_times = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commits=st.lists(st.tuples(_times, st.integers(0, 10**9)), min_size=1, max_size=6),
    report=st.none() | st.tuples(_times, st.integers(0, 10**9)),
    now=_times,
    kind=st.sampled_from(["none", "month", "rolling", "fixed"]),
    days=st.integers(1, 400),
)
async def test_windowed_usage_agrees_with_memory_ledger(
    pl: PostgresLedger,
    commits: list[tuple[datetime, int]],
    report: tuple[datetime, int] | None,
    now: datetime,
    kind: str,
    days: int,
) -> None:
    assume(report is None or report[0] <= now)  # reports come from the past
    window: Any = {
        "none": NoWindow(),
        "month": CalendarMonth(),
        "rolling": RollingDays(days),
        "fixed": FixedWindow(now - timedelta(days=days), now + timedelta(days=days // 2 + 1)),
    }[kind]
    key = f"w{uuid.uuid4().hex[:8]}"  # one ledger for every example: a budget of its own
    states = []
    for ledger in (MemoryLedger(), pl):
        await ledger.put_budget(Budget(key, Unit.USD, Decimal(10**6)))  # commit unwindowed
        for at, micro in commits:
            d = await ledger.reserve([usd(key, 0)], now=at)
            assert d.reservation is not None
            await ledger.commit(d.reservation.id, [usd(key, Decimal(micro) / 10**6)], now=at)
        await ledger.put_budget(Budget(key, Unit.USD, Decimal(10**6), window))
        if report is not None:
            await ledger.record_report(key, Decimal(report[1]) / 10**6, at=report[0])
        states.append(await ledger.state(key, now=now))
    assert states[0] == states[1]


# -- the schema: versioned, migrated, refused when newer ----------------------------------


async def test_the_schema_records_its_version_and_refuses_a_newer_one(
    postgres_server: PostgresServer, schema: str
) -> None:
    from quotaguard.ledger.postgres import SCHEMA_VERSION, PostgresLedger

    async with PostgresLedger(postgres_server.dsn, schema=schema) as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(5)))
        meta = dict(await ledger._rows("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        await ledger._value("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(BudgetUnavailable, match="ledger schema 99, newer than this quotaguard"):
        async with PostgresLedger(postgres_server.dsn, schema=schema) as newer:
            await newer.budgets()


async def test_changed_functions_are_replaced_and_the_data_kept(
    postgres_server: PostgresServer, schema: str
) -> None:
    from quotaguard.ledger.postgres import PostgresLedger

    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as old:
        await old.put_budget(Budget("a", Unit.USD, Decimal(5)))
        held = await old.reserve([usd("a", 2)], now=T0)
        # As an older release left it: other functions, another digest.
        await old._value("DROP FUNCTION qg_reserve")
        await old._value("UPDATE meta SET value = 'older' WHERE key = 'digest'")
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as new:
        assert (await new.state("a", now=T0)).reserved == 2
        assert (await new.reserve([usd("a", 3)], now=T0)).admitted
        assert held.reservation is not None
        assert (await new.get(held.reservation.id)).charges == (usd("a", 2),)


async def test_a_version_1_schema_is_migrated_and_its_commits_get_floor_times(
    postgres_server: PostgresServer, schema: str
) -> None:
    from quotaguard.ledger.postgres import SCHEMA_VERSION, PostgresLedger

    sec = timedelta(seconds=1)
    # As version 1 left it: no report coverage, no floor times, the old overloads.
    downgrade = (
        f"{_BEFORE_ALERTS}; "
        "ALTER TABLE budgets DROP COLUMN covers, DROP COLUMN inside; "
        "ALTER TABLE commits DROP COLUMN floor_at; "
        "CREATE FUNCTION qg_sum(text, bigint, bigint) RETURNS bigint "
        "LANGUAGE sql AS 'SELECT 0::bigint'; "
        "CREATE FUNCTION qg_record_report(text, bigint, bigint, bigint, boolean, bigint) "
        "RETURNS text LANGUAGE sql AS 'SELECT NULL::text'; "
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'; "
        "UPDATE meta SET value = 'older' WHERE key = 'digest'"
    )
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as old:
        await old.put_budget(Budget("a", Unit.USD, Decimal(50)))
        held = await old.reserve([usd("a", 2)], now=T0)
        assert held.reservation is not None
        await old.bind(held.reservation.id, "task-1", sent_at=T0 + sec)
        await old.commit(held.reservation.id, now=T0 + 10 * sec)
        await old._run(lambda pool: pool.execute(downgrade), None)
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as new:
        assert await new._value("SELECT floor_at FROM commits") == epoch_us(T0 + sec)
        # Braket's figure at T0 + 5 s holds the work sent at T0 + 1 s: it is not added again.
        await new.record_report("a", Decimal(5), at=T0 + 5 * sec, covers_sent=True)
        state = await new.state("a", now=T0 + 20 * sec)
        assert (state.used, state.committed, state.covers_sent) == (Decimal(5), Decimal(2), True)
        meta = dict(await new._rows("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)


# What version 3 added (alert levels and the alert mark), taken off again; and version 2's
# qg_put_budget, without levels, which the migration must drop (a stale overload).
_BEFORE_ALERTS = (
    "ALTER TABLE budgets DROP COLUMN levels, DROP COLUMN thresholds, DROP COLUMN alert_epoch, "
    "DROP COLUMN alert_level; "
    "DROP FUNCTION qg_put_budget(text, text, text, bigint, text, bigint, bigint, bigint, text, "
    "text, bigint[]); "
    "CREATE FUNCTION qg_put_budget(text, text, text, bigint, text, bigint, bigint, bigint, text) "
    "RETURNS text LANGUAGE sql AS 'SELECT NULL::text'"
)


async def test_a_version_2_schema_gets_alert_levels_and_drops_the_old_put_budget(
    postgres_server: PostgresServer, schema: str
) -> None:
    from quotaguard.ledger.postgres import SCHEMA_VERSION, PostgresLedger

    downgrade = (
        f"{_BEFORE_ALERTS}; "
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'; "
        "UPDATE meta SET value = 'older' WHERE key = 'digest'"
    )
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as old:
        await old.put_budget(Budget("a", Unit.USD, Decimal(100)))
        assert (await old.reserve([usd("a", 60)], now=T0, lease=timedelta(days=1))).admitted
        await old._run(lambda pool: pool.execute(downgrade), None)
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as new:
        assert (await new.get_budget("a")).alert_levels == ()
        assert (await new.reserve([usd("a", 1)], now=T0)).alerts == ()
        await new.put_budget(Budget("a", Unit.USD, Decimal(100), alert_levels=(50, 90)))
        crossed = await new.reserve([usd("a", 1)], now=T0)
        assert [(a.level, a.used) for a in crossed.alerts] == [(50, Decimal(62))]
        overloads = await new._value(
            "SELECT count(*) FROM pg_proc WHERE proname = 'qg_put_budget' "
            "AND pronamespace = $1::regnamespace",
            schema,
        )
        assert overloads == 1
        meta = dict(await new._rows("SELECT key, value FROM meta"))
        assert meta["schema_version"] == str(SCHEMA_VERSION)
    # The mark is a column of the budget row, written in the reserve's own transaction.
    async with PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") as again:
        assert (await again.reserve([usd("a", 1)], now=T0)).alerts == ()
        row = await again._row("SELECT levels, alert_level FROM budgets")
        assert tuple(row) == ("50,90", 50)


async def test_processes_starting_together_set_the_schema_up_once(
    postgres_server: PostgresServer, schema: str
) -> None:
    from quotaguard.ledger.postgres import PostgresLedger

    ledgers = [
        PostgresLedger(postgres_server.dsn, schema=schema, time_source="caller") for _ in range(6)
    ]
    try:
        await asyncio.gather(*(lg.budgets() for lg in ledgers))  # each opens and migrates
        await ledgers[0].put_budget(Budget("a", Unit.USD, Decimal(5)))
        assert [len(await lg.budgets()) for lg in ledgers] == [1] * 6
    finally:
        await asyncio.gather(*(lg.aclose() for lg in ledgers))


# -- one statement per reserve; locks in key order -----------------------------------------


async def test_every_reserve_is_one_statement(pl: PostgresLedger, monkeypatch: Any) -> None:
    await pl.put_budget(Budget("a", Unit.USD, Decimal(10)))
    await pl.put_budget(Budget("b", Unit.USD, Decimal(10)))
    calls: list[object] = []
    run = pl._run

    async def counted(fn: Any, now: Any) -> Any:
        calls.append(fn)
        return await run(fn, now)

    monkeypatch.setattr(pl, "_run", counted)
    outcomes = [
        await pl.reserve([usd("a", 4), usd("b", 1)], now=T0),  # admitted
        await pl.reserve([usd("a", 7), usd("b", 1)], now=T0),  # rejected
        await pl.reserve([usd("a", 1)], now=T0, idempotency_key="k"),  # admitted
        await pl.reserve([usd("a", 1)], now=T0, idempotency_key="k"),  # replayed
    ]
    assert [(d.admitted, d.replayed) for d in outcomes] == [
        (True, False),
        (False, False),
        (True, False),
        (True, True),
    ]
    assert len(calls) == 4


class CountingProxy:
    """Forwards loopback TCP to ``upstream``, counting what the clients send (``requests``):
    a client that waits for each reply before it writes again sends one chunk per round
    trip."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.requests = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers += [cw, uw]

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: bool) -> None:
            while data := await r.read(65536):
                self.requests += up
                w.write(data)
                await w.drain()

        try:
            await asyncio.gather(pump(cr, uw, True), pump(ur, cw, False))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            cw.close()
            uw.close()


async def test_every_reserve_is_one_round_trip(
    postgres_server: PostgresServer, schema: str
) -> None:
    # Counted on the wire: asyncpg's pool once sent a reset query after every statement.
    from quotaguard.ledger.postgres import PostgresLedger

    async with CountingProxy(postgres_server.port) as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
        async with PostgresLedger(dsn, schema=schema, pool_size=1, time_source="caller") as pl:
            await pl.put_budget(Budget("a", Unit.USD, Decimal(10)))
            for _ in range(2):  # the first of each kind also prepares its statement
                await pl.reserve([usd("a", 1)], now=T0)
                await pl.reserve([usd("a", 100)], now=T0)
            before = proxy.requests
            decisions = [await pl.reserve([usd("a", n)], now=T0) for n in (1, 100, 1, 100)]
            assert [d.admitted for d in decisions] == [True, False, True, False]
            assert proxy.requests - before == 4


async def test_crossing_multi_budget_reserves_never_deadlock(pl: PostgresLedger) -> None:
    # Every coroutine names the budgets in another order, and commits, releases or lets its
    # lease lapse (so reserves also end others' leases): with locks in key order none waits
    # for another in a cycle (PostgreSQL would abort one with "deadlock detected").
    keys = [f"k{i}" for i in range(6)]
    for key in keys:
        await pl.put_budget(Budget(key, Unit.USD, Decimal(10**6)))
    rng = random.Random(16)
    spent: dict[str, Decimal] = dict.fromkeys(keys, Decimal(0))

    async def one(n: int) -> None:
        chosen = rng.sample(keys, 3)
        now = T0 + timedelta(seconds=n)
        d = await pl.reserve(
            [usd(k, 1) for k in chosen], now=now, lease=timedelta(seconds=rng.choice([1, 900]))
        )
        assert d.reservation is not None
        roll = rng.random()
        if roll < 0.5:
            await pl.commit(d.reservation.id, now=now)
            for k in chosen:
                spent[k] += 1
        elif roll < 0.8:
            await pl.release(d.reservation.id, now=now)
        else:
            await pl.renew_many([d.reservation.id], lease=timedelta(seconds=1), now=now)

    await asyncio.gather(*(one(n) for n in range(400)))
    await pl.expire(now=T0 + timedelta(days=1))
    for key in keys:
        state = await pl.state(key, now=T0 + timedelta(days=1))
        assert (state.committed, state.reserved, state.outstanding) == (spent[key], 0, 0)


async def test_inside_stays_the_held_amount_sent_before_a_covering_report(
    pl: PostgresLedger,
) -> None:
    # Binds, commits, releases, lapses and covering reports race on two budgets; `inside`
    # is kept by each of them, never recounted but by a report: it must still equal a fresh
    # count of the held amounts sent before the stored report.
    keys = ["a", "b"]
    for key in keys:
        await pl.put_budget(Budget(key, Unit.USD, Decimal(10**6)))
    rng = random.Random(7)
    sec = timedelta(seconds=1)

    async def one(n: int) -> None:
        now = T0 + n * sec
        d = await pl.reserve(
            [usd(k, rng.randint(1, 9)) for k in rng.sample(keys, rng.randint(1, 2))],
            now=now,
            lease=rng.choice([sec, 10**5 * sec]),
        )
        assert d.reservation is not None
        rid = d.reservation.id
        await pl.bind(rid, f"t-{n}", sent_at=now + rng.randint(-50, 50) * sec)
        if rng.random() < 0.3:  # a later send time: out of, or into, the report
            await pl.bind(rid, f"t-{n}", sent_at=now + rng.randint(0, 100) * sec)
        roll = rng.random()
        if roll < 0.3:
            await pl.commit(rid, now=now)
        elif roll < 0.5:
            await pl.release(rid, now=now)

    async def report(n: int) -> None:
        await pl.record_report(
            rng.choice(keys), Decimal(n), at=T0 + n * sec, covers_sent=rng.random() < 0.8
        )

    await asyncio.gather(*(one(n) for n in range(200)), *(report(n) for n in range(0, 200, 7)))
    await pl.expire(now=T0 + 300 * sec)
    rows = await pl._rows(
        "SELECT b.key, b.inside, CASE WHEN b.covers THEN "
        "(SELECT COALESCE(sum(h.amount), 0)::bigint FROM holds h JOIN reservations r "
        "ON r.id = h.reservation_id WHERE h.budget = b.key "
        "AND r.state = 'held' AND r.sent_at < b.reported_at) ELSE 0 END FROM budgets b"
    )
    assert [(key, kept) for key, kept, _ in rows] == [(key, fresh) for key, _, fresh in rows]
    assert any(kept for _, kept, _ in rows)  # the run left something inside to check


async def test_listings_and_lookups_have_indexes(pl: PostgresLedger) -> None:
    await pl.put_budget(Budget("a", Unit.USD, Decimal(10)))
    plans = {}
    pool = pl._pool
    assert pool is not None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for name, where in [
            ("reservations_due", "state = 'held' AND lease_expires_at <= 5"),
            (
                "reservations_owed",
                "state = 'expired' AND (external_id IS NOT NULL OR "
                "in_doubt_since IS NOT NULL) ORDER BY ended_at, id",
            ),
            ("reservations_doubt", "state = 'held' AND in_doubt_since IS NOT NULL"),
            ("reservations_external", "external_id = 'x' ORDER BY created_at DESC LIMIT 1"),
        ]:
            plan = await conn.fetch(f"EXPLAIN SELECT * FROM reservations WHERE {where}")
            plans[name] = "\n".join(r[0] for r in plan)
        plan = await conn.fetch("EXPLAIN SELECT qg_sum('a', 0, 10)")
        commits = await conn.fetch(
            "EXPLAIN SELECT sum(amount) FROM commits WHERE budget = 'a' AND at >= 0 AND at < 9"
        )
        plans["commits_by_time"] = "\n".join(r[0] for r in commits)
        floors = await conn.fetch(
            "EXPLAIN SELECT sum(amount) FROM commits "
            "WHERE budget = 'a' AND floor_at >= 0 AND floor_at < 9"
        )
        plans["commits_by_floor"] = "\n".join(r[0] for r in floors)
    assert plan
    for name, text in plans.items():
        assert name in text, text


# -- failures -------------------------------------------------------------------------------


async def test_a_server_that_is_not_there_is_unavailable_and_the_dsn_stays_secret() -> None:
    from quotaguard.ledger.postgres import PostgresLedger
    from tests._support.redis_server import free_port

    dsn = f"postgresql://qg:s3cret-pw@127.0.0.1:{free_port()}/x"
    async with PostgresLedger(dsn, timeout=2) as ledger:
        with pytest.raises(BudgetUnavailable) as info:
            await ledger.reserve([Charge("a", Decimal(1), Unit.USD)], now=T0)
    assert "s3cret-pw" not in str(info.value) and "s3cret-pw" not in repr(ledger)


async def test_a_closed_ledger_is_unavailable(pl: PostgresLedger) -> None:
    await pl.aclose()
    with pytest.raises(BudgetUnavailable, match="closed"):
        await pl.budgets()
    await pl.aclose()  # twice is fine


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"schema": "Bad-Name"}, "schema"),
        ({"schema": ""}, "schema"),
        ({"pool_size": 0}, "pool_size"),
        ({"timeout": 0}, "timeout"),
        ({"time_source": "sundial"}, "time_source"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, Any], field: str) -> None:
    from quotaguard.errors import InvalidInput
    from quotaguard.ledger.postgres import PostgresLedger

    with pytest.raises(InvalidInput) as info:
        PostgresLedger("postgresql://127.0.0.1:1/x", **kw)
    assert info.value.field == field


def test_a_missing_server_binary_fails_saying_what_to_install(monkeypatch: Any) -> None:
    import tests._support.postgres_server as pg

    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    with pytest.raises(RuntimeError, match=r"initdb is not on PATH.*apt-get install postgresql"):
        pg.PostgresServer()


async def test_a_budget_removed_while_a_reserve_waits_for_it_holds_nothing(
    pl: PostgresLedger, postgres_server: PostgresServer, schema: str
) -> None:
    import asyncpg

    from quotaguard.errors import UnknownBudget

    await pl.put_budget(Budget("a", Unit.USD, Decimal(10)))
    other = await asyncpg.connect(postgres_server.dsn, server_settings={"search_path": schema})
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM budgets WHERE key = 'a' FOR UPDATE")
        waiting = asyncio.ensure_future(pl.reserve([usd("a", 1)], now=T0))
        await asyncio.sleep(0.5)  # the reserve has passed its first check, waits for the row
        assert not waiting.done()
        await other.execute("DELETE FROM budgets WHERE key = 'a'")
        await tx.commit()
        with pytest.raises(UnknownBudget):
            await waiting
    finally:
        await other.close()
    assert await pl.outstanding() == []
    assert await pl._value("SELECT count(*) FROM holds") == 0
