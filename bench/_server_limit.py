"""The server's own limit for the very EVALSHA a ledger reserve sends, every reply checked.

``redis-benchmark -r`` cannot do this: it fills each ``__rand_int__`` of a command with its own
number, and a reserve names its reservation id twice (its record's key, declared, and the
payload), so the script saw a record key that was not its reservation's and answered without
writing (measured: 8,000 calls, one key written). Here every command is built in full
beforehand, a fresh id in both places, and sent from ``connections`` raw sockets in writes of
``depth`` commands, each write sent once the replies to the one before have come (as
``redis-benchmark -P depth``). The client costs a few microseconds per command (hiredis
parses the replies), against the script's tens on the server, so the rate is the server's.
Every reply must be ``new``: a reserve that really held.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import hiredis

from quotaguard.ledger.redis.batching import command

__all__ = ["evalsha_limit"]


def commands(template: list[str], rid: str, n: int) -> list[bytes]:
    """``n`` copies of ``template`` (a captured reserve), each with its own reservation id
    wherever ``rid`` stood."""
    out = []
    for _ in range(n):
        fresh = f"rsv_{uuid.uuid4().hex}"
        out.append(command(*(part.replace(rid, fresh).encode() for part in template)))
    return out


async def _client(port: int, todo: list[bytes], depth: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = hiredis.Reader()
    try:
        for start in range(0, len(todo), depth):
            chunk = todo[start : start + depth]
            writer.write(b"".join(chunk))
            got = 0
            while got < len(chunk):
                parser.feed(await reader.read(1 << 16))
                while (reply := parser.gets()) is not False:
                    if not isinstance(reply, list) or reply[0] != b"new":
                        raise AssertionError(f"a reserve that did not hold: {reply!r}")
                    got += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def _run(port: int, todo: list[bytes], connections: int, depth: int) -> float:
    shares = [todo[i::connections] for i in range(connections)]
    started = time.perf_counter()
    async with asyncio.timeout(300):
        await asyncio.gather(*(_client(port, share, depth) for share in shares))
    return len(todo) / (time.perf_counter() - started)


def evalsha_limit(
    port: int, template: list[str], rid: str, n: int, connections: int = 8, depth: int = 1
) -> int:
    """Reserves per second the server runs, ``n`` of them (each a fresh id)."""
    todo = commands(template, rid, n)
    return round(asyncio.run(_run(port, todo, connections, depth)))
