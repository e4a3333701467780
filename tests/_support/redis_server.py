"""A real redis-server on a free loopback port, for the Redis ledger tests.

Never the shared Redis on 6379: each server is ours, started here and stopped here. With
``appendonly=True`` and a ``dir`` it persists every write (``appendfsync always``), so the
crash/restart tests can stop it and start it again on the same port with the same data.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["RedisServer", "free_port", "start_retrying"]

T = TypeVar("T")

MISSING = "install redis-server: apt-get install redis-server; .ci/run does this"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_retrying(start: Callable[[], T], new_ports: Callable[[], None]) -> T:
    """``start()``, up to 3 times: before each retry ``new_ports()`` picks other ports (someone
    took one between the check that it was free and the server's bind)."""
    for attempt in range(3):
        try:
            return start()
        except RuntimeError:
            if attempt == 2:
                raise
            new_ports()
    raise AssertionError("unreachable")


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``start()``, ``stop()`` (SIGTERM), ``kill()`` (SIGKILL), ``restart()`` on the same port."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        dir: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server is not on PATH; {MISSING}")
        if appendonly and dir is None:
            raise ValueError("appendonly=True needs a dir for the AOF files")
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self.dir = dir
        self.extra = extra  # more command-line settings: ("--replicaof", host, port), ...
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--daemonize", "no", "--protected-mode", "yes"]
        if self.appendonly:
            argv += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)]
        else:
            argv += ["--appendonly", "no"]
        return argv + list(self.extra)

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.process is not None:
            raise RuntimeError("already running")
        self.process = subprocess.Popen(
            self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _ping(self.port):
                return self
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                self._reap()
                raise RuntimeError(f"redis-server exited on port {self.port}: {err[-500:]}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} in {timeout}s")

    def _reap(self) -> None:
        if self.process is not None:
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self._reap()

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(10)
        self._reap()

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return start_retrying(self.start, self._new_port)

    def _new_port(self) -> None:
        self.port = free_port()

    def __exit__(self, *exc: object) -> None:
        self.stop()
