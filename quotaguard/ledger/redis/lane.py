"""One pooled connection, taken over for pipelined script calls: written to as a transport,
its replies parsed by hiredis as they arrive, each handed to its caller in order.

redis-py's connection does the connecting (TLS, AUTH, SELECT, a unix socket, its own
retries); the lane then swaps its protocol for one of its own, so that a reply costs a
hiredis parse and a future's result, not a coroutine per read. The connection is never used
by redis-py again: the batcher disconnects it and gives it back to the pool when the lane is
lost or closed, and the pool connects it afresh when someone next takes it. Only RESP2
connections are taken over (RESP3 may carry push frames, which are no call's reply).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
)

try:
    import hiredis
except ImportError:  # the [redis] extra brings it; without it the ledger sends calls alone
    hiredis = None  # type: ignore[assignment]

__all__ = ["HIREDIS", "LATE", "Call", "Lane", "Stalled", "reply_error"]

#: Whether lanes can be had here (hiredis parses their replies).
HIREDIS = hiredis is not None
#: What a call past its deadline fails with (a :class:`TimeoutError`).
LATE = "no reply from the redis server in time"
_NOT_YET = object()  # hiredis' "no whole reply yet" (its default, False, is a RESP3 reply)


class Stalled(ConnectionError):
    """No reply came within the socket timeout: the connection is given up as lost."""


class Call:
    """One script call: its packed command and the future its caller awaits."""

    __slots__ = ("due", "losses", "packed", "reloaded", "reply", "written")

    def __init__(self, packed: bytes, reply: asyncio.Future[Any], due: float) -> None:
        self.packed = packed
        self.reply = reply
        self.due = due  # loop time by which its reply must have come, resends included
        self.losses = 0  # connections lost with it unanswered: it is sent again, bounded
        self.reloaded = False  # it met NOSCRIPT on this lane: scripts loaded, it went again
        self.written = 0  # the lane's write that carried it last


def reply_error(text: str) -> ResponseError | ConnectionError:
    """An error reply as redis-py's parser would raise it (the classes the ledger tells
    apart)."""
    for prefix, kind in (
        ("NOSCRIPT ", NoScriptError),
        ("READONLY ", ReadOnlyError),
        ("LOADING ", BusyLoadingError),
    ):
        if text.startswith(prefix):
            return kind(text.removeprefix(prefix))
    return ResponseError(text)


class Lane(asyncio.Protocol):
    """The protocol of one taken-over connection. ``answer`` is called once per reply with
    the call it answers (``None`` for the lane's own commands) and the reply, an exception
    instance for an error reply; ``lost`` once, with the calls left unanswered, when the
    connection is lost, closed or stalled.

    The watchdog: a call past its ``due`` fails with :class:`TimeoutError` where it stands
    (its reply, if it comes, is read and dropped); a lane with calls written and no reply for
    ``stall_after`` seconds is :class:`Stalled`, and its calls may go again on another."""

    def __init__(
        self,
        conn: Any,
        answer: Callable[[Lane, Call | None, Any], None],
        lost: Callable[[Lane, list[Call], BaseException], None],
        stall_after: float | None,
    ) -> None:
        if hiredis is None:
            raise RuntimeError("a lane needs hiredis (the [redis] extra)")
        self.conn = conn  # redis.asyncio.Connection: untyped internals (_writer)
        self._answer = answer
        self._lost = lost
        self._stall_after = stall_after
        self._reader = hiredis.Reader(replyError=reply_error, notEnoughData=_NOT_YET)
        self._pending: deque[Call | None] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._writes = 0
        self._loaded_at = -1  # the write that last loaded the scripts
        self._loop = asyncio.get_running_loop()
        self._progress = self._loop.time()  # the last reply, or the first write after none
        self._transport: asyncio.Transport = conn._writer.transport
        self._previous: asyncio.BaseProtocol = self._transport.get_protocol()
        self._transport.set_protocol(self)
        self.open = not self._transport.is_closing()

    def calls(self) -> list[Call]:
        """The calls written and not yet answered."""
        return [call for call in self._pending if call is not None]

    def send(self, calls: Iterable[Call]) -> None:
        """Write ``calls`` in one go (only while the lane is open)."""
        if not self._pending:
            self._progress = self._loop.time()  # the stall clock starts with this write
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
        if self._timer is not None or not self._pending:
            return
        dues = [call.due for call in self._pending if call is not None and not call.reply.done()]
        if self._stall_after is not None:
            dues.append(self._progress + self._stall_after)
        if dues:
            self._timer = self._loop.call_at(min(dues), self._check)

    def _check(self) -> None:
        self._timer = None
        if not self.open:
            return
        now = self._loop.time()
        for call in self._pending:
            if call is not None and call.due <= now and not call.reply.done():
                call.reply.set_exception(TimeoutError(LATE))
        stall = self._stall_after
        if stall is not None and self._pending and now - self._progress >= stall:
            self.close(Stalled(f"no reply from the redis server in {stall:g}s"))
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        if not self.open:
            return
        self._reader.feed(data)
        try:
            # An answer may close the lane (a demoted server): nothing after it is read.
            while self._still_open() and (reply := self._reader.gets()) is not _NOT_YET:
                if not self._pending:
                    raise hiredis.ProtocolError("a reply to no command")
                self._progress = self._loop.time()
                self._answer(self, self._pending.popleft(), reply)
        except hiredis.ProtocolError as exc:  # the stream is garbage: nothing after it holds
            self.close(ConnectionError(f"a malformed reply from the redis server: {exc}"))

    def _still_open(self) -> bool:
        return self.open

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.close(ConnectionError("the redis server closed the connection"))
        finally:
            self._previous.connection_lost(exc)  # redis-py's own protocol: its closing ends

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
