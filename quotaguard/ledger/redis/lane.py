"""One pooled connection, taken over for pipelined script calls: written to as a transport,
its replies parsed by hiredis as they arrive, each handed to its caller in order.

redis-py's connection does the connecting (TLS, AUTH, SELECT, a unix socket, its own
retries); the lane then swaps its protocol for one of its own, so that a reply costs a
hiredis parse and a future's result, not a coroutine per read. The connection is never used
by redis-py again: the lane disconnects it and gives it back to the pool when it is lost or
closed, and the pool connects it afresh when someone next takes it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import hiredis
from redis.exceptions import ConnectionError, NoScriptError, ReadOnlyError, ResponseError

__all__ = ["Call", "Lane", "reply_error"]


class Call:
    """One script call: its packed command and the future its caller awaits."""

    __slots__ = ("due", "losses", "packed", "reloaded", "reply", "written")

    def __init__(self, packed: bytes, reply: asyncio.Future[Any], due: float) -> None:
        self.packed = packed
        self.reply = reply
        self.due = due  # loop time by which its reply must have come, resends included
        self.losses = 0  # connections lost with it unanswered: it is sent again, bounded
        self.reloaded = False  # it met NOSCRIPT once: the scripts were loaded, it went again
        self.written = 0  # the lane's write that carried it last


def reply_error(text: str) -> ResponseError:
    """An error reply as redis-py's parser would raise it (the classes the ledger tells
    apart)."""
    if text.startswith("NOSCRIPT "):
        return NoScriptError(text.removeprefix("NOSCRIPT "))
    if text.startswith("READONLY "):
        return ReadOnlyError(text.removeprefix("READONLY "))
    return ResponseError(text)


class Lane(asyncio.Protocol):
    """The protocol of one taken-over connection. ``answer`` is called once per reply with
    the call it answers (``None`` for the lane's own commands) and the reply, an exception
    instance for an error reply; ``lost`` once, with the calls left unanswered, when the
    connection is lost, closed or stalled past a call's ``due``."""

    def __init__(
        self,
        conn: Any,
        answer: Callable[[Lane, Call | None, Any], None],
        lost: Callable[[Lane, list[Call], BaseException], None],
    ) -> None:
        self.conn = conn  # redis.asyncio.Connection: untyped internals (_writer)
        self._answer = answer
        self._lost = lost
        self._reader = hiredis.Reader(replyError=reply_error)
        self._pending: deque[Call | None] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._writes = 0
        self._loaded_at = -1  # the write that last loaded the scripts
        self.open = True
        writer = conn._writer
        self._transport: asyncio.Transport = writer.transport
        self._previous: asyncio.BaseProtocol = self._transport.get_protocol()
        self._transport.set_protocol(self)
        self._loop = asyncio.get_running_loop()

    def calls(self) -> list[Call]:
        """The calls written and not yet answered."""
        return [call for call in self._pending if call is not None]

    def send(self, calls: Iterable[Call]) -> None:
        """Write ``calls`` in one go (only while the lane is open)."""
        self._writes += 1
        data = []
        for call in calls:
            call.written = self._writes
            data.append(call.packed)
            self._pending.append(call)
        self._transport.write(b"".join(data))
        self._watch()

    def send_after_load(self, call: Call, load: bytes, scripts: int) -> None:
        """``call`` again, after NOSCRIPT: first ``load`` (``scripts`` SCRIPT LOADs, whose
        replies go to ``answer`` with no call), unless they went out after ``call`` did."""
        if self._loaded_at < call.written:
            self._writes += 1
            self._loaded_at = self._writes
            self._pending.extend([None] * scripts)
            self._transport.write(load)
        self.send([call])

    def _watch(self) -> None:
        if self._timer is None and self._pending:
            dues = [call.due for call in self._pending if call is not None]
            if dues:
                self._timer = self._loop.call_at(min(dues), self._check)

    def _check(self) -> None:
        """A call's time is up: if it is still unanswered the server has stalled, and the
        lane gives up on every call on it (replies after it would be out of step)."""
        self._timer = None
        now = self._loop.time()
        if any(call.due <= now for call in self._pending if call is not None):
            self.close(TimeoutError("no reply from the redis server in time"))
        else:
            self._watch()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                self._answer(self, self._pending.popleft(), reply)
        except hiredis.ProtocolError as exc:  # the stream is garbage: nothing after it holds
            self.close(ConnectionError(f"a malformed reply from the redis server: {exc}"))

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._previous.connection_lost(exc)  # redis-py's own protocol: its closing completes
        self.close(ConnectionError("the redis server closed the connection"))

    def close(self, reason: BaseException) -> None:
        """Stop: the calls still unanswered go to ``lost``; the transport is closed."""
        if not self.open:
            return
        self.open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        left = [call for call in self._pending if call is not None]
        self._pending.clear()
        self._transport.close()
        self._lost(self, left, reason)
