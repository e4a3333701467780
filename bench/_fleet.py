"""Worker processes kept for a whole bench run, so that variants interleave cheaply.

A phase sends one :class:`Job` to each of ``k`` workers. Each opens its ledger (and guard,
for admissions), warms up, says it is ready and waits; the parent reads the server's
counters, lets them all go at once, and collects each worker's count, time window and CPU.
Throughput is the total over (last end - first start): the slowest worker counts in full.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from quotaguard import Budget, BudgetGuard, Charge, Unit
from quotaguard.braket.pricing import PriceTable
from quotaguard.braket.work import BraketTask
from quotaguard.ledger.base import LedgerBase

BUDGET = "team-bench"  # no ":": pgbench would read ":bench" as a variable
CHARGE = [Charge(BUDGET, Decimal("0.01"), Unit.USD)]
LEASE = timedelta(hours=1)
BIG = Decimal(10) ** 9
DEVICE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
TASK_ARN = "arn:aws:braket:us-east-1:123456789012:quantum-task/bench-"
TIMEOUT = 300.0  # seconds any wait of the bench may take before it gives up


@dataclass(frozen=True)
class Job:
    """What one worker runs in a phase: ``count`` operations over ``coroutines``."""

    backend: str  # "redis" or "postgres"
    target: str  # URL or DSN
    space: str  # namespace or schema
    kind: str  # "reserve" (ledger.reserve) or "admission" (guard.submit, a no-op send)
    coroutines: int
    count: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    count: int
    admitted: int
    start: float
    end: float
    cpu: float
    statements: int  # PostgreSQL: statements sent in the window (0 for Redis: see INFO)


def _count_statements(ledger: Any) -> list[int]:
    """Count a PostgresLedger's statements from here on (each goes through ``_run``)."""
    counter = [0]
    run = getattr(ledger, "_run", None)
    if run is not None:

        async def counted(fn: Any, now: Any) -> Any:
            counter[0] += 1
            return await run(fn, now)

        ledger._run = counted
    return counter


def open_ledger(job: Job) -> LedgerBase:
    if job.backend == "redis":
        from quotaguard.ledger.redis import RedisLedger

        return RedisLedger(job.target, namespace=job.space, socket_timeout=30, **job.options)
    from quotaguard.ledger.postgres import PostgresLedger

    return PostgresLedger(
        job.target, schema=job.space, pool_size=job.coroutines, timeout=30, **job.options
    )


async def _operation(job: Job, ledger: LedgerBase, stack: Any) -> Callable[[], Any]:
    """One reserve, or one admission through a guard on the same ledger (reserve, the send,
    bind the task's ARN)."""
    if job.kind == "reserve":

        async def reserve() -> bool:  # a fresh now: a slow phase must not drift past max_skew
            return (await ledger.reserve(CHARGE, now=datetime.now(UTC), lease=LEASE)).admitted

        return reserve
    guard = await stack.enter_async_context(BudgetGuard(ledger, prices=PriceTable.default()))
    task = BraketTask(DEVICE, shots=10)
    arns = (f"{TASK_ARN}{os.getpid()}-{i}" for i in itertools.count())

    async def send() -> str:  # no HTTP: a task ARN at once, which the guard binds
        return next(arns)

    async def admit() -> bool:
        await guard.submit(task, send, budgets=(BUDGET,))
        return True

    return admit


async def _phase(job: Job, out: Any, go: Any) -> Report:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:
        ledger = await stack.enter_async_context(open_ledger(job))
        op = await _operation(job, ledger, stack)
        await asyncio.gather(*(op() for _ in range(job.coroutines)))  # warm: connect, caches
        per = job.count // job.coroutines

        async def worker() -> int:
            return sum([await op() for _ in range(per)])

        statements = _count_statements(ledger)
        out.put("ready")
        await asyncio.to_thread(go.wait, TIMEOUT)
        start, cpu = time.time(), time.process_time()  # wall clock: across processes
        admitted = sum(await asyncio.gather(*(worker() for _ in range(job.coroutines))))
        end, cpu = time.time(), time.process_time() - cpu
        return Report(per * job.coroutines, admitted, start, end, cpu, statements[0])


def _worker(inbox: Any, out: Any, go: Any) -> None:
    while (job := inbox.get()) is not None:
        try:
            out.put(asyncio.run(_phase(job, out, go)))
        except Exception as exc:  # the parent raises it; this worker serves the next phase
            out.put(f"error: {type(exc).__name__}: {exc}")


class Fleet:
    """``size`` spawned workers, each with its own inbox; one queue back; one start signal."""

    def __init__(self, size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._out, self._go = ctx.Queue(), ctx.Event()
        self._inboxes = [ctx.Queue() for _ in range(size)]
        self._procs = [
            ctx.Process(target=_worker, args=(inbox, self._out, self._go), daemon=True)
            for inbox in self._inboxes
        ]
        for proc in self._procs:
            proc.start()

    def run(self, jobs: list[Job], at_start: Callable[[], Any]) -> tuple[Any, list[Report]]:
        """Run one job per worker; ``at_start()`` is read once all are ready."""
        self._go.clear()
        for inbox, job in zip(self._inboxes, jobs, strict=False):
            inbox.put(job)
        got = [self._out.get(timeout=TIMEOUT) for _ in jobs]
        errors = [g for g in got if g != "ready"]
        if errors:  # let the ready ones run through, then say what failed
            self._go.set()
            for _ in range(len(jobs) - len(errors)):
                self._out.get(timeout=TIMEOUT)
            raise RuntimeError(errors[0])
        before = at_start()
        self._go.set()
        reports = [self._out.get(timeout=TIMEOUT) for _ in jobs]
        for report in reports:
            if not isinstance(report, Report):
                raise RuntimeError(report)
        return before, reports

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for proc in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


@contextmanager
def fleet(size: int) -> Iterator[Fleet]:
    workers = Fleet(size)
    try:
        yield workers
    finally:
        workers.close()


def summarise(reports: list[Report]) -> dict[str, Any]:
    total = sum(r.count for r in reports)
    elapsed = max(r.end for r in reports) - min(r.start for r in reports)
    out = {
        "per_s": round(total / elapsed),
        "ops": total,
        "admitted": sum(r.admitted for r in reports),
        "client_cpu_us_per_op": round(sum(r.cpu for r in reports) / total * 1e6, 1),
    }
    statements = sum(r.statements for r in reports)
    if statements:  # PostgreSQL's (Redis's are counted on the server)
        out["statements_per_op"] = round(statements / total, 2)
    return out


async def seed(job: Job) -> None:
    """The budget every worker charges, in a fresh namespace or schema."""
    async with open_ledger(job) as ledger:
        await ledger.put_budget(Budget(BUDGET, Unit.USD, BIG))
