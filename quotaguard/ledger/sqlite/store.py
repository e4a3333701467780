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

The ledger is private to its user: the directories created for it are 0700, the database
and its ``-wal`` and ``-shm`` files 0600 (SQLite gives those two the database's mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from quotaguard.errors import BudgetUnavailable
from quotaguard.ledger.sqlite.schema import init_schema

__all__ = ["SQLiteStore"]

log = logging.getLogger("quotaguard.ledger")

T = TypeVar("T")

_CHECKPOINT_EVERY = 256
_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


class _Busy(Exception):
    """The loop thread could not have the connection or the lock at once: use the worker."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY_CODES


def _make_private(path: Path) -> None:
    """Create the missing directories 0700 and the database file 0600 before SQLite opens it;
    an existing database (and its -wal, -shm) that others could read becomes 0600."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):  # outermost first; mkdir(parents=True) ignores mode
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=_PRIVATE_DIR)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE_FILE))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):  # not ours to change
            if file.stat().st_mode & 0o077:
                file.chmod(_PRIVATE_FILE)


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
        self._undos: set[asyncio.Task[Any]] = set()  # undos of cancelled calls, in flight

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            _make_private(self.path)
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
        except (sqlite3.DatabaseError, OSError) as exc:  # locked, disk full, no such directory…
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
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if undo is not None:
                await self._undo_after(future, undo)
            raise

    async def _undo_after(
        self, future: asyncio.Future[T], undo: Callable[[sqlite3.Connection, T], object]
    ) -> None:
        """The thread cannot be interrupted: let it finish, then undo what it did (a reserve
        nobody will ever see must not hold budget). One task does both, so a second
        cancellation cannot interrupt the undo; we wait for it (each wait bounded by the
        busy timeout), and ``aclose`` waits for any still running."""

        async def settle() -> None:
            await asyncio.wait([future])
            if future.cancelled() or future.exception() is not None:
                return  # nothing was kept
            made = future.result()
            await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: self._tx(lambda conn: undo(conn, made))
            )

        task = asyncio.ensure_future(settle())
        self._undos.add(task)
        task.add_done_callback(self._undone)
        deadline = asyncio.get_running_loop().time() + 2 * self._busy_timeout + 5.0
        while not task.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return  # still running: aclose() waits for it
            try:
                await asyncio.wait([task], timeout=left)
            except asyncio.CancelledError:
                continue  # cancelled again: the caller is told once, after the undo

    def _undone(self, task: asyncio.Task[Any]) -> None:
        self._undos.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "sqlite ledger %s: could not undo a cancelled reserve; it lapses at its lease: %s",
                self.path,
                task.exception(),
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._undos:  # the undos of cancelled reserves finish first (each bounded)
            await asyncio.wait(set(self._undos))
        self._closed = True

        def close() -> None:
            with self._owner:
                if self._conn is not None:
                    self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)
