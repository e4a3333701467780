"""PostgresLedger reserve throughput against a private PostgreSQL cluster (``initdb`` in a
temp dir, a free loopback port; never the machine's shared server), beside pgbench of the
same statement in the same run:

- ``processes``: 8 spawned worker processes, each with its own event loop and
  PostgresLedger (server time, as deployed), all reserving on one shared budget. They start
  behind a barrier; throughput = total reserves / (last end - first start).
- ``pgbench``: 8 clients running ``SELECT * FROM qg_reserve(...)`` itself, prepared, on the
  same budget: the server's own limit for the statement one reserve is.

Each worker checks the ledger sent one statement per reserve. Target: >= 3,000 reserves/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from quotaguard.engine import Budget, Charge, Unit
from quotaguard.ledger.postgres import PostgresLedger
from tests._support.postgres_server import PostgresServer, find_binary

WORKERS = 8
PER_WORKER = 1_500
TARGET = 3_000
BUDGET = "team-bench"  # no ":" : pgbench would read ":bench" as a variable
SCHEMA = "bench"
CHARGE = [Charge(BUDGET, Decimal("0.01"), Unit.USD)]
LEASE = timedelta(hours=1)
PGBENCH_SECONDS = 10

# The statement PostgresLedger.reserve sends, with a fresh id per call.
_PGBENCH_SCRIPT = """\
SELECT * FROM qg_reserve((extract(epoch FROM now()) * 1000000)::bigint, NULL, 30000000,
  0, 1, 3600000000, gen_random_uuid()::text, NULL, NULL,
  '[["team-bench", "0.01", "USD"]]', ARRAY['team-bench'], ARRAY['USD'], ARRAY[10000::bigint]);
"""


async def _work(dsn: str, count: int, barrier: Any) -> tuple[float, float, int]:
    async with PostgresLedger(dsn, schema=SCHEMA, pool_size=1) as ledger:
        await ledger.budgets()  # connect and check the schema before the clock starts
        statements = 0
        run = ledger._run

        async def counted(fn: Any, now: Any) -> Any:
            nonlocal statements
            statements += 1
            return await run(fn, now)

        ledger._run = counted  # type: ignore[method-assign]
        await asyncio.to_thread(barrier.wait, 60)
        started = time.perf_counter()
        for _ in range(count):
            decision = await ledger.reserve(CHARGE, now=datetime.now(UTC), lease=LEASE)
            assert decision.admitted
        ended = time.perf_counter()
        if statements != count:
            raise AssertionError(f"{statements} statements for {count} reserves")
        return started, ended, count


def _worker(dsn: str, count: int, barrier: Any, out: Any) -> None:
    out.put(asyncio.run(_work(dsn, count, barrier)))


def _processes(dsn: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(WORKERS), context.Queue()
    procs = [
        context.Process(target=_worker, args=(dsn, PER_WORKER, barrier, out))
        for _ in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    try:
        results = [out.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    total = sum(r[2] for r in results)
    return {"reserves": total, "per_s": round(total / (last - first))}


def _pgbench(server: PostgresServer) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(_PGBENCH_SCRIPT)
    try:
        done = subprocess.run(
            [find_binary("pgbench"), "-n", "-M", "prepared", "-c", str(WORKERS), "-j", "2",
             "-T", str(PGBENCH_SECONDS), "-f", script.name,
             "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "postgres"],
            capture_output=True, text=True, timeout=PGBENCH_SECONDS + 120, check=False,
            env={**os.environ, "PGOPTIONS": f"-c search_path={SCHEMA}"},
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    found = re.search(r"tps = ([\d.]+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise AssertionError(f"pgbench failed: {(done.stderr or done.stdout)[-500:]}")
    return {"per_s": round(float(found.group(1)))}


async def _setup(dsn: str) -> None:
    async with PostgresLedger(dsn, schema=SCHEMA) as ledger:
        await ledger.put_budget(Budget(BUDGET, Unit.USD, Decimal(10**9)))


def run() -> dict[str, Any]:
    with PostgresServer() as server:
        asyncio.run(_setup(server.dsn))
        ledger = _processes(server.dsn)
        limit = _pgbench(server)
    return {
        "processes_8": ledger,
        "pgbench_same_statement_8_clients": limit,
        "ratio_of_pgbench": round(ledger["per_s"] / limit["per_s"], 2),
        "target_per_s": TARGET,
        "meets_target": ledger["per_s"] >= TARGET,
        "statements_per_reserve": 1,
    }
