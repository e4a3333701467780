"""A private primary and replica pair of redis-servers, the link between them through a proxy
that can freeze it: the failover tests' way to make "the replica has not got it yet" exact.

The replica replicates from the proxy's port; ``Link.frozen`` keeps every byte the primary
sends (writes, ``REPLCONF GETACK``) from reaching the replica until it is thawed (then it
arrives, in order), without closing the connection, so nothing in Redis notices before
``repl-timeout`` (60 s). A primary killed while the link is frozen takes those writes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests._support.redis_server import RedisServer

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Link", "ReplicaPair"]


class Link:
    """Loopback TCP from the replica to the primary; ``frozen`` holds primary -> replica."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.frozen = False
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def freeze(self) -> None:
        self.frozen = True
        self._thawed.clear()

    def thaw(self) -> None:
        self.frozen = False
        self._thawed.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            self._tasks.discard(task)
            cw.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, down: bool) -> None:
            while data := await src.read(65536):
                if down:  # held while frozen, in order: thawing delivers it all
                    await self._thawed.wait()
                dst.write(data)
                await dst.drain()

        pumps = [
            asyncio.ensure_future(pump(cr, uw, False)),
            asyncio.ensure_future(pump(ur, cw, True)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.discard(task)
            for writer in (cw, uw):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


class ReplicaPair:
    """``async with ReplicaPair() as pair``: ``pair.primary``, ``pair.replica`` (linked and in
    sync), ``pair.link``; ``kill_primary()`` (SIGKILL) and ``promote()`` (``REPLICAOF NO
    ONE``). Both servers run with AOF off: the pair is about replication, not the disk."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir  # each server's files (the replica's copy of the primary) go here
        (dir / "primary").mkdir()
        (dir / "replica").mkdir()
        # Diskless, at once: the full sync a new replica needs takes milliseconds.
        self.primary = RedisServer(
            extra=(
                "--dir", str(dir / "primary"),
                "--repl-diskless-sync", "yes",
                "--repl-diskless-sync-delay", "0",
            )
        )  # fmt: skip
        self.link = Link(0)
        self.replica: RedisServer | None = None

    async def __aenter__(self) -> ReplicaPair:
        self.primary.__enter__()
        self.link.upstream = self.primary.port
        await self.link.start()
        self.replica = RedisServer(
            extra=(
                "--replicaof", "127.0.0.1", str(self.link.port),
                "--dir", str(self.dir / "replica"),
            )
        )  # fmt: skip
        self.replica.__enter__()
        await self.wait_linked()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.replica is not None:
            self.replica.stop()
        # The link first: a primary that still sees a lagging replica waits for it on
        # SIGTERM (shutdown-timeout, 10 s). Its data is of no use after the test anyway.
        await self.link.close()
        self.primary.kill()

    async def _info(self, server: RedisServer) -> dict[str, Any]:
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(server.url, socket_timeout=5) as client:
            info: dict[str, Any] = await client.info("replication")
        return info

    async def wait_linked(self, timeout: float = 20.0) -> None:
        """Until the replica's link is up and the primary counts it."""
        assert self.replica is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mine, theirs = await self._info(self.replica), await self._info(self.primary)
            if mine.get("master_link_status") == "up" and theirs.get("connected_slaves") == 1:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the replica did not sync with its primary in {timeout}s")

    async def caught_up(self, timeout: float = 20.0) -> None:
        """Until the replica has every write the primary made so far."""
        assert self.replica is not None
        want = int((await self._info(self.primary))["master_repl_offset"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if int((await self._info(self.replica)).get("slave_repl_offset", -1)) >= want:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"the replica did not reach offset {want} in {timeout}s")

    def kill_primary(self) -> None:
        self.primary.kill()

    async def promote(self) -> None:
        import redis.asyncio as aioredis

        assert self.replica is not None
        async with aioredis.Redis.from_url(self.replica.url, socket_timeout=5) as client:
            await client.execute_command("REPLICAOF", "NO", "ONE")
        role = (await self._info(self.replica)).get("role")
        if role != "master":
            raise RuntimeError(f"the replica did not become a primary: role {role}")
