"""``quotaguard demo``: a burst of IBM and Braket work through the guard, on the emulator.

Nothing to configure: the emulator runs in-process on a free loopback port, the ledger is
the embedded SQLite one in a temporary directory.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import botocore.session
import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from quotaguard.braket import BraketClient, BraketTask
from quotaguard.cli.context import run_async
from quotaguard.cli.output import (
    EXIT_OK,
    EXIT_REJECTED,
    budgets_table,
    fail,
    out,
    print_forecasts,
    print_json,
    short_key,
    state_row,
)
from quotaguard.engine import Budget, Unit
from quotaguard.errors import BudgetExceeded
from quotaguard.guard import BudgetGuard, Submission
from quotaguard.ibm import IBMJob, IBMRuntimeClient
from quotaguard.ledger import SQLiteLedger
from quotaguard.testing import Emulator
from quotaguard.testing.seed import DemoSeed, seed_demo

__all__ = ["DemoRow", "demo", "run_demo"]


@click.command()
@click.option("--ibm-jobs", default=12, show_default=True, help="IBM jobs in the burst.")
@click.option("--braket-tasks", default=12, show_default=True, help="Braket tasks in the burst.")
@click.option("--seed", default=7, show_default=True, help="Random seed for the burst.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--keep-ledger",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep the demo's SQLite ledger in this new file (for quotaguard --ledger FILE report).",
)
def demo(
    ibm_jobs: int, braket_tasks: int, seed: int, as_json: bool, keep_ledger: Path | None
) -> None:
    """Run a burst of IBM and Braket work through the guard against the local emulator."""
    if ibm_jobs < 0 or braket_tasks < 0:
        fail("--ibm-jobs and --braket-tasks must be >= 0")
    if keep_ledger is not None and (keep_ledger.exists() or not keep_ledger.parent.is_dir()):
        fail(f"--keep-ledger {keep_ledger}: must be a new file in an existing directory")
    ok = run_async(run_demo)(
        ibm_jobs=ibm_jobs,
        braket_tasks=braket_tasks,
        seed=seed,
        as_json=as_json,
        console=out,
        ledger_path=keep_ledger,
    )
    sys.exit(EXIT_OK if ok else EXIT_REJECTED)


TEAMS = {"team:research": Decimal("30"), "team:physics": Decimal("100")}
BRAKET_SHOTS = 100


@attrs.frozen
class DemoRow:
    n: int
    provider: str
    work: str
    admitted: bool
    rule: str = ""
    message: str = ""
    job: str = ""
    budget: str = ""
    requested: str = ""
    remaining: str = ""


async def _ibm_submit(ibm: IBMRuntimeClient, job: IBMJob) -> str:
    return await ibm.run_job(
        program_id="sampler",
        backend=job.backend,
        params={"pubs": []},
        max_execution_time=job.max_execution_time,
    )


async def _braket_submit(braket: BraketClient, task: BraketTask, n: int) -> str:
    return await braket.create_quantum_task(
        task.device_arn,
        '{"braketSchemaHeader": {"name": "braket.ir.openqasm.program", '
        '"version": "1"}, "source": "OPENQASM 3; qubit[2] q; h q[0]; cnot q[0], q[1];"}',
        task.effective_shots,
        "amazon-braket-demo",
        f"tasks/{n}",
    )


def _work_list(seed: DemoSeed, ibm_jobs: int, braket_tasks: int, rng: random.Random) -> list[Any]:
    work: list[Any] = []
    for i in range(ibm_jobs):
        # One job forgets max_execution_time: it would reserve the 3 h cap.
        met = None if i == ibm_jobs // 2 else rng.choice([60, 90, 120, 180])
        work.append(IBMJob(seed.backend, max_execution_time=met))
    teams = list(TEAMS)
    for i in range(braket_tasks):
        work.append((BraketTask(seed.device_arn, shots=BRAKET_SHOTS), teams[i % 2]))
    rng.shuffle(work)
    return work


async def run_demo(
    *,
    ibm_jobs: int = 12,
    braket_tasks: int = 12,
    seed: int = 7,
    as_json: bool = False,
    console: Console | None = None,
    ledger_path: Path | None = None,
) -> bool:
    """Run the demo; True when no limit was exceeded on the server side.

    ``ledger_path``: where its SQLite ledger is kept (default: a temporary file, deleted).
    """
    console = console or Console()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="quotaguard-demo-") as tmp:
        async with Emulator() as emu:
            world = seed_demo(emu)
            creds = botocore.session.Session()
            creds.set_credentials("AKIDEMULATOR", "emulator-secret")
            async with (
                IBMRuntimeClient(
                    world.api_key, world.service_crn, base_url=f"{emu.url}/api", iam_url=emu.url
                ) as ibm,
                BraketClient(world.region, endpoint_url=emu.url, botocore_session=creds) as braket,
                SQLiteLedger(ledger_path or Path(tmp) / "ledger.sqlite3") as ledger,
                BudgetGuard(ledger, ibm=ibm, braket=braket) as guard,
            ):
                for key, limit in TEAMS.items():
                    await guard.add_budget(Budget(key, Unit.USD, limit))
                rows = await _burst(
                    guard, ibm, braket, world, ibm_jobs, braket_tasks, rng, console, quiet=as_json
                )
                # The jobs run and end on the emulator; the guard settles them.
                for row in rows:
                    if row.admitted and row.provider == "ibm":
                        emu.ibm.complete_job(row.job, quantum_seconds=rng.randint(5, 40))
                    elif row.admitted:
                        emu.braket.complete_task(row.job)
                settled = await guard.watch_once()
                await guard.sync()
                states = await guard.status()
                burn = await guard.forecast()
            server = _server_check(emu, world)
    ok = all(s["within_limit"] for s in server)
    if as_json:
        print_json(
            {
                "ok": ok,
                "settled": settled,
                "submissions": [attrs.asdict(r) for r in rows],
                "budgets": [
                    {**state_row(s), "forecast": f.to_dict()}
                    for s, f in zip(states, burn, strict=True)
                ],
                "server": server,
            }
        )
    else:
        _report(console, rows, states, server, settled)
        print_forecasts(burn, console)
    return ok


async def _burst(
    guard: BudgetGuard,
    ibm: IBMRuntimeClient,
    braket: BraketClient,
    world: DemoSeed,
    ibm_jobs: int,
    braket_tasks: int,
    rng: random.Random,
    console: Console,
    *,
    quiet: bool,
) -> list[DemoRow]:
    work = _work_list(world, ibm_jobs, braket_tasks, rng)

    async def one(n: int, item: Any) -> DemoRow:
        if isinstance(item, IBMJob):
            met = item.max_execution_time
            label = f"IBM job {met} s" if met else "IBM job, no max"
            submit: Any = lambda: _ibm_submit(ibm, item)  # noqa: E731
            kw: dict[str, Any] = {}
            provider = "ibm"
        else:
            task, team = item
            label = f"Forte ×{task.effective_shots} {team.removeprefix('team:')}"
            submit = lambda: _braket_submit(braket, task, n)  # noqa: E731
            kw = {"budgets": (team,)}
            provider, item = "braket", task
        try:
            sub: Submission[Any] = await guard.submit(item, submit, **kw)
        except BudgetExceeded as exc:
            v = exc.decision.violations[0]
            unit = {"seconds": " s", "USD": " USD"}.get(v.unit.value, "") if v.unit else ""
            return DemoRow(
                n,
                provider,
                label,
                False,
                v.rule,
                v.message,
                budget=v.budget or "",
                requested=f"{v.requested}{unit}" if v.requested is not None else "",
                remaining=f"{v.remaining}{unit}" if v.remaining is not None else "",
            )
        return DemoRow(n, provider, label, True, job=sub.external_id or "")

    with Progress(
        TextColumn("submitting"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        bar = progress.add_task("burst", total=len(work))

        async def tracked(n: int, item: Any) -> DemoRow:
            row = await one(n, item)
            progress.advance(bar)
            return row

        rows = await asyncio.gather(*(tracked(n, item) for n, item in enumerate(work, 1)))
    return list(rows)


def _server_check(emu: Emulator, world: DemoSeed) -> list[dict[str, Any]]:
    instance = emu.ibm.instances[world.service_crn]
    limit = emu.braket.limit_for(world.device_arn)
    assert instance.limit_seconds is not None
    assert limit is not None
    braket_used = limit.total + limit.queued
    return [
        {
            "service": "IBM instance",
            "used": instance.consumed_seconds,
            "limit": instance.limit_seconds,
            "unit": "seconds",
            "within_limit": instance.consumed_seconds <= instance.limit_seconds,
        },
        {
            "service": "Braket spending limit",
            "used": braket_used,
            "limit": limit.amount,
            "unit": "USD",
            "within_limit": braket_used <= limit.amount,
        },
    ]


def _report(
    console: Console, rows: list[DemoRow], states: Any, server: list[dict[str, Any]], settled: int
) -> None:
    table = Table(title="Submissions", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("work", "result", "rule", "budget", "asks", "left"):
        table.add_column(col, no_wrap=True)
    for r in sorted(rows, key=lambda r: r.n):
        result = "[green]sent[/green]" if r.admitted else "[red]rejected[/red]"
        table.add_row(
            r.work,
            result,
            r.rule or "-",
            short_key(r.budget) if r.budget else "",
            r.requested,
            r.remaining,
        )
    console.print(table)
    shown: set[str] = set()
    for r in rows:
        if r.rule and r.rule not in shown:
            shown.add(r.rule)
            console.print(f"[bold]{r.rule}[/bold]: {r.message}", soft_wrap=False)
    admitted = sum(r.admitted for r in rows)
    console.print(
        f"{admitted} admitted, {len(rows) - admitted} rejected before sending; "
        f"{settled} settled at their actual cost.\n"
    )
    console.print(budgets_table(states, "Budgets after settlement"))
    for s in server:
        mark = "[green]✓[/green]" if s["within_limit"] else "[red]✗ EXCEEDED[/red]"
        console.print(
            f"{mark} server side, {s['service']}: {s['used']} of {s['limit']} {s['unit']} used"
        )
