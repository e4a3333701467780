"""``quotaguard check ibm|braket``: would this work be admitted now? Nothing reserved or sent."""

from __future__ import annotations

import click

from quotaguard.braket import BraketTask
from quotaguard.braket.rules import RULE_PRICE_UNKNOWN
from quotaguard.cli.context import open_guard, run_async, settings_of
from quotaguard.cli.output import fail, show_decision
from quotaguard.engine import Decision
from quotaguard.ibm import IBMJob

__all__ = ["check"]


@click.group()
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

    async def body() -> Decision:
        work = IBMJob(backend, max_execution_time=max_execution_time, simulator=simulator)
        async with open_guard(settings_of(ctx), ibm=True, braket=False, reading=True) as guard:
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

    async def body() -> Decision:
        work = BraketTask(device, shots=shots)
        async with open_guard(settings_of(ctx), ibm=False, braket=True, reading=True) as guard:
            return await guard.check(work, budgets=budgets)

    decision = run_async(body)()
    if any(v.rule == RULE_PRICE_UNKNOWN for v in decision.violations):
        # A typo'd device, not an over-budget one; the command has no price setting to offer.
        fail(
            f"--device: unknown device {device}: no price known, and the command has no "
            "setting for Braket prices"
        )
    show_decision(decision, as_json)
