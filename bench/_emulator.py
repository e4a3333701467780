"""Start ``quotaguard emulator`` in its own process, so clients are measured off its CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def emulator_process() -> Iterator[dict[str, str]]:
    """Yield the environment that points clients at a seeded emulator (demo world)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quotaguard.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + 30
    try:
        while "AWS_SECRET_ACCESS_KEY" not in env:
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not start within 30 s")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the emulator exited early")
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").strip().partition("=")
                env[key] = value
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
