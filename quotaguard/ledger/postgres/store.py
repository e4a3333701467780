"""The PostgresLedger's plumbing: the asyncpg pool it owns, the schema set-up on first use,
one statement per operation, errors as :class:`BudgetUnavailable`, and the undo of a
reserve whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from quotaguard.errors import BudgetUnavailable, ClockSkew, InvalidInput
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.postgres.schema import check_schema_name, init_statements

__all__ = ["PostgresStore"]

log = logging.getLogger("quotaguard.ledger")

T = TypeVar("T")

#: The SQLSTATE qg_time() raises for a caller ``now`` too far from the server's clock.
_SKEW = "QG001"


async def _keep(conn: object) -> None:
    return None


class PostgresStore:
    """An asyncpg pool (opened on first use) in one schema, and the calls made on it."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        pool_size: int,
        timeout: float,
        *,
        max_skew: timedelta,
        server_time: bool,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise InvalidInput("dsn", "must be a postgresql:// URL or a libpq connection string")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise InvalidInput("pool_size", f"must be a positive int, got {pool_size!r}")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= 3600
        ):
            raise InvalidInput("timeout", "must be a number of seconds in (0, 3600]")
        self.schema = check_schema_name(schema)
        self._dsn = dsn  # may carry a password: never in repr, logs or errors
        self._pool_size = pool_size
        self._timeout = float(timeout)
        self._deadline = self._timeout * 2 + 1.0  # acquire + statement, then give up
        self._max_skew = max_skew
        self._skew_us = max_skew // timedelta(microseconds=1)
        self._server_time = server_time
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._undos: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def _open(self) -> asyncpg.Pool:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return self._pool
            try:
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"search_path": self.schema, "application_name": "quotaguard"},
                    # asyncpg resets a connection with a query of its own each time it goes
                    # back to the pool: a second round trip per reserve. Every call here is
                    # one autocommit statement that leaves no session state behind.
                    reset=_keep,
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, ValueError) as exc:
                # Never echo the DSN: it may carry a password.
                raise BudgetUnavailable(
                    f"postgres ledger {self.schema!r} cannot connect: {type(exc).__name__}"
                ) from None
            try:
                async with pool.acquire() as conn, conn.transaction():
                    await self._migrate(conn)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            return pool

    async def _migrate(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
        # One process at a time, in one transaction: the others find it done.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"qg:{self.schema}")
        await conn.execute(
            f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"; CREATE TABLE IF NOT EXISTS '
            f'"{self.schema}".meta(key text PRIMARY KEY, value text NOT NULL)'
        )
        found = {r["key"]: r["value"] for r in await conn.fetch("SELECT key, value FROM meta")}
        for statement in init_statements(self.schema, found):
            await conn.execute(statement)

    async def _run(self, fn: Callable[[asyncpg.Pool], Awaitable[T]], now: datetime | None) -> T:
        """``fn`` on the pool, bounded; a store failure is :class:`BudgetUnavailable`."""
        if self._closed:
            raise BudgetUnavailable(f"postgres ledger {self.schema!r} is closed")
        try:
            async with asyncio.timeout(self._deadline):
                pool = self._pool or await self._open()
                return await fn(pool)
        except TimeoutError:
            raise BudgetUnavailable(
                f"postgres ledger {self.schema!r} did not answer within {self._deadline:g}s"
            ) from None
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == _SKEW and now is not None:
                server = from_epoch_us(int(getattr(exc, "detail", "0")))
                skewed = ClockSkew(ledger_time=server, caller_time=now, max_skew=self._max_skew)
                raise skewed from None
            raise BudgetUnavailable(
                f"postgres ledger {self.schema!r} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc
        except (asyncpg.InterfaceError, OSError) as exc:
            raise BudgetUnavailable(
                f"postgres ledger {self.schema!r} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    async def _row(self, sql: str, *args: object, now: datetime | None = None) -> Any:
        return await self._run(lambda pool: pool.fetchrow(sql, *args), now)

    async def _value(self, sql: str, *args: object, now: datetime | None = None) -> Any:
        return await self._run(lambda pool: pool.fetchval(sql, *args), now)

    async def _rows(self, sql: str, *args: object, now: datetime | None = None) -> list[Any]:
        return await self._run(lambda pool: pool.fetch(sql, *args), now)

    def _clock_arg(self, clock: datetime) -> int | None:
        """The ledger's time for a function: ``None`` (SQL NULL) has it read ``now()``."""
        return None if self._server_time else epoch_us(clock)

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._undos:  # let in-flight undos of failed reserves reach the server (bounded)
            await asyncio.wait(set(self._undos), timeout=self._deadline)
        self._closed = True
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self._deadline)
            except TimeoutError:
                self._pool.terminate()

    async def _undo_reserve(self, rid: str, now: datetime) -> None:
        """Release or tombstone ``rid``; wait at most one timeout for it (the undo runs on in
        its own task, whatever cancels this wait)."""
        if self._closed:
            return
        undo = asyncio.ensure_future(self._value("SELECT qg_cancel($1, $2)", rid, epoch_us(now)))
        self._undos.add(undo)
        undo.add_done_callback(lambda task: self._undone(task, rid))
        await asyncio.wait([undo], timeout=self._deadline)  # before any retry of the caller

    def _undone(self, task: asyncio.Task[Any], rid: str) -> None:
        self._undos.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning(
                "postgres ledger %r: could not undo reservation %s; it lapses at its lease: %s",
                self.schema,
                rid,
                exc,
            )
