"""The RedisLedger's plumbing: the client or pool it owns, one EVALSHA per operation, the
undo of a reserve whose outcome is unknown.

Each call sends ``EVALSHA <sha> 1 <prefix>leases <operation> <prefix> <max_skew_us>`` and
then the operation's arguments as one JSON array (:func:`.codec.encode_args`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError

from quotaguard.errors import BudgetUnavailable, ClockSkew, InvalidInput
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.redis.codec import encode_args, month_arg, text
from quotaguard.ledger.redis.scripts import SCRIPTS, sha1

__all__ = ["RedisStore"]

log = logging.getLogger("quotaguard.ledger")

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # matched whole (fullmatch)


class RedisStore:
    """A client (owned, from a URL, or given) and the script calls made on it."""

    def __init__(
        self,
        url: str | None,
        client: aioredis.Redis | None,
        namespace: str,
        socket_timeout: float,
        *,
        max_skew: timedelta,
        server_time: bool,
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise InvalidInput(
                "namespace", "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'"
            )
        if (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, (int, float))
            or not 0 < socket_timeout <= 3600
        ):
            raise InvalidInput("socket_timeout", "must be a number of seconds in (0, 3600]")
        if (url is None) == (client is None):
            raise InvalidInput("url", "pass either a redis:// URL or a client, not both or neither")
        self.namespace = namespace
        self._prefix = f"{{{namespace}}}:"
        self._owns_client = client is None
        self._pool: aioredis.BlockingConnectionPool | None = None
        if client is None:
            try:
                # A blocking pool: past its size, a call waits for a connection (up to the
                # socket timeout) rather than fail with "Too many connections".
                self._pool = aioredis.BlockingConnectionPool.from_url(
                    str(url),
                    max_connections=64,
                    timeout=socket_timeout,
                    socket_timeout=socket_timeout,
                    socket_connect_timeout=socket_timeout,
                    # Safe to retry: reserve carries its own id, the rest are idempotent.
                    # (The asyncio Retry: redis.retry.Retry never awaits, so never retries.)
                    retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                )
            except (ValueError, RedisError) as exc:
                # Never echo the URL: it may carry a password.
                raise InvalidInput(
                    "url", f"not a usable Redis URL ({type(exc).__name__})"
                ) from None
            client = aioredis.Redis(connection_pool=self._pool)
        self._client = client
        self._leases = self._prefix + "leases"
        # The fixed arguments of each operation's call, encoded once (all ASCII: any client
        # encoding). The operation's name goes along too, for MONITOR and SLOWLOG.
        leases, prefix = self._leases.encode(), self._prefix.encode()
        self._max_skew = max_skew
        skew = str(max_skew // timedelta(microseconds=1)).encode()
        self._heads = {
            op: ("EVALSHA", sha1(source).encode(), b"1", leases, op.encode(), prefix, skew)
            for op, source in SCRIPTS.items()
        }
        self._server_time = server_time
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        # Belt and braces over the socket timeouts: connect + retries, then give up.
        self._deadline = socket_timeout * 4 + 1.0
        self._socket_timeout = socket_timeout
        # The last month_arg(): most calls fall in the same month.
        self._month: tuple[int, int, list[int]] = (0, 0, [])
        self._undos: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def _call(self, op: str, *args: object, now: datetime | None = None) -> list[Any]:
        """Run ``op``'s script on ``args``; a ``skew`` answer (the server's clock is too far
        from the caller's ``now``) is :class:`~quotaguard.errors.ClockSkew`."""
        if self._closed:
            raise BudgetUnavailable(f"redis ledger {self.namespace!r} is closed")
        # EVALSHA straight through execute_command: redis-py's Script wrapper adds a layer of
        # Python per call. NOSCRIPT (a flushed or restarted server): load them all, send again.
        command = (*self._heads[op], encode_args(args))
        try:
            async with asyncio.timeout(self._deadline):
                try:
                    reply = await self._execute(*command)
                except NoScriptError:
                    await self._load_scripts()
                    reply = await self._execute(*command)
        except TimeoutError:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r} did not answer within {self._deadline:g}s"
            ) from None
        except RedisError as exc:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc
        result: list[Any] = list(reply)
        result[0] = text(result[0])
        if result[0] == "skew" and now is not None:
            server = from_epoch_us(int(result[1]))
            raise ClockSkew(ledger_time=server, caller_time=now, max_skew=self._max_skew)
        return result

    def _clock_arg(self, clock: datetime) -> int | None:
        """The ledger's time for a script: ``None`` (JSON null) has it read ``TIME``."""
        return None if self._server_time else epoch_us(clock)

    def _month_of(self, now: datetime, at: int) -> list[int]:
        start, end, arg = self._month
        if not start <= at < end:
            self._month = month = month_arg(now)
            arg = month[2]
        return arg

    async def _load_scripts(self) -> None:
        # All of them at once: a flushed or restarted server lost every one.
        async with self._client.pipeline(transaction=False) as pipe:
            for source in SCRIPTS.values():
                pipe.script_load(source)
            await pipe.execute()

    async def aclose(self) -> None:
        if self._closed:
            return
        if self._undos:  # let in-flight undos of failed reserves reach Redis (bounded)
            await asyncio.wait(set(self._undos), timeout=self._deadline)
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
            if self._pool is not None:
                await self._pool.aclose()

    async def _undo_reserve(self, rid: str, now: datetime) -> None:
        """Release or tombstone ``rid``; wait at most one socket timeout for it (the undo runs
        on in its own task, whatever cancels this wait)."""
        if self._closed:
            return
        undo = asyncio.ensure_future(self._call("cancel", rid, epoch_us(now)))
        self._undos.add(undo)
        undo.add_done_callback(lambda task: self._undone(task, rid))
        await asyncio.wait([undo], timeout=self._socket_timeout)

    def _undone(self, task: asyncio.Task[Any], rid: str) -> None:
        self._undos.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning(
                "redis ledger %r: could not undo reservation %s; it lapses at its lease: %s",
                self.namespace,
                rid,
                exc,
            )
