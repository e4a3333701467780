"""Serve the emulator as a process: ``python -m quotaguard.testing`` and ``quotaguard emulator``."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Callable

from quotaguard.testing.emulator import Emulator
from quotaguard.testing.seed import seed_demo

__all__ = ["bind_error", "serve"]


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: bool = True,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve both emulated services on ``host``:``port`` (0 picks a free port) until SIGINT or
    SIGTERM, then close them.

    Once listening, calls ``announce`` once with the URL and, with ``seed``, the demo world's
    ``export`` lines that point clients at it. Raises :class:`OSError` unchanged when it cannot
    listen (a busy port, a bad host), having closed what it opened.
    """
    emu = Emulator(host=host, port=port)
    await emu.start()
    try:
        lines = [f"quotaguard emulator on {emu.url} (Ctrl-C to stop)"]
        if seed:
            demo = seed_demo(emu)
            lines += [
                "",
                "# point clients at it:",
                *(f"export {k}={v}" for k, v in demo.environment(emu.url).items()),
            ]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The caller's own handlers (a test runner's, coverage's) come back afterwards:
        # remove_signal_handler alone would leave the default ones.
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        # Handlers first: a caller may signal as soon as it has read the announcement.
        for sig in previous:
            loop.add_signal_handler(sig, stop.set)
        try:
            announce("\n".join(lines))
            await stop.wait()
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
    finally:
        await emu.stop()


def bind_error(host: str, port: int, exc: OSError) -> str:
    """One line for a host or port :func:`serve` cannot listen on."""
    if exc.errno == errno.EADDRINUSE:
        return f"--port: {host}:{port} is already in use"
    if isinstance(exc, socket.gaierror):
        return f"--host: cannot listen on {host!r}: {exc.strerror or exc}"
    return f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}"
