"""What the ``quotaguard`` command prints: consoles, tables, JSON, decisions, one-line errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from quotaguard.engine.forecast import Forecast
from quotaguard.engine.model import BudgetState, Decision
from quotaguard.ibm.plans import PLAN_SETTING

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

# Piped output (CI logs, captures) gets 110 columns rather than rich's 80, unless COLUMNS says.
_piped_width = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 110
out = Console(highlight=False, width=_piped_width)
err = Console(stderr=True, highlight=False)

# Below this many columns the bar gives way to a bare percentage, so the numbers stay whole.
WIDE = 100

# Hints in library errors name the Python API; a command user sets these instead.
#: Where an IBM instance's limit came from, as ``status`` / ``ibm-limit show`` word it.
_LIMIT_SOURCES = {
    "usage_limit_seconds": "usage limit",
    "usage_allocation_seconds": "allocation, no limit reported",
    "instance_limit_seconds": "instance limit",
    "instance_allocation_seconds": "instance allocation",
    "open_plan": "the open plan's allowance",
}

_CLI_HINTS = (
    (
        "pass ibm_price_per_second=Decimal(...) to BudgetGuard",
        "set QUOTAGUARD_IBM_PRICE_PER_SECOND or ibm.price_per_second in quotaguard.toml",
    ),
    (
        "add it first (BudgetGuard.add_budget or Ledger.put_budget)",
        "add it first from Python (BudgetGuard.add_budget); the command cannot create budgets",
    ),
    ("pass api_key=, set IBMCLOUD_API_KEY", "set IBMCLOUD_API_KEY"),
    (
        "pass service_crn=, set QUOTAGUARD_IBM_SERVICE_CRN",
        "set QUOTAGUARD_IBM_SERVICE_CRN or ibm.service_crn in quotaguard.toml",
    ),
    (
        "pass region= or set AWS_REGION",
        "set AWS_REGION (or a region in your AWS profile) or braket.region in quotaguard.toml",
    ),
    (" or base_url=", " (QUOTAGUARD_IBM_REGION or ibm.region), or set QUOTAGUARD_IBM_URL"),
)


def for_cli(message: str) -> str:
    for python_way, cli_way in _CLI_HINTS:
        message = message.replace(python_way, cli_way)
    return message


def fail(message: str, code: int = EXIT_USAGE) -> None:
    err.print(f"quotaguard: {for_cli(message)}", markup=False, soft_wrap=True)
    sys.exit(code)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_json(data: object) -> None:
    click.echo(json.dumps(data, default=_json_default, indent=2))


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
        "alert_levels": list(s.budget.alert_levels),
    }


def alert_levels_line(states: Sequence[BudgetState]) -> str | None:
    """``alert levels: braket:…Forte-1 80%, 95%; …`` for the budgets that have any."""
    armed = [
        f"{short_key(s.key)} {', '.join(f'{level}%' for level in s.budget.alert_levels)}"
        for s in states
        if s.budget.alert_levels
    ]
    return f"alert levels: {'; '.join(armed)}" if armed else None


def bar(used: Decimal, limit: Decimal, width: int = 10) -> str:
    frac = float(used / limit) if limit else 1.0
    filled = min(width, round(frac * width))
    colour = "green" if frac <= 0.8 else "yellow" if frac <= 1 else "red"
    if width == 0:
        return f"[{colour}]{frac:>4.0%}[/{colour}]"
    return f"[{colour}]{'█' * filled}[/{colour}]{'░' * (width - filled)} {frac:>4.0%}"


def short_key(key: str, width: int = 24) -> str:
    """A budget key that fits a table cell: the tail of long provider ARNs and CRNs."""
    if len(key) <= width:
        return key
    provider, _, rest = key.partition(":")
    tail = rest.rsplit("/", 2)[-2:] if provider == "braket" else [rest.rsplit(":", 1)[-1]]
    return f"{provider}:…{tail[-1]}"


def _table(
    title: str,
    columns: list[tuple[str, bool]],
    rows: list[list[str]],
    fills: list[tuple[Decimal, Decimal]],
    *,
    width: int,
    bar_width: int = 10,
) -> Table:
    """Numbers (``True`` columns) never wrap or shrink. A ``(used, limit)`` bar ends each row.
    When the table is too wide the bar becomes a bare percentage, then the window column goes,
    then rich narrows the label column (the only wrappable one left)."""
    cells = [
        [*r, bar(used, limit, bar_width)] for r, (used, limit) in zip(rows, fills, strict=True)
    ]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=width >= WIDE)
    natural = len(columns) + 2  # the box's edges and column dividers
    for i, (name, numeric) in enumerate([*columns, ("", True)]):
        widest = max([len(name), *(len(_plain(r[i])) for r in cells)])
        natural += widest + 2  # one space of padding each side
        table.add_column(
            name,
            justify="right" if numeric else "left",
            no_wrap=numeric,
            min_width=widest if numeric else None,
            overflow="fold" if numeric else "ellipsis",
        )
    for r in cells:
        table.add_row(*r)
    if natural <= width:
        return table
    if bar_width:
        return _table(title, columns, rows, fills, width=width, bar_width=0)
    names = [name for name, _ in columns]
    if "window" in names:
        at = names.index("window")
        rest = [r[:at] + r[at + 1 :] for r in rows]
        return _table(
            title, columns[:at] + columns[at + 1 :], rest, fills, width=width, bar_width=0
        )
    return table


def _plain(cell: str) -> str:
    """A markup cell's printed text."""
    from rich.text import Text

    return Text.from_markup(cell).plain


def budgets_table(
    states: list[BudgetState],
    title: str = "Budgets",
    *,
    width: int | None = None,
    notes: dict[str, str] | None = None,
) -> Table:
    """``notes`` adds a word after a key, e.g. a provider budget whose limit is gone."""
    wide = (width or out.width) >= WIDE
    rows = []
    for s in states:
        window = {"none": "-", "calendar_month": "month", "rolling_days": "rolling"}.get(
            s.budget.window.kind, s.budget.window.kind
        )
        if s.window_end is not None and wide:
            window += f"→{s.window_end:%m-%d}"
        key = short_key(s.key)
        if notes and s.key in notes:
            key += f" {notes[s.key]}"
        unit = "s" if s.unit.value == "seconds" else s.unit.value
        rows.append([key, unit, *map(str, (s.limit, s.used, s.reserved, s.remaining)), window])
    cols = [("budget", False), ("unit", False), ("limit", True), ("used", True)]
    cols += [("reserved", True), ("remaining", True), ("window", False)]
    fills = [(s.used, s.limit) for s in states]
    return _table(title, cols, rows, fills, width=width or out.width)


def print_forecasts(burn: Sequence[Forecast], console: Console | None = None) -> None:
    """The forecast line of each budget, under a heading."""
    console = console or out
    console.print("Forecast (committed spend over the last 7 days, or the window so far):")
    for f in burn:
        colour = "green" if f.on_track else "red"
        console.print(f"  [{colour}]{escape(f.line(short_key(f.key)))}[/{colour}]", emoji=False)


def limits_table(rows: list[dict[str, Any]], *, width: int | None = None) -> Table:
    wide = (width or out.width) >= WIDE
    cells = []
    for r in rows:
        if r["start"]:
            fmt = "%Y-%m-%d" if wide else "%m-%d"
            window = f"{r['start']:{fmt}}→{r['end']:{fmt}}"
        else:
            window = "always"
        device = str(r["device"])
        label = short_key(device, 30) if wide else f"…{device.rsplit('/', 1)[-1]}"
        money = [f"${r[k]}" for k in ("limit", "total", "queued", "remaining")]
        cells.append([label, *money, window])
    cols = [("device", False), ("limit", True), ("total", True), ("queued", True)]
    cols += [("remaining", True), ("window", False)]
    fills = [(r["total"] + r["queued"], r["limit"]) for r in rows]
    return _table("Braket spending limits", cols, cells, fills, width=width or out.width)


def print_limits(rows: list[dict[str, Any]]) -> None:
    out.print(limits_table(rows) if rows else "no spending limits")


def print_usage(row: dict[str, Any]) -> None:
    """An instance reading (``InstanceReading.row``): the limit the guard charges against."""
    limit, source = row["limit_seconds"], row["limit_source"]
    plan = f"{row['plan'] or 'unknown'}, id {row['plan_id']}"
    out.print(f"IBM instance {row['service_crn']} (plan {plan})", soft_wrap=True)
    used = f"{row['consumed_seconds']} s"
    if limit is not None:
        line = f"  used {used} of {limit} s ({_LIMIT_SOURCES.get(source, source)})"
    elif source == "none":
        line = f"  used {used}, no limit: the guard tracks it and refuses nothing on it"
    else:
        line = (
            f"  used {used}; no limit reported and the plan is unknown: the guard refuses "
            f"work on it until the plan is declared ({PLAN_SETTING})"
        )
    if limit:
        line += "  " + bar(Decimal(row["consumed_seconds"]), Decimal(limit))
    out.print(line, soft_wrap=True)
    if row["period_start"]:
        out.print(
            f"  period {row['period_start']:%Y-%m-%d %H:%M} → "
            f"{row['period_end']:%Y-%m-%d %H:%M} UTC"
        )


def limit_on_server(key: str, found: dict[str, Any]) -> bool | None:
    """Whether a provider budget's limit still exists; ``None`` for local budgets or when
    that provider was not asked. The ledger keeps a deleted limit's budget (and its history)."""
    provider, _, ref = key.partition(":")
    if provider == "braket" and found.get("braket") is not None:
        return any(r["device"] == ref for r in found["braket"])
    ibm = found.get("ibm")
    if provider == "ibm" and ibm is not None and ibm["service_crn"] == ref:
        # An instance always has a limit (reported, or its plan's) or none by its plan; the
        # guard charges it either way (print_usage says which), so it is never marked gone.
        return True if ibm["limit_seconds"] is not None else None
    return None


def decision_dict(decision: Decision) -> dict[str, object]:
    return {
        "admitted": decision.admitted,
        "charges": [
            {"budget": c.budget, "amount": c.amount, "unit": c.unit.value} for c in decision.charges
        ],
        "violations": [
            {
                "rule": v.rule,
                "message": for_cli(v.message),
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
        held = ", ".join(f"{c.amount} {c.unit.value} on {c.budget}" for c in decision.charges)
        out.print(
            f"[green]admitted[/green]: {held or 'nothing to hold (no limit or budget applies)'}",
            soft_wrap=True,
        )
    else:
        out.print("[red]rejected[/red]")
        for v in decision.violations:
            out.print(f"  [bold]{v.rule}[/bold] {for_cli(v.message)}", soft_wrap=True)
    sys.exit(EXIT_OK if decision.admitted else EXIT_REJECTED)
