"""``quotaguard emulator``: serve both emulated services until interrupted."""

from __future__ import annotations

import click

from quotaguard.cli.context import run_async
from quotaguard.cli.output import fail, out
from quotaguard.testing import serve
from quotaguard.testing.serve import bind_error

__all__ = ["emulator"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option(
    "--seed/--no-seed",
    default=True,
    show_default=True,
    help="Seed the demo instance, device and spending limit.",
)
def emulator(host: str, port: int, seed: bool) -> None:
    """Serve both emulated services until interrupted."""
    listening = False

    def announce(text: str) -> None:
        nonlocal listening
        listening = True
        out.print(text, markup=False, soft_wrap=True)

    async def body() -> None:
        try:
            await serve(host, port, seed=seed, announce=announce)
        except OSError as exc:
            if listening:  # e.g. a closed stdout pipe: not a listening problem
                raise
            fail(bind_error(host, port, exc))

    run_async(body)()
