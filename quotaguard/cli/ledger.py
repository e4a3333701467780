"""``quotaguard ledger trim``: forget what the ledger no longer needs (``Ledger.trim``).

For a ledger that no guard's watcher trims (the watcher does, hourly): run it from cron.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from quotaguard.cli.context import open_ledger, run_async, settings_of
from quotaguard.cli.output import out, print_json
from quotaguard.ledger import DEFAULT_RETENTION, Trimmed
from quotaguard.ledger.retention import MAX_RETENTION

__all__ = ["ledger"]


@click.group()
def ledger() -> None:
    """Maintain the configured ledger."""


@ledger.command("trim")
@click.option(
    "--keep-days",
    type=click.IntRange(0, MAX_RETENTION.days),
    default=DEFAULT_RETENTION.days,
    show_default=True,
    help="Keep ended reservations (and their idempotency keys) and commits this many days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def trim(ctx: click.Context, keep_days: int, as_json: bool) -> None:
    """Forget ended reservations and commits no budget's window counts any more.

    What every budget counts stays as it is: older commits of unwindowed budgets are
    folded into their running total first. Held, in-doubt and lapsed reservations stay.
    """

    async def body() -> Trimmed:
        # reading=True: with no SQLite file yet there is nothing to trim, and none is made.
        async with open_ledger(settings_of(ctx), reading=True) as opened:  # type: ignore[attr-defined]
            trimmed: Trimmed = await opened.trim(
                now=datetime.now(UTC), keep=timedelta(days=keep_days)
            )
            return trimmed

    trimmed = run_async(body)()
    if as_json:
        print_json(
            {
                "commits": trimmed.commits,
                "reservations": trimmed.reservations,
                "keep_days": keep_days,
            }
        )
        return
    out.print(
        f"trimmed {trimmed.commits} commits and {trimmed.reservations} ended reservations "
        f"older than {keep_days} days"
    )
