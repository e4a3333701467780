"""One EVALSHA on Redis Cluster, followed through a slot migration.

A namespace's keys share one hash tag, so every script runs on the one primary that serves
the namespace's slot. While that slot migrates, the source node answers ``ASK`` for a
script whose declared keys have all moved and the target answers ``TRYAGAIN`` for one whose
keys are split between the two (or include a key that exists on neither yet, as a new
reservation's record does). :func:`evalsha` follows ``ASK`` with ``ASKING`` sent on the
*same connection* just before the script (redis-py's own ASK path sends ``ASKING`` through
its pool, and under concurrency it lands on another connection: ``TTL exhausted``), retries
``TRYAGAIN`` with a bounded backoff, and lets redis-py follow ``MOVED``, connection errors
and topology changes (``RedisCluster.execute_command``) once no migration is in the way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    MovedError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

__all__ = ["REDIRECTS", "TRYAGAIN_PAUSES", "evalsha"]

#: How many ASK or MOVED redirections one call follows (as redis-py's request TTL).
REDIRECTS = 16
#: The pauses before each retry of a ``TRYAGAIN`` (seconds, about 9 in all): a slot's keys
#: usually move in milliseconds; a migration stuck longer is reported, not waited out.
TRYAGAIN_PAUSES = (0.005, 0.01, 0.02, 0.05, 0.1, *(0.25,) * 35)


async def evalsha(client: RedisCluster, slot_key: str, command: tuple[Any, ...]) -> Any:
    """``command`` (an EVALSHA whose keys all hash to ``slot_key``'s slot), on the primary
    that serves the slot, through ASK, TRYAGAIN and MOVED."""
    pauses = iter(TRYAGAIN_PAUSES)
    asking: ClusterNode | None = None
    redirects = 0
    while True:
        try:
            if asking is not None:
                return await _asking(asking, command)
            try:
                node = client.get_node_from_key(slot_key)
            except SlotNotCoveredError:
                node = None
            if node is None:  # no slot map yet, or the slot has no owner: redis-py knows how
                return await client.execute_command(*command)
            try:
                return await node.execute_command(*command)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                # A node down or failed over: redis-py retries and maps the cluster again.
                return await client.execute_command(*command)
        except AskError as exc:
            redirects += 1
            if redirects > REDIRECTS:
                raise
            asking = client.get_node(host=exc.host, port=exc.port)
            if asking is None:  # a node the map does not know yet: learn it
                await client.nodes_manager.move_slot(exc)
                asking = client.get_node(host=exc.host, port=exc.port)
        except MovedError:
            redirects += 1
            if redirects > REDIRECTS:
                raise
            asking = None
            # redis-py updates its slot map and retries on the new owner.
            return await client.execute_command(*command)
        except TryAgainError:
            pause = next(pauses, None)
            if pause is None:
                raise
            asking = None  # ask the source again: the migration may have ended meanwhile
            redirects = 0  # the pauses bound this loop from here
            await asyncio.sleep(pause)


async def _asking(node: ClusterNode, command: tuple[Any, ...]) -> Any:
    """``ASKING`` and ``command`` in one write on one connection: the first's allowance is for
    the next command of its connection only."""
    conn = node.acquire_connection()
    clean = False
    try:
        await conn.send_packed_command(conn.pack_commands([("ASKING",), command]))
        await node.parse_response(conn, "ASKING")
        try:
            reply = await node.parse_response(conn, command[0])
        except ResponseError:
            clean = True  # both replies read: the connection can be used again
            raise
        clean = True
        return reply
    finally:
        if not clean:  # a cancelled or failed exchange may leave a reply unread
            await conn.disconnect()
        _release(node, conn)


def _release(node: ClusterNode, conn: Any) -> None:
    """Give ``conn`` back to ``node``'s pool: ``ClusterNode.release`` where redis-py has it;
    redis-py 6.0 (the extra's floor) has none, and its pool is the ``_free`` deque."""
    release = getattr(node, "release", None)
    if release is not None:
        release(conn)
    else:
        node._free.append(conn)
