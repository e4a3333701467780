"""A fresh interpreter in which an optional package is missing, as for a user without the extra.

The path starts with a directory whose ``<package>/__init__.py`` raises the
``ModuleNotFoundError`` an uninstalled package raises, so nothing in the test process is patched.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

__all__ = ["ROOT", "python", "without"]

ROOT = Path(__file__).resolve().parents[2]


def without(package: str, tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) in which ``import <package>`` fails as uninstalled."""
    shadow = tmp_path / "shadow" / package
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{package}'\", name={package!r})\n"
    )
    path = os.pathsep.join([str(tmp_path / "shadow"), str(ROOT)])
    return {**(os.environ if env is None else env), "PYTHONPATH": path}


async def python(code: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter; its exit code and its output (stderr merged)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()
