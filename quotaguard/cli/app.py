"""The ``quotaguard`` command: the root group, which registers the commands of each topic.

Every reading command takes ``--json`` for scripts; exit codes are in ``cli.context``.
"""

from __future__ import annotations

from pathlib import Path

import click

from quotaguard import __version__
from quotaguard.cli.check import check
from quotaguard.cli.context import OneLineErrors, Unread
from quotaguard.cli.demo import demo
from quotaguard.cli.emulator import emulator
from quotaguard.cli.ledger import ledger as ledger_commands
from quotaguard.cli.limits import ibm_limit, limits
from quotaguard.cli.output import fail
from quotaguard.cli.report import report
from quotaguard.cli.status import status

__all__ = ["main"]


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
    ctx.obj = Unread(flags, config_path)


main.add_command(demo)
main.add_command(status)
main.add_command(report)
main.add_command(check)
main.add_command(limits)
main.add_command(ibm_limit)
main.add_command(emulator)
main.add_command(ledger_commands)
