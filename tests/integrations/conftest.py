"""Integration fixtures: AWS settings isolated from the developer's machine; the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from quotaguard._http import RetryPolicy
from quotaguard.braket import BraketClient
from quotaguard.guard import BudgetGuard
from quotaguard.ledger.memory import MemoryLedger
from quotaguard.testing import Emulator
from tests.braket.conftest import ACCESS_KEY, SECRET_KEY, botocore_session
from tests.conftest import FakeClock

FORTE = "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1"
GARNET = "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
SV1 = "arn:aws:braket:::device/quantum-simulator/amazon/sv1"
S3 = ("amzn-braket-test-bucket", "tasks")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, emulator: Emulator) -> None:
    """Stock AWS settings for the Braket SDK, every braket client pointed at the emulator."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BRAKET", emulator.url)


@pytest.fixture
async def braket_guard(
    emulator: Emulator, clock: FakeClock, aws_env: None
) -> AsyncIterator[BudgetGuard]:
    client = BraketClient(
        "us-east-1",
        endpoint_url=emulator.url,
        botocore_session=botocore_session(),
        retry=RetryPolicy(base=0.001, cap=0.01),
    )
    async with client, BudgetGuard(MemoryLedger(), braket=client, clock=clock) as guard:
        yield guard
