"""The RedisLedger's plumbing: the client or pool it owns, one EVALSHA per operation, the
undo of a reserve whose outcome is unknown, the durability check at connect, and ``WAIT``.

With ``replicas=N`` a write script and ``WAIT N`` go out together on one pinned connection
(:mod:`.waits`). An unacknowledged reserve is a :class:`BudgetUnavailable` (the ledger then
undoes it); any other write waits again on the same connection, a bounded number of times.

Each call sends ``EVALSHA <sha> <n> <key>... <operation> <prefix> <max_skew_us>``, the
operation's arguments as one JSON array (:func:`.codec.encode_args`) and, where keys are
checked, ``1``. The keys are every key the script touches (:mod:`.scripts`); a script that
finds more by reading answers ``need`` with them, and the call goes again with them too.
Keys are checked on Redis Cluster, and everywhere with ``QUOTAGUARD_REDIS_CHECK_KEYS=1`` (the
tests set it): a key a script touches undeclared is then an error instead of a key Redis
Cluster could not see during a slot migration. On a cluster (a ``RedisCluster`` client),
every call goes through :func:`.cluster.evalsha`.

With ``batching`` (the default, on a plain ``redis.asyncio.Redis``), the calls one event loop
makes concurrently go out together, one write per loop turn (:mod:`.batching`), a ``need``
answer's second round included; a RedisCluster, a single-connection client and the writes
that ``WAIT`` are sent one by one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Self, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError, RedisError

from quotaguard.errors import BudgetUnavailable, ClockSkew, InvalidInput
from quotaguard.ledger.encoding import epoch_us, from_epoch_us
from quotaguard.ledger.redis import cluster
from quotaguard.ledger.redis.batching import Batcher, Evalsha
from quotaguard.ledger.redis.codec import encode_args, month_arg, text
from quotaguard.ledger.redis.durability import (
    WRITES,
    ServerDurability,
    apply_policy,
    check_policy,
    read_server,
)
from quotaguard.ledger.redis.lane import HIREDIS
from quotaguard.ledger.redis.scripts import BUDGET_KINDS, KEYS_OF, SCRIPTS, budget_keys, sha1
from quotaguard.ledger.redis.waits import WAIT_TRIES, Unacked, Waits

__all__ = ["RedisStore"]

log = logging.getLogger("quotaguard.ledger")

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # matched whole (fullmatch)

#: How many times one call is sent again with the keys its script asked for (each round
#: declares at least one more key; at rest three rounds are the most a script needs: a due
#: lease's record, then its budgets' keys).
NEED_ROUNDS = 6
#: How many calls of one ledger wait on a cluster node at once (as the standalone pool's
#: 64 connections): redis-py's cluster pools fail past their size instead of waiting.
CLUSTER_CALLS = 64
#: Set to "1" to have every script refuse a key it touches undeclared, on any server.
CHECK_KEYS_ENV = "QUOTAGUARD_REDIS_CHECK_KEYS"


#: How a call is sent once: (operation, its keys, its payload) -> the script's reply.
_Send = Callable[[str, tuple[str, ...], bytes], Awaitable[Any]]


class RedisStore:
    """A client (owned, from a URL, or given) and the script calls made on it."""

    def __init__(
        self,
        url: str | None,
        client: aioredis.Redis | RedisCluster | None,
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
        self._cluster = isinstance(client, RedisCluster)
        if self._cluster and replicas:
            raise InvalidInput(
                "replicas",
                "must be 0 with a RedisCluster client: WAIT counts the writes of its own "
                "connection on the slot's primary, which the cluster client does not pin; "
                "run replicas=N on a standalone primary with replicas",
            )
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
        # The fixed parts of each operation's call, encoded once (all ASCII: any client
        # encoding): its script, its namespace-wide keys, then the operation's name (for
        # MONITOR and SLOWLOG), the prefix and max_skew; after the arguments, whether keys
        # are checked.
        prefix = self._prefix.encode()
        self._max_skew = max_skew
        skew = str(max_skew // timedelta(microseconds=1)).encode()
        self._check_keys = self._cluster or os.environ.get(CHECK_KEYS_ENV) == "1"
        self._check = (b"1",) if self._check_keys else ()
        self._shas = {op: sha1(source).encode() for op, source in SCRIPTS.items()}
        self._static = {op: tuple(prefix + k.encode() for k in KEYS_OF[op]) for op in SCRIPTS}
        self._tails = {op: (op.encode(), prefix, skew) for op in SCRIPTS}
        self._budget_names: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._server_time = server_time
        self._execute: Callable[..., Awaitable[Any]] = client.execute_command
        if isinstance(client, RedisCluster):
            size = client.connection_kwargs.get("max_connections") or CLUSTER_CALLS
            self._cluster_calls = asyncio.Semaphore(min(CLUSTER_CALLS, int(size)))
            self._execute = functools.partial(self._cluster_execute, client)
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
        self._waits = (
            Waits(
                client.connection_pool, replicas, wait_timeout, socket_timeout, self._load_scripts
            )
            if replicas and isinstance(client, aioredis.Redis)
            else None
        )
        # A write that waits: connect + retries, then every wait.
        self._wait_deadline = self._deadline + WAIT_TRIES * (wait_timeout + socket_timeout)
        # The batcher keeps one of the pool's connections (a cluster client routes by slot;
        # a single-connection client and a pool of one have none to spare), reads RESP2
        # (RESP3 may push frames that answer no call) and needs hiredis.
        self._batcher: Batcher | None = None
        # Each operation's call in wire form, for the batcher: what every call of it shares
        # packed once; the keys and the payload per call.
        self._packers: dict[str, Evalsha] = {}
        if (
            batching
            and isinstance(client, aioredis.Redis)
            and not client.single_connection_client
            and getattr(client.connection_pool, "max_connections", 2) >= 2
            and str(client.connection_pool.connection_kwargs.get("protocol") or 2) == "2"
            and HIREDIS
        ):
            self._batcher = Batcher(client.connection_pool, list(SCRIPTS.values()), self._deadline)
            self._packers = {
                op: Evalsha(self._shas[op], self._static[op], self._tails[op], self._check)
                for op in SCRIPTS
            }

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
                    server = await read_server(self._client, **await self._route())
            except TimeoutError:
                raise self._silent(self._deadline) from None
            except RedisError as exc:
                raise self._unavailable(exc) from exc
            self.server_durability = server
            if self.durability != "off":
                apply_policy(server, self.durability, self.replicas, self.namespace)
            self._connected = True

    async def _route(self) -> dict[str, Any]:
        """Where commands about the server go: on a cluster, the namespace's primary."""
        if not isinstance(self._client, RedisCluster):
            return {}
        await self._client.initialize()
        return {"target_nodes": self._client.get_node_from_key(self._leases)}

    async def _cluster_execute(self, client: RedisCluster, *command: Any) -> Any:
        async with self._cluster_calls:  # wait for a connection rather than fail
            return await cluster.evalsha(client, self._leases, command)

    def _record_key(self, rid: str) -> str:
        return f"{self._prefix}r:{rid}"

    def _budget_keys(
        self, budgets: Iterable[str], kinds: tuple[str, ...] = BUDGET_KINDS
    ) -> tuple[str, ...]:
        """The keys of ``budgets`` (:func:`.scripts.budget_keys`), with the prefix; kept, as
        a ledger names the same few budgets over and over."""
        out: tuple[str, ...] = ()
        for budget in budgets:
            names = self._budget_names.get((budget, kinds))
            if names is None:
                if len(self._budget_names) >= 4096:
                    self._budget_names.clear()
                names = tuple(self._prefix + k for k in budget_keys(budget, kinds=kinds))
                self._budget_names[budget, kinds] = names
            out += names
        return out

    async def _call(
        self, op: str, *args: object, now: datetime | None = None, keys: tuple[str, ...] = ()
    ) -> list[Any]:
        """Run ``op``'s script on ``args``, declaring its namespace-wide keys and ``keys``
        (with the prefix: what the arguments name); a ``skew`` answer (the server's clock is
        too far from the caller's ``now``) is :class:`~quotaguard.errors.ClockSkew`."""
        if self._closed:
            raise BudgetUnavailable(f"redis ledger {self.namespace!r} is closed")
        if not self._connected:
            await self.connect()
        payload = encode_args(args)
        waits = self.replicas > 0 and op in WRITES
        deadline = self._wait_deadline if waits else self._deadline
        try:
            if self._batcher is not None and not waits:  # each round bounded by the batcher
                reply = await self._rounds(op, keys, payload, self._batched)
            else:
                async with asyncio.timeout(deadline):
                    send = self._waited if waits else self._alone
                    reply = await self._rounds(op, keys, payload, send)
        except TimeoutError:
            raise self._silent(deadline) from None
        except Unacked as exc:
            raise BudgetUnavailable(
                f"redis ledger {self.namespace!r}: {op} was not acknowledged by "
                f"{self.replicas} replica(s) within {exc}; a failover could forget it"
            ) from None
        except RedisError as exc:
            raise self._unavailable(exc) from exc
        result: list[Any] = list(reply)
        result[0] = text(result[0])
        if result[0] == "skew" and now is not None:
            server = from_epoch_us(int(result[1]))
            raise ClockSkew(ledger_time=server, caller_time=now, max_skew=self._max_skew)
        return result

    async def _rounds(self, op: str, keys: tuple[str, ...], payload: bytes, send: _Send) -> Any:
        """``op``'s call by ``send``, and again with the keys its script asks for (a ``need``
        answer: it has only read so far), a bounded number of times."""
        for _ in range(NEED_ROUNDS):
            reply = await send(op, keys, payload)
            if text(reply[0]) != "need":
                return reply
            keys += tuple(map(text, reply[1:]))
        raise BudgetUnavailable(
            f"redis ledger {self.namespace!r}: {op} still found undeclared keys "
            f"after {NEED_ROUNDS} rounds (the namespace is changing too fast)"
        )

    def _silent(self, deadline: float) -> BudgetUnavailable:
        return BudgetUnavailable(
            f"redis ledger {self.namespace!r} did not answer within {deadline:g}s"
        )

    def _unavailable(self, exc: RedisError) -> BudgetUnavailable:
        return BudgetUnavailable(
            f"redis ledger {self.namespace!r} is unavailable: {type(exc).__name__}: {exc}"
        )

    def _command(self, op: str, keys: tuple[str, ...], payload: bytes) -> tuple[Any, ...]:
        static = self._static[op]
        return (
            "EVALSHA", self._shas[op], len(static) + len(keys), *static, *keys,
            *self._tails[op], payload, *self._check,
        )  # fmt: skip

    def _batched(self, op: str, keys: tuple[str, ...], payload: bytes) -> Awaitable[Any]:
        """The call with the others of this loop turn (only sent when there is a batcher)."""
        return cast(Batcher, self._batcher).call(self._packers[op](keys, payload))

    async def _alone(self, op: str, keys: tuple[str, ...], payload: bytes) -> Any:
        # EVALSHA straight through execute_command: redis-py's Script wrapper adds a layer of
        # Python per call. NOSCRIPT (a flushed or restarted server): load them all, send again.
        command = self._command(op, keys, payload)
        try:
            return await self._execute(*command)
        except NoScriptError:
            await self._load_scripts()
            return await self._execute(*command)

    async def _waited(self, op: str, keys: tuple[str, ...], payload: bytes) -> Any:
        # Never on a RedisCluster: replicas=N is refused there at construction.
        return await cast(Waits, self._waits).write(op, self._command(op, keys, payload))

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
        if isinstance(self._client, RedisCluster):  # on every primary: any may serve the slot
            for source in SCRIPTS.values():
                await self._client.script_load(source)
            return
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

    async def _undo_reserve(self, rid: str, now: datetime, keys: tuple[str, ...] = ()) -> None:
        """Release or tombstone ``rid`` (``keys``: its record's and its budgets'); wait at most
        one socket timeout for it (the undo runs on in its own task, whatever cancels this
        wait)."""
        if self._closed:
            return
        undo = asyncio.ensure_future(self._call("cancel", rid, epoch_us(now), keys=keys))
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
