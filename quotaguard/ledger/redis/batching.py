"""Concurrent script calls of one event loop, coalesced: one socket write per loop turn.

Every call is still its own EVALSHA, atomic on its own; what the calls share is the write,
the connection and the reads. A call queues its command, already in wire form
(:class:`Evalsha`: what every call of an operation shares is packed once), and awaits a
future. The first call of a loop turn
schedules a flush at the end of that turn; the flush hands everything queued, in chunks of
:data:`MAX_BATCH`, to one task each, which takes a pooled connection, writes the chunk in one
go, reads the replies in order and resolves each caller's future. A chunk still waiting for
its replies does not hold up the next: that one takes another connection.

Failures keep the semantics of one call at a time:

- an error reply fails its own call only (the connection stays in step);
- NOSCRIPT (a flushed or restarted server): every script is loaded again on the same
  connection and the calls that met it are sent again;
- a connection error or timeout fails every call of the chunk still unanswered (the
  connection is dropped: replies may be left unread), after the client's retries, which
  resend only those calls (safe: a reserve carries its own id, the rest are idempotent);
- a cancelled caller whose command is not yet written is left out of the write; one whose
  command was written is in doubt, so its reply is still read (and dropped) to keep the
  connection in step, and the caller (the ledger) undoes what it may have held.

Nothing queues without bound: at most :data:`MAX_QUEUED` calls are queued or in flight per
ledger; past that a call waits for room. Each chunk is bounded by ``deadline`` seconds (pool,
write, reads and retries together), so every caller's wait is bounded too.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError, NoScriptError, ResponseError

__all__ = ["MAX_BATCH", "MAX_QUEUED", "Batcher", "Evalsha", "bulk"]

#: Commands per write: a flush of more goes out as several chunks, on several connections.
MAX_BATCH = 256
#: Calls queued or in flight per ledger, past which a call waits for room.
MAX_QUEUED = 4096

_Entry = tuple[bytes, "asyncio.Future[Any]"]


def bulk(part: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(part), part)


def _fail(chunk: list[_Entry], exc: BaseException) -> None:
    for _, reply in chunk:
        if not reply.done():
            reply.set_exception(exc)


class Evalsha:
    """One operation's ``EVALSHA sha n keys... args... payload end...`` in wire form: the
    script, its namespace-wide keys, the arguments before the payload and those after it
    packed once; the count, the call's own keys and the payload per call."""

    __slots__ = ("_args", "_end", "_fixed", "_keys", "_nkeys", "_start")

    def __init__(
        self, sha: bytes, keys: Sequence[bytes], args: Sequence[bytes], end: Sequence[bytes]
    ) -> None:
        self._start = bulk(b"EVALSHA") + bulk(sha)
        self._keys = b"".join(map(bulk, keys))
        self._nkeys = len(keys)
        self._args = b"".join(map(bulk, args))
        self._end = b"".join(map(bulk, end))
        self._fixed = 3 + len(args) + 1 + len(end)  # EVALSHA, sha, n; args; payload; end

    def __call__(self, keys: Sequence[str], payload: bytes) -> bytes:
        n = self._nkeys + len(keys)
        # The keys in one encode: ASCII (namespaces, budget keys and ids are), so each one's
        # length in characters is its length in bytes; anything else is packed key by key.
        own = "".join([f"${len(key)}\r\n{key}\r\n" for key in keys])
        packed = own.encode() if own.isascii() else b"".join(bulk(k.encode()) for k in keys)
        return b"".join(
            (
                b"*%d\r\n" % (self._fixed + n),
                self._start,
                bulk(b"%d" % n),
                self._keys,
                packed,
                self._args,
                bulk(payload),
                self._end,
            )
        )


class Batcher:
    """Coalesces the script calls made on one client's pool, one write per loop turn."""

    def __init__(
        self, pool: Any, scripts: Sequence[str], deadline: float, limit: int = MAX_QUEUED
    ) -> None:
        self._pool = pool  # redis.asyncio's pools: get_connection and release are untyped
        self._load = [("SCRIPT", "LOAD", source) for source in scripts]
        self._deadline = deadline
        self._queue: list[_Entry] = []
        self._flushing = False
        self._room = asyncio.Semaphore(limit)
        self._chunks: set[asyncio.Task[None]] = set()

    async def call(self, packed: bytes) -> Any:
        """Send one packed command with the others of this loop turn; its reply."""
        await self._room.acquire()  # given back when the chunk is done with this call
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        self._queue.append((packed, reply))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return await reply

    def _flush(self) -> None:
        self._flushing = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_BATCH):
            chunk = asyncio.ensure_future(self._send(queue[start : start + MAX_BATCH]))
            self._chunks.add(chunk)
            chunk.add_done_callback(self._chunks.discard)

    async def _send(self, chunk: list[_Entry]) -> None:
        try:
            async with asyncio.timeout(self._deadline):
                conn = await self._pool.get_connection()
                try:
                    await conn.retry.call_with_retry(
                        lambda: self._exchange(conn, chunk), lambda _: conn.disconnect()
                    )
                except BaseException:
                    await conn.disconnect()  # replies may be left unread on it
                    raise
                finally:
                    await self._pool.release(conn)
        except Exception as exc:  # a timeout, a lost connection: every call still unanswered
            _fail(chunk, exc)
        finally:
            # Whatever happened, this task cancelled included, no caller is left waiting.
            _fail(chunk, ConnectionError("the ledger closed with this call in flight"))
            for _ in chunk:
                self._room.release()

    async def _exchange(self, conn: Any, chunk: list[_Entry]) -> None:
        """Write the chunk's unanswered calls and read every reply; after NOSCRIPT, load
        the scripts and send those calls once more. A retry calls this again: only the
        calls still unanswered go out."""
        missing = await self._round_trip(conn, chunk, retry_noscript=True)
        if missing:
            await conn.send_packed_command(conn.pack_commands(self._load))
            for _ in self._load:
                await conn.read_response(disconnect_on_error=False)
            await self._round_trip(conn, missing, retry_noscript=False)

    @staticmethod
    async def _round_trip(conn: Any, entries: list[_Entry], retry_noscript: bool) -> list[_Entry]:
        """One write of the entries still unanswered, every reply read; the NOSCRIPT ones
        (when ``retry_noscript``; else they fail like any error reply)."""
        todo = [entry for entry in entries if not entry[1].done()]
        if not todo:
            return []
        await conn.send_packed_command([packed for packed, _ in todo])
        missing: list[_Entry] = []
        # The first reply waits up to the socket timeout (the client's retries apply); the
        # rest follow it, under the chunk's deadline alone: a timer per reply cost more
        # than the rest of the reply path.
        timeout: float | None = None
        for entry in todo:
            reply = entry[1]
            try:
                answer = await conn.read_response(timeout=timeout, disconnect_on_error=False)
            except NoScriptError as exc:
                if retry_noscript:
                    missing.append(entry)
                elif not reply.done():
                    reply.set_exception(exc)
                continue
            except ResponseError as exc:  # this call's own error: the others go on
                if not reply.done():
                    reply.set_exception(exc)
                continue
            finally:
                timeout = math.inf  # redis-py: no timer on this read
            if not reply.done():  # else a cancelled caller: its reply is read and dropped
                reply.set_result(answer)
        return missing

    async def aclose(self) -> None:
        """Send what is queued and wait for every chunk in flight, and for the calls those
        send again (a ``need`` answer's next round), bounded by one deadline in all."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._deadline
        while self._queue or self._chunks:
            if self._queue:
                self._flush()
            _, late = await asyncio.wait(set(self._chunks), timeout=max(0, end - loop.time()))
            if late:
                for chunk in late:
                    chunk.cancel()
                await asyncio.gather(*late, return_exceptions=True)
                return
            await asyncio.sleep(0)  # the callers answered go on: some queue their next round
