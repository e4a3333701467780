"""``python -m quotaguard.testing [--host H] [--port N] [--seed/--no-seed]``: serve both
emulated services until SIGINT or SIGTERM (what ``quotaguard emulator`` does, without the CLI)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from quotaguard.testing.serve import bind_error, serve

__all__ = ["main"]

PROG = "python -m quotaguard.testing"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return port


def _announce(text: str) -> None:
    # Flushed: whoever started this process may be reading the URL from a pipe.
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; 0 after a signal, 2 when it cannot listen."""
    parser = argparse.ArgumentParser(prog=PROG, description="Serve both emulated services.")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=_port, default=0, help="0 (the default) picks a free port")
    parser.add_argument(
        "--seed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="seed the demo instance, device and spending limit (default: on)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, seed=args.seed, announce=_announce))
    except OSError as exc:
        print(f"{PROG}: {bind_error(args.host, args.port, exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
