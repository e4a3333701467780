"""What only the SQLite ledger has: a file, a schema version, a thread, other processes."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import NoReturn

import platformdirs
import pytest

from quotaguard.engine import Budget, CalendarMonth, ReservationState, Unit
from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger import MemoryLedger, SQLiteLedger
from quotaguard.ledger.sqlite import SCHEMA_VERSION, default_path
from quotaguard.ledger.sqlite.store import _CHECKPOINT_EVERY, _Busy
from tests.ledger.conftest import T0, usd


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    async with SQLiteLedger(path) as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
        assert await ledger.integrity_check() == "ok"
    assert read(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    assert read(path, "PRAGMA journal_mode") == [("wal",)]


async def test_reopening_keeps_budgets_reservations_commits_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "l.sqlite3"  # parents are created
    budget = Budget("m", Unit.USD, Decimal("12.5"), CalendarMonth())
    async with SQLiteLedger(path) as ledger:
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
    async with SQLiteLedger(path) as reopened:
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
    async with SQLiteLedger(path) as ledger:
        await ledger.put_budget(Budget("a", Unit.USD, Decimal(1)))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    conn.close()
    async with SQLiteLedger(path) as newer:
        with pytest.raises(BudgetUnavailable, match="upgrade quotaguard"):
            await newer.budgets()
        with pytest.raises(BudgetUnavailable):  # still refused; nothing half-open was kept
            await newer.state("a", now=T0)
    assert read(path, "SELECT value FROM meta") == [(str(SCHEMA_VERSION + 1),)]


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    async with SQLiteLedger(path) as ledger:
        with pytest.raises(BudgetUnavailable, match="unavailable"):
            await ledger.budgets()


async def test_a_locked_file_is_unavailable_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    async with SQLiteLedger(path, busy_timeout=0.05) as ledger:
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
    ledger = SQLiteLedger(tmp_path / "l.sqlite3")
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
    async with SQLiteLedger(path) as ledger:
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
    async with SQLiteLedger(tmp_path / "loop.sqlite3") as ledger:
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
    async with SQLiteLedger(path, busy_timeout=30) as ledger:
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
    async with SQLiteLedger(path) as ledger:
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
