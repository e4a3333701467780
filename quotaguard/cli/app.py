"""The ``quotaguard`` command.

Exit codes: 0 ok / admitted, 1 rejected, 2 usage or configuration error (one line on stderr).
Every reading command takes ``--json`` for scripts.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from quotaguard import __version__
from quotaguard.cli.output import (
    EXIT_OK,
    EXIT_REJECTED,
    budgets_table,
    fail,
    out,
    print_json,
    short_key,
    show_decision,
    state_row,
)
from quotaguard.cli.settings import Settings, load_settings
from quotaguard.engine.model import BudgetState, Decision
from quotaguard.errors import BudgetExceeded, InvalidInput, QuotaGuardError
from quotaguard.guard import BudgetGuard
from quotaguard.ledger.base import Ledger

# The output helpers stay importable from here: quotaguard.cli.demo uses them.
__all__ = ["budgets_table", "main", "print_json", "short_key", "state_row"]

P = ParamSpec("P")
R = TypeVar("R")


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
        except TimeoutError as exc:  # a bound that no quotaguard error worded
            fail(f"timed out: {str(exc) or 'no answer in time'}")
        except KeyboardInterrupt:
            sys.exit(130)
        raise AssertionError("unreachable")

    return wrapper


def settings_of(ctx: click.Context) -> Settings:
    """The settings, read on first use (``main`` keeps only what it was given), so ``--help``,
    ``demo`` and ``emulator`` work whatever the config file holds. A plain dict, not a class
    of this module: run as ``python -m quotaguard.cli``, this module is loaded twice."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    source: dict[str, Any] = root.obj
    try:
        settings = load_settings(flags=source["flags"], path=source["path"])
    except InvalidInput as exc:
        fail(str(exc))
    root.obj = settings
    return settings


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
    except InvalidInput as exc:
        mentioned = settings.ibm_service_crn or settings.ibm_base_url or _env_key()
        if required or mentioned or not not_configured(exc):
            raise
        return None


def _env_key() -> bool:
    return bool(os.environ.get("IBMCLOUD_API_KEY") or os.environ.get("QISKIT_IBM_TOKEN"))


def braket_client(settings: Settings, *, required: bool) -> Any:
    from quotaguard.braket.client import BraketClient

    try:
        return BraketClient(settings.braket_region, endpoint_url=settings.braket_endpoint_url)
    except InvalidInput as exc:
        if required or settings.braket_endpoint_url or not not_configured(exc):
            raise
        return None


# A provider nobody configured is skipped by ``status``; one configured wrongly or only in
# part (a CRN but no API key, an endpoint but no region) is an error.
_NOT_CONFIGURED = ("no IBM Cloud API key", "no Qiskit Runtime instance CRN", "no AWS region")


def not_configured(exc: InvalidInput) -> bool:
    return exc.reason.startswith(_NOT_CONFIGURED)


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


# -- commands -----------------------------------------------------------------------------------


class OneLineErrors(click.Group):
    """Click's own usage errors in the documented form: ``quotaguard: <message>``, exit 2."""

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        if extra.get("standalone_mode") is False:
            return super().main(args, prog_name, **extra)
        try:
            code = super().main(args, prog_name, **{**extra, "standalone_mode": False})
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail("aborted", EXIT_REJECTED)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = {"flags": flags, "path": config_path}


@main.command()
@click.option("--ibm-jobs", default=12, show_default=True, help="IBM jobs in the burst.")
@click.option("--braket-tasks", default=12, show_default=True, help="Braket tasks in the burst.")
@click.option("--seed", default=7, show_default=True, help="Random seed for the burst.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(ibm_jobs: int, braket_tasks: int, seed: int, as_json: bool) -> None:
    """Run a burst of IBM and Braket work through the guard against the local emulator."""
    from quotaguard.cli.demo import run_demo

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

    from quotaguard.cli.admin import ibm_usage_row, limit_rows
    from quotaguard.cli.output import limit_on_server, print_limits, print_usage

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
    on_server = {s.key: limit_on_server(s.key, found) for s in states}
    if as_json:
        rows = [{**state_row(s), "limit_on_server": on_server[s.key]} for s in states]
        print_json({**found, "budgets": rows})
        return
    providers = ", ".join(found["providers"]) or "none configured"
    out.print(f"providers: {providers}; outstanding reservations: {found['outstanding']}")
    if found["ibm"] is not None:
        print_usage(found["ibm"])
    if found["braket"] is not None:
        print_limits(found["braket"])
    if states:
        gone = {key: "*" for key, on in on_server.items() if on is False}
        out.print(budgets_table(states, "Budgets in the ledger", notes=gone))
        if gone:
            out.print("* no limit on the server any more; the guard no longer charges it")
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
    from quotaguard.braket.rules import RULE_PRICE_UNKNOWN
    from quotaguard.braket.work import BraketTask

    async def body() -> Decision:
        work = BraketTask(device, shots=shots)
        async with open_guard(settings_of(ctx), ibm=False, braket=True) as guard:
            return await guard.check(work, budgets=budgets)

    decision = run_async(body)()
    if any(v.rule == RULE_PRICE_UNKNOWN for v in decision.violations):
        # A typo'd device, not an over-budget one; the command has no price setting to offer.
        fail(
            f"--device: unknown device {device}: no price known, and the command has no "
            "setting for Braket prices"
        )
    show_decision(decision, as_json)


from quotaguard.cli.admin import emulator, ibm_limit, limits  # noqa: E402  (registers commands)

main.add_command(limits)
main.add_command(ibm_limit)
main.add_command(emulator)


def now_utc() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    main()
