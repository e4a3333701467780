"""A write script and ``WAIT N`` together on one pinned connection (``replicas=N``).

``WAIT`` counts the writes of its own connection, so it cannot go through the pool as a
separate call. An unacknowledged reserve is :class:`Unacked` at once (the ledger then undoes
it); any other write is idempotent and its acknowledgement is asked again, on the same
connection (whose replication offset is that write's), :data:`WAIT_TRIES` times in all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

__all__ = ["WAIT_TRIES", "Unacked", "Waits"]

#: How many times a write other than reserve waits for its replicas before giving up.
WAIT_TRIES = 3


class Unacked(Exception):
    """A write script ran but too few replicas acknowledged it in time."""


class Waits:
    """Writes followed by ``WAIT replicas`` on a connection of ``pool``."""

    def __init__(
        self,
        pool: Any,  # redis.asyncio's pools: get_connection and release are untyped
        replicas: int,
        wait_timeout: float,
        socket_timeout: float,
        load_scripts: Callable[[], Awaitable[None]],
    ) -> None:
        self._pool = pool
        self._replicas = replicas
        self._wait_timeout = wait_timeout
        self._wait = ("WAIT", replicas, max(1, round(wait_timeout * 1000)))
        self._read_timeout = wait_timeout + socket_timeout
        self._load_scripts = load_scripts

    async def write(self, op: str, command: tuple[Any, ...]) -> Any:
        """``command`` then ``WAIT`` on one connection; the script's reply once acknowledged
        (after NOSCRIPT: the scripts loaded and ``command`` sent again)."""
        conn = await self._pool.get_connection()
        try:
            reply, acked = await self._send(conn, command)
            if isinstance(reply, NoScriptError):
                await self._load_scripts()
                reply, acked = await self._send(conn, command)
            if isinstance(reply, ResponseError):
                raise reply
            tries = 1
            while acked < self._replicas:
                if op == "reserve" or tries >= WAIT_TRIES:
                    waited = self._wait_timeout * (1 if op == "reserve" else tries)
                    raise Unacked(f"{waited:g}s ({acked} did)")
                tries += 1
                await conn.send_command(*self._wait)
                acked = await conn.read_response(timeout=self._read_timeout)
            return reply
        except (Unacked, ResponseError):
            raise  # every reply was read: the connection is clean
        except BaseException:
            # A cancelled or failed exchange may leave replies unread on this connection.
            await conn.disconnect()
            raise
        finally:
            await self._pool.release(conn)

    async def _send(self, conn: Any, command: tuple[Any, ...]) -> tuple[Any, int]:
        await conn.send_packed_command(conn.pack_commands([command, self._wait]))
        try:
            reply = await conn.read_response(disconnect_on_error=False)
        except ResponseError as exc:  # the WAIT's reply still follows: read it too
            reply = exc
        acked = await conn.read_response(timeout=self._read_timeout)
        return reply, int(acked)
