"""RedisLedger throughput beside the server's own limit, all in one run, interleaved.

Two throwaway redis-servers on free loopback ports (never the shared 6379): AOF off, and
``appendonly yes`` + ``appendfsync always``. On each:

- the server's limit: the very EVALSHA a ledger reserve sends (captured from a RedisLedger),
  each call with a fresh reservation id and every reply checked to be a hold, from 8 raw
  connections, unpipelined and pipelined 16 deep (:mod:`bench._server_limit`; not
  ``redis-benchmark``, whose random fill gave the record key and the payload different ids);
- ``reserve``: ``ledger.reserve`` from 1 process x 8 coroutines and 8 processes x 4
  coroutines, all on one budget;
- ``admission``: ``guard.submit`` (a no-op send) on the same kind of ledger, same shapes;

each with batching on (the default) and off (one call at a time: the code before it),
side by side. Each phase checks ``INFO commandstats``: a whole number of EVALSHAs per
operation and no other command (exactly one per reserve). Targets: 8 coroutines >= 20,000
reserves/s, 8 x 4 >= 10,000/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import redis

from bench._fleet import BIG, BUDGET, CHARGE, LEASE, Fleet, Job, fleet, seed, summarise
from bench._server_limit import evalsha_limit
from quotaguard import Budget, Unit
from quotaguard.ledger.redis import SCRIPTS, RedisLedger
from quotaguard.ledger.redis.codec import encode_args, text

TARGETS = {"coroutines_8": 20_000, "processes_8x4": 10_000}
SHAPES = {"coroutines_8": (1, 8), "processes_8x4": (8, 4)}  # processes, coroutines each
SERVERS = {"aof_off": False, "aof_always": True}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(aof_always: bool = False) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the shared 6379); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("install redis-server: apt-get install redis-server; .ci/run does this")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp]
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if aof_always else []
        proc = subprocess.Popen(
            [*argv, *(aof or ["--appendonly", "no"])], stdout=subprocess.DEVNULL
        )
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


def _server_side(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], ops: int, kind: str
) -> dict[str, Any]:
    """EVALSHAs per operation and the server's time, checked: a whole number of each
    command per operation (every operation takes the same path), one EVALSHA per reserve.

    commandstats also counts the commands a script runs; a stray top-level command (a
    SCRIPT LOAD after NOSCRIPT, a retry, a health check) breaks the whole numbers.
    """
    delta = {k: after[k][0] - before.get(k, (0, 0))[0] for k in after}
    per = {k: v / ops for k, v in sorted(delta.items()) if v}
    evalsha = per.get("evalsha", 0)
    if (kind == "reserve" and evalsha != 1) or any(v != int(v) for v in per.values()):
        raise AssertionError(f"expected whole EVALSHAs per {kind}, got per {kind} {per}")
    usec = after["evalsha"][1] - before.get("evalsha", (0, 0))[1]
    return {
        "evalsha_per_op": int(evalsha),
        "server_usec_per_evalsha": round(usec / (ops * evalsha), 1),
        "server_cpu_us_per_op": round((after["cpu"][1] - before["cpu"][1]) / ops, 1),
    }


async def _reserve_command(url: str) -> tuple[list[str], str]:
    """The EVALSHA one ledger reserve sends (its keys declared) on a budget of its own, and
    its reservation id (which :mod:`bench._server_limit` makes fresh per call)."""
    seen: list[tuple[str, tuple[object, ...], tuple[str, ...]]] = []
    ledger = RedisLedger(url, namespace=f"limit-{uuid.uuid4().hex[:8]}", durability="off")
    call = ledger._call

    async def capture(
        op: str, *args: object, now: datetime | None = None, keys: tuple[str, ...] = ()
    ) -> list[Any]:
        seen.append((op, args, keys))
        return await call(op, *args, now=now, keys=keys)

    ledger._call = capture  # type: ignore[method-assign]
    try:
        await seed_budget(ledger)
        seen.clear()
        await ledger.reserve(CHARGE, now=datetime.now(UTC), lease=LEASE)
    finally:
        await ledger.aclose()
    op, args, keys = seen[0]
    command = ledger._command(op, keys, encode_args(args))
    return [text(part) for part in command], str(args[4])


async def seed_budget(ledger: RedisLedger) -> None:
    await ledger.put_budget(Budget(BUDGET, Unit.USD, BIG))


def _phase(
    workers: Fleet, admin: redis.Redis, url: str, always: bool, kind: str, shape: str,
    batching: bool, n: int,
) -> dict[str, Any]:  # fmt: skip
    processes, coroutines = SHAPES[shape]
    options = {"batching": batching, "durability": "strict" if always else "off"}
    job = Job("redis", url, f"bench-{uuid.uuid4().hex[:8]}", kind, coroutines, n // processes,
              options)  # fmt: skip
    asyncio.run(seed(job))
    before, reports = workers.run([job] * processes, lambda: _commands(admin))
    out = summarise(reports)
    return {**out, **_server_side(before, _commands(admin), out["ops"], kind)}


def run(n: int = 8_000, rounds: int = 3) -> dict[str, Any]:
    """Every variant ``rounds`` times, interleaved; the best of each (a loaded machine only
    ever slows a run down)."""
    best: dict[str, Any] = {}

    def keep(path: tuple[str, ...], result: dict[str, Any]) -> None:
        node = best
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path[-1] not in node or result["per_s"] > node[path[-1]]["per_s"]:
            node[path[-1]] = result

    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(redis_server(always)) for name, always in SERVERS.items()}
        admins = {
            name: stack.enter_context(redis.Redis.from_url(url, socket_timeout=30))
            for name, url in urls.items()
        }
        for admin in admins.values():
            for source in SCRIPTS.values():  # no NOSCRIPT retry inside a measured window
                admin.script_load(source)
        workers = stack.enter_context(fleet(max(p for p, _ in SHAPES.values())))
        for _ in range(rounds):
            for name, always in SERVERS.items():
                url, admin = urls[name], admins[name]
                port = int(url.rsplit(":", 1)[1].split("/")[0])
                for depth in (1, 16):
                    # Captured afresh: the payload carries the caller's time, which the
                    # script checks against the server's (max_skew).
                    template, rid = asyncio.run(_reserve_command(url))
                    rate = evalsha_limit(port, template, rid, n, depth=depth)
                    keep((name, "server_limit", f"pipeline_{depth}"), {"per_s": rate})
                for kind in ("reserve", "admission"):
                    count = n if kind == "reserve" else n // 2
                    for shape in SHAPES:
                        for batching in (True, False):
                            result = _phase(
                                workers, admin, url, always, kind, shape, batching, count
                            )
                            label = "batched" if batching else "alone"
                            keep((name, kind, shape, label), result)
    return _report(best)


def _report(best: dict[str, Any]) -> dict[str, Any]:
    """Headline figures first: each rate and its ratio of the server's limit (the better of
    the raw driver's two runs: what the server itself can do with this command)."""
    headline: dict[str, Any] = {}
    for name in SERVERS:
        pipelined = best[name]["server_limit"]["pipeline_16"]["per_s"]
        unpipelined = best[name]["server_limit"]["pipeline_1"]["per_s"]
        limit = max(pipelined, unpipelined)
        headline[f"{name}_server_limit_per_s"] = {
            "pipelined_16": pipelined,
            "unpipelined": unpipelined,
            "server_limit": limit,
        }
        for kind in ("reserve", "admission"):
            for shape, target in TARGETS.items():
                runs = best[name][kind][shape]
                for result in runs.values():
                    result["of_server_limit"] = round(result["per_s"] / limit, 2)
                row: dict[str, Any] = {
                    label: runs[label]["per_s"] for label in ("batched", "alone")
                }
                row["batched_of_server_limit"] = runs["batched"]["of_server_limit"]
                row["speedup"] = round(runs["batched"]["per_s"] / runs["alone"]["per_s"], 2)
                # CPU per operation moves less than the rates on a loaded machine.
                row["client_cpu_us_per_op"] = {
                    label: runs[label]["client_cpu_us_per_op"] for label in ("batched", "alone")
                }
                if kind == "reserve":
                    row["target"] = target
                    row["meets_target"] = runs["batched"]["per_s"] >= target
                headline[f"{name}_{kind}_{shape}_per_s"] = row
    return {**headline, "details": best}
