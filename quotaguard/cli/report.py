"""``quotaguard report``: each budget's used vs limit over its window with the forecast line
(a terminal chart, or ``--plot`` PNG/SVG), and the audit export of every reservation
(``--csv`` / ``--jsonl``), filtered by ``--budget`` and ``--since``/``--until``.

A reading command: it never creates a ledger (see :func:`~quotaguard.cli.context.open_ledger`)
and adds nothing to one (reading a budget's state lets due leases lapse, as ``status`` does).
Every option is checked before any file is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from quotaguard.cli.chart import Series, series_of, series_start, spent_on, terminal_chart
from quotaguard.cli.context import missing_ledger, open_ledger, run_async, settings_of
from quotaguard.cli.export import STDOUT, write_export
from quotaguard.cli.output import fail, out, print_json, short_key, state_row
from quotaguard.engine.model import Budget
from quotaguard.errors import MissingDependency
from quotaguard.guard.forecasts import forecasts
from quotaguard.ledger import Ledger
from quotaguard.ledger.base import from_epoch_us

__all__ = ["report"]

# Before every commit a ledger can hold: the lower bound of "committed before the series".
_EPOCH = from_epoch_us(0)
_THROUGH = timedelta(microseconds=1)  # the ledger's spans are [start, end)


def _instant(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; one without a zone is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{option} {value!r}: not an ISO 8601 date or time "
            "(e.g. 2026-03-01 or 2026-03-01T12:00Z)"
        )
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@click.command()
@click.option("--budget", "budget_keys", multiple=True, help="Only this budget (repeatable).")
@click.option("--since", help="From this instant (ISO 8601; UTC unless it says otherwise).")
@click.option("--until", help="Up to this instant, excluded (ISO 8601).")
@click.option(
    "--csv", "csv_file", metavar="FILE", help="Write the audit rows as CSV ('-': stdout)."
)
@click.option(
    "--jsonl", "jsonl_file", metavar="FILE", help="Write them as JSON Lines ('-': stdout)."
)
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Draw the charts into a .png or .svg (needs the 'plot' extra: matplotlib).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the series as JSON.")
@click.pass_context
def report(
    ctx: click.Context,
    budget_keys: tuple[str, ...],
    since: str | None,
    until: str | None,
    csv_file: str | None,
    jsonl_file: str | None,
    plot_file: Path | None,
    as_json: bool,
) -> None:
    """Used vs limit over each budget's window, the forecast, and the audit export."""
    start, end = _instant(since, "--since"), _instant(until, "--until")
    if start is not None and end is not None and end < start:
        fail(f"--until {until} is before --since {since}: nothing was read or written")
    exports = [(f, kind) for f, kind in ((csv_file, "csv"), (jsonl_file, "jsonl")) if f]
    if [f for f, _ in exports].count(STDOUT) > 1 or (
        as_json and any(f == STDOUT for f, _ in exports)
    ):
        fail("only one of --csv -, --jsonl - and --json can use stdout")
    for target, _ in exports:
        if target != STDOUT and not Path(target).parent.is_dir():
            fail(f"{target}: no such directory to write it in")
    if plot_file is not None:
        from quotaguard.cli.plot import FORMATS, require_matplotlib

        if plot_file.suffix.lower() not in FORMATS:
            fail(f"--plot {plot_file}: the name must end in .png or .svg")
        try:  # a missing extra is said now, in one line, before anything is read or written
            require_matplotlib()
        except MissingDependency as exc:
            fail(str(exc))
    settings = settings_of(ctx)
    absent = missing_ledger(settings)

    async def body() -> list[Series]:
        async with open_ledger(settings, reading=True) as ledger:  # type: ignore[attr-defined]
            budgets = await _budgets(ledger, budget_keys)
            # No --budget: every reservation, those of budgets removed since too.
            keys = [b.key for b in budgets] if budget_keys else None
            for target, kind in exports:
                rows = ledger.reservations(budgets=keys, since=start, until=end)
                await write_export(target, kind, rows, budgets)
            return await _series(ledger, budgets, start, end)

    series = run_async(body)()
    if plot_file is not None:
        from quotaguard.cli.plot import render

        render(series, plot_file)
    if as_json:
        print_json([_series_row(s) for s in series])
    elif not any(f == STDOUT for f, _ in exports):
        _print(series, absent)


async def _budgets(ledger: Ledger, keys: Sequence[str]) -> list[Budget]:
    if not keys:
        return await ledger.budgets()
    return [await ledger.get_budget(k) for k in dict.fromkeys(keys)]  # unknown: one error


async def _series(
    ledger: Ledger, budgets: Sequence[Budget], since: datetime | None, until: datetime | None
) -> list[Series]:
    now = datetime.now(UTC)
    states = [await ledger.state(b.key, now=now) for b in budgets]
    found = []
    for state, f in zip(states, await forecasts(ledger, states), strict=True):
        start = series_start(state, since)
        first = state.window_start or _EPOCH
        before = Decimal(0)
        if start > first:
            before = await ledger.committed_between(state.key, first, start)
        rows = ledger.reservations(budgets=[state.key], since=start, until=now + _THROUGH)
        commits = [c async for r in rows if (c := spent_on(r, state.key)) is not None]
        found.append(series_of(state, f, commits, before=before, since=start, until=until))
    return found


def _series_row(s: Series) -> dict[str, Any]:
    return {
        **state_row(s.state),
        "forecast": s.forecast.to_dict(),
        "start": s.start,
        "end": s.end,
        "committed": [{"at": at, "total": total} for at, total in s.points],
    }


def _print(series: Sequence[Series], absent: Path | None) -> None:
    if absent is not None:
        out.print(
            f"no ledger yet at {absent} (not created by report)", markup=False, soft_wrap=True
        )
    if not series:
        out.print("no budgets to report")
    columns = min(120, out.width)
    for s in series:
        out.print(f"{short_key(s.key, 60)} ({s.unit})", markup=False, style="bold")
        for line in terminal_chart(s, columns=columns):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        out.print(f"  {s.forecast.line(short_key(s.key))}", markup=False, soft_wrap=True)
        out.print()
