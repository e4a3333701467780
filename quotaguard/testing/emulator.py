"""One aiohttp.web server on loopback that speaks both the IBM and the Braket APIs."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import attrs
from aiohttp import web

from quotaguard.testing.braket import BraketService
from quotaguard.testing.faults import Faults
from quotaguard.testing.ibm import IBMService

__all__ = ["Emulator", "RequestRecord"]


@attrs.frozen
class RequestRecord:
    method: str
    path: str
    route: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Emulator:
    """``async with Emulator() as emu:`` serves both services at ``emu.url`` until exit.

    ``emu.ibm`` and ``emu.braket`` hold the seeded state; ``emu.faults`` injects failures;
    ``emu.requests`` records every request (method, path, route name) for assertions.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.ibm = IBMService(clock=clock)
        self.braket = BraketService(clock=clock)
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"Emulator(url={self.url!r})" if self._runner else "Emulator(not started)"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
            self.requests.append(
                RequestRecord(request.method, request.path, request.match_info.route.name or "")
            )
            return await handler(request)

        app = web.Application(middlewares=[record, self.faults.middleware()])
        self.ibm.add_routes(app)
        self.braket.add_routes(app)
        return app

    def calls(self, route: str) -> int:
        """How many requests reached the named route (``"braket.CreateQuantumTask"``)."""
        return sum(1 for r in self.requests if r.route == route)

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        sock: socket.socket | None = None
        try:
            if self.port == 0:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
                site: web.BaseSite = web.SockSite(runner, sock)
            else:
                site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            # A busy port or a bad host: leave no socket or runner behind.
            if sock is not None:
                sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
