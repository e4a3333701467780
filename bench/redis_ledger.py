"""RedisLedger reserve throughput against a local redis-server on a free loopback port
(started here, never the shared 6379), two ways in the same run, side by side:

- ``processes``: 8 spawned worker processes, each with its own event loop and RedisLedger,
  all reserving on one shared budget (a fleet's use case). They start behind a barrier and
  each reports its count and time window; throughput = total reserves / (last end - first
  start).
- ``coroutines``: one process, 8 concurrent coroutines sharing a BlockingConnectionPool.

Each phase checks ``INFO commandstats``: the server ran exactly one EVALSHA per reserve and
no other command. The design target is >= 10,000 reserves/s with 8 workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio as aioredis

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ledger.redis import SCRIPTS, RedisLedger

WORKERS = 8
TARGET = 10_000
BUDGET = "team:bench"
CHARGE = [Charge(BUDGET, Decimal("0.01"), Unit.USD)]
LEASE = timedelta(hours=1)
TIMEOUT = 300.0  # seconds any wait of the bench may take before it gives up


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _commands(admin: redis.Redis) -> dict[str, tuple[int, int]]:
    """(calls, usec) per command, INFO itself left out (the bench sends it), and the
    server's CPU time in microseconds as the pseudo-command ``cpu``."""
    stats: dict[str, Any] = admin.info("commandstats")
    cpu: dict[str, Any] = admin.info("cpu")
    out = {
        name.removeprefix("cmdstat_"): (int(s["calls"]), int(s["usec"]))
        for name, s in stats.items()
        if name != "cmdstat_info"
    }
    out["cpu"] = (0, round((cpu["used_cpu_user"] + cpu["used_cpu_sys"]) * 1e6))
    return out


def _round_trips(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], reserves: int
) -> dict[str, Any]:
    """Server calls per reserve in a window, checked: exactly one EVALSHA per reserve.

    commandstats also counts the commands a script runs. Every reserve here takes the same
    path, so each command's count must be a whole multiple of the reserves; a stray
    top-level command (a SCRIPT LOAD after NOSCRIPT, a retry, a health check) breaks that.
    """
    delta = {k: after[k][0] - before.get(k, (0, 0))[0] for k in after}
    per = {k: v / reserves for k, v in sorted(delta.items()) if v}
    if per.get("evalsha") != 1 or any(v != int(v) for v in per.values()):
        raise AssertionError(f"expected one EVALSHA per reserve, got per reserve {per}")
    usec = after["evalsha"][1] - before.get("evalsha", (0, 0))[1]
    cpu = after["cpu"][1] - before["cpu"][1]
    return {
        "evalsha_per_reserve": 1,
        "redis_calls_in_script": int(sum(per.values())) - 1,
        "server_usec_per_evalsha": round(usec / reserves, 1),
        "server_cpu_us_per_reserve": round(cpu / reserves, 1),
    }


async def _seed(url: str, namespace: str) -> None:
    ledger = RedisLedger(url, namespace=namespace)
    try:
        await ledger.put_budget(Budget(BUDGET, Unit.USD, Decimal(10) ** 9))
    finally:
        await ledger.aclose()


async def _outstanding(url: str, namespace: str) -> int:
    ledger = RedisLedger(url, namespace=namespace)
    try:
        return (await ledger.state(BUDGET, now=datetime.now(UTC))).outstanding
    finally:
        await ledger.aclose()


# -- 8 worker processes ---------------------------------------------------------------------


def _process_worker(url: str, namespace: str, n: int, ready: Any, go: Any, out: Any) -> None:
    async def main() -> tuple[int, int, float, float, float]:
        ledger = RedisLedger(url, namespace=namespace, socket_timeout=30)
        try:
            now = datetime.now(UTC)
            await ledger.release(  # warm: connect, before the window opens
                (await ledger.reserve(CHARGE, now=now, lease=LEASE)).reservation.id,  # type: ignore[union-attr]
                now=now,
            )
            ready.wait(TIMEOUT)  # the parent reads the server's counters here
            go.wait(TIMEOUT)
            admitted = 0
            start, cpu = time.time(), time.process_time()  # wall clock: across processes
            for _ in range(n):
                admitted += (await ledger.reserve(CHARGE, now=now, lease=LEASE)).admitted
            return n, admitted, start, time.time(), time.process_time() - cpu
        finally:
            await ledger.aclose()

    out.put(asyncio.run(main()))


def _processes(url: str, admin: redis.Redis, n: int) -> dict[str, Any]:
    namespace = f"bench-p-{uuid.uuid4().hex[:8]}"
    asyncio.run(_seed(url, namespace))
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Barrier(WORKERS + 1), ctx.Barrier(WORKERS + 1), ctx.Queue()
    per = n // WORKERS
    procs = [
        ctx.Process(target=_process_worker, args=(url, namespace, per, ready, go, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        ready.wait(TIMEOUT)
        before = _commands(admin)
        go.wait(TIMEOUT)
        reports = [out.get(timeout=TIMEOUT) for _ in procs]
        after = _commands(admin)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    total = sum(r[0] for r in reports)
    server = _round_trips(before, after, total)
    elapsed = max(r[3] for r in reports) - min(r[2] for r in reports)
    return {
        "reserves_per_s": round(total / elapsed),
        "reserves": total,
        "admitted": sum(r[1] for r in reports),
        "slowest_worker_per_s": round(min(r[0] / (r[3] - r[2]) for r in reports)),
        "client_cpu_us_per_reserve": round(sum(r[4] for r in reports) / total * 1e6, 1),
        **server,
        "outstanding_at_end": asyncio.run(_outstanding(url, namespace)),
    }


# -- one process, 8 coroutines --------------------------------------------------------------


async def _coroutines(url: str, admin: redis.Redis, n: int) -> dict[str, Any]:
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=WORKERS, timeout=10)
    client = aioredis.Redis(connection_pool=pool)
    namespace = f"bench-c-{uuid.uuid4().hex[:8]}"
    ledger = RedisLedger(client=client, namespace=namespace)
    try:
        await ledger.put_budget(Budget(BUDGET, Unit.USD, Decimal(10) ** 9))
        now = datetime.now(UTC)
        per = n // WORKERS

        async def worker() -> int:
            admitted = 0
            for _ in range(per):
                admitted += (await ledger.reserve(CHARGE, now=now, lease=LEASE)).admitted
            return admitted

        warm = await asyncio.gather(*(ledger.reserve(CHARGE, now=now) for _ in range(WORKERS)))
        for d in warm:  # warm: every pooled connection made; leave the budget as it was
            await ledger.release(d.reservation.id, now=now)  # type: ignore[union-attr]
        before = await asyncio.to_thread(_commands, admin)
        start, cpu = time.perf_counter(), time.process_time()
        admitted = sum(await asyncio.gather(*(worker() for _ in range(WORKERS))))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = await asyncio.to_thread(_commands, admin)
        server = _round_trips(before, after, per * WORKERS)
        return {
            "reserves_per_s": round(per * WORKERS / elapsed),
            "reserves": per * WORKERS,
            "admitted": admitted,
            "client_cpu_us_per_reserve": round(cpu / (per * WORKERS) * 1e6, 1),
            **server,
            "outstanding_at_end": (await ledger.state(BUDGET, now=now)).outstanding,
        }
    finally:
        await ledger.aclose()
        await client.aclose()
        await pool.aclose()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the shared 6379); its URL."""
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
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def run(n: int = 20_000) -> dict[str, Any]:
    with redis_server() as url, redis.Redis.from_url(url, socket_timeout=30) as admin:
        for source in SCRIPTS.values():  # no NOSCRIPT retry inside a measured window
            admin.script_load(source)
        processes = _processes(url, admin, n)
        coroutines = asyncio.run(_coroutines(url, admin, n))
    return {
        "workers": WORKERS,
        "processes_reserves_per_s": processes.pop("reserves_per_s"),
        "coroutines_reserves_per_s": coroutines.pop("reserves_per_s"),
        "target": TARGET,
        "processes": processes,
        "coroutines": coroutines,
    }
