"""What importing quotaguard loads: the engine and the ledgers stay pure at import time.

Each check runs in a fresh interpreter, so nothing another test imported counts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "botocore", "boto3", "redis", "qiskit", "qiskit_ibm_runtime", "braket")


def loaded_after(statement: str) -> list[str]:
    """Top-level packages from HEAVY (and quotaguard.cli) that ``statement`` loads."""
    probe = (
        f"{statement}\n"
        "import json, sys\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}"
        " | ({'quotaguard.cli'} if 'quotaguard.cli' in sys.modules else set()))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import quotaguard.engine",
        "import quotaguard.engine.rules",
        "import quotaguard.ledger",
        "from quotaguard.ledger import MemoryLedger, SQLiteLedger",
        "import quotaguard",
        "from quotaguard import BudgetGuard, Budget, IBMJob, BraketTask",
        "import quotaguard.ibm.work, quotaguard.ibm.rules",
        "import quotaguard.braket.work, quotaguard.braket.rules",
    ],
)
def test_importing_loads_no_http_and_no_sdk(statement: str) -> None:
    assert loaded_after(statement) == []


def test_the_provider_clients_load_when_asked_for() -> None:
    assert "aiohttp" in loaded_after("from quotaguard.braket import BraketClient")
    assert "botocore" in loaded_after("from quotaguard.braket import BraketClient")
    assert "aiohttp" in loaded_after("from quotaguard.ibm import IBMRuntimeClient")


def test_redis_loads_only_with_the_redis_ledger() -> None:
    assert "redis" in loaded_after("from quotaguard import RedisLedger")
    assert "redis" not in loaded_after("import quotaguard.ledger")


def test_the_emulator_does_not_load_the_cli() -> None:
    assert "quotaguard.cli" not in loaded_after("import quotaguard.testing")


def test_every_public_name_resolves() -> None:
    import quotaguard

    missing = [name for name in quotaguard.__all__ if not hasattr(quotaguard, name)]
    assert missing == []
    from quotaguard._http import RetryPolicy, set_testing

    assert (quotaguard.RetryPolicy, quotaguard.set_testing) == (RetryPolicy, set_testing)
