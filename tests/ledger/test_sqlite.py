"""What only the SQLite ledger has: a file, a schema version, a thread, other processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import stat
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import platformdirs
import pytest

from quotaguard.engine import Budget, CalendarMonth, ReservationState, Unit
from quotaguard.errors import BudgetUnavailable, InvalidInput
from quotaguard.ledger import MemoryLedger, SQLiteLedger
from quotaguard.ledger.sqlite import SCHEMA_VERSION, default_path
from quotaguard.ledger.sqlite.store import _CHECKPOINT_EVERY, _Busy
from tests._support.ledger import usd
from tests._support.times import T0


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
        assert await ledger.integrity_check() == "ok"
    assert read(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert read(path, "PRAGMA journal_mode") == [("wal",)]


async def test_reopening_keeps_budgets_reservations_commits_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "l.sqlite3"  # parents are created
    budget = Budget("m", Unit.USD, Decimal("12.5"), CalendarMonth())
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(budget)
        held = await ledger.reserve(
            [usd("m", "2")], now=T0, idempotency_key="k", lease=timedelta(hours=1)
        )
        done = await ledger.reserve([usd("m", "3")], now=T0)
        assert held.reservation is not None and done.reservation is not None
        await ledger.bind(held.reservation.id, "job-1")
        await ledger.commit(done.reservation.id, now=T0)
        await ledger.record_report("m", Decimal(4), at=T0)
        before = await ledger.state("m", now=T0)
    async with SQLiteLedger(path, time_source="caller") as reopened:
        assert await reopened.budgets() == [budget]
        assert await reopened.state("m", now=T0) == before
        assert [r.id for r in await reopened.outstanding()] == [held.reservation.id]
        assert await reopened.find_external("job-1") == await reopened.get(held.reservation.id)
        replay = await reopened.reserve([usd("m", "2")], now=T0, idempotency_key="k")
        assert replay.replayed and replay.reservation is not None
        assert replay.reservation.id == held.reservation.id
        assert (await reopened.get(done.reservation.id)).state is ReservationState.COMMITTED


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    conn.close()
    async with SQLiteLedger(path, time_source="caller") as newer:
        with pytest.raises(BudgetUnavailable, match="upgrade quotaguard"):
            await newer.budgets()
        with pytest.raises(BudgetUnavailable):  # still refused; nothing half-open was kept
            await newer.state("a", now=T0)
    assert read(path, "SELECT value FROM meta") == [(str(SCHEMA_VERSION + 1),)]


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    async with SQLiteLedger(path, time_source="caller") as ledger:
        with pytest.raises(BudgetUnavailable, match="unavailable"):
            await ledger.budgets()


async def test_a_locked_file_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    async with SQLiteLedger(path, busy_timeout=0.05, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(BudgetUnavailable, match="locked"):
                await ledger.reserve([usd("a", "1")], now=T0)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert (await ledger.state("a", now=T0)).reserved == 0
        assert (await ledger.reserve([usd("a", "1")], now=T0)).admitted


def test_default_path_is_in_the_user_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    state_dir = Path(platformdirs.user_state_dir("quotaguard"))
    assert default_path() == state_dir / "ledger.sqlite3"
    assert state_dir.is_relative_to(tmp_path)
    ledger = SQLiteLedger()  # nothing is opened until the first operation
    assert ledger.path == default_path()
    assert repr(ledger) == f"SQLiteLedger(path={str(default_path())!r})"
    assert not default_path().exists()
    ledger._executor.shutdown()


async def test_a_closed_ledger_is_unavailable(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.sqlite3", time_source="caller")
    await ledger.aclose()  # never opened: closes cleanly
    await ledger.aclose()  # and twice
    with pytest.raises(BudgetUnavailable, match="closed"):
        await ledger.budgets()


def _on_worker_only(ledger: SQLiteLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every transaction take the worker thread, as when another process holds the lock."""

    def busy(*args: object) -> NoReturn:
        raise _Busy

    monkeypatch.setattr(ledger, "_tx_on_loop", busy)


async def test_cancelling_a_reserve_mid_flight_holds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cancel.sqlite3"
    async with SQLiteLedger(path, time_source="caller") as ledger:
        _on_worker_only(ledger, monkeypatch)
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1000)))
        for attempt in range(40):
            task = asyncio.create_task(
                ledger.reserve([usd("a", "1")], now=T0, idempotency_key=f"k{attempt}")
            )
            for _ in range(attempt % 4):  # cancel at different points of the thread's work
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await ledger.outstanding() == []
            assert (await ledger.state("a", now=T0)).reserved == 0
        # The window was hit: some reserves ran to the end in the thread and were undone.
        undone = read(path, "SELECT COUNT(*) FROM reservations WHERE state = 'released'")[0][0]
        assert isinstance(undone, int) and undone > 0
        # An undone reserve frees its key: the retry holds afresh.
        retry = await ledger.reserve([usd("a", "1")], now=T0, idempotency_key="k1")
        assert retry.admitted and not retry.replayed


async def test_a_reserve_on_the_loop_thread_is_all_or_nothing_under_cancellation(
    tmp_path: Path,
) -> None:
    # An uncontended transaction runs on the loop thread, start to end without awaiting: a
    # cancellation lands before it (nothing held) or after it (the caller has the decision).
    async with SQLiteLedger(tmp_path / "loop.sqlite3", time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1000)))
        held: set[str] = set()
        for attempt in range(12):
            task = asyncio.create_task(ledger.reserve([usd("a", "1")], now=T0))
            for _ in range(attempt % 3):
                await asyncio.sleep(0)
            task.cancel()
            try:
                decision = await task
            except asyncio.CancelledError:
                continue
            assert decision.reservation is not None
            held.add(decision.reservation.id)
        assert held  # some ran before the cancellation arrived
        assert {r.id for r in await ledger.outstanding()} == held
        assert (await ledger.state("a", now=T0)).reserved == len(held)


async def test_a_lock_held_elsewhere_sends_the_work_to_the_thread_not_the_loop(
    tmp_path: Path,
) -> None:
    # The loop must stay free while SQLite's lock is held elsewhere: the blocker below lets go
    # from a loop callback, which could never run if the reserve waited on the loop thread.
    path = tmp_path / "busy.sqlite3"
    async with SQLiteLedger(path, busy_timeout=30, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            asyncio.get_running_loop().call_later(0.05, blocker.execute, "ROLLBACK")
            decision = await ledger.reserve([usd("a", "1")], now=T0)
        finally:
            blocker.close()
        assert decision.admitted
        assert (await ledger.state("a", now=T0)).reserved == 1


async def test_the_wal_stays_bounded_without_checkpoints_on_the_loop(tmp_path: Path) -> None:
    # The connection never checkpoints on commit; every _CHECKPOINT_EVERY-th write goes to the
    # worker, which does. Without that the WAL would grow by the same amount every write.
    path = tmp_path / "wal.sqlite3"
    wal = Path(f"{path}-wal")
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10**6)))
        for _ in range(_CHECKPOINT_EVERY // 2):
            await ledger.reserve([usd("a", "1")], now=T0)
        half = wal.stat().st_size  # what half a checkpoint interval of writes takes
        for _ in range(_CHECKPOINT_EVERY * 5):
            await ledger.reserve([usd("a", "1")], now=T0)
        assert wal.stat().st_size < 4 * half  # unchecked, it would be about 11 * half
        assert (
            await ledger.state("a", now=T0)
        ).outstanding == _CHECKPOINT_EVERY * 5 + _CHECKPOINT_EVERY // 2
    assert read(path, "SELECT COUNT(*) FROM holds") == [
        (_CHECKPOINT_EVERY * 5 + _CHECKPOINT_EVERY // 2,)
    ]


async def test_memory_ledger_repr_counts_only(tmp_path: Path) -> None:
    async with MemoryLedger() as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        await ledger.reserve([usd("a", "1")], now=T0)
        assert repr(ledger) == "MemoryLedger(budgets=1, reservations=1)"


async def test_out_of_order_commit_times_sum_correctly() -> None:
    # A clock that steps back: commits land out of order and windows still sum them right.
    async with MemoryLedger() as ledger:
        await ledger.put_budget(Budget("m", Unit.USD, Decimal(100), CalendarMonth()))
        times = [T0, T0 - timedelta(days=20), T0 + timedelta(hours=1), T0 - timedelta(hours=1)]
        for i, when in enumerate(times, start=1):
            decision = await ledger.reserve([usd("m", str(i))], now=when)
            assert decision.reservation is not None
            await ledger.commit(decision.reservation.id, now=when)
        state = await ledger.state("m", now=T0 + timedelta(hours=2))
        assert state.committed == 1 + 3 + 4  # the one from last month is out


# -- bad arguments, unwritable places, file modes, schema migration -------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"path": 123}, "path"),
        ({"path": b"l.sqlite3"}, "path"),
        ({"path": ""}, "path"),
        ({"busy_timeout": "x"}, "busy_timeout"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"busy_timeout": True}, "busy_timeout"),
        ({"busy_timeout": float("nan")}, "busy_timeout"),
        ({"time_source": "server"}, "time_source"),
        ({"time_source": "utc"}, "time_source"),
        ({"max_skew": 30}, "max_skew"),
        ({"max_skew": timedelta(0)}, "max_skew"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, dict) else ",".join(v),
)
def test_bad_constructor_arguments_name_the_field_and_write_nothing(
    tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    args = {"path": tmp_path / "state" / "l.sqlite3", **kwargs}
    with pytest.raises(InvalidInput) as info:
        SQLiteLedger(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert not (tmp_path / "state").exists()


async def test_an_unusable_path_is_a_quotaguard_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for path in (blocker / "l.sqlite3", blocker / "deeper" / "l.sqlite3", tmp_path):
        async with SQLiteLedger(path, time_source="caller") as ledger:
            with pytest.raises(BudgetUnavailable) as info:
                await ledger.budgets()
            assert str(path) in str(info.value)


async def test_the_state_directory_is_private_and_its_files_owner_only(tmp_path: Path) -> None:
    # Under umask 022 they were 0755 and 0644: any local user could read the ledger.
    old = os.umask(0o022)
    try:
        path = tmp_path / "state" / "quotaguard" / "ledger.sqlite3"
        async with SQLiteLedger(path, time_source="caller") as ledger:
            await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
            await ledger.reserve([usd("a", 1)], now=T0)
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)
            for f in files:
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        for d in (path.parent, path.parent.parent):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        # An existing file that others could read is made owner-only when opened.
        path.chmod(0o644)
        async with SQLiteLedger(path, time_source="caller") as ledger:
            await ledger.budgets()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# The schema of version 1 as it shipped, and a file written by it: a bound hold, an expired
# bound one (owed), a held one with an idempotency key, a commit and a report.
_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE budgets(
    key TEXT PRIMARY KEY, unit TEXT NOT NULL, limit_text TEXT NOT NULL, window TEXT NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0, outstanding INTEGER NOT NULL DEFAULT 0,
    reported INTEGER, reported_at INTEGER);
CREATE TABLE reservations(
    id TEXT PRIMARY KEY, idem TEXT UNIQUE, state TEXT NOT NULL, created_at INTEGER NOT NULL,
    lease_expires_at INTEGER NOT NULL, ended_at INTEGER, external_id TEXT,
    charges TEXT NOT NULL, actual TEXT);
CREATE INDEX reservations_due ON reservations(lease_expires_at) WHERE state = 'held';
CREATE INDEX reservations_external ON reservations(external_id) WHERE external_id IS NOT NULL;
CREATE INDEX reservations_lapsed ON reservations(ended_at)
    WHERE state = 'expired' AND external_id IS NOT NULL;
CREATE TABLE holds(
    reservation_id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY(reservation_id, budget)) WITHOUT ROWID;
CREATE TABLE commits(
    budget TEXT NOT NULL, at INTEGER NOT NULL, amount INTEGER NOT NULL, reservation_id TEXT);
CREATE INDEX commits_by_time ON commits(budget, at);
INSERT INTO meta VALUES('schema_version', '1');
INSERT INTO budgets VALUES('a', 'USD', '100', '{"kind": "none"}', 7000000, 2, 1000000,
    1773576000000000);
INSERT INTO reservations VALUES('rsv_bound', NULL, 'held', 1773576000000000, 1773579600000000,
    NULL, 'job-1', '[["a", "3", "USD"]]', NULL);
INSERT INTO reservations VALUES('rsv_keyed', 'k', 'held', 1773576000000000, 1773579600000000,
    NULL, NULL, '[["a", "4", "USD"]]', NULL);
INSERT INTO reservations VALUES('rsv_owed', 'k2', 'expired', 1773576000000000,
    1773576060000000, 1773576060000000, 'job-2', '[["a", "5", "USD"]]', NULL);
INSERT INTO holds VALUES('rsv_bound', 'a', 3000000);
INSERT INTO holds VALUES('rsv_keyed', 'a', 4000000);
INSERT INTO commits VALUES('a', 1773576000000000, 2000000, 'rsv_done');
"""


async def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(_V1)
    async with SQLiteLedger(path, time_source="caller") as ledger:
        assert await ledger.integrity_check() == "ok"
        state = await ledger.state("a", now=T0)
        assert (state.committed, state.reserved, state.outstanding, state.in_doubt) == (2, 7, 2, 0)
        assert [r.id for r in await ledger.lapsed()] == ["rsv_owed"]
        assert (await ledger.find_external("job-1")).id == "rsv_bound"  # type: ignore[union-attr]
        replay = await ledger.reserve([usd("a", 4)], now=T0, idempotency_key="k")
        assert replay.replayed and replay.reservation is not None
        marked = await ledger.mark_in_doubt("rsv_keyed", now=T0)
        assert marked.in_doubt_since == T0 and marked.sent_at is None
        bound = await ledger.bind("rsv_bound", "job-1", sent_at=T0)
        assert bound.sent_at == T0
        await ledger.expire(now=T0 + timedelta(hours=2))
        assert [r.id for r in await ledger.lapsed()] == ["rsv_owed", "rsv_bound", "rsv_keyed"]
    assert read(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    indexes = {r[0] for r in read(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"reservations_owed", "reservations_doubt"} <= indexes
    assert "reservations_lapsed" not in indexes
    async with SQLiteLedger(path, time_source="caller") as again:  # migrated once, opens as is
        assert (await again.get("rsv_keyed")).in_doubt_since == T0


async def test_the_in_doubt_fields_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    async with SQLiteLedger(path, time_source="caller") as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(10)))
        one = await ledger.reserve([usd("a", 1)], now=T0)
        two = await ledger.reserve([usd("a", 1)], now=T0)
        assert one.reservation is not None and two.reservation is not None
        await ledger.mark_in_doubt(one.reservation.id, now=T0 + timedelta(seconds=1))
        await ledger.bind(two.reservation.id, "job", sent_at=T0 + timedelta(seconds=2))
        before = (await ledger.in_doubt(), await ledger.get(two.reservation.id))
    async with SQLiteLedger(path, time_source="caller") as reopened:
        assert (await reopened.in_doubt(), await reopened.get(two.reservation.id)) == before
        assert (await reopened.state("a", now=T0)).in_doubt == 1
