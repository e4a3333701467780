"""What the Redis ledger tests share: fresh namespaces, a raw view of one, and a TCP proxy
that loses or holds the server's replies on demand."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the redis package is optional: only the Redis tests load it
    import redis.asyncio as aioredis

__all__ = ["Proxy", "evalsha_calls", "fresh_namespace", "lua_files", "raw_snapshot"]


def lua_files() -> dict[str, str]:
    """The Redis ledger's Lua files as shipped: name (without ``.lua``) -> text."""
    lua = importlib.resources.files("quotaguard.ledger.redis").joinpath("lua")
    return {
        f.name.removesuffix(".lua"): f.read_text(encoding="utf-8")
        for f in lua.iterdir()
        if f.name.endswith(".lua")
    }


def fresh_namespace() -> str:
    """A namespace no other test uses."""
    return f"rt-{uuid.uuid4().hex[:12]}"


async def evalsha_calls(client: aioredis.Redis) -> int:
    """How many EVALSHA the server has run (``INFO commandstats``)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def raw_snapshot(client: aioredis.Redis, namespace: str) -> dict[bytes, Any]:
    """Every key of a namespace with its full content: what 'nothing changed' compares."""
    out: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"{{{namespace}}}:*"):
        kind = (await client.type(key)).decode()
        if kind == "hash":
            out[key] = await client.hgetall(key)
        elif kind == "zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[key] = await client.smembers(key)
        else:
            out[key] = (kind, await client.dump(key))
    return out


class Proxy:
    """Forwards loopback TCP to ``upstream``.

    ``drop`` loses replies; ``delay`` holds them. ``hold_next`` (an event) holds the next
    request, whichever connection sends it, until the event is set (``holding`` is set
    meanwhile), then delivers it, even if its client has gone. ``lose_reserve_replies`` loses
    the replies to that many ledger ``reserve`` calls (the server runs them; connection set-up
    and other calls go through). ``split`` delivers replies in pieces of that many bytes, a
    loop turn apart; ``corrupt_reserve_replies`` sends that many replies after a reserve as
    bytes no RESP parser reads (then closes that connection, as a real server's would be
    useless after)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.drop = False
        self.delay = 0.0
        self.hold_next: asyncio.Event | None = None
        self.holding = asyncio.Event()
        self.lose_reserve_replies = 0
        self.split = 0
        self.corrupt_reserve_replies = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        reserve_sent = False

        async def up() -> None:
            nonlocal reserve_sent
            while data := await cr.read(65536):
                reserve_sent = reserve_sent or b"\r\nreserve\r\n" in data
                if self.hold_next is not None:
                    release, self.hold_next = self.hold_next, None
                    self.holding.set()
                    await asyncio.wait_for(release.wait(), 30)
                uw.write(data)
                await uw.drain()

        async def down() -> None:
            while data := await ur.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.drop:
                    return  # the server did the work; the reply is lost
                if reserve_sent and self.lose_reserve_replies:
                    self.lose_reserve_replies -= 1
                    return  # this reserve ran; its reply is lost with the connection
                if reserve_sent and self.corrupt_reserve_replies:
                    self.corrupt_reserve_replies -= 1
                    cw.write(b"?not resp\r\n")
                    await cw.drain()
                    return
                step = self.split or len(data)
                for start in range(0, len(data), step):
                    cw.write(data[start : start + step])
                    await cw.drain()
                    if self.split:
                        await asyncio.sleep(0)

        try:
            pumps = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.discard(task)
            cw.close()
            uw.close()
            for writer in (cw, uw):
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
