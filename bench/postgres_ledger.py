"""PostgresLedger throughput beside pgbench of the same statement, in the same run.

A private PostgreSQL cluster (``initdb`` in a temp dir, a free loopback port; never the
machine's shared server; fsync off, as the test cluster: the kernel keeps the WAL):

- ``reserve``: 8 worker processes, each with its own event loop and PostgresLedger, all
  reserving on one shared budget;
- ``admission``: ``guard.submit`` (a no-op send) on the same kind of ledger, 8 processes;
- ``pgbench``: 8 clients running ``SELECT * FROM qg_reserve(...)`` itself, prepared, on the
  same budget: the server's own limit for the statement one reserve is.

Each worker counts the statements its ledger sends: exactly one per reserve.
Target: >= 3,000 reserves/s.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import uuid
from typing import Any

from bench._fleet import BUDGET, Fleet, Job, fleet, seed, summarise
from tests._support.postgres_server import PostgresServer, find_binary

WORKERS = 8
TARGET = 3_000
PGBENCH_SECONDS = 10

# The statement PostgresLedger.reserve sends, with a fresh id per call.
_PGBENCH_SCRIPT = f"""\
SELECT * FROM qg_reserve((extract(epoch FROM now()) * 1000000)::bigint, NULL, 30000000,
  0, 1, 3600000000, gen_random_uuid()::text, NULL, NULL,
  '[["{BUDGET}", "0.01", "USD"]]', ARRAY['{BUDGET}'], ARRAY['USD'], ARRAY[10000::bigint]);
"""


def _phase(workers: Fleet, dsn: str, kind: str, count: int) -> dict[str, Any]:
    job = Job("postgres", dsn, f"bench_{uuid.uuid4().hex[:8]}", kind, 1, count // WORKERS)
    asyncio.run(seed(job))
    _, reports = workers.run([job] * WORKERS, lambda: None)
    out = summarise(reports)
    if kind == "reserve" and out["statements_per_op"] != 1:
        raise AssertionError(f"expected one statement per reserve, got {out}")
    return out


def _pgbench(server: PostgresServer, schema: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(_PGBENCH_SCRIPT)
    try:
        done = subprocess.run(
            [find_binary("pgbench"), "-n", "-M", "prepared", "-c", str(WORKERS), "-j", "2",
             "-T", str(PGBENCH_SECONDS), "-f", script.name,
             "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "postgres"],
            capture_output=True, text=True, timeout=PGBENCH_SECONDS + 120, check=False,
            env={**os.environ, "PGOPTIONS": f"-c search_path={schema}"},
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    found = re.search(r"tps = ([\d.]+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise AssertionError(f"pgbench failed: {(done.stderr or done.stdout)[-500:]}")
    return {"per_s": round(float(found.group(1)))}


def run(n: int = 12_000) -> dict[str, Any]:
    with PostgresServer() as server, fleet(WORKERS) as workers:
        reserve = _phase(workers, server.dsn, "reserve", n)
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(seed(Job("postgres", server.dsn, schema, "reserve", 1, 0)))
        limit = _pgbench(server, schema)
        admission = _phase(workers, server.dsn, "admission", n // 2)
    return {
        "reserve_8_processes_per_s": reserve["per_s"],
        "admission_8_processes_per_s": admission["per_s"],
        "pgbench_same_statement_8_clients_per_s": limit["per_s"],
        "reserve_of_pgbench": round(reserve["per_s"] / limit["per_s"], 2),
        "admission_of_pgbench": round(admission["per_s"] / limit["per_s"], 2),
        "target_per_s": TARGET,
        "meets_target": reserve["per_s"] >= TARGET,
        "reserve": reserve,
        "admission": admission,
    }
