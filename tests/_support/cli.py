"""Run the ``quotaguard`` command as a subprocess, bounded in time."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

__all__ = ["EXE", "run"]

#: The command line that starts the ``quotaguard`` command with this interpreter.
EXE = [sys.executable, "-m", "quotaguard.cli"]


async def run(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr; killed and TimeoutError after ``timeout``."""
    proc = await asyncio.create_subprocess_exec(
        *EXE,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()  # never leave the command running past the test
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
