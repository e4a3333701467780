"""The RedisLedger's plumbing: the client or pool it owns, one EVALSHA per operation, the
undo of a reserve whose outcome is unknown, the durability check at connect, and ``WAIT``.

With ``replicas=N`` a write script and ``WAIT N`` go out together on one pinned connection
(``WAIT`` counts the writes of its own connection, so it cannot go through the pool as a
separate call). An unacknowledged reserve is a :class:`BudgetUnavailable` (the ledger then
undoes it); any other write waits again on the same connection, a bounded number of times.

Each call sends ``EVALSHA <sha> 1 <prefix>leases <operation> <prefix> <max_skew_us>`` and
then the operation's arguments as one JSON array (:func:`.codec.encode_args`). With
``batching`` (the default, on a plain ``redis.asyncio.Redis``), the calls one event loop makes
concurrently go out together, one write per loop turn (:mod:`.batching`); a RedisCluster, a
single-connection client and the writes that ``WAIT`` are sent one by one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from quotaguard.errors import BudgetUnavailable, ClockSkew, InvalidInput
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.redis.batching import Batcher, bulk, head
from quotaguard.ledger.redis.codec import encode_args, month_arg, text
from quotaguard.ledger.redis.durability import (
    WRITES,
    ServerDurability,
    apply_policy,
    check_policy,
    read_server,
)
from quotaguard.ledger.redis.scripts import SCRIPTS, sha1

__all__ = ["RedisStore"]

log = logging.getLogger("quotaguard.ledger")

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # matched whole (fullmatch)

#: How many times a write other than reserve waits for its replicas before giving up.
WAIT_TRIES = 3


class _Unacked(Exception):
    """A write script ran but too few replicas acknowledged it in time."""


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
        durability: str = "ack",
        replicas: int = 0,
        wait_timeout: float = 1.0,
        batching: bool = True,
    ) -> None:
        check_policy(durability, replicas, wait_timeout)
        if not isinstance(batching, bool):
            raise InvalidInput("batching", "must be True or False")
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
        # The same heads in wire form, for the batcher (the payload follows as one bulk).
        self._packed = {op: head([b"EVALSHA", *parts[1:]]) for op, parts in self._heads.items()}
        self._server_time = server_time
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        # Belt and braces over the socket timeouts: connect + retries, then give up.
        self._deadline = socket_timeout * 4 + 1.0
        self._socket_timeout = socket_timeout
        # The last month_arg(): most calls fall in the same month.
        self._month: tuple[int, int, list[int]] = (0, 0, [])
        self._undos: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.durability = durability
        self.replicas = replicas
        self.wait_timeout = wait_timeout
        #: What the server said at connect (``None`` before, and with ``durability="off"``).
        self.server_durability: ServerDurability | None = None
        self._connected = durability == "off" and not replicas
        self._connecting = asyncio.Lock()
        self._wait = ("WAIT", replicas, max(1, round(wait_timeout * 1000)))
        # A write that waits: connect + retries, then every wait.
        self._wait_deadline = self._deadline + WAIT_TRIES * (wait_timeout + socket_timeout)
        # Cluster pipelines route by slot and a single-connection client has no pool to
        # spread chunks over: those send each call on its own.
        coalesce = (
            batching and isinstance(client, aioredis.Redis) and not client.single_connection_client
        )
        self._batcher = (
            Batcher(client.connection_pool, list(SCRIPTS.values()), self._deadline)
            if coalesce
            else None
        )

    async def __aenter__(self) -> Self:
        try:
            await self.connect()
        except BudgetUnavailable:
            if self.server_durability is not None:  # read, and refused by the policy
                await self.aclose()
                raise
            # Not reachable yet (a fleet may start first): the first call checks again.
        return self

    async def connect(self) -> None:
        """Read the server's persistence and replication settings and apply ``durability``
        (once; the first operation does it if ``async with`` did not)."""
        async with self._connecting:  # one check, however many calls arrive at once
            if self._connected:
                return
            try:
                async with asyncio.timeout(self._deadline):
                    server = await read_server(self._client)
            except TimeoutError:
                raise BudgetUnavailable(
                    f"redis ledger {self.namespace!r} did not answer within {self._deadline:g}s"
                ) from None
            except RedisError as exc:
                raise BudgetUnavailable(
                    f"redis ledger {self.namespace!r} is unavailable: {type(exc).__name__}: {exc}"
                ) from exc
            self.server_durability = server
            if self.durability != "off":
                apply_policy(server, self.durability, self.replicas, self.namespace)
            self._connected = True

    async def _call(self, op: str, *args: object, now: datetime | None = None) -> list[Any]:
        """Run ``op``'s script on ``args``; a ``skew`` answer (the server's clock is too far
        from the caller's ``now``) is :class:`~quotaguard.errors.ClockSkew`."""
        if self._closed:
            raise BudgetUnavailable(f"redis ledger {self.namespace!r} is closed")
        if not self._connected:
            await self.connect()
        payload = encode_args(args)
        waits = self.replicas > 0 and op in WRITES
        deadline = self._wait_deadline if waits else self._deadline
        try:
            if self._batcher is not None and not waits:  # the batcher bounds the wait
                reply = await self._batcher.call(self._packed[op] + bulk(payload))
            else:
                async with asyncio.timeout(deadline):
                    reply = await self._send_alone(op, (*self._heads[op], payload), waits)
        except TimeoutError:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r} did not answer within {deadline:g}s"
            ) from None
        except _Unacked as exc:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r}: {op} was not acknowledged by "
                f"{self.replicas} replica(s) within {exc}; a failover could forget it"
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

    async def _send_alone(self, op: str, command: tuple[Any, ...], waits: bool) -> Any:
        """One call on its own connection (and its ``WAIT``, when ``waits``)."""
        if waits:
            return await self._write_and_wait(op, command)
        # EVALSHA straight through execute_command: redis-py's Script wrapper adds a layer of
        # Python per call. NOSCRIPT (a flushed or restarted server): load them all, send again.
        try:
            return await self._execute(*command)
        except NoScriptError:
            await self._load_scripts()
            return await self._execute(*command)

    async def _write_and_wait(self, op: str, command: tuple[Any, ...]) -> Any:
        """``command`` then ``WAIT`` on one connection; the script's reply once acknowledged.

        A reserve is not waited for twice (the ledger undoes it); any other write is
        idempotent and its acknowledgement is asked again, on the same connection (whose
        replication offset is that write's), :data:`WAIT_TRIES` times in all.
        """
        pool: Any = self._client.connection_pool  # its get_connection is untyped
        conn = await pool.get_connection()
        try:
            reply, acked = await self._send_with_wait(conn, command)
            if isinstance(reply, NoScriptError):
                await self._load_scripts()
                reply, acked = await self._send_with_wait(conn, command)
            if isinstance(reply, ResponseError):
                raise reply
            tries = 1
            while acked < self.replicas:
                if op == "reserve" or tries >= WAIT_TRIES:
                    waited = self.wait_timeout * (1 if op == "reserve" else tries)
                    raise _Unacked(f"{waited:g}s ({acked} did)")
                tries += 1
                await conn.send_command(*self._wait)
                acked = await conn.read_response(timeout=self._wait_read_timeout)
            return reply
        except (_Unacked, ResponseError):
            raise  # every reply was read: the connection is clean
        except BaseException:
            # A cancelled or failed exchange may leave replies unread on this connection.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    @property
    def _wait_read_timeout(self) -> float:
        return self.wait_timeout + self._socket_timeout

    async def _send_with_wait(self, conn: Any, command: tuple[Any, ...]) -> tuple[Any, int]:
        await conn.send_packed_command(conn.pack_commands([command, self._wait]))
        try:
            reply = await conn.read_response(disconnect_on_error=False)
        except ResponseError as exc:  # the WAIT's reply still follows: read it too
            reply = exc
        acked = await conn.read_response(timeout=self._wait_read_timeout)
        return reply, int(acked)

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
        if self._batcher is not None:
            await self._batcher.aclose()
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
