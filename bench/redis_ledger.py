"""RedisLedger reserve throughput: one process, 8 concurrent coroutine workers, a local
redis-server on a free loopback port (started here, never the shared 6379).

Each reserve is one EVALSHA round trip; the design target is >= 10,000 reserves/s.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ledger.redis import RedisLedger

WORKERS = 8
TARGET = 10_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _measure(url: str, n: int) -> dict[str, Any]:
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=WORKERS, timeout=10)
    client = aioredis.Redis(connection_pool=pool)
    ledger = RedisLedger(client=client, namespace=f"bench-{uuid.uuid4().hex[:8]}")
    try:
        await ledger.put_budget(Budget("team:bench", Unit.USD, Decimal(10) ** 9))
        charge = [Charge("team:bench", Decimal("0.01"), Unit.USD)]
        now = datetime.now(UTC)
        lease = timedelta(hours=1)
        per_worker = n // WORKERS

        async def worker() -> int:
            admitted = 0
            for _ in range(per_worker):
                admitted += (await ledger.reserve(charge, now=now, lease=lease)).admitted
            return admitted

        await asyncio.gather(*(ledger.reserve(charge, now=now) for _ in range(WORKERS)))  # warm
        start = time.perf_counter()
        admitted = sum(await asyncio.gather(*(worker() for _ in range(WORKERS))))
        elapsed = time.perf_counter() - start
        state = await ledger.state("team:bench", now=now)
        return {
            "reserves_per_s": round(per_worker * WORKERS / elapsed),
            "workers": WORKERS,
            "reserves": per_worker * WORKERS,
            "admitted": admitted,
            "outstanding_at_end": state.outstanding,
            "target": TARGET,
        }
    finally:
        await ledger.aclose()
        await client.aclose()
        await pool.aclose()


def run(n: int = 20_000) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("install redis-server: apt-get install redis-server; .ci/run does this")
    port = _free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*argv, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        return asyncio.run(_measure(f"redis://127.0.0.1:{port}/0", n))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    print(run())
