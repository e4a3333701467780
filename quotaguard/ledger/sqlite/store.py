"""The SQLite ledger's plumbing: one connection, one transaction per operation.

An operation is a function of the connection run inside one transaction (``BEGIN IMMEDIATE``
for writes, so a check and its hold see the same state). Where it runs:

- On the event loop's thread, when nothing else is using the connection and SQLite grants the
  lock at once: the connection's busy timeout is then 0, so a lock held elsewhere makes SQLite
  answer SQLITE_BUSY instead of waiting, and the loop never sleeps on a lock. The whole
  transaction is synchronous, so it cannot be cancelled half-way.
- Otherwise on a dedicated worker thread, with the configured busy timeout: the lock is held
  by another connection (another process), or the worker is busy with an earlier operation.

``_owner`` (a mutex) keeps the connection's use strictly serialized between the two threads;
the loop only ever *tries* it. The loop's connection does not checkpoint the WAL on commit
(that is disk I/O): every ``_CHECKPOINT_EVERY`` loop writes, a write goes to the worker,
which checkpoints after it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.sqlite.schema import init_schema

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_CHECKPOINT_EVERY = 256
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _Busy(Exception):
    """The loop thread could not have the connection or the lock at once: use the worker."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES


class SQLiteStore:
    """A lazily opened connection to ``path`` and the transactions run on it."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quotaguard-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._owner = threading.Lock()  # held by whichever thread is using the connection
        self._waits = True  # the connection's busy timeout is the configured one (not 0)
        self._loop_writes = 0  # writes committed on the loop since the last checkpoint

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                init_schema(conn, self.path)
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the worker checkpoints
            except BaseException:
                conn.close()  # never leak a half-opened connection
                raise
            self._conn = conn
        return self._conn

    def _wait_for_locks(self, conn: sqlite3.Connection, wait: bool) -> None:
        if self._waits != wait:
            ms = int(self._busy_timeout * 1000) if wait else 0
            conn.execute(f"PRAGMA busy_timeout={ms}")
            self._waits = wait

    def _tx(
        self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True, checkpoint: bool = False
    ) -> T:
        """On the worker thread: wait for the connection, then for SQLite's lock."""
        try:
            with self._owner:
                conn = self._connect()
                self._wait_for_locks(conn, True)
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                if checkpoint:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                return result
        except sqlite3.DatabaseError as exc:  # locked, disk full, not a database file…
            raise BudgetUnavailable(f"ledger {self.path} is unavailable: {exc}") from exc

    def _tx_on_loop(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        """On the loop thread, never waiting: raises :class:`_Busy` rather than block."""
        conn = self._conn
        if conn is None or not self._owner.acquire(blocking=False):
            raise _Busy
        try:
            self._wait_for_locks(conn, False)
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise _Busy from None  # nothing was kept: the worker runs it from the start
            raise BudgetUnavailable(f"ledger {self.path} is unavailable: {exc}") from exc
        finally:
            self._owner.release()

    async def _run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        undo: Callable[[sqlite3.Connection, T], object] | None = None,
    ) -> T:
        if self._closed:
            raise BudgetUnavailable(f"ledger {self.path} is closed")
        checkpoint = write and self._loop_writes >= _CHECKPOINT_EVERY
        if not checkpoint:
            try:
                result = self._tx_on_loop(fn, write)
            except _Busy:
                pass
            else:
                self._loop_writes += write
                return result
        else:
            self._loop_writes = 0
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, lambda: self._tx(fn, write=write, checkpoint=checkpoint)
        )
        # The thread cannot be interrupted. If we are cancelled, let it finish, undo what it
        # did (a reserve nobody will ever see must not hold budget), then propagate.
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            if undo is not None and not future.cancelled() and future.exception() is None:
                result = future.result()
                await asyncio.wait(
                    [
                        loop.run_in_executor(
                            self._executor, lambda: self._tx(lambda c: undo(c, result))
                        )
                    ]
                )
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            with self._owner:
                if self._conn is not None:
                    self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
