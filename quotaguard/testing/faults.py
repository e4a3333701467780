"""Fault injection for the emulator: the next N calls to a route get a status, a delay or a
malformed body instead of the real answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web

__all__ = ["Fault", "Faults"]


@attrs.frozen
class Fault:
    """What to do instead of answering; ``status=None`` with a ``delay`` only slows the answer."""

    status: int | None = None
    delay: float = 0.0
    body: bytes | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    times: int = 1
    #: The request is served (the job or task is created), then this answer replaces the
    #: real one: a reply lost on its way back.
    after: bool = False


@attrs.define
class _Pending:
    fault: Fault
    left: int


@attrs.define
class Faults:
    """Pending faults per route name (``"ibm.get_usage"``, ``"*"`` for any route)."""

    _pending: dict[str, list[_Pending]] = attrs.Factory(dict)

    def add(
        self,
        route: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """``after=True`` serves the request first and then answers with the fault (a lost
        reply: ``status=502`` says the work exists but the caller never hears of it)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if after and status is None and body is None:
            raise ValueError("after=True needs a status or a body to answer instead")
        data = body.encode() if isinstance(body, str) else body
        fault = Fault(status, delay, data, dict(headers or {}), times, after)
        self._pending.setdefault(route, []).append(_Pending(fault, times))

    def clear(self) -> None:
        self._pending.clear()

    def take(self, route: str) -> Fault | None:
        for name in (route, "*"):
            queue = self._pending.get(name)
            if queue:
                entry = queue[0]
                entry.left -= 1
                if entry.left <= 0:
                    queue.pop(0)
                return entry.fault
        return None

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def apply(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            route = request.match_info.route.name or ""
            fault = self.take(route)
            if fault is None:
                return await handler(request)
            if fault.after:
                await handler(request)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is None and fault.body is None:
                return await handler(request)
            return web.Response(
                status=fault.status or 200,
                body=fault.body if fault.body is not None else b'{"errors": []}',
                headers={"Content-Type": "application/json", **fault.headers},
            )

        return apply
