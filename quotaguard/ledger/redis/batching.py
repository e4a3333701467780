"""Concurrent script calls of one event loop, pipelined on one connection and coalesced into
few writes.

Every call is still its own EVALSHA, atomic on its own; what the calls share is the
connection, the writes and the reads. A call queues its command, already in wire form
(:class:`Evalsha`: what every call of an operation shares is packed once), and awaits a
future. The queue is written when it holds :data:`FLUSH_AT` calls, and what is left at the
end of the loop turn; each write goes to the ledger's :class:`~.lane.Lane`, one pooled
connection taken over for it, whose replies are parsed as they arrive and handed to their
callers in order. A write never waits for the replies to the ones before it (Redis answers
in order), so the server runs one write's calls while the client builds the next.

Failures keep the semantics of one call at a time:

- an error reply fails its own call only (the connection stays in step);
- NOSCRIPT (a flushed or restarted server): every script is loaded again on the same
  connection, and the call that met it goes again, once;
- a lost connection, or one with no reply for the socket timeout, is given back to the pool,
  and the calls it left unanswered go again on a new one, as many times as the client
  retries (safe: a reserve carries its own id, the rest are idempotent), then fail; a call
  past its ``deadline`` fails where it stands (its reply, if it comes, is read and dropped);
- READONLY or LOADING fails its call and drops the connection: the rest go again on a
  fresh one, which the pool makes to the server as it is now;
- a cancelled caller whose command is not yet written is left out of the write; one whose
  command was written is in doubt, so its reply is still read (and dropped) to keep the
  connection in step, and the caller (the ledger) undoes what it may have held.

Nothing queues without bound: at most :data:`MAX_QUEUED` calls are queued or in flight per
ledger; past that a call waits for room. Each call is bounded by ``deadline`` seconds from
when it is queued (taking a connection, resends and all), so every caller's wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import BusyLoadingError, ConnectionError, NoScriptError, ReadOnlyError

from quotaguard.ledger.redis.lane import LATE, Call, Lane

__all__ = ["FLUSH_AT", "MAX_QUEUED", "RESENDS", "Batcher", "Evalsha", "bulk", "command"]

#: Calls queued or in flight per ledger, past which a call waits for room.
MAX_QUEUED = 4096
#: Calls that go out at once, without waiting for the end of the loop turn: the server
#: starts on them while the client still builds the turn's next calls. Written only at the
#: end of the turn, 8 coroutines ran in lockstep with the server (each side idle while the
#: other worked): 14,000 reserves/s, against 27,000 with writes of two (docs/performance.md).
FLUSH_AT = 2
#: How many times a call left unanswered by a lost connection goes again, when the client's
#: retries cannot be read.
RESENDS = 2
#: What a call still unanswered when the ledger closes fails with.
_CLOSING = "the ledger closed with this call in flight"


def bulk(part: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(part), part)


def command(*parts: bytes) -> bytes:
    """One command in wire form: a RESP array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


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
    """Coalesces the script calls made on one client's pool: a few to a write, on one
    connection (:class:`~.lane.Lane`) taken from the pool for as long as it lasts."""

    def __init__(
        self, pool: Any, scripts: Sequence[str], deadline: float, limit: int = MAX_QUEUED
    ) -> None:
        self._pool = pool  # redis.asyncio's pools: get_connection and release are untyped
        self._load = b"".join(command(b"SCRIPT", b"LOAD", source.encode()) for source in scripts)
        self._scripts = len(scripts)
        self._deadline = deadline
        self._queue: list[Call] = []  # this loop turn's calls
        self._flushing = False
        self._room = asyncio.Semaphore(limit)
        self._lane: Lane | None = None
        self._waiting: list[Call] = []  # flushed while no lane is open: they go on the next
        self._opening: asyncio.Task[None] | None = None
        self._resends = RESENDS
        self._given_back: set[asyncio.Task[None]] = set()
        self._closed = False

    async def call(self, packed: bytes) -> Any:
        """Send one packed command with the others of this loop turn; its reply."""
        if self._closed:
            raise ConnectionError("the ledger is closed")
        await self._room.acquire()  # given back when the call leaves the batcher
        loop = asyncio.get_running_loop()
        call = Call(packed, loop.create_future(), loop.time() + self._deadline)
        self._queue.append(call)
        if len(self._queue) >= FLUSH_AT:
            self._flush()
        elif not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return await call.reply

    def _flush(self) -> None:
        self._flushing = False
        queue, self._queue = self._queue, []
        self._send(queue)

    def _live(self, calls: list[Call]) -> list[Call]:
        """The calls still worth sending: a cancelled caller's is dropped, one past its due
        fails with :class:`TimeoutError`, and after ``aclose`` every one fails."""
        now = asyncio.get_running_loop().time()
        live = []
        for call in calls:
            if call.reply.done():
                self._room.release()
            elif self._closed:
                self._end(call, ConnectionError(_CLOSING))
            elif call.due <= now:
                self._end(call, TimeoutError(LATE))
            else:
                live.append(call)
        return live

    def _send(self, calls: list[Call]) -> None:
        calls = self._live(calls)
        if not calls:
            return
        lane = self._lane
        if lane is not None and lane.open:
            lane.send(calls)
            return
        self._waiting.extend(calls)
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        """Take a connection for a new lane and send what waits for one; if none can be had
        within the deadline, every call waiting fails."""
        failure: BaseException = ConnectionError(_CLOSING)
        try:
            async with asyncio.timeout(self._deadline):
                self._lane = await self._take()
        except Exception as exc:  # a timeout, a refused connection: the waiting calls fail
            failure = exc
        finally:
            self._opening = None
            waiting, self._waiting = self._live(self._waiting), []
            lane = self._lane
            if lane is not None and lane.open and waiting:
                lane.send(waiting)
            else:
                for call in waiting:
                    self._end(call, failure)

    async def _take(self) -> Lane:
        conn = await self._pool.get_connection()
        try:
            if getattr(conn._reader, "_buffer", b""):  # bytes no one read: start clean
                await conn.disconnect()
                await conn.connect()
            retry = getattr(conn, "retry", None)
            self._resends = retry.get_retries() if retry is not None else RESENDS
            lane = Lane(conn, self._answer, self._lost, conn.socket_timeout)
            if not lane.open:
                raise ConnectionError("the redis connection closed as it was taken")
            return lane
        except BaseException:
            await self._give_back(conn)
            raise

    def _end(self, call: Call, exc: BaseException) -> None:
        if not call.reply.done():
            call.reply.set_exception(exc)
        self._room.release()

    def _answer(self, lane: Lane, call: Call | None, reply: Any) -> None:
        if call is None:  # a SCRIPT LOAD's (an error shows again as NOSCRIPT on the resend)
            return
        if call.reply.done():  # its caller was cancelled, or its due passed: read, dropped
            self._room.release()
        elif isinstance(reply, NoScriptError) and not call.reloaded:
            call.reloaded = True
            lane.send_after_load(call, self._load, self._scripts)
        elif isinstance(reply, Exception):  # this call's own error: the others go on
            self._end(call, reply)
            if isinstance(reply, ReadOnlyError | BusyLoadingError):
                # A demoted or loading server: the rest go again on a fresh connection,
                # which the pool (a Sentinel pool, say) makes to the primary as it is now.
                lane.close(ConnectionError(f"the redis server answered {reply}"))
        else:
            call.reply.set_result(reply)
            self._room.release()

    def _lost(self, lane: Lane, left: list[Call], reason: BaseException) -> None:
        """``lane`` is gone: its connection goes back to the pool; the calls it left
        unanswered go out again on a new one, up to the client's retries, or fail."""
        if self._lane is lane:
            self._lane = None
        task = asyncio.ensure_future(self._give_back(lane.conn))
        self._given_back.add(task)
        task.add_done_callback(self._given_back.discard)
        again = []
        for call in left:
            call.losses += 1
            call.reloaded = False  # a new connection may reach a server without the scripts
            if call.losses > self._resends and not call.reply.done():
                self._end(call, reason)
            else:
                again.append(call)
        self._send(again)  # the done and the late are dropped there, the rest go again

    async def _give_back(self, conn: Any) -> None:
        try:
            await conn.disconnect(nowait=True)
        finally:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """Send what is queued and wait for every call in flight, and for the calls those
        send again (a ``need`` answer's next round), bounded by one deadline in all; then
        give the connection back. Calls after this fail."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._deadline
        while True:
            if self._queue:
                self._flush()
            lane = self._lane
            calls = [*self._waiting, *(lane.calls() if lane is not None else ())]
            waits: set[asyncio.Future[Any]] = {c.reply for c in calls if not c.reply.done()}
            if self._opening is not None:
                waits.add(self._opening)
            if not waits:
                break
            _, late = await asyncio.wait(waits, timeout=max(0, end - loop.time()))
            if late:
                break
            await asyncio.sleep(0)  # the callers answered go on: some queue their next round
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        if self._lane is not None:
            self._lane.close(ConnectionError(_CLOSING))
        self._send([*self._queue, *self._waiting])  # closed: each one fails
        self._queue, self._waiting = [], []
        await asyncio.gather(*self._given_back, return_exceptions=True)
