"""Run pytest in a child process: for tests about the suite's own plugins and about test
modules written by users (the docs' examples)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ROOT", "run_pytest"]

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in ``cwd`` with this tree first on the path (no cache, -rs)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
