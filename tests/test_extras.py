"""A missing optional extra is one clear error naming what to install, wherever it is needed.

Each case runs in a fresh interpreter whose path starts with a directory that makes the extra's
package fail to import as an uninstalled one does, so nothing in this process is patched.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tomllib
from pathlib import Path

import pytest

from quotaguard._extras import EXTRAS, missing
from quotaguard.errors import MissingDependency, QuotaGuardError

ROOT = Path(__file__).resolve().parents[1]


def test_the_extras_table_is_pyprojects() -> None:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        declared = tomllib.load(fh)["project"]["optional-dependencies"]
    assert {k: tuple(v) for k, v in declared.items()} == EXTRAS


def test_the_error_names_packages_that_pip_installs_from_anywhere() -> None:
    exc = missing("redis", "RedisLedger")
    assert isinstance(exc, QuotaGuardError) and isinstance(exc, ImportError)
    assert exc.extra == "redis"
    assert "pip install 'redis>=6.0' 'hiredis>=3.0'" in str(exc)
    assert "quotaguard[redis]" in str(exc)


def uninstalled(tmp_path: Path, package: str) -> dict[str, str]:
    """An environment in which ``import <package>`` fails as for a package not installed."""
    shadow = tmp_path / "shadow" / package
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{package}'\", name={package!r})\n"
    )
    path = os.pathsep.join([str(tmp_path / "shadow"), str(ROOT)])
    return {**os.environ, "PYTHONPATH": path}


async def python(code: str, env: dict[str, str]) -> tuple[int, str]:
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


REPORT = """
try:
    {call}
except Exception as exc:
    print(type(exc).__name__, getattr(exc, "extra", None), "|", exc)
else:
    print("no error")
"""


@pytest.mark.parametrize(
    ("package", "call", "extra", "packages"),
    [
        ("redis", "import quotaguard; quotaguard.RedisLedger", "redis", "'redis>=6.0'"),
        (
            "redis",
            "from quotaguard.ledger import RedisLedger",
            "redis",
            "'redis>=6.0' 'hiredis>=3.0'",
        ),
        (
            "asyncpg",
            "from quotaguard.ledger import PostgresLedger",
            "postgres",
            "'asyncpg>=0.30'",
        ),
        ("asyncpg", "import quotaguard; quotaguard.PostgresLedger", "postgres", "'asyncpg"),
        (
            "matplotlib",
            "from quotaguard.cli.plot import require_matplotlib; require_matplotlib()",
            "plot",
            "'matplotlib>=3.9'",
        ),
        (
            "qiskit_ibm_runtime",
            "from quotaguard.integrations.qiskit_runtime import guard_runtime;"
            " guard_runtime(object(), None)",
            "qiskit",
            "'qiskit-ibm-runtime>=0.50'",
        ),
        (
            "braket",
            "import asyncio; from quotaguard import BudgetGuard, MemoryLedger;"
            " from quotaguard.integrations import GuardBridge;"
            " from quotaguard.integrations.braket_sdk import guard_session;"
            " bridge = GuardBridge(BudgetGuard(MemoryLedger()), asyncio.new_event_loop());"
            " guard_session(object(), bridge)",
            "braket",
            "'amazon-braket-sdk>=1.90'",
        ),
    ],
)
async def test_each_extra_fails_with_what_to_install(
    tmp_path: Path, package: str, call: str, extra: str, packages: str
) -> None:
    code, out = await python(REPORT.format(call=call), uninstalled(tmp_path, package))
    assert code == 0, out
    line = out.strip().splitlines()[-1]
    assert line.startswith(f"{MissingDependency.__name__} {extra} | "), out
    assert f"pip install {packages}" in line
