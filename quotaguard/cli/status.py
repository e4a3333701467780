"""``quotaguard status``: provider limits, the ledger's budgets and its outstanding work."""

from __future__ import annotations

from typing import Any

import click

from quotaguard.cli.context import missing_ledger, open_guard, run_async, settings_of
from quotaguard.cli.limits import limit_rows
from quotaguard.cli.output import (
    alert_levels_line,
    budgets_table,
    limit_on_server,
    out,
    print_forecasts,
    print_json,
    print_limits,
    print_usage,
    state_row,
)
from quotaguard.engine import BudgetState, Forecast
from quotaguard.guard.forecasts import forecasts
from quotaguard.guard.ibm_adapter import IBMAdapter

__all__ = ["status"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Every budget the guard knows: provider limits, local budgets, outstanding work."""

    async def body() -> dict[str, Any]:
        found: dict[str, Any] = {"ibm": None, "braket": None}
        absent = missing_ledger(settings_of(ctx))
        found["ledger_missing"] = None if absent is None else str(absent)
        async with open_guard(settings_of(ctx), reading=True) as guard:
            await guard.sync()
            for adapter in guard.adapters:
                client: Any = getattr(adapter, "client", None)
                if isinstance(adapter, IBMAdapter):
                    # What sync() just read: the very limit the guard charges against.
                    found["ibm_account"] = getattr(client, "account", None)
                    found["ibm"] = adapter.readings[client.service_crn].row()
                elif adapter.provider == "braket" and client is not None:
                    found["braket"] = limit_rows(
                        [lim async for lim in client.search_spending_limits()]
                    )
            found["providers"] = [a.provider for a in guard.adapters]
            found["budgets"] = await guard.status()
            found["forecast"] = await forecasts(guard.ledger, found["budgets"])
            found["outstanding"] = len(await guard.ledger.outstanding())
            found["in_doubt"] = len(await guard.in_doubt())
        return found

    found = run_async(body)()
    states: list[BudgetState] = found.pop("budgets")
    burn: list[Forecast] = found.pop("forecast")
    on_server = {s.key: limit_on_server(s.key, found) for s in states}
    if as_json:
        rows = [
            {**state_row(s), "limit_on_server": on_server[s.key], "forecast": f.to_dict()}
            for s, f in zip(states, burn, strict=True)
        ]
        print_json({**found, "budgets": rows})
        return
    providers = ", ".join(found["providers"]) or "none configured"
    out.print(
        f"providers: {providers}; outstanding reservations: {found['outstanding']} "
        f"({found['in_doubt']} in doubt)"
    )
    if found["ledger_missing"] is not None:
        where = found["ledger_missing"]
        out.print(f"no ledger yet at {where} (not created by status)", markup=False)
    if found.get("ibm_account"):
        out.print(f"IBM account: {found['ibm_account']}", markup=False, soft_wrap=True)
    if found["ibm"] is not None:
        print_usage(found["ibm"])
    if found["braket"] is not None:
        print_limits(found["braket"])
    if states:
        gone = {key: "*" for key, on in on_server.items() if on is False}
        out.print(budgets_table(states, "Budgets in the ledger", notes=gone))
        if gone:
            out.print("* no limit on the server any more; the guard no longer charges it")
        if levels := alert_levels_line(states):
            out.print(levels, markup=False)
        print_forecasts(burn)
    else:
        out.print("no budgets yet: add one with BudgetGuard.add_budget() or a provider limit")
