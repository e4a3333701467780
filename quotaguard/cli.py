"""The ``quotaguard`` command.

Exit codes: 0 ok / admitted, 1 rejected, 2 usage or configuration error (one line on stderr).
Every reading command takes ``--json`` for scripts.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table

from quotaguard import __version__
from quotaguard.config import Settings, load_settings
from quotaguard.engine.model import BudgetState, Decision
from quotaguard.errors import BudgetExceeded, InvalidInput, QuotaGuardError
from quotaguard.guard import BudgetGuard
from quotaguard.ledger.base import Ledger

__all__ = ["main"]

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

# Piped output (CI logs, captures) gets 110 columns rather than rich's 80.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
err = Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    err.print(f"quotaguard: {message}", markup=False, soft_wrap=True)
    sys.exit(code)


def run_async(fn: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Run an async command; map configuration errors to exit 2 with a one-line reason."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]
        except BudgetExceeded as exc:
            fail(str(exc), EXIT_REJECTED)
        except InvalidInput as exc:
            fail(str(exc))
        except QuotaGuardError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            sys.exit(130)
        raise AssertionError("unreachable")

    return wrapper


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_json(data: object) -> None:
    click.echo(json.dumps(data, default=_json_default, indent=2))


def settings_of(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


def open_ledger(settings: Settings) -> Ledger:
    if settings.ledger_url:
        from quotaguard.ledger.redis import RedisLedger

        return RedisLedger(settings.ledger_url)
    from quotaguard.ledger.sqlite import SQLiteLedger

    return SQLiteLedger(settings.ledger_path)


def ibm_client(settings: Settings, *, required: bool) -> Any:
    from quotaguard.ibm.client import IBMRuntimeClient

    try:
        return IBMRuntimeClient.from_config(
            service_crn=settings.ibm_service_crn,
            base_url=settings.ibm_base_url,
            iam_url=settings.ibm_iam_url,
        )
    except InvalidInput:
        if required:
            raise
        return None


def braket_client(settings: Settings, *, required: bool) -> Any:
    from quotaguard.braket.client import BraketClient

    try:
        return BraketClient(settings.braket_region, endpoint_url=settings.braket_endpoint_url)
    except InvalidInput:
        if required:
            raise
        return None


@asynccontextmanager
async def open_guard(
    settings: Settings, *, ibm: bool | None = None, braket: bool | None = None
) -> AsyncIterator[BudgetGuard]:
    """A guard with whichever providers are configured (``True`` = required)."""
    from datetime import timedelta

    async with AsyncExitStack() as stack:
        ibm_c = ibm_client(settings, required=bool(ibm)) if ibm is not False else None
        braket_c = braket_client(settings, required=bool(braket)) if braket is not False else None
        for client in (ibm_c, braket_c):
            if client is not None:
                await stack.enter_async_context(client)
        ledger: Ledger = await stack.enter_async_context(open_ledger(settings))  # type: ignore[arg-type]
        guard = BudgetGuard(
            ledger,
            ibm=ibm_c,
            braket=braket_c,
            ibm_price_per_second=settings.ibm_price_per_second,
            fail_mode=settings.fail_mode,  # type: ignore[arg-type]
            state_ttl=timedelta(seconds=settings.state_ttl_seconds),
            max_staleness=timedelta(seconds=max(600, settings.state_ttl_seconds)),
        )
        yield await stack.enter_async_context(guard)


def state_row(s: BudgetState) -> dict[str, object]:
    return {
        "key": s.key,
        "unit": s.unit.value,
        "limit": s.limit,
        "used": s.used,
        "committed": s.committed,
        "reserved": s.reserved,
        "remaining": s.remaining,
        "reported": s.reported,
        "outstanding": s.outstanding,
        "window": s.budget.window.kind,
        "window_start": s.window_start,
        "window_end": s.window_end,
    }


def bar(used: Decimal, limit: Decimal, width: int = 10) -> str:
    frac = float(used / limit) if limit else 1.0
    filled = min(width, round(frac * width))
    colour = "green" if frac <= 0.8 else "yellow" if frac <= 1 else "red"
    return f"[{colour}]{'█' * filled}[/{colour}]{'░' * (width - filled)} {frac:>4.0%}"


def short_key(key: str, width: int = 24) -> str:
    """A budget key that fits a table cell: the tail of long provider ARNs and CRNs."""
    if len(key) <= width:
        return key
    provider, _, rest = key.partition(":")
    tail = rest.rsplit("/", 2)[-2:] if provider == "braket" else [rest.rsplit(":", 1)[-1]]
    return f"{provider}:…{tail[-1]}"


def budgets_table(states: list[BudgetState], title: str = "Budgets") -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("budget", "unit", "limit", "used", "reserved", "remaining", "window", ""):
        table.add_column(
            col,
            justify="right" if col in ("limit", "used", "reserved", "remaining") else "left",
            no_wrap=True,
        )
    for s in states:
        window = {"none": "-", "calendar_month": "month", "rolling_days": "rolling"}.get(
            s.budget.window.kind, s.budget.window.kind
        )
        if s.window_end is not None:
            window += f"→{s.window_end:%m-%d}"
        table.add_row(
            short_key(s.key),
            "s" if s.unit.value == "seconds" else s.unit.value,
            str(s.limit),
            str(s.used),
            str(s.reserved),
            str(s.remaining),
            window,
            bar(s.used, s.limit),
        )
    return table


def decision_dict(decision: Decision) -> dict[str, object]:
    return {
        "admitted": decision.admitted,
        "charges": [
            {"budget": c.budget, "amount": c.amount, "unit": c.unit.value} for c in decision.charges
        ],
        "violations": [
            {
                "rule": v.rule,
                "message": v.message,
                "budget": v.budget,
                "requested": v.requested,
                "remaining": v.remaining,
                "unit": v.unit.value if v.unit else None,
            }
            for v in decision.violations
        ],
    }


def show_decision(decision: Decision, as_json: bool) -> None:
    if as_json:
        print_json(decision_dict(decision))
    elif decision.admitted:
        out.print(
            "[green]admitted[/green]: "
            + ", ".join(f"{c.amount} {c.unit.value} on {c.budget}" for c in decision.charges)
            or "admitted"
        )
    else:
        out.print("[red]rejected[/red]")
        for v in decision.violations:
            out.print(f"  [bold]{v.rule}[/bold] {v.message}", soft_wrap=True)
    sys.exit(EXIT_OK if decision.admitted else EXIT_REJECTED)


# -- commands -----------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="quotaguard")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A quotaguard.toml to read instead of the default locations.",
)
@click.option("--ledger", help="SQLite file path, or redis:// URL for a fleet ledger.")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, ledger: str | None) -> None:
    """Reject over-budget quantum work on IBM Quantum and Amazon Braket before it is sent."""
    flags: dict[str, object] = {}
    if ledger:
        flags["ledger.url" if ledger.startswith(("redis://", "rediss://")) else "ledger.path"] = (
            ledger
        )
    if config_path is not None and not config_path.is_file():
        fail(f"--config {config_path}: no such file")
    try:
        ctx.obj = load_settings(flags=flags, path=config_path)
    except InvalidInput as exc:
        fail(str(exc))


@main.command()
@click.option("--ibm-jobs", default=12, show_default=True, help="IBM jobs in the burst.")
@click.option("--braket-tasks", default=12, show_default=True, help="Braket tasks in the burst.")
@click.option("--seed", default=7, show_default=True, help="Random seed for the burst.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(ibm_jobs: int, braket_tasks: int, seed: int, as_json: bool) -> None:
    """Run a burst of IBM and Braket work through the guard against the local emulator."""
    from quotaguard.demo import run_demo

    if ibm_jobs < 0 or braket_tasks < 0:
        fail("--ibm-jobs and --braket-tasks must be >= 0")
    ok = run_async(run_demo)(
        ibm_jobs=ibm_jobs, braket_tasks=braket_tasks, seed=seed, as_json=as_json, console=out
    )
    sys.exit(EXIT_OK if ok else EXIT_REJECTED)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Every budget the guard knows: provider limits, local budgets, outstanding work."""

    from quotaguard._cli_admin import ibm_usage_row, limit_rows, print_limits, print_usage

    async def body() -> dict[str, Any]:
        found: dict[str, Any] = {"ibm": None, "braket": None}
        async with open_guard(settings_of(ctx)) as guard:
            await guard.sync()
            for adapter in guard.adapters:
                client: Any = getattr(adapter, "client", None)
                if adapter.provider == "ibm":
                    found["ibm"] = await ibm_usage_row(client)
                elif adapter.provider == "braket" and client is not None:
                    found["braket"] = limit_rows(
                        [lim async for lim in client.search_spending_limits()]
                    )
            found["providers"] = [a.provider for a in guard.adapters]
            found["budgets"] = await guard.status()
            found["outstanding"] = len(await guard.ledger.outstanding())
        return found

    found = run_async(body)()
    states: list[BudgetState] = found.pop("budgets")
    if as_json:
        print_json({**found, "budgets": [state_row(s) for s in states]})
        return
    providers = ", ".join(found["providers"]) or "none configured"
    out.print(f"providers: {providers}; outstanding reservations: {found['outstanding']}")
    if found["ibm"] is not None:
        print_usage(found["ibm"])
    if found["braket"] is not None:
        print_limits(found["braket"])
    if states:
        out.print(budgets_table(states, "Budgets in the ledger"))
    else:
        out.print("no budgets yet: add one with BudgetGuard.add_budget() or a provider limit")


@main.group()
def check() -> None:
    """Would this work be admitted now? Nothing is reserved, nothing sent."""


@check.command("ibm")
@click.option("--backend", required=True, help="Backend name, e.g. ibm_brisbane.")
@click.option("--max-execution-time", type=int, help="Seconds; unset reserves the 3 h cap.")
@click.option("--simulator", is_flag=True, help="A simulator job (no QPU budget).")
@click.option("--budget", "budgets", multiple=True, help="Also charge this budget key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check_ibm(
    ctx: click.Context,
    backend: str,
    max_execution_time: int | None,
    simulator: bool,
    budgets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check an IBM job."""
    from quotaguard.ibm.work import IBMJob

    async def body() -> Decision:
        work = IBMJob(backend, max_execution_time=max_execution_time, simulator=simulator)
        async with open_guard(settings_of(ctx), ibm=True, braket=False) as guard:
            return await guard.check(work, budgets=budgets)

    show_decision(run_async(body)(), as_json)


@check.command("braket")
@click.option("--device", required=True, help="Device ARN.")
@click.option("--shots", type=int, default=None, help="Shots (default 1000 on a QPU).")
@click.option("--budget", "budgets", multiple=True, help="Also charge this budget key.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check_braket(
    ctx: click.Context, device: str, shots: int | None, budgets: tuple[str, ...], as_json: bool
) -> None:
    """Check a Braket task."""
    from quotaguard.braket.work import BraketTask

    async def body() -> Decision:
        work = BraketTask(device, shots=shots)
        async with open_guard(settings_of(ctx), ibm=False, braket=True) as guard:
            return await guard.check(work, budgets=budgets)

    show_decision(run_async(body)(), as_json)


from quotaguard._cli_admin import emulator, ibm_limit, limits  # noqa: E402  (registers commands)

main.add_command(limits)
main.add_command(ibm_limit)
main.add_command(emulator)


def now_utc() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    main()
